"""The fake ARM's Backup vaults (Microsoft.DataProtection), held to the real payloads.

Over real HTTP on loopback, with a token azure-identity fetched from the fake's managed-identity endpoint: the
payloads against the real recordings in fixtures/azure/dataprotection (LIST vs GET durations, extendedInfo null
on the LIST, endTime null while running, "nextLink": null vs no key, the 0001-01-01 sentinel), paging, the
ignored $filter on jobs, the recovery point filter, an unregistered provider, 404s, faults and the token bucket.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from azure.identity import ManagedIdentityCredential

from exporter.simulator.demo import BACKUP_INSTANCES, BACKUP_VAULT, FAILING_BACKUP_INSTANCE, start_demo
from exporter.simulator.fakearm import (
    AUTHORIZATION_FAILED_MESSAGE,
    BACKUP_VAULT_RESOURCE_TYPE,
    DPP_FAULT_OPERATIONS,
    DPP_LIST_FAULT_OPERATIONS,
    FAKE_PRINCIPAL_ID,
    GATEWAY_NOT_FOUND_MESSAGE,
    MISSING_REGISTRATION_MESSAGE,
    RSV_LIST_FAULT_OPERATIONS,
    UNSET_RECOVERY_POINT_TIME,
    FakeArm,
    FakeBackupVault,
    FakeEstate,
    Fault,
    backup_instance_name,
    dotnet_duration,
    dpp_listed_job,
    iso_duration,
    make_backup_instance,
    make_dpp_job,
    make_dpp_policy,
    make_recovery_point,
    parse_azure_time,
    parse_iso_duration,
)

FIXTURES = Path(__file__).parent / "fixtures" / "azure"
DPP = FIXTURES / "dataprotection"
SUB = "0c9f2d1e-7b4a-4e8f-9a61-3d2b5c7e8f90"
OTHER_SUB = "5a6b7c8d-1e2f-4a3b-8c9d-0e1f2a3b4c5d"
API = "2026-03-01"
T0 = datetime(2026, 11, 20, 13, 5, tzinfo=UTC)
TIMESPAN = re.compile(r"^\d{2}:\d{2}:\d{2}(\.\d{7})?$")
ISO = re.compile(r"^PT(\d+H)?(\d+M)?(\d+(\.\d{1,7})?S)?$")


def load(relative: str) -> Any:
    return json.loads((DPP / relative).read_text())


def guid(number: int) -> str:
    return f"{number:08x}-0000-4000-8000-000000000000"


def dumped(value: Any) -> str:
    """Compared as JSON text: same keys in the same order, same values."""
    return json.dumps(value)


@pytest.fixture
def estate() -> FakeEstate:
    estate = FakeEstate()
    estate.add_vault(SUB, "rg-a", "vault-a")  # a Recovery Services vault ...
    estate.add_backup_vault(SUB, "rg-a", "vault-a")  # ... and a Backup vault of the same name and group
    estate.add_backup_vault(SUB, "rg-b", "bv-b", location="northeurope")
    return estate


@pytest.fixture
def arm(estate: FakeEstate, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeArm]:
    with FakeArm(estate, page_size=3) as fake:
        for name in ("AZURE_CLIENT_ID", "MSI_ENDPOINT", "MSI_SECRET", "IDENTITY_SERVER_THUMBPRINT", "IMDS_ENDPOINT"):
            monkeypatch.delenv(name, raising=False)
        for name, value in fake.identity_env().items():
            monkeypatch.setenv(name, value)
        yield fake


@pytest.fixture
def token(arm: FakeArm) -> str:
    """A bearer token as the exporter gets one: azure-identity's managed-identity flow against the fake."""
    access = ManagedIdentityCredential().get_token("https://management.azure.com/.default")
    assert access.token == arm.token
    return str(access.token)


class Client:
    def __init__(self, arm: FakeArm, token: str) -> None:
        self.arm, self.token = arm, token

    def get(self, path_or_url: str, *, token: str | None = "issued", **params: str) -> requests.Response:
        """GET an ARM path with our api-version (and params), or an absolute URL exactly as given."""
        headers = {} if token is None else {"Authorization": f"Bearer {self.token if token == 'issued' else token}"}
        if path_or_url.startswith("http"):
            return requests.get(path_or_url, headers=headers, timeout=5)
        return requests.get(self.arm.url + path_or_url, params={"api-version": API, **params}, headers=headers,
                            timeout=5)

    def pages(self, path: str, **params: str) -> list[dict[str, Any]]:
        """Every page of a LIST, following nextLink exactly as given."""
        first = self.get(path, **params)
        assert first.status_code == 200, first.text
        pages = [first.json()]
        while pages[-1].get("nextLink"):
            following = self.get(pages[-1]["nextLink"])
            assert following.status_code == 200, following.text
            pages.append(following.json())
        return pages


@pytest.fixture
def client(arm: FakeArm, token: str) -> Client:
    return Client(arm, token)


def error_code(response: requests.Response) -> str:
    return str(response.json()["error"]["code"])


def vaults_path(subscription: str = SUB) -> str:
    return f"/subscriptions/{subscription}/providers/Microsoft.DataProtection/backupVaults"


def add_disk_backups(estate: FakeEstate, vault_name: str, count: int, *, start: datetime = T0) -> list[str]:
    """`count` completed disk backups a day apart, the newest at `start`; returns their ids."""
    vault = estate.backup_vault(vault_name)
    ids = []
    for number in range(count):
        began = start - timedelta(days=number)
        estate.add_dpp_job(vault_name, make_dpp_job(guid(number), vault=vault, datasource_type="AzureDisk",
                                                    datasource_name="disk-1", start=began,
                                                    end=began + timedelta(minutes=4), policy="DiskDaily"))
        ids.append(guid(number))
    return ids


# --- the builders against the real payloads ---------------------------------------------------------


def recorded_cli_vault() -> FakeBackupVault:
    """The vault of the Azure CLI recording (the CLI scrubs the subscription inside ids to zeros)."""
    return FakeEstate().add_backup_vault("00000000-0000-0000-0000-000000000000", "clitest-dpp-rg",
                                         "clitest-bkp-vault-persistent-bi-donotdelete", "centraluseuap")


def test_make_dpp_job_reproduces_the_recorded_completed_disk_backup() -> None:
    recorded = load("2024-04-01/fake-azure-cli-recording.Jobs_Get.completed.response.json")
    made = make_dpp_job(
        "133db3df-828c-4eb7-8c0c-18484501aace", vault=recorded_cli_vault(), datasource_type="AzureDisk",
        datasource_name="clitest-disk-persistent-bi-donotdelete", policy="diskpolicy",
        instance="clitest-disk-persistent-bi-donotdelete-clitest-disk-persistent-bi-donotdelete-e33c80ba-0bf8-11ee-"
                 "aaa6-002b670b472e",
        start="2025-02-23T12:00:10.6073736Z", end="2025-02-23T12:04:20.4742164Z",
        activity_id="f8e64900-8ee8-4567-9778-435c700632d5", recovery_point_id="d2a40241824746e5910dacab4b6da118",
        datasource_size_bytes=4294967296)
    assert made["properties"]["duration"] == "PT4M9.8668428S"  # ISO on GET, computed from the two times
    assert made["properties"]["extendedInfo"]["targetRecoverPoint"]["recoveryPointTime"] == "0001-01-01T00:00:00Z"
    # The scrubbed ids carry zeros where the body fields keep the real subscription; the etag is the service's.
    for key in ("subscriptionId", "sourceSubscriptionID", "etag"):
        made["properties"][key] = recorded["properties"][key]
    assert dumped(made) == dumped(recorded)


def powershell_vault() -> FakeBackupVault:
    return FakeEstate().add_backup_vault("38304e13-357e-405e-9e9a-220351dcce8c", "pstest-diskrg",
                                         "pstest-disk-vault", "centraluseuap")


def powershell_job(status: str, end: str | None) -> dict[str, Any]:
    return make_dpp_job(
        "2167a022-ba9c-4caf-9523-76e00a806349", vault=powershell_vault(), datasource_type="AzureDisk",
        datasource_name="pstest-disk", policy="pstest-diskpolicy",
        instance="pstest-disk-pstest-disk-5801e30f-5a3c-4d32-88bb-faf06228fca3", status=status,
        start="2026-05-17T20:46:16.1764818Z", end=end, user_triggered=True,
        activity_id="08676268-1642-467c-939b-be059edb48e1", recovery_point_id="40d043ee428e4a81954b650fcb94476d",
        datasource_size_bytes=68719476736)


@pytest.mark.parametrize(("state", "status", "end"), [("inprogress", "InProgress", None),
                                                      ("completed", "Completed", "2026-05-17T20:49:50.8136831Z")])
def test_make_dpp_job_reproduces_the_recorded_ad_hoc_backup_running_and_done(state: str, status: str,
                                                                             end: str | None) -> None:
    recorded = load(f"2026-03-01/fake-azure-powershell-recording.Jobs_Get.{state}.response.json")
    made = powershell_job(status, end)
    # The recorded dataSourceId writes '/resourcegroups/' in lower case; ARM ids are case-insensitive.
    assert made["properties"]["dataSourceId"].lower() == recorded["properties"]["dataSourceId"].lower()
    for key in ("dataSourceId", "etag"):
        made["properties"][key] = recorded["properties"][key]
    assert dumped(made) == dumped(recorded)


def test_a_running_job_has_a_null_end_a_zero_duration_and_no_task_details() -> None:
    properties = powershell_job("InProgress", None)["properties"]
    assert (properties["endTime"], properties["duration"], properties["destinationDataStoreName"]) == (
        None, "PT0S", None)
    info = properties["extendedInfo"]
    assert info["targetRecoverPoint"] is None
    assert info["subTasks"] == [{"taskId": 1, "taskName": "Trigger Backup", "taskStatus": "InProgress",
                                 "taskProgress": None, "additionalDetails": None}]


def test_data_transferred_is_null_unless_the_job_was_built_with_a_number() -> None:
    vault = powershell_vault()
    plain = make_dpp_job(guid(1), vault=vault, datasource_type="AzureBlob", datasource_name="st1", start=T0,
                         end=T0 + timedelta(minutes=3))
    sized = make_dpp_job(guid(2), vault=vault, datasource_type="AzureBlob", datasource_name="st1", start=T0,
                         end=T0 + timedelta(minutes=3), data_transferred_bytes=123456789.0)
    assert plain["properties"]["extendedInfo"]["dataTransferredInBytes"] is None
    assert sized["properties"]["extendedInfo"]["dataTransferredInBytes"] == 123456789.0


@pytest.mark.parametrize(("datasource", "datasource_type", "set_name", "destination"), [
    ("AzureDisk", "Microsoft.Compute/disks", None, "OperationalTierStore"),
    ("AzureBlob", "Microsoft.Storage/storageAccounts/blobServices", "src", "VaultStore"),
    ("AzureDatabaseForPostgreSQLFlexibleServer", "Microsoft.DBforPostgreSQL/flexibleServers", None, "VaultStore"),
    ("AzureKubernetesService", "Microsoft.ContainerService/managedClusters", "src", "OperationalTierStore"),
])
def test_each_data_source_type_names_itself_like_the_service(datasource: str, datasource_type: str,
                                                              set_name: str | None, destination: str) -> None:
    vault = powershell_vault()
    properties = make_dpp_job(guid(1), vault=vault, datasource_type=datasource, datasource_name="src",
                              resource_group="rg-src", start=T0, end=T0 + timedelta(minutes=5))["properties"]
    recorded = load("2026-03-01/fake-azure-powershell-recording.Jobs_Get.completed.response.json")["properties"]
    assert list(properties) == list(recorded)
    assert (properties["dataSourceType"], properties["dataSourceSetName"], properties["dataSourceName"],
            properties["destinationDataStoreName"]) == (datasource_type, set_name, "src", destination)
    provider = datasource_type.removesuffix("/blobServices")
    assert properties["dataSourceId"] == f"/subscriptions/{vault.subscription_id}/resourceGroups/rg-src/providers/" \
                                         f"{provider}/src"
    assert properties["backupInstanceId"].endswith(f"/backupInstances/{backup_instance_name(vault, 'src')}")
    # The same type by its datasourceType, in any case
    same = make_dpp_job(guid(1), vault=vault, datasource_type=datasource_type.upper(), datasource_name="src",
                        resource_group="rg-src", start=T0, end=T0 + timedelta(minutes=5))
    assert same["properties"] == properties


def test_a_failed_backup_carries_user_facing_errors_and_no_recovery_point() -> None:
    properties = make_dpp_job(guid(1), vault=powershell_vault(), datasource_type="AzureKubernetesService",
                              datasource_name="aks-1", status="Failed", start=T0, end=T0 + timedelta(minutes=2),
                              error="The backup extension is not reachable.")["properties"]
    [error] = properties["errorDetails"]
    # The shape of the one failed job recorded (a listed restore, 2024-04-01): keys in its order, three levels.
    recorded = json.loads((DPP / "2024-04-01/azure-cli-recording.Jobs_List.failed-restore.item.json").read_text())
    [real] = recorded["properties"]["errorDetails"]
    assert _key_paths(error) == _key_paths(real)
    assert (error["code"], error["message"]) == ("InternalServerError", "The backup extension is not reachable.")
    assert error["details"][0]["details"][0]["details"] is None
    assert _retryable(error) == _retryable(real) == [True, True, False]
    assert properties["extendedInfo"]["targetRecoverPoint"] is None
    assert properties["extendedInfo"]["subTasks"][0]["taskStatus"] == "Failed"


def _key_paths(error: dict[str, Any], prefix: str = "") -> list[str]:
    """Every key of a UserFacingError and its nested details, in order, as paths."""
    paths = []
    for key, value in error.items():
        paths.append(prefix + key)
        if key == "details" and value:
            paths.extend(_key_paths(value[0], f"{prefix}details.0."))
    return paths


def _retryable(error: dict[str, Any] | None) -> list[bool]:
    flags = []
    while error:
        flags.append(error["isRetryable"])
        error = error["details"][0] if error["details"] else None
    return flags


def test_the_list_carries_a_failed_jobs_error_details_as_azure_does() -> None:
    """Real Jobs_List answers carry errorDetails (the recorded failed restore): the fake's LIST keeps them."""
    job = make_dpp_job(guid(2), vault=powershell_vault(), datasource_type="AzureDisk", datasource_name="disk-1",
                       status="Failed", start=T0, end=T0 + timedelta(minutes=2), error="Internal Server Error")
    listed = dpp_listed_job(json.loads(json.dumps(job)))
    assert listed["properties"]["extendedInfo"] is None
    assert listed["properties"]["errorDetails"] == job["properties"]["errorDetails"]


def test_durations_parse_both_ways() -> None:
    for ticks in (0, 2_498_668_428, 26 * 3600 * 10**7 + 5, 10**7):
        assert parse_iso_duration(iso_duration(ticks)) == ticks
    assert dotnet_duration(parse_iso_duration("PT3M34.6372013S")) == "00:03:34.6372013"
    for bad in ("", "P", "PT", "00:03:34", "PT3X"):
        with pytest.raises(ValueError, match="not an ISO-8601 duration"):
            parse_iso_duration(bad)


def test_make_backup_instance_reproduces_the_recorded_list_item() -> None:
    recorded = load("2026-03-01/fake-azure-powershell-recording.BackupInstances_List.response.json")["value"][0]
    made = make_backup_instance(vault=powershell_vault(), datasource_type="AzureDisk", datasource_name="pstest-disk",
                                name="pstest-disk-pstest-disk-5801e30f-5a3c-4d32-88bb-faf06228fca3",
                                policy="pstest-diskpolicy")
    info = made["properties"]["dataSourceInfo"]
    for key in ("resourceID", "resourceUri"):  # the recording writes '/resourcegroups/'
        assert info[key].lower() == recorded["properties"]["dataSourceInfo"][key].lower()
        info[key] = recorded["properties"]["dataSourceInfo"][key]
    assert dumped(made) == dumped(recorded)


def test_blob_and_aks_instances_carry_a_datasource_set_and_their_parameters() -> None:
    vault = powershell_vault()
    disk_info = load("2026-03-01/fake-azure-powershell-recording.BackupInstances_List.response.json")[
        "value"][0]["properties"]["dataSourceInfo"]
    blob = make_backup_instance(vault=vault, datasource_type="AzureBlob", datasource_name="stdocs",
                                containers=("invoices", "contracts"))["properties"]
    aks = make_backup_instance(vault=vault, datasource_type="AzureKubernetesService",
                               datasource_name="aks-prod")["properties"]
    flex = make_backup_instance(vault=vault, datasource_type="AzureDatabaseForPostgreSQLFlexibleServer",
                                datasource_name="psql-1")["properties"]
    for properties in (blob, aks):
        assert list(properties) == ["friendlyName", "dataSourceInfo", "dataSourceSetInfo", "policyInfo",
                                    "protectionStatus", "currentProtectionState", "provisioningState", "objectType"]
        assert list(properties["dataSourceSetInfo"]) == list(disk_info)
        assert properties["dataSourceSetInfo"]["objectType"] == "DatasourceSet"
    assert blob["dataSourceInfo"]["resourceType"] == "Microsoft.Storage/storageAccounts"
    assert blob["dataSourceInfo"]["datasourceType"] == "Microsoft.Storage/storageAccounts/blobServices"
    assert blob["policyInfo"]["policyParameters"] == {"backupDatasourceParametersList": [
        {"objectType": "BlobBackupDatasourceParameters", "containersList": ["invoices", "contracts"]}]}
    assert aks["dataSourceInfo"]["resourceType"] == "Microsoft.ContainerService/managedclusters"
    assert [entry["objectType"] for entry in aks["policyInfo"]["policyParameters"]["backupDatasourceParametersList"]
            ] == ["KubernetesClusterBackupDatasourceParameters"]
    assert "dataSourceSetInfo" not in flex and list(flex["policyInfo"]) == ["policyId"]


def test_the_policy_list_reproduces_the_recorded_disk_policy(token: str, arm: FakeArm) -> None:
    text = (DPP / "2023-01-01/fake-azure-cli-recording.BackupPolicies_List.disk.response.json").read_text()
    estate = FakeEstate()
    vault = estate.add_backup_vault("00000000-0000-0000-0000-000000000000", "clitestdataprotection_backuppolicy_000001",
                                    "cli-test-backup-vault")
    estate.add_dpp_policy(vault.name, make_dpp_policy(vault=vault, name="diskPolicy", datasource_type="AzureDisk",
                                                      interval="PT4H", start="2020-04-05T13:00:00+00:00",
                                                      retention="P7D"))
    with FakeArm(estate) as fake:
        served = Client(fake, token).get(f"{vault.id}/backupPolicies")
    assert served.text == text.strip()  # byte for byte, with no nextLink key


def test_make_dpp_policy_writes_the_recorded_vaulted_blob_rule() -> None:
    recorded = load("2025-07-01/fake-azure-cli-recording.BackupPolicies_CreateOrUpdate.blob.response.json")
    vault = FakeEstate().add_backup_vault("00000000-0000-0000-0000-000000000000", "dataprotectionclitest-rg",
                                          "clitest-bkp-vault")
    made = make_dpp_policy(vault=vault, name="blobpolicy", datasource_type="AzureBlob",
                           start="2023-06-28T07:30:00+00:00", retention="P7D")
    backup_rule, retention_rule = made["properties"]["policyRules"]
    # The recording also keeps operational-tier points (its first rule); the vaulted rules are the same.
    assert [dumped(backup_rule), dumped(retention_rule)] == [dumped(rule) for rule in
                                                             recorded["properties"]["policyRules"][2:0:-1]]
    assert (made["id"], made["name"], made["type"]) == (recorded["id"], recorded["name"], recorded["type"])


def test_make_dpp_policy_has_the_fields_of_the_spec_example() -> None:
    example = load("2026-06-01/fake-ListBackupPolicy.json")["responses"]["200"]["body"]["value"][0]
    vault = powershell_vault()
    policy = make_dpp_policy(vault=vault, name="DiskDaily", datasource_type="AzureDisk")
    assert set(policy) == set(example) and policy["type"] == example["type"]
    properties = policy["properties"]
    assert set(properties) == set(example["properties"])
    backup, retention = properties["policyRules"]
    example_backup, example_retention = example["properties"]["policyRules"][:2]
    assert set(backup) == set(example_backup) and set(retention) == set(example_retention)
    assert set(backup["trigger"]) == set(example_backup["trigger"])
    assert backup["trigger"]["schedule"] == {"repeatingTimeIntervals": ["R/2024-01-01T02:00:00+00:00/P1D"]}
    assert (backup["name"], backup["backupParameters"], backup["dataStore"]["dataStoreType"]) == (
        "BackupDaily", {"backupType": "Incremental", "objectType": "AzureBackupParams"}, "OperationalStore")
    assert properties["datasourceTypes"] == ["Microsoft.Compute/disks"]
    assert retention["lifecycles"][0]["deleteAfter"] == {"objectType": "AbsoluteDeleteOption", "duration": "P30D"}
    hourly = make_dpp_policy(vault=vault, name="AksHourly", datasource_type="AzureKubernetesService", interval="PT4H")
    assert hourly["properties"]["policyRules"][0]["name"] == "BackupHourly"
    weekly = make_dpp_policy(vault=vault, name="PgWeekly", datasource_type="AzureDatabaseForPostgreSQLFlexibleServer",
                             interval="P1W")
    weekly_rule = weekly["properties"]["policyRules"][0]
    assert (weekly_rule["backupParameters"]["backupType"], weekly_rule["trigger"]["schedule"]["timeZone"]) == (
        "Full", "UTC")
    with pytest.raises(ValueError, match="cannot back up every 'P1D'"):  # the CLI offers PostgreSQL weekly only
        make_dpp_policy(vault=vault, name="x", datasource_type="AzureDatabaseForPostgreSQLFlexibleServer")


def test_make_recovery_point_reproduces_the_recorded_list(token: str, arm: FakeArm) -> None:
    text = (DPP / "2023-01-01/fake-azure-cli-recording.RecoveryPoints_List.disk.response.json").read_text()
    recorded = json.loads(text)["value"][0]
    estate = FakeEstate()
    vault = estate.add_backup_vault("00000000-0000-0000-0000-000000000000", "clitest-dpp-rg",
                                    "clitest-bkp-vault-persistent-bi-donotdelete")
    instance = "clitest-disk-persistent-bi-donotdelete-clitest-disk-persistent-bi-donotdelete-e33c80ba-0bf8-11ee-" \
               "aaa6-002b670b472e"
    estate.add_backup_instance(vault.name, make_backup_instance(vault=vault, datasource_type="AzureDisk",
                                                                datasource_name="disk", name=instance))
    made = make_recovery_point(vault=vault, instance=instance, time="2023-06-16T04:41:20.5055980Z",
                               created="2023-06-16T04:40:02.0328996Z", datasource_type="AzureDisk",
                               policy="diskpolicy", recovery_point_id="12bd61f400234f82bcff024cba12e339",
                               retention=timedelta(days=7))
    assert made["properties"]["recoveryPointTime"] == "2023-06-16T04:41:20.5055980Z"  # all 7 digits, zero kept
    made["properties"]["retentionTagVersion"] = recorded["properties"]["retentionTagVersion"]  # the service's own
    made["properties"]["recoveryPointDataStoresDetails"][0]["id"] = recorded["properties"][
        "recoveryPointDataStoresDetails"][0]["id"]
    estate.add_recovery_point(vault.name, instance, made)
    with FakeArm(estate) as fake:
        served = Client(fake, token).get(f"{vault.id}/backupInstances/{instance}/recoveryPoints", **{"$filter": ""})
    assert served.text == text.strip()  # byte for byte (the CLI sends an empty $filter when given no dates)
    spec = load("2026-06-01/fake-ListRecoveryPoints.json")["responses"]["200"]["body"]["value"][0]
    assert set(spec["properties"]) - set(made["properties"]) == {"recoveryPointState"}  # a newer spec field


# --- vaults ---------------------------------------------------------------------------------------


def test_the_vault_list_has_the_shape_of_the_spec_example(client: Client, estate: FakeEstate) -> None:
    example = load("2026-06-01/fake-GetBackupVaultsInSubscription.json")["responses"]["200"]["body"]["value"][0]
    body = client.get(vaults_path()).json()
    assert list(body) == ["value"]  # one page, no nextLink key (as the example)
    listed = body["value"]
    assert [vault["name"] for vault in listed] == ["vault-a", "bv-b"]
    for vault in listed:
        assert list(vault) == list(example)
        assert list(vault["properties"]) == list(example["properties"])
        assert vault["type"] == BACKUP_VAULT_RESOURCE_TYPE == "Microsoft.DataProtection/backupVaults"
    assert listed[0]["id"] == (f"/subscriptions/{SUB}/resourceGroups/rg-a/providers/Microsoft.DataProtection"
                               "/backupVaults/vault-a")
    single = client.get(estate.backup_vault("bv-b").id).json()
    assert single == listed[1] and single["location"] == "northeurope"


def test_a_recovery_services_vault_and_a_backup_vault_may_share_name_and_group(client: Client,
                                                                               estate: FakeEstate) -> None:
    rsv, bv = estate.vault("vault-a"), estate.backup_vault("vault-a")
    assert rsv.resource_group == bv.resource_group and rsv.id != bv.id
    add_disk_backups(estate, "vault-a", 2)
    assert client.get(bv.id).json()["type"] == "Microsoft.DataProtection/backupVaults"
    assert client.get(rsv.id, **{"api-version": "2025-02-01"}).json()["type"] == "Microsoft.RecoveryServices/vaults"
    assert [job["name"] for job in client.get(f"{bv.id}/backupJobs").json()["value"]] == [guid(0), guid(1)]
    assert client.get(f"{rsv.id}/backupJobs", **{"api-version": "2025-02-01"}).json() == {"value": []}
    estate.remove_backup_vault("vault-a")
    assert client.get(bv.id).status_code == 404
    assert client.get(rsv.id, **{"api-version": "2025-02-01"}).status_code == 200


def test_the_vault_list_pages_with_next_link(estate: FakeEstate, token: str, arm: FakeArm) -> None:
    for number in range(4):
        estate.add_backup_vault(SUB, f"rg-{number}", f"bv-{number}")
    with FakeArm(estate, dpp_page_size=2) as small:
        pages = Client(small, token).pages(vaults_path())
    assert [len(page["value"]) for page in pages] == [2, 2, 2]
    assert "nextLink" not in pages[-1]
    names = [vault["name"] for page in pages for vault in page["value"]]
    assert sorted(names) == sorted(["vault-a", "bv-b", "bv-0", "bv-1", "bv-2", "bv-3"]) and len(set(names)) == 6


def test_missing_backup_vaults_get_arms_own_404s(client: Client, estate: FakeEstate) -> None:
    gone = client.get(f"/subscriptions/{SUB}/resourceGroups/rg-a/providers/Microsoft.DataProtection/backupVaults/gone")
    assert (gone.status_code, gone.headers["x-ms-failure-cause"]) == (404, "gateway")
    assert gone.json() == {"error": {"code": "ResourceNotFound", "message": GATEWAY_NOT_FOUND_MESSAGE.format(
        resource_type="Microsoft.DataProtection/backupVaults", name="gone", resource_group="rg-a")}}
    no_group = client.get(f"/subscriptions/{SUB}/resourceGroups/rg-x/providers/Microsoft.DataProtection"
                          "/backupVaults/vault-a")
    assert (no_group.status_code, error_code(no_group)) == (404, "ResourceGroupNotFound")
    no_sub = client.get(vaults_path(OTHER_SUB))
    assert (no_sub.status_code, error_code(no_sub)) == (404, "SubscriptionNotFound")
    # The Backup vault of a Recovery Services vault's name, in another group, does not exist.
    estate.add_vault(SUB, "rg-c", "rsv-only")
    assert client.get(f"/subscriptions/{SUB}/resourceGroups/rg-c/providers/Microsoft.DataProtection/backupVaults"
                      "/rsv-only").status_code == 404


def test_an_unregistered_provider_answers_arms_409(client: Client, estate: FakeEstate) -> None:
    recorded = (DPP / "fake-issue.409.MissingSubscriptionRegistration.json").read_text().strip()
    assert MISSING_REGISTRATION_MESSAGE.format(namespace="Microsoft.Devices") == json.loads(recorded)[
        "error"]["message"]
    estate.unregister_provider(OTHER_SUB)
    refused = client.get(vaults_path(OTHER_SUB))
    assert refused.status_code == 409
    assert refused.text == recorded.replace("Microsoft.Devices", "Microsoft.DataProtection")
    estate.unregister_provider(SUB)
    bv = estate.backup_vault("vault-a")
    for path in (vaults_path(), bv.id, f"{bv.id}/backupJobs", f"{bv.id}/backupInstances"):
        assert client.get(path).status_code == 409, path
    # Recovery Services is another namespace: its routes still answer
    assert client.get(estate.vault("vault-a").id, **{"api-version": "2025-02-01"}).status_code == 200
    estate.register_provider(SUB)
    assert client.get(bv.id).status_code == 200


def test_a_vault_list_fault_fails_one_kinds_list_of_one_subscription(
        client: Client, estate: FakeEstate, arm: FakeArm) -> None:
    """A role that may read Recovery Services vaults only (Microsoft.RecoveryServices/*/read): the Backup vault
    list answers ARM's 403 naming the action, while the Recovery Services list and the vaults themselves answer."""
    rsv_list = f"/subscriptions/{SUB}/providers/Microsoft.RecoveryServices/vaults"
    arm.set_vault_list_fault(SUB, Fault.authorization_failed(operations=DPP_LIST_FAULT_OPERATIONS))
    refused = client.get(vaults_path())
    assert (refused.status_code, error_code(refused)) == (403, "AuthorizationFailed")
    assert refused.json()["error"]["message"] == AUTHORIZATION_FAILED_MESSAGE.format(
        client=FAKE_PRINCIPAL_ID, object_id=FAKE_PRINCIPAL_ID, action="Microsoft.DataProtection/backupVaults/read",
        scope=f"/subscriptions/{SUB}")
    assert client.get(rsv_list, **{"api-version": "2025-02-01"}).status_code == 200
    assert client.get(estate.backup_vault("vault-a").id).status_code == 200
    arm.set_vault_list_fault(SUB, Fault("status", status=500, code="InternalServerError", times=1,
                                        operations=RSV_LIST_FAULT_OPERATIONS))
    assert client.get(vaults_path()).status_code == 200  # the new fault replaced the 403
    assert client.get(rsv_list, **{"api-version": "2025-02-01"}).status_code == 500
    assert client.get(rsv_list, **{"api-version": "2025-02-01"}).status_code == 200  # times=1: gone
    with pytest.raises(ValueError, match="vault list fault"):
        arm.set_vault_list_fault(SUB, Fault.authorization_failed())  # the vaults' own operations


# --- jobs -----------------------------------------------------------------------------------------


def test_the_job_list_shows_every_job_the_list_way_and_get_the_get_way(client: Client, estate: FakeEstate) -> None:
    bv = estate.backup_vault("bv-b")
    for state, status, end in (("completed", "Completed", "2026-05-17T20:49:50.8136831Z"),
                               ("inprogress", "InProgress", None)):
        job = powershell_job(status, end)
        job["name"] = f"{state}-2167a022"
        estate.add_dpp_job("bv-b", job)
    body = client.get(f"{bv.id}/backupJobs").json()
    assert list(body) == ["value", "nextLink"] and body["nextLink"] is None  # as the real single page
    listed = {job["name"]: job["properties"] for job in body["value"]}
    done, running = listed["completed-2167a022"], listed["inprogress-2167a022"]
    recorded = load("2026-03-01/fake-azure-powershell-recording.Jobs_Get.completed.response.json")["properties"]
    assert list(done) == list(recorded)  # the same fields, extendedInfo included ...
    assert done["extendedInfo"] is None and running["extendedInfo"] is None  # ... but null on the LIST
    assert (done["duration"], running["duration"]) == ("00:03:34.6372013", "00:00:00")  # TimeSpan on the LIST
    assert running["endTime"] is None
    got = client.get(f"{bv.id}/backupJobs/completed-2167a022").json()["properties"]
    assert got["duration"] == "PT3M34.6372013S" and ISO.match(got["duration"])
    assert got["extendedInfo"]["targetRecoverPoint"]["recoveryPointTime"] == UNSET_RECOVERY_POINT_TIME
    running_got = client.get(f"{bv.id}/backupJobs/inprogress-2167a022").json()["properties"]
    assert (running_got["endTime"], running_got["duration"]) == (None, "PT0S")
    assert running_got["extendedInfo"]["subTasks"][0]["additionalDetails"] is None


def test_the_list_trims_the_end_times_trailing_zeros(client: Client, estate: FakeEstate) -> None:
    bv = estate.backup_vault("bv-b")
    [job_id] = add_disk_backups(estate, "bv-b", 1)
    estate.update_dpp_job("bv-b", job_id, endTime="2025-03-11T10:15:46.4178590Z", duration="PT4M9.87S")
    listed = client.get(f"{bv.id}/backupJobs").json()["value"][0]["properties"]
    assert (listed["endTime"], listed["duration"]) == ("2025-03-11T10:15:46.417859Z", "00:04:09.8700000")
    assert TIMESPAN.match(listed["duration"])
    got = client.get(f"{bv.id}/backupJobs/{job_id}").json()["properties"]
    assert (got["endTime"], got["duration"]) == ("2025-03-11T10:15:46.4178590Z", "PT4M9.87S")


def test_a_job_filter_is_ignored_as_the_api_declares_none(client: Client, estate: FakeEstate) -> None:
    bv = estate.backup_vault("bv-b")
    ids = add_disk_backups(estate, "bv-b", 2)
    estate.update_dpp_job("bv-b", ids[1], status="Failed")
    for odata in ("status eq 'Failed'", "startTime eq '2026-11-19 01:00:00 PM'", "this is not OData"):
        jobs = client.get(f"{bv.id}/backupJobs", **{"$filter": odata}).json()["value"]
        assert [job["name"] for job in jobs] == ids, odata


def test_jobs_page_newest_first_with_a_null_next_link_at_the_end(client: Client, estate: FakeEstate) -> None:
    bv = estate.backup_vault("bv-b")
    ids = add_disk_backups(estate, "bv-b", 8)
    pages = client.pages(f"{bv.id}/backupJobs", **{"$filter": "status eq 'Completed'"})
    assert [len(page["value"]) for page in pages] == [3, 3, 2]
    assert [job["name"] for page in pages for job in page["value"]] == ids  # every job once, newest first
    assert pages[-1]["nextLink"] is None
    link = urlsplit(pages[0]["nextLink"])
    assert (link.scheme, link.netloc, link.path) == ("http", urlsplit(client.arm.url).netloc, f"{bv.id}/backupJobs")
    query = parse_qs(link.query)
    assert query["api-version"] == [API] and "$filter" not in query and len(query["$skipToken"]) == 1
    stats = client.arm.stats()["requests"]
    assert (stats["dpp_jobs_list"], stats["dpp_jobs_next_page"]) == ({"200": 1}, {"200": 2})


def test_a_fake_option_omits_the_next_link_key_instead(estate: FakeEstate, token: str, arm: FakeArm) -> None:
    bv = estate.backup_vault("bv-b")
    add_disk_backups(estate, "bv-b", 3)
    with FakeArm(estate, page_size=2, dpp_last_page_next_link="absent") as absent:
        pages = Client(absent, token).pages(f"{bv.id}/backupJobs")
    assert [list(page) for page in pages] == [["value", "nextLink"], ["value"]]
    with FakeArm(estate, dpp_last_page_next_link="null") as null:
        assert Client(null, token).get(f"{bv.id}/backupInstances").json() == {"value": [], "nextLink": None}
    with pytest.raises(ValueError, match="dpp_last_page_next_link"):
        FakeArm(estate, dpp_last_page_next_link="none")  # type: ignore[arg-type]


def test_a_mangled_or_foreign_skiptoken_is_refused(client: Client, estate: FakeEstate) -> None:
    add_disk_backups(estate, "bv-b", 5)
    add_disk_backups(estate, "vault-a", 5)
    next_link = client.get(f"{estate.backup_vault('bv-b').id}/backupJobs").json()["nextLink"]
    mangled = client.get(next_link.replace("$skipToken=", "$skipToken=x"))
    assert (mangled.status_code, error_code(mangled)) == (400, "BadRequest")
    foreign = client.get(next_link.replace("/bv-b/", "/vault-a/").replace("/rg-b/", "/rg-a/"))
    assert foreign.status_code == 400
    assert client.get(next_link).status_code == 200


def test_an_unknown_job_answers_404_with_arms_body(client: Client, estate: FakeEstate) -> None:
    bv = estate.backup_vault("bv-b")
    missing = client.get(f"{bv.id}/backupJobs/{guid(99)}")
    assert missing.status_code == 404
    assert missing.json() == {"error": {"code": "ResourceNotFound", "message": (
        f"The Resource 'Microsoft.DataProtection/backupVaults/bv-b/backupJobs/{guid(99)}' under resource group "
        "'rg-b' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix")}}


def test_a_running_job_changes_as_it_is_updated(client: Client, estate: FakeEstate) -> None:
    bv = estate.backup_vault("bv-b")
    estate.add_dpp_job("bv-b", make_dpp_job(guid(1), vault=bv, datasource_type="AzureDisk", datasource_name="d",
                                            status="InProgress", start=T0))
    done = make_dpp_job(guid(1), vault=bv, datasource_type="AzureDisk", datasource_name="d", start=T0,
                        end=T0 + timedelta(minutes=4, seconds=9))
    estate.update_dpp_job("bv-b", guid(1).upper(), **{key: done["properties"][key] for key in
                                                      ("status", "endTime", "duration", "extendedInfo")})
    got = client.get(f"{bv.id}/backupJobs/{guid(1)}").json()["properties"]
    assert got["status"] == "Completed" and got["endTime"] == done["properties"]["endTime"]
    assert parse_iso_duration(got["duration"]) == (parse_azure_time(got["endTime"])
                                                   - parse_azure_time(got["startTime"]))
    with pytest.raises(KeyError):
        estate.update_dpp_job("bv-b", guid(2), status="Failed")


# --- instances, policies, recovery points ---------------------------------------------------------


def test_the_instance_list_pages_without_a_next_link_key_at_the_end(client: Client, estate: FakeEstate) -> None:
    bv = estate.backup_vault("bv-b")
    names = [f"disk-{number}" for number in range(5)]
    for name in names:
        estate.add_backup_instance("bv-b", make_backup_instance(vault=bv, datasource_type="AzureDisk",
                                                                datasource_name=name))
    pages = client.pages(f"{bv.id}/backupInstances")
    assert [list(page) for page in pages] == [["value", "nextLink"], ["value"]]  # as the recording: no key
    listed = [instance["properties"]["friendlyName"] for page in pages for instance in page["value"]]
    assert listed == names
    recorded = load("2026-03-01/fake-azure-powershell-recording.BackupInstances_List.response.json")
    assert all(list(instance) == list(recorded["value"][0]) for page in pages for instance in page["value"])


def test_the_recorded_instance_list_is_served_as_recorded(token: str, arm: FakeArm) -> None:
    text = (DPP / "2026-03-01/fake-azure-powershell-recording.BackupInstances_List.response.json").read_text()
    estate = FakeEstate()
    vault = estate.add_backup_vault("38304e13-357e-405e-9e9a-220351dcce8c", "pstest-diskrg", "pstest-disk-vault",
                                    "centraluseuap")
    estate.add_backup_instance(vault.name, json.loads(text)["value"][0])
    with FakeArm(estate) as fake:
        served = Client(fake, token).get(f"{vault.id}/backupInstances")
    assert served.text == text.strip()  # byte for byte, with no nextLink key


def test_the_policy_list_serves_the_stored_policies(client: Client, estate: FakeEstate) -> None:
    bv = estate.backup_vault("bv-b")
    for name, kind in (("DiskDaily", "AzureDisk"), ("BlobDaily", "AzureBlob")):
        estate.add_dpp_policy("bv-b", make_dpp_policy(vault=bv, name=name, datasource_type=kind))
    body = client.get(f"{bv.id}/backupPolicies").json()
    assert list(body) == ["value"]
    assert [policy["name"] for policy in body["value"]] == ["BlobDaily", "DiskDaily"]  # by name
    assert body["value"][1] == make_dpp_policy(vault=bv, name="DiskDaily", datasource_type="AzureDisk")
    estate.remove_dpp_policy("bv-b", "blobdaily")
    assert [policy["name"] for policy in client.get(f"{bv.id}/backupPolicies").json()["value"]] == ["DiskDaily"]


@pytest.fixture
def points(estate: FakeEstate) -> tuple[FakeBackupVault, str, list[str]]:
    """A disk instance with 5 daily recovery points, the newest at T0; returns the vault, instance and times."""
    bv = estate.backup_vault("bv-b")
    instance = make_backup_instance(vault=bv, datasource_type="AzureDisk", datasource_name="disk-1")
    estate.add_backup_instance("bv-b", instance)
    for days in range(5):
        estate.add_recovery_point("bv-b", instance["name"], make_recovery_point(
            vault=bv, instance=instance["name"], time=T0 - timedelta(days=days), datasource_type="AzureDisk"))
    times = [point["properties"]["recoveryPointTime"] for point in estate.recovery_points("bv-b", instance["name"])]
    return bv, instance["name"], times


def test_recovery_points_are_listed_newest_first(client: Client, points: tuple[FakeBackupVault, str, list[str]]
                                                 ) -> None:
    bv, instance, times = points
    pages = client.pages(f"{bv.id}/backupInstances/{instance}/recoveryPoints")
    listed = [point["properties"]["recoveryPointTime"] for page in pages for point in page["value"]]
    assert listed == times and [len(page["value"]) for page in pages] == [3, 2]
    assert listed[0].startswith("2026-11-20T13:05:00.000000") and "nextLink" not in pages[-1]
    recorded = load("2023-01-01/fake-azure-cli-recording.RecoveryPoints_List.disk.response.json")["value"][0]
    assert list(pages[0]["value"][0]) == list(recorded)
    assert list(pages[0]["value"][0]["properties"]) == list(recorded["properties"])


@pytest.mark.parametrize(("odata", "days"), [
    ("startDate eq '2026-11-17T00:00:00' and endDate eq '2026-11-19T23:59:59'", [1, 2, 3]),
    ("startDate eq '2026-11-18T13:05:00Z'", [0, 1, 2]),  # 13:05:00.000000x is after 13:05:00
    ("endDate eq '2026-11-17T14:04:00+01:00'", [4]),  # 13:04 UTC: the offset counts
    ("StartDate eq '2026-11-21T00:00:00'", []),
])
def test_the_recovery_point_filter_selects_on_the_time(client: Client, points: tuple[FakeBackupVault, str, list[str]],
                                                       odata: str, days: list[int]) -> None:
    bv, instance, times = points
    pages = client.pages(f"{bv.id}/backupInstances/{instance}/recoveryPoints", **{"$filter": odata})
    assert [point["properties"]["recoveryPointTime"] for page in pages for point in page["value"]] == [
        times[day] for day in days]


def test_the_recovery_point_filter_survives_paging_and_bad_ones_are_refused(
        client: Client, points: tuple[FakeBackupVault, str, list[str]]) -> None:
    bv, instance, times = points
    path = f"{bv.id}/backupInstances/{instance}/recoveryPoints"
    odata = "startDate eq '2026-11-15T00:00:00' and endDate eq '2026-11-19T23:00:00'"
    first = client.get(path, **{"$filter": odata}).json()
    assert parse_qs(urlsplit(first["nextLink"]).query)["$filter"] == [odata]
    assert [p["properties"]["recoveryPointTime"] for p in first["value"]] == times[1:4]
    assert [p["properties"]["recoveryPointTime"] for p in client.get(first["nextLink"]).json()["value"]] == times[4:]
    for bad in ("startDate eq 'yesterday'", "status eq 'Completed'", "startDate gt '2026-11-15T00:00:00'"):
        refused = client.get(path, **{"$filter": bad})
        assert (refused.status_code, error_code(refused)) == (400, "BadRequest"), bad


def test_recovery_points_of_an_unknown_instance_answer_404(client: Client, estate: FakeEstate) -> None:
    bv = estate.backup_vault("bv-b")
    missing = client.get(f"{bv.id}/backupInstances/nope/recoveryPoints")
    assert (missing.status_code, error_code(missing)) == (404, "ResourceNotFound")
    with pytest.raises(KeyError):
        estate.add_recovery_point("bv-b", "nope", {"name": "x", "properties": {}})


# --- the token, api-versions, faults, the bucket ------------------------------------------------


def backup_vault_paths(estate: FakeEstate) -> list[str]:
    bv = estate.backup_vault("bv-b")
    instance = make_backup_instance(vault=bv, datasource_type="AzureDisk", datasource_name="disk-1")
    estate.add_backup_instance("bv-b", instance)
    add_disk_backups(estate, "bv-b", 1)
    return [vaults_path(), bv.id, f"{bv.id}/backupJobs", f"{bv.id}/backupJobs/{guid(0)}",
            f"{bv.id}/backupInstances", f"{bv.id}/backupPolicies",
            f"{bv.id}/backupInstances/{instance['name']}/recoveryPoints"]


@pytest.mark.parametrize(("bearer", "code"), [(None, "AuthenticationFailed"), ("stolen", "InvalidAuthenticationToken")])
def test_every_route_requires_the_issued_token(client: Client, estate: FakeEstate, bearer: str | None,
                                               code: str) -> None:
    for path in backup_vault_paths(estate):
        refused = client.get(path, token=bearer)
        assert (refused.status_code, error_code(refused)) == (401, code), path
        assert client.get(path).status_code == 200, path


def test_the_dataprotection_api_versions_are_accepted_and_others_refused(client: Client,
                                                                         estate: FakeEstate) -> None:
    paths = backup_vault_paths(estate)
    for version in ("2024-04-01", "2025-07-01", "2026-03-01", "2026-06-01"):
        assert [client.get(path, **{"api-version": version}).status_code for path in paths] == [200] * len(paths)
    for version in ("2025-02-15", "2026-08-01"):  # no version at all; a Recovery Services vaults version
        wrong = client.get(paths[2], **{"api-version": version})
        assert (wrong.status_code, error_code(wrong)) == (400, "NoRegisteredProviderFound"), version
        assert "type 'backupVaults/backupJobs'" in wrong.json()["error"]["message"]
    missing = requests.get(client.arm.url + paths[1], headers={"Authorization": f"Bearer {client.token}"}, timeout=5)
    assert (missing.status_code, error_code(missing)) == (400, "MissingApiVersionParameter")


def test_a_status_fault_applies_n_times_to_the_backup_vault(client: Client, estate: FakeEstate) -> None:
    path = f"{estate.backup_vault('bv-b').id}/backupInstances"
    client.arm.set_fault("bv-b", Fault("status", status=503, code="ServiceUnavailable", times=2))
    assert [client.get(path).status_code for _ in range(3)] == [503, 503, 200]
    assert client.arm.fault_for("bv-b") is None


def test_authorization_failed_on_one_backup_vault_spares_the_recovery_services_vault_of_its_name(
        client: Client, estate: FakeEstate) -> None:
    bv = estate.backup_vault("vault-a")
    client.arm.set_fault("vault-a", Fault.authorization_failed(operations=DPP_FAULT_OPERATIONS))
    refused = client.get(f"{bv.id}/backupJobs")
    assert (refused.status_code, error_code(refused)) == (403, "AuthorizationFailed")
    assert refused.json()["error"]["message"] == AUTHORIZATION_FAILED_MESSAGE.format(
        client="5f1c2a8e-0d3b-4c7a-9e61-2b8d4f0a7c13", object_id="5f1c2a8e-0d3b-4c7a-9e61-2b8d4f0a7c13",
        action="Microsoft.DataProtection/backupVaults/backupJobs/read", scope=bv.id)
    assert client.get(bv.id).status_code == 403
    assert "backupVaults/backupInstances/read" in client.get(f"{bv.id}/backupInstances").json()["error"]["message"]
    rsv = estate.vault("vault-a")
    assert client.get(f"{rsv.id}/backupJobs", **{"api-version": "2025-02-01"}).status_code == 200
    assert client.get(estate.backup_vault("bv-b").id).status_code == 200


def test_throttle_malformed_and_offhost_faults_apply_to_backup_vaults(client: Client, estate: FakeEstate) -> None:
    bv = estate.backup_vault("bv-b")
    add_disk_backups(estate, "bv-b", 5)
    client.arm.set_fault("bv-b", Fault("throttle", retry_after=7, times=1))
    throttled = client.get(f"{bv.id}/backupJobs")
    assert (throttled.status_code, throttled.headers["Retry-After"]) == (429, "7")
    assert throttled.headers["x-ms-ratelimit-remaining-subscription-resource-requests"] == "0"
    client.arm.set_fault("bv-b", Fault("malformed", times=1, operations=frozenset({"dpp_jobs_get"})))
    broken = client.get(f"{bv.id}/backupJobs/{guid(0)}")
    assert broken.status_code == 200
    with pytest.raises(ValueError, match=r"Expecting|Unterminated|Extra data"):
        broken.json()
    evil = "https://attacker.example/collect?x=1"
    client.arm.set_fault("bv-b", Fault("offhost_nextlink", url=evil))
    first = client.get(f"{bv.id}/backupJobs").json()
    assert first["nextLink"] == evil
    client.arm.set_fault("bv-b", Fault.resource_not_found(times=1))
    gone = client.get(f"{bv.id}/backupPolicies")
    assert (gone.status_code, gone.headers["x-ms-failure-cause"]) == (404, "gateway")
    assert "'Microsoft.DataProtection/backupVaults/bv-b' under resource group 'rg-b'" in gone.json()["error"][
        "message"]


class ManualClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_backup_vault_reads_spend_the_subscriptions_bucket_and_get_its_429(estate: FakeEstate, token: str,
                                                                            arm: FakeArm) -> None:
    clock = ManualClock()
    bv = estate.backup_vault("bv-b")
    with FakeArm(estate, clock=clock, ratelimit_capacity=3, ratelimit_refill=0.5, enforce_ratelimit=True) as fake:
        limited = Client(fake, token)
        replies = [limited.get(path) for path in (vaults_path(), bv.id, f"{bv.id}/backupJobs")]
        remaining = "x-ms-ratelimit-remaining-subscription-resource-requests"
        assert [(reply.status_code, reply.headers[remaining]) for reply in replies] == [
            (200, "2"), (200, "1"), (200, "0")]
        throttled = limited.get(f"{bv.id}/backupInstances")
        assert (throttled.status_code, error_code(throttled), throttled.headers["Retry-After"]) == (
            429, "SubscriptionRequestsThrottled", "2")
        assert throttled.json()["error"]["message"].startswith(f"Number of 'read' requests for subscription '{SUB}'")
        # One bucket per subscription, whichever provider: the Recovery Services vault is throttled too.
        assert limited.get(estate.vault("vault-a").id, **{"api-version": "2025-02-01"}).status_code == 429
        clock.now += 2
        assert limited.get(f"{bv.id}/backupInstances").status_code == 200
        assert fake.stats()["arm_throttled"] == 2


# --- the demo -------------------------------------------------------------------------------------


def test_the_demo_has_a_backup_vault_with_four_data_source_types_and_one_failing() -> None:
    demo = start_demo(seed=7)
    try:
        access = requests.get(demo.identity_endpoint, params={"api-version": "2019-08-01",
                                                              "resource": "https://management.azure.com"},
                              headers={"X-IDENTITY-HEADER": demo.identity_header}, timeout=5).json()["access_token"]
        client = Client(demo.arm, access)
        listed = client.get(vaults_path(demo.subscriptions[BACKUP_VAULT.subscription])).json()["value"]
        assert [vault["name"] for vault in listed] == [BACKUP_VAULT.name]
        assert demo.backup_vault_ids == [listed[0]["id"]] and len(demo.vault_ids) == 4  # the RSVs are unchanged
        vault_id = listed[0]["id"]
        instances = client.get(f"{vault_id}/backupInstances").json()["value"]
        assert sorted(i["properties"]["dataSourceInfo"]["datasourceType"] for i in instances) == [
            "Microsoft.Compute/disks", "Microsoft.ContainerService/managedClusters",
            "Microsoft.DBforPostgreSQL/flexibleServers", "Microsoft.Storage/storageAccounts/blobServices"]
        assert len(instances) == len(BACKUP_INSTANCES) == 4
        policies = client.get(f"{vault_id}/backupPolicies").json()["value"]
        intervals = {p["properties"]["datasourceTypes"][0]: p["properties"]["policyRules"][0]["trigger"]["schedule"][
            "repeatingTimeIntervals"][0].rsplit("/", 1)[1] for p in policies}
        assert intervals == {"Microsoft.Compute/disks": "P1D", "Microsoft.Storage/storageAccounts/blobServices": "P1D",
                             "Microsoft.ContainerService/managedClusters": "P1D",
                             "Microsoft.DBforPostgreSQL/flexibleServers": "P1W"}
        jobs = [job for page in client.pages(f"{vault_id}/backupJobs") for job in page["value"]]
        by_instance: dict[str, list[dict[str, Any]]] = {}
        for job in jobs:
            by_instance.setdefault(job["properties"]["backupInstanceFriendlyName"], []).append(job["properties"])
        now = datetime.now(UTC)
        latest = {}
        for name, history in by_instance.items():
            history.sort(key=lambda properties: properties["startTime"])
            latest[name] = history[-1]["status"]
            assert all(parse_azure_time(h["endTime"]) < parse_azure_time(h["startTime"]) + 3600 * 10**7
                       for h in history), name
        for instance in BACKUP_INSTANCES:  # 14 days of history: daily backups, or the PostgreSQL weekly ones
            history = by_instance[instance.name]
            assert len(history) == (14 if instance.interval == "P1D" else 2), instance.name
            oldest = datetime.fromisoformat(history[0]["startTime"][:19]).replace(tzinfo=UTC)
            assert timedelta(days=7) < now - oldest < timedelta(days=15), instance.name
        assert latest == {instance.name: "Failed" if instance == FAILING_BACKUP_INSTANCE else "Completed"
                          for instance in BACKUP_INSTANCES}
        assert all(TIMESPAN.match(job["properties"]["duration"]) for job in jobs)
        failed = next(job for job in jobs if job["properties"]["status"] == "Failed")
        details = client.get(failed["id"]).json()["properties"]
        assert details["errorDetails"][0]["message"] and details["extendedInfo"]["targetRecoverPoint"] is None
        disk = next(i for i in instances if i["properties"]["dataSourceInfo"]["datasourceType"].endswith("disks"))
        points = client.get(f"{vault_id}/backupInstances/{disk['name']}/recoveryPoints").json()["value"]
        assert len(points) == 14
    finally:
        demo.stop()
