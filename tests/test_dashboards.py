"""Static proof for the Grafana dashboards in dashboards/ (no Grafana runs here).

- each dashboard validates in strict mode against a JSON Schema generated from @grafana/schema
  (tests/schemas/README.md says how it was made);
- the committed JSON is what dashboards/generate.py writes;
- portability: stable uids, tags, a `datasource` variable used by every panel and target, a `job`
  selector, chained subscription_id -> resource_group -> vault_type -> vault -> container -> backup_item
  variables;
- layout: unique panel ids, gridPos inside 24 columns and no overlaps;
- PromQL: every expression parses (`promtool check rules`), uses only metrics of the exporter's
  catalogue, never rate()s a gauge, and uses Grafana's intervals instead of fixed windows.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from exporter.catalogue import CATALOGUE, ITEM_LABELS, JOB_LABELS, VAULT_LABELS, sample_names

from .dashboard_queries import (
    BUILTIN_DEFAULTS,
    VARIABLE_RE,
    iter_panels,
    load_dashboards,
    metric_names,
    panel_queries,
    substitute,
)

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD_DIR = ROOT / "dashboards"
SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "grafana-dashboard.schema.json"
ALERT_RULES = ROOT / "alerts" / "azure-backup.rules.yml"
GENERATOR = DASHBOARD_DIR / "generate.py"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
EXPECTED_UIDS = {
    "azure-backup-overview.json": "azure-backup-overview",
    "azure-backup-item.json": "azure-backup-item",
    "azure-backup-exporter.json": "azure-backup-exporter",
}
# The panels issues 3 and 4 ask for, by dashboard (more may exist).
REQUIRED_PANELS = {
    "azure-backup-overview": {
        "Items by last backup status", "Failed now", "Running now", "Backup success ratio per vault",
        "Jobs finished per hour by status", "Backup items", "Backup job duration quantiles",
        "Data transferred per day",
        "Unprotected or unhealthy items", "Items by protection state", "Items by health",
        "Items and vaults by vault type",  # issue 13
        "Backup coverage per resource type", "Resources with no Azure Backup",  # issue 20, point 1
    },
    "azure-backup-item": {
        "Job status history", "Job duration", "Backup size", "Tasks of the latest job",
        "Protection state", "Health", "Policy", "Since last recovery point",
        "Expected backup interval", "Last successful backup by kind", "Backup due within",
    },
    "azure-backup-exporter": {
        "Vault refresh success", "Vault refresh duration", "Vault data age", "ARM requests by status code",
        "ARM request latency", "ARM throttling (HTTP 429)", "ARM rate-limit headroom", "Parse errors",
        "Prometheus scrape", "Build",
    },
}
# Issue 10: an item is (backup_management_type, container, backup_item) in its vault, so the container
# comes before the item. Issue 13: a vault is its name and its vault_type (a Recovery Services vault and a
# Backup vault may share a name), so the type comes before the vault.
CHAIN = ("subscription_id", "resource_group", "vault_type", "vault", "container", "backup_item")
# Every protected item is in azure_backup_item_info, with or without a job in the lookback window.
CHAIN_SOURCE = {"container": "azure_backup_item_info", "backup_item": "azure_backup_item_info"}
CHAIN_DEFAULT_SOURCE = "azure_backup_vault_info"
# Known values of the protected-item enums (healthStatus, protectedItemHealthStatus of workload items,
# protectionState), and those that count as fine on the "Unprotected or unhealthy items" stat (IRPending: the
# initial backup is pending, which is not unhealthy).
HEALTH_VALUES = ("Passed", "ActionRequired", "ActionSuggested", "Healthy", "Unhealthy", "NotReachable", "IRPending")
HEALTHY_VALUES = {"Passed", "Healthy", "IRPending", "ConfiguringProtection", "UpdatingProtection",
                  "RetentionSchedulesSuspended"}
PROTECTION_STATES = ("Protected", "ProtectionStopped", "ProtectionError", "ProtectionPaused", "IRPending",
                     "SoftDeleted", "BackupsSuspended")
PROTECTED_STATES = {"Protected", "IRPending", "ProtectionConfigured", "ConfiguringProtection", "UpdatingProtection"}
EXPECTED_CHAIN = {
    "azure-backup-overview": CHAIN,
    "azure-backup-item": CHAIN,
    "azure-backup-exporter": CHAIN[:4],
}
DEFAULT_JOB = "azure-backup-exporter"
GRID_COLUMNS = 24
# Functions that only make sense on counters (and the _bucket/_sum/_count of histograms).
COUNTER_FUNCTIONS = ("rate", "irate", "increase", "resets")
ALLOWED_RANGES = {"$__rate_interval", "$__interval", "$__range"}

DASHBOARDS = load_dashboards(DASHBOARD_DIR)
SAMPLE_TYPES = {sample: spec.type for spec in CATALOGUE for sample in spec.sample_names()}
SAMPLE_LABELS = {sample: set(spec.labels) for spec in CATALOGUE for sample in spec.sample_names()}


def dashboards() -> list[Any]:
    return [pytest.param(dashboard, id=name.removesuffix(".json")) for name, dashboard in DASHBOARDS.items()]


def query_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [panel for panel in iter_panels(dashboard) if panel["type"] != "row"]


def exprs(dashboard: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any], str]]:
    """(panel, target, raw expr) for every target."""
    return [(panel, target, target["expr"]) for panel in query_panels(dashboard)
            for target in panel.get("targets", [])]


def variables(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {variable["name"]: variable for variable in dashboard["templating"]["list"]}


def selectors(expr: str) -> list[tuple[str, str]]:
    """(metric name, matchers text) of every vector selector with braces."""
    return re.findall(r"([A-Za-z_:][\w:]*)\{([^}]*)\}", expr)


# --- schema ------------------------------------------------------------------------------------


def deepest(error: jsonschema.ValidationError) -> jsonschema.ValidationError:
    """The most specific cause of an anyOf failure, else all one learns is "not valid under any of
    the given schemas".

    At each anyOf, follow the branch that fits best: one whose discriminator (a `const` such as a
    row's `"type": "row"`) matched, then the one with the fewest errors; report its deepest error.
    """
    while error.context:
        branches: dict[Any, list[jsonschema.ValidationError]] = {}
        for sub in error.context:
            branches.setdefault(sub.relative_schema_path[0], []).append(sub)
        best = min(branches.values(),
                   key=lambda errors: (any(e.validator == "const" for e in errors), len(errors)))
        error = max(best, key=lambda e: len(e.absolute_path))
    return error


def schema_errors(dashboard: dict[str, Any]) -> list[str]:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema)
    messages = []
    for error in validator.iter_errors(dashboard):
        sub = deepest(error)
        path = "/".join(str(part) for part in sub.absolute_path) or "(root)"
        messages.append(f"{path}: {sub.message}")
    return messages


def test_every_expected_dashboard_is_there() -> None:
    assert set(DASHBOARDS) == set(EXPECTED_UIDS)


@pytest.mark.parametrize("dashboard", dashboards())
def test_dashboard_validates_against_grafana_schema_strictly(dashboard: dict[str, Any]) -> None:
    errors = schema_errors(dashboard)
    assert not errors, "\n".join(errors)


def test_schema_validation_reports_the_deepest_error() -> None:
    broken = copy.deepcopy(DASHBOARDS["azure-backup-overview.json"])
    broken["panels"][0]["gridPos"]["w"] = "six"
    broken["panels"][1]["bogus"] = True
    errors = schema_errors(broken)
    assert any(e.startswith("panels/0/gridPos/w: 'six' is not of type 'number'") for e in errors), errors
    assert any(e.startswith("panels/1") and "'bogus'" in e for e in errors), errors


# --- generator ----------------------------------------------------------------------------------


def run_generator(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(GENERATOR), *args], capture_output=True, text=True,
                          check=False, timeout=60)


def test_committed_json_is_what_the_generator_writes() -> None:
    result = run_generator("--check")
    assert result.returncode == 0, result.stderr


def test_generator_check_fails_on_drift_and_regenerates(tmp_path: Path) -> None:
    for name in EXPECTED_UIDS:
        shutil.copy(DASHBOARD_DIR / name, tmp_path / name)
    tampered = tmp_path / "azure-backup-item.json"
    tampered.write_text(tampered.read_text(encoding="utf-8").replace("Job duration", "Job durations"),
                        encoding="utf-8")
    result = run_generator("--check", "--dir", str(tmp_path))
    assert result.returncode == 1
    assert "azure-backup-item.json" in result.stderr
    assert run_generator("--dir", str(tmp_path)).returncode == 0
    assert run_generator("--check", "--dir", str(tmp_path)).returncode == 0
    assert tampered.read_bytes() == (DASHBOARD_DIR / "azure-backup-item.json").read_bytes()


# --- identity and portability -------------------------------------------------------------------


def test_uids_are_stable_and_unique() -> None:
    uids = {name: dashboard["uid"] for name, dashboard in DASHBOARDS.items()}
    assert uids == EXPECTED_UIDS
    titles = [dashboard["title"] for dashboard in DASHBOARDS.values()]
    assert len(set(titles)) == len(titles)


@pytest.mark.parametrize("dashboard", dashboards())
def test_tags_schema_version_and_links(dashboard: dict[str, Any]) -> None:
    assert dashboard["tags"] == ["azure", "azure-backup"]
    assert dashboard["schemaVersion"] >= 38  # Grafana 10.0 or later
    links = [link for link in dashboard["links"] if link["type"] == "dashboards"]
    assert links and all("azure-backup" in link["tags"] and link["includeVars"] and link["keepTime"]
                         for link in links)


@pytest.mark.parametrize("dashboard", dashboards())
def test_every_panel_and_target_uses_the_datasource_variable(dashboard: dict[str, Any]) -> None:
    datasource = variables(dashboard)["datasource"]
    assert datasource["type"] == "datasource"
    assert datasource["query"] == "prometheus"
    panels = query_panels(dashboard)
    assert panels
    for panel in panels:
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, (panel["title"], target["refId"])
    for variable in variables(dashboard).values():
        if variable["type"] == "query":
            assert variable["datasource"] == DATASOURCE, variable["name"]


@pytest.mark.parametrize("dashboard", dashboards())
def test_job_variable_defaults_to_the_exporter_job_and_every_selector_uses_it(
        dashboard: dict[str, Any]) -> None:
    job = variables(dashboard)["job"]
    assert job["type"] in {"textbox", "constant", "custom", "query"}
    assert job["current"]["value"] == DEFAULT_JOB
    for panel, _, expr in exprs(dashboard):
        assert not re.search(r"(?<![\w:])(azure_backup_\w+|up)(?![\w{(])", expr), (
            f"{panel['title']}: selector without braces in {expr}")
        for metric, matchers in selectors(expr):
            assert 'job="$job"' in matchers, f"{panel['title']}: {metric} without the job selector"


@pytest.mark.parametrize("dashboard", dashboards())
def test_variable_chain(dashboard: dict[str, Any]) -> None:
    defined = variables(dashboard)
    names = list(defined)
    chain = EXPECTED_CHAIN[dashboard["uid"]]
    assert names == ["datasource", "job", *chain]
    for position, name in enumerate(chain):
        variable = defined[name]
        assert variable["type"] == "query"
        assert variable["refresh"] in {1, 2}
        match = re.fullmatch(r"label_values\((\w+)\{(.*)\},\s*(\w+)\)", variable["query"])
        assert match, variable["query"]
        metric, matchers, label = match.groups()
        assert label == name
        assert metric == CHAIN_SOURCE.get(name, CHAIN_DEFAULT_SOURCE), variable["query"]
        assert name in SAMPLE_LABELS[metric]
        used = dict(re.findall(r'(\w+)=~?"\$(\w+)"', matchers))
        assert used == {"job": "job", **{parent: parent for parent in chain[:position]}}, variable["query"]
        if variable["multi"]:
            assert variable["includeAll"] and variable["allValue"] == ".*"


@pytest.mark.parametrize("dashboard", dashboards())
def test_variables_filter_every_query(dashboard: dict[str, Any]) -> None:
    """A metric carrying a chained label is always filtered by that variable (=~ when multi)."""
    defined = variables(dashboard)
    chain = EXPECTED_CHAIN[dashboard["uid"]]
    for panel, _, expr in exprs(dashboard):
        for metric, matchers in selectors(expr):
            for name in chain:
                if name not in SAMPLE_LABELS.get(metric, set()):
                    continue
                operator = "=~" if defined[name]["multi"] else "="
                assert f'{name}{operator}"${name}"' in matchers, f"{panel['title']}: {metric} not filtered by ${name}"


@pytest.mark.parametrize("dashboard", dashboards())
def test_every_variable_used_is_defined(dashboard: dict[str, Any]) -> None:
    defined = set(variables(dashboard)) | set(BUILTIN_DEFAULTS)
    for panel, _, expr in exprs(dashboard):
        used = {m.group(1) or m.group(2) or m.group(3) for m in VARIABLE_RE.finditer(expr)}
        assert used <= defined, f"{panel['title']}: {used - defined}"


# --- layout -------------------------------------------------------------------------------------


@pytest.mark.parametrize("dashboard", dashboards())
def test_panel_ids_are_unique(dashboard: dict[str, Any]) -> None:
    ids = [panel["id"] for panel in iter_panels(dashboard)]
    assert all(isinstance(panel_id, int) and panel_id > 0 for panel_id in ids)
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("dashboard", dashboards())
def test_grid_positions_fit_in_24_columns_without_overlap(dashboard: dict[str, Any]) -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in iter_panels(dashboard):
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["y"] >= 0 and pos["w"] >= 1 and pos["h"] >= 1, panel["title"]
        assert pos["x"] + pos["w"] <= GRID_COLUMNS, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


@pytest.mark.parametrize("dashboard", dashboards())
def test_required_panels_are_present(dashboard: dict[str, Any]) -> None:
    titles = [panel["title"] for panel in query_panels(dashboard)]
    assert len(titles) == len(set(titles))
    assert REQUIRED_PANELS[dashboard["uid"]] <= set(titles)


@pytest.mark.parametrize("dashboard", dashboards())
def test_tables_merge_instant_table_queries(dashboard: dict[str, Any]) -> None:
    for panel in query_panels(dashboard):
        if panel["type"] != "table":
            continue
        assert all(t["format"] == "table" and t["instant"] and not t["range"] for t in panel["targets"])
        transformations = [t["id"] for t in panel.get("transformations", [])]
        if len(panel["targets"]) > 1:
            assert transformations[0] == "merge", panel["title"]


def test_overview_table_links_each_item_to_the_item_dashboard() -> None:
    overview = DASHBOARDS["azure-backup-overview.json"]
    item = DASHBOARDS["azure-backup-item.json"]
    table = next(p for p in query_panels(overview) if p["title"] == "Backup items")
    item_column = next(o for o in table["fieldConfig"]["overrides"] if o["matcher"]["options"] == "backup_item")
    (links,) = [p["value"] for p in item_column["properties"] if p["id"] == "links"]
    (url,) = [link["url"] for link in links]
    assert url.startswith(f"/d/{item['uid']}/")
    assert "${__url_time_range}" in url and "${datasource:queryparam}" in url and "${job:queryparam}" in url
    first = table["targets"][0]["expr"]
    for name in CHAIN:
        assert f"var-{name}=${{__data.fields.{name}:percentencode}}" in url
        assert name in variables(item)
        assert re.search(rf"by \([^)]*\b{name}\b", first), f"{name} is not a column of the table"


def grouping(expr: str) -> list[str]:
    """Labels of the first `by (...)` of an expression: the columns its table query yields."""
    match = re.search(r"\bby \(([^)]*)\)", expr)
    assert match, expr
    return [label.strip() for label in match.group(1).split(",")]


@pytest.mark.parametrize("dashboard", dashboards())
def test_merged_table_queries_share_their_keys_and_never_their_other_columns(dashboard: dict[str, Any]) -> None:
    """Grafana's merge joins rows on the columns every query has; a label column that two queries add
    on top (say `status` of a job and of an item's health) would land in one column and mix them up."""
    for panel in query_panels(dashboard):
        if panel["type"] != "table" or len(panel["targets"]) < 2:
            continue
        columns = [grouping(t["expr"]) for t in panel["targets"]]
        shared = set.intersection(*(set(c) for c in columns))
        assert shared, panel["title"]
        seen: dict[str, str] = {}
        for target, labels in zip(panel["targets"], columns, strict=True):
            for label in set(labels) - shared:
                assert label not in seen, (
                    f"{panel['title']}: column {label} from queries {seen[label]} and {target['refId']}")
                seen[label] = target["refId"]


def overrides_by_column(panel: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {o["matcher"]["options"]: {p["id"]: p["value"] for p in o["properties"]}
            for o in panel["fieldConfig"]["overrides"]}


def mapped_values(mappings: list[dict[str, Any]]) -> set[str]:
    return {value for mapping in mappings if mapping["type"] == "value" for value in mapping["options"]}


def test_overview_table_lists_every_protected_item_with_health_protection_and_recovery_point() -> None:
    overview = DASHBOARDS["azure-backup-overview.json"]
    table = next(p for p in query_panels(overview) if p["title"] == "Backup items")
    targets = {t["refId"]: t["expr"] for t in table["targets"]}
    # The item list comes from the protected-items list, so items without a job in the window have a row;
    # every other query joins in on the item's labels.
    assert metric_names(targets["A"]) == {"azure_backup_item_info"}
    for ref, expr in targets.items():
        assert set(ITEM_LABELS) <= set(grouping(expr)), f"query {ref} does not keep the item labels"
    columns = overrides_by_column(table)
    organize = next(t["options"] for t in table["transformations"] if t["id"] == "organize")
    shown = [name for name in sorted(organize["indexByName"], key=organize["indexByName"].get)
             if not organize["excludeByName"].get(name)]

    def column_of(metric: str) -> str:
        (ref,) = [ref for ref, expr in targets.items() if metric_names(expr) == {metric}]
        return f"Value #{ref}"

    expected = {
        "state": "Protection state", "health": "Health", "status": "Last status",
        column_of("azure_backup_last_successful_backup_timestamp_seconds"): "Last success age",
        column_of("azure_backup_item_last_recovery_point_timestamp_seconds"): "Last recovery point age",
    }
    for name, title in expected.items():
        assert columns[name]["displayName"] == title
        assert name in shown, f"{title} is hidden"
    assert "azure_backup_item_protection_state" in metric_names(targets[next(
        ref for ref, expr in targets.items() if "state" in grouping(expr))])
    assert "azure_backup_item_health_status" in metric_names(targets[next(
        ref for ref, expr in targets.items() if "health" in grouping(expr))])
    assert columns[column_of("azure_backup_item_last_recovery_point_timestamp_seconds")]["unit"] == "s"
    assert mapped_values(columns["state"]["mappings"]) >= set(PROTECTION_STATES)
    assert mapped_values(columns["health"]["mappings"]) >= set(HEALTH_VALUES)


def test_unprotected_or_unhealthy_stat_counts_each_item_once() -> None:
    overview = DASHBOARDS["azure-backup-overview.json"]
    stat = next(p for p in query_panels(overview) if p["title"] == "Unprotected or unhealthy items")
    (target,) = stat["targets"]
    expr = target["expr"]
    assert metric_names(expr) == {"azure_backup_item_protection_state", "azure_backup_item_health_status"}
    assert expr.startswith("count(") and expr.endswith(" or vector(0)"), "no value instead of 0 when all is well"
    for labels in re.findall(r"max by \(([^)]*)\)", expr):
        assert [label.strip() for label in labels.split(",")] == list(ITEM_LABELS)
    (states,) = re.findall(r'azure_backup_item_protection_state\{[^}]*state!~"([^"]*)"', expr)
    (health,) = re.findall(r'azure_backup_item_health_status\{[^}]*status!~"([^"]*)"', expr)
    assert set(states.split("|")) == PROTECTED_STATES
    assert set(health.split("|")) == HEALTHY_VALUES


def alert_expr(name: str) -> str:
    rules = yaml.safe_load(ALERT_RULES.read_text(encoding="utf-8"))
    (expr,) = [rule["expr"] for group in rules["groups"] for rule in group["rules"] if rule.get("alert") == name]
    return str(expr)


def regex_values(pattern: str, expr: str) -> set[str]:
    (values,) = set(re.findall(pattern, expr))
    return set(values.split("|"))


def normalised(expr: str) -> str:
    """PromQL without its layout: one space between tokens, none just inside parentheses."""
    text = re.sub(r"\s+", " ", expr.strip())
    return re.sub(r" \)", ")", re.sub(r"\( ", "(", text))


# The dashboards' filters next to the job selector: the overview's multi-value variables, the item
# dashboard's single item.
ALERT_JOB = f'job="{DEFAULT_JOB}"'
OVERVIEW_FILTERS = ('job="$job", subscription_id=~"$subscription_id", resource_group=~"$resource_group", '
                    'vault_type=~"$vault_type", vault=~"$vault", container=~"$container", backup_item=~"$backup_item"')
ITEM_FILTERS = ('job="$job", subscription_id=~"$subscription_id", resource_group=~"$resource_group", '
                'vault_type="$vault_type", vault="$vault", container="$container", backup_item="$backup_item"')
# AzureBackupNoRecentSuccessfulBackup, normalised: per kind, the age of the last success > the allowed age
# (interval plus clamped grace), or without an interval, the age of the last success of any kind > the
# fallback; unless stopped on purpose.
OVERDUE_SHAPE = re.compile(
    r"\(\((?P<age_by_kind>time\(\) - .+?)\) > on \((?P<kind_key>[^)]*)\) \((?P<allowed>.+)\) or "
    r"\(\((?P<watched>.+? \+ time\(\))\) > on \((?P=kind_key)\) \((?P=allowed)\) "
    r"(?P<no_success>unless on \((?P=kind_key)\) [\w:]+\{[^}]*\})\) or "
    r"\(\((?P<age>time\(\) - .+?) > (?P<fallback>[^)]+)\) unless on \((?P<item_key>[^)]*)\) "
    r"(?P<no_interval>[\w:]+\{[^}]*\})\)\) unless on \((?P=item_key)\) \((?P<stopped>[^()]*)\)")


def overdue_pieces(filters: str) -> dict[str, str]:
    """AzureBackupNoRecentSuccessfulBackup's expression (`alert`) and its pieces, normalised, with a
    dashboard's filters in place of the rule's job selector."""
    alert = normalised(alert_expr("AzureBackupNoRecentSuccessfulBackup")).replace(ALERT_JOB, filters)
    match = OVERDUE_SHAPE.fullmatch(alert)
    assert match, f"AzureBackupNoRecentSuccessfulBackup changed shape; update the dashboards and this test:\n{alert}"
    return {"alert": alert, **match.groupdict()}


def test_overdue_pieces_follow_the_rule_header() -> None:
    """The pieces are what the rule file's header documents: interval plus a grace clamped to 1..2 h, 26 h
    without an interval, per kind and per item."""
    pieces = overdue_pieces(OVERVIEW_FILTERS)
    interval = (f"max by ({pieces['kind_key']}) "
                f"(azure_backup_item_expected_backup_interval_seconds{{{OVERVIEW_FILTERS}}})")
    assert pieces["allowed"] == f"{interval} + clamp({interval} / 2, 3600, 7200)"
    assert pieces["fallback"] == "26 * 3600"
    assert [label.strip() for label in pieces["kind_key"].split(",")] == ["job", *ITEM_LABELS, "kind"]
    assert [label.strip() for label in pieces["item_key"].split(",")] == ["job", *ITEM_LABELS]
    assert metric_names(pieces["age_by_kind"]) == {"azure_backup_last_successful_backup_by_kind_timestamp_seconds"}
    assert metric_names(pieces["age"]) == {"azure_backup_last_successful_backup_timestamp_seconds"}


def test_overview_stats_count_what_the_alerts_fire_on() -> None:
    """The stats that name an alert use the alert's own expression, or its lists of stopped states and
    healthy values."""
    overview = DASHBOARDS["azure-backup-overview.json"]
    stats = {p["title"]: p["targets"][0]["expr"] for p in query_panels(overview)}
    stopped_pattern = r'azure_backup_item_protection_state\{[^}]*state=~"([^"]*)"'
    stopped = regex_values(stopped_pattern, alert_expr("AzureBackupProtectionStopped"))
    overdue_alert = alert_expr("AzureBackupNoRecentSuccessfulBackup")
    overdue = stats["Overdue items (past their policy's interval)"]
    assert regex_values(stopped_pattern, overdue_alert) == stopped
    assert regex_values(stopped_pattern, overdue) == stopped
    # The rule's expression itself, counted once per item (without job and kind), 0 when none is overdue.
    alert = overdue_pieces(OVERVIEW_FILTERS)["alert"]
    assert normalised(overdue) == f"count(group by ({', '.join(ITEM_LABELS)}) ({alert})) or vector(0)"
    healthy_pattern = r'azure_backup_item_health_status\{[^}]*status!~"([^"]*)"'
    assert regex_values(healthy_pattern, alert_expr("AzureBackupItemUnhealthy")) == HEALTHY_VALUES
    assert regex_values(healthy_pattern, stats["Unprotected or unhealthy items"]) == HEALTHY_VALUES


def test_item_dashboard_shows_protection_health_policy_and_recovery_point() -> None:
    item = DASHBOARDS["azure-backup-item.json"]
    panels = {p["title"]: p for p in query_panels(item)}
    expected = {
        "Protection state": "azure_backup_item_protection_state",
        "Health": "azure_backup_item_health_status",
        "Policy": "azure_backup_item_info",
        "Since last recovery point": "azure_backup_item_last_recovery_point_timestamp_seconds",
    }
    for title, metric in expected.items():
        (target,) = panels[title]["targets"]
        assert metric_names(target["expr"]) == {metric}, title
    assert "policy" in grouping(panels["Policy"]["targets"][0]["expr"])
    colored = {o["matcher"]["options"] for o in panels["Protection state"]["fieldConfig"]["overrides"]}
    assert colored >= set(PROTECTION_STATES)
    colored = {o["matcher"]["options"] for o in panels["Health"]["fieldConfig"]["overrides"]}
    assert colored >= set(HEALTH_VALUES)
    # An item without a job in the lookback window still shows a last backup status: Azure's own.
    (status,) = panels["Last backup status"]["targets"]
    assert metric_names(status["expr"]) == {"azure_backup_job_last_status", "azure_backup_item_last_backup_status",
                                            "azure_backup_job_last_start_timestamp_seconds"}
    assert "\nor on ()\n" in status["expr"]


def test_item_dashboard_shows_the_policy_interval_and_the_last_success_of_each_kind() -> None:
    """What AzureBackupNoRecentSuccessfulBackup compares: per kind, the policy's interval and the age of the
    last successful backup of that kind."""
    item = DASHBOARDS["azure-backup-item.json"]
    panels = {p["title"]: p for p in query_panels(item)}
    expected = {
        "Expected backup interval": "azure_backup_item_expected_backup_interval_seconds",
        "Last successful backup by kind": "azure_backup_last_successful_backup_by_kind_timestamp_seconds",
    }
    for title, metric in expected.items():
        panel = panels[title]
        (target,) = panel["targets"]
        assert metric_names(target["expr"]) == {metric}, title
        assert grouping(target["expr"]) == ["kind"] and target["legendFormat"] == "{{kind}}", title
        assert panel["fieldConfig"]["defaults"]["unit"] == "s", title
    assert panels["Last successful backup by kind"]["targets"][0]["expr"].startswith("time() - max by (kind) (")
    for metric in expected.values():
        assert "kind" in SAMPLE_LABELS[metric]
    alert = alert_expr("AzureBackupNoRecentSuccessfulBackup")
    assert set(expected.values()) <= metric_names(alert), "the panels show what the alert compares"


def thresholds_of(panel: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The threshold steps of a panel's defaults ("") and of each overridden column."""
    found = {"": panel["fieldConfig"]["defaults"].get("thresholds", {}).get("steps", [])}
    for override in panel["fieldConfig"]["overrides"]:
        for prop in override["properties"]:
            if prop["id"] == "thresholds":
                found[override["matcher"]["options"]] = prop["value"]["steps"]
    return found


def test_overview_table_colours_each_item_by_its_own_policy() -> None:
    """The Overdue column: per item, the largest age of a last success over what the rule allows it (the
    rule's own pieces), red from 1, where AzureBackupNoRecentSuccessfulBackup fires."""
    overview = DASHBOARDS["azure-backup-overview.json"]
    table = next(p for p in query_panels(overview) if p["title"] == "Backup items")
    columns = overrides_by_column(table)
    (ref,) = [ref for ref, column in ((c.removeprefix("Value #"), v) for c, v in columns.items())
              if column.get("displayName") == "Overdue"]
    expr = normalised(next(t["expr"] for t in table["targets"] if t["refId"] == ref))
    p = overdue_pieces(OVERVIEW_FILTERS)
    ratio = (f"(({p['age_by_kind']}) / on ({p['kind_key']}) ({p['allowed']}) or "
             f"(({p['watched']}) / on ({p['kind_key']}) ({p['allowed']}) {p['no_success']}) or "
             f"(({p['age']}) / ({p['fallback']}) unless on ({p['item_key']}) {p['no_interval']})) "
             f"unless on ({p['item_key']}) ({p['stopped']})")
    assert expr == f"max by ({', '.join(ITEM_LABELS)}) ({ratio})"
    assert thresholds_of(table)[f"Value #{ref}"] == [{"color": "green", "value": None}, {"color": "red", "value": 1}]
    assert columns[f"Value #{ref}"]["unit"] == "percentunit"
    assert table["options"]["sortBy"] == [{"desc": True, "displayName": "Overdue"}]


def test_item_dashboard_counts_down_to_the_alert() -> None:
    """Backup due within: per kind, the rule's allowed age minus the age of the last success, red below 0."""
    item = DASHBOARDS["azure-backup-item.json"]
    panel = next(p for p in query_panels(item) if p["title"] == "Backup due within")
    (target,) = panel["targets"]
    p = overdue_pieces(ITEM_FILTERS)
    due = (f"(({p['allowed']}) - on ({p['kind_key']}) ({p['age_by_kind']}) or "
           f"(({p['allowed']}) - on ({p['kind_key']}) ({p['watched']}) {p['no_success']}) or "
           f"label_replace({p['fallback']} - ({p['age']}) unless on ({p['item_key']}) {p['no_interval']}, "
           '"kind", "any kind", "kind", "")) '
           f"unless on ({p['item_key']}) ({p['stopped']})")
    assert normalised(target["expr"]) == f"min by (kind) ({due})"
    assert target["legendFormat"] == "{{kind}}"
    assert panel["fieldConfig"]["defaults"]["unit"] == "s"
    assert thresholds_of(panel)[""] == [{"color": "red", "value": None}, {"color": "green", "value": 0}]


@pytest.mark.parametrize("dashboard", dashboards())
def test_no_age_is_coloured_by_a_fixed_26_hours(dashboard: dict[str, Any]) -> None:
    """26 h is the rule's threshold only for items without a policy interval: a weekly item is not overdue
    at 26 h, a SQL log backup is long overdue before."""
    for panel in query_panels(dashboard):
        for column, steps in thresholds_of(panel).items():
            assert 26 * 3600 not in [step["value"] for step in steps], f"{panel['title']} {column}"


def test_rate_limit_panel_shows_the_lowest_headroom_per_subscription() -> None:
    exporter = DASHBOARDS["azure-backup-exporter.json"]
    panel = next(p for p in query_panels(exporter) if p["title"] == "ARM rate-limit headroom")
    (target,) = panel["targets"]
    assert target["expr"].startswith("min by (subscription_id) (azure_backup_api_ratelimit_remaining{")
    assert target["legendFormat"] == "{{subscription_id}}"
    assert "subscription_id" in SAMPLE_LABELS["azure_backup_api_ratelimit_remaining"]


def test_item_groupings_keep_the_whole_item_identity() -> None:
    """Issue 10: grouping or joining by backup_item without container would merge same-named items of two
    containers (master on every SQL instance) into one row or one value."""
    for name, dashboard in DASHBOARDS.items():
        for panel, _, expr in exprs(dashboard):
            for keyword, labels in re.findall(r"\b(by|on|ignoring|without)\s*\(([^)]*)\)", expr):
                names = {label.strip() for label in labels.split(",")}
                if keyword in ("ignoring", "without"):
                    assert not names & set(ITEM_LABELS), f"{name} / {panel['title']}: {keyword} ({labels})"
                elif "backup_item" in names:
                    assert set(ITEM_LABELS) <= names, f"{name} / {panel['title']}: {keyword} ({labels})"


def test_vault_groupings_keep_the_whole_vault_identity() -> None:
    """Issue 13: grouping or joining by vault without vault_type would merge a Recovery Services vault and a
    Backup vault of one name into one row, one value or one legend entry."""
    identity = set(VAULT_LABELS)
    for name, dashboard in DASHBOARDS.items():
        for panel, target, expr in exprs(dashboard):
            for keyword, labels in re.findall(r"\b(by|on|ignoring|without)\s*\(([^)]*)\)", expr):
                names = {label.strip() for label in labels.split(",")}
                if keyword in ("ignoring", "without"):
                    assert not names & identity, f"{name} / {panel['title']}: {keyword} ({labels})"
                elif "vault" in names:
                    assert identity <= names, f"{name} / {panel['title']}: {keyword} ({labels})"
            if "{{vault}}" in target.get("legendFormat", ""):
                assert "{{vault_type}}" in target["legendFormat"], f"{name} / {panel['title']}: legend"


def test_overview_breaks_items_and_vaults_down_by_vault_type() -> None:
    overview = DASHBOARDS["azure-backup-overview.json"]
    panel = next(p for p in query_panels(overview) if p["title"] == "Items and vaults by vault type")
    counted = {metric_names(t["expr"]).pop(): t for t in panel["targets"]}
    assert set(counted) == {"azure_backup_item_info", "azure_backup_vault_info"}
    for target in counted.values():
        assert grouping(target["expr"]) == ["vault_type"] and "{{vault_type}}" in target["legendFormat"]


# Panels about an item's latest backup: of its Backup* operations (Backup (Full), Backup (Log), ...), they take
# the one that started last, so a SQL database is one row and one status, not one per operation.
LATEST_BACKUP_PANELS = {
    "azure-backup-overview.json": {"Items by last backup status", "Backup items"},
    "azure-backup-item.json": {"Last backup status", "Last backup duration", "Last backup size"},
}
LATEST_BACKUP = (f"and on ({', '.join(ITEM_LABELS)}, operation)\n"
                 f"topk by ({', '.join(ITEM_LABELS)}) (1, azure_backup_job_last_start_timestamp_seconds{{")


@pytest.mark.parametrize("dashboard", dashboards())
def test_backups_are_every_operation_starting_with_backup(dashboard: dict[str, Any]) -> None:
    """Issue 10: workload items run Backup (Full), Backup (Log), ...; operation="Backup" would miss them."""
    start = "azure_backup_job_last_start_timestamp_seconds"  # its max is the latest backup anyway
    job_metrics = {s for spec in CATALOGUE if set(JOB_LABELS) <= set(spec.labels) for s in spec.sample_names()}
    latest: set[str] = set()
    for panel, _, expr in exprs(dashboard):
        for metric, matchers in selectors(expr):
            operations = re.findall(r'\boperation\s*(=~|=|!=|!~)\s*"([^"]*)"', matchers)
            assert ("=", "Backup") not in operations, f'{panel["title"]}: {metric} with operation="Backup"'
            if ("=~", "Backup.*") in operations and metric in job_metrics - {start}:
                assert LATEST_BACKUP in expr, f"{panel['title']}: {metric} not narrowed to the latest backup"
                latest.add(panel["title"])
    assert latest == LATEST_BACKUP_PANELS.get(f"{dashboard['uid']}.json", set())


# --- PromQL -------------------------------------------------------------------------------------


def promtool() -> str:
    path = shutil.which("promtool") or ("/usr/bin/promtool" if Path("/usr/bin/promtool").exists() else None)
    if path is None:
        pytest.fail("promtool not found: install Debian's `prometheus` package "
                    "(apt-get install -y --no-install-recommends prometheus); the PromQL check needs it")
    return path


def check_with_promtool(tmp_path: Path, records: list[tuple[str, str]]) -> subprocess.CompletedProcess[str]:
    """Write the expressions as recording rules (JSON is YAML) and run `promtool check rules`."""
    rules = {"groups": [{"name": "dashboards",
                         "rules": [{"record": record, "expr": expr} for record, expr in records]}]}
    path = tmp_path / "dashboard-queries.rules.json"
    path.write_text(json.dumps(rules, indent=1), encoding="utf-8")
    return subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True, text=True,
                          check=False, timeout=60)


def static_values(dashboard: dict[str, Any]) -> dict[str, str]:
    """Every variable as a placeholder, Grafana's intervals as 5m."""
    values = {name: "placeholder" for name in variables(dashboard)}
    return {**values, "__rate_interval": "5m", "__interval": "5m", "__range": "5m"}


@pytest.mark.parametrize("dashboard", dashboards())
def test_every_expression_parses_with_promtool(dashboard: dict[str, Any], tmp_path: Path) -> None:
    values = static_values(dashboard)
    records = []
    for panel, target, expr in exprs(dashboard):
        record = f"dashboard:{dashboard['uid'].replace('-', '_')}:panel{panel['id']}_{target['refId']}"
        records.append((record, substitute(expr, values)))
    result = check_with_promtool(tmp_path, records)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(records)} rules found" in result.stdout


def test_promtool_check_rejects_a_broken_expression(tmp_path: Path) -> None:
    result = check_with_promtool(tmp_path, [("dashboard:broken", "sum(rate(azure_backup_up[5m])")])
    assert result.returncode == 1
    assert "dashboard:broken" in result.stdout + result.stderr


@pytest.mark.parametrize("dashboard", dashboards())
def test_every_metric_is_in_the_exporter_catalogue(dashboard: dict[str, Any]) -> None:
    known = sample_names() | {"up"}
    used: set[str] = set()
    for panel, _, expr in exprs(dashboard):
        names = metric_names(expr)
        assert names, f"{panel['title']}: no metric in {expr}"
        assert names <= known, f"{panel['title']}: unknown {sorted(names - known)}"
        used |= names
    for variable in variables(dashboard).values():
        if variable["type"] == "query":
            metric = re.match(r"label_values\((\w+)", variable["query"])
            assert metric and metric.group(1) in known, variable["name"]


def test_metric_name_extraction() -> None:
    assert metric_names(
        'sum by (le, vault) (rate(foo_bucket{job="$job", a=~"x|y"}[$__rate_interval])) / on (vault) '
        "group_left (location) bar_info or vector(0) > 0.5e3 and time() - baz offset 5m") == {
            "foo_bucket", "bar_info", "baz"}
    assert metric_names('max by (vault) (azure_backup_vault_info{job="$job", vault=~"a.b"})') == {
        "azure_backup_vault_info"}
    assert metric_names("count(up == 0) unless on() absent(azure_typo_metric)") == {"up", "azure_typo_metric"}


@pytest.mark.parametrize("dashboard", dashboards())
def test_counter_functions_only_apply_to_counters_and_histograms(dashboard: dict[str, Any]) -> None:
    pattern = re.compile(rf"\b({'|'.join(COUNTER_FUNCTIONS)})\(\s*([A-Za-z_:][\w:]*)")
    for panel, _, expr in exprs(dashboard):
        for function, metric in pattern.findall(expr):
            assert SAMPLE_TYPES.get(metric) in {"counter", "histogram"}, (
                f"{panel['title']}: {function}() of {metric}, a {SAMPLE_TYPES.get(metric, 'gauge')}")
        for match in re.finditer(r"\b(\w+_bucket)\{", expr):
            assert "histogram_quantile(" in expr, f"{panel['title']}: {match.group(1)} outside a quantile"
            assert SAMPLE_TYPES.get(match.group(1)) == "histogram"


@pytest.mark.parametrize("dashboard", dashboards())
def test_ranges_use_grafana_intervals(dashboard: dict[str, Any]) -> None:
    """rate() over $__rate_interval; fixed buckets over $__interval with the panel's minimum
    interval set; totals over $__range. No hard-coded windows."""
    for panel, _, expr in exprs(dashboard):
        for window in re.findall(r"\[([^\]]*)\]", expr):
            assert window in ALLOWED_RANGES, f"{panel['title']}: [{window}]"
        for window in re.findall(r"\b(?:rate|irate)\([^\[]*\[([^\]]*)\]", expr):
            assert window == "$__rate_interval", f"{panel['title']}: rate over [{window}]"
        if "$__interval" in expr:
            assert panel.get("interval"), f"{panel['title']}: $__interval without a panel interval"


# --- the helper for the end-to-end test ---------------------------------------------------------


def test_panel_queries_substitutes_every_variable() -> None:
    dashboard = DASHBOARDS["azure-backup-overview.json"]
    values = {"datasource": "prom", "job": DEFAULT_JOB, "subscription_id": ".*", "resource_group": ".*",
              "vault_type": ".*", "vault": "vault-1", "container": ".*", "backup_item": ".*"}
    queries = panel_queries(dashboard, values)
    assert len(queries) == len(exprs(dashboard))
    titles = {title for title, _ in queries}
    assert titles == {panel["title"] for panel in query_panels(dashboard)}
    for title, expr in queries:
        assert "$" not in expr and "[[" not in expr, (title, expr)
        assert f'job="{DEFAULT_JOB}"' in expr
    per_day = [expr for title, expr in queries if title == "Data transferred per day"]
    assert per_day and all("[1d]" in expr for expr in per_day)
    overridden = panel_queries(dashboard, {**values, "__interval": "1m"})
    assert all("[1d]" not in expr for _, expr in overridden)
    with pytest.raises(ValueError, match="backup_item"):
        panel_queries(dashboard, {k: v for k, v in values.items() if k != "backup_item"})


# --- provisioning -------------------------------------------------------------------------------


def test_provisioning_files() -> None:
    provider = yaml.safe_load((DASHBOARD_DIR / "provisioning/dashboards/azure-backup.yml").read_text())
    (entry,) = provider["providers"]
    assert provider["apiVersion"] == 1 and entry["type"] == "file"
    path = entry["options"]["path"]
    readme = (DASHBOARD_DIR / "README.md").read_text(encoding="utf-8")
    assert path in readme, "dashboards/README.md must say where the JSON files go"
    datasources = yaml.safe_load((DASHBOARD_DIR / "provisioning/datasources/prometheus.yml").read_text())
    (datasource,) = datasources["datasources"]
    assert datasource["type"] == "prometheus" and datasource["uid"]
