"""Backup vaults (Microsoft.DataProtection) through the whole exporter: the fake ARM serves them over HTTP in the
shapes of the real recordings, and the exporter renders them in the same families as Recovery Services vaults."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from exporter.settings import load_settings
from exporter.simulator.fakearm import (
    DPP_FAULT_OPERATIONS,
    FakeArm,
    FakeBackupVault,
    FakeEstate,
    Fault,
    make_backup_instance,
    make_dpp_job,
    make_dpp_policy,
    make_job,
    make_recovery_point,
)
from exporter.wiring import build

from .conftest import NOW, SUB_A, SUB_B, Exporter, fixed_clock

H = timedelta(hours=1)
MIN = timedelta(minutes=1)
DISK, AKS, PSQL = "AzureDisk", "AzureKubernetesService", "AzureDatabaseForPostgreSQLFlexibleServer"


def _guid(n: int) -> str:
    return f"00000000-0000-0000-0000-{n:012d}"


def _item(vault: FakeBackupVault, bmt: str, name: str, **extra: str) -> dict[str, str]:
    return {"subscription_id": vault.subscription_id, "resource_group": vault.resource_group, "vault": vault.name,
            "vault_type": "backup", "backup_management_type": bmt, "container": vault.resource_group,
            "backup_item": name, **extra}


@pytest.fixture
def backup_vault(estate: FakeEstate) -> FakeBackupVault:
    """A disk backed up fine, an AKS cluster whose latest backup failed, a PostgreSQL server backing up now."""
    vault = estate.add_backup_vault(SUB_A, "rg-prod", "vault-prod")
    estate.add_dpp_policy(vault.name, make_dpp_policy(vault=vault, name="DiskDaily", datasource_type=DISK))
    estate.add_dpp_policy(vault.name, make_dpp_policy(vault=vault, name="AksDaily", datasource_type=AKS))
    estate.add_dpp_policy(vault.name, make_dpp_policy(vault=vault, name="PgWeekly", datasource_type=PSQL,
                                                      interval="P1W"))
    for kind, name, policy in ((DISK, "disk-erp", "DiskDaily"), (AKS, "aks-prod", "AksDaily"),
                               (PSQL, "psql-orders", "PgWeekly")):
        estate.add_backup_instance(vault.name, make_backup_instance(vault=vault, datasource_type=kind,
                                                                    datasource_name=name, policy=policy))
    disk_instance = next(name for name in _instances(estate, vault) if "disk-erp" in name)
    estate.add_dpp_job(vault.name, make_dpp_job(_guid(1), vault=vault, datasource_type=DISK, datasource_name="disk-erp",
                                                policy="DiskDaily", start=NOW - 26 * H, end=NOW - 26 * H + 4 * MIN))
    estate.add_dpp_job(vault.name, make_dpp_job(_guid(2), vault=vault, datasource_type=DISK, datasource_name="disk-erp",
                                                policy="DiskDaily", start=NOW - 2 * H, end=NOW - 2 * H + 4 * MIN,
                                                data_transferred_bytes=1_048_576))
    estate.add_recovery_point(vault.name, disk_instance, make_recovery_point(
        vault=vault, instance=disk_instance, time=NOW - 2 * H + 3 * MIN, datasource_type=DISK, policy="DiskDaily"))
    estate.add_dpp_job(vault.name, make_dpp_job(_guid(3), vault=vault, datasource_type=AKS, datasource_name="aks-prod",
                                                policy="AksDaily", start=NOW - 27 * H, end=NOW - 26 * H))
    estate.add_dpp_job(vault.name, make_dpp_job(_guid(4), vault=vault, datasource_type=AKS, datasource_name="aks-prod",
                                                policy="AksDaily", status="Failed", start=NOW - 3 * H,
                                                end=NOW - 3 * H + 10 * MIN, error="Backup failed"))
    estate.add_dpp_job(vault.name, make_dpp_job(_guid(5), vault=vault, datasource_type=PSQL,
                                                datasource_name="psql-orders", policy="PgWeekly", status="InProgress",
                                                start=NOW - 10 * MIN))
    return vault


def _instances(estate: FakeEstate, vault: FakeBackupVault) -> list[str]:
    return [str(instance["name"]) for instance in estate.backup_instances(vault.name)]


def _exporter(make_exporter: Callable[..., Exporter], *vault_ids: str, **overrides: str) -> Exporter:
    return make_exporter(fixed_clock(NOW), vaults=",".join(vault_ids), **overrides)


def test_a_backup_vaults_jobs_and_items_in_the_same_families(
        backup_vault: FakeBackupVault, make_exporter: Callable[..., Exporter]) -> None:
    exporter = _exporter(make_exporter, backup_vault.id)
    exporter.scrape()
    disk, aks, psql = (_item(backup_vault, DISK, "disk-erp"), _item(backup_vault, AKS, "aks-prod"),
                       _item(backup_vault, PSQL, "psql-orders"))
    backup = {"operation": "Backup"}
    assert exporter.value("azure_backup_vault_scrape_success", **{k: disk[k] for k in (
        "subscription_id", "resource_group", "vault", "vault_type")}) == 1
    assert exporter.value("azure_backup_job_last_status", **disk, **backup, status="Completed") == 1
    assert exporter.value("azure_backup_job_last_status", **aks, **backup, status="Failed") == 1
    assert exporter.value("azure_backup_job_last_status", **psql, **backup, status="InProgress") == 1
    assert exporter.value("azure_backup_job_last_end_timestamp_seconds", **psql, **backup) is None
    # the duration is end - start (Azure's two formats for one job disagree in precision)
    assert exporter.value("azure_backup_job_last_duration_seconds", **disk, **backup) == 240
    # a size only where Azure sent a number: never invented from the disk's size
    assert exporter.value("azure_backup_job_last_size_bytes", **disk, **backup) == 1_048_576
    assert exporter.value("azure_backup_job_last_size_bytes", **aks, **backup) is None
    assert exporter.value("azure_backup_job_last_task_status", **disk, **backup, task="Trigger Backup",
                          status="Completed") == 1
    # the last successful backup job's end; its recovery points are not listed, the job tells (issue 19)
    assert exporter.value("azure_backup_last_successful_backup_timestamp_seconds", **disk) == \
        (NOW - 2 * H + 4 * MIN).timestamp()
    assert exporter.value("azure_backup_last_successful_backup_timestamp_seconds", **aks) == \
        (NOW - 26 * H).timestamp()
    assert exporter.value("azure_backup_item_protection_state", **disk, state="ProtectionConfigured") == 1
    assert exporter.value("azure_backup_item_last_recovery_point_timestamp_seconds", **disk) is None
    assert exporter.value("azure_backup_item_expected_backup_interval_seconds", **disk, kind="full") == 86_400
    assert exporter.value("azure_backup_item_expected_backup_interval_seconds", **psql, kind="full") == 7 * 86_400


def test_an_instances_newest_recovery_point_is_its_last_full_backup_without_any_job(
        estate: FakeEstate, make_exporter: Callable[..., Exporter]) -> None:
    # Issue 17, point 4. No job of the disk in the window (the list keeps 14 days, LOOKBACK is shorter): its
    # newest recovery point is the only evidence, and it is a backup of the policy's one kind, full, which the
    # policy-aware alert compares with the policy's interval.
    vault = estate.add_backup_vault(SUB_A, "rg-prod", "vault-prod")
    estate.add_dpp_policy(vault.name, make_dpp_policy(vault=vault, name="DiskDaily", datasource_type=DISK))
    estate.add_backup_instance(vault.name, make_backup_instance(vault=vault, datasource_type=DISK,
                                                                datasource_name="disk-quiet", policy="DiskDaily"))
    instance = _instances(estate, vault)[0]
    for age in (30 * H, 6 * H):
        estate.add_recovery_point(vault.name, instance, make_recovery_point(
            vault=vault, instance=instance, time=NOW - age, datasource_type=DISK, policy="DiskDaily"))
    exporter = _exporter(make_exporter, vault.id)
    text = exporter.scrape()
    disk = _item(vault, DISK, "disk-quiet")
    assert "azure_backup_job_last_status{" not in text
    assert exporter.value("azure_backup_last_successful_backup_by_kind_timestamp_seconds", **disk, kind="full") == \
        (NOW - 6 * H).timestamp()
    assert exporter.value("azure_backup_item_expected_backup_interval_seconds", **disk, kind="full") == 86_400


def _points_lists(arm: FakeArm, since: int = 0) -> list[str]:
    """The instances whose recovery points were listed, in order."""
    return [r.path.split("/backupInstances/")[1].split("/")[0] for r in arm.requests[since:]
            if r.path.endswith("/recoveryPoints")]


def test_recovery_points_are_listed_only_where_the_jobs_show_no_success_and_after_them(
        arm: FakeArm, estate: FakeEstate, backup_vault: FakeBackupVault,
        make_exporter: Callable[..., Exporter]) -> None:
    """Issue 19, point 2: the disk and the AKS cluster have a successful backup job in the list, the PostgreSQL
    server only a running one: only its recovery points are listed, after the job list and the job details
    (the details half of the refresh), so they never hold back a job's status."""
    exporter = _exporter(make_exporter, backup_vault.id, items_refresh_interval="1h")
    exporter.scrape()
    psql = next(name for name in _instances(estate, backup_vault) if "psql-orders" in name)
    assert _points_lists(arm) == [psql]
    paths = [r.path for r in arm.requests]
    first_point = next(n for n, path in enumerate(paths) if path.endswith("/recoveryPoints"))
    last_job_call = max(n for n, path in enumerate(paths) if "/backupJobs" in path)
    assert last_job_call < first_point
    # and no more often than ITEMS_REFRESH_INTERVAL (1 h here): the next refresh lists none
    since = len(arm.requests)
    exporter.scrape()
    assert _points_lists(arm, since) == []


def test_the_list_half_of_a_refresh_publishes_job_statuses_without_listing_recovery_points(
        arm: FakeArm, backup_vault: FakeBackupVault) -> None:
    """The first half of a Backup vault's refresh (its lists) makes no recovery-point call: the AKS cluster's
    failed backup is out before any of them."""
    settings = load_settings(overrides={"resource_manager_url": arm.url, "vaults": backup_vault.id})
    built = build(settings, clock=fixed_clock(NOW))
    try:
        vault, client = next(iter(built.refresher._states.values())), built.refresher.client
        listed = vault.list_jobs(client, lambda field: None)
        assert _points_lists(arm) == []
        assert "Failed" in {job.status for job in vault.snapshot.data.jobs}
        vault.fetch_details(client, lambda field: None, listed)
        assert len(_points_lists(arm)) == 1
    finally:
        built.refresher.close()


def test_the_last_success_is_the_newer_of_the_recovery_point_and_the_jobs(
        arm: FakeArm, estate: FakeEstate, make_exporter: Callable[..., Exporter]) -> None:
    """Issue 19, point 2: an instance with no job gets its last success from its newest recovery point; a job
    that succeeds later is newer and wins, an older one does not, and once a job tells, no more points lists."""
    vault = estate.add_backup_vault(SUB_A, "rg-prod", "vault-prod")
    estate.add_dpp_policy(vault.name, make_dpp_policy(vault=vault, name="DiskDaily", datasource_type=DISK))
    estate.add_backup_instance(vault.name, make_backup_instance(vault=vault, datasource_type=DISK,
                                                                datasource_name="disk-new", policy="DiskDaily"))
    instance = _instances(estate, vault)[0]
    estate.add_recovery_point(vault.name, instance, make_recovery_point(
        vault=vault, instance=instance, time=NOW - 6 * H, datasource_type=DISK, policy="DiskDaily"))
    exporter = _exporter(make_exporter, vault.id, items_refresh_interval="0s")
    disk = _item(vault, DISK, "disk-new")
    exporter.scrape()
    assert exporter.value("azure_backup_last_successful_backup_timestamp_seconds", **disk) == (NOW - 6 * H).timestamp()
    assert _points_lists(arm) == [instance]
    # a job older than the recovery point: the point stays the last success, and is not listed again
    estate.add_dpp_job(vault.name, make_dpp_job(_guid(1), vault=vault, datasource_type=DISK, datasource_name="disk-new",
                                                policy="DiskDaily", start=NOW - 30 * H, end=NOW - 29 * H))
    since = len(arm.requests)
    exporter.scrape()
    assert exporter.value("azure_backup_last_successful_backup_timestamp_seconds", **disk) == (NOW - 6 * H).timestamp()
    assert exporter.value("azure_backup_last_successful_backup_by_kind_timestamp_seconds", **disk, kind="full") == \
        (NOW - 6 * H).timestamp()
    assert exporter.value("azure_backup_item_last_recovery_point_timestamp_seconds", **disk) == \
        (NOW - 6 * H).timestamp()
    assert _points_lists(arm, since) == []
    # a newer successful job wins
    estate.add_dpp_job(vault.name, make_dpp_job(_guid(2), vault=vault, datasource_type=DISK, datasource_name="disk-new",
                                                policy="DiskDaily", start=NOW - 2 * H, end=NOW - H))
    exporter.scrape()
    assert exporter.value("azure_backup_last_successful_backup_timestamp_seconds", **disk) == (NOW - H).timestamp()


def test_a_failed_recovery_point_list_keeps_the_jobs_and_marks_the_vault_failing(
        arm: FakeArm, backup_vault: FakeBackupVault, make_exporter: Callable[..., Exporter]) -> None:
    """As a failed items list: the jobs are refreshed and served, the vault's scrape success is 0, and the
    instance's points are listed again on the next refresh."""
    arm.set_fault(backup_vault.name, Fault.authorization_failed(times=1, operations=frozenset(
        {"dpp_recovery_points_list"})))
    exporter = _exporter(make_exporter, backup_vault.id, items_refresh_interval="1h")
    exporter.scrape()
    vault = {"subscription_id": SUB_A, "resource_group": "rg-prod", "vault": "vault-prod", "vault_type": "backup"}
    assert exporter.value("azure_backup_vault_scrape_success", **vault) == 0
    assert exporter.value("azure_backup_vault_last_refresh_timestamp_seconds", **vault) == NOW.timestamp()
    assert exporter.value("azure_backup_job_last_status", **_item(backup_vault, AKS, "aks-prod"),
                          operation="Backup", status="Failed") == 1
    since = len(arm.requests)
    exporter.scrape()
    assert len(_points_lists(arm, since)) == 1
    assert exporter.value("azure_backup_vault_scrape_success", **vault) == 1


def test_a_recovery_services_and_a_backup_vault_of_one_name_are_two_vaults(
        estate: FakeEstate, backup_vault: FakeBackupVault, make_exporter: Callable[..., Exporter]) -> None:
    twin = estate.add_vault(SUB_A, backup_vault.resource_group, backup_vault.name)
    estate.add_job(twin.name, make_job(_guid(9), vault=twin, item="disk-erp", status="Failed",
                                       start=NOW - H, end=NOW - H / 2))
    text = _exporter(make_exporter, backup_vault.id, twin.id).scrape()  # scrape() checks no series is twice
    infos = [line for line in text.splitlines() if line.startswith("azure_backup_vault_info{")]
    assert len(infos) == 2
    assert {'vault_type="backup"' in line for line in infos} == {True, False}


def test_a_403_on_a_backup_vault_fails_only_that_vault(
        estate: FakeEstate, arm: FakeArm, backup_vault: FakeBackupVault,
        make_exporter: Callable[..., Exporter], caplog: pytest.LogCaptureFixture) -> None:
    twin = estate.add_vault(SUB_A, backup_vault.resource_group, backup_vault.name)
    estate.add_job(twin.name, make_job(_guid(9), vault=twin, item="vm-web", start=NOW - H, end=NOW - H / 2))
    arm.set_fault(backup_vault.name, Fault.authorization_failed(operations=DPP_FAULT_OPERATIONS))
    exporter = _exporter(make_exporter, backup_vault.id, twin.id)
    exporter.scrape()
    vault = {"subscription_id": SUB_A, "resource_group": "rg-prod", "vault": "vault-prod"}
    assert exporter.value("azure_backup_vault_scrape_success", **vault, vault_type="backup") == 0
    assert exporter.value("azure_backup_vault_scrape_error_info", **vault, vault_type="backup", status_code="403",
                          error_code="AuthorizationFailed") == 1
    assert exporter.value("azure_backup_vault_scrape_success", **vault, vault_type="recovery_services") == 1
    assert exporter.value("azure_backup_up") == 1
    # the log names which of the two vaults called vault-prod failed
    failures = [r.getMessage() for r in caplog.records if "refresh failed" in r.getMessage()]
    assert failures and all(m.startswith("vault=vault-prod vault_type=backup ") for m in failures)


def test_discovery_lists_both_kinds_and_an_unregistered_provider_is_no_failure(
        estate: FakeEstate, backup_vault: FakeBackupVault, make_exporter: Callable[..., Exporter]) -> None:
    estate.add_vault(SUB_A, "rg-prod", "vault-rsv")
    other = estate.add_vault(SUB_B, "rg-b", "vault-b")
    estate.unregister_provider(SUB_B)  # no Backup vaults there: ARM answers 409 MissingSubscriptionRegistration
    exporter = make_exporter(fixed_clock(NOW), subscriptions=f"{SUB_A},{SUB_B}")
    text = exporter.scrape()
    for sub in (SUB_A, SUB_B):
        for kind in ("recovery_services", "backup"):
            assert exporter.value("azure_backup_subscription_discovery_success", subscription_id=sub,
                                  vault_type=kind) == 1
    watched = sorted(line.split('vault="')[1].split('"')[0] + "/" + line.split('vault_type="')[1].split('"')[0]
                     for line in text.splitlines() if line.startswith("azure_backup_vault_info{"))
    assert watched == sorted([f"{backup_vault.name}/backup", f"{other.name}/recovery_services",
                              "vault-rsv/recovery_services"])


def test_an_unchanged_backup_vault_costs_its_job_list_and_no_details(
        arm: FakeArm, backup_vault: FakeBackupVault, make_exporter: Callable[..., Exporter]) -> None:
    """No $filter: every refresh lists every retained job, but details are fetched once per finished job."""
    exporter = _exporter(make_exporter, backup_vault.id, items_refresh_interval="1h")
    exporter.scrape()
    first = len(arm.requests)
    exporter.scrape()
    second = [r.path.rsplit("/", 1)[-1] for r in arm.requests[first:] if not r.path.startswith("/msi")]
    assert second == ["backupJobs"]


def test_a_backup_vault_is_listed_on_its_own_interval(
        arm: FakeArm, estate: FakeEstate, backup_vault: FakeBackupVault,
        make_exporter: Callable[..., Exporter]) -> None:
    """Issue 19, point 1: a Backup vault's list re-reads every retained job, so it waits for
    BACKUP_VAULT_REFRESH_INTERVAL; a Recovery Services vault keeps REFRESH_INTERVAL (0 s here)."""
    rsv = estate.add_vault(SUB_A, "rg-prod", "rsv-prod")
    estate.add_job(rsv.name, make_job(_guid(9), vault=rsv, item="vm-01", start=NOW - H, end=NOW - H / 2))
    exporter = _exporter(make_exporter, backup_vault.id, rsv.id, backup_vault_refresh_interval="1h",
                         items_refresh_interval="1h")
    exporter.scrape()
    first = len(arm.requests)
    exporter.scrape()
    later = [r.path.lower() for r in arm.requests[first:] if not r.path.startswith("/msi")]
    assert [path.rsplit("/", 3)[-3:] for path in later] == [["vaults", "rsv-prod", "backupjobs"]]
    assert exporter.value("azure_backup_job_last_status", **_item(backup_vault, AKS, "aks-prod"),
                          operation="Backup", status="Failed") == 1  # served from the cache meanwhile


@pytest.mark.parametrize("last_page", ["null", "absent"])
def test_every_page_of_a_backup_vaults_lists_is_read_whatever_its_last_nextlink(
        estate: FakeEstate, backup_vault: FakeBackupVault, monkeypatch: pytest.MonkeyPatch, last_page: str) -> None:
    """Real lists end with "nextLink": null (jobs) or no key at all (instances); two entries a page here."""
    with FakeArm(estate, dpp_page_size=2, dpp_last_page_next_link=last_page) as arm:
        monkeypatch.setenv("IDENTITY_ENDPOINT", arm.identity_endpoint)
        monkeypatch.setenv("IDENTITY_HEADER", arm.identity_header)
        built = build(load_settings(overrides={"resource_manager_url": arm.url, "vaults": backup_vault.id,
                                               "refresh_interval": "0s"}), clock=fixed_clock(NOW))
        try:
            exporter = Exporter(built.registry, built.refresher, built.exposition)
            text = exporter.scrape()
        finally:
            built.refresher.close()
        pages = [r for r in arm.requests if r.path.endswith("/backupJobs")]
    assert len(pages) == 3  # five jobs, two a page
    assert text.count("azure_backup_job_last_status{") == 3  # the three items' latest backups
    assert text.count("azure_backup_item_info{") == 3  # three instances over two pages


def test_an_unknown_protection_state_is_kept_and_counted_once(
        estate: FakeEstate, backup_vault: FakeBackupVault, make_exporter: Callable[..., Exporter]) -> None:
    """Issue 17, point 5: a value nobody has seen is exposed as sent and counted once per vault, not at every
    items refresh (here every refresh lists the items)."""
    instance = next(name for name in _instances(estate, backup_vault) if "aks-prod" in name)
    estate.update_backup_instance(backup_vault.name, instance, currentProtectionState="QuantumProtected",
                                  protectionStatus={"status": "QuantumProtected"})
    exporter = _exporter(make_exporter, backup_vault.id, state_series="all", items_refresh_interval="0s")
    exporter.scrape()
    text = exporter.scrape()
    aks = _item(backup_vault, AKS, "aks-prod")
    assert _sample("azure_backup_item_protection_state", aks, state="QuantumProtected") + " 1.0" in text
    assert _sample("azure_backup_item_health_status", aks, status="QuantumProtected") + " 1.0" in text
    # with STATE_SERIES=all, the zeros are a Backup vault's own states, not a Recovery Services vault's
    assert exporter.value("azure_backup_item_protection_state", **aks, state="ProtectionConfigured") == 0
    assert exporter.value("azure_backup_item_protection_state", **aks, state="Protected") is None
    assert exporter.value("azure_backup_parse_errors_total", field="currentProtectionState") == 1
    assert exporter.value("azure_backup_parse_errors_total", field="protectionStatus") is None  # one value, once


def _sample(name: str, labels: dict[str, str], **extra: str) -> str:
    """A sample's name and labels as the text exposition writes them (labels sorted by name)."""
    pairs = ",".join(f'{key}="{value}"' for key, value in sorted({**labels, **extra}.items()))
    return f"{name}{{{pairs}}}"


@pytest.mark.parametrize("state", ["ConfiguringProtection", "UpdatingProtection", "BackupsSuspended"])
def test_the_states_azure_really_sends_are_exposed_and_not_parse_errors(
        estate: FakeEstate, backup_vault: FakeBackupVault, make_exporter: Callable[..., Exporter], state: str) -> None:
    """Issue 17, point 5: a disk being configured or updated, or whose backups were suspended, shows its state in
    both item families (its health is the state as sent, which AzureBackupItemUnhealthy does not treat as a
    problem) and counts no parse error."""
    instance = next(name for name in _instances(estate, backup_vault) if "disk-erp" in name)
    estate.update_backup_instance(backup_vault.name, instance, currentProtectionState=state,
                                  protectionStatus={"status": state, "errorDetails": None})
    exporter = _exporter(make_exporter, backup_vault.id, items_refresh_interval="0s")
    exporter.scrape()
    text = exporter.scrape()
    disk = _item(backup_vault, DISK, "disk-erp")
    assert _sample("azure_backup_item_protection_state", disk, state=state) + " 1.0" in text
    assert _sample("azure_backup_item_health_status", disk, status=state) + " 1.0" in text
    assert _sample("azure_backup_item_health_status", disk, status="Unhealthy") not in text
    errors = [line for line in text.splitlines()
              if line.startswith("azure_backup_parse_errors_total{") and not line.endswith(" 0.0")]
    assert errors == []
