"""Backup-vault estates at scale (issue 19, point 4): ARM reads an hour at the defaults, peak requests a second
per subscription, the cold refresh against the pacing's ideal, peak RSS and series per instance.

    python -m bench.bv_scale --estates S,M --subscriptions 1,5 [--factor 60] [--out docs/performance.md]

The fake ARM (exporter/simulator/fakearm.py) and the exporter run in this one process, over HTTP on loopback,
with no added latency. The exporter keeps its defaults (RATE_LIMIT 20 reads/s per subscription with a burst of
100, CONCURRENCY 8) and discovers the vaults from the estate's subscriptions. Each instance has a daily
policy and 14 days of daily backup jobs (the Backup vault's list keeps about 14 days). Two runs per estate:

1. The cold refresh at the real pacing: when every job status is published (every vault's list half done),
   when the ARM calls stop, and the pacing's ideal: (busiest subscription's calls - burst) / RATE_LIMIT.
2. An hour at the defaults with time scaled down by --factor: REFRESH_INTERVAL, BACKUP_VAULT_REFRESH_INTERVAL,
   ITEMS_REFRESH_INTERVAL, DISCOVERY_INTERVAL and the scrape interval (60 s) divided by the factor, RATE_LIMIT
   multiplied by it, and each instance's next daily backup arriving factor times sooner. The calls of those
   3600 / factor seconds are the reads of an hour at the defaults.

With --out it writes the table between the report's `<!-- bv-scale:start -->` and `<!-- bv-scale:end -->`.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import resource
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.dpp import KINDS, write_between_markers
from exporter.settings import load_settings
from exporter.simulator.fakearm import (
    FakeArm,
    FakeBackupVault,
    FakeEstate,
    make_backup_instance,
    make_dpp_job,
    make_dpp_policy,
)
from exporter.vault import VaultSnapshot
from exporter.wiring import build

START, END = "<!-- bv-scale:start -->", "<!-- bv-scale:end -->"
DAYS = 14
PAGE = 200  # the fake's job page, as Recovery Services lists; the real Backup-vault page size is not known
RATE_LIMIT, BURST = 20.0, 100.0  # the exporter's defaults (settings.py, wiring.py)
SCRAPE_INTERVAL = 60.0  # Prometheus' default scrape interval
_STATUS_ITEM = re.compile(r'^azure_backup_job_last_status\{.*?backup_item="([^"]+)"', re.MULTILINE)
VAULT_READS_PER_HOUR = 4  # the vault's own resource, every 3 ITEMS_REFRESH_INTERVALs (issue 20, vault_base.py)
ESTATES = {"S": (5, 50), "M": (20, 100), "L": (200, 100)}  # vaults x instances per vault


@dataclass
class BuiltEstate:
    estate: FakeEstate
    subscriptions: list[str]
    vaults: list[FakeBackupVault]
    instances: list[tuple[FakeBackupVault, str, str]]  # vault, kind, data source name


def build_estate(vaults: int, instances: int, subscriptions: int, now: datetime) -> BuiltEstate:
    """Vaults spread evenly over the subscriptions; every instance backed up daily for DAYS days."""
    estate = FakeEstate()
    subs = [f"{n:08d}-1919-1919-1919-191919191919" for n in range(subscriptions)]
    kinds = [kind for kind, share in KINDS for _ in range(share)]
    built = BuiltEstate(estate, subs, [], [])
    for v in range(vaults):
        vault = estate.add_backup_vault(subs[v % subscriptions], "rg-backup", f"bv-{v:03d}")
        built.vaults.append(vault)
        for kind, _ in KINDS:
            # PostgreSQL flexible servers allow weekly schedules only; their daily jobs still make the list's size
            interval = "P1W" if "PostgreSQL" in kind else "P1D"
            estate.add_dpp_policy(vault.name, make_dpp_policy(vault=vault, name=f"{kind}-policy",
                                                              datasource_type=kind, interval=interval))
        for n in range(instances):
            kind = kinds[n % len(kinds)]
            name = f"{kind.lower()[5:12]}-{v:03d}-{n:03d}"
            estate.add_backup_instance(vault.name, make_backup_instance(
                vault=vault, datasource_type=kind, datasource_name=name, policy=f"{kind}-policy"))
            built.instances.append((vault, kind, name))
            for day in range(DAYS):
                start = now - timedelta(days=day, hours=1 + n % 20)
                estate.add_dpp_job(vault.name, make_dpp_job(
                    f"{v:04d}{n:04d}-0000-0000-0000-{day:012d}", vault=vault, datasource_type=kind,
                    datasource_name=name, policy=f"{kind}-policy", start=start, end=start + timedelta(minutes=5)))
    return built


def _subscription(path: str) -> str:
    parts = path.split("/")
    return parts[2].lower() if len(parts) > 2 and parts[1].lower() == "subscriptions" else ""


def _operation(path: str) -> str:
    tail = path.rstrip("/").rsplit("/", 2)
    if tail[-1] in ("backupJobs", "backupInstances", "backupPolicies", "recoveryPoints", "backupVaults"):
        return tail[-1]
    if tail[-2] == "backupVaults":
        return "backupVaults/{name}"
    return "backupJobs/{id}" if tail[-2] == "backupJobs" else "other"


def _arm_calls(arm: FakeArm, since: int) -> list[Any]:
    return [r for r in list(arm.requests)[since:] if not r.path.startswith("/msi")]


def _exporter(arm: FakeArm, built: BuiltEstate, **overrides: str) -> Any:
    os.environ["IDENTITY_ENDPOINT"], os.environ["IDENTITY_HEADER"] = arm.identity_endpoint, arm.identity_header
    settings = load_settings(overrides={"resource_manager_url": arm.url, "subscriptions": ",".join(built.subscriptions),
                                        "vault_types": "backup", **overrides})
    return build(settings)


def cold_refresh(built: BuiltEstate, timeout: float) -> dict[str, Any]:
    """The first refresh of every vault at the default pacing, and what a scrape then shows."""
    with FakeArm(built.estate, dpp_page_size=PAGE) as arm:
        exporter = _exporter(arm, built)
        statuses_out: dict[str, float] = {}
        prerender = exporter.refresher.on_refreshed

        def note(snapshot: VaultSnapshot) -> None:  # the first call for a vault is its list half, published
            statuses_out.setdefault(snapshot.ref.key, time.monotonic())
            if prerender is not None:
                prerender(snapshot)

        exporter.refresher.on_refreshed = note
        started = time.monotonic()
        deadline = started + timeout
        while not exporter.refresher.ready() and time.monotonic() < deadline:
            exporter.refresher.refresh_due(min(deadline, time.monotonic() + 30.0))
        seconds = time.monotonic() - started
        calls = _arm_calls(arm, 0)
        text = b"".join(exporter.exposition.render()).decode()
        _stop(exporter)
    by_sub = Counter(_subscription(r.path) for r in calls)
    per_second = Counter((_subscription(r.path), int(r.at)) for r in calls)
    busiest = max(by_sub.values(), default=0)
    series = sum(1 for line in text.splitlines() if line.startswith("azure_backup_"))
    return {"calls": len(calls), "busiest_subscription_calls": busiest, "seconds": seconds,
            "statuses_out_s": max(statuses_out.values(), default=started) - started,
            "ideal_s": max(0.0, (busiest - BURST) / RATE_LIMIT), "ready": exporter.refresher.ready(),
            "peak_per_second": max(per_second.values(), default=0),
            "by_operation": dict(Counter(_operation(r.path) for r in calls)), "series": series,
            "missing_status": len({name for _, _, name in built.instances} - set(_STATUS_ITEM.findall(text)))}


def scaled_hour(built: BuiltEstate, factor: float) -> dict[str, Any]:
    """An hour at the defaults in 3600 / factor seconds (see the module's docstring); calls counted after the
    cold refresh, which run 1 measures."""
    scaled = {"refresh_interval": f"{60 / factor}s", "backup_vault_refresh_interval": f"{300 / factor}s",
              "items_refresh_interval": f"{300 / factor}s", "discovery_interval": f"{3600 / factor}s",
              "rate_limit": str(RATE_LIMIT * factor)}
    window, tick = 3600 / factor, SCRAPE_INTERVAL / factor
    with FakeArm(built.estate, dpp_page_size=PAGE) as arm:
        exporter = _exporter(arm, built, **scaled)
        exporter.refresher.refresh_due(time.monotonic() + 3600)
        since, started, added = len(arm.requests), time.monotonic(), 0
        while (elapsed := time.monotonic() - started) < window:
            # each instance's next daily backup: len(instances) / 24 jobs an hour at the defaults
            due = int(len(built.instances) * min(elapsed, window) / window / 24)
            while added < due:
                _add_todays_backup(built, added)
                added += 1
            exporter.refresher.refresh_due(time.monotonic() + tick)
            time.sleep(max(0.0, tick - (time.monotonic() - started - elapsed)))
        calls = _arm_calls(arm, since)
        _stop(exporter)
    by_sub = Counter(_subscription(r.path) for r in calls)
    return {"factor": factor, "window_s": window, "new_jobs": added, "calls_per_hour": len(calls),
            "busiest_subscription_per_second": max(by_sub.values(), default=0) / 3600,
            "by_operation": dict(Counter(_operation(r.path) for r in calls))}


def _stop(exporter: Any) -> None:
    """Stop refreshing, and wait for the refreshes in flight, before the fake stops answering them."""
    exporter.refresher.close()
    exporter.refresher._executor.shutdown(wait=True, cancel_futures=True)


def _add_todays_backup(built: BuiltEstate, n: int) -> None:
    vault, kind, name = built.instances[n % len(built.instances)]
    start = datetime.now(UTC) - timedelta(minutes=6)
    built.estate.add_dpp_job(vault.name, make_dpp_job(
        f"ffff{n:04d}-0000-0000-0000-{n:012d}", vault=vault, datasource_type=kind, datasource_name=name,
        policy=f"{kind}-policy", start=start, end=start + timedelta(minutes=5)))


def model_per_hour(vaults: int, instances: int, subscriptions: int, after: bool) -> float:
    """ARM reads an hour at the defaults, from the code. Before issue 19 (the at-scale research note's model,
    section 2.3): every job page each minute, instance and policy lists and a recovery-point list per instance
    every 5 minutes, two detail GETs per new job, two discovery lists per subscription. After: every job page
    every 5 minutes; the instances and policies every second list, because the items come due a moment after
    the list that could take them (both intervals are 5 minutes, and the items age from their own list, later
    than the refresh's start); one detail GET per new job (at 5 minutes a job is mostly first seen finished);
    the vault's own resource every 3 items intervals (issue 20: at most 4); the Backup vaults' discovery list."""
    pages = math.ceil(DAYS * instances / PAGE)
    if not after:
        return vaults * (60 * pages + 12 * (2 + instances) + 2 * instances / 24) + 2 * subscriptions
    return vaults * (12 * pages + 6 * 2 + instances / 24 + VAULT_READS_PER_HOUR) + subscriptions


def model_cold_calls(vaults: int, instances: int, after: bool) -> int:
    """A vault's cold refresh: every job page, the latest job of each instance, instances, policies, the vault
    itself (issue 20), and before issue 19 a recovery-point list per instance."""
    return vaults * (math.ceil(DAYS * instances / PAGE) + instances + 3 + (0 if after else instances))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(name: str, subscriptions: int, factor: float, timeout: float) -> dict[str, Any]:
    vaults, instances = ESTATES[name]
    now = datetime.now(UTC).replace(microsecond=0)
    built_at = time.monotonic()
    built = build_estate(vaults, instances, subscriptions, now)
    result: dict[str, Any] = {"estate": name, "vaults": vaults, "instances": instances,
                              "subscriptions": subscriptions, "build_s": time.monotonic() - built_at}
    result["cold"] = cold_refresh(built, timeout)
    result["hour"] = scaled_hour(built, factor)
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def report(results: list[dict[str, Any]]) -> str:
    rows = ["| estate (vaults x instances) | subs | ARM reads/h at the defaults: model before / model after / "
            "**measured** | per s, busiest subscription | cold: calls (model) | cold: every status out / calls "
            "stop / pacing ideal | peak req/s per subscription | series per instance | peak RSS (fake + exporter) |",
            "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        v, i, s = r["vaults"], r["instances"], r["subscriptions"]
        cold, hour = r["cold"], r["hour"]
        ratio = f"{cold['seconds'] / cold['ideal_s']:.2f}x" if cold["ideal_s"] else "within the burst"
        rows.append(
            f"| {r['estate']} ({v} x {i} = {v * i:,}) | {s} | {model_per_hour(v, i, s, False):,.0f} / "
            f"{model_per_hour(v, i, s, True):,.0f} / **{hour['calls_per_hour']:,}** | "
            f"{hour['busiest_subscription_per_second']:.2f} | {cold['calls']:,} ({model_cold_calls(v, i, True):,}) | "
            f"{cold['statuses_out_s']:.1f} s / {cold['seconds']:.1f} s / {cold['ideal_s']:.1f} s ({ratio}) | "
            f"{cold['peak_per_second']} | {cold['series'] / (v * i):.1f} | {r['peak_rss_mb']:.0f} MB |")
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bv_scale", description=__doc__.splitlines()[0])
    parser.add_argument("--estates", default="S,M")
    parser.add_argument("--subscriptions", default="1,5")
    parser.add_argument("--factor", type=float, default=60.0, help="time scale of the hour at the defaults")
    parser.add_argument("--timeout", type=float, default=3600.0, help="bound of each cold refresh, seconds")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    results = []
    for name in args.estates.split(","):
        for subs in map(int, args.subscriptions.split(",")):
            results.append(measure(name, subs, args.factor, args.timeout))
            print(results[-1], file=sys.stderr, flush=True)
    table = report(results)
    sys.stdout.write(table)
    return write_between_markers(args.out, table, START, END) if args.out else 0


if __name__ == "__main__":
    sys.exit(main())
