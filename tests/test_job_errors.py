"""Why a job failed (issue 18, point 4): the errorDetails of both kinds of vault, parsed from recorded and
spec-shaped payloads, and azure_backup_job_last_error_info rendered through the whole exporter (fake ARM on
loopback, real HTTP), present while the latest job is Failed and gone once a later job succeeds."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from exporter.catalogue import JOB_LAST_ERROR
from exporter.dataprotection import parse_dpp_job
from exporter.jobbook import JobBook
from exporter.models import JobError, parse_job
from exporter.simulator.fakearm import FakeEstate, make_dpp_job, make_job

from .conftest import NOW, SUB_A, Exporter, fixed_clock

FIXTURES = Path(__file__).parent / "fixtures" / "azure"
DPP_FAILED = FIXTURES / "dataprotection/2024-04-01/azure-cli-recording.Jobs_List.failed-restore.item.json"
RS_FAILED = FIXTURES / "recoveryservicesbackup/2022-02-01/constructed.JobDetails_Get.failed-jobs.json"
RS_COMPLETED = (FIXTURES / "recoveryservicesbackup/2022-02-01"
                / "azure-cli-recording.JobDetails_Get.backup-completed.response.json")
H = timedelta(hours=1)
MIN = timedelta(minutes=1)
ERROR_INFO = "azure_backup_job_last_error_info"


class Errors(list[str]):
    def __call__(self, field: str) -> None:
        self.append(field)


def _load(path: Path) -> Any:
    return json.loads(path.read_text())


def test_a_backup_vaults_listed_failed_job_gives_its_code() -> None:
    """The recorded failed restore (Jobs_List, 2024-04-01): UserFacingError[], the code nested three deep."""
    errors = Errors()
    job = parse_dpp_job(_load(DPP_FAILED), errors)
    assert not errors and job is not None
    assert job.status == "Failed" and job.operation == "Restore"
    assert job.error == JobError("InternalServerError", "InternalServerError")


def test_recovery_services_error_shapes_per_job_type() -> None:
    """The spec's shapes: IaaS VM jobs have a numeric code and a title, file shares a code only, MARS neither."""
    errors = Errors()
    vm, share, mab = (parse_job(job, errors) for job in _load(RS_FAILED)["value"])
    assert not errors
    assert vm is not None and vm.error == JobError("400006", "UserErrorVmNotFoundV2")
    assert share is not None and share.error == JobError("400100", "")
    assert mab is not None and mab.error == JobError("", "")


def test_jobs_without_errors_have_none() -> None:
    errors = Errors()
    completed = parse_job(_load(RS_COMPLETED), errors)
    assert completed is not None and completed.error is None
    for empty in (None, []):
        dpp = _load(DPP_FAILED)
        dpp["properties"]["errorDetails"] = empty
        parsed = parse_dpp_job(dpp, errors)
        assert parsed is not None and parsed.error is None
    assert not errors


def test_a_bad_error_value_drops_that_value_and_is_counted() -> None:
    """Bad data drops one field and is counted: a code that is a sentence would be an unbounded label."""
    errors = Errors()
    vm = _load(RS_FAILED)["value"][0]
    vm["properties"]["errorDetails"][0]["errorCode"] = "The VM is gone and nobody knows why"
    vm["properties"]["errorDetails"][0]["errorTitle"] = ["not", "a", "string"]
    job = parse_job(vm, errors)
    assert job is not None and job.error == JobError("", "") and job.status == "Failed"
    assert errors == ["errorCode", "errorTitle"]
    vm["properties"]["errorDetails"] = "nonsense"
    job = parse_job(vm, errors)
    assert job is not None and job.error is None and errors[-1] == "errorDetails"
    dpp = _load(DPP_FAILED)
    dpp["properties"]["errorDetails"] = [17]
    assert parse_dpp_job(dpp, errors) is not None and errors[-1] == "errorDetails"


def test_an_error_read_by_get_outlives_a_list_without_it() -> None:
    """No recording shows a Recovery Services LIST with errorDetails: the GET's error stays when the list
    that follows carries none, and a GET without one keeps the list's."""
    errors = Errors()
    failed = _load(RS_FAILED)["value"][0]
    listed = json.loads(json.dumps(failed))
    for key in ("errorDetails", "extendedInfo"):
        del listed["properties"][key]
    book = JobBook(timedelta(days=7))
    list_job, get_job = parse_job(listed, errors), parse_job(failed, errors)
    assert list_job is not None and get_job is not None and list_job.error is None
    book.merge_list({list_job.job_id: list_job}, NOW, first=True)
    book.merge_details(list_job.job_id, get_job)
    book.merge_list({list_job.job_id: list_job}, NOW + MIN, first=False)
    assert book.jobs[list_job.job_id].error == JobError("400006", "UserErrorVmNotFoundV2")
    assert list_job.with_details(list_job).error is None
    assert get_job.with_details(list_job).error == get_job.error


def _error_lines(exposition: str) -> list[str]:
    return [line for line in exposition.splitlines() if line.startswith(ERROR_INFO + "{")]


def _exporter(make_exporter: Callable[..., Exporter], clock: Callable[..., Any], *ids: str) -> Exporter:
    return make_exporter(clock, vaults=",".join(ids))


def test_the_latest_failed_job_shows_its_error_until_a_later_job_succeeds(
        estate: FakeEstate, make_exporter: Callable[..., Exporter]) -> None:
    vault = estate.add_vault(SUB_A, "rg-prod", "vault-prod", "westeurope")
    backup_vault = estate.add_backup_vault(SUB_A, "rg-prod", "bvault-prod")
    job_id, dpp_job_id = "00000000-0000-0000-0000-000000000001", "00000000-0000-0000-0000-000000000002"
    estate.add_job(vault.name, make_job(job_id, vault=vault, item="vm-web", status="Failed", start=NOW - 2 * H,
                                        end=NOW - 2 * H + 3 * MIN, error="The VM no longer exists.",
                                        error_code=400006, error_title="UserErrorVmNotFoundV2"))
    estate.add_dpp_job(backup_vault.name, make_dpp_job(
        dpp_job_id, vault=backup_vault, datasource_type="AzureDisk", datasource_name="disk-erp", status="Failed",
        start=NOW - 3 * H, end=NOW - 3 * H + 4 * MIN, error="The disk snapshot could not be taken.",
        error_code="UserErrorDiskSnapshotNotFound"))
    clock = fixed_clock(NOW)
    exporter = _exporter(make_exporter, clock, vault.id, backup_vault.id)

    exposition = exporter.scrape()
    assert f"# TYPE {ERROR_INFO} gauge" in exposition
    assert sorted(_error_lines(exposition)) == [
        f'{ERROR_INFO}{{backup_item="disk-erp",backup_management_type="AzureDisk",container="rg-prod",'
        f'error_code="UserErrorDiskSnapshotNotFound",error_title="UserErrorDiskSnapshotNotFound",'
        f'job_id="{dpp_job_id}",operation="Backup",resource_group="rg-prod",subscription_id="{SUB_A}",'
        f'vault="bvault-prod",vault_type="backup"}} 1.0',
        f'{ERROR_INFO}{{backup_item="vm-web",backup_management_type="AzureIaasVM",container="rg-prod",'
        f'error_code="400006",error_title="UserErrorVmNotFoundV2",job_id="{job_id}",operation="Backup",'
        f'resource_group="rg-prod",subscription_id="{SUB_A}",vault="vault-prod",vault_type="recovery_services"}} 1.0',
    ]
    assert "The VM no longer exists" not in exposition  # the message is never a label

    # A later backup of the VM succeeds: its error series goes; the disk's stays.
    estate.add_job(vault.name, make_job("00000000-0000-0000-0000-000000000003", vault=vault, item="vm-web",
                                        start=NOW + 2 * MIN, end=NOW + 8 * MIN))
    clock.advance(10 * MIN)
    later = _error_lines(exporter.scrape())
    assert len(later) == 1 and 'vault_type="backup"' in later[0]


def test_the_family_is_on_by_default_and_carries_exactly_its_labels() -> None:
    assert JOB_LAST_ERROR.collector == ""
    assert JOB_LAST_ERROR.labels == (
        "subscription_id", "resource_group", "vault", "vault_type", "backup_management_type", "container",
        "backup_item", "operation", "job_id", "error_code", "error_title")
