"""The simulated estate behind `--demo`: a fake ARM with a few vaults and a living job stream.

Two subscriptions, four vaults, twenty-two backup items of every job type with a week of daily
history, and a simulator thread that keeps starting, advancing and finishing jobs, so a newcomer
sees every metric shape (running, failed, warnings, sizes, tasks) without an Azure account.
Each item is also a protected item whose last backup, recovery point and health agree with its
jobs, as Azure keeps them; among them one whose protection was stopped with its data retained,
one soft-deleted, one never backed up yet and one whose last backup is older than any job the
exporter lists.

Databases in VMs are named as real Azure names them: their backup and restore jobs say
`MSSQLSERVER/master [vm-sql-03]` or `HXE/HXE [vm-hana-01]` (workload_job_name) and finish as
`Backup (Full)` (a running one shows `Backup`, as seen for real), while their protected items say
`master` or `hxe` and their management jobs the bare name. Names repeat where Azure lets them: a
database `master` on two SQL VMs of one vault (one of them failing) and a file share `shared` in two
storage accounts of one vault. The demo therefore keys its items by DemoItem.key, never by name.
Everything is deterministic given the seed, apart from wall-clock timing.

Beside them, one Backup vault (Microsoft.DataProtection) protects a managed disk, a storage account's blobs, a
PostgreSQL flexible server and an AKS cluster, with two weeks of backups (daily; weekly for PostgreSQL, the only
frequency the Azure CLI offers it) and their recovery points; the AKS cluster's latest backup failed. The
simulator leaves this vault as it was built: it starts no Backup vault jobs.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from .fakearm import (
    NETBIOS_NAME_LENGTH,
    FakeArm,
    FakeBackupVault,
    FakeEstate,
    FakeVault,
    Json,
    azure_time,
    make_backup_instance,
    make_dpp_job,
    make_dpp_policy,
    make_job,
    make_policy,
    make_protected_item,
    make_recovery_point,
    make_workload_recovery_point,
    parse_azure_time,
    to_ticks,
    workload_job_name,
)
from .resources import add_demo_resources

log = logging.getLogger(__name__)

DurationFormat = Literal["iso", "dotnet"]
HISTORY_DAYS = 7
# Jobs older than this leave the estate, so a long demo does not grow forever; longer than the age of
# STALE_ITEM's only job, so that job is listed when the demo starts.
RETENTION = timedelta(days=10)
MAX_JOBS_PER_VAULT = 3000
IAAS_TASKS = ("Take Snapshot", "Transfer data to vault")
RESTORE_TASKS = ("Transfer data from vault",)
WORKLOAD_TASK = "Transfer data to vault"  # the one task of a recorded SQL backup
# A database backup finishes as "Backup (Full)" (or Differential, Log, Copy Only Full); while it runs it may
# still show "Backup", as a recorded one did. Restores are "Restore (Full)" and the like.
WORKLOAD_FULL_BACKUP = "Backup (Full)"
WORKLOAD_LOG_BACKUP = "Backup (Log)"
WORKLOAD_RESTORE = "Restore (Full)"
# Workloads whose jobs write the database in upper case (HANA: item h22, jobs H22/H22 [host]).
_UPPER_CASE_JOB_NAMES = frozenset({"SAPHanaDatabase"})
_DEFAULT_PARENTS = {"SQLDataBase": "MSSQLSERVER"}  # a SAP database's default parent is its own name (the SID)
FINISHED = ("Completed", "CompletedWithWarnings", "Failed", "Cancelled")
FINISH_WEIGHTS = (78, 8, 10, 4)
START_EVERY = (5.0, 15.0)  # seconds between new jobs, at speed 1
RUN_FOR = (20.0, 90.0)  # seconds a simulated job runs, at speed 1
# Failure texts are illustrative: no real failed job was captured (azure-api.md 1.8).
ERRORS = {
    "AzureIaaSVMJob": "Could not communicate with the VM agent for snapshot status.",
    "AzureIaaSVMJobV2": "Could not communicate with the VM agent for snapshot status.",
    "AzureStorageJob": "The storage account of the file share could not be reached.",
    "AzureWorkloadJob": "The database log chain is broken; a full backup is needed before log backups.",
    "DpmJob": "The replica is inconsistent; run a consistency check.",
    "MabJob": "The network connection to the Azure Backup service was lost.",
    "VaultJob": "The key vault key could not be accessed.",
}


@dataclass(frozen=True)
class DemoVault:
    subscription: int  # index into the demo's subscriptions
    resource_group: str
    name: str
    location: str


@dataclass(frozen=True)
class DemoItem:
    """A protected item: what runs its daily backup and how its jobs look."""

    vault: str
    name: str
    job_type: str
    size_mb: int
    minutes: tuple[float, float]  # how long its daily backup takes
    hour: int  # UTC hour of its daily backup
    duration_format: DurationFormat = "iso"
    workload_type: str | None = None
    container: str | None = None  # storage account, database VM or DPM server; None: the item itself
    history: bool = True  # False: protected recently, no daily history yet
    parent: str | None = None  # a database's SQL instance or SAP system (SID); None: the workload's default

    @property
    def is_iaas(self) -> bool:
        return self.job_type.startswith("AzureIaaSVMJob")

    @property
    def is_workload(self) -> bool:
        return self.job_type == "AzureWorkloadJob"

    @property
    def key(self) -> str:
        """The item's identity in the demo. Names repeat (`master` on two SQL VMs, a share `shared` in two
        storage accounts); vault, container, parent and name together do not."""
        return "|".join((self.vault, self.container or "", self.parent_name or "", self.name))

    @property
    def parent_name(self) -> str | None:
        """A database's parentName: its SQL instance or SAP system; None for anything else."""
        if not self.is_workload:
            return None
        return self.parent or _DEFAULT_PARENTS.get(self.workload_type or "SQLDataBase", self.name.upper())

    @property
    def job_name(self) -> str:
        """entityFriendlyName of the item's backup and restore jobs: for a database the real form
        `<parent>/<database> [<server>]`, for anything else the item's name."""
        parent = self.parent_name
        if parent is None:
            return self.name
        database = self.name.upper() if self.workload_type in _UPPER_CASE_JOB_NAMES else self.name
        return workload_job_name(parent, database, (self.container or self.name)[:NETBIOS_NAME_LENGTH])

    def entity_name(self, operation: str) -> str:
        """entityFriendlyName of one of its jobs: management jobs (ConfigureBackup, DeleteBackupData, ...) of
        a database carry the bare name, its backups and restores job_name."""
        return self.job_name if operation.startswith(("Backup", "Restore")) else self.name

    @property
    def backup_operation(self) -> str:
        """The operation of a finished scheduled backup."""
        return WORKLOAD_FULL_BACKUP if self.is_workload else "Backup"

    def owns(self, job: Json) -> bool:
        """Whether a job is about this item, from the job alone. Management jobs of databases name only the
        database, so those of two databases with one name (the demo's `master`s) belong to both."""
        properties = job["properties"]
        if properties.get("jobType") != self.job_type:
            return False
        if properties.get("entityFriendlyName") != self.entity_name(str(properties.get("operation", ""))):
            return False
        return self.job_type != "AzureStorageJob" or properties.get("storageAccountName") == self.container


VAULTS = (
    DemoVault(0, "rg-prod-backup", "rsv-prod-weu", "westeurope"),
    DemoVault(0, "rg-sap", "rsv-sap-neu", "northeurope"),
    DemoVault(1, "rg-branch-offices", "rsv-branch-eus2", "eastus2"),
    DemoVault(1, "rg-platform", "rsv-platform-uks", "uksouth"),
)
ITEMS = (
    DemoItem("rsv-prod-weu", "vm-web-01", "AzureIaaSVMJob", 11370, (25, 45), 22),
    DemoItem("rsv-prod-weu", "vm-web-02", "AzureIaaSVMJob", 10240, (20, 40), 22),
    DemoItem("rsv-prod-weu", "vm-sql-01", "AzureIaaSVMJob", 48200, (50, 90), 23),
    DemoItem("rsv-prod-weu", "vm-app-01", "AzureIaaSVMJobV2", 20480, (30, 55), 1),
    DemoItem("rsv-prod-weu", "vm-files-01", "AzureIaaSVMJobV2", 512000, (600, 900), 0, history=False),
    DemoItem("rsv-prod-weu", "teamshare", "AzureStorageJob", 2332, (1, 4), 20, container="stprodfiles01"),
    DemoItem("rsv-sap-neu", "hxe", "AzureWorkloadJob", 30720, (15, 30), 21, workload_type="SAPHanaDatabase",
             container="vm-hana-01", parent="HXE"),
    DemoItem("rsv-sap-neu", "SalesDB", "AzureWorkloadJob", 8192, (8, 20), 2, workload_type="SQLDataBase",
             container="vm-sql-02", parent="MSSQLSERVER"),
    DemoItem("rsv-sap-neu", "vm-sap-app-01", "AzureIaaSVMJob", 15360, (20, 35), 3),
    DemoItem("rsv-branch-eus2", "fs01.contoso.local", "MabJob", 4096, (10, 30), 19, "dotnet",
             workload_type="FileFolder"),
    DemoItem("rsv-branch-eus2", "laptop-ceo", "MabJob", 900, (5, 15), 12, "dotnet", workload_type="FileFolder"),
    DemoItem("rsv-branch-eus2", "SQL01\\Finance", "DpmJob", 6144, (15, 25), 18, "dotnet",
             workload_type="SQLDB", container="dpm01.contoso.local"),
    DemoItem("rsv-branch-eus2", "vm-legacy-01", "AzureIaaSVMJob", 7168, (15, 30), 4),
    DemoItem("rsv-platform-uks", "vm-jump-01", "AzureIaaSVMJob", 3072, (10, 20), 5),
    DemoItem("rsv-platform-uks", "archive", "AzureStorageJob", 1024, (1, 3), 6, container="stplatformarchive"),
    DemoItem("rsv-prod-weu", "vm-erp-old-01", "AzureIaaSVMJob", 40960, (30, 60), 2, history=False),
    DemoItem("rsv-platform-uks", "vm-reporting-01", "AzureIaaSVMJobV2", 6144, (15, 25), 7, history=False),
    # Names Azure lets repeat in one vault: a share in two storage accounts, a database on two SQL VMs,
    # and a HANA system's SYSTEMDB beside its tenant database.
    DemoItem("rsv-prod-weu", "shared", "AzureStorageJob", 1536, (1, 3), 19, container="stprodfiles01"),
    DemoItem("rsv-prod-weu", "shared", "AzureStorageJob", 1792, (1, 3), 19, container="stprodfiles02"),
    DemoItem("rsv-prod-weu", "master", "AzureWorkloadJob", 96, (2, 6), 21, workload_type="SQLDataBase",
             container="vm-sql-03", parent="MSSQLSERVER"),
    DemoItem("rsv-prod-weu", "master", "AzureWorkloadJob", 96, (2, 6), 21, workload_type="SQLDataBase",
             container="vm-sql-04", parent="MSSQLSERVER"),
    DemoItem("rsv-sap-neu", "systemdb", "AzureWorkloadJob", 4096, (5, 12), 20, workload_type="SAPHanaDatabase",
             container="vm-hana-01", parent="HXE"),
)


def demo_item(vault: str, name: str, container: str | None = None) -> DemoItem:
    """The demo item of that vault and name (and container, where the name repeats)."""
    [item] = [item for item in ITEMS if (item.vault, item.name) == (vault, name)
              and (container is None or item.container == container)]
    return item


FAILING_ITEM = demo_item("rsv-prod-weu", "vm-sql-01")  # its latest backup failed when the demo starts
# A database `master` on two SQL VMs of one vault: one's latest backup failed, the other's is fine.
FAILING_TWIN = demo_item("rsv-prod-weu", "master", "vm-sql-04")
HEALTHY_TWIN = demo_item("rsv-prod-weu", "master", "vm-sql-03")
WARNING_ITEM = demo_item("rsv-branch-eus2", "laptop-ceo")  # its latest backup completed with warnings
RETIRED_ITEM = demo_item("rsv-branch-eus2", "vm-legacy-01")  # backups stopped, data deleted 2 days ago: soft-deleted
MARATHON_ITEM = demo_item("rsv-prod-weu", "vm-files-01")  # an initial backup that started 26 hours ago, still running
STOPPED_ITEM = demo_item("rsv-prod-weu", "vm-erp-old-01")  # protection stopped 40 days ago, points retained; no jobs
STALE_ITEM = demo_item("rsv-platform-uks", "vm-reporting-01")  # still protected; its only backup ran 9 days ago
LOGGED_ITEM = demo_item("rsv-sap-neu", "SalesDB")  # a database with log backups between its daily full ones
STALE_AGE = timedelta(days=9)
STOPPED_AGE = timedelta(days=40)
LOG_BACKUP_EVERY = timedelta(hours=4)
SPEC_CASED_VAULT = "rsv-platform-uks"  # its job ids use '/Subscriptions/', as in the spec examples
_FAILING = frozenset({FAILING_ITEM.key, FAILING_TWIN.key})
# Items whose latest backup the simulator leaves alone for a while, so a newcomer sees them as they start.
_KEEP_LATEST = _FAILING | {WARNING_ITEM.key, HEALTHY_TWIN.key}
_NOT_SCHEDULED = frozenset({RETIRED_ITEM.key, STOPPED_ITEM.key, STALE_ITEM.key})  # the simulator starts none
_INITIAL_STATES = {STOPPED_ITEM.key: "ProtectionStopped", RETIRED_ITEM.key: "ProtectionStopped",
                   MARATHON_ITEM.key: "IRPending"}
SUCCEEDED = ("Completed", "CompletedWithWarnings")
# The protectedItemType of each job type's item; workload items depend on the workload.
_ITEM_TYPES = {
    "AzureIaaSVMJob": "Microsoft.Compute/virtualMachines", "AzureIaaSVMJobV2": "Microsoft.Compute/virtualMachines",
    "AzureStorageJob": "AzureFileShareProtectedItem", "MabJob": "MabFileFolderProtectedItem",
    "DpmJob": "DPMProtectedItem",
}
_WORKLOAD_ITEM_TYPES = {"SQLDataBase": "AzureVmWorkloadSQLDatabase",
                        "SAPHanaDatabase": "AzureVmWorkloadSAPHanaDatabase"}
# Backup policies of the vault-managed item types (MAB and DPM schedules live on their servers).
_POLICIES = {"AzureIaaSVMJob": "DefaultPolicy", "AzureIaaSVMJobV2": "EnhancedPolicy",
             "AzureStorageJob": "DailyFileShares", "AzureWorkloadJob": "DatabasesDaily"}
# Every demo item backs up once a day (the simulator runs no log backups), and so do its policies; each
# vault holds all four, as a vault's policies do whether or not an item of that kind is in it.
_MANAGEMENT_TYPES = {"DefaultPolicy": "AzureIaasVM", "EnhancedPolicy": "AzureIaasVM",
                     "DailyFileShares": "AzureStorage", "DatabasesDaily": "AzureWorkload"}


@dataclass(frozen=True)
class DemoBackupInstance:
    """A resource a Backup vault protects, and how its scheduled backups go."""

    datasource_type: str  # the Azure CLI's name for its type (fakearm.DPP_DATASOURCES)
    name: str  # the protected resource; also the instance's friendlyName
    resource_group: str
    policy: str
    interval: str  # the policy's repeat: P1D daily, P1W weekly
    hour: int  # UTC hour of its backups
    minutes: tuple[float, float]  # how long a backup takes
    size_bytes: int | None = None  # a disk's size, as its jobs report it


BACKUP_VAULT = DemoVault(0, "rg-prod-backup", "bv-prod-weu", "westeurope")
BACKUP_INSTANCES = (
    DemoBackupInstance("AzureDisk", "disk-erp-data-01", "rg-prod-erp", "DiskDaily", "P1D", 1, (3, 6),
                       size_bytes=137438953472),
    DemoBackupInstance("AzureBlob", "stproddocs01", "rg-prod-storage", "BlobDaily", "P1D", 2, (8, 25)),
    DemoBackupInstance("AzureDatabaseForPostgreSQLFlexibleServer", "psql-orders-prod", "rg-prod-data",
                       "PostgresWeekly", "P1W", 3, (10, 30)),
    DemoBackupInstance("AzureKubernetesService", "aks-prod-weu", "rg-prod-aks", "AksDaily", "P1D", 4, (5, 15)),
)
FAILING_BACKUP_INSTANCE = BACKUP_INSTANCES[3]  # its latest backup failed
BACKUP_HISTORY_DAYS = 14  # what a Backup vault's job list reaches back (about 14 days, as seen for real)
WEEKLY_BACKUP_DAY = 6  # Sunday (datetime.weekday), the day of the weekly policy
# Illustrative: no failed AKS backup was captured.
BACKUP_VAULT_ERROR = "The backup extension of the cluster did not respond. Check the extension's health and retry."


def _guid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _size(rng: random.Random, item: DemoItem) -> str:
    return f"{round(item.size_mb * rng.uniform(0.85, 1.15))} MB"


def _finished_tasks(item: DemoItem, operation: str, status: str) -> list[tuple[str, str]] | None:
    last = {"Failed": "Failed", "Cancelled": "Cancelled"}.get(status, "Completed")
    if item.is_workload and operation.startswith("Backup"):
        return [(WORKLOAD_TASK, last)]
    if not item.is_iaas or operation not in ("Backup", "Restore"):
        return None
    if operation == "Restore":
        return [(RESTORE_TASKS[0], status if status != "CompletedWithWarnings" else "Completed")]
    return [(IAAS_TASKS[0], "Completed"), (IAAS_TASKS[1], last)]


def _running_tasks(item: DemoItem, operation: str, progress: float) -> list[tuple[str, str]] | None:
    if item.is_workload and operation.startswith("Backup"):
        return [(WORKLOAD_TASK, "InProgress")]
    if not item.is_iaas or operation not in ("Backup", "Restore"):
        return None
    if operation == "Restore":
        return [(RESTORE_TASKS[0], "InProgress")]
    if progress < 0.25:
        return [(IAAS_TASKS[0], "InProgress"), (IAAS_TASKS[1], "NotStarted")]
    return [(IAAS_TASKS[0], "Completed"), (IAAS_TASKS[1], "InProgress")]


@dataclass
class Protection:
    """What Azure keeps on a protected item: its state and the outcome of its latest finished backup."""

    state: str = "Protected"
    last_status: str | None = None  # the latest finished Backup job's status; None: never backed up
    last_time: str | None = None  # its endTime, copied so the item and the job agree to the tick
    last_recovery_point: str | None = None  # endTime of the latest backup that succeeded
    error: str | None = None  # the failure text of a failed latest backup
    deleted_at: str | None = None  # soft-deleted: when its data was deleted

    def record(self, job: Json) -> None:
        """A Backup job finished: it becomes the item's latest backup."""
        properties = job["properties"]
        self.last_status, self.last_time = properties["status"], properties["endTime"]
        errors = properties.get("errorDetails") or [{}]
        self.error = errors[0].get("errorString") if self.last_status == "Failed" else None
        if self.last_status in SUCCEEDED:
            self.last_recovery_point = self.last_time
            if self.state == "IRPending":
                self.state = "Protected"  # the initial backup is done


def record_recovery_point(estate: FakeEstate, item: DemoItem, resource: Json, job: Json) -> None:
    """A database's successful backup leaves a recovery point, as Azure keeps them: a full or differential one
    a point of its own, a log backup the end of the database's log chain (its DefaultRangeRecoveryPoint)."""
    properties = job["properties"]
    finished_well = properties.get("status") in SUCCEEDED and properties.get("endTime")
    if item.job_type != "AzureWorkloadJob" or not finished_well:
        return
    kind = str(properties.get("operation", "")).removeprefix("Backup").strip(" ()") or "Full"
    ended = properties["endTime"]
    if kind == "Log":
        chain = next((p for p in estate.item_recovery_points(item.vault, resource["id"]) or []
                      if p["name"] == "DefaultRangeRecoveryPoint"), None)
        began = chain["properties"]["timeRanges"][0]["startTime"] if chain else properties["startTime"]
        point = make_workload_recovery_point(resource, log_ranges=[(began, ended)])
    else:
        point = make_workload_recovery_point(resource, time=ended, kind=kind.replace("Copy Only Full", "Full"))
    estate.add_item_recovery_point(item.vault, resource["id"], point)


def protected_item(vault: FakeVault, item: DemoItem, protection: Protection) -> Json:
    """A demo item's protected item as the fake serves it, in the words its type uses for the outcome."""
    resource = make_protected_item(
        vault=vault, friendly_name=item.name, item_type=_item_type(item),
        last_backup_status=_status_word(item, protection.last_status), last_backup_time=protection.last_time,
        last_recovery_point=protection.last_recovery_point, health_status=_health(item, protection),
        protection_state=protection.state,
        policy=None if protection.state == "ProtectionStopped" else _POLICIES.get(item.job_type),
        container=item.container, workload_type=item.workload_type, last_backup_error=protection.error,
        parent_name=item.parent_name)
    if protection.deleted_at:
        resource["properties"].update(isScheduledForDeferredDelete=True, deferredDeleteTimeInUTC=protection.deleted_at)
    if vault.name == SPEC_CASED_VAULT:
        resource["id"] = resource["id"].replace("/subscriptions/", "/Subscriptions/", 1)
    return resource


def _finished_operation(item: DemoItem, operation: str) -> str:
    """What a job's operation reads once it finished: a database's running "Backup" becomes "Backup (Full)"."""
    return WORKLOAD_FULL_BACKUP if item.is_workload and operation == "Backup" else operation


def _item_type(item: DemoItem) -> str:
    if item.is_workload:
        return _WORKLOAD_ITEM_TYPES[item.workload_type or "SQLDataBase"]
    return _ITEM_TYPES[item.job_type]


def _status_word(item: DemoItem, status: str | None) -> str | None:
    """Workload items report a backup as Healthy/Unhealthy (the LastBackupStatus enum), the others as the job did."""
    if status is None or not item.is_workload:
        return status
    return "Healthy" if status in SUCCEEDED else "Unhealthy"


def _health(item: DemoItem, protection: Protection) -> str | None:
    """healthStatus of Azure VM items; workload items derive protectedItemHealthStatus from the status word."""
    if not item.is_iaas:
        return None
    return "ActionRequired" if protection.last_status == "Failed" else "Passed"


@dataclass
class _Running:
    """A job the simulator is driving."""

    vault: str
    job_id: str
    item: DemoItem
    operation: str  # while it runs; see _finished_operation
    started: datetime
    finishes: datetime | None = None  # set by the simulator
    endless: bool = False  # runs for the whole demo, so some job is always InProgress


@dataclass
class _EstateBuilder:
    """Builds the estate and its week of history at `now`."""

    rng: random.Random
    now: datetime
    estate: FakeEstate = field(default_factory=FakeEstate)
    subscriptions: list[str] = field(default_factory=list)
    protections: dict[str, Protection] = field(default_factory=dict)  # DemoItem.key -> its protected item's state

    def build(self) -> list[_Running]:
        # The Backup vault draws from its own generator, seeded from this one's state without consuming it, so
        # the Recovery Services vaults (and the simulator after them) stay as they were before it existed.
        backup_rng = random.Random(hashlib.sha256(repr(self.rng.getstate()).encode()).hexdigest())
        self.subscriptions = [_guid(self.rng), _guid(self.rng)]
        for vault in VAULTS:
            added = self.estate.add_vault(self.subscriptions[vault.subscription], vault.resource_group, vault.name,
                                          vault.location)
            added.tags.update({"environment": "demo", "costCenter": vault.resource_group.removeprefix("rg-")})
            for policy, management_type in _MANAGEMENT_TYPES.items():
                self.estate.add_policy(vault.name, make_policy(vault=added, name=policy,
                                                               backup_management_type=management_type))
        for item in ITEMS:
            if item.history:
                self._daily_history(item)
        self._special_jobs()
        running = self._running_at_start()
        self._protect_items()
        self._backup_vault(backup_rng)
        add_demo_resources(self.estate, self.subscriptions[0], self.now)
        return running

    def _backup_vault(self, rng: random.Random) -> None:
        """The Backup vault: its policies, instances, two weeks of scheduled backups and their recovery points."""
        vault = self.estate.add_backup_vault(self.subscriptions[BACKUP_VAULT.subscription],
                                             BACKUP_VAULT.resource_group, BACKUP_VAULT.name, BACKUP_VAULT.location)
        vault.tags.update({"environment": "demo", "costCenter": "prod-backup"})
        for instance in BACKUP_INSTANCES:
            # The weekly policy starts on a Sunday, the daily ones on 2024-01-01; both at the instance's hour.
            first_day = "2024-01-07" if instance.interval == "P1W" else "2024-01-01"
            self.estate.add_dpp_policy(vault.name, make_dpp_policy(
                vault=vault, name=instance.policy, datasource_type=instance.datasource_type,
                interval=instance.interval, start=f"{first_day}T{instance.hour:02d}:00:00+00:00"))
            resource = make_backup_instance(vault=vault, datasource_type=instance.datasource_type,
                                            datasource_name=instance.name, resource_group=instance.resource_group,
                                            policy=instance.policy, location=vault.location)
            self.estate.add_backup_instance(vault.name, resource)
            for days_ago in range(BACKUP_HISTORY_DAYS, 0, -1):
                day = self.now - timedelta(days=days_ago)
                if instance.interval == "P1W" and day.weekday() != WEEKLY_BACKUP_DAY:
                    continue
                self._backup_vault_job(vault, instance, resource["name"], day, rng=rng,
                                       failed=days_ago == 1 and instance == FAILING_BACKUP_INSTANCE)

    def _backup_vault_job(self, vault: FakeBackupVault, instance: DemoBackupInstance, instance_name: str,
                          day: datetime, *, rng: random.Random, failed: bool) -> None:
        start = day.replace(hour=instance.hour, minute=rng.randrange(0, 20), second=rng.randrange(60),
                            microsecond=rng.randrange(1_000_000))
        end = start + timedelta(minutes=rng.uniform(*instance.minutes))
        if end >= self.now:  # yesterday's slot would still be running: it ran a little earlier
            early = end - self.now + timedelta(minutes=rng.uniform(5, 30))
            start, end = start - early, end - early
        point = _guid(rng).replace("-", "")
        self.estate.add_dpp_job(vault.name, make_dpp_job(
            _guid(rng), vault=vault, datasource_type=instance.datasource_type, datasource_name=instance.name,
            resource_group=instance.resource_group, instance=instance_name, policy=instance.policy,
            status="Failed" if failed else "Completed", start=start, end=end,
            datasource_size_bytes=instance.size_bytes, recovery_point_id=point,
            error=BACKUP_VAULT_ERROR if failed else None))
        if not failed:
            self.estate.add_recovery_point(vault.name, instance_name, make_recovery_point(
                vault=vault, instance=instance_name, time=end, datasource_type=instance.datasource_type,
                policy=instance.policy, recovery_point_id=point,
                recovery_point_type="Full" if instance.datasource_type.startswith("AzureDatabase") else "Incremental"))

    def add(self, item: DemoItem, *, operation: str, status: str, start: datetime, end: datetime | None,
            size: str | None = None, tasks: list[tuple[str, str]] | None = None, job_id: str | None = None,
            error: str | None = None) -> str:
        job_id = job_id or _guid(self.rng)
        self.estate.add_job(item.vault, build_job(self.estate.vault(item.vault), item, job_id, operation=operation,
                                                  status=status, start=start, end=end, size=size, tasks=tasks,
                                                  error=error, now=self.now))
        return job_id

    def _daily_history(self, item: DemoItem) -> None:
        last_day = 3 if item.key == RETIRED_ITEM.key else 1
        for days_ago in range(HISTORY_DAYS, last_day - 1, -1):
            start = (self.now - timedelta(days=days_ago)).replace(
                hour=item.hour, minute=self.rng.randrange(0, 30), second=self.rng.randrange(60))
            status = self._history_status(item, days_ago)
            end = start + timedelta(minutes=self.rng.uniform(*item.minutes))
            if end >= self.now:  # yesterday's late slot would still be running; history is finished jobs, so
                # it ran a little earlier (not a day earlier: then the day before's job would be the latest)
                early = end - self.now + timedelta(minutes=self.rng.uniform(5, 30))
                start, end = start - early, end - early
            self.add(item, operation=item.backup_operation, status=status, start=start, end=end,
                     size=_size(self.rng, item) if status in ("Completed", "CompletedWithWarnings") else None,
                     tasks=_finished_tasks(item, item.backup_operation, status),
                     error=ERRORS[item.job_type] if status == "Failed" else None)

    def _history_status(self, item: DemoItem, days_ago: int) -> str:
        if days_ago == 1 and item.key in _FAILING:
            return "Failed"
        if days_ago == 1 and item.key == WARNING_ITEM.key:
            return "CompletedWithWarnings"
        if days_ago == 1:
            return "Completed"  # every other item's latest backup is fine, so the failure stands out
        return self.rng.choices(FINISHED, weights=FINISH_WEIGHTS)[0]

    def _special_jobs(self) -> None:
        day = timedelta(days=1)
        web = demo_item("rsv-prod-weu", "vm-web-01")
        restore_start = self.now - 3 * day + timedelta(hours=2)
        self.add(web, operation="Restore", status="Completed", start=restore_start,
                 end=restore_start + timedelta(minutes=37), tasks=_finished_tasks(web, "Restore", "Completed"))
        app = demo_item("rsv-prod-weu", "vm-app-01")
        configure_start = self.now - 6 * day - timedelta(hours=2)
        self.add(app, operation="ConfigureBackup", status="Completed", start=configure_start,
                 end=configure_start + timedelta(seconds=91.78))
        legacy = RETIRED_ITEM
        delete_start = self.now - 2 * day + timedelta(hours=1)
        self.add(legacy, operation="DeleteBackupData", status="Completed", start=delete_start,
                 end=delete_start + timedelta(seconds=48))
        vault_item = DemoItem(SPEC_CASED_VAULT, SPEC_CASED_VAULT, "VaultJob", 0, (1, 2), 9)
        cmk_start = self.now - 4 * day + timedelta(hours=9)
        self.add(vault_item, operation="UpdateCustomerManagedKey", status="Completed", start=cmk_start,
                 end=cmk_start + timedelta(seconds=12.4))
        stale = STALE_ITEM
        stale_end = self.now - STALE_AGE  # older than the exporter's default 7-day lookback: no job series for it
        self.add(stale, operation="Backup", status="Completed", start=stale_end - timedelta(minutes=21),
                 end=stale_end, size=_size(self.rng, stale), tasks=_finished_tasks(stale, "Backup", "Completed"))
        self._database_jobs()

    def _database_jobs(self) -> None:
        """Management jobs with a database's bare name, a restore and log backups with its real job name."""
        day = timedelta(days=1)
        # The first is one of the two `master`s: which one, the job does not say (nor does Azure's).
        for item, ago in ((FAILING_TWIN, 6 * day + timedelta(hours=3)),
                          (demo_item("rsv-sap-neu", "hxe"), 5 * day + timedelta(hours=7))):
            configured = self.now - ago
            self.add(item, operation="ConfigureBackup", status="Completed", start=configured,
                     end=configured + timedelta(seconds=self.rng.uniform(60, 80)))
        sales = LOGGED_ITEM
        restore_start = self.now - 2 * day - timedelta(hours=5)
        self.add(sales, operation=WORKLOAD_RESTORE, status="Completed", start=restore_start,
                 end=restore_start + timedelta(minutes=self.rng.uniform(10, 20)))
        for number in range(6, 0, -1):  # the last day's log backups, each a few minutes long
            start = self.now - number * LOG_BACKUP_EVERY - timedelta(minutes=self.rng.uniform(0, 30))
            self.add(sales, operation=WORKLOAD_LOG_BACKUP, status="Completed", start=start,
                     end=start + timedelta(minutes=self.rng.uniform(1, 3)), size=f"{self.rng.randint(20, 200)} MB",
                     tasks=_finished_tasks(sales, WORKLOAD_LOG_BACKUP, "Completed"))

    def _running_at_start(self) -> list[_Running]:
        """The marathon initial backup (always running) and one ordinary backup due to finish soon."""
        marathon = MARATHON_ITEM
        started = self.now - timedelta(hours=26)
        self.add(marathon, operation="ConfigureBackup", status="Completed", start=started - timedelta(minutes=3),
                 end=started - timedelta(minutes=1, seconds=29))
        marathon_id = self.add(marathon, operation="Backup", status="InProgress", start=started, end=None,
                               tasks=_running_tasks(marathon, "Backup", 0.5))
        ordinary = self.rng.choice([item for item in ITEMS
                                    if item.history and item.key not in _KEEP_LATEST | _NOT_SCHEDULED])
        ordinary_start = self.now - timedelta(seconds=self.rng.uniform(3, 10))
        ordinary_id = self.add(ordinary, operation="Backup", status="InProgress", start=ordinary_start, end=None,
                               tasks=_running_tasks(ordinary, "Backup", 0.0))
        return [
            _Running(marathon.vault, marathon_id, marathon, "Backup", started, endless=True),
            _Running(ordinary.vault, ordinary_id, ordinary, "Backup", ordinary_start),
        ]

    def _protect_items(self) -> None:
        """Give every item its protected item, as its finished backups left it."""
        for item in ITEMS:
            protection = Protection(state=_INITIAL_STATES.get(item.key, "Protected"))
            for job in sorted(self._backups_of(item), key=_started):
                if "endTime" in job["properties"]:
                    protection.record(job)
            self._special_protection(item, protection)
            self.protections[item.key] = protection
            resource = protected_item(self.estate.vault(item.vault), item, protection)
            self.estate.add_item(item.vault, resource)
            for job in sorted(self._backups_of(item), key=_started):
                record_recovery_point(self.estate, item, resource, job)

    def _special_protection(self, item: DemoItem, protection: Protection) -> None:
        if item.key == STOPPED_ITEM.key:  # its jobs are long gone; Azure still knows its last backup
            stopped = azure_time(self.now - STOPPED_AGE)
            protection.last_status, protection.last_time, protection.last_recovery_point = "Completed", stopped, stopped
        if item.key == RETIRED_ITEM.key:  # soft-deleted: the deleted data is kept for a while
            deleted = self._jobs_of(item, "DeleteBackupData")[0]
            protection.deleted_at = deleted["properties"]["endTime"]

    def _jobs_of(self, item: DemoItem, operation: str) -> list[Json]:
        return [job for job in self.estate.jobs(item.vault)
                if job["properties"].get("operation") == operation and item.owns(job)]

    def _backups_of(self, item: DemoItem) -> list[Json]:
        """Its backups of every kind: "Backup", "Backup (Full)", "Backup (Log)", ..."""
        return [job for job in self.estate.jobs(item.vault)
                if str(job["properties"].get("operation", "")).startswith("Backup") and item.owns(job)]


def build_job(vault: FakeVault, item: DemoItem, job_id: str, *, operation: str, status: str, start: datetime,
              end: datetime | None, size: str | None = None, tasks: list[tuple[str, str]] | None = None,
              error: str | None = None, now: datetime | None = None) -> Json:
    """A demo item's job as the fake serves it (make_job, named as Azure names the item's jobs, plus the demo's
    id-casing quirk)."""
    job = make_job(job_id, vault=vault, item=item.entity_name(operation), operation=operation, status=status,
                   start=start, end=end, job_type=item.job_type, duration_format=item.duration_format, size=size,
                   tasks=tasks, container=item.container, workload_type=item.workload_type, error=error, now=now)
    if vault.name == SPEC_CASED_VAULT:
        job["id"] = job["id"].replace("/subscriptions/", "/Subscriptions/", 1)
    return job


class JobSimulator:
    """Keeps the estate alive: starts jobs, advances running ones, finishes them. Stoppable daemon thread."""

    def __init__(self, estate: FakeEstate, rng: random.Random, running: list[_Running], *, speed: float = 1.0,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 protections: dict[str, Protection] | None = None) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.estate = estate
        # DemoItem.key -> Protection, of the items whose protected item it keeps
        self.protections = protections if protections is not None else {}
        self.rng = rng
        self.speed = speed
        self.clock = clock
        self.running = running
        self.finished_count = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        now = clock()
        for job in running:
            if job.finishes is None and not job.endless:
                job.finishes = now + self._scaled(RUN_FOR)
        self._next_start = now + self._scaled(START_EVERY)
        self._next_prune = now
        # Leave the failed and the warned items (and the failed one's healthy twin) alone for a while, so a
        # newcomer sees them.
        self._untouched_until = now + timedelta(minutes=10) / speed

    def start(self) -> JobSimulator:
        self._thread = threading.Thread(target=self._run, name="demo-job-simulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        tick = min(1.0, max(0.02, 1.0 / self.speed))
        while not self._stop.wait(tick):
            try:
                self.step()
            except Exception:  # the demo must outlive a bug in one tick
                log.exception("demo simulator step failed")

    def _scaled(self, bounds: tuple[float, float]) -> timedelta:
        return timedelta(seconds=self.rng.uniform(*bounds) / self.speed)

    def step(self) -> None:
        """One tick: advance or finish every running job, maybe start a new one, forget old jobs."""
        now = self.clock()
        for job in list(self.running):
            if job.finishes is not None and now >= job.finishes:
                self._finish(job, now)
            else:
                self._advance(job, now)
        if now >= self._next_start:
            self._start_new(now)
            self._next_start = now + self._scaled(START_EVERY)
        if now >= self._next_prune:
            self._forget_old_jobs(now)
            self._next_prune = now + timedelta(minutes=1)

    def _progress(self, job: _Running, now: datetime) -> float:
        if job.finishes is None or job.endless:
            return 0.5
        total = (job.finishes - job.started).total_seconds()
        return min(1.0, (now - job.started).total_seconds() / total) if total > 0 else 1.0

    def _advance(self, job: _Running, now: datetime) -> None:
        self._store(job, status="InProgress", end=None, now=now,
                    tasks=_running_tasks(job.item, job.operation, self._progress(job, now)))

    def _finish(self, job: _Running, now: datetime) -> None:
        status = self.rng.choices(FINISHED, weights=FINISH_WEIGHTS)[0]
        job.operation = _finished_operation(job.item, job.operation)  # "Backup" -> "Backup (Full)" for databases
        backup = job.operation.startswith("Backup")
        succeeded = status in SUCCEEDED and backup
        with self.estate.lock:  # a reader sees the finished job and its protected item change together
            stored = self._store(job, status=status, end=now, now=now,
                                 tasks=_finished_tasks(job.item, job.operation, status),
                                 size=_size(self.rng, job.item) if succeeded else None,
                                 error=ERRORS.get(job.item.job_type) if status == "Failed" else None)
            if backup:
                self._record_backup(job.item, stored)
        self.running.remove(job)
        self.finished_count += 1

    def _record_backup(self, item: DemoItem, job: Json) -> None:
        """Azure updates the protected item when its backup finishes; so does the demo."""
        protection = self.protections.get(item.key)
        if protection is None:
            return
        protection.record(job)
        resource = protected_item(self.estate.vault(item.vault), item, protection)
        self.estate.add_item(item.vault, resource)
        record_recovery_point(self.estate, item, resource, job)

    def _store(self, job: _Running, *, status: str, end: datetime | None, now: datetime,
               tasks: list[tuple[str, str]] | None, size: str | None = None, error: str | None = None) -> Json:
        vault = self.estate.vault(job.vault)
        built = build_job(vault, job.item, job.job_id, operation=job.operation, status=status, start=job.started,
                          end=end, size=size, tasks=tasks, error=error, now=now)
        self.estate.add_job(job.vault, built)
        return built

    def _start_new(self, now: datetime) -> None:
        busy = {job.item.key for job in self.running} | _NOT_SCHEDULED
        if now < self._untouched_until:
            busy |= _KEEP_LATEST
        idle = [item for item in ITEMS if item.key not in busy]
        if not idle:
            return
        item = self.rng.choice(idle)
        operation = "Restore" if item.is_iaas and self.rng.random() < 0.08 else "Backup"
        job = _Running(item.vault, _guid(self.rng), item, operation, now, now + self._scaled(RUN_FOR))
        self.running.append(job)
        self._advance(job, now)

    def _forget_old_jobs(self, now: datetime) -> None:
        """Drop jobs older than RETENTION and beyond MAX_JOBS_PER_VAULT, so a long demo stays small."""
        oldest = to_ticks(now - RETENTION)
        with self.estate.lock:
            for vault in self.estate.vaults:
                newest_first = sorted(vault.jobs.items(), key=lambda pair: _started(pair[1]), reverse=True)
                for position, (job_id, job) in enumerate(newest_first):
                    if position >= MAX_JOBS_PER_VAULT or _started(job) < oldest:
                        del vault.jobs[job_id]


def _started(job: Json) -> int:
    """Start ticks; a job that cannot be dated counts as new, so it is kept rather than lost silently."""
    try:
        return parse_azure_time(str(job["properties"].get("startTime", "")))
    except ValueError:
        return to_ticks(datetime.max.replace(tzinfo=UTC))


@dataclass
class DemoEnvironment:
    """A running demo: the fake ARM, its estate and the simulator. stop() ends both threads."""

    arm: FakeArm
    estate: FakeEstate
    simulator: JobSimulator
    subscriptions: list[str]
    vault_ids: list[str]  # the Recovery Services vaults
    backup_vault_ids: list[str] = field(default_factory=list)  # the Backup vaults

    @property
    def arm_url(self) -> str:
        return self.arm.url

    @property
    def identity_endpoint(self) -> str:
        return self.arm.identity_endpoint

    @property
    def identity_header(self) -> str:
        return self.arm.identity_header

    def identity_env(self) -> dict[str, str]:
        """IDENTITY_ENDPOINT / IDENTITY_HEADER that make azure-identity fetch tokens from the demo."""
        return self.arm.identity_env()

    def stop(self) -> None:
        self.simulator.stop()
        self.arm.stop()


def start_demo(seed: int = 7, speed: float = 1.0) -> DemoEnvironment:
    """Build the demo estate, serve it on loopback and start its simulator."""
    rng = random.Random(seed)
    builder = _EstateBuilder(rng, datetime.now(UTC))
    running = builder.build()
    simulator = JobSimulator(builder.estate, rng, running, speed=speed, protections=builder.protections)
    arm = FakeArm(builder.estate, latency=0.02, ratelimit_refill=25.0).start()
    simulator.start()
    vault_ids = [vault.id for vault in builder.estate.vaults]
    backup_vault_ids = [vault.id for vault in builder.estate.backup_vaults]
    log.info("demo: simulated Azure estate on %s (%d vaults, %d Backup vaults, %d subscriptions, %d protected items); "
             "all data is fake", arm.url, len(vault_ids), len(backup_vault_ids), len(builder.subscriptions),
             len(builder.protections))
    return DemoEnvironment(arm, builder.estate, simulator, builder.subscriptions, vault_ids, backup_vault_ids)
