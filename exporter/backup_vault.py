"""A Backup vault (Microsoft.DataProtection): the `Vault` of vault.py for Azure Disks, Blobs, databases, AKS...

What differs from a Recovery Services vault (recovery_services.py), on the same parts (vault_base.py):
- The job list takes no filter: every refresh lists every job Azure keeps (about 14 days) and merges them by
  ID; jobs older than LOOKBACK that have ended are not kept. Details are fetched as for Recovery Services.
- The items are the vault's backup instances. They carry no last-backup time, so each instance's newest
  recovery point is listed with them, one call per instance per ITEMS_REFRESH_INTERVAL: an item's last
  success then survives restarts and the 14-day job horizon.
- The payloads are DataProtection's (dataprotection.py parses them).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime

from .arm import ArmClient, ArmError
from .dataprotection import (
    parse_backup_instance,
    parse_backup_vault,
    parse_dpp_job,
    parse_dpp_policy,
    parse_recovery_points,
    unknown_states,
)
from .listing import first_reach
from .models import DiscoveredVault, ErrorSink, Job, ProtectedItem
from .policy import PolicyIntervals
from .vault_base import Resource, VaultBase

# The $filter of RecoveryPoints_List, in the grammar of the Azure CLI (`az dataprotection recovery-point list`).
RECOVERY_POINT_FILTER = "startDate eq '{since}' and endDate eq '{until}'"


class BackupVault(VaultBase):
    """A Backup vault: every retained job on each refresh, backup instances and their newest recovery point."""

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
        return [self._with_newest_recovery_point(client, item, on_error) for item in parsed]

    def _with_newest_recovery_point(self, client: ArmClient, item: ProtectedItem,
                                    on_error: ErrorSink) -> ProtectedItem:
        """The instance with its newest recovery point within the first list's reach (LOOKBACK, or twice the
        longest policy interval); a 404 (the instance went away meanwhile) leaves it without one."""
        until = self.clock()
        since = until - first_reach(self.lookback, self.policies.values())
        odata_filter = RECOVERY_POINT_FILTER.format(since=_filter_time(since), until=_filter_time(until))
        try:
            newest = parse_recovery_points(client.list_recovery_points(self.ref, item.name, odata_filter), on_error)
        except ArmError as exc:
            if exc.status != 404:
                raise
            newest = None
        return replace(item, last_recovery_point=newest) if newest is not None else item

    def _list_policies(self, client: ArmClient, on_error: ErrorSink) -> list[PolicyIntervals]:
        parsed = (parse_dpp_policy(r, on_error) for r in client.list_backup_policies(self.ref))
        return [policy for policy in parsed if policy is not None]


def _filter_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")
