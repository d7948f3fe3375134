"""A Backup vault (Microsoft.DataProtection): the `Vault` of vault.py for Azure Disks, Blobs, databases, AKS...

What differs from a Recovery Services vault (recovery_services.py), on the same parts (vault_base.py):
- The job list takes no filter: every refresh lists every job Azure keeps (about 14 days) and merges them by
  ID; jobs older than LOOKBACK that have ended are not kept. Details are fetched as for Recovery Services.
- The items are the vault's backup instances. They carry no last-backup time: an instance's last success is
  its newest successful backup job. Only for an instance whose jobs show none (a new exporter, a weekly policy,
  jobs aged out of the 14 days) is its newest recovery point listed, one call per instance at most every
  ITEMS_REFRESH_INTERVAL, in the details half of a refresh, after the jobs' statuses are out (issue 19). The
  last success is the newer of the two, and survives restarts and the job horizon.
- The payloads are DataProtection's (dataprotection.py parses them).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from .arm import ArmClient, ArmError, AuthError
from .dataprotection import (
    parse_backup_instance,
    parse_backup_vault,
    parse_dpp_job,
    parse_dpp_policy,
    parse_recovery_points,
    unknown_states,
)
from .freshness import last_successes
from .identity import ItemKey, folded
from .listing import first_reach
from .models import DiscoveredVault, ErrorSink, Job, ProtectedItem, VaultRef
from .policy import PolicyIntervals
from .vault_base import Resource, VaultBase

log = logging.getLogger(__name__)

# The $filter of RecoveryPoints_List, in the grammar of the Azure CLI (`az dataprotection recovery-point list`).
RECOVERY_POINT_FILTER = "startDate eq '{since}' and endDate eq '{until}'"


class BackupVault(VaultBase):
    """A Backup vault: every retained job on each refresh, backup instances, and the newest recovery point of
    those whose jobs show no success."""

    def __init__(self, ref: VaultRef, lookback: timedelta, location: str = "",
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 items_interval: timedelta = timedelta(minutes=5)) -> None:
        super().__init__(ref, lookback, location, clock, items_interval)
        self.newest_points: dict[str, float] = {}  # by instance (ARM name): its newest recovery point, Unix s
        self.points_listed_at: dict[str, float] = {}  # by instance: time.monotonic() of its last points list

    def _get_vault(self, client: ArmClient) -> Resource:
        return client.get_backup_vault(self.ref)

    def _parse_vault(self, resource: Resource, on_error: ErrorSink) -> DiscoveredVault | None:
        return parse_backup_vault(resource, on_error)

    def _list_job_resources(self, client: ArmClient, now: datetime) -> Iterable[Resource]:
        self.list_window_start = float("-inf")  # every job Azure keeps is listed: none is outside the list
        return client.list_backup_jobs(self.ref)

    def _keep_listed(self, job: Job, now: datetime) -> bool:
        """Running jobs, and jobs that started within LOOKBACK: the list cannot be told to leave older ones out."""
        return not job.finished or (job.start or 0.0) >= (now - self.lookback).timestamp()

    def _parse_job(self, resource: Resource, on_error: ErrorSink) -> Job | None:
        return parse_dpp_job(resource, on_error)

    def _get_job(self, client: ArmClient, job_id: str) -> Resource:
        return client.get_backup_job(self.ref, job_id)

    def _list_items(self, client: ArmClient, on_error: ErrorSink) -> list[ProtectedItem]:
        parsed = [item for item in (parse_backup_instance(r, on_error) for r in client.list_backup_instances(self.ref))
                  if item is not None]
        for item in parsed:
            for field, value in unknown_states(item):
                self.count_unknown_once(field, value, on_error)
        listed = {item.name for item in parsed}
        self.newest_points = {name: when for name, when in self.newest_points.items() if name in listed}
        self.points_listed_at = {name: when for name, when in self.points_listed_at.items() if name in listed}
        return [self._with_known_point(item) for item in parsed]

    def _with_known_point(self, item: ProtectedItem) -> ProtectedItem:
        """The instance with the newest recovery point listed for it so far, if any (the list has none)."""
        newest = self.newest_points.get(item.name)
        return replace(item, last_recovery_point=newest) if newest is not None else item

    def _refresh_points_if_due(self, client: ArmClient, on_error: ErrorSink) -> None:
        """The newest recovery point of each instance whose jobs show no success, at most every
        ITEMS_REFRESH_INTERVAL. Here, in the details half, they never hold back the jobs' statuses. A failure
        (not a 404) ends the round and marks the vault failing like a failed items list; the rest wait for the
        next refresh."""
        now = time.monotonic()
        due = [item for item in self._instances_jobs_do_not_tell()
               if now - self.points_listed_at.get(item.name, float("-inf")) >= self.items_interval]
        try:
            for item in due:
                newest = self._newest_recovery_point(client, item, on_error)
                self.points_listed_at[item.name] = now
                if newest is not None:
                    self.newest_points[item.name] = max(newest, self.newest_points.get(item.name, newest))
        except AuthError:
            raise
        except ArmError as exc:
            log.warning("%s recovery points not listed, keeping the last ones: %s", self.ref.log_fields, exc)
            self.items_error = exc
        if due:
            self.items = tuple(self._with_known_point(item) for item in self.items)

    def _instances_jobs_do_not_tell(self) -> list[ProtectedItem]:
        """The instances without a successful backup job seen. A success outlives its job in the book, and any
        newer backup is a newer job in the list, so for the others a recovery point would tell nothing new."""
        from_jobs = last_successes(self.book.successes, (), self.book.directory, frozenset()).any_kind
        told: set[ItemKey] = {folded(key) for key in from_jobs}
        return [item for item in self.items if folded(item.item_key) not in told]

    def _newest_recovery_point(self, client: ArmClient, item: ProtectedItem, on_error: ErrorSink) -> float | None:
        """The instance's newest recovery point within the first list's reach (LOOKBACK, or twice the longest
        policy interval); None without one, or on a 404 (the instance went away meanwhile)."""
        until = self.clock()
        since = until - first_reach(self.lookback, self.policies.values())
        odata_filter = RECOVERY_POINT_FILTER.format(since=_filter_time(since), until=_filter_time(until))
        try:
            return parse_recovery_points(client.list_recovery_points(self.ref, item.name, odata_filter), on_error)
        except ArmError as exc:
            if exc.status != 404:
                raise
            return None

    def _list_policies(self, client: ArmClient, on_error: ErrorSink) -> list[PolicyIntervals]:
        parsed = (parse_dpp_policy(r, on_error) for r in client.list_backup_policies(self.ref))
        return [policy for policy in parsed if policy is not None]


def _filter_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")
