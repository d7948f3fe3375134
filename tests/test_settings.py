"""Settings: sources and precedence, validation, and how a bad setting stops the program."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from exporter.settings import SettingsError, load_settings

SUB = "00000000-0000-0000-0000-000000000001"
VAULT = f"/subscriptions/{SUB}/resourceGroups/rg-backup/providers/Microsoft.RecoveryServices/vaults/vault-a"
VAULT_B = f"/subscriptions/{SUB}/resourceGroups/rg-backup/providers/Microsoft.RecoveryServices/vaults/vault-b"
BACKUP_VAULT = f"/subscriptions/{SUB}/resourceGroups/rg-backup/providers/Microsoft.DataProtection/backupVaults/vault-a"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("AZURE_BACKUP_EXPORTER_"):
            monkeypatch.delenv(name)


def test_comma_separated_and_json_vault_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_BACKUP_EXPORTER_VAULTS", f"{VAULT}, {VAULT_B}")
    assert [v.name for v in load_settings().vault_refs] == ["vault-a", "vault-b"]
    monkeypatch.setenv("AZURE_BACKUP_EXPORTER_VAULTS", f'["{VAULT}"]')
    assert [v.name for v in load_settings().vault_refs] == ["vault-a"]


def test_ids_are_parsed_case_insensitively() -> None:
    odd = VAULT.replace("/subscriptions/", "/Subscriptions/")
    odd = odd.replace("Microsoft.RecoveryServices", "microsoft.recoveryservices")
    (ref,) = load_settings(overrides={"vaults": odd}).vault_refs
    assert (ref.subscription_id, ref.resource_group, ref.name) == (SUB, "rg-backup", "vault-a")


@pytest.mark.parametrize(("text", "expected"), [
    ("48h", timedelta(hours=48)), ("7d", timedelta(days=7)), ("P7D", timedelta(days=7)),
    ("1h30m", timedelta(minutes=90)), ("PT15M", timedelta(minutes=15)), ("3600", timedelta(hours=1)),
])
def test_lookback_formats(text: str, expected: timedelta) -> None:
    assert load_settings(overrides={"vaults": VAULT, "lookback": text}).lookback == expected


def test_defaults_and_cloud_endpoints() -> None:
    settings = load_settings(overrides={"vaults": VAULT})
    assert settings.lookback == timedelta(days=7)
    assert settings.refresh_interval == timedelta(seconds=60)
    assert settings.arm_url == "https://management.azure.com"
    assert settings.token_scope == "https://management.azure.com/.default"
    gov = load_settings(overrides={"vaults": VAULT, "cloud": "AzureUSGovernment"})
    assert gov.arm_url == "https://management.usgovcloudapi.net"
    assert gov.token_scope == "https://management.usgovcloudapi.net/.default"
    china = load_settings(overrides={"vaults": VAULT, "cloud": "AzureChinaCloud",
                                     "resource_manager_url": "https://arm.private.example"})
    assert china.arm_url == "https://arm.private.example"  # overrides the URL only
    assert china.token_scope == "https://management.chinacloudapi.cn/.default"


def test_precedence_flag_over_env_over_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config.yml"
    config.write_text(f"vaults: ['{VAULT}']\nlookback: 2d\nrefresh_interval: 5m\nconcurrency: 3\n")
    monkeypatch.setenv("AZURE_BACKUP_EXPORTER_LOOKBACK", "3d")
    settings = load_settings(config, {"refresh_interval": "30s"})
    assert settings.concurrency == 3                          # file
    assert settings.lookback == timedelta(days=3)             # env beats file
    assert settings.refresh_interval == timedelta(seconds=30)  # flag beats env and file


@pytest.mark.parametrize(("overrides", "message"), [
    ({"vaults": "/subscriptions/x/resourceGroups/rg"}, "AZURE_BACKUP_EXPORTER_VAULTS: "),
    ({"vaults": VAULT, "cloud": "AzureMars"}, "AZURE_BACKUP_EXPORTER_CLOUD: unknown cloud 'AzureMars'"),
    ({"vaults": VAULT, "refresh_interval": "-5s"}, "AZURE_BACKUP_EXPORTER_REFRESH_INTERVAL: must not be negative"),
    ({"vaults": VAULT, "lookback": "31d"}, "AZURE_BACKUP_EXPORTER_LOOKBACK: must be more than 0 and at most 30d"),
    ({"vaults": VAULT, "resource_manager_url": "http://arm.example.com"}, "only allowed for a loopback host"),
    ({"vaults": VAULT, "concurrency": "0"}, "AZURE_BACKUP_EXPORTER_CONCURRENCY"),
    ({"subscriptions": "not-a-guid"}, "AZURE_BACKUP_EXPORTER_SUBSCRIPTIONS: 'not-a-guid' is not a subscription ID"),
    ({}, "no vaults to watch"),
    ({"vaults": VAULT, "dataprotection_api_version": "latest"},
     "AZURE_BACKUP_EXPORTER_DATAPROTECTION_API_VERSION: 'latest' is not an api-version"),
])
def test_bad_settings_name_the_setting(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(overrides=overrides)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_vaults_take_both_kinds_of_vault_id() -> None:
    """Recovery Services and Backup vault IDs, provider and type in any case; each kind keeps its own path."""
    backup = BACKUP_VAULT.replace("Microsoft.DataProtection/backupVaults", "microsoft.dataprotection/BACKUPVAULTS")
    settings = load_settings(overrides={"vaults": f"{VAULT}, {backup}"})
    assert [(ref.kind, ref.name) for ref in settings.vault_refs] == [("recovery_services", "vault-a"),
                                                                     ("backup", "vault-a")]
    assert settings.vault_refs[1].path.endswith("/providers/Microsoft.DataProtection/backupVaults/vault-a")
    # the error for an ID of neither kind names both forms
    with pytest.raises(SettingsError, match=r"Microsoft\.RecoveryServices/vaults/<name> or .*"
                                            r"Microsoft\.DataProtection/backupVaults/<name>"):
        load_settings(overrides={"vaults": f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Web/sites/x"})


def test_unknown_key_in_the_file_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text(f"vaults: ['{VAULT}']\nlookbak: 2d\n")
    with pytest.raises(SettingsError, match="AZURE_BACKUP_EXPORTER_LOOKBAK: unknown setting"):
        load_settings(config)


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("AZURE_")}
    return subprocess.run([sys.executable, "-m", "exporter", *args], capture_output=True, text=True,
                          env={**base, **(env or {})}, timeout=60, check=False)


@pytest.mark.parametrize(("args", "env", "needle"), [
    ((), {}, "no vaults to watch"),
    (("--lookback", "forever"), {"AZURE_BACKUP_EXPORTER_VAULTS": VAULT}, "AZURE_BACKUP_EXPORTER_LOOKBACK"),
    ((), {"AZURE_BACKUP_EXPORTER_VAULTS": VAULT, "AZURE_BACKUP_EXPORTER_CLOUD": "Moon"},
     "AZURE_BACKUP_EXPORTER_CLOUD"),
    (("--config.file", "/nonexistent/config.yml"), {}, "config file /nonexistent/config.yml: not found"),
    (("--vault-types", "classic"), {"AZURE_BACKUP_EXPORTER_SUBSCRIPTIONS": SUB},
     "invalid setting AZURE_BACKUP_EXPORTER_VAULT_TYPES: 'classic' is not a kind of vault"),
    ((), {"AZURE_BACKUP_EXPORTER_VAULTS": BACKUP_VAULT, "AZURE_BACKUP_EXPORTER_VAULT_TYPES": "recovery_services"},
     "is a vault of type backup, which AZURE_BACKUP_EXPORTER_VAULT_TYPES (recovery_services) leaves out"),
])
def test_bad_setting_exits_2_with_one_line_and_no_traceback(
        args: tuple[str, ...], env: dict[str, str], needle: str) -> None:
    result = _run(*args, env=env)
    assert result.returncode == 2
    assert needle in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_check_config_prints_settings_with_secrets_masked() -> None:
    result = _run("--check-config", env={"AZURE_BACKUP_EXPORTER_VAULTS": VAULT, "AZURE_CLIENT_SECRET": "s3cr3t-value",
                                         "AZURE_CLIENT_ID": "11111111-1111-1111-1111-111111111111"})
    assert result.returncode == 0, result.stderr
    assert '"lookback": 604800.0' in result.stdout
    assert '"AZURE_CLIENT_SECRET": "****"' in result.stdout
    assert "s3cr3t-value" not in result.stdout + result.stderr


def test_version() -> None:
    result = _run("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("azure-backup-exporter ")


# --- VAULT_TYPES (issue 17, point 1) -----------------------------------------------------------------


def test_vault_types_default_to_both_and_take_a_comma_list(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings(overrides={"subscriptions": SUB}).vault_types == ["recovery_services", "backup"]
    monkeypatch.setenv("AZURE_BACKUP_EXPORTER_VAULT_TYPES", " Recovery_Services ")
    assert load_settings(overrides={"subscriptions": SUB}).vault_types == ["recovery_services"]
    monkeypatch.setenv("AZURE_BACKUP_EXPORTER_VAULT_TYPES", "backup,recovery_services,backup")
    assert load_settings(overrides={"subscriptions": SUB}).vault_types == ["recovery_services", "backup"]


def test_vault_types_from_the_yaml_file(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text(f"subscriptions: {SUB}\nvault_types: [recovery_services]\n")
    assert load_settings(config).vault_types == ["recovery_services"]


@pytest.mark.parametrize(("value", "message"), [
    ("recovery_services,backups", "'backups' is not a kind of vault (use recovery_services,backup)"),
    ("", "names no kind of vault"),
])
def test_a_bad_vault_type_names_the_setting(value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=r"^invalid setting AZURE_BACKUP_EXPORTER_VAULT_TYPES: ") as caught:
        load_settings(overrides={"subscriptions": SUB, "vault_types": value})
    assert message in str(caught.value)


def test_a_configured_vault_of_a_kind_vault_types_leaves_out_stops_the_start() -> None:
    """A vault someone listed is never dropped in silence: the contradiction is a settings error."""
    with pytest.raises(SettingsError) as caught:
        load_settings(overrides={"vaults": f"{VAULT},{BACKUP_VAULT}", "vault_types": "recovery_services"})
    assert str(caught.value) == (
        f"invalid setting AZURE_BACKUP_EXPORTER_VAULTS: {BACKUP_VAULT} is a vault of type backup, which "
        "AZURE_BACKUP_EXPORTER_VAULT_TYPES (recovery_services) leaves out")
    assert load_settings(overrides={"vaults": BACKUP_VAULT, "vault_types": "backup"}).vault_types == ["backup"]

