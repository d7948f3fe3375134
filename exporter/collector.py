"""Turns vault snapshots into rows of samples (cached and rendered by exposition.py) or metric families."""

from __future__ import annotations

import math
import platform
from collections import Counter as Tally
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from . import __version__
from . import catalogue as c
from .dataprotection import DPP_HEALTH_STATUSES, DPP_PROTECTION_STATES
from .models import (
    BACKUP,
    FAILED,
    ITEM_BACKUP_STATUSES,
    ITEM_HEALTH_STATUSES,
    KNOWN_STATUSES,
    PROTECTION_STATES,
)
from .protectable import ExclusionTags, ProtectableResource, ResourceInventory, covered_resource_id, tag_label
from .refresher import Refresher
from .settings import Settings
from .vault import DURATION_BUCKETS, VaultSnapshot


def _gauge(spec: c.MetricSpec) -> GaugeMetricFamily:
    return GaugeMetricFamily(spec.name, spec.help, labels=spec.labels)


def _counter(spec: c.MetricSpec) -> CounterMetricFamily:
    return CounterMetricFamily(spec.name, spec.help, labels=spec.labels)


class RegistryCollector(Collector):
    """Exposes another registry's metrics (the telemetry) inside this one."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Metric]:
        return iter(self.registry.collect())


class BackupCollector(Collector):
    """Renders what the refresher last fetched; never calls Azure itself."""

    def __init__(self, refresher: Refresher) -> None:
        self.refresher = refresher
        self.options = SeriesOptions.from_settings(refresher.settings)
        # (each inventory's resources and success, valid until, the families): see resource_families
        self._resources_cache: tuple[list[tuple[tuple[ProtectableResource, ...], bool | None]], float,
                                     list[Metric]] | None = None

    def describe(self) -> Iterator[Metric]:
        return iter(())  # a private registry: no collect() at registration, so no API call

    def collect(self) -> Iterator[Metric]:
        snapshots = self.refresher.snapshots()
        yield from _merge([vault_data_families(snap, self.options) for snap in snapshots], self.options)
        yield from self.status_families(snapshots)

    def status_families(self, snapshots: list[VaultSnapshot]) -> list[Metric]:
        """Vault refresh outcomes and the exporter's own state: they change on every refresh."""
        info, success, error = _gauge(c.VAULT_INFO), _gauge(c.VAULT_SCRAPE_SUCCESS), _gauge(c.VAULT_SCRAPE_ERROR)
        duration, refreshed = _gauge(c.VAULT_SCRAPE_DURATION), _gauge(c.VAULT_LAST_REFRESH)
        security, levels = _gauge(c.VAULT_SECURITY_INFO), _gauge(c.VAULT_SECURITY_LEVEL)
        for snap in snapshots:
            info.add_metric([*snap.ref.labels, snap.location], 1)
            if snap.security is not None and snap.security.reported:
                guards = snap.security
                security.add_metric([*snap.ref.labels, guards.soft_delete, guards.immutability,
                                     guards.multi_user_authorization], 1)
                for setting, level in guards.levels().items():
                    levels.add_metric([*snap.ref.labels, setting], level)
            if snap.success is None:
                continue  # not refreshed yet: no verdict to report
            success.add_metric(snap.ref.labels, 1 if snap.success else 0)
            if not snap.success and snap.error is not None:
                error.add_metric([*snap.ref.labels, *snap.error], 1)
            duration.add_metric(snap.ref.labels, snap.duration)
            if snap.last_refresh is not None:
                refreshed.add_metric(snap.ref.labels, snap.last_refresh)
        discovery = _gauge(c.DISCOVERY_SUCCESS)
        for found in self.refresher.discoveries():
            if found.success is not None:
                discovery.add_metric([found.subscription_id, found.kind], 1 if found.success else 0)
        resources = self.resource_families()
        up = GaugeMetricFamily(c.UP.name, c.UP.help, value=1 if self.refresher.up else 0)
        shard = _gauge(c.SHARD_INFO)
        settings = self.refresher.settings
        shard.add_metric([str(settings.shard), str(settings.shards)], 1)
        build = _gauge(c.BUILD_INFO)
        build.add_metric([__version__, platform.python_version()], 1)
        return [info, security, levels, success, error, duration, refreshed, discovery, *resources, up, shard, build]

    def resource_families(self) -> list[Metric]:
        """The protectable resources (shard 0 only). Whether one needs a backup by now depends on the time of
        the scrape, so the families are kept until a resource's grace ends or a list changes: at 20,000
        resources building them costs about 0.3 s (and the exposition keeps their lines as long)."""
        now = self.refresher.clock().timestamp()
        inventories = self.refresher.inventories()
        state = [(inventory.resources, inventory.success) for inventory in inventories]
        cached = self._resources_cache
        if (cached is not None and now < cached[1] and len(cached[0]) == len(state)
                and all(a is b and c == d for (a, c), (b, d) in zip(cached[0], state, strict=True))):
            return cached[2]
        families, until = self._build_resource_families(inventories, now)
        self._resources_cache = (state, until, families)
        return families

    def _build_resource_families(self, inventories: list[ResourceInventory], now: float) -> tuple[list[Metric], float]:
        """The families, and until when they hold: the next end of a grace, if any."""
        settings = self.refresher.settings
        tags = tuple(settings.tag_labels)
        info = GaugeMetricFamily(c.RESOURCE_INFO.name, c.RESOURCE_INFO.help,
                                 labels=(*c.RESOURCE_INFO.labels, *(tag_label(tag) for tag in tags)))
        created, required = _gauge(c.RESOURCE_CREATED), _gauge(c.RESOURCE_BACKUP_REQUIRED)
        listed = _gauge(c.RESOURCE_LIST_SUCCESS)
        exclusions = ExclusionTags.parse(settings.coverage_exclude_tags)
        grace = settings.coverage_grace.total_seconds()
        until = math.inf
        for inventory in inventories:
            if inventory.success is not None:
                listed.add_metric([inventory.subscription_id], 1 if inventory.success else 0)
            for resource in inventory.resources:
                labels = [resource.subscription_id, resource.resource_group, resource.resource_type, resource.name,
                          resource.resource_id]
                excluded = exclusions.excludes(resource.tags)
                info.add_metric([*labels, resource.location, resource.managed_by, "true" if excluded else "false",
                                 *(resource.tag(tag) for tag in tags)], 1)
                if resource.created is not None:
                    created.add_metric(labels, resource.created)
                due = None if resource.created is None else resource.created + grace
                old_enough = due is None or due <= now
                if due is not None and not old_enough:
                    until = min(until, due)
                required.add_metric(labels, 1 if old_enough and not excluded else 0)
        return [info, created, required, listed], until


@dataclass(frozen=True)
class SeriesOptions:
    """What /metrics exposes of each vault's data: the collector switches and the one-hot mode."""

    tasks: bool = True
    job_info: bool = False
    items: bool = True
    all_states: bool = False  # one-hot families: a 0 series for every known value besides the current 1

    @classmethod
    def from_settings(cls, settings: Settings) -> SeriesOptions:
        return cls(settings.collector_tasks, settings.collector_job_info, settings.collector_items,
                   settings.state_series == "all")

    def enabled(self, spec: c.MetricSpec) -> bool:
        switches = {"tasks": self.tasks, "job-info": self.job_info, "items": self.items}
        return switches.get(spec.collector, True)

    def families(self) -> tuple[c.MetricSpec, ...]:
        """The vault data families exposed, in exposition order: all present, even when empty."""
        return tuple(spec for spec in c.VAULT_DATA if self.enabled(spec))


ALL_SERIES = SeriesOptions(tasks=True, job_info=True, items=True, all_states=True)

Labels = tuple[str, ...]
# A family's samples as plain rows: (label values in the spec's order, value); a histogram's rows are
# (label values, per-bucket counts, sum). Cheaper to build than prometheus_client's samples, and rendered
# either straight to text (exposition.py) or, for the uncached path, as metric families (to_metric).
Row = tuple[Labels, float]
HistogramRow = tuple[Labels, list[int], float]


class VaultRows:
    """Every exposed family's rows for one vault, built from its snapshot in one pass."""

    def __init__(self, snap: VaultSnapshot, options: SeriesOptions) -> None:
        self.options = options
        self.vault = snap.ref.labels
        self.rows: dict[c.MetricSpec, list[Any]] = {spec: [] for spec in c.VAULT_DATA}
        self._latest_jobs(snap)
        self._job_totals(snap)
        if options.items:
            self._items(snap)
        expected = self.rows[c.ITEM_EXPECTED_INTERVAL]
        for (item_key, kind), seconds in sorted(snap.data.expected_intervals.items()):
            expected.append(((*self.vault, *item_key, kind), seconds))
        watched = self.rows[c.ITEM_WATCHED_SINCE]
        for item_key, since in sorted(snap.data.watched_since.items()):
            watched.append(((*self.vault, *item_key), since))

    def in_order(self) -> list[tuple[c.MetricSpec, list[Any]]]:
        return [(spec, self.rows[spec]) for spec in self.options.families()]

    def _latest_jobs(self, snap: VaultSnapshot) -> None:
        rows, options = self.rows, self.options
        status, info, start, end = (rows[c.JOB_LAST_STATUS], rows[c.JOB_LAST_INFO], rows[c.JOB_LAST_START],
                                    rows[c.JOB_LAST_END])
        duration, size, tasks = rows[c.JOB_LAST_DURATION], rows[c.JOB_LAST_SIZE], rows[c.JOB_LAST_TASK_STATUS]
        errors = rows[c.JOB_LAST_ERROR]
        for _, job in sorted(snap.data.latest_jobs().items()):
            labels = (*self.vault, *job.item_key, job.operation)
            _add_enum(status, labels, KNOWN_STATUSES, job.status, options.all_states)
            if options.job_info:
                info.append(((*labels, job.job_id, job.job_type, job.container_name, job.workload_type), 1.0))
            if job.status == FAILED:
                # Bounded: one series per failed latest job; it goes when a newer job of the series starts.
                code, title = (job.error.code, job.error.title) if job.error else ("", "")
                errors.append(((*labels, job.job_id, code, title), 1.0))
            if job.start is not None:
                start.append((labels, job.start))
            if job.end is not None and job.finished:
                end.append((labels, job.end))
            if job.duration is not None:
                duration.append((labels, job.duration))
            if job.size_bytes is not None:
                size.append((labels, job.size_bytes))
            if options.tasks:
                tasks.extend(((*labels, task.name, task.status), 1.0) for task in job.tasks or ())
        failures = rows[c.JOB_CONSECUTIVE_FAILURES]
        for key, run in sorted(snap.data.failure_runs().items()):
            failures.append(((*self.vault, *key), float(run)))

    def _job_totals(self, snap: VaultSnapshot) -> None:
        data, vault, rows = snap.data, self.vault, self.rows
        rows[c.LAST_SUCCESS] = [((*vault, *key), when) for key, when in sorted(data.last_success.items())]
        rows[c.LAST_SUCCESS_BY_KIND] = [((*vault, *key, kind), when)
                                        for (key, kind), when in sorted(data.last_success_by_kind.items())]
        tally = Tally((j.backup_management_type, j.operation, j.status) for j in data.jobs)
        rows[c.JOBS] = [((*vault, *key), float(count)) for key, count in sorted(tally.items())]
        rows[c.JOBS_FINISHED] = [((*vault, *key), float(n)) for key, n in sorted(data.stats.finished.items())]
        rows[c.JOB_DURATION] = [((*vault, *key), counts, data.stats.duration_sum[key])
                                for key, counts in sorted(data.stats.bucket_counts.items())]
        rows[c.TRANSFERRED] = [((*vault, *key), total) for key, total in sorted(data.stats.transferred.items())]

    def _items(self, snap: VaultSnapshot) -> None:
        rows, all_states = self.rows, self.options.all_states
        info, last_backup, covered = rows[c.ITEM_INFO], rows[c.ITEM_LAST_BACKUP], rows[c.ITEM_COVERED_RESOURCE]
        status, health = rows[c.ITEM_LAST_BACKUP_STATUS], rows[c.ITEM_HEALTH]
        protection, recovery_point = rows[c.ITEM_PROTECTION_STATE], rows[c.ITEM_LAST_RECOVERY_POINT]
        # A Backup vault's instances have their own vocabularies (dataprotection.py).
        backup = snap.ref.kind == BACKUP
        known_health = DPP_HEALTH_STATUSES if backup else ITEM_HEALTH_STATUSES
        known_states = DPP_PROTECTION_STATES if backup else PROTECTION_STATES
        for item in snap.data.items:
            labels = (*self.vault, *item.item_key)
            info.append(((*labels, item.item_type, item.workload_type, item.policy, item.container_name,
                          item.source_resource_id), 1.0))
            resource_id = covered_resource_id(snap.ref.kind, item.backup_management_type, item.source_resource_id,
                                              item.protection_state)
            if resource_id:
                covered.append(((*labels, resource_id), 1.0))
            if item.last_backup_time is not None:
                last_backup.append((labels, item.last_backup_time))
            if item.last_recovery_point is not None:
                recovery_point.append((labels, item.last_recovery_point))
            _add_enum(status, labels, ITEM_BACKUP_STATUSES, item.last_backup_status, all_states)
            _add_enum(health, labels, known_health, item.health_status, all_states)
            _add_enum(protection, labels, known_states, item.protection_state, all_states)


def vault_data_families(snap: VaultSnapshot, options: SeriesOptions) -> list[Metric]:
    """Every exposed job and item family for one vault as prometheus_client families (the uncached path)."""
    return [to_metric(spec, rows) for spec, rows in VaultRows(snap, options).in_order()]


def to_metric(spec: c.MetricSpec, rows: list[Any]) -> Metric:
    if spec.type == "histogram":
        histogram = HistogramMetricFamily(spec.name, spec.help, labels=spec.labels)
        for labels, counts, total in rows:
            histogram.add_metric(list(labels), _cumulative(counts), total)
        return histogram
    family = _counter(spec) if spec.type == "counter" else _gauge(spec)
    for labels, value in rows:
        family.add_metric(list(labels), value)
    return family


def _merge(per_vault: list[list[Metric]], options: SeriesOptions) -> list[Metric]:
    """One family per metric with every vault's samples, for the registry's (uncached) rendering."""
    if not per_vault:
        return [to_metric(spec, []) for spec in options.families()]
    merged = per_vault[0]
    for families in per_vault[1:]:
        for target, family in zip(merged, families, strict=True):
            target.samples.extend(family.samples)
    return merged


def _add_enum(rows: list[Row], labels: Labels, known: tuple[str, ...], current: str, all_states: bool) -> None:
    """1 for the current value; with all_states also 0 for every other known value (and the current one is
    added if Azure sent another). Nothing when Azure sent no value (MARS and DPM items report no health)."""
    if not current:
        return
    if not all_states:
        rows.append(((*labels, current), 1.0))
        return
    values = known if current in known else (*known, current)
    rows.extend(((*labels, value), 1.0 if value == current else 0.0) for value in values)


def _cumulative(counts: list[int]) -> list[tuple[str, float]]:
    """Per-bucket counts (last one: above every bound) as the exposition's cumulative buckets."""
    buckets, running = [], 0
    for bound, count in zip((*DURATION_BUCKETS, float("inf")), counts, strict=True):
        running += count
        buckets.append(("+Inf" if bound == float("inf") else str(bound), float(running)))
    return buckets
