"""End to end through a rollout and a revoked vault: exporter -> Prometheus (shipped rules) -> Alertmanager
(the shipped example's routes and inhibitions) -> webhook receivers for the pager and the ticket queue.

Real parts as in test_e2e.py. One liberty, stated where it is taken: the rules' quarter-hour and hour waits
(`for: 15m`, and AzureBackupVaultNotRefreshed's hour) are shortened to seconds, since no test can wait an hour;
everything else in the rules (expressions, labels, keep_firing_for) and the Alertmanager configuration are
the shipped ones.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
import yaml

from exporter.simulator.fakearm import FakeArm, FakeEstate, Fault, make_job, make_policy, make_protected_item

from .conftest import SUB_A
from .e2e_stack import (
    JOB,
    ROOT,
    RULES,
    Processes,
    Webhook,
    alertmanager_argv,
    exporter_argv,
    exporter_env,
    free_port,
    prometheus_argv,
    query,
    wait_for,
    write_prometheus_config,
)

ALERTMANAGER = ROOT / "alerts" / "alertmanager.example.yml"
NOW = datetime.now(UTC).replace(microsecond=0)
H = timedelta(hours=1)
SHORTENED = "3s"
# The rules' hour and quarter-hour waits, and what this test makes of them (the rest stays as shipped).
_WAITS = ((re.compile(r"^(\s+for: )(15m|1h)$", re.MULTILINE), rf"\g<1>{SHORTENED}"),
          (re.compile(r"\[1h\]"), f"[{SHORTENED}]"),
          (re.compile(r" offset 1h$", re.MULTILINE), f" offset {SHORTENED}"),
          (re.compile(r"^(\s+)> 3600$", re.MULTILINE), r"\g<1>> 3"))

pytestmark = pytest.mark.e2e


def shortened_rules(text: str) -> str:
    """The shipped rules with their quarter-hour and hour waits (`for: 15m`, `for: 1h`, `[1h]`, `offset 1h`,
    `> 3600`) cut to seconds; every other character as shipped."""
    for pattern, replacement in _WAITS:
        text, count = pattern.subn(replacement, text)
        assert count, f"the rules no longer have the wait {pattern.pattern!r} this test shortens"
    return text


def alertmanager_config(webhook: Webhook) -> dict[str, Any]:
    """The shipped example: its routes and inhibitions, its receivers pointed at the webhook, its waits short."""
    config = yaml.safe_load(ALERTMANAGER.read_text())
    config["route"].update(group_wait="1s", group_interval="1s")
    for receiver in config["receivers"]:
        receiver["webhook_configs"] = [{"url": webhook.url(f"/{receiver['name']}"), "send_resolved": True}]
    return dict(config)


@pytest.fixture(scope="module")
def estate() -> FakeEstate:  # type: ignore[override]
    estate = FakeEstate()
    prod = estate.add_vault(SUB_A, "rg-prod", "vault-prod", "westeurope")
    locked = estate.add_vault(SUB_A, "rg-prod", "vault-locked", "westeurope")  # its access is revoked
    estate.add_policy(prod.name, make_policy(vault=prod, name="DailyPolicy"))
    # vm-gone: last backed up 30 h ago, its latest backup failed; the test deletes its backup data
    for n, (item, status, age) in enumerate((("vm-web", "Completed", 30 * H), ("vm-web", "Failed", 6 * H),
                                              ("vm-db", "Completed", 5 * H), ("vm-gone", "Completed", 31 * H),
                                              ("vm-gone", "Failed", 7 * H))):
        estate.add_job(prod.name, make_job(f"00000000-0000-0000-0000-{n:012d}", vault=prod, item=item, status=status,
                                           start=NOW - age, end=NOW - age + H / 2))
    for item, status, last in (("vm-web", "Failed", NOW - 30 * H + H / 2), ("vm-db", "Completed", NOW - 5 * H + H / 2),
                               ("vm-gone", "Failed", NOW - 31 * H + H / 2)):
        estate.add_item(prod.name, make_protected_item(vault=prod, friendly_name=item, last_backup_status=status,
                                                       last_backup_time=last, last_recovery_point=last,
                                                       policy="DailyPolicy"))
    estate.add_item(locked.name, make_protected_item(vault=locked, friendly_name="vm-vault-locked",
                                                     last_backup_status="Completed", last_backup_time=NOW - H))
    return estate


@pytest.fixture(scope="module")
def stack(estate: FakeEstate, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    work = tmp_path_factory.mktemp("e2e-lifecycle")
    ports = {name: free_port() for name in ("exporter", "exporter-2", "prometheus", "alertmanager")}
    webhook = Webhook()
    (work / "rules.yml").write_text(shortened_rules(RULES.read_text()))
    (work / "alertmanager.yml").write_text(json.dumps(alertmanager_config(webhook)))
    targets = work / "targets.json"  # file-based discovery: a rollout moves the exporter to another address
    targets.write_text(json.dumps([{"targets": [f"127.0.0.1:{ports['exporter']}"]}]))
    write_prometheus_config(work, ports["alertmanager"], work / "rules.yml", [
        {"job_name": JOB, "scrape_timeout": "1s",
         "file_sd_configs": [{"files": [str(targets)], "refresh_interval": "1s"}]}])
    processes = Processes(work)
    with FakeArm(estate) as arm:
        arm.set_fault("vault-locked", Fault.authorization_failed())
        try:
            processes.start("exporter", exporter_argv(), _env(arm, estate, ports["exporter"]))
            processes.start("alertmanager", alertmanager_argv(work, ports["alertmanager"]))
            processes.start("prometheus", prometheus_argv(work, ports["prometheus"]))
            yield {"arm": arm, "estate": estate, "webhook": webhook, "processes": processes, "ports": ports,
                   "targets": targets, "prometheus": f"http://127.0.0.1:{ports['prometheus']}"}
        finally:
            processes.close()
            webhook.close()


def _env(arm: FakeArm, estate: FakeEstate, port: int) -> dict[str, str]:
    # The protected-items list on every refresh, so a deletion shows within seconds (default: 5 minutes).
    return {**exporter_env(arm, estate, port), "AZURE_BACKUP_EXPORTER_ITEMS_REFRESH_INTERVAL": "1s"}


def test_shortening_keeps_every_other_line() -> None:
    shipped, shortened = RULES.read_text().splitlines(), shortened_rules(RULES.read_text()).splitlines()
    changed = [(a, b) for a, b in zip(shipped, shortened, strict=True) if a != b and not a.lstrip().startswith("#")]
    waits = re.compile(r"for: (15m|1h)|\[1h\]|offset 1h|> 3600")
    assert changed and all(waits.sub("", a) == re.sub(rf"for: {SHORTENED}|\[{SHORTENED}\]|offset {SHORTENED}|> 3",
                                                      "", b) for a, b in changed)


def test_a_revoked_vault_pages_once(stack: dict[str, Any]) -> None:
    webhook: Webhook = stack["webhook"]

    def paged() -> list[dict[str, str]]:
        return [a for a in webhook.firing("/pager") if a.get("vault") == "vault-locked"]

    alerts = wait_for("a page for vault-locked", paged, timeout=60)
    time.sleep(5)  # more evaluations and notification rounds: nothing else may page for it
    alerts = paged()
    assert {a["alertname"] for a in alerts} == {"AzureBackupVaultNotRefreshed"}
    assert {a["severity"] for a in alerts} == {"critical"}
    assert not [a for a in webhook.resolved("/pager") if a.get("vault") == "vault-locked"]


def test_a_rollout_neither_resolves_nor_repages(stack: dict[str, Any]) -> None:
    webhook: Webhook = stack["webhook"]

    # vm-web's last success is 30 h old: the RPO alert pages (its failed job is a ticket the RPO alert holds back)
    def failed() -> list[dict[str, str]]:
        return [a for a in webhook.firing("/pager")
                if a["alertname"] == "AzureBackupNoRecentSuccessfulBackup" and a["backup_item"] == "vm-web"]

    first = wait_for("AzureBackupNoRecentSuccessfulBackup at the pager", failed, timeout=60)[0]
    assert first["backup_item"] == "vm-web" and "instance" not in first

    # The rollout: the old pod ends, the new one starts elsewhere under a new address.
    processes: Processes = stack["processes"]
    processes.stop("exporter")
    time.sleep(5)  # the old target fails its scrapes; its series go stale
    port = stack["ports"]["exporter-2"]
    processes.start("exporter-2", exporter_argv(), _env(stack["arm"], stack["estate"], port))
    stack["targets"].write_text(json.dumps([{"targets": [f"127.0.0.1:{port}"]}]))
    wait_for("the new exporter scraped", lambda: query(
        stack["prometheus"], f'azure_backup_up{{job="{JOB}", instance="127.0.0.1:{port}"}} == 1'), timeout=60)
    time.sleep(5)  # several evaluations and notification rounds with the new instance

    assert not [a for a in webhook.resolved("/pager") if a["alertname"] == "AzureBackupNoRecentSuccessfulBackup"]
    assert {json.dumps(a, sort_keys=True) for a in failed()} == {json.dumps(first, sort_keys=True)}
    firing = query(stack["prometheus"], 'ALERTS{alertname="AzureBackupNoRecentSuccessfulBackup", '
                                        'alertstate="firing", backup_item="vm-web"}')
    assert len(firing) == 1 and "instance" not in firing[0]["metric"]
    # the failed job's ticket is held back by the RPO alert (alertmanager.example.yml, issue 18)
    assert not [a for a in webhook.firing("/ticket") if a["alertname"] == "AzureBackupJobFailed"
                and a["backup_item"] == "vm-web"]


def _active(prometheus: str, alertname: str, backup_item: str) -> list[dict[str, Any]]:
    """The rule's active alerts for an item, as Prometheus' rules API reports them (keepFiringSince is set
    while an alert is only kept firing: its condition no longer holds)."""
    groups = requests.get(f"{prometheus}/api/v1/rules", params={"type": "alert"}, timeout=10).json()["data"]["groups"]
    return [alert for group in groups for rule in group["rules"] if rule["name"] == alertname
            for alert in rule["alerts"] if alert["labels"].get("backup_item") == backup_item]


def test_a_deleted_item_stops_paging_and_its_deletion_pages(stack: dict[str, Any]) -> None:
    prometheus, estate = stack["prometheus"], stack["estate"]
    for alertname in ("AzureBackupJobFailed", "AzureBackupNoRecentSuccessfulBackup"):
        wait_for(f"{alertname} for vm-gone", lambda name=alertname: [
            a for a in _active(prometheus, name, "vm-gone") if a["state"] == "firing"])
    assert not _active(prometheus, "AzureBackupDataDeletion", "vm-gone")

    # "Stop backup and delete backup data": the item leaves the list, a DeleteBackupData job appears.
    vault = estate.vault("vault-prod")
    (gone,) = [item for item in estate.items(vault.name) if item["properties"]["friendlyName"] == "vm-gone"]
    estate.remove_item(vault.name, gone["id"])
    estate.add_job(vault.name, make_job("00000000-0000-0000-0000-000000000099", vault=vault, item="vm-gone",
                                        operation="DeleteBackupData", start=datetime.now(UTC) - timedelta(minutes=2),
                                        end=datetime.now(UTC) - timedelta(minutes=1)))
    wait_for("AzureBackupDataDeletion for vm-gone", lambda: [
        a for a in _active(prometheus, "AzureBackupDataDeletion", "vm-gone") if a["state"] == "firing"])
    for alertname in ("AzureBackupJobFailed", "AzureBackupNoRecentSuccessfulBackup"):
        # The condition ended: only keep_firing_for holds the alert, for 5 minutes, then it resolves.
        held = wait_for(f"{alertname} for vm-gone to end", lambda name=alertname: [
            a for a in _active(prometheus, name, "vm-gone") if a.get("keepFiringSince")])
        assert len(held) == len(_active(prometheus, alertname, "vm-gone"))
