"""The fake ARM of the benchmark, in its own process, so the exporter's RSS and CPU are its own.

    python -m bench.fake_server --estate L --latency 0.1 [--ratelimit] [--job-rate 0.5] [--manifest FILE]

Builds the estate (bench/estate.py), serves it on loopback with the managed-identity endpoint, runs the
job simulator, and prints one JSON line on stdout once it serves: the ARM URL, the identity environment
for azure-identity, the subscriptions and the estate's counts. The counters (FakeArm.stats()) are at
GET <url>/_fake/stats, a route the shipped fake does not have: this benchmark adds it (FakeArm.add_route).
It stops on SIGTERM or SIGINT, or after --max-seconds.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import signal
import sys
import threading
from pathlib import Path

from exporter.simulator.fakearm import RATELIMIT_CAPACITY, FakeArm

from .estate import EstateSpec, Simulator, build_estate

STATS_PATH = "/_fake/stats"  # bench/run.py reads the counters here


def _pair(text: str) -> tuple[float, float]:
    low, _, high = text.partition(",")
    return float(low), float(high or low)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.fake_server", description=__doc__.splitlines()[0])
    parser.add_argument("--estate", default="S", help="S, M, L or VAULTSxITEMS[xSUBSCRIPTIONS] (default S)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--latency", type=float, default=0.1, help="seconds added to every ARM reply")
    parser.add_argument("--page-size", type=int, default=200, help="entries per LIST page (ARM: 200)")
    parser.add_argument("--ratelimit", action="store_true",
                        help="enforce ARM's read bucket per subscription (429 when empty)")
    parser.add_argument("--capacity", type=int, default=RATELIMIT_CAPACITY, help="bucket size (ARM: 250)")
    parser.add_argument("--refill", type=float, default=25.0, help="reads put back per second (ARM: 25)")
    parser.add_argument("--job-rate", type=float, default=0.5, help="jobs the simulator starts per second")
    parser.add_argument("--job-seconds", type=_pair, default=(5.0, 25.0), metavar="LOW,HIGH",
                        help="how long a simulated job runs")
    parser.add_argument("--manifest", type=Path, help="write the vaults and items (JSON) here")
    parser.add_argument("--max-seconds", type=float, default=4 * 3600, help="exit after this long at most")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    spec = EstateSpec.parse(args.estate)
    bench = build_estate(spec, args.seed, run_seconds=args.job_seconds)
    gc.collect()
    gc.freeze()  # the estate lives for the whole run: keep the collector from walking it again and again
    if args.manifest:
        args.manifest.write_text(json.dumps(bench.manifest()))
    simulator = Simulator(bench, args.job_rate, args.job_seconds, seed=args.seed + 1)
    arm = FakeArm(bench.estate, page_size=args.page_size, latency=args.latency, ratelimit_refill=args.refill,
                  ratelimit_capacity=args.capacity, enforce_ratelimit=args.ratelimit, record_requests=False,
                  stats_extra=simulator.stats)
    arm.add_route(STATS_PATH, arm.stats)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with arm:
        simulator.start()
        print(json.dumps({
            "url": arm.url, "identity_env": arm.identity_env(), "subscriptions": bench.subscriptions,
            "estate": spec.name, "vaults": spec.vaults, "items": spec.items, "jobs": bench.jobs,
            "restores": bench.restores, "failed": bench.failed, "running_at_start": len(bench.running),
            "build_seconds": round(bench.build_seconds, 2), "latency": args.latency, "ratelimit": args.ratelimit,
        }), flush=True)
        stop.wait(args.max_seconds)
        simulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
