"""Resources with no backup (issue 20, point 1): the protectable resources of each subscription, the items that
cover them, and the rules' verdict, through the fake ARM on loopback and, for the rule, through promtool."""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from exporter.protectable import ExclusionTags, resource_filter, tag_label
from exporter.simulator.fakearm import FakeArm, FakeEstate, make_backup_instance, make_protected_item
from exporter.simulator.resources import add_demo_resources, make_resource

from .conftest import NOW, SUB_A, SUB_B, Exporter, fixed_clock

ROOT = Path(__file__).resolve().parent.parent
VM, DISK, STORAGE = "Microsoft.Compute/virtualMachines", "Microsoft.Compute/disks", "Microsoft.Storage/storageAccounts"
OLD, NEW = NOW - timedelta(days=30), NOW - timedelta(hours=2)
# A SQL database in a VM carries the VM's ID as its sourceResourceId (real recording
# tests/fixtures/azure/real-recordings/cli-test_backup_wl_sql_protection-2019-06-28-807a5b71.json: the item
# of pstestwlvm1bca8 has backupManagementType AzureWorkload), so it must not count as the VM's backup.
SQL_ITEM_TYPE = "AzureVmWorkloadSQLDatabase"


def _vm_id(sub: str, group: str, name: str) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{group}/providers/{VM}/{name}"


def build_estate(estate: FakeEstate, sub: str = SUB_A, vaults: int = 1) -> dict[str, str]:
    """Protected, unprotected, excluded, new, attached-disk, stopped and SQL-in-VM cases; returns the expected
    verdict per resource name ('unprotected' for those the alert must name)."""
    rsv = [estate.add_vault(sub, "rg-backup", f"vault-{sub[:2]}-{n}") for n in range(vaults)]
    dpp = estate.add_backup_vault(sub, "rg-backup", f"bvault-{sub[:2]}")
    add = estate.resources.add
    verdicts = {}

    def resource(kind: str, name: str, verdict: str, **kwargs: object) -> None:
        add(make_resource(sub, "rg-app", kind, name, **kwargs))  # type: ignore[arg-type]
        verdicts[name] = verdict

    resource(VM, "vm-backed", "protected", created=OLD, tags={"Team": "payments", "cost-center": "42"})
    estate.add_item(rsv[0].name, make_protected_item(vault=rsv[0], friendly_name="vm-backed",
                                                     source_resource_id=_vm_id(sub, "RG-APP", "VM-BACKED")))
    resource(DISK, "vm-backed-osdisk", "protected through its VM", created=OLD,
             managed_by=_vm_id(sub, "rg-app", "vm-backed"))
    resource(VM, "vm-bare", "unprotected", created=OLD, tags={"team": "web"})
    resource(DISK, "disk-loose", "unprotected", created=OLD)
    resource(VM, "vm-new", "new", created=NEW)
    resource(VM, "vm-exempt", "excluded", created=OLD, tags={"Backup": "None"})
    resource(VM, "vm-sql", "unprotected", created=OLD)
    estate.add_item(rsv[-1].name, make_protected_item(vault=rsv[-1], friendly_name="sqldb", item_type=SQL_ITEM_TYPE,
                                                      container="vm-sql",
                                                      source_resource_id=_vm_id(sub, "rg-app", "vm-sql")))
    resource(VM, "vm-stopped", "unprotected", created=OLD)
    estate.add_item(rsv[-1].name, make_protected_item(vault=rsv[-1], friendly_name="vm-stopped",
                                                      protection_state="ProtectionStopped",
                                                      source_resource_id=_vm_id(sub, "rg-app", "vm-stopped")))
    resource(DISK, "disk-dpp", "protected", created=OLD)
    estate.add_backup_instance(dpp.name, make_backup_instance(vault=dpp, datasource_type="AzureDisk",
                                                              datasource_name="disk-dpp", resource_group="rg-app"))
    resource(STORAGE, "stblobs", "unprotected", created=None)  # no createdTime: counts as old
    return verdicts


def _samples(text: str, name: str) -> list[dict[str, str]]:
    return [dict(sample.labels, value=str(sample.value)) for family in text_string_to_metric_families(text)
            for sample in family.samples if sample.name == name]


def test_the_filter_names_every_protectable_type_joined_by_or() -> None:
    assert resource_filter().count(" or ") == 5
    assert "resourceType eq 'Microsoft.DBforMySQL/flexibleServers'" in resource_filter()


def test_tag_names_become_label_names_and_exclusions_ignore_case() -> None:
    assert tag_label("Cost-Center") == "tag_cost_center"
    rules = ExclusionTags.parse(["backup=none", "nobackup"])
    assert rules.excludes({"BACKUP": "None"}) and rules.excludes({"NoBackup": "whatever"})
    assert not rules.excludes({"backup": "daily"})


def test_one_list_per_subscription_pages_with_created_time(
        estate: FakeEstate, arm: FakeArm, make_exporter: Callable[..., Exporter]) -> None:
    build_estate(estate)
    estate.resources.page_size = 3
    text = make_exporter(fixed_clock(NOW), subscriptions=SUB_A).scrape()
    listed = arm.requests.to("/resources")
    assert len(listed) == 4  # 10 resources, 3 a page
    first = listed[0].query
    assert first["$expand"] == "createdTime" and first["$filter"] == resource_filter()
    assert len(_samples(text, "azure_backup_resource_info")) == 10
    created = {s["resource"]: float(s["value"])
               for s in _samples(text, "azure_backup_resource_created_timestamp_seconds")}
    assert created["vm-new"] == NEW.timestamp() and "stblobs" not in created


def test_resources_carry_ids_lower_cased_tags_and_exclusion(
        estate: FakeEstate, make_exporter: Callable[..., Exporter]) -> None:
    build_estate(estate)
    text = make_exporter(fixed_clock(NOW), subscriptions=SUB_A, coverage_exclude_tags="backup=none",
                         tag_labels="team,Cost-Center").scrape()
    info = {s["resource"]: s for s in _samples(text, "azure_backup_resource_info")}
    backed = info["vm-backed"]
    assert backed["resource_id"] == _vm_id(SUB_A, "rg-app", "vm-backed").lower()
    assert (backed["tag_team"], backed["tag_cost_center"], backed["excluded"]) == ("payments", "42", "false")
    assert info["disk-loose"]["tag_team"] == "" and info["vm-exempt"]["excluded"] == "true"
    assert info["vm-backed-osdisk"]["managed_by"] == backed["resource_id"]
    assert info["vm-backed-osdisk"]["resource_type"] == DISK
    required = {s["resource"]: s["value"] for s in _samples(text, "azure_backup_resource_backup_required")}
    assert required["vm-new"] == required["vm-exempt"] == "0.0"
    assert required["vm-bare"] == required["stblobs"] == "1.0"


def test_only_items_backing_up_a_whole_running_resource_cover_it(
        estate: FakeEstate, make_exporter: Callable[..., Exporter]) -> None:
    build_estate(estate)
    text = make_exporter(fixed_clock(NOW), subscriptions=SUB_A).scrape()
    covered = {s["resource_id"].rsplit("/", 1)[1] for s in _samples(text, "azure_backup_item_covered_resource_info")}
    assert covered == {"vm-backed", "disk-dpp"}  # not the SQL database's VM, not the stopped VM


def test_a_role_without_resource_read_warns_once_and_keeps_backup_monitoring(
        estate: FakeEstate, make_exporter: Callable[..., Exporter], caplog: pytest.LogCaptureFixture) -> None:
    build_estate(estate)
    estate.resources.deny(SUB_A)
    exporter = make_exporter(fixed_clock(NOW), subscriptions=SUB_A, coverage_interval="1ms")
    with caplog.at_level(logging.DEBUG, logger="exporter.refresher"):
        exporter.scrape()
        text = exporter.scrape()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "protectable" in r.getMessage()]
    assert len(warnings) == 1 and "AuthorizationFailed" in warnings[0].getMessage()
    assert exporter.value("azure_backup_resource_list_success", subscription_id=SUB_A) == 0
    assert exporter.value("azure_backup_up") == 1
    assert not _samples(text, "azure_backup_resource_info")


def test_only_shard_zero_lists_resources_and_nothing_without_subscriptions(
        estate: FakeEstate, arm: FakeArm, make_exporter: Callable[..., Exporter]) -> None:
    build_estate(estate, vaults=3)
    vaults = ",".join(vault.id for vault in estate.vaults)
    make_exporter(fixed_clock(NOW), vaults=vaults).scrape()
    make_exporter(fixed_clock(NOW), subscriptions=SUB_A, shard="1", shards="3").scrape()
    assert not arm.requests.to("/resources")
    make_exporter(fixed_clock(NOW), subscriptions=SUB_A, shard="0", shards="3").scrape()
    assert len(arm.requests.to("/resources")) == 1


# --- the alert's PromQL, evaluated by promtool on what the exporters rendered -------------------------------------


def _alert_rule() -> dict[str, object]:
    rules = yaml.safe_load((ROOT / "alerts" / "azure-backup.rules.yml").read_text(encoding="utf-8"))
    return next(rule for group in rules["groups"] for rule in group["rules"]
                if rule.get("alert") == "AzureBackupResourceUnprotected")


def _input_series(expositions: list[str]) -> list[dict[str, str]]:
    """Each exporter's series as promtool input, each with its own instance (as Prometheus would store them)."""
    series = []
    for index, text in enumerate(expositions):
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if not sample.name.startswith(("azure_backup_resource_", "azure_backup_item_covered_")):
                    continue
                labels = {**sample.labels, "job": "azure-backup-exporter", "instance": f"shard-{index}:9934"}
                text_labels = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
                series.append({"series": f"{sample.name}{{{text_labels}}}", "values": f"{sample.value}x120"})
    return series


def _unprotected(expositions: list[str], tmp_path: Path) -> set[tuple[str, str]]:
    """The resources AzureBackupResourceUnprotected fires for after 2 h, by promtool's own evaluation: the test
    expects none, and promtool's failure message lists what fired."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not on PATH (apt-get install prometheus)"
    rule = _alert_rule()
    tmp_path.mkdir()
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": [{"name": "coverage", "rules": [rule]}]}))
    case = {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": [{
        "name": "what fires", "interval": "1m", "input_series": _input_series(expositions),
        "alert_rule_test": [{"eval_time": "119m", "alertname": "AzureBackupResourceUnprotected", "exp_alerts": []}],
    }]}
    (tmp_path / "test.yml").write_text(yaml.safe_dump(case, width=10_000))
    result = subprocess.run([promtool, "test", "rules", "test.yml"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120, check=False)
    output = result.stdout + result.stderr
    if result.returncode == 0:
        return set()
    assert "got:[" in output, output
    got = output.split("got:[", 1)[1]
    return {(rid.split("/")[2], rid.rsplit("/", 1)[1]) for rid in re.findall(r'resource_id="([^"]+)"', got)}


def test_three_shards_find_the_same_unprotected_resources_as_one_exporter(
        estate: FakeEstate, make_exporter: Callable[..., Exporter], tmp_path: Path) -> None:
    verdicts = {(sub, name): verdict for sub in (SUB_A, SUB_B)
                for name, verdict in build_estate(estate, sub, vaults=6).items()}
    settings = {"subscriptions": f"{SUB_A},{SUB_B}", "coverage_exclude_tags": "backup=none"}
    whole = _unprotected([make_exporter(fixed_clock(NOW), **settings).scrape()], tmp_path / "one")
    shards = [make_exporter(fixed_clock(NOW), shard=str(i), shards="3", **settings).scrape() for i in range(3)]
    covered = [_samples(text, "azure_backup_item_covered_resource_info") for text in shards]
    assert sum(1 for c in covered if c) >= 2, "the covering items should be spread over the shards"
    expected = {key for key, verdict in verdicts.items() if verdict == "unprotected"}
    assert len(expected) == 10
    assert whole == expected
    assert _unprotected(shards, tmp_path / "three") == expected


def test_the_demo_shows_a_few_unprotected_resources(estate: FakeEstate,
                                                    make_exporter: Callable[..., Exporter]) -> None:
    add_demo_resources(estate, SUB_A, NOW)
    text = make_exporter(fixed_clock(NOW), subscriptions=SUB_A, coverage_exclude_tags="backup=none").scrape()
    required = {s["resource"]: s["value"] for s in _samples(text, "azure_backup_resource_backup_required")}
    assert {name for name, value in required.items() if value == "1.0"} == {
        "vm-forgotten", "disk-detached-data", "stlogsarchive01", "aks-batch", "pg-orders"}
    assert required["vm-just-created"] == required["vm-scratch"] == "0.0"


def test_a_bad_created_time_or_tags_drop_that_field_and_are_counted(
        estate: FakeEstate, make_exporter: Callable[..., Exporter]) -> None:
    broken = make_resource(SUB_A, "rg-app", VM, "vm-odd", created=OLD)
    broken["createdTime"], broken["tags"] = "yesterday-ish", ["not", "a", "map"]
    estate.resources.add(broken)
    estate.resources.add({"name": "no-id", "type": VM}, SUB_A)
    exporter = make_exporter(fixed_clock(NOW), subscriptions=SUB_A, tag_labels="team")
    text = exporter.scrape()
    (info,) = _samples(text, "azure_backup_resource_info")
    assert (info["resource"], info["tag_team"]) == ("vm-odd", "")
    assert not _samples(text, "azure_backup_resource_created_timestamp_seconds")
    for field in ("resource.createdTime", "resource.tags", "resource.id"):
        assert exporter.value("azure_backup_parse_errors_total", field=field) == 1, field


def test_a_resource_needs_a_backup_once_its_grace_ends_without_a_new_list(
        estate: FakeEstate, arm: FakeArm, make_exporter: Callable[..., Exporter]) -> None:
    estate.resources.add(make_resource(SUB_A, "rg-app", VM, "vm-young", created=NOW - timedelta(hours=23)))
    clock = fixed_clock(NOW)
    exporter = make_exporter(clock, subscriptions=SUB_A, coverage_grace="24h")
    labels = {"subscription_id": SUB_A, "resource_group": "rg-app", "resource_type": VM, "resource": "vm-young",
              "resource_id": _vm_id(SUB_A, "rg-app", "vm-young").lower()}
    exporter.scrape()
    assert exporter.value("azure_backup_resource_backup_required", **labels) == 0
    exporter.scrape()  # the kept families, while the grace runs
    clock.advance(timedelta(hours=2))
    exporter.scrape()
    assert exporter.value("azure_backup_resource_backup_required", **labels) == 1
    assert len(arm.requests.to("/resources")) == 1  # the same list: the families were rebuilt, not relisted
