"""What a refresh does the same way for every vault kind: the two halves, the items bookkeeping, publishing.

A vault kind (recovery_services.py, backup_vault.py) says how to list and parse its jobs, items and
policies; this class turns those into the `Vault` interface of vault.py: list and merge the jobs (jobbook.py),
fetch the details due (details.py), keep the items and their policies on their own interval, and publish an
immutable snapshot.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

from .arm import ArmClient, ArmError, AuthError
from .details import DetailsPolicy
from .freshness import deleted_items, expected_intervals, last_successes
from .identity import ItemDirectory, ItemKey, folded
from .jobbook import JobBook
from .models import DiscoveredVault, ErrorSink, Job, ProtectedItem, VaultRef, with_distinct_identities
from .policy import PolicyIntervals
from .vault import ListedJobs, VaultData, VaultSnapshot, error_labels
from .vault_security import VaultSecurity, parse_vault_security

log = logging.getLogger(__name__)

Resource = Mapping[str, Any]
# The vault resource is read again every this many ITEMS_REFRESH_INTERVALs (15 minutes at the default 5m).
VAULT_READ_ITEMS_INTERVALS = 3


class VaultBase:
    """The working state of one vault; only its refresh thread touches it. Subclasses list and parse."""

    def __init__(self, ref: VaultRef, lookback: timedelta, location: str = "",
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 items_interval: timedelta = timedelta(minutes=5)) -> None:
        self.ref = ref
        self.clock = clock
        self.lookback = lookback
        self.location = location
        self.items_interval = items_interval.total_seconds()
        self.book = JobBook(lookback)
        self.details = DetailsPolicy(ref.log_fields)
        self.items: tuple[ProtectedItem, ...] = ()
        self.items_listed_at: float | None = None  # time.monotonic() of the last items listing
        self.items_error: ArmError | None = None  # the items or policy list failed in this refresh
        self.policies: dict[str, PolicyIntervals] = {}  # by lower-cased name, listed with the items
        self.policies_failing = False  # the last policy list failed: retried on every refresh
        self.gone: dict[ItemKey, float] = {}  # folded keys of items seen leaving the items list, and when
        # Folded keys of the listed items and when this process first saw each in the items list: with the
        # first job list's time, since when an item's backups are watched (a new item's first interval is not
        # a missed backup, nor is the time before a restart).
        self.first_seen: dict[ItemKey, float] = {}
        self.listed_until: datetime | None = None
        self.list_window_start = float("-inf")  # the oldest start a list still covers (Unix seconds)
        self.snapshot = VaultSnapshot(ref, location)
        self.security: VaultSecurity | None = None  # from the vault resource (vault_security.py)
        self.vault_read_at: float | None = None  # time.monotonic() of the last read of the vault resource
        self.unknown_values: set[tuple[str, str]] = set()  # (field, value) already counted by count_unknown_once

    # --- what a vault kind provides --------------------------------------------------------------

    def _get_vault(self, client: ArmClient) -> Resource:
        """The vault resource itself (its location, its security settings)."""
        raise NotImplementedError

    def _parse_vault(self, resource: Resource, on_error: ErrorSink) -> DiscoveredVault | None:
        raise NotImplementedError

    def _list_job_resources(self, client: ArmClient, now: datetime) -> Iterable[Resource]:
        """The jobs this refresh lists; sets list_window_start."""
        raise NotImplementedError

    def _parse_job(self, resource: Resource, on_error: ErrorSink) -> Job | None:
        raise NotImplementedError

    def _get_job(self, client: ArmClient, job_id: str) -> Resource:
        raise NotImplementedError

    def _list_items(self, client: ArmClient, on_error: ErrorSink) -> list[ProtectedItem]:
        raise NotImplementedError

    def _list_policies(self, client: ArmClient, on_error: ErrorSink) -> list[PolicyIntervals]:
        raise NotImplementedError

    def _refresh_points_if_due(self, client: ArmClient, on_error: ErrorSink) -> None:
        """Recovery points of the items whose backups the job list does not show, listed in the details half
        of a refresh, after the jobs' statuses are out, so they never hold those back. None by default."""

    def _point_successes(self) -> Mapping[ItemKey, Mapping[str, float]]:
        """The newest backup of each kind the recovery points showed, by item (none by default)."""
        return {}

    def _point_kinds(self) -> Mapping[ItemKey, frozenset[str]]:
        """The kinds whose freshness the recovery points tell, by item: their intervals are exported."""
        return {}

    def _keep_listed(self, job: Job, now: datetime) -> bool:
        """Whether a listed job is merged (a kind whose list cannot be filtered drops old jobs here)."""
        del job, now
        return True

    # --- the Vault interface ---------------------------------------------------------------------

    @property
    def refreshed_once(self) -> bool:
        return self.listed_until is not None

    def refresh(self, client: ArmClient, on_error: ErrorSink) -> VaultSnapshot:
        """Both halves at once (tests and --once use it through the refresher)."""
        return self.fetch_details(client, on_error, self.list_jobs(client, on_error))

    def list_jobs(self, client: ArmClient, on_error: ErrorSink) -> ListedJobs:
        """The first half of a refresh: list and merge the jobs, and publish their status, start and end
        (they come from the list) before the slower detail requests. `fetch_details` completes it."""
        started = time.perf_counter()
        now = self.clock()
        try:
            if not self.location or self._vault_read_due():
                self._read_vault(client, on_error)
            self.items_error = self._list_items_if_due(client, on_error)
            listed: dict[str, Job] = {}
            for resource in self._list_job_resources(client, now):
                job = self._parse_job(resource, on_error)
                if job is not None and self._keep_listed(job, now):
                    listed[job.job_id] = job
        except ArmError as exc:
            self.mark_failed(time.perf_counter() - started, exc)
            raise
        self.book.merge_list(listed, now, first=not self.refreshed_once)
        self.book.prune(now)
        self.details.forget_ended(self.book.jobs)
        self._publish(success=self.snapshot.success, duration=self.snapshot.duration, refreshed=None)
        return ListedJobs(now, time.perf_counter() - started)

    def fetch_details(self, client: ArmClient, on_error: ErrorSink, listed: ListedJobs) -> VaultSnapshot:
        """The second half of a refresh: fetch the details that are due, then publish the vault as refreshed.
        `duration` counts the time spent on both halves, not the wait in between."""
        started = time.perf_counter()
        try:
            self.details.fetch(self.book, lambda job_id: self._get_job(client, job_id),
                               lambda resource: self._parse_job(resource, on_error),
                               self.list_window_start, self.clock().timestamp())
            self._refresh_points_if_due(client, on_error)
        except ArmError as exc:
            self.mark_failed(listed.seconds + time.perf_counter() - started, exc)
            raise
        self.listed_until = listed.now
        if self.items_error is not None:
            # Jobs are current (the backups are watched), items or policies are not: publish the jobs as
            # refreshed, and report the vault as failing.
            self._publish(success=False, duration=listed.seconds + time.perf_counter() - started,
                          refreshed=listed.now.timestamp(), error=error_labels(self.items_error))
            raise self.items_error
        self._publish(success=True, duration=listed.seconds + time.perf_counter() - started,
                      refreshed=listed.now.timestamp())
        return self.snapshot

    def mark_failed(self, duration: float, exc: Exception | None = None) -> None:
        """A failed refresh: keep the last published data, flag the failure and say what it was."""
        self.snapshot = replace(self.snapshot, location=self.location, success=False, duration=duration,
                                error=error_labels(exc), security=self.security)

    def _publish(self, success: bool | None, duration: float, refreshed: float | None,
                 error: tuple[str, str] | None = None) -> None:
        jobs = tuple(self.book.jobs.values())
        deleted = deleted_items(jobs, self.items, self.gone) if self.items_listed_at is not None else frozenset()
        successes = last_successes(self.book.successes, self.items, self.book.directory, deleted,
                                   self._point_successes())
        data = VaultData(jobs, self.items, MappingProxyType(successes.any_kind), self.book.stats.copy(),
                         MappingProxyType(successes.by_kind),
                         MappingProxyType(expected_intervals(self.items, self.policies, self._point_kinds())),
                         deleted,
                         MappingProxyType(self._watched_since()))
        if data == self.snapshot.data:
            data = self.snapshot.data  # unchanged: keep the identity, so the rendered text is reused
        self.snapshot = VaultSnapshot(self.ref, self.location, data, success, duration,
                                      refreshed if refreshed is not None else self.snapshot.last_refresh,
                                      (error or self.snapshot.error) if success is False else None,
                                      self.security)

    def _watched_since(self) -> dict[ItemKey, float]:
        """Since when each listed item's backups are watched: the later of the vault's first job list and the
        item's first listing; nothing before the first job list."""
        started = self.book.watch_started
        if started is None:
            return {}
        return {item.item_key: max(started, self.first_seen.get(folded(item.item_key), started))
                for item in self.items}

    # --- the vault resource ------------------------------------------------------------------------

    def _vault_read_due(self) -> bool:
        """The vault itself is read again every VAULT_READ_ITEMS_INTERVALS items intervals: its guards change
        seldom, and a weakened one must be seen within minutes, not at the next discovery."""
        interval = VAULT_READ_ITEMS_INTERVALS * self.items_interval
        return self.vault_read_at is None or time.monotonic() - self.vault_read_at >= interval

    def _read_vault(self, client: ArmClient, on_error: ErrorSink) -> None:
        """Its location and security settings. The first read failing fails the refresh, as before; a later
        one keeps what the last read said (the next refresh asks again)."""
        try:
            resource = self._get_vault(client)
        except AuthError:
            raise
        except ArmError as exc:
            if not self.location:
                raise
            log.debug("%s vault not read again, keeping its last settings: %s", self.ref.log_fields, exc)
            return
        found = self._parse_vault(resource, on_error)
        if found is not None and found.location:
            self.location = found.location
        self.security = parse_vault_security(resource, self.ref.kind)
        for field, value in self.security.unknown:
            self.count_unknown_once(field, value, on_error)
        self.vault_read_at = time.monotonic()

    # --- items and policies ----------------------------------------------------------------------

    def count_unknown_once(self, field: str, value: str, on_error: ErrorSink) -> None:
        """Count a value outside the known vocabulary the first time this vault sends it, not at every refresh:
        the counter says that something new appeared, its series shows the value as sent, the log names it."""
        if (field, value) in self.unknown_values:
            return
        self.unknown_values.add((field, value))
        log.warning("%s unknown %s=%r, kept as sent (docs/runbook.md#values-the-exporter-does-not-know)",
                    self.ref.log_fields, field, value)
        on_error(field)

    def _list_items_if_due(self, client: ArmClient, on_error: ErrorSink) -> ArmError | None:
        """Items and policies change slowly, so they are listed on their own, longer interval, and on every
        refresh while their last list failed. A failure keeps the last ones (or, never listed, leaves jobs in
        their own names) and is returned, so the jobs still refresh."""
        if self.items_listed_at is not None and time.monotonic() - self.items_listed_at < self.items_interval:
            return self._refresh_policies(client, on_error) if self.policies_failing else None
        try:
            parsed = self._list_items(client, on_error)
        except AuthError:
            raise
        except ArmError as exc:
            log.warning("%s items not listed, jobs keep their own names: %s", self.ref.log_fields, exc)
            return exc
        self._adopt_items(with_distinct_identities(parsed, on_error))
        return self._refresh_policies(client, on_error)

    def _adopt_items(self, items: list[ProtectedItem]) -> None:
        """The new items list: note which items left it (deleted data), and join the jobs to the items."""
        listed = {folded(item.item_key) for item in items}
        if self.items_listed_at is not None:
            now = self.clock().timestamp()
            for key in {folded(item.item_key) for item in self.items} - listed:
                self.gone[key] = now
            self.gone = {key: when for key, when in self.gone.items() if key not in listed}
        seen_now = self.clock().timestamp()
        self.first_seen = {key: self.first_seen.get(key, seen_now) for key in listed}
        self.items = tuple(sorted(items, key=lambda i: (i.item_key, i.name)))
        self.items_listed_at = time.monotonic()
        self.book.join_to(ItemDirectory(item.item_key for item in self.items))

    def _refresh_policies(self, client: ArmClient, on_error: ErrorSink) -> ArmError | None:
        """The vault's backup policies, for each item's expected interval; a failure keeps the last ones."""
        try:
            parsed = self._list_policies(client, on_error)
        except AuthError:
            raise
        except ArmError as exc:
            log.warning("%s backup policies not listed, keeping the last ones: %s", self.ref.log_fields, exc)
            self.policies_failing = True
            return exc
        self.policies = {policy.name.lower(): policy for policy in parsed}
        self.policies_failing = False
        return None
