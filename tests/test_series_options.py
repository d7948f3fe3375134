"""The series budget: collector switches and the one-hot mode decide what /metrics exposes, and nothing else."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter import catalogue as c
from exporter.collector import SeriesOptions
from exporter.settings import SettingsError, load_settings
from exporter.simulator.fakearm import FakeEstate, FakeVault, make_job, make_policy, make_protected_item

from .conftest import NOW, SUB_A, Exporter, fixed_clock

H = timedelta(hours=1)
SWITCHES = {"tasks": "collector_tasks", "job-info": "collector_job_info", "items": "collector_items"}
README = Path(__file__).resolve().parent.parent / "README.md"
COST_ROW = re.compile(r"^\| `(azure_backup_[a-z_]+)` \| [^|]+ \| (\d+) \| (\d+) \|$", re.MULTILINE)
ONE_HOT = (c.JOB_LAST_STATUS, c.ITEM_LAST_BACKUP_STATUS, c.ITEM_HEALTH, c.ITEM_PROTECTION_STATE)


@pytest.fixture
def vault(estate: FakeEstate) -> FakeVault:
    """Two VMs, each with a finished backup that has tasks, and their protected items."""
    vault = estate.add_vault(SUB_A, "rg-prod", "vault-prod")
    for n, (name, status) in enumerate((("vm-web", "Failed"), ("vm-db", "Completed"))):
        estate.add_job(vault.name, make_job(
            f"00000000-0000-0000-0000-00000000000{n}", vault=vault, item=name, status=status,
            start=NOW - 3 * H, end=NOW - 2 * H, duration="PT1H",
            tasks=[("Take Snapshot", "Completed"), ("Transfer data to vault", status)]))
        estate.add_item(vault.name, make_protected_item(
            vault=vault, friendly_name=name, last_backup_status=status, health_status="Passed",
            last_backup_time=NOW - 2 * H, last_recovery_point=NOW - 26 * H))
    return vault


def _families(exporter: Exporter) -> dict[str, list[dict[str, str]]]:
    """Sample labels by family name, of a rendered scrape (rendering checks the cached and registry paths agree)."""
    text = exporter.scrape()
    return {family.name: [sample.labels for sample in family.samples]
            for family in text_string_to_metric_families(text)}


def _scrape(make_exporter: Callable[..., Exporter], vault: FakeVault,
            **overrides: str) -> dict[str, list[dict[str, str]]]:
    return _families(make_exporter(fixed_clock(NOW), vaults=vault.id, **overrides))


def _owned_by(collector: str) -> set[str]:
    return {spec.name for spec in c.VAULT_DATA if spec.collector == collector}


def test_the_options_defaults_are_the_settings_defaults() -> None:
    """SeriesOptions() stands for the defaults where no settings exist (the dashboards' end-to-end test)."""
    settings = load_settings(overrides={"subscriptions": SUB_A})
    assert SeriesOptions.from_settings(settings) == SeriesOptions()


def test_defaults_leave_out_only_job_info_and_the_zero_states(
        vault: FakeVault, make_exporter: Callable[..., Exporter]) -> None:
    families = _scrape(make_exporter, vault)
    assert c.JOB_LAST_INFO.name not in families  # off by default: a new series per item and day
    assert len(families[c.JOB_LAST_TASK_STATUS.name]) == 4  # two VMs, two tasks each
    assert len(families[c.ITEM_INFO.name]) == 2
    for spec in ONE_HOT:  # one series per item (and operation): the current value's
        keys = Counter(tuple(sorted((k, v) for k, v in labels.items() if k not in ("status", "state")))
                       for labels in families[spec.name])
        assert keys and set(keys.values()) == {1}, spec.name


@pytest.mark.parametrize("collector", sorted(SWITCHES))
def test_each_switch_turns_exactly_its_families_on_and_off(
        vault: FakeVault, make_exporter: Callable[..., Exporter], collector: str) -> None:
    on = _scrape(make_exporter, vault, **{SWITCHES[collector]: "true"})
    off = _scrape(make_exporter, vault, **{SWITCHES[collector]: "false"})
    owned = _owned_by(collector)
    assert owned and all(on[name] for name in owned)  # each has samples when on
    assert not owned & set(off)  # and no HELP, TYPE or sample when off
    assert {name: samples for name, samples in on.items() if name not in owned and not name.startswith("process")} \
        == {name: samples for name, samples in off.items() if not name.startswith("process")}


def test_all_states_adds_a_zero_for_every_other_known_value(
        vault: FakeVault, make_exporter: Callable[..., Exporter]) -> None:
    current = _scrape(make_exporter, vault)
    every = _scrape(make_exporter, vault, state_series="ALL")  # case does not matter
    web = {"backup_item": "vm-web", "operation": "Backup"}
    statuses = [labels["status"] for labels in every[c.JOB_LAST_STATUS.name]
                if labels.items() >= web.items()]
    assert statuses == ["InProgress", "Completed", "CompletedWithWarnings", "Failed", "Cancelled", "Cancelling"]
    assert [labels["status"] for labels in current[c.JOB_LAST_STATUS.name] if labels.items() >= web.items()] \
        == ["Failed"]
    for spec in ONE_HOT:
        assert len(every[spec.name]) > len(current[spec.name]), spec.name


def test_the_readme_says_what_each_family_costs_per_item(
        estate: FakeEstate, make_exporter: Callable[..., Exporter]) -> None:
    """The README's table of series per item, default and everything on, is what one Azure VM costs: one
    finished backup with two tasks, a protected item with health and a policy."""
    vault = estate.add_vault(SUB_A, "rg-prod", "vault-prod")
    estate.add_job(vault.name, make_job(
        "00000000-0000-0000-0000-000000000001", vault=vault, item="vm-web", status="Completed",
        start=NOW - 3 * H, end=NOW - 2 * H, duration="PT1H", size="10 GB",
        tasks=[("Take Snapshot", "Completed"), ("Transfer data to vault", "Completed")]))
    estate.add_item(vault.name, make_protected_item(
        vault=vault, friendly_name="vm-web", last_backup_status="Completed", health_status="Passed",
        last_backup_time=NOW - 2 * H, last_recovery_point=NOW - 2 * H,
        policy="DailyPolicy"))
    estate.add_policy(vault.name, make_policy(vault=vault, name="DailyPolicy"))
    default = _scrape(make_exporter, vault)
    everything = _scrape(make_exporter, vault, state_series="all", **dict.fromkeys(SWITCHES.values(), "true"))
    per_item = [spec.name for spec in c.VAULT_DATA if spec.labels[:len(c.ITEM_LABELS)] == c.ITEM_LABELS]
    measured = {name: (len(default.get(name, [])), len(everything[name])) for name in per_item}
    documented = {name: (int(low), int(high)) for name, low, high in COST_ROW.findall(README.read_text())}
    assert documented == measured
    total = re.search(r"^\| per item \| [^|]* \| \*\*(\d+)\*\* \| \*\*(\d+)\*\* \|$", README.read_text(), re.MULTILINE)
    assert total is not None
    assert (int(total[1]), int(total[2])) == tuple(map(sum, zip(*measured.values(), strict=True)))


@pytest.mark.parametrize(("overrides", "message"), [
    ({"state_series": "some"}, "STATE_SERIES"),
    ({"collector_tasks": "maybe"}, "COLLECTOR_TASKS"),
])
def test_a_bad_value_names_the_setting(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(overrides={"vaults": f"/subscriptions/{SUB_A}/resourceGroups/rg/providers/"
                                           "Microsoft.RecoveryServices/vaults/v", **overrides})


def test_cli_switches_and_their_negations() -> None:
    vault_id = f"/subscriptions/{SUB_A}/resourceGroups/rg/providers/Microsoft.RecoveryServices/vaults/v"
    result = subprocess.run([sys.executable, "-m", "exporter", "--vaults", vault_id, "--check-config",
                             "--no-collector.tasks", "--collector.job-info", "--state-series", "all"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert '"collector_tasks": false' in result.stdout
    assert '"collector_job_info": true' in result.stdout
    assert '"collector_items": true' in result.stdout
    assert '"state_series": "all"' in result.stdout
