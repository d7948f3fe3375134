"""Backup vault (Microsoft.DataProtection) payloads in the exporter's models: jobs, backup instances, recovery
points, backup policies and the vaults themselves.

Backup vaults protect Azure Disks, Blobs, PostgreSQL, MySQL, AKS, ADLS, Cosmos DB and Elastic SAN with their own
REST API, whose payloads differ from a Recovery Services vault's (models.py): an `AzureBackupJob` instead of a
JobResource, backup instances instead of protected items, policies of ISO 8601 repeating intervals. Everything
here is a pure function from one payload (a Mapping, as on the wire) to the same dataclasses the Recovery
Services parsers give, so the rest of the exporter treats both kinds of vault alike.

Parsing is forgiving, as in models.py: a value that does not parse drops only that field and calls
`on_error(field)` with Azure's field name; a resource without name or properties is dropped (`job`, `item`,
`policy`, `vault`). The wire values these rules follow (real recordings and spec examples) are in
tests/fixtures/azure/dataprotection (PROVENANCE.md).

Identity: a data source is (backup_management_type, container, backup_item) like a Recovery Services item
(identity.py). backup_management_type is a short name of the `dataSourceType` (DATASOURCE_TYPES); container is
the data source's resource group, plus `/<server>` for a database inside a server (a PostgreSQL single-server
database: `dataSourceSetName` names the server, `dataSourceName` the database); backup_item is the data
source's name. Jobs and backup instances name the same data source with different fields, and both derive
the same key from them.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from itertools import pairwise
from types import MappingProxyType
from typing import Any

from .models import (
    BACKUP,
    DiscoveredVault,
    ErrorSink,
    Job,
    JobError,
    ProtectedItem,
    Task,
    _optional,
    _text,
    error_identifier,
    parse_vault,
)
from .parsing import parse_duration, parse_timestamp
from .policy import PolicyIntervals, policy_name_of

log = logging.getLogger(__name__)

# dataSourceType -> backup_management_type label. The short names are the CLI's datasource types
# (`az dataprotection ... --datasource-type`, its manifests), the vocabulary users meet in Azure's tools.
DATASOURCE_TYPES: Mapping[str, str] = MappingProxyType({
    "Microsoft.Compute/disks": "AzureDisk",
    "Microsoft.Storage/storageAccounts/blobServices": "AzureBlob",
    "Microsoft.DBforPostgreSQL/servers/databases": "AzureDatabaseForPostgreSQL",
    "Microsoft.DBforPostgreSQL/flexibleServers": "AzureDatabaseForPostgreSQLFlexibleServer",
    "Microsoft.DBforMySQL/flexibleServers": "AzureDatabaseForMySQLFlexibleServer",
    "Microsoft.ContainerService/managedClusters": "AzureKubernetesService",
    "Microsoft.Storage/storageAccounts/adlsBlobServices": "AzureDataLakeStorage",
    "Microsoft.DocumentDB/databaseAccounts": "AzureCosmosDB",
    "Microsoft.ElasticSan/elasticSans/volumeGroups": "AzureElasticSAN",
    # The legacy name of PostgreSQL single-server databases (the spec's backup-instance example still uses it):
    # the same data sources as Microsoft.DBforPostgreSQL/servers/databases, so the same label.
    "OssDB": "AzureDatabaseForPostgreSQL",
})
# ARM type names are case-insensitive, and Azure's casing varies between APIs and api-versions.
_FOLDED_DATASOURCE_TYPES = {source.lower(): short for source, short in DATASOURCE_TYPES.items()}

# Every Backup vault job has the one model AzureBackupJob; Recovery Services names its models the same way
# (AzureIaaSVMJob, AzureStorageJob...), so this is the `job_type` of every Backup vault job.
JOB_TYPE = "AzureBackupJob"
# Job and sub-task statuses in the exporter's vocabulary (models.KNOWN_STATUSES). `Started` and `Succeeded` are
# the older service's words for InProgress and Completed (spec examples; Microsoft's own Resource Graph queries
# still accept both vocabularies). `Paused`, which the spec lists, has no counterpart: it stays as it is.
_STATUSES = {
    "inprogress": "InProgress",
    "started": "InProgress",
    "completed": "Completed",
    "succeeded": "Completed",
    "completedwithwarnings": "CompletedWithWarnings",
    "failed": "Failed",
    "cancelled": "Cancelled",
    "cancelling": "Cancelling",
}
_RESOURCE_GROUP = re.compile(r"^/subscriptions/[^/]+/resourcegroups/(?P<rg>[^/]+)(?:/|$)", re.IGNORECASE)
# Backup instance states in which protection is known to be failing (protectionStatus.status or
# currentProtectionState); compared case-insensitively.
_FAILING_PROTECTION = frozenset({"configuringprotectionfailed", "protectionerror"})
_CONFIGURED = "protectionconfigured"
HEALTHY = "Healthy"
UNHEALTHY = "Unhealthy"
# currentProtectionState's values: the spec's enum (azure-mgmt-dataprotection's enums) and BackupsSuspended, which
# the spec does not list but Azure sends after `az dataprotection backup-instance suspend-backup` ("stop backup,
# retain data as per policy"; tests/fixtures/azure/PROVENANCE.md). They are the one-hot series of a
# Backup vault's items with STATE_SERIES=all; another value is kept as sent and counted once (BackupVault).
DPP_PROTECTION_STATES = ("Invalid", "NotProtected", "ConfiguringProtection", "ProtectionConfigured",
                         "BackupSchedulesSuspended", "RetentionSchedulesSuspended", "ProtectionStopped",
                         "ProtectionError", "ConfiguringProtectionFailed", "SoftDeleting", "SoftDeleted",
                         "UpdatingProtection", "BackupsSuspended")
# Azure is setting protection up or changing it (a new instance, a policy change): nothing is wrong, as with a
# Recovery Services item's IRPending. The health of an instance in these states is the state itself.
DPP_TRANSITIONAL_STATES = ("ConfiguringProtection", "UpdatingProtection")
DPP_HEALTH_STATUSES = (HEALTHY, UNHEALTHY)
# Every backup of a Backup vault is a job of operation `Backup`, whatever the rule's backupType (Incremental
# for disks and AKS, Discrete for vaulted blobs, Full for databases), and freshness.backup_kind reads `Backup`
# as `full`: a policy's schedule is therefore the `full` kind, the one its items' last successes are kept under.
_KIND = "full"


def _folded(value: Any) -> str:
    return value.strip().casefold() if isinstance(value, str) else ""


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def backup_management_type(datasource_type: str) -> str:
    """The backup_management_type label of a dataSourceType; an unknown type keeps Azure's string, so a new
    kind of data source is still told apart from the others."""
    return _FOLDED_DATASOURCE_TYPES.get(datasource_type.strip().lower(), datasource_type)


def datasource_table() -> str:
    """The README's table of Backup vault data source types and their labels (like catalogue.markdown_table)."""
    rows = ["| `dataSourceType` | `backup_management_type` |", "|---|---|"]
    rows.extend(f"| `{source}` | `{short}` |" for source, short in DATASOURCE_TYPES.items())
    return "\n".join(rows)


def resource_group_of(resource_id: str) -> str:
    """The resource group in an ARM ID (Azure writes both /resourceGroups/ and /resourcegroups/); '' if none."""
    match = _RESOURCE_GROUP.match(resource_id.strip())
    return match.group("rg") if match else ""


def _last_segment(resource_id: str) -> str:
    return resource_id.rstrip("/").rsplit("/", 1)[-1] if "/" in resource_id else ""


def data_source_key(resource_group: str, set_name: str, name: str) -> tuple[str, str]:
    """(container, backup_item) of a data source.

    The set is the data source's parent when it has one: a database's server. A disk has none (null), and
    for blobs, AKS, and flexible servers the set is the data source itself (same name); only a set that differs
    from the data source is part of the container, which tells apart two servers' databases of one name.
    """
    if set_name and set_name.casefold() != name.casefold():
        return "/".join(part for part in (resource_group, set_name) if part), name
    return resource_group, name


def _status(raw: Any, field: str, on_error: ErrorSink) -> str:
    """A job or task status in the exporter's words; an unknown one is kept as Azure sent it and counted."""
    status = _STATUSES.get(_folded(raw))
    if status is not None:
        return status
    log.debug("unknown %s=%r", field, raw)
    on_error(field)
    return _text(raw)


def _moment(props: Mapping[str, Any], field: str, on_error: ErrorSink) -> float | None:
    """Unix seconds of a date-time field; None when absent, null, or Azure's 'unset' (0001-01-01...)."""
    when = _optional(props, field, parse_timestamp, on_error)
    if when is None:
        return None
    # Azure writes DateTime.MinValue (0001-01-01T00:00:00Z, or with 7 zero digits) for "no time": any time
    # before 1970 is that, never a real backup.
    return when if when >= 0 else None


def _duration(props: Mapping[str, Any], start: float | None, end: float | None, on_error: ErrorSink) -> float | None:
    """Seconds the job ran: end - start when both are known (exact, and the same whatever form `duration`
    takes), else Azure's `duration`, ISO 8601 (PT4M9.8668428S, PT0S while running) or a .NET TimeSpan
    (00:04:09.8668428, 1.02:03:04): LIST, GET and Resource Graph send one job's duration in different forms."""
    if start is not None and end is not None and end >= start:
        return end - start
    raw = props.get("duration")
    if raw is None or raw == "":
        return None
    try:
        seconds = parse_duration(str(raw))
    except (ValueError, OverflowError):
        seconds = -1.0
    if not math.isfinite(seconds) or seconds < 0:
        # Negative durations occur (TimeSpan.MinValue, -10675199.02:48:05.4775808, for "unknown").
        log.debug("dropping unusable duration=%r", raw)
        on_error("duration")
        return None
    return seconds


def _transferred_bytes(info: Mapping[str, Any] | None, on_error: ErrorSink) -> float | None:
    """extendedInfo.dataTransferredInBytes when it is a number (the spec's double).

    Real jobs send null here; the strings in subTasks[].additionalDetails (OriginalDatasourceSizeInBytes) are
    the data source's size, not what the backup moved, so they are never taken for it.
    """
    raw = info.get("dataTransferredInBytes") if info is not None else None
    if raw is None:
        return None
    if not isinstance(raw, bool) and isinstance(raw, int | float):
        try:
            size = float(raw)
        except OverflowError:
            size = math.inf
        if math.isfinite(size) and size >= 0:
            return size
    log.debug("dropping unusable dataTransferredInBytes=%r", raw)
    on_error("dataTransferredInBytes")
    return None


def _sub_tasks(info: Mapping[str, Any] | None, on_error: ErrorSink) -> tuple[Task, ...] | None:
    """extendedInfo.subTasks as Tasks; None when extendedInfo is null (LIST: details not fetched)."""
    if info is None:
        return None
    tasks = info.get("subTasks")
    if tasks is None:
        return ()
    if not isinstance(tasks, list):
        on_error("subTasks")
        return ()
    parsed = []
    for task in tasks:
        if isinstance(task, Mapping) and isinstance(task.get("taskName"), str) and task["taskName"]:
            parsed.append(Task(_text(task["taskName"]), _status(task.get("taskStatus"), "taskStatus", on_error)))
        else:
            on_error("subTasks")
    return tuple(parsed)


def parse_dpp_job(resource: Mapping[str, Any], on_error: ErrorSink) -> Job | None:
    """A Job from an AzureBackupJobResource (Jobs_List item or Jobs_Get); None (counted as field 'job') if it
    has no ID or properties.

    Status: InProgress/Started -> InProgress, Completed/Succeeded -> Completed, CompletedWithWarnings, Failed,
    Cancelled and Cancelling as sent; any other (Paused, unknown) is kept as sent and counted as 'status'.
    container_name is the raw dataSourceId and workload_type the raw dataSourceType (info labels).
    """
    props = resource.get("properties")
    job_id = resource.get("name")
    if not isinstance(props, Mapping) or not isinstance(job_id, str) or not job_id:
        on_error("job")
        return None
    data_source_id = _text(props.get("dataSourceId"))
    datasource_type = _text(props.get("dataSourceType"))
    name = (_text(props.get("dataSourceName")) or _text(_last_segment(data_source_id))
            or _text(props.get("backupInstanceFriendlyName")))
    resource_group = resource_group_of(data_source_id) or _text(props.get("sourceResourceGroup"))
    container, item = data_source_key(resource_group, _text(props.get("dataSourceSetName")), name)
    named_as = (_text(container), item)
    start = _moment(props, "startTime", on_error)
    end = _moment(props, "endTime", on_error)
    info = props.get("extendedInfo") if isinstance(props.get("extendedInfo"), Mapping) else None
    return Job(
        job_id=job_id.lower(),
        job_type=JOB_TYPE,
        item=named_as[1],
        backup_management_type=_text(backup_management_type(datasource_type)),
        operation=_text(props.get("operation")),
        status=_status(props.get("status"), "status", on_error),
        start=start,
        end=end,
        duration=_duration(props, start, end, on_error),
        container=named_as[0],
        container_name=data_source_id,
        workload_type=datasource_type,
        size_bytes=_transferred_bytes(info, on_error),
        tasks=_sub_tasks(info, on_error),
        named_as=named_as,
        error=_job_error(props.get("errorDetails"), job_id, on_error),
    )


def _job_error(details: Any, job_id: str, on_error: ErrorSink) -> JobError | None:
    """A failed job's errorDetails, UserFacingError[] ({code, message, recommendedAction[], details[], ...}; a
    real failed restore, LIST 2024-04-01, nests the same code three levels deep): the first error's code, or
    the first nested code when the top one is empty. The title is the code again: Backup vaults have no
    separate symbolic title, and the alerts and runbook read one field for both kinds of vault."""
    if not details:
        return None
    first = details[0] if isinstance(details, list) else details
    if not isinstance(first, Mapping):
        on_error("errorDetails")
        return None
    code = error_identifier(_first_code(first), "code", on_error)
    log.debug("job %s failed with %s: %r", job_id, code, first.get("message"))
    return JobError(code, code)


def _first_code(error: Mapping[str, Any], depth: int = 0) -> Any:
    """The error's own code, else its first nested detail's (at most a few levels: Azure nests three)."""
    if error.get("code") or depth >= 5:
        return error.get("code")
    nested = error.get("details")
    if isinstance(nested, list) and nested and isinstance(nested[0], Mapping):
        return _first_code(nested[0], depth + 1)
    return error.get("code")


def _resource_id(info: Mapping[str, Any]) -> str:
    # The service answers `resourceID`; clients send `resourceId` in requests: accept both.
    return _text(info.get("resourceID")) or _text(info.get("resourceId"))


def _has_error(details: Any) -> bool:
    # An error detail is a UserFacingError object (or a list of them); null, {} and [] carry none.
    return bool(details)


def instance_health(props: Mapping[str, Any]) -> str:
    """A backup instance's health in the exporter's words (item health: Healthy or Unhealthy).

    `protectionStatus.status` says how protection is configured, not how backups go: ProtectionConfigured,
    ConfiguringProtection, ConfiguringProtectionFailed, ProtectionStopped, SoftDeleted, NotProtected... (an open
    set: the spec's own example sends NotProtected, outside its enum). The rule:
    - Unhealthy: an error detail is present (protectionStatus.errorDetails or protectionErrorDetails), or the
      status is ConfiguringProtectionFailed or ProtectionError;
    - Healthy: no error detail and the status is ProtectionConfigured;
    - otherwise the status as Azure sent it (ConfiguringProtection, UpdatingProtection, ProtectionStopped,
      SoftDeleted, ...); '' when there is none.
    Without a protectionStatus the currentProtectionState (same vocabulary) is read instead. The alerts read the
    states kept as sent by what they mean (exporter/vocabulary.py): a transitional one (DPP_TRANSITIONAL_STATES)
    is not unhealthy, one stopped on purpose is AzureBackupProtectionStopped's, any other is unhealthy.
    """
    status_block = _mapping(props.get("protectionStatus"))
    status = _text(status_block.get("status")) or _text(props.get("currentProtectionState"))
    if (_has_error(status_block.get("errorDetails")) or _has_error(props.get("protectionErrorDetails"))
            or _folded(status) in _FAILING_PROTECTION):
        return UNHEALTHY
    if _folded(status) == _CONFIGURED:
        return HEALTHY
    return status


def parse_backup_instance(resource: Mapping[str, Any], on_error: ErrorSink) -> ProtectedItem | None:
    """A ProtectedItem from a BackupInstanceResource (BackupInstances_List item); None (counted as field
    'item') without name or properties.

    friendly_name, the item's backup_item label, is the data source's name (dataSourceInfo.resourceName), the
    name its jobs give it (dataSourceName): properties.friendlyName differs for databases (`server\\db`, or the
    instance's own name) and is only a fallback. Backup instances carry no last backup: last_backup_status is
    '' and the times None, until the newest recovery point is filled in (parse_recovery_points). The states are
    kept as sent, known or not (unknown_states tells which are new).
    """
    props = resource.get("properties")
    name = resource.get("name")
    if not isinstance(props, Mapping) or not isinstance(name, str) or not name:
        on_error("item")
        return None
    info = _mapping(props.get("dataSourceInfo"))
    set_info = _mapping(props.get("dataSourceSetInfo"))
    resource_id = _resource_id(info)
    datasource_type = _text(info.get("datasourceType"))
    data_source = (_text(info.get("resourceName")) or _text(_last_segment(resource_id))
                   or _text(props.get("friendlyName")) or name)
    resource_group = resource_group_of(resource_id) or resource_group_of(_resource_id(set_info))
    container, item = data_source_key(resource_group, _text(set_info.get("resourceName")), data_source)
    return ProtectedItem(
        name=name,
        friendly_name=item,
        backup_management_type=_text(backup_management_type(datasource_type)),
        item_type=datasource_type,
        workload_type=datasource_type or _text(info.get("resourceType")),
        policy=policy_name_of(_text(_mapping(props.get("policyInfo")).get("policyId"))),
        container=_text(container),
        container_name=resource_id,
        source_resource_id=resource_id,
        last_backup_status="",
        last_backup_time=None,
        health_status=instance_health(props),
        protection_state=_text(props.get("currentProtectionState")),
        last_recovery_point=None,
        record_kind=_KIND,  # every recovery point is a backup of the policy's one (full) kind
    )


def unknown_states(item: ProtectedItem) -> list[tuple[str, str]]:
    """(Azure's field, value) of each state of a parsed backup instance that is outside DPP_PROTECTION_STATES:
    its currentProtectionState, and its protectionStatus.status where the health shows that as sent.

    The parser keeps such a value as sent (a new state is still seen on its series); the caller counts it, once
    per value rather than at every items refresh (BackupVault)."""
    unknown = []
    if item.protection_state and item.protection_state not in DPP_PROTECTION_STATES:
        unknown.append(("currentProtectionState", item.protection_state))
    health = item.health_status
    if (health not in (HEALTHY, UNHEALTHY, "", item.protection_state)
            and health not in DPP_PROTECTION_STATES):
        unknown.append(("protectionStatus", health))
    return unknown


def parse_recovery_points(resources: Iterable[Mapping[str, Any]], on_error: ErrorSink) -> float | None:
    """The newest recoveryPointTime (Unix seconds) among RecoveryPoints_List items (AzureBackupRecoveryPointResource
    of objectType AzureBackupDiscreteRecoveryPoint); None when there is none. Unset times (0001-01-01) are
    skipped; an item without properties counts as 'recoveryPoint', a time that does not parse as
    'recoveryPointTime'."""
    newest: float | None = None
    for resource in resources:
        props = resource.get("properties") if isinstance(resource, Mapping) else None
        if not isinstance(props, Mapping):
            on_error("recoveryPoint")
            continue
        if props.get("recoveryPointTime") is None:
            on_error("recoveryPointTime")  # required by the spec: a point without its time is unusable
            continue
        when = _moment(props, "recoveryPointTime", on_error)
        if when is not None and (newest is None or when > newest):
            newest = when
    return newest


def parse_dpp_policy(resource: Mapping[str, Any], on_error: ErrorSink) -> PolicyIntervals | None:
    """The expected interval of a BaseBackupPolicyResource (BackupPolicies_List item); None (counted as
    'policy') without a name, properties, or objectType BackupPolicy (the only kind the spec defines).

    Each AzureBackupRule schedules backups with `trigger.schedule.repeatingTimeIntervals`, ISO 8601 repeating
    intervals such as `R/2020-04-05T13:00:00+00:00/PT4H` (the period after the last '/': PT4H, P1D, P1W). A
    rule's interval is the longest gap between its runs (one interval: its period; several of one period, such
    as weekly on Monday and Thursday: the longest gap between their start times over the period). The policy's
    interval, kind `full`, is the longest of its rules' (an alert built on it waits for the slowest schedule).
    A policy without any scheduled AzureBackupRule has no interval: operational backup of blobs is continuous
    (AzureRetentionRule only), and then the exporter uses its default. A rule whose schedule does not parse is
    left out and counted as 'policy_schedule'.
    """
    name = resource.get("name") if isinstance(resource, Mapping) else None
    props = resource.get("properties") if isinstance(resource, Mapping) else None
    if (not isinstance(name, str) or not name or not isinstance(props, Mapping)
            or _folded(props.get("objectType")) != "backuppolicy"):
        on_error("policy")
        return None
    rules = props.get("policyRules")
    if not isinstance(rules, list):
        on_error("policy_schedule")
        rules = []
    longest: float | None = None
    for rule in rules:
        if not isinstance(rule, Mapping):
            on_error("policy_schedule")
            continue
        if _folded(rule.get("objectType")) != "azurebackuprule":
            continue  # AzureRetentionRule: how long points are kept, not when they are taken
        try:
            seconds = _rule_interval(rule)
        except ValueError as exc:
            log.debug("policy %s: unreadable schedule of rule %r: %s", name, rule.get("name"), exc)
            on_error("policy_schedule")
            continue
        if seconds is not None:
            longest = seconds if longest is None else max(longest, seconds)
    intervals = {_KIND: longest} if longest is not None else {}
    return PolicyIntervals(name=name, intervals=MappingProxyType(intervals))


def _rule_interval(rule: Mapping[str, Any]) -> float | None:
    """Seconds between the runs of one AzureBackupRule; None for an ad-hoc trigger (no schedule).

    Raises ValueError when the schedule is there but cannot be read.
    """
    trigger = _mapping(rule.get("trigger"))
    if _folded(trigger.get("objectType")) == "adhocbasedtriggercontext":
        return None
    intervals = _mapping(trigger.get("schedule")).get("repeatingTimeIntervals")
    if not isinstance(intervals, list) or not intervals:
        raise ValueError("no repeatingTimeIntervals")
    runs = [_repeating_interval(text) for text in intervals]
    periods = {period for _, period in runs}
    starts = [start for start, _ in runs if start is not None]
    if len(periods) == 1 and len(starts) == len(runs):
        return _longest_gap(starts, periods.pop())
    # Different periods in one rule (not seen): the longest period is a gap no run is further apart than.
    return max(periods)


def _repeating_interval(text: Any) -> tuple[float | None, float]:
    """(start in Unix seconds or None, period in seconds) of `R[n]/<start>/<period>`."""
    if not isinstance(text, str):
        raise ValueError(f"repeating interval {text!r} is not a string")
    parts = text.strip().split("/")
    if len(parts) != 3 or not parts[0].upper().startswith("R"):
        raise ValueError(f"not an ISO 8601 repeating interval: {text!r}")
    period_text = parts[-1].strip()
    if not period_text.upper().startswith("P"):
        raise ValueError(f"no ISO 8601 period in {text!r}")
    period = parse_duration(period_text)
    if not math.isfinite(period) or period <= 0:
        raise ValueError(f"non-positive period in {text!r}")
    return _start(parts[1]), period


def _start(text: str) -> float | None:
    # Only the start times' differences matter; one that does not parse leaves the rule at its period.
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _longest_gap(starts: list[float], period: float) -> float:
    """The longest gap between runs that each repeat every `period` seconds from their start."""
    points = sorted({start % period for start in starts})
    gaps = [later - earlier for earlier, later in pairwise(points)]
    gaps.append(points[0] + period - points[-1])
    return max(gaps)


def parse_backup_vault(resource: Mapping[str, Any], on_error: ErrorSink) -> DiscoveredVault | None:
    """A Backup vault (kind `backup`) from a BackupVaults_GetInSubscription item or a BackupVaults_Get; None
    (counted as field 'vault') if its ID is not a Backup vault's. IDs come with any casing of
    /resourceGroups/ and /backupVaults/ (`.../BackupVaults/ExampleVault1`); the location is lower-cased."""
    return parse_vault(resource, on_error, kind=BACKUP)
