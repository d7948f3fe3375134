"""What a vault counts of the jobs it sees finishing: counters and a duration histogram per type and operation.

Only jobs seen finishing while watched are counted (jobbook.py decides which), so a restart does not count
the lookback's history again.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass, field

from .models import FINISHED_STATUSES, Job

DURATION_BUCKETS = (60.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 43200.0, 86400.0)

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
