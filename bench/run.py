"""The benchmark: the exporter (`python -m exporter`, its own process) against the fake ARM (another).

    python -m bench.run --estates S,M,L --out docs/performance.md
    python -m bench.run --estates M --soak 1800 --out docs/performance.md   # adds the 30-minute soak of M

Per estate, three runs, each with a fresh fake (bench/fake_server.py) and a fresh exporter that gets its
tokens through azure-identity's managed-identity flow from the fake, and discovers the vaults from
the estate's subscriptions:

A. no throttling, REFRESH_INTERVAL 1h: the cold refresh (until the ARM calls stop; the calls against the
   ideal ceil(calls / CONCURRENCY) x latency), with nothing scraping meanwhile; then warm scrapes with
   and without gzip (no refresh is due) and the exporter's CPU per scrape, the RSS, and for reference
   prometheus_client building and rendering every family of the same samples.
B. ARM's token bucket enforced per subscription, REFRESH_INTERVAL short (10 s): the cold refresh under
   the bucket (429s, and whether any vault or item lost data), then scrapes every interval, as
   Prometheus would, until the calls per interval settle, and the steady state measured over a window
   against the floor (one incremental list per vault plus the details of the jobs that finished).
   --soak N keeps scraping N seconds more and reports the RSS at its start and end.
C. as A, polling /metrics (cached data only) during the cold refresh until every item has a job status.

Every wait is bounded in time and every loop in count; everything listens on 127.0.0.1 only.
Results go to --out (Markdown, see bench/report.py) and --json.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import math
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .estate import EstateSpec
from .fake_server import STATS_PATH
from .measure import (
    ROOT,
    Coverage,
    Reply,
    cpu_seconds,
    exporter_version,
    http_get,
    machine,
    memory_mb,
    percentile,
    read_exposition,
    rebuild_seconds,
    status_items,
)
from .report import merge_previous, render

Stats = dict[str, Any]
# Listed together on ITEMS_REFRESH_INTERVAL: the protected items and the backup policies.
ITEMS_OPERATIONS = ("items_list", "items_next_page", "policies_list", "policies_next_page")
DISCOVERY_OPERATIONS = ("vaults_list",)


@dataclass
class Options:
    estates: list[str] = field(default_factory=lambda: ["S"])
    latency: float = 0.1
    concurrency: int = 8
    seed: int = 1
    refresh_interval: float = 10.0  # run B
    items_refresh_interval: float = 60.0  # run B
    job_rate: float = 0.5
    job_seconds: tuple[float, float] = (5.0, 25.0)
    steady: float = 60.0
    settle_max: float = 300.0
    scrapes: int = 20
    scrape_budget: float = 60.0
    cold_timeout: float = 3600.0
    soak: float = 0.0
    bucket: bool = True
    bucket_capacity: int = 250
    bucket_refill: float = 25.0
    quiet: float = 2.0
    exporter_env: dict[str, str] = field(default_factory=dict)
    workdir: Path | None = None
    progress: Callable[[str], None] = field(default=lambda message: None, repr=False)


class BenchError(RuntimeError):
    """A process died or a bounded wait ran out; the message says where the logs are."""


# The settings that expose everything (README, "Series per item"); the default exposes less.
ALL_SERIES_ENV = {"AZURE_BACKUP_EXPORTER_COLLECTOR_TASKS": "true", "AZURE_BACKUP_EXPORTER_COLLECTOR_JOB_INFO": "true",
                  "AZURE_BACKUP_EXPORTER_COLLECTOR_ITEMS": "true", "AZURE_BACKUP_EXPORTER_STATE_SERIES": "all"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(process: subprocess.Popen[bytes], timeout: float = 15.0) -> int | None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)
    return process.returncode


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# --- the two processes ---------------------------------------------------------------------------

class FakeProcess:
    """bench.fake_server in its own process; its counters over HTTP."""

    def __init__(self, spec: EstateSpec, options: Options, workdir: Path, *, bucket: bool, name: str) -> None:
        self.manifest_path = workdir / f"{name}-manifest.json"
        self.log_path = workdir / f"{name}-fake.log"
        command = [sys.executable, "-m", "bench.fake_server", "--estate", spec.name, "--seed", str(options.seed),
                   "--latency", str(options.latency), "--job-rate", str(options.job_rate),
                   "--job-seconds", ",".join(str(s) for s in options.job_seconds),
                   "--manifest", str(self.manifest_path), "--capacity", str(options.bucket_capacity),
                   "--refill", str(options.bucket_refill),
                   "--max-seconds", str(options.cold_timeout * 2 + options.soak + 3600)]
        if bucket:
            command.append("--ratelimit")
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=self._log)
        self.pid = self.process.pid
        self.info = self._first_line(timeout=600.0)
        self.url: str = self.info["url"]
        self.port = int(self.url.rsplit(":", 1)[1])
        self.manifest: dict[str, Any] = json.loads(self.manifest_path.read_text())
        self.items = [tuple(pair) for pair in self.manifest["items"]]
        self.iaas_items = [tuple(pair) for pair in self.manifest["iaas_items"]]
        self.vault_names = [vault_id.rsplit("/", 1)[1] for vault_id in self.manifest["vaults"]]

    def _first_line(self, timeout: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(f"the fake ARM exited ({self.process.returncode}): {_tail(self.log_path)}")
            readable, _, _ = select.select([self.process.stdout], [], [], 0.5)
            if readable:
                line = self.process.stdout.readline()
                if line:
                    return dict(json.loads(line))
        raise BenchError(f"the fake ARM did not start within {timeout:.0f}s; log: {self.log_path}")

    def stats(self) -> Stats:
        reply = http_get(self.port, STATS_PATH, timeout=30)
        if reply.status != 200:
            raise BenchError(f"{STATS_PATH} answered {reply.status}")
        return dict(json.loads(reply.body))

    def stop(self) -> None:
        _stop(self.process)
        if self.process.stdout is not None:
            self.process.stdout.close()
        if not self._log.closed:
            self._log.close()


class ExporterProcess:
    """`python -m exporter` against the fake, with the managed-identity environment azure-identity reads."""

    def __init__(self, fake: FakeProcess, options: Options, workdir: Path, *, name: str,
                 refresh_interval: float, items_refresh_interval: float,
                 series_env: dict[str, str] | None = None) -> None:
        self.port = _free_port()
        self.log_path = workdir / f"{name}-exporter.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "IDENTITY_", "MSI_", "IMDS_"))}
        env.update(fake.info["identity_env"])
        env.update({
            "AZURE_BACKUP_EXPORTER_RESOURCE_MANAGER_URL": fake.url,
            "AZURE_BACKUP_EXPORTER_SUBSCRIPTIONS": ",".join(fake.info["subscriptions"]),
            "AZURE_BACKUP_EXPORTER_REFRESH_INTERVAL": f"{refresh_interval}s",
            "AZURE_BACKUP_EXPORTER_ITEMS_REFRESH_INTERVAL": f"{items_refresh_interval}s",
            "AZURE_BACKUP_EXPORTER_CONCURRENCY": str(options.concurrency),
            "AZURE_BACKUP_EXPORTER_LISTEN_ADDRESS": f"127.0.0.1:{self.port}",
        })
        env.update(series_env or {})
        env.update(options.exporter_env)
        self._log = self.log_path.open("wb")
        self.started_at = time.time()
        self.process = subprocess.Popen([sys.executable, "-m", "exporter"], cwd=ROOT, env=env,
                                        stdout=self._log, stderr=subprocess.STDOUT)
        self.pid = self.process.pid

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise BenchError(f"the exporter exited ({self.process.returncode}): {_tail(self.log_path)}")

    def ready(self) -> bool:
        try:
            return http_get(self.port, "/-/ready", timeout=10).status == 200
        except OSError:
            return False  # not listening yet

    def scrape(self, *, gzip: bool = False, timeout_header: float | None = 0.0, timeout: float = 120.0) -> Reply:
        """GET /metrics as Prometheus would; timeout_header 0 asks for cached data only (no waiting)."""
        headers = {"Accept-Encoding": "gzip" if gzip else "identity"}
        if timeout_header is not None:
            headers["X-Prometheus-Scrape-Timeout-Seconds"] = str(timeout_header)
        reply = http_get(self.port, "/metrics", headers, timeout=timeout)
        if reply.status != 200:
            raise BenchError(f"/metrics answered {reply.status}")
        return reply

    def memory(self) -> dict[str, float]:
        return memory_mb(self.pid)

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def stop(self) -> int | None:
        code = _stop(self.process)
        self._log.close()
        return code


# --- phases ----------------------------------------------------------------------------------------

def _delta(after: Stats, before: Stats) -> dict[str, int]:
    """Replies per operation between two stats snapshots (all statuses)."""
    totals: dict[str, int] = {}
    for operation, statuses in after["requests"].items():
        earlier = before["requests"].get(operation, {})
        totals[operation] = sum(statuses.values()) - sum(earlier.values())
    return totals


def _refresh_calls(counts: dict[str, int]) -> int:
    """ARM calls of the job refreshes: lists, their next pages and details (not items and policies, not
    discovery)."""
    return sum(n for op, n in counts.items() if op not in ("identity", *ITEMS_OPERATIONS, *DISCOVERY_OPERATIONS))


def _arm_calls(counts: dict[str, int]) -> int:
    return sum(n for op, n in counts.items() if op != "identity")


def _extra(stats: Stats, name: str) -> int:
    return int(stats.get("extra", {}).get(name, 0))


def _wait_cold(exporter: ExporterProcess, fake: FakeProcess, options: Options, *,
               poll_metrics: bool) -> dict[str, Any]:
    """Poll until every vault's first refresh is done and ARM is quiet; with poll_metrics also scrape (cached
    data only) until every item has a job status. Returns the times (seconds from the exporter's start)."""
    started = exporter.started_at
    deadline = time.monotonic() + options.cold_timeout
    # status_s: the poll that first saw every item with a status; status_after_s: the poll before it
    result: dict[str, Any] = {"status_s": None, "status_after_s": None, "ready_s": None, "metric_polls": 0,
                              "poll_seconds": []}
    next_poll = 0.0
    while True:
        if time.monotonic() > deadline:
            raise BenchError(f"the cold refresh took more than {options.cold_timeout:.0f}s; log: {exporter.log_path}")
        exporter.check_alive()
        now = time.time()
        if result["ready_s"] is None and exporter.ready():
            result["ready_s"] = time.time() - started
        if poll_metrics and result["status_s"] is None and time.monotonic() >= next_poll:
            reply: Reply | None = None
            asked = time.time() - started  # the exporter renders after this: data incomplete then was so later
            with contextlib.suppress(OSError):  # not listening yet
                reply = exporter.scrape()
            if reply is not None:
                result["metric_polls"] += 1
                result["poll_seconds"].append(reply.seconds)
                parsing = time.perf_counter()
                found = status_items(reply.body)
                if all(item in found for item in fake.items):
                    result["status_s"] = time.time() - started
                else:
                    result["status_after_s"] = asked
                # keep the polls' cost (the exporter's and the harness's) to about a quarter of the time
                next_poll = time.monotonic() + max(0.5, 3 * (reply.seconds + time.perf_counter() - parsing))
        stats = fake.stats()
        last = stats.get("last_arm_request_at")
        quiet = stats["in_flight"] == 0 and last is not None and now - last >= options.quiet
        if result["ready_s"] is not None and quiet and (result["status_s"] is not None or not poll_metrics):
            break
        if result["ready_s"] is not None and quiet and poll_metrics and result["status_s"] is None:
            # every vault is done and ARM is quiet, yet some item has no status: one last look, then report it
            coverage = read_exposition(exporter.scrape().body)
            result["missing_status_at_end"] = coverage.missing(fake.items)
            if result["missing_status_at_end"] == 0:
                result["status_s"] = time.time() - started
            break
        time.sleep(0.2)
    result["stats"] = stats
    first, last = stats.get("first_arm_request_at"), stats.get("last_arm_request_at")
    result["first_call_s"] = first - started if first is not None else None
    result["calls_stop_s"] = last - started if last is not None else None
    list_ends = [stats["last_at"][op] for op in ("jobs_list", "jobs_next_page") if op in stats["last_at"]]
    result["lists_done_s"] = max(list_ends) - started if list_ends else None
    return result


def _warm_scrapes(exporter: ExporterProcess, options: Options, *, gzip: bool) -> dict[str, Any]:
    times: list[float] = []
    size = 0
    deadline = time.monotonic() + options.scrape_budget
    cpu = exporter.cpu()
    for _ in range(options.scrapes):
        reply = exporter.scrape(gzip=gzip)
        if gzip and reply.headers.get("content-encoding") != "gzip":
            raise BenchError("/metrics did not answer gzip to Accept-Encoding: gzip")
        times.append(reply.seconds)
        size = len(reply.body)
        if time.monotonic() > deadline:
            break
    return {"n": len(times), "median_s": percentile(times, 0.5), "p99_s": percentile(times, 0.99), "bytes": size,
            "cpu_s": (exporter.cpu() - cpu) / len(times)}


def run_cold_and_warm(spec: EstateSpec, options: Options, workdir: Path) -> dict[str, Any]:
    """Run A: no throttling; the cold refresh (nothing scrapes /metrics meanwhile), the first scrape (which
    renders every vault), warm scrapes, memory."""
    fake = FakeProcess(spec, options, workdir, bucket=False, name=f"{spec.name}-A")
    try:
        options.progress(f"{spec.name} run A: estate built in {fake.info['build_seconds']}s; starting the exporter")
        exporter = ExporterProcess(fake, options, workdir, name=f"{spec.name}-A", refresh_interval=3600,
                                   items_refresh_interval=3600)
        try:
            cold = _wait_cold(exporter, fake, options, poll_metrics=False)
            stats = cold.pop("stats")
            counts = {op: sum(statuses.values()) for op, statuses in stats["requests"].items()}
            calls = _arm_calls(counts)
            ideal = math.ceil(calls / options.concurrency) * options.latency
            # ARM's own budget is a floor too: a subscription's calls beyond its bucket come at the refill rate
            busiest = max(stats["by_subscription"].values(), default=0)
            arm_bound = max(0.0, busiest - options.bucket_capacity) / options.bucket_refill
            cold.update(calls=calls, calls_by_operation=counts, throttled=stats["arm_throttled"], ideal_s=ideal,
                        busiest_subscription_calls=busiest, arm_budget_bound_s=arm_bound,
                        ratio=cold["calls_stop_s"] / ideal if ideal else math.nan, cpu_s=exporter.cpu(),
                        fake_cpu_s=cpu_seconds(fake.pid), memory=exporter.memory())
            cold.pop("poll_seconds")
            options.progress(f"{spec.name} run A: cold done in {cold['calls_stop_s']:.1f}s, {calls} calls; "
                             "warm scrapes")
            cpu = exporter.cpu()
            first = exporter.scrape()
            first_cpu = exporter.cpu() - cpu
            coverage = read_exposition(first.body)
            # the ARM calls as the exporter saw them: mean time per call, and how many were in flight on average
            cold["mean_call_s"] = coverage.mean_call_s
            cold["in_flight_avg"] = coverage.api_seconds / (cold["calls_stop_s"] - cold["first_call_s"])
            warm: dict[str, Any] = {
                "first_s": first.seconds, "first_cpu_s": first_cpu, "series": coverage.series,
                "missing_status": coverage.missing(fake.items),
                "failed_vaults": coverage.failed_vaults(fake.vault_names),
                "plain": _warm_scrapes(exporter, options, gzip=False),
                "gzip": _warm_scrapes(exporter, options, gzip=True),
            }
            warm["us_per_series"] = float(warm["plain"]["median_s"]) / max(1, coverage.series) * 1e6
            # the reference for the bytes on the wire: the whole text compressed as one gzip stream, level 1
            warm["gzip_whole_bytes"] = len(gzip.compress(first.body, compresslevel=1))
            memory = exporter.memory()
        finally:
            exporter.stop()
        fake.stop()
        options.progress(f"{spec.name} run A: prometheus_client rendering the same samples, for reference")
        warm["rebuild_s"], warm["rebuild_samples"] = rebuild_seconds(first.body)
        return {"cold": cold, "warm": warm, "memory": memory, "estate": fake.info}
    finally:
        fake.stop()


def run_status(spec: EstateSpec, options: Options, workdir: Path) -> dict[str, Any]:
    """Run C: no throttling; the cold refresh again, this time polling /metrics (cached data only) until every
    item has a job status. The polls cost the exporter some time, so its cold times are run A's."""
    fake = FakeProcess(spec, options, workdir, bucket=False, name=f"{spec.name}-C")
    try:
        options.progress(f"{spec.name} run C: polling for job status during the cold refresh")
        exporter = ExporterProcess(fake, options, workdir, name=f"{spec.name}-C", refresh_interval=3600,
                                   items_refresh_interval=3600)
        try:
            cold = _wait_cold(exporter, fake, options, poll_metrics=True)
        finally:
            exporter.stop()
        stats = cold.pop("stats")
        polls = cold.pop("poll_seconds")
        cold["poll_median_s"] = percentile(polls, 0.5) if polls else None
        cold["calls"] = stats["arm_requests"]
        return cold
    finally:
        fake.stop()


def _check(exporter: ExporterProcess, fake: FakeProcess, timeout_header: float | None) -> dict[str, Any]:
    reply = exporter.scrape(timeout_header=timeout_header)
    coverage = read_exposition(reply.body)
    return {"failed_vaults": coverage.failed_vaults(fake.vault_names),
            "missing_status": coverage.missing(fake.items),
            "iaas_backups_with_tasks": coverage.with_tasks(fake.iaas_items),
            "iaas_items": len(fake.iaas_items), "exporter_throttled_total": coverage.throttled_total,
            "scrape_s": reply.seconds, "series": coverage.series}


class _Scraper:
    """Scrapes every refresh interval, as Prometheus would, and keeps the fake's counters per period."""

    def __init__(self, exporter: ExporterProcess, fake: FakeProcess, options: Options) -> None:
        self.exporter, self.fake, self.options = exporter, fake, options
        # a little more than the interval, so a refresh is always due when the scrape arrives
        self.period = options.refresh_interval * 1.05 + 0.2
        self.next_at = time.monotonic()
        self.scrape_seconds: list[float] = []
        self.last: Coverage | None = None

    def tick(self) -> Stats:
        """Wait for the next period, scrape, return the fake's counters right before the scrape."""
        time.sleep(max(0.0, self.next_at - time.monotonic()))
        self.next_at = max(self.next_at + self.period, time.monotonic())
        self.exporter.check_alive()
        stats = self.fake.stats()
        reply = self.exporter.scrape(timeout_header=self.options.refresh_interval)
        self.scrape_seconds.append(reply.seconds)
        self.last = read_exposition(reply.body)
        return stats


def _settle(scraper: _Scraper, fake: FakeProcess, options: Options) -> dict[str, Any]:
    """Scrape until a period's calls look like steady state: no backlog of details, no 429s, and about as
    many calls as the period before. Bounded by --settle-max."""
    started = time.monotonic()
    before = scraper.tick()
    previous: int | None = None
    periods = 0
    vaults = len(fake.vault_names)
    while True:
        after = scraper.tick()
        periods += 1
        counts = _delta(after, before)
        calls = _refresh_calls(counts)
        jobs_changed = (_extra(after, "jobs_finished") - _extra(before, "jobs_finished")
                        + _extra(after, "jobs_started") - _extra(before, "jobs_started"))
        throttled = after["arm_throttled"] - before["arm_throttled"]
        no_backlog = counts.get("jobs_get", 0) <= 2 * jobs_changed + 0.1 * vaults + 5
        stable = previous is not None and abs(calls - previous) <= 0.25 * max(calls, previous) + 2
        if periods >= 2 and no_backlog and stable and throttled == 0:
            return {"settled": True, "settle_s": time.monotonic() - started, "settle_periods": periods}
        if time.monotonic() - started > options.settle_max:
            return {"settled": False, "settle_s": time.monotonic() - started, "settle_periods": periods}
        previous, before = calls, after


def _steady_window(scraper: _Scraper, fake: FakeProcess, options: Options) -> dict[str, Any]:
    vaults = len(fake.vault_names)
    periods = max(1, math.ceil(options.steady / scraper.period))
    first_scrape = len(scraper.scrape_seconds)
    before = scraper.tick()
    began = time.monotonic()
    for _ in range(periods):
        after = scraper.tick()
    seconds = time.monotonic() - began
    counts = _delta(after, before)
    rounds = counts.get("jobs_list", 0) / vaults
    finished = _extra(after, "jobs_finished") - _extra(before, "jobs_finished")
    refresh_calls = _refresh_calls(counts)
    floor = vaults * rounds + finished
    items_calls = sum(counts.get(op, 0) for op in ITEMS_OPERATIONS)
    items_floor = 2 * vaults * seconds / options.items_refresh_interval  # items and policies, one list each
    return {
        "window_s": seconds, "rounds": rounds, "calls": refresh_calls, "calls_by_operation": counts,
        "jobs_finished": finished, "jobs_started": _extra(after, "jobs_started") - _extra(before, "jobs_started"),
        "floor": floor, "ratio": refresh_calls / floor if floor else math.nan,
        "calls_per_interval": refresh_calls / rounds if rounds else math.nan,
        "floor_per_interval": floor / rounds if rounds else math.nan,
        "items_calls": items_calls, "items_floor": items_floor,
        "throttled": after["arm_throttled"] - before["arm_throttled"],
        "scrape_median_s": percentile(scraper.scrape_seconds[first_scrape:], 0.5),
    }


def _soak(scraper: _Scraper, exporter: ExporterProcess, options: Options) -> dict[str, Any]:
    samples = [(0.0, exporter.memory()["rss_mb"])]
    began = time.monotonic()
    next_sample = began + 60
    while time.monotonic() - began < options.soak:
        scraper.tick()
        if time.monotonic() >= next_sample:
            samples.append((time.monotonic() - began, exporter.memory()["rss_mb"]))
            next_sample += 60
    samples.append((time.monotonic() - began, exporter.memory()["rss_mb"]))
    return {"seconds": samples[-1][0], "start_rss_mb": samples[0][1], "end_rss_mb": samples[-1][1],
            "max_rss_mb": max(rss for _, rss in samples), "samples": [[round(t), round(m, 1)] for t, m in samples]}


def run_bucket_and_steady(spec: EstateSpec, options: Options, workdir: Path) -> dict[str, Any]:
    """Run B: the token bucket per subscription; the cold refresh under it, then the steady state."""
    fake = FakeProcess(spec, options, workdir, bucket=options.bucket, name=f"{spec.name}-B")
    try:
        options.progress(f"{spec.name} run B: bucket {'on' if options.bucket else 'off'}; starting the exporter")
        # Every collector on and every state's series: run A measures the default exposition, this run the
        # most a user can ask for (series per item, memory).
        exporter = ExporterProcess(fake, options, workdir, name=f"{spec.name}-B",
                                   refresh_interval=options.refresh_interval,
                                   items_refresh_interval=options.items_refresh_interval, series_env=ALL_SERIES_ENV)
        try:
            cold = _wait_cold(exporter, fake, options, poll_metrics=False)
            stats = cold.pop("stats")
            cold.pop("poll_seconds")
            counts = {op: sum(statuses.values()) for op, statuses in stats["requests"].items()}
            cold.update(calls=_arm_calls(counts), throttled=stats["arm_throttled"])
            # cached data only, as the first refresh left it (the scrape starts the next refresh)
            cold["after_first_refresh"] = _check(exporter, fake, timeout_header=0.0)
            options.progress(f"{spec.name} run B: cold done in {cold['calls_stop_s']:.1f}s "
                             f"({cold['throttled']} x 429); settling")
            scraper = _Scraper(exporter, fake, options)
            settle = _settle(scraper, fake, options)
            options.progress(f"{spec.name} run B: settled={settle['settled']} after {settle['settle_s']:.0f}s; "
                             f"measuring {options.steady:.0f}s")
            steady = _steady_window(scraper, fake, options)
            steady.update(settle)
            soak = None
            if options.soak > 0:
                options.progress(f"{spec.name} run B: soak of {options.soak:.0f}s")
                soak = _soak(scraper, exporter, options)
            final = _check(exporter, fake, timeout_header=options.refresh_interval)
            final["fake_throttled_total"] = fake.stats()["arm_throttled"]
            memory = exporter.memory()
        finally:
            exporter.stop()
        return {"cold": cold, "steady": steady, "soak": soak, "final": final, "memory": memory,
                "bucket": {"enforced": options.bucket, "capacity": options.bucket_capacity,
                           "refill_per_second": options.bucket_refill}}
    finally:
        fake.stop()


def run_estate(spec: EstateSpec, options: Options, workdir: Path) -> dict[str, Any]:
    started = time.monotonic()
    before = machine()  # the exporter's commit as it starts; another change while it runs is flagged
    a = run_cold_and_warm(spec, options, workdir)
    b = run_bucket_and_steady(spec, options, workdir)
    c = run_status(spec, options, workdir)
    after = exporter_version()
    if after != before["exporter"]:
        before["exporter"] += f" (changed during the run, to {after})"
    return {"spec": asdict(spec), "a": a, "b": b, "c": c, "seconds": time.monotonic() - started, "machine": before,
            "settings": _settings(options)}


def run(options: Options) -> dict[str, Any]:
    """Every estate of options.estates; the results as JSON-able data."""
    workdir = options.workdir or Path(tempfile.mkdtemp(prefix="bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"estates": {}}
    for name in options.estates:
        spec = EstateSpec.parse(name)
        results["estates"][spec.name] = run_estate(spec, options, workdir)
    results["logs"] = str(workdir)
    return results


def _settings(options: Options) -> dict[str, Any]:
    return {"latency_s": options.latency, "concurrency": options.concurrency, "seed": options.seed,
            "refresh_interval_s": options.refresh_interval, "items_refresh_interval_s": options.items_refresh_interval,
            "job_rate_per_s": options.job_rate, "job_seconds": list(options.job_seconds), "steady_s": options.steady,
            "scrapes": options.scrapes, "bucket": options.bucket, "bucket_capacity": options.bucket_capacity,
            "bucket_refill_per_s": options.bucket_refill, "exporter_env": dict(options.exporter_env),
            "exporter_rate_limit": _default_setting("rate_limit")}


def _default_setting(name: str) -> str | None:
    """A default of the exporter's settings as it stands (None where it has no such setting)."""
    from exporter.settings import Settings  # noqa: PLC0415 - only for the report

    field = Settings.model_fields.get(name)
    return None if field is None else str(field.default)


# --- command line ----------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--estates", default="S,M,L", help="comma-separated: S, M, L or VAULTSxITEMS[xSUBS]")
    parser.add_argument("--out", type=Path, help="write the Markdown report here (e.g. docs/performance.md)")
    parser.add_argument("--json", type=Path, help="write the raw results here")
    parser.add_argument("--no-merge", action="store_true",
                        help="drop the estates an earlier report in --out has and this run does not")
    parser.add_argument("--latency", type=float, default=0.1, help="fake ARM latency per call, s (0.1)")
    parser.add_argument("--concurrency", type=int, default=8, help="the exporter's CONCURRENCY (8)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--refresh-interval", type=float, default=10.0, help="REFRESH_INTERVAL of run B, s (10)")
    parser.add_argument("--items-refresh-interval", type=float, default=60.0,
                        help="ITEMS_REFRESH_INTERVAL of run B, s (60)")
    parser.add_argument("--job-rate", type=float, default=0.5, help="jobs the fake starts per second (0.5)")
    parser.add_argument("--job-seconds", default="5,25", help="how long those jobs run, LOW,HIGH s (5,25)")
    parser.add_argument("--steady", type=float, default=60.0, help="steady-state window, s (60)")
    parser.add_argument("--settle-max", type=float, default=300.0, help="longest wait for the steady state, s")
    parser.add_argument("--scrapes", type=int, default=20, help="warm scrapes per mode (20)")
    parser.add_argument("--scrape-budget", type=float, default=60.0, help="longest time per warm mode, s (60)")
    parser.add_argument("--cold-timeout", type=float, default=3600.0, help="longest cold refresh, s")
    parser.add_argument("--soak", type=float, default=0.0, help="steady-state soak after the window, s (e.g. 1800)")
    parser.add_argument("--no-bucket", action="store_true", help="run B without ARM's token bucket")
    parser.add_argument("--bucket-capacity", type=int, default=250)
    parser.add_argument("--bucket-refill", type=float, default=25.0)
    parser.add_argument("--exporter-env", action="append", default=[], metavar="NAME=VALUE",
                        help="more environment for the exporter (repeatable)")
    parser.add_argument("--workdir", type=Path, help="where the processes' logs go (default: a temp dir)")
    parser.add_argument("--from-json", type=Path, metavar="RESULTS",
                        help="measure nothing: render --out from the results of an earlier --json")
    return parser


def options_from(args: argparse.Namespace) -> Options:
    low, _, high = args.job_seconds.partition(",")
    env = {}
    for pair in args.exporter_env:
        name, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--exporter-env {pair!r}: use NAME=VALUE")
        env[name] = value
    for name in args.estates.split(","):
        EstateSpec.parse(name.strip())  # fail before anything starts
    return Options(
        estates=[name.strip() for name in args.estates.split(",") if name.strip()], latency=args.latency,
        concurrency=args.concurrency, seed=args.seed, refresh_interval=args.refresh_interval,
        items_refresh_interval=args.items_refresh_interval, job_rate=args.job_rate,
        job_seconds=(float(low), float(high or low)), steady=args.steady, settle_max=args.settle_max,
        scrapes=args.scrapes, scrape_budget=args.scrape_budget, cold_timeout=args.cold_timeout, soak=args.soak,
        bucket=not args.no_bucket, bucket_capacity=args.bucket_capacity, bucket_refill=args.bucket_refill,
        exporter_env=env, workdir=args.workdir,
        progress=lambda message: print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    results = json.loads(args.from_json.read_text()) if args.from_json else run(options_from(args))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    if args.out:
        if not args.no_merge and args.out.exists():
            results = merge_previous(results, args.out.read_text())
        args.out.write_text(render(results, args.out.read_text() if args.out.exists() else ""))
        print(f"wrote {args.out}; logs in {results.get('logs')}", file=sys.stderr)
    else:
        print(render(results, ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
