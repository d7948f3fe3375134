"""Discovery per kind of vault (issue 17, point 1): a subscription's Recovery Services vaults and its Backup vaults
are listed apart, so a Backup vault list that fails (a role made before Backup vaults were supported, an
api-version a cloud does not serve, a 5xx) never hides a Recovery Services vault, and the other way round."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import timedelta

import pytest

from exporter.simulator.fakearm import (
    DPP_LIST_FAULT_OPERATIONS,
    RSV_LIST_FAULT_OPERATIONS,
    FakeArm,
    FakeEstate,
    FakeVault,
    Fault,
    make_job,
    make_protected_item,
)

from .conftest import NOW, SUB_A, SUB_B, Exporter, fixed_clock

H = timedelta(hours=1)
DISCOVERY = "azure_backup_subscription_discovery_success"
# Each scrape lists the subscriptions again, so a test sees discovery after each change.
EVERY_SCRAPE = {"discovery_interval": "1ms"}
# What a Backup vault list can answer besides "provider not registered", each a failure of that kind only.
BACKUP_LIST_FAILURES = {
    "403 AuthorizationFailed": Fault.authorization_failed(operations=DPP_LIST_FAULT_OPERATIONS),
    "400 NoRegisteredProviderFound": Fault(
        "status", status=400, code="NoRegisteredProviderFound", operations=DPP_LIST_FAULT_OPERATIONS,
        message="No registered resource provider found for location 'usgovvirginia' and API version "
                "'2026-06-01' for type 'backupVaults'."),
    "500 InternalServerError": Fault("status", status=500, code="InternalServerError",
                                     operations=DPP_LIST_FAULT_OPERATIONS),
}


def _guid(n: int) -> str:
    return f"00000000-0000-0000-0000-{n:012d}"


@pytest.fixture
def rsv(estate: FakeEstate) -> FakeVault:
    """A Recovery Services vault whose VM's latest backup failed (AzureBackupJobFailed reads that series), beside
    a Backup vault in the same subscription."""
    vault = estate.add_vault(SUB_A, "rg-prod", "rsv-prod")
    estate.add_job(vault.name, make_job(_guid(1), vault=vault, item="vm-web", start=NOW - 26 * H,
                                        end=NOW - 25 * H))
    estate.add_job(vault.name, make_job(_guid(2), vault=vault, item="vm-web", status="Failed",
                                        start=NOW - 2 * H, end=NOW - H, error="UserErrorGuestAgentStatusUnavailable"))
    estate.add_item(vault.name, make_protected_item(vault=vault, friendly_name="vm-web", last_backup_status="Failed",
                                                    last_backup_time=NOW - H, last_recovery_point=NOW - 25 * H))
    estate.add_backup_vault(SUB_A, "rg-prod", "bv-prod")
    return vault


def _discover(make_exporter: Callable[..., Exporter], **overrides: str) -> Exporter:
    return make_exporter(fixed_clock(NOW), subscriptions=SUB_A, **{**EVERY_SCRAPE, **overrides})


def _series_of(text: str, vault_type: str) -> list[str]:
    """The exposition's sample lines of one kind of vault, without the values that are timings."""
    timing = re.compile(r"^azure_backup_vault_scrape_duration_seconds")
    return sorted(line for line in text.splitlines()
                  if f'vault_type="{vault_type}"' in line and not timing.match(line))


def _watched(text: str) -> list[str]:
    infos = (line for line in text.splitlines() if line.startswith("azure_backup_vault_info{"))
    return sorted(f"{_label(line, 'vault')}/{_label(line, 'vault_type')}" for line in infos)


def _label(line: str, name: str) -> str:
    match = re.search(rf'\b{name}="([^"]*)"', line)
    assert match, f"no {name} in {line}"
    return match.group(1)


@pytest.mark.parametrize("failure", BACKUP_LIST_FAILURES.values(), ids=BACKUP_LIST_FAILURES.keys())
def test_a_failing_backup_vault_list_hides_no_recovery_services_vault(
        arm: FakeArm, rsv: FakeVault, make_exporter: Callable[..., Exporter], failure: Fault) -> None:
    working = _discover(make_exporter)
    expected = _series_of(working.scrape(), "recovery_services")
    assert any('status="Failed"' in line and "vm-web" in line for line in expected)  # the series that pages

    arm.set_vault_list_fault(SUB_A, failure)
    blinded = _discover(make_exporter)  # a first start: no list of either kind known yet
    first = blinded.scrape()
    assert _watched(first) == ["rsv-prod/recovery_services"]
    assert _series_of(first, "recovery_services") == expected
    assert blinded.value(DISCOVERY, subscription_id=SUB_A, vault_type="recovery_services") == 1
    assert blinded.value(DISCOVERY, subscription_id=SUB_A, vault_type="backup") == 0
    assert blinded.value("azure_backup_up") == 1
    assert blinded.refresher.ready()

    # refreshed again, and still found, while the Backup vault list keeps failing
    lists_before = len(arm.requests.to("/Microsoft.RecoveryServices/vaults/rsv-prod/backupJobs"))
    assert _series_of(blinded.scrape(), "recovery_services") == expected
    assert len(arm.requests.to("/Microsoft.RecoveryServices/vaults/rsv-prod/backupJobs")) > lists_before


def test_a_failing_recovery_services_vault_list_hides_no_backup_vault(
        arm: FakeArm, rsv: FakeVault, make_exporter: Callable[..., Exporter]) -> None:
    arm.set_vault_list_fault(SUB_A, Fault.authorization_failed(operations=RSV_LIST_FAULT_OPERATIONS))
    exporter = _discover(make_exporter)
    assert _watched(exporter.scrape()) == ["bv-prod/backup"]
    assert exporter.value(DISCOVERY, subscription_id=SUB_A, vault_type="recovery_services") == 0
    assert exporter.value(DISCOVERY, subscription_id=SUB_A, vault_type="backup") == 1


def test_a_kind_that_fails_later_keeps_its_last_list_and_the_other_kind_moves_on(
        arm: FakeArm, estate: FakeEstate, rsv: FakeVault, make_exporter: Callable[..., Exporter],
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="exporter.refresher")
    exporter = _discover(make_exporter)
    assert _watched(exporter.scrape()) == ["bv-prod/backup", "rsv-prod/recovery_services"]

    arm.set_vault_list_fault(SUB_A, BACKUP_LIST_FAILURES["403 AuthorizationFailed"])  # a 5xx: the same, slower
    estate.add_vault(SUB_A, "rg-new", "rsv-new")  # created while the Backup vault list fails
    estate.add_backup_vault(SUB_A, "rg-new", "bv-new")  # not found until that list works again
    exporter.scrape()
    text = exporter.scrape()
    assert _watched(text) == ["bv-prod/backup", "rsv-new/recovery_services", "rsv-prod/recovery_services"]
    assert exporter.value(DISCOVERY, subscription_id=SUB_A, vault_type="backup") == 0
    assert exporter.value(DISCOVERY, subscription_id=SUB_A, vault_type="recovery_services") == 1

    # once per state change: one warning that names the kind and the reason, the repeats at DEBUG
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].startswith(f"subscription={SUB_A} vault_type=backup vault discovery failed")
    assert "AuthorizationFailed" in warnings[0] and "Microsoft.DataProtection/backupVaults/read" in warnings[0]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and "recovery_services" in r.getMessage()]

    arm.set_vault_list_fault(SUB_A, None)
    assert "bv-new/backup" in _watched(exporter.scrape())
    assert exporter.value(DISCOVERY, subscription_id=SUB_A, vault_type="backup") == 1
    recovered = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO and "again" in r.getMessage()]
    assert recovered == [f"subscription={SUB_A} vault_type=backup vault discovery works again"]


def test_an_unregistered_provider_is_no_failure_of_either_kind(
        estate: FakeEstate, make_exporter: Callable[..., Exporter], caplog: pytest.LogCaptureFixture) -> None:
    estate.add_vault(SUB_B, "rg-b", "rsv-b")
    estate.unregister_provider(SUB_B)  # ARM answers the Backup vault list 409 MissingSubscriptionRegistration
    exporter = make_exporter(fixed_clock(NOW), subscriptions=SUB_B)
    assert _watched(exporter.scrape()) == ["rsv-b/recovery_services"]
    assert exporter.value(DISCOVERY, subscription_id=SUB_B, vault_type="recovery_services") == 1
    assert exporter.value(DISCOVERY, subscription_id=SUB_B, vault_type="backup") == 1
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_vault_types_leaves_a_kind_out_of_discovery_without_a_word(
        arm: FakeArm, rsv: FakeVault, make_exporter: Callable[..., Exporter],
        caplog: pytest.LogCaptureFixture) -> None:
    """A Recovery-Services-only role says so with VAULT_TYPES: the Backup vault list is never asked for, so its
    403 neither warns nor sets a discovery series to 0."""
    arm.set_vault_list_fault(SUB_A, BACKUP_LIST_FAILURES["403 AuthorizationFailed"])
    exporter = _discover(make_exporter, vault_types="recovery_services")
    text = exporter.scrape()
    exporter.scrape()
    assert _watched(text) == ["rsv-prod/recovery_services"]
    assert exporter.value(DISCOVERY, subscription_id=SUB_A, vault_type="recovery_services") == 1
    assert f'{DISCOVERY}{{subscription_id="{SUB_A}",vault_type="backup"}}' not in text
    assert not arm.requests.to("/providers/Microsoft.DataProtection/")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
