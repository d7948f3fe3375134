"""Expected backup intervals, read from Azure Backup policies.

Why: one "no backup for N hours" threshold pages for every item whose policy runs weekly and misses
the items that back up every four hours. The exporter therefore lists each vault's backup policies
(`GET .../vaults/{vault}/backupPolicies`, a paged list of ProtectionPolicyResource) and exports, per
protected item, `azure_backup_item_expected_backup_interval_seconds{..., kind}`: the longest time
between two scheduled backups of that item under its policy, so an alert can scale with the policy.

This module is the pure part: one ProtectionPolicyResource (a Mapping, as on the wire) to its
intervals per backup kind. The rules follow the schedule models of the REST spec (bms.json in
Azure/azure-rest-api-specs, RecoveryServicesBackup stable 2026-02-01):

- SimpleSchedulePolicy / SimpleSchedulePolicyV2 with `scheduleRunFrequency`:
  Daily: the longest gap between the run times of a day, wrapping to the next day (one run time a
  day, the only form VMs, file shares and workloads allow: 86400 s).
  Weekly: the longest gap between consecutive runs over the week, wrapping to the next week
  (`scheduleRunDays`, or `weeklySchedule.scheduleRunDays` in V2): one day a week is 7 days,
  Monday + Thursday is 4 days (Thursday to Monday).
  Hourly (`hourlySchedule`, in V1 for file shares and in V2 for Enhanced VM policies): runs every
  `interval` hours inside a daily window of `scheduleWindowDuration` hours; the longest gap is the
  interval, or, when the window is shorter than a day, the night from the day's last run to the next
  day's first one.
- LogSchedulePolicy: `scheduleFrequencyInMins` minutes.
- LongTermSchedulePolicy (no schedule fields), or no schedulePolicy at all: no interval.

Kinds: `full` for the single schedulePolicy of VM, file share, MAB and similar policies, and for a
workload (`subProtectionPolicy[]`) Full sub-policy; the other workload sub-policies give `differential`,
`log`, `incremental`, `copy_only_full`, `snapshot_full` and `snapshot_copy_only_full` (their
`policyType`, in snake case).

Parsing is forgiving, as in models.py: a resource without a name or properties is dropped with
`on_error("policy")`; a schedule that does not parse drops only its kind with
`on_error("policy_schedule")`. Nothing here raises on odd input.

Times are wall-clock times of the policy's time zone; a daylight-saving change can make one real gap
an hour longer or shorter than computed here. Alerts built on these values should add slack anyway
(a backup starts some time after its scheduled time).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from types import MappingProxyType
from typing import Any

DAY_SECONDS = 86400.0
WEEK_SECONDS = 7 * DAY_SECONDS

KINDS = ("full", "differential", "log", "incremental", "copy_only_full", "snapshot_full", "snapshot_copy_only_full")
# Workload sub-policy `policyType` (enum PolicyType in bms.json; "Invalid" left out), compared case-insensitively.
_SUB_POLICY_KINDS = {
    "full": "full",
    "differential": "differential",
    "log": "log",
    "incremental": "incremental",
    "copyonlyfull": "copy_only_full",
    "snapshotfull": "snapshot_full",
    "snapshotcopyonlyfull": "snapshot_copy_only_full",
}
# Enum DayOfWeek in bms.json, in week order; the week is taken to start on Sunday (only the order matters).
_DAYS_OF_WEEK = {day: index for index, day in enumerate(
    ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"))}
# The spec allows hourly intervals of 4/6/8/12 h; anything under a minute is taken as garbage, which also bounds
# the number of runs a day computed below.
_MIN_HOURLY_INTERVAL_HOURS = 1 / 60


@dataclass(frozen=True, slots=True)
class PolicyIntervals:
    """One backup policy: its name and, per backup kind, the longest time between two scheduled backups."""

    name: str
    intervals: Mapping[str, float]  # kind -> seconds; read-only; kinds without a usable schedule are absent


def policy_named(policies: Mapping[str, PolicyIntervals], name: str) -> PolicyIntervals | None:
    """An item's policy among a vault's (keyed by lower-cased name): names are compared without regard to case."""
    return policies.get(name.lower()) if name else None


def policy_name_of(policy_id: str) -> str:
    """The policy name in a protected item's `policyId` (its last path segment, case preserved)."""
    return policy_id.rstrip("/").rsplit("/", 1)[-1]


def parse_policy(resource: Mapping[str, Any], on_error: Callable[[str], None]) -> PolicyIntervals | None:
    """The expected intervals of one ProtectionPolicyResource, or None (and `on_error("policy")`) if unusable."""
    if not isinstance(resource, Mapping):
        on_error("policy")
        return None
    name = resource.get("name")
    properties = resource.get("properties")
    if not isinstance(name, str) or not name or not isinstance(properties, Mapping):
        on_error("policy")
        return None
    intervals: dict[str, float] = {}
    sub_policies = properties.get("subProtectionPolicy")
    if isinstance(sub_policies, list):
        for sub_policy in sub_policies:
            kind = _sub_policy_kind(sub_policy)
            if kind is None:
                on_error("policy_schedule")
                continue
            _add(intervals, kind, sub_policy.get("schedulePolicy"), on_error)
    elif sub_policies is not None:
        on_error("policy_schedule")
    if properties.get("schedulePolicy") is not None:
        _add(intervals, "full", properties["schedulePolicy"], on_error)
    return PolicyIntervals(name=name, intervals=MappingProxyType(intervals))


def _sub_policy_kind(sub_policy: Any) -> str | None:
    if not isinstance(sub_policy, Mapping):
        return None
    policy_type = sub_policy.get("policyType")
    if not isinstance(policy_type, str):
        return None
    return _SUB_POLICY_KINDS.get(policy_type.strip().casefold())


def _add(intervals: dict[str, float], kind: str, schedule: Any, on_error: Callable[[str], None]) -> None:
    try:
        seconds = _schedule_interval(schedule)
    except ValueError:
        on_error("policy_schedule")
        return
    if seconds is None:
        return
    # The same kind twice does not occur in real policies; if it did, the item would be backed up on both
    # schedules, so the longest gap is at most the shorter of the two.
    previous = intervals.get(kind)
    intervals[kind] = seconds if previous is None else min(previous, seconds)


def _schedule_interval(schedule: Any) -> float | None:
    """Seconds of the longest gap between two runs of one schedulePolicy; None if it has no schedule.

    Raises ValueError when the schedule is there but cannot be read.
    """
    if schedule is None:
        return None
    if not isinstance(schedule, Mapping):
        raise ValueError("schedulePolicy is not an object")
    policy_type = _folded(schedule.get("schedulePolicyType"))
    if policy_type == "longtermschedulepolicy":
        return None
    if policy_type == "logschedulepolicy":
        minutes = _positive_number(schedule.get("scheduleFrequencyInMins"))
        if minutes is None:
            raise ValueError("bad scheduleFrequencyInMins")
        return minutes * 60
    frequency = _folded(schedule.get("scheduleRunFrequency"))
    if frequency == "daily":
        return _longest_gap(_run_times(schedule, "dailySchedule"), DAY_SECONDS)
    if frequency == "weekly":
        days = _run_days(schedule)
        times = _run_times(schedule, "weeklySchedule")
        return _longest_gap((day * DAY_SECONDS + time for day in days for time in times), WEEK_SECONDS)
    if frequency == "hourly":
        return _hourly_interval(schedule.get("hourlySchedule"))
    raise ValueError(f"unknown scheduleRunFrequency {schedule.get('scheduleRunFrequency')!r}")


def _hourly_interval(hourly: Any) -> float:
    # The window is taken to include its end: a run falls on start + k * interval for every k with
    # k * interval <= scheduleWindowDuration. The spec only says "duration of the backup window", but the spec's
    # own example (AzureStorage/ProtectionPolicies_CreateOrUpdate_Hourly.json: interval 4, window 12 h from
    # 08:00) answers with the daily recovery point retained at 20:00, the run at the window's end; and the brief's
    # example (08, 12, 16, 20) agrees. A window of 24 h or more covers the whole day (its run at start + 24 h is the
    # next day's first). The window's start time does not change the gaps, so it is not read.
    if not isinstance(hourly, Mapping):
        raise ValueError("hourly schedule without hourlySchedule")
    interval = _positive_number(hourly.get("interval"))
    window = _positive_number(hourly.get("scheduleWindowDuration"))
    if interval is None or interval < _MIN_HOURLY_INTERVAL_HOURS or window is None:
        raise ValueError("bad hourlySchedule")
    runs = math.floor(min(window, 24.0) / interval + 1e-9) + 1
    return _longest_gap((k * interval * 3600 for k in range(runs)), DAY_SECONDS)


def _run_days(schedule: Mapping[str, Any]) -> set[int]:
    days = schedule.get("scheduleRunDays")
    if days is None and isinstance(schedule.get("weeklySchedule"), Mapping):
        days = schedule["weeklySchedule"].get("scheduleRunDays")
    if not isinstance(days, list) or not days:
        raise ValueError("weekly schedule without scheduleRunDays")
    indexes = {_DAYS_OF_WEEK.get(_folded(day) or "") for day in days}
    if None in indexes:
        raise ValueError(f"unknown day in scheduleRunDays {days!r}")
    return {index for index in indexes if index is not None}


def _run_times(schedule: Mapping[str, Any], nested: str) -> list[float]:
    """Seconds into the day of each run time (V1 `scheduleRunTimes`, or V2 `<nested>.scheduleRunTimes`).

    Run times only refine the gaps: a time that does not parse is left out, and with none at all the schedule
    is taken as one run a day (at midnight; only the differences matter).
    """
    times = schedule.get("scheduleRunTimes")
    if times is None and isinstance(schedule.get(nested), Mapping):
        times = schedule[nested].get("scheduleRunTimes")
    seconds = [s for s in (_seconds_into_day(t) for t in times) if s is not None] if isinstance(times, list) else []
    return seconds or [0.0]


def _seconds_into_day(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return moment.hour * 3600 + moment.minute * 60 + moment.second + moment.microsecond / 1e6


def _longest_gap(positions: Iterable[float], period: float) -> float:
    """The longest gap between consecutive points of a schedule that repeats every `period` seconds."""
    points = sorted({position % period for position in positions})
    if not points:
        raise ValueError("schedule without runs")
    gaps = [later - earlier for earlier, later in pairwise(points)]
    gaps.append(points[0] + period - points[-1])
    return max(gaps)


def _positive_number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) and number > 0 else None


def _folded(value: Any) -> str | None:
    return value.strip().casefold() if isinstance(value, str) else None
