"""A Recovery Services vault (Microsoft.RecoveryServices): the `Vault` of vault.py for its backup jobs.

It composes the parts every vault kind shares (listing.py, jobbook.py, details.py) with what is its own: the
job list's OData filters and payloads, its protected items and backup policies, the recovery points of its
databases (workload_points.py), and what it publishes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from .arm import ArmClient, ArmError, AuthError
from .details import is_transient
from .identity import ItemKey
from .listing import ListWindow, first_window, next_window, odata_filters
from .models import DiscoveredVault, ErrorSink, Job, ProtectedItem, parse_item, parse_job, parse_vault
from .policy import PolicyIntervals, parse_policy
from .vault_base import Resource, VaultBase
from .workload_points import WorkloadPoints, newest_by_kind

log = logging.getLogger(__name__)
DEFAULT_POINTS_INTERVAL = timedelta(minutes=30)


class RecoveryServicesVault(VaultBase):
    """A Recovery Services vault: jobs listed by an OData time window, protected items, backup policies, and
    its databases' recovery points for the backups the job list leaves out."""

    def __init__(self, *args: Any, points_interval: timedelta = DEFAULT_POINTS_INTERVAL, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.points = WorkloadPoints(points_interval.total_seconds(), lambda: self.clock().timestamp())

    def _get_vault(self, client: ArmClient) -> Resource:
        return client.get_vault(self.ref)

    def _parse_vault(self, resource: Resource, on_error: ErrorSink) -> DiscoveredVault | None:
        return parse_vault(resource, on_error)

    def _list_job_resources(self, client: ArmClient, now: datetime) -> Iterable[Resource]:
        window = self._window(now)
        self.list_window_start = window.since.timestamp()
        for odata_filter in odata_filters(window):
            yield from client.list_jobs(self.ref, odata_filter)

    def _window(self, now: datetime) -> ListWindow:
        if self.listed_until is None:
            return first_window(now, self.lookback, self.policies.values())
        return next_window(now, self.listed_until, self.book.jobs.values())

    def _parse_job(self, resource: Resource, on_error: ErrorSink) -> Job | None:
        return parse_job(resource, on_error)

    def _get_job(self, client: ArmClient, job_id: str) -> Resource:
        return client.get_job(self.ref, job_id)

    def _list_items(self, client: ArmClient, on_error: ErrorSink) -> list[ProtectedItem]:
        return [item for item in (parse_item(r, on_error) for r in client.list_items(self.ref)) if item]

    def _list_policies(self, client: ArmClient, on_error: ErrorSink) -> list[PolicyIntervals]:
        return [policy for policy in (parse_policy(r, on_error) for r in client.list_policies(self.ref)) if policy]

    def _refresh_points_if_due(self, client: ArmClient, on_error: ErrorSink) -> None:
        """List the recovery points of the databases due. A refusal (a role without recoveryPoints/read, an
        api-version a cloud lacks) turns the log and HANA intervals off for this vault, as before they existed,
        with one warning; a transient error leaves the rest of the round to the next refresh."""
        self.points.keep_only(self.items)
        for item in self.points.due(self.items, self.policies):
            try:
                resources = client.list_item_recovery_points(self.ref, item.container_name, item.name)
                self.points.record(item, newest_by_kind(resources, on_error))
            except AuthError:
                raise
            except ArmError as exc:
                if exc.status == 404:  # the item went away meanwhile: the next items list says so
                    continue
                if not is_transient(exc):
                    self._points_refused(exc)
                return
            self._points_work_again()

    def _points_refused(self, exc: ArmError) -> None:
        if not self.points.unavailable:
            log.warning("%s database recovery points not listed, so log backups (and SAP HANA's scheduled "
                        "backups) are not watched for this vault; retried every %ss: %s",
                        self.ref.log_fields, int(self.points.interval), exc)
        self.points.refuse()

    def _points_work_again(self) -> None:
        if self.points.unavailable:
            log.info("%s database recovery points are listed again", self.ref.log_fields)
            self.points.unavailable = False

    def _point_successes(self) -> dict[ItemKey, dict[str, float]]:
        return self.points.newest

    def _point_kinds(self) -> dict[ItemKey, frozenset[str]]:
        return self.points.reported_kinds(self.items, self.policies)
