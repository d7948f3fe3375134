"""The fake ARM is only worth testing against if it is trustworthy.

These tests hold it, over real HTTP on loopback, to the real payloads in fixtures/azure and to ARM's
rules: bearer tokens, api-versions, paging with the XML skiptoken, $filter, faults, protected items of
every type where the spec puts their fields, the managed identity endpoint, and the demo estate built
on top of it, whose protected items must agree with its jobs.
"""

from __future__ import annotations

import base64
import json
import random
import re
import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote_plus, urlsplit

import pytest
import requests
from azure.identity import ManagedIdentityCredential

from exporter.simulator.demo import (
    FAILING_ITEM,
    FAILING_TWIN,
    HEALTHY_TWIN,
    ITEMS,
    VAULTS,
    WARNING_ITEM,
    DemoItem,
    JobSimulator,
    _EstateBuilder,
    _Running,
    demo_item,
    start_demo,
)
from exporter.simulator.fakearm import (
    AUTHORIZATION_FAILED_MESSAGE,
    GATEWAY_NOT_FOUND_MESSAGE,
    NEVER_BACKED_UP,
    PROTECTED_ITEM_RESOURCE_TYPE,
    FakeArm,
    FakeEstate,
    FakeVault,
    Fault,
    continuation_token,
    dotnet_duration,
    encode_query_value,
    iso_duration,
    make_job,
    make_protected_item,
    parse_azure_time,
    table_key,
    to_ticks,
    workload_job_name,
)

from .fake_stats import STATS_PATH, serve_stats

FIXTURES = Path(__file__).parent / "fixtures" / "azure"
SUB = "0c9f2d1e-7b4a-4e8f-9a61-3d2b5c7e8f90"
API = "2025-02-01"
T0 = datetime(2026, 11, 20, 13, 5, tzinfo=UTC)
AZURE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,7})?Z$")


def load(relative: str) -> Any:
    return json.loads((FIXTURES / relative).read_text())


def guid(number: int) -> str:
    return f"{number:08x}-0000-4000-8000-000000000000"


@pytest.fixture
def estate() -> FakeEstate:
    estate = FakeEstate()
    estate.add_vault(SUB, "rg-a", "vault-a")
    estate.add_vault(SUB, "rg-b", "vault-b", location="northeurope")
    return estate


@pytest.fixture
def arm(estate: FakeEstate) -> Iterator[FakeArm]:
    with FakeArm(estate, page_size=3) as fake:
        yield fake


def add_backups(estate: FakeEstate, vault_name: str, count: int, *, first: int = 0,
                start: datetime = T0) -> list[str]:
    """`count` IaaS backups an hour apart, the newest at `start`; returns their ids."""
    vault = estate.vault(vault_name)
    ids = []
    for number in range(first, first + count):
        began = start - timedelta(hours=number - first)
        job = make_job(guid(number), vault=vault, item=f"vm-{number}", start=began, end=began + timedelta(minutes=20),
                       size="2332 MB", tasks=[("Take Snapshot", "Completed"), ("Transfer data to vault", "Completed")])
        estate.add_job(vault_name, job)
        ids.append(guid(number))
    return ids


def get(arm: FakeArm, path_or_url: str, *, token: str | None = "default", timeout: float = 5,
        **params: str) -> requests.Response:
    """GET an ARM path (or an absolute URL as-is) with the fake's token and, for paths, our api-version."""
    headers = {} if token is None else {"Authorization": f"Bearer {arm.token if token == 'default' else token}"}
    if path_or_url.startswith("http"):
        return requests.get(path_or_url, headers=headers, timeout=timeout)
    return requests.get(arm.url + path_or_url, params={"api-version": API, **params}, headers=headers,
                        timeout=timeout)


def jobs_path(estate: FakeEstate, vault_name: str) -> str:
    return f"{estate.vault(vault_name).id}/backupJobs"


def all_pages(arm: FakeArm, first: requests.Response) -> list[dict[str, Any]]:
    """Every page of a LIST, following nextLink exactly as given."""
    pages = [first.json()]
    while pages[-1].get("nextLink"):
        response = get(arm, pages[-1]["nextLink"])
        assert response.status_code == 200, response.text
        pages.append(response.json())
    return pages


def error_code(response: requests.Response) -> str:
    return str(response.json()["error"]["code"])


def query_of(url: str) -> list[tuple[str, str]]:
    return [tuple(pair.split("=", 1)) for pair in urlsplit(url).query.split("&")]  # type: ignore[misc]


# --- fidelity to the real payloads ------------------------------------------------------------------


def test_make_job_reproduces_the_recorded_completed_backup() -> None:
    recorded = load("recoveryservicesbackup/2022-02-01/azure-cli-recording.JobDetails_Get.backup-completed"
                    ".response.json")
    estate = FakeEstate()
    vault = estate.add_vault("00000000-0000-0000-0000-000000000000", "clitest.rg000001", "clitest-vault000002")
    made = make_job("c3068609-5c66-4a08-acd4-b22dcf7b157f", vault=vault, item="clitest-vm000003",
                    start=datetime(2022, 5, 13, 10, 9, 27, 280134, tzinfo=UTC),
                    end=datetime(2022, 5, 13, 10, 50, 45, 207162, tzinfo=UTC), duration="PT41M17.9270278S",
                    size="11370 MB", tasks=[("Take Snapshot", "Completed"), ("Transfer data to vault", "Completed")])
    # datetime holds 6 fractional digits, Azure 7: the 7th digit and the activity id are the fake's own.
    assert made["properties"]["startTime"].startswith("2022-05-13T10:09:27.280134")
    for key in ("startTime", "endTime", "activityId"):
        made["properties"][key] = recorded["properties"][key]
    assert json.dumps(made) == json.dumps(recorded)  # same keys, same order, same values


@pytest.mark.parametrize("index", [0, 1, 2], ids=["restore-inprogress", "backup-completed", "configure-backup"])
def test_list_items_have_the_recorded_shape(index: int) -> None:
    recorded = load("recoveryservicesbackup/2022-02-01/azure-cli-recording.backupJobs_List.response.json")["value"]
    estate = FakeEstate()
    vault = estate.add_vault("00000000-0000-0000-0000-000000000000", "clitest.rg000001", "clitest-vault000002")
    item = recorded[index]
    properties = item["properties"]
    estate.add_job(vault.name, make_job(
        item["name"], vault=vault, item=properties["entityFriendlyName"], operation=properties["operation"],
        status=properties["status"], start=T0, end=T0 if "endTime" in properties else None,
        duration=properties["duration"]))
    with FakeArm(estate) as arm:
        served = get(arm, jobs_path(estate, vault.name)).json()["value"][0]
    for key in ("startTime", "endTime", "activityId"):
        if key in properties:
            served["properties"][key] = properties[key]
    assert json.dumps(served) == json.dumps(item)


def test_restore_details_have_the_recorded_shape() -> None:
    recorded = load("recoveryservicesbackup/2022-02-01/azure-cli-recording.JobDetails_Get.restore-inprogress"
                    ".response.json")["properties"]["extendedInfo"]
    vault = FakeEstate().add_vault(SUB, "rg", "v")
    made = make_job(guid(1), vault=vault, item="vm", operation="Restore", status="InProgress", start=T0,
                    tasks=[("Transfer data from vault", "InProgress")])["properties"]["extendedInfo"]
    assert list(made) == list(recorded)
    assert list(made["propertyBag"]) == list(recorded["propertyBag"])  # incl. the key with a trailing space
    assert made["tasksList"] == recorded["tasksList"]
    assert made["progressPercentage"] == recorded["progressPercentage"]


def test_duration_formats_match_the_real_ones() -> None:
    docs = load("recoveryservicesbackup/2017-07-01/docs.backup-azure-arm-userestapi-managejobs.JobDetails_Get"
                ".response.json")["properties"]
    assert dotnet_duration(parse_azure_time(docs["endTime"]) - parse_azure_time(docs["startTime"])) == docs["duration"]
    recorded = load("recoveryservicesbackup/2022-02-01/azure-cli-recording.JobDetails_Get.backup-completed"
                    ".response.json")["properties"]
    elapsed = parse_azure_time(recorded["endTime"]) - parse_azure_time(recorded["startTime"])
    assert iso_duration(elapsed) == recorded["duration"]
    assert iso_duration(0) == "PT0S"
    assert dotnet_duration(0) == "00:00:00"
    assert iso_duration(26 * 3600 * 10**7) == "P1DT2H"
    assert dotnet_duration((86400 + 3723) * 10**7 + 5 * 10**6) == "1.01:02:03.5000000"


def test_next_link_encoding_and_skiptoken_match_the_real_ones() -> None:
    body = load("recoveryservicesbackup/2025-08-01/ListJobsWithStartTimeAndEndTimeFilters.json")
    next_link = body["responses"]["200"]["body"]["nextLink"]
    for _, raw in query_of(next_link):
        assert encode_query_value(unquote_plus(raw)) == raw
    token = unquote_plus(dict(query_of(next_link))["%24skiptoken"])
    keys = re.findall(r"<Next(?:Partition|Row)Key>1!\d+!([^<]+)<", token)
    plain = [base64.b64decode(key.replace("-", "=")).decode() for key in keys]
    assert plain[1].startswith("jobsstarttimeindex_0_")  # newest-first index of start times, then the job id
    assert continuation_token(table_key(plain[0]), table_key(plain[1])) == token


def test_error_bodies_match_the_real_ones(arm: FakeArm, estate: FakeEstate) -> None:
    gateway = load("arm-errors/azure-cli-recording.404.ResourceNotFound.gateway.json")["error"]["message"]
    assert GATEWAY_NOT_FOUND_MESSAGE.format(resource_type="Microsoft.ClassicStorage/storageAccounts",
                                            name="clitest000006", resource_group="clitest.rg000001") == gateway
    forbidden = load("arm-errors/sdk-issue.403.AuthorizationFailed.json")["error"]["message"]
    assert AUTHORIZATION_FAILED_MESSAGE.format(
        client="xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", object_id="yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy",
        action="Microsoft.Web/sites/config/list/action",
        scope="/subscriptions/ssssssss-ssss-ssss-ssss-ssssssssssss/resourceGroups/rg-appservices/providers"
              "/Microsoft.Web/sites/app-dev-001/config/backup") == forbidden
    missing_job = get(arm, f"{jobs_path(estate, 'vault-a')}/{guid(99)}")
    assert missing_job.status_code == 404
    expected = (FIXTURES / "arm-errors/spec-issue.404.BMSUserErrorDataSourceObjectNotFound.json").read_text()
    assert missing_job.text == expected.strip()


def test_vaults_have_the_shape_of_the_real_list(arm: FakeArm, estate: FakeEstate) -> None:
    real = load("recoveryservices/2026-08-01/ListBySubscriptionIds.json")["responses"]["200"]["body"]["value"][0]
    response = get(arm, f"/subscriptions/{SUB}/providers/Microsoft.RecoveryServices/vaults")
    listed = response.json()["value"]
    assert [vault["name"] for vault in listed] == ["vault-a", "vault-b"]
    assert all(list(vault) == list(real) for vault in listed)
    single = get(arm, estate.vault("vault-b").id).json()
    assert single == listed[1]
    assert single["location"] == "northeurope"


@pytest.mark.parametrize("job_type", ["AzureIaaSVMJob", "AzureIaaSVMJobV2", "AzureStorageJob", "AzureWorkloadJob",
                                      "DpmJob", "MabJob", "VaultJob"])
def test_make_job_gives_each_job_type_its_own_properties(job_type: str) -> None:
    extras = {
        "AzureIaaSVMJob": {"containerName", "virtualMachineVersion", "actionsInfo"},
        "AzureIaaSVMJobV2": {"containerName", "virtualMachineVersion", "actionsInfo"},
        "AzureStorageJob": {"storageAccountName", "actionsInfo"},
        "AzureWorkloadJob": {"workloadType", "actionsInfo"},
        "DpmJob": {"dpmServerName", "containerName", "containerType", "workloadType", "actionsInfo"},
        "MabJob": {"mabServerName", "mabServerType", "workloadType", "actionsInfo"},
        "VaultJob": set(),
    }
    base = {"jobType", "duration", "extendedInfo", "entityFriendlyName", "operation", "status", "startTime",
            "endTime", "activityId", "errorDetails"}
    vault = FakeEstate().add_vault(SUB, "rg", "v")
    properties = make_job(guid(1), vault=vault, item="item", status="Failed", start=T0, end=T0 + timedelta(hours=1),
                          job_type=job_type, size="10 MB", duration_format="dotnet",
                          error="it broke")["properties"]
    management = set() if job_type == "VaultJob" else {"backupManagementType"}
    assert set(properties) == base | extras[job_type] | management
    elapsed = parse_azure_time(properties["endTime"]) - parse_azure_time(properties["startTime"])
    assert properties["duration"] == dotnet_duration(elapsed)  # consistent with the 7-digit timestamps
    assert abs(elapsed - 3600 * 10**7) < 10
    assert AZURE_TIME.match(properties["startTime"]) and AZURE_TIME.match(properties["endTime"])
    assert properties["errorDetails"][0]["errorString"] == "it broke"
    assert ("errorCode" in properties["errorDetails"][0]) == (job_type not in ("DpmJob", "MabJob"))
    bag = properties["extendedInfo"]["propertyBag"]
    if job_type == "AzureWorkloadJob":  # databases report a bare number of MB, as the SQL recording shows
        assert bag == {"Data Transferred (in MB)": "10"}
    else:
        assert bag.get("Backup Size") == (None if job_type == "VaultJob" else "10 MB")


def test_a_running_job_has_no_end_and_an_elapsed_duration() -> None:
    vault = FakeEstate().add_vault(SUB, "rg", "v")
    properties = make_job(guid(1), vault=vault, item="vm", status="InProgress", start=T0,
                          now=T0 + timedelta(minutes=41, seconds=17))["properties"]
    assert "endTime" not in properties
    assert re.match(r"^PT41M(17|16\.99999\d\d)S?", properties["duration"])  # now - start, to 100 ns


# --- authentication and api-version -----------------------------------------------------------------


@pytest.mark.parametrize(("token", "code"), [(None, "AuthenticationFailed"), ("stolen", "InvalidAuthenticationToken")])
def test_every_arm_route_requires_the_issued_token(arm: FakeArm, estate: FakeEstate, token: str | None,
                                                   code: str) -> None:
    add_backups(estate, "vault-a", 1)
    vault_id = estate.vault("vault-a").id
    paths = [f"/subscriptions/{SUB}/providers/Microsoft.RecoveryServices/vaults", vault_id, f"{vault_id}/backupJobs",
             f"{vault_id}/backupJobs/{guid(0)}", f"{vault_id}/backupProtectedItems"]
    for path in paths:
        refused = get(arm, path, token=token)
        assert (refused.status_code, error_code(refused)) == (401, code), path
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
        assert get(arm, path).status_code == 200, path


def test_a_token_for_another_audience_is_refused(arm: FakeArm, estate: FakeEstate) -> None:
    issued = requests.get(arm.identity_endpoint, params={"api-version": "2019-08-01",
                                                         "resource": "https://vault.azure.net"},
                          headers={"X-IDENTITY-HEADER": arm.identity_header}, timeout=5).json()
    refused = get(arm, estate.vault("vault-a").id, token=issued["access_token"])
    assert (refused.status_code, error_code(refused)) == (401, "InvalidAuthenticationTokenAudience")


def test_api_version_is_required_and_must_exist_for_the_resource_type(arm: FakeArm, estate: FakeEstate) -> None:
    url = arm.url + jobs_path(estate, "vault-a")
    auth = {"Authorization": f"Bearer {arm.token}"}
    missing = requests.get(url, headers=auth, timeout=5)
    assert (missing.status_code, error_code(missing)) == (400, "MissingApiVersionParameter")
    for version in ("2099-01-01", "2026-08-01"):  # unknown anywhere; a vaults-only version
        wrong = requests.get(url, params={"api-version": version}, headers=auth, timeout=5)
        assert (wrong.status_code, error_code(wrong)) == (400, "NoRegisteredProviderFound"), version
    twice = requests.get(f"{url}?api-version={API}&api-version={API}", headers=auth, timeout=5)
    assert twice.status_code == 400
    assert get(arm, estate.vault("vault-a").id, **{"api-version": "2026-08-01"}).status_code == 200


def test_paths_match_case_insensitively_like_arm(arm: FakeArm, estate: FakeEstate) -> None:
    add_backups(estate, "vault-a", 1)
    odd_case = jobs_path(estate, "vault-a").replace("/subscriptions/", "/Subscriptions/").replace(
        "Microsoft.RecoveryServices", "microsoft.recoveryservices").replace("vault-a", "VAULT-A")
    assert [job["name"] for job in get(arm, odd_case).json()["value"]] == [guid(0)]
    assert get(arm, f"{odd_case}/{guid(0).upper()}").json()["name"] == guid(0)


def test_missing_resources_get_arms_own_404s(arm: FakeArm, estate: FakeEstate) -> None:
    gone = get(arm, f"/subscriptions/{SUB}/resourceGroups/rg-a/providers/Microsoft.RecoveryServices/vaults/gone")
    assert (gone.status_code, error_code(gone)) == (404, "ResourceNotFound")
    assert gone.headers["x-ms-failure-cause"] == "gateway"
    assert "'Microsoft.RecoveryServices/vaults/gone' under resource group 'rg-a'" in gone.json()["error"]["message"]
    no_group = get(arm, f"/subscriptions/{SUB}/resourceGroups/rg-x/providers/Microsoft.RecoveryServices/vaults/v")
    assert error_code(no_group) == "ResourceGroupNotFound"
    other = "11111111-2222-4333-8444-555555555555"
    no_sub = get(arm, f"/subscriptions/{other}/providers/Microsoft.RecoveryServices/vaults")
    assert (no_sub.status_code, error_code(no_sub)) == (404, "SubscriptionNotFound")
    estate.add_subscription(other)
    assert get(arm, f"/subscriptions/{other}/providers/Microsoft.RecoveryServices/vaults").json() == {"value": []}
    estate.remove_vault("vault-b")
    assert get(arm, f"{estate.vault('vault-a').id[:-7]}vault-b").status_code == 404


# --- LIST, GET and paging ---------------------------------------------------------------------------


def test_details_carry_extended_info_and_the_list_never_does(arm: FakeArm, estate: FakeEstate) -> None:
    add_backups(estate, "vault-a", 2)
    listed = get(arm, jobs_path(estate, "vault-a")).json()["value"]
    assert all("extendedInfo" not in job["properties"] for job in listed)
    details = get(arm, f"{jobs_path(estate, 'vault-a')}/{guid(0)}").json()
    assert details["properties"]["extendedInfo"]["propertyBag"]["Backup Size"] == "2332 MB"
    assert estate.vault("vault-a").jobs[guid(0)]["properties"]["extendedInfo"]  # the stored job keeps it


def test_paging_returns_every_job_once_newest_first(arm: FakeArm, estate: FakeEstate) -> None:
    ids = add_backups(estate, "vault-a", 10)
    first = get(arm, jobs_path(estate, "vault-a"))
    pages = all_pages(arm, first)
    assert [len(page["value"]) for page in pages] == [3, 3, 3, 1]
    assert [job["name"] for page in pages for job in page["value"]] == ids  # newest first, each once
    next_link = pages[0]["nextLink"]
    assert next_link.startswith(f"{arm.url}{estate.vault('vault-a').id}/backupJobs?api-version=2017-07-01&")
    assert "&%24skiptoken=%3c%3fxml+version%3d%221.0%22+encoding%3d%22utf-16%22%3f%3e%0d%0a%3cContinuationToken" \
        in next_link


def test_next_pages_accept_the_clients_api_version_like_the_python_sdk(arm: FakeArm, estate: FakeEstate) -> None:
    add_backups(estate, "vault-a", 4)
    next_link = get(arm, jobs_path(estate, "vault-a"), **{"$filter": "status eq 'Completed'"}).json()["nextLink"]
    with_ours = next_link.replace("api-version=2017-07-01", f"api-version={API}")
    page = get(arm, with_ours)
    assert page.status_code == 200
    assert [job["name"] for job in page.json()["value"]] == [guid(3)]
    assert "$filter" in arm.requests[-1].query


def test_paging_stays_exact_while_newer_jobs_arrive(arm: FakeArm, estate: FakeEstate) -> None:
    ids = add_backups(estate, "vault-a", 7)
    first = get(arm, jobs_path(estate, "vault-a"))
    add_backups(estate, "vault-a", 5, first=100, start=T0 + timedelta(hours=10))  # newer than any listed
    seen = [job["name"] for page in all_pages(arm, first) for job in page["value"]]
    assert seen == ids


def _double_encoded(url: str) -> str:
    head, _, token = url.partition("%24skiptoken=")
    return head + "%24skiptoken=" + quote(token, safe="")


def _altered(url: str) -> str:
    return re.sub(r"(NextRowKey%3e1!\d+!)(.)", lambda m: m.group(1) + ("B" if m.group(2) != "B" else "C"), url)


def _crlf_normalised(url: str) -> str:
    return url.replace("%0d%0a", "%0a")


def _filter_dropped(url: str) -> str:
    return re.sub(r"&%24filter=[^&]*", "", url)


@pytest.mark.parametrize("mangle", [_double_encoded, _altered, _crlf_normalised, _filter_dropped],
                         ids=["double-encoded", "altered", "crlf-normalised", "filter-dropped"])
def test_a_mangled_skiptoken_is_refused(arm: FakeArm, estate: FakeEstate, mangle: Callable[[str], str]) -> None:
    add_backups(estate, "vault-a", 5)
    next_link = get(arm, jobs_path(estate, "vault-a"), **{"$filter": "operation eq 'Backup'"}).json()["nextLink"]
    mangled = mangle(next_link)
    assert mangled != next_link
    refused = get(arm, mangled)
    assert (refused.status_code, error_code(refused)) == (400, "BMSUserErrorInvalidInput")
    assert get(arm, next_link).status_code == 200  # the unaltered link still works


def test_a_skiptoken_re_encoded_equivalently_still_works(arm: FakeArm, estate: FakeEstate) -> None:
    add_backups(estate, "vault-a", 5)
    next_link = get(arm, jobs_path(estate, "vault-a")).json()["nextLink"]
    params = {unquote_plus(key): unquote_plus(value) for key, value in query_of(next_link)}
    page = requests.get(next_link.split("?")[0], params=params, headers={"Authorization": f"Bearer {arm.token}"},
                        timeout=5)  # requests encodes differently (upper-case hex) but the value is the same
    assert [job["name"] for job in page.json()["value"]] == [guid(3), guid(4)]


def test_a_skiptoken_only_works_on_its_own_vault(arm: FakeArm, estate: FakeEstate) -> None:
    add_backups(estate, "vault-a", 5)
    next_link = get(arm, jobs_path(estate, "vault-a")).json()["nextLink"]
    elsewhere = next_link.replace("/resourceGroups/rg-a/", "/resourceGroups/rg-b/").replace("vault-a", "vault-b")
    assert get(arm, elsewhere).status_code == 400


# --- $filter ---------------------------------------------------------------------------------------


@pytest.fixture
def mixed_estate(estate: FakeEstate) -> FakeEstate:
    vault = estate.vault("vault-a")
    jobs = [
        make_job(guid(1), vault=vault, item="vm-1", start=T0 - timedelta(hours=3), end=T0),
        make_job(guid(2), vault=vault, item="vm-2", status="Failed", start=T0 - timedelta(hours=1),
                 end=T0 + timedelta(minutes=5), error="no agent"),
        make_job(guid(3), vault=vault, item="db", job_type="AzureWorkloadJob", status="InProgress", start=T0),
        make_job(guid(4), vault=vault, item="vm-1", operation="Restore", start=T0 + timedelta(hours=2),
                 end=T0 + timedelta(hours=3)),
        make_job(guid(5), vault=vault, item="vm-9", start=T0 - timedelta(days=3), end=T0 - timedelta(days=3) +
                 timedelta(hours=1)),
    ]
    for job in jobs:
        estate.add_job("vault-a", job)
    return estate


@pytest.mark.parametrize(("odata", "expected"), [
    ("", [4, 3, 2, 1, 5]),
    ("startTime eq '2026-11-20 12:00:00 PM' and endTime eq '2026-11-20 01:05:01 PM'", [3, 2]),  # by start time
    ("startTime eq '2026-11-20 01:00:00 PM'", [4, 3]),
    ("endTime eq '2026-11-17 11:59:59 PM'", [5]),
    ("status eq 'InProgress'", [3]),
    ("status eq 'failed'", [2]),
    ("operation eq 'Restore'", [4]),
    ("backupManagementType eq 'AzureWorkLoad'", [3]),  # the CLI's casing
    (f"jobId eq '{guid(2).upper()}'", [2]),
    ("operation eq 'Backup' and backupManagementType eq 'AzureIaasVM' and status eq 'Completed'", [1, 5]),
    ("startTime eq '2016-01-01 00:00:00 AM' and endTime eq '2026-11-20 00:00:00 AM'", [5]),  # the spec's "00 AM"
])
def test_filters_select_like_the_service(arm: FakeArm, mixed_estate: FakeEstate, odata: str,
                                         expected: list[int]) -> None:
    response = get(arm, jobs_path(mixed_estate, "vault-a"), **({"$filter": odata} if odata else {}))
    assert response.status_code == 200, response.text
    names = [job["name"] for page in all_pages(arm, response) for job in page["value"]]
    assert names == [guid(number) for number in expected]


@pytest.mark.parametrize("odata", [
    "startTime eq '2026-11-20T13:05:00Z'",  # ISO is not the service's format
    "startTime eq '2026-11-20 13:05:00 PM'",  # not a 12-hour clock
    "startTime eq '2026-02-30 01:05:00 PM'",
    "status ne 'Failed'",
    "vaultName eq 'x'",
    "status eq 'Running'",
    "status eq 'Failed' and",
    "status eq 'Failed' or status eq 'Completed'",
    "status eq 'Failed' and status eq 'Completed'",
])
def test_bad_filters_are_refused(arm: FakeArm, estate: FakeEstate, odata: str) -> None:
    refused = get(arm, jobs_path(estate, "vault-a"), **{"$filter": odata})
    assert (refused.status_code, error_code(refused)) == (400, "BMSUserErrorInvalidInput")


# --- faults ----------------------------------------------------------------------------------------


def test_a_status_fault_applies_n_times_then_disappears(arm: FakeArm, estate: FakeEstate) -> None:
    arm.set_fault("vault-a", Fault("status", status=503, code="ServiceUnavailable", times=2))
    path = jobs_path(estate, "vault-a")
    assert [get(arm, path).status_code for _ in range(3)] == [503, 503, 200]
    assert arm.fault_for("vault-a") is None
    assert get(arm, jobs_path(estate, "vault-b")).status_code == 200


def test_authorization_failed_fault_reads_like_arms(arm: FakeArm, estate: FakeEstate) -> None:
    arm.set_fault("vault-a", Fault.authorization_failed())
    refused = get(arm, jobs_path(estate, "vault-a"))
    assert (refused.status_code, error_code(refused)) == (403, "AuthorizationFailed")
    message = refused.json()["error"]["message"]
    assert "perform action 'Microsoft.RecoveryServices/Vaults/backupJobs/read'" in message
    assert f"over scope '{estate.vault('vault-a').id}'" in message
    assert get(arm, estate.vault("vault-a").id).status_code == 403  # the vault GET too


def test_resource_not_found_fault_looks_like_the_gateway(arm: FakeArm, estate: FakeEstate) -> None:
    arm.set_fault("vault-a", Fault.resource_not_found(times=1))
    gone = get(arm, jobs_path(estate, "vault-a"))
    assert (gone.status_code, error_code(gone), gone.headers["x-ms-failure-cause"]) == (404, "ResourceNotFound",
                                                                                       "gateway")


def test_throttle_fault_answers_429_with_retry_after(arm: FakeArm, estate: FakeEstate) -> None:
    arm.set_fault("vault-a", Fault("throttle", retry_after=7, times=1))
    throttled = get(arm, jobs_path(estate, "vault-a"))
    assert (throttled.status_code, throttled.headers["Retry-After"]) == (429, "7")
    assert throttled.headers["x-ms-ratelimit-remaining-subscription-resource-requests"] == "0"
    assert get(arm, jobs_path(estate, "vault-a")).status_code == 200


def test_timeout_fault_holds_the_reply_past_the_clients_timeout(arm: FakeArm, estate: FakeEstate) -> None:
    arm.set_fault("vault-a", Fault("timeout", delay=1.0, times=1))
    with pytest.raises(requests.ReadTimeout):
        get(arm, jobs_path(estate, "vault-a"), timeout=0.2)
    started = time.monotonic()
    assert get(arm, jobs_path(estate, "vault-a")).status_code == 200
    assert time.monotonic() - started < 0.5


def test_malformed_fault_sends_a_body_that_is_not_json(arm: FakeArm, estate: FakeEstate) -> None:
    add_backups(estate, "vault-a", 2)
    arm.set_fault("vault-a", Fault("malformed"))
    broken = get(arm, jobs_path(estate, "vault-a"))
    assert broken.status_code == 200
    with pytest.raises(ValueError, match=r"Expecting|Unterminated|Extra data"):
        broken.json()


def test_offhost_nextlink_fault_only_touches_the_first_list_page(arm: FakeArm, estate: FakeEstate) -> None:
    add_backups(estate, "vault-a", 1)
    evil = "https://attacker.example/collect?x=1"
    arm.set_fault("vault-a", Fault("offhost_nextlink", url=evil))
    assert get(arm, jobs_path(estate, "vault-a")).json()["nextLink"] == evil
    assert get(arm, f"{jobs_path(estate, 'vault-a')}/{guid(0)}").status_code == 200
    assert arm.fault_for("vault-a") is not None


def test_a_fault_can_target_only_the_follow_up_pages(arm: FakeArm, estate: FakeEstate) -> None:
    add_backups(estate, "vault-a", 5)
    arm.set_fault("vault-a", Fault("status", operations=frozenset({"jobs_next_page"})))
    first = get(arm, jobs_path(estate, "vault-a"))
    assert first.status_code == 200
    assert get(arm, first.json()["nextLink"]).status_code == 500
    assert get(arm, f"{jobs_path(estate, 'vault-a')}/{guid(0)}").status_code == 200


def test_unknown_fault_kinds_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        Fault("explode")  # type: ignore[arg-type]


# --- protected items --------------------------------------------------------------------------------

# Where bms.json puts each type's fields: the ProtectedItem base and each type's own, as generated into
# Azure/bicep-types-az generated/recoveryservicesbackup/microsoft.recoveryservices/2025-08-01/types.md.
SPEC_BASE = {"protectedItemType", "backupManagementType", "backupSetName", "containerName", "createMode",
             "deferredDeleteTimeInUTC", "deferredDeleteTimeRemaining", "isArchiveEnabled",
             "isDeferredDeleteScheduleUpcoming", "isRehydrate", "isScheduledForDeferredDelete", "lastRecoveryPoint",
             "policyId", "policyName", "resourceGuardOperationRequests", "softDeleteRetentionPeriodInDays",
             "sourceResourceId", "vaultId", "workloadType"}
SPEC_VM = {"extendedInfo", "extendedProperties", "friendlyName", "healthDetails", "healthStatus", "kpisHealths",
           "lastBackupStatus", "lastBackupTime", "policyType", "protectedItemDataId", "protectionState",
           "protectionStatus", "virtualMachineId"}
SPEC_WORKLOAD = {"extendedInfo", "friendlyName", "kpisHealths", "lastBackupErrorDetail", "lastBackupStatus",
                 "lastBackupTime", "nodesList", "parentName", "parentType", "protectedItemDataSourceId",
                 "protectedItemHealthStatus", "protectionState", "protectionStatus", "serverName"}
SPEC_OWN: dict[str, set[str]] = {
    "Microsoft.Compute/virtualMachines": SPEC_VM,
    "Microsoft.ClassicCompute/virtualMachines": SPEC_VM,
    "AzureFileShareProtectedItem": {"extendedInfo", "friendlyName", "kpisHealths", "lastBackupStatus", "lastBackupTime",
                                    "protectionState", "protectionStatus"},
    "AzureVmWorkloadSQLDatabase": SPEC_WORKLOAD,
    "AzureVmWorkloadSAPHanaDatabase": SPEC_WORKLOAD,
    "MabFileFolderProtectedItem": {"computerName", "deferredDeleteSyncTimeInUTC", "extendedInfo", "friendlyName",
                                   "lastBackupStatus", "lastBackupTime", "protectionState"},
    "DPMProtectedItem": {"backupEngineName", "extendedInfo", "friendlyName", "protectionState"},
}
SPEC_DPM_EXTENDED_INFO = {"diskStorageUsedInBytes", "isCollocated", "isPresentOnCloud", "lastBackupStatus",
                          "lastRefreshedAt", "oldestRecoveryPoint", "onPremiseLatestRecoveryPoint",
                          "onPremiseOldestRecoveryPoint", "onPremiseRecoveryPointCount", "protectableObjectLoadPath",
                          "protected", "protectionGroupName", "recoveryPointCount", "totalDiskStorageSizeInBytes"}
CLI_SUB = "00000000-0000-0000-0000-000000000000"


def cli_vault(resource_group: str = "clitest.rg000001", name: str = "clitest-vault000002") -> FakeVault:
    return FakeEstate().add_vault(CLI_SUB, resource_group, name)


def lower_subscriptions(resource: dict[str, Any]) -> dict[str, Any]:
    """The 2021 recording writes '/Subscriptions/' in ids it generates; the fake writes it as the vault id does."""
    lowered: dict[str, Any] = json.loads(json.dumps(resource).replace("/Subscriptions/", "/subscriptions/"))
    return lowered


@pytest.mark.parametrize("index", [0, 1])
def test_make_protected_item_reproduces_the_recorded_azure_vm_items(index: int) -> None:
    recorded = lower_subscriptions(load("recoveryservicesbackup/2020-10-01/azure-cli-recording."
                                        "BackupProtectedItems_List.iaasvm.response.json")["value"][index])
    made = make_protected_item(vault=cli_vault(), friendly_name=recorded["properties"]["friendlyName"],
                               protection_state="IRPending", policy="DefaultPolicy")
    made["properties"]["protectedItemDataId"] = recorded["properties"]["protectedItemDataId"]  # the service's own
    assert json.dumps(made) == json.dumps(recorded)  # incl. lastBackupStatus "" and the 2001 "never" time
    assert made["properties"]["lastBackupTime"] == NEVER_BACKED_UP


def test_make_protected_item_reproduces_the_recorded_file_shares() -> None:
    recorded = load("recoveryservicesbackup/2021-12-01/azure-cli-recording.BackupProtectedItems_List.afs"
                    ".response.json")["value"]
    vault = cli_vault()
    for entry, policy in zip(recorded, ["clitest-item000007", "clitest-item000006"], strict=True):
        made = make_protected_item(vault=vault, friendly_name=entry["properties"]["friendlyName"],
                                   item_type="AzureFileshareProtectedItem", container="clitest000003",
                                   protection_state="IRPending", policy=policy)
        # The share's part of the name is a hash of Azure's own making.
        made["id"] = made["id"].replace(made["name"], entry["name"])
        made["name"] = entry["name"]
        assert json.dumps(made) == json.dumps(entry)
        assert "healthStatus" not in made["properties"]  # file shares have no health field


def test_make_protected_item_reproduces_the_recorded_sql_database() -> None:
    recorded = load("recoveryservicesbackup/2022-02-01/azure-cli-recording.ProtectedItems_Get.sql-database"
                    ".response.json")
    error = recorded["properties"]["lastBackupErrorDetail"]["message"]
    made = make_protected_item(vault=cli_vault("sql-clitest-rg", "sql-clitestvault-donotuse"), friendly_name="msdb",
                               item_type="AzureVmWorkloadSQLDatabaseProtectedItem", container="sql-clitestvm-donotuse",
                               protection_state="IRPending", last_backup_status="IRPending",
                               last_backup_time="2022-05-16T06:36:52.2539633Z", last_backup_error=error,
                               policy="HourlyLogBackup")
    made["properties"]["protectedItemDataSourceId"] = recorded["properties"]["protectedItemDataSourceId"]
    assert json.dumps(made) == json.dumps(recorded)  # serverName cut to 15 characters, as recorded


def test_the_spec_example_fits_the_spec_fields() -> None:
    example = load("recoveryservicesbackup/2025-08-01/BackupProtectedItems_List.json")
    properties = example["responses"]["200"]["body"]["value"][0]["properties"]
    assert set(properties) <= SPEC_BASE | SPEC_OWN[properties["protectedItemType"]]


T1 = T0 - timedelta(hours=20)
ITEM_TYPE_CASES = [
    # (item_type argument, wire type, (status path, time path, health path) or None where the type has none)
    ("AzureIaaSVMProtectedItem", "Microsoft.Compute/virtualMachines",
     (("lastBackupStatus",), ("lastBackupTime",), ("healthStatus",))),
    ("Microsoft.ClassicCompute/virtualMachines", "Microsoft.ClassicCompute/virtualMachines",
     (("lastBackupStatus",), ("lastBackupTime",), ("healthStatus",))),
    ("AzureFileShareProtectedItem", "AzureFileShareProtectedItem", (("lastBackupStatus",), ("lastBackupTime",), None)),
    ("AzureVmWorkloadSQLDatabase", "AzureVmWorkloadSQLDatabase",
     (("lastBackupStatus",), ("lastBackupTime",), ("protectedItemHealthStatus",))),
    ("AzureVmWorkloadSAPHanaDatabaseProtectedItem", "AzureVmWorkloadSAPHanaDatabase",
     (("lastBackupStatus",), ("lastBackupTime",), ("protectedItemHealthStatus",))),
    ("MabFileFolderProtectedItem", "MabFileFolderProtectedItem", (("lastBackupStatus",), ("lastBackupTime",), None)),
    ("DPMProtectedItem", "DPMProtectedItem", (("extendedInfo", "lastBackupStatus"), None, None)),
    ("Microsoft.Contoso/futureThings", "Microsoft.Contoso/futureThings",
     (("lastBackupStatus",), ("lastBackupTime",), ("healthStatus",))),
]
HEALTH_FIELDS = {"healthStatus", "protectedItemHealthStatus"}


def dig(properties: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = properties
    for key in path:
        value = value[key]
    return value


@pytest.mark.parametrize(("item_type", "wire_type", "placement"), ITEM_TYPE_CASES,
                         ids=[case[0] for case in ITEM_TYPE_CASES])
def test_each_item_type_carries_its_fields_where_the_spec_puts_them(
        item_type: str, wire_type: str, placement: tuple[tuple[str, ...], ...]) -> None:
    vault = FakeEstate().add_vault(SUB, "rg-a", "vault-a")
    resource = make_protected_item(vault=vault, item_type=item_type, friendly_name="item-1", last_backup_status="Sx",
                                   last_backup_time=T1, last_recovery_point=T0, health_status="Hx", policy="Daily",
                                   container="host-1", backup_management_type="AzureIaasVM" if "Contoso" in item_type
                                   else None)
    properties = resource["properties"]
    assert properties["protectedItemType"] == wire_type
    assert resource["type"] == PROTECTED_ITEM_RESOURCE_TYPE
    assert re.fullmatch(rf"{re.escape(vault.id)}/backupFabrics/Azure/protectionContainers/[^/]+/protectedItems/"
                        rf"{re.escape(resource['name'])}", resource["id"])
    if wire_type in SPEC_OWN:
        assert set(properties) <= SPEC_BASE | SPEC_OWN[wire_type]
    status_path, time_path, health_path = placement
    assert dig(properties, status_path) == "Sx"
    assert (properties.get("lastBackupTime") if time_path else None) == (
        "2026-11-19T17:05:00Z" if time_path else None)
    assert {field for field in HEALTH_FIELDS if field in properties} == ({health_path[0]} if health_path else set())
    if health_path:
        assert dig(properties, health_path) == "Hx"
    assert properties["lastRecoveryPoint"] == "2026-11-20T13:05:00Z"
    assert properties["policyId"] == f"{vault.id}/backupPolicies/Daily"
    assert properties["friendlyName"] == "item-1"


@pytest.mark.parametrize(("item_type", "management", "workload"), [
    ("AzureIaaSVMProtectedItem", "AzureIaasVM", "VM"),
    ("AzureFileshareProtectedItem", "AzureStorage", "AzureFileShare"),
    ("AzureVmWorkloadSQLDatabase", "AzureWorkload", "SQLDataBase"),
    ("AzureVmWorkloadSAPHanaDatabase", "AzureWorkload", "SAPHanaDatabase"),
    ("MabFileFolderProtectedItem", "MAB", "FileFolder"), ("DPMProtectedItem", "DPM", "SQLDB"),
])
def test_item_types_default_their_management_and_workload_types(item_type: str, management: str,
                                                                 workload: str) -> None:
    vault = FakeEstate().add_vault(SUB, "rg-a", "vault-a")
    properties = make_protected_item(vault=vault, item_type=item_type, friendly_name="x")["properties"]
    assert (properties["backupManagementType"], properties["workloadType"]) == (management, workload)
    overridden = make_protected_item(vault=vault, item_type=item_type, friendly_name="x",
                                     backup_management_type="AzureBackupServer", workload_type="Exchange")
    assert (overridden["properties"]["backupManagementType"], overridden["properties"]["workloadType"]) == (
        "AzureBackupServer", "Exchange")


def test_specific_fields_of_each_family() -> None:
    vault = FakeEstate().add_vault(SUB, "rg-a", "vault-a")
    vm = make_protected_item(vault=vault, friendly_name="vm-1", last_backup_status="Failed", last_backup_time=T1,
                             health_status="ActionRequired", last_backup_error="no agent", policy="P")["properties"]
    assert vm["virtualMachineId"] == vm["sourceResourceId"] == (
        f"/subscriptions/{SUB}/resourceGroups/rg-a/providers/Microsoft.Compute/virtualMachines/vm-1")
    assert (vm["policyName"], vm["healthDetails"][0]["message"], vm["protectionStatus"]) == ("P", "no agent",
                                                                                              "Unhealthy")
    mab = make_protected_item(vault=vault, item_type="MabFileFolderProtectedItem", friendly_name="C:\\",
                              container="fs01.contoso.local")["properties"]
    assert mab["computerName"] == "fs01.contoso.local"
    dpm = make_protected_item(vault=vault, item_type="DPMProtectedItem", friendly_name="SQL01\\Finance",
                              container="dpm01", last_backup_time=T1, last_backup_status="Completed")["properties"]
    assert "lastBackupTime" not in dpm and "lastBackupStatus" not in dpm  # DPM items have neither at the top
    assert set(dpm["extendedInfo"]) <= SPEC_DPM_EXTENDED_INFO and dpm["backupEngineName"] == "dpm01"
    hana = make_protected_item(vault=vault, item_type="AzureVmWorkloadSAPHanaDatabase", friendly_name="HXE",
                               container="vm-hana-01", last_backup_status="Unhealthy", last_backup_error="log chain")
    assert hana["name"] == "SAPHanaDatabase;hxe;hxe"
    assert hana["properties"]["protectedItemHealthStatus"] == "Unhealthy"
    assert hana["properties"]["lastBackupErrorDetail"]["message"] == "log chain"
    with pytest.raises(ValueError, match="not an Azure timestamp"):
        make_protected_item(vault=vault, friendly_name="vm", last_backup_time="yesterday")


def test_never_backed_up_items_read_as_azure_shows_them() -> None:
    vault = FakeEstate().add_vault(SUB, "rg-a", "vault-a")

    def fresh(item_type: str) -> dict[str, Any]:
        return dict(make_protected_item(vault=vault, item_type=item_type, friendly_name="new",
                                        protection_state="IRPending")["properties"])

    assert (fresh("AzureIaaSVMProtectedItem")["lastBackupStatus"],
            fresh("AzureIaaSVMProtectedItem")["lastBackupTime"]) == ("", NEVER_BACKED_UP)
    assert fresh("AzureFileShareProtectedItem")["lastBackupStatus"] == "IRPending"
    workload = fresh("AzureVmWorkloadSQLDatabase")
    assert (workload["lastBackupStatus"], workload["protectedItemHealthStatus"]) == ("IRPending", "IRPending")
    for item_type in ("AzureFileShareProtectedItem", "AzureVmWorkloadSQLDatabase", "MabFileFolderProtectedItem"):
        assert "lastBackupTime" not in fresh(item_type) and "lastRecoveryPoint" not in fresh(item_type)


def items_path(estate: FakeEstate, vault_name: str) -> str:
    return f"{estate.vault(vault_name).id}/backupProtectedItems"


def add_items(estate: FakeEstate, vault_name: str, count: int, *, item_type: str = "AzureIaaSVMProtectedItem",
              prefix: str = "vm") -> list[str]:
    """`count` items named {prefix}-00.. with a backup each; returns their resource names."""
    vault = estate.vault(vault_name)
    names = []
    for number in range(count):
        item = make_protected_item(vault=vault, item_type=item_type, friendly_name=f"{prefix}-{number:02d}",
                                   last_backup_status="Completed", last_backup_time=T0 - timedelta(hours=number))
        estate.add_item(vault_name, item)
        names.append(item["name"])
    return names


def listed_items(arm: FakeArm, estate: FakeEstate, vault_name: str, **params: str) -> list[dict[str, Any]]:
    first = get(arm, items_path(estate, vault_name), **params)
    assert first.status_code == 200, first.text
    return [item for page in all_pages(arm, first) for item in page["value"]]


def test_the_items_list_serves_the_stored_items(arm: FakeArm, estate: FakeEstate) -> None:
    add_items(estate, "vault-a", 2)
    add_items(estate, "vault-b", 1, prefix="other")
    reply = get(arm, items_path(estate, "vault-a"))
    assert reply.status_code == 200
    assert reply.json() == {"value": estate.items("vault-a")}  # no nextLink when one page holds them all
    assert reply.headers["x-ms-ratelimit-remaining-subscription-resource-requests"]  # the Backup RP's budget
    odd_case = items_path(estate, "vault-a").replace("backupProtectedItems", "BACKUPPROTECTEDITEMS")
    assert len(get(arm, odd_case).json()["value"]) == 2


def test_item_paging_returns_every_item_once_with_the_jobs_quirks(arm: FakeArm, estate: FakeEstate) -> None:
    names = add_items(estate, "vault-a", 10)
    first = get(arm, items_path(estate, "vault-a"))
    pages = all_pages(arm, first)
    assert [len(page["value"]) for page in pages] == [3, 3, 3, 1]
    assert [item["name"] for page in pages for item in page["value"]] == sorted(names, key=str.lower)
    next_link = pages[0]["nextLink"]
    assert next_link.startswith(f"{arm.url}{items_path(estate, 'vault-a')}?api-version=2017-07-01&")
    assert "&%24skiptoken=%3c%3fxml+version%3d%221.0%22+encoding%3d%22utf-16%22%3f%3e%0d%0a%3cContinuationToken" \
        in next_link
    assert [r.query.get("api-version") for r in arm.requests.to("/backupProtectedItems")][1] == "2017-07-01"


@pytest.mark.parametrize("mangle", [_double_encoded, _altered, _crlf_normalised, _filter_dropped],
                         ids=["double-encoded", "altered", "crlf-normalised", "filter-dropped"])
def test_a_mangled_item_skiptoken_is_refused(arm: FakeArm, estate: FakeEstate, mangle: Callable[[str], str]) -> None:
    add_items(estate, "vault-a", 5)
    next_link = get(arm, items_path(estate, "vault-a"), **{"$filter": "backupManagementType eq 'AzureIaasVM'"}
                    ).json()["nextLink"]
    mangled = mangle(next_link)
    assert mangled != next_link
    refused = get(arm, mangled)
    assert (refused.status_code, error_code(refused)) == (400, "BMSUserErrorInvalidInput")
    assert get(arm, next_link).status_code == 200


def test_a_skiptoken_only_continues_its_own_list(arm: FakeArm, estate: FakeEstate) -> None:
    add_items(estate, "vault-a", 5)
    add_backups(estate, "vault-a", 5)
    items_link = get(arm, items_path(estate, "vault-a")).json()["nextLink"]
    jobs_link = get(arm, jobs_path(estate, "vault-a")).json()["nextLink"]
    assert get(arm, items_link.replace("/backupProtectedItems?", "/backupJobs?")).status_code == 400
    assert get(arm, jobs_link.replace("/backupJobs?", "/backupProtectedItems?")).status_code == 400
    elsewhere = items_link.replace("/resourceGroups/rg-a/", "/resourceGroups/rg-b/").replace("vault-a", "vault-b")
    assert get(arm, elsewhere).status_code == 400


@pytest.fixture
def mixed_items(estate: FakeEstate) -> FakeEstate:
    add_items(estate, "vault-a", 2)
    add_items(estate, "vault-a", 1, item_type="AzureFileShareProtectedItem", prefix="share")
    add_items(estate, "vault-a", 1, item_type="AzureVmWorkloadSQLDatabase", prefix="db")
    return estate


@pytest.mark.parametrize(("odata", "expected"), [
    ("", {"vm-00", "vm-01", "share-00", "db-00"}),
    ("backupManagementType eq 'AzureStorage'", {"share-00"}),
    ("backupManagementType eq 'AzureIaasVM' and itemType eq 'VM'", {"vm-00", "vm-01"}),  # the CLI's own filter
    ("itemType eq 'sqldatabase'", {"db-00"}),
    ("backupManagementType eq 'AzureWorkload' and itemType eq 'AzureFileShare'", set()),
    ("friendlyName eq 'VM-01'", {"vm-01"}),
])
def test_item_filters_select_like_the_service(arm: FakeArm, mixed_items: FakeEstate, odata: str,
                                              expected: set[str]) -> None:
    items = listed_items(arm, mixed_items, "vault-a", **({"$filter": odata} if odata else {}))
    assert {item["properties"]["friendlyName"] for item in items} == expected


@pytest.mark.parametrize("odata", ["itemType eq 'Disk'", "backupManagementType eq 'Azure'", "status eq 'Failed'",
                                   "itemType eq 'VM' or itemType eq 'SQLDB'", "itemType ne 'VM'"])
def test_bad_item_filters_are_refused(arm: FakeArm, estate: FakeEstate, odata: str) -> None:
    refused = get(arm, items_path(estate, "vault-a"), **{"$filter": odata})
    assert (refused.status_code, error_code(refused)) == (400, "BMSUserErrorInvalidInput")


def test_the_items_list_checks_the_api_version(arm: FakeArm, estate: FakeEstate) -> None:
    wrong = get(arm, items_path(estate, "vault-a"), **{"api-version": "2026-08-01"})  # a vaults-only version
    assert (wrong.status_code, error_code(wrong)) == (400, "NoRegisteredProviderFound")
    assert "'vaults/backupProtectedItems'" in wrong.json()["error"]["message"]
    assert get(arm, items_path(estate, "vault-a"), **{"api-version": "2025-08-01"}).status_code == 200


@pytest.mark.parametrize("fault", [Fault("status", status=503, code="ServiceUnavailable"), Fault("throttle"),
                                   Fault.authorization_failed(), Fault.resource_not_found()],
                         ids=["status", "throttle", "forbidden", "gone"])
def test_a_fault_for_every_operation_hits_the_items_list(arm: FakeArm, estate: FakeEstate, fault: Fault) -> None:
    arm.set_fault("vault-a", fault)
    refused = get(arm, items_path(estate, "vault-a"))
    assert refused.status_code == (fault.status if fault.kind == "status" else 429)
    assert get(arm, items_path(estate, "vault-b")).status_code == 200


def test_item_faults_read_like_arms_and_can_target_items_alone(arm: FakeArm, estate: FakeEstate) -> None:
    add_items(estate, "vault-a", 5)
    arm.set_fault("vault-a", Fault.authorization_failed(times=1))
    message = get(arm, items_path(estate, "vault-a")).json()["error"]["message"]
    assert "perform action 'Microsoft.RecoveryServices/Vaults/backupProtectedItems/read'" in message
    arm.set_fault("vault-a", Fault("status", operations=frozenset({"items_next_page"})))
    first = get(arm, items_path(estate, "vault-a"))
    assert (first.status_code, get(arm, first.json()["nextLink"]).status_code) == (200, 500)
    assert get(arm, jobs_path(estate, "vault-a")).status_code == 200
    arm.set_fault("vault-a", Fault("status", operations=frozenset({"jobs_list"})))
    assert get(arm, items_path(estate, "vault-a")).status_code == 200


def test_malformed_and_offhost_faults_apply_to_the_items_list(arm: FakeArm, estate: FakeEstate) -> None:
    add_items(estate, "vault-a", 1)
    arm.set_fault("vault-a", Fault("malformed", times=1))
    with pytest.raises(ValueError, match=r"Expecting|Unterminated|Extra data"):
        get(arm, items_path(estate, "vault-a")).json()
    evil = "https://attacker.example/items"
    arm.set_fault("vault-a", Fault("offhost_nextlink", url=evil, operations=frozenset({"items_list"})))
    assert get(arm, items_path(estate, "vault-a")).json()["nextLink"] == evil
    assert "nextLink" not in get(arm, jobs_path(estate, "vault-a")).json()


def test_items_are_added_updated_and_removed_by_name_in_any_case(arm: FakeArm, estate: FakeEstate) -> None:
    [name] = add_items(estate, "vault-a", 1)
    estate.update_item("vault-a", name.upper(), lastBackupStatus="Failed", lastRecoveryPoint=None)
    [served] = get(arm, items_path(estate, "vault-a")).json()["value"]
    assert served["properties"]["lastBackupStatus"] == "Failed" and "lastRecoveryPoint" not in served["properties"]
    replacement = make_protected_item(vault=estate.vault("vault-a"), friendly_name="vm-00", last_backup_status="x")
    replacement["name"] = name.upper()
    estate.add_item("VAULT-A", replacement)  # the same item again, in another case: it replaces the first
    assert [item["name"] for item in estate.items("vault-a")] == [name.upper()]
    assert estate.item("vault-a", name)["properties"]["lastBackupStatus"] == "x"  # type: ignore[index]
    estate.remove_item("vault-a", name.lower())
    assert get(arm, items_path(estate, "vault-a")).json() == {"value": []}
    assert estate.item("vault-a", name) is None
    with pytest.raises(KeyError):
        estate.update_item("vault-a", name, lastBackupStatus="Failed")
    with pytest.raises(ValueError, match="needs a 'name'"):
        estate.add_item("vault-a", {"properties": {}})


def test_two_items_may_share_a_name_in_different_containers(arm: FakeArm, estate: FakeEstate) -> None:
    # A database `master` on two SQL VMs of one vault: one resource name, two containers, two ids.
    vault = estate.vault("vault-a")
    twins = [make_protected_item(vault=vault, item_type="AzureVmWorkloadSQLDatabase", friendly_name="master",
                                 container=host, last_backup_status="Healthy", last_backup_time=T1)
             for host in ("vm-sql-03", "vm-sql-04")]
    # Two shares, listed before them ("AzureFileShare;..."): page size 3 puts the twins on two pages.
    extra = add_items(estate, "vault-a", 2, item_type="AzureFileShareProtectedItem", prefix="share")
    for twin in twins:
        estate.add_item("vault-a", twin)
    assert twins[0]["name"] == twins[1]["name"] == "SQLDataBase;mssqlserver;master"
    assert twins[0]["id"] != twins[1]["id"]
    listed = [item for page in all_pages(arm, get(arm, items_path(estate, "vault-a"))) for item in page["value"]]
    assert [item["name"] for item in listed] == [*sorted(extra, key=str.lower), twins[0]["name"], twins[1]["name"]]
    assert [item["properties"]["serverName"] for item in listed[2:]] == ["vm-sql-03", "vm-sql-04"]
    assert listed[2]["properties"]["protectedItemDataSourceId"] != listed[3]["properties"]["protectedItemDataSourceId"]
    with pytest.raises(ValueError, match="look one up by its id"):
        estate.item("vault-a", "SQLDataBase;mssqlserver;master")
    estate.update_item("vault-a", twins[1]["id"].upper(), lastBackupStatus="Unhealthy")
    assert estate.item("vault-a", twins[1]["id"])["properties"]["lastBackupStatus"] == "Unhealthy"  # type: ignore[index]
    assert estate.item("vault-a", twins[0]["id"])["properties"]["lastBackupStatus"] == "Healthy"  # type: ignore[index]
    estate.add_item("vault-a", twins[0])  # the same id again: replaced, not added
    estate.remove_item("vault-a", twins[1]["id"])
    assert [item["id"] for item in estate.items("vault-a") if item["name"] == twins[0]["name"]] == [twins[0]["id"]]
    assert estate.item("vault-a", "sqldatabase;MSSQLSERVER;master")["id"] == twins[0]["id"]  # type: ignore[index]


def _recorded_session(name: str) -> dict[str, Any]:
    """The first (last-seen) vault of a whole recorded CLI session in fixtures/azure/real-recordings."""
    [path] = (FIXTURES / "real-recordings").glob(f"cli-{name}-*.json")
    vault: dict[str, Any] = json.loads(path.read_text())["vaults"][0]
    return vault


def test_workload_job_name_writes_the_real_forms() -> None:
    sql = _recorded_session("test_backup_wl_sql_protection")
    [item] = [entry["properties"] for entry in sql["protected_items"]]
    [backup] = [job["properties"] for job in sql["jobs_list"] if job["properties"]["operation"] == "Backup (Full)"]
    made = workload_job_name(item["parentName"], item["friendlyName"], item["serverName"])
    assert made == backup["entityFriendlyName"] == "MSSQLSERVER/testdb1 [pstestwlvm1bca8]"
    # HANA and SAP ASE as seen in real estates (issue 10).
    assert workload_job_name("H22", "H22", "HANADemoIDC3") == "H22/H22 [HANADemoIDC3]"
    assert workload_job_name("ab4", "asetestdb1", "ase-ccy-vm5", separator=";") == "ab4;asetestdb1 [ase-ccy-vm5]"


def test_workload_items_name_their_parent_and_server() -> None:
    # The recorded HANA items of system H22 (test_backup_wl_hana_item): the tenant h22, SYSTEMDB and others.
    hana = _recorded_session("test_backup_wl_hana_item")
    recorded = [entry for entry in hana["protected_items"] if entry["properties"]["parentName"] == "H22"]
    assert {entry["properties"]["friendlyName"] for entry in recorded} >= {"h22", "systemdb"}
    vault = cli_vault("idcdemo", "IDCDemoVault")
    made = {}
    for entry in recorded:
        properties = entry["properties"]
        friendly = properties["friendlyName"]
        extra = {} if friendly == "h22" else {"parent_name": "H22"}  # the tenant named like its system needs none
        made[friendly] = make_protected_item(vault=vault, item_type="AzureVmWorkloadSAPHanaDatabase",
                                             friendly_name=friendly, container="HANADemoIDC3", **extra)
        ours = made[friendly]["properties"]
        assert made[friendly]["name"] == entry["name"]
        for field in ("friendlyName", "serverName", "parentName", "parentType", "protectedItemType", "workloadType"):
            assert ours[field] == properties[field], (friendly, field)
    assert made["h22"]["properties"]["protectedItemDataSourceId"] != (
        made["systemdb"]["properties"]["protectedItemDataSourceId"])
    without_parent = make_protected_item(vault=vault, item_type="AzureVmWorkloadSAPHanaDatabase",
                                         friendly_name="systemdb", container="HANADemoIDC3")
    assert without_parent["properties"]["parentName"] == "SYSTEMDB"  # a SYSTEMDB needs parent_name
    sql = make_protected_item(vault=vault, item_type="AzureVmWorkloadSQLDatabase", friendly_name="testdb1",
                              container="pstestwlvm1bca8")["properties"]
    assert (sql["parentName"], sql["parentType"], sql["serverName"]) == ("MSSQLSERVER", "AzureVmWorkloadSQLInstance",
                                                                         "pstestwlvm1bca8")
    named = make_protected_item(vault=vault, item_type="AzureVmWorkloadSQLDatabase", friendly_name="testdb1",
                                container="pstestwlvm1bca8", parent_name="SQLEXPRESS")
    assert (named["name"], named["properties"]["parentName"]) == ("SQLDataBase;sqlexpress;testdb1", "SQLEXPRESS")
    # A whole containerName, as Azure writes it (lower case): its last part is the host.
    whole = make_protected_item(vault=vault, item_type="AzureVmWorkloadSAPHanaDatabase", friendly_name="h20",
                                container="VMAppContainer;compute;idcdemo;hanademoidc1")
    assert whole["properties"]["containerName"] == "VMAppContainer;compute;idcdemo;hanademoidc1"
    assert whole["properties"]["serverName"] == "hanademoidc1"
    assert whole["properties"]["sourceResourceId"].endswith("/providers/Microsoft.Compute/virtualMachines/hanademoidc1")
    assert whole["id"].endswith("/protectionContainers/VMAppContainer;compute;idcdemo;hanademoidc1"
                                "/protectedItems/SAPHanaDatabase;h20;h20")


# --- the managed-identity endpoint -----------------------------------------------------------------


def test_identity_endpoint_checks_header_and_api_version() -> None:
    with FakeArm(FakeEstate(), clock=lambda: 1_800_000_000.5) as arm:
        def token(headers: dict[str, str], **params: str) -> requests.Response:
            query = {"api-version": "2019-08-01", "resource": "https://management.azure.com", **params}
            return requests.get(arm.identity_endpoint, params=query, headers=headers, timeout=5)

        assert token({}).status_code == 401
        assert token({"X-IDENTITY-HEADER": "guess"}).json()["error"] == "invalid_request"
        good = {"X-IDENTITY-HEADER": arm.identity_header}
        assert token(good, **{"api-version": "2018-02-01"}).status_code == 400
        issued = token(good).json()
        assert issued == {"access_token": arm.token, "expires_on": "1800003600", "resource":
                          "https://management.azure.com", "token_type": "Bearer", "client_id": issued["client_id"]}


@pytest.fixture
def identity_env(monkeypatch: pytest.MonkeyPatch, arm: FakeArm) -> FakeArm:
    """Point azure-identity at the fake (never let it probe the real IMDS address)."""
    for name in ("AZURE_CLIENT_ID", "MSI_ENDPOINT", "MSI_SECRET", "IDENTITY_SERVER_THUMBPRINT", "IMDS_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in arm.identity_env().items():
        monkeypatch.setenv(name, value)
    return arm


def test_azure_identity_gets_a_token_that_arm_accepts(identity_env: FakeArm, estate: FakeEstate) -> None:
    arm = identity_env
    access = ManagedIdentityCredential().get_token("https://management.azure.com/.default")
    assert access.token == arm.token
    assert access.expires_on > time.time() + 3000
    sent = arm.requests.to("/msi/token")[0]
    assert sent.headers["x-identity-header"] == arm.identity_header
    assert sent.query["resource"] == "https://management.azure.com"
    assert get(arm, jobs_path(estate, "vault-a"), token=access.token).status_code == 200


def test_identity_fault_401_with_an_empty_body(identity_env: FakeArm) -> None:
    arm = identity_env
    arm.identity_fault = Fault("status", status=401, times=1)
    # The reason this fault exists: azure-identity lets a raw JSONDecodeError escape on it.
    with pytest.raises(json.JSONDecodeError):
        ManagedIdentityCredential().get_token("https://management.azure.com/.default")
    assert arm.requests.to("/msi/token")[-1].status == 401
    assert arm.identity_fault is None
    assert ManagedIdentityCredential().get_token("https://management.azure.com/.default").token == arm.token


def test_identity_fault_500_answers_500(arm: FakeArm) -> None:
    arm.identity_fault = Fault("status", status=500)
    reply = requests.get(arm.identity_endpoint, params={"api-version": "2019-08-01", "resource": "x"},
                         headers={"X-IDENTITY-HEADER": arm.identity_header}, timeout=5)
    assert (reply.status_code, reply.content) == (500, b"")


# --- headers, recording, robustness ---------------------------------------------------------------


def test_replies_carry_arms_headers_and_spend_the_rate_limit(arm: FakeArm, estate: FakeEstate) -> None:
    path = jobs_path(estate, "vault-a")
    first = requests.get(arm.url + path, params={"api-version": API}, timeout=5,
                         headers={"Authorization": f"Bearer {arm.token}", "x-ms-correlation-request-id": "corr-1"})
    second = get(arm, path)
    assert first.headers["Content-Type"] == "application/json; charset=utf-8"
    assert first.headers["x-ms-correlation-request-id"] == "corr-1"
    assert first.headers["x-ms-request-id"] != second.headers["x-ms-request-id"]
    remaining = "x-ms-ratelimit-remaining-subscription-resource-requests"
    assert (int(first.headers[remaining]), int(second.headers[remaining])) == (249, 248)
    assert get(arm, estate.vault("vault-a").id).headers["x-ms-ratelimit-remaining-subscription-reads"] == "247"
    assert arm.ratelimit_remaining == 247


SUB_OTHER = "5a6b7c8d-1e2f-4a3b-8c9d-0e1f2a3b4c5d"


class ManualClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_each_subscription_has_its_own_read_bucket(arm: FakeArm, estate: FakeEstate) -> None:
    other = estate.add_vault(SUB_OTHER, "rg-c", "vault-c")
    remaining = "x-ms-ratelimit-remaining-subscription-resource-requests"
    assert [get(arm, jobs_path(estate, "vault-a")).headers[remaining] for _ in range(3)] == ["249", "248", "247"]
    assert get(arm, f"{other.id}/backupJobs").headers[remaining] == "249"  # another subscription's bucket
    assert (arm.ratelimit_remaining_for(SUB), arm.ratelimit_remaining_for(SUB_OTHER)) == (247, 249)
    assert arm.ratelimit_remaining == 249  # the bucket read last
    assert arm.ratelimit_remaining_for("00000000-0000-0000-0000-000000000000") == 250  # untouched


def test_an_enforced_empty_bucket_answers_arms_429_until_it_refills(estate: FakeEstate) -> None:
    other = estate.add_vault(SUB_OTHER, "rg-c", "vault-c")
    clock = ManualClock()
    with FakeArm(estate, clock=clock, ratelimit_capacity=2, ratelimit_refill=0.5, enforce_ratelimit=True) as arm:
        assert [get(arm, jobs_path(estate, "vault-a")).status_code for _ in range(2)] == [200, 200]
        throttled = get(arm, jobs_path(estate, "vault-a"))
        assert (throttled.status_code, error_code(throttled), throttled.headers["Retry-After"]) == (
            429, "SubscriptionRequestsThrottled", "2")  # one read back takes 2 s at 0.5/s
        assert throttled.json()["error"]["message"] == (
            f"Number of 'read' requests for subscription '{SUB}' actor '5f1c2a8e-0d3b-4c7a-9e61-2b8d4f0a7c13' "
            "exceeded. Please try again after '2' seconds after additional tokens are available. Refer to "
            "https://aka.ms/arm-throttling for additional information.")
        assert throttled.headers["x-ms-ratelimit-remaining-subscription-resource-requests"] == "0"
        assert get(arm, estate.vault("vault-a").id).status_code == 429  # every read of the subscription
        assert get(arm, f"{other.id}/backupJobs").status_code == 200  # other subscriptions are not affected
        assert get(arm, jobs_path(estate, "vault-a"), token="stolen").status_code == 401  # no principal, no bucket
        clock.now += 2
        refilled = get(arm, jobs_path(estate, "vault-a"))
        assert (refilled.status_code, refilled.headers["x-ms-ratelimit-remaining-subscription-resource-requests"]) \
            == (200, "0")
        assert get(arm, jobs_path(estate, "vault-a")).status_code == 429
        clock.now += 3600
        assert arm.ratelimit_remaining_for(SUB) == 2  # never more than the capacity


def test_without_enforcement_the_bucket_only_counts_down(estate: FakeEstate) -> None:
    with FakeArm(estate, ratelimit_capacity=1) as arm:
        replies = [get(arm, jobs_path(estate, "vault-a")) for _ in range(3)]
    assert [(r.status_code, r.headers["x-ms-ratelimit-remaining-subscription-resource-requests"])
            for r in replies] == [(200, "0"), (200, "0"), (200, "0")]


def test_stats_count_replies_by_operation_and_status_without_a_token(arm: FakeArm, estate: FakeEstate) -> None:
    serve_stats(arm)  # the test-only route, registered through FakeArm.add_route
    add_backups(estate, "vault-a", 4)  # two pages of 3
    vault_a = estate.vault("vault-a")
    first = get(arm, jobs_path(estate, "vault-a"))
    all_pages(arm, first)
    get(arm, f"{jobs_path(estate, 'vault-a')}/{guid(0)}")
    get(arm, f"{jobs_path(estate, 'vault-a')}/{guid(99)}")
    get(arm, f"{vault_a.id}/backupProtectedItems")
    get(arm, vault_a.id, token="stolen")
    get(arm, "/nowhere")
    requests.get(arm.identity_endpoint, params={"api-version": "2019-08-01", "resource": "https://management.azure.com"},
                 headers={"X-IDENTITY-HEADER": arm.identity_header}, timeout=5)
    reply = requests.get(arm.url + STATS_PATH, timeout=5)  # no token, no api-version
    assert reply.status_code == 200
    stats = reply.json()
    assert "not an Azure API" in stats["test_only"]
    assert stats["requests"] == {
        "jobs_list": {"200": 1}, "jobs_next_page": {"200": 1}, "jobs_get": {"200": 1, "404": 1},
        "items_list": {"200": 1}, "vault_get": {"401": 1}, "unknown": {"404": 1}, "identity": {"200": 1}}
    assert (stats["arm_requests"], stats["arm_throttled"], stats["in_flight"]) == (7, 0, 0)
    assert stats["by_subscription"] == {SUB.lower(): 6, "": 1}
    assert stats["first_arm_request_at"] <= stats["last_arm_request_at"] <= stats["now"]
    assert set(stats["last_at"]) == set(stats["requests"])
    assert stats["ratelimit"] == {"enforced": False, "capacity": 250, "refill_per_second": 0.0,
                                  "remaining": {SUB.lower(): 250 - 6, "": 249}}
    assert len(arm.requests) == 8  # the stats request itself is neither recorded nor counted
    assert requests.post(arm.url + STATS_PATH, timeout=5).status_code == 405


def test_stats_count_429s_and_carry_extra_counters(estate: FakeEstate) -> None:
    with FakeArm(estate, ratelimit_capacity=1, enforce_ratelimit=True, record_requests=False,
                 stats_extra=lambda: {"jobs_finished": 3}) as arm:
        statuses = [get(arm, jobs_path(estate, "vault-a")).status_code for _ in range(3)]
        stats = arm.stats()
    assert statuses == [200, 429, 429]
    assert stats["requests"] == {"jobs_list": {"200": 1, "429": 2}}
    assert (stats["arm_requests"], stats["arm_throttled"], stats["extra"]) == (3, 2, {"jobs_finished": 3})
    assert len(arm.requests) == 0  # not recorded, only counted


def test_a_list_page_is_a_copy_the_caller_cannot_change(arm: FakeArm, estate: FakeEstate) -> None:
    add_backups(estate, "vault-a", 2)
    get(arm, jobs_path(estate, "vault-a"))
    assert all("extendedInfo" in job["properties"] for job in estate.jobs("vault-a"))  # the list strips a copy


def test_requests_are_recorded_with_query_and_headers(arm: FakeArm, estate: FakeEstate) -> None:
    get(arm, jobs_path(estate, "vault-a"), **{"$filter": "status eq 'Failed'"})
    [recorded] = list(arm.requests)
    assert (recorded.method, recorded.path, recorded.status) == ("GET", jobs_path(estate, "vault-a"), 200)
    assert recorded.query == {"api-version": API, "$filter": "status eq 'Failed'"}
    assert recorded.headers["authorization"] == f"Bearer {arm.token}"
    assert "%24filter=status+eq+%27Failed%27" in recorded.raw_query
    arm.requests.clear()
    assert len(arm.requests) == 0


def test_latency_is_added_to_arm_requests(estate: FakeEstate) -> None:
    with FakeArm(estate, latency=0.2) as arm:
        started = time.monotonic()
        get(arm, jobs_path(estate, "vault-a"))
        assert time.monotonic() - started >= 0.2


def test_replies_do_not_wait_for_the_clients_delayed_ack(arm: FakeArm, estate: FakeEstate) -> None:
    # With Nagle's algorithm on, the body (a second write) waits for the ACK of the head, which a Linux
    # client delays by 40 ms: every reply but the first would take that long. The fastest of them shows it.
    with requests.Session() as session:
        timings = []
        for _ in range(8):
            started = time.perf_counter()
            session.get(arm.url + jobs_path(estate, "vault-a"), params={"api-version": API},
                        headers={"Authorization": f"Bearer {arm.token}"}, timeout=5)
            timings.append(time.perf_counter() - started)
    assert min(timings[1:]) < 0.03, timings


def test_the_server_survives_bad_requests_and_its_own_bugs(arm: FakeArm, estate: FakeEstate) -> None:
    port = int(arm.url.rsplit(":", 1)[1])
    for garbage in (b"NOT HTTP AT ALL\r\n\r\n", b"BREW /pot HTTP/1.1\r\n\r\n",
                    b"GET /msi/token HTTP/1.1\r\nContent-Length: lots\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            raw.sendall(garbage)
            assert raw.recv(100), garbage  # some answer, and no dead server
    posted = requests.post(arm.url + jobs_path(estate, "vault-a"), params={"api-version": API}, data=b"{}",
                           headers={"Authorization": f"Bearer {arm.token}"}, timeout=5)
    assert posted.status_code == 405
    estate.vault("vault-a").jobs["broken"] = {"name": "broken", "properties": None}  # a bug-shaped job
    crashed = get(arm, jobs_path(estate, "vault-a"))
    assert (crashed.status_code, error_code(crashed)) == (500, "FakeArmInternalError")
    del estate.vault("vault-a").jobs["broken"]
    assert get(arm, jobs_path(estate, "vault-a")).status_code == 200


def test_update_job_merges_and_removes_properties(arm: FakeArm, estate: FakeEstate) -> None:
    vault = estate.vault("vault-a")
    estate.add_job("vault-a", make_job(guid(1), vault=vault, item="vm", status="InProgress", start=T0, now=T0))
    estate.update_job("vault-a", guid(1), status="Completed", endTime="2026-11-20T13:30:00.1234567Z",
                      duration="PT25M0.1234567S", actionsInfo=None)
    served = get(arm, f"{jobs_path(estate, 'vault-a')}/{guid(1)}").json()["properties"]
    assert (served["status"], served["endTime"], served["duration"]) == (
        "Completed", "2026-11-20T13:30:00.1234567Z", "PT25M0.1234567S")
    assert "actionsInfo" not in served
    with pytest.raises(KeyError):
        estate.update_job("vault-a", guid(2), status="Failed")


def test_stop_returns_promptly_while_a_reply_is_held(estate: FakeEstate) -> None:
    arm = FakeArm(estate).start()
    arm.set_fault("vault-a", Fault("timeout", delay=30))
    with pytest.raises(requests.ReadTimeout):
        get(arm, jobs_path(estate, "vault-a"), timeout=0.1)
    started = time.monotonic()
    arm.stop()
    assert time.monotonic() - started < 2


# --- the demo estate -------------------------------------------------------------------------------


def _demo_jobs(arm: FakeArm, vault_id: str, **params: str) -> list[dict[str, Any]]:
    first = get(arm, f"{vault_id}/backupJobs", **params)
    assert first.status_code == 200, first.text
    return [job for page in all_pages(arm, first) for job in page["value"]]


def test_the_demo_serves_every_shape_a_newcomer_should_see() -> None:
    demo = start_demo(seed=7, speed=1.0)
    try:
        issued = requests.get(demo.identity_endpoint, params={"api-version": "2019-08-01",
                                                              "resource": "https://management.azure.com"},
                              headers={"X-IDENTITY-HEADER": demo.identity_header}, timeout=5).json()
        assert issued["access_token"] == demo.arm.token
        vault_ids = [vault["id"] for sub in demo.subscriptions for vault in get(
            demo.arm, f"/subscriptions/{sub}/providers/Microsoft.RecoveryServices/vaults").json()["value"]]
        assert sorted(vault_ids) == sorted(demo.vault_ids) and len(vault_ids) == 4 and len(demo.subscriptions) == 2
        jobs = [job for vault_id in vault_ids for job in _demo_jobs(demo.arm, vault_id)]
        properties = [job["properties"] for job in jobs]
        assert {p["jobType"] for p in properties} == {"AzureIaaSVMJob", "AzureIaaSVMJobV2", "AzureStorageJob",
                                                      "AzureWorkloadJob", "DpmJob", "MabJob", "VaultJob"}
        assert {"Backup", "Backup (Full)", "Backup (Log)", "Restore", "Restore (Full)", "ConfigureBackup",
                "DeleteBackupData"} <= {p["operation"] for p in properties}
        assert {"Completed", "Failed", "CompletedWithWarnings", "InProgress"} <= {p["status"] for p in properties}
        assert len({p["entityFriendlyName"] for p in properties}) >= 15
        durations = {p["duration"] for p in properties}
        assert any(d.startswith("P") for d in durations) and any(re.match(r"^\d\d:\d\d:\d\d", d) for d in durations)
        latest = {_job_key(p): p["status"] for p in _backups_by_start(jobs)}
        assert "Failed" in set(latest.values())
        done = next(job for job in jobs if job["properties"]["jobType"] == "AzureIaaSVMJob"
                    and job["properties"]["status"] == "Completed" and job["properties"]["operation"] == "Backup")
        details = get(demo.arm, done["id"]).json()["properties"]["extendedInfo"]
        assert re.match(r"^\d+ MB$", details["propertyBag"]["Backup Size"])
        assert [task["taskId"] for task in details["tasksList"]] == ["Take Snapshot", "Transfer data to vault"]
    finally:
        demo.stop()


def test_the_demo_simulator_finishes_jobs_and_always_runs_one() -> None:
    demo = start_demo(seed=11, speed=200.0)
    try:
        since = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%d %I:%M:%S %p")
        deadline = time.monotonic() + 5
        finished: list[dict[str, Any]] = []
        while not finished and time.monotonic() < deadline:
            time.sleep(0.1)
            recent = [job for vault_id in demo.vault_ids
                      for job in _demo_jobs(demo.arm, vault_id, **{"$filter": f"startTime eq '{since}'"})]
            finished = [job for job in recent if job["properties"]["status"] != "InProgress"]
        assert finished, "the simulator finished no job within 5 s at speed 200"
        assert all("endTime" in job["properties"] for job in finished)
        running = [job for vault_id in demo.vault_ids
                   for job in _demo_jobs(demo.arm, vault_id, **{"$filter": "status eq 'InProgress'"})]
        assert running
    finally:
        demo.stop()


def test_the_demo_estate_is_deterministic_given_the_seed() -> None:
    def history(seed: int) -> tuple[list[str], set[str]]:
        demo = start_demo(seed=seed)
        try:
            names = {job["name"] for vault in demo.estate.vaults for job in demo.estate.jobs(vault.name)}
            return demo.subscriptions, names
        finally:
            demo.stop()

    assert history(7) == history(7)
    assert history(7) != history(8)


def _demo_items(arm: FakeArm, vault_id: str) -> list[dict[str, Any]]:
    first = get(arm, f"{vault_id}/backupProtectedItems")
    assert first.status_code == 200, first.text
    return [item for page in all_pages(arm, first) for item in page["value"]]


def _last_backup(properties: dict[str, Any]) -> tuple[str | None, str | None]:
    """(status, time) of an item's last backup, from wherever its type keeps them (DPM: no time at all)."""
    if properties["protectedItemType"] == "DPMProtectedItem":
        return properties["extendedInfo"].get("lastBackupStatus"), None
    return properties.get("lastBackupStatus"), properties.get("lastBackupTime")


def _status_word(properties: dict[str, Any], job_status: str) -> str:
    if properties["protectedItemType"].startswith("AzureVmWorkload"):
        return "Healthy" if job_status in ("Completed", "CompletedWithWarnings") else "Unhealthy"
    return job_status


def _job_key(properties: dict[str, Any]) -> tuple[str, str]:
    """Which item a job is about, from the job alone: its entityFriendlyName (for a database in a VM the real
    form, e.g. 'MSSQLSERVER/master [vm-sql-03]') and, for a file share, its storage account."""
    return properties["entityFriendlyName"], properties.get("storageAccountName", "")


def _item_key(properties: dict[str, Any]) -> tuple[str, str]:
    """The same identity, read from a protected item: a database as its backup jobs name it (HANA jobs write
    the database in upper case), a file share with its storage account, anything else by its name."""
    kind = properties["protectedItemType"]
    if kind.startswith("AzureVmWorkload"):
        database = properties["friendlyName"].upper() if "SAPHana" in kind else properties["friendlyName"]
        return workload_job_name(properties["parentName"], database, properties["serverName"]), ""
    if kind == "AzureFileShareProtectedItem":
        return properties["friendlyName"], properties["containerName"].rsplit(";", 1)[1]
    return properties["friendlyName"], ""


def _demo_key(item: DemoItem) -> tuple[str, str]:
    return item.job_name, (item.container or "") if item.job_type == "AzureStorageJob" else ""


def _backups_by_start(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The backup jobs' properties (operation Backup, or for a database Backup (Full), (Log), ...), oldest
    start first."""
    return sorted((job["properties"] for job in jobs if job["properties"]["operation"].startswith("Backup")),
                  key=lambda p: parse_azure_time(p["startTime"]))


def _assert_items_agree_with_jobs(jobs: list[dict[str, Any]], items: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """Every item with backup jobs has a protected item that tells the same story; returns the items checked
    (by _item_key: names repeat, these identities do not)."""
    by_key = {_item_key(item["properties"]): item["properties"] for item in items}
    assert len(by_key) == len(items), "two protected items with one identity"
    backups = _backups_by_start(jobs)
    assert {_job_key(p) for p in backups} <= set(by_key)
    finished = [p for p in backups if "endTime" in p]
    for key in {_job_key(p) for p in finished}:
        item, mine = by_key[key], [p for p in finished if _job_key(p) == key]
        latest, successes = mine[-1], [p for p in mine if p["status"] in ("Completed", "CompletedWithWarnings")]
        assert item["backupManagementType"] == latest["backupManagementType"], key
        status, time = _last_backup(item)
        assert status == _status_word(item, latest["status"]), key
        assert time in (latest["endTime"], None) and (time is None) == (item["protectedItemType"] == "DPMProtectedItem")
        assert item.get("lastRecoveryPoint") == (successes[-1]["endTime"] if successes else None), key
        if "healthStatus" in item:
            assert item["healthStatus"] == ("ActionRequired" if latest["status"] == "Failed" else "Passed"), key
    return {_job_key(p) for p in finished}


@pytest.mark.parametrize("hour", range(24))
def test_the_demos_failed_and_warned_backups_are_the_latest_at_any_hour(hour: int) -> None:
    # vm-sql-01 backs up at 23:00 for over an hour: around midnight its last slot would still be running.
    now = datetime(2026, 11, 30, hour, 10, tzinfo=UTC)
    builder = _EstateBuilder(random.Random(7), now)
    builder.build()
    jobs = [job for vault in VAULTS for job in builder.estate.jobs(vault.name)]
    finished = [p for p in _backups_by_start(jobs) if "endTime" in p]
    assert all(parse_azure_time(p["endTime"]) < to_ticks(now) for p in finished)
    latest = {_job_key(p): p["status"] for p in finished}
    assert (latest[_demo_key(FAILING_ITEM)], latest[_demo_key(WARNING_ITEM)]) == ("Failed", "CompletedWithWarnings")
    # Two databases named master in one vault: one failing, one fine.
    assert (latest[_demo_key(FAILING_TWIN)], latest[_demo_key(HEALTHY_TWIN)]) == ("Failed", "Completed")


def test_the_demos_protected_items_agree_with_their_jobs() -> None:
    demo = start_demo(seed=7, speed=1.0)
    try:
        jobs = [job for vault_id in demo.vault_ids for job in _demo_jobs(demo.arm, vault_id)]
        items = [item for vault_id in demo.vault_ids for item in _demo_items(demo.arm, vault_id)]
    finally:
        demo.stop()
    checked = _assert_items_agree_with_jobs(jobs, items)
    assert len(checked) >= 20 and len(items) == len(ITEMS)
    by_key = {_item_key(item["properties"]): item["properties"] for item in items}
    assert {p["protectedItemType"] for p in by_key.values()} == {
        "Microsoft.Compute/virtualMachines", "AzureFileShareProtectedItem", "AzureVmWorkloadSQLDatabase",
        "AzureVmWorkloadSAPHanaDatabase", "MabFileFolderProtectedItem", "DPMProtectedItem"}
    assert by_key["vm-sql-01", ""]["healthStatus"] == "ActionRequired"  # the failed latest backup
    assert by_key["vm-files-01", ""]["protectionState"] == "IRPending"  # its initial backup is still running
    assert by_key["vm-files-01", ""]["lastBackupTime"] == NEVER_BACKED_UP
    retired = by_key["vm-legacy-01", ""]
    assert (retired["protectionState"], retired["isScheduledForDeferredDelete"]) == ("ProtectionStopped", True)
    now = datetime.now(UTC)
    stopped = by_key["vm-erp-old-01", ""]  # stopped with its data retained, long without jobs
    assert stopped["protectionState"] == "ProtectionStopped" and "policyId" not in stopped
    assert "vm-erp-old-01" not in {job["properties"]["entityFriendlyName"] for job in jobs}
    assert stopped["lastRecoveryPoint"] == stopped["lastBackupTime"]
    stale = by_key["vm-reporting-01", ""]  # protected, but its only backup is older than any lookback window
    [stale_job] = [job["properties"] for job in jobs if job["properties"]["entityFriendlyName"] == "vm-reporting-01"]
    stale_age = timedelta(microseconds=(to_ticks(now) - parse_azure_time(stale["lastBackupTime"])) // 10)
    assert stale["protectionState"] == "Protected" and stale["lastBackupTime"] == stale_job["endTime"]
    assert timedelta(days=8) < stale_age < timedelta(days=9, minutes=5)
    twins = {p["serverName"]: p for p in by_key.values() if p["friendlyName"] == "master"}
    assert {host: p["lastBackupStatus"] for host, p in twins.items()} == {"vm-sql-03": "Healthy",
                                                                          "vm-sql-04": "Unhealthy"}
    assert twins["vm-sql-04"]["lastBackupErrorDetail"]["message"].startswith("The database log chain is broken")


def _built_demo(now: datetime = datetime(2026, 11, 30, 12, 10, tzinfo=UTC)) -> _EstateBuilder:
    builder = _EstateBuilder(random.Random(7), now)
    builder.build()
    return builder


def test_the_demo_names_databases_as_azure_does() -> None:
    builder = _built_demo()
    jobs = [job["properties"] for vault in VAULTS for job in builder.estate.jobs(vault.name)]
    seen = {(p["entityFriendlyName"], p["operation"]) for p in jobs}
    assert {("MSSQLSERVER/master [vm-sql-03]", "Backup (Full)"), ("MSSQLSERVER/master [vm-sql-04]", "Backup (Full)"),
            ("MSSQLSERVER/SalesDB [vm-sql-02]", "Backup (Full)"), ("MSSQLSERVER/SalesDB [vm-sql-02]", "Backup (Log)"),
            ("MSSQLSERVER/SalesDB [vm-sql-02]", "Restore (Full)"), ("HXE/HXE [vm-hana-01]", "Backup (Full)"),
            ("HXE/SYSTEMDB [vm-hana-01]", "Backup (Full)"),
            ("master", "ConfigureBackup"), ("hxe", "ConfigureBackup")} <= seen  # management jobs: the bare name
    databases = [p for p in jobs if p["jobType"] == "AzureWorkloadJob"]
    for p in databases:
        named_in_full = p["operation"].startswith(("Backup", "Restore"))
        assert bool(re.fullmatch(r"[A-Z]+/\w+ \[vm-[a-z]+-\d\d\]", p["entityFriendlyName"])) == named_in_full, p
        assert p["operation"] != "Backup" or p["status"] == "InProgress", p  # "Backup" only while it runs
    hana = builder.estate.item("rsv-sap-neu", "SAPHanaDatabase;hxe;hxe")
    systemdb = builder.estate.item("rsv-sap-neu", "SAPHanaDatabase;hxe;systemdb")
    assert hana is not None and systemdb is not None
    for item, name in ((hana, "hxe"), (systemdb, "systemdb")):
        assert (item["properties"]["friendlyName"], item["properties"]["parentName"],
                item["properties"]["serverName"]) == (name, "HXE", "vm-hana-01")
    shares = [item["properties"] for item in builder.estate.items("rsv-prod-weu")
              if item["properties"]["friendlyName"] == "shared"]
    assert sorted(share["containerName"].rsplit(";", 1)[1] for share in shares) == ["stprodfiles01", "stprodfiles02"]
    assert [share["lastBackupStatus"] for share in shares] == ["Completed", "Completed"]
    with pytest.raises(ValueError, match="look one up by its id"):
        builder.estate.item("rsv-prod-weu", "SQLDataBase;mssqlserver;master")  # one name, two items


# The identity the exporter gives each demo item (issue 10): (vault, backup_management_type, container,
# backup_item), container being an Azure VM's resource group, a file share's storage account, a database's
# <serverName>/<parentName>, a MARS agent's computer and a DPM item's DPM server.
DEMO_IDENTITIES = {
    ("rsv-prod-weu", "AzureIaasVM", "rg-prod-backup", "vm-web-01"),
    ("rsv-prod-weu", "AzureIaasVM", "rg-prod-backup", "vm-web-02"),
    ("rsv-prod-weu", "AzureIaasVM", "rg-prod-backup", "vm-sql-01"),
    ("rsv-prod-weu", "AzureIaasVM", "rg-prod-backup", "vm-app-01"),
    ("rsv-prod-weu", "AzureIaasVM", "rg-prod-backup", "vm-files-01"),
    ("rsv-prod-weu", "AzureIaasVM", "rg-prod-backup", "vm-erp-old-01"),
    ("rsv-prod-weu", "AzureStorage", "stprodfiles01", "teamshare"),
    ("rsv-prod-weu", "AzureStorage", "stprodfiles01", "shared"),
    ("rsv-prod-weu", "AzureStorage", "stprodfiles02", "shared"),
    ("rsv-prod-weu", "AzureWorkload", "vm-sql-03/MSSQLSERVER", "master"),
    ("rsv-prod-weu", "AzureWorkload", "vm-sql-04/MSSQLSERVER", "master"),
    ("rsv-sap-neu", "AzureWorkload", "vm-hana-01/HXE", "hxe"),
    ("rsv-sap-neu", "AzureWorkload", "vm-hana-01/HXE", "systemdb"),
    ("rsv-sap-neu", "AzureWorkload", "vm-sql-02/MSSQLSERVER", "SalesDB"),
    ("rsv-sap-neu", "AzureIaasVM", "rg-sap", "vm-sap-app-01"),
    ("rsv-branch-eus2", "MAB", "fs01.contoso.local", "fs01.contoso.local"),
    ("rsv-branch-eus2", "MAB", "laptop-ceo", "laptop-ceo"),
    ("rsv-branch-eus2", "DPM", "dpm01.contoso.local", "SQL01\\Finance"),
    ("rsv-branch-eus2", "AzureIaasVM", "rg-branch-offices", "vm-legacy-01"),
    ("rsv-platform-uks", "AzureIaasVM", "rg-platform", "vm-jump-01"),
    ("rsv-platform-uks", "AzureIaasVM", "rg-platform", "vm-reporting-01"),
    ("rsv-platform-uks", "AzureStorage", "stplatformarchive", "archive"),
}


def _exporter_identity(vault: str, properties: dict[str, Any]) -> tuple[str, str, str, str]:
    kind: str = properties["backupManagementType"]
    if kind == "AzureIaasVM":
        container = properties["containerName"].split(";")[1]  # iaasvmcontainerv2;<resource group>;<vm>
    elif kind == "AzureStorage":
        container = properties["containerName"].rsplit(";", 1)[1]  # StorageContainer;storage;<rg>;<account>
    elif kind == "AzureWorkload":
        container = f"{properties['serverName']}/{properties['parentName']}"
    else:
        container = properties["computerName" if kind == "MAB" else "backupEngineName"]  # MAB, DPM
    return vault, kind, container, properties["friendlyName"]


def test_the_demo_items_are_told_apart_by_the_exporters_identity() -> None:
    builder = _built_demo()
    identities = [_exporter_identity(vault.name, item["properties"])
                  for vault in VAULTS for item in builder.estate.items(vault.name)]
    assert len(identities) == len(set(identities)) == len(ITEMS)
    assert set(identities) == DEMO_IDENTITIES
    assert len({item.key for item in ITEMS}) == len(ITEMS)


def test_the_demo_simulator_renames_a_running_database_backup_when_it_finishes() -> None:
    # Azure showed a running SQL backup as "Backup" and the same job, finished, as "Backup (Full)".
    now = datetime(2026, 11, 30, 12, 10, tzinfo=UTC)
    builder = _built_demo(now)
    clock = [now]
    simulator = JobSimulator(builder.estate, random.Random(1), [], clock=lambda: clock[0],
                             protections=builder.protections)
    hxe = demo_item("rsv-sap-neu", "hxe")
    simulator.running.append(_Running(hxe.vault, guid(99), hxe, "Backup", now, now + timedelta(minutes=1)))
    simulator.step()
    running = builder.estate.job(hxe.vault, guid(99))
    assert running is not None
    assert (running["properties"]["entityFriendlyName"], running["properties"]["operation"],
            running["properties"]["status"]) == ("HXE/HXE [vm-hana-01]", "Backup", "InProgress")
    assert running["properties"]["extendedInfo"]["tasksList"] == [{"taskId": "Transfer data to vault",
                                                                    "status": "InProgress"}]
    clock[0] = now + timedelta(minutes=2)
    simulator.step()
    done = builder.estate.job(hxe.vault, guid(99))
    assert done is not None
    assert (done["properties"]["entityFriendlyName"], done["properties"]["operation"]) == (
        "HXE/HXE [vm-hana-01]", "Backup (Full)")
    assert done["properties"]["status"] != "InProgress"
    item = builder.estate.item(hxe.vault, "SAPHanaDatabase;hxe;hxe")
    assert item is not None and item["properties"]["lastBackupTime"] == done["properties"]["endTime"]
    assert builder.protections[hxe.key].last_time == done["properties"]["endTime"]


def test_the_demo_simulator_updates_an_item_when_its_backup_finishes() -> None:
    demo = start_demo(seed=11, speed=200.0)
    try:
        before = {item["id"]: item["properties"].get("lastBackupTime")
                  for vault in demo.estate.vaults for item in demo.estate.items(vault.name)}
        deadline = time.monotonic() + 5
        while demo.simulator.finished_count < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        with demo.estate.lock:  # the simulator changes a job and its item together under this lock
            jobs = [job for vault in demo.estate.vaults for job in demo.estate.jobs(vault.name)]
            items = [item for vault in demo.estate.vaults for item in demo.estate.items(vault.name)]
        _assert_items_agree_with_jobs(jobs, items)
        changed = [item for item in items if item["properties"].get("lastBackupTime") != before[item["id"]]]
        assert changed, "no protected item changed while the simulator finished jobs at speed 200"
        item = changed[0]
        served = {entry["id"]: entry for entry in _demo_items(demo.arm, item["id"].split("/backupFabrics/")[0])}
        assert parse_azure_time(served[item["id"]]["properties"]["lastBackupTime"]) >= parse_azure_time(
            item["properties"]["lastBackupTime"])  # over HTTP too, or newer still
    finally:
        demo.stop()
