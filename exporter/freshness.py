"""How fresh each item's backups are, and how fresh they should be: what a vault's jobs, items, recovery points
and policies say together about each item's backups (resources with no backup at all: protectable.py).

- the last successful backup of each item, of any kind and per kind (full, differential, log, ...);
- how often each item is meant to be backed up, per kind, from its backup policy, for the kinds whose
  successes Azure reports (a scheduled log backup of a database, or any scheduled backup of an SAP HANA
  database, leaves no job in the list: an interval nothing can be compared with is not exported);
- which items were deleted ("stop backup and delete data"): they leave the protected-items list, and
  their old jobs must stop paging while the deletion itself still does.

All of it is computed when a refresh publishes, from the jobs in the window and the last items list.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .identity import ItemDirectory, ItemKey, folded
from .models import Job, ProtectedItem
from .policy import PolicyIntervals, policy_named

KindKey = tuple[ItemKey, str]  # an item and a backup kind
DELETION = "DeleteBackupData"
# Workloads whose scheduled backups the job list shows, except the log backups: Microsoft's page on SQL Server
# in Azure VMs says the jobs list shows every scheduled and on-demand operation "except for the scheduled log
# backups since they can be frequent". (Its SAP HANA page says the list shows only on-demand jobs; other
# workloads say nothing, so none of their kinds is taken as reported.) Compared case-insensitively.
_LISTED_BUT_LOGS_WORKLOADS = frozenset({"sqldatabase"})
_LOG = "log"
_KIND_IN_PARENS = re.compile(r"^Backup \((?P<kind>[^()]+)\)$")


def backup_kind(operation: str) -> str:
    """The kind of backup an operation is: Backup and Backup (Full) are full backups, Backup (Log) a log
    backup, Backup (Copy Only Full) copy_only_full; the names the policies' kinds use."""
    if operation == "Backup":
        return "full"
    match = _KIND_IN_PARENS.match(operation)
    return match.group("kind").strip().lower().replace(" ", "_") if match else "other"


@dataclass(frozen=True)
class Successes:
    any_kind: dict[ItemKey, float]
    by_kind: dict[KindKey, float]


def last_successes(from_jobs: Mapping[KindKey, float], items: Iterable[ProtectedItem], directory: ItemDirectory,
                   deleted: frozenset[ItemKey],
                   from_points: Mapping[ItemKey, Mapping[str, float]] | None = None) -> Successes:
    """Jobs' last successes (by the item as the job names it) joined to their items, with each item's own
    record and its recovery points (`from_points`: a database's newest backup per kind) where those are newer
    (they survive restarts and the LOOKBACK horizon, and show the backups no job is listed for); none for
    deleted items."""
    by_kind: dict[KindKey, float] = {}
    for (own_key, kind), ended in from_jobs.items():
        key = directory.resolve(own_key)
        by_kind[(key, kind)] = max(by_kind.get((key, kind), 0.0), ended)
    for key, kinds in (from_points or {}).items():
        for kind, ended in kinds.items():
            by_kind[(key, kind)] = max(by_kind.get((key, kind), 0.0), ended)
    any_kind: dict[ItemKey, float] = {}
    for (key, _), ended in by_kind.items():
        any_kind[key] = max(any_kind.get(key, 0.0), ended)
    for item in items:
        when = item.last_success
        if when is None:
            continue
        if when > any_kind.get(item.item_key, 0.0):
            any_kind[item.item_key] = when
        kind = item.record_kind
        if kind and when > by_kind.get((item.item_key, kind), 0.0):
            by_kind[(item.item_key, kind)] = when
    if deleted:
        any_kind = {k: v for k, v in any_kind.items() if folded(k) not in deleted}
        by_kind = {k: v for k, v in by_kind.items() if folded(k[0]) not in deleted}
    return Successes(any_kind, by_kind)


def expected_intervals(items: Iterable[ProtectedItem], policies: Mapping[str, PolicyIntervals],
                       from_points: Mapping[ItemKey, frozenset[str]] | None = None) -> dict[KindKey, float]:
    """Each item's time between two scheduled backups per kind, from its policy (looked up by name, without
    regard to case), for the kinds whose successes Azure reports (`success_reported`) or the item's recovery
    points tell (`from_points`: the kinds by item); nothing for an item whose policy is unknown or has no
    readable schedule."""
    expected: dict[KindKey, float] = {}
    points = from_points or {}
    for item in items:
        policy = policy_named(policies, item.policy)
        if policy is None:
            continue
        told = points.get(item.item_key, frozenset())
        for kind, seconds in policy.intervals.items():
            if success_reported(item, kind) or kind in told:
                expected[(item.item_key, kind)] = seconds
    return expected


def success_reported(item: ProtectedItem, kind: str) -> bool:
    """Whether Azure shows every scheduled backup of this kind of this item (as a job, or in the item's own
    record), so that no success within the policy's interval means a missed backup. Why not always: an
    interval with nothing to compare it with would page forever (a SQL database's scheduled log backups are
    never listed), or page on the age of an on-demand backup (the only HANA jobs listed)."""
    if kind == item.record_kind:
        return True
    return item.workload_type.casefold() in _LISTED_BUT_LOGS_WORKLOADS and kind != _LOG


def deleted_items(jobs: Iterable[Job], listed: Iterable[ProtectedItem],
                  gone: Mapping[ItemKey, float]) -> frozenset[ItemKey]:
    """Items (folded keys) whose backup data was deleted: not in the protected-items list now, and either seen
    leaving it (`gone`: when, in Unix seconds) or with a completed DeleteBackupData job, with no backup started
    since. A deletion job that names only the database (`testdb1`) counts for every unlisted item of that name."""
    listed_keys = {folded(item.item_key) for item in listed}
    deletions: dict[ItemKey, float] = {}
    latest_backup: dict[ItemKey, float] = {}
    for job in jobs:
        key = folded(job.item_key)
        if key in listed_keys:
            continue
        start = job.start or 0.0
        if job.operation == DELETION and job.status == "Completed":
            deletions[key] = max(deletions.get(key, 0.0), start)
        elif job.is_backup:
            latest_backup[key] = max(latest_backup.get(key, 0.0), start)
    for key, when in gone.items():
        deletions[key] = max(deletions.get(key, 0.0), when)
    deleted = set()
    for key in {*latest_backup, *gone} - listed_keys:
        bare = (key[0], "", key[2])
        deleted_at = max(deletions.get(key, -1.0), deletions.get(bare, -1.0))
        if deleted_at >= latest_backup.get(key, 0.0):
            deleted.add(key)
    return frozenset(deleted)
