"""Issue 18 end to end: the shipped rules (verbatim, no wait shortened) in Debian's Prometheus, the shipped
Alertmanager example in Debian's Alertmanager, webhook receivers for the pager and the ticket queue.

- A 10-minute exporter outage (a node failure: the pod comes back elsewhere, under a new address) neither
  resolves nor re-pages a firing alert (keep_firing_for: 15m).
- A regional incident that fails 1,000 items in 5 vaults of 2 subscriptions gives 5 pages and 0 tickets (pages
  are grouped per vault; the RPO alert holds back each item's failed-job ticket), not one per item.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from exporter.simulator.fakearm import FakeArm, FakeEstate, make_job, make_policy, make_protected_item

from .conftest import SUB_A, SUB_B
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
OUTAGE = timedelta(minutes=10)
RPO = "AzureBackupNoRecentSuccessfulBackup"

pytestmark = pytest.mark.e2e


def _alertmanager_config(webhook: Webhook) -> dict[str, Any]:
    """The shipped example with its receivers pointed at the webhook and its waits at a second; routes, grouping
    and inhibitions as shipped."""
    config = yaml.safe_load(ALERTMANAGER.read_text())
    config["route"].update(group_wait="1s", group_interval="1s")
    for route in config["route"]["routes"]:
        route.update(group_wait="1s", group_interval="1s")
    for receiver in config["receivers"]:
        receiver["webhook_configs"] = [{"url": webhook.url(f"/{receiver['name']}"), "send_resolved": True}]
    return dict(config)


def _estate() -> FakeEstate:
    """vm-web: last success 30 h ago under a daily policy, its latest backup failed: the RPO alert pages."""
    estate = FakeEstate()
    prod = estate.add_vault(SUB_A, "rg-prod", "vault-prod", "westeurope")
    estate.add_policy(prod.name, make_policy(vault=prod, name="DailyPolicy"))
    for n, (status, age) in enumerate((("Completed", 30 * H), ("Failed", 6 * H))):
        estate.add_job(prod.name, make_job(f"00000000-0000-0000-0000-{n:012d}", vault=prod, item="vm-web",
                                           status=status, start=NOW - age, end=NOW - age + H / 2))
    estate.add_item(prod.name, make_protected_item(vault=prod, friendly_name="vm-web", last_backup_status="Failed",
                                                   last_backup_time=NOW - 6 * H + H / 2,
                                                   last_recovery_point=NOW - 30 * H + H / 2, policy="DailyPolicy"))
    return estate


@pytest.fixture(scope="module")
def outage_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    work = tmp_path_factory.mktemp("e2e-outage")
    ports = {name: free_port() for name in ("exporter", "exporter-2", "prometheus", "alertmanager")}
    webhook = Webhook()
    (work / "alertmanager.yml").write_text(json.dumps(_alertmanager_config(webhook)))
    targets = work / "targets.json"
    targets.write_text(json.dumps([{"targets": [f"127.0.0.1:{ports['exporter']}"]}]))
    write_prometheus_config(work, ports["alertmanager"], RULES, [  # the shipped rules, verbatim
        {"job_name": JOB, "scrape_timeout": "1s",
         "file_sd_configs": [{"files": [str(targets)], "refresh_interval": "1s"}]}])
    estate = _estate()
    processes = Processes(work)
    with FakeArm(estate) as arm:
        try:
            processes.start("exporter", exporter_argv(), exporter_env(arm, estate, ports["exporter"]))
            processes.start("alertmanager", alertmanager_argv(work, ports["alertmanager"]))
            processes.start("prometheus", prometheus_argv(work, ports["prometheus"]))
            yield {"arm": arm, "estate": estate, "webhook": webhook, "processes": processes, "ports": ports,
                   "targets": targets, "prometheus": f"http://127.0.0.1:{ports['prometheus']}"}
        finally:
            processes.close()
            webhook.close()


def _rules_api(prometheus: str, alertname: str) -> list[dict[str, Any]]:
    groups = requests.get(f"{prometheus}/api/v1/rules", params={"type": "alert"}, timeout=10).json()["data"]["groups"]
    return [alert for group in groups for rule in group["rules"] if rule["name"] == alertname
            for alert in rule["alerts"]]


def test_a_ten_minute_outage_neither_resolves_nor_repages(outage_stack: dict[str, Any]) -> None:
    webhook: Webhook = outage_stack["webhook"]
    prometheus = outage_stack["prometheus"]

    def paged() -> list[dict[str, str]]:
        return [a for a in webhook.firing("/pager") if a["alertname"] == RPO and a["backup_item"] == "vm-web"]

    first = wait_for("the RPO page for vm-web", paged, timeout=90)[0]
    time.sleep(5)
    pages_before = len(webhook.notifications("/pager"))

    # The node fails: the exporter is gone for 10 minutes, then runs elsewhere under a new address.
    processes: Processes = outage_stack["processes"]
    processes.stop("exporter")
    time.sleep(OUTAGE.total_seconds() - 60)
    held = _rules_api(prometheus, RPO)
    assert [a["state"] for a in held] == ["firing"] and held[0].get("keepFiringSince"), held  # kept, not resolved
    time.sleep(60)
    port = outage_stack["ports"]["exporter-2"]
    processes.start("exporter-2", exporter_argv(), exporter_env(outage_stack["arm"], outage_stack["estate"], port))
    outage_stack["targets"].write_text(json.dumps([{"targets": [f"127.0.0.1:{port}"]}]))
    wait_for("the exporter back", lambda: query(prometheus, f'azure_backup_up{{job="{JOB}"}} == 1'), timeout=90)
    wait_for("the RPO alert's condition back", lambda: [
        a for a in _rules_api(prometheus, RPO) if a["state"] == "firing" and not a.get("keepFiringSince")], timeout=60)
    time.sleep(10)  # evaluations and notification rounds after the return

    # The RPO alert never resolved and was never notified again (same labels, one firing notification).
    assert not [a for a in webhook.resolved() if a["alertname"] == RPO]
    assert paged() == [first]
    # The only page of the outage: the exporter itself, down for more than 5 minutes, and its resolution.
    during = webhook.notifications("/pager")[pages_before:]
    assert {a["labels"]["alertname"] for note in during for a in note["alerts"]} <= {"AzureBackupExporterDown"}
    firing = query(prometheus, f'ALERTS{{alertname="{RPO}", alertstate="firing", backup_item="vm-web"}}')
    assert len(firing) == 1 and "instance" not in firing[0]["metric"]


# ------------------------------------------------------------------ a regional incident


def _incident_alerts(items: int, vaults: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """What the shipped rules fire for `items` failed VMs spread over `vaults` (subscription, vault), each past
    its RPO: a failed-job ticket, a repeated-failure page and the RPO page per item."""
    alerts = []
    for n in range(items):
        subscription, vault = vaults[n % len(vaults)]
        item = {"job": JOB, "subscription_id": subscription, "resource_group": "rg-prod", "vault": vault,
                "vault_type": "recovery_services", "backup_management_type": "AzureIaasVM",
                "container": "rg-app", "backup_item": f"vm-{n:04d}"}
        alerts += [
            {**item, "alertname": "AzureBackupJobFailed", "severity": "warning", "operation": "Backup",
             "status": "Failed"},
            {**item, "alertname": "AzureBackupJobFailedRepeatedly", "severity": "critical", "operation": "Backup"},
            {**item, "alertname": RPO, "severity": "critical", "kind": "full"},
        ]
    return [{"labels": labels, "annotations": {"summary": labels["alertname"]}} for labels in alerts]


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[tuple[str, Webhook]]:
    webhook = Webhook()
    config = _alertmanager_config(webhook)
    config["route"]["group_wait"] = "3s"  # the 3,000 alerts arrive in batches: let the first flush see them all
    for route in config["route"]["routes"]:
        route["group_wait"] = "3s"
    (tmp_path / "alertmanager.yml").write_text(json.dumps(config))
    port = free_port()
    processes = Processes(tmp_path)
    try:
        processes.start("alertmanager", alertmanager_argv(tmp_path, port))
        url = f"http://127.0.0.1:{port}"
        wait_for("Alertmanager ready", lambda: requests.get(f"{url}/-/ready", timeout=2).ok)
        yield url, webhook
    finally:
        processes.close()
        webhook.close()


def test_a_regional_incident_of_1000_failed_items_pages_once_per_vault(alertmanager: tuple[str, Webhook]) -> None:
    url, webhook = alertmanager
    vaults = [(SUB_A, "vault-weu-1"), (SUB_A, "vault-weu-2"), (SUB_A, "vault-weu-3"), (SUB_B, "vault-weu-1"),
              (SUB_B, "vault-weu-4")]  # vault-weu-1 twice: one name in two subscriptions is two vaults
    alerts = _incident_alerts(1000, vaults)
    # the RPO alerts first, as Prometheus would have them firing already; the rest right after
    for start in range(0, len(alerts), 500):
        batch = sorted(alerts, key=lambda a: a["labels"]["alertname"] != RPO)[start:start + 500]
        requests.post(f"{url}/api/v2/alerts", json=batch, timeout=30).raise_for_status()
    time.sleep(12)  # group_wait plus several group intervals
    pages, tickets = webhook.notifications("/pager"), webhook.notifications("/ticket")
    assert len(pages) == len(vaults), [note["groupLabels"] for note in pages]
    assert {(n["groupLabels"]["subscription_id"], n["groupLabels"]["vault"]) for n in pages} == set(vaults)
    # every page names only RPO alerts: the failed-job alerts of an overdue item are held back
    assert {a["labels"]["alertname"] for note in pages for a in note["alerts"]} == {RPO}
    assert sum(len(note["alerts"]) for note in pages) == 1000
    assert tickets == []
