"""The values of the one-hot families, per kind of vault, and which of them the shipped alerts fire on.

A `status` or `state` label carries Azure's word for an item or a job, and the two kinds of vault speak different
vocabularies: a Recovery Services item has a healthStatus (Passed, ActionRequired, ...) and a protectionState
(Protected, IRPending, ...); a Backup vault's instance has only a protection state (ConfiguringProtection,
ProtectionConfigured, ...), from which its health is derived (dataprotection.instance_health). This table says,
for each family and kind, what the values are and what the alerts do with them. It is the README's vocabulary
table (tests/test_readme.py keeps the two equal), and tests/test_alerts.py checks it against the rules file, so
neither the README nor this module can drift from what the alerts really fire on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from . import catalogue as c
from .dataprotection import DPP_HEALTH_STATUSES, DPP_PROTECTION_STATES
from .models import (
    BACKUP,
    ITEM_BACKUP_STATUSES,
    ITEM_HEALTH_STATUSES,
    KNOWN_STATUSES,
    PROTECTION_STATES,
    RECOVERY_SERVICES,
)

# Workload items (SQL Server, SAP HANA in a VM) report protectedItemHealthStatus; the exporter adds these as seen.
WORKLOAD_HEALTH_STATUSES = ("Healthy", "Unhealthy", "NotReachable", "IRPending")
# Protection states in which someone stopped an item's backups on purpose: AzureBackupProtectionStopped fires,
# the other item alerts skip the item (the header of alerts/azure-backup.rules.yml).
STOPPED_ON_PURPOSE = {
    RECOVERY_SERVICES: ("ProtectionStopped", "SoftDeleted", "BackupsSuspended"),
    BACKUP: ("ProtectionStopped", "SoftDeleting", "SoftDeleted", "BackupsSuspended", "BackupSchedulesSuspended"),
}
# A Backup vault instance's states that become Healthy or Unhealthy (instance_health); the others are its health
# as sent.
_DPP_JUDGED = frozenset({"ProtectionConfigured", "ConfiguringProtectionFailed", "ProtectionError"})

FAILED_JOB = ("AzureBackupJobFailed", "AzureBackupRestoreFailed", "AzureBackupManagementJobFailed")
UNHEALTHY = ("AzureBackupItemUnhealthy",)
STOPPED = ("AzureBackupProtectionStopped",)
# Entering soft delete is a deletion of backup data (issue 18): AzureBackupDataDeletion fires for it as well
# (unless a deletion job of the item is listed, which it fires on instead).
SOFT_DELETED = ("SoftDeleting", "SoftDeleted")
DELETION = ("AzureBackupDataDeletion",)


@dataclass(frozen=True)
class Vocabulary:
    spec: c.MetricSpec
    vault_type: str
    values: tuple[str, ...]  # the values Azure sends, in the exporter's words ("" in the README: none)
    fires: Mapping[str, tuple[str, ...]]  # value -> the alerts that fire on it
    other: str  # what becomes of a value not in `values`
    other_fires: tuple[str, ...] = ()  # the alerts that fire on such a value
    note: str = ""  # a condition the alerts add (InProgress for 12 h)

    @property
    def label(self) -> str:
        """The label that carries the value: `status` or `state`."""
        return self.spec.labels[-1]


def _fires(*groups: tuple[tuple[str, ...], tuple[str, ...]]) -> Mapping[str, tuple[str, ...]]:
    fires: dict[str, tuple[str, ...]] = {}
    for values, alerts in groups:
        for value in values:
            fires[value] = fires.get(value, ()) + alerts
    return MappingProxyType(fires)


_JOB_FIRES = _fires((("Failed",), FAILED_JOB), (("CompletedWithWarnings",), ("AzureBackupJobCompletedWithWarnings",)),
                    (("InProgress",), ("AzureBackupJobRunningTooLong",)))
_JOB_NOTE = "Failed: by operation (backups, restores, other jobs); InProgress: after 12 h"
_KEPT = "kept as sent"
_COUNTED = "kept as sent, counted once per vault in azure_backup_parse_errors_total"
_DPP_HEALTH = (*DPP_HEALTH_STATUSES, *(s for s in DPP_PROTECTION_STATES if s not in _DPP_JUDGED))

VOCABULARIES: tuple[Vocabulary, ...] = (
    Vocabulary(c.JOB_LAST_STATUS, RECOVERY_SERVICES, KNOWN_STATUSES, _JOB_FIRES, _KEPT, note=_JOB_NOTE),
    Vocabulary(c.JOB_LAST_STATUS, BACKUP, KNOWN_STATUSES, _JOB_FIRES,
               "kept as sent (Paused) and counted (Started is InProgress, Succeeded is Completed)", note=_JOB_NOTE),
    Vocabulary(c.JOB_LAST_TASK_STATUS, RECOVERY_SERVICES, (), _fires(), "every task's status as sent"),
    Vocabulary(c.JOB_LAST_TASK_STATUS, BACKUP, KNOWN_STATUSES, _fires(), "kept as sent and counted"),
    Vocabulary(c.ITEM_LAST_BACKUP_STATUS, RECOVERY_SERVICES, ITEM_BACKUP_STATUSES, _fires(), _KEPT),
    Vocabulary(c.ITEM_LAST_BACKUP_STATUS, BACKUP, (), _fires(), "none: a backup instance has no last backup status"),
    Vocabulary(c.ITEM_HEALTH, RECOVERY_SERVICES, (*ITEM_HEALTH_STATUSES, *WORKLOAD_HEALTH_STATUSES),
               _fires((("ActionRequired", "ActionSuggested", "Unhealthy", "NotReachable"), UNHEALTHY)),
               _KEPT, UNHEALTHY),
    # The states a Backup vault instance's health keeps as sent: transitional ones (ConfiguringProtection,
    # UpdatingProtection) and RetentionSchedulesSuspended (backups go on) are not unhealthy; those stopped on
    # purpose are left to AzureBackupProtectionStopped; NotProtected and Invalid get no backups.
    Vocabulary(c.ITEM_HEALTH, BACKUP, _DPP_HEALTH,
               _fires((("Unhealthy", "NotProtected", "Invalid"), UNHEALTHY)), _COUNTED, UNHEALTHY),
    Vocabulary(c.ITEM_PROTECTION_STATE, RECOVERY_SERVICES, PROTECTION_STATES,
               _fires((("ProtectionError",), UNHEALTHY), (STOPPED_ON_PURPOSE[RECOVERY_SERVICES], STOPPED),
                      (("SoftDeleted",), DELETION)), _KEPT),
    Vocabulary(c.ITEM_PROTECTION_STATE, BACKUP, DPP_PROTECTION_STATES,
               _fires((("ProtectionError", "ConfiguringProtectionFailed"), UNHEALTHY),
                      (STOPPED_ON_PURPOSE[BACKUP], STOPPED), (SOFT_DELETED, DELETION)),
               _COUNTED + " (its health, the same value, fires AzureBackupItemUnhealthy)"),
)


def markdown_table() -> str:
    """The README's table of the one-hot families' values per kind of vault (a test keeps the README in step)."""
    rows = ["| family | `vault_type` | values | the alerts fire on | another value |", "|---|---|---|---|---|"]
    for vocabulary in VOCABULARIES:
        values = ", ".join(f"`{value}`" for value in vocabulary.values) or "none"
        other = vocabulary.other + "".join(f"; fires {alert}" for alert in vocabulary.other_fires)
        rows.append(f"| `{vocabulary.spec.name}` ({vocabulary.label}) | `{vocabulary.vault_type}` | {values} | "
                    f"{_fired(vocabulary)} | {other} |")
    return "\n".join(rows)


def _fired(vocabulary: Vocabulary) -> str:
    by_alerts: dict[tuple[str, ...], list[str]] = {}
    for value, alerts in vocabulary.fires.items():
        by_alerts.setdefault(alerts, []).append(f"`{value}`")
    parts = [f"{', '.join(values)}: {', '.join(alerts)}" for alerts, values in by_alerts.items()]
    text = "; ".join(parts) or "nothing"
    return f"{text} ({vocabulary.note})" if vocabulary.note else text
