"""deploy/azure/role.json (issue 20, point 3): a custom role that can read what the exporter reads, and nothing else.

The exporter scrapes the demo estate (both kinds of vault, discovery and explicit vault IDs) on the fake ARM;
every request it sent is turned into the ARM action that authorizes it, and each must be in the role. The
role must hold only `*/read` actions, no wildcard, no data action: Backup Reader, which the README used to
recommend, also grants writes (Microsoft.RecoveryServices/Vaults/monitoringAlerts/write, ...).
"""

from __future__ import annotations

import json
import time
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import pytest

from exporter.settings import load_settings
from exporter.simulator.demo import start_demo
from exporter.simulator.fakearm import make_backup_instance
from exporter.wiring import build

ROLE = Path(__file__).resolve().parent.parent / "deploy" / "azure" / "role.json"
IDENTITY_PATH = "/msi/token"  # the fake's managed-identity endpoint: not ARM
# Azure Resource Graph's query is a POST that ARM authorizes as a read.
READ_BY_POST = {"microsoft.resourcegraph/resources"}


def arm_action(method: str, path: str) -> str:
    """The ARM operation that authorizes `method path`: the resource type of the path, then read/write.

    /subscriptions/{s}/resourceGroups/{g}/providers/{Namespace}/{type}/{name}/{type}/... -> Namespace/type/type;
    a path without a provider (/subscriptions/{s}/resources) belongs to Microsoft.Resources.
    """
    parts = [part for part in path.split("/") if part]
    lowered = [part.lower() for part in parts]
    if "providers" in lowered:
        at = lowered.index("providers")
        resource_type = "/".join([parts[at + 1], *parts[at + 2::2]])
    else:
        resource_type = "/".join(["Microsoft.Resources", *parts[0::2]])
    if method == "GET" or (method == "POST" and resource_type.lower() in READ_BY_POST):
        return f"{resource_type}/read"
    return f"{resource_type}/{'delete' if method == 'DELETE' else 'write' if method in ('PUT', 'PATCH') else 'action'}"


def load_role() -> dict[str, Any]:
    return json.loads(ROLE.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def uncovered(actions: set[str], role: dict[str, Any]) -> list[str]:
    """The actions no entry of the role's Actions grants (ARM compares them without regard to case)."""
    granted = [action.lower() for action in role.get("Actions", [])]
    return sorted(action for action in actions if not any(fnmatchcase(action.lower(), grant) for grant in granted))


@pytest.mark.parametrize(("method", "path", "action"), [
    ("GET", "/subscriptions/s/providers/Microsoft.RecoveryServices/vaults", "Microsoft.RecoveryServices/vaults/read"),
    ("GET", "/subscriptions/s/resourceGroups/g/providers/Microsoft.RecoveryServices/vaults/v/backupJobs/j",
     "Microsoft.RecoveryServices/vaults/backupJobs/read"),
    ("GET", "/subscriptions/s/resourceGroups/g/providers/Microsoft.RecoveryServices/vaults/v/backupFabrics/Azure"
            "/protectionContainers/c/protectedItems/i/recoveryPoints",
     "Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/protectedItems/recoveryPoints/read"),
    ("GET", "/subscriptions/s/resourceGroups/g/providers/Microsoft.DataProtection/backupVaults/v/backupInstances/i"
            "/recoveryPoints", "Microsoft.DataProtection/backupVaults/backupInstances/recoveryPoints/read"),
    ("GET", "/subscriptions/s/resources", "Microsoft.Resources/subscriptions/resources/read"),
    ("POST", "/providers/Microsoft.ResourceGraph/resources", "Microsoft.ResourceGraph/resources/read"),
    ("POST", "/subscriptions/s/resourceGroups/g/providers/Microsoft.RecoveryServices/vaults/v/backupJobs/j/cancel",
     "Microsoft.RecoveryServices/vaults/backupJobs/cancel/action"),
    ("PUT", "/subscriptions/s/resourceGroups/g/providers/Microsoft.RecoveryServices/vaults/v/monitoringAlerts/a",
     "Microsoft.RecoveryServices/vaults/monitoringAlerts/write"),
])
def test_arm_action_of_a_request(method: str, path: str, action: str) -> None:
    assert arm_action(method, path) == action


def test_the_role_can_only_read() -> None:
    role = load_role()
    assert role["IsCustom"] is True and role["Name"] and role["Description"]
    actions = role["Actions"]
    assert actions and len({a.lower() for a in actions}) == len(actions), "each action once"
    assert all(action.lower().endswith("/read") for action in actions), actions
    assert not [action for action in actions if "*" in action], "name each read: a wildcard grows with Azure"
    assert role.get("DataActions", []) == [] and role.get("NotDataActions", []) == []
    assert role["AssignableScopes"] == ["/subscriptions/<subscription-id>"]  # a placeholder docs/deploy.md fills


@pytest.fixture(scope="module")
def exporter_actions() -> set[str]:
    """The actions of every request the exporter sends while it scrapes the demo estate twice."""
    demo = start_demo(seed=7)
    # A disk protected a moment ago, no backup yet: the jobs cannot give its last success, so its recovery points
    # are listed (issue 19: only such instances' are), and the scrape reaches that read too.
    vault = demo.estate.backup_vaults[0]
    demo.estate.add_backup_instance(vault.name, make_backup_instance(
        vault=vault, datasource_type="AzureDisk", datasource_name="disk-new-01", policy="DiskDaily"))
    try:
        with pytest.MonkeyPatch.context() as patch:
            for name, value in demo.identity_env().items():
                patch.setenv(name, value)
            settings = load_settings(overrides={
                "resource_manager_url": demo.arm_url, "refresh_interval": "0s",
                # discovery of both kinds of vault in every subscription, and explicit IDs: both code paths
                "subscriptions": ",".join(demo.subscriptions[:1]),
                "vaults": ",".join(v for v in demo.vault_ids + demo.backup_vault_ids
                                   if demo.subscriptions[0] not in v.lower())})
            exporter = build(settings)
            try:
                for _ in range(2):  # the second refresh GETs jobs' details and lists what is due again
                    exporter.refresher.refresh_due(time.monotonic() + 120)
            finally:
                exporter.refresher.close()
        return {arm_action(r.method, r.path) for r in demo.arm.requests if r.path != IDENTITY_PATH}
    finally:
        demo.stop()


def test_the_scrape_reaches_every_kind_of_call(exporter_actions: set[str]) -> None:
    """Else the next test proves little: the demo scrape lists, GETs and reads recovery points of both kinds."""
    lowered = {action.lower() for action in exporter_actions}
    for action in ("Microsoft.RecoveryServices/vaults/read", "Microsoft.RecoveryServices/vaults/backupJobs/read",
                   "Microsoft.RecoveryServices/vaults/backupProtectedItems/read",
                   "Microsoft.RecoveryServices/vaults/backupPolicies/read",
                   "Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/protectedItems"
                   "/recoveryPoints/read",
                   "Microsoft.DataProtection/backupVaults/read",
                   "Microsoft.DataProtection/backupVaults/backupJobs/read",
                   "Microsoft.DataProtection/backupVaults/backupInstances/read",
                   "Microsoft.DataProtection/backupVaults/backupInstances/recoveryPoints/read",
                   "Microsoft.DataProtection/backupVaults/backupPolicies/read"):
        assert action.lower() in lowered, f"{action} not called: {sorted(exporter_actions)}"


def test_the_role_covers_every_call_of_the_exporter(exporter_actions: set[str]) -> None:
    assert uncovered(exporter_actions, load_role()) == []
    assert all(action.endswith("/read") for action in exporter_actions), "the exporter only reads"


def test_a_role_without_a_read_the_exporter_needs_is_caught(exporter_actions: set[str]) -> None:
    role = load_role()
    points = "Microsoft.RecoveryServices/Vaults/backupFabrics/protectionContainers/protectedItems/recoveryPoints/read"
    role["Actions"] = [action for action in role["Actions"] if action != points]
    assert uncovered(exporter_actions, role) == [points.replace("Vaults", "vaults")]
