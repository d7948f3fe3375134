"""A fake Azure Resource Manager and managed-identity endpoint, served over real HTTP on loopback.

It stands in for the parts of Azure the exporter talks to, and behaves like the real service
where the real service is awkward (see the real payloads in tests/fixtures/azure):

* Recovery Services vault list and GET, backupJobs LIST and GET, backupProtectedItems LIST, each
  behind a bearer token and a required ``api-version``, with ARM's error bodies and headers.
* LIST pages hold at most ``page_size`` entries: jobs newest first, never with ``extendedInfo``;
  protected items by name. ``nextLink`` reproduces the real quirks: an older api-version (2017-07-01),
  the ``$filter`` re-encoded the .NET way, and a URL-encoded XML ``$skiptoken``. A token that was
  altered, encoded twice or issued for another vault or list is refused, so a client that mangles it
  is caught.
* ``$filter`` with ``eq`` clauses joined by ``and``: for jobs, dates in the service's
  ``yyyy-MM-dd hh:mm:ss tt`` UTC form; for protected items, ``backupManagementType`` and ``itemType``.
* Protected items of every type in their real shape (make_protected_item), each field where that
  type really has it; two items may share a name in different containers, as in Azure. Databases in VMs
  are named by their jobs as Azure names them, not by the item's friendlyName (workload_job_name).
* Faults per vault (error status, throttling, slow replies, broken JSON, an off-host nextLink),
  per subscription's vault list of one kind (FakeArm.set_vault_list_fault), and for the token endpoint,
  optionally for the next N requests only.
* Backup vaults (Microsoft.DataProtection; FakeBackupVault, make_dpp_job and its siblings): the vault list and
  GET, backupJobs LIST (every stored job, $filter ignored as the API declares none; extendedInfo null, a .NET
  TimeSpan duration, "nextLink": null on the last page) and GET (extendedInfo with subTasks, ISO duration, endTime
  null while running), backupInstances (no nextLink key on the last page), backupPolicies and an instance's
  recoveryPoints ($filter on startDate/endDate), paged with an opaque $skipToken; behind the same token check,
  api-version rule, faults and token bucket as the Recovery Services routes. A subscription not registered for
  a resource provider (FakeEstate.unregister_provider) gets ARM's 409 MissingSubscriptionRegistration.
* The App Service flavour of the managed-identity endpoint, which azure-identity uses when
  ``IDENTITY_ENDPOINT`` and ``IDENTITY_HEADER`` are set.
* ARM's read token bucket, one per subscription (capacity 250, refilled ``ratelimit_refill`` per second):
  the ``x-ms-ratelimit-remaining-*`` headers report the subscription's bucket, and with
  ``enforce_ratelimit`` an empty bucket answers 429 ``SubscriptionRequestsThrottled`` with ``Retry-After``.
* Counters of its own (FakeArm.stats()): request counts by operation and status, the last request's time
  and the buckets. Routes that are not Azure APIs are not built in: tests and the benchmark add them with
  FakeArm.add_route (tests/fake_stats.py and bench/fake_server.py serve stats() over HTTP that way).

It ships in the package because ``--demo`` serves a simulated estate through it (see demo.py).
Stored jobs are served as they are: a running job's duration only grows when someone updates it.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import functools
import hashlib
import json
import logging
import math
import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Literal, cast, overload
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlsplit

from requests.structures import CaseInsensitiveDict

from .resources import PATH as RESOURCES_PATH
from .resources import FakeResources

log = logging.getLogger(__name__)

Json = dict[str, Any]
# An extra, read-only route outside ARM (FakeArm.add_route): called for each GET, it returns the JSON to serve.
ExtraRoute = Callable[[], Json]

VAULT_RESOURCE_TYPE = "Microsoft.RecoveryServices/vaults"
JOB_RESOURCE_TYPE = "Microsoft.RecoveryServices/vaults/backupJobs"
PROTECTED_ITEM_RESOURCE_TYPE = "Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/protectedItems"
ITEM_RECOVERY_POINT_RESOURCE_TYPE = f"{PROTECTED_ITEM_RESOURCE_TYPE}/recoveryPoints"
# A Recovery Services vault's guards against deletion, as the spec's GETVault.json (2024-04-01) shows them.
RSV_SECURITY_SETTINGS: Json = {
    "immutabilitySettings": {"state": "Disabled"},
    "softDeleteSettings": {"softDeleteRetentionPeriodInDays": 14, "softDeleteState": "Enabled",
                           "enhancedSecurityState": "Enabled"},
    "multiUserAuthorization": "Disabled",
}
NEXT_LINK_API_VERSION = "2017-07-01"  # what the real service puts into nextLink, whatever the request used
IDENTITY_API_VERSION = "2019-08-01"
RATELIMIT_CAPACITY = 250  # ARM's read bucket per subscription and principal (azure-api.md 4.1)
# ARM's own answer when a subscription's read bucket is empty, as a client recorded it (velero-io/velero#9171).
THROTTLED_CODE = "SubscriptionRequestsThrottled"
THROTTLED_MESSAGE = ("Number of 'read' requests for subscription '{subscription}' actor '{actor}' exceeded. Please "
                     "try again after '{seconds}' seconds after additional tokens are available. Refer to "
                     "https://aka.ms/arm-throttling for additional information.")

# api-versions ARM accepts per resource provider (azure-api.md 1.2 and 3): a client that asks for a
# version that does not exist gets the same 400 it would get from Azure.
JOBS_API_VERSIONS = frozenset({
    "2016-06-01", "2016-12-01", "2017-07-01", "2018-12-20", "2019-05-13", "2019-06-15", "2020-02-02",
    "2020-07-01", "2020-10-01", "2020-12-01", "2021-01-01", "2021-02-01", "2021-02-10", "2021-03-01",
    "2021-04-01", "2021-06-01", "2021-07-01", "2021-08-01", "2021-10-01", "2021-11-15", "2021-12-01",
    "2022-01-01", "2022-02-01", "2022-03-01", "2022-04-01", "2022-10-01", "2023-01-01", "2023-01-15",
    "2023-02-01", "2023-04-01", "2023-06-01", "2023-08-01", "2024-01-01", "2024-02-01", "2024-04-01",
    "2024-10-01", "2025-01-01", "2025-02-01", "2025-08-01", "2026-01-01", "2026-02-01",
    "2021-02-01-preview", "2022-06-01-preview", "2022-09-01-preview", "2022-09-30-preview",
    "2024-04-30-preview", "2024-07-30-preview", "2024-11-01-preview", "2025-02-28-preview",
    "2026-01-31-preview", "2026-03-31-preview",
})
VAULTS_API_VERSIONS = frozenset({
    "2016-06-01", "2020-02-02", "2020-10-01", "2021-01-01", "2021-02-10", "2021-03-01", "2021-04-01",
    "2021-06-01", "2021-07-01", "2021-08-01", "2021-12-01", "2022-01-01", "2022-02-01", "2022-03-01",
    "2022-04-01", "2022-05-01", "2022-08-01", "2022-09-10", "2022-10-01", "2023-01-01", "2023-02-01",
    "2023-04-01", "2023-06-01", "2023-08-01", "2024-01-01", "2024-02-01", "2024-04-01", "2024-10-01",
    "2025-01-01", "2025-02-01", "2025-08-01", "2026-01-01", "2026-02-01", "2026-05-01", "2026-07-01",
    "2026-08-01",
})
# Token audiences of the public and sovereign clouds (azure-api.md 4.3); the fake stands in for any of them.
ARM_AUDIENCES = frozenset({
    "https://management.core.windows.net", "https://management.azure.com",
    "https://management.core.usgovcloudapi.net", "https://management.usgovcloudapi.net",
    "https://management.core.chinacloudapi.cn", "https://management.chinacloudapi.cn",
})

# Value sets of JobQueryObject, the model behind $filter (azure-api.md 1.6).
JOB_STATUSES = ("Invalid", "InProgress", "Completed", "Failed", "CompletedWithWarnings", "Cancelled", "Cancelling")
JOB_OPERATIONS = ("Invalid", "Register", "UnRegister", "ConfigureBackup", "Backup", "Restore", "DisableBackup",
                  "DeleteBackupData", "CrossRegionRestore", "Undelete", "UpdateCustomerManagedKey")
BACKUP_MANAGEMENT_TYPES = ("Invalid", "AzureIaasVM", "MAB", "DPM", "AzureBackupServer", "AzureSql",
                           "AzureStorage", "AzureWorkload", "DefaultBackup")
# DataSourceType, the values of a protected-items $filter's itemType (it selects on workloadType).
ITEM_TYPES = ("Invalid", "VM", "FileFolder", "AzureSqlDb", "SQLDB", "Exchange", "Sharepoint", "VMwareVM",
              "SystemState", "Client", "GenericDataSource", "SQLDataBase", "AzureFileShare", "SAPHanaDatabase",
              "SAPAseDatabase", "SAPHanaDBInstance")

# Message texts of real error bodies (tests/fixtures/azure/arm-errors; a test checks they still match).
GATEWAY_NOT_FOUND_MESSAGE = ("The Resource '{resource_type}/{name}' under resource group '{resource_group}' was not "
                             "found. For more details please go to https://aka.ms/ARMResourceNotFoundFix")
AUTHORIZATION_FAILED_MESSAGE = (
    "The client '{client}' with object id '{object_id}' does not have authorization to perform action "
    "'{action}' over scope '{scope}' or the scope is invalid. If access was recently granted, please refresh "
    "your credentials.")
JOB_NOT_FOUND_CODE = "BMSUserErrorDataSourceObjectNotFound"
JOB_NOT_FOUND_MESSAGE = ("Item not found. Selected item might have been deleted. "
                         "Please check if item is registered to the vault.")
INVALID_INPUT_CODE = "BMSUserErrorInvalidInput"
FAKE_PRINCIPAL_ID = "5f1c2a8e-0d3b-4c7a-9e61-2b8d4f0a7c13"  # the "managed identity" the fake's tokens belong to

FaultKind = Literal["status", "throttle", "timeout", "malformed", "offhost_nextlink"]
FAULT_KINDS: tuple[str, ...] = ("status", "throttle", "timeout", "malformed", "offhost_nextlink")
# Requests a vault fault can apply to; "*_next_page" is a LIST that follows a nextLink. A fault is set per
# vault name; a Recovery Services vault and a Backup vault may share one, so the two sets below tell them apart.
RSV_FAULT_OPERATIONS = frozenset({"vault_get", "jobs_list", "jobs_next_page", "jobs_get", "items_list",
                                  "items_next_page", "policies_list", "policies_next_page",
                                  "item_recovery_points_list", "item_recovery_points_next_page"})
DPP_FAULT_OPERATIONS = frozenset({"dpp_vault_get", "dpp_jobs_list", "dpp_jobs_next_page", "dpp_jobs_get",
                                  "dpp_instances_list", "dpp_instances_next_page", "dpp_policies_list",
                                  "dpp_policies_next_page", "dpp_recovery_points_list",
                                  "dpp_recovery_points_next_page"})
FAULT_OPERATIONS = RSV_FAULT_OPERATIONS | DPP_FAULT_OPERATIONS
# A subscription's vault list of each kind (FakeArm.set_vault_list_fault): a role may read one kind and not the
# other, or an api-version may be served for one provider only, so each list fails on its own.
RSV_LIST_FAULT_OPERATIONS = frozenset({"vaults_list"})
DPP_LIST_FAULT_OPERATIONS = frozenset({"dpp_vaults_list", "dpp_vaults_next_page"})
VAULT_LIST_FAULT_OPERATIONS = RSV_LIST_FAULT_OPERATIONS | DPP_LIST_FAULT_OPERATIONS

# --- Backup vaults (Microsoft.DataProtection, "DPP") ------------------------------------------------
# Real payloads: tests/fixtures/azure/dataprotection (PROVENANCE.md); digest: the research notes on Backup vaults.

RSV_NAMESPACE = "Microsoft.RecoveryServices"
DPP_NAMESPACE = "Microsoft.DataProtection"
BACKUP_VAULT_RESOURCE_TYPE = "Microsoft.DataProtection/backupVaults"  # as a real GET writes it (the spec: BackupVaults)
DPP_JOB_RESOURCE_TYPE = "Microsoft.DataProtection/backupVaults/backupJobs"
BACKUP_INSTANCE_RESOURCE_TYPE = "Microsoft.DataProtection/backupVaults/backupInstances"
DPP_POLICY_RESOURCE_TYPE = "Microsoft.DataProtection/backupVaults/backupPolicies"
RECOVERY_POINT_RESOURCE_TYPE = "Microsoft.DataProtection/backupVaults/backupInstances/recoveryPoints"
# Stable and preview api-versions of the DataProtection readme (newest stable 2026-06-01); real traffic used
# 2024-04-01 (Azure CLI) and 2026-03-01 (PowerShell).
DPP_API_VERSIONS = frozenset({
    "2021-01-01", "2021-07-01", "2022-01-01", "2022-03-01", "2022-04-01", "2022-05-01", "2022-12-01",
    "2023-01-01", "2023-05-01", "2023-11-01", "2023-12-01", "2024-03-01", "2024-04-01", "2025-01-01",
    "2025-02-01", "2025-07-01", "2025-09-01", "2026-03-01", "2026-06-01",
    "2024-02-01-preview", "2026-04-01-preview", "2026-08-31-preview",
})
# ARM's answer for a resource provider the subscription is not registered for: 409 with this code, and the
# namespace repeated as the detail's target (GitHub issue Azure/data-product-streaming#12, 2021; the fixture
# dataprotection/fake-issue.409.MissingSubscriptionRegistration.json).
MISSING_REGISTRATION_CODE = "MissingSubscriptionRegistration"
MISSING_REGISTRATION_MESSAGE = ("The subscription is not registered to use namespace '{namespace}'. See "
                                "https://aka.ms/rps-not-found for how to register subscriptions.")
# A GET's targetRecoverPoint.recoveryPointTime when unset (the real completed backups show it).
UNSET_RECOVERY_POINT_TIME = "0001-01-01T00:00:00Z"
DPP_BAD_REQUEST_CODE = "BadRequest"  # no real DPP 400 was captured: the generic code
NextLinkOnLastPage = Literal["null", "absent"]


# --- Azure's value formats ------------------------------------------------------------------------

TICKS_PER_SECOND = 10_000_000  # .NET ticks are 100 ns; Azure's timestamps and durations carry 7 digits
_DOTNET_EPOCH = datetime(1, 1, 1, tzinfo=UTC)
_DOTNET_MAX_TICKS = 3_155_378_975_999_999_999  # DateTime.MaxValue.Ticks, the base of the real row keys
_AZURE_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,7}))?Z$")
_FILTER_TIME = re.compile(r"^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2}) ([AP]M)$", re.IGNORECASE)


def to_ticks(moment: datetime) -> int:
    """.NET ticks (100 ns since 0001-01-01 UTC) of an aware datetime; naive ones are taken as UTC."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return (aware.astimezone(UTC) - _DOTNET_EPOCH) // timedelta(microseconds=1) * 10


def ticks_to_datetime(ticks: int) -> datetime:
    return _DOTNET_EPOCH + timedelta(microseconds=ticks // 10)


def format_ticks(ticks: int) -> str:
    """A timestamp the way Azure writes it: up to 7 fractional digits, trailing zeros dropped, 'Z'."""
    seconds, fraction = divmod(ticks, TICKS_PER_SECOND)
    text = (_DOTNET_EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S")
    digits = f"{fraction:07d}".rstrip("0")
    return f"{text}.{digits}Z" if digits else f"{text}Z"


def azure_time(moment: datetime, extra_ticks: int = 0) -> str:
    """format_ticks of a datetime; `extra_ticks` adds the 7th digit that datetime cannot hold."""
    return format_ticks(to_ticks(moment) + extra_ticks)


@functools.lru_cache(maxsize=1 << 19)
def parse_azure_time(text: str) -> int:
    """Ticks of a timestamp in Azure's form; ValueError otherwise. Cached: every LIST filters and sorts the
    vault's jobs by start time, and parsing each again made the fake, not the exporter, the benchmark's limit."""
    match = _AZURE_TIME.match(text)
    if not match:
        raise ValueError(f"not an Azure timestamp: {text!r}")
    whole = datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    return to_ticks(whole) + int((match.group(2) or "").ljust(7, "0"))


def _split_ticks(ticks: int) -> tuple[int, int, int, int, int]:
    days, rest = divmod(abs(ticks), 86_400 * TICKS_PER_SECOND)
    hours, rest = divmod(rest, 3_600 * TICKS_PER_SECOND)
    minutes, rest = divmod(rest, 60 * TICKS_PER_SECOND)
    seconds, fraction = divmod(rest, TICKS_PER_SECOND)
    return days, hours, minutes, seconds, fraction


def iso_duration(ticks: int) -> str:
    """ISO-8601 as .NET's XmlConvert writes a TimeSpan: 'PT41M17.9270278S', 'P1DT2H', 'PT0S'."""
    days, hours, minutes, seconds, fraction = _split_ticks(ticks)
    clock = (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    if seconds or fraction:
        digits = f"{fraction:07d}".rstrip("0")
        clock += f"{seconds}.{digits}S" if digits else f"{seconds}S"
    if not days and not clock:
        return "PT0S"
    sign = "-" if ticks < 0 else ""
    return f"{sign}P{f'{days}D' if days else ''}{f'T{clock}' if clock else ''}"


def dotnet_duration(ticks: int) -> str:
    """.NET TimeSpan in its 'c' format: '00:20:23.0896697', '1.02:03:04.5000000', '00:00:00'."""
    days, hours, minutes, seconds, fraction = _split_ticks(ticks)
    text = f"{hours:02d}:{minutes:02d}:{seconds:02d}" + (f".{fraction:07d}" if fraction else "")
    if days:
        text = f"{days}.{text}"
    return f"-{text}" if ticks < 0 else text


def parse_filter_time(text: str) -> datetime:
    """A $filter date, 'yyyy-MM-dd hh:mm:ss tt' in UTC. Hour 00 is accepted like 12 (the spec's own example)."""
    match = _FILTER_TIME.match(text)
    if not match:
        raise ValueError(f"date {text!r} is not in the format 'yyyy-MM-dd hh:mm:ss tt'")
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    if hour > 12:
        raise ValueError(f"hour {hour} in {text!r} is not on a 12-hour clock")
    hour = hour % 12 + (12 if match.group(7).upper() == "PM" else 0)
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def _us_datetime(moment: datetime) -> str:
    """The US-style local strings found in propertyBag values, e.g. '6/12/2022 12:00:00 AM'."""
    hour = moment.hour % 12 or 12
    meridiem = "PM" if moment.hour >= 12 else "AM"
    return f"{moment.month}/{moment.day}/{moment.year} {hour}:{moment.minute:02d}:{moment.second:02d} {meridiem}"


def encode_query_value(value: str) -> str:
    """Encode like .NET's HttpUtility.UrlEncode, which the real nextLink shows: '+' for spaces, lower-case hex."""
    encoded = quote_plus(value, safe="!*()")
    return re.sub(r"%[0-9A-F]{2}", lambda escape: escape.group(0).lower(), encoded)


def table_key(plain: str) -> str:
    """An Azure Table continuation key as in the real skiptoken: '1!<length>!<base64, '=' written as '-'>'."""
    encoded = base64.b64encode(plain.encode()).decode().replace("=", "-")
    return f"1!{len(encoded)}!{encoded}"


def continuation_token(partition_key: str, row_key: str) -> str:
    """The XML continuation token the Backup service puts, URL-encoded, into $skiptoken."""
    return (
        '<?xml version="1.0" encoding="utf-16"?>\r\n<ContinuationToken>\r\n  <ContinuationToken>\r\n'
        "    <Version>2.0</Version>\r\n    <Type>Table</Type>\r\n"
        f"    <NextPartitionKey>{partition_key}</NextPartitionKey>\r\n"
        f"    <NextRowKey>{row_key}</NextRowKey>\r\n"
        "    <TargetLocation>Primary</TargetLocation>\r\n  </ContinuationToken>\r\n</ContinuationToken>"
    )


def error_body(code: str, message: str) -> Json:
    return {"error": {"code": code, "message": message}}


# --- the estate -----------------------------------------------------------------------------------


@dataclass
class FakeVault:
    """A Recovery Services vault (Microsoft.RecoveryServices/vaults)."""

    resource_type: ClassVar[str] = VAULT_RESOURCE_TYPE

    subscription_id: str
    resource_group: str
    name: str
    location: str = "westeurope"
    jobs: dict[str, Json] = field(default_factory=dict)  # job GUID -> JobResource as GET returns it
    # ProtectedItemResources as listed, by lower-cased id (or name, if stored without an id). A name is unique
    # only within its container: two SQL VMs may both protect a database `master`, one name and two ids.
    items: dict[str, Json] = field(default_factory=dict)
    policies: dict[str, Json] = field(default_factory=dict)  # ProtectionPolicyResources by lower-cased name
    # A protected item's lower-cased id -> recovery point name -> RecoveryPointResource (a database's points)
    item_recovery_points: dict[str, dict[str, Json]] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    # properties.securitySettings as the spec's GETVault.json (2024-04-01) shows them; None: not in the payload
    security: Json | None = field(default_factory=lambda: copy.deepcopy(RSV_SECURITY_SETTINGS))

    @property
    def id(self) -> str:
        return (f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
                f"/providers/Microsoft.RecoveryServices/vaults/{self.name}")

    def resource(self) -> Json:
        """The vault as the vault list and GET return it (shape of ListBySubscriptionIds.json, with the
        securitySettings of the spec's GETVault.json)."""
        properties: Json = {"provisioningState": "Succeeded"}
        if self.security is not None:
            properties["securitySettings"] = copy.deepcopy(self.security)
        return {
            "name": self.name,
            "type": VAULT_RESOURCE_TYPE,
            "etag": "W/\"datetime'2026-01-05T09%3A12%3A40.118Z'\"",
            "id": self.id,
            "location": self.location,
            "properties": properties,
            "sku": {"name": "Standard"},
            "tags": dict(self.tags),
        }


@dataclass
class FakeBackupVault:
    """A Backup vault (Microsoft.DataProtection/backupVaults): its jobs, backup instances, policies and recovery
    points. It may share its name and resource group with a Recovery Services vault; the estate keeps both."""

    resource_type: ClassVar[str] = BACKUP_VAULT_RESOURCE_TYPE

    subscription_id: str
    resource_group: str
    name: str
    location: str = "westeurope"
    jobs: dict[str, Json] = field(default_factory=dict)  # job GUID -> AzureBackupJobResource as GET returns it
    instances: dict[str, Json] = field(default_factory=dict)  # lower-cased name -> BackupInstanceResource
    policies: dict[str, Json] = field(default_factory=dict)  # lower-cased name -> BaseBackupPolicyResource
    # lower-cased backup instance name -> recovery point name -> AzureBackupRecoveryPointResource
    recovery_points: dict[str, dict[str, Json]] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    # properties.securitySettings (the real GET's and Resource Graph row's soft delete On, 14.0 days), and
    # isVaultProtectedByResourceGuard (None: left out, as in the spec's list example)
    security: Json = field(default_factory=lambda: {"softDeleteSettings": {"retentionDurationInDays": 14.0,
                                                                           "state": "On"}})
    resource_guard: bool | None = None

    @property
    def id(self) -> str:
        return (f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
                f"/providers/Microsoft.DataProtection/backupVaults/{self.name}")

    def resource(self) -> Json:
        """The vault as the vault list and GET return it: the keys of GetBackupVaultsInSubscription.json; the type
        and the values a real vault GET (2024-04-01) and Resource Graph row showed (bcdrSecurityLevel Poor,
        secureScore None, soft delete On for 14.0 days, locally redundant VaultStore). featureSettings' value is
        illustrative."""
        properties: Json = {
            "bcdrSecurityLevel": "Poor",
            "featureSettings": {"crossRegionRestoreSettings": {"state": "Disabled"}},
            "provisioningState": "Succeeded",
            "secureScore": "None",
            "securitySettings": copy.deepcopy(self.security),
            "storageSettings": [{"type": "LocallyRedundant", "datastoreType": "VaultStore"}],
        }
        if self.resource_guard is not None:
            properties["isVaultProtectedByResourceGuard"] = self.resource_guard
        return {
            "name": self.name,
            "type": BACKUP_VAULT_RESOURCE_TYPE,
            "id": self.id,
            "location": self.location,
            "properties": properties,
            "tags": dict(self.tags),
        }


class VaultList:
    """A snapshot of the estate's vaults: iterate it for FakeVaults; index it by (case-insensitive) name,
    or by position in the order they were added."""

    def __init__(self, vaults: list[FakeVault]) -> None:
        self._vaults = vaults

    def __iter__(self) -> Iterator[FakeVault]:
        return iter(self._vaults)

    def __len__(self) -> int:
        return len(self._vaults)

    def __getitem__(self, name: str | int) -> FakeVault:
        if isinstance(name, int):
            return self._vaults[name]
        for vault in self._vaults:
            if vault.name.lower() == name.lower():
                return vault
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and any(vault.name.lower() == name.lower() for vault in self._vaults)


class FakeEstate:
    """Vaults, their jobs and their protected items, and Backup vaults with theirs. One lock: tests and the demo
    simulator mutate it while the server reads.

    Recovery Services vaults and Backup vaults live apart (the *_vault and *backup_vault* methods): one of each may
    share a name and resource group. Names are unique among the vaults of one kind in an estate.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._vaults: dict[str, FakeVault] = {}  # lower-cased name -> vault; names are unique in an estate
        self._backup_vaults: dict[str, FakeBackupVault] = {}  # lower-cased name -> Backup vault
        self._subscriptions: dict[str, str] = {}  # lower-cased -> as added
        self._unregistered: set[tuple[str, str]] = set()  # (subscription, namespace), lower-cased
        self.resources = FakeResources(self.add_subscription)  # the protectable resources (resources.py)

    # -- vaults --

    def add_subscription(self, subscription_id: str) -> None:
        """Make a subscription known without vaults (an unknown one answers 404 SubscriptionNotFound)."""
        with self.lock:
            self._subscriptions.setdefault(subscription_id.lower(), subscription_id)

    def add_vault(self, subscription_id: str, resource_group: str, name: str,
                  location: str = "westeurope") -> FakeVault:
        with self.lock:
            if name.lower() in self._vaults:
                raise ValueError(f"vault {name!r} already exists; vault names must be unique in a FakeEstate")
            vault = FakeVault(subscription_id, resource_group, name, location)
            self._vaults[name.lower()] = vault
            self.add_subscription(subscription_id)
            return vault

    def remove_vault(self, name: str) -> None:
        """The vault is deleted: ARM answers 404 for it from now on."""
        with self.lock:
            del self._vaults[name.lower()]

    @property
    def vaults(self) -> VaultList:
        with self.lock:
            return VaultList(list(self._vaults.values()))

    def vault(self, name: str) -> FakeVault:
        with self.lock:
            return self._vaults[name.lower()]

    def find_vault(self, subscription_id: str, resource_group: str, name: str) -> FakeVault | None:
        """The vault at this ARM path, matched case-insensitively like ARM does."""
        with self.lock:
            vault = self._vaults.get(name.lower())
        if vault and (vault.subscription_id.lower(), vault.resource_group.lower()) == (
                subscription_id.lower(), resource_group.lower()):
            return vault
        return None

    def vaults_in(self, subscription_id: str) -> list[FakeVault]:
        with self.lock:
            return [v for v in self._vaults.values() if v.subscription_id.lower() == subscription_id.lower()]

    def knows_subscription(self, subscription_id: str) -> bool:
        with self.lock:
            return subscription_id.lower() in self._subscriptions

    def knows_resource_group(self, subscription_id: str, resource_group: str) -> bool:
        vaults: list[FakeVault | FakeBackupVault] = [*self.vaults_in(subscription_id),
                                                     *self.backup_vaults_in(subscription_id)]
        return any(v.resource_group.lower() == resource_group.lower() for v in vaults)

    # -- resource provider registration --

    def unregister_provider(self, subscription_id: str, namespace: str = DPP_NAMESPACE) -> None:
        """The subscription is not registered for this resource provider: ARM answers every request to the
        namespace with 409 MissingSubscriptionRegistration. The subscription itself becomes known."""
        with self.lock:
            self.add_subscription(subscription_id)
            self._unregistered.add((subscription_id.lower(), namespace.lower()))

    def register_provider(self, subscription_id: str, namespace: str = DPP_NAMESPACE) -> None:
        with self.lock:
            self._unregistered.discard((subscription_id.lower(), namespace.lower()))

    def provider_registered(self, subscription_id: str, namespace: str) -> bool:
        with self.lock:
            return (subscription_id.lower(), namespace.lower()) not in self._unregistered

    # -- Backup vaults (Microsoft.DataProtection) --

    def add_backup_vault(self, subscription_id: str, resource_group: str, name: str,
                         location: str = "westeurope") -> FakeBackupVault:
        with self.lock:
            if name.lower() in self._backup_vaults:
                raise ValueError(f"Backup vault {name!r} already exists; Backup vault names must be unique in a "
                                 "FakeEstate")
            vault = FakeBackupVault(subscription_id, resource_group, name, location)
            self._backup_vaults[name.lower()] = vault
            self.add_subscription(subscription_id)
            return vault

    def remove_backup_vault(self, name: str) -> None:
        """The Backup vault is deleted: ARM answers 404 for it from now on."""
        with self.lock:
            del self._backup_vaults[name.lower()]

    @property
    def backup_vaults(self) -> list[FakeBackupVault]:
        with self.lock:
            return list(self._backup_vaults.values())

    def backup_vault(self, name: str) -> FakeBackupVault:
        with self.lock:
            return self._backup_vaults[name.lower()]

    def find_backup_vault(self, subscription_id: str, resource_group: str, name: str) -> FakeBackupVault | None:
        """The Backup vault at this ARM path, matched case-insensitively like ARM does."""
        with self.lock:
            vault = self._backup_vaults.get(name.lower())
        if vault and (vault.subscription_id.lower(), vault.resource_group.lower()) == (
                subscription_id.lower(), resource_group.lower()):
            return vault
        return None

    def backup_vaults_in(self, subscription_id: str) -> list[FakeBackupVault]:
        with self.lock:
            return [v for v in self._backup_vaults.values() if v.subscription_id.lower() == subscription_id.lower()]

    def add_dpp_job(self, vault_name: str, job: Mapping[str, Any]) -> None:
        """Store an AzureBackupJobResource as GET returns it (make_dpp_job); a job with the same name is replaced.
        The LIST derives its own form from it (extendedInfo null, a TimeSpan duration)."""
        name = job.get("name")
        if not isinstance(name, str) or not isinstance(job.get("properties"), Mapping):
            raise ValueError("a job needs a 'name' (its GUID) and 'properties'")
        with self.lock:
            self.backup_vault(vault_name).jobs[name] = copy.deepcopy(dict(job))

    def update_dpp_job(self, vault_name: str, job_id: str, **properties: Any) -> None:
        """Set properties of the job (e.g. status, endTime, duration, extendedInfo). Unlike update_job, None is
        stored as null: a Backup vault job keeps its keys and shows null (endTime while it runs)."""
        with self.lock:
            jobs = self.backup_vault(vault_name).jobs
            key = _find_key(jobs, job_id)
            if key is None:
                raise KeyError(f"no job {job_id!r} in Backup vault {vault_name!r}")
            jobs[key]["properties"].update(copy.deepcopy(properties))

    def remove_dpp_job(self, vault_name: str, job_id: str) -> None:
        with self.lock:
            jobs = self.backup_vault(vault_name).jobs
            key = _find_key(jobs, job_id)
            if key is not None:
                del jobs[key]

    def dpp_job(self, vault_name: str, job_id: str) -> Json | None:
        """A copy of one Backup vault job as GET returns it, looked up case-insensitively, or None."""
        with self.lock:
            jobs = self.backup_vault(vault_name).jobs
            key = _find_key(jobs, job_id)
            return copy.deepcopy(jobs[key]) if key is not None else None

    def dpp_jobs(self, vault_name: str) -> list[Json]:
        with self.lock:
            return copy.deepcopy(list(self.backup_vault(vault_name).jobs.values()))

    def add_backup_instance(self, vault_name: str, instance: Mapping[str, Any]) -> None:
        """Store a BackupInstanceResource (make_backup_instance); one with the same name, in any case, is
        replaced. Its recovery points stay."""
        name = instance.get("name")
        if not isinstance(name, str) or not isinstance(instance.get("properties"), Mapping):
            raise ValueError("a backup instance needs a 'name' and 'properties'")
        with self.lock:
            self.backup_vault(vault_name).instances[name.lower()] = copy.deepcopy(dict(instance))

    def update_backup_instance(self, vault_name: str, name: str, **properties: Any) -> None:
        """Set properties of the instance (e.g. currentProtectionState, protectionStatus)."""
        with self.lock:
            stored = self.backup_vault(vault_name).instances.get(name.lower())
            if stored is None:
                raise KeyError(f"no backup instance {name!r} in Backup vault {vault_name!r}")
            stored["properties"].update(copy.deepcopy(properties))

    def remove_backup_instance(self, vault_name: str, name: str) -> None:
        """The instance is gone, with its recovery points."""
        with self.lock:
            vault = self.backup_vault(vault_name)
            vault.instances.pop(name.lower(), None)
            vault.recovery_points.pop(name.lower(), None)

    def backup_instance(self, vault_name: str, name: str) -> Json | None:
        with self.lock:
            stored = self.backup_vault(vault_name).instances.get(name.lower())
            return copy.deepcopy(stored) if stored is not None else None

    def backup_instances(self, vault_name: str) -> list[Json]:
        with self.lock:
            return copy.deepcopy(list(self.backup_vault(vault_name).instances.values()))

    def add_dpp_policy(self, vault_name: str, policy: Mapping[str, Any]) -> None:
        """Store a BaseBackupPolicyResource (make_dpp_policy); one with the same name, in any case, is replaced."""
        name = policy.get("name")
        if not isinstance(name, str) or not isinstance(policy.get("properties"), Mapping):
            raise ValueError("a policy needs a 'name' and 'properties'")
        with self.lock:
            self.backup_vault(vault_name).policies[name.lower()] = copy.deepcopy(dict(policy))

    def remove_dpp_policy(self, vault_name: str, name: str) -> None:
        with self.lock:
            self.backup_vault(vault_name).policies.pop(name.lower(), None)

    def add_recovery_point(self, vault_name: str, instance_name: str, point: Mapping[str, Any]) -> None:
        """Store an AzureBackupRecoveryPointResource (make_recovery_point) of an instance the vault holds
        (KeyError otherwise); one with the same name is replaced."""
        name = point.get("name")
        if not isinstance(name, str) or not isinstance(point.get("properties"), Mapping):
            raise ValueError("a recovery point needs a 'name' and 'properties'")
        with self.lock:
            vault = self.backup_vault(vault_name)
            if instance_name.lower() not in vault.instances:
                raise KeyError(f"no backup instance {instance_name!r} in Backup vault {vault_name!r}")
            vault.recovery_points.setdefault(instance_name.lower(), {})[name] = copy.deepcopy(dict(point))

    def remove_recovery_point(self, vault_name: str, instance_name: str, name: str) -> None:
        with self.lock:
            points = self.backup_vault(vault_name).recovery_points.get(instance_name.lower(), {})
            key = _find_key(points, name)
            if key is not None:
                del points[key]

    def recovery_points(self, vault_name: str, instance_name: str) -> list[Json]:
        with self.lock:
            points = self.backup_vault(vault_name).recovery_points.get(instance_name.lower(), {})
            return copy.deepcopy(list(points.values()))

    # -- jobs --

    def add_job(self, vault_name: str, job: Mapping[str, Any]) -> None:
        """Store a JobResource (as GET returns it); a job with the same name is replaced."""
        name = job.get("name")
        if not isinstance(name, str) or not isinstance(job.get("properties"), Mapping):
            raise ValueError("a job needs a 'name' (its GUID) and 'properties'")
        with self.lock:
            self.vault(vault_name).jobs[name] = copy.deepcopy(dict(job))

    def update_job(self, vault_name: str, job_id: str, **properties: Any) -> None:
        """Merge into the job's properties; a value of None removes that property (e.g. endTime)."""
        with self.lock:
            stored = self._stored_job(vault_name, job_id)
            if stored is None:
                raise KeyError(f"no job {job_id!r} in vault {vault_name!r}")
            _merge(stored["properties"], properties)

    def remove_job(self, vault_name: str, job_id: str) -> None:
        with self.lock:
            stored = self._stored_job(vault_name, job_id)
            if stored is not None:
                del self.vault(vault_name).jobs[stored["name"]]

    def job(self, vault_name: str, job_id: str) -> Json | None:
        """A copy of one job, looked up case-insensitively, or None."""
        with self.lock:
            stored = self._stored_job(vault_name, job_id)
            return copy.deepcopy(stored) if stored is not None else None

    def jobs(self, vault_name: str) -> list[Json]:
        """Copies of every job of a vault, safe to read while others mutate the estate."""
        with self.lock:
            return copy.deepcopy(list(self.vault(vault_name).jobs.values()))

    def _stored_job(self, vault_name: str, job_id: str) -> Json | None:
        jobs = self.vault(vault_name).jobs
        key = _find_key(jobs, job_id)
        return jobs[key] if key is not None else None

    # -- protected items --

    def add_item(self, vault_name: str, item: Mapping[str, Any]) -> None:
        """Store a ProtectedItemResource (as the list returns it); one with the same id, in any case, is replaced.

        Items without an id are matched by name instead. Two items may share a name in different containers
        (a database `master` on two SQL VMs): both are kept, as Azure keeps them.
        """
        name = item.get("name")
        if not isinstance(name, str) or not isinstance(item.get("properties"), Mapping):
            raise ValueError("a protected item needs a 'name' and 'properties'")
        identity = str(item.get("id") or name).lower()
        with self.lock:
            items = self.vault(vault_name).items
            for key in [key for key, stored in items.items() if _item_identity(stored) == identity]:
                del items[key]
            items[identity] = copy.deepcopy(dict(item))

    def update_item(self, vault_name: str, name: str, **properties: Any) -> None:
        """Merge into the item's properties; a value of None removes that property (e.g. lastRecoveryPoint).

        `name` is the item's resource name or its id, in any case; a name that several items share is refused
        (ValueError): give the id.
        """
        with self.lock:
            stored = self._stored_item(vault_name, name)
            if stored is None:
                raise KeyError(f"no protected item {name!r} in vault {vault_name!r}")
            _merge(stored["properties"], properties)

    def remove_item(self, vault_name: str, name: str) -> None:
        """The item (by name or id, as for update_item) is gone: protection removed and its data deleted for good."""
        with self.lock:
            items = self.vault(vault_name).items
            stored = self._stored_item(vault_name, name)
            if stored is not None:
                del items[next(key for key, entry in items.items() if entry is stored)]

    def item(self, vault_name: str, name: str) -> Json | None:
        """A copy of one protected item, looked up case-insensitively by its resource name or id, or None.

        A name that several items share (in different containers) is refused with ValueError: give the id.
        """
        with self.lock:
            stored = self._stored_item(vault_name, name)
            return copy.deepcopy(stored) if stored is not None else None

    def items(self, vault_name: str) -> list[Json]:
        """Copies of every protected item of a vault."""
        with self.lock:
            return copy.deepcopy(list(self.vault(vault_name).items.values()))

    # -- backup policies --

    def add_policy(self, vault_name: str, policy: Mapping[str, Any]) -> None:
        """Store a ProtectionPolicyResource (as the list returns it); one with the same name, in any case, is
        replaced (an edited policy)."""
        name = policy.get("name")
        if not isinstance(name, str) or not isinstance(policy.get("properties"), Mapping):
            raise ValueError("a policy needs a 'name' and 'properties'")
        with self.lock:
            self.vault(vault_name).policies[name.lower()] = copy.deepcopy(dict(policy))

    def remove_policy(self, vault_name: str, name: str) -> None:
        with self.lock:
            self.vault(vault_name).policies.pop(name.lower(), None)

    def add_item_recovery_point(self, vault_name: str, item: str, point: Mapping[str, Any]) -> None:
        """Store a RecoveryPointResource (make_workload_recovery_point) of a protected item the vault holds, by
        the item's name or id (KeyError when there is none); one with the same name is replaced."""
        name = point.get("name")
        if not isinstance(name, str) or not isinstance(point.get("properties"), Mapping):
            raise ValueError("a recovery point needs a 'name' and 'properties'")
        with self.lock:
            stored = self._stored_item(vault_name, item)
            if stored is None or not stored.get("id"):
                raise KeyError(f"no protected item {item!r} with an id in vault {vault_name!r}")
            points = self.vault(vault_name).item_recovery_points.setdefault(str(stored["id"]).lower(), {})
            points[name] = copy.deepcopy(dict(point))

    def item_recovery_points(self, vault_name: str, item_id: str) -> list[Json] | None:
        """Copies of a protected item's recovery points, by the item's id in any case; None if no item has it."""
        with self.lock:
            vault = self.vault(vault_name)
            if not any(_item_identity(entry) == item_id.lower() for entry in vault.items.values()):
                return None
            return copy.deepcopy(list(vault.item_recovery_points.get(item_id.lower(), {}).values()))

    def _stored_item(self, vault_name: str, name: str) -> Json | None:
        wanted = name.lower()
        matches = [entry for entry in self.vault(vault_name).items.values()
                   if wanted in (str(entry.get("name", "")).lower(), str(entry.get("id", "")).lower())]
        if len(matches) > 1:
            raise ValueError(f"{len(matches)} protected items in vault {vault_name!r} are named {name!r} "
                             "(in different containers); look one up by its id")
        return matches[0] if matches else None


def _item_identity(item: Mapping[str, Any]) -> str:
    return str(item.get("id") or item.get("name", "")).lower()


def _find_key(entries: Mapping[str, Any], name: str) -> str | None:
    """The stored key for a name, exact first, else case-insensitive like ARM's resource names."""
    if name in entries:
        return name
    return next((key for key in entries if key.lower() == name.lower()), None)


def _merge(target: Json, properties: Mapping[str, Any]) -> None:
    for key, value in properties.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = copy.deepcopy(value)


# --- job payloads ---------------------------------------------------------------------------------

_DEFAULT_MANAGEMENT_TYPE = {
    "AzureIaaSVMJob": "AzureIaasVM", "AzureIaaSVMJobV2": "AzureIaasVM", "AzureStorageJob": "AzureStorage",
    "AzureWorkloadJob": "AzureWorkload", "DpmJob": "DPM", "MabJob": "MAB",
}
_DEFAULT_WORKLOAD_TYPE = {"AzureWorkloadJob": "SQLDataBase", "DpmJob": "SQLDB", "MabJob": "FileFolder"}
# No recording captured a failed Recovery Services job's errorDetails (azure-api.md 1.8): the shapes follow the
# spec per job type (1.7: errorCode int32, errorTitle only for IaaS VM and workload jobs, no code for MAB and DPM);
# the numeric code is illustrative, the default titles are codes Microsoft documents for the failures the demo's
# messages describe (docs/runbook.md, "Error codes"). The LIST and the GET both carry them, as the spec's one Job
# model and Resource Graph's job rows (which Microsoft's Backup Explorer reads errorDetails[0].errorTitle from) do.
_ILLUSTRATIVE_ERROR_CODE = 400001
_DEFAULT_ERROR_TITLE = {
    "AzureIaaSVMJob": "GuestAgentSnapshotTaskStatusError", "AzureIaaSVMJobV2": "GuestAgentSnapshotTaskStatusError",
    "AzureWorkloadJob": "UserErrorSQLLSNValidationFailure",
}
_RECOMMENDATION = "Retry the operation after some time. If the issue persists, contact Microsoft support."


@dataclass(frozen=True)
class _JobSpec:
    job_id: str
    vault: FakeVault
    item: str
    operation: str
    status: str
    job_type: str
    start_ticks: int
    end_ticks: int | None
    duration: str
    size: str | None
    tasks: tuple[tuple[str, str], ...] | None
    container: str | None
    workload_type: str | None
    error: str | None
    error_code: int | None = None
    error_title: str | None = None

    @property
    def finished(self) -> bool:
        return self.end_ticks is not None


def _sub_microsecond_digit(job_id: str, what: str) -> int:
    """A stable 7th fractional digit, so most timestamps carry 7 digits like Azure's and a few fewer."""
    return hashlib.sha256(f"{job_id}/{what}".encode()).digest()[0] % 10


def make_job(job_id: str, *, vault: FakeVault, item: str, operation: str = "Backup", status: str = "Completed",
             start: datetime, end: datetime | None = None, job_type: str = "AzureIaaSVMJob",
             backup_management_type: str | None = None, duration: str | None = None,
             duration_format: Literal["iso", "dotnet"] = "iso", size: str | None = None,
             tasks: list[tuple[str, str]] | None = None, container: str | None = None,
             workload_type: str | None = None, error: str | None = None,
             error_code: int | None = None, error_title: str | None = None,
             now: datetime | None = None) -> Json:
    """A JobResource in the exact shape of real payloads, as GET returns it (LIST strips extendedInfo).

    backup_management_type defaults to the job type's own (AzureIaasVM for IaaS jobs; VaultJob has none).
    error: a failed job's errorString; error_code and error_title its errorCode and errorTitle where its job type
    has them (default: an illustrative code, a documented title per job type).
    duration defaults to end - start (now - start while running) in `duration_format`.
    """
    start_ticks = to_ticks(start) + _sub_microsecond_digit(job_id, "start")
    end_ticks = to_ticks(end) + _sub_microsecond_digit(job_id, "end") if end is not None else None
    if duration is None:
        until = end_ticks if end_ticks is not None else to_ticks(now or datetime.now(UTC))
        elapsed = max(0, until - start_ticks)
        duration = iso_duration(elapsed) if duration_format == "iso" else dotnet_duration(elapsed)
    spec = _JobSpec(job_id, vault, item, operation, status, job_type, start_ticks, end_ticks, duration, size,
                    tuple(tasks) if tasks is not None else None, container,
                    workload_type or _DEFAULT_WORKLOAD_TYPE.get(job_type), error, error_code, error_title)
    management_type = backup_management_type or _DEFAULT_MANAGEMENT_TYPE.get(job_type)
    properties: Json = {"jobType": job_type, **_type_specific_properties(spec), "entityFriendlyName": item}
    if management_type:
        properties["backupManagementType"] = management_type
    properties.update(operation=operation, status=status, startTime=format_ticks(start_ticks))
    if end_ticks is not None:
        properties["endTime"] = format_ticks(end_ticks)
    properties["activityId"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"activity/{job_id}"))
    return {"id": f"{vault.id}/backupJobs/{job_id}", "name": job_id, "type": JOB_RESOURCE_TYPE,
            "properties": properties}


def workload_job_name(parent: str, database: str, host: str, separator: str = "/") -> str:
    """The entityFriendlyName real Azure gives a database-in-a-VM (AzureWorkload) backup or restore job.

    Such a job does not carry its protected item's friendlyName but ``<parent><separator><database> [<host>]``:
    the SQL instance or SAP system (SID), the database and the VM as the item's serverName shows it. Recorded
    and reported forms: SQL ``MSSQLSERVER/testdb1 [pstestwlvm1bca8]`` (item: friendlyName ``testdb1``,
    parentName ``MSSQLSERVER``), SAP HANA ``H22/H22 [HANADemoIDC3]`` (item: friendlyName ``h22``, parentName
    ``H22``; HANA jobs write the database in upper case), SAP ASE ``ab4;asetestdb1 [ase-ccy-vm5]`` (separator
    ``;``). The strings are used as given: the caller picks the case its workload writes. Management jobs
    (ConfigureBackup, DisableBackup, DeleteBackupData) carry the bare database name instead, e.g. ``testdb1``.
    """
    return f"{parent}{separator}{database} [{host}]"


def _type_specific_properties(spec: _JobSpec) -> Json:
    """The properties between jobType and entityFriendlyName, in the order the wire shows them."""
    builders: dict[str, Callable[[_JobSpec], Json]] = {
        "AzureIaaSVMJob": _iaas_properties, "AzureIaaSVMJobV2": _iaas_properties,
        "AzureStorageJob": _storage_properties, "AzureWorkloadJob": _workload_properties,
        "DpmJob": _dpm_properties, "MabJob": _mab_properties, "VaultJob": _vault_job_properties,
    }
    builder = builders.get(spec.job_type)
    return builder(spec) if builder else {"duration": spec.duration}


def _actions_info(spec: _JobSpec) -> Json:
    # The recording shows [1] (integers, not the spec's strings) on backups and restores, none on ConfigureBackup.
    return {} if spec.operation == "ConfigureBackup" else {"actionsInfo": [1]}


def _error_details(spec: _JobSpec, *, code: bool, title: bool) -> Json:
    if not spec.error:
        return {}
    detail: Json = {"errorCode": spec.error_code or _ILLUSTRATIVE_ERROR_CODE} if code else {}
    if title:
        detail["errorTitle"] = spec.error_title or _DEFAULT_ERROR_TITLE.get(spec.job_type, "")
    detail.update(errorString=spec.error, recommendations=[_RECOMMENDATION])
    return {"errorDetails": [detail]}


def _simple_tasks(spec: _JobSpec) -> Json:
    return {"tasksList": [{"taskId": task, "status": status} for task, status in spec.tasks]} if spec.tasks else {}


def _size_bag(spec: _JobSpec) -> dict[str, str]:
    return {"Backup Size": spec.size} if spec.size else {}


def _iaas_properties(spec: _JobSpec) -> Json:
    return {
        **_actions_info(spec),
        "containerName": spec.container or f"iaasvmcontainerv2;{spec.vault.resource_group};{spec.item}",
        "duration": spec.duration,
        **_error_details(spec, code=True, title=True),
        "virtualMachineVersion": "Compute",
        "extendedInfo": _iaas_extended_info(spec),
    }


def _iaas_extended_info(spec: _JobSpec) -> Json:
    info: Json = {}
    if spec.tasks is not None:
        info["tasksList"] = [{"taskId": task, "duration": "PT0S", "status": status} for task, status in spec.tasks]
    start = ticks_to_datetime(spec.start_ticks)
    if spec.operation == "Restore":
        info["propertyBag"] = {
            "Job Type": "Recover disks", "Target VM Name": f"{spec.item}-restored",
            "Target Storage Account Name": "strestorestaging",
            "Recovery point time ": _us_datetime(start - timedelta(days=1)),  # the trailing space is real
        }
        info["internalPropertyBag"] = {"restoreLocationType": "RestoreDisks"}
        info["progressPercentage"] = 100.0 if spec.finished else 1.0
        return info
    bag = {"VM Name": spec.item}
    if spec.operation == "Backup":
        expiry = (start + timedelta(days=30)).replace(hour=0, minute=0, second=0, microsecond=0)
        bag["Recovery Point Expiry Time in UTC"] = _us_datetime(expiry)
    info["propertyBag"] = {**bag, **_size_bag(spec)}
    if spec.operation == "Backup":
        info["internalPropertyBag"] = {"IsInstantRpJob": "True"}
    return info


def _storage_properties(spec: _JobSpec) -> Json:
    return {
        **_actions_info(spec),
        "duration": spec.duration,
        **_error_details(spec, code=True, title=False),
        "storageAccountName": spec.container or "stfilesharesbackup",
        "extendedInfo": {**_simple_tasks(spec), "propertyBag": _size_bag(spec)},
    }


def _workload_properties(spec: _JobSpec) -> Json:
    return {
        "workloadType": spec.workload_type,
        "duration": spec.duration,
        **_actions_info(spec),
        **_error_details(spec, code=True, title=True),
        "extendedInfo": {**_simple_tasks(spec), "propertyBag": _transferred_bag(spec)},
    }


def _transferred_bag(spec: _JobSpec) -> dict[str, str]:
    """Database backups report their size as a bare number of MB under this key (SQL recording, 2019)."""
    if not spec.size:
        return {}
    number, _, unit = spec.size.partition(" ")
    megabytes = float(number) * {"GB": 1024.0, "KB": 1 / 1024}.get(unit.upper(), 1.0)
    return {"Data Transferred (in MB)": f"{megabytes:g}"}


def _timed_tasks(spec: _JobSpec) -> Json:
    """DPM and MAB tasks also carry their own times (DpmJobTaskDetails, MabJobTaskDetails)."""
    if not spec.tasks:
        return {}
    tasks = []
    for task, status in spec.tasks:
        entry: Json = {"taskId": task, "startTime": format_ticks(spec.start_ticks)}
        if status == "Completed" and spec.end_ticks is not None:
            entry["endTime"] = format_ticks(spec.end_ticks)
        entry.update(duration=spec.duration, status=status)
        tasks.append(entry)
    return {"tasksList": tasks}


def _dpm_properties(spec: _JobSpec) -> Json:
    server = spec.container or "dpm01.contoso.local"
    return {
        "duration": spec.duration,
        "dpmServerName": server,
        "containerName": server,
        "containerType": "DPMContainer",
        "workloadType": spec.workload_type,
        **_actions_info(spec),
        **_error_details(spec, code=False, title=False),
        "extendedInfo": {**_timed_tasks(spec), "propertyBag": _size_bag(spec)},
    }


def _mab_properties(spec: _JobSpec) -> Json:
    return {
        "duration": spec.duration,
        **_actions_info(spec),
        "mabServerName": spec.container or spec.item,
        "mabServerType": "Windows",
        "workloadType": spec.workload_type,
        **_error_details(spec, code=False, title=False),
        "extendedInfo": {**_timed_tasks(spec), "propertyBag": _size_bag(spec)},
    }


def _vault_job_properties(spec: _JobSpec) -> Json:
    return {
        "duration": spec.duration,
        **_error_details(spec, code=True, title=False),
        "extendedInfo": {"propertyBag": {}},
    }


# --- protected-item payloads ----------------------------------------------------------------------
#
# Field placement per type follows bms.json (as generated into bicep-types-az types.md, 2025-08-01);
# key order and the values Azure fills in follow real list/GET responses recorded by the Azure CLI
# (tests/fixtures/azure/PROVENANCE.md). What no capture shows is marked illustrative.

Timestamp = datetime | str  # a str must already be an Azure timestamp and is copied as-is (e.g. a job's endTime)

# Model names in the spec -> the protectedItemType discriminator on the wire. Either form is accepted.
PROTECTED_ITEM_TYPES: dict[str, str] = {
    "AzureIaaSVMProtectedItem": "Microsoft.Compute/virtualMachines",  # abstract in the spec; ARM VMs are this
    "AzureIaaSComputeVMProtectedItem": "Microsoft.Compute/virtualMachines",
    "AzureIaaSClassicComputeVMProtectedItem": "Microsoft.ClassicCompute/virtualMachines",
    "AzureFileshareProtectedItem": "AzureFileShareProtectedItem",
    "AzureVmWorkloadSQLDatabaseProtectedItem": "AzureVmWorkloadSQLDatabase",
    "AzureVmWorkloadSAPHanaDatabaseProtectedItem": "AzureVmWorkloadSAPHanaDatabase",
    "AzureVmWorkloadSAPAseDatabaseProtectedItem": "AzureVmWorkloadSAPAseDatabase",
    "AzureVmWorkloadSAPHanaDBInstanceProtectedItem": "AzureVmWorkloadSAPHanaDBInstance",
    "MabFileFolderProtectedItem": "MabFileFolderProtectedItem",
    "DPMProtectedItem": "DPMProtectedItem",
    "GenericProtectedItem": "GenericProtectedItem",
    "AzureSqlProtectedItem": "Microsoft.Sql/servers/databases",
}
# An Azure VM item that has never been backed up carries this instead of no lastBackupTime, with a
# lastBackupStatus of "" (azure-cli recording, api-version 2020-10-01). A client must not read it as a backup.
NEVER_BACKED_UP = "2001-01-01T00:00:00Z"
# Workload items show a failed backup in lastBackupErrorDetail; code and recommendation are the recorded ones.
_WORKLOAD_ERROR_CODE = "CloudInternalError"
_WORKLOAD_RECOMMENDATION = ("Wait for a few minutes and then try the operation again. If the issue persists, "
                            "please contact Microsoft support.")
# (workloadType, default parentName, parentType) per workload item type; a None parent is the item's own
# name in upper case (a SAP system's SID: HANA items were recorded as friendlyName h22, parentName H22).
# The SQL and HANA rows are recorded, the others illustrative.
_WORKLOAD_KINDS: dict[str, tuple[str, str | None, str]] = {
    "AzureVmWorkloadSQLDatabase": ("SQLDataBase", "MSSQLSERVER", "AzureVmWorkloadSQLInstance"),
    "AzureVmWorkloadSAPHanaDatabase": ("SAPHanaDatabase", None, "AzureVmWorkloadSAPHanaSystem"),
    "AzureVmWorkloadSAPAseDatabase": ("SAPAseDatabase", None, "AzureVmWorkloadSAPAseSystem"),
    "AzureVmWorkloadSAPHanaDBInstance": ("SAPHanaDBInstance", None, "AzureVmWorkloadSAPHanaSystem"),
}
NETBIOS_NAME_LENGTH = 15  # the recorded serverName is the VM name cut to its NetBIOS form


@dataclass(frozen=True)
class _ItemSpec:
    vault: FakeVault
    item_type: str  # the protectedItemType discriminator
    friendly_name: str
    host: str  # what the item lives on: VM, storage account, computer or DPM server
    container_name: str | None  # Azure's whole containerName, when the caller gave one
    management_type: str | None
    workload_type: str | None
    last_backup_status: str | None
    last_backup_time: str | None
    last_recovery_point: str | None
    health_status: str | None
    protection_state: str
    policy: str | None
    source_resource_id: str | None
    last_backup_error: str | None
    parent_name: str | None = None  # a workload item's instance or SAP system, when the caller gave it

    @property
    def policy_id(self) -> str | None:
        return f"{self.vault.id}/backupPolicies/{self.policy}" if self.policy else None

    @property
    def failed(self) -> bool:
        return self.last_backup_status in ("Failed", "Unhealthy") or self.health_status in ("ActionRequired",
                                                                                              "Unhealthy")

    def digits(self, what: str) -> str:
        """A stable decimal id (protectedItemDataId and the like), as long as the recorded ones."""
        # Host and parent too: two items may share a friendly name (a database `master` on two SQL VMs).
        where = f"{self.container_name or self.host}/{self.parent_name or ''}"
        seed = f"{self.vault.id}/{where}/{self.friendly_name}/{what}".lower().encode()
        return str(int.from_bytes(hashlib.sha256(seed).digest()[:8]) % 10**19)

    def compute_id(self, provider: str = "Microsoft.Compute") -> str:
        return (f"/subscriptions/{self.vault.subscription_id}/resourceGroups/{self.vault.resource_group}"
                f"/providers/{provider}/virtualMachines/{self.host}")


@dataclass(frozen=True)
class _ItemFamily:
    """How one group of protected-item types names itself and lays out its properties."""

    management_type: str | None
    workload_type: str | None
    naming: Callable[[_ItemSpec], tuple[str, str, str]]  # -> (container in the id, containerName, item name)
    properties: Callable[[_ItemSpec], Json]  # the type's own properties, which come before the common ones
    source: Callable[[_ItemSpec], str | None] = lambda spec: spec.source_resource_id
    policy_name: bool = False  # only Azure VM items were seen with policyName
    archive_flag: bool = False  # isArchiveEnabled: seen on VM, file-share and workload items


def make_protected_item(*, vault: FakeVault, friendly_name: str, item_type: str = "AzureIaaSVMProtectedItem",
                        backup_management_type: str | None = None, last_backup_status: str | None = None,
                        last_backup_time: Timestamp | None = None, last_recovery_point: Timestamp | None = None,
                        health_status: str | None = None, protection_state: str = "Protected",
                        policy: str | None = None, container: str | None = None,
                        source_resource_id: str | None = None, workload_type: str | None = None,
                        last_backup_error: str | None = None, parent_name: str | None = None) -> Json:
    """A ProtectedItemResource in the real shape of its type, as the protected-items list returns it.

    item_type: a spec model name (AzureIaaSVMProtectedItem, AzureFileshareProtectedItem, ...) or the wire's
    protectedItemType (Microsoft.Compute/virtualMachines, AzureVmWorkloadSQLDatabase, ...); anything else is
    an unknown future type with the common fields only. Values land only where the type has a field:
    health_status is healthStatus on VM items, protectedItemHealthStatus on workload items and nowhere
    else; DPM items keep lastBackupStatus in extendedInfo and have no lastBackupTime. container is the host
    (VM, storage account, computer, DPM server; default friendly_name) or, with a ';', Azure's whole
    containerName, whose last part is then the host. Workload items (databases in VMs) show the host as
    serverName, cut to its 15-character NetBIOS form, and their parent as parentName: parent_name, the SQL
    instance or SAP system (SID) the database belongs to; by default MSSQLSERVER for SQL and friendly_name in
    upper case for SAP (right for a HANA tenant named like its system, e.g. ``h22`` in ``H22``; a SYSTEMDB or
    another tenant needs parent_name). Their jobs name them differently: see workload_job_name. Timestamps
    are datetimes or Azure timestamp strings, copied as-is. Left as None, the last-backup fields read as Azure
    shows a never-backed-up item of that type.
    """
    wire_type = PROTECTED_ITEM_TYPES.get(item_type, item_type)
    family = _ITEM_FAMILIES.get(wire_type, _GENERIC_FAMILY)
    whole_container = container if container and ";" in container else None
    # Every family's whole containerName ends in its host (VM, storage account, ...).
    host = (whole_container.rsplit(";", 1)[1] if whole_container else container) or friendly_name
    spec = _ItemSpec(
        vault=vault, item_type=wire_type, friendly_name=friendly_name, host=host, container_name=whole_container,
        management_type=backup_management_type or family.management_type,
        workload_type=workload_type or _default_workload_type(wire_type, family),
        last_backup_status=last_backup_status, last_backup_time=_timestamp(last_backup_time),
        last_recovery_point=_timestamp(last_recovery_point), health_status=health_status,
        protection_state=protection_state, policy=policy, source_resource_id=source_resource_id,
        last_backup_error=last_backup_error, parent_name=parent_name)
    segment, container_name, name = family.naming(spec)
    properties = {**family.properties(spec), **_common_item_properties(spec, family, container_name)}
    return {"id": f"{vault.id}/backupFabrics/Azure/protectionContainers/{segment}/protectedItems/{name}",
            "name": name, "type": PROTECTED_ITEM_RESOURCE_TYPE, "properties": properties}


def _timestamp(value: Timestamp | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        parse_azure_time(value)  # refuse what Azure would never send
        return value
    return format_ticks(to_ticks(value))


def _default_workload_type(wire_type: str, family: _ItemFamily) -> str | None:
    kind = _WORKLOAD_KINDS.get(wire_type)
    return kind[0] if kind else family.workload_type


def _common_item_properties(spec: _ItemSpec, family: _ItemFamily, container_name: str) -> Json:
    """ProtectedItem's own fields, after the type's, in the order the recordings show them."""
    properties: Json = {"protectedItemType": spec.item_type}
    if spec.management_type:
        properties["backupManagementType"] = spec.management_type
    if spec.workload_type:
        properties["workloadType"] = spec.workload_type
    properties["containerName"] = container_name
    source = family.source(spec)
    if source:
        properties["sourceResourceId"] = source
    if spec.policy_id:
        properties["policyId"] = spec.policy_id
    if spec.last_recovery_point:
        properties["lastRecoveryPoint"] = spec.last_recovery_point  # not in a recording: its place is a guess
    if spec.policy and family.policy_name:
        properties["policyName"] = spec.policy
    if family.archive_flag:
        properties["isArchiveEnabled"] = False
    return properties


def _protection_status(spec: _ItemSpec) -> str:
    # Only "Healthy" was recorded; "Unhealthy" for a failing item is illustrative.
    return "Unhealthy" if spec.failed else "Healthy"


def _optional(**fields: Any) -> Json:
    return {key: value for key, value in fields.items() if value is not None}


# Azure VMs


def _vm_naming(spec: _ItemSpec) -> tuple[str, str, str]:
    classic = spec.item_type == "Microsoft.ClassicCompute/virtualMachines"
    container = spec.container_name or (f"iaasvmcontainer;{spec.host};{spec.host}" if classic
                                        else f"iaasvmcontainerv2;{spec.vault.resource_group};{spec.host}")
    return f"IaasVMContainer;{container}", container, f"VM;{container}"


def _vm_source(spec: _ItemSpec) -> str:
    classic = spec.item_type == "Microsoft.ClassicCompute/virtualMachines"
    return spec.source_resource_id or spec.compute_id("Microsoft.ClassicCompute" if classic else "Microsoft.Compute")


def _item_vm_properties(spec: _ItemSpec) -> Json:
    health = spec.health_status or "Passed"
    properties: Json = {"kpisHealths": {}, "friendlyName": spec.friendly_name, "virtualMachineId": _vm_source(spec),
                        "protectionStatus": _protection_status(spec), "protectionState": spec.protection_state,
                        "healthStatus": health}
    if spec.last_backup_error:  # AzureIaaSVMHealthDetails; code and title are illustrative
        properties["healthDetails"] = [{"code": _ILLUSTRATIVE_ERROR_CODE, "title": "BackupFailed",
                                        "message": spec.last_backup_error, "recommendations": [_RECOMMENDATION]}]
    properties["lastBackupStatus"] = spec.last_backup_status if spec.last_backup_status is not None else ""
    properties["lastBackupTime"] = spec.last_backup_time or NEVER_BACKED_UP
    properties["protectedItemDataId"] = spec.digits("data")
    return properties


# Azure file shares


def _file_share_naming(spec: _ItemSpec) -> tuple[str, str, str]:
    container = spec.container_name or f"StorageContainer;storage;{spec.vault.resource_group};{spec.host}"
    # The recorded names carry a 64-hex-digit hash where the share's name would be.
    share_hash = hashlib.sha256(f"{container}/{spec.friendly_name}".lower().encode()).hexdigest()
    return container, container, f"AzureFileShare;{share_hash}"


def _file_share_source(spec: _ItemSpec) -> str:
    # "Microsoft.storage" in lower case is what the recording shows.
    return spec.source_resource_id or (f"/subscriptions/{spec.vault.subscription_id}/resourceGroups/"
                                       f"{spec.vault.resource_group}/providers/Microsoft.storage/storageAccounts/"
                                       f"{spec.host}")


def _item_file_share_properties(spec: _ItemSpec) -> Json:
    # AzureFileshareProtectedItem has no health field; a never-backed-up share reads "IRPending".
    status = spec.last_backup_status if spec.last_backup_status is not None else "IRPending"
    return {"kpisHealths": {}, "friendlyName": spec.friendly_name, "protectionStatus": _protection_status(spec),
            "protectionState": spec.protection_state, "lastBackupStatus": status,
            **_optional(lastBackupTime=spec.last_backup_time)}


# Databases in Azure VMs (SQL, SAP HANA, SAP ASE)


def _workload_parent(spec: _ItemSpec) -> tuple[str, str]:
    _, parent, parent_type = _WORKLOAD_KINDS.get(spec.item_type, ("", None, "AzureVmWorkloadSQLInstance"))
    return spec.parent_name or parent or spec.friendly_name.upper(), parent_type


def _workload_naming(spec: _ItemSpec) -> tuple[str, str, str]:
    container = spec.container_name or f"VMAppContainer;compute;{spec.vault.resource_group};{spec.host}"
    parent, _ = _workload_parent(spec)
    return container, container, f"{spec.workload_type};{parent.lower()};{spec.friendly_name.lower()}"


def _item_workload_properties(spec: _ItemSpec) -> Json:
    # lastBackupStatus and protectedItemHealthStatus use the LastBackupStatus/HealthStatus enums
    # (Healthy, Unhealthy, IRPending, ...), not a job status.
    status = spec.last_backup_status if spec.last_backup_status is not None else "IRPending"
    health = spec.health_status or (status if status in ("Healthy", "Unhealthy", "IRPending") else "Healthy")
    parent, parent_type = _workload_parent(spec)
    properties: Json = {"kpisHealths": {}, "friendlyName": spec.friendly_name,
                        "serverName": spec.host[:NETBIOS_NAME_LENGTH], "parentName": parent, "parentType": parent_type,
                        "protectionStatus": _protection_status(spec), "protectionState": spec.protection_state,
                        "lastBackupStatus": status, **_optional(lastBackupTime=spec.last_backup_time)}
    if spec.last_backup_error:
        properties["lastBackupErrorDetail"] = {"code": _WORKLOAD_ERROR_CODE, "message": spec.last_backup_error,
                                               "recommendations": [_WORKLOAD_RECOMMENDATION]}
    extended: Json = {"recoveryPointCount": 1 if spec.last_recovery_point else 0, "policyState": "Consistent"}
    if spec.item_type == "AzureVmWorkloadSQLDatabase":
        extended["recoveryModel"] = "SIMPLE"
    properties.update(protectedItemDataSourceId=spec.digits("datasource"), protectedItemHealthStatus=health,
                      extendedInfo=extended)
    return properties


# Azure Backup agent (MARS) files and folders, and DPM / Azure Backup Server (no recording: spec only)


def _host_naming(prefix: str) -> Callable[[_ItemSpec], tuple[str, str, str]]:
    def naming(spec: _ItemSpec) -> tuple[str, str, str]:
        container = spec.container_name or spec.host
        kind = spec.workload_type or prefix
        return container, container, f"{kind};{spec.friendly_name.replace(chr(92), ';')}"
    return naming


def _item_mab_properties(spec: _ItemSpec) -> Json:
    return {"friendlyName": spec.friendly_name, "computerName": spec.host,
            **_optional(lastBackupStatus=spec.last_backup_status, lastBackupTime=spec.last_backup_time),
            "protectionState": spec.protection_state,
            "extendedInfo": {"recoveryPointCount": 1 if spec.last_recovery_point else 0}}


def _item_dpm_properties(spec: _ItemSpec) -> Json:
    # DPMProtectedItem has no lastBackupTime at all, and its lastBackupStatus lives in extendedInfo.
    extended: Json = {"protected": True, "isPresentOnCloud": True,
                      **_optional(lastBackupStatus=spec.last_backup_status),
                      "recoveryPointCount": 1 if spec.last_recovery_point else 0,
                      "protectionGroupName": "Protection Group 1"}
    return {"friendlyName": spec.friendly_name, "backupEngineName": spec.host,
            "protectionState": spec.protection_state, "extendedInfo": extended}


def _item_generic_properties(spec: _ItemSpec) -> Json:
    """An unknown future type: the fields every current type with a last backup shares."""
    return {"friendlyName": spec.friendly_name, "protectionState": spec.protection_state,
            **_optional(healthStatus=spec.health_status, lastBackupStatus=spec.last_backup_status,
                        lastBackupTime=spec.last_backup_time)}


_VM_FAMILY = _ItemFamily("AzureIaasVM", "VM", _vm_naming, _item_vm_properties, _vm_source, policy_name=True,
                         archive_flag=True)
_WORKLOAD_FAMILY = _ItemFamily("AzureWorkload", None, _workload_naming, _item_workload_properties,
                               lambda spec: spec.source_resource_id or spec.compute_id(), archive_flag=True)
_GENERIC_FAMILY = _ItemFamily(None, None, _host_naming("Item"), _item_generic_properties)
_ITEM_FAMILIES: dict[str, _ItemFamily] = {
    "Microsoft.Compute/virtualMachines": _VM_FAMILY,
    "Microsoft.ClassicCompute/virtualMachines": _VM_FAMILY,
    "AzureFileShareProtectedItem": _ItemFamily("AzureStorage", "AzureFileShare", _file_share_naming,
                                               _item_file_share_properties, _file_share_source, archive_flag=True),
    **{wire_type: _WORKLOAD_FAMILY for wire_type in _WORKLOAD_KINDS},
    "MabFileFolderProtectedItem": _ItemFamily("MAB", "FileFolder", _host_naming("FileFolder"), _item_mab_properties),
    "DPMProtectedItem": _ItemFamily("DPM", "SQLDB", _host_naming("DPM"), _item_dpm_properties),
}


# --- backup-policy payloads -----------------------------------------------------------------------
#
# Shapes of the REST spec's ProtectionPolicies examples (tests/fixtures/azure/recoveryservicesbackup, see
# PROVENANCE.md): SimpleSchedulePolicy for daily and weekly, SimpleSchedulePolicyV2 with hourlySchedule for
# Enhanced VM policies, subProtectionPolicy[] with a LogSchedulePolicy for databases. Retention is left out:
# the exporter reads only the schedule.

POLICY_RESOURCE_TYPE = "Microsoft.RecoveryServices/vaults/backupPolicies"
WEEKDAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")


def make_policy(*, vault: FakeVault, name: str, backup_management_type: str = "AzureIaasVM",
                weekly_days: tuple[str, ...] = (), hourly: tuple[int, int] | None = None,
                log_minutes: int | None = None, differential_days: tuple[str, ...] = (),
                run_time: str = "2026-01-01T02:00:00Z") -> Json:
    """A ProtectionPolicyResource: daily by default, weekly on `weekly_days`, or every hourly[0] hours in a
    window of hourly[1] hours (Enhanced policy, V2). For AzureWorkload, a Full sub-policy with that schedule,
    plus a Log sub-policy every `log_minutes` and a weekly Differential on `differential_days` if given."""
    schedule = _schedule(weekly_days, hourly, run_time)
    properties: Json = {"backupManagementType": backup_management_type}
    if backup_management_type == "AzureWorkload":
        subs: list[Json] = [{"policyType": "Full", "schedulePolicy": schedule}]
        if differential_days:
            subs.append({"policyType": "Differential", "schedulePolicy": _schedule(differential_days, None, run_time)})
        if log_minutes is not None:
            subs.append({"policyType": "Log", "schedulePolicy": {"schedulePolicyType": "LogSchedulePolicy",
                                                                 "scheduleFrequencyInMins": log_minutes}})
        properties.update(workLoadType="SQLDataBase", settings={"timeZone": "UTC", "issqlcompression": False},
                          subProtectionPolicy=subs)
    else:
        if hourly is not None:
            properties["policyType"] = "V2"
        properties.update(schedulePolicy=schedule, timeZone="UTC", protectedItemsCount=0)
    return {"id": f"{vault.id}/backupPolicies/{name}", "name": name, "type": POLICY_RESOURCE_TYPE,
            "properties": properties}


def _schedule(weekly_days: tuple[str, ...], hourly: tuple[int, int] | None, run_time: str) -> Json:
    if hourly is not None:
        return {"schedulePolicyType": "SimpleSchedulePolicyV2", "scheduleRunFrequency": "Hourly",
                "hourlySchedule": {"interval": hourly[0], "scheduleWindowStartTime": run_time,
                                   "scheduleWindowDuration": hourly[1]}}
    if weekly_days:
        unknown = set(weekly_days) - set(WEEKDAYS)
        if unknown:
            raise ValueError(f"not days of the week: {sorted(unknown)}")
        return {"schedulePolicyType": "SimpleSchedulePolicy", "scheduleRunFrequency": "Weekly",
                "scheduleRunDays": list(weekly_days), "scheduleRunTimes": [run_time], "scheduleWeeklyFrequency": 0}
    return {"schedulePolicyType": "SimpleSchedulePolicy", "scheduleRunFrequency": "Daily",
            "scheduleRunTimes": [run_time], "scheduleWeeklyFrequency": 0}


# --- Backup vault payloads ------------------------------------------------------------------------
#
# Jobs follow the real GETs (Azure CLI 2024-04-01 and PowerShell 2026-03-01 recordings: key order, nulls,
# ISO durations, the 0001-01-01 sentinel); backup instances the PowerShell BackupInstances_List recording for
# disks and the spec examples for blobs and AKS (dataSourceSetInfo, backupDatasourceParametersList); policies the
# spec's ListBackupPolicy.json and the CLI's default policy per data source (its manifests); recovery points the
# REST list in Microsoft's "Restore Azure Disks using Azure Data Protection REST API" article. Where no capture
# shows a value (a failed backup's errorDetails, AKS and PostgreSQL destinations), it is marked illustrative.


@dataclass(frozen=True)
class DppDatasource:
    """A data source type a Backup vault protects, as the Azure CLI's manifest for it describes it."""

    name: str  # the CLI's --datasource-type
    datasource_type: str  # dataSourceType of jobs, datasourceType of instances, datasourceTypes of policies
    resource_type: str  # dataSourceInfo.resourceType, as the spec examples and manifests write it
    provider: str  # the protected resource's provider and type, to build its ARM id
    store: str  # the data store its backups go to (policy rules, instances' data store parameters)
    backup_type: str  # backupParameters.backupType of its policies
    destination: str  # destinationDataStoreName of a finished backup job
    set_info: bool  # instances carry dataSourceSetInfo, jobs a dataSourceSetName
    frequencies: tuple[str, ...]  # the backup frequencies its policies may have (supportedBackupFrequency)
    # Its CLI default policy sets the schedule's timeZone "UTC" and the lifecycle's targetDataStoreCopySettings []
    # (vaulted blob and PostgreSQL; the disk and AKS ones set neither), which the service echoes.
    utc_schedule: bool = False


DPP_DATASOURCES: dict[str, DppDatasource] = {
    "AzureDisk": DppDatasource("AzureDisk", "Microsoft.Compute/disks", "Microsoft.Compute/disks",
                               "Microsoft.Compute/disks", "OperationalStore", "Incremental", "OperationalTierStore",
                               False, ("Daily", "Hourly")),
    # Vaulted blob backup (the recording's destination VaultStore); operational blob backup is continuous.
    "AzureBlob": DppDatasource("AzureBlob", "Microsoft.Storage/storageAccounts/blobServices",
                               "Microsoft.Storage/storageAccounts", "Microsoft.Storage/storageAccounts",
                               "VaultStore", "Discrete", "VaultStore", True, ("Daily", "Weekly"), True),
    # No PostgreSQL flexible server or AKS job was captured: their destinations are illustrative.
    "AzureDatabaseForPostgreSQLFlexibleServer": DppDatasource(
        "AzureDatabaseForPostgreSQLFlexibleServer", "Microsoft.DBforPostgreSQL/flexibleServers",
        "Microsoft.DBforPostgreSQL/flexibleServers", "Microsoft.DBforPostgreSQL/flexibleServers", "VaultStore",
        "Full", "VaultStore", False, ("Weekly",), True),
    "AzureKubernetesService": DppDatasource(
        "AzureKubernetesService", "Microsoft.ContainerService/managedClusters",
        "Microsoft.ContainerService/managedclusters", "Microsoft.ContainerService/managedClusters",
        "OperationalStore", "Incremental", "OperationalTierStore", True, ("Daily", "Hourly")),
}
_DPP_RECOMMENDED_ACTION = "Refer https://aka.ms/AzureBackupTroubleshootFailures for more details."
_DPP_TASK_STATUS = {"Succeeded": "Completed", "CompletedWithWarnings": "Completed", "Started": "InProgress"}
_ISO_DURATION = re.compile(r"^(-)?P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)(?:\.(\d{1,7}))?S)?)?$")


def dpp_datasource(datasource_type: str) -> DppDatasource:
    """The data source by the CLI's name (AzureDisk, AzureBlob, AzureDatabaseForPostgreSQLFlexibleServer,
    AzureKubernetesService) or its datasourceType, in any case; ValueError for another."""
    wanted = datasource_type.lower()
    for kind in DPP_DATASOURCES.values():
        if wanted in (kind.name.lower(), kind.datasource_type.lower()):
            return kind
    raise ValueError(f"unknown Backup vault data source {datasource_type!r}; one of {', '.join(DPP_DATASOURCES)}")


def parse_iso_duration(text: str) -> int:
    """Ticks of an ISO-8601 duration as .NET's XmlConvert writes a TimeSpan ('PT4M9.8668428S', 'P1DT2H', 'PT0S');
    ValueError otherwise."""
    match = _ISO_DURATION.match(text)
    if not match or text in ("P", "-P") or text.endswith("T"):
        raise ValueError(f"not an ISO-8601 duration: {text!r}")
    sign, days, hours, minutes, seconds, fraction = match.groups()
    ticks = ((int(days or 0) * 24 + int(hours or 0)) * 60 + int(minutes or 0)) * 60 + int(seconds or 0)
    ticks = ticks * TICKS_PER_SECOND + int((fraction or "").ljust(7, "0"))
    return -ticks if sign else ticks


def _dpp_datasource_id(kind: DppDatasource, subscription_id: str, resource_group: str, name: str) -> str:
    return f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}/providers/{kind.provider}/{name}"


def backup_instance_name(vault: FakeBackupVault, datasource_name: str) -> str:
    """The name Azure gives a backup instance, '<resource>-<resource>-<GUID>' (the recordings' disk and storage
    account instances); the GUID is stable for the vault and the resource."""
    token = uuid.uuid5(uuid.NAMESPACE_URL, f"{vault.id.lower()}/{datasource_name.lower()}")
    return f"{datasource_name}-{datasource_name}-{token}"


def _dpp_ticks(moment: Timestamp, key: str, what: str) -> int:
    if isinstance(moment, str):
        return parse_azure_time(moment)
    return to_ticks(moment) + _sub_microsecond_digit(key, what)


def _dpp_etag(ticks: int) -> str:
    """W/"datetime'2025-02-23T12%3A04%3A20.8609392Z'" (the real jobs' etag: their last change, ':' encoded)."""
    return "W/\"datetime'" + format_ticks(ticks).replace(":", "%3A") + "'\""


def _dpp_error(message: str, code: str) -> Json:
    """A UserFacingError in the shape of the recorded failed restore (Jobs_List 2024-04-01,
    tests/fixtures/azure/dataprotection/2024-04-01/azure-cli-recording.Jobs_List.failed-restore.item.json): the
    same code and message nested three levels deep, keys in the wire's order, the innermost not retryable."""
    def level(details: list[Json] | None, retryable: bool) -> Json:
        return {"message": message, "recommendedAction": [_DPP_RECOMMENDED_ACTION], "details": details,
                "code": code, "target": "", "innerError": None, "isRetryable": retryable, "isUserError": False,
                "properties": None}
    return level([level([level(None, False)], True)], True)


def make_dpp_job(job_id: str, *, vault: FakeBackupVault, datasource_type: str, datasource_name: str,
                 resource_group: str | None = None, instance: str | None = None, friendly_name: str | None = None,
                 policy: str = "DefaultPolicy", operation: str = "Backup", status: str = "Completed",
                 start: Timestamp, end: Timestamp | None = None, user_triggered: bool = False,
                 tasks: list[tuple[str, str]] | None = None, data_transferred_bytes: float | None = None,
                 datasource_size_bytes: int | None = None, recovery_point_id: str | None = None,
                 error: str | None = None, error_code: str = "InternalServerError",
                 location: str | None = None, activity_id: str | None = None) -> Json:
    """An AzureBackupJobResource as a Backup vault's job GET returns it (the LIST derives its own form).

    The data source is named, in its resource group (default: the vault's), and protected by `instance` (default:
    backup_instance_name). A running job (end None) has endTime null, duration PT0S and its sub-task's details
    null, as recorded; a finished one the ISO duration end - start. tasks: (taskName, taskStatus) pairs, by default
    one 'Trigger Backup' (or 'Trigger Restore') task in the job's state. dataTransferredInBytes is null unless
    given (it was null in every real job); datasource_size_bytes lands, as a string, in the sub-task's
    OriginalDatasourceSizeInBytes as for real disks. error: a failed job's message (errorDetails). Times are
    datetimes (given a 7th fractional digit of their own) or Azure timestamps, taken to the tick.
    """
    kind = dpp_datasource(datasource_type)
    group = resource_group or vault.resource_group
    instance_name = instance or backup_instance_name(vault, datasource_name)
    restore = operation.lower().startswith("restore")
    start_ticks = _dpp_ticks(start, job_id, "start")
    end_ticks = _dpp_ticks(end, job_id, "end") if end is not None else None
    activity = activity_id or str(uuid.uuid5(uuid.NAMESPACE_URL, f"activity/{job_id}"))
    point = recovery_point_id or uuid.uuid5(uuid.NAMESPACE_URL, f"recovery-point/{job_id}").hex
    datasource_id = _dpp_datasource_id(kind, vault.subscription_id, group, datasource_name)
    finished = end_ticks is not None
    properties: Json = {
        "activityID": activity,
        "subscriptionId": vault.subscription_id,
        "backupInstanceId": f"{vault.id}/backupInstances/{instance_name}",
        "policyId": f"{vault.id}/backupPolicies/{policy}",
        "dataSourceId": datasource_id,
        "vaultName": vault.name,
        "backupInstanceFriendlyName": friendly_name or datasource_name,
        "policyName": policy,
        "sourceResourceGroup": group,
        "dataSourceSetName": datasource_name if kind.set_info else None,
        "dataSourceName": datasource_name,
        "sourceDataStoreName": kind.store if restore else None,
        "sourceDataStoreType": kind.store if restore else None,
        "destinationDataStoreName": kind.destination if finished and not restore else None,
        "progressEnabled": False,
        "etag": _dpp_etag(end_ticks + 4_000_000 if end_ticks is not None else start_ticks + 3_000_000),
        "sourceSubscriptionID": vault.subscription_id,
        "dataSourceLocation": location or vault.location,
        "startTime": format_ticks(start_ticks),
        "endTime": format_ticks(end_ticks) if end_ticks is not None else None,
        "dataSourceType": kind.datasource_type,
        "operationCategory": "Restore" if restore else "Backup",
        "operation": operation,
        "status": status,
        "restoreType": None,
        "isUserTriggered": user_triggered or restore,
        "rehydrationPriority": None,
        "supportedActions": [""] if user_triggered or restore else [],
        "duration": iso_duration(max(0, end_ticks - start_ticks)) if end_ticks is not None else "PT0S",
        "progressUrl": None,
        "isCrossRegionRestore": None,
        "errorDetails": [_dpp_error(error, error_code)] if error else None,
    }
    task_status = _DPP_TASK_STATUS.get(status, status)
    steps = tasks if tasks is not None else [("Trigger Restore" if restore else "Trigger Backup", task_status)]
    sub_tasks = []
    for number, (name, state) in enumerate(steps, start=1):
        details: Json | None = None
        if state != "InProgress":
            details = {**({"OriginalDatasourceSizeInBytes": str(datasource_size_bytes)}
                          if datasource_size_bytes is not None else {}),
                       "TaskId": activity, "DatasourceType": kind.datasource_type}
        sub_tasks.append({"taskId": number, "taskName": name, "taskStatus": state, "taskProgress": None,
                          "additionalDetails": details})
    completed = finished and status in ("Completed", "CompletedWithWarnings", "Succeeded")
    properties["extendedInfo"] = {
        "backupInstanceState": None,
        "dataTransferredInBytes": data_transferred_bytes,
        "targetRecoverPoint": ({"recoveryPointID": point, "recoveryPointTime": UNSET_RECOVERY_POINT_TIME}
                               if completed and not restore else None),
        "sourceRecoverPoint": ({"recoveryPointID": point, "recoveryPointTime": format_ticks(start_ticks - 86_400
                                                                                            * TICKS_PER_SECOND)}
                               if restore else None),
        "recoveryDestination": datasource_id if restore else None,
        "subTasks": sub_tasks,
        "additionalDetails": None if restore else {"RetentionTag": "Default"},
        "warningDetails": None,
    }
    return {"properties": properties, "id": f"{vault.id}/backupJobs/{job_id}", "name": job_id,
            "type": DPP_JOB_RESOURCE_TYPE}


def dpp_listed_job(job: Json) -> Json:
    """A stored job (as GET returns it) the way Jobs_List shows it: extendedInfo null, the duration as a .NET
    TimeSpan ('00:03:39.7214322') and the times with their trailing zeros trimmed ('…46.417859Z'; the GET writes
    its unset time '0001-01-01T00:00:00Z' trimmed too). Changes `job` in place."""
    properties = job["properties"]
    if "extendedInfo" in properties:
        properties["extendedInfo"] = None
    duration = properties.get("duration")
    if isinstance(duration, str):
        with contextlib.suppress(ValueError):  # else already a TimeSpan, or a value a test wants served as it is
            properties["duration"] = dotnet_duration(parse_iso_duration(duration))
    for key in ("startTime", "endTime"):  # the GET's serializer trims them too; a stored 7-digit one is trimmed here
        stamp = properties.get(key)
        if isinstance(stamp, str):
            with contextlib.suppress(ValueError):
                properties[key] = format_ticks(parse_azure_time(stamp))
    return job


def make_backup_instance(*, vault: FakeBackupVault, datasource_type: str, datasource_name: str,
                         resource_group: str | None = None, name: str | None = None, friendly_name: str | None = None,
                         policy: str = "DefaultPolicy", protection_state: str = "ProtectionConfigured",
                         provisioning_state: str = "Succeeded", location: str | None = None,
                         containers: tuple[str, ...] = ("backups",), error: str | None = None) -> Json:
    """A BackupInstanceResource as BackupInstances_List returns it (the PowerShell recording's shape).

    protection_state lands in protectionStatus.status and currentProtectionState (both open string sets);
    error, for a ProtectionError, in protectionStatus.errorDetails. Blobs and AKS clusters carry a
    dataSourceSetInfo and their backupDatasourceParametersList (blob containers, Kubernetes namespaces); disks and
    AKS clusters the operational store's snapshot resource group.
    """
    kind = dpp_datasource(datasource_type)
    group = resource_group or vault.resource_group
    resource_id = _dpp_datasource_id(kind, vault.subscription_id, group, datasource_name)
    instance_name = name or backup_instance_name(vault, datasource_name)

    def info(object_type: str) -> Json:
        return {"resourceID": resource_id, "resourceUri": resource_id, "datasourceType": kind.datasource_type,
                "resourceName": datasource_name, "resourceType": kind.resource_type,
                "resourceLocation": location or vault.location, "objectType": object_type}

    parameters: Json = {}
    if kind.name == "AzureBlob":
        parameters["backupDatasourceParametersList"] = [
            {"objectType": "BlobBackupDatasourceParameters", "containersList": list(containers)}]
    if kind.name == "AzureKubernetesService":
        parameters["backupDatasourceParametersList"] = [{
            "excludedNamespaces": ["kube-system"], "excludedResourceTypes": [], "includeClusterScopeResources": True,
            "includedNamespaces": [], "includedResourceTypes": [], "includedVolumeTypes": ["AzureDisk"],
            "labelSelectors": [], "objectType": "KubernetesClusterBackupDatasourceParameters",
            "snapshotVolumes": True}]
    if kind.store == "OperationalStore":
        parameters["dataStoreParametersList"] = [{
            "objectType": "AzureOperationalStoreParameters", "dataStoreType": "OperationalStore",
            "resourceGroupId": f"/subscriptions/{vault.subscription_id}/resourceGroups/{group}"}]
    policy_info: Json = {"policyId": f"{vault.id}/backupPolicies/{policy}"}
    if parameters:
        policy_info["policyParameters"] = parameters
    status: Json = {"status": protection_state}
    if error:
        status["errorDetails"] = _dpp_error(error, "UserErrorProtectionError")  # illustrative code
    properties: Json = {"friendlyName": friendly_name or datasource_name, "dataSourceInfo": info("Datasource")}
    if kind.set_info:
        properties["dataSourceSetInfo"] = info("DatasourceSet")
    properties.update(policyInfo=policy_info, protectionStatus=status, currentProtectionState=protection_state,
                      provisioningState=provisioning_state, objectType="BackupInstance")
    return {"properties": properties, "id": f"{vault.id}/backupInstances/{instance_name}", "name": instance_name,
            "type": BACKUP_INSTANCE_RESOURCE_TYPE}


def make_dpp_policy(*, vault: FakeBackupVault, name: str, datasource_type: str, interval: str = "P1D",
                    start: str = "2024-01-01T02:00:00+00:00", retention: str = "P30D") -> Json:
    """A BaseBackupPolicyResource as BackupPolicies_List returns it (the Azure CLI's recorded disk policy, key for
    key; the fields of the spec's ListBackupPolicy.json): one AzureBackupRule whose schedule repeats every
    `interval` from `start` ('R/2024-01-01T02:00:00+00:00/P1D') into the data source's store, then the default
    AzureRetentionRule keeping points for `retention`. interval: PT<n>H (Hourly), P1D (Daily) or P1W (Weekly);
    ValueError for a frequency the data source's policies cannot have (the CLI's manifests)."""
    kind = dpp_datasource(datasource_type)
    frequency = ("Hourly" if interval.startswith("PT") and interval.endswith("H") else
                 {"P1D": "Daily", "P1W": "Weekly"}.get(interval))
    if frequency is None or frequency not in kind.frequencies:
        raise ValueError(f"a {kind.name} policy cannot back up every {interval!r}; it allows "
                         f"{', '.join(kind.frequencies)}")
    store = {"dataStoreType": kind.store, "objectType": "DataStoreInfoBase"}
    schedule: Json = {"repeatingTimeIntervals": [f"R/{start}/{interval}"]}
    lifecycle: Json = {"deleteAfter": {"objectType": "AbsoluteDeleteOption", "duration": retention}}
    if kind.utc_schedule:
        schedule["timeZone"] = "UTC"
        lifecycle["targetDataStoreCopySettings"] = []
    lifecycle["sourceDataStore"] = dict(store)
    backup_rule = {
        "backupParameters": {"backupType": kind.backup_type, "objectType": "AzureBackupParams"},
        "trigger": {"schedule": schedule,
                    "taggingCriteria": [{"tagInfo": {"tagName": "Default", "id": "Default_"}, "taggingPriority": 99,
                                         "isDefault": True}],
                    "objectType": "ScheduleBasedTriggerContext"},
        "dataStore": dict(store),
        "name": f"Backup{frequency}",
        "objectType": "AzureBackupRule",
    }
    retention_rule = {"lifecycles": [lifecycle], "isDefault": True, "name": "Default",
                      "objectType": "AzureRetentionRule"}
    return {
        "properties": {"policyRules": [backup_rule, retention_rule], "datasourceTypes": [kind.datasource_type],
                       "objectType": "BackupPolicy"},
        "id": f"{vault.id}/backupPolicies/{name}",
        "name": name,
        "type": DPP_POLICY_RESOURCE_TYPE,
    }


def _seven_digits(ticks: int) -> str:
    """A timestamp with all 7 fractional digits, as the recovery point list writes them ('…20.5055980Z')."""
    seconds, fraction = divmod(ticks, TICKS_PER_SECOND)
    return f"{(_DOTNET_EPOCH + timedelta(seconds=seconds)):%Y-%m-%dT%H:%M:%S}.{fraction:07d}Z"


def make_workload_recovery_point(item: Mapping[str, Any], *, time: Timestamp | None = None, kind: str = "Full",
                                 log_ranges: list[tuple[Timestamp, Timestamp]] | None = None,
                                 name: str | None = None) -> Json:
    """A database's RecoveryPointResource as `GET .../protectedItems/{item}/recoveryPoints` lists it (Microsoft's
    documented answer, tests/fixtures/azure/recoveryservicesbackup/2016-12-01): a distinct point of `kind`
    (Full, Differential, ...) at `time` (recoveryPointTimeInUTC, whole seconds), or, with `log_ranges`, the
    item's `DefaultRangeRecoveryPoint` of type Log whose timeRanges are the unbroken log chains. The object
    types are SQL's, or SAP HANA's for a HANA database."""
    hana = "hana" in str(item.get("properties", {}).get("workloadType", "")).lower()
    family = "AzureWorkloadSAPHana" if hana else "AzureWorkloadSQL"
    if log_ranges is not None:
        point_name = name or "DefaultRangeRecoveryPoint"
        properties: Json = {"objectType": f"{family}PointInTimeRecoveryPoint",
                            "timeRanges": [{"startTime": _whole_seconds(start), "endTime": _whole_seconds(end)}
                                           for start, end in log_ranges],
                            "type": "Log"}
    else:
        if time is None:
            raise ValueError("a distinct recovery point needs its time")
        moment = _whole_seconds(time)
        point_name = name or str(int.from_bytes(hashlib.sha256(f"{item.get('id')}/{moment}".encode()).digest()[:6]))
        properties = {"objectType": f"{family}RecoveryPoint", "recoveryPointTimeInUTC": moment, "type": kind}
    return {"id": f"{item.get('id')}/recoveryPoints/{point_name}", "name": point_name,
            "type": ITEM_RECOVERY_POINT_RESOURCE_TYPE, "properties": properties}


def _whole_seconds(value: Timestamp) -> str:
    """The points' times are whole seconds with a Z (documented answer)."""
    if isinstance(value, str):
        return value
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_recovery_point(*, vault: FakeBackupVault, instance: str, time: Timestamp, datasource_type: str,
                        policy: str = "DefaultPolicy", recovery_point_id: str | None = None,
                        recovery_point_type: str = "Incremental", retention_tag: str = "Default",
                        retention: timedelta = timedelta(days=30), created: Timestamp | None = None) -> Json:
    """An AzureBackupDiscreteRecoveryPoint resource as RecoveryPoints_List returns it (the Azure CLI's recording,
    key for key): `time` is its recoveryPointTime, `created` (default: the same) when its copy in the data
    source's store was made, which it keeps for `retention`. Times are datetimes (given a 7th fractional digit)
    or Azure timestamps; the list writes all 7 digits."""
    kind = dpp_datasource(datasource_type)
    moment = time if isinstance(time, str) else time.isoformat()
    point = recovery_point_id or uuid.uuid5(uuid.NAMESPACE_URL, f"{vault.id}/{instance}/{moment}").hex
    ticks = _dpp_ticks(time, point, "time")
    made = _dpp_ticks(created, point, "created") if created is not None else ticks
    expiry = _seven_digits(made + retention // timedelta(microseconds=1) * 10)
    store_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{vault.id}/{instance}/store".lower())
    return {
        "properties": {
            "objectType": "AzureBackupDiscreteRecoveryPoint",
            "recoveryPointId": point,
            "recoveryPointTime": _seven_digits(ticks),
            "recoveryPointType": recovery_point_type,
            "friendlyName": point,
            "recoveryPointDataStoresDetails": [{
                "id": str(store_id), "type": kind.store, "creationTime": _seven_digits(made), "expiryTime": expiry,
                "metaData": None, "visible": True, "state": "COMMITTED", "rehydrationExpiryTime": None,
                "rehydrationStatus": None}],
            "retentionTagName": retention_tag,
            "retentionTagVersion": str(to_ticks(datetime(2024, 1, 1, tzinfo=UTC))),
            "policyName": policy,
            "policyVersion": None,
            "expiryTime": expiry,
        },
        "id": f"{vault.id}/backupInstances/{instance}/recoveryPoints/{point}",
        "name": point,
        "type": RECOVERY_POINT_RESOURCE_TYPE,
    }


@dataclass(frozen=True)
class RecoveryPointFilter:
    """A parsed RecoveryPoints_List $filter: recoveryPointTime within [start, end] (either may be open)."""

    start: int | None = None  # ticks
    end: int | None = None

    def matches(self, point: Mapping[str, Any]) -> bool:
        taken = point.get("properties", {}).get("recoveryPointTime")
        try:
            ticks = parse_azure_time(taken) if isinstance(taken, str) else None
        except ValueError:
            ticks = None
        if ticks is None:
            return self.start is None and self.end is None
        return (self.start is None or ticks >= self.start) and (self.end is None or ticks <= self.end)


def parse_recovery_point_filter(text: str) -> RecoveryPointFilter:
    """`startDate eq '<t>' and endDate eq '<t>'` (either clause alone), the Azure CLI's grammar; the times are ISO
    8601 ('2026-11-20T13:05:00', a 'Z' or an offset allowed; naive means UTC). FilterError otherwise."""
    clauses = _parse_clauses(text, {"startdate": "startDate", "enddate": "endDate"})
    bounds: dict[str, int] = {}
    for name, value in clauses.items():
        try:
            moment = datetime.fromisoformat(value)
        except ValueError as exc:
            raise FilterError(f"{name} {value!r} is not an ISO 8601 date and time") from exc
        bounds[name] = to_ticks(moment)
    return RecoveryPointFilter(bounds.get("startDate"), bounds.get("endDate"))


# --- $filter --------------------------------------------------------------------------------------

class FilterError(ValueError):
    """A $filter the service would refuse."""


_FILTER_FIELDS = {name.lower(): name for name in
                  ("startTime", "endTime", "status", "operation", "backupManagementType", "jobId")}
_FILTER_VALUE_SETS = {"status": JOB_STATUSES, "operation": JOB_OPERATIONS,
                      "backupManagementType": BACKUP_MANAGEMENT_TYPES}
_CLAUSE = re.compile(r"\s*(?P<field>\w+)\s+eq\s+'(?P<value>[^']*)'\s*", re.IGNORECASE)
_AND = re.compile(r"and\b", re.IGNORECASE)


@dataclass(frozen=True)
class JobFilter:
    """A parsed $filter: a job matches when its startTime is inside [start, end] and every equality holds."""

    start: int | None = None  # ticks
    end: int | None = None
    equals: tuple[tuple[str, str], ...] = ()  # (job property, lower-cased value); "name" for jobId

    def matches(self, job: Mapping[str, Any]) -> bool:
        properties = job.get("properties", {})
        for key, wanted in self.equals:
            actual = job.get("name") if key == "name" else properties.get(key)
            if not isinstance(actual, str) or actual.lower() != wanted:
                return False
        if self.start is None and self.end is None:
            return True
        started = _start_ticks(job)
        if started is None:
            return False
        return (self.start is None or started >= self.start) and (self.end is None or started <= self.end)


def parse_job_filter(text: str) -> JobFilter:
    """Parse `field eq 'value' [and ...]` over the fields of JobQueryObject; FilterError otherwise."""
    return _job_filter_from(_parse_clauses(text, _FILTER_FIELDS))


def _parse_clauses(text: str, fields: Mapping[str, str]) -> dict[str, str]:
    """`field eq 'value' [and ...]` -> {field: value}, fields named as in `fields` (lower-cased -> proper)."""
    clauses: dict[str, str] = {}
    position = 0
    while text.strip():
        clause = _CLAUSE.match(text, position)
        if not clause:
            raise FilterError(f"cannot parse $filter near {text[position:]!r}")
        name = fields.get(clause.group("field").lower())
        if name is None:
            raise FilterError(f"unknown $filter field {clause.group('field')!r}")
        if name in clauses:
            raise FilterError(f"$filter field {name!r} given twice")
        clauses[name] = clause.group("value")
        position = clause.end()
        if position == len(text):
            break
        joiner = _AND.match(text, position)
        if not joiner or joiner.end() == len(text):
            raise FilterError(f"expected 'and <clause>' in $filter near {text[position:]!r}")
        position = joiner.end()
    return clauses


def _job_filter_from(clauses: Mapping[str, str]) -> JobFilter:
    bounds: dict[str, int] = {}
    for name in ("startTime", "endTime"):
        if name in clauses:
            try:
                bounds[name] = to_ticks(parse_filter_time(clauses[name]))
            except ValueError as exc:
                raise FilterError(str(exc)) from exc
    equals = []
    for name, value in clauses.items():
        if name in bounds:
            continue
        allowed = _FILTER_VALUE_SETS.get(name)
        if allowed and value.lower() not in {choice.lower() for choice in allowed}:
            raise FilterError(f"{value!r} is not a valid {name}")
        equals.append(("name" if name == "jobId" else name, value.lower()))
    return JobFilter(bounds.get("startTime"), bounds.get("endTime"), tuple(equals))


# The fields of ProtectedItemQueryObject the fake models; itemType selects on the item's workloadType.
_ITEM_FILTER_FIELDS = {name.lower(): name for name in
                       ("backupManagementType", "itemType", "friendlyName", "policyName", "containerName")}
_ITEM_FILTER_PROPERTIES = {"itemType": "workloadType"}
_ITEM_FILTER_VALUE_SETS = {"backupManagementType": BACKUP_MANAGEMENT_TYPES, "itemType": ITEM_TYPES}


@dataclass(frozen=True)
class ItemFilter:
    """A parsed protected-items $filter: an item matches when every equality holds (case-insensitively)."""

    equals: tuple[tuple[str, str], ...] = ()  # (item property, lower-cased value)

    def matches(self, item: Mapping[str, Any]) -> bool:
        properties = item.get("properties", {})
        return all(isinstance(properties.get(key), str) and properties[key].lower() == wanted
                   for key, wanted in self.equals)


def parse_item_filter(text: str) -> ItemFilter:
    """Parse `backupManagementType eq '...' and itemType eq '...'` (and friendlyName, policyName,
    containerName); FilterError for anything else, as for jobs."""
    equals = []
    for name, value in _parse_clauses(text, _ITEM_FILTER_FIELDS).items():
        allowed = _ITEM_FILTER_VALUE_SETS.get(name)
        if allowed and value.lower() not in {choice.lower() for choice in allowed}:
            raise FilterError(f"{value!r} is not a valid {name}")
        equals.append((_ITEM_FILTER_PROPERTIES.get(name, name), value.lower()))
    return ItemFilter(tuple(equals))


def _start_ticks(job: Mapping[str, Any]) -> int | None:
    started = job.get("properties", {}).get("startTime")
    try:
        return parse_azure_time(started) if isinstance(started, str) else None
    except ValueError:
        return None


def _page_position(job: Mapping[str, Any]) -> tuple[int, str]:
    """Where a job sits in the service's index: newest first (reverse ticks, as in the real row key), then id."""
    started = _start_ticks(job)
    return (_DOTNET_MAX_TICKS - started if started is not None else _DOTNET_MAX_TICKS, str(job.get("name", "")).lower())


def _item_position(item: Mapping[str, Any]) -> tuple[int, str]:
    """Protected items are listed by name, then id, as names repeat across containers (the real order is not
    captured; any stable one will do)."""
    return (0, f"{item.get('name', '')}\t{item.get('id', '')}".lower())


# --- faults and recorded requests -----------------------------------------------------------------

@dataclass
class Fault:
    """A misbehaviour injected per vault (or into the token endpoint through FakeArm.identity_fault).

    kind: "status" (reply `status` with an ARM error body; an empty message gets the real text for the
    code), "throttle" (429 + Retry-After), "timeout" (sleep `delay` s, then reply normally), "malformed"
    (200 whose body is cut-off JSON), "offhost_nextlink" (the first LIST page's nextLink is `url`).
    times: apply to the next N matching requests only, then disappear (None: until cleared).
    operations: which of a vault's requests it hits (FAULT_OPERATIONS; all by default).
    """

    kind: FaultKind
    status: int = 500
    code: str = "InternalServerError"
    message: str = ""
    retry_after: int = 1
    delay: float = 0.0
    url: str = ""
    times: int | None = None
    operations: frozenset[str] = FAULT_OPERATIONS

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; one of {', '.join(FAULT_KINDS)}")
        known = FAULT_OPERATIONS | VAULT_LIST_FAULT_OPERATIONS
        if not self.operations <= known:
            raise ValueError(f"unknown fault operations {sorted(self.operations - known)}")

    @classmethod
    def authorization_failed(cls, times: int | None = None,
                             operations: frozenset[str] = FAULT_OPERATIONS) -> Fault:
        """403 AuthorizationFailed as ARM sends it when the identity lacks Backup Reader on the vault.
        operations=DPP_FAULT_OPERATIONS hits only the Backup vault of that name, RSV_FAULT_OPERATIONS only the
        Recovery Services vault."""
        return cls("status", status=403, code="AuthorizationFailed", times=times, operations=operations)

    @classmethod
    def resource_not_found(cls, times: int | None = None,
                           operations: frozenset[str] = FAULT_OPERATIONS) -> Fault:
        """The gateway's 404 ResourceNotFound, as for a vault deleted after discovery."""
        return cls("status", status=404, code="ResourceNotFound", times=times, operations=operations)


@dataclass
class RecordedRequest:
    method: str
    path: str  # URL-decoded
    query: dict[str, str]  # decoded, keys as sent (first value of each)
    headers: CaseInsensitiveDict[str]
    raw_query: str  # as sent, to check what a client did to the $skiptoken
    at: float
    status: int | None = None  # of the reply, once sent


class RequestLog:
    """Every request the fake saw, in arrival order; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[RecordedRequest] = []

    def append(self, request: RecordedRequest) -> None:
        with self._lock:
            self._items.append(request)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def snapshot(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._items)

    def to(self, path_fragment: str) -> list[RecordedRequest]:
        """Requests whose path contains this fragment (case-insensitive), e.g. '/backupJobs'."""
        return [r for r in self.snapshot() if path_fragment.lower() in r.path.lower()]

    def __iter__(self) -> Iterator[RecordedRequest]:
        return iter(self.snapshot())

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    @overload
    def __getitem__(self, index: int) -> RecordedRequest: ...

    @overload
    def __getitem__(self, index: slice) -> list[RecordedRequest]: ...

    def __getitem__(self, index: int | slice) -> RecordedRequest | list[RecordedRequest]:
        with self._lock:
            return self._items[index]


# --- the server -----------------------------------------------------------------------------------

@dataclass
class _Reply:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Route:
    operation: str  # vaults_list, vault_get, jobs_list, jobs_get, items_list, ...; dpp_* for Backup vaults
    subscription_id: str
    resource_group: str = ""
    vault: str = ""
    job_id: str = ""
    instance: str = ""  # a Backup vault's backup instance (recovery points)
    namespace: str = RSV_NAMESPACE

    @property
    def backup_vault(self) -> bool:
        return self.operation.startswith("dpp_")


@dataclass(frozen=True)
class _Incoming:
    method: str
    path: str  # URL-decoded
    raw_query: str
    params: Mapping[str, str]  # decoded, names lower-cased (ARM's are case-insensitive), first value wins
    headers: Mapping[str, str]


@dataclass
class _Bucket:
    """One subscription's read token bucket."""

    tokens: float
    at: float  # clock() of the last refill


@dataclass(frozen=True)
class _IssuedToken:
    vault_key: str
    collection: str  # the LIST it continues, e.g. "backupJobs"
    filter: str
    position: tuple[int, str]


@dataclass(frozen=True)
class _Collection:
    """A vault's paged LIST: what it holds, how $filter selects, in which order and how entries show.

    style "bms": the Backup service's nextLink quirks (old api-version, XML $skiptoken); no nextLink key on the
    last page. style "dpp": a Backup vault list, whose nextLink keeps the request's api-version and carries an
    opaque $skipToken; its last page shows `last_page` (a null nextLink, or none, as the real list showed).
    """

    segment: str  # the LIST's path under its owner (a vault, or a subscription for the vault list)
    entries: Callable[[Any], list[Json]]  # the stored entries themselves; read under the estate's lock
    parse_filter: Callable[[str], Callable[[Mapping[str, Any]], bool]]
    position: Callable[[Mapping[str, Any]], tuple[int, str]]
    row_key: Callable[[tuple[int, str]], str]  # the table row key inside the skiptoken
    listed: Callable[[Json], Json]
    style: Literal["bms", "dpp"] = "bms"
    filter_ignored: bool = False  # the real API declares no $filter: one sent is ignored, not refused
    last_page: NextLinkOnLastPage = "absent"


@dataclass(frozen=True)
class _Scope:
    """What a subscription-level LIST pages over (the Backup vault list)."""

    id: str
    subscription_id: str
    vaults: tuple[FakeBackupVault, ...]


_VAULTS_ROUTE = re.compile(r"^/subscriptions/(?P<sub>[^/]+)/providers/Microsoft\.RecoveryServices/vaults/?$",
                           re.IGNORECASE)
_VAULT_ROUTE = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.RecoveryServices"
    r"/vaults/(?P<vault>[^/]+)(?:(?P<jobs>/backupJobs(?:/(?P<job>[^/]+))?)|(?P<items>/backupProtectedItems)"
    r"|(?P<policies>/backupPolicies)"
    r"|(?P<points>/backupFabrics/[^/]+/protectionContainers/[^/]+/protectedItems/[^/]+)/recoveryPoints)?/?$",
    re.IGNORECASE,
)
_DPP_VAULTS_ROUTE = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/providers/Microsoft\.DataProtection/backupVaults/?$", re.IGNORECASE)
_DPP_VAULT_ROUTE = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.DataProtection"
    r"/backupVaults/(?P<vault>[^/]+)(?:(?P<jobs>/backupJobs(?:/(?P<job>[^/]+))?)"
    r"|(?P<instances>/backupInstances(?:/(?P<instance>[^/]+)/recoveryPoints)?)|(?P<policies>/backupPolicies))?/?$",
    re.IGNORECASE,
)
_IDENTITY_PATH = "/msi/token"
_ISSUED_TOKEN_LIMIT = 10_000  # skiptokens remembered for redemption; the oldest are forgotten first


def _route_key(path: str) -> str:
    """How an extra route's path is matched: case-insensitively, a trailing slash ignored."""
    return path.rstrip("/").lower()


def _route(path: str) -> _Route | None:
    if (resources := RESOURCES_PATH.match(path)) is not None:
        return _Route("resources_list", resources.group("sub"), namespace="Microsoft.Resources")
    listing = _VAULTS_ROUTE.match(path)
    if listing:
        return _Route("vaults_list", listing.group("sub"))
    dpp = _dpp_route(path)
    if dpp is not None:
        return dpp
    match = _VAULT_ROUTE.match(path)
    if not match:
        return None
    if match.group("job"):
        operation = "jobs_get"
    elif match.group("jobs"):
        operation = "jobs_list"
    elif match.group("items"):
        operation = "items_list"
    elif match.group("policies"):
        operation = "policies_list"
    elif match.group("points"):
        # the protected item's path under the vault, e.g. /backupFabrics/Azure/protectionContainers/c/protectedItems/i
        return _Route("item_recovery_points_list", match.group("sub"), match.group("rg"), match.group("vault"),
                      instance=match.group("points"))
    else:
        operation = "vault_get"
    return _Route(operation, match.group("sub"), match.group("rg"), match.group("vault"), match.group("job") or "")


def _dpp_route(path: str) -> _Route | None:
    listing = _DPP_VAULTS_ROUTE.match(path)
    if listing:
        return _Route("dpp_vaults_list", listing.group("sub"), namespace=DPP_NAMESPACE)
    match = _DPP_VAULT_ROUTE.match(path)
    if not match:
        return None
    if match.group("job"):
        operation = "dpp_jobs_get"
    elif match.group("jobs"):
        operation = "dpp_jobs_list"
    elif match.group("instance"):
        operation = "dpp_recovery_points_list"
    elif match.group("instances"):
        operation = "dpp_instances_list"
    elif match.group("policies"):
        operation = "dpp_policies_list"
    else:
        operation = "dpp_vault_get"
    return _Route(operation, match.group("sub"), match.group("rg"), match.group("vault"), match.group("job") or "",
                  match.group("instance") or "", DPP_NAMESPACE)


def _json_reply(status: int, body: object, headers: Mapping[str, str] | None = None) -> _Reply:
    payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return _Reply(status, payload, {"Content-Type": "application/json; charset=utf-8", **(headers or {})})


def _arm_error(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> _Reply:
    return _json_reply(status, error_body(code, message), headers)


def _invalid_input(reason: str) -> _Reply:
    return _arm_error(400, INVALID_INPUT_CODE,
                      f"Input provided for the call is invalid. Please check the required inputs. ({reason})")


def _strip_extended_info(job: Json) -> Json:
    """LIST never carries extendedInfo (azure-api.md 1.8)."""
    job["properties"].pop("extendedInfo", None)
    return job


_JOBS = _Collection("backupJobs", lambda vault: list(vault.jobs.values()),
                    lambda text: parse_job_filter(text).matches, _page_position,
                    lambda position: f"jobsstarttimeindex_0_{position[0]}_0_{position[1]}",
                    _strip_extended_info)
# No real protected-items nextLink was captured: the row key is illustrative, the rest is the jobs' quirk.
_ITEMS = _Collection("backupProtectedItems", lambda vault: list(vault.items.values()),
                     lambda text: parse_item_filter(text).matches, _item_position,
                     lambda position: f"protecteditemsnameindex_{position[1]}", lambda item: item)
def _no_filter(text: str) -> Callable[[Mapping[str, Any]], bool]:
    if text:
        raise FilterError("this fake's backupPolicies list takes no $filter")
    return lambda _: True


# Backup policies: the exporter lists them unfiltered (the service also takes backupManagementType); by name.
_POLICIES = _Collection("backupPolicies", lambda vault: list(vault.policies.values()),
                        _no_filter, lambda policy: (0, str(policy.get("name", "")).lower()),
                        lambda position: f"policiesnameindex_{position[1]}", lambda policy: policy)
_COLLECTIONS = {"jobs_list": _JOBS, "items_list": _ITEMS, "policies_list": _POLICIES}


# Backup vault LISTs. Jobs_List declares no $filter (a client's is ignored) and its real single page carried
# "nextLink": null; the real BackupInstances_List page had no nextLink key. For the others no real page was
# captured: like the spec examples, no key. Jobs come newest first, as the Backup service lists them (the real
# order of a Backup vault's list was not captured); instances and policies by name, vaults by group and name.
def _ignore_filter(_: str) -> Callable[[Mapping[str, Any]], bool]:
    return lambda _entry: True


def _by_name(entry: Mapping[str, Any]) -> tuple[int, str]:
    return (0, str(entry.get("name", "")).lower())


def _vault_position(entry: Mapping[str, Any]) -> tuple[int, str]:
    resource_id = str(entry.get("id", "")).lower()
    return (0, f"{resource_id.split('/providers/')[0]}\t{entry.get('name', '')}".lower())


def _point_position(point: Mapping[str, Any]) -> tuple[int, str]:
    taken = point.get("properties", {}).get("recoveryPointTime")
    try:
        ticks = parse_azure_time(taken) if isinstance(taken, str) else None
    except ValueError:
        ticks = None
    return (_DOTNET_MAX_TICKS - ticks if ticks is not None else _DOTNET_MAX_TICKS, str(point.get("name", "")).lower())


def _no_row_key(position: tuple[int, str]) -> str:
    return f"{position[0]}_{position[1]}"


_DPP_VAULTS = _Collection("providers/Microsoft.DataProtection/backupVaults",
                          lambda scope: [vault.resource() for vault in scope.vaults], _ignore_filter,
                          _vault_position, _no_row_key, lambda entry: entry, "dpp", True, "absent")
_DPP_JOBS = _Collection("backupJobs", lambda vault: list(vault.jobs.values()), _ignore_filter, _page_position,
                        _no_row_key, dpp_listed_job, "dpp", True, "null")
_DPP_INSTANCES = _Collection("backupInstances", lambda vault: list(vault.instances.values()), _ignore_filter,
                             _by_name, _no_row_key, lambda entry: entry, "dpp", True, "absent")
_DPP_POLICIES = _Collection("backupPolicies", lambda vault: list(vault.policies.values()), _ignore_filter,
                            _by_name, _no_row_key, lambda entry: entry, "dpp", True, "absent")
_DPP_COLLECTIONS = {"dpp_jobs_list": _DPP_JOBS, "dpp_instances_list": _DPP_INSTANCES,
                    "dpp_policies_list": _DPP_POLICIES}
# Every LIST that pages; "<x>_list" becomes "<x>_next_page" when it follows a nextLink.
_LIST_OPERATIONS = frozenset({*_COLLECTIONS, *_DPP_COLLECTIONS, "dpp_vaults_list", "dpp_recovery_points_list",
                              "item_recovery_points_list"})


def _item_point_position(point: Mapping[str, Any]) -> tuple[int, str]:
    """Newest distinct point first, the log range last, as the documented answer lists them."""
    taken = point.get("properties", {}).get("recoveryPointTimeInUTC")
    try:
        ticks = parse_azure_time(taken) if isinstance(taken, str) else None
    except ValueError:
        ticks = None
    return (_DOTNET_MAX_TICKS - ticks if ticks is not None else _DOTNET_MAX_TICKS, str(point.get("name", "")).lower())


def _item_points_collection(item_id: str, points: list[Json]) -> _Collection:
    """A protected item's recovery points (the exporter sends no $filter; this fake takes none)."""
    segment = item_id.split("/providers/", 1)[1].split("/", 3)[3] + "/recoveryPoints"
    return _Collection(segment, lambda _vault: points, _no_filter, _item_point_position,
                       lambda position: f"recoverypointsindex_{position[1]}", lambda entry: entry)


def _recovery_points_collection(instance: str) -> _Collection:
    """RecoveryPoints_List of one instance: $filter on startDate/endDate, newest first."""
    return _Collection(f"backupInstances/{instance}/recoveryPoints",
                       lambda vault: list(vault.recovery_points.get(instance.lower(), {}).values()),
                       lambda text: parse_recovery_point_filter(text).matches, _point_position, _no_row_key,
                       lambda entry: entry, "dpp", False, "absent")


def _operation_name(route: _Route, params: Mapping[str, str]) -> str:
    if route.operation in _LIST_OPERATIONS and "$skiptoken" in params:
        return route.operation.replace("_list", "_next_page")
    return route.operation



class FakeArm:
    """ARM and the managed-identity endpoint for one FakeEstate, on http://127.0.0.1:<free port>."""

    def __init__(self, estate: FakeEstate, *, page_size: int = 200, token: str = "fake-arm-token",
                 latency: float = 0.0, identity_header: str = "fake-identity-header",
                 clock: Callable[[], float] = time.time, ratelimit_refill: float = 0.0,
                 ratelimit_capacity: int = RATELIMIT_CAPACITY, enforce_ratelimit: bool = False,
                 record_requests: bool = True, stats_extra: Callable[[], Json] | None = None,
                 dpp_page_size: int | None = None, dpp_last_page_next_link: NextLinkOnLastPage | None = None) -> None:
        """latency: seconds added to every ARM reply. ratelimit_refill: tokens per second put back into each
        subscription's bucket of ratelimit_capacity (ARM: 25 and 250); enforce_ratelimit: an empty bucket
        answers 429 (else the headers only count down). record_requests: keep every request in `requests`
        (the benchmark turns it off; the counters of stats() are always kept). stats_extra: more JSON for
        stats(), e.g. a job simulator's counts. dpp_page_size: entries per page of the Backup vault LISTs (default
        page_size). dpp_last_page_next_link: "null" or "absent" for the last page of every Backup vault LIST;
        None keeps each list's real form (jobs "nextLink": null, backup instances no key, the others no key)."""
        if page_size < 1 or (dpp_page_size is not None and dpp_page_size < 1):
            raise ValueError("page_size must be at least 1")
        if dpp_last_page_next_link not in (None, "null", "absent"):
            raise ValueError("dpp_last_page_next_link must be 'null', 'absent' or None")
        if ratelimit_capacity < 1 or ratelimit_refill < 0:
            raise ValueError("ratelimit_capacity must be at least 1 and ratelimit_refill not negative")
        self.estate = estate
        self.page_size = page_size
        self.dpp_page_size = dpp_page_size
        self.dpp_last_page_next_link = dpp_last_page_next_link
        self.token = token
        self.latency = latency
        self.identity_header = identity_header
        self.clock = clock
        self.requests = RequestLog()
        self.record_requests = record_requests
        self.ratelimit_capacity = ratelimit_capacity
        self.ratelimit_refill = ratelimit_refill  # tokens per second put back into each bucket (ARM: 25)
        self.enforce_ratelimit = enforce_ratelimit
        self.stats_extra = stats_extra
        self.extra_routes: dict[str, ExtraRoute] = {}  # see add_route
        self.identity_fault: Fault | None = None
        self._lock = threading.Lock()
        self._faults: dict[str, Fault] = {}
        self._list_faults: dict[str, Fault] = {}  # lower-cased subscription ID -> its vault list's fault
        self._issued: OrderedDict[str, _IssuedToken] = OrderedDict()
        self._buckets: dict[str, _Bucket] = {}  # lower-cased subscription ID -> its read bucket
        self._last_bucket = ""
        self._by_subscription: dict[str, int] = {}  # lower-cased subscription ID -> ARM requests
        self._counts: dict[str, dict[str, int]] = {}  # operation -> status -> replies
        self._first_at: dict[str, float] = {}
        self._last_at: dict[str, float] = {}
        self._in_flight = 0
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --

    def start(self) -> FakeArm:
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = _Server(self)
        # stop() waits up to one poll interval; short, so a test suite that starts hundreds of fakes stays fast
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.01},
                                        name=f"fakearm-{self._server.server_port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()  # wakes handlers sleeping in latency or timeout faults
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> FakeArm:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeArm is not started")
        return f"http://127.0.0.1:{self._server.server_port}"

    @property
    def identity_endpoint(self) -> str:
        return f"{self.url}{_IDENTITY_PATH}"

    def identity_env(self) -> dict[str, str]:
        """The environment that points azure-identity's ManagedIdentityCredential at this fake."""
        return {"IDENTITY_ENDPOINT": self.identity_endpoint, "IDENTITY_HEADER": self.identity_header}

    # -- extra routes: the extension point for what tests and the benchmark serve beside ARM --

    def add_route(self, path: str, route: ExtraRoute) -> FakeArm:
        """Serve route()'s JSON at path (matched case-insensitively, a trailing slash ignored), e.g. stats() for
        a test or the benchmark in another process. Not an Azure API, so unlike ARM: no token and no api-version
        needed, GET answers 200 with the JSON and any other method 405, and the request is neither recorded
        nor counted. Returns the fake, to chain. Register before start() or while it serves."""
        key = _route_key(path)
        if not key.startswith("/") or key == _IDENTITY_PATH:
            raise ValueError(f"not a path for an extra route: {path!r}")
        self.extra_routes[key] = route
        return self

    # -- faults --

    def set_fault(self, vault_name: str, fault: Fault | None) -> None:
        with self._lock:
            if fault is None:
                self._faults.pop(vault_name.lower(), None)
            else:
                self._faults[vault_name.lower()] = fault

    def set_vault_list_fault(self, subscription_id: str, fault: Fault | None) -> None:
        """A fault on the subscription's vault list of the kind its operations name: RSV_LIST_FAULT_OPERATIONS
        (Recovery Services vaults) or DPP_LIST_FAULT_OPERATIONS (Backup vaults); None clears both."""
        if fault is not None and not fault.operations <= VAULT_LIST_FAULT_OPERATIONS:
            raise ValueError("a vault list fault takes RSV_LIST_FAULT_OPERATIONS or DPP_LIST_FAULT_OPERATIONS")
        with self._lock:
            if fault is None:
                self._list_faults.pop(subscription_id.lower(), None)
            else:
                self._list_faults[subscription_id.lower()] = fault

    def _take_list_fault(self, subscription_id: str, operation: str) -> Fault | None:
        with self._lock:
            fault = self._list_faults.get(subscription_id.lower())
            if fault is None or operation not in fault.operations:
                return None
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    del self._list_faults[subscription_id.lower()]
            return fault

    def fault_for(self, vault_name: str) -> Fault | None:
        with self._lock:
            return self._faults.get(vault_name.lower())

    def _take_fault(self, vault_name: str, operation: str) -> Fault | None:
        with self._lock:
            fault = self._faults.get(vault_name.lower())
            if fault is None or operation not in fault.operations:
                return None
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    del self._faults[vault_name.lower()]
            return fault

    def _take_identity_fault(self) -> Fault | None:
        with self._lock:
            fault = self.identity_fault
            if fault is not None and fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self.identity_fault = None
            return fault

    # -- the rate limit and the counters --

    @property
    def ratelimit_remaining(self) -> int:
        """Reads left in the bucket of the subscription that was read last."""
        return self.ratelimit_remaining_for(self._last_bucket)

    def ratelimit_remaining_for(self, subscription_id: str) -> int:
        with self._lock:
            bucket = self._buckets.get(subscription_id.lower())
            return int(self._refill(bucket)) if bucket is not None else self.ratelimit_capacity

    def _refill(self, bucket: _Bucket) -> float:
        now = self.clock()
        bucket.tokens = min(float(self.ratelimit_capacity),
                            bucket.tokens + max(0.0, now - bucket.at) * self.ratelimit_refill)
        bucket.at = now
        return bucket.tokens

    def _spend_read(self, subscription_id: str) -> tuple[int, int | None]:
        """Take one read from the subscription's bucket: (reads left, None), or (0, seconds to wait) when the
        bucket is empty and enforced. Without enforcement the count stops at 0 and the read goes through."""
        key = subscription_id.lower()
        with self._lock:
            bucket = self._buckets.setdefault(key, _Bucket(float(self.ratelimit_capacity), self.clock()))
            self._last_bucket = key
            self._by_subscription[key] = self._by_subscription.get(key, 0) + 1
            tokens = self._refill(bucket)
            if tokens >= 1:
                bucket.tokens = tokens - 1
                return int(bucket.tokens), None
            if not self.enforce_ratelimit:
                return 0, None
            if self.ratelimit_refill <= 0:
                return 0, 60
            return 0, max(1, math.ceil((1 - tokens) / self.ratelimit_refill))

    def stats(self) -> Json:
        """Counters for tests and the benchmark (which serve them with add_route): replies by operation and
        status, ARM's replies in total and with 429, requests in flight, ARM requests per subscription, when
        each operation was first asked and last answered (clock()), the buckets, and stats_extra's JSON.
        Operations: identity, vaults_list, vault_get, jobs_list, jobs_next_page, jobs_get, items_list,
        items_next_page, policies_list, policies_next_page, unknown; for Backup vaults dpp_vaults_list,
        dpp_vaults_next_page and DPP_FAULT_OPERATIONS."""
        with self._lock:
            counts = {operation: dict(statuses) for operation, statuses in self._counts.items()}
            arm = {operation: statuses for operation, statuses in counts.items() if operation != "identity"}
            stats: Json = {
                "test_only": "counters of the fake ARM for tests and the benchmark; not an Azure API",
                "now": self.clock(),
                "requests": counts,
                "arm_requests": sum(sum(statuses.values()) for statuses in arm.values()),
                "arm_throttled": sum(statuses.get("429", 0) for statuses in arm.values()),
                "in_flight": self._in_flight,
                "by_subscription": dict(self._by_subscription),
                "first_at": dict(self._first_at),
                "last_at": dict(self._last_at),
                "first_arm_request_at": min((t for op, t in self._first_at.items() if op != "identity"),
                                            default=None),
                "last_arm_request_at": max((t for op, t in self._last_at.items() if op != "identity"), default=None),
                "ratelimit": {
                    "enforced": self.enforce_ratelimit, "capacity": self.ratelimit_capacity,
                    "refill_per_second": self.ratelimit_refill,
                    "remaining": {key: int(self._refill(bucket)) for key, bucket in sorted(self._buckets.items())},
                },
            }
        if self.stats_extra is not None:
            stats["extra"] = self.stats_extra()
        return stats

    def _count(self, operation: str, status: int, started: float) -> None:
        now = self.clock()
        with self._lock:
            statuses = self._counts.setdefault(operation, {})
            statuses[str(status)] = statuses.get(str(status), 0) + 1
            self._first_at.setdefault(operation, started)
            self._last_at[operation] = now

    # -- request handling --

    def serve(self, method: str, target: str, headers: CaseInsensitiveDict[str]) -> _Reply:
        """One request in, one reply out; called by the HTTP handler thread."""
        parts = urlsplit(target)
        path = unquote(parts.path)
        extra = self.extra_routes.get(_route_key(path)) if self.extra_routes else None
        if extra is not None:
            return self._serve_extra(method, extra)
        query: dict[str, str] = {}
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            query.setdefault(key, value)
        started = self.clock()
        recorded = RecordedRequest(method, path, query, headers, parts.query, started)
        if self.record_requests:
            self.requests.append(recorded)
        params = {key.lower(): value for key, value in reversed(list(query.items()))}
        incoming = _Incoming(method, path, parts.query, params, headers)
        if path.rstrip("/").lower() == _IDENTITY_PATH:
            operation, reply = "identity", self._serve_identity(incoming)
        else:
            with self._lock:
                self._in_flight += 1
            try:
                operation, reply = self._serve_arm(incoming)
            finally:
                with self._lock:
                    self._in_flight -= 1
        recorded.status = reply.status
        self._count(operation, reply.status, started)
        return reply

    def _serve_extra(self, method: str, route: ExtraRoute) -> _Reply:
        if method != "GET":
            return _json_reply(405, {"error": "only GET"})
        return _json_reply(200, route())

    def _serve_identity(self, request: _Incoming) -> _Reply:
        fault = self._take_identity_fault()
        if fault is not None:
            faulty = self._identity_fault_reply(fault)
            if faulty is not None:
                return faulty
        params = request.params
        if request.method != "GET":
            return _json_reply(405, {"error": "invalid_request", "error_description": "Only GET is supported."})
        if request.headers.get("X-IDENTITY-HEADER") != self.identity_header:
            return _json_reply(401, {"error": "invalid_request",
                                     "error_description": "The X-IDENTITY-HEADER header is missing or wrong."})
        if params.get("api-version") != IDENTITY_API_VERSION:
            return _json_reply(400, {"error": "invalid_request",
                                     "error_description": f"api-version must be {IDENTITY_API_VERSION}."})
        resource = params.get("resource", "")
        if not resource:
            return _json_reply(400, {"error": "invalid_request", "error_description": "resource is required."})
        return _json_reply(200, {
            "access_token": self._token_for(resource),
            "expires_on": str(int(self.clock()) + 3600),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": params.get("client_id", FAKE_PRINCIPAL_ID),
        })

    def _token_for(self, resource: str) -> str:
        """The ARM token for an ARM audience; a token ARM refuses for any other audience."""
        audience = resource.removesuffix("/.default").rstrip("/").lower()
        if audience in ARM_AUDIENCES:
            return self.token
        return f"{self.token}.audience-{hashlib.sha256(audience.encode()).hexdigest()[:12]}"

    def _identity_fault_reply(self, fault: Fault) -> _Reply | None:
        if fault.kind == "timeout":
            self._stopping.wait(fault.delay)
            return None
        if fault.kind == "throttle":
            return _Reply(429, b"", {"Retry-After": str(fault.retry_after)})
        if fault.kind == "malformed":
            return _Reply(200, b'{"access_token":"', {"Content-Type": "application/json"})
        # "status": an empty body, the case where azure-identity lets a raw JSONDecodeError escape
        return _Reply(fault.status, b"", {})

    def _serve_arm(self, request: _Incoming) -> tuple[str, _Reply]:
        if self.latency:
            self._stopping.wait(self.latency)
        route = _route(request.path)
        operation = "unknown" if route is None else _operation_name(route, request.params)
        subscription = route.subscription_id if route is not None else ""
        remaining, wait = self._spend_read(subscription)
        if wait is not None and self._check_token(request.headers) is None:
            reply = _arm_error(429, THROTTLED_CODE, THROTTLED_MESSAGE.format(
                subscription=subscription, actor=FAKE_PRINCIPAL_ID, seconds=wait), {"Retry-After": str(wait)})
        else:
            reply = self._arm_reply(request, route)
        reply.headers.update(self._arm_headers(route, request.headers, remaining))
        if reply.status == 429:
            for name in list(reply.headers):
                if name.startswith("x-ms-ratelimit-remaining"):
                    reply.headers[name] = "0"
        return operation, reply

    def _arm_reply(self, request: _Incoming, route: _Route | None) -> _Reply:
        unauthenticated = self._check_token(request.headers)
        if unauthenticated is not None:
            return unauthenticated
        if request.method != "GET":
            return _arm_error(405, "MethodNotAllowed", f"The fake ARM serves only GET, not {request.method}.")
        params = request.params
        if "api-version" not in params:
            return _arm_error(400, "MissingApiVersionParameter",
                              "The api-version query parameter (?api-version=) is required for all requests.")
        if request.raw_query.lower().count("api-version=") > 1:
            return _arm_error(400, "InvalidApiVersionParameter", "The api-version query parameter is given twice.")
        if route is None:
            return _arm_error(404, "NotFound", f"The fake ARM has no route for '{request.path}'.")
        if not self.estate.knows_subscription(route.subscription_id):
            return _arm_error(404, "SubscriptionNotFound",
                              f"The subscription '{route.subscription_id}' could not be found.")
        if not self.estate.provider_registered(route.subscription_id, route.namespace):
            return _missing_registration(route.namespace)
        if route.operation == "resources_list":
            return _json_reply(*self.estate.resources.serve(self.url, route.subscription_id, params))
        unsupported = self._check_api_version(route, params)
        if unsupported is not None:
            return unsupported
        if route.operation in ("vaults_list", "dpp_vaults_list"):
            return self._serve_vault_list(route, params)
        if route.backup_vault:
            return self._serve_backup_vault_resource(route, params)
        return self._serve_vault_resource(route, params)

    def _serve_vault_list(self, route: _Route, params: Mapping[str, str]) -> _Reply:
        """A subscription's vaults of one kind, through that list's fault if one is set."""
        fault = self._take_list_fault(route.subscription_id, _operation_name(route, params))
        if fault is not None and fault.kind in ("status", "throttle"):
            return self._list_fault_reply(fault, route)
        if fault is not None and fault.kind == "timeout":
            self._stopping.wait(fault.delay)
        if route.operation == "vaults_list":
            reply = self._vault_list(route)
        else:
            with self.estate.lock:
                scope = _Scope(f"/subscriptions/{route.subscription_id}", route.subscription_id,
                               tuple(self.estate.backup_vaults_in(route.subscription_id)))
            reply = self._list_page(scope, params, None, _DPP_VAULTS)
        if fault is not None and fault.kind == "malformed" and reply.status == 200:
            reply.body = reply.body[: max(1, len(reply.body) // 2)]  # a body cut off mid-JSON
        return reply

    def _list_fault_reply(self, fault: Fault, route: _Route) -> _Reply:
        if fault.kind == "throttle":
            return _throttled_reply(fault)
        message = fault.message
        if not message and fault.code == "AuthorizationFailed":
            # What a role that may read one provider's vaults and not the other's gets for the other's list.
            action = ("Microsoft.DataProtection/backupVaults/read" if route.operation.startswith("dpp_")
                      else "Microsoft.RecoveryServices/vaults/read")
            message = AUTHORIZATION_FAILED_MESSAGE.format(
                client=FAKE_PRINCIPAL_ID, object_id=FAKE_PRINCIPAL_ID, scope=f"/subscriptions/{route.subscription_id}",
                action=action)
        return _arm_error(fault.status, fault.code, message or self._internal_error_message(route.subscription_id))

    def _check_token(self, headers: Mapping[str, str]) -> _Reply | None:
        authorization = headers.get("Authorization", "")
        scheme, _, token = authorization.partition(" ")
        challenge = {"WWW-Authenticate": 'Bearer authorization_uri="https://login.microsoftonline.com/common", '
                                         'error="invalid_token", error_description="The access token is invalid."'}
        if not authorization:
            return _arm_error(401, "AuthenticationFailed",
                              "Authentication failed. The 'Authorization' header is missing.", challenge)
        if scheme.lower() != "bearer" or not token:
            return _arm_error(401, "AuthenticationFailed",
                              "Authentication failed. The 'Authorization' header is provided in an invalid format.",
                              challenge)
        if token == self.token:
            return None
        if token.startswith(f"{self.token}.audience-"):
            return _arm_error(401, "InvalidAuthenticationTokenAudience",
                              "The access token has been obtained for wrong audience or resource.", challenge)
        return _arm_error(401, "InvalidAuthenticationToken", "The access token is invalid.", challenge)

    def _check_api_version(self, route: _Route, params: Mapping[str, str]) -> _Reply | None:
        version = params["api-version"]
        if route.operation in _LIST_OPERATIONS and "$skiptoken" in params:
            return None  # follow-up pages: the nextLink's own (older) version, or whatever the client set
        if route.backup_vault:
            if version in DPP_API_VERSIONS:
                return None
            resource_type = {"dpp_jobs": "backupVaults/backupJobs", "dpp_instances": "backupVaults/backupInstances",
                             "dpp_policies": "backupVaults/backupPolicies",
                             "dpp_recovery": "backupVaults/backupInstances/recoveryPoints"}.get(
                "_".join(route.operation.split("_")[:2]), "backupVaults")
            return _arm_error(400, "NoRegisteredProviderFound",
                              f"No registered resource provider found for API version '{version}' and type "
                              f"'{resource_type}'. The supported api-versions are "
                              f"'{', '.join(sorted(DPP_API_VERSIONS))}'.")
        # backupJobs and backupProtectedItems belong to the same Backup resource provider and versions.
        supported = VAULTS_API_VERSIONS if route.operation in ("vaults_list", "vault_get") else JOBS_API_VERSIONS
        if version in supported:
            return None
        resource_type = {"jobs": "vaults/backupJobs", "items": "vaults/backupProtectedItems"}.get(
            route.operation.split("_")[0], "vaults")
        return _arm_error(400, "NoRegisteredProviderFound",
                          f"No registered resource provider found for API version '{version}' and type "
                          f"'{resource_type}'. The supported api-versions are '{', '.join(sorted(supported))}'.")

    def _vault_list(self, route: _Route) -> _Reply:
        return _json_reply(200, {"value": [vault.resource() for vault in self.estate.vaults_in(route.subscription_id)]})

    def _serve_vault_resource(self, route: _Route, params: Mapping[str, str]) -> _Reply:
        vault = self.estate.find_vault(route.subscription_id, route.resource_group, route.vault)
        if vault is None:
            if not self.estate.knows_resource_group(route.subscription_id, route.resource_group):
                return _arm_error(404, "ResourceGroupNotFound",
                                  f"Resource group '{route.resource_group}' could not be found.")
            return _gateway_not_found(route.vault, route.resource_group)

        def answer(next_link: str | None) -> _Reply:
            if route.operation == "vault_get":
                return _json_reply(200, vault.resource())
            if route.operation == "jobs_get":
                return self._job_details(vault, route.job_id)
            if route.operation == "item_recovery_points_list":
                item_id = vault.id + route.instance
                points = self.estate.item_recovery_points(vault.name, item_id)
                if points is None:
                    return _arm_error(404, JOB_NOT_FOUND_CODE, JOB_NOT_FOUND_MESSAGE)
                return self._list_page(vault, params, next_link, _item_points_collection(item_id, points))
            return self._list_page(vault, params, next_link, _COLLECTIONS[route.operation])

        return self._with_faults(vault, route, params, answer)

    def _serve_backup_vault_resource(self, route: _Route, params: Mapping[str, str]) -> _Reply:
        vault = self.estate.find_backup_vault(route.subscription_id, route.resource_group, route.vault)
        if vault is None:
            if not self.estate.knows_resource_group(route.subscription_id, route.resource_group):
                return _arm_error(404, "ResourceGroupNotFound",
                                  f"Resource group '{route.resource_group}' could not be found.")
            return _gateway_not_found(route.vault, route.resource_group, resource_type=BACKUP_VAULT_RESOURCE_TYPE)

        def answer(next_link: str | None) -> _Reply:
            if route.operation == "dpp_vault_get":
                return _json_reply(200, vault.resource())
            if route.operation == "dpp_jobs_get":
                job = self.estate.dpp_job(vault.name, route.job_id)
                return _json_reply(200, job) if job is not None else _nested_not_found(
                    vault, "backupJobs", route.job_id)
            if route.operation == "dpp_recovery_points_list":
                if self.estate.backup_instance(vault.name, route.instance) is None:
                    return _nested_not_found(vault, "backupInstances", route.instance)
                return self._list_page(vault, params, next_link, _recovery_points_collection(route.instance))
            return self._list_page(vault, params, next_link, _DPP_COLLECTIONS[route.operation])

        return self._with_faults(vault, route, params, answer)

    def _with_faults(self, vault: FakeVault | FakeBackupVault, route: _Route, params: Mapping[str, str],
                     answer: Callable[[str | None], _Reply]) -> _Reply:
        """Serve a request to a vault of either kind through its fault, if one is set for this operation."""
        fault = self._take_fault(vault.name, _operation_name(route, params))
        if fault is not None and fault.kind in ("status", "throttle"):
            return self._fault_reply(fault, vault, route)
        if fault is not None and fault.kind == "timeout":
            self._stopping.wait(fault.delay)
        next_link = fault.url if fault is not None and fault.kind == "offhost_nextlink" else None
        reply = answer(next_link)
        if fault is not None and fault.kind == "malformed" and reply.status == 200:
            reply.body = reply.body[: max(1, len(reply.body) // 2)]  # a body cut off mid-JSON
        return reply

    def _fault_reply(self, fault: Fault, vault: FakeVault | FakeBackupVault, route: _Route) -> _Reply:
        if fault.kind == "throttle":
            return _throttled_reply(fault)
        if fault.code == "ResourceNotFound":
            return _gateway_not_found(vault.name, vault.resource_group, fault.status, fault.message,
                                      resource_type=vault.resource_type)
        message = fault.message or self._default_message(fault.code, vault, route)
        return _arm_error(fault.status, fault.code, message)

    def _default_message(self, code: str, vault: FakeVault | FakeBackupVault, route: _Route) -> str:
        if code == "AuthorizationFailed":
            scope = f"{vault.id}/backupJobs/{route.job_id}" if route.job_id else vault.id
            if route.instance:
                scope = f"{vault.id}/backupInstances/{route.instance}"
            action = {"jobs": "Microsoft.RecoveryServices/Vaults/backupJobs/read",
                      "items": "Microsoft.RecoveryServices/Vaults/backupProtectedItems/read",
                      "item": "Microsoft.RecoveryServices/Vaults/backupFabrics/protectionContainers/protectedItems"
                              "/recoveryPoints/read"}.get(
                route.operation.split("_")[0], "Microsoft.RecoveryServices/Vaults/read")
            if route.backup_vault:
                action = _DPP_READ_ACTIONS.get("_".join(route.operation.split("_")[:2]),
                                               "Microsoft.DataProtection/backupVaults/read")
            return AUTHORIZATION_FAILED_MESSAGE.format(
                client=FAKE_PRINCIPAL_ID, object_id=FAKE_PRINCIPAL_ID, scope=scope, action=action)
        if code == JOB_NOT_FOUND_CODE:
            return JOB_NOT_FOUND_MESSAGE
        return self._internal_error_message(vault.subscription_id)

    def _internal_error_message(self, subscription_id: str) -> str:
        return (f"Encountered internal server error. Diagnostic information: timestamp "
                f"'{datetime.fromtimestamp(self.clock(), UTC):%Y%m%dT%H%M%SZ}', subscription id "
                f"'{subscription_id}', tracking id '{uuid.uuid4()}'.")

    def _job_details(self, vault: FakeVault, job_id: str) -> _Reply:
        job = self.estate.job(vault.name, job_id)
        if job is None:
            return _arm_error(404, JOB_NOT_FOUND_CODE, JOB_NOT_FOUND_MESSAGE)
        return _json_reply(200, job)

    def _list_page(self, owner: FakeVault | FakeBackupVault | _Scope, params: Mapping[str, str],
                   next_link_override: str | None, collection: _Collection) -> _Reply:
        dpp = collection.style == "dpp"
        refuse = _dpp_bad_request if dpp else _invalid_input
        raw_filter = "" if collection.filter_ignored else params.get("$filter", "")
        try:
            matches = collection.parse_filter(raw_filter)
        except FilterError as exc:
            return refuse(str(exc))
        first: tuple[int, str] = (0, "")
        if "$skiptoken" in params:
            issued = self._redeem(params["$skiptoken"])
            if issued is None or (issued.vault_key, issued.collection) != (owner.id.lower(), collection.segment):
                return refuse("the $skiptoken was not issued for this vault and list, or it was altered "
                              "(a nextLink must be followed byte for byte)")
            if issued.filter != raw_filter:
                return refuse("the $filter differs from the one the $skiptoken was issued for")
            first = issued.position
        size = (self.dpp_page_size or self.page_size) if dpp else self.page_size
        with self.estate.lock:  # only the page is copied: a large vault's LIST stays cheap for the benchmark
            entries = sorted((entry for entry in collection.entries(owner) if matches(entry)),
                             key=collection.position)
            remaining = [entry for entry in entries if collection.position(entry) >= first]
            page, rest = copy.deepcopy(remaining[:size]), remaining[size:]
        body: Json = {"value": [collection.listed(entry) for entry in page]}
        if rest:
            body["nextLink"] = self._next_link(owner, collection, raw_filter, collection.position(rest[0]), params)
        elif dpp and (self.dpp_last_page_next_link or collection.last_page) == "null":
            body["nextLink"] = None
        if next_link_override is not None and "$skiptoken" not in params:
            body["nextLink"] = next_link_override
        return _json_reply(200, body)

    def _next_link(self, owner: FakeVault | FakeBackupVault | _Scope, collection: _Collection, raw_filter: str,
                   position: tuple[int, str], params: Mapping[str, str]) -> str:
        """An absolute nextLink on this host. The Backup service's has the real quirks: old api-version, .NET
        encoding, XML token. A Backup vault list's (none was captured) keeps the request's api-version and $filter
        and adds an opaque $skipToken, the parameter RecoveryPoints_List declares."""
        owner_key = owner.id.lower()
        if collection.style == "dpp":
            plain = json.dumps([hashlib.sha256(owner_key.encode()).hexdigest()[:16], collection.segment.lower(),
                                position[0], position[1]], separators=(",", ":"))
            token = base64.urlsafe_b64encode(plain.encode()).decode().rstrip("=")
        else:
            partition = str(int.from_bytes(hashlib.sha256(owner_key.encode()).digest()[:8]) >> 1)
            token = continuation_token(table_key(partition), table_key(collection.row_key(position)))
        with self._lock:
            self._issued[token] = _IssuedToken(owner_key, collection.segment, raw_filter, position)
            self._issued.move_to_end(token)
            while len(self._issued) > _ISSUED_TOKEN_LIMIT:
                self._issued.popitem(last=False)
        if collection.style == "dpp":
            query = f"api-version={quote(params.get('api-version', ''), safe='')}"
            if raw_filter:
                query += f"&$filter={quote(raw_filter, safe='')}"
            return f"{self.url}{owner.id}/{collection.segment}?{query}&$skipToken={token}"
        query = f"api-version={NEXT_LINK_API_VERSION}"
        if raw_filter:
            query += f"&%24filter={encode_query_value(raw_filter)}"
        query += f"&%24skiptoken={encode_query_value(token)}"
        return f"{self.url}{owner.id}/{collection.segment}?{query}"

    def _redeem(self, token: str) -> _IssuedToken | None:
        with self._lock:
            return self._issued.get(token)

    def _arm_headers(self, route: _Route | None, request_headers: Mapping[str, str], remaining: int) -> dict[str, str]:
        now = datetime.fromtimestamp(self.clock(), UTC)
        request_id = str(uuid.uuid4())
        headers = {
            "Cache-Control": "no-cache",
            "Pragma": "no-cache",
            "Expires": "-1",
            "x-ms-request-id": request_id,
            "x-ms-correlation-request-id": request_headers.get("x-ms-correlation-request-id") or request_id,
            "x-ms-routing-request-id": f"WESTEUROPE:{now:%Y%m%dT%H%M%SZ}:{request_id}",
        }
        # The Backup RP overrides ARM's limit and reports the override; vault requests carry ARM's read budget.
        # Every recorded DataProtection read, the vault GET included, reported the override too.
        backup_rp = route is not None and route.operation.startswith(("jobs", "items", "dpp_"))
        name = ("x-ms-ratelimit-remaining-subscription-resource-requests" if backup_rp
                else "x-ms-ratelimit-remaining-subscription-reads")
        headers[name] = str(remaining)
        return headers


def _gateway_not_found(vault_name: str, resource_group: str, status: int = 404, message: str = "", *,
                       resource_type: str = VAULT_RESOURCE_TYPE) -> _Reply:
    text = message or GATEWAY_NOT_FOUND_MESSAGE.format(resource_type=resource_type, name=vault_name,
                                                       resource_group=resource_group)
    return _arm_error(status, "ResourceNotFound", text, {"x-ms-failure-cause": "gateway"})


def _nested_not_found(vault: FakeBackupVault, collection: str, name: str) -> _Reply:
    """An unknown job or backup instance of a Backup vault. The DataProtection RP's own 404 body was not captured:
    ARM's ResourceNotFound text for the nested resource, without the gateway's header."""
    return _arm_error(404, "ResourceNotFound", GATEWAY_NOT_FOUND_MESSAGE.format(
        resource_type=f"{BACKUP_VAULT_RESOURCE_TYPE}/{vault.name}/{collection}", name=name,
        resource_group=vault.resource_group))


def _throttled_reply(fault: Fault) -> _Reply:
    return _arm_error(429, "TooManyRequests",
                      "The request is being throttled as the limit has been reached for operation type - "
                      "Read_ObservationWindow_00:05:00. For more information, see - "
                      "https://aka.ms/srpthrottlinglimits",
                      {"Retry-After": str(fault.retry_after)})


def _missing_registration(namespace: str) -> _Reply:
    message = MISSING_REGISTRATION_MESSAGE.format(namespace=namespace)
    return _json_reply(409, {"error": {"code": MISSING_REGISTRATION_CODE, "message": message, "details": [
        {"code": MISSING_REGISTRATION_CODE, "target": namespace, "message": message}]}})


def _dpp_bad_request(reason: str) -> _Reply:
    return _arm_error(400, DPP_BAD_REQUEST_CODE, f"The request is invalid: {reason}.")


# The RBAC read action behind each Backup vault request (AuthorizationFailed names it).
_DPP_READ_ACTIONS = {
    "dpp_vault": "Microsoft.DataProtection/backupVaults/read",
    "dpp_jobs": "Microsoft.DataProtection/backupVaults/backupJobs/read",
    "dpp_instances": "Microsoft.DataProtection/backupVaults/backupInstances/read",
    "dpp_policies": "Microsoft.DataProtection/backupVaults/backupPolicies/read",
    "dpp_recovery": "Microsoft.DataProtection/backupVaults/backupInstances/recoveryPoints/read",
}


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a handler stuck in a slow reply never blocks shutdown
    block_on_close = False

    def __init__(self, arm: FakeArm) -> None:
        self.arm = arm
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("fake ARM: connection error from %s", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like ARM; every reply has a Content-Length
    server_version = "FakeARM/1.0"
    sys_version = ""
    # The head and the body go out in two writes. With Nagle's algorithm the body would wait for the
    # client's delayed ACK of the head (40 ms on Linux), which would add that to every reply.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: a per-request line on stderr would drown the exporter's own logs."""

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def do_PUT(self) -> None:
        self._answer()

    def do_PATCH(self) -> None:
        self._answer()

    def do_DELETE(self) -> None:
        self._answer()

    def _answer(self) -> None:
        self._discard_body()
        arm = cast(_Server, self.server).arm
        headers: CaseInsensitiveDict[str] = CaseInsensitiveDict(dict(self.headers.items()))
        try:
            reply = arm.serve(self.command, self.path, headers)
        except Exception as exc:  # a bug in the fake must answer 500, never kill the server
            log.exception("fake ARM failed on %s %s", self.command, self.path)
            reply = _arm_error(500, "FakeArmInternalError", f"{type(exc).__name__}: {exc}")
        self._write(reply)

    def _discard_body(self) -> None:
        """Read a request body nobody uses, so a keep-alive connection stays in step."""
        length = self.headers.get("Content-Length") or "0"
        if length.isdigit() and int(length) > 0:
            self.rfile.read(int(length))
        elif not length.isdigit():
            self.close_connection = True  # the body's end is unknown; this connection cannot be reused

    def _write(self, reply: _Reply) -> None:
        try:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (e.g. its read timeout during a slow fault)


__all__ = [
    "ARM_AUDIENCES",
    "BACKUP_INSTANCE_RESOURCE_TYPE",
    "BACKUP_VAULT_RESOURCE_TYPE",
    "DPP_API_VERSIONS",
    "DPP_DATASOURCES",
    "DPP_FAULT_OPERATIONS",
    "DPP_JOB_RESOURCE_TYPE",
    "DPP_LIST_FAULT_OPERATIONS",
    "DPP_NAMESPACE",
    "DPP_POLICY_RESOURCE_TYPE",
    "FAKE_PRINCIPAL_ID",
    "FAULT_OPERATIONS",
    "ITEM_TYPES",
    "JOBS_API_VERSIONS",
    "MISSING_REGISTRATION_CODE",
    "MISSING_REGISTRATION_MESSAGE",
    "NETBIOS_NAME_LENGTH",
    "NEVER_BACKED_UP",
    "NEXT_LINK_API_VERSION",
    "POLICY_RESOURCE_TYPE",
    "PROTECTED_ITEM_RESOURCE_TYPE",
    "PROTECTED_ITEM_TYPES",
    "RATELIMIT_CAPACITY",
    "RECOVERY_POINT_RESOURCE_TYPE",
    "RSV_FAULT_OPERATIONS",
    "RSV_LIST_FAULT_OPERATIONS",
    "RSV_NAMESPACE",
    "THROTTLED_CODE",
    "UNSET_RECOVERY_POINT_TIME",
    "VAULTS_API_VERSIONS",
    "VAULT_LIST_FAULT_OPERATIONS",
    "WEEKDAYS",
    "DppDatasource",
    "ExtraRoute",
    "FakeArm",
    "FakeBackupVault",
    "FakeEstate",
    "FakeVault",
    "Fault",
    "FilterError",
    "ItemFilter",
    "JobFilter",
    "RecordedRequest",
    "RecoveryPointFilter",
    "RequestLog",
    "Timestamp",
    "VaultList",
    "azure_time",
    "backup_instance_name",
    "continuation_token",
    "dotnet_duration",
    "dpp_datasource",
    "dpp_listed_job",
    "encode_query_value",
    "format_ticks",
    "iso_duration",
    "make_backup_instance",
    "make_dpp_job",
    "make_dpp_policy",
    "make_job",
    "make_policy",
    "make_protected_item",
    "make_recovery_point",
    "make_workload_recovery_point",
    "parse_azure_time",
    "parse_filter_time",
    "parse_iso_duration",
    "parse_item_filter",
    "parse_job_filter",
    "parse_recovery_point_filter",
    "table_key",
    "to_ticks",
    "workload_job_name",
]
