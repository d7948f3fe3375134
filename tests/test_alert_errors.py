"""Every failure alert says why (issue 18, point 4): its description reads Azure's error, the job ID and the
failed job's start through template queries of catalogue families, links the vault in the portal, and links
a runbook section for each error code it knows. promtool renders them in alerts/tests/job-errors.test.yml."""

from __future__ import annotations

import re

from exporter.catalogue import ITEM_INFO, JOB_LAST_ERROR, JOB_LAST_START

from .test_alerts import RUNBOOK, _alert_rules

FAILURE_ALERTS = ("AzureBackupJobFailed", "AzureBackupRestoreFailed", "AzureBackupManagementJobFailed")
_QUERIED = re.compile(r"printf `(\w+)\{")
_KNOWN_CODES = re.compile(r"match `\^\(([\w|]+)\)\$` \.Labels\.error_title")


def _description(name: str) -> str:
    return str(_alert_rules()[name]["annotations"]["description"])


def _error_code_sections() -> set[str]:
    """The `### ` headings of the runbook's Error codes section."""
    text = RUNBOOK.read_text(encoding="utf-8")
    section = text.split("\n## Error codes\n", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^### (\w+)$", section, flags=re.M))


def test_failure_alerts_query_the_error_the_start_and_the_item() -> None:
    for name in FAILURE_ALERTS:
        description = _description(name)
        assert set(_QUERIED.findall(description)) == {JOB_LAST_ERROR.name, JOB_LAST_START.name, ITEM_INFO.name}
        for label in ("error_title", "error_code", "job_id"):
            assert f".Labels.{label}" in description and label in JOB_LAST_ERROR.labels, (name, label)
        assert 'label "source_resource_id"' in description and "source_resource_id" in ITEM_INFO.labels
        # The queries select the exporter like the expressions do, so the header's sed renames them too.
        assert description.count('`job="azure-backup-exporter",') == 1, name
        assert "humanizeTimestamp" in description, f"{name}: say when the failed job started"
        assert "https://portal.azure.com/#@/resource/subscriptions/{{ $labels.subscription_id }}" in description


def test_every_known_error_code_has_a_runbook_section_and_back() -> None:
    sections = _error_code_sections()
    assert {"UserErrorVmNotFoundV2", "UserErrorGuestAgentStatusUnavailable", "ExtensionSnapshotFailedNoNetwork",
            "UserErrorVmProvisioningStateFailed", "UserErrorSQLLSNValidationFailure"} <= sections
    for name in FAILURE_ALERTS:
        [known] = _KNOWN_CODES.findall(_description(name))
        assert set(known.split("|")) == sections, name
        assert "runbook.md#{{ if match" in _description(name) and "{{ else }}error-codes{{ end }}" in _description(name)


def test_the_error_code_sections_say_where_they_come_from() -> None:
    text = RUNBOOK.read_text(encoding="utf-8").split("\n## Error codes\n", 1)[1]
    for body in re.split(r"^### \w+\n", text, flags=re.M)[1:]:
        assert "Source:" in body or "See [" in body, body[:80]
