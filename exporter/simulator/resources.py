"""The fake ARM's subscription resource list (`Resources_List`, `GET /subscriptions/{s}/resources`), for the
protectable resources the exporter lists (exporter/protectable.py).

What it does as ARM does (the spec's Resources_List and its GenericResourceExpanded model):
- `$filter`: `resourceType eq '<type>'` clauses joined by `or` (azure-cli sends that form), optionally in
  parentheses; types compared without regard to case. Any other filter answers 400: this fake knows no more.
- `$expand=createdTime`: only then does a resource carry `createdTime` ("only present if requested").
- Paging: at most `page_size` resources per page, `nextLink` with the same query and an opaque `$skiptoken`.
- `managedBy` on a disk attached to a VM; `tags` as given (null when none).
- A subscription the role may not read answers 403 AuthorizationFailed (`deny`).
"""

from __future__ import annotations

import base64
import re
import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

if TYPE_CHECKING:
    from .fakearm import FakeEstate

Json = dict[str, Any]
API_VERSIONS = frozenset({"2019-10-01", "2020-06-01", "2020-10-01", "2021-01-01", "2021-04-01", "2022-09-01",
                          "2023-07-01", "2024-03-01", "2024-07-01", "2024-11-01", "2025-03-01", "2025-04-01"})
PATH = re.compile(r"^/subscriptions/(?P<sub>[^/]+)/resources/?$", re.IGNORECASE)
_CLAUSE = re.compile(r"^resourceType eq '(?P<type>[^']+)'$", re.IGNORECASE)
ACTION = "Microsoft.Resources/subscriptions/resources/read"


def make_resource(subscription_id: str, resource_group: str, resource_type: str, name: str, *,
                  location: str = "westeurope", created: datetime | None = None, managed_by: str | None = None,
                  tags: Mapping[str, str] | None = None) -> Json:
    """A resource as Resources_List shows it; `createdTime` is kept aside and shown only when expanded."""
    resource: Json = {
        "id": f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}/providers/{resource_type}/{name}",
        "name": name, "type": resource_type, "location": location, "tags": dict(tags) if tags else None,
    }
    if managed_by:
        resource["managedBy"] = managed_by
    if created is not None:
        resource["createdTime"] = created.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"  # ARM writes 7 digits
    return resource


class FakeResources:
    """The protectable resources of every subscription of a FakeEstate."""

    def __init__(self, on_subscription: Callable[[str], None], page_size: int = 1000) -> None:
        self._lock = threading.Lock()
        self._on_subscription = on_subscription  # the estate learns the subscription (else it answers 404)
        self._resources: dict[str, Json] = {}  # lower-cased ID -> resource
        self._denied: set[str] = set()
        self.page_size = page_size

    def add(self, resource: Json, subscription_id: str | None = None) -> Json:
        """Serve the resource in its ID's subscription; subscription_id for a broken entry without an ID."""
        subscription_id = subscription_id or resource["id"].split("/")[2]
        self._on_subscription(subscription_id)
        with self._lock:
            self._resources[str(resource.get("id", resource.get("name"))).lower()] = {
                **resource, "_subscription": subscription_id.lower()}
        return resource

    def remove(self, resource_id: str) -> None:
        with self._lock:
            self._resources.pop(resource_id.lower(), None)

    def deny(self, subscription_id: str, denied: bool = True) -> None:
        """The role lacks Microsoft.Resources/subscriptions/resources/read on this subscription: 403."""
        with self._lock:
            (self._denied.add if denied else self._denied.discard)(subscription_id.lower())

    def serve(self, base_url: str, subscription_id: str, params: Mapping[str, str]) -> tuple[int, Json]:
        """One page of the subscription's list: (HTTP status, JSON body)."""
        version = params.get("api-version", "")
        if version not in API_VERSIONS:
            return 400, _error("NoRegisteredProviderFound", f"No registered resource provider found for API "
                               f"version '{version}' and type 'resources'.")
        if subscription_id.lower() in self._denied:
            return 403, _error("AuthorizationFailed", f"The client does not have authorization to perform action "
                               f"'{ACTION}' over scope '/subscriptions/{subscription_id}' or the scope is invalid.")
        types = _filter_types(params.get("$filter", ""))
        if types is None:
            return 400, _error("InvalidFilterInQueryString", "This fake ARM takes only resourceType eq '...' "
                               "clauses joined by or.")
        expand = {part.strip().lower() for part in params.get("$expand", "").split(",")}
        start = _offset(params.get("$skiptoken", ""))
        with self._lock:
            chosen = [r for key, r in sorted(self._resources.items())
                      if r["_subscription"] == subscription_id.lower() and (not types or r["type"].lower() in types)]
        page = [_shown(r, "createdtime" in expand) for r in chosen[start:start + self.page_size]]
        body: Json = {"value": page}
        if start + self.page_size < len(chosen):
            query = {k: v for k, v in params.items() if k != "$skiptoken"}
            query["$skiptoken"] = base64.urlsafe_b64encode(str(start + self.page_size).encode()).decode()
            body["nextLink"] = f"{base_url}/subscriptions/{subscription_id}/resources?{urlencode(query)}"
        return 200, body


def _filter_types(text: str) -> set[str] | None:
    """The lower-cased types of `resourceType eq 'a' or resourceType eq 'b'`; empty for no filter; None if unknown."""
    body = text.strip()
    if body.startswith("(") and body.endswith(")"):
        body = body[1:-1]
    if not body:
        return set()
    types = set()
    for clause in re.split(r"\s+or\s+", body, flags=re.IGNORECASE):
        match = _CLAUSE.match(clause.strip())
        if match is None:
            return None
        types.add(match.group("type").lower())
    return types


def _offset(token: str) -> int:
    try:
        return int(base64.urlsafe_b64decode(token.encode()).decode()) if token else 0
    except ValueError:
        return 0


def _shown(resource: Json, with_created: bool) -> Json:
    shown = {key: value for key, value in resource.items() if key != "_subscription"}
    if not with_created:
        shown.pop("createdTime", None)
    return shown


def _error(code: str, message: str) -> Json:
    return {"error": {"code": code, "message": message}}


# The demo's resources with no Azure Backup (an old VM, a loose disk, a storage account, an AKS cluster, a
# PostgreSQL server with only its built-in backups), one new VM within the grace and one exempted by a tag.
_DEMO_UNPROTECTED = (
    ("Microsoft.Compute/virtualMachines", "vm-forgotten", 90, {"team": "web"}),
    ("Microsoft.Compute/disks", "disk-detached-data", 40, {"team": "web"}),
    ("Microsoft.Storage/storageAccounts", "stlogsarchive01", 200, {"team": "platform"}),
    ("Microsoft.ContainerService/managedClusters", "aks-batch", 15, {"team": "data"}),
    ("Microsoft.DBforPostgreSQL/flexibleServers", "pg-orders", 60, {"team": "payments"}),
    ("Microsoft.Compute/virtualMachines", "vm-just-created", 0, {"team": "web"}),
    ("Microsoft.Compute/virtualMachines", "vm-scratch", 30, {"team": "data", "backup": "none"}),
)


def add_demo_resources(estate: FakeEstate, subscription_id: str, now: datetime) -> None:
    """The subscription's protectable resources for the demo: every VM its vaults back up (with an OS disk
    attached, covered through the VM), every data source of its Backup vault, and _DEMO_UNPROTECTED."""
    resources = estate.resources
    for vault in estate.vaults_in(subscription_id):
        for item in estate.items(vault.name):
            properties = item.get("properties", {})
            source = properties.get("sourceResourceId", "")
            if properties.get("backupManagementType") != "AzureIaasVM" or not source:
                continue
            parts = source.split("/")
            group, name = parts[4], parts[-1]
            resources.add(make_resource(subscription_id, group, "Microsoft.Compute/virtualMachines", name,
                                        created=now - timedelta(days=400), tags={"team": "platform"}))
            resources.add(make_resource(subscription_id, group, "Microsoft.Compute/disks", f"{name}_OsDisk_1",
                                        created=now - timedelta(days=400), managed_by=source))
    for backup_vault in estate.backup_vaults_in(subscription_id):  # the data sources its Backup vault protects
        for instance in estate.backup_instances(backup_vault.name):
            parts = instance["properties"]["dataSourceInfo"]["resourceID"].split("/")
            resources.add(make_resource(subscription_id, parts[4], f"{parts[6]}/{parts[7]}", parts[8],
                                        created=now - timedelta(days=300), tags={"team": "platform"}))
    for resource_type, name, days, tags in _DEMO_UNPROTECTED:
        created = now - timedelta(days=days, hours=2)
        resources.add(make_resource(subscription_id, "rg-apps", resource_type, name, created=created, tags=tags))
