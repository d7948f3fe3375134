"""Item identity on real estates: the `container` label, workload backups, and jobs joined to their items.

Built from whole recorded Azure CLI sessions (tests/fixtures/azure/real-recordings, PROVENANCE.md) served by
the fake ARM over real HTTP. Where a case is not in a recording, a recorded payload of the same type is
copied and only its names changed, to the ones real sessions showed.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import pytest

from exporter.catalogue import VAULT_LABELS
from exporter.identity import ItemDirectory, item_container, job_identity
from exporter.models import parse_item, parse_job
from exporter.simulator.fakearm import FakeArm, FakeEstate, FakeVault, Fault, make_job, make_protected_item

from .conftest import FIXTURES, SUB_A, Exporter, assert_every_series_once, fixed_clock

RECORDINGS = FIXTURES / "azure" / "real-recordings"
SQL_SESSION = "cli-test_backup_wl_sql_protection-2019-06-28-807a5b71.json"
HANA_SESSION = "cli-test_backup_wl_hana_item-2020-02-14-af12a5c5.json"
AFS_SESSION = "cli-test_afs_backup_item-2021-06-01-2eb3005d.json"
RECORDED_SUB = "00000000-0000-0000-0000-000000000000"
Json = dict[str, Any]


@cache
def _session(name: str) -> list[Json]:
    vaults: list[Json] = json.loads((RECORDINGS / name).read_text())["vaults"]
    return vaults


def _recorded(name: str, snapshot: str = "last-seen") -> Json:
    return copy.deepcopy(next(v for v in _session(name) if v["snapshot"] == snapshot))


def _job(vault: Json, operation: str) -> Json:
    return copy.deepcopy(next(j for j in vault["jobs_list"] if j["properties"]["operation"] == operation))


def _renamed_job(template: Json, job_id: str, **properties: Any) -> Json:
    job = copy.deepcopy(template)
    job["name"] = job_id
    job["id"] = job["id"].rsplit("/", 1)[0] + "/" + job_id
    job["properties"].update(properties)
    return job


def _at(text: str) -> datetime:
    """An Azure timestamp (7 fractional digits) as a datetime."""
    return datetime.fromisoformat(text.rstrip("Z")[:26]).replace(tzinfo=UTC)


def _labels(vault: FakeVault, bmt: str, container: str, item: str, **more: str) -> dict[str, str]:
    return {"subscription_id": vault.subscription_id, "resource_group": vault.resource_group, "vault": vault.name,
            "vault_type": "recovery_services", "backup_management_type": bmt, "container": container,
            "backup_item": item, **more}


def _series_of(text: str, metric: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(metric + "{")]


def _recorded_vault(estate: FakeEstate, recorded: Json) -> FakeVault:
    job_id = next(iter(recorded["job_details"].values()))["id"]
    resource_group = job_id.split("/")[4]
    return estate.add_vault(RECORDED_SUB, resource_group, recorded["recorded_vault"])


def _exporter(make_exporter: Callable[..., Exporter], vault: FakeVault, now: datetime, **overrides: str) -> Exporter:
    return make_exporter(fixed_clock(now), vaults=vault.id, **overrides)


# --- the container of each type, from recorded payloads ---------------------------------------------------

def _no_errors(field: str) -> None:
    raise AssertionError(f"{field} did not parse")


def test_recorded_sql_backup_job_and_its_item_name_one_container() -> None:
    recorded = _recorded(SQL_SESSION)
    item = parse_item(recorded["protected_items"][0], _no_errors)
    backup = parse_job(_job(recorded, "Backup (Full)"), _no_errors)
    configure = parse_job(_job(recorded, "ConfigureBackup"), _no_errors)
    assert item is not None and backup is not None and configure is not None
    assert item.item_key == ("AzureWorkload", "pstestwlvm1bca8/MSSQLSERVER", "testdb1")
    assert backup.own_item_key == ("AzureWorkload", "pstestwlvm1bca8/MSSQLSERVER", "testdb1")
    assert backup.is_backup and backup.operation == "Backup (Full)"  # the raw operation is kept
    assert configure.own_item_key == ("AzureWorkload", "", "testdb1")  # a management job names no host
    assert not configure.is_backup


@pytest.mark.parametrize(("bmt", "entity", "props", "expected"), [
    ("AzureIaasVM", "jakavetVM", {"containerName": "iaasvmcontainerv2;abhi555;jakavetVM"}, ("abhi555", "jakavetVM")),
    ("AzureIaasVM", "vm-c", {"containerName": "iaasvmcontainer;cs-classic;vm-c"}, ("cs-classic", "vm-c")),
    ("AzureStorage", "afs1", {"storageAccountName": "sarathafssa3"}, ("sarathafssa3", "afs1")),
    ("AzureWorkload", "MSSQLSERVER/testdb1 [pstestwlvm1bca8]", {}, ("pstestwlvm1bca8/MSSQLSERVER", "testdb1")),
    ("AzureWorkload", "H22/H22 [HANADemoIDC3]", {}, ("HANADemoIDC3/H22", "H22")),
    ("AzureWorkload", "ab4;asetestdb1 [ase-ccy-vm5]", {}, ("ase-ccy-vm5/ab4", "asetestdb1")),
    ("AzureWorkload", "navigate-testdb2 [iaassqlext-win]", {}, ("iaassqlext-win", "navigate-testdb2")),
    ("AzureWorkload", "testdb1", {}, ("", "testdb1")),
    ("MAB", "fs01.contoso.local", {"mabServerName": "fs01"}, ("fs01", "fs01.contoso.local")),
    ("DPM", "SQL01\\Finance", {"dpmServerName": "dpm01", "containerName": "sql01"}, ("dpm01", "SQL01\\Finance")),
    ("AzureBackupServer", "db", {"dpmServerName": "mabs01"}, ("mabs01", "db")),
    ("AzureSql", "db", {"containerName": "some;container"}, ("some;container", "db")),
    ("", "vault-level", {}, ("", "vault-level")),
])
def test_a_job_names_its_container_per_type(bmt: str, entity: str, props: Json, expected: tuple[str, str]) -> None:
    assert job_identity(bmt, entity, props) == expected


@pytest.mark.parametrize(("bmt", "props", "expected"), [
    ("AzureIaasVM", {"containerName": "iaasvmcontainerv2;apple;jakavetVM"}, "apple"),
    ("AzureIaasVM", {"containerName": "IaasVMContainer;iaasvmcontainerv2;apple;jakavetVM"}, "apple"),
    ("AzureStorage", {"containerName": "StorageContainer;storage;rg;sarathafssa4"}, "sarathafssa4"),
    ("AzureWorkload", {"serverName": "HANADemoIDC3", "parentName": "H22",
                       "containerName": "VMAppContainer;compute;idcdemo;hanademoidc3"}, "HANADemoIDC3/H22"),
    ("AzureWorkload", {"containerName": "VMAppContainer;compute;rg;sqlvm01", "parentName": "MSSQLSERVER"},
     "sqlvm01/MSSQLSERVER"),
    ("MAB", {"computerName": "fs01.contoso.local", "containerName": "fs01.contoso.local"}, "fs01.contoso.local"),
    ("DPM", {"backupEngineName": "dpm01", "containerName": "sql01"}, "dpm01"),
    ("DefaultBackup", {"containerName": "GenericContainer;x"}, "GenericContainer;x"),
])
def test_an_item_names_its_container_per_type(bmt: str, props: Json, expected: str) -> None:
    assert item_container(bmt, props) == expected


def test_the_directory_matches_case_insensitively_and_never_guesses_between_two_items() -> None:
    directory = ItemDirectory([("AzureWorkload", "HANADemoIDC3/H22", "h22"),
                               ("AzureWorkload", "ase-ccy-vm5/AB4", "asetestdb1"),
                               ("AzureWorkload", "ase-vm-crr1/AB4", "asetestdb1"),
                               ("AzureWorkload", "longsqlhostname/MSSQLSERVER", "sales"),
                               ("AzureStorage", "stprodfilesacc01", "share")])
    assert directory.resolve(("AzureWorkload", "hanademoidc3/h22", "H22")) == ("AzureWorkload", "HANADemoIDC3/H22",
                                                                               "h22")
    assert directory.resolve(("AzureWorkload", "", "H22")) == ("AzureWorkload", "HANADemoIDC3/H22", "h22")
    assert directory.resolve(("AzureWorkload", "", "asetestdb1")) == ("AzureWorkload", "", "asetestdb1")
    assert directory.resolve(("AzureWorkload", "ase-vm-crr1", "asetestdb1")) == ("AzureWorkload", "ase-vm-crr1/AB4",
                                                                                 "asetestdb1")
    # serverName is the VM's NetBIOS name (15 characters); a job may bracket the whole VM name
    assert directory.resolve(("AzureWorkload", "longsqlhostname-02/MSSQLSERVER", "sales"))[1] == \
        "longsqlhostname/MSSQLSERVER"
    assert directory.resolve(("AzureWorkload", "longsqlhostname/OTHER", "sales"))[1] == "longsqlhostname/OTHER"
    # outside workloads a container that differs is another item, however alike the names look
    assert directory.resolve(("AzureStorage", "stprodfilesacc02", "share"))[1] == "stprodfilesacc02"


# --- real sessions through the exporter -------------------------------------------------------------------

def test_a_sql_backup_renamed_while_running_counts_as_the_items_backup(
        estate: FakeEstate, make_exporter: Callable[..., Exporter]) -> None:
    first = _recorded(SQL_SESSION, "first-seen")
    last = _recorded(SQL_SESSION)
    vault = _recorded_vault(estate, last)
    running = first["jobs_list"][0]  # `Backup` while it ran, `Backup (Full)` once it finished
    assert running["properties"]["operation"] == "Backup"
    estate.add_item(vault.name, last["protected_items"][0])
    estate.add_job(vault.name, _job(last, "ConfigureBackup"))
    estate.add_job(vault.name, running)
    clock = fixed_clock(_at(running["properties"]["startTime"]) + timedelta(minutes=1))
    exporter = make_exporter(clock, vaults=vault.id)
    exporter.scrape()
    db = _labels(vault, "AzureWorkload", "pstestwlvm1bca8/MSSQLSERVER", "testdb1")
    assert exporter.value("azure_backup_job_last_status", **db, operation="Backup", status="InProgress") == 1
    assert exporter.value("azure_backup_job_last_status", **db, operation="ConfigureBackup", status="Completed") == 1

    for job in last["jobs_list"]:
        estate.add_job(vault.name, job)
    clock.now = _at("2019-06-28T05:45:00Z")
    text = exporter.scrape()
    finished = _job(last, "Backup (Full)")["properties"]
    assert exporter.value("azure_backup_job_last_status", **db, operation="Backup (Full)", status="Completed") == 1
    assert exporter.value("azure_backup_job_last_status", **db, operation="Backup", status="InProgress") is None
    assert exporter.value("azure_backup_last_successful_backup_timestamp_seconds", **db) == \
        _at(finished["endTime"]).timestamp()
    for operation in ("ConfigureBackup", "DisableBackup", "DeleteBackupData"):  # bare `testdb1`: the one item
        assert exporter.value("azure_backup_job_last_status", **db, operation=operation, status="Completed") == 1
    assert 'container=""' not in text
    assert exporter.value("azure_backup_item_info", **db, item_type="AzureVmWorkloadSQLDatabase",
                          workload_type="SQLDataBase", policy="",
                          container_name="VMAppContainer;compute;pstestwlrg1bca8;pstestwlvm1bca8",
                          source_resource_id=last["protected_items"][0]["properties"]["sourceResourceId"]) == 1


def test_hana_jobs_in_upper_case_carry_the_items_lower_case_names(
        estate: FakeEstate, make_exporter: Callable[..., Exporter]) -> None:
    recorded = _recorded(HANA_SESSION)
    vault = _recorded_vault(estate, recorded)
    for item in recorded["protected_items"]:
        estate.add_item(vault.name, item)
    for job in recorded["jobs_list"]:  # ConfigureBackup and DeleteBackupData of h22_restored_sarath: bare names
        estate.add_job(vault.name, job)
    template = _job(recorded, "ConfigureBackup")
    start = (_at(template["properties"]["startTime"]) + timedelta(minutes=10)).replace(microsecond=0)
    for n, database in enumerate(("H22", "SYSTEMDB")):  # the job names the issue records for system H22
        estate.add_job(vault.name, _renamed_job(
            template, f"00000000-0000-0000-0000-00000000000{n}", entityFriendlyName=f"H22/{database} [HANADemoIDC3]",
            operation="Backup (Full)", startTime=f"{start:%Y-%m-%dT%H:%M:%S}.1234567Z",
            endTime=f"{start + timedelta(minutes=4):%Y-%m-%dT%H:%M:%S}.1234567Z", duration="PT4M"))
    exporter = _exporter(make_exporter, vault, start + timedelta(minutes=30))
    text = exporter.scrape()
    for database in ("h22", "systemdb"):
        labels = _labels(vault, "AzureWorkload", "HANADemoIDC3/H22", database)
        assert exporter.value("azure_backup_job_last_status", **labels, operation="Backup (Full)",
                              status="Completed") == 1
        assert exporter.value("azure_backup_last_successful_backup_timestamp_seconds", **labels) == \
            (start + timedelta(minutes=4, microseconds=123456)).timestamp()
    sarath = _labels(vault, "AzureWorkload", "HANADemoIDC3/H22", "h22_restored_sarath")
    assert exporter.value("azure_backup_job_last_status", **sarath, operation="DeleteBackupData",
                          status="Completed") == 1
    assert 'backup_item="H22"' not in text and 'backup_item="SYSTEMDB"' not in text
    assert len(_series_of(text, "azure_backup_item_info")) == len(recorded["protected_items"])


def _share(template: Json, account: str, name: str, status: str) -> Json:
    """The recorded file share item, moved to another storage account and renamed."""
    item = copy.deepcopy(template)
    container = f"StorageContainer;storage;rg-files;{account}"
    item["id"] = item["id"].replace("StorageContainer;storage;clitest.rg000001;clitest000003", container)
    item["name"] = f"AzureFileShare;{account}{name}"
    item["properties"].update(friendlyName=name, containerName=container, protectionState="Protected",
                              lastBackupStatus=status)
    return item


def test_one_share_name_in_two_storage_accounts_is_two_items(
        estate: FakeEstate, make_exporter: Callable[..., Exporter]) -> None:
    recorded = _recorded(AFS_SESSION)
    vault = estate.add_vault(SUB_A, "rg-files", "vault-files")
    now = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    job = _job(recorded, "ConfigureBackup")
    for n, (account, status) in enumerate((("sarathafssa3", "Failed"), ("sarathafssa4", "Completed"))):
        estate.add_item(vault.name, _share(recorded["protected_items"][0], account, "afs1", status))
        start = now - timedelta(hours=3 - n)
        estate.add_job(vault.name, _renamed_job(
            job, f"00000000-0000-0000-0000-00000000001{n}", storageAccountName=account, entityFriendlyName="afs1",
            operation="Backup", status=status, startTime=f"{start:%Y-%m-%dT%H:%M:%S}.0000000Z",
            endTime=f"{start + timedelta(minutes=2):%Y-%m-%dT%H:%M:%S}.0000000Z"))
    exporter = _exporter(make_exporter, vault, now)
    text = exporter.scrape()
    failing = _labels(vault, "AzureStorage", "sarathafssa3", "afs1", operation="Backup")
    healthy = _labels(vault, "AzureStorage", "sarathafssa4", "afs1", operation="Backup")
    assert exporter.value("azure_backup_job_last_status", **failing, status="Failed") == 1
    assert exporter.value("azure_backup_job_last_status", **healthy, status="Completed") == 1
    assert exporter.value("azure_backup_job_last_status", **healthy, status="Failed") is None
    assert exporter.value("azure_backup_last_successful_backup_timestamp_seconds",
                          **{k: v for k, v in failing.items() if k != "operation"}) is None
    assert len(_series_of(text, "azure_backup_item_info")) == 2


def test_one_vm_name_in_two_resource_groups_is_two_items(
        estate: FakeEstate, make_exporter: Callable[..., Exporter]) -> None:
    vault = estate.add_vault(SUB_A, "rg-backup", "vault-vms")
    now = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    for n, (group, status) in enumerate((("abhi555", "Failed"), ("apple", "Completed"))):
        container = f"iaasvmcontainerv2;{group};jakavetVM"
        estate.add_item(vault.name, make_protected_item(
            vault=vault, friendly_name="jakavetVM", container=container, last_backup_status=status,
            last_backup_time=now - timedelta(hours=2), health_status="ActionRequired" if n == 0 else "Passed"))
        estate.add_job(vault.name, make_job(f"00000000-0000-0000-0000-00000000002{n}", vault=vault, item="jakavetVM",
                                            container=container, status=status, start=now - timedelta(hours=3),
                                            end=now - timedelta(hours=2)))
    exporter = _exporter(make_exporter, vault, now)
    exporter.scrape()
    for group, status, health in (("abhi555", "Failed", "ActionRequired"), ("apple", "Completed", "Passed")):
        labels = _labels(vault, "AzureIaasVM", group, "jakavetVM")
        assert exporter.value("azure_backup_job_last_status", **labels, operation="Backup", status=status) == 1
        assert exporter.value("azure_backup_item_health_status", **labels, status=health) == 1


def _ase_item(template: Json, host: str, health: str) -> Json:
    """The recorded SQL database item, made the SAP ASE database asetestdb1 of system AB4 on `host`."""
    item = copy.deepcopy(template)
    container = f"VMAppContainer;compute;rg-sap;{host}"
    item["id"] = (item["id"].split("/protectionContainers/")[0]
                  + f"/protectionContainers/{container}/protectedItems/SAPAseDatabase;ab4;asetestdb1")
    item["name"] = "SAPAseDatabase;ab4;asetestdb1"
    item["properties"].update(
        friendlyName="asetestdb1", serverName=host, parentName="AB4", parentType="AzureVmWorkloadSAPAseSystem",
        protectedItemType="AzureVmWorkloadSAPAseDatabase", workloadType="SAPAseDatabase", containerName=container,
        protectionState="Protected", lastBackupStatus=health, protectedItemHealthStatus=health)
    return item


def _ase_estate(estate: FakeEstate, now: datetime) -> FakeVault:
    recorded = _recorded(SQL_SESSION)
    vault = estate.add_vault(SUB_A, "rg-sap", "vault-sap")
    template = _job(recorded, "Backup (Full)")
    for n, (host, status, health) in enumerate((("ase-ccy-vm5", "Failed", "Unhealthy"),
                                                ("ase-vm-crr1", "Completed", "Healthy"))):
        estate.add_item(vault.name, _ase_item(recorded["protected_items"][0], host, health))
        start = now - timedelta(hours=2)
        estate.add_job(vault.name, _renamed_job(
            template, f"00000000-0000-0000-0000-00000000003{n}", workloadType="SAPAseDatabase",
            entityFriendlyName=f"ab4;asetestdb1 [{host}]", status=status,
            startTime=f"{start:%Y-%m-%dT%H:%M:%S}.0000000Z",
            endTime=f"{start + timedelta(minutes=5):%Y-%m-%dT%H:%M:%S}.0000000Z"))
    configure = _job(recorded, "ConfigureBackup")  # a bare `asetestdb1`: either host's
    estate.add_job(vault.name, _renamed_job(
        configure, "00000000-0000-0000-0000-000000000039", workloadType="SAPAseDatabase",
        entityFriendlyName="asetestdb1", startTime=f"{now - timedelta(days=1):%Y-%m-%dT%H:%M:%S}.0000000Z",
        endTime=f"{now - timedelta(days=1) + timedelta(minutes=1):%Y-%m-%dT%H:%M:%S}.0000000Z"))
    return vault


def test_one_ase_database_on_two_hosts_is_two_items_and_a_bare_job_joins_neither(
        estate: FakeEstate, make_exporter: Callable[..., Exporter]) -> None:
    now = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    vault = _ase_estate(estate, now)
    exporter = _exporter(make_exporter, vault, now)
    exporter.scrape()
    unhealthy = _labels(vault, "AzureWorkload", "ase-ccy-vm5/AB4", "asetestdb1")
    healthy = _labels(vault, "AzureWorkload", "ase-vm-crr1/AB4", "asetestdb1")
    assert exporter.value("azure_backup_job_last_status", **unhealthy, operation="Backup (Full)", status="Failed") == 1
    assert exporter.value("azure_backup_item_health_status", **unhealthy, status="Unhealthy") == 1
    assert exporter.value("azure_backup_job_last_status", **healthy, operation="Backup (Full)",
                          status="Completed") == 1
    assert exporter.value("azure_backup_item_health_status", **healthy, status="Healthy") == 1
    assert exporter.value("azure_backup_last_successful_backup_timestamp_seconds", **healthy) == \
        (now - timedelta(hours=2) + timedelta(minutes=5)).timestamp()
    assert exporter.value("azure_backup_last_successful_backup_timestamp_seconds", **unhealthy) is None
    unjoined = _labels(vault, "AzureWorkload", "", "asetestdb1", operation="ConfigureBackup")
    assert exporter.value("azure_backup_job_last_status", **unjoined, status="Completed") == 1


def test_a_running_job_that_gains_its_host_stays_one_items_series(
        estate: FakeEstate, make_exporter: Callable[..., Exporter]) -> None:
    recorded = _recorded(SQL_SESSION)
    vault = estate.add_vault(SUB_A, "rg-sql", "vault-sql")
    now = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    item = copy.deepcopy(recorded["protected_items"][0])
    item["name"] = "SQLDataBase;mssqlserver;navigate-testdb2"
    item["id"] = item["id"].replace("testdb1", "navigate-testdb2").replace("pstestwlvm1bca8", "iaassqlext-win")
    item["properties"].update(friendlyName="navigate-testdb2", serverName="iaassqlext-win",
                              containerName="VMAppContainer;compute;rg-sql;iaassqlext-win")
    estate.add_item(vault.name, item)
    running = _renamed_job(_recorded(SQL_SESSION, "first-seen")["jobs_list"][0], "00000000-0000-0000-0000-000000000040",
                           entityFriendlyName="navigate-testdb2", startTime=f"{now:%Y-%m-%dT%H:%M:%S}.0000000Z")
    estate.add_job(vault.name, running)
    clock = fixed_clock(now + timedelta(minutes=1))
    exporter = make_exporter(clock, vaults=vault.id)
    exporter.scrape()
    labels = _labels(vault, "AzureWorkload", "iaassqlext-win/MSSQLSERVER", "navigate-testdb2", operation="Backup")
    assert exporter.value("azure_backup_job_last_status", **labels, status="InProgress") == 1
    estate.update_job(vault.name, running["name"], entityFriendlyName="navigate-testdb2 [iaassqlext-win]")
    clock.advance(timedelta(minutes=5))
    text = exporter.scrape()
    assert exporter.value("azure_backup_job_last_status", **labels, status="InProgress") == 1
    assert len(_series_of(text, "azure_backup_job_last_start_timestamp_seconds")) == 1


def test_without_the_items_list_jobs_keep_their_own_names(
        estate: FakeEstate, arm: FakeArm, make_exporter: Callable[..., Exporter]) -> None:
    recorded = _recorded(SQL_SESSION)
    vault = _recorded_vault(estate, recorded)
    estate.add_item(vault.name, recorded["protected_items"][0])
    for job in recorded["jobs_list"]:
        estate.add_job(vault.name, job)
    arm.set_fault(vault.name, Fault("status", status=403, code="AuthorizationFailed",
                                    operations=frozenset({"items_list"})))
    exporter = _exporter(make_exporter, vault, _at("2019-06-28T06:00:00Z"))
    text = exporter.scrape()
    backup = _labels(vault, "AzureWorkload", "pstestwlvm1bca8/MSSQLSERVER", "testdb1", operation="Backup (Full)")
    assert exporter.value("azure_backup_job_last_status", **backup, status="Completed") == 1
    configure = _labels(vault, "AzureWorkload", "", "testdb1", operation="ConfigureBackup")
    assert exporter.value("azure_backup_job_last_status", **configure, status="Completed") == 1
    assert _series_of(text, "azure_backup_item_info") == []
    # the jobs are served, and the vault is reported failing: part of its data is missing
    vault_labels = {k: v for k, v in backup.items() if k in VAULT_LABELS}
    assert exporter.value("azure_backup_vault_scrape_success", **vault_labels) == 0

    arm.set_fault(vault.name, None)  # access granted: the next refresh joins the jobs to the item
    exporter.scrape()
    assert exporter.value("azure_backup_job_last_status", **{**configure, "container": "pstestwlvm1bca8/MSSQLSERVER"},
                          status="Completed") == 1
    assert exporter.value("azure_backup_job_last_status", **configure, status="Completed") is None
    assert exporter.value("azure_backup_vault_scrape_success", **vault_labels) == 1


def test_items_that_would_share_a_label_set_are_kept_apart_and_counted(
        estate: FakeEstate, make_exporter: Callable[..., Exporter]) -> None:
    vault = estate.add_vault(SUB_A, "rg-dpm", "vault-dpm")
    # Two data sources of one name behind one DPM server, on two protected computers: the type's container
    # (the DPM server) does not tell them apart, so their containerName does.
    for computer in ("sql01.contoso.local", "sql02.contoso.local"):
        item = make_protected_item(vault=vault, item_type="DPMProtectedItem", friendly_name="Finance",
                                   container=computer, last_backup_status="Completed")
        item["properties"]["backupEngineName"] = "dpm01.contoso.local"
        estate.add_item(vault.name, item)
    exporter = _exporter(make_exporter, vault, datetime(2026, 11, 21, 12, 0, tzinfo=UTC))
    exporter.scrape()
    for computer in ("sql01.contoso.local", "sql02.contoso.local"):
        assert exporter.value("azure_backup_item_protection_state", **_labels(vault, "DPM", computer, "Finance"),
                              state="Protected") == 1
    assert exporter.value("azure_backup_parse_errors_total", field="item_identity") == 2


def test_the_duplicate_check_catches_a_repeated_label_set() -> None:
    line = 'azure_backup_item_info{backup_item="master",container=""} 1.0\n'
    assert_every_series_once("# TYPE azure_backup_item_info gauge\n" + line)
    with pytest.raises(AssertionError, match="1 series twice"):
        assert_every_series_once("# TYPE azure_backup_item_info gauge\n" + line + line)


@pytest.mark.parametrize(("job_type", "item_type", "bmt", "server", "item"), [
    ("MabJob", "MabFileFolderProtectedItem", "MAB", "fs01.contoso.local", "fs01.contoso.local"),
    ("DpmJob", "DPMProtectedItem", "DPM", "dpm01.contoso.local", "SQL01\\Finance"),
])
def test_agent_and_dpm_jobs_join_their_items_by_server(
        job_type: str, item_type: str, bmt: str, server: str, item: str, *,
        estate: FakeEstate, make_exporter: Callable[..., Exporter]) -> None:
    vault = estate.add_vault(SUB_A, "rg-branch", "vault-branch")
    now = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    estate.add_item(vault.name, make_protected_item(vault=vault, item_type=item_type, friendly_name=item,
                                                    container=server, last_backup_status="Completed"))
    estate.add_job(vault.name, make_job("00000000-0000-0000-0000-000000000050", vault=vault, item=item,
                                        job_type=job_type, container=server, start=now - timedelta(hours=2),
                                        end=now - timedelta(hours=1), duration_format="dotnet"))
    exporter = _exporter(make_exporter, vault, now)
    text = exporter.scrape()
    labels = _labels(vault, bmt, server, item)
    assert exporter.value("azure_backup_job_last_status", **labels, operation="Backup", status="Completed") == 1
    assert exporter.value("azure_backup_item_protection_state", **labels, state="Protected") == 1
    assert exporter.value("azure_backup_last_successful_backup_timestamp_seconds", **labels) == \
        (now - timedelta(hours=1)).timestamp()
    assert len({line.split("container=")[1].split(",")[0] for line in text.splitlines()
                if "container=" in line and not line.startswith("azure_backup_item_info")}) == 1


def test_a_database_backup_reports_its_size_as_data_transferred() -> None:
    recorded = _recorded(SQL_SESSION)
    details = recorded["job_details"][_job(recorded, "Backup (Full)")["name"]]
    assert details["properties"]["extendedInfo"]["propertyBag"] == {"Data Transferred (in MB)": "4.0864"}
    job = parse_job(details, _no_errors)
    assert job is not None and job.size_bytes == pytest.approx(4.0864 * 2**20)
