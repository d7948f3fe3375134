"""Turns vault snapshots into metric families, fresh on every scrape."""

from __future__ import annotations

import platform
from collections import Counter as Tally
from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from . import __version__
from . import catalogue as c
from .models import (
    ITEM_BACKUP_STATUSES,
    ITEM_HEALTH_STATUSES,
    KNOWN_STATUSES,
    PROTECTION_STATES,
    Job,
    VaultRef,
)
from .refresher import Refresher
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

    def describe(self) -> Iterator[Metric]:
        return iter(())  # a private registry: no collect() at registration, so no API call

    def collect(self) -> Iterator[Metric]:
        snapshots = self.refresher.snapshots()
        yield from _merge([vault_data_families(snap) for snap in snapshots])
        yield from self.status_families(snapshots)

    def status_families(self, snapshots: list[VaultSnapshot]) -> list[Metric]:
        """Vault refresh outcomes and the exporter's own state: they change on every refresh."""
        info, success, error = _gauge(c.VAULT_INFO), _gauge(c.VAULT_SCRAPE_SUCCESS), _gauge(c.VAULT_SCRAPE_ERROR)
        duration, refreshed = _gauge(c.VAULT_SCRAPE_DURATION), _gauge(c.VAULT_LAST_REFRESH)
        for snap in snapshots:
            info.add_metric([*snap.ref.labels, snap.location], 1)
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
                discovery.add_metric([found.subscription_id], 1 if found.success else 0)
        up = GaugeMetricFamily(c.UP.name, c.UP.help, value=1 if self.refresher.up else 0)
        shard = _gauge(c.SHARD_INFO)
        settings = self.refresher.settings
        shard.add_metric([str(settings.shard), str(settings.shards)], 1)
        build = _gauge(c.BUILD_INFO)
        build.add_metric([__version__, platform.python_version()], 1)
        return [info, success, error, duration, refreshed, discovery, up, shard, build]


def vault_data_families(snap: VaultSnapshot) -> list[Metric]:
    """Every job and item family for one vault, in catalogue order; all present, even when empty."""
    vault, data = snap.ref.labels, snap.data
    latest = LatestJobFamilies()
    for _, job in sorted(data.latest_jobs().items()):
        latest.add(vault, job)
    last_success = _gauge(c.LAST_SUCCESS)
    for item_key, when in sorted(data.last_success.items()):
        last_success.add_metric([*vault, *item_key], when)
    by_kind = _gauge(c.LAST_SUCCESS_BY_KIND)
    for (item_key, kind), when in sorted(data.last_success_by_kind.items()):
        by_kind.add_metric([*vault, *item_key, kind], when)
    jobs = _gauge(c.JOBS)
    tally = Tally((j.backup_management_type, j.operation, j.status) for j in data.jobs)
    for key, count in sorted(tally.items()):
        jobs.add_metric([*vault, *key], count)
    finished = _counter(c.JOBS_FINISHED)
    for status_key, count in sorted(data.stats.finished.items()):
        finished.add_metric([*vault, *status_key], count)
    durations = HistogramMetricFamily(c.JOB_DURATION.name, c.JOB_DURATION.help, labels=c.JOB_DURATION.labels)
    for type_op, counts in sorted(data.stats.bucket_counts.items()):
        durations.add_metric([*vault, *type_op], _cumulative(counts), data.stats.duration_sum[type_op])
    transferred = _counter(c.TRANSFERRED)
    for type_op, total in sorted(data.stats.transferred.items()):
        transferred.add_metric([*vault, *type_op], total)
    return [*latest.families(), last_success, by_kind, jobs, finished, durations, transferred,
            *_item_families(snap)]


def _item_families(snap: VaultSnapshot) -> list[Metric]:
    info, last_backup = _gauge(c.ITEM_INFO), _gauge(c.ITEM_LAST_BACKUP)
    status, health = _gauge(c.ITEM_LAST_BACKUP_STATUS), _gauge(c.ITEM_HEALTH)
    protection, recovery_point = _gauge(c.ITEM_PROTECTION_STATE), _gauge(c.ITEM_LAST_RECOVERY_POINT)
    for item in snap.data.items:
        labels = [*snap.ref.labels, *item.item_key]
        info.add_metric([*labels, item.item_type, item.workload_type, item.policy, item.container_name,
                         item.source_resource_id], 1)
        if item.last_backup_time is not None:
            last_backup.add_metric(labels, item.last_backup_time)
        if item.last_recovery_point is not None:
            recovery_point.add_metric(labels, item.last_recovery_point)
        _add_enum(status, labels, ITEM_BACKUP_STATUSES, item.last_backup_status)
        _add_enum(health, labels, ITEM_HEALTH_STATUSES, item.health_status)
        _add_enum(protection, labels, PROTECTION_STATES, item.protection_state)
    expected = _gauge(c.ITEM_EXPECTED_INTERVAL)
    for (item_key, kind), seconds in sorted(snap.data.expected_intervals.items()):
        expected.add_metric([*snap.ref.labels, *item_key, kind], seconds)
    return [info, last_backup, status, health, protection, recovery_point, expected]


def _merge(per_vault: list[list[Metric]]) -> list[Metric]:
    """One family per metric with every vault's samples, for the registry's (uncached) rendering."""
    if not per_vault:
        return vault_data_families(VaultSnapshot(VaultRef("", "", "")))
    merged = per_vault[0]
    for families in per_vault[1:]:
        for target, family in zip(merged, families, strict=True):
            target.samples.extend(family.samples)
    return merged


class LatestJobFamilies:
    """The families that describe the latest job of each backup item and operation."""

    def __init__(self) -> None:
        self.status, self.info = _gauge(c.JOB_LAST_STATUS), _gauge(c.JOB_LAST_INFO)
        self.start, self.end = _gauge(c.JOB_LAST_START), _gauge(c.JOB_LAST_END)
        self.duration, self.size = _gauge(c.JOB_LAST_DURATION), _gauge(c.JOB_LAST_SIZE)
        self.tasks = _gauge(c.JOB_LAST_TASK_STATUS)

    def add(self, vault: tuple[str, str, str], job: Job) -> None:
        labels = [*vault, *job.item_key, job.operation]
        _add_enum(self.status, labels, KNOWN_STATUSES, job.status)
        self.info.add_metric([*labels, job.job_id, job.job_type, job.container_name, job.workload_type], 1)
        if job.start is not None:
            self.start.add_metric(labels, job.start)
        if job.end is not None and job.finished:
            self.end.add_metric(labels, job.end)
        if job.duration is not None:
            self.duration.add_metric(labels, job.duration)
        if job.size_bytes is not None:
            self.size.add_metric(labels, job.size_bytes)
        for task in job.tasks or ():
            self.tasks.add_metric([*labels, task.name, task.status], 1)

    def families(self) -> tuple[Metric, ...]:
        return (self.status, self.info, self.start, self.end, self.duration, self.size, self.tasks)


def _add_enum(family: GaugeMetricFamily, labels: list[str], known: tuple[str, ...], current: str) -> None:
    """One series per known value (and the current one if Azure sent another), 1 for the current.

    Nothing when Azure sent no value (MARS and DPM items report no health, for one).
    """
    if not current:
        return
    values = known if current in known else (*known, current)
    for value in values:
        family.add_metric([*labels, value], 1 if value == current else 0)


def _cumulative(counts: list[int]) -> list[tuple[str, float]]:
    """Per-bucket counts (last one: above every bound) as the exposition's cumulative buckets."""
    buckets, running = [], 0
    for bound, count in zip((*DURATION_BUCKETS, float("inf")), counts, strict=True):
        running += count
        buckets.append(("+Inf" if bound == float("inf") else str(bound), float(running)))
    return buckets
