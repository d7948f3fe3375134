"""The exporter end to end over real HTTP: fake ARM on loopback, real azure-identity, real client and collector."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from exporter.catalogue import CATALOGUE, VAULT_LABELS
from exporter.models import BACKUP, RECOVERY_SERVICES
from exporter.simulator.fakearm import FakeArm, FakeEstate, FakeVault, Fault, make_job, make_policy, make_protected_item
from exporter.vault import VaultSnapshot

from .conftest import NOW, SUB_A, SUB_B, Exporter, drop_volatile, fixed_clock, steady

GOLDEN = Path(__file__).parent / "golden"
H = timedelta(hours=1)


def _vault_labels(vault: FakeVault) -> dict[str, str]:
    return {"subscription_id": vault.subscription_id, "resource_group": vault.resource_group, "vault": vault.name,
            "vault_type": "recovery_services"}


def _item(vault: FakeVault, item: str, operation: str = "Backup", bmt: str = "AzureIaasVM",
          container: str | None = None) -> dict[str, str]:
    """A job series' labels; an Azure VM's container is its resource group (here the vault's)."""
    return {**_vault_labels(vault), "backup_management_type": bmt,
            "container": vault.resource_group if container is None else container, "backup_item": item,
            "operation": operation}


def _backup(vault: FakeVault, job_id: str, item: str, start: datetime, *, status: str = "Completed",
            minutes: int = 41, **kwargs: object) -> dict[str, object]:
    end = start + timedelta(minutes=minutes) if status != "InProgress" else None
    defaults: dict[str, object] = {"size": "11370 MB", "tasks": [("Take Snapshot", "Completed"),
                                                                ("Transfer data to vault", "Completed")]}
    if status == "InProgress":
        defaults = {"tasks": [("Take Snapshot", "Completed"), ("Transfer data to vault", "InProgress")],
                    "duration": "PT20M"}
    return make_job(job_id, vault=vault, item=item, status=status, start=start, end=end, **{**defaults, **kwargs})


def _guid(n: int) -> str:
    return f"00000000-0000-0000-0000-{n:012d}"


@pytest.fixture
def two_vaults(estate: FakeEstate) -> tuple[FakeVault, FakeVault]:
    a = estate.add_vault(SUB_A, "rg-prod", "vault-prod", "westeurope")
    b = estate.add_vault(SUB_B, "rg-dev", "vault-dev", "northeurope")
    estate.add_job(a.name, _backup(a, _guid(1), "vm-web", NOW - 30 * H))
    estate.add_job(a.name, _backup(a, _guid(2), "vm-web", NOW - 6 * H, status="Failed", size=None,
                                   error="UserErrorGuestAgentStatusUnavailable"))
    estate.add_job(a.name, _backup(a, _guid(3), "vm-db", NOW - 5 * H, status="CompletedWithWarnings",
                                   duration="00:20:23.0896697", size="2332 MB"))
    estate.add_job(a.name, _backup(a, _guid(4), "vm-db", NOW - 2 * H, status="InProgress"))
    estate.add_job(a.name, make_job(_guid(5), vault=a, item="vm-web", operation="Restore", status="Completed",
                                    start=NOW - 3 * H, end=NOW - 2 * H, duration="PT1H"))
    estate.add_job(b.name, make_job(_guid(6), vault=b, item="files-share", status="Completed",
                                    job_type="AzureStorageJob", backup_management_type="AzureStorage",
                                    container="stdevfiles01",
                                    start=NOW - 4 * H, end=NOW - 4 * H + timedelta(minutes=3),
                                    duration="PT3M", size="0 MB"))
    # the protected items behind those jobs, as Azure reports them
    estate.add_policy(a.name, make_policy(vault=a, name="DailyPolicy"))
    estate.add_policy(b.name, make_policy(vault=b, name="FilesDaily", backup_management_type="AzureStorage",
                                          hourly=(4, 12)))
    estate.add_item(a.name, make_protected_item(
        vault=a, friendly_name="vm-web", last_backup_status="Failed", last_backup_time=NOW - 6 * H,
        last_recovery_point=NOW - 30 * H, health_status="ActionRequired", policy="DailyPolicy"))
    estate.add_item(a.name, make_protected_item(
        vault=a, friendly_name="vm-db", last_backup_status="CompletedWithWarnings", last_backup_time=NOW - 5 * H,
        last_recovery_point=NOW - 5 * H, health_status="Passed", policy="DailyPolicy"))
    estate.add_item(b.name, make_protected_item(
        vault=b, item_type="AzureFileShareProtectedItem", friendly_name="files-share", container="stdevfiles01",
        last_backup_status="Completed", last_backup_time=NOW - 4 * H, last_recovery_point=NOW - 4 * H,
        health_status="Passed", policy="FilesDaily"))
    return a, b


def _exporter(make_exporter: Callable[..., Exporter], *vaults: FakeVault, **overrides: str) -> Exporter:
    return make_exporter(fixed_clock(NOW), vaults=",".join(v.id for v in vaults), **overrides)


ALL_SERIES = {"collector_tasks": "true", "collector_job_info": "true", "collector_items": "true",
              "state_series": "all"}


@pytest.mark.parametrize(("golden_name", "overrides"), [("two_vaults.prom", {}),
                                                         ("two_vaults_all_series.prom", ALL_SERIES)])
def test_golden_exposition(two_vaults: tuple[FakeVault, FakeVault], make_exporter: Callable[..., Exporter],
                           request: pytest.FixtureRequest, golden_name: str, overrides: dict[str, str]) -> None:
    exporter = _exporter(make_exporter, *two_vaults, **overrides)
    exporter.scrape()
    text = drop_volatile(exporter.scrape())  # a second scrape: counters stay put when nothing changed
    golden = GOLDEN / golden_name
    if request.config.getoption("--update-golden"):
        golden.write_text(text)
    assert text == golden.read_text()


def test_a_recovery_services_vault_and_a_backup_vault_of_one_name_are_two_label_sets(
        two_vaults: tuple[FakeVault, FakeVault], make_exporter: Callable[..., Exporter],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 13: one of each kind of vault may have the same name in one resource group. vault_type keeps
    their series apart in every vault-scoped family, on the cached path and prometheus_client's alike
    (scrape() compares them and finds no series twice). Every collector on, but only the current states: a
    Backup vault's zero states are its own vocabulary's."""
    exporter = _exporter(make_exporter, *two_vaults, **{**ALL_SERIES, "state_series": "current"})
    exporter.scrape()
    snapshots = exporter.refresher.snapshots

    def with_backup_twins() -> list[VaultSnapshot]:  # each vault again, as a Backup vault of the same name
        return [twin for snap in snapshots() for twin in (snap, replace(snap, ref=replace(snap.ref, kind=BACKUP)))]

    monkeypatch.setattr(exporter.refresher, "snapshots", with_backup_twins)
    text = exporter.scrape()
    by_type: dict[str, set[tuple[str, frozenset[tuple[str, str]], float]]] = {RECOVERY_SERVICES: set(),
                                                                              BACKUP: set()}
    vault_scoped = {spec.name for spec in CATALOGUE if set(VAULT_LABELS) <= set(spec.labels)}
    seen_families = set()
    for family in text_string_to_metric_families(drop_volatile(text)):
        for sample in family.samples:
            if "vault" not in sample.labels:
                continue
            assert family.name in vault_scoped
            seen_families.add(family.name)
            rest = frozenset((k, v) for k, v in sample.labels.items() if k != "vault_type")
            by_type[sample.labels["vault_type"]].add((sample.name, rest, sample.value))
    assert by_type[RECOVERY_SERVICES] and by_type[RECOVERY_SERVICES] == by_type[BACKUP]
    # every vault-scoped family but the failure's (no refresh failed) and the volatile durations
    assert seen_families == vault_scoped - {"azure_backup_vault_scrape_error_info",
                                            "azure_backup_vault_scrape_duration_seconds"}


def test_latest_job_status_and_details(two_vaults: tuple[FakeVault, FakeVault],
                                       make_exporter: Callable[..., Exporter]) -> None:
    prod, dev = two_vaults
    exporter = _exporter(make_exporter, prod, dev)
    exporter.scrape()
    web = _item(prod, "vm-web")
    assert exporter.value("azure_backup_job_last_status", **web, status="Failed") == 1
    # only the current status has a series by default (STATE_SERIES=current)
    assert exporter.value("azure_backup_job_last_status", **web, status="Completed") is None
    # last success survives a newer failure
    assert exporter.value("azure_backup_last_successful_backup_timestamp_seconds",
                          **{k: v for k, v in web.items() if k != "operation"}) == pytest.approx(
        (NOW - 30 * H + timedelta(minutes=41)).timestamp(), abs=1)
    db = _item(prod, "vm-db")
    assert exporter.value("azure_backup_job_last_status", **db, status="InProgress") == 1
    assert exporter.value("azure_backup_job_last_end_timestamp_seconds", **db) is None
    assert exporter.value("azure_backup_job_last_duration_seconds", **db) == 1200
    assert exporter.value("azure_backup_job_last_task_status", **db, task="Transfer data to vault",
                          status="InProgress") == 1
    share = _item(dev, "files-share", bmt="AzureStorage", container="stdevfiles01")
    assert exporter.value("azure_backup_job_last_size_bytes", **share) == 0
    assert exporter.value("azure_backup_vault_info", **_vault_labels(dev), location="northeurope") == 1
    assert exporter.value("azure_backup_up") == 1


def test_job_finishing_between_scrapes_moves_counters_by_exactly_one(
        two_vaults: tuple[FakeVault, FakeVault], estate: FakeEstate, make_exporter: Callable[..., Exporter]) -> None:
    prod, _ = two_vaults
    exporter = _exporter(make_exporter, prod)
    exporter.scrape()
    labels = {**_vault_labels(prod), "backup_management_type": "AzureIaasVM", "operation": "Backup"}
    # Jobs already finished at the first refresh are not counted, but the series exist at 0.
    assert exporter.value("azure_backup_jobs_finished_total", **labels, status="Completed") == 0
    assert exporter.value("azure_backup_jobs_finished_total", **labels, status="Failed") == 0
    assert exporter.value("azure_backup_job_duration_seconds_count", **labels) == 0
    assert exporter.value("azure_backup_transferred_bytes_total", **labels) == 0

    estate.update_job(prod.name, _guid(4), status="Completed", endTime=_azure_time(NOW - H), duration="PT1H",
                      extendedInfo={"tasksList": [], "propertyBag": {"Backup Size": "100 MB"}})
    exporter.scrape()
    assert exporter.value("azure_backup_jobs_finished_total", **labels, status="Completed") == 1
    assert exporter.value("azure_backup_jobs_finished_total", **labels, status="Failed") == 0
    assert exporter.value("azure_backup_job_duration_seconds_count", **labels) == 1
    assert exporter.value("azure_backup_job_duration_seconds_sum", **labels) == 3600
    assert exporter.value("azure_backup_job_duration_seconds_bucket", **labels, le="3600.0") == 1
    assert exporter.value("azure_backup_job_duration_seconds_bucket", **labels, le="1800.0") == 0
    assert exporter.value("azure_backup_transferred_bytes_total", **labels) == 100 * 1024**2
    exporter.scrape()  # relisting the same finished job (the overlap) must not count it twice
    assert exporter.value("azure_backup_jobs_finished_total", **labels, status="Completed") == 1
    assert exporter.value("azure_backup_transferred_bytes_total", **labels) == 100 * 1024**2


def test_job_that_starts_and_finishes_between_scrapes_is_counted(
        two_vaults: tuple[FakeVault, FakeVault], estate: FakeEstate, make_exporter: Callable[..., Exporter]) -> None:
    prod, _ = two_vaults
    clock = fixed_clock(NOW)
    exporter = make_exporter(clock, vaults=prod.id)
    exporter.scrape()
    estate.add_job(prod.name, _backup(prod, _guid(9), "vm-new", NOW + timedelta(minutes=2), status="Failed",
                                      minutes=5, size=None))
    clock.advance(timedelta(minutes=10))
    exporter.scrape()
    labels = {**_vault_labels(prod), "backup_management_type": "AzureIaasVM", "operation": "Backup"}
    assert exporter.value("azure_backup_jobs_finished_total", **labels, status="Failed") == 1
    assert exporter.value("azure_backup_job_last_status", **_item(prod, "vm-new"), status="Failed") == 1


def test_in_progress_job_older_than_the_window_stays_visible(
        estate: FakeEstate, make_exporter: Callable[..., Exporter]) -> None:
    vault = estate.add_vault(SUB_A, "rg", "vault-slow")
    estate.add_job(vault.name, _backup(vault, _guid(1), "vm-huge", NOW - 3 * 24 * H, status="InProgress",
                                       duration="P3D"))
    exporter = _exporter(make_exporter, vault, lookback="48h")
    exporter.scrape()
    labels = _item(vault, "vm-huge")
    assert exporter.value("azure_backup_job_last_status", **labels, status="InProgress") == 1
    assert exporter.value("azure_backup_job_last_duration_seconds", **labels) == 3 * 86400
    exporter.scrape()  # and on later, incremental refreshes
    assert exporter.value("azure_backup_job_last_status", **labels, status="InProgress") == 1


def test_paging_follows_the_xml_skiptoken(estate: FakeEstate, arm: FakeArm,
                                          make_exporter: Callable[..., Exporter]) -> None:
    arm.page_size = 2
    vault = estate.add_vault(SUB_A, "rg", "vault-big")
    for n in range(7):
        estate.add_job(vault.name, _backup(vault, _guid(n), f"vm-{n}", NOW - (n + 1) * H))
    exporter = _exporter(make_exporter, vault)
    exporter.scrape()
    assert exporter.value("azure_backup_jobs", **_vault_labels(vault), backup_management_type="AzureIaasVM",
                          operation="Backup", status="Completed") == 7
    pages = [r for r in arm.requests if r.path.endswith("/backupJobs") and "$skiptoken" in r.query]
    assert len(pages) >= 3
    assert all(r.query["api-version"] == "2025-02-01" for r in pages)  # ours, not the nextLink's 2017-07-01


def test_throttling_is_retried_after_retry_after_and_counted(
        two_vaults: tuple[FakeVault, FakeVault], arm: FakeArm, make_exporter: Callable[..., Exporter]) -> None:
    prod, _ = two_vaults
    arm.set_fault(prod.name, Fault("throttle", retry_after=1, times=2))
    exporter = _exporter(make_exporter, prod)
    started = time.monotonic()
    exporter.scrape()
    assert time.monotonic() - started >= 2  # Retry-After honoured twice
    assert exporter.value("azure_backup_api_throttled_total") == 2
    assert exporter.value("azure_backup_api_requests_total", operation="vaults_get", code="429") == 2
    assert exporter.value("azure_backup_vault_scrape_success", **_vault_labels(prod)) == 1


def test_server_errors_are_retried(two_vaults: tuple[FakeVault, FakeVault], arm: FakeArm,
                                   make_exporter: Callable[..., Exporter]) -> None:
    prod, _ = two_vaults
    arm.set_fault(prod.name, Fault("status", status=503, code="ServiceUnavailable", times=1))
    exporter = _exporter(make_exporter, prod)
    exporter.scrape()
    assert exporter.value("azure_backup_vault_scrape_success", **_vault_labels(prod)) == 1
    assert exporter.value("azure_backup_api_requests_total", operation="vaults_get", code="503") == 1


@pytest.mark.parametrize("fault", [
    Fault("status", status=403, code="AuthorizationFailed", message="The client does not have authorization"),
    Fault("status", status=404, code="ResourceNotFound", message="The Resource was not found"),
    Fault("status", status=500, code="CloudInternalError", message="Wait for a few minutes"),
    Fault("malformed"),
    Fault("timeout", delay=3.0),
], ids=["403", "404", "500", "malformed-json", "timeout"])
def test_one_failing_vault_keeps_its_last_data_and_hides_no_other(
        fault: Fault, two_vaults: tuple[FakeVault, FakeVault], arm: FakeArm,
        make_exporter: Callable[..., Exporter]) -> None:
    prod, dev = two_vaults
    exporter = _exporter(make_exporter, prod, dev, request_timeout="1s")
    exporter.scrape()
    web = _item(prod, "vm-web")
    assert exporter.value("azure_backup_job_last_status", **web, status="Failed") == 1
    arm.set_fault(prod.name, fault)
    text = exporter.scrape()
    assert exporter.value("azure_backup_vault_scrape_success", **_vault_labels(prod)) == 0
    assert exporter.value("azure_backup_vault_scrape_success", **_vault_labels(dev)) == 1
    assert exporter.value("azure_backup_job_last_status", **web, status="Failed") == 1  # last good data kept
    assert exporter.value("azure_backup_up") == 1
    assert 'vault="vault-dev"' in text


def test_offhost_nextlink_never_gets_the_token(two_vaults: tuple[FakeVault, FakeVault], arm: FakeArm,
                                               make_exporter: Callable[..., Exporter]) -> None:
    prod, dev = two_vaults
    with FakeArm(FakeEstate()) as elsewhere:
        arm.set_fault(prod.name, Fault("offhost_nextlink", url=f"{elsewhere.url}/steal"))
        exporter = _exporter(make_exporter, prod, dev)
        exporter.scrape()
        assert len(elsewhere.requests) == 0
    assert exporter.value("azure_backup_vault_scrape_success", **_vault_labels(prod)) == 0
    assert exporter.value("azure_backup_vault_scrape_success", **_vault_labels(dev)) == 1


def test_bad_values_drop_one_field_and_are_counted(estate: FakeEstate, make_exporter: Callable[..., Exporter]) -> None:
    vault = estate.add_vault(SUB_A, "rg", "vault-odd")
    estate.add_job(vault.name, _backup(vault, _guid(1), "vm-odd", NOW - H, duration="forty minutes",
                                       size="lots"))
    exporter = _exporter(make_exporter, vault)
    exporter.scrape()
    labels = _item(vault, "vm-odd")
    assert exporter.value("azure_backup_job_last_status", **labels, status="Completed") == 1
    assert exporter.value("azure_backup_job_last_duration_seconds", **labels) is None
    assert exporter.value("azure_backup_job_last_size_bytes", **labels) is None
    assert exporter.value("azure_backup_job_last_start_timestamp_seconds", **labels) == (NOW - H).timestamp()
    assert exporter.value("azure_backup_parse_errors_total", field="duration") >= 1
    assert exporter.value("azure_backup_parse_errors_total", field="Backup Size") == 1


def test_details_are_fetched_once_for_finished_jobs_and_every_30_minutes_for_running_ones(
        two_vaults: tuple[FakeVault, FakeVault], arm: FakeArm, make_exporter: Callable[..., Exporter]) -> None:
    prod, _ = two_vaults
    clock = fixed_clock(NOW)
    exporter = make_exporter(clock, vaults=prod.id)

    def detail_requests() -> list[str]:
        found = sorted(r.path.rsplit("/", 1)[1] for r in arm.requests if "/backupJobs/" in r.path)
        arm.requests.clear()
        return found

    exporter.scrape()
    # the latest job of each item and operation: vm-web Backup (2), vm-db Backup (4), vm-web Restore (5)
    assert detail_requests() == [_guid(2), _guid(4), _guid(5)]
    clock.advance(timedelta(minutes=29))
    exporter.scrape()
    assert detail_requests() == []  # finished details are cached for good; the running job's are fresh
    clock.advance(timedelta(minutes=1))
    exporter.scrape()
    assert detail_requests() == [_guid(4)]  # the running job's tasks, 30 minutes on


def test_concurrent_scrapes_share_one_refresh(two_vaults: tuple[FakeVault, FakeVault], arm: FakeArm,
                                              make_exporter: Callable[..., Exporter]) -> None:
    prod, _ = two_vaults
    arm.latency = 0.3
    exporter = _exporter(make_exporter, prod)
    threads = [threading.Thread(target=exporter.scrape) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len([r for r in arm.requests if r.path.endswith("/vault-prod")]) == 1


def test_a_scrape_stops_waiting_at_its_deadline(two_vaults: tuple[FakeVault, FakeVault], arm: FakeArm,
                                                make_exporter: Callable[..., Exporter]) -> None:
    prod, _ = two_vaults
    exporter = _exporter(make_exporter, prod)
    exporter.scrape()
    arm.latency = 1.0
    started = time.monotonic()
    exporter.scrape(timeout=0.5)
    assert time.monotonic() - started < 1.0
    assert exporter.value("azure_backup_job_last_status", **_item(prod, "vm-web"), status="Failed") == 1
    deadline = time.monotonic() + 30
    while exporter.refresher._inflight and time.monotonic() < deadline:  # finishes in the background
        time.sleep(0.1)
    assert not exporter.refresher._inflight


def test_credential_failure_sets_up_0_and_recovers(two_vaults: tuple[FakeVault, FakeVault], arm: FakeArm,
                                                   make_exporter: Callable[..., Exporter],
                                                   caplog: pytest.LogCaptureFixture) -> None:
    prod, _ = two_vaults
    # 401 with an empty body: azure-identity raises a raw JSONDecodeError
    arm.identity_fault = Fault("status", status=401)
    exporter = _exporter(make_exporter, prod)
    exporter.scrape()
    assert exporter.value("azure_backup_up") == 0
    assert exporter.value("azure_backup_vault_scrape_success", **_vault_labels(prod)) == 0
    assert any("authentication failed" in r.getMessage() for r in caplog.records)
    assert not any(arm.token in r.getMessage() for r in caplog.records)
    arm.identity_fault = None
    exporter.scrape()
    assert exporter.value("azure_backup_up") == 1


def test_discovery_and_explicit_vaults_are_watched_once(
        two_vaults: tuple[FakeVault, FakeVault], make_exporter: Callable[..., Exporter]) -> None:
    prod, dev = two_vaults
    exporter = make_exporter(fixed_clock(NOW), subscriptions=SUB_A, vaults=f"{prod.id},{dev.id}".upper()
                             .replace("/SUBSCRIPTIONS/", "/subscriptions/"))
    text = exporter.scrape()
    assert text.count('azure_backup_vault_info{') == 2
    assert exporter.value("azure_backup_subscription_discovery_success", subscription_id=SUB_A,
                          vault_type="recovery_services") == 1


def test_every_job_type_parses(estate: FakeEstate, make_exporter: Callable[..., Exporter]) -> None:
    vault = estate.add_vault(SUB_A, "rg", "vault-all")
    # (jobType, backupManagementType, the container label the job's own fields give; no items to join to)
    kinds = [("AzureIaaSVMJob", "AzureIaasVM", "rg"), ("AzureIaaSVMJobV2", "AzureIaasVM", "rg"),
             ("AzureStorageJob", "AzureStorage", "stfilesharesbackup"), ("AzureWorkloadJob", "AzureWorkload", ""),
             ("DpmJob", "DPM", "dpm01.contoso.local"), ("MabJob", "MAB", "item-5"), ("VaultJob", "Invalid", ""),
             ("SomeFutureJob", "DefaultBackup", "")]
    for n, (job_type, bmt, _) in enumerate(kinds):
        estate.add_job(vault.name, make_job(_guid(n), vault=vault, item=f"item-{n}", job_type=job_type,
                                            backup_management_type=bmt, start=NOW - H, end=NOW - H / 2,
                                            duration="00:30:00"))
    exporter = _exporter(make_exporter, vault, collector_job_info="true")  # the info series carries job_type
    text = exporter.scrape()
    for n, (job_type, bmt, container) in enumerate(kinds):
        labels = _item(vault, f"item-{n}", bmt=bmt, container=container)
        assert exporter.value("azure_backup_job_last_duration_seconds", **labels) == 1800, job_type
        assert f'job_type="{job_type}"' in text


def _azure_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def test_no_token_leaves_the_arm_endpoint_in_any_request(two_vaults: tuple[FakeVault, FakeVault], arm: FakeArm,
                                                          make_exporter: Callable[..., Exporter]) -> None:
    exporter = _exporter(make_exporter, *two_vaults)
    exporter.scrape()
    agents = {r.headers.get("User-Agent", "") for r in arm.requests if not r.path.startswith("/msi")}
    assert agents and all(a.startswith("azure-backup-exporter/") for a in agents)
    assert requests.get(f"{arm.url}/subscriptions", timeout=5).status_code == 401  # the fake checks tokens


def test_a_netrc_entry_for_the_arm_host_does_not_replace_the_token(
        two_vaults: tuple[FakeVault, FakeVault], arm: FakeArm, make_exporter: Callable[..., Exporter],
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """requests puts a ~/.netrc entry's Basic credentials on a request that has no auth of its own."""
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine {urlsplit(arm.url).hostname} login someone password not-for-azure\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    exporter = _exporter(make_exporter, *two_vaults)
    exporter.scrape()
    assert exporter.value("azure_backup_vault_scrape_success", **_vault_labels(two_vaults[0])) == 1
    sent = {r.headers.get("Authorization", "").split(" ")[0] for r in arm.requests if not r.path.startswith("/msi")}
    assert sent == {"Bearer"}


def test_vaults_are_refreshed_one_subscription_at_a_time_in_turn(
        estate: FakeEstate, arm: FakeArm, make_exporter: Callable[..., Exporter]) -> None:
    vaults = [estate.add_vault(sub, "rg", f"vault-{sub[0]}{n}") for sub in (SUB_A, SUB_B) for n in range(3)]
    exporter = make_exporter(fixed_clock(NOW), vaults=",".join(v.id for v in vaults), concurrency="1")
    exporter.scrape()
    order = [r.path.rsplit("/", 1)[1] for r in arm.requests if r.path.rsplit("/", 2)[1] == "vaults"]
    assert order == ["vault-10", "vault-20", "vault-11", "vault-21", "vault-12", "vault-22"]


def test_every_vault_is_listed_before_any_details_are_fetched(
        estate: FakeEstate, arm: FakeArm, make_exporter: Callable[..., Exporter]) -> None:
    vaults = [estate.add_vault(sub, "rg", f"vault-{sub[0]}{n}") for sub in (SUB_A, SUB_B) for n in range(3)]
    for n, vault in enumerate(vaults):
        estate.add_job(vault.name, _backup(vault, _guid(n), "vm-web", NOW - 3 * H))
    # One worker makes the order deterministic: with more, FIFO orders when tasks start, not each request.
    exporter = make_exporter(fixed_clock(NOW), vaults=",".join(v.id for v in vaults), concurrency="1")
    exporter.scrape()
    jobs_calls = [r.path for r in arm.requests if "/backupJobs" in r.path]
    last_list = max(i for i, path in enumerate(jobs_calls) if path.endswith("/backupJobs"))
    first_detail = min(i for i, path in enumerate(jobs_calls) if not path.endswith("/backupJobs"))
    assert last_list < first_detail, jobs_calls
    assert len(jobs_calls) - first_detail == len(vaults)  # one detail GET per vault's latest job
    for vault in vaults:
        assert exporter.value("azure_backup_job_last_status", **_item(vault, "vm-web"), status="Completed") == 1
        assert exporter.value("azure_backup_job_last_size_bytes", **_item(vault, "vm-web")) == 11370 * 2**20


def test_status_is_served_while_details_are_still_being_fetched(
        two_vaults: tuple[FakeVault, FakeVault], arm: FakeArm, make_exporter: Callable[..., Exporter]) -> None:
    prod, dev = two_vaults
    arm.set_fault(prod.name, Fault("timeout", delay=2.0, operations=frozenset({"jobs_get"})))
    exporter = _exporter(make_exporter, prod, dev)
    exporter.scrape(timeout=1.0)  # the lists are done, prod's details are not
    assert exporter.value("azure_backup_job_last_status", **_item(prod, "vm-web"), status="Failed") == 1
    tasks = {"task": "Transfer data to vault", "status": "InProgress"}
    assert exporter.value("azure_backup_job_last_task_status", **_item(prod, "vm-db"), **tasks) is None  # a detail
    assert exporter.value("azure_backup_vault_scrape_success", **_vault_labels(prod)) is None  # not refreshed yet
    arm.set_fault(prod.name, None)
    deadline = time.monotonic() + 30
    while exporter.refresher._inflight and time.monotonic() < deadline:  # finishes in the background
        time.sleep(0.1)
    exporter.scrape()
    assert exporter.value("azure_backup_job_last_task_status", **_item(prod, "vm-db"), **tasks) == 1
    assert exporter.value("azure_backup_vault_scrape_success", **_vault_labels(prod)) == 1


def test_a_stuck_job_is_followed_by_get_and_does_not_widen_every_list(
        estate: FakeEstate, arm: FakeArm, make_exporter: Callable[..., Exporter]) -> None:
    vault = estate.add_vault(SUB_A, "rg", "vault-stuck")
    estate.add_job(vault.name, _backup(vault, _guid(1), "vm-stuck", NOW - 10 * 24 * H, status="InProgress",
                                       duration="P10D"))
    estate.add_job(vault.name, _backup(vault, _guid(2), "vm-web", NOW - 3 * H))
    clock = fixed_clock(NOW)
    exporter = make_exporter(clock, vaults=vault.id, lookback="7d")
    exporter.scrape()
    labels = _item(vault, "vm-stuck")
    assert exporter.value("azure_backup_job_last_status", **labels, status="InProgress") == 1
    arm.requests.clear()
    calls = []
    for _ in range(30):  # 30 refreshes a minute apart
        clock.advance(timedelta(minutes=1))
        exporter.scrape()
        lists = [r for r in arm.requests if r.path.endswith("/backupJobs")]
        gets = [r for r in arm.requests if "/backupJobs/" in r.path]
        calls.append((len(lists), len(gets)))
        for request in lists:  # never back to the stuck job's start: only since the last list
            since = request.query["$filter"].split("'")[1]
            assert datetime.strptime(since, "%Y-%m-%d %I:%M:%S %p").replace(tzinfo=NOW.tzinfo) >= \
                clock.now - timedelta(minutes=17)
        arm.requests.clear()
    # the floor: one list call per refresh, plus the stuck job's GET once in its 30-minute schedule
    assert [n for n, _ in calls] == [1] * 30
    assert sum(g for _, g in calls) == 1 and calls[29] == (1, 1)
    assert exporter.value("azure_backup_job_last_status", **labels, status="InProgress") == 1

    estate.update_job(vault.name, _guid(1), status="Failed", endTime=_azure_time(clock.now), duration="P10DT1H")
    clock.advance(timedelta(minutes=30))
    exporter.scrape()  # its GET is due again: it ended
    assert exporter.value("azure_backup_job_last_status", **labels, status="Failed") == 1
    assert exporter.value("azure_backup_jobs_finished_total", **_vault_labels(vault),
                          backup_management_type="AzureIaasVM", operation="Backup", status="Failed") == 1


def test_a_gzip_scrape_is_the_plain_scrape_compressed_in_both_formats(
        two_vaults: tuple[FakeVault, FakeVault], make_exporter: Callable[..., Exporter]) -> None:
    exporter = _exporter(make_exporter, *two_vaults)
    exporter.scrape()
    for openmetrics in (False, True):
        plain = b"".join(exporter.exposition.render(openmetrics))
        members = list(exporter.exposition.render_gzip(openmetrics))
        assert len(members) > 2  # the cached vault chunks are members of their own, served as they are
        assert all(member[:2] == b"\x1f\x8b" for member in members)  # each a gzip member
        assert steady(gzip.decompress(b"".join(members)).decode()) == steady(plain.decode())


def test_every_catalogued_family_is_exposed_with_the_process_metrics(
        two_vaults: tuple[FakeVault, FakeVault], make_exporter: Callable[..., Exporter]) -> None:
    text = _exporter(make_exporter, *two_vaults, **ALL_SERIES).scrape()
    for spec in CATALOGUE:
        name = spec.sample_names()[0] if spec.type == "counter" else spec.name
        assert f"# TYPE {name} {spec.type}\n" in text, name
    rss = float(text.split("\nprocess_resident_memory_bytes ")[1].split("\n")[0])
    assert 10 * 2**20 < rss < 2**31  # this test process: tens of MB
