"""Wiring: the exporter's parts (ARM client, refresher, collector, exposition) built from settings.

The CLI (__main__) and the tests build the exporter here. server.py imports the Exporter type from this
module (for type checking only), so this module never imports server.py: no import cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from azure.identity import DefaultAzureCredential
from prometheus_client import CollectorRegistry

from . import __version__
from .arm import ArmClient
from .collector import BackupCollector, RegistryCollector
from .exposition import CachedExposition
from .ratelimit import RateLimiter
from .refresher import Refresher
from .settings import Settings
from .telemetry import Telemetry

RATE_LIMIT_BURST = 100.0  # of ARM's 250-read bucket per subscription, the exporter may spend 100 at once


@dataclass
class Exporter:
    registry: CollectorRegistry  # everything, for --once and the uncached path
    refresher: Refresher
    exposition: CachedExposition


def build(settings: Settings, clock: Callable[[], datetime] | None = None) -> Exporter:
    """The exporter's parts, wired: private registries, so registration never calls Azure."""
    telemetry_registry = CollectorRegistry()
    telemetry = Telemetry(telemetry_registry)
    credential = DefaultAzureCredential(exclude_interactive_browser_credential=True)
    client = ArmClient(
        settings.arm_url, credential, settings.token_scope, telemetry,
        timeout=settings.request_timeout.total_seconds(), user_agent=f"azure-backup-exporter/{__version__}",
        jobs_api_version=settings.jobs_api_version, vaults_api_version=settings.vaults_api_version,
        dataprotection_api_version=settings.dataprotection_api_version,
        pool_size=settings.concurrency,
        limiter=RateLimiter(rate=settings.rate_limit, burst=RATE_LIMIT_BURST))
    refresher = Refresher(settings, client, telemetry, clock) if clock else Refresher(settings, client, telemetry)
    collector = BackupCollector(refresher)
    registry = CollectorRegistry()
    registry.register(RegistryCollector(telemetry_registry))
    registry.register(collector)
    exposition = CachedExposition(collector, telemetry_registry)
    refresher.on_refreshed = exposition.prerender
    return Exporter(registry, refresher, exposition)
