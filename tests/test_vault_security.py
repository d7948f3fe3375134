"""A vault's guards against deletion, read from the vault itself (issue 20, point 5): the spec's Recovery Services
vault GET, a real Backup vault's settings (tests/fixtures/azure, PROVENANCE.md), and the fake ARM over HTTP."""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from exporter.models import BACKUP, RECOVERY_SERVICES
from exporter.simulator.fakearm import FakeEstate
from exporter.vault_security import VaultSecurity, parse_vault_security

from .conftest import FIXTURES, NOW, SUB_A, Clock, Exporter

RSV_GET = FIXTURES / "azure" / "recoveryservices" / "2024-04-01" / "GETVault.json"
BV_ROW = FIXTURES / "azure" / "resourcegraph" / "2021-03-01" / \
    "azure-cli-recording.Resources.backupvaults.response.json"


def _rsv() -> dict[str, Any]:
    body: dict[str, Any] = json.loads(RSV_GET.read_text())["responses"]["200"]["body"]
    return body


def _backup_vault(state: str | None = None) -> dict[str, Any]:
    row: dict[str, Any] = json.loads(BV_ROW.read_text())["data"][0]
    if state is not None:
        row["properties"]["securitySettings"]["softDeleteSettings"]["state"] = state
    return row


def test_a_recovery_services_vault_as_the_spec_shows_it() -> None:
    guards = parse_vault_security(_rsv(), RECOVERY_SERVICES)
    assert guards == VaultSecurity(soft_delete="on", immutability="disabled", multi_user_authorization="disabled",
                                   soft_delete_retention_days=14.0)
    assert guards.levels() == {"soft_delete": 1, "immutability": 0, "multi_user_authorization": 0,
                               "soft_delete_retention_days": 14.0}


@pytest.mark.parametrize(("state", "word", "level"), [
    (None, "on", 1), ("OFF", "off", 0), ("Enabled", "on", 1), ("AlwaysOn", "always_on", 2)])
def test_a_backup_vault_in_each_spelling_azure_uses(state: str | None, word: str, level: int) -> None:
    """The recorded row says On; a real GET said OFF; the spec's list example says Enabled; the enum AlwaysOn."""
    guards = parse_vault_security(_backup_vault(state), BACKUP)
    assert (guards.soft_delete, guards.multi_user_authorization, guards.immutability) == (word, "disabled", "")
    assert guards.levels() == {"soft_delete": level, "multi_user_authorization": 0, "soft_delete_retention_days": 14.0}
    assert guards.unknown == ()


def test_what_a_vault_does_not_say_has_no_level() -> None:
    bare = parse_vault_security({"properties": {"provisioningState": "Succeeded"}}, RECOVERY_SERVICES)
    assert not bare.reported and bare.levels() == {}
    invalid = copy.deepcopy(_rsv())
    invalid["properties"]["securitySettings"]["softDeleteSettings"]["softDeleteState"] = "Invalid"
    guards = parse_vault_security(invalid, RECOVERY_SERVICES)
    assert guards.soft_delete == "invalid" and "soft_delete" not in guards.levels() and guards.unknown == ()


def test_a_word_nobody_has_seen_is_kept_without_a_level() -> None:
    odd = copy.deepcopy(_rsv())
    odd["properties"]["securitySettings"]["immutabilitySettings"]["state"] = "PartiallyLocked"
    guards = parse_vault_security(odd, RECOVERY_SERVICES)
    assert guards.immutability == "partiallylocked" and "immutability" not in guards.levels()
    assert guards.unknown == (("immutabilityState", "PartiallyLocked"),)


# --- over HTTP --------------------------------------------------------------------------------------------------


def _lines(text: str, metric: str) -> list[str]:
    return sorted(line for line in text.splitlines() if line.startswith(metric + "{"))


def test_both_kinds_of_vault_show_their_guards_and_a_weakening_is_seen_on_the_next_vault_read(
        estate: FakeEstate, make_exporter: Callable[..., Exporter], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    rsv = estate.add_vault(SUB_A, "rg-prod", "vault-prod")
    bv = estate.add_backup_vault(SUB_A, "rg-prod", "vault-prod")  # the same name, the other kind
    clock = Clock(NOW)
    # items_refresh_interval 0: the vault is read on every refresh (every 3 items intervals; bench/dpp.py shows
    # that a refresh within the items interval does not read it)
    exporter = make_exporter(clock, vaults=f"{rsv.id},{bv.id}", items_refresh_interval="0s")
    text = exporter.scrape()
    vault = ('resource_group="rg-prod",soft_delete="on",subscription_id="11111111-1111-1111-1111-111111111111",'
             'vault="vault-prod"')
    assert _lines(text, "azure_backup_vault_security_info") == [
        'azure_backup_vault_security_info{immutability="",multi_user_authorization="",' + vault
        + ',vault_type="backup"} 1.0',
        'azure_backup_vault_security_info{immutability="disabled",multi_user_authorization="disabled",' + vault
        + ',vault_type="recovery_services"} 1.0',
    ]
    levels = "azure_backup_vault_security_level"
    assert exporter.value(levels, subscription_id=SUB_A, resource_group="rg-prod", vault="vault-prod",
                          vault_type="recovery_services", setting="soft_delete_retention_days") == 14

    with estate.lock:  # someone turns soft delete off and shortens nothing else
        rsv.security = {**rsv.security, "softDeleteSettings": {"softDeleteRetentionPeriodInDays": 14,
                                                               "softDeleteState": "Disabled"}}
        bv.security = {"softDeleteSettings": {"retentionDurationInDays": 14.0, "state": "OFF"}}
    clock.advance(timedelta(minutes=3))
    exporter.scrape()
    labels = {"subscription_id": SUB_A, "resource_group": "rg-prod", "vault": "vault-prod", "setting": "soft_delete"}
    assert exporter.value(levels, **labels, vault_type="recovery_services") == 0
    assert exporter.value(levels, **labels, vault_type="backup") == 0
    assert not [r for r in caplog.records if "unknown" in r.getMessage()]
