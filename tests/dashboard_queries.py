"""The PromQL of the shipped Grafana dashboards, ready to run.

Shared by tests/test_dashboards.py (static checks) and the end-to-end test, which runs every panel's
query against a real Prometheus:

    from tests.dashboard_queries import load_dashboards, panel_queries  # or: from .dashboard_queries

    for name, dashboard in load_dashboards().items():
        for title, expr in panel_queries(dashboard, {"job": "azure-backup-exporter", "vault": "vault-1",
                                                     "vault_type": "recovery_services", "container": "rg-app",
                                                     "backup_item": "vm-app-01", ...}):
            ...  # query Prometheus with expr

Multi-value variables are matched with `=~` in the dashboards, so ".*" selects everything there; the
item dashboard matches `vault_type`, `vault`, `container` and `backup_item` with `=`, so those need real
values (a vault is its name and its type, recovery_services or backup; an item is its container and its
name: the `container` label of azure_backup_item_info, such as the VM's resource group or
`sqlvm01/MSSQLSERVER`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

DASHBOARD_DIR = Path(__file__).resolve().parent.parent / "dashboards"

# Grafana's built-in interval variables, used when the caller gives no value. A panel's own minimum
# interval (its `interval`, e.g. "1h" for per-hour bars) stands for `$__interval` unless the caller
# gives `__interval` explicitly.
BUILTIN_DEFAULTS: dict[str, str] = {"__rate_interval": "5m", "__interval": "5m", "__range": "1h"}

# $name, ${name}, ${name:format}, ${name.path} and the deprecated [[name]] / [[name:format]].
VARIABLE_RE = re.compile(r"\$\{(\w+)(?:[.:][^}]*)?\}|\[\[(\w+)(?::\w+)?\]\]|\$(\w+)")

_STRING_RE = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GROUPING_RE = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER_RE = re.compile(r"(?<![\w.:])([A-Za-z_:][\w:]*)(\s*\()?")
_KEYWORDS = frozenset({
    "and", "or", "unless", "atan2", "bool", "offset", "by", "without", "on", "ignoring",
    "group_left", "group_right", "inf", "nan",
})


def load_dashboards(directory: Path = DASHBOARD_DIR) -> dict[str, dict[str, Any]]:
    """Every dashboard JSON file of the directory, by file name."""
    return {path.name: json.loads(path.read_text(encoding="utf-8"))
            for path in sorted(directory.glob("*.json"))}


def iter_panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows and the panels inside collapsed rows included."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def substitute(expr: str, values: Mapping[str, str]) -> str:
    """Replace every template variable in expr; ValueError names the ones without a value."""
    missing: set[str] = set()

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        if name not in values:
            missing.add(name)
            return match.group(0)
        return values[name]

    result = VARIABLE_RE.sub(replace, expr)
    if missing:
        raise ValueError(f"no value for variable(s) {', '.join(sorted(missing))} in: {expr}")
    return result


def panel_queries(dashboard: Mapping[str, Any], variables: Mapping[str, str]) -> list[tuple[str, str]]:
    """(panel title, expr with variables substituted) for every target of every panel.

    variables maps variable names (without `$`) to values; Grafana's `__rate_interval`,
    `__interval` and `__range` default to BUILTIN_DEFAULTS (or the panel's own interval).
    """
    queries = []
    for panel in iter_panels(dashboard):
        for target in panel.get("targets", []):
            expr = target.get("expr")
            if not expr or target.get("hide"):
                continue
            values = dict(BUILTIN_DEFAULTS)
            if panel.get("interval"):
                values["__interval"] = panel["interval"]
            values.update(variables)
            queries.append((panel.get("title", ""), substitute(expr, values)))
    return queries


def metric_names(expr: str) -> set[str]:
    """Names of the series an expression selects (functions, keywords and labels left out)."""
    text = _STRING_RE.sub('""', expr)
    text = re.sub(r"\{[^}]*\}", "{}", text)
    text = re.sub(r"\[[^\]]*\]", "[]", text)
    text = _GROUPING_RE.sub(" ", text)
    return {
        match.group(1)
        for match in _IDENTIFIER_RE.finditer(text)
        if match.group(2) is None and match.group(1).lower() not in _KEYWORDS
    }
