"""Typed views of the Azure payloads the exporter uses, and their parsing.

Parsing is forgiving by design: a value that does not parse drops only that
field and is reported to `on_error(field)`, so one odd job never costs the page.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from .identity import ItemKey, folded, item_container, job_identity
from .parsing import parse_duration, parse_size, parse_timestamp

log = logging.getLogger(__name__)

ErrorSink = Callable[[str], None]

FAILED = "Failed"
FINISHED_STATUSES = ("Completed", "CompletedWithWarnings", FAILED, "Cancelled")
# Known values of the protected-item enums: each gets a series (0 unless current); other values are added as seen.
# lastBackupStatus is a job status for VMs and file shares, and Healthy/Unhealthy for workload (SQL, HANA) items.
ITEM_BACKUP_STATUSES = ("Completed", "CompletedWithWarnings", "Failed", "Healthy", "Unhealthy", "IRPending")
ITEM_HEALTH_STATUSES = ("Passed", "ActionRequired", "ActionSuggested")
PROTECTION_STATES = ("Protected", "ProtectionStopped", "ProtectionError", "ProtectionPaused", "IRPending",
                     "SoftDeleted", "BackupsSuspended")
# Items whose only kind of backup is the one scheduled by a single-schedule policy: their own record of the
# last backup (lastBackupTime, lastRecoveryPoint) is a full backup. A database's may be a log backup.
SINGLE_SCHEDULE_TYPES = frozenset({"AzureIaasVM", "AzureStorage", "MAB", "DPM", "AzureBackupServer"})
ITEM_SUCCESS_STATUSES = frozenset({"Completed", "CompletedWithWarnings", "Healthy"})
KNOWN_STATUSES = ("InProgress", *FINISHED_STATUSES, "Cancelling")
SUCCESS_STATUSES = frozenset({"Completed", "CompletedWithWarnings"})

# The two kinds of vault Azure Backup keeps backups in: the `vault_type` label of every vault-scoped family.
RECOVERY_SERVICES = "recovery_services"  # Microsoft.RecoveryServices/vaults
BACKUP = "backup"  # Microsoft.DataProtection/backupVaults
VAULT_KINDS = (RECOVERY_SERVICES, BACKUP)
# The ARM provider path (provider/type) of each kind of vault.
_VAULT_PROVIDERS = {RECOVERY_SERVICES: "Microsoft.RecoveryServices/vaults",
                    BACKUP: "Microsoft.DataProtection/backupVaults"}
_VAULT_ID = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)"
    r"/providers/(?P<provider>Microsoft\.RecoveryServices/vaults|Microsoft\.DataProtection/backupVaults)"
    r"/(?P<name>[^/]+)/?$",
    re.IGNORECASE,
)
_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)


@dataclass(frozen=True)
class VaultRef:
    """A vault, named by its ARM resource ID parts: a Recovery Services vault or a Backup vault (`kind`).

    The two kinds are two resource types, so a Recovery Services vault and a Backup vault may share a name in
    one resource group; `kind` tells them apart in `key` and `labels`.
    """

    subscription_id: str
    resource_group: str
    name: str
    kind: str = RECOVERY_SERVICES

    def __post_init__(self) -> None:
        if self.kind not in VAULT_KINDS:
            raise ValueError(f"unknown kind of vault {self.kind!r} (one of {', '.join(VAULT_KINDS)})")

    @classmethod
    def parse(cls, resource_id: str) -> VaultRef:
        match = _VAULT_ID.match(resource_id.strip())
        if not match:
            raise ValueError(
                f"{resource_id!r} is not a vault resource ID "
                "(/subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.RecoveryServices/vaults/<name> or "
                "/subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.DataProtection/backupVaults/<name>)")
        if not _GUID.match(match.group("sub")):
            raise ValueError(f"{resource_id!r}: subscription {match.group('sub')!r} is not a GUID")
        provider = match.group("provider").lower()
        kind = next(k for k, path in _VAULT_PROVIDERS.items() if path.lower() == provider)
        return cls(match.group("sub").lower(), match.group("rg"), match.group("name"), kind)

    @property
    def path(self) -> str:
        return (f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
                f"/providers/{_VAULT_PROVIDERS[self.kind]}/{self.name}")

    @property
    def key(self) -> str:
        """ARM IDs are case-insensitive; this is the identity used to deduplicate vaults (the two kinds of one
        name differ: their paths name different resource types)."""
        return self.path.lower()

    @property
    def log_fields(self) -> str:
        """How log lines name the vault (logfmt): its name alone is ambiguous across the two kinds."""
        return f"vault={self.name} vault_type={self.kind}"

    @property
    def labels(self) -> tuple[str, str, str, str]:
        """The values of catalogue.VAULT_LABELS: subscription_id, resource_group, vault, vault_type."""
        return (self.subscription_id, self.resource_group, self.name, self.kind)


@dataclass(frozen=True, slots=True)
class Task:
    name: str
    status: str


@dataclass(frozen=True, slots=True)
class JobError:
    """What Azure says went wrong with a job: bounded values only (the message text is unbounded, never a label).

    code: Recovery Services' numeric errorCode as a string ("400006"), or a Backup vault's code string
    ("UserErrorMissingRequiredPermissions"); "" where the job type has none (MAB and DPM jobs).
    title: the symbolic name (Recovery Services' errorTitle, "UserErrorVmNotFound"; a Backup vault's code again).
    """

    code: str
    title: str


@dataclass(frozen=True, slots=True)
class Job:
    """One backup job: the common fields of every jobType, plus details once fetched."""

    job_id: str
    job_type: str
    item: str
    backup_management_type: str
    operation: str
    status: str
    start: float | None
    end: float | None
    duration: float | None
    container: str = ""  # the item's container label (identity.py), once joined to its protected item
    container_name: str = ""  # Azure's raw containerName (or dpmServerName, mabServerName, storageAccountName)
    workload_type: str = ""
    size_bytes: float | None = None
    tasks: tuple[Task, ...] | None = None  # None: details not fetched (LIST carries none)
    named_as: tuple[str, str] = ("", "")  # (container, item) in the job's own words, before the join
    error: JobError | None = None  # Azure's errorDetails, where the payload carried them

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    @property
    def is_backup(self) -> bool:
        """Backup, and the workload kinds: Backup (Full), Backup (Differential), Backup (Log), ..."""
        return self.operation.startswith("Backup")

    @property
    def item_key(self) -> ItemKey:
        return (self.backup_management_type, self.container, self.item)

    @property
    def own_item_key(self) -> ItemKey:
        """The item as the job itself names it (matched to a protected item by identity.ItemDirectory)."""
        return (self.backup_management_type, *self.named_as)

    @property
    def series_key(self) -> tuple[str, str, str, str]:
        """What 'the latest job' is the latest of: one item and one operation."""
        return (self.backup_management_type, self.container, self.item, self.operation)

    def joined_to(self, key: ItemKey) -> Job:
        """This job labelled as the item `key` (itself when it already is)."""
        if key == self.item_key:
            return self
        return replace(self, container=key[1], item=key[2])

    def with_details(self, details: Job) -> Job:
        """Take GET's newer common fields, its size, tasks and error (the list's error if GET has none)."""
        return replace(details, job_id=self.job_id, error=details.error or self.error)


def _text(value: Any) -> str:
    # Interned: the same item, type, operation and status names recur in every job of a vault.
    return sys.intern(value) if isinstance(value, str) else ""


def _optional(props: Mapping[str, Any], field: str, parser: Callable[[str], float],
              on_error: ErrorSink) -> float | None:
    raw = props.get(field)
    if raw is None or raw == "":
        return None
    try:
        return parser(str(raw))
    except (ValueError, OverflowError):
        log.debug("dropping unparseable %s=%r", field, raw)
        on_error(field)
        return None


def _raw_container(props: Mapping[str, Any]) -> str:
    for key in ("containerName", "dpmServerName", "mabServerName", "storageAccountName"):
        if isinstance(props.get(key), str) and props[key]:
            return _text(props[key])
    return ""


def parse_job(resource: Mapping[str, Any], on_error: ErrorSink) -> Job | None:
    """A Job from a JobResource of any jobType; None (counted as field 'job') if it has no ID or properties."""
    props = resource.get("properties")
    job_id = resource.get("name")
    if not isinstance(props, Mapping) or not isinstance(job_id, str) or not job_id:
        on_error("job")
        return None
    backup_management_type = _text(props.get("backupManagementType"))
    container, item = job_identity(backup_management_type, _text(props.get("entityFriendlyName")), props)
    named_as = (_text(container), _text(item))
    return Job(
        job_id=job_id.lower(),
        job_type=_text(props.get("jobType")),
        item=named_as[1],
        backup_management_type=backup_management_type,
        operation=_text(props.get("operation")),
        status=_text(props.get("status")),
        start=_optional(props, "startTime", parse_timestamp, on_error),
        end=_optional(props, "endTime", parse_timestamp, on_error),
        duration=_optional(props, "duration", parse_duration, on_error),
        container=named_as[0],
        container_name=_raw_container(props),
        workload_type=_text(props.get("workloadType")),
        size_bytes=_size(props, on_error),
        tasks=_tasks(props, on_error),
        named_as=named_as,
        error=_error(props, job_id, on_error),
    )


def _error(props: Mapping[str, Any], job_id: str, on_error: ErrorSink) -> JobError | None:
    """The first errorDetails entry (AzureIaaSVMErrorInfo, AzureStorageErrorInfo, AzureWorkloadErrorInfo, ...:
    errorCode int32, errorTitle, errorString, recommendations); None when there is none (null, [] or absent).
    A malformed entry or code is counted as 'errorDetails' and gives what parsed."""
    details = props.get("errorDetails")
    if not details:
        return None
    first = details[0] if isinstance(details, list) else None
    if not isinstance(first, Mapping):
        on_error("errorDetails")
        return None
    code = _error_code(first.get("errorCode"), on_error)
    title = error_identifier(first.get("errorTitle"), "errorTitle", on_error)
    # The message can be long and names the customer's resources: logs only, never a label.
    log.debug("job %s failed with %s %s: %r", job_id, code, title, first.get("errorString"))
    return JobError(code, title)


def _error_code(raw: Any, on_error: ErrorSink) -> str:
    """errorCode as a string: int32 in the spec; a numeric or symbolic string is taken as sent."""
    if raw is None:
        return ""
    if isinstance(raw, int) and not isinstance(raw, bool):
        return str(raw)
    return error_identifier(raw, "errorCode", on_error)


# Azure's codes and titles are identifiers (UserErrorGuestAgentStatusUnavailable: 36 characters); anything
# longer or with spaces is text, which would make an unbounded label.
_IDENTIFIER = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


def error_identifier(raw: Any, field: str, on_error: ErrorSink) -> str:
    """An error code or title as a label value; '' when absent, and counted as `field` when it is not an
    identifier (a sentence, a number where a name belongs)."""
    if raw is None or raw == "":
        return ""
    if isinstance(raw, str) and _IDENTIFIER.match(raw.strip()):
        return sys.intern(raw.strip())
    log.debug("dropping unusable %s=%r", field, raw)
    on_error(field)
    return ""


def _extended_info(props: Mapping[str, Any]) -> Mapping[str, Any] | None:
    info = props.get("extendedInfo")
    return info if isinstance(info, Mapping) else None


def _size(props: Mapping[str, Any], on_error: ErrorSink) -> float | None:
    info = _extended_info(props)
    bag = info.get("propertyBag") if info else None
    if not isinstance(bag, Mapping):
        return None
    # Azure's propertyBag keys are free text; some carry trailing spaces.
    sizes = {str(k).strip().lower(): v for k, v in bag.items()}
    if "backup size" in sizes:
        return _optional({"Backup Size": sizes["backup size"]}, "Backup Size", parse_size, on_error)
    # Database (SQL, HANA, ASE) backups: a bare number of MB, e.g. "4.0864" (recorded 2019).
    if TRANSFERRED_MB in sizes:
        field = "Data Transferred (in MB)"
        return _optional({field: f"{sizes[TRANSFERRED_MB]} MB"}, field, parse_size, on_error)
    return None


TRANSFERRED_MB = "data transferred (in mb)"


def _tasks(props: Mapping[str, Any], on_error: ErrorSink) -> tuple[Task, ...] | None:
    info = _extended_info(props)
    if info is None:
        return None
    tasks = info.get("tasksList") or []
    if not isinstance(tasks, list):
        on_error("tasksList")
        return ()
    parsed = []
    for task in tasks:
        if isinstance(task, Mapping) and isinstance(task.get("taskId"), str):
            parsed.append(Task(_text(task["taskId"]), _text(task.get("status"))))
        else:
            on_error("tasksList")
    return tuple(parsed)


@dataclass(frozen=True, slots=True)
class ProtectedItem:
    """One protected item (VM, file share, database, MARS or DPM source) with its health."""

    name: str
    friendly_name: str
    backup_management_type: str
    item_type: str
    workload_type: str
    policy: str
    container: str  # the container label (identity.py)
    container_name: str  # Azure's raw containerName
    source_resource_id: str
    last_backup_status: str
    last_backup_time: float | None
    health_status: str
    protection_state: str
    last_recovery_point: float | None
    # The backup kind the item's own record of its last backup (lastBackupTime, lastRecoveryPoint, a Backup vault
    # instance's newest recovery point) always is: "full" where every backup is one; "" where it may be any kind
    # (a database's may be a log backup).
    record_kind: str = ""

    @property
    def item_key(self) -> ItemKey:
        """The item's identity in its vault, which its jobs are joined to."""
        return (self.backup_management_type, self.container, self.friendly_name)

    @property
    def last_success(self) -> float | None:
        """The newest moment this item is known to have been backed up successfully."""
        candidates = [self.last_recovery_point]
        if self.last_backup_status in ITEM_SUCCESS_STATUSES:
            candidates.append(self.last_backup_time)
        known = [c for c in candidates if c is not None]
        return max(known) if known else None


def parse_item(resource: Mapping[str, Any], on_error: ErrorSink) -> ProtectedItem | None:
    """A ProtectedItem of any protectedItemType; None (counted as field 'item') without name or properties."""
    props = resource.get("properties")
    name = resource.get("name")
    if not isinstance(props, Mapping) or not isinstance(name, str) or not name:
        on_error("item")
        return None
    # DPM items keep their last backup status in extendedInfo; workload items name their health differently.
    extended = _extended_info(props) or {}
    backup_management_type = _text(props.get("backupManagementType"))
    return ProtectedItem(
        name=name,
        friendly_name=_text(props.get("friendlyName")) or _text(props.get("computerName")) or name,
        backup_management_type=backup_management_type,
        item_type=_text(props.get("protectedItemType")),
        workload_type=_text(props.get("workloadType")),
        policy=_policy_name(props),
        container=_text(item_container(backup_management_type, props)),
        container_name=_text(props.get("containerName")),
        source_resource_id=_text(props.get("sourceResourceId")),
        last_backup_status=_text(props.get("lastBackupStatus")) or _text(extended.get("lastBackupStatus")),
        last_backup_time=_real_time(_optional(props, "lastBackupTime", parse_timestamp, on_error)),
        health_status=_text(props.get("healthStatus")) or _text(props.get("protectedItemHealthStatus")),
        protection_state=_text(props.get("protectionState")),
        last_recovery_point=_real_time(_optional(props, "lastRecoveryPoint", parse_timestamp, on_error)),
        record_kind="full" if backup_management_type in SINGLE_SCHEDULE_TYPES else "",
    )


def with_distinct_identities(items: list[ProtectedItem], on_error: ErrorSink) -> list[ProtectedItem]:
    """The items, none sharing an identity: a label set must name exactly one item.

    Two items that derive the same (type, container, name) (no type known today does) keep Azure's whole
    containerName as their container instead, then also the item's ARM name; each such item counts as a
    parse error of field 'item_identity'.
    """
    groups: dict[ItemKey, list[ProtectedItem]] = {}
    for item in items:
        groups.setdefault(folded(item.item_key), []).append(item)
    if all(len(group) == 1 for group in groups.values()):
        return items
    result = []
    for group in groups.values():
        if len(group) == 1:
            result.extend(group)
            continue
        for item in group:
            on_error("item_identity")
            raw = item.container_name or item.container
            clash = sum(1 for other in group if (other.container_name or other.container) == raw) > 1
            result.append(replace(item, container=f"{raw};{item.name}" if clash else raw))
    return result


# Azure writes 2001-01-01T00:00:00Z as the lastBackupTime of an item never backed up (seen in a CLI recording).
NEVER = parse_timestamp("2010-01-01T00:00:00Z")


def _real_time(value: float | None) -> float | None:
    return value if value is not None and value >= NEVER else None


def _policy_name(props: Mapping[str, Any]) -> str:
    if isinstance(props.get("policyName"), str) and props["policyName"]:
        return str(props["policyName"])
    return _text(props.get("policyId")).rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class DiscoveredVault:
    ref: VaultRef
    location: str


def parse_vault(resource: Mapping[str, Any], on_error: ErrorSink,
                kind: str = RECOVERY_SERVICES) -> DiscoveredVault | None:
    """A vault of `kind` from a vault list or GET item (Vaults_List/Get for Recovery Services vaults); None
    (counted as field 'vault') if its ID is unusable or names another kind of vault."""
    try:
        ref = VaultRef.parse(_text(resource.get("id")))
    except ValueError:
        on_error("vault")
        return None
    if ref.kind != kind:
        on_error("vault")
        return None
    return DiscoveredVault(ref, _text(resource.get("location")).lower())
