#!/usr/bin/env python3
"""Generate the Grafana dashboards of azure-backup-exporter.

Plain Python, no dependency: every dashboard is a dict written as JSON with sorted keys, two-space
indentation and a final newline, so the output is byte-stable and reviewable in a diff.

    python dashboards/generate.py            # rewrite dashboards/*.json
    python dashboards/generate.py --check    # exit 1 if the committed JSON is not what this generates

The JSON follows the classic (v1) dashboard model of Grafana 10 and later (schemaVersion 39) and
validates in strict mode against the schema in tests/schemas/ (see tests/test_dashboards.py).

Conventions every dashboard follows (and the tests check):
- a `datasource` variable of type prometheus used by every panel and every target;
- a `job` textbox variable (default `azure-backup-exporter`, the job name of the README's scrape
  config) in every selector;
- chained variables subscription_id -> resource_group -> vault_type -> vault (-> container ->
  backup_item), fed by `label_values(azure_backup_vault_info{...})` and
  `label_values(azure_backup_item_info{...})` (every protected item, with or without a job in the
  lookback window); a vault is (subscription_id, resource_group, vault, vault_type), since a Recovery
  Services vault and a Backup vault may share a name, so every vault selector matches the vault_type
  with the name; an item is (backup_management_type, container, backup_item) in its vault, so every
  item selector matches the container with the name;
- range selectors only use Grafana's intervals: `$__rate_interval` inside `rate()`, `$__interval`
  for "per hour" / "per day" bars (the panel sets the minimum interval), `$__range` for totals
  over the dashboard's time range.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

Json = dict[str, Any]

HERE = Path(__file__).resolve().parent
SCHEMA_VERSION = 39
TAGS = ["azure", "azure-backup"]
DEFAULT_JOB = "azure-backup-exporter"
DATASOURCE: Json = {"type": "prometheus", "uid": "${datasource}"}

OVERVIEW_UID = "azure-backup-overview"
ITEM_UID = "azure-backup-item"
EXPORTER_UID = "azure-backup-exporter"

# Azure's job statuses, in the order of the numeric codes of the state timeline (0 = any other
# value Azure may return), with the colour each one gets on every dashboard.
STATUS_COLORS: dict[str, str] = {
    "InProgress": "blue",
    "Completed": "green",
    "CompletedWithWarnings": "yellow",
    "Failed": "red",
    "Cancelled": "orange",
    "Cancelling": "purple",
}
OTHER_STATUS = "Other"
# Protected-item enums (azure_backup_item_protection_state{state}, azure_backup_item_health_status{status}),
# with their colours. Health is healthStatus (Passed, Action*) or, for workload items such as SQL and HANA
# databases, protectedItemHealthStatus (Healthy, Unhealthy, NotReachable, IRPending).
PROTECTION_STATE_COLORS: dict[str, str] = {
    "Protected": "green",
    "IRPending": "blue",
    "ProtectionPaused": "yellow",
    "BackupsSuspended": "orange",
    "ProtectionStopped": "orange",
    "ProtectionError": "red",
    "SoftDeleted": "purple",
    # a Backup vault's backup instances (currentProtectionState)
    "ProtectionConfigured": "green",
    "ConfiguringProtection": "blue",
    "UpdatingProtection": "blue",
    "BackupSchedulesSuspended": "orange",
    "RetentionSchedulesSuspended": "yellow",
    "ConfiguringProtectionFailed": "red",
    "SoftDeleting": "purple",
    "NotProtected": "red",
    "Invalid": "red",
}
HEALTH_COLORS: dict[str, str] = {
    "Passed": "green",
    "Healthy": "green",
    "ActionSuggested": "yellow",
    "ActionRequired": "red",
    "Unhealthy": "red",
    "NotReachable": "orange",
    "IRPending": "blue",
}
# lastBackupStatus of a protected item: a job status, or for workload items Healthy, Unhealthy or IRPending.
ITEM_BACKUP_STATUS_COLORS: dict[str, str] = {**STATUS_COLORS, "Healthy": "green", "Unhealthy": "red",
                                             "IRPending": "blue"}
# An item is unprotected when its protection state is none of these (initial backup pending counts as
# protected), and unhealthy when its health is none of HEALTHY: the healthy values of AzureBackupItemUnhealthy
# (IRPending, the initial backup pending, is not unhealthy; nor is a Backup vault instance whose health is its
# state ConfiguringProtection, UpdatingProtection or RetentionSchedulesSuspended).
PROTECTED_STATES = ("Protected", "IRPending", "ProtectionConfigured", "ConfiguringProtection", "UpdatingProtection")
HEALTHY = ("Passed", "Healthy", "IRPending", "ConfiguringProtection", "UpdatingProtection",
           "RetentionSchedulesSuspended")
# Backups stopped on purpose: AzureBackupProtectionStopped fires for these states and
# AzureBackupNoRecentSuccessfulBackup skips them (alerts/azure-backup.rules.yml; the tests compare).
STOPPED_STATES = ("ProtectionStopped", "SoftDeleted", "BackupsSuspended", "SoftDeleting", "BackupSchedulesSuspended")
# AzureBackupNoRecentSuccessfulBackup: per item and kind, the last success is overdue past the policy's
# interval plus a grace of half of it, clamped to [GRACE_MIN, GRACE_MAX] seconds; an item without a known
# interval is overdue past FALLBACK_OVERDUE (PromQL text, as the rule writes it). See overdue().
GRACE_MIN = 3600
GRACE_MAX = 7200
FALLBACK_OVERDUE = "26 * 3600"
# A vault whose data is older than this is stale (AzureBackupDataStale).
STALE_SECONDS = 30 * 60

# A vault's identity: a Recovery Services vault (vault_type recovery_services) and a Backup vault (backup) may
# share a name in one resource group.
VAULT_LABELS = "subscription_id, resource_group, vault, vault_type"
# An item's identity: friendly names repeat across containers (master on every SQL instance).
ITEM_LABELS = f"{VAULT_LABELS}, backup_management_type, container, backup_item"

# ---------------------------------------------------------------------------------------------
# Label selectors
# ---------------------------------------------------------------------------------------------

JOB = 'job="$job"'
SUB = 'subscription_id=~"$subscription_id"'
RG = 'resource_group=~"$resource_group"'
VAULT_TYPES = 'vault_type=~"$vault_type"'
VAULTS = 'vault=~"$vault"'
CONTAINERS = 'container=~"$container"'
ITEMS = 'backup_item=~"$backup_item"'
# The item dashboard shows one item: single-value variables, matched exactly (Grafana escapes regex
# characters only for multi-value variables, so `=~` with a single value would treat a `.` in a
# name as a wildcard).
ONE_VAULT_TYPE = 'vault_type="$vault_type"'
ONE_VAULT = 'vault="$vault"'
ONE_CONTAINER = 'container="$container"'
ONE_ITEM = 'backup_item="$backup_item"'
# A vault in a legend: its name and type (a Recovery Services vault and a Backup vault may share a name).
VAULT_LEGEND = "{{vault}} ({{vault_type}})"
# Every operation starting with Backup is a backup: Backup, Backup (Full), Backup (Log), ... (workload items).
BACKUP_OP = 'operation=~"Backup.*"'


def eq(label: str, value: str) -> str:
    """An exact label matcher."""
    return f'{label}="{value}"'


def sel(*matchers: str) -> str:
    """A PromQL label selector from matchers."""
    return "{" + ", ".join(matchers) + "}"


# ---------------------------------------------------------------------------------------------
# Variables
# ---------------------------------------------------------------------------------------------


def datasource_variable() -> Json:
    return {
        "hide": 0,
        "includeAll": False,
        "label": "Data source",
        "multi": False,
        "name": "datasource",
        "options": [],
        "query": "prometheus",
        "refresh": 1,
        "regex": "",
        "type": "datasource",
    }


def job_variable() -> Json:
    return {
        "current": {"text": DEFAULT_JOB, "value": DEFAULT_JOB},
        "description": "The Prometheus job that scrapes the exporter.",
        "hide": 0,
        "label": "Job",
        "name": "job",
        "options": [{"selected": True, "text": DEFAULT_JOB, "value": DEFAULT_JOB}],
        "query": DEFAULT_JOB,
        "type": "textbox",
    }


def query_variable(name: str, label: str, query: str, *, multi: bool, description: str | None = None) -> Json:
    variable: Json = {
        "datasource": DATASOURCE,
        "hide": 0,
        "includeAll": multi,
        "label": label,
        "multi": multi,
        "name": name,
        "options": [],
        "query": query,
        "refresh": 2,  # on time range change: vaults and items come and go
        "regex": "",
        "sort": 1,
        "type": "query",
    }
    if description:
        variable["description"] = description
    if multi:
        variable["allValue"] = ".*"
        variable["current"] = {"selected": True, "text": ["All"], "value": ["$__all"]}
    return variable


def chain_variables(*, single_vault: bool = False, item: str | None = None) -> list[Json]:
    """datasource, job, subscription_id -> resource_group -> vault_type -> vault (-> container -> backup_item).

    single_vault: one vault (of one type) only. item: None (no container and backup_item variables), "multi"
    or "single".
    """
    type_matcher = ONE_VAULT_TYPE if single_vault else VAULT_TYPES
    vault_matcher = ONE_VAULT if single_vault else VAULTS
    variables = [
        datasource_variable(),
        job_variable(),
        query_variable(
            "subscription_id", "Subscription",
            f"label_values(azure_backup_vault_info{sel(JOB)}, subscription_id)", multi=True),
        query_variable(
            "resource_group", "Resource group",
            f"label_values(azure_backup_vault_info{sel(JOB, SUB)}, resource_group)", multi=True),
        query_variable(
            "vault_type", "Vault type",
            f"label_values(azure_backup_vault_info{sel(JOB, SUB, RG)}, vault_type)", multi=not single_vault,
            description="recovery_services: a Recovery Services vault; backup: a Backup vault (Microsoft."
                        "DataProtection). One of each may have the same name in one resource group."),
        query_variable(
            "vault", "Vault",
            f"label_values(azure_backup_vault_info{sel(JOB, SUB, RG, type_matcher)}, vault)",
            multi=not single_vault),
    ]
    if item is not None:
        multi = item == "multi"
        variables += [
            query_variable(
                "container", "Container",
                f"label_values(azure_backup_item_info{sel(JOB, SUB, RG, type_matcher, vault_matcher)}, container)",
                multi=multi,
                description="Where the item lives: a VM's resource group, a file share's storage account, "
                            "host/instance of a SQL or HANA database, the MAB or DPM server."),
            query_variable(
                "backup_item", "Backup item",
                f"label_values(azure_backup_item_info"
                f"{sel(JOB, SUB, RG, type_matcher, vault_matcher, CONTAINERS if multi else ONE_CONTAINER)}, "
                f"backup_item)",
                multi=multi),
        ]
    return variables


# ---------------------------------------------------------------------------------------------
# Field config pieces
# ---------------------------------------------------------------------------------------------


def thresholds(*steps: tuple[float | None, str]) -> Json:
    return {"mode": "absolute", "steps": [{"color": color, "value": value} for value, color in steps]}


GREEN = thresholds((None, "green"))


def fixed_color(color: str) -> Json:
    return {"id": "color", "value": {"fixedColor": color, "mode": "fixed"}}


def by_name(name: str, *properties: Json) -> Json:
    return {"matcher": {"id": "byName", "options": name}, "properties": list(properties)}


def color_overrides(colors: dict[str, str]) -> list[Json]:
    """Colour series named after a value (legend `{{status}}` or `{{state}}`)."""
    return [by_name(value, fixed_color(color)) for value, color in colors.items()]


def status_color_overrides() -> list[Json]:
    """Colour series named after a job status (legend `{{status}}`)."""
    return color_overrides(STATUS_COLORS)


def text_mappings(colors: dict[str, str]) -> list[Json]:
    """Colour the text of a column or value holding one of the colours' names."""
    return [{
        "options": {
            value: {"color": color, "index": index, "text": value}
            for index, (value, color) in enumerate(colors.items())
        },
        "type": "value",
    }]


def status_text_mappings() -> list[Json]:
    """Colour the text of a job status column or value."""
    return text_mappings(STATUS_COLORS)


def status_code_mappings() -> list[Json]:
    """Numeric status codes of status_code_expr() back to names and colours."""
    options = {"0": {"color": "text", "index": 0, "text": OTHER_STATUS}}
    for code, (status, color) in enumerate(STATUS_COLORS.items(), start=1):
        options[str(code)] = {"color": color, "index": code, "text": status}
    return [{"options": options, "type": "value"}]


def ok_failed_mappings(ok: str, failed: str) -> list[Json]:
    return [{
        "options": {
            "0": {"color": "red", "index": 0, "text": failed},
            "1": {"color": "green", "index": 1, "text": ok},
        },
        "type": "value",
    }]


def field_config(
    *, unit: str | None = None, custom: Json | None = None, mappings: list[Json] | None = None,
    threshold_steps: Json | None = None, color_mode: str | None = None, overrides: list[Json] | None = None,
    extra: Json | None = None,
) -> Json:
    defaults: Json = {"mappings": mappings or [], "thresholds": threshold_steps or GREEN}
    if unit is not None:
        defaults["unit"] = unit
    if custom is not None:
        defaults["custom"] = custom
    if color_mode is not None:
        defaults["color"] = {"mode": color_mode}
    if extra:
        defaults.update(extra)
    return {"defaults": defaults, "overrides": overrides or []}


# ---------------------------------------------------------------------------------------------
# Targets and panels
# ---------------------------------------------------------------------------------------------


def target(expr: str, legend: str = "", *, instant: bool = False, table: bool = False) -> Json:
    query: Json = {
        "datasource": DATASOURCE,
        "editorMode": "code",
        "expr": expr,
        "format": "table" if table else "time_series",
        "instant": instant,
        "range": not instant,
    }
    if legend:
        query["legendFormat"] = legend
    return query


def grid(x: int, y: int, w: int, h: int) -> Json:
    return {"h": h, "w": w, "x": x, "y": y}


def panel(
    kind: str, title: str, description: str, pos: Json, targets: Sequence[Json], *,
    fields: Json, options: Json, transformations: list[Json] | None = None, interval: str | None = None,
) -> Json:
    result: Json = {
        "datasource": DATASOURCE,
        "description": description,
        "fieldConfig": fields,
        "gridPos": pos,
        "options": options,
        "targets": [{**t, "refId": chr(ord("A") + i)} for i, t in enumerate(targets)],
        "title": title,
        "type": kind,
    }
    if transformations:
        result["transformations"] = transformations
    if interval:
        result["interval"] = interval
    return result


def row(title: str, y: int) -> Json:
    return {"collapsed": False, "gridPos": grid(0, y, 24, 1), "panels": [], "title": title, "type": "row"}


LEGEND_LIST = {"calcs": [], "displayMode": "list", "placement": "bottom", "showLegend": True}
LEGEND_TABLE = {"calcs": ["lastNotNull", "max"], "displayMode": "table", "placement": "bottom",
                "showLegend": True}
TOOLTIP = {"mode": "multi", "sort": "desc"}
REDUCE_LAST = {"calcs": ["lastNotNull"], "fields": "", "values": False}
# A horizontal bar gauge of ratios (success rate, coverage): red to green by its thresholds.
RATIO_BARS = {"displayMode": "gradient", "minVizHeight": 16, "minVizWidth": 8, "orientation": "horizontal",
              "reduceOptions": REDUCE_LAST, "showUnfilled": True, "sizing": "auto", "valueMode": "color"}


def stat(
    title: str, description: str, pos: Json, targets: Sequence[Json], *, unit: str | None = None,
    steps: Json | None = None, mappings: list[Json] | None = None, overrides: list[Json] | None = None,
    text_mode: str = "auto", color_mode: str = "value", no_value: str | None = None,
) -> Json:
    return panel(
        "stat", title, description, pos, targets,
        fields=field_config(unit=unit, mappings=mappings, threshold_steps=steps, color_mode="thresholds",
                            overrides=overrides, extra={"noValue": no_value} if no_value else None),
        options={"colorMode": color_mode, "graphMode": "none", "justifyMode": "auto",
                 "orientation": "auto", "reduceOptions": REDUCE_LAST, "showPercentChange": False,
                 "textMode": text_mode, "wideLayout": True},
    )


def timeseries(
    title: str, description: str, pos: Json, targets: Sequence[Json], *, unit: str, bars: bool = False,
    stacked: bool = False, overrides: list[Json] | None = None, interval: str | None = None,
    steps: Json | None = None, step_line: bool = False, points: bool = False, legend: Json = LEGEND_LIST,
) -> Json:
    custom: Json = {
        "axisSoftMin": 0,
        "drawStyle": "bars" if bars else "line",
        "fillOpacity": 80 if bars else 10,
        "lineInterpolation": "stepAfter" if step_line else "linear",
        "lineWidth": 1,
        "showPoints": "always" if points else "never",
        "spanNulls": points,
        "stacking": {"group": "A", "mode": "normal" if stacked else "none"},
        "thresholdsStyle": {"mode": "line" if steps else "off"},
    }
    return panel(
        "timeseries", title, description, pos, targets,
        fields=field_config(unit=unit, custom=custom, color_mode="palette-classic",
                            threshold_steps=steps, overrides=overrides),
        options={"legend": legend, "tooltip": TOOLTIP},
        interval=interval,
    )


def state_timeline(
    title: str, description: str, pos: Json, targets: Sequence[Json], *, mappings: list[Json],
) -> Json:
    return panel(
        "state-timeline", title, description, pos, targets,
        fields=field_config(custom={"fillOpacity": 80, "lineWidth": 0}, mappings=mappings,
                            color_mode="thresholds"),
        options={"alignValue": "left", "legend": LEGEND_LIST, "mergeValues": True, "rowHeight": 0.9,
                 "showValue": "auto", "tooltip": {"mode": "single", "sort": "none"}},
    )


def table(
    title: str, description: str, pos: Json, targets: Sequence[Json], *, overrides: list[Json],
    hide: Iterable[str], order: Sequence[str], sort_by: str | None = None,
) -> Json:
    """A table merged from several instant queries (one row per label set)."""
    options: Json = {"cellHeight": "sm", "showHeader": True,
                     "footer": {"countRows": False, "fields": "", "reducer": ["sum"], "show": False}}
    if sort_by:
        options["sortBy"] = [{"desc": True, "displayName": sort_by}]
    organize = {
        "excludeByName": {name: True for name in hide},
        "indexByName": {name: index for index, name in enumerate(order)},
        "renameByName": {},
    }
    return panel(
        "table", title, description, pos, targets,
        fields=field_config(custom={"align": "auto", "cellOptions": {"type": "auto"}, "filterable": True,
                                    "inspect": False}, overrides=overrides),
        options=options,
        transformations=[{"id": "merge", "options": {}}, {"id": "organize", "options": organize}],
    )


def column(name: str, title: str, *properties: Json) -> Json:
    """Override for a table column: display name plus properties."""
    return by_name(name, {"id": "displayName", "value": title}, *properties)


def unit(value: str) -> Json:
    return {"id": "unit", "value": value}


def colored_text() -> Json:
    return {"id": "custom.cellOptions", "value": {"type": "color-text"}}


def latest_backup(metric: str, matchers: Sequence[str], condition: str = "") -> str:
    """`metric` of each item's latest backup job: of its Backup* operations, the one that started last.

    A SQL database has a latest Backup (Full) and a latest Backup (Log); without this it would count, and
    show, twice. topk keeps one operation per item even on a tie. condition (such as " == 1") applies to
    `metric` before the filter.
    """
    backup = sel(*matchers, BACKUP_OP)
    return (f"{metric}{backup}{condition}\nand on ({ITEM_LABELS}, operation)\n"
            f"topk by ({ITEM_LABELS}) (1, azure_backup_job_last_start_timestamp_seconds{backup})")


def indent(text: str, spaces: int = 2) -> str:
    return "\n".join(" " * spaces + line if line else line for line in text.splitlines())


# AzureBackupNoRecentSuccessfulBackup (alerts/azure-backup.rules.yml), in pieces: the rule aggregates by the
# job and the item (and the kind of backup), and so do these, so that overdue() is the rule's expression
# with the dashboard's variable filters next to the job selector (tests/test_dashboards.py compares them).
ALERT_ITEM = f"job, {ITEM_LABELS}"
ALERT_KIND = f"{ALERT_ITEM}, kind"
STOPPED = f'state=~"{"|".join(STOPPED_STATES)}"'
NOT_LOG = 'kind!="log"'  # Azure lists no scheduled log backup: no log success seen means nothing


def age_by_kind(matchers: Sequence[str]) -> str:
    """Per item and kind: seconds since the last successful backup of that kind."""
    return (f"time() - max by ({ALERT_KIND}) (\n"
            f"  azure_backup_last_successful_backup_by_kind_timestamp_seconds{sel(*matchers)}\n)")


def allowed_by_kind(matchers: Sequence[str]) -> str:
    """Per item and kind: the policy's interval plus a grace of half of it, clamped to GRACE_MIN..GRACE_MAX."""
    interval = f"max by ({ALERT_KIND}) (\n  azure_backup_item_expected_backup_interval_seconds{sel(*matchers)}\n)"
    return f"{interval}\n+ clamp(\n{indent(interval)} / 2,\n  {GRACE_MIN}, {GRACE_MAX}\n)"


def age_any_kind(matchers: Sequence[str]) -> str:
    """Per item: seconds since the last successful backup of any kind."""
    return (f"time() - max by ({ALERT_ITEM}) (\n"
            f"  azure_backup_last_successful_backup_timestamp_seconds{sel(*matchers)}\n)")


def without_interval(matchers: Sequence[str]) -> str:
    """Keep only items without a known policy interval (they fall back to FALLBACK_OVERDUE)."""
    return f"unless on ({ALERT_ITEM})\nazure_backup_item_expected_backup_interval_seconds{sel(*matchers)}"


def watched_by_kind(matchers: Sequence[str]) -> str:
    """Per item and kind its policy schedules, log aside (Azure lists no scheduled log backup): seconds the
    exporter has watched the item."""
    scheduled = sel(*matchers, NOT_LOG)
    interval = f"max by ({ALERT_KIND}) (\n  azure_backup_item_expected_backup_interval_seconds{scheduled}\n)"
    return (f"{interval} * 0\n- on ({ALERT_ITEM}) group_left\nmax by ({ALERT_ITEM}) (\n"
            f"  azure_backup_item_watched_since_timestamp_seconds{sel(*matchers)}\n)\n+ time()")


def without_success(matchers: Sequence[str]) -> str:
    """Keep only the kinds with no success seen."""
    return (f"unless on ({ALERT_KIND})\n"
            f"azure_backup_last_successful_backup_by_kind_timestamp_seconds{sel(*matchers)}")


def except_stopped(matchers: Sequence[str]) -> str:
    """Drop items whose backups were stopped on purpose."""
    return (f"unless on ({ALERT_ITEM})\n"
            f"(\n  azure_backup_item_protection_state{sel(*matchers, STOPPED)} == 1\n)")


def overdue(matchers: Sequence[str]) -> str:
    """The expression of AzureBackupNoRecentSuccessfulBackup: per item and kind (or per item, without a
    known interval), the age of the last success where it is past what the policy allows."""
    fallback = f"(\n{indent(age_any_kind(matchers))}\n    > {FALLBACK_OVERDUE}\n)\n{without_interval(matchers)}"
    per_kind = (f"(\n{indent(age_by_kind(matchers))}\n)\n> on ({ALERT_KIND})\n"
                f"(\n{indent(allowed_by_kind(matchers))}\n)")
    never_seen = (f"(\n{indent(watched_by_kind(matchers))}\n)\n> on ({ALERT_KIND})\n"
                  f"(\n{indent(allowed_by_kind(matchers))}\n)\n{without_success(matchers)}")
    return (f"(\n{indent(per_kind)}\n  or\n  (\n{indent(never_seen, 4)}\n  )\n"
            f"  or\n  (\n{indent(fallback, 4)}\n  )\n)\n"
            f"{except_stopped(matchers)}")


def overdue_ratio(matchers: Sequence[str]) -> str:
    """overdue() as a ratio: the age of the last success over what the policy allows (1 and more: overdue),
    for every item and kind the rule evaluates."""
    fallback = (f"(\n{indent(age_any_kind(matchers))}\n)\n/ ({FALLBACK_OVERDUE})\n"
                f"{without_interval(matchers)}")
    per_kind = (f"(\n{indent(age_by_kind(matchers))}\n)\n/ on ({ALERT_KIND})\n"
                f"(\n{indent(allowed_by_kind(matchers))}\n)")
    never_seen = (f"(\n{indent(watched_by_kind(matchers))}\n)\n/ on ({ALERT_KIND})\n"
                  f"(\n{indent(allowed_by_kind(matchers))}\n)\n{without_success(matchers)}")
    return (f"(\n{indent(per_kind)}\n  or\n  (\n{indent(never_seen, 4)}\n  )\n"
            f"  or\n  (\n{indent(fallback, 4)}\n  )\n)\n"
            f"{except_stopped(matchers)}")


def due_within(matchers: Sequence[str]) -> str:
    """overdue() as a countdown: what the policy allows minus the age of the last success (negative:
    overdue), per kind; the fallback for an item without a known interval gets kind="any kind"."""
    fallback = (f"{FALLBACK_OVERDUE} - (\n{indent(age_any_kind(matchers))}\n)\n"
                f"{without_interval(matchers)},\n\"kind\", \"any kind\", \"kind\", \"\"")
    per_kind = (f"(\n{indent(allowed_by_kind(matchers))}\n)\n- on ({ALERT_KIND})\n"
                f"(\n{indent(age_by_kind(matchers))}\n)")
    never_seen = (f"(\n{indent(allowed_by_kind(matchers))}\n)\n- on ({ALERT_KIND})\n"
                  f"(\n{indent(watched_by_kind(matchers))}\n)\n{without_success(matchers)}")
    return (f"(\n{indent(per_kind)}\n  or\n  (\n{indent(never_seen, 4)}\n  )\n"
            f"  or\n  label_replace(\n{indent(fallback, 4)}\n  )\n)\n"
            f"{except_stopped(matchers)}")


# ---------------------------------------------------------------------------------------------
# Dashboards
# ---------------------------------------------------------------------------------------------


def dashboard(uid: str, title: str, description: str, *, time_from: str, variables: list[Json],
              panels: list[Json]) -> Json:
    for panel_id, item in enumerate(panels, start=1):
        item["id"] = panel_id
    return {
        "description": description,
        "editable": True,
        "graphTooltip": 1,
        "links": [{
            "asDropdown": True, "icon": "external link", "includeVars": True, "keepTime": True,
            "tags": ["azure-backup"], "targetBlank": False, "title": "Azure Backup", "tooltip": "",
            "type": "dashboards",
        }],
        "panels": panels,
        "refresh": "1m",
        "schemaVersion": SCHEMA_VERSION,
        "tags": TAGS,
        "templating": {"list": variables},
        "time": {"from": time_from, "to": "now"},
        "timezone": "browser",
        "title": title,
        "uid": uid,
    }


def item_link() -> Json:
    """Data link from an overview table row to the item dashboard, carrying the row's labels."""
    params = "&".join(
        f"var-{label}=${{__data.fields.{label}:percentencode}}"
        for label in ("subscription_id", "resource_group", "vault_type", "vault", "container", "backup_item"))
    return {
        "id": "links",
        "value": [{
            "targetBlank": False,
            "title": "Backup item dashboard",
            "url": f"/d/{ITEM_UID}/{ITEM_UID}?${{__url_time_range}}&${{datasource:queryparam}}"
                   f"&${{job:queryparam}}&{params}",
        }],
    }


RESOURCE_LABELS = "subscription_id, resource_group, resource_type, resource, resource_id"
# The Azure portal opens a resource by its ID (ARM IDs are case-insensitive, so the lower-cased one works).
PORTAL_RESOURCE_URL = "https://portal.azure.com/#resource${__data.fields.resource_id}/overview"


def needing_backup() -> str:
    """Protectable resources that should have a backup by now (older than COVERAGE_GRACE, not exempted)."""
    resources = sel(JOB, SUB, RG)
    return (f"azure_backup_resource_info{resources}\n  and on (job, resource_id) "
            f"(azure_backup_resource_backup_required{resources} == 1)")


def unprotected_resources() -> str:
    """What AzureBackupResourceUnprotected fires on, without its hour: no covering item, nor one of the VM of
    a disk (managed_by)."""
    covered = f"azure_backup_item_covered_resource_info{sel(JOB, SUB, RG, VAULT_TYPES, VAULTS, CONTAINERS, ITEMS)}"
    return (f"{needing_backup()}\n  unless on (job, resource_id) {covered}\n"
            f"  unless on (job, managed_by) label_join({covered}, \"managed_by\", \"\", \"resource_id\")")


def coverage_panels(y: int) -> list[Json]:
    """Issue 20, point 1: coverage per resource type and the resources no backup covers."""
    scope = ("Only with SUBSCRIPTIONS set (shard 0 lists the resources). The subscription and resource group "
             "variables select vaults elsewhere and narrow both the resources and the covering items here: keep "
             "the vault variables at All, or a resource backed up in a vault left out looks unprotected.")
    return [
        row("Resources with no backup", y),
        panel("bargauge", "Backup coverage per resource type",
              "Of the protectable resources that should have a backup by now (older than COVERAGE_GRACE, no "
              "COVERAGE_EXCLUDE_TAGS tag), the share that an Azure Backup item covers (a disk also through its "
              "VM). PostgreSQL and MySQL flexible servers have built-in backups besides. " + scope,
              grid(0, y + 1, 8, 8),
              [target(f"1 - (\n  count by (resource_type) (\n{indent(unprotected_resources(), 4)}\n  )\n  or\n"
                      f"  0 * count by (resource_type) ({needing_backup()})\n)\n"
                      f"/ count by (resource_type) ({needing_backup()})", "{{resource_type}}", instant=True)],
              fields=field_config(unit="percentunit", color_mode="thresholds",
                                  threshold_steps=thresholds((None, "red"), (0.9, "yellow"), (1, "green")),
                                  extra={"max": 1, "min": 0, "decimals": 0}),
              options=RATIO_BARS),
        table("Resources with no Azure Backup",
              "Protectable resources older than COVERAGE_GRACE, without a COVERAGE_EXCLUDE_TAGS tag, that no "
              "Azure Backup item of a watched vault covers (what AzureBackupResourceUnprotected fires on after "
              "an hour). Click a resource to open it in the Azure portal. " + scope,
              grid(8, y + 1, 16, 8),
              [target(f"max by ({RESOURCE_LABELS}, location) (\n{indent(unprotected_resources())}\n)",
                      instant=True, table=True),
               target(f"max by ({RESOURCE_LABELS}) (time() - azure_backup_resource_created_timestamp_seconds"
                      f"{sel(JOB, SUB, RG)})", instant=True, table=True)],
              overrides=[
                  by_name("resource", {"id": "links", "value": [
                      {"targetBlank": True, "title": "Open in the Azure portal", "url": PORTAL_RESOURCE_URL}]}),
                  column("resource_type", "Type"),
                  column("Value #B", "Age", unit("s"), {"id": "noValue", "value": "unknown"}),
              ],
              hide=("Time", "Value #A", "resource_id"),
              order=("subscription_id", "resource_group", "resource_type", "resource", "location", "Value #B"),
              sort_by="Age"),
    ]


def overview() -> Json:
    v = sel(JOB, SUB, RG, VAULT_TYPES, VAULTS)
    items = (JOB, SUB, RG, VAULT_TYPES, VAULTS, CONTAINERS, ITEMS)
    i = sel(*items)
    i_backup = sel(*items, BACKUP_OP)
    v_backup = sel(JOB, SUB, RG, VAULT_TYPES, VAULTS, BACKUP_OP)
    succeeded = sel(JOB, SUB, RG, VAULT_TYPES, VAULTS, BACKUP_OP, 'status=~"Completed|CompletedWithWarnings"')
    outcome = sel(JOB, SUB, RG, VAULT_TYPES, VAULTS, BACKUP_OP, 'status=~"Completed|CompletedWithWarnings|Failed"')
    by_vault = f"sum by ({VAULT_LABELS})"
    by_item = f"max by ({ITEM_LABELS})"
    unprotected = sel(*items, f'state!~"{"|".join(PROTECTED_STATES)}"')
    unhealthy = sel(*items, f'status!~"{"|".join(HEALTHY)}"')
    panels = [
        stat("Items by last backup status",
             "Protected items counted by the status of their latest backup job (of any Backup operation: "
             "Backup, Backup (Full), Backup (Log), ...).",
             grid(0, 0, 8, 4),
             [target(f"count by (status) (\n{latest_backup('azure_backup_job_last_status', items, ' == 1')}\n)",
                     "{{status}}")],
             overrides=status_color_overrides(), text_mode="value_and_name"),
        stat("Failed now",
             "Items and operations whose latest job is Failed (what AzureBackupJobFailed fires on).",
             grid(8, 0, 4, 4),
             [target(f"count(azure_backup_job_last_status{sel(*items, eq('status', 'Failed'))}"
                     " == 1) or vector(0)")],
             steps=thresholds((None, "green"), (1, "red")), color_mode="background"),
        stat("Running now", "Items and operations whose latest job is InProgress.",
             grid(12, 0, 4, 4),
             [target(f"count(azure_backup_job_last_status{sel(*items, eq('status', 'InProgress'))}"
                     " == 1) or vector(0)")],
             steps=thresholds((None, "blue"))),
        stat("Overdue items (past their policy's interval)",
             "Items with a kind of backup (full, log, ...) whose last success is older than the interval of "
             "the item's policy plus a grace of half the interval, at least 1 hour and at most 2 hours (daily: "
             "26 h, weekly: 7 d 2 h, log every 15 min: 1 h 15 min), or, where no interval is known, whose last "
             "successful backup is older than 26 hours; except items whose backups were stopped on purpose "
             f"({', '.join(STOPPED_STATES)}). What AzureBackupNoRecentSuccessfulBackup fires on; each item "
             "counts once.",
             grid(16, 0, 4, 4),
             [target(f"count(\n  group by ({ITEM_LABELS}) (\n{indent(overdue(items), 4)}\n  )\n) or vector(0)")],
             steps=thresholds((None, "green"), (1, "red")), color_mode="background"),
        stat("Vaults failing to refresh",
             "Vaults whose last refresh from Azure failed: their data is the last good one. "
             "See the exporter dashboard.",
             grid(20, 0, 4, 4),
             [target(f"count(azure_backup_vault_scrape_success{v} == 0) or vector(0)")],
             steps=thresholds((None, "green"), (1, "orange")), color_mode="background"),
        stat("Unprotected or unhealthy items",
             f"Protected items whose protection state is not {' or '.join(PROTECTED_STATES)} (stopped, "
             f"paused, in error, soft-deleted, backups suspended), or whose health is not "
             f"{' or '.join(HEALTHY)}. Each item counts once. From the protected-items list.",
             grid(0, 4, 6, 4),
             [target(f"count(\n  {by_item} (azure_backup_item_protection_state{unprotected} == 1)\n  or\n  "
                     f"{by_item} (azure_backup_item_health_status{unhealthy} == 1)\n) or vector(0)")],
             steps=thresholds((None, "green"), (1, "orange")), color_mode="background"),
        stat("Items by protection state",
             "Protected items counted by their protection state, from the protected-items list.",
             grid(6, 4, 9, 4),
             [target(f"count by (state) (azure_backup_item_protection_state{i} == 1)", "{{state}}")],
             overrides=color_overrides(PROTECTION_STATE_COLORS), text_mode="value_and_name"),
        stat("Items by health",
             "Protected items counted by their health (healthStatus, or protectedItemHealthStatus for "
             "workload items such as SQL and HANA databases).",
             grid(15, 4, 9, 4),
             [target(f"count by (status) (azure_backup_item_health_status{i} == 1)", "{{status}}")],
             overrides=color_overrides(HEALTH_COLORS), text_mode="value_and_name"),
        panel("bargauge", "Backup success ratio per vault",
              "Backup jobs that ended Completed or CompletedWithWarnings, out of those that ended "
              "Completed, CompletedWithWarnings or Failed, over the dashboard's time range (Cancelled "
              "jobs are left out). Counts only jobs that finished while the exporter watched.",
              grid(0, 8, 8, 8),
              [target(f"{by_vault} (increase(azure_backup_jobs_finished_total{succeeded}[$__range]))\n/\n"
                      f"({by_vault} (increase(azure_backup_jobs_finished_total{outcome}[$__range])) > 0)",
                      VAULT_LEGEND, instant=True)],
              fields=field_config(unit="percentunit", color_mode="thresholds",
                                  threshold_steps=thresholds((None, "red"), (0.9, "yellow"), (0.99, "green")),
                                  extra={"max": 1, "min": 0, "decimals": 1}),
              options=RATIO_BARS),
        timeseries("Jobs finished per hour by status",
                   "Jobs of all operations that reached a final status, per hour (per interval on long "
                   "time ranges).",
                   grid(8, 8, 12, 8),
                   [target(f"sum by (status) (increase(azure_backup_jobs_finished_total{v}[$__interval]))",
                           "{{status}}")],
                   unit="short", bars=True, stacked=True, overrides=status_color_overrides(), interval="1h"),
        stat("Items and vaults by vault type",
             "Protected items counted by the kind of vault that keeps them: recovery_services (Recovery Services "
             "vaults) and backup (Backup vaults), with the vaults of each kind. From the protected-items list.",
             grid(20, 8, 4, 8),
             [target(f"count by (vault_type) (azure_backup_item_info{i})", "{{vault_type}} items"),
              target(f"count by (vault_type) (azure_backup_vault_info{v})", "{{vault_type}} vaults")],
             text_mode="value_and_name", color_mode="none"),
        table("Backup items",
              "Every protected item, and any other item with a job in the lookback window: protection "
              "state and health from the protected-items list, the latest Backup job, the age of the last "
              "successful backup and of the last recovery point. Overdue: of the item's kinds of backup, the "
              "largest age of the last success over what its policy allows (the interval plus a grace of half "
              "of it, at least 1 h and at most 2 h; 26 h where no interval is known), red from 100 %, when "
              "AzureBackupNoRecentSuccessfulBackup fires; empty where the alert does not look at the item (no "
              "successful backup of a kind its policy schedules, or backups stopped on purpose). The ages are "
              "not coloured: how old is too old depends on the policy. Click an item for its dashboard.",
              grid(0, 16, 24, 12),
              [
                  target(f"{by_item} (azure_backup_item_info{i})", instant=True, table=True),
                  target(f"max by ({ITEM_LABELS}, status) (\n"
                         f"{latest_backup('azure_backup_job_last_status', items, ' == 1')}\n)",
                         instant=True, table=True),
                  target(f"max by ({ITEM_LABELS}, state) (azure_backup_item_protection_state{i} == 1)",
                         instant=True, table=True),
                  # health_status has a `status` label like job_last_status: copy it to a column of its own.
                  target(f"max by ({ITEM_LABELS}, health) "
                         f"(label_join(azure_backup_item_health_status{i} == 1, \"health\", \"\", \"status\"))",
                         instant=True, table=True),
                  target(f"time() - {by_item} (azure_backup_last_successful_backup_timestamp_seconds{i})",
                         instant=True, table=True),
                  target(f"time() - {by_item} (azure_backup_item_last_recovery_point_timestamp_seconds{i})",
                         instant=True, table=True),
                  target(f"{by_item} (\n{latest_backup('azure_backup_job_last_duration_seconds', items)}\n)",
                         instant=True, table=True),
                  target(f"{by_item} (\n{latest_backup('azure_backup_job_last_size_bytes', items)}\n)",
                         instant=True, table=True),
                  target(f"{by_item} (azure_backup_job_last_start_timestamp_seconds{i_backup}) * 1000",
                         instant=True, table=True),
                  target(f"{by_item} (\n{indent(overdue_ratio(items))}\n)", instant=True, table=True),
              ],
              overrides=[
                  by_name("backup_item", item_link()),
                  column("state", "Protection state", colored_text(),
                         {"id": "mappings", "value": text_mappings(PROTECTION_STATE_COLORS)}),
                  column("health", "Health", colored_text(),
                         {"id": "mappings", "value": text_mappings(HEALTH_COLORS)}),
                  column("status", "Last status", colored_text(),
                         {"id": "mappings", "value": status_text_mappings()},
                         {"id": "noValue", "value": "no recent job"}),
                  # The ages are not coloured: what is too old depends on the policy, see Overdue.
                  column("Value #E", "Last success age", unit("s"), {"id": "noValue", "value": "never"}),
                  column("Value #F", "Last recovery point age", unit("s"), {"id": "noValue", "value": "none"}),
                  column("Value #G", "Last duration", unit("s")),
                  column("Value #H", "Last size", unit("bytes")),
                  column("Value #I", "Last backup started", unit("dateTimeFromNow")),
                  column("Value #J", "Overdue", unit("percentunit"), colored_text(),
                         {"id": "decimals", "value": 0},
                         {"id": "thresholds", "value": thresholds((None, "green"), (1, "red"))}),
              ],
              hide=("Time", "Value #A", "Value #B", "Value #C", "Value #D"),
              order=("subscription_id", "resource_group", "vault", "vault_type", "backup_management_type", "container",
                     "backup_item", "state", "health", "status", "Value #J", "Value #E", "Value #F", "Value #G",
                     "Value #H", "Value #I"),
              sort_by="Overdue"),
        timeseries("Backup job duration quantiles",
                   "Quantiles of the durations of Backup jobs that finished in each hour (estimated "
                   "from the histogram buckets, 1 min to 1 day).",
                   grid(0, 28, 12, 8),
                   [target(f"histogram_quantile({q}, sum by (le) (increase("
                           f"azure_backup_job_duration_seconds_bucket{v_backup}[$__interval]))) > 0",
                           f"p{round(float(q) * 100)}")
                    for q in ("0.5", "0.9", "0.99")],
                   unit="s", interval="1h", points=True),
        timeseries("Data transferred per day",
                   "Backup Size of the jobs that finished each day, per vault.",
                   grid(12, 28, 12, 8),
                   [target(f"{by_vault} (increase(azure_backup_transferred_bytes_total{v}[$__interval]))",
                           f"{{{{resource_group}}}}/{VAULT_LEGEND}")],
                   unit="bytes", bars=True, stacked=True, interval="1d"),
        *coverage_panels(36),
    ]
    return dashboard(
        OVERVIEW_UID, "Azure Backup / Overview",
        "Backup jobs and protected items of Azure Recovery Services vaults and Backup vaults, from "
        "azure-backup-exporter.",
        time_from="now-7d", variables=chain_variables(item="multi"), panels=panels)


def status_code_expr(selector_matchers: Sequence[str]) -> str:
    """One series per operation whose value is the code of the latest job's status.

    1..6 follow STATUS_COLORS; 0 is any other status. `or` keeps the first term of each label set, so
    the final `* 0` term only adds statuses the list does not name.
    """
    terms = [
        f"(azure_backup_job_last_status{sel(*selector_matchers, eq('status', status))} == 1) * {code}"
        for code, status in enumerate(STATUS_COLORS, start=1)
    ]
    terms.append(f"(azure_backup_job_last_status{sel(*selector_matchers)} == 1) * 0")
    return "max by (backup_management_type, operation) (\n  " + "\n  or ".join(terms) + "\n)"


def backup_item() -> Json:
    matchers = (JOB, SUB, RG, ONE_VAULT_TYPE, ONE_VAULT, ONE_CONTAINER, ONE_ITEM)
    i = sel(*matchers)
    per_op = "max by (backup_management_type, operation)"
    panels = [
        stat("Last backup status",
             "Status of the latest backup job of the item (of any Backup operation: Backup (Full), Backup "
             "(Log), ...); without a job in the lookback window, the item's lastBackupStatus from the "
             "protected-items list.", grid(0, 0, 6, 4),
             # `or on ()`: the item's own status only when there is no job status at all.
             [target(f"max by (status) (\n{latest_backup('azure_backup_job_last_status', matchers, ' == 1')}\n)"
                     f"\nor on ()\nmax by (status) (azure_backup_item_last_backup_status{i} == 1)", "{{status}}")],
             overrides=color_overrides(ITEM_BACKUP_STATUS_COLORS), text_mode="name", color_mode="background"),
        stat("Since last successful backup",
             "Time since the item's last successful backup: the newest of its latest backup job that ended "
             "Completed or CompletedWithWarnings, its lastBackupTime when that backup succeeded, and its last "
             "recovery point. Not coloured: how old is too old depends on the kind of backup and the policy "
             "(see Backup due within).", grid(6, 0, 6, 4),
             [target(f"time() - max(azure_backup_last_successful_backup_timestamp_seconds{i})")],
             unit="s", color_mode="none", no_value="never"),
        stat("Last backup duration", "Duration of the latest backup job (elapsed so far while it runs).",
             grid(12, 0, 6, 4),
             [target(f"max(\n{latest_backup('azure_backup_job_last_duration_seconds', matchers)}\n)")], unit="s"),
        stat("Last backup size", "Backup Size of the latest backup job, where Azure reports it.",
             grid(18, 0, 6, 4),
             [target(f"max(\n{latest_backup('azure_backup_job_last_size_bytes', matchers)}\n)")], unit="bytes"),
        stat("Protection state", "The item's protection state, from the protected-items list.",
             grid(0, 4, 6, 4),
             [target(f"max by (state) (azure_backup_item_protection_state{i} == 1)", "{{state}}")],
             overrides=color_overrides(PROTECTION_STATE_COLORS), text_mode="name", color_mode="background"),
        stat("Health", "The item's health: healthStatus, or protectedItemHealthStatus for workload items "
             "such as SQL and HANA databases.", grid(6, 4, 6, 4),
             [target(f"max by (status) (azure_backup_item_health_status{i} == 1)", "{{status}}")],
             overrides=color_overrides(HEALTH_COLORS), text_mode="name", color_mode="background"),
        stat("Policy", "The item's backup policy and its protected-item type.", grid(12, 4, 6, 4),
             [target(f"max by (policy, item_type) (azure_backup_item_info{i})", "{{policy}} ({{item_type}})")],
             text_mode="name", color_mode="none"),
        stat("Since last recovery point",
             "Time since the item's last recovery point (lastRecoveryPoint), where Azure gives it; for a Backup "
             "vault instance, only where its jobs show no successful backup (its points are listed only then). Not "
             "coloured: see Backup due within.", grid(18, 4, 6, 4),
             [target(f"time() - max(azure_backup_item_last_recovery_point_timestamp_seconds{i})")],
             unit="s", color_mode="none", no_value="none"),
        stat("Expected backup interval",
             "Time between two scheduled backups of the item, per kind of backup (full, differential, log, "
             "...), from its backup policy. AzureBackupNoRecentSuccessfulBackup pages when the last successful "
             "backup of a kind is older than its interval plus a grace of half the interval, at least 1 hour and "
             "at most 2 hours (daily: 26 h, weekly: 7 d 2 h, log every 15 min: 1 h 15 min). Without an interval "
             "(no policy, or a schedule the exporter could not read) it pages after 26 hours.",
             grid(0, 8, 8, 4),
             [target(f"max by (kind) (azure_backup_item_expected_backup_interval_seconds{i})", "{{kind}}")],
             unit="s", text_mode="value_and_name", color_mode="none",
             no_value="no policy interval: 26 h applies"),
        stat("Last successful backup by kind",
             "Time since the item's last successful backup of each kind: full (Backup, Backup (Full), and for "
             "VMs, file shares, MAB and DPM items their own last backup and recovery point), differential, log, "
             "copy_only_full, incremental. Compare with the expected interval on the left. A kind without a "
             "successful job in the exporter's lookback window has no value.",
             grid(8, 8, 8, 4),
             [target(f"time() - max by (kind) (azure_backup_last_successful_backup_by_kind_timestamp_seconds{i})",
                     "{{kind}}")],
             unit="s", text_mode="value_and_name", color_mode="none", no_value="never"),
        stat("Backup due within",
             "Per kind of backup, the time left until AzureBackupNoRecentSuccessfulBackup fires: the policy's "
             "interval plus a grace of half of it (at least 1 hour, at most 2 hours), minus the time since the "
             "last successful backup of that kind. Red when negative: the alert fires. Without a policy "
             "interval, 26 hours minus the time since the last successful backup of any kind (`any kind`). "
             f"No value for an item that never succeeded or whose backups were stopped on purpose "
             f"({', '.join(STOPPED_STATES)}), as the alert does not fire for them.",
             grid(16, 8, 8, 4),
             [target(f"min by (kind) (\n{indent(due_within(matchers))}\n)", "{{kind}}")],
             unit="s", steps=thresholds((None, "red"), (0, "green")), text_mode="value_and_name",
             no_value="none: never succeeded, or stopped"),
        state_timeline("Job status history",
                       "Status of the latest job of each operation over time, as the exporter saw it.",
                       grid(0, 12, 24, 7),
                       [target(status_code_expr(matchers), "{{operation}}")],
                       mappings=status_code_mappings()),
        timeseries("Job duration", "Duration of the latest job of each operation (grows while it runs).",
                   grid(0, 19, 12, 8),
                   [target(f"{per_op} (azure_backup_job_last_duration_seconds{i})", "{{operation}}")],
                   unit="s", step_line=True),
        timeseries("Backup size", "Backup Size of the latest job of each operation.",
                   grid(12, 19, 12, 8),
                   [target(f"{per_op} (azure_backup_job_last_size_bytes{i})", "{{operation}}")],
                   unit="bytes", step_line=True),
        table("Latest job per operation",
              "The latest job of each operation: status and times, and its job ID (for `az backup job show`) "
              "when the exporter runs with COLLECTOR_JOB_INFO=true (off by default: a new series per item a day).",
              grid(0, 27, 14, 8),
              [
                  # container_name: Azure's raw containerName, what `az backup` takes as --container-name.
                  target("max by (backup_management_type, operation, job_id, job_type, container_name, "
                         f"workload_type) (azure_backup_job_last_info{i})", instant=True, table=True),
                  target(f"max by (backup_management_type, operation, status) (azure_backup_job_last_status{i}"
                         " == 1)", instant=True, table=True),
                  target(f"{per_op} (azure_backup_job_last_start_timestamp_seconds{i}) * 1000",
                         instant=True, table=True),
                  target(f"{per_op} (azure_backup_job_last_end_timestamp_seconds{i}) * 1000",
                         instant=True, table=True),
                  target(f"{per_op} (azure_backup_job_last_duration_seconds{i})", instant=True, table=True),
              ],
              overrides=[
                  column("status", "Status", colored_text(),
                         {"id": "mappings", "value": status_text_mappings()}),
                  column("Value #C", "Started", unit("dateTimeAsIso")),
                  column("Value #D", "Ended", unit("dateTimeAsIso"), {"id": "noValue", "value": "running"}),
                  column("Value #E", "Duration", unit("s")),
              ],
              hide=("Time", "Value #A", "Value #B"),
              order=("operation", "status", "Value #C", "Value #D", "Value #E", "job_id", "job_type",
                     "backup_management_type", "container_name", "workload_type")),
        table("Tasks of the latest job", "Tasks of the latest job of each operation with their status.",
              grid(14, 27, 10, 8),
              [target("max by (backup_management_type, operation, task, status) "
                      f"(azure_backup_job_last_task_status{i})", instant=True, table=True)],
              overrides=[column("status", "Status", colored_text(),
                                {"id": "mappings", "value": status_text_mappings()})],
              hide=("Time", "Value", "Value #A", "backup_management_type"),
              order=("operation", "task", "status")),
    ]
    return dashboard(
        ITEM_UID, "Azure Backup / Backup item",
        "One backup item of an Azure Recovery Services vault or Backup vault: protection state, health, policy, "
        "job history, durations, sizes and tasks.",
        time_from="now-7d", variables=chain_variables(single_vault=True, item="single"), panels=panels)


def exporter() -> Json:
    j = sel(JOB)
    v = sel(JOB, SUB, RG, VAULT_TYPES, VAULTS)
    per_vault = f"max by ({VAULT_LABELS})"
    panels = [
        row("Exporter", 0),
        stat("Prometheus scrape", "Whether Prometheus can scrape the exporter (`up`).", grid(0, 1, 4, 4),
             [target(f"up{j}", "{{instance}}")],
             mappings=ok_failed_mappings("Up", "Down"), color_mode="background"),
        stat("Azure refresh", "azure_backup_up: the last refresh authenticated and at least one vault "
             "refreshed.", grid(4, 1, 4, 4),
             [target(f"min(azure_backup_up{j})")],
             mappings=ok_failed_mappings("OK", "Failing"), color_mode="background"),
        stat("Vaults failing to refresh", "Vaults whose last refresh failed.", grid(8, 1, 4, 4),
             [target(f"count(azure_backup_vault_scrape_success{v} == 0) or vector(0)")],
             steps=thresholds((None, "green"), (1, "red")), color_mode="background"),
        stat("Oldest vault data", "Age of the oldest vault data the exporter serves; red after 30 minutes.",
             grid(12, 1, 4, 4),
             [target(f"max(time() - azure_backup_vault_last_refresh_timestamp_seconds{v})")],
             unit="s", steps=thresholds((None, "green"), (STALE_SECONDS / 2, "yellow"), (STALE_SECONDS, "red"))),
        stat("Build", "Version of the exporter and of its Python.", grid(16, 1, 8, 4),
             [target(f"max by (version, python_version) (azure_backup_exporter_build_info{j})",
                     "{{version}} (Python {{python_version}})")],
             text_mode="name", color_mode="none"),
        row("Vaults", 5),
        state_timeline("Vault refresh success", "Whether each vault's last refresh from Azure succeeded.",
                       grid(0, 6, 12, 8),
                       [target(f"{per_vault} (azure_backup_vault_scrape_success{v})", VAULT_LEGEND)],
                       mappings=ok_failed_mappings("OK", "Failed")),
        timeseries("Vault refresh duration",
                   "How long each vault's last refresh worked (its lists plus its details).", grid(12, 6, 12, 8),
                   [target(f"{per_vault} (azure_backup_vault_scrape_duration_seconds{v})", VAULT_LEGEND)],
                   unit="s"),
        timeseries("Vault data age", "Age of each vault's data; the line marks 30 minutes "
                   "(AzureBackupDataStale).", grid(0, 14, 12, 8),
                   [target(f"time() - {per_vault} (azure_backup_vault_last_refresh_timestamp_seconds{v})",
                           VAULT_LEGEND)],
                   unit="s", steps=thresholds((None, "transparent"), (STALE_SECONDS, "red"))),
        timeseries("Parse errors", "Values from Azure that did not parse, by field (only that field was "
                   "dropped).", grid(12, 14, 12, 8),
                   [target(f"sum by (field) (rate(azure_backup_parse_errors_total{j}[$__rate_interval]))",
                           "{{field}}")],
                   unit="cps"),
        row("Azure Resource Manager", 22),
        timeseries("ARM requests by status code", "Requests to Azure Resource Manager per second by HTTP "
                   "status code (`error`: no response).", grid(0, 23, 12, 8),
                   [target(f"sum by (code) (rate(azure_backup_api_requests_total{j}[$__rate_interval]))",
                           "{{code}}")],
                   unit="reqps", stacked=True),
        timeseries("ARM request latency", "Latency quantiles of requests to Azure Resource Manager.",
                   grid(12, 23, 12, 8),
                   [target(f"histogram_quantile({q}, sum by (le) (rate("
                           f"azure_backup_api_request_duration_seconds_bucket{j}[$__rate_interval])))",
                           f"p{round(float(q) * 100)}")
                    for q in ("0.5", "0.9", "0.99")],
                   unit="s"),
        timeseries("ARM requests by operation", "Requests to Azure Resource Manager per second by operation.",
                   grid(0, 31, 8, 8),
                   [target(f"sum by (operation) (rate(azure_backup_api_requests_total{j}[$__rate_interval]))",
                           "{{operation}}")],
                   unit="reqps", stacked=True),
        timeseries("ARM throttling (HTTP 429)", "Throttled responses per second, including those a retry "
                   "absorbed (AzureBackupApiThrottled).", grid(8, 31, 8, 8),
                   [target(f"sum(rate(azure_backup_api_throttled_total{j}[$__rate_interval]))", "429")],
                   unit="reqps"),
        timeseries("ARM rate-limit headroom", "The lowest headroom per subscription: the smallest last value "
                   "of the x-ms-ratelimit-remaining-* headers ARM returned for requests against the subscription "
                   "(an empty subscription: tenant-level requests). ARM's limits are per subscription and "
                   "identity, and it refills its buckets continuously; low values precede throttling.",
                   grid(16, 31, 8, 8),
                   [target(f"min by (subscription_id) (azure_backup_api_ratelimit_remaining{sel(JOB, SUB)})",
                           "{{subscription_id}}")],
                   unit="short", steps=thresholds((None, "red"), (25, "transparent"))),
        row("Process", 39),
        timeseries("Memory (RSS)", "Resident memory of each exporter process (process_resident_memory_bytes): "
                   "what a Kubernetes memory limit is set against. docs/performance.md gives it per estate size.",
                   grid(0, 40, 12, 8),
                   [target(f"process_resident_memory_bytes{j}", "{{instance}}")],
                   unit="bytes"),
        timeseries("CPU", "CPU each exporter process uses, in cores (rate of process_cpu_seconds_total): refreshes "
                   "and scrapes.", grid(12, 40, 12, 8),
                   [target(f"rate(process_cpu_seconds_total{j}[$__rate_interval])", "{{instance}}")],
                   unit="short"),
    ]
    return dashboard(
        EXPORTER_UID, "Azure Backup / Exporter",
        "Health of azure-backup-exporter: vault refreshes, data age and its use of Azure Resource Manager.",
        time_from="now-6h", variables=chain_variables(), panels=panels)


DASHBOARDS = {
    f"{OVERVIEW_UID}.json": overview,
    f"{ITEM_UID}.json": backup_item,
    f"{EXPORTER_UID}.json": exporter,
}


def render(build: Callable[[], Json]) -> str:
    return json.dumps(build(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if the JSON files differ from what this script generates")
    parser.add_argument("--dir", type=Path, default=HERE, help="where the JSON files live (default: %(default)s)")
    args = parser.parse_args(argv)
    stale = []
    for name, build in DASHBOARDS.items():
        path = args.dir / name
        text = render(build)
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        if args.check:
            stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    if stale:
        print(f"out of date: {', '.join(stale)}; run: python dashboards/generate.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
