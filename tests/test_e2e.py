"""End to end: exporter -> Prometheus (shipped rules) -> Alertmanager -> webhook, and every dashboard query.

Real parts throughout: the exporter as its own process, Debian's Prometheus 2.42 and
Alertmanager 0.25 on loopback, the fake ARM serving an estate with one failed backup.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from exporter.catalogue import VAULT_DATA
from exporter.collector import SeriesOptions
from exporter.simulator.fakearm import (
    DPP_LIST_FAULT_OPERATIONS,
    FakeArm,
    FakeEstate,
    FakeVault,
    Fault,
    make_backup_instance,
    make_dpp_job,
    make_dpp_policy,
    make_job,
    make_policy,
    make_protected_item,
    make_recovery_point,
)
from exporter.simulator.resources import make_resource

from .conftest import SUB_A, SUB_B
from .dashboard_queries import load_dashboards, metric_names, panel_queries
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

NOW = datetime.now(UTC).replace(microsecond=0)
# A subscription watched by discovery with a role made for Recovery Services vaults only (issue 17, point 1): its
# Backup vault list answers 403 AuthorizationFailed, and its Recovery Services vault must be watched all the same.
RS_ONLY_SUB = "33333333-3333-3333-3333-333333333333"
H = timedelta(hours=1)
MIN = timedelta(minutes=1)

# Panels that may have no series in this estate, by title, with the reason; every other panel must
# return data. None so far: the estate was built so that every panel has something to show.
LEGITIMATELY_EMPTY: dict[str, str] = {}
# The exporter runs with the default settings, so a query that reads only families of a collector that is
# off by default (the job IDs of COLLECTOR_JOB_INFO) is empty; its panel says which setting it needs.
OFF_BY_DEFAULT = frozenset(spec.name for spec in VAULT_DATA if spec.collector and not SeriesOptions().enabled(spec))

pytestmark = pytest.mark.e2e








def _guid(n: int) -> str:
    return f"00000000-0000-0000-0000-{n:012d}"


def _backup(vault: FakeVault, n: int, item: str, start: datetime, status: str, **kwargs: Any) -> dict[str, Any]:
    end = None if status == "InProgress" else start + timedelta(minutes=40)
    tasks = [("Take Snapshot", "Completed"), ("Transfer data to vault", "InProgress" if end is None else status)]
    size = "2048 MB" if status in ("Completed", "CompletedWithWarnings") else None
    return make_job(_guid(n), vault=vault, item=item, status=status, start=start, end=end,
                    duration="PT20M" if end is None else "PT40M", tasks=tasks, size=size, **kwargs)


@pytest.fixture(scope="module")
def estate() -> FakeEstate:  # type: ignore[override]
    estate = FakeEstate()
    prod = estate.add_vault(SUB_A, "rg-prod", "vault-prod", "westeurope")
    dev = estate.add_vault(SUB_B, "rg-dev", "vault-dev", "northeurope")
    # vm-web: backed up fine two days ago, then its last backup failed -> AzureBackupJobFailed
    estate.add_job(prod.name, _backup(prod, 1, "vm-web", NOW - 48 * H, "Completed"))
    estate.add_job(prod.name, _backup(prod, 2, "vm-web", NOW - 6 * H, "Failed",
                                      error="UserErrorGuestAgentStatusUnavailable"))
    # vm-db: healthy, must raise nothing
    estate.add_job(prod.name, _backup(prod, 3, "vm-db", NOW - 30 * H, "Completed"))
    estate.add_job(prod.name, _backup(prod, 4, "vm-db", NOW - 5 * H, "Completed"))
    # vm-app: running now; the test finishes it while the exporter watches
    estate.add_job(prod.name, _backup(prod, 5, "vm-app", NOW - 26 * H, "Completed"))
    estate.add_job(prod.name, _backup(prod, 6, "vm-app", NOW - H, "InProgress"))
    estate.add_job(dev.name, make_job(_guid(7), vault=dev, item="files-share", job_type="AzureStorageJob",
                                      backup_management_type="AzureStorage", status="Completed", container="stdevfiles",
                                      start=NOW - 3 * H, end=NOW - 3 * H + timedelta(minutes=3),
                                      duration="PT3M", size="0 MB", tasks=[("Backup", "Completed")]))
    # vm-old: its only backup job is 9 days old, outside the 7-day lookback -> no job series, but its
    # protected item still knows the last success -> AzureBackupNoRecentSuccessfulBackup
    estate.add_job(prod.name, _backup(prod, 8, "vm-old", NOW - 9 * 24 * H, "Completed"))
    # vm-retired: protection stopped on purpose long ago -> must not page for missing backups
    items = [
        (prod, "vm-web", "Failed", NOW - 6 * H + 40 * MIN, NOW - 48 * H + 40 * MIN, "ActionRequired", "Protected"),
        (prod, "vm-db", "Completed", NOW - 5 * H + 40 * MIN, NOW - 5 * H + 40 * MIN, "Passed", "Protected"),
        (prod, "vm-app", "Completed", NOW - 26 * H + 40 * MIN, NOW - 26 * H + 40 * MIN, "Passed", "Protected"),
        (prod, "vm-old", "Completed", NOW - 9 * 24 * H + 40 * MIN, NOW - 9 * 24 * H + 40 * MIN, "Passed",
         "Protected"),
        (prod, "vm-retired", "Completed", NOW - 60 * 24 * H, NOW - 60 * 24 * H, "Passed", "ProtectionStopped"),
    ]
    for vault, name, status, last_backup, recovery_point, health, state in items:
        estate.add_item(vault.name, make_protected_item(
            vault=vault, friendly_name=name, last_backup_status=status, last_backup_time=last_backup,
            last_recovery_point=recovery_point, health_status=health, protection_state=state, policy="DailyPolicy"))
    estate.add_item(dev.name, make_protected_item(
        vault=dev, item_type="AzureFileShareProtectedItem", friendly_name="files-share", container="stdevfiles",
        last_backup_status="Completed", last_backup_time=NOW - 3 * H, last_recovery_point=NOW - 3 * H,
        health_status="Passed", policy="FilesDaily"))
    _two_masters(estate, prod)
    _backup_vault(estate)
    _recovery_services_only_role(estate)
    _protectable_resources(estate)
    estate.add_policy(prod.name, make_policy(vault=prod, name="DailyPolicy"))
    estate.add_policy(prod.name, make_policy(vault=prod, name="SqlDaily", backup_management_type="AzureWorkload",
                                             log_minutes=60))
    estate.add_policy(dev.name, make_policy(vault=dev, name="FilesDaily", backup_management_type="AzureStorage"))
    return estate


def _backup_vault(estate: FakeEstate) -> None:
    """A Backup vault named like the Recovery Services vault-prod in its resource group, in the shapes of the real
    recordings: its AKS cluster's latest backup failed (it must page, as vault_type="backup"), its disk is fine."""
    vault = estate.add_backup_vault(SUB_A, "rg-prod", "vault-prod")
    for m, (kind, name) in enumerate((("AzureKubernetesService", "aks-prod"), ("AzureDisk", "disk-erp"))):
        estate.add_dpp_policy(vault.name, make_dpp_policy(vault=vault, name=f"{name}-daily", datasource_type=kind))
        estate.add_backup_instance(vault.name, make_backup_instance(vault=vault, datasource_type=kind,
                                                                    datasource_name=name, policy=f"{name}-daily"))
        last = "Failed" if name == "aks-prod" else "Completed"
        for n, (age, status) in enumerate(((26 * H, "Completed"), (2 * H, last))):
            estate.add_dpp_job(vault.name, make_dpp_job(
                _guid(40 + 2 * m + n), vault=vault, datasource_type=kind, datasource_name=name,
                policy=f"{name}-daily", status=status, start=NOW - age, end=NOW - age + 5 * MIN,
                error="Backup failed" if status == "Failed" else None))
            if status == "Completed":  # each successful backup leaves a recovery point
                instance = next(str(i["name"]) for i in estate.backup_instances(vault.name) if name in str(i["name"]))
                estate.add_recovery_point(vault.name, instance, make_recovery_point(
                    vault=vault, instance=instance, time=NOW - age + 4 * MIN, datasource_type=kind,
                    policy=f"{name}-daily"))


def _protectable_resources(estate: FakeEstate) -> None:
    """SUB_A's resources (listed because SUB_A is discovered too): vm-db, which vault-prod backs up, and
    vm-nobackup, which nothing backs up (its alert needs an hour, longer than this test runs)."""
    for name in ("vm-db", "vm-nobackup"):
        estate.resources.add(make_resource(SUB_A, "rg-prod", "Microsoft.Compute/virtualMachines", name,
                                           created=NOW - 30 * 24 * H))


def _recovery_services_only_role(estate: FakeEstate) -> None:
    """vault-rsonly, found only by discovering RS_ONLY_SUB: vm-rsonly backed up 20 h ago, then its backup failed."""
    vault = estate.add_vault(RS_ONLY_SUB, "rg-rsonly", "vault-rsonly")
    estate.add_job(vault.name, _backup(vault, 60, "vm-rsonly", NOW - 20 * H, "Completed"))
    estate.add_job(vault.name, _backup(vault, 61, "vm-rsonly", NOW - 3 * H, "Failed",
                                       error="UserErrorGuestAgentStatusUnavailable"))


def _two_masters(estate: FakeEstate, prod: FakeVault) -> None:
    """SQL `master` on two hosts of one vault, in real Azure's words (jobs `MSSQLSERVER/master [sqlvm01]`,
    `Backup (Full)`): sqlvm01's latest full backup failed (it succeeded 20 h ago), sqlvm02's is fine. Only
    sqlvm01's must page."""
    for n, (host, last) in enumerate((("sqlvm01", "Failed"), ("sqlvm02", "Completed"))):
        name = f"MSSQLSERVER/master [{host}]"
        for m, (age, status) in enumerate(((20 * H, "Completed"), (2 * H, last))):
            estate.add_job(prod.name, make_job(
                _guid(20 + 2 * n + m), vault=prod, item=name, job_type="AzureWorkloadJob",
                backup_management_type="AzureWorkload", workload_type="SQLDataBase", operation="Backup (Full)",
                status=status, start=NOW - age, end=NOW - age + 10 * MIN, size="512 MB" if status != "Failed" else None,
                error="UserErrorSQLNoSysadminMembership" if status == "Failed" else None))
        ended = NOW - 2 * H + 10 * MIN
        estate.add_item(prod.name, make_protected_item(
            vault=prod, item_type="AzureVmWorkloadSQLDatabase", friendly_name="master", container=host,
            last_backup_status="Unhealthy" if last == "Failed" else "Healthy", last_backup_time=ended,
            last_recovery_point=NOW - 20 * H + 10 * MIN if last == "Failed" else ended, policy="SqlDaily"))




@pytest.fixture(scope="module")
def stack(estate: FakeEstate, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    work = tmp_path_factory.mktemp("e2e")
    ports = {name: free_port() for name in ("exporter", "prometheus", "alertmanager")}
    webhook = Webhook()
    (work / "alertmanager.yml").write_text(json.dumps({
        "route": {"receiver": "test", "group_by": ["alertname", "vault", "backup_item"], "group_wait": "1s",
                  "group_interval": "1s", "repeat_interval": "1h"},
        "receivers": [{"name": "test", "webhook_configs": [{"url": webhook.url(), "send_resolved": True}]}],
    }))
    write_prometheus_config(work, ports["alertmanager"], RULES, [
        {"job_name": JOB, "scrape_timeout": "1s", "static_configs": [{"targets": [f"127.0.0.1:{ports['exporter']}"]}]},
        *_servicemonitor_like_jobs(f"127.0.0.1:{ports['exporter']}")])
    processes = Processes(work)
    with FakeArm(estate) as arm:
        arm.set_vault_list_fault(RS_ONLY_SUB, Fault.authorization_failed(operations=DPP_LIST_FAULT_OPERATIONS))
        env = exporter_env(arm, estate, ports["exporter"])
        env["AZURE_BACKUP_EXPORTER_VAULTS"] = ",".join(  # RS_ONLY_SUB's vault only by discovery
            v.id for v in [*estate.vaults, *estate.backup_vaults] if v.subscription_id != RS_ONLY_SUB)
        # SUB_A by discovery as well (its vaults are in VAULTS too: each is watched once), for its resources.
        env["AZURE_BACKUP_EXPORTER_SUBSCRIPTIONS"] = f"{RS_ONLY_SUB},{SUB_A}"
        try:
            processes.start("exporter", exporter_argv(), env)
            processes.start("alertmanager", alertmanager_argv(work, ports["alertmanager"]))
            processes.start("prometheus", prometheus_argv(work, ports["prometheus"]))
            yield {"arm": arm, "estate": estate, "work": work, "webhook": webhook,
                   "prometheus": f"http://127.0.0.1:{ports['prometheus']}", "started": time.monotonic()}
        finally:
            processes.close()
            webhook.close()


def _servicemonitor_like_jobs(target: str) -> list[dict[str, Any]]:
    """Two more scrapes of the exporter with the target labels prometheus-operator gives a ServiceMonitor's
    targets, `container` among them: one with the shipped ServiceMonitor's relabelings, one without."""
    monitor = yaml.safe_load((ROOT / "deploy" / "kubernetes" / "servicemonitor.yaml").read_text())
    relabelings = monitor["spec"]["endpoints"][0]["relabelings"]
    target_labels = {"container": "azure-backup-exporter", "pod": "azure-backup-exporter-0", "namespace": "monitoring"}
    return [{"job_name": name, "scrape_interval": "5s", "scrape_timeout": "1s",
             "static_configs": [{"targets": [target], "labels": target_labels}], "relabel_configs": relabel}
            for name, relabel in (("servicemonitor-as-shipped", relabelings), ("servicemonitor-without-drop", []))]






def test_failed_backup_pages_through_alertmanager(stack: dict[str, Any]) -> None:
    def delivered() -> dict[str, str] | None:
        return next((a for a in stack["webhook"].firing()
                     if a["alertname"] == "AzureBackupJobFailed" and a["backup_item"] == "vm-web"), None)

    alert = wait_for("AzureBackupJobFailed at the webhook", delivered, timeout=60)
    elapsed = time.monotonic() - stack["started"]
    print(f"AzureBackupJobFailed delivered {elapsed:.1f}s after the stack started")
    assert alert["vault"] == "vault-prod" and alert["vault_type"] == "recovery_services"
    assert alert["backup_item"] == "vm-web"
    assert alert["operation"] == "Backup"
    assert alert["severity"] == "warning"  # issue 18: one failed backup is a ticket
    assert alert["subscription_id"] == SUB_A and alert["resource_group"] == "rg-prod"


def test_a_failed_backup_in_a_backup_vault_pages_through_alertmanager(stack: dict[str, Any]) -> None:
    def delivered() -> dict[str, str] | None:
        return next((a for a in stack["webhook"].firing()
                     if a["alertname"] == "AzureBackupJobFailed" and a["backup_item"] == "aks-prod"), None)

    alert = wait_for("AzureBackupJobFailed for the AKS cluster at the webhook", delivered, timeout=60)
    assert (alert["vault"], alert["vault_type"], alert["resource_group"]) == ("vault-prod", "backup", "rg-prod")
    assert (alert["backup_management_type"], alert["container"]) == ("AzureKubernetesService", "rg-prod")
    assert alert["severity"] == "warning"  # issue 18: one failed backup is a ticket
    time.sleep(2)  # a couple more evaluations: the healthy disk in the same vault must not page
    assert not [a for a in stack["webhook"].firing() if a.get("backup_item") == "disk-erp"]


def test_a_role_that_may_not_list_backup_vaults_still_pages_for_a_recovery_services_vault(
        stack: dict[str, Any]) -> None:
    """The Backup vault list of RS_ONLY_SUB answers 403: its Recovery Services vault is discovered all the same,
    and its failed backup reaches Alertmanager."""
    def delivered() -> dict[str, str] | None:
        return next((a for a in stack["webhook"].firing()
                     if a["alertname"] == "AzureBackupJobFailed" and a["backup_item"] == "vm-rsonly"), None)

    alert = wait_for("AzureBackupJobFailed for the vault of the Recovery-Services-only role", delivered, timeout=60)
    assert (alert["subscription_id"], alert["vault"], alert["vault_type"]) == (
        RS_ONLY_SUB, "vault-rsonly", "recovery_services")
    assert alert["severity"] == "warning"  # issue 18: one failed backup is a ticket
    discovery = {r["metric"]["vault_type"]: r["value"][1] for r in query(
        stack["prometheus"], f'azure_backup_subscription_discovery_success{{job="{JOB}", '
                             f'subscription_id="{RS_ONLY_SUB}"}}')}
    assert discovery == {"recovery_services": "1", "backup": "0"}
    assert stack["arm"].requests.to(f"/subscriptions/{RS_ONLY_SUB}/providers/Microsoft.DataProtection/backupVaults")


def test_of_two_items_with_one_name_only_the_failing_one_pages(stack: dict[str, Any]) -> None:
    def delivered() -> list[dict[str, str]]:
        return [a for a in stack["webhook"].firing()
                if a["alertname"] == "AzureBackupJobFailed" and a["backup_item"] == "master"]

    alerts = wait_for("AzureBackupJobFailed for master", delivered, timeout=60)
    time.sleep(2)  # a couple more evaluations: sqlvm02's master must still not be there
    firing = query(stack["prometheus"], 'ALERTS{backup_item="master", alertstate="firing"}')
    assert {(a["container"], a["operation"]) for a in delivered()} == {("sqlvm01/MSSQLSERVER", "Backup (Full)")}
    assert {a["metric"]["container"] for a in firing} == {"sqlvm01/MSSQLSERVER"}
    assert all(a["severity"] == "warning" for a in alerts if a["alertname"] == "AzureBackupJobFailed")


def test_the_shipped_servicemonitor_keeps_the_exporters_container_label(stack: dict[str, Any]) -> None:
    def masters(job: str) -> list[dict[str, Any]]:
        return query(stack["prometheus"], f'azure_backup_item_info{{job="{job}", backup_item="master"}}')

    shipped = wait_for("a scrape as the shipped ServiceMonitor does it", lambda: masters("servicemonitor-as-shipped"))
    assert {m["metric"]["container"] for m in shipped} == {"sqlvm01/MSSQLSERVER", "sqlvm02/MSSQLSERVER"}
    # What the relabeling prevents: the target's label wins and the exporter's is renamed.
    bare = wait_for("a scrape without the relabeling", lambda: masters("servicemonitor-without-drop"))
    assert {m["metric"]["container"] for m in bare} == {"azure-backup-exporter"}
    assert {m["metric"]["exported_container"] for m in bare} == {"sqlvm01/MSSQLSERVER", "sqlvm02/MSSQLSERVER"}


def test_item_without_recent_jobs_pages_for_its_missing_backups(stack: dict[str, Any]) -> None:
    # vm-old's only success is 9 days old (known from its item alone); vm-web's last success was 47 h ago,
    # before its failure; vm-retired was stopped on purpose and must not be among them.
    expected = {"vm-old", "vm-web"}

    def delivered() -> list[dict[str, str]]:
        alerts = [a for a in stack["webhook"].firing() if a["alertname"] == "AzureBackupNoRecentSuccessfulBackup"]
        return alerts if {a["backup_item"] for a in alerts} >= expected else []

    alerts = wait_for("AzureBackupNoRecentSuccessfulBackup for vm-old and vm-web", delivered, timeout=60)
    time.sleep(2)  # a couple more evaluations: vm-retired must still not be there
    alerts = delivered()
    assert {a["backup_item"] for a in alerts} == expected
    assert all(a["vault"] == "vault-prod" and a["severity"] == "critical" for a in alerts)


def test_stopped_protection_is_reported_not_paged_as_missing(stack: dict[str, Any]) -> None:
    def delivered() -> list[dict[str, str]]:
        return [a for a in stack["webhook"].firing() if a["alertname"] == "AzureBackupProtectionStopped"]

    alerts = wait_for("AzureBackupProtectionStopped at the webhook", delivered, timeout=60)
    assert {a["backup_item"] for a in alerts} == {"vm-retired"}
    assert not query(stack["prometheus"], 'ALERTS{alertname="AzureBackupNoRecentSuccessfulBackup",'
                                            'backup_item="vm-retired"}')


def test_healthy_item_raises_nothing(stack: dict[str, Any]) -> None:
    wait_for("the first alert", stack["webhook"].firing, timeout=60)
    time.sleep(3)  # a few more evaluation cycles
    pending_or_firing = query(stack["prometheus"], 'ALERTS{backup_item="vm-db"}')
    assert pending_or_firing == []
    assert not [a for a in stack["webhook"].firing() if a.get("backup_item") == "vm-db"]
    assert not [a for a in stack["webhook"].firing() if a["alertname"] == "AzureBackupExporterDown"]


def test_every_dashboard_panel_has_data(stack: dict[str, Any]) -> None:
    prometheus, estate = stack["prometheus"], stack["estate"]
    wait_for("the exporter's first scrape", lambda: query(prometheus, f'azure_backup_up{{job="{JOB}"}} == 1'))
    # A job finishing while the exporter watches feeds the counters and the histogram.
    estate.update_job("vault-prod", _guid(6), status="Completed", endTime=_azure_time(NOW),
                      duration="PT1H", extendedInfo={"tasksList": [
                          {"taskId": "Take Snapshot", "status": "Completed"},
                          {"taskId": "Transfer data to vault", "status": "Completed"}],
                          "propertyBag": {"Backup Size": "4096 MB"}})
    wait_for("the finished job in Prometheus", lambda: query(
        prometheus, f'sum(azure_backup_jobs_finished_total{{job="{JOB}"}}) > 0'))
    time.sleep(3)  # a few samples after the change, so increase() has two points on each side
    # a healthy item: it has sizes (failed jobs have none)
    variables = {"datasource": "prometheus", "job": JOB, "subscription_id": SUB_A, "resource_group": "rg-prod",
                 "vault_type": "recovery_services", "vault": "vault-prod", "container": "rg-prod",
                 "backup_item": "vm-db"}
    empty, checked = [], 0
    for name, dashboard in sorted(load_dashboards().items()):
        for title, expr in panel_queries(dashboard, variables):
            checked += 1
            if metric_names(expr) <= OFF_BY_DEFAULT:
                continue
            if not query(prometheus, expr) and title not in LEGITIMATELY_EMPTY:
                empty.append(f"{name} / {title}: {expr}")
    print(f"{checked} dashboard queries answered")
    assert checked > 20
    assert empty == [], "panels without data:\n" + "\n".join(empty)


def _azure_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


# What Azure does not report for a Backup vault's instance, so the item dashboard's panel has nothing to show:
# no last-backup time or status on a backup instance, and no transferred size on a disk's backup job.
EMPTY_FOR_BACKUP_VAULT_ITEMS = {
    "azure_backup_item_last_backup_timestamp_seconds": "a backup instance has no lastBackupTime",
    "azure_backup_item_last_backup_status": "a backup instance has no lastBackupStatus",
    "azure_backup_job_last_size_bytes": "a disk backup's dataTransferredInBytes is null (research, every real job)",
    "azure_backup_item_last_recovery_point_timestamp_seconds": "the disk's jobs show its last success, so its "
                                                                "recovery points are not listed (issue 19, point 2)",
}


def test_the_item_dashboard_drills_down_to_a_backup_vault_disk(stack: dict[str, Any]) -> None:
    prometheus = stack["prometheus"]
    wait_for("the Backup vault's disk in Prometheus", lambda: query(
        prometheus, f'azure_backup_job_last_status{{job="{JOB}", vault_type="backup", backup_item="disk-erp"}}'))
    time.sleep(3)
    variables = {"datasource": "prometheus", "job": JOB, "subscription_id": SUB_A, "resource_group": "rg-prod",
                 "vault_type": "backup", "vault": "vault-prod", "container": "rg-prod", "backup_item": "disk-erp"}
    dashboard = load_dashboards()["azure-backup-item.json"]
    empty, answered = [], 0
    for title, expr in panel_queries(dashboard, variables):
        names = metric_names(expr)
        if names <= OFF_BY_DEFAULT or names & EMPTY_FOR_BACKUP_VAULT_ITEMS.keys():
            continue
        answered += 1
        if not query(prometheus, expr):
            empty.append(f"{title}: {expr}")
    assert answered > 10
    assert empty == [], "item dashboard panels without data for a Backup vault disk:\n" + "\n".join(empty)
