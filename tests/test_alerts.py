"""The alert rules, their promtool unit tests, the runbook and the Alertmanager example.

promtool and amtool come from Debian's `prometheus` and `prometheus-alertmanager` packages.
CI installs them; when one is missing these tests fail with the install command, they do not skip.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.catalogue import sample_names

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "alerts" / "azure-backup.rules.yml"
RULE_TESTS = sorted((ROOT / "alerts" / "tests").glob("*.yml"))
ALERTMANAGER = ROOT / "alerts" / "alertmanager.example.yml"
RUNBOOK = ROOT / "docs" / "runbook.md"
RUNBOOK_URL = "https://github.com/azure-backup-exporter/azure-backup-exporter/blob/main/docs/runbook.md"
JOB_SELECTOR = 'job="azure-backup-exporter"'

# Issue 3: alert names and severities are part of the product.
EXPECTED_ALERTS = {
    "AzureBackupJobFailed": "critical",
    "AzureBackupJobCompletedWithWarnings": "warning",
    "AzureBackupNoRecentSuccessfulBackup": "critical",
    "AzureBackupJobRunningTooLong": "warning",
    "AzureBackupDataDeletion": "critical",
    "AzureBackupVaultScrapeFailing": "warning",
    "AzureBackupDataStale": "warning",
    "AzureBackupApiThrottled": "warning",
    "AzureBackupExporterDown": "critical",
}
ITEM_ALERTS = {
    "AzureBackupJobFailed", "AzureBackupJobCompletedWithWarnings", "AzureBackupNoRecentSuccessfulBackup",
    "AzureBackupJobRunningTooLong", "AzureBackupDataDeletion",
}
VAULT_ALERTS = {"AzureBackupVaultScrapeFailing", "AzureBackupDataStale"}
# Per-item alerts a failing vault scrape holds back. AzureBackupDataDeletion is not one of them.
INHIBITED_BY_SCRAPE_FAILING = ITEM_ALERTS - {"AzureBackupDataDeletion"}
RECEIVER_FOR_SEVERITY = {"critical": "pager", "warning": "ticket"}

PROMQL_KEYWORDS = frozenset({
    "and", "or", "unless", "on", "ignoring", "by", "without", "group_left", "group_right",
    "bool", "offset", "inf", "nan",
})


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} is not on PATH. Install it with: DEBIAN_FRONTEND=noninteractive apt-get install -y "
            f"--no-install-recommends {package}  (CI installs it; this test does not skip without it)",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="module")
def promtool() -> str:
    return _tool("promtool", "prometheus")


@pytest.fixture(scope="module")
def amtool() -> str:
    return _tool("amtool", "prometheus-alertmanager")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _alert_rules() -> dict[str, dict[str, Any]]:
    rules = [rule for group in _load(RULES)["groups"] for rule in group["rules"]]
    alerts = {rule["alert"]: rule for rule in rules if "alert" in rule}
    assert len(alerts) == len([r for r in rules if "alert" in r]), "an alert name is used twice"
    return alerts


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, keywords and label names excluded)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)  # string literals
    text = re.sub(r"\{[^{}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range and subquery durations
    text = re.sub(r"\b(?:on|ignoring|by|without|group_left|group_right)\s*\([^)]*\)", " ", text)  # label lists
    names = set()
    for match in re.finditer(r"(?<![\w:.])([A-Za-z_:][\w:]*)(\s*\()?", text):
        if match.group(2) is None and match.group(1).lower() not in PROMQL_KEYWORDS:
            names.add(match.group(1))
    return names


def test_metric_name_extraction_sees_through_promql_syntax() -> None:
    expr = (
        'sum by (vault) (increase(foo_total{job="x", a=~"b|c"}[10m])) > 0 '
        "and on (vault) group_left bar unless ignoring(status) baz == bool 1 or absent(up{job=\"x\"})"
    )
    assert metric_names(expr) == {"foo_total", "bar", "baz", "up"}


def test_promtool_check_rules(promtool: str) -> None:
    result = _run(promtool, "check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests(promtool: str) -> None:
    assert RULE_TESTS, "no promtool test files in alerts/tests/"
    result = _run(promtool, "test", "rules", *map(str, RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_named_not_firing_and_firing_cases() -> None:
    not_firing: set[str] = set()
    firing: set[str] = set()
    for path in RULE_TESTS:
        for case in _load(path)["tests"]:
            assert case.get("name"), f"{path.name}: every test group needs a name"
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else not_firing).add(check["alertname"])
    assert set(EXPECTED_ALERTS) - not_firing == set(), "alerts without a 'not firing yet' case"
    assert set(EXPECTED_ALERTS) - firing == set(), "alerts without a 'firing' case"


def test_alert_names_and_severities_match_the_issue() -> None:
    alerts = _alert_rules()
    assert set(alerts) == set(EXPECTED_ALERTS)
    for name, rule in alerts.items():
        assert rule["labels"] == {"severity": EXPECTED_ALERTS[name]}, name


@pytest.mark.parametrize("name", sorted(EXPECTED_ALERTS))
def test_annotations_follow_the_mixin_style(name: str) -> None:
    annotations = _alert_rules()[name]["annotations"]
    assert set(annotations) == {"summary", "description", "runbook_url"}
    summary, description = annotations["summary"], annotations["description"]
    assert "{{" not in summary and summary.endswith("."), f"{name}: summary must be a static sentence"
    assert "{{" in description, f"{name}: description must be templated"
    if name in ITEM_ALERTS:
        assert "$labels.backup_item" in description and "$labels.vault" in description, name
        assert "$labels.operation" in description or name == "AzureBackupNoRecentSuccessfulBackup", name
    if name in VAULT_ALERTS:
        assert "$labels.vault" in description, name
    assert annotations["runbook_url"] == f"{RUNBOOK_URL}#{name.lower()}"


def _runbook_anchors() -> set[str]:
    """GitHub's heading anchors of docs/runbook.md (headings inside code fences skipped)."""
    anchors, fenced = set(), False
    for line in RUNBOOK.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and (heading := re.match(r"#{1,6}\s+(.+?)\s*#*\s*$", line)):
            slug = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower()).replace(" ", "-")
            anchors.add(slug)
    return anchors


def test_every_runbook_url_points_at_a_runbook_section() -> None:
    anchors = _runbook_anchors()
    for name, rule in _alert_rules().items():
        url = rule["annotations"]["runbook_url"]
        assert url.split("#", 1)[1] in anchors, f"{name}: {url} has no heading in docs/runbook.md"


def test_runbook_sections_say_how_to_check_and_silence() -> None:
    text = RUNBOOK.read_text(encoding="utf-8")
    sections = dict(re.findall(r"^## (AzureBackup\w+)\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S))
    assert set(sections) == set(EXPECTED_ALERTS)
    for name, body in sections.items():
        assert "First three checks" in body, name
        checks = body.split("**First three checks.**", 1)[1].split("**Silence.**", 1)[0]
        assert re.search(r"^\s*1\. .*^\s*2\. .*^\s*3\. ", checks, flags=re.M | re.S), name
        assert "```" in checks, f"{name}: the checks should show the commands or queries to run"
        assert f"amtool silence add alertname={name}" in body, name


def test_alert_expressions_use_only_catalogue_metrics_and_the_job_selector() -> None:
    known = sample_names() | {"up"}
    for name, rule in _alert_rules().items():
        expr = rule["expr"]
        used = metric_names(expr)
        assert used, f"{name}: no metric found in {expr!r}"
        assert used <= known, f"{name}: not in the exporter's catalogue: {sorted(used - known)}"
        for metric in used:
            for selector in re.finditer(rf"(?<![\w:]){re.escape(metric)}(?![\w:])\s*(\{{[^{{}}]*\}})?", expr):
                assert JOB_SELECTOR in (selector.group(1) or ""), (
                    f"{name}: {metric} is selected without {JOB_SELECTOR}")


def test_alertmanager_example_passes_amtool(amtool: str) -> None:
    result = _run(amtool, "check-config", str(ALERTMANAGER))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("name", "severity"), sorted(EXPECTED_ALERTS.items()))
def test_alertmanager_routes_by_severity(amtool: str, name: str, severity: str) -> None:
    receiver = RECEIVER_FOR_SEVERITY[severity]
    result = _run(
        amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER}", f"--verify.receivers={receiver}",
        f"alertname={name}", f"severity={severity}", "vault=rsv-prod", "job=azure-backup-exporter",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receiver


def _matches(matchers: list[str], labels: dict[str, str]) -> bool:
    for matcher in matchers:
        parsed = re.fullmatch(r'\s*(\w+)\s*(=~|!~|!=|=)\s*"?(.*?)"?\s*', matcher)
        assert parsed, f"cannot read matcher {matcher!r}"
        label, op, value = parsed.groups()
        actual = labels.get(label, "")
        hit = re.fullmatch(value, actual) is not None if op in ("=~", "!~") else actual == value
        if hit != (op in ("=", "=~")):
            return False
    return True


def test_alertmanager_inhibitions() -> None:
    config = _load(ALERTMANAGER)
    assert config["route"]["group_by"] == ["alertname", "vault"]

    def inhibited_by(source: str) -> set[str]:
        found: set[str] = set()
        for rule in config["inhibit_rules"]:
            if _matches(rule["source_matchers"], {"alertname": source, "severity": EXPECTED_ALERTS[source]}):
                found |= {
                    target for target, severity in EXPECTED_ALERTS.items()
                    if _matches(rule["target_matchers"], {"alertname": target, "severity": severity})
                }
        return found

    assert inhibited_by("AzureBackupVaultScrapeFailing") == INHIBITED_BY_SCRAPE_FAILING
    assert inhibited_by("AzureBackupExporterDown") == set(EXPECTED_ALERTS) - {
        "AzureBackupExporterDown", "AzureBackupDataDeletion"}
    for rule in config["inhibit_rules"]:
        if _matches(rule["source_matchers"], {"alertname": "AzureBackupVaultScrapeFailing"}):
            assert "vault" in rule["equal"]
        if _matches(rule["source_matchers"], {"alertname": "AzureBackupExporterDown"}):
            assert rule["equal"] == ["job"]
