"""The details policy: which jobs a refresh GETs for their details (tasks, Backup Size), and what an answer does.

Lists carry no details. A GET costs one call per job, so only the jobs whose details are shown or still
needed are fetched: the latest job of each item and operation, the jobs seen finishing whose final details (size,
tasks) are not fetched yet, and the running jobs no list covers any more (listing.RUNNING_LIST_HORIZON).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Set
from datetime import timedelta
from typing import Any

from .arm import ArmError
from .jobbook import JobBook
from .models import Job
from .vault import latest_by_series

log = logging.getLogger(__name__)

# A running job's details (its tasks) are fetched when it is first seen, then at most this often until it ends:
# at 20,000 items about 500 jobs run at any moment, and a GET for each on every refresh would triple the calls.
RUNNING_DETAILS_MAX_AGE = timedelta(minutes=30).total_seconds()


def detail_targets(jobs: Mapping[str, Job], awaiting_final: Set[str], fetched_at: Mapping[str, float],
                   list_window_start: float, now: float) -> list[str]:
    """The latest job of each item and operation, unless its details are there (finished) or fresh
    enough (running), and the jobs seen finishing whose final details are not fetched yet."""
    def wanted(job: Job) -> bool:
        if job.finished:
            return job.tasks is None
        return now - fetched_at.get(job.job_id, float("-inf")) >= RUNNING_DETAILS_MAX_AGE

    targets = {job.job_id for job in latest_by_series(jobs.values()).values() if wanted(job)}
    targets |= {job_id for job_id in awaiting_final if job_id in jobs}
    targets |= {job.job_id for job in jobs.values() if outside_the_list(job, list_window_start) and wanted(job)}
    return sorted(targets)


def outside_the_list(job: Job, list_window_start: float) -> bool:
    """A running job that started before the incremental list's window: only a GET tells when it ends."""
    return not job.finished and (job.start or 0.0) < list_window_start


def is_transient(exc: ArmError) -> bool:
    """No answer, throttled or a server error: worth retrying on the next refresh."""
    return exc.status is None or exc.status == 429 or exc.status >= 500


class DetailsPolicy:
    """The running-details schedule of one vault, and the GETs of one refresh applied to its job book."""

    def __init__(self, vault_log_fields: str) -> None:
        self.vault_log_fields = vault_log_fields  # how log lines name the vault (VaultRef.log_fields)
        self.fetched_at: dict[str, float] = {}  # running jobs: when their details were last fetched

    def targets(self, book: JobBook, list_window_start: float, now: float) -> list[str]:
        return detail_targets(book.jobs, book.awaiting_final, self.fetched_at, list_window_start, now)

    def fetch(self, book: JobBook, get: Callable[[str], Mapping[str, Any]],
              parse: Callable[[Mapping[str, Any]], Job | None], list_window_start: float, now: float) -> None:
        """GET the details due, in turn. A 404 drops the job (Azure no longer has it); a transient error ends
        the round, the rest waits for the next refresh; any other error raises."""
        for job_id in self.targets(book, list_window_start, now):
            try:
                resource = get(job_id)
            except ArmError as exc:
                if exc.status == 404:
                    book.drop(job_id)
                    continue
                if is_transient(exc):
                    log.warning("%s job details not fetched, retried on the next refresh: %s",
                                self.vault_log_fields, exc)
                    return
                raise
            details = parse(resource)
            if details is None:
                continue
            book.merge_details(job_id, details)
            if details.finished:
                self.fetched_at.pop(job_id, None)
            else:
                self.fetched_at[job_id] = now

    def forget_ended(self, jobs: Mapping[str, Job]) -> None:
        """Drop the schedule of the jobs that ended or are gone."""
        for job_id in [j for j in self.fetched_at if j not in jobs or jobs[j].finished]:
            del self.fetched_at[job_id]
