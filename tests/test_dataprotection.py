"""Backup vault (Microsoft.DataProtection) payloads parsed into the exporter's models.

Every case starts from a real payload in tests/fixtures/azure/dataprotection (provenance in PROVENANCE.md); a
variant changes only the field under test.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from exporter.dataprotection import (
    DATASOURCE_TYPES,
    backup_management_type,
    data_source_key,
    datasource_table,
    instance_health,
    parse_backup_instance,
    parse_backup_vault,
    parse_dpp_job,
    parse_dpp_policy,
    parse_recovery_points,
    resource_group_of,
    unknown_states,
)
from exporter.identity import ItemDirectory
from exporter.models import DiscoveredVault, Task, VaultRef
from exporter.parsing import parse_timestamp

DPP = Path(__file__).parent / "fixtures" / "azure" / "dataprotection"
CLI_JOB = "2024-04-01/azure-cli-recording.Jobs_Get.completed.response.json"
PS_JOB_DONE = "2026-03-01/azure-powershell-recording.Jobs_Get.completed.response.json"
PS_JOB_RUNNING = "2026-03-01/azure-powershell-recording.Jobs_Get.inprogress.response.json"
PS_INSTANCES = "2026-03-01/azure-powershell-recording.BackupInstances_List.response.json"
SPEC_JOBS = "2026-06-01/ListJobs.json"
SPEC_JOB = "2026-06-01/GetJob.json"
SPEC_INSTANCES = "2026-06-01/ListBackupInstances.json"
SPEC_VAULTS = "2026-06-01/GetBackupVaultsInSubscription.json"
SPEC_POINTS = "2026-06-01/ListRecoveryPoints.json"
CLI_POINTS = "2023-01-01/azure-cli-recording.RecoveryPoints_List.disk.response.json"
DISK_POLICIES = "2023-01-01/azure-cli-recording.BackupPolicies_List.disk.response.json"
SPEC_POLICIES = "2026-06-01/ListBackupPolicy.json"
BLOB_POLICY = "2025-07-01/azure-cli-recording.BackupPolicies_CreateOrUpdate.blob.response.json"
ADLS_POLICY = "2025-07-01/azure-cli-recording.BackupPolicies_CreateOrUpdate.adlsblob.response.json"
BLOB_OPERATIONAL_POLICY = ("2021-01-01/docs.backup-azure-dataprotection-use-rest-api-create-update-blob-policy"
                           ".BackupPolicies_CreateOrUpdate.response.json")
# The same job (133db3df-...) as Resource Graph sent it in the same CLI session: a .NET TimeSpan, where GET
# sends PT4M9.8668428S (research: backup-vaults.md §2.1).
ARG_DURATION = "00:04:09.8668428"
JOB_SECONDS = 4 * 60 + 9.8668428


def _body(name: str) -> Any:
    data = json.loads((DPP / name).read_text())
    # spec examples wrap the body; recordings are the body itself
    return data["responses"]["200"]["body"] if "responses" in data else data


def _with(name: str, **properties: Any) -> dict[str, Any]:
    """The real resource `name` with only the given properties changed."""
    resource: dict[str, Any] = copy.deepcopy(_body(name))
    resource["properties"].update(properties)
    return resource


class Errors(Counter[str]):
    def __call__(self, field: str) -> None:
        self[field] += 1


# --- data source types and identity ---

@pytest.mark.parametrize(("datasource_type", "expected"), [
    ("Microsoft.Compute/disks", "AzureDisk"),
    ("microsoft.compute/DISKS", "AzureDisk"),
    ("Microsoft.Storage/storageAccounts/blobServices", "AzureBlob"),
    ("Microsoft.DBforPostgreSQL/servers/databases", "AzureDatabaseForPostgreSQL"),
    ("OssDB", "AzureDatabaseForPostgreSQL"),
    ("ossdb", "AzureDatabaseForPostgreSQL"),
    ("Microsoft.DBforPostgreSQL/flexibleServers", "AzureDatabaseForPostgreSQLFlexibleServer"),
    ("Microsoft.DBforMySQL/flexibleServers", "AzureDatabaseForMySQLFlexibleServer"),
    ("Microsoft.ContainerService/managedClusters", "AzureKubernetesService"),
    ("Microsoft.Storage/storageAccounts/adlsBlobServices", "AzureDataLakeStorage"),
    ("Microsoft.DocumentDB/databaseAccounts", "AzureCosmosDB"),
    ("Microsoft.ElasticSan/elasticSans/volumeGroups", "AzureElasticSAN"),
    ("Microsoft.Example/newThings", "Microsoft.Example/newThings"),
])
def test_datasource_type_labels(datasource_type: str, expected: str) -> None:
    assert backup_management_type(datasource_type) == expected


def test_datasource_table_lists_every_type() -> None:
    lines = datasource_table().splitlines()
    assert lines[:3] == ["| `dataSourceType` | `backup_management_type` |", "|---|---|",
                         "| `Microsoft.Compute/disks` | `AzureDisk` |"]
    assert lines[-1] == "| `OssDB` | `AzureDatabaseForPostgreSQL` |"
    assert len(lines) == 2 + len(DATASOURCE_TYPES) == 12


@pytest.mark.parametrize(("resource_id", "expected"), [
    ("/subscriptions/38304e13-357e-405e-9e9a-220351dcce8c/resourcegroups/pstest-diskrg/providers/"
     "Microsoft.Compute/disks/pstest-disk", "pstest-diskrg"),
    ("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/clitest-dpp-rg/providers/"
     "Microsoft.Compute/disks/clitest-disk-persistent-bi-donotdelete", "clitest-dpp-rg"),
    ("/subscriptions/00000000-0000-0000-0000-000000000000/ResourceGroups/RG", "RG"),
    ("/subscriptions/00000000-0000-0000-0000-000000000000/providers/Microsoft.DataProtection/backupVaults", ""),
    ("", ""),
])
def test_resource_group_of(resource_id: str, expected: str) -> None:
    assert resource_group_of(resource_id) == expected


@pytest.mark.parametrize(("set_name", "name", "expected"), [
    ("", "pstest-disk", ("rg", "pstest-disk")),  # disk: dataSourceSetName null
    ("clitestsadonotdelete", "clitestsadonotdelete", ("rg", "clitestsadonotdelete")),  # blob: set = name
    ("Server1", "server1", ("rg", "server1")),  # the same name, another casing
    ("mabtestingccybasicv11", "bugbashdb2", ("rg/mabtestingccybasicv11", "bugbashdb2")),  # a database in a server
])
def test_data_source_key(set_name: str, name: str, expected: tuple[str, str]) -> None:
    assert data_source_key("rg", set_name, name) == expected


# --- jobs ---

def test_cli_job_get_completed() -> None:
    errors = Errors()
    job = parse_dpp_job(_body(CLI_JOB), errors)
    assert not errors
    assert job is not None
    assert (job.job_id, job.job_type, job.operation, job.status) == (
        "133db3df-828c-4eb7-8c0c-18484501aace", "AzureBackupJob", "Backup", "Completed")
    assert job.item_key == ("AzureDisk", "clitest-dpp-rg", "clitest-disk-persistent-bi-donotdelete")
    assert job.named_as == ("clitest-dpp-rg", "clitest-disk-persistent-bi-donotdelete")
    assert job.start == parse_timestamp("2025-02-23T12:00:10.6073736Z")
    assert job.end == parse_timestamp("2025-02-23T12:04:20.4742164Z")
    assert job.duration == pytest.approx(JOB_SECONDS, abs=1e-6)  # end - start (microsecond timestamps)
    assert job.container_name == ("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/clitest-dpp-rg"
                                  "/providers/Microsoft.Compute/disks/clitest-disk-persistent-bi-donotdelete")
    assert job.workload_type == "Microsoft.Compute/disks"
    assert job.tasks == (Task("Trigger Backup", "Completed"),)
    assert job.finished and job.is_backup


@pytest.mark.parametrize("duration", ["PT4M9.8668428S", ARG_DURATION])
def test_one_job_duration_in_both_forms(duration: str) -> None:
    """GET sends ISO 8601 and Resource Graph a TimeSpan for the same job: without an end both read the same."""
    errors = Errors()
    job = parse_dpp_job(_with(CLI_JOB, endTime=None, duration=duration), errors)
    assert not errors
    assert job is not None
    assert job.end is None
    assert job.duration == pytest.approx(JOB_SECONDS, abs=1e-9)


def test_end_minus_start_is_preferred_to_the_duration_field() -> None:
    errors = Errors()
    job = parse_dpp_job(_with(CLI_JOB, duration="PT1S"), errors)
    assert not errors
    assert job is not None and job.duration == pytest.approx(JOB_SECONDS, abs=1e-6)


def test_job_id_is_the_lower_cased_name() -> None:
    resource = _body(CLI_JOB)
    resource["name"] = resource["name"].upper()
    job = parse_dpp_job(resource, Errors())
    assert job is not None and job.job_id == "133db3df-828c-4eb7-8c0c-18484501aace"


@pytest.mark.parametrize(("duration", "seconds"), [("1.02:03:04", 93784.0), ("PT0S", 0.0), ("00:00:00", 0.0)])
def test_duration_field_forms(duration: str, seconds: float) -> None:
    errors = Errors()
    job = parse_dpp_job(_with(CLI_JOB, endTime=None, duration=duration), errors)
    assert not errors
    assert job is not None and job.duration == seconds


@pytest.mark.parametrize("duration", ["-10675199.02:48:05.4775808", "-PT5S", "soon", "P"])
def test_negative_or_unparseable_duration_is_dropped_and_counted(duration: str) -> None:
    errors = Errors()
    job = parse_dpp_job(_with(CLI_JOB, endTime=None, duration=duration), errors)
    assert job is not None
    assert job.duration is None
    assert errors == {"duration": 1}


def test_running_job_has_no_end_and_azures_zero_duration() -> None:
    errors = Errors()
    job = parse_dpp_job(_body(PS_JOB_RUNNING), errors)
    assert not errors
    assert job is not None
    assert (job.status, job.end, job.duration) == ("InProgress", None, 0.0)
    assert job.start == parse_timestamp("2026-05-17T20:46:16.1764818Z")
    assert job.tasks == (Task("Trigger Backup", "InProgress"),)
    assert not job.finished


def test_completed_job_ignores_datasource_size_strings() -> None:
    """OriginalDatasourceSizeInBytes ("68719476736") is the disk's size, not bytes transferred."""
    errors = Errors()
    resource = _body(PS_JOB_DONE)
    assert resource["properties"]["extendedInfo"]["subTasks"][0]["additionalDetails"][
        "OriginalDatasourceSizeInBytes"] == "68719476736"
    job = parse_dpp_job(resource, errors)
    assert not errors
    assert job is not None
    assert job.size_bytes is None
    assert job.status == "Completed"
    assert job.duration == pytest.approx(3 * 60 + 34.6372013, abs=1e-6)
    # dataSourceId spells /resourcegroups/ in lower case here
    assert job.item_key == ("AzureDisk", "pstest-diskrg", "pstest-disk")


@pytest.mark.parametrize(("transferred", "size"), [(1073741824, 1073741824.0), (1.5e9, 1.5e9), (0, 0.0)])
def test_numeric_data_transferred_is_the_size(transferred: float, size: float) -> None:
    errors = Errors()
    resource = _body(CLI_JOB)
    resource["properties"]["extendedInfo"]["dataTransferredInBytes"] = transferred
    job = parse_dpp_job(resource, errors)
    assert not errors
    assert job is not None and job.size_bytes == size


@pytest.mark.parametrize("transferred", ["4294967296", True, -1, {"value": 1}])
def test_non_numeric_data_transferred_is_dropped_and_counted(transferred: Any) -> None:
    errors = Errors()
    resource = _body(CLI_JOB)
    resource["properties"]["extendedInfo"]["dataTransferredInBytes"] = transferred
    job = parse_dpp_job(resource, errors)
    assert job is not None
    assert job.size_bytes is None
    assert errors == {"dataTransferredInBytes": 1}


@pytest.mark.parametrize("sentinel", ["0001-01-01T00:00:00Z", "0001-01-01T00:00:00.0000000Z", None, ""])
def test_unset_end_time_is_absent(sentinel: str | None) -> None:
    errors = Errors()
    job = parse_dpp_job(_with(CLI_JOB, endTime=sentinel), errors)
    assert not errors
    assert job is not None
    assert job.end is None
    assert job.duration == pytest.approx(JOB_SECONDS, abs=1e-9)  # from the duration field instead


def test_unset_start_time_is_absent() -> None:
    errors = Errors()
    job = parse_dpp_job(_with(CLI_JOB, startTime="0001-01-01T00:00:00.0000000Z"), errors)
    assert not errors
    assert job is not None and job.start is None


def test_unparseable_time_is_counted() -> None:
    errors = Errors()
    job = parse_dpp_job(_with(CLI_JOB, endTime="yesterday"), errors)
    assert job is not None and job.end is None
    assert errors == {"endTime": 1}


def test_spec_list_started_and_succeeded() -> None:
    """The spec's examples use the older words: Started is InProgress, Succeeded is Completed."""
    errors = Errors()
    jobs = [parse_dpp_job(r, errors) for r in _body(SPEC_JOBS)["value"]]
    assert not errors
    assert [(j.item, j.status, j.duration, j.tasks) for j in jobs if j] == [
        ("bugbashdb4", "InProgress", 0.0, None),
        ("bugbashdb5", "InProgress", 0.0, None),
        ("bugbashdb2", "InProgress", 0.0, None),
        ("bugbashdb3", "Completed", pytest.approx(131.972439, abs=1e-6), None),  # LIST: details not fetched
    ]
    succeeded = jobs[3]
    assert succeeded is not None
    # a PostgreSQL single-server database: its server (dataSourceSetName) is part of the container
    assert succeeded.item_key == ("AzureDatabaseForPostgreSQL", "DppPostgresTestingCcy/mabtestingccybasicv11",
                                  "bugbashdb3")
    assert succeeded.workload_type == "Microsoft.DBforPostgreSQL/servers/databases"


def test_spec_get_started_sub_task() -> None:
    errors = Errors()
    job = parse_dpp_job(_body(SPEC_JOB), errors)
    assert not errors
    assert job is not None
    assert job.tasks == (Task("Trigger Backup", "InProgress"),)
    assert job.size_bytes is None  # extendedInfo without dataTransferredInBytes


@pytest.mark.parametrize("status", ["Paused", "Queued", None])
def test_unknown_status_is_kept_and_counted(status: str | None) -> None:
    errors = Errors()
    job = parse_dpp_job(_with(CLI_JOB, status=status), errors)
    assert job is not None
    assert job.status == (status or "")
    assert errors == {"status": 1}


@pytest.mark.parametrize(("status", "expected"), [
    ("CompletedWithWarnings", "CompletedWithWarnings"), ("Failed", "Failed"), ("Cancelled", "Cancelled"),
    ("Cancelling", "Cancelling"), ("inprogress", "InProgress"), ("SUCCEEDED", "Completed"),
])
def test_known_statuses(status: str, expected: str) -> None:
    errors = Errors()
    job = parse_dpp_job(_with(CLI_JOB, status=status), errors)
    assert not errors
    assert job is not None and job.status == expected


def test_unknown_task_status_is_kept_and_counted() -> None:
    errors = Errors()
    resource = _body(CLI_JOB)
    resource["properties"]["extendedInfo"]["subTasks"][0]["taskStatus"] = "Paused"
    job = parse_dpp_job(resource, errors)
    assert job is not None
    assert job.tasks == (Task("Trigger Backup", "Paused"),)
    assert errors == {"taskStatus": 1}


def test_unknown_datasource_type_is_kept() -> None:
    errors = Errors()
    job = parse_dpp_job(_with(CLI_JOB, dataSourceType="Microsoft.Example/newThings"), errors)
    assert not errors
    assert job is not None
    assert (job.backup_management_type, job.workload_type) == ("Microsoft.Example/newThings",
                                                               "Microsoft.Example/newThings")


def test_container_is_the_data_sources_resource_group() -> None:
    """The resource group in dataSourceId (what a backup instance also has); sourceResourceGroup only without it."""
    job = parse_dpp_job(_with(CLI_JOB, sourceResourceGroup="elsewhere"), Errors())
    assert job is not None and job.container == "clitest-dpp-rg"
    job = parse_dpp_job(_with(CLI_JOB, dataSourceId=None), Errors())
    assert job is not None
    assert (job.container, job.item, job.container_name) == ("clitest-dpp-rg", "clitest-disk-persistent-bi-donotdelete",
                                                             "")


def test_job_without_name_is_dropped() -> None:
    errors = Errors()
    resource = _body(CLI_JOB)
    del resource["name"]
    assert parse_dpp_job(resource, errors) is None
    assert errors == {"job": 1}


# --- backup instances ---

def test_ps_instance() -> None:
    errors = Errors()
    [resource] = _body(PS_INSTANCES)["value"]
    item = parse_backup_instance(resource, errors)
    assert not errors
    assert item is not None
    disk = ("/subscriptions/38304e13-357e-405e-9e9a-220351dcce8c/resourcegroups/pstest-diskrg/providers/"
            "Microsoft.Compute/disks/pstest-disk")
    assert (item.name, item.friendly_name) == ("pstest-disk-pstest-disk-5801e30f-5a3c-4d32-88bb-faf06228fca3",
                                               "pstest-disk")
    assert item.item_key == ("AzureDisk", "pstest-diskrg", "pstest-disk")
    assert (item.item_type, item.workload_type) == ("Microsoft.Compute/disks", "Microsoft.Compute/disks")
    assert item.policy == "pstest-diskpolicy"
    assert (item.container_name, item.source_resource_id) == (disk, disk)
    assert (item.protection_state, item.health_status) == ("ProtectionConfigured", "Healthy")
    assert (item.last_backup_status, item.last_backup_time, item.last_recovery_point) == ("", None, None)


def test_spec_instance_of_a_postgresql_database() -> None:
    """The legacy OssDB type; friendlyName is the instance's name, the data source is the database testdb."""
    errors = Errors()
    [resource] = _body(SPEC_INSTANCES)["value"]
    item = parse_backup_instance(resource, errors)
    assert not errors
    assert item is not None
    assert item.item_key == ("AzureDatabaseForPostgreSQL", "viveksipgtest/viveksipgtest", "testdb")
    assert (item.name, item.item_type, item.policy) == ("harshitbi2", "OssDB", "PratikPolicy1")
    assert (item.protection_state, item.health_status) == ("", "NotProtected")


def test_job_and_instance_name_one_data_source_alike() -> None:
    """A real job and the real instance of its disk (one PowerShell session) derive the same item key."""
    [resource] = _body(PS_INSTANCES)["value"]
    item = parse_backup_instance(resource, Errors())
    job = parse_dpp_job(_body(PS_JOB_DONE), Errors())
    assert item is not None and job is not None
    assert job.item_key == item.item_key == ("AzureDisk", "pstest-diskrg", "pstest-disk")
    assert ItemDirectory([item.item_key]).resolve(job.own_item_key) == item.item_key


def test_database_job_and_instance_name_one_data_source_alike() -> None:
    """The spec's PostgreSQL job, pointed at the spec instance's database (names changed only), derives its key."""
    [resource] = _body(SPEC_INSTANCES)["value"]
    item = parse_backup_instance(resource, Errors())
    database = resource["properties"]["dataSourceInfo"]["resourceID"]
    job = parse_dpp_job(_with(SPEC_JOB, dataSourceId=database, dataSourceName="testdb",
                              dataSourceSetName="viveksipgtest", sourceResourceGroup="viveksipgtest"), Errors())
    assert item is not None and job is not None
    assert job.item_key == item.item_key == ("AzureDatabaseForPostgreSQL", "viveksipgtest/viveksipgtest", "testdb")


def _instance(**properties: Any) -> dict[str, Any]:
    [resource] = _body(PS_INSTANCES)["value"]
    resource["properties"].update(properties)
    return dict(resource)


ERROR = {"code": "UserErrorMissingPermission", "message": "Backup vault lacks permissions", "isRetryable": False}


@pytest.mark.parametrize(("properties", "health"), [
    ({}, "Healthy"),
    ({"protectionStatus": {"status": "ProtectionConfigured", "errorDetails": ERROR}}, "Unhealthy"),
    ({"protectionErrorDetails": ERROR}, "Unhealthy"),
    ({"protectionStatus": {"status": "ConfiguringProtectionFailed"}}, "Unhealthy"),
    ({"protectionStatus": {"status": "ProtectionError"}}, "Unhealthy"),
    # the ARG row of a stopped instance: errorDetails null (research: backup-vaults.md §3)
    ({"protectionStatus": {"status": "ProtectionStopped", "errorDetails": None},
      "currentProtectionState": "ProtectionStopped"}, "ProtectionStopped"),
    ({"protectionStatus": {"status": "SoftDeleted"}}, "SoftDeleted"),
    # transitional states are kept as sent (not Unhealthy): the alert reads them as not unhealthy
    ({"protectionStatus": {"status": "ConfiguringProtection"}, "currentProtectionState": "ConfiguringProtection",
      "provisioningState": "Provisioning"}, "ConfiguringProtection"),
    ({"protectionStatus": None, "currentProtectionState": "UpdatingProtection"}, "UpdatingProtection"),
    ({"protectionStatus": {"status": "ProtectionConfigured", "errorDetails": None}, "protectionErrorDetails": None},
     "Healthy"),
    ({"protectionStatus": None}, "Healthy"),  # currentProtectionState ProtectionConfigured instead
    ({"protectionStatus": None, "currentProtectionState": None}, ""),
])
def test_instance_health(properties: dict[str, Any], health: str) -> None:
    resource = _instance(**properties)
    assert instance_health(resource["properties"]) == health
    item = parse_backup_instance(resource, Errors())
    assert item is not None and item.health_status == health


def test_instance_without_name_is_dropped() -> None:
    errors = Errors()
    resource = _instance()
    del resource["name"]
    assert parse_backup_instance(resource, errors) is None
    assert errors == {"item": 1}


# --- recovery points ---

CLI_POINT_TIME = parse_timestamp("2023-06-16T04:41:20.5055980Z")


def test_recovery_points_of_a_real_disk() -> None:
    errors = Errors()
    assert parse_recovery_points(_body(CLI_POINTS)["value"], errors) == CLI_POINT_TIME
    assert not errors


def test_recovery_points_newest_of_a_page() -> None:
    errors = Errors()
    page = [*_body(SPEC_POINTS)["value"], *_body(CLI_POINTS)["value"]]
    assert parse_recovery_points(_body(SPEC_POINTS)["value"], errors) == parse_timestamp("2019-03-01T13:00:00Z")
    assert parse_recovery_points(page, errors) == CLI_POINT_TIME
    assert parse_recovery_points(reversed(page), errors) == CLI_POINT_TIME
    assert not errors


def test_recovery_points_skip_unset_times_and_count_bad_ones() -> None:
    errors = Errors()
    unset, bad, missing = (copy.deepcopy(_body(CLI_POINTS)["value"][0]) for _ in range(3))
    unset["properties"]["recoveryPointTime"] = "0001-01-01T00:00:00.0000000Z"
    bad["properties"]["recoveryPointTime"] = "not a time"
    del missing["properties"]["recoveryPointTime"]
    spec = _body(SPEC_POINTS)["value"]
    assert parse_recovery_points([unset, *spec, bad, missing, {"id": "x"}], errors) == parse_timestamp(
        "2019-03-01T13:00:00Z")
    assert errors == {"recoveryPointTime": 2, "recoveryPoint": 1}
    assert parse_recovery_points([unset], errors) is None
    assert parse_recovery_points([], errors) is None


# --- policies ---

@pytest.mark.parametrize(("name", "policy", "seconds"), [
    (DISK_POLICIES, "diskPolicy", 4 * 3600.0),  # PT4H, Incremental, operational tier
    (SPEC_POLICIES, "OSSDBPolicy", 7 * 86400.0),  # P1W, Full
])
def test_listed_policy_interval(name: str, policy: str, seconds: float) -> None:
    errors = Errors()
    [parsed] = [parse_dpp_policy(r, errors) for r in _body(name)["value"]]
    assert not errors
    assert parsed is not None
    assert (parsed.name, dict(parsed.intervals)) == (policy, {"full": seconds})


@pytest.mark.parametrize(("name", "policy", "seconds"), [
    (BLOB_POLICY, "blobpolicy", 86400.0),  # vaulted P1D beside the operational tier's retention
    (ADLS_POLICY, "adlsblobpolicy1", 7 * 86400.0),  # P1W, Discrete
])
def test_policy_interval(name: str, policy: str, seconds: float) -> None:
    errors = Errors()
    parsed = parse_dpp_policy(_body(name), errors)
    assert not errors
    assert parsed is not None
    assert (parsed.name, dict(parsed.intervals)) == (policy, {"full": seconds})


def test_operational_blob_policy_has_no_interval() -> None:
    """Operational backup of blobs is continuous: retention rules only, no schedule to expect backups by."""
    errors = Errors()
    parsed = parse_dpp_policy(_body(BLOB_OPERATIONAL_POLICY), errors)
    assert not errors
    assert parsed is not None
    assert (parsed.name, dict(parsed.intervals)) == ("TestBlobPolicy", {})


def _adls_schedule(intervals: Any) -> dict[str, Any]:
    resource: dict[str, Any] = _body(ADLS_POLICY)
    resource["properties"]["policyRules"][0]["trigger"]["schedule"]["repeatingTimeIntervals"] = intervals
    return resource


def test_weekly_policy_on_two_days() -> None:
    """Weekly on Sunday 13:00 and Thursday 13:00 UTC (one interval per day): the longest gap is Sunday to
    Thursday, 4 days."""
    errors = Errors()
    parsed = parse_dpp_policy(_adls_schedule(["R/2023-03-26T13:00:00+00:00/P1W",
                                              "R/2023-03-30T13:00:00+00:00/P1W"]), errors)
    assert not errors
    assert parsed is not None and dict(parsed.intervals) == {"full": 4 * 86400.0}


def test_policy_interval_is_its_slowest_rule() -> None:
    """Two scheduled rules (the real vaulted blob policy's daily rule, and a weekly copy of it): the longest."""
    errors = Errors()
    resource = _body(BLOB_POLICY)
    weekly = copy.deepcopy(resource["properties"]["policyRules"][2])
    weekly["name"] = "BackupWeekly"
    weekly["trigger"]["schedule"]["repeatingTimeIntervals"] = ["R/2023-06-28T07:30:00+00:00/P1W"]
    resource["properties"]["policyRules"].append(weekly)
    parsed = parse_dpp_policy(resource, errors)
    assert not errors
    assert parsed is not None and dict(parsed.intervals) == {"full": 7 * 86400.0}


@pytest.mark.parametrize("intervals", [["R/2023-03-26T13:00:00+00:00/soon"], ["P1W"], [], None, [7],
                                       ["R/2023-03-26T13:00:00+00:00/PT0S"]])
def test_unreadable_schedule_is_counted(intervals: Any) -> None:
    errors = Errors()
    parsed = parse_dpp_policy(_adls_schedule(intervals), errors)
    assert parsed is not None and dict(parsed.intervals) == {}
    assert errors == {"policy_schedule": 1}


def test_ad_hoc_rule_has_no_schedule() -> None:
    errors = Errors()
    resource = _body(DISK_POLICIES)["value"][0]
    resource["properties"]["policyRules"][0]["trigger"] = {
        "objectType": "AdhocBasedTriggerContext",
        "taggingCriteria": {"tagInfo": {"tagName": "Default", "id": "Default_"}}}
    parsed = parse_dpp_policy(resource, errors)
    assert not errors
    assert parsed is not None and dict(parsed.intervals) == {}


def test_policy_that_is_not_a_backup_policy_is_dropped() -> None:
    errors = Errors()
    resource = _body(BLOB_POLICY)
    resource["properties"]["objectType"] = "SomethingElse"
    assert parse_dpp_policy(resource, errors) is None
    assert errors == {"policy": 1}


# --- vaults ---

def test_backup_vaults_of_a_subscription() -> None:
    errors = Errors()
    vaults = [parse_backup_vault(r, errors) for r in _body(SPEC_VAULTS)["value"]]
    assert not errors
    sub = "0b352192-dcac-4cc7-992e-a96190ccc68c"
    assert vaults == [
        DiscoveredVault(VaultRef(sub, "SampleResourceGroup2", "ExampleVault1", kind="backup"), "westus"),
        DiscoveredVault(VaultRef(sub, "SampleResourceGroup", "ExampleVault2", kind="backup"), "westus"),
    ]


def test_a_recovery_services_vault_is_not_a_backup_vault() -> None:
    errors = Errors()
    resource = _body(SPEC_VAULTS)["value"][0]
    resource["id"] = resource["id"].replace("Microsoft.DataProtection/BackupVaults",
                                            "Microsoft.RecoveryServices/vaults")
    assert parse_backup_vault(resource, errors) is None
    assert errors == {"vault": 1}


@pytest.mark.parametrize(("properties", "unknown"), [
    ({"currentProtectionState": "BackupsSuspended", "protectionStatus": {"status": "BackupsSuspended"}}, []),
    ({"currentProtectionState": "UpdatingProtection", "protectionStatus": {"status": "ProtectionConfigured"}}, []),
    ({"currentProtectionState": "QuantumProtected", "protectionStatus": None},
     [("currentProtectionState", "QuantumProtected")]),
    ({"currentProtectionState": "QuantumProtected", "protectionStatus": {"status": "QuantumProtected"}},
     [("currentProtectionState", "QuantumProtected")]),
    ({"currentProtectionState": "ProtectionConfigured", "protectionStatus": {"status": "Reticulating"}},
     [("protectionStatus", "Reticulating")]),
])
def test_unknown_states_are_the_values_outside_the_vocabulary(properties: dict[str, Any],
                                                               unknown: list[tuple[str, str]]) -> None:
    """Issue 17, point 5: BackupsSuspended (real, outside the spec's enum) is known; a new value is reported
    once, under the field it came from, and the parser itself counts nothing."""
    errors = Errors()
    item = parse_backup_instance(_instance(**properties), errors)
    assert item is not None and not errors
    assert unknown_states(item) == unknown
