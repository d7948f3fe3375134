"""What every kind of vault shares, and what the refresher sees of one: the `Vault` interface.

A refresh works on private state and then publishes an immutable snapshot, so a scrape rendering metrics
never sees a half-merged vault. A refresh is in two halves: `list_jobs` lists and merges the jobs and
publishes their status, `fetch_details` GETs the details due and publishes the vault as refreshed.

Each kind implements the interface by composing the parts: listing.py (which jobs a refresh lists),
jobbook.py (the merge), details.py (which jobs need a GET) and stats.py (the counts of finished jobs).
recovery_services.py is the Recovery Services vault.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Protocol

from .arm import ArmClient, ArmError
from .freshness import KindKey
from .identity import ItemKey, folded
from .models import ErrorSink, Job, ProtectedItem, VaultRef
from .stats import DURATION_BUCKETS, FinishedStats
from .vault_security import VaultSecurity

__all__ = ["DURATION_BUCKETS", "ListedJobs", "SeriesKey", "Vault", "VaultData", "VaultSnapshot",
           "consecutive_failures", "error_labels", "latest_by_series"]

SeriesKey = tuple[str, str, str, str]  # backup_management_type, container, item, operation


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
    # Since when each listed item's backups have been watched (Unix seconds): absent until the first job list.
    watched_since: MappingProxyType[ItemKey, float] = field(default_factory=lambda: MappingProxyType({}))

    def latest_jobs(self) -> dict[SeriesKey, Job]:
        """The latest job of each item and operation; a deleted item's backups are history, not news."""
        latest = latest_by_series(self.jobs)
        if not self.deleted:
            return latest
        return {key: job for key, job in latest.items() if not (job.is_backup and folded(job.item_key) in self.deleted)}

    def failure_runs(self) -> dict[SeriesKey, int]:
        """Failures in a row per item and operation (consecutive_failures), a deleted item's backups left out."""
        runs = consecutive_failures(self.jobs)
        return {key: n for key, n in runs.items()
                if not (self.deleted and key[3].startswith("Backup") and folded(key[:3]) in self.deleted)}


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
    security: VaultSecurity | None = None  # the vault's guards against deletion; None until the vault is read


class Vault(Protocol):
    """One watched vault, of any kind; only its refresh thread calls it, scrapes read `snapshot`."""

    location: str  # "" until known; discovery fills it in

    @property
    def ref(self) -> VaultRef: ...

    @property
    def snapshot(self) -> VaultSnapshot: ...

    @property
    def refreshed_once(self) -> bool: ...

    def list_jobs(self, client: ArmClient, on_error: ErrorSink) -> ListedJobs:
        """The first half of a refresh: list and merge the jobs, publish their status; raise ArmError on failure."""
        ...

    def fetch_details(self, client: ArmClient, on_error: ErrorSink, listed: ListedJobs) -> VaultSnapshot:
        """The second half: fetch the details due, publish the vault as refreshed and return the snapshot."""
        ...

    def mark_failed(self, duration: float, exc: Exception | None = None) -> None:
        """A failed refresh: keep the last published data, flag the failure and say what it was."""
        ...


def latest_by_series(jobs: Iterable[Job]) -> dict[SeriesKey, Job]:
    """The latest job of each item and operation, by start time (then id, so ties always pick the same)."""
    latest: dict[SeriesKey, Job] = {}
    for job in jobs:
        current = latest.get(job.series_key)
        if current is None or (job.start or 0.0, job.job_id) > (current.start or 0.0, current.job_id):
            latest[job.series_key] = job
    return latest


def consecutive_failures(jobs: Iterable[Job]) -> dict[SeriesKey, int]:
    """How many of the newest finished jobs of each item and operation failed in a row; only series whose
    newest finished job failed. A running job is skipped, so that a failure keeps one identity while the next
    job runs (the alert does not resolve and re-fire); any other finished status ends the run."""
    finished: dict[SeriesKey, list[Job]] = {}
    for job in jobs:
        if job.finished:
            finished.setdefault(job.series_key, []).append(job)
    runs: dict[SeriesKey, int] = {}
    for key, series in finished.items():
        series.sort(key=lambda j: (j.start or 0.0, j.job_id), reverse=True)  # newest first, as latest_by_series
        run = 0
        for job in series:
            if job.status != "Failed":
                break
            run += 1
        if run:
            runs[key] = run
    return runs


def error_labels(exc: Exception | None) -> tuple[str, str]:
    """(HTTP status or "none" when no answer came, Azure's error code or "") of a failed refresh."""
    if isinstance(exc, ArmError):
        return (str(exc.status) if exc.status is not None else "none", exc.code)
    return ("none", "")
