"""What the alerts need to page for every missed backup: expected intervals from policies, last successes per
kind, deleted items, why a vault fails, and ARM's headroom per subscription. Fake ARM over real HTTP."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from exporter.catalogue import VAULT_LABELS
from exporter.freshness import backup_kind
from exporter.simulator.fakearm import (
    FakeArm,
    FakeEstate,
    FakeVault,
    Fault,
    make_job,
    make_policy,
    make_protected_item,
    workload_job_name,
)

from .conftest import NOW, SUB_A, SUB_B, Exporter, fixed_clock

H = timedelta(hours=1)
MIN = timedelta(minutes=1)
D = timedelta(days=1)


def _labels(vault: FakeVault, item: str, container: str | None = None, bmt: str = "AzureIaasVM") -> dict[str, str]:
    return {"subscription_id": vault.subscription_id, "resource_group": vault.resource_group, "vault": vault.name,
            "vault_type": "recovery_services", "backup_management_type": bmt,
            "container": vault.resource_group if container is None else container, "backup_item": item}


def _guid(n: int) -> str:
    return f"00000000-0000-0000-0000-{n:012d}"


@pytest.fixture
def vault(estate: FakeEstate) -> FakeVault:
    return estate.add_vault(SUB_A, "rg-prod", "vault-prod")


def _sql_database(estate: FakeEstate, vault: FakeVault, policy: str = "SqlDailyLog15") -> dict[str, str]:
    """SalesDB on sqlvm01 with daily fulls and log backups every 15 minutes, in real Azure's words."""
    estate.add_policy(vault.name, make_policy(vault=vault, name=policy, backup_management_type="AzureWorkload",
                                              log_minutes=15))
    estate.add_item(vault.name, make_protected_item(
        vault=vault, item_type="AzureVmWorkloadSQLDatabase", friendly_name="SalesDB", container="sqlvm01",
        last_backup_status="Healthy", last_backup_time=NOW - 27 * MIN, policy=policy))
    name = workload_job_name("MSSQLSERVER", "SalesDB", "sqlvm01")
    jobs = [("Backup (Full)", NOW - 20 * H), ("Backup (Log)", NOW - 2 * H), ("Backup (Log)", NOW - 30 * MIN)]
    for n, (operation, start) in enumerate(jobs):
        estate.add_job(vault.name, make_job(_guid(100 + n), vault=vault, item=name, job_type="AzureWorkloadJob",
                                            operation=operation, start=start, end=start + timedelta(minutes=3)))
    return _labels(vault, "SalesDB", "sqlvm01/MSSQLSERVER", "AzureWorkload")


@pytest.mark.parametrize(("operation", "kind"), [
    ("Backup", "full"), ("Backup (Full)", "full"), ("Backup (Log)", "log"), ("Backup (Differential)", "differential"),
    ("Backup (Copy Only Full)", "copy_only_full"), ("Backup (Incremental)", "incremental"), ("BackupNow", "other"),
])
def test_each_backup_operation_has_a_kind(operation: str, kind: str) -> None:
    assert backup_kind(operation) == kind


def test_each_item_has_its_policys_expected_interval_per_kind(
        vault: FakeVault, estate: FakeEstate, make_exporter: Callable[..., Exporter]) -> None:
    estate.add_policy(vault.name, make_policy(vault=vault, name="WeeklySunWed", weekly_days=("Sunday", "Wednesday")))
    estate.add_policy(vault.name, make_policy(vault=vault, name="Enhanced4h", hourly=(4, 24)))
    estate.add_item(vault.name, make_protected_item(vault=vault, friendly_name="vm-weekly", policy="weeklysunwed"))
    estate.add_item(vault.name, make_protected_item(vault=vault, friendly_name="vm-4h", policy="Enhanced4h"))
    estate.add_item(vault.name, make_protected_item(vault=vault, friendly_name="vm-nopolicy", policy="Deleted"))
    db = _sql_database(estate, vault)
    exporter = make_exporter(fixed_clock(NOW), vaults=vault.id)
    text = exporter.scrape()
    interval = "azure_backup_item_expected_backup_interval_seconds"
    assert exporter.value(interval, **_labels(vault, "vm-weekly"), kind="full") == 4 * 86400  # Wed -> Sun
    assert exporter.value(interval, **_labels(vault, "vm-4h"), kind="full") == 4 * 3600
    assert exporter.value(interval, **db, kind="full") == 86400
    assert 'backup_item="vm-nopolicy"' not in "".join(line for line in text.splitlines() if line.startswith(interval))


def test_a_kind_whose_scheduled_backups_azure_does_not_list_has_no_expected_interval(
        vault: FakeVault, estate: FakeEstate, make_exporter: Callable[..., Exporter]) -> None:
    # Issue 17, point 3. The job list leaves out a SQL database's scheduled log backups, and shows only the
    # on-demand jobs of an SAP HANA database: an interval of those kinds would have nothing to be compared with
    # (or an on-demand backup's age), so none is exported; HANA falls back to the 26 h on any kind.
    db = _sql_database(estate, vault)
    estate.add_policy(vault.name, make_policy(vault=vault, name="HanaDailyLog30",
                                              backup_management_type="AzureWorkload", log_minutes=30))
    estate.add_item(vault.name, make_protected_item(
        vault=vault, item_type="AzureVmWorkloadSAPHanaDatabase", friendly_name="h22", container="hanavm01",
        last_backup_status="Healthy", last_backup_time=NOW - 10 * MIN, policy="HanaDailyLog30"))
    exporter = make_exporter(fixed_clock(NOW), vaults=vault.id)
    text = exporter.scrape()
    interval = "azure_backup_item_expected_backup_interval_seconds"
    assert exporter.value(interval, **db, kind="full") == 86400
    assert exporter.value(interval, **db, kind="log") is None
    assert exporter.value("azure_backup_last_successful_backup_by_kind_timestamp_seconds", **db, kind="log") \
        is not None  # the listed log jobs are still kept, by kind
    assert 'backup_item="h22"' not in "".join(line for line in text.splitlines() if line.startswith(interval))


def test_an_item_moved_to_another_policy_follows_it_on_the_next_items_refresh(
        vault: FakeVault, estate: FakeEstate, make_exporter: Callable[..., Exporter]) -> None:
    estate.add_policy(vault.name, make_policy(vault=vault, name="Weekly", weekly_days=("Sunday",)))
    estate.add_policy(vault.name, make_policy(vault=vault, name="Daily"))
    item = make_protected_item(vault=vault, friendly_name="vm-app", policy="Weekly")
    estate.add_item(vault.name, item)
    exporter = make_exporter(fixed_clock(NOW), vaults=vault.id, items_refresh_interval="0s")
    exporter.scrape()
    labels = {**_labels(vault, "vm-app"), "kind": "full"}
    assert exporter.value("azure_backup_item_expected_backup_interval_seconds", **labels) == 7 * 86400
    estate.update_item(vault.name, item["name"], policyId=f"{vault.id}/backupPolicies/Daily", policyName="Daily")
    exporter.scrape()
    assert exporter.value("azure_backup_item_expected_backup_interval_seconds", **labels) == 86400


def test_a_database_has_its_last_log_backup_apart_from_its_last_full(
        vault: FakeVault, estate: FakeEstate, make_exporter: Callable[..., Exporter]) -> None:
    db = _sql_database(estate, vault)
    exporter = make_exporter(fixed_clock(NOW), vaults=vault.id)
    exporter.scrape()
    by_kind = "azure_backup_last_successful_backup_by_kind_timestamp_seconds"
    assert exporter.value(by_kind, **db, kind="full") == (NOW - 20 * H + timedelta(minutes=3)).timestamp()
    assert exporter.value(by_kind, **db, kind="log") == (NOW - 27 * MIN).timestamp()
    assert exporter.value("azure_backup_last_successful_backup_timestamp_seconds", **db) == \
        exporter.value(by_kind, **db, kind="log")


def test_a_vm_items_own_record_is_its_last_full_backup(
        vault: FakeVault, estate: FakeEstate, make_exporter: Callable[..., Exporter]) -> None:
    estate.add_item(vault.name, make_protected_item(vault=vault, friendly_name="vm-old", last_backup_status="Completed",
                                                    last_backup_time=NOW - 9 * D, last_recovery_point=NOW - 9 * D))
    exporter = make_exporter(fixed_clock(NOW), vaults=vault.id)
    exporter.scrape()
    assert exporter.value("azure_backup_last_successful_backup_by_kind_timestamp_seconds",
                          **_labels(vault, "vm-old"), kind="full") == (NOW - 9 * D).timestamp()


def test_a_failing_policy_list_keeps_jobs_watched_and_says_why(
        vault: FakeVault, estate: FakeEstate, arm: FakeArm, make_exporter: Callable[..., Exporter]) -> None:
    db = _sql_database(estate, vault)
    arm.set_fault(vault.name, Fault("status", status=403, code="AuthorizationFailed",
                                    operations=frozenset({"policies_list"})))
    exporter = make_exporter(fixed_clock(NOW), vaults=vault.id)
    text = exporter.scrape()
    vault_labels = {k: db[k] for k in VAULT_LABELS}
    assert "azure_backup_item_expected_backup_interval_seconds{" not in text  # the alert falls back to 26 h
    assert exporter.value("azure_backup_job_last_status", **db, operation="Backup (Log)", status="Completed") == 1
    assert exporter.value("azure_backup_vault_scrape_success", **vault_labels) == 0
    assert exporter.value("azure_backup_vault_scrape_error_info", **vault_labels, status_code="403",
                          error_code="AuthorizationFailed") == 1
    assert exporter.value("azure_backup_vault_last_refresh_timestamp_seconds", **vault_labels) == NOW.timestamp()
    exporter.scrape()  # the items are not due again, the failed policy list is: the vault keeps failing
    assert exporter.value("azure_backup_vault_scrape_success", **vault_labels) == 0
    arm.set_fault(vault.name, None)
    exporter.scrape()  # and recovers as soon as the list works
    assert exporter.value("azure_backup_vault_scrape_success", **vault_labels) == 1
    assert exporter.value("azure_backup_item_expected_backup_interval_seconds", **db, kind="full") == 86400


@pytest.mark.parametrize(("fault", "status_code", "error_code"), [
    (Fault.resource_not_found(), "404", "ResourceNotFound"),
    (Fault.authorization_failed(), "403", "AuthorizationFailed"),
    (Fault("timeout", delay=3.0), "none", ""),
])
def test_a_failing_vault_says_what_failed(fault: Fault, status_code: str, error_code: str, *, vault: FakeVault,
                                          arm: FakeArm, make_exporter: Callable[..., Exporter]) -> None:
    exporter = make_exporter(fixed_clock(NOW), vaults=vault.id, request_timeout="1s")
    exporter.scrape()
    vault_labels = {"subscription_id": vault.subscription_id, "resource_group": vault.resource_group,
                    "vault": vault.name, "vault_type": "recovery_services"}
    assert exporter.value("azure_backup_vault_scrape_success", **vault_labels) == 1
    assert "azure_backup_vault_scrape_error_info{" not in exporter.scrape()
    arm.set_fault(vault.name, fault)
    exporter.scrape()
    assert exporter.value("azure_backup_vault_scrape_error_info", **vault_labels, status_code=status_code,
                          error_code=error_code) == 1
    arm.set_fault(vault.name, None)
    assert "azure_backup_vault_scrape_error_info{" not in exporter.scrape()


def _deleted_vm(estate: FakeEstate, vault: FakeVault) -> str:
    """vm-gone: backed up 2 days ago, its last backup failed yesterday, its data deleted 2 hours ago."""
    estate.add_job(vault.name, make_job(_guid(1), vault=vault, item="vm-gone", start=NOW - 2 * D, end=NOW - 2 * D + H))
    estate.add_job(vault.name, make_job(_guid(2), vault=vault, item="vm-gone", status="Failed", start=NOW - D,
                                        end=NOW - D + H))
    estate.add_job(vault.name, make_job(_guid(3), vault=vault, item="vm-gone", operation="DeleteBackupData",
                                        start=NOW - 2 * H, end=NOW - 2 * H + timedelta(minutes=1)))
    item = make_protected_item(vault=vault, friendly_name="vm-gone", last_backup_status="Failed",
                               last_backup_time=NOW - D + H, last_recovery_point=NOW - 2 * D + H)
    return str(item["name"])


def test_a_deleted_item_stops_paging_but_its_deletion_does_not(
        vault: FakeVault, estate: FakeEstate, make_exporter: Callable[..., Exporter]) -> None:
    name = _deleted_vm(estate, vault)
    estate.remove_job(vault.name, _guid(3))  # before the deletion: the item is listed, its backup failed
    estate.add_item(vault.name, make_protected_item(vault=vault, friendly_name="vm-gone", last_backup_status="Failed",
                                                    last_backup_time=NOW - D + H, last_recovery_point=NOW - 2 * D + H))
    clock = fixed_clock(NOW - 3 * H)
    exporter = make_exporter(clock, vaults=vault.id, items_refresh_interval="0s")
    exporter.scrape()
    labels = _labels(vault, "vm-gone")
    assert exporter.value("azure_backup_job_last_status", **labels, operation="Backup", status="Failed") == 1
    assert exporter.value("azure_backup_last_successful_backup_timestamp_seconds", **labels) is not None

    estate.remove_item(vault.name, name)  # "stop backup and delete data"
    estate.add_job(vault.name, make_job(_guid(3), vault=vault, item="vm-gone", operation="DeleteBackupData",
                                        start=NOW - 2 * H, end=NOW - 2 * H + timedelta(minutes=1)))
    clock.now = NOW
    text = exporter.scrape()
    assert exporter.value("azure_backup_job_last_status", **labels, operation="Backup", status="Failed") is None
    assert exporter.value("azure_backup_last_successful_backup_timestamp_seconds", **labels) is None
    assert 'backup_item="vm-gone"' not in "".join(
        line for line in text.splitlines() if line.startswith("azure_backup_last_successful_backup_by_kind"))
    # AzureBackupDataDeletion still sees the deletion
    assert exporter.value("azure_backup_job_last_start_timestamp_seconds", **labels,
                          operation="DeleteBackupData") == pytest.approx((NOW - 2 * H).timestamp(), abs=1e-3)

    # protected again (before the next items list shows it): its new backups are watched again
    estate.add_job(vault.name, make_job(_guid(5), vault=vault, item="vm-gone", status="Failed", start=NOW + MIN,
                                        end=NOW + 5 * MIN))
    clock.now = NOW + 10 * MIN
    exporter.scrape()
    assert exporter.value("azure_backup_job_last_status", **labels, operation="Backup", status="Failed") == 1


def test_a_restarted_exporter_knows_a_deleted_item_from_its_deletion_job(
        vault: FakeVault, estate: FakeEstate, make_exporter: Callable[..., Exporter]) -> None:
    _deleted_vm(estate, vault)
    estate.add_item(vault.name, make_protected_item(vault=vault, friendly_name="vm-kept",
                                                    last_backup_status="Completed", last_backup_time=NOW - H))
    exporter = make_exporter(fixed_clock(NOW), vaults=vault.id)
    exporter.scrape()
    labels = _labels(vault, "vm-gone")
    assert exporter.value("azure_backup_job_last_status", **labels, operation="Backup", status="Failed") is None
    assert exporter.value("azure_backup_last_successful_backup_timestamp_seconds", **labels) is None
    assert exporter.value("azure_backup_job_last_status", **labels, operation="DeleteBackupData",
                          status="Completed") == 1


def test_an_item_backed_up_again_after_a_deletion_is_watched_again(
        vault: FakeVault, estate: FakeEstate, make_exporter: Callable[..., Exporter]) -> None:
    _deleted_vm(estate, vault)
    estate.add_job(vault.name, make_job(_guid(4), vault=vault, item="vm-gone", status="Failed", start=NOW - H,
                                        end=NOW - H / 2))  # protected again, and its new backup failed
    exporter = make_exporter(fixed_clock(NOW), vaults=vault.id)
    exporter.scrape()
    assert exporter.value("azure_backup_job_last_status", **_labels(vault, "vm-gone"), operation="Backup",
                          status="Failed") == 1


def test_a_bare_database_deletion_covers_its_unlisted_database(
        vault: FakeVault, estate: FakeEstate, make_exporter: Callable[..., Exporter]) -> None:
    # The SQL recording's order: backups named with host and instance, the deletion with the bare name.
    name = workload_job_name("MSSQLSERVER", "testdb1", "sqlvm01")
    estate.add_job(vault.name, make_job(_guid(1), vault=vault, item=name, job_type="AzureWorkloadJob",
                                        operation="Backup (Full)", status="Failed", start=NOW - 5 * H, end=NOW - 4 * H))
    for n, operation in enumerate(("DisableBackup", "DeleteBackupData")):
        estate.add_job(vault.name, make_job(_guid(2 + n), vault=vault, item="testdb1", job_type="AzureWorkloadJob",
                                            operation=operation, start=NOW - 3 * H + n * H, end=NOW - 2 * H + n * H))
    estate.add_item(vault.name, make_protected_item(vault=vault, friendly_name="vm-kept",
                                                    last_backup_status="Completed"))
    exporter = make_exporter(fixed_clock(NOW), vaults=vault.id)
    exporter.scrape()
    db = _labels(vault, "testdb1", "sqlvm01/MSSQLSERVER", "AzureWorkload")
    assert exporter.value("azure_backup_job_last_status", **db, operation="Backup (Full)", status="Failed") is None
    assert exporter.value("azure_backup_job_last_status", **{**db, "container": ""}, operation="DeleteBackupData",
                          status="Completed") == 1


def test_arm_headroom_is_reported_per_subscription(estate: FakeEstate, arm: FakeArm,
                                                   make_exporter: Callable[..., Exporter]) -> None:
    busy = estate.add_vault(SUB_A, "rg-a", "vault-a1")
    estate.add_vault(SUB_A, "rg-a", "vault-a2")
    quiet = estate.add_vault(SUB_B, "rg-b", "vault-b")
    exporter = make_exporter(fixed_clock(NOW), vaults=",".join(v.id for v in estate.vaults), concurrency="1")
    exporter.scrape()
    header = "x-ms-ratelimit-remaining-subscription-reads"
    remaining = {sub: exporter.value("azure_backup_api_ratelimit_remaining", header=header, subscription_id=sub)
                 for sub in (busy.subscription_id, quiet.subscription_id)}
    # each the subscription's own bucket (as some request of it last saw it: later ones only take more)
    for sub, value in remaining.items():
        assert value is not None and arm.ratelimit_remaining_for(sub) <= value < 250
    assert remaining[SUB_A] < remaining[SUB_B]  # two vaults' calls against one


def test_a_restarted_exporter_still_knows_a_weekly_full_older_than_lookback(
        vault: FakeVault, estate: FakeEstate, arm: FakeArm, make_exporter: Callable[..., Exporter]) -> None:
    # A database backed up in full on Sundays (and by log every hour): its last full ran 9 days ago, a
    # week overdue. LOOKBACK 7d alone would not see it, and the alert on the full kind would go quiet.
    estate.add_policy(vault.name, make_policy(vault=vault, name="SqlWeekly", backup_management_type="AzureWorkload",
                                              weekly_days=("Sunday",), log_minutes=60))
    estate.add_item(vault.name, make_protected_item(
        vault=vault, item_type="AzureVmWorkloadSQLDatabase", friendly_name="SalesDB", container="sqlvm01",
        last_backup_status="Healthy", last_backup_time=NOW - H, policy="SqlWeekly"))
    name = workload_job_name("MSSQLSERVER", "SalesDB", "sqlvm01")
    for n, (operation, start) in enumerate((("Backup (Full)", NOW - 9 * D), ("Backup (Log)", NOW - 2 * H))):
        estate.add_job(vault.name, make_job(_guid(200 + n), vault=vault, item=name, job_type="AzureWorkloadJob",
                                            operation=operation, start=start, end=start + 10 * MIN))
    exporter = make_exporter(fixed_clock(NOW), vaults=vault.id, lookback="7d")
    text = exporter.scrape()
    db = _labels(vault, "SalesDB", "sqlvm01/MSSQLSERVER", "AzureWorkload")
    by_kind = "azure_backup_last_successful_backup_by_kind_timestamp_seconds"
    assert exporter.value(by_kind, **db, kind="full") == (NOW - 9 * D + 10 * MIN).timestamp()
    assert exporter.value(by_kind, **db, kind="log") == (NOW - 2 * H + 10 * MIN).timestamp()
    # the old job gave its success; it is not kept as a latest-job series
    assert exporter.value("azure_backup_job_last_status", **db, operation="Backup (Full)", status="Completed") is None
    assert text.count("azure_backup_job_last_start_timestamp_seconds{") == 1  # the log backup's
    first_list = next(r for r in arm.requests if r.path.endswith("/backupJobs"))
    assert "startTime eq '" + (NOW - 14 * D).strftime("%Y-%m-%d %I:%M:%S %p") in first_list.query["$filter"]


def test_an_item_is_watched_since_the_first_list_or_its_own_first_listing(
        vault: FakeVault, estate: FakeEstate, make_exporter: Callable[..., Exporter]) -> None:
    # Issue 17, point 3: a kind with an interval and no success seen pages only once the exporter has watched
    # the item longer than the interval plus grace; a restart starts the watch again, a new item starts its own.
    estate.add_item(vault.name, make_protected_item(vault=vault, friendly_name="vm-old"))
    clock = fixed_clock(NOW)
    exporter = make_exporter(clock, vaults=vault.id, items_refresh_interval="0s")
    watched = "azure_backup_item_watched_since_timestamp_seconds"
    exporter.scrape()
    assert exporter.value(watched, **_labels(vault, "vm-old")) == NOW.timestamp()
    estate.add_item(vault.name, make_protected_item(vault=vault, friendly_name="vm-new"))
    clock.now = NOW + 3 * H
    exporter.scrape()
    assert exporter.value(watched, **_labels(vault, "vm-old")) == NOW.timestamp()
    assert exporter.value(watched, **_labels(vault, "vm-new")) == (NOW + 3 * H).timestamp()
    restarted = make_exporter(fixed_clock(NOW + 4 * H), vaults=vault.id)
    restarted.scrape()
    assert restarted.value(watched, **_labels(vault, "vm-old")) == (NOW + 4 * H).timestamp()
