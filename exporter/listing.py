"""The listing window policy: which jobs a vault refresh lists, by start time.

The first list reaches back far enough to know each item's last backups, and also asks for every running
job. Later lists start a little before the previous one, and reach back to the jobs last seen running (up
to RUNNING_LIST_HORIZON), so a job's end is seen in a list rather than by a GET.

Pure functions of the vault's state: the vault makes the calls. A Recovery Services vault sends the window
as OData filters; a kind without a server-side filter can filter the same window itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from .models import Job
from .parsing import format_filter_time
from .policy import PolicyIntervals
from .settings import MAX_LOOKBACK

# Later refreshes list from the previous refresh's start minus this, since ARM lists jobs with some delay.
OVERLAP = timedelta(minutes=15)
CLOCK_SKEW = timedelta(minutes=5)
# How far back a refresh's list reaches to see running jobs end; older running jobs are followed by GET.
# Most backups end within hours; 12 h is also where AzureBackupJobRunningTooLong fires.
RUNNING_LIST_HORIZON = timedelta(hours=12)
RUNNING_FILTER = "status eq 'InProgress'"


@dataclass(frozen=True)
class ListWindow:
    """The start times one list covers; the first list also asks for the running jobs, however old."""

    since: datetime
    until: datetime
    with_running: bool = False


def first_window(now: datetime, lookback: timedelta, policies: Iterable[PolicyIntervals]) -> ListWindow:
    """The first list: back by `first_reach`, and every running job."""
    return ListWindow(now - first_reach(lookback, policies), now + CLOCK_SKEW, with_running=True)


def first_reach(lookback: timedelta, policies: Iterable[PolicyIntervals]) -> timedelta:
    """How far back the first list reaches: LOOKBACK, or twice the longest backup interval of the vault's
    policies if that is longer (at most 30 days). A restarted exporter then still knows the last weekly
    full backup of a database (a VM's own record survives restarts, a database's kinds do not), even a
    week overdue; jobs older than LOOKBACK give only that, and are not kept."""
    longest = max((seconds for policy in policies for seconds in policy.intervals.values()), default=0.0)
    return min(MAX_LOOKBACK, max(lookback, timedelta(seconds=2 * longest)))


def next_window(now: datetime, listed_until: datetime, jobs: Iterable[Job]) -> ListWindow:
    """A later list: from the previous one's start minus OVERLAP, or from the earliest job last seen running.

    Cover every job we last saw running, so its end is seen on the next refresh without a GET, but no further
    back than RUNNING_LIST_HORIZON: a job running longer (stuck, or a days-long initial backup) is followed by
    GET on the running-details schedule (details.py), so one stuck job does not make every refresh list weeks
    of jobs.
    """
    since = listed_until - OVERLAP
    horizon = (now - RUNNING_LIST_HORIZON).timestamp()
    running_starts = [job.start for job in jobs if not job.finished and job.start is not None and job.start >= horizon]
    if running_starts:
        since = min(since, datetime.fromtimestamp(min(running_starts), UTC) - timedelta(minutes=1))
    return ListWindow(max(since, now - MAX_LOOKBACK), now + CLOCK_SKEW)


def odata_filters(window: ListWindow) -> list[str]:
    """The Recovery Services job list's $filter values for the window, one list call each."""
    filters = [_window_filter(window.since, window.until)]
    if window.with_running:
        filters.append(RUNNING_FILTER)
    return filters


def _window_filter(since: datetime, until: datetime) -> str:
    return f"startTime eq '{format_filter_time(since)}' and endTime eq '{format_filter_time(until)}'"
