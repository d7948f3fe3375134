"""Parsing real Azure payloads (tests/fixtures/azure, provenance in PROVENANCE.md)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from exporter.models import BACKUP, RECOVERY_SERVICES, Task, VaultRef, parse_job, parse_vault

AZURE = Path(__file__).parent / "fixtures" / "azure"
RSB = AZURE / "recoveryservicesbackup"


def _body(path: Path) -> Any:
    data = json.loads(path.read_text())
    # spec examples wrap the body; recordings are the body itself
    return data["responses"]["200"]["body"] if "responses" in data else data


class Errors(Counter[str]):
    def __call__(self, field: str) -> None:
        self[field] += 1


def test_cli_recording_list_has_no_details() -> None:
    errors = Errors()
    listing = _body(RSB / "2022-02-01/azure-cli-recording.backupJobs_List.response.json")
    jobs = [parse_job(r, errors) for r in listing["value"]]
    assert not errors
    assert [(j.operation, j.status) for j in jobs if j] == [
        ("Restore", "InProgress"), ("Backup", "Completed"), ("ConfigureBackup", "Completed")]
    backup = jobs[1]
    assert backup is not None
    assert backup.duration == pytest.approx(41 * 60 + 17.9270278)
    assert backup.container_name == "iaasvmcontainerv2;clitest.rg000001;clitest-vm000003"
    assert backup.container == "clitest.rg000001"  # the VM's resource group: the container label
    assert backup.tasks is None and backup.size_bytes is None  # LIST carries no extendedInfo
    assert jobs[0] is not None and jobs[0].end is None


def test_cli_recording_details_give_size_and_tasks() -> None:
    errors = Errors()
    job = parse_job(
        _body(RSB / "2022-02-01/azure-cli-recording.JobDetails_Get.backup-completed.response.json"), errors)
    assert not errors and job is not None
    assert job.size_bytes == 11370 * 1024**2
    assert job.tasks == (Task("Take Snapshot", "Completed"), Task("Transfer data to vault", "Completed"))
    running = parse_job(
        _body(RSB / "2022-02-01/azure-cli-recording.JobDetails_Get.backup-inprogress.response.json"), errors)
    assert running is not None and running.status == "InProgress" and running.size_bytes is None
    restore = parse_job(
        _body(RSB / "2022-02-01/azure-cli-recording.JobDetails_Get.restore-inprogress.response.json"), errors)
    assert restore is not None and restore.operation == "Restore" and restore.tasks
    assert not errors


def test_docs_example_with_dotnet_durations() -> None:
    errors = Errors()
    job = parse_job(_body(RSB / "2017-07-01/docs.backup-azure-arm-userestapi-managejobs.JobDetails_Get.response.json"),
                    errors)
    assert not errors and job is not None
    assert job.duration == pytest.approx(20 * 60 + 23.0896697)
    assert job.size_bytes == 2332 * 1024**2


@pytest.mark.parametrize("name", [
    "2026-02-01/ListJobs.json", "2025-08-01/ListJobsWithAllSupportedFilters.json",
    "2025-08-01/ListJobsWithStartTimeAndEndTimeFilters.json", "2025-08-01/GetJobDetails.json"])
def test_spec_examples_parse_without_errors(name: str) -> None:
    body = _body(RSB / name)
    errors = Errors()
    jobs = [parse_job(r, errors) for r in body.get("value", [body])]
    assert jobs and all(j is not None and j.status and j.start for j in jobs)
    assert not errors


def test_job_ids_are_lowercased_and_unknown_types_keep_common_fields() -> None:
    errors = Errors()
    job = parse_job({"name": "ABC", "properties": {"jobType": "QuantumJob", "status": "Weird", "operation": "Backup",
                                                  "entityFriendlyName": "x", "startTime": "2026-01-01T00:00:00Z"}},
                    errors)
    assert job is not None and job.job_id == "abc" and job.job_type == "QuantumJob" and job.status == "Weird"
    assert parse_job({"properties": {}}, errors) is None
    assert parse_job({"name": "x", "properties": "nope"}, errors) is None
    assert errors == {"job": 2}


def test_bad_fields_drop_alone() -> None:
    errors = Errors()
    job = parse_job({"name": "x", "properties": {
        "status": "Completed", "startTime": "yesterday", "endTime": "2026-01-01T00:00:00Z", "duration": "long",
        "extendedInfo": {"tasksList": [{"taskId": "ok", "status": "Completed"}, "junk"],
                         "propertyBag": {"Backup Size ": "huge"}}}}, errors)
    assert job is not None
    assert (job.start, job.duration, job.size_bytes) == (None, None, None)
    assert job.end is not None and job.tasks == (Task("ok", "Completed"),)
    assert errors == {"startTime": 1, "duration": 1, "Backup Size": 1, "tasksList": 1}


def test_vault_listing_and_ids() -> None:
    errors = Errors()
    listing = _body(AZURE / "recoveryservices/2026-08-01/ListBySubscriptionIds.json")
    vaults = [parse_vault(r, errors) for r in listing["value"]]
    assert [v.ref.name for v in vaults if v] == ["patchtest", "swaggerExample", "today1"]
    assert all(v and v.location == "westus" for v in vaults)
    assert parse_vault({"id": "/subscriptions/x"}, errors) is None
    assert errors == {"vault": 1}
    odd = VaultRef.parse("/Subscriptions/AAAAAAAA-0000-0000-0000-000000000000/resourceGroups/RG/providers/"
                         "microsoft.recoveryservices/vaults/V1")
    assert odd.subscription_id == "aaaaaaaa-0000-0000-0000-000000000000" and odd.resource_group == "RG"
    assert odd.key == VaultRef("aaaaaaaa-0000-0000-0000-000000000000", "rg", "v1").key


SUB = "aaaaaaaa-0000-0000-0000-000000000000"
RSV_ID = f"/subscriptions/{SUB}/resourceGroups/rg-backup/providers/Microsoft.RecoveryServices/vaults/prod"
BV_ID = f"/subscriptions/{SUB}/resourceGroups/rg-backup/providers/Microsoft.DataProtection/backupVaults/prod"


def test_the_two_kinds_of_vault_with_one_name_are_two_vaults() -> None:
    """Issue 13: a Recovery Services vault and a Backup vault may share a name in one resource group."""
    rsv, bv = VaultRef.parse(RSV_ID), VaultRef.parse(BV_ID)
    assert (rsv.kind, bv.kind) == (RECOVERY_SERVICES, BACKUP)
    assert rsv.key != bv.key and rsv.labels != bv.labels
    assert rsv.labels == (SUB, "rg-backup", "prod", "recovery_services")
    assert bv.labels == (SUB, "rg-backup", "prod", "backup")
    assert VaultRef(SUB, "rg-backup", "prod") == rsv  # the kind defaults to Recovery Services
    with pytest.raises(ValueError, match="unknown kind of vault"):
        VaultRef(SUB, "rg-backup", "prod", "RecoveryServices")


@pytest.mark.parametrize("resource_id", [RSV_ID, BV_ID])
def test_vault_ids_round_trip(resource_id: str) -> None:
    ref = VaultRef.parse(resource_id)
    assert ref.path == resource_id and VaultRef.parse(ref.path) == ref
    assert ref.key == resource_id.lower()
    # ARM is case-insensitive in the provider and type, and a trailing slash is the same resource
    shouted = resource_id.replace("/providers/", "/Providers/").replace(
        "Microsoft.RecoveryServices/vaults", "MICROSOFT.RECOVERYSERVICES/Vaults").replace(
        "Microsoft.DataProtection/backupVaults", "microsoft.dataprotection/BACKUPVAULTS")
    assert VaultRef.parse(shouted + "/") == ref


@pytest.mark.parametrize("bad", [
    f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.DataProtection/vaults/prod",
    f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.RecoveryServices/backupVaults/prod",
    f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.DataProtection/backupVaults/prod/backupInstances/x",
])
def test_other_resource_ids_are_not_vaults(bad: str) -> None:
    with pytest.raises(ValueError, match=r"Microsoft\.RecoveryServices/vaults/<name> or .*"
                                         r"Microsoft\.DataProtection/backupVaults/<name>"):
        VaultRef.parse(bad)


def test_vault_listing_takes_only_its_kind() -> None:
    errors = Errors()
    backup_vault = {"id": BV_ID, "location": "WestEurope"}
    assert parse_vault(backup_vault, errors) is None  # a Recovery Services vault list names no Backup vault
    assert errors == {"vault": 1}
    found = parse_vault(backup_vault, errors, kind=BACKUP)
    assert found is not None and found.ref == VaultRef(SUB, "rg-backup", "prod", BACKUP)
    assert found.location == "westeurope"
