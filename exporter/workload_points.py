"""What a database's recovery points tell that the job list does not: when its log backups last ran and,
for SAP HANA and other non-SQL workloads, when its scheduled backups of each kind last ran.

Why: Azure's job list leaves out scheduled log backups ("except for the scheduled log backups since they can
be frequent", Microsoft's page on SQL Server in Azure VMs) and, for SAP HANA, every scheduled job. A database's
recovery points do show them (`GET .../protectedItems/{item}/recoveryPoints`, documented in Microsoft's
"Restore SQL Server databases in Azure VMs with REST API"): one point per full or differential backup
(`recoveryPointTimeInUTC`, `type`), and a `DefaultRangeRecoveryPoint` of type `Log` whose `timeRanges[]` are
the unbroken log chains; the newest range's `endTime` is the newest log backup.

Cost: one paged list per database whose policy schedules such a kind, at most every
DATABASE_RECOVERY_POINTS_INTERVAL (0 turns it off: then, as before, no interval is exported for those kinds).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .identity import ItemKey
from .models import ErrorSink, ProtectedItem
from .parsing import parse_timestamp
from .policy import PolicyIntervals, policy_named

WORKLOAD = "AzureWorkload"
# The kinds a workload recovery point's `type` names, as the policies' kinds spell them.
POINT_KINDS = frozenset({"full", "differential", "incremental", "log"})
_SQL = "sqldatabase"
_LOG = "log"
_STOPPED = frozenset({"protectionstopped"})


def newest_by_kind(resources: Iterable[Mapping[str, Any]], on_error: ErrorSink) -> dict[str, float]:
    """The newest backup of each kind a database's recovery points show; a point that does not parse is
    skipped and counted (field 'recovery_point')."""
    newest: dict[str, float] = {}
    for resource in resources:
        props = resource.get("properties")
        if not isinstance(props, Mapping):
            on_error("recovery_point")
            continue
        kind = str(props.get("type") or "").strip().lower()
        when = _point_time(props, on_error)
        if kind in POINT_KINDS and when is not None:
            newest[kind] = max(newest.get(kind, 0.0), when)
    return newest


def _point_time(props: Mapping[str, Any], on_error: ErrorSink) -> float | None:
    """A distinct point's time, or the end of a point-in-time point's newest log range."""
    try:
        ranges = props.get("timeRanges")
        if isinstance(ranges, list):
            ends = [parse_timestamp(str(r["endTime"])) for r in ranges if isinstance(r, Mapping) and r.get("endTime")]
            return max(ends) if ends else None
        taken = props.get("recoveryPointTimeInUTC")
        return parse_timestamp(str(taken)) if taken else None
    except (ValueError, OverflowError):
        on_error("recovery_point")
        return None


def unlisted_kinds(item: ProtectedItem, policy: PolicyIntervals | None) -> frozenset[str]:
    """The kinds the item's policy schedules whose backups the job list does not show: a SQL database's log
    backups, every kind of any other database (SAP HANA lists only on-demand jobs)."""
    if item.backup_management_type != WORKLOAD or policy is None or item.protection_state.lower() in _STOPPED:
        return frozenset()
    scheduled = POINT_KINDS & set(policy.intervals)
    if item.workload_type.casefold() == _SQL:
        return frozenset(scheduled & {_LOG})
    return frozenset(scheduled)


class WorkloadPoints:
    """One vault's schedule of recovery-point lists and what they found, by item."""

    def __init__(self, interval_seconds: float, now: Callable[[], float]) -> None:
        self.interval = interval_seconds
        self.now = now  # the vault's clock, in Unix seconds (tests pin it)
        self.checked_at: dict[ItemKey, float] = {}  # item key -> when its points were last listed
        self.newest: dict[ItemKey, dict[str, float]] = {}  # item key -> newest backup per kind, from points
        self.unavailable = False  # the last list was refused (a role without recoveryPoints/read, say)
        self.refused_at = float("-inf")

    @property
    def enabled(self) -> bool:
        return self.interval > 0

    def due(self, items: Iterable[ProtectedItem], policies: Mapping[str, PolicyIntervals]) -> list[ProtectedItem]:
        """The databases to list now: those with unlisted kinds whose last list is older than the interval."""
        now = self.now()
        if not self.enabled or (self.unavailable and now - self.refused_at < self.interval):
            return []
        return [item for item in items
                if unlisted_kinds(item, policy_named(policies, item.policy))
                and now - self.checked_at.get(item.item_key, float("-inf")) >= self.interval]

    def record(self, item: ProtectedItem, newest: Mapping[str, float]) -> None:
        """A list's answer; a kind keeps its newest time even when its points have aged out of retention."""
        known = self.newest.setdefault(item.item_key, {})
        for kind, when in newest.items():
            known[kind] = max(known.get(kind, 0.0), when)
        self.checked_at[item.item_key] = self.now()

    def refuse(self) -> None:
        """The lists are refused: forget what they told, so that no interval rests on data that no longer
        updates (what the exporter did before it listed them), and ask again after an interval."""
        self.unavailable = True
        self.refused_at = self.now()
        self.newest.clear()
        self.checked_at.clear()

    def keep_only(self, items: Iterable[ProtectedItem]) -> None:
        """Forget the items that left the items list."""
        keys = {item.item_key for item in items}
        self.newest = {key: kinds for key, kinds in self.newest.items() if key in keys}
        self.checked_at = {key: when for key, when in self.checked_at.items() if key in keys}

    def reported_kinds(self, items: Iterable[ProtectedItem],
                       policies: Mapping[str, PolicyIntervals]) -> dict[ItemKey, frozenset[str]]:
        """The kinds whose freshness the points tell, by item: its unlisted kinds that its points have shown
        (a database in the simple recovery model has no log backups at all: its log interval stays out). None
        while the lists are refused or off, so that, as before, no such interval is exported."""
        if not self.enabled:
            return {}
        told = {}
        for item in items:
            shown = self.newest.get(item.item_key, {})
            unlisted = unlisted_kinds(item, policy_named(policies, item.policy))
            kinds = frozenset(kind for kind in unlisted if kind in shown)
            if kinds:
                told[item.item_key] = kinds
        return told
