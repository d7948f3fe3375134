"""A job first seen running shows, and counts, its final details once it finishes (issue 17, point 2).

Azure's job details change when a job ends: tasks go from InProgress to Completed, and a database's or file
share's `Data Transferred (in MB)` from its running value to the final one. The jobs here were captured
running and then finished by real recorded sessions (tests/fixtures/azure, PROVENANCE.md):
- SQL: `6a5f5bec-...` of the SQL session, first seen as `Backup` InProgress, last as `Backup (Full)` Completed
  with 4.0864 MB transferred.
- Backup vault: `2167a022-...` of the PowerShell session (a disk backup), InProgress then Completed.
- File share: no recorded session caught an Azure Files backup running; its job is the recorded Azure Files
  job's shape (AzureStorageJob, `storageAccountName`, the propertyBag keys Azure writes) with the operation
  and the tasks of a backup, in the same two states.
Where the recordings show no running size, the variant with a running size of 0 is the case an operator
met (the running details said 0): those fail on an exporter that keeps a running job's details.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from exporter.simulator.fakearm import FakeEstate

from .conftest import FIXTURES, SUB_A, Clock, Exporter

RECORDINGS = FIXTURES / "azure" / "real-recordings"
SQL_SESSION = "cli-test_backup_wl_sql_protection-2019-06-28-807a5b71.json"
AFS_SESSION = "cli-test_afs_backup_item-2021-06-01-2eb3005d.json"
DPP_JOBS = FIXTURES / "azure" / "dataprotection" / "2026-03-01"
MB = 1024.0**2
Json = dict[str, Any]


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.rstrip("Z")[:26]).replace(tzinfo=UTC)


def _recorded_sql_job(snapshot: str) -> Json:
    vaults = json.loads((RECORDINGS / SQL_SESSION).read_text())["vaults"]
    vault = next(v for v in vaults if v["snapshot"] == snapshot)
    job: Json = copy.deepcopy(vault["job_details"]["6a5f5bec-5e01-4eca-a145-93b079c3665b"])
    return job


def _file_share_job(running: bool, transferred_mb: str) -> Json:
    """The recorded Azure Files job (ConfigureBackup, completed) made a backup, running or finished."""
    vaults = json.loads((RECORDINGS / AFS_SESSION).read_text())["vaults"]
    job: Json = copy.deepcopy(vaults[0]["job_details"]["1928dee6-86f6-44a5-8075-1b25baec3a3c"])
    props = job["properties"]
    props.update(operation="Backup", entityFriendlyName="share-data", actionsInfo=[1])
    props["extendedInfo"] = {
        "tasksList": [{"taskId": "Take Snapshot", "status": "InProgress" if running else "Completed"}],
        "propertyBag": {"File Share Name": "share-data", "Storage Account Name": "clitest000003",
                        "Data Transferred (in MB)": transferred_mb},
    }
    if running:
        props.update(status="InProgress", duration="PT1.1238647S")
        del props["endTime"]
    return job


def _job_in(vault_path: str, job: Json) -> Json:
    job["id"] = f"{vault_path}/backupJobs/{job['name']}"
    return job


def _series(text: str, metric: str, *fragments: str) -> list[str]:
    return [line for line in text.splitlines()
            if line.startswith(metric + "{") and all(fragment in line for fragment in fragments)]


def _one_value(text: str, metric: str, *fragments: str) -> float:
    lines = _series(text, metric, *fragments)
    assert len(lines) == 1, f"{metric} {fragments}: {lines}"
    return float(lines[0].rsplit(" ", 1)[1])


@pytest.mark.parametrize("running_size", [None, "0"], ids=["as-recorded", "running-size-0"])
def test_a_sql_job_seen_running_shows_and_counts_its_final_details(
        estate: FakeEstate, make_exporter: Callable[..., Exporter], running_size: str | None) -> None:
    vault = estate.add_vault(SUB_A, "pstestwlRG1bca8", "pstestwlRSV1bca8")
    running = _job_in(vault.id, _recorded_sql_job("first-seen"))
    if running_size is not None:
        running["properties"]["extendedInfo"]["propertyBag"]["Data Transferred (in MB)"] = running_size
    finished = _job_in(vault.id, _recorded_sql_job("last-seen"))
    clock = Clock(_at(running["properties"]["startTime"]) + timedelta(minutes=1))
    estate.add_job(vault.name, running)
    exporter = make_exporter(clock, vaults=vault.id)

    text = exporter.scrape()
    assert _series(text, "azure_backup_job_last_task_status", 'task="Transfer data to vault"', 'status="InProgress"')

    estate.add_job(vault.name, finished)
    clock.advance(timedelta(minutes=5))
    text = exporter.scrape()
    full = 'operation="Backup (Full)"'
    assert _series(text, "azure_backup_job_last_task_status", full, 'task="Transfer data to vault"',
                   'status="Completed"')
    assert not _series(text, "azure_backup_job_last_task_status", 'status="InProgress"')
    assert _one_value(text, "azure_backup_job_last_size_bytes", full) == pytest.approx(4.0864 * MB)
    assert _one_value(text, "azure_backup_transferred_bytes_total", full) == pytest.approx(4.0864 * MB)
    assert _one_value(text, "azure_backup_jobs_finished_total", full, 'status="Completed"') == 1

    clock.advance(timedelta(minutes=5))
    text = exporter.scrape()  # listed again: neither counted again nor fetched again
    assert _one_value(text, "azure_backup_transferred_bytes_total", full) == pytest.approx(4.0864 * MB)
    assert _one_value(text, "azure_backup_jobs_finished_total", full, 'status="Completed"') == 1


def test_a_file_share_job_whose_running_details_said_0_counts_its_final_size(
        estate: FakeEstate, make_exporter: Callable[..., Exporter]) -> None:
    vault = estate.add_vault(SUB_A, "clitest.rg000001", "clitest-vault000002")
    running = _job_in(vault.id, _file_share_job(running=True, transferred_mb="0"))
    clock = Clock(_at(running["properties"]["startTime"]) + timedelta(seconds=20))
    estate.add_job(vault.name, running)
    exporter = make_exporter(clock, vaults=vault.id)
    share = 'backup_item="share-data"'

    text = exporter.scrape()
    assert _one_value(text, "azure_backup_job_last_size_bytes", share) == 0
    assert _series(text, "azure_backup_job_last_task_status", share, 'task="Take Snapshot"', 'status="InProgress"')

    estate.add_job(vault.name, _job_in(vault.id, _file_share_job(running=False, transferred_mb="1536")))
    clock.advance(timedelta(minutes=5))
    text = exporter.scrape()
    assert _series(text, "azure_backup_job_last_task_status", share, 'task="Take Snapshot"', 'status="Completed"')
    assert not _series(text, "azure_backup_job_last_task_status", share, 'status="InProgress"')
    assert _one_value(text, "azure_backup_job_last_size_bytes", share) == 1536 * MB
    assert _one_value(text, "azure_backup_transferred_bytes_total", 'backup_management_type="AzureStorage"',
                      'operation="Backup"') == 1536 * MB


def _dpp_job(state: str, vault_path: str, transferred: float | None) -> Json:
    job: Json = json.loads((DPP_JOBS / f"azure-powershell-recording.Jobs_Get.{state}.response.json").read_text())
    job["id"] = f"{vault_path}/backupJobs/{job['name']}"
    job["properties"]["extendedInfo"]["dataTransferredInBytes"] = transferred
    return job


@pytest.mark.parametrize("running_size", [None, 0.0], ids=["as-recorded", "running-size-0"])
def test_a_backup_vault_job_seen_running_shows_and_counts_its_final_details(
        estate: FakeEstate, make_exporter: Callable[..., Exporter], running_size: float | None) -> None:
    vault = estate.add_backup_vault(SUB_A, "rg-dpp", "bv-disks")
    running = _dpp_job("inprogress", vault.id, running_size)
    final_bytes = 3 * 1024.0**3  # real jobs leave it null; a number is what the exporter counts
    clock = Clock(_at(running["properties"]["startTime"]) + timedelta(minutes=1))
    estate.add_dpp_job(vault.name, running)
    exporter = make_exporter(clock, vaults=vault.id)

    text = exporter.scrape()
    assert _series(text, "azure_backup_job_last_task_status", 'task="Trigger Backup"', 'status="InProgress"')

    estate.add_dpp_job(vault.name, _dpp_job("completed", vault.id, final_bytes))
    clock.advance(timedelta(minutes=5))
    text = exporter.scrape()
    assert _series(text, "azure_backup_job_last_task_status", 'task="Trigger Backup"', 'status="Completed"')
    assert not _series(text, "azure_backup_job_last_task_status", 'status="InProgress"')
    assert _one_value(text, "azure_backup_job_last_size_bytes", 'vault_type="backup"') == final_bytes
    assert _one_value(text, "azure_backup_transferred_bytes_total", 'vault_type="backup"') == final_bytes
