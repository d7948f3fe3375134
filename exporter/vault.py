"""One vault's job data: how a refresh lists, merges and details its jobs.

A refresh works on private state and then publishes an immutable snapshot, so a
scrape rendering metrics never sees a half-merged vault.
"""

from __future__ import annotations

import logging
import time
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

from .arm import ArmClient, ArmError, AuthError
from .coverage import KindKey, backup_kind, deleted_items, expected_intervals, last_successes
from .identity import ItemDirectory, ItemKey, folded
from .models import (
    FINISHED_STATUSES,
    SUCCESS_STATUSES,
    ErrorSink,
    Job,
    ProtectedItem,
    VaultRef,
    parse_item,
    parse_job,
    parse_vault,
    with_distinct_identities,
)
from .parsing import format_filter_time
from .policy import PolicyIntervals, parse_policy
from .settings import MAX_LOOKBACK

log = logging.getLogger(__name__)

# Later refreshes list from the previous refresh's start minus this, since ARM lists jobs with some delay.
OVERLAP = timedelta(minutes=15)
CLOCK_SKEW = timedelta(minutes=5)
# A running job's details (its tasks) are fetched when it is first seen, then at most this often until it ends:
# at 20,000 items about 500 jobs run at any moment, and a GET for each on every refresh would triple the calls.
RUNNING_DETAILS_MAX_AGE = timedelta(minutes=30).total_seconds()
# How far back a refresh's list reaches to see running jobs end; older running jobs are followed by GET.
# Most backups end within hours; 12 h is also where AzureBackupJobRunningTooLong fires.
RUNNING_LIST_HORIZON = timedelta(hours=12)
DURATION_BUCKETS = (60.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 43200.0, 86400.0)

SeriesKey = tuple[str, str, str, str]  # backup_management_type, container, item, operation
TypeOpKey = tuple[str, str]  # backup_management_type, operation


@dataclass
class FinishedStats:
    """Counters and histogram of the jobs seen finishing while watched, per type and operation."""

    finished: dict[tuple[str, str, str], int] = field(default_factory=lambda: defaultdict(int))
    bucket_counts: dict[TypeOpKey, list[int]] = field(default_factory=dict)
    duration_sum: dict[TypeOpKey, float] = field(default_factory=lambda: defaultdict(float))
    transferred: dict[TypeOpKey, float] = field(default_factory=lambda: defaultdict(float))

    def declare(self, key: TypeOpKey) -> None:
        """Pre-set the series to 0 so that increase() sees the first failure."""
        for status in FINISHED_STATUSES:
            self.finished.setdefault((*key, status), 0)
        self.bucket_counts.setdefault(key, [0] * (len(DURATION_BUCKETS) + 1))
        self.duration_sum.setdefault(key, 0.0)
        self.transferred.setdefault(key, 0.0)

    def add_finished(self, job: Job) -> None:
        key = (job.backup_management_type, job.operation)
        self.declare(key)
        self.finished[(*key, job.status)] += 1
        duration = job_duration(job)
        if duration is not None:
            self.bucket_counts[key][bisect_left(DURATION_BUCKETS, duration)] += 1
            self.duration_sum[key] += duration

    def add_transferred(self, job: Job) -> None:
        if job.size_bytes is not None:
            self.transferred[(job.backup_management_type, job.operation)] += job.size_bytes

    def copy(self) -> FinishedStats:
        return FinishedStats(
            defaultdict(int, self.finished), {k: list(v) for k, v in self.bucket_counts.items()},
            defaultdict(float, self.duration_sum), defaultdict(float, self.transferred))


def job_duration(job: Job) -> float | None:
    """Azure's duration; end - start where Azure sent none."""
    if job.duration is not None:
        return job.duration
    if job.start is not None and job.end is not None:
        return max(0.0, job.end - job.start)
    return None


@dataclass(frozen=True)
class VaultData:
    """A vault's job and item data. A refresh that changes nothing keeps the same object, so what was
    rendered from it can be reused (identity is the cache key)."""

    jobs: tuple[Job, ...] = ()
    items: tuple[ProtectedItem, ...] = ()
    last_success: MappingProxyType[ItemKey, float] = field(default_factory=lambda: MappingProxyType({}))
    stats: FinishedStats = field(default_factory=FinishedStats)
    last_success_by_kind: MappingProxyType[KindKey, float] = field(default_factory=lambda: MappingProxyType({}))
    expected_intervals: MappingProxyType[KindKey, float] = field(default_factory=lambda: MappingProxyType({}))
    deleted: frozenset[ItemKey] = frozenset()  # folded keys of items whose backup data was deleted

    def latest_jobs(self) -> dict[SeriesKey, Job]:
        """The latest job of each item and operation; a deleted item's backups are history, not news."""
        latest = latest_by_series(self.jobs)
        if not self.deleted:
            return latest
        return {key: job for key, job in latest.items() if not (job.is_backup and folded(job.item_key) in self.deleted)}


@dataclass(frozen=True)
class ListedJobs:
    """A refresh half done: its jobs are listed and published, their details not fetched yet."""

    now: datetime  # when the listing started; the next incremental list starts from here
    seconds: float  # time spent listing


@dataclass(frozen=True)
class VaultSnapshot:
    """What the collector renders for one vault: immutable, replaced whole after each refresh."""

    ref: VaultRef
    location: str = ""
    data: VaultData = field(default_factory=VaultData)
    success: bool | None = None  # None: never refreshed
    duration: float = 0.0
    last_refresh: float | None = None  # when the vault's jobs were last refreshed successfully
    error: tuple[str, str] | None = None  # the last refresh's failure: HTTP status ("none": no answer), Azure code


def latest_by_series(jobs: Any) -> dict[SeriesKey, Job]:
    latest: dict[SeriesKey, Job] = {}
    for job in jobs:
        current = latest.get(job.series_key)
        if current is None or (job.start or 0.0, job.job_id) > (current.start or 0.0, current.job_id):
            latest[job.series_key] = job
    return latest


class VaultState:
    """The working state of one vault; only its refresh thread touches it."""

    def __init__(self, ref: VaultRef, lookback: timedelta, location: str = "",
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 items_interval: timedelta = timedelta(minutes=5)) -> None:
        self.ref = ref
        self.clock = clock
        self.lookback = lookback
        self.location = location
        self.items_interval = items_interval.total_seconds()
        self.jobs: dict[str, Job] = {}
        self.items: tuple[ProtectedItem, ...] = ()
        self.items_listed_at: float | None = None  # time.monotonic() of the last protected-items listing
        self.items_error: ArmError | None = None  # the protected-items or policy list failed in this refresh
        self.directory = ItemDirectory(())  # joins jobs to the items: empty until the items are listed
        self.policies: dict[str, PolicyIntervals] = {}  # by lower-cased name, listed with the items
        self.policies_failing = False  # the last policy list failed: retried on every refresh
        self.gone: dict[ItemKey, float] = {}  # folded keys of items seen leaving the items list, and when
        # Last successful backup per kind from jobs, by the item as the job names it (own_item_key): joined to
        # the items when published.
        self.successes: dict[KindKey, float] = {}
        self.stats = FinishedStats()
        self.awaiting_size: set[str] = set()  # finished jobs counted, whose Backup Size is not fetched yet
        self.details_fetched_at: dict[str, float] = {}  # running jobs: when their details were last fetched
        self.listed_until: datetime | None = None
        self.list_window_start = float("-inf")  # the start of the last list's window (Unix seconds)
        self.watch_started: float | None = None
        self.snapshot = VaultSnapshot(ref, location)

    @property
    def refreshed_once(self) -> bool:
        return self.listed_until is not None

    def refresh(self, client: ArmClient, on_error: ErrorSink) -> VaultSnapshot:
        """List, merge and detail the vault's jobs; publish and return the new snapshot.

        On failure the previous data stays and only the success flag and duration change.
        """
        return self.fetch_details(client, on_error, self.list_jobs(client, on_error))

    def list_jobs(self, client: ArmClient, on_error: ErrorSink) -> ListedJobs:
        """The first half of a refresh: list and merge the jobs, and publish their status, start and end
        (they come from the list) before the slower detail requests. `fetch_details` completes it."""
        started = time.perf_counter()
        now = self.clock()
        try:
            if not self.location:
                discovered = parse_vault(client.get_vault(self.ref), on_error)
                self.location = discovered.location if discovered else ""
            self.items_error = self._list_items_if_due(client, on_error)
            listed = self._list(client, now, on_error)
        except ArmError as exc:
            self.mark_failed(time.perf_counter() - started, exc)
            raise
        self._merge(listed, now)
        self._prune(now)
        self._publish(success=self.snapshot.success, duration=self.snapshot.duration, refreshed=None)
        return ListedJobs(now, time.perf_counter() - started)

    def fetch_details(self, client: ArmClient, on_error: ErrorSink, listed: ListedJobs) -> VaultSnapshot:
        """The second half of a refresh: fetch the details that are due, then publish the vault as refreshed.
        `duration` counts the time spent on both halves, not the wait in between."""
        started = time.perf_counter()
        try:
            self._fetch_details(client, on_error)
        except ArmError as exc:
            self.mark_failed(listed.seconds + time.perf_counter() - started, exc)
            raise
        self.listed_until = listed.now
        if self.items_error is not None:
            # Jobs are current (the backups are watched), items or policies are not: publish the jobs as
            # refreshed, and report the vault as failing.
            self._publish(success=False, duration=listed.seconds + time.perf_counter() - started,
                          refreshed=listed.now.timestamp(), error=_error_labels(self.items_error))
            raise self.items_error
        self._publish(success=True, duration=listed.seconds + time.perf_counter() - started,
                      refreshed=listed.now.timestamp())
        return self.snapshot

    def _publish(self, success: bool | None, duration: float, refreshed: float | None,
                 error: tuple[str, str] | None = None) -> None:
        jobs = tuple(self.jobs.values())
        deleted = deleted_items(jobs, self.items, self.gone) if self.items_listed_at is not None else frozenset()
        successes = last_successes(self.successes, self.items, self.directory, deleted)
        data = VaultData(jobs, self.items, MappingProxyType(successes.any_kind), self.stats.copy(),
                         MappingProxyType(successes.by_kind),
                         MappingProxyType(expected_intervals(self.items, self.policies)), deleted)
        if data == self.snapshot.data:
            data = self.snapshot.data  # unchanged: keep the identity, so the rendered text is reused
        self.snapshot = VaultSnapshot(self.ref, self.location, data, success, duration,
                                      refreshed if refreshed is not None else self.snapshot.last_refresh,
                                      (error or self.snapshot.error) if success is False else None)

    # --- protected items -------------------------------------------------------------------------

    def _list_items_if_due(self, client: ArmClient, on_error: ErrorSink) -> ArmError | None:
        """Items and policies change slowly, so they are listed on their own, longer interval, and on every
        refresh while their last list failed. A failure keeps the last ones (or, never listed, leaves jobs in
        their own names) and is returned, so the jobs still refresh."""
        if self.items_listed_at is not None and time.monotonic() - self.items_listed_at < self.items_interval:
            return self._list_policies(client, on_error) if self.policies_failing else None
        try:
            parsed = [item for item in (parse_item(r, on_error) for r in client.list_items(self.ref)) if item]
        except AuthError:
            raise
        except ArmError as exc:
            log.warning("vault=%s protected items not listed, jobs keep their own names: %s", self.ref.name, exc)
            return exc
        items = with_distinct_identities(parsed, on_error)
        listed = {folded(item.item_key) for item in items}
        if self.items_listed_at is not None:
            now = self.clock().timestamp()
            for key in {folded(item.item_key) for item in self.items} - listed:
                self.gone[key] = now
            self.gone = {key: when for key, when in self.gone.items() if key not in listed}
        self.items = tuple(sorted(items, key=lambda i: (i.item_key, i.name)))
        self.items_listed_at = time.monotonic()
        self.directory = ItemDirectory(item.item_key for item in self.items)
        for job_id, job in self.jobs.items():
            self.jobs[job_id] = self._joined(job)
        return self._list_policies(client, on_error)

    def _list_policies(self, client: ArmClient, on_error: ErrorSink) -> ArmError | None:
        """The vault's backup policies, for each item's expected interval; a failure keeps the last ones."""
        try:
            parsed = [parse_policy(resource, on_error) for resource in client.list_policies(self.ref)]
        except AuthError:
            raise
        except ArmError as exc:
            log.warning("vault=%s backup policies not listed, keeping the last ones: %s", self.ref.name, exc)
            self.policies_failing = True
            return exc
        self.policies = {policy.name.lower(): policy for policy in parsed if policy is not None}
        self.policies_failing = False
        return None

    def _joined(self, job: Job) -> Job:
        """The job labelled as the protected item it belongs to."""
        return job.joined_to(self.directory.resolve(job.own_item_key))

    # --- listing ---------------------------------------------------------------------------------

    def _list(self, client: ArmClient, now: datetime, on_error: ErrorSink) -> dict[str, Job]:
        until = now + CLOCK_SKEW
        if self.listed_until is None:
            since = now - self._first_window()
            filters = [_window_filter(since, until), "status eq 'InProgress'"]
        else:
            # Cover every job we last saw running, so its end is seen on the next refresh without a GET,
            # but no further back than RUNNING_LIST_HORIZON: a job running longer (stuck, or a days-long
            # initial backup) is followed by GET on the running-details schedule (_detail_targets), so one
            # stuck job does not make every refresh list weeks of jobs.
            since = self.listed_until - OVERLAP
            horizon = (now - RUNNING_LIST_HORIZON).timestamp()
            running_starts = [j.start for j in self.jobs.values()
                              if not j.finished and j.start is not None and j.start >= horizon]
            if running_starts:
                since = min(since, datetime.fromtimestamp(min(running_starts), UTC) - timedelta(minutes=1))
            since = max(since, now - MAX_LOOKBACK)
            filters = [_window_filter(since, until)]
        self.list_window_start = since.timestamp()
        listed: dict[str, Job] = {}
        for odata_filter in filters:
            for resource in client.list_jobs(self.ref, odata_filter):
                job = parse_job(resource, on_error)
                if job is not None:
                    listed[job.job_id] = job
        return listed

    def _first_window(self) -> timedelta:
        """How far back the first list reaches: LOOKBACK, or twice the longest backup interval of the vault's
        policies if that is longer (at most 30 days). A restarted exporter then still knows the last weekly
        full backup of a database (a VM's own record survives restarts, a database's kinds do not), even a
        week overdue; jobs older than LOOKBACK give only that, and are not kept."""
        longest = max((seconds for policy in self.policies.values() for seconds in policy.intervals.values()),
                      default=0.0)
        return min(MAX_LOOKBACK, max(self.lookback, timedelta(seconds=2 * longest)))

    # --- merging ---------------------------------------------------------------------------------

    def _merge(self, listed: dict[str, Job], now: datetime) -> None:
        first = not self.refreshed_once
        if first:
            self.watch_started = now.timestamp()
        horizon = (now - self.lookback).timestamp()
        for job_id, job in listed.items():
            previous = self.jobs.get(job_id)
            self.jobs[job_id] = self._joined(_keep_details(previous, job))
            self.stats.declare((job.backup_management_type, job.operation))
            if not first and self._newly_finished(previous, job, horizon):
                self._count_finished(self.jobs[job_id])
        self._record_successes(listed.values())

    def _newly_finished(self, previous: Job | None, job: Job, horizon: float) -> bool:
        if not job.finished:
            return False
        if previous is not None:
            return not previous.finished
        # Unknown and already finished: count it only if it could not have been seen before
        # (a job older than the lookback was pruned, or finished before the watch began).
        return (job.start or 0.0) >= horizon and (job.end or 0.0) >= (self.watch_started or 0.0)

    def _count_finished(self, job: Job) -> None:
        self.stats.add_finished(job)
        if job.size_bytes is not None:
            self.stats.add_transferred(job)
        else:
            self.awaiting_size.add(job.job_id)

    def _record_successes(self, jobs: Any) -> None:
        for job in jobs:
            if job.is_backup and job.status in SUCCESS_STATUSES and job.end is not None:
                key = (job.own_item_key, backup_kind(job.operation))
                self.successes[key] = max(self.successes.get(key, 0.0), job.end)

    # --- details ---------------------------------------------------------------------------------

    def _detail_targets(self, now: float) -> list[str]:
        """The latest job of each item and operation, unless its details are there (finished) or fresh
        enough (running), and the finished jobs counted whose size is still unknown."""
        def wanted(job: Job) -> bool:
            if job.finished:
                return job.tasks is None
            return now - self.details_fetched_at.get(job.job_id, float("-inf")) >= RUNNING_DETAILS_MAX_AGE

        targets = {job.job_id for job in latest_by_series(self.jobs.values()).values() if wanted(job)}
        targets |= {job_id for job_id in self.awaiting_size if job_id in self.jobs}
        targets |= {job.job_id for job in self.jobs.values() if self._outside_the_list(job) and wanted(job)}
        return sorted(targets)

    def _outside_the_list(self, job: Job) -> bool:
        """A running job that started before the incremental list's window: only a GET tells when it ends."""
        return not job.finished and (job.start or 0.0) < self.list_window_start

    def _fetch_details(self, client: ArmClient, on_error: ErrorSink) -> None:
        now = self.clock().timestamp()
        for job_id in self._detail_targets(now):
            try:
                resource = client.get_job(self.ref, job_id)
            except ArmError as exc:
                if exc.status == 404:
                    self.jobs.pop(job_id, None)
                    self.awaiting_size.discard(job_id)
                    continue
                if exc.status is None or exc.status == 429 or exc.status >= 500:
                    log.warning("vault=%s job details not fetched, retried on the next refresh: %s",
                                self.ref.name, exc)
                    return
                raise
            details = parse_job(resource, on_error)
            if details is None:
                continue
            previous = self.jobs[job_id]
            self.jobs[job_id] = self._joined(previous.with_details(details))
            if details.finished:
                self.details_fetched_at.pop(job_id, None)
            else:
                self.details_fetched_at[job_id] = now
            if not previous.finished and details.finished:
                self._count_finished(self.jobs[job_id])
            if job_id in self.awaiting_size and details.finished:
                self.awaiting_size.discard(job_id)
                self.stats.add_transferred(self.jobs[job_id])
            self._record_successes([self.jobs[job_id]])

    def _prune(self, now: datetime) -> None:
        horizon = (now - self.lookback).timestamp()
        for job_id in [j.job_id for j in self.jobs.values() if j.finished and (j.start or 0.0) < horizon]:
            del self.jobs[job_id]
            self.awaiting_size.discard(job_id)
        for job_id in [j for j in self.details_fetched_at if j not in self.jobs or self.jobs[j].finished]:
            del self.details_fetched_at[job_id]

    def mark_failed(self, duration: float, exc: Exception | None = None) -> None:
        """A failed refresh: keep the last published data, flag the failure and say what it was."""
        self.snapshot = replace(self.snapshot, location=self.location, success=False, duration=duration,
                                error=_error_labels(exc))


def _error_labels(exc: Exception | None) -> tuple[str, str]:
    """(HTTP status or "none" when no answer came, Azure's error code or "") of a failed refresh."""
    if isinstance(exc, ArmError):
        return (str(exc.status) if exc.status is not None else "none", exc.code)
    return ("none", "")


def _keep_details(previous: Job | None, listed: Job) -> Job:
    """LIST carries no details: keep the ones already fetched while they can still be right."""
    if previous is None or previous.tasks is None:
        return listed
    if previous.finished and previous.status == listed.status:
        return previous  # a finished job's details never change
    return replace(listed, size_bytes=previous.size_bytes, tasks=previous.tasks)


def _window_filter(since: datetime, until: datetime) -> str:
    return f"startTime eq '{format_filter_time(since)}' and endTime eq '{format_filter_time(until)}'"
