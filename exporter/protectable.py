"""Protectable resources: the VMs, disks, storage accounts, AKS clusters and flexible servers of a subscription,
listed so that the rules can tell which of them no backup covers (issue 20, point 1).

Not to be confused with `freshness.py`, which combines jobs and items into each item's last successes.

Why one ARM list per subscription (`Resources_List`, `GET /subscriptions/{s}/resources`):
- `$filter` takes `resourceType eq '...'`; the spec does not spell out `or` between two resourceType clauses, but
  Azure's own clients send it (azure-cli's storage account lookup: `(resourceType eq '...' or resourceType eq
  '...')`, the support portal's VM pickers), so one filter names every protectable type.
- `$expand=createdTime` adds `createdTime` (ISO date-time) to each resource ("only present if requested via the
  $expand query parameter", GenericResourceExpanded); it gives the resource's age, so a new resource gets a grace.
  A resource without it (created before ARM kept it) counts as old.
- Each resource carries `managedBy`: for a managed disk, the VM it is attached to.
Azure Resource Graph is not used: it needs another permission and its own quota, is eventually consistent, and
one list per subscription per hour is cheap (a few pages of 1,000).

A resource is covered when a watched item backs it up as a whole (`covered_resource_id`): the rules join
`azure_backup_item_covered_resource_info{resource_id}` from every shard to this list, lower-cased on both sides.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .models import BACKUP, RECOVERY_SERVICES
from .parsing import parse_timestamp
from .vocabulary import STOPPED_ON_PURPOSE

# The types Azure Backup protects as a whole and ABCC lists as protectable (research: at-scale-sources.md 5.2).
# Classic VMs (Microsoft.ClassicCompute) are left out: retired in 2023, and ABCC leaves them out too.
PROTECTABLE_TYPES: tuple[str, ...] = (
    "Microsoft.Compute/virtualMachines",
    "Microsoft.Compute/disks",
    "Microsoft.Storage/storageAccounts",
    "Microsoft.ContainerService/managedClusters",
    "Microsoft.DBforPostgreSQL/flexibleServers",
    "Microsoft.DBforMySQL/flexibleServers",
)
_CANONICAL_TYPE = {t.lower(): t for t in PROTECTABLE_TYPES}
# Recovery Services items that back up the resource of their sourceResourceId as a whole: a VM, and a file share
# (its storage account, as ABCC counts "storage accounts with no file or blobs protected"). A SQL or SAP HANA
# database in a VM (AzureWorkload) carries the VM's ID but does not back the VM up.
WHOLE_RESOURCE_TYPES = frozenset({"AzureIaasVM", "AzureStorage"})
_NOT_A_LABEL_CHAR = re.compile(r"[^a-zA-Z0-9_]")


def resource_filter() -> str:
    """The one OData filter that lists every protectable type."""
    return " or ".join(f"resourceType eq '{resource_type}'" for resource_type in PROTECTABLE_TYPES)


def tag_label(tag: str) -> str:
    """A tag name as a label name: `tag_` and the name lower-cased, every other character `_` (cost-center ->
    tag_cost_center). Azure's tag names are case-insensitive, so lower case keeps one label per tag."""
    return "tag_" + _NOT_A_LABEL_CHAR.sub("_", tag.strip().lower())


@dataclass(frozen=True)
class ExclusionTags:
    """COVERAGE_EXCLUDE_TAGS: `name=value` (that value) or `name` (any value), compared without regard to case."""

    rules: tuple[tuple[str, str | None], ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> ExclusionTags:
        rules = []
        for entry in entries:
            name, sep, value = entry.partition("=")
            rules.append((name.strip().lower(), value.strip().lower() if sep else None))
        return cls(tuple(rules))

    def excludes(self, tags: Mapping[str, str]) -> bool:
        lowered = {name.lower(): value.lower() for name, value in tags.items()}
        return any(name in lowered and (value is None or lowered[name] == value) for name, value in self.rules)


@dataclass(frozen=True)
class ProtectableResource:
    subscription_id: str
    resource_group: str
    resource_type: str  # canonical casing, e.g. Microsoft.Compute/virtualMachines
    name: str
    resource_id: str  # lower-cased: the join key against the items' covered resource
    location: str
    managed_by: str  # lower-cased ID of the managing resource (a disk's VM), "" if none
    created: float | None  # Unix seconds, None when Azure did not say
    tags: Mapping[str, str] = field(default_factory=dict)

    def tag(self, name: str) -> str:
        """A tag's value by name without regard to case; "" when the resource lacks it."""
        wanted = name.strip().lower()
        return next((value for key, value in self.tags.items() if key.lower() == wanted), "")


def parse_resource(raw: Mapping[str, Any], subscription_id: str,
                   on_error: Callable[[str], None]) -> ProtectableResource | None:
    """One entry of the resource list; None for an entry without an ID or of a type not asked for."""
    resource_id, resource_type = raw.get("id"), raw.get("type")
    if not isinstance(resource_id, str) or not isinstance(resource_type, str):
        on_error("resource.id")
        return None
    canonical = _CANONICAL_TYPE.get(resource_type.lower())
    if canonical is None:
        return None  # ARM answered more than the filter asked: not ours to judge
    return ProtectableResource(
        subscription_id=subscription_id,
        resource_group=_segment_after(resource_id, "resourcegroups"),
        resource_type=canonical,
        name=_text(raw.get("name")) or resource_id.rsplit("/", 1)[-1],
        resource_id=resource_id.lower(),
        location=_text(raw.get("location")),
        managed_by=_text(raw.get("managedBy")).lower(),
        created=_created(raw.get("createdTime"), on_error),
        tags=_tags(raw.get("tags"), on_error),
    )


def covered_resource_id(vault_kind: str, backup_management_type: str, source_resource_id: str,
                        protection_state: str) -> str:
    """The lower-cased ID of the resource an item backs up as a whole while its protection runs; "" otherwise.

    Protection stopped on purpose (kept data, soft deleted, suspended) covers nothing: no new backup comes."""
    if not source_resource_id or protection_state in STOPPED_ON_PURPOSE.get(vault_kind, ()):
        return ""
    if vault_kind == RECOVERY_SERVICES and backup_management_type not in WHOLE_RESOURCE_TYPES:
        return ""
    if vault_kind not in (RECOVERY_SERVICES, BACKUP):
        return ""
    return source_resource_id.lower()


def _segment_after(resource_id: str, name: str) -> str:
    parts = resource_id.split("/")
    for index, part in enumerate(parts[:-1]):
        if part.lower() == name:
            return parts[index + 1]
    return ""


def _created(value: Any, on_error: Callable[[str], None]) -> float | None:
    if value is None:
        return None
    try:
        if isinstance(value, str):
            return parse_timestamp(value)
    except ValueError:
        pass
    on_error("resource.createdTime")
    return None


def _tags(value: Any, on_error: Callable[[str], None]) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        on_error("resource.tags")
        return {}
    return {str(name): str(tag) for name, tag in value.items() if isinstance(tag, str | int | float)}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


@dataclass
class ResourceInventory:
    """One subscription's protectable resources as last listed; a failed list keeps the last ones."""

    subscription_id: str
    resources: tuple[ProtectableResource, ...] = ()
    success: bool | None = None
    last_run: float | None = None

    @property
    def key(self) -> str:
        return f"resources:{self.subscription_id}"

    @property
    def log_fields(self) -> str:
        return f"subscription={self.subscription_id}"

    def replace(self, listed: Iterable[Mapping[str, Any]], on_error: Callable[[str], None]) -> None:
        """Take a complete list (a list that fails half way raises before anything is replaced)."""
        parsed = (parse_resource(raw, self.subscription_id, on_error) for raw in listed)
        unique = {resource.resource_id: resource for resource in parsed if resource is not None}
        self.resources = tuple(unique[key] for key in sorted(unique))
        self.success = True
