"""Shared fixtures: a fake ARM on loopback, real azure-identity pointed at it, and exporters built on it."""

from __future__ import annotations

import gzip
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from exporter.exposition import CachedExposition
from exporter.refresher import Refresher
from exporter.settings import load_settings
from exporter.simulator.fakearm import FakeArm, FakeEstate
from exporter.wiring import build

FIXTURES = Path(__file__).parent / "fixtures"
SUB_A = "11111111-1111-1111-1111-111111111111"
SUB_B = "22222222-2222-2222-2222-222222222222"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", help="rewrite tests/golden/*.prom from the output")


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No developer credentials or settings may leak into a test, and nothing may probe IMDS."""
    for name in list(os.environ):
        if name.startswith(("AZURE_", "IDENTITY_", "MSI_", "IMDS_")):
            monkeypatch.delenv(name)


@pytest.fixture
def estate() -> FakeEstate:
    return FakeEstate()


@pytest.fixture
def arm(estate: FakeEstate, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeArm]:
    with FakeArm(estate) as fake:
        # azure-identity's real managed-identity flow (App Service flavour), over HTTP to the fake.
        monkeypatch.setenv("IDENTITY_ENDPOINT", fake.identity_endpoint)
        monkeypatch.setenv("IDENTITY_HEADER", fake.identity_header)
        yield fake


@dataclass
class Exporter:
    registry: CollectorRegistry
    refresher: Refresher
    exposition: CachedExposition

    def scrape(self, timeout: float = 60.0) -> str:
        """What Prometheus would get: refresh what is due, then render the text exposition.

        Rendered both ways, the cached production path and prometheus_client's, which must agree.
        """
        self.refresher.refresh_due(time.monotonic() + timeout)
        fast = b"".join(self.exposition.render()).decode()
        assert steady(fast) == steady(generate_latest(self.registry).decode())
        # What Prometheus gets (gzip): the cached gzip members and fresh ones, one stream of the same bytes.
        assert steady(gzip.decompress(b"".join(self.exposition.render_gzip())).decode()) == steady(fast)
        assert_every_series_once(fast)
        return fast

    def value(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)


@pytest.fixture
def make_exporter(arm: FakeArm) -> Iterator[Callable[..., Exporter]]:
    made: list[Exporter] = []

    def factory(clock: Callable[[], datetime] | None = None, **overrides: str) -> Exporter:
        settings = load_settings(overrides={"resource_manager_url": arm.url, "refresh_interval": "0s",
                                            "backup_vault_refresh_interval": "0s", **overrides})
        built = build(settings, clock=clock)
        exporter = Exporter(built.registry, built.refresher, built.exposition)
        made.append(exporter)
        return exporter

    yield factory
    for exporter in made:
        exporter.refresher.close()


_PROCESS_SAMPLE = re.compile(r"^process_\w+ .*$", re.MULTILINE)


def steady(exposition: str) -> str:
    """The exposition without the process collector's values, which move between two renders (CPU seconds,
    memory); their HELP and TYPE lines stay, so a missing or extra family still shows."""
    return _PROCESS_SAMPLE.sub("", exposition)


def assert_every_series_once(exposition: str) -> None:
    """No label set twice in one exposition: Prometheus would keep one sample and drop the other, so one
    of two items would silently vanish (the text parser accepts duplicates, so count them ourselves)."""
    seen: set[tuple[str, frozenset[tuple[str, str]]]] = set()
    duplicates = []
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            if key in seen:
                duplicates.append(key)
            seen.add(key)
    assert not duplicates, f"{len(duplicates)} series twice, e.g. {duplicates[0]}"


def drop_volatile(exposition: str) -> str:
    """Lines that change from run to run (timings, the Python version, which vault's response came last)
    are left out of golden files."""
    volatile = re.compile(r"^(# (HELP|TYPE) )?(azure_backup_api_request_duration_seconds|"
                          r"azure_backup_vault_scrape_duration_seconds|azure_backup_exporter_build_info|"
                          r"azure_backup_api_ratelimit_remaining|process_)")
    return "".join(line + "\n" for line in exposition.splitlines() if not volatile.match(line))


class Clock:
    """A wall clock that tests move by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def fixed_clock(when: datetime) -> Clock:
    return Clock(when)


NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
