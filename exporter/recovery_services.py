"""A Recovery Services vault (Microsoft.RecoveryServices): the `Vault` of vault.py for its backup jobs.

It composes the parts every vault kind shares (listing.py, jobbook.py, details.py) with what is its own: the
job list's OData filters and payloads, its protected items and backup policies, and what it publishes.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from .arm import ArmClient
from .listing import ListWindow, first_window, next_window, odata_filters
from .models import ErrorSink, Job, ProtectedItem, parse_item, parse_job, parse_vault
from .policy import PolicyIntervals, parse_policy
from .vault_base import Resource, VaultBase


class RecoveryServicesVault(VaultBase):
    """A Recovery Services vault: jobs listed by an OData time window, protected items, backup policies."""

    def _location(self, client: ArmClient, on_error: ErrorSink) -> str:
        discovered = parse_vault(client.get_vault(self.ref), on_error)
        return discovered.location if discovered else ""

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
