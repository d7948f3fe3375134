"""Settings: sources and precedence, validation, and how a bad setting stops the program."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import requests

from exporter.__main__ import build_parser
from exporter.settings import Settings, SettingsError, env_name, load_settings, unknown_environment
from exporter.simulator.fakearm import FakeArm, FakeEstate

from .e2e_stack import free_port, wait_ready

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


def test_backup_vaults_have_their_own_refresh_interval(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 19, point 1: BACKUP_VAULT_REFRESH_INTERVAL, default 5m, from the file, the environment and the flag."""
    assert load_settings(overrides={"vaults": VAULT}).backup_vault_refresh_interval == timedelta(minutes=5)
    config = tmp_path / "config.yml"
    config.write_text(f"vaults: ['{VAULT}']\nbackup_vault_refresh_interval: 10m\n")
    assert load_settings(config).backup_vault_refresh_interval == timedelta(minutes=10)
    monkeypatch.setenv("AZURE_BACKUP_EXPORTER_BACKUP_VAULT_REFRESH_INTERVAL", "PT2M")
    assert load_settings(config).backup_vault_refresh_interval == timedelta(minutes=2)
    flag = build_parser().parse_args(["--backup-vault-refresh-interval", "90s"]).backup_vault_refresh_interval
    assert load_settings(config, {"backup_vault_refresh_interval": flag}).backup_vault_refresh_interval == \
        timedelta(seconds=90)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"vaults": "/subscriptions/x/resourceGroups/rg"}, "AZURE_BACKUP_EXPORTER_VAULTS: "),
    ({"vaults": VAULT, "cloud": "AzureMars"}, "AZURE_BACKUP_EXPORTER_CLOUD: unknown cloud 'AzureMars'"),
    ({"vaults": VAULT, "refresh_interval": "-5s"}, "AZURE_BACKUP_EXPORTER_REFRESH_INTERVAL: must not be negative"),
    ({"vaults": VAULT, "backup_vault_refresh_interval": "-1m"},
     "AZURE_BACKUP_EXPORTER_BACKUP_VAULT_REFRESH_INTERVAL: must not be negative"),
    ({"vaults": VAULT, "backup_vault_refresh_interval": "soon"},
     "AZURE_BACKUP_EXPORTER_BACKUP_VAULT_REFRESH_INTERVAL: 'soon' is not a duration"),
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


@pytest.mark.parametrize(("key", "suggestion"), [
    ("lookbak", "'lookback'"),
    ("LOOKBAK", "'lookback'"),                          # keys are read in any case
    ("refresh-interval", "'refresh_interval'"),         # the flag's spelling
    ("AZURE_BACKUP_EXPORTER_CLOUD", "'cloud'"),          # the variable's spelling
    ("xyzzy", "the settings are listed in --help"),    # nothing close: no wild guess
])
def test_unknown_key_in_the_file_is_refused_with_the_closest_setting(
        tmp_path: Path, key: str, suggestion: str) -> None:
    config = tmp_path / "config.yml"
    config.write_text(f"vaults: ['{VAULT}']\n{key}: 2d\n")
    with pytest.raises(SettingsError) as caught:
        load_settings(config)
    assert f"config file {config}: unknown setting {key!r} (" in str(caught.value)
    assert suggestion in str(caught.value)


def test_every_field_is_a_known_variable_in_any_case() -> None:
    """The known names come from the model: a setting added later is known without a list to update."""
    assert unknown_environment({env_name(field): "x" for field in Settings.model_fields}) == {}
    assert unknown_environment({"azure_backup_exporter_lookback": "2d", "PATH": "/bin", "AZURE_CLIENT_ID": "x"}) == {}
    assert unknown_environment({"AZURE_BACKUP_EXPORTER_LOOKBAK": "2d", "AZURE_BACKUP_EXPORTER_XYZZY": "1"}) == {
        "AZURE_BACKUP_EXPORTER_LOOKBAK": "AZURE_BACKUP_EXPORTER_LOOKBACK", "AZURE_BACKUP_EXPORTER_XYZZY": None}


def test_kubernetes_service_links_are_not_reported() -> None:
    """A Service named azure-backup-exporter adds these to pods that keep enableServiceLinks on."""
    links = {"AZURE_BACKUP_EXPORTER_SERVICE_HOST": "10.0.0.7", "AZURE_BACKUP_EXPORTER_SERVICE_PORT": "9934",
             "AZURE_BACKUP_EXPORTER_SERVICE_PORT_METRICS": "9934", "AZURE_BACKUP_EXPORTER_PORT": "tcp://10.0.0.7:9934",
             "AZURE_BACKUP_EXPORTER_PORT_9934_TCP": "tcp://10.0.0.7:9934",
             "AZURE_BACKUP_EXPORTER_PORT_9934_TCP_PROTO": "tcp", "AZURE_BACKUP_EXPORTER_PORT_9934_TCP_PORT": "9934",
             "AZURE_BACKUP_EXPORTER_PORT_9934_TCP_ADDR": "10.0.0.7"}
    assert unknown_environment({**links, "AZURE_BACKUP_EXPORTER_LOOKBAK": "2d"}) == {
        "AZURE_BACKUP_EXPORTER_LOOKBAK": "AZURE_BACKUP_EXPORTER_LOOKBACK"}
    # without Kubernetes' SERVICE_HOST beside it, a PORT variable is the user's, and no setting
    assert unknown_environment({"AZURE_BACKUP_EXPORTER_PORT": "9000"}) == {"AZURE_BACKUP_EXPORTER_PORT": None}


def test_every_variable_the_repository_ships_is_a_setting() -> None:
    """A manifest, image or doc that sets a variable the model lacks would warn at every start."""
    root = Path(__file__).parent.parent
    files = [root / "Dockerfile", *(root / "deploy").rglob("*.yaml"), *(root / "docs").rglob("*.md"),
             *(root / "exporter").rglob("*.py"), *(root / "scripts").iterdir()]
    names = {name for file in files if file.is_file()
             for name in re.findall(r"\bAZURE_BACKUP_EXPORTER_[A-Z0-9_]*[A-Z0-9]\b", file.read_text())}
    assert names, "the scan found nothing: the file list is wrong"
    assert unknown_environment(dict.fromkeys(names, "")) == {}


def _base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "IDENTITY_", "MSI_"))}


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "exporter", *args], capture_output=True, text=True,
                          env={**_base_env(), **(env or {})}, timeout=60, check=False)


def test_unknown_key_in_the_file_exits_2_naming_it_and_the_closest_setting(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text(f"vaults: ['{VAULT}']\nlookbak: 2d\n")
    result = _run("--config.file", str(config))
    assert result.returncode == 2
    assert result.stderr.strip() == (f"azure-backup-exporter: invalid config file {config}: "
                                     "unknown setting 'lookbak' (did you mean 'lookback'?)")


def test_a_file_that_is_not_yaml_exits_2_with_one_line(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text(f"vaults: ['{VAULT}'\nlookback: 2d\n")  # the list's ] is missing
    result = _run("--config.file", str(config))
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"azure-backup-exporter: config file {config}: not YAML: ")
    assert "line 2" in line


def test_check_config_lists_unknown_variables_by_name_only() -> None:
    result = _run("--check-config", env={"AZURE_BACKUP_EXPORTER_VAULTS": VAULT,
                                         "azure_backup_exporter_concurrency": "4",   # valid, in lower case
                                         "AZURE_BACKUP_EXPORTER_LOOKBAK": "s3cr3t-2d",
                                         "AZURE_BACKUP_EXPORTER_XYZZY": "s3cr3t-xyzzy"})
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["settings"]["concurrency"] == 4
    assert report["unknown_environment"] == {"AZURE_BACKUP_EXPORTER_LOOKBAK": "AZURE_BACKUP_EXPORTER_LOOKBACK",
                                             "AZURE_BACKUP_EXPORTER_XYZZY": None}
    assert "s3cr3t" not in result.stdout + result.stderr


def test_a_mistyped_variable_is_named_on_the_line_that_stops_the_exporter() -> None:
    result = _run(env={"AZURE_BACKUP_EXPORTER_VAULT": VAULT})
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "no vaults to watch" in line
    assert "AZURE_BACKUP_EXPORTER_VAULT is not a setting and is ignored " \
           "(did you mean AZURE_BACKUP_EXPORTER_VAULTS?)" in line
    assert VAULT not in line


def test_unknown_variable_warns_once_at_start_and_the_exporter_keeps_running(arm: FakeArm, estate: FakeEstate) -> None:
    vault = estate.add_vault(SUB, "rg-backup", "vault-a")
    port = free_port()
    env = {"IDENTITY_ENDPOINT": arm.identity_endpoint, "IDENTITY_HEADER": arm.identity_header,
           "AZURE_BACKUP_EXPORTER_RESOURCE_MANAGER_URL": arm.url, "AZURE_BACKUP_EXPORTER_VAULTS": vault.id,
           "AZURE_BACKUP_EXPORTER_LOOKBAK": "s3cr3t-2d"}
    proc = subprocess.Popen([sys.executable, "-m", "exporter", "--web.listen-address", f"127.0.0.1:{port}"],
                            env={**_base_env(), **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_ready(f"http://127.0.0.1:{port}"), "the exporter must start despite the unknown variable"
        assert "azure_backup_up 1.0" in requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0
    warnings = [line for line in stderr.splitlines() if "is not a setting" in line]
    assert warnings == [line for line in warnings if "level=warning" in line]
    assert len(warnings) == 1, stderr
    assert "AZURE_BACKUP_EXPORTER_LOOKBAK is not a setting and is ignored " \
           "(did you mean AZURE_BACKUP_EXPORTER_LOOKBACK?)" in warnings[0]
    assert "s3cr3t" not in stderr


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

