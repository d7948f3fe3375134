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

from exporter.catalogue import CATALOGUE, ITEM_LABELS, VAULT_LABELS, sample_names
from exporter.models import BACKUP, RECOVERY_SERVICES
from exporter.vocabulary import STOPPED_ON_PURPOSE as STOPPED_STATES
from exporter.vocabulary import VOCABULARIES, Vocabulary

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "alerts" / "azure-backup.rules.yml"
RULE_TESTS = sorted((ROOT / "alerts" / "tests").glob("*.yml"))
ALERTMANAGER = ROOT / "alerts" / "alertmanager.example.yml"
RUNBOOK = ROOT / "docs" / "runbook.md"
RUNBOOK_URL = "https://github.com/azure-backup-exporter/azure-backup-exporter/blob/main/docs/runbook.md"
JOB_SELECTOR = 'job="azure-backup-exporter"'

# Issue 3: alert names and severities are part of the product.
EXPECTED_ALERTS = {
    # Issue 18: one failed backup the next can repair is a ticket; two in a row page.
    "AzureBackupJobFailed": "warning",
    "AzureBackupJobFailedRepeatedly": "critical",
    "AzureBackupJobCompletedWithWarnings": "warning",
    "AzureBackupNoRecentSuccessfulBackup": "critical",
    "AzureBackupJobRunningTooLong": "warning",
    "AzureBackupDataDeletion": "critical",
    "AzureBackupVaultScrapeFailing": "warning",
    "AzureBackupDataStale": "warning",
    "AzureBackupApiThrottled": "warning",
    "AzureBackupExporterDown": "critical",
    # Issue 4: alerts from the protected-items list.
    "AzureBackupItemUnhealthy": "warning",
    "AzureBackupProtectionStopped": "warning",
    # Alerts that page for every missed backup and for nothing else: only failed backups page, other
    # failed jobs are warnings; an exporter or vault the exporter cannot see pages.
    "AzureBackupRestoreFailed": "warning",
    "AzureBackupManagementJobFailed": "warning",
    "AzureBackupExporterBlind": "critical",
    "AzureBackupVaultNotRefreshed": "critical",
    "AzureBackupVaultNotFound": "warning",
    "AzureBackupDiscoveryFailing": "warning",
    # Issue 20, point 5: a vault's guards against deletion.
    "AzureBackupVaultProtectionWeakened": "critical",
    "AzureBackupVaultSoftDeleteOff": "warning",
    # Issue 18: nothing goes missing silently.
    "AzureBackupVaultDisappeared": "critical",
    "AzureBackupItemDisappeared": "critical",
    # Issue 20, point 1: a resource that no backup covers.
    "AzureBackupResourceUnprotected": "warning",
}
# Alerts on the latest job of an item and operation: they name the operation.
JOB_ALERTS = {
    "AzureBackupJobFailed", "AzureBackupJobFailedRepeatedly", "AzureBackupJobCompletedWithWarnings",
    "AzureBackupJobRunningTooLong",
    "AzureBackupDataDeletion", "AzureBackupRestoreFailed", "AzureBackupManagementJobFailed",
}
ITEM_ALERTS = JOB_ALERTS | {
    "AzureBackupNoRecentSuccessfulBackup", "AzureBackupItemUnhealthy", "AzureBackupProtectionStopped",
    "AzureBackupItemDisappeared",
}
VAULT_ALERTS = {"AzureBackupVaultScrapeFailing", "AzureBackupDataStale", "AzureBackupVaultNotRefreshed",
                "AzureBackupVaultNotFound", "AzureBackupVaultDisappeared", "AzureBackupVaultProtectionWeakened",
                "AzureBackupVaultSoftDeleteOff"}
# Alerts about one exporter: they keep its `instance`. Every other alert is a data alert: it names the
# backup, never the exporter (it aggregates the target labels away), and keeps firing for 15 minutes
# through an exporter restart or a node outage (issue 18).
EXPORTER_ALERTS = {"AzureBackupExporterDown", "AzureBackupExporterBlind", "AzureBackupApiThrottled",
                   "AzureBackupDiscoveryFailing"}
DATA_ALERTS = set(EXPECTED_ALERTS) - EXPORTER_ALERTS
# Labels Prometheus or prometheus-operator add from the scrape target; they change when the exporter's pod does.
TARGET_LABELS = ("instance", "pod", "endpoint", "namespace", "service")
SEVERITY_RANK = {"warning": 1, "critical": 2}
# Someone stopped backups or deleted backup data: neither a failing vault scrape nor a down
# exporter may hold these back, because an attacker may revoke the exporter's access next.
SECURITY_ALERTS = {"AzureBackupDataDeletion", "AzureBackupProtectionStopped", "AzureBackupVaultDisappeared",
                   "AzureBackupItemDisappeared", "AzureBackupVaultProtectionWeakened", "AzureBackupVaultSoftDeleteOff"}
# Per-item alerts a failing vault scrape holds back: warnings only, a warning never silences a page.
INHIBITED_BY_SCRAPE_FAILING = {name for name in ITEM_ALERTS - SECURITY_ALERTS if EXPECTED_ALERTS[name] == "warning"}
RECEIVER_FOR_SEVERITY = {"critical": "pager", "warning": "ticket"}

# Protection states in which someone stopped an item's backups on purpose (issue 4): the same
# regex must select them in every alert that uses them.
STOPPED_ON_PURPOSE = set(STOPPED_STATES[RECOVERY_SERVICES]) | set(STOPPED_STATES[BACKUP])
ALERTS_USING_STOPPED_STATES = {
    "AzureBackupProtectionStopped", "AzureBackupNoRecentSuccessfulBackup", "AzureBackupItemUnhealthy"}
# The values the exporter emits for the item enums (azure_backup_item_*{status|state}), both kinds of vault.
KNOWN_ITEM_VALUES = {
    metric: {value for vocabulary in VOCABULARIES if vocabulary.spec.name == metric for value in vocabulary.values}
    for metric in ("azure_backup_item_last_backup_status", "azure_backup_item_health_status",
                   "azure_backup_item_protection_state")
}

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
        # issue 10: a friendly name alone is ambiguous (master on every SQL instance)
        assert "$labels.container" in description, f"{name}: the description must say the container"
    if name in JOB_ALERTS:
        assert "$labels.operation" in description, name
    if name in ITEM_ALERTS - JOB_ALERTS - {"AzureBackupNoRecentSuccessfulBackup", "AzureBackupItemDisappeared"}:
        assert "$labels.state" in description, f"{name}: the description must say the state"
    if name == "AzureBackupItemUnhealthy":
        assert "$labels.status" in description, f"{name}: the description must say the health"
    if name in VAULT_ALERTS:
        assert "$labels.vault" in description, name
    if name in ITEM_ALERTS | VAULT_ALERTS:  # issue 13: which kind of vault
        assert "$labels.vault_type" in description, f"{name}: the description must say the kind of vault"
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
    # Issue 18: a vault is its whole identity (two of one name in two subscriptions are two groups);
    # tickets per cause (alert) and vault, pages per vault.
    assert config["route"]["group_by"] == ["alertname", *VAULT_LABELS]
    [pager] = [route for route in config["route"]["routes"] if route["receiver"] == "pager"]
    assert pager["group_by"] == list(VAULT_LABELS)

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
    assert inhibited_by("AzureBackupExporterDown") == (
        set(EXPECTED_ALERTS) - {"AzureBackupExporterDown"} - SECURITY_ALERTS)
    assert inhibited_by("AzureBackupExporterBlind") == {
        "AzureBackupVaultNotRefreshed", "AzureBackupVaultScrapeFailing", "AzureBackupVaultNotFound",
        "AzureBackupDataStale", "AzureBackupDiscoveryFailing"}
    # Issue 18: the vault's one page holds back its items' RPO and failed-job alerts (stale data)
    assert inhibited_by("AzureBackupVaultNotRefreshed") == {
        "AzureBackupVaultScrapeFailing", "AzureBackupDataStale", "AzureBackupNoRecentSuccessfulBackup",
        "AzureBackupJobFailed", "AzureBackupJobFailedRepeatedly"}
    # Issue 18: the RPO alert says it all about the failed jobs behind it
    assert inhibited_by("AzureBackupNoRecentSuccessfulBackup") == {"AzureBackupJobFailed",
                                                                   "AzureBackupJobFailedRepeatedly"}
    assert inhibited_by("AzureBackupVaultNotFound") == {"AzureBackupVaultScrapeFailing"}
    # Nothing else inhibits: a missed backup is never held back by an item's own alerts.
    sources = {"AzureBackupVaultScrapeFailing", "AzureBackupExporterDown", "AzureBackupExporterBlind",
               "AzureBackupVaultNotRefreshed", "AzureBackupVaultNotFound", "AzureBackupNoRecentSuccessfulBackup"}
    for source in set(EXPECTED_ALERTS) - sources:
        assert inhibited_by(source) == set(), f"{source} inhibits {sorted(inhibited_by(source))}"
    for source in EXPECTED_ALERTS:
        assert inhibited_by(source) & SECURITY_ALERTS == set(), f"{source} inhibits a security signal"
    for rule in config["inhibit_rules"]:
        if _matches(rule["source_matchers"], {"alertname": "AzureBackupVaultScrapeFailing"}):
            assert "vault" in rule["equal"]
        if "vault" in rule["equal"]:  # issue 13: two vaults of one name, one of each kind, stay apart
            assert set(VAULT_LABELS) <= set(rule["equal"]), rule["equal"]
        if _matches(rule["source_matchers"], {"alertname": "AzureBackupNoRecentSuccessfulBackup"}):
            assert set(ITEM_LABELS) | {"job"} == set(rule["equal"]), "only the item's own failed jobs"
        if _matches(rule["source_matchers"], {"alertname": "AzureBackupVaultNotRefreshed"}):
            assert {"job", "vault", "resource_group", "subscription_id"} <= set(rule["equal"])
        if _matches(rule["source_matchers"], {"alertname": "AzureBackupExporterDown"}) or _matches(
                rule["source_matchers"], {"alertname": "AzureBackupExporterBlind"}):
            assert rule["equal"] == ["job"]


def _inhibition_severities(rule: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """The alerts (name: severity) an inhibit rule's source and target matchers can match."""
    def matching(matchers: list[str]) -> dict[str, str]:
        return {name: severity for name, severity in EXPECTED_ALERTS.items()
                if _matches(matchers, {"alertname": name, "severity": severity})}
    return matching(rule["source_matchers"]), matching(rule["target_matchers"])


def test_no_inhibition_silences_an_alert_more_severe_than_its_source() -> None:
    """Every alert a rule's targets can match is no more severe than every alert its source can match
    (critical > warning): a warning must never hold back a page."""
    for index, rule in enumerate(_load(ALERTMANAGER)["inhibit_rules"]):
        sources, targets = _inhibition_severities(rule)
        assert sources and targets, f"inhibit rule {index} matches no alert on one side: {rule}"
        weakest_source = min(SEVERITY_RANK[severity] for severity in sources.values())
        louder = {name for name, severity in targets.items() if SEVERITY_RANK[severity] > weakest_source}
        assert not louder, f"inhibit rule {index}: {sorted(sources)} would silence the more severe {sorted(louder)}"


def test_severity_check_catches_a_warning_that_silences_a_page() -> None:
    """The check above fails on the rule this example used to have (a warning holding back pages)."""
    old = {"source_matchers": ['alertname="AzureBackupVaultScrapeFailing"'],
           "target_matchers": ['alertname=~"AzureBackupJobFailedRepeatedly|AzureBackupItemUnhealthy"']}
    sources, targets = _inhibition_severities(old)
    assert sources == {"AzureBackupVaultScrapeFailing": "warning"}
    assert targets["AzureBackupJobFailedRepeatedly"] == "critical"


def _matcher_values(expr: str, metric: str, label: str) -> list[tuple[str, str]]:
    """(operator, value) of every `label` matcher on `metric` in a PromQL expression."""
    found = []
    for selector in re.finditer(rf"(?<![\w:]){re.escape(metric)}\{{([^{{}}]*)\}}", expr):
        found += re.findall(rf'\b{label}\s*(=~|!~|!=|=)\s*"([^"]*)"', selector.group(1))
    return found


def test_stopped_on_purpose_states_are_the_same_in_every_alert() -> None:
    alerts = _alert_rules()
    for name in ALERTS_USING_STOPPED_STATES:
        matchers = _matcher_values(alerts[name]["expr"], "azure_backup_item_protection_state", "state")
        stopped = [value for op, value in matchers if op == "=~" and "ProtectionStopped" in value]
        assert len(stopped) == 1, f"{name}: expected one state=~ matcher for the stopped states, got {matchers}"
        assert set(stopped[0].split("|")) == STOPPED_ON_PURPOSE, name
    # the two alerts that skip stopped items do so with `unless`, so a missing state still alerts
    for name in ALERTS_USING_STOPPED_STATES - {"AzureBackupProtectionStopped"}:
        unless = r"\bunless(?:\s+(?:on|ignoring)\s*\([^)]*\))?\s*\(\s*azure_backup_item_protection_state\{"
        assert re.search(unless, alerts[name]["expr"]), name


def test_item_alerts_match_only_values_the_exporter_emits() -> None:
    for name, rule in _alert_rules().items():
        for metric, known in KNOWN_ITEM_VALUES.items():
            for label in ("status", "state"):
                for op, value in _matcher_values(rule["expr"], metric, label):
                    values = set(value.split("|")) if op in ("=~", "!~") else {value}
                    assert values <= known, f"{name}: {metric}{{{label}{op}{value!r}}}: unknown {values - known}"


def test_item_unhealthy_treats_irpending_and_workload_healthy_as_healthy() -> None:
    expr = _alert_rules()["AzureBackupItemUnhealthy"]["expr"]
    [(op, healthy)] = _matcher_values(expr, "azure_backup_item_health_status", "status")
    assert op == "!~" and {"Passed", "Healthy", "IRPending"} <= set(healthy.split("|"))
    assert ("=~", "ProtectionError|ConfiguringProtectionFailed") in _matcher_values(
        expr, "azure_backup_item_protection_state", "state")


def _matcher_matches(op: str, pattern: str, value: str) -> bool:
    full = re.fullmatch(pattern, value) is not None
    return {"=": value == pattern, "!=": value != pattern, "=~": full, "!~": not full}[op]


def _alerts_firing_on(vocabulary: Vocabulary, value: str) -> set[str]:
    """The alerts whose firing selectors of the family match `value` (alone: the age or operation they also ask
    for aside). The `unless` that skips items stopped on purpose skips a stopped state, and a Backup vault
    health that is a stopped state (the health keeps the state as sent, so the state is the same)."""
    stopped = set(STOPPED_STATES[vocabulary.vault_type])
    skipped = value in stopped and (vocabulary.label == "state" or vocabulary.vault_type == BACKUP)
    firing = set()
    for name, rule in _alert_rules().items():
        for op, pattern in _matcher_values(rule["expr"], vocabulary.spec.name, vocabulary.label):
            skips_stopped = op == "=~" and set(pattern.split("|")) == STOPPED_ON_PURPOSE
            if skips_stopped and name != "AzureBackupProtectionStopped":
                continue
            if _matcher_matches(op, pattern, value) and not (skipped and name in ALERTS_USING_STOPPED_STATES
                                                     and name != "AzureBackupProtectionStopped"):
                firing.add(name)
    return firing


@pytest.mark.parametrize("vocabulary", VOCABULARIES, ids=lambda v: f"{v.spec.name}-{v.vault_type}")
def test_the_vocabulary_table_says_what_the_rules_fire_on(vocabulary: Vocabulary) -> None:
    """Issue 17, point 6: the README's vocabulary table (exporter/vocabulary.py) cannot drift from the rules."""
    for value in vocabulary.values:
        assert _alerts_firing_on(vocabulary, value) == set(vocabulary.fires.get(value, ())), value
    assert set(vocabulary.fires) <= set(vocabulary.values)
    assert _alerts_firing_on(vocabulary, "AValueNobodyHasSeen") == set(vocabulary.other_fires)


def test_a_backup_vault_instance_in_transition_is_not_unhealthy() -> None:
    """Issue 17, point 5: configuring and updating are not problems; the problem states are."""
    [health] = [v for v in VOCABULARIES if v.spec.name == "azure_backup_item_health_status" and v.vault_type == BACKUP]
    [state] = [v for v in VOCABULARIES if v.spec.name == "azure_backup_item_protection_state"
               and v.vault_type == BACKUP]
    for transitional in ("ConfiguringProtection", "UpdatingProtection"):
        assert _alerts_firing_on(health, transitional) == _alerts_firing_on(state, transitional) == set()
    for problem in ("ProtectionError", "ConfiguringProtectionFailed"):
        assert _alerts_firing_on(state, problem) == {"AzureBackupItemUnhealthy"}
    assert _alerts_firing_on(state, "BackupsSuspended") == {"AzureBackupProtectionStopped"}
    # issue 18: an instance entering soft delete had its backup data deleted
    assert _alerts_firing_on(state, "SoftDeleted") == {"AzureBackupProtectionStopped", "AzureBackupDataDeletion"}


def _label_lists(expr: str) -> list[tuple[str, set[str]]]:
    """(keyword, labels) of every on/ignoring/by/without/group_left/group_right list of an expression."""
    return [(keyword, {label.strip() for label in labels.split(",") if label.strip()})
            for keyword, labels in re.findall(
                r"\b(on|ignoring|by|without|group_left|group_right)\s*\(([^)]*)\)", expr)]


def test_label_list_extraction() -> None:
    expr = "a unless ignoring (status) b < on (job, vault,\n  backup_item) group_left c"
    assert _label_lists(expr) == [("ignoring", {"status"}), ("on", {"job", "vault", "backup_item"})]


def test_item_joins_match_on_the_whole_item_identity() -> None:
    """Issue 10: an item is (backup_management_type, container, backup_item) in its vault. A join or
    grouping that names backup_item names all of it, so same-named items in two containers never
    meet; `ignoring` never drops a part of it."""
    identity = set(ITEM_LABELS)
    for name, rule in _alert_rules().items():
        for keyword, labels in _label_lists(rule["expr"]):
            if keyword in ("ignoring", "without"):
                assert not labels & identity, f"{name}: {keyword} ({', '.join(sorted(labels))}) drops item labels"
            elif "backup_item" in labels:
                assert identity <= labels, f"{name}: {keyword} (...) lacks {sorted(identity - labels)}"


def test_vault_joins_match_on_the_whole_vault_identity() -> None:
    """Issue 13: a vault is (subscription_id, resource_group, vault, vault_type); a Recovery Services vault
    and a Backup vault may share a name in one resource group. A join or grouping that names vault names
    all of it, so the two never merge; `ignoring` never drops a part of it."""
    identity = set(VAULT_LABELS)
    for name, rule in _alert_rules().items():
        for keyword, labels in _label_lists(rule["expr"]):
            if keyword in ("ignoring", "without"):
                assert not labels & identity, f"{name}: {keyword} ({', '.join(sorted(labels))}) drops vault labels"
            elif labels == {"job", "subscription_id", "vault_type"}:
                continue  # a subscription's listing of one kind of vault (discovery), not a vault
            elif labels & {"vault", "vault_type"}:
                assert identity <= labels, f"{name}: {keyword} (...) lacks {sorted(identity - labels)}"


def test_backups_are_every_operation_starting_with_backup() -> None:
    """Issue 10: Backup (Full), Backup (Log), ... are backups too; an exact operation="Backup" misses them."""
    alerts = _alert_rules()
    for name, rule in alerts.items():
        for metric in metric_names(rule["expr"]):
            for op, value in _matcher_values(rule["expr"], metric, "operation"):
                assert (op, value) != ("=", "Backup"), f'{name}: operation="Backup" misses workload backups'
    overtaken = _matcher_values(alerts["AzureBackupJobFailed"]["expr"],
                                "azure_backup_job_last_start_timestamp_seconds", "operation")
    assert overtaken == [("=~", "Backup.*")]


def _series_labels(series: str) -> tuple[str, set[str]]:
    """Metric name and label names of a promtool input series (a label set to "" counts as given)."""
    match = re.fullmatch(r"\s*([\w:]+)\s*(?:\{(.*)\})?\s*", series, flags=re.S)
    assert match, f"cannot read series {series!r}"
    return match.group(1), set(re.findall(r'(\w+)\s*=\s*"', match.group(2) or ""))


def test_promtool_inputs_carry_the_labels_the_exporter_emits() -> None:
    """The rule tests feed series with the catalogue's label sets (plus job and instance), so they
    exercise what Prometheus really stores: every item series has its container."""
    labels_of = {sample: set(spec.labels) for spec in CATALOGUE for sample in spec.sample_names()}
    checked = 0
    for path in RULE_TESTS:
        for case in _load(path)["tests"]:
            for series in case.get("input_series", []):
                metric, labels = _series_labels(series["series"])
                if metric not in labels_of:
                    continue
                checked += 1
                assert labels - {"job", "instance"} == labels_of[metric], (
                    f"{path.name}: {case['name']}: {metric} has {sorted(labels)}")
    assert checked


def test_every_alert_has_a_promtool_case_per_new_edge() -> None:
    """The issue-4 and issue-10 proof: the edge cases below exist as named promtool cases."""
    names = [case["name"] for path in RULE_TESTS for case in _load(path)["tests"]]
    wanted = {
        "item-derived last success fires": "AzureBackupNoRecentSuccessfulBackup fires from the item's own last backup",
        "stopped item does not fire": "AzureBackupNoRecentSuccessfulBackup skips items stopped on purpose",
        "health back to Passed resolves": "resolves when health is back to Passed",
        # issue 10: items are told apart by container, and every Backup* operation is a backup
        "same name in two containers": "Two items named master on two SQL instances of one vault alert apart",
        "stopped item in another container": "does not silence the same-named item in another",
        "failed log backup overtaken": "ignores a failed Backup (Log) that a successful log backup overtook",
        "empty container": "A job not joined to an item has an empty container",
        # alerts that page for every missed backup and for nothing else
        "weekly policy": "follows a weekly policy (quiet at 26 h and on day 3, firing after 7 d 2 h)",
        "4-hourly policy": "follows a 4-hourly policy (firing after 6 h)",
        "log backups stopped": "pages 1 h 15 min after a SQL database's log backups stopped",
        "no policy": "an item with no policy still pages at 26 h",
        "policy change": "follows a policy change",
        "overtaken by the same kind only": "is overtaken only by a success of the same kind, both ways",
        "every operation's kind": "maps every backup operation to its kind",
        "restart": "keeps one label set through an exporter restart on a new pod IP",
        "restore 24 h": "AzureBackupRestoreFailed not firing while the restore runs, firing once it failed, "
                        "resolves 24 hours after it started",
        "management job 24 h": "resolves 24 hours after the job started",
        "empty shard": "stays quiet for a shard without vaults",
        "never refreshed": "fires for a watched vault that never refreshed in an hour",
        "freshest replica": "takes the freshest refresh of any exporter replica",
        # issue 13: the two kinds of vault
        "two vaults of one name": "A Recovery Services vault and a Backup vault of one name in one resource group "
                                  "both fail and give two alerts each",
        "no join across vault kinds": "A success in the Backup vault does not overtake",
    }
    for what, fragment in wanted.items():
        assert any(fragment in name for name in names), f"no promtool case for: {what}"


def test_data_alerts_name_the_backup_not_the_exporter() -> None:
    """An exporter restarted on a new pod IP must not change a data alert's label set, nor resolve it:
    the expression aggregates by job and the labels naming the backup (no target label survives), the
    description never names the instance, and keep_firing_for bridges the minutes without series."""
    alerts = _alert_rules()
    for name in DATA_ALERTS:
        rule = alerts[name]
        assert rule.get("keep_firing_for") == "15m", f"{name}: a restart or a node outage would resolve it"
        assert "$labels.instance" not in rule["annotations"]["description"], name
        expr = rule["expr"]
        for label in TARGET_LABELS:
            assert not re.search(rf"\b{label}\b", expr), f"{name}: the expression names {label}"
        lists = _label_lists(expr)
        assert any(keyword == "by" for keyword, _ in lists), f"{name}: nothing aggregates the target labels away"
        for keyword, labels in lists:
            assert keyword not in ("ignoring", "without"), f"{name}: {keyword} (...) keeps the target labels"
            assert "job" in labels, f"{name}: {keyword} ({', '.join(sorted(labels))}) drops job"
    for name in EXPORTER_ALERTS:
        assert "keep_firing_for" not in alerts[name], f"{name} is about one exporter: it resolves at once"


def test_data_alert_cases_expect_no_target_labels() -> None:
    """promtool compares label sets exactly, so a firing case without `instance` proves the aggregation;
    every data alert has one."""
    proven: set[str] = set()
    for path in RULE_TESTS:
        for case in _load(path)["tests"]:
            for check in case.get("alert_rule_test", []):
                if check["alertname"] not in DATA_ALERTS:
                    continue
                for alert in check.get("exp_alerts") or []:
                    leaked = set(alert.get("exp_labels", {})) & set(TARGET_LABELS)
                    assert not leaked, f"{path.name}: {case['name']}: {check['alertname']} expects {sorted(leaked)}"
                    proven.add(check["alertname"])
    assert proven == DATA_ALERTS


def _shell_commands(text: str, prefix: str) -> list[str]:
    """Every command in the runbook's ```sh blocks that starts with `prefix`, continuation lines joined."""
    commands = []
    for block in re.findall(r"^\s*```sh\n(.*?)^\s*```", text, flags=re.M | re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        commands += [match.group(0) for match in re.finditer(rf"{re.escape(prefix)}\b[^\n]*", joined)]
    return commands


@pytest.mark.parametrize(("command", "required"), [
    ("az backup item show", {"--resource-group", "--vault-name", "--container-name", "--name"}),
    ("az backup item list", {"--resource-group", "--vault-name"}),
    ("az backup protection resume", {"--resource-group", "--vault-name", "--container-name", "--item-name",
                                     "--policy-name"}),
    ("az backup protection undelete", {"--resource-group", "--vault-name", "--container-name", "--item-name"}),
])
def test_runbook_az_backup_commands_have_their_required_flags(command: str, required: set[str]) -> None:
    commands = _shell_commands(RUNBOOK.read_text(encoding="utf-8"), command)
    assert commands, f"the runbook never shows {command}"
    allowed_types = {"AzureIaasVM", "AzureStorage", "AzureWorkload", "MAB", "TYPE"}
    for line in commands:
        flags = set(re.findall(r"(?<!\S)--[a-z-]+", line))
        assert required <= flags, f"{line!r} lacks {sorted(required - flags)}"
        for value in re.findall(r"--backup-management-type\s+(\S+)", line):
            assert value in allowed_types, f"{line!r}: the CLI does not accept {value}"


def test_item_alert_runbooks_show_the_item_commands_and_the_portal() -> None:
    text = RUNBOOK.read_text(encoding="utf-8")
    sections = dict(re.findall(r"^## (AzureBackup\w+)\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S))
    for name in ("AzureBackupItemUnhealthy", "AzureBackupProtectionStopped"):
        body = sections[name]
        assert "az backup item show" in body and "az backup item list" in body, name
        assert "Portal:" in body and "**Protected items > Backup items**" in body, name
