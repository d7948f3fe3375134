"""Command line: load settings, build the exporter (wiring.py), serve it until SIGTERM, or run it once."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from . import __version__
from .logsetup import configure_logging
from .server import ExporterApp, serve
from .settings import (
    Settings,
    SettingsError,
    describe_unknown_variable,
    env_name,
    load_settings,
    split_listen_address,
    unknown_environment,
)
from .webconfig import BasicAuth, ServerTls, WebConfig, WebConfigError, load_web_config
from .wiring import build

log = logging.getLogger("exporter")
ONCE_TIMEOUT = 600.0  # --once and the start-up refresh wait this long at most for every vault
# azure-identity's environment variables; --check-config shows which are set, secrets masked.
AUTH_ENV = ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH",
            "AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST", "IDENTITY_ENDPOINT", "IDENTITY_HEADER",
            "MSI_ENDPOINT")
SECRET_ENV = frozenset({"AZURE_CLIENT_SECRET", "IDENTITY_HEADER"})
COLLECTOR_PREFIX = "collector_"  # settings that are collector switches: --[no-]collector.<name>


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="azure-backup-exporter",
        description="Prometheus exporter for Azure Backup jobs of Recovery Services vaults and Backup vaults. "
                    "Every setting is also read from AZURE_BACKUP_EXPORTER_<NAME>; flags win.")
    parser.add_argument("--config.file", dest="config_file", type=Path, help="YAML file with settings")
    parser.add_argument("--web.listen-address", dest="listen_address", help="host:port to serve on")
    parser.add_argument("--web.config.file", dest="web_config_file", metavar="FILE",
                        help=f"{env_name('web_config_file')}: TLS and basic authentication, exporter-toolkit's "
                             "format (README, Securing /metrics)")
    parser.add_argument("--shard", dest="shard_spec", metavar="I/N",
                        help="watch only shard I of N (AZURE_BACKUP_EXPORTER_SHARD and _SHARDS)")
    for name, field in Settings.model_fields.items():
        if name.startswith(COLLECTOR_PREFIX):
            # node_exporter's style: --collector.tasks turns it on, --no-collector.tasks off.
            collector = name.removeprefix(COLLECTOR_PREFIX).replace("_", "-")
            parser.add_argument(f"--collector.{collector}", dest=name, action=argparse.BooleanOptionalAction,
                                default=None, help=f"{env_name(name)} (default: {'on' if field.default else 'off'})")
        elif name not in ("listen_address", "web_config_file", "shard", "shards"):
            parser.add_argument(f"--{name.replace('_', '-')}", dest=name, metavar="VALUE",
                                help=f"{env_name(name)} (default: "
                                     f"{_default_text(field.get_default(call_default_factory=True))})")
    parser.add_argument("--once", action="store_true", help="refresh once, print the metrics, exit")
    parser.add_argument("--check-config", action="store_true", help="validate and print the settings, exit")
    parser.add_argument("--demo", action="store_true",
                        help="run against a simulated Azure on loopback (no Azure account needed)")
    parser.add_argument("--version", action="version", version=f"azure-backup-exporter {__version__}")
    return parser


def _default_text(value: Any) -> str:
    if isinstance(value, list):  # as the setting is written: a comma list
        return ",".join(map(str, value)) or "none"
    return "none" if value in (None, "") else str(value)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides = {k: v for k, v in vars(args).items()
                 if v is not None and k in Settings.model_fields}
    if args.shard_spec is not None:
        shard, _, shards = args.shard_spec.partition("/")
        overrides.update(shard=shard, shards=shards or "1")
    demo = None
    if args.demo:
        demo = _start_demo(overrides)
    # A mistyped variable only warns: a newer deployment's variable must not stop an older exporter.
    unknown_env = unknown_environment(os.environ)
    try:
        settings = load_settings(args.config_file, overrides)
    except SettingsError as exc:
        # Still one line; the typo is often the cause ("no vaults to watch" with ..._VAULT set).
        notes = "".join(f"; {describe_unknown_variable(*item)}" for item in unknown_env.items())
        print(f"azure-backup-exporter: {exc}{notes}", file=sys.stderr)
        return 2
    try:
        web = load_web_config(Path(settings.web_config_file)) if settings.web_config_file else WebConfig()
    except WebConfigError as exc:
        print(f"azure-backup-exporter: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    for name, closest in unknown_env.items():
        log.warning("%s", describe_unknown_variable(name, closest))
    if args.check_config:
        print(json.dumps({"settings": settings.effective(), "auth_environment": _auth_environment(),
                          "unknown_environment": unknown_env}, indent=2))
        return 0
    if demo is not None:
        log.warning("DEMO MODE: the data is SIMULATED by a fake Azure on %s; nothing here is real", demo.arm_url)
    try:
        return run_once(settings) if args.once else run_server(settings, web)
    finally:
        if demo is not None:
            demo.stop()


def _start_demo(overrides: dict[str, Any]) -> Any:
    # The product's only contact with the simulator: loaded lazily, for --demo only (tests/test_layout.py).
    from .simulator.demo import start_demo  # noqa: PLC0415

    env = start_demo()
    # The real managed-identity flow of azure-identity, pointed at the simulator.
    os.environ["IDENTITY_ENDPOINT"] = env.identity_endpoint
    os.environ["IDENTITY_HEADER"] = env.identity_header
    overrides["resource_manager_url"] = env.arm_url
    # One subscription by discovery, the rest as explicit vault IDs: both code paths run.
    overrides.setdefault("subscriptions", ",".join(env.subscriptions[:1]))
    overrides.setdefault("vaults", ",".join(v for v in env.vault_ids
                                            if env.subscriptions[0] not in v.lower()))
    overrides.setdefault("refresh_interval", "10s")
    overrides.setdefault("backup_vault_refresh_interval", "10s")  # the demo's Backup vaults change as quickly
    # The demo's resources with no backup: one exempted by this tag, the team tag shown on each resource.
    overrides.setdefault("coverage_exclude_tags", "backup=none")
    overrides.setdefault("tag_labels", "team")
    return env


def _auth_environment() -> dict[str, str]:
    return {name: ("****" if name in SECRET_ENV else os.environ[name]) for name in AUTH_ENV if os.environ.get(name)}


def run_once(settings: Settings) -> int:
    exporter = build(settings)
    exporter.refresher.refresh_due(time.monotonic() + ONCE_TIMEOUT)
    sys.stdout.write(b"".join(exporter.exposition.render()).decode())
    exporter.refresher.close()
    return 0 if any(snap.success for snap in exporter.refresher.snapshots()) else 1


def run_server(settings: Settings, web: WebConfig | None = None) -> int:
    web = web or WebConfig()
    exporter = build(settings)
    refresher = exporter.refresher
    host, port = split_listen_address(settings.listen_address)
    app = ExporterApp(exporter, lambda: [s.ref.path for s in refresher.snapshots()],
                      settings.scrape_timeout.total_seconds(), BasicAuth(web.users) if web.users else None)
    try:
        server, _ = serve(app, host, port, ServerTls(web.tls) if web.tls else None)
    except (OSError, WebConfigError) as exc:
        log.error("cannot listen on %s: %s", settings.listen_address, exc)
        return 1
    log.info("azure-backup-exporter %s listening on %s (%s, %s); settings: %s", __version__,
             settings.listen_address, "https" if web.tls else "http",
             f"basic auth for {len(web.users)} users" if web.users else "no basic auth",
             json.dumps(settings.effective()))
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    # Start the first refresh now so /-/ready turns green without waiting for a scrape.
    threading.Thread(target=refresher.refresh_due, args=(time.monotonic() + ONCE_TIMEOUT,), daemon=True).start()
    stop.wait()
    log.info("shutting down")
    server.shutdown()
    server.server_close()
    refresher.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
