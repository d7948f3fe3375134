"""How well a vault guards its backups against deletion: soft delete, immutability, multi-user authorization.

Why: a ransomware playbook turns soft delete off (or shortens its retention) and then deletes the backups.
The vault's own resource says how it is guarded, in both kinds' words:
- Recovery Services (`Vaults_Get`, spec example GETVault.json 2024-04-01): `properties.securitySettings`
  `{immutabilitySettings: {state: Disabled|Unlocked|Locked}, softDeleteSettings: {softDeleteState:
  Enabled|Disabled|AlwaysON, softDeleteRetentionPeriodInDays}, multiUserAuthorization: Enabled|Disabled}`.
- Backup vault (`BackupVaults_Get`): `properties.securitySettings.softDeleteSettings {state, retentionDurationInDays}`
  (a real GET wrote `OFF`, a Resource Graph row `On`, the spec's example `Enabled`; the enum says
  Off|On|AlwaysOn), `immutabilitySettings.state`, and `isVaultProtectedByResourceGuard` (multi-user
  authorization through a resource guard).

Each setting becomes one word of a small vocabulary (`on`, `off`, `always_on`; `disabled`, `unlocked`, `locked`;
`enabled`, `disabled`) and a level, higher for stronger protection, so that an alert can compare a vault with
itself a day ago: any level that went down is a weakening. A setting the vault does not report has no level.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .models import BACKUP

SOFT_DELETE = "soft_delete"
SOFT_DELETE_RETENTION_DAYS = "soft_delete_retention_days"
IMMUTABILITY = "immutability"
MULTI_USER_AUTHORIZATION = "multi_user_authorization"

# Azure's words (lower-cased) -> the exporter's word and its level.
_SOFT_DELETE = {"alwayson": ("always_on", 2), "enabled": ("on", 1), "on": ("on", 1),
                "disabled": ("off", 0), "off": ("off", 0)}
_IMMUTABILITY = {"locked": ("locked", 2), "unlocked": ("unlocked", 1), "disabled": ("disabled", 0)}
_MUA = {"enabled": ("enabled", 1), "disabled": ("disabled", 0)}
VOCABULARIES = {SOFT_DELETE: _SOFT_DELETE, IMMUTABILITY: _IMMUTABILITY, MULTI_USER_AUTHORIZATION: _MUA}


@dataclass(frozen=True)
class VaultSecurity:
    """A vault's guards, in the exporter's words ("" where the vault does not say; a word nobody has seen is
    kept lower-cased, and `unknown` names its field and Azure's spelling)."""

    soft_delete: str = ""
    immutability: str = ""
    multi_user_authorization: str = ""
    soft_delete_retention_days: float | None = None
    unknown: tuple[tuple[str, str], ...] = ()

    @property
    def reported(self) -> bool:
        """Whether the vault said anything about its guards (an older api-version may say nothing)."""
        return bool(self.soft_delete or self.immutability or self.multi_user_authorization
                    or self.soft_delete_retention_days is not None)

    def levels(self) -> dict[str, float]:
        """Each reported setting's level: higher is stronger (the retention: its days)."""
        levels: dict[str, float] = {}
        for setting, word in ((SOFT_DELETE, self.soft_delete), (IMMUTABILITY, self.immutability),
                              (MULTI_USER_AUTHORIZATION, self.multi_user_authorization)):
            known = {name: level for name, level in VOCABULARIES[setting].values()}
            if word in known:
                levels[setting] = known[word]
        if self.soft_delete_retention_days is not None:
            levels[SOFT_DELETE_RETENTION_DAYS] = self.soft_delete_retention_days
        return levels


def parse_vault_security(resource: Mapping[str, Any], kind: str) -> VaultSecurity:
    """The guards of a vault resource of `kind` (a vault GET or list item); what is absent stays unknown."""
    props = _mapping(resource.get("properties"))
    security = _mapping(props.get("securitySettings"))
    soft_delete = _mapping(security.get("softDeleteSettings"))
    unknown: list[tuple[str, str]] = []
    if kind == BACKUP:
        soft_state, retention = soft_delete.get("state"), soft_delete.get("retentionDurationInDays")
        guard = props.get("isVaultProtectedByResourceGuard")
        mua_word = None if guard is None else ("enabled" if guard is True else "disabled")
    else:
        soft_state, retention = soft_delete.get("softDeleteState"), soft_delete.get("softDeleteRetentionPeriodInDays")
        mua_word = security.get("multiUserAuthorization")
    immutability = _mapping(security.get("immutabilitySettings")).get("state")
    return VaultSecurity(
        soft_delete=_word(SOFT_DELETE, "softDeleteState", soft_state, unknown),
        immutability=_word(IMMUTABILITY, "immutabilityState", immutability, unknown),
        multi_user_authorization=_word(MULTI_USER_AUTHORIZATION, "multiUserAuthorization", mua_word, unknown),
        soft_delete_retention_days=_days(retention),
        unknown=tuple(unknown),
    )


def _word(setting: str, field: str, value: Any, unknown: list[tuple[str, str]]) -> str:
    if not isinstance(value, str) or not value.strip():
        return ""
    word = value.strip().lower()
    if word == "invalid":  # in every one of these enums: Azure's "not set", no level
        return word
    known = VOCABULARIES[setting].get(word)
    if known is None:  # a value Azure adds later: shown as sent, no level, so never a weakening by itself
        unknown.append((field, value))
        return word
    return known[0]


def _days(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
