"""Settings: environment (AZURE_BACKUP_EXPORTER_*), an optional YAML file, and CLI overrides.

Precedence, highest first: command-line flags, environment, YAML file, defaults.
Everything is validated once at start; `SettingsError` carries one line naming the setting.
"""

from __future__ import annotations

import difflib
import hashlib
import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from .models import _GUID, VAULT_KINDS, VaultRef
from .protectable import tag_label

ENV_PREFIX = "AZURE_BACKUP_EXPORTER_"
MAX_LOOKBACK = timedelta(days=30)  # the Backup service's own limit for a job query window
# Kubernetes' service links for a Service named azure-backup-exporter (...SERVICE_HOST, ...PORT_9934_TCP):
# set by the cluster, not by the user, so they are no mistyped setting.
_SERVICE_LINK = re.compile(
    ENV_PREFIX + r"(SERVICE_HOST|SERVICE_PORT(_\w+)?|PORT(_\d+_(TCP|UDP|SCTP)(_(PROTO|PORT|ADDR))?)?)")


@dataclass(frozen=True)
class Cloud:
    resource_manager_url: str
    audience: str

    @property
    def scope(self) -> str:
        return self.audience.rstrip("/") + "/.default"


CLOUDS: dict[str, Cloud] = {
    "AzureCloud": Cloud("https://management.azure.com", "https://management.azure.com"),
    "AzureUSGovernment": Cloud("https://management.usgovcloudapi.net", "https://management.usgovcloudapi.net"),
    "AzureChinaCloud": Cloud("https://management.chinacloudapi.cn", "https://management.chinacloudapi.cn"),
}

_INTERVAL_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_ISO_INTERVAL = re.compile(r"^P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$", re.I)


class SettingsError(Exception):
    """A setting is invalid; the message is one line that names it."""


def parse_interval(value: Any) -> timedelta:
    """'90s', '48h', '1h30m', '7d', ISO-8601 'P7D'/'PT15M', or a number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    text = str(value).strip()
    if text.startswith("-"):
        return -parse_interval(text[1:])
    if re.fullmatch(r"-?\d+(?:\.\d+)?", text):
        return timedelta(seconds=float(text))
    if text and _INTERVAL_PART.sub("", text) == "":
        return timedelta(seconds=sum(float(n) * _UNIT_SECONDS[u] for n, u in _INTERVAL_PART.findall(text)))
    iso = _ISO_INTERVAL.match(text)
    if iso and text.upper() not in ("P", "PT") and not text.upper().endswith("T"):
        weeks, days, hours, minutes, seconds = (float(g) if g else 0.0 for g in iso.groups())
        return timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds)
    raise ValueError(f"{text!r} is not a duration (use e.g. 90s, 15m, 48h, 7d or ISO-8601 P7D)")


def _split_list(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


Interval = Annotated[timedelta, NoDecode]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", case_sensitive=False)

    vaults: Annotated[list[str], NoDecode] = Field(default_factory=list)
    subscriptions: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # The kinds of vault this exporter watches: a role that may not read Backup vaults leaves `backup` out, so
    # discovery never lists them and nothing warns about it (README, "Azure permissions").
    vault_types: Annotated[list[str], NoDecode] = Field(default_factory=lambda: list(VAULT_KINDS))
    lookback: Interval = timedelta(days=7)
    refresh_interval: Interval = timedelta(seconds=60)
    # A Backup vault's job list takes no filter (every list re-reads ~14 days of jobs), so it is listed less
    # often than a Recovery Services vault's (issue 19).
    backup_vault_refresh_interval: Interval = timedelta(minutes=5)
    items_refresh_interval: Interval = timedelta(minutes=5)
    # How often each database's recovery points are listed, for the backups the job list leaves out (scheduled
    # log backups, SAP HANA's scheduled backups): one call per such database; 0 turns it off.
    database_recovery_points_interval: Interval = timedelta(minutes=30)
    discovery_interval: Interval = timedelta(hours=1)
    scrape_timeout: Interval = timedelta(seconds=10)
    cloud: str = "AzureCloud"
    resource_manager_url: str | None = None
    concurrency: int = Field(default=8, ge=1, le=64)
    rate_limit: float = Field(default=20.0, ge=0)  # ARM reads per second per subscription; 0 turns it off
    shard: int = Field(default=0, ge=0)
    shards: int = Field(default=1, ge=1)
    request_timeout: Interval = timedelta(seconds=20)
    jobs_api_version: str = "2025-02-01"
    vaults_api_version: str = "2025-02-01"
    dataprotection_api_version: str = "2026-06-01"  # Backup vaults: jobs, instances, policies, the vaults
    listen_address: str = ":9934"
    # exporter-toolkit's web config (TLS, client certificates, basic auth), read at start: webconfig.py.
    web_config_file: str | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["logfmt", "json"] = "logfmt"
    # What /metrics exposes (README, "Series per item"): the collector switches (--collector.<name>) and
    # whether the one-hot families emit a 0 series for every known state besides the current one's 1.
    collector_tasks: bool = True
    collector_job_info: bool = False  # a new series per item and day: each new job has a new job_id
    collector_items: bool = True
    state_series: Literal["all", "current"] = "current"
    # Resources with no backup (issue 20, point 1; exporter/protectable.py): with SUBSCRIPTIONS set, shard 0 lists
    # each subscription's protectable resources every COVERAGE_INTERVAL; one older than COVERAGE_GRACE that no
    # backup covers and no COVERAGE_EXCLUDE_TAGS tag (`name=value` or `name`) exempts is exposed as needing one.
    coverage_interval: Interval = timedelta(hours=1)
    coverage_grace: Interval = timedelta(hours=24)
    coverage_exclude_tags: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Azure tags copied into labels (tag_<name>) of azure_backup_resource_info, e.g. team,owner,env.
    tag_labels: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, YamlConfigSettingsSource(settings_cls))

    @field_validator("vaults", "subscriptions", "vault_types", "coverage_exclude_tags", "tag_labels", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("vault_types")
    @classmethod
    def _known_vault_types(cls, value: list[str]) -> list[str]:
        kinds = [str(kind).strip().lower() for kind in value]
        unknown = [kind for kind in kinds if kind not in VAULT_KINDS]
        if unknown:
            raise ValueError(f"{unknown[0]!r} is not a kind of vault (use {','.join(VAULT_KINDS)})")
        if not kinds:
            raise ValueError(f"names no kind of vault (use {','.join(VAULT_KINDS)} or one of them)")
        return [kind for kind in VAULT_KINDS if kind in kinds]  # each once, in a fixed order

    @field_validator("vaults")
    @classmethod
    def _vault_ids(cls, value: list[str]) -> list[str]:
        refs = [VaultRef.parse(v) for v in value]
        return [ref.path for ref in refs]

    @field_validator("subscriptions")
    @classmethod
    def _subscription_ids(cls, value: list[str]) -> list[str]:
        for sub in value:
            if not _GUID.match(sub):
                raise ValueError(f"{sub!r} is not a subscription ID (a GUID)")
        return [s.lower() for s in value]

    @field_validator("lookback", "refresh_interval", "backup_vault_refresh_interval", "items_refresh_interval",
                     "discovery_interval", "scrape_timeout", "request_timeout", "database_recovery_points_interval",
                     "coverage_interval", "coverage_grace", mode="before")
    @classmethod
    def _interval(cls, value: Any) -> timedelta:
        return parse_interval(value)

    @field_validator("lookback", "refresh_interval", "backup_vault_refresh_interval", "items_refresh_interval",
                     "discovery_interval", "scrape_timeout", "request_timeout", "database_recovery_points_interval",
                     "coverage_interval", "coverage_grace")
    @classmethod
    def _not_negative(cls, value: timedelta) -> timedelta:
        if value < timedelta(0):
            raise ValueError("must not be negative")
        return value

    @field_validator("lookback")
    @classmethod
    def _lookback_range(cls, value: timedelta) -> timedelta:
        if not timedelta(0) < value <= MAX_LOOKBACK:
            raise ValueError("must be more than 0 and at most 30d (the Backup service's query limit)")
        return value

    @field_validator("coverage_exclude_tags")
    @classmethod
    def _exclusion_tags(cls, value: list[str]) -> list[str]:
        for entry in value:
            if not str(entry).partition("=")[0].strip():
                raise ValueError(f"{entry!r} names no tag (use name=value or name)")
        return [str(entry).strip() for entry in value]

    @field_validator("tag_labels")
    @classmethod
    def _tag_names(cls, value: list[str]) -> list[str]:
        names = [str(name).strip() for name in value]
        labels = [tag_label(name) for name in names]
        if any(not name for name in names):
            raise ValueError("an empty tag name")
        if len(set(labels)) != len(labels):
            raise ValueError(f"two tags become one label: {', '.join(labels)}")
        return names

    @field_validator("discovery_interval", "scrape_timeout", "request_timeout", "coverage_interval")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be more than 0")
        return value

    @field_validator("cloud")
    @classmethod
    def _known_cloud(cls, value: str) -> str:
        if value not in CLOUDS:
            raise ValueError(f"unknown cloud {value!r} (one of {', '.join(CLOUDS)})")
        return value

    @field_validator("jobs_api_version", "vaults_api_version", "dataprotection_api_version")
    @classmethod
    def _api_version(cls, value: str) -> str:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}(-preview)?", value):
            raise ValueError(f"{value!r} is not an api-version like 2025-02-01")
        return value

    @field_validator("resource_manager_url")
    @classmethod
    def _arm_url(cls, value: str | None) -> str | None:
        return None if value in (None, "") else validate_arm_url(str(value))

    @field_validator("listen_address")
    @classmethod
    def _listen(cls, value: str) -> str:
        split_listen_address(value)
        return value

    @field_validator("web_config_file")
    @classmethod
    def _optional_path(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("state_series", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _has_vault_source(self) -> Settings:
        if not self.vaults and not self.subscriptions:
            raise ValueError(f"settings: no vaults to watch; set {ENV_PREFIX}VAULTS or {ENV_PREFIX}SUBSCRIPTIONS")
        return self

    @model_validator(mode="after")
    def _vaults_of_watched_types(self) -> Settings:
        """A configured vault of a kind VAULT_TYPES leaves out is a contradiction: refuse it rather than leave
        a vault someone asked for silently unwatched."""
        for ref in self.vault_refs:
            if ref.kind not in self.vault_types:
                raise ValueError(
                    f"setting {ENV_PREFIX}VAULTS: {ref.path} is a vault of type {ref.kind}, which "
                    f"{ENV_PREFIX}VAULT_TYPES ({','.join(self.vault_types)}) leaves out")
        return self

    @model_validator(mode="after")
    def _shard_in_range(self) -> Settings:
        if self.shard >= self.shards:
            raise ValueError(
                f"setting {ENV_PREFIX}SHARD: {self.shard} is not below {ENV_PREFIX}SHARDS ({self.shards})")
        return self

    @property
    def lists_resources(self) -> bool:
        """Shard 0 alone lists the protectable resources (each shard knows only its vaults' items, so the rules
        join every shard's items to one list); nothing to list without subscriptions."""
        return bool(self.subscriptions) and self.shard == 0

    def owns(self, vault: VaultRef) -> bool:
        """Whether this replica watches the vault: a stable hash of its lowercased ID, mod SHARDS."""
        return shard_of(vault, self.shards) == self.shard

    @property
    def vault_refs(self) -> list[VaultRef]:
        return [VaultRef.parse(v) for v in self.vaults]

    @property
    def arm_url(self) -> str:
        return (self.resource_manager_url or CLOUDS[self.cloud].resource_manager_url).rstrip("/")

    @property
    def token_scope(self) -> str:
        return CLOUDS[self.cloud].scope

    def effective(self) -> dict[str, Any]:
        """The settings as a JSON-able dict, durations as seconds (what --check-config prints)."""
        out: dict[str, Any] = {}
        for name, value in self.model_dump().items():
            out[name] = value.total_seconds() if isinstance(value, timedelta) else value
        out["arm_url"] = self.arm_url
        out["token_scope"] = self.token_scope
        return out


def shard_of(vault: VaultRef, shards: int) -> int:
    # sha256, not hash(): Python salts str hashes per process, and every replica must agree.
    return int.from_bytes(hashlib.sha256(vault.key.encode()).digest()[:8], "big") % shards


def validate_arm_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{value!r} is not an http(s) URL")
    if parts.username or parts.password:
        raise ValueError("must not carry credentials")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ValueError("http:// is only allowed for a loopback host; use https://")
    return value.rstrip("/")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def split_listen_address(value: str) -> tuple[str, int]:
    """'host:port', ':port' or '[::1]:port' -> (host, port); host '' means every interface."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r} is not host:port")
    return host.strip("[]"), int(port)


def env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


def closest_setting(name: str) -> str | None:
    """The setting (its field name) spelled most like `name`, a YAML key or a variable; None if none is close."""
    key = name.lower().removeprefix(ENV_PREFIX.lower())
    matches = difflib.get_close_matches(key, list(Settings.model_fields), n=1)
    return matches[0] if matches else None


def unknown_environment(environ: Mapping[str, str]) -> dict[str, str | None]:
    """Each AZURE_BACKUP_EXPORTER_* variable that is no setting -> the closest setting's variable, or None.

    pydantic-settings reads the fields' variables (in any case) and ignores every other one without a word,
    so a typo (LOOKBAK) would run on the default. The known names come from the model, so a new field is
    known at once; the exporter reads no other variable with the prefix. Names only: values may be secrets.
    """
    known = {env_name(field) for field in Settings.model_fields}
    in_kubernetes = any(name.upper() == ENV_PREFIX + "SERVICE_HOST" for name in environ)
    unknown = {}
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in known:
            continue
        if in_kubernetes and _SERVICE_LINK.fullmatch(upper):
            continue
        closest = closest_setting(name)
        unknown[name] = env_name(closest) if closest else None
    return unknown


def describe_unknown_variable(name: str, closest: str | None) -> str:
    hint = f"did you mean {closest}?" if closest else "the settings are listed in --help"
    return f"environment variable {name} is not a setting and is ignored ({hint})"


def load_settings(config_file: Path | None = None, overrides: dict[str, Any] | None = None) -> Settings:
    """Build and validate the settings; raises SettingsError with one readable line."""
    if config_file is not None and not config_file.is_file():
        raise SettingsError(f"config file {config_file}: not found")
    file_settings = type("FileSettings", (Settings,), {
        "model_config": SettingsConfigDict(**{**Settings.model_config, "yaml_file": config_file}),
    })
    try:
        return file_settings(**(overrides or {}))  # type: ignore[no-any-return]
    except ValidationError as exc:
        raise SettingsError(_describe(exc, config_file)) from None
    except yaml.YAMLError as exc:  # a typo in the file's syntax, not in a name: still one line, not a traceback
        raise SettingsError(f"config file {config_file}: not YAML: {' '.join(str(exc).split())}") from None
    except (ValueError, OSError) as exc:  # unreadable YAML or JSON list
        raise SettingsError(f"invalid settings: {exc}".replace("\n", " ")) from None


def _describe(exc: ValidationError, config_file: Path | None) -> str:
    problems = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            problems.append(_unknown_key(field, config_file))
        else:
            problems.append(f"setting {env_name(field)}: {message}" if field else message)
    return "invalid " + "; ".join(problems)


def _unknown_key(key: str, config_file: Path | None) -> str:
    # Only the YAML file brings keys the model lacks: unknown variables are never read, flags are fields.
    # The file's keys are the fields' names (any case), so the suggestion is spelled as a key too.
    closest = closest_setting(key)
    hint = f"did you mean {closest!r}?" if closest else "the settings are listed in --help"
    where = f"config file {config_file}: " if config_file is not None else ""
    return f"{where}unknown setting {key!r} ({hint})"
