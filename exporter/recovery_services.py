"""A Recovery Services vault (Microsoft.RecoveryServices): the `Vault` of vault.py for its backup jobs.

It composes the parts every vault kind shares (listing.py, jobbook.py, details.py) with what is its own: the
job list's OData filters and payloads, its protected items and backup policies, and what it publishes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

from .arm import ArmClient, ArmError, AuthError
from .coverage import deleted_items, expected_intervals, last_successes
from .details import DetailsPolicy
from .identity import ItemDirectory, ItemKey, folded
from .jobbook import JobBook
from .listing import ListWindow, first_window, next_window, odata_filters
from .models import (
    ErrorSink,
    Job,
    ProtectedItem,
    VaultRef,
    parse_item,
    parse_job,
    parse_vault,
    with_distinct_identities,
)
from .policy import PolicyIntervals, parse_policy
from .vault import ListedJobs, VaultData, VaultSnapshot, error_labels

log = logging.getLogger(__name__)


class RecoveryServicesVault:
    """The working state of one Recovery Services vault; only its refresh thread touches it."""

    def __init__(self, ref: VaultRef, lookback: timedelta, location: str = "",
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 items_interval: timedelta = timedelta(minutes=5)) -> None:
        self.ref = ref
        self.clock = clock
        self.lookback = lookback
        self.location = location
        self.items_interval = items_interval.total_seconds()
        self.book = JobBook(lookback)
        self.details = DetailsPolicy(ref.name)
        self.items: tuple[ProtectedItem, ...] = ()
        self.items_listed_at: float | None = None  # time.monotonic() of the last protected-items listing
        self.items_error: ArmError | None = None  # the protected-items or policy list failed in this refresh
        self.policies: dict[str, PolicyIntervals] = {}  # by lower-cased name, listed with the items
        self.policies_failing = False  # the last policy list failed: retried on every refresh
        self.gone: dict[ItemKey, float] = {}  # folded keys of items seen leaving the items list, and when
        self.listed_until: datetime | None = None
        self.list_window_start = float("-inf")  # the start of the last list's window (Unix seconds)
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
            listed = self._list(client, self._window(now), on_error)
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
            self.details.fetch(self.book, lambda job_id: client.get_job(self.ref, job_id),
                               lambda resource: parse_job(resource, on_error),
                               self.list_window_start, self.clock().timestamp())
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
                                error=error_labels(exc))

    def _publish(self, success: bool | None, duration: float, refreshed: float | None,
                 error: tuple[str, str] | None = None) -> None:
        jobs = tuple(self.book.jobs.values())
        deleted = deleted_items(jobs, self.items, self.gone) if self.items_listed_at is not None else frozenset()
        successes = last_successes(self.book.successes, self.items, self.book.directory, deleted)
        data = VaultData(jobs, self.items, MappingProxyType(successes.any_kind), self.book.stats.copy(),
                         MappingProxyType(successes.by_kind),
                         MappingProxyType(expected_intervals(self.items, self.policies)), deleted)
        if data == self.snapshot.data:
            data = self.snapshot.data  # unchanged: keep the identity, so the rendered text is reused
        self.snapshot = VaultSnapshot(self.ref, self.location, data, success, duration,
                                      refreshed if refreshed is not None else self.snapshot.last_refresh,
                                      (error or self.snapshot.error) if success is False else None)

    # --- jobs ------------------------------------------------------------------------------------

    def _window(self, now: datetime) -> ListWindow:
        if self.listed_until is None:
            return first_window(now, self.lookback, self.policies.values())
        return next_window(now, self.listed_until, self.book.jobs.values())

    def _list(self, client: ArmClient, window: ListWindow, on_error: ErrorSink) -> dict[str, Job]:
        self.list_window_start = window.since.timestamp()
        listed: dict[str, Job] = {}
        for odata_filter in odata_filters(window):
            for resource in client.list_jobs(self.ref, odata_filter):
                job = parse_job(resource, on_error)
                if job is not None:
                    listed[job.job_id] = job
        return listed

    # --- protected items and backup policies -----------------------------------------------------

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
        self.book.join_to(ItemDirectory(item.item_key for item in self.items))
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
