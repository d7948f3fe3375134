"""Protected items: health, protection state, and a last-success time that survives restarts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from exporter.simulator.fakearm import (
    NEVER_BACKED_UP,
    FakeArm,
    FakeEstate,
    FakeVault,
    Fault,
    make_job,
    make_protected_item,
)

from .conftest import NOW, SUB_A, Exporter, fixed_clock

H = timedelta(hours=1)
D = timedelta(days=1)


def _labels(vault: FakeVault, item: str, bmt: str = "AzureIaasVM", container: str | None = None) -> dict[str, str]:
    """An item's labels; an Azure VM's container is its resource group (here the vault's)."""
    return {"subscription_id": vault.subscription_id, "resource_group": vault.resource_group, "vault": vault.name,
            "vault_type": "recovery_services", "backup_management_type": bmt,
            "container": vault.resource_group if container is None else container, "backup_item": item}


@pytest.fixture
def vault(estate: FakeEstate) -> FakeVault:
    return estate.add_vault(SUB_A, "rg-prod", "vault-prod")


def _exporter(make_exporter: Callable[..., Exporter], vault: FakeVault, **overrides: str) -> Exporter:
    return make_exporter(fixed_clock(NOW), vaults=vault.id, **overrides)


def test_item_without_jobs_in_the_window_has_its_last_success_from_the_first_scrape(
        vault: FakeVault, estate: FakeEstate, make_exporter: Callable[..., Exporter]) -> None:
    # Its only backup job is 9 days old: outside the 7-day lookback, so no job series at all.
    estate.add_job(vault.name, make_job("00000000-0000-0000-0000-000000000001", vault=vault, item="vm-old",
                                        start=NOW - 9 * D, end=NOW - 9 * D + H))
    estate.add_item(vault.name, make_protected_item(
        vault=vault, friendly_name="vm-old", last_backup_status="Completed", last_backup_time=NOW - 9 * D + H,
        last_recovery_point=NOW - 9 * D, health_status="Passed"))
    exporter = _exporter(make_exporter, vault)
    text = exporter.scrape()
    labels = _labels(vault, "vm-old")
    assert "azure_backup_job_last_status{" not in text
    assert exporter.value("azure_backup_last_successful_backup_timestamp_seconds", **labels) == \
        (NOW - 9 * D + H).timestamp()
    assert exporter.value("azure_backup_item_last_backup_timestamp_seconds", **labels) == (NOW - 9 * D + H).timestamp()
    assert exporter.value("azure_backup_item_last_recovery_point_timestamp_seconds", **labels) == \
        (NOW - 9 * D).timestamp()


def test_a_restarted_exporter_knows_the_last_success_on_its_first_scrape(
        vault: FakeVault, estate: FakeEstate, make_exporter: Callable[..., Exporter]) -> None:
    # The last success (2 days ago) is followed by newer failures, the newest of which the job list shows.
    for n, age in enumerate((36, 24, 12)):
        estate.add_job(vault.name, make_job(f"00000000-0000-0000-0000-00000000000{n}", vault=vault, item="vm-web",
                                            status="Failed", start=NOW - age * H, end=NOW - age * H + H))
    estate.add_item(vault.name, make_protected_item(
        vault=vault, friendly_name="vm-web", last_backup_status="Failed", last_backup_time=NOW - 11 * H,
        last_recovery_point=NOW - 2 * D, health_status="ActionRequired"))
    labels = _labels(vault, "vm-web")
    before = _exporter(make_exporter, vault)
    before.scrape()
    first = before.value("azure_backup_last_successful_backup_timestamp_seconds", **labels)
    restarted = _exporter(make_exporter, vault)  # a fresh process: nothing remembered
    restarted.scrape()
    assert first == restarted.value("azure_backup_last_successful_backup_timestamp_seconds", **labels) == \
        (NOW - 2 * D).timestamp()
    # a failed lastBackupTime is not a success
    assert restarted.value("azure_backup_item_last_backup_status", **labels, status="Failed") == 1
    assert restarted.value("azure_backup_item_health_status", **labels, status="ActionRequired") == 1
    assert restarted.value("azure_backup_item_health_status", **labels, status="Passed") is None  # not current


def test_a_newer_successful_job_wins_over_the_items_record(
        vault: FakeVault, estate: FakeEstate, make_exporter: Callable[..., Exporter]) -> None:
    estate.add_job(vault.name, make_job("00000000-0000-0000-0000-000000000001", vault=vault, item="vm-db",
                                        start=NOW - 2 * H, end=NOW - H))
    estate.add_item(vault.name, make_protected_item(
        vault=vault, friendly_name="vm-db", last_backup_status="Completed", last_backup_time=NOW - 25 * H,
        last_recovery_point=NOW - 26 * H, health_status="Passed"))
    exporter = _exporter(make_exporter, vault)
    exporter.scrape()
    assert exporter.value("azure_backup_last_successful_backup_timestamp_seconds", **_labels(vault, "vm-db")) == \
        (NOW - H).timestamp()


# The container each type's item gets (the README's table); the fake puts each on the host "thing".
@pytest.mark.parametrize(("item_type", "bmt", "status", "health", "container"), [
    ("Microsoft.Compute/virtualMachines", "AzureIaasVM", "Completed", "Passed", "rg-prod"),
    ("Microsoft.ClassicCompute/virtualMachines", "AzureIaasVM", "Completed", "Passed", "thing"),  # cloud service
    ("AzureFileShareProtectedItem", "AzureStorage", "Completed", "Passed", "thing"),
    ("AzureVmWorkloadSQLDatabase", "AzureWorkload", "Healthy", "Healthy", "thing/MSSQLSERVER"),
    ("AzureVmWorkloadSAPHanaDatabase", "AzureWorkload", "Healthy", "Healthy", "thing/THING"),
    ("MabFileFolderProtectedItem", "MAB", "Completed", "", "thing"),
    ("DPMProtectedItem", "DPM", "Completed", "", "thing"),
    ("SomeFutureProtectedItem", "DefaultBackup", "Completed", "", "thing"),
])
def test_every_item_type_parses(item_type: str, bmt: str, status: str, health: str, container: str, *,
                                vault: FakeVault,
                                estate: FakeEstate, make_exporter: Callable[..., Exporter]) -> None:
    estate.add_item(vault.name, make_protected_item(
        vault=vault, item_type=item_type, friendly_name="thing", backup_management_type=bmt,
        last_backup_status=status, last_backup_time=NOW - H, last_recovery_point=NOW - H,
        health_status=health or None, policy="DailyPolicy"))
    exporter = _exporter(make_exporter, vault)
    text = exporter.scrape()
    labels = _labels(vault, "thing", bmt, container)
    assert f'item_type="{item_type}"' in text
    assert exporter.value("azure_backup_item_protection_state", **labels, state="Protected") == 1
    assert exporter.value("azure_backup_item_last_backup_status", **labels, status=status) == 1
    assert exporter.value("azure_backup_last_successful_backup_timestamp_seconds", **labels) == \
        (NOW - H).timestamp()
    assert exporter.value("azure_backup_parse_errors_total", field="item") == 0


def test_stopped_and_unknown_states_each_get_a_series(vault: FakeVault, estate: FakeEstate,
                                                      make_exporter: Callable[..., Exporter]) -> None:
    """With STATE_SERIES=all, every known state has a series (0 unless current), and an unknown one is added."""
    estate.add_item(vault.name, make_protected_item(vault=vault, friendly_name="vm-retired",
                                                    protection_state="ProtectionStopped",
                                                    last_backup_status="Completed", last_backup_time=NOW - 40 * D))
    estate.add_item(vault.name, make_protected_item(vault=vault, friendly_name="vm-future",
                                                    protection_state="QuantumShielded", health_status="Passed"))
    exporter = _exporter(make_exporter, vault, state_series="all")
    exporter.scrape()
    assert exporter.value("azure_backup_item_protection_state", **_labels(vault, "vm-retired"),
                          state="ProtectionStopped") == 1
    assert exporter.value("azure_backup_item_protection_state", **_labels(vault, "vm-retired"), state="Protected") == 0
    assert exporter.value("azure_backup_item_protection_state", **_labels(vault, "vm-future"),
                          state="QuantumShielded") == 1


def test_items_are_listed_on_their_own_interval(vault: FakeVault, estate: FakeEstate, arm: FakeArm,
                                                make_exporter: Callable[..., Exporter]) -> None:
    estate.add_item(vault.name, make_protected_item(vault=vault, friendly_name="vm-web", health_status="Passed"))
    exporter = _exporter(make_exporter, vault, items_refresh_interval="1h")
    exporter.scrape()
    exporter.scrape()
    exporter.scrape()
    assert len([r for r in arm.requests if r.path.endswith("/backupProtectedItems")]) == 1
    assert len([r for r in arm.requests if r.path.endswith("/backupJobs")]) >= 3


def test_an_item_listing_failure_fails_the_vault_and_keeps_its_items(
        vault: FakeVault, estate: FakeEstate, arm: FakeArm, make_exporter: Callable[..., Exporter]) -> None:
    estate.add_item(vault.name, make_protected_item(vault=vault, friendly_name="vm-web", health_status="Passed"))
    exporter = _exporter(make_exporter, vault, items_refresh_interval="0s")
    exporter.scrape()
    arm.set_fault(vault.name, Fault("status", status=403, code="AuthorizationFailed",
                                    operations=frozenset({"items_list"})))
    exporter.scrape()
    vault_labels = {"subscription_id": vault.subscription_id, "resource_group": vault.resource_group,
                    "vault": vault.name, "vault_type": "recovery_services"}
    assert exporter.value("azure_backup_vault_scrape_success", **vault_labels) == 0
    assert exporter.value("azure_backup_item_health_status", **_labels(vault, "vm-web"), status="Passed") == 1


def test_never_backed_up_items_have_no_last_backup_time(vault: FakeVault, estate: FakeEstate,
                                                        make_exporter: Callable[..., Exporter]) -> None:
    # What Azure really sends for a VM whose initial backup has not run yet (azure-cli recording).
    estate.add_item(vault.name, make_protected_item(vault=vault, friendly_name="vm-new", last_backup_status="",
                                                    last_backup_time=NEVER_BACKED_UP, health_status="Passed",
                                                    protection_state="IRPending"))
    exporter = _exporter(make_exporter, vault)
    exporter.scrape()
    labels = _labels(vault, "vm-new")
    assert exporter.value("azure_backup_item_protection_state", **labels, state="IRPending") == 1
    assert exporter.value("azure_backup_item_last_backup_timestamp_seconds", **labels) is None
    assert exporter.value("azure_backup_last_successful_backup_timestamp_seconds", **labels) is None
    assert exporter.value("azure_backup_item_last_backup_status", **labels, status="Completed") is None
