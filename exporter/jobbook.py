"""The merge: the jobs a vault watches, kept current from lists and GETs, and what is counted as they finish.

Lists carry no details, GETs do; a listed job keeps the details already fetched while they can still be right.
A job is counted (stats.py) once, when it is first seen finished while watched; its transferred size is
added from its final details. A job first seen running keeps its running details (tasks InProgress, often
`Data Transferred (in MB): 0`) until a GET of the finished job replaces them: those are never counted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta

from .freshness import KindKey, backup_kind
from .identity import ItemDirectory
from .models import SUCCESS_STATUSES, Job
from .stats import FinishedStats


class JobBook:
    """One vault's jobs by id, joined to its protected items, and the counts and last successes they give."""

    def __init__(self, lookback: timedelta) -> None:
        self.lookback = lookback
        self.jobs: dict[str, Job] = {}
        self.directory = ItemDirectory(())  # joins jobs to the items: empty until the items are listed
        self.stats = FinishedStats()
        # Finished jobs counted whose final details (size, tasks) are not fetched yet: each is GET once more.
        self.awaiting_final: set[str] = set()
        # Last successful backup per kind from jobs, by the item as the job names it (own_item_key): joined to
        # the items when published.
        self.successes: dict[KindKey, float] = {}
        self.watch_started: float | None = None

    def join_to(self, directory: ItemDirectory) -> None:
        """Label every job as the protected item it belongs to, after the items were listed again."""
        self.directory = directory
        for job_id, job in self.jobs.items():
            self.jobs[job_id] = self._joined(job)

    def merge_list(self, listed: Mapping[str, Job], now: datetime, first: bool) -> None:
        """Take a list's jobs. The first list only sets the scene: what it finds finished is history, not news."""
        if first:
            self.watch_started = now.timestamp()
        horizon = (now - self.lookback).timestamp()
        for job_id, job in listed.items():
            previous = self.jobs.get(job_id)
            self.jobs[job_id] = self._joined(_keep_details(previous, job))
            self.stats.declare((job.backup_management_type, job.operation))
            if not first and self._newly_finished(previous, job, horizon):
                self._count_finished(self.jobs[job_id], final=not _has_running_details(previous))
        self._record_successes(listed.values())

    def merge_details(self, job_id: str, details: Job) -> None:
        """Take a GET's answer for a job: its newer fields, size and tasks."""
        previous = self.jobs[job_id]
        self.jobs[job_id] = self._joined(previous.with_details(details))
        if details.finished and job_id in self.awaiting_final:  # counted already: now its final size
            self.awaiting_final.discard(job_id)
            self.stats.add_transferred(self.jobs[job_id])
        elif details.finished and not previous.finished:
            self._count_finished(self.jobs[job_id], final=True)
        self._record_successes([self.jobs[job_id]])

    def drop(self, job_id: str) -> None:
        """Forget a job Azure no longer has."""
        self.jobs.pop(job_id, None)
        self.awaiting_final.discard(job_id)

    def prune(self, now: datetime) -> None:
        """Forget the finished jobs that started before the lookback."""
        horizon = (now - self.lookback).timestamp()
        for job_id in [j.job_id for j in self.jobs.values() if j.finished and (j.start or 0.0) < horizon]:
            self.drop(job_id)

    def _joined(self, job: Job) -> Job:
        """The job labelled as the protected item it belongs to."""
        return job.joined_to(self.directory.resolve(job.own_item_key))

    def _newly_finished(self, previous: Job | None, job: Job, horizon: float) -> bool:
        if not job.finished:
            return False
        if previous is not None:
            return not previous.finished
        # Unknown and already finished: count it only if it could not have been seen before
        # (a job older than the lookback was pruned, or finished before the watch began).
        return (job.start or 0.0) >= horizon and (job.end or 0.0) >= (self.watch_started or 0.0)

    def _count_finished(self, job: Job, final: bool) -> None:
        """Count a job seen finishing; its size only once it comes from the finished job's own details."""
        self.stats.add_finished(job)
        if final and job.size_bytes is not None:
            self.stats.add_transferred(job)
        else:
            self.awaiting_final.add(job.job_id)

    def _record_successes(self, jobs: Iterable[Job]) -> None:
        """The last success per item and kind; it outlives its job, which the lookback prunes."""
        for job in jobs:
            if job.is_backup and job.status in SUCCESS_STATUSES and job.end is not None:
                key = (job.own_item_key, backup_kind(job.operation))
                self.successes[key] = max(self.successes.get(key, 0.0), job.end)


def _has_running_details(previous: Job | None) -> bool:
    """Details fetched while the job ran: its size and tasks then were not the final ones."""
    return previous is not None and not previous.finished and previous.tasks is not None


def _keep_details(previous: Job | None, listed: Job) -> Job:
    """LIST carries no details: keep the ones already fetched while they can still be right."""
    if previous is None or previous.tasks is None:
        return listed
    if previous.finished and previous.status == listed.status:
        return previous  # a finished job's details never change
    # A Recovery Services list may not carry errorDetails (no recording shows a failed job listed): keep GET's.
    return replace(listed, size_bytes=previous.size_bytes, tasks=previous.tasks, error=listed.error or previous.error)
