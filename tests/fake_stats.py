"""The fake ARM's counters over HTTP, for tests: GET /_fake/stats serves FakeArm.stats().

Not an Azure API, so it is not built into the shipped simulator: tests register it through the fake's
extension point (FakeArm.add_route), as bench/fake_server.py does for the benchmark, which reads the
counters from another process.
"""

from __future__ import annotations

from exporter.simulator.fakearm import FakeArm

STATS_PATH = "/_fake/stats"


def serve_stats(arm: FakeArm) -> FakeArm:
    """Serve arm.stats() at GET STATS_PATH (no token; neither recorded nor counted); returns arm."""
    return arm.add_route(STATS_PATH, arm.stats)
