"""Synthetic estates for the benchmark, and a simulator that keeps jobs starting and finishing.

An estate is `vaults` Recovery Services vaults spread evenly over `subscriptions`, each with
`items_per_vault` backup items of a realistic mix of types (mostly Azure VMs, some file shares,
databases in VMs, MARS and DPM sources). Every item has a week of daily Backup jobs at its own time
of day (so job start times are spread over the day), some of them failed, warned or cancelled; a few
items also have a Restore, and about 1% have a backup running when the estate is built. Every item is
a protected item whose last backup, recovery point and health agree with its jobs, built with the
same code as the demo (exporter.simulator.demo), so the payloads have the real shape.

Everything is deterministic given the seed, apart from the wall-clock times the jobs are placed at.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from exporter.simulator.demo import ERRORS, DemoItem, Protection, build_job, protected_item
from exporter.simulator.fakearm import FakeEstate, FakeVault, Json

log = logging.getLogger(__name__)

HISTORY_DAYS = 7
DAY = 86_400.0
# Jobs stay at least this far inside the exporter's default 7-day lookback, so a run of an hour or two
# still lists every day of history.
LOOKBACK_MARGIN = 3 * 3600.0
FINISHED = ("Completed", "CompletedWithWarnings", "Failed", "Cancelled")
HISTORY_WEIGHTS = (86, 5, 7, 2)
RESTORE_SHARE = 0.04  # of Azure VM items, with one Restore in the week
RUNNING_SHARE = 0.01  # of items, with a backup running when the estate is built
IAAS_TASKS = ("Take Snapshot", "Transfer data to vault")
RESTORE_TASK = "Transfer data from vault"
LOCATIONS = ("westeurope", "northeurope", "eastus2", "uksouth", "swedencentral")


@dataclass(frozen=True)
class EstateSpec:
    name: str
    vaults: int
    items_per_vault: int
    subscriptions: int

    @property
    def items(self) -> int:
        return self.vaults * self.items_per_vault

    @classmethod
    def parse(cls, text: str) -> EstateSpec:
        """S, M, L, or VAULTSxITEMS[xSUBSCRIPTIONS] (e.g. 2x5 or 40x10x4)."""
        preset = ESTATES.get(text.upper())
        if preset is not None:
            return preset
        parts = text.lower().split("x")
        try:
            numbers = [int(part) for part in parts]
        except ValueError:
            numbers = []
        if len(numbers) not in (2, 3) or min(numbers) < 1:
            raise ValueError(f"estate {text!r}: use S, M, L or VAULTSxITEMS[xSUBSCRIPTIONS], e.g. 2x5")
        vaults, items = numbers[:2]
        subscriptions = numbers[2] if len(numbers) == 3 else 1
        if subscriptions > vaults:
            raise ValueError(f"estate {text!r}: more subscriptions than vaults")
        return cls(text, vaults, items, subscriptions)


ESTATES = {
    "S": EstateSpec("S", 5, 50, 1),
    "M": EstateSpec("M", 50, 40, 5),
    "L": EstateSpec("L", 200, 100, 20),  # 20 subscriptions x 10 vaults: ARM's budget is per subscription
}


@dataclass(frozen=True)
class _Kind:
    weight: int
    job_type: str
    prefix: str
    size_mb: tuple[int, int]
    minutes: tuple[float, float]
    workload_type: str | None = None
    duration_format: str = "iso"


KINDS = (
    _Kind(55, "AzureIaaSVMJob", "vm", (2_000, 60_000), (15, 90)),
    _Kind(15, "AzureIaaSVMJobV2", "vm", (2_000, 60_000), (15, 90)),
    _Kind(10, "AzureStorageJob", "share", (100, 5_000), (1, 5)),
    _Kind(8, "AzureWorkloadJob", "db", (1_000, 30_000), (5, 40), "SQLDataBase"),
    _Kind(2, "AzureWorkloadJob", "hana", (5_000, 40_000), (10, 40), "SAPHanaDatabase"),
    _Kind(5, "MabJob", "srv", (500, 5_000), (5, 30), "FileFolder", "dotnet"),
    _Kind(5, "DpmJob", "dpmdb", (1_000, 10_000), (10, 30), "SQLDB", "dotnet"),
)


@dataclass
class Running:
    """A job the simulator will finish."""

    vault: str
    job_id: str
    item: DemoItem
    operation: str
    started: datetime
    finishes: float  # time.time()


@dataclass
class BenchEstate:
    spec: EstateSpec
    estate: FakeEstate
    subscriptions: list[str]
    items: list[DemoItem]
    protections: dict[tuple[str, str], Protection]  # (vault, item) -> its protected item's state
    running: list[Running]
    jobs: int = 0
    restores: int = 0
    failed: int = 0
    build_seconds: float = 0.0

    def manifest(self) -> Json:
        """What the harness checks the exporter against: every vault and every item that has jobs."""
        return {
            "estate": self.spec.name, "subscriptions": self.subscriptions,
            "vaults": [vault.id for vault in self.estate.vaults],
            "items": [[item.vault, item.name] for item in self.items],
            "iaas_items": [[item.vault, item.name] for item in self.items if item.is_iaas],
            "jobs": self.jobs, "restores": self.restores, "failed": self.failed,
            "running_at_start": len(self.running),
        }


def _guid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _size(rng: random.Random, item: DemoItem) -> str:
    return f"{round(item.size_mb * rng.uniform(0.85, 1.15))} MB"


def finished_tasks(item: DemoItem, operation: str, status: str) -> list[tuple[str, str]] | None:
    """Azure VM jobs carry tasks; the others have none in this estate."""
    if not item.is_iaas:
        return None
    if operation == "Restore":
        return [(RESTORE_TASK, "Completed" if status == "CompletedWithWarnings" else status)]
    last = {"Failed": "Failed", "Cancelled": "Cancelled"}.get(status, "Completed")
    return [(IAAS_TASKS[0], "Completed"), (IAAS_TASKS[1], last)]


def running_tasks(item: DemoItem, operation: str) -> list[tuple[str, str]] | None:
    if not item.is_iaas:
        return None
    if operation == "Restore":
        return [(RESTORE_TASK, "InProgress")]
    return [(IAAS_TASKS[0], "Completed"), (IAAS_TASKS[1], "InProgress")]


class _Builder:
    def __init__(self, spec: EstateSpec, seed: int, now: datetime, run_seconds: tuple[float, float]) -> None:
        self.spec = spec
        self.rng = random.Random(seed)
        self.now = now
        self.run_seconds = run_seconds
        self.estate = FakeEstate()
        self.result = BenchEstate(spec, self.estate, [], [], {}, [])

    def build(self) -> BenchEstate:
        started = time.perf_counter()
        spec = self.spec
        self.result.subscriptions = [_guid(self.rng) for _ in range(spec.subscriptions)]
        weights = [kind.weight for kind in KINDS]
        for number in range(spec.vaults):
            subscription = self.result.subscriptions[number % spec.subscriptions]
            vault = self.estate.add_vault(subscription, f"rg-backup-{number % 4}", f"rsv-bench-{number:03d}",
                                          LOCATIONS[number % len(LOCATIONS)])
            vault.tags.update({"environment": "benchmark"})
            for index in range(spec.items_per_vault):
                kind = self.rng.choices(KINDS, weights=weights)[0]
                self._add_item(vault, number, index, kind)
        self.result.build_seconds = time.perf_counter() - started
        return self.result

    def _add_item(self, vault: FakeVault, number: int, index: int, kind: _Kind) -> None:
        rng = self.rng
        container = None
        if kind.job_type == "AzureStorageJob":
            container = f"st{number:03d}files"
        elif kind.job_type == "AzureWorkloadJob":
            container = f"vm-{kind.prefix}-{number:03d}-{index // 10:02d}"
        elif kind.job_type == "DpmJob":
            container = f"dpm-{number:03d}.contoso.local"
        item = DemoItem(vault.name, f"{kind.prefix}-{number:03d}-{index:03d}", kind.job_type,
                        rng.randint(*kind.size_mb), kind.minutes, 0,
                        "dotnet" if kind.duration_format == "dotnet" else "iso", kind.workload_type, container)
        self.result.items.append(item)
        protection = Protection()
        backups = self._daily_history(vault, item)
        if item.is_iaas and rng.random() < RESTORE_SHARE:
            self._restore(vault, item)
        if rng.random() < RUNNING_SHARE:
            self._running_backup(vault, item)
        for job in backups:  # oldest first: the last one recorded is the item's latest backup
            protection.record(job)
        self.result.protections[(vault.name, item.name)] = protection
        resource = protected_item(vault, item, protection)
        vault.items[resource["name"]] = resource

    def _daily_history(self, vault: FakeVault, item: DemoItem) -> list[Json]:
        rng = self.rng
        longest = item.minutes[1] * 60
        # The latest daily backup started `phase` seconds ago and has finished.
        phase = rng.uniform(longest + 600, DAY - LOOKBACK_MARGIN - 600)
        jobs = []
        for days_ago in range(HISTORY_DAYS - 1, -1, -1):
            start = self.now - timedelta(seconds=phase + days_ago * DAY + rng.uniform(-300, 300))
            end = start + timedelta(minutes=rng.uniform(*item.minutes))
            status = rng.choices(FINISHED, weights=HISTORY_WEIGHTS)[0]
            jobs.append(self._add_job(vault, item, "Backup", status, start=start, end=end))
        return jobs

    def _restore(self, vault: FakeVault, item: DemoItem) -> None:
        start = self.now - timedelta(seconds=self.rng.uniform(DAY, (HISTORY_DAYS - 1) * DAY))
        status = "Completed" if self.rng.random() < 0.9 else "Failed"
        self._add_job(vault, item, "Restore", status, start=start,
                      end=start + timedelta(minutes=self.rng.uniform(30, 60)))
        self.result.restores += 1

    def _running_backup(self, vault: FakeVault, item: DemoItem) -> None:
        low, high = self.run_seconds
        started = self.now - timedelta(seconds=self.rng.uniform(0, low))
        job = self._add_job(vault, item, "Backup", "InProgress", start=started, end=None)
        finishes = started.timestamp() + self.rng.uniform(low, high)
        self.result.running.append(Running(vault.name, job["name"], item, "Backup", started, finishes))

    def _add_job(self, vault: FakeVault, item: DemoItem, operation: str, status: str, *, start: datetime,
                 end: datetime | None) -> Json:
        succeeded = status in ("Completed", "CompletedWithWarnings") and operation == "Backup"
        job = build_job(vault, item, _guid(self.rng), operation=operation, status=status, start=start, end=end,
                        size=_size(self.rng, item) if succeeded else None,
                        tasks=finished_tasks(item, operation, status) if end else running_tasks(item, operation),
                        error=ERRORS.get(item.job_type) if status == "Failed" else None, now=self.now)
        vault.jobs[job["name"]] = job  # built here and never shared: no copy needed
        self.result.jobs += 1
        self.result.failed += status == "Failed"
        return job


def build_estate(spec: EstateSpec, seed: int = 1, now: datetime | None = None,
                 run_seconds: tuple[float, float] = (5.0, 25.0)) -> BenchEstate:
    """The estate at `now` (default: the current time)."""
    return _Builder(spec, seed, now or datetime.now(UTC), run_seconds).build()


class Simulator:
    """Starts `rate` jobs a second on idle items of the estate (mostly backups, some restores) and finishes
    each after `run_seconds`, with the history's mix of outcomes; a finished backup updates its protected
    item, as Azure does. A daemon thread; stop() ends it."""

    def __init__(self, bench: BenchEstate, rate: float, run_seconds: tuple[float, float] = (5.0, 25.0),
                 seed: int = 2, tick: float = 0.1) -> None:
        if rate < 0 or not 0 < run_seconds[0] <= run_seconds[1]:
            raise ValueError("rate must not be negative and run_seconds must be 0 < low <= high")
        self.bench = bench
        self.rate = rate
        self.run_seconds = run_seconds
        self.tick = tick
        self.started = 0
        self.finished = 0
        self.by_status: Counter[str] = Counter()
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._due = 0.0

    def start(self) -> Simulator:
        self._thread = threading.Thread(target=self._run, name="bench-simulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"jobs_started": self.started, "jobs_finished": self.finished,
                    "jobs_running": len(self.bench.running), "finished_by_status": dict(self.by_status),
                    "rate_per_second": self.rate, "run_seconds": list(self.run_seconds)}

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(self.tick):
            now = time.monotonic()
            try:
                self.step(now - last)
            except Exception:  # the fake must outlive a bug in one tick
                log.exception("bench simulator step failed")
            last = now

    def step(self, elapsed: float) -> None:
        """Finish what is due, then start rate x elapsed new jobs."""
        now = time.time()
        for job in [job for job in self.bench.running if job.finishes <= now]:
            self._finish(job)
        self._due += self.rate * elapsed
        while self._due >= 1:
            self._due -= 1
            self._start_one()

    def _start_one(self) -> None:
        busy = {(job.vault, job.item.name) for job in self.bench.running}
        for _ in range(20):  # a few tries for an idle item; an estate that is all busy just skips a start
            item = self._rng.choice(self.bench.items)
            if (item.vault, item.name) not in busy:
                break
        else:
            return
        operation = "Restore" if item.is_iaas and self._rng.random() < 0.05 else "Backup"
        started = datetime.now(UTC)
        job = Running(item.vault, _guid(self._rng), item, operation, started,
                      time.time() + self._rng.uniform(*self.run_seconds))
        self._store(job, "InProgress", None)
        with self._lock:
            self.bench.running.append(job)
            self.started += 1

    def _finish(self, job: Running) -> None:
        status = self._rng.choices(FINISHED, weights=HISTORY_WEIGHTS)[0]
        estate = self.bench.estate
        with estate.lock:  # a reader sees the finished job and its protected item change together
            stored = self._store(job, status, datetime.now(UTC))
            protection = self.bench.protections.get((job.vault, job.item.name))
            if job.operation == "Backup" and protection is not None:
                protection.record(stored)
                estate.add_item(job.vault, protected_item(estate.vault(job.vault), job.item, protection))
        with self._lock:
            self.bench.running.remove(job)
            self.finished += 1
            self.by_status[status] += 1

    def _store(self, job: Running, status: str, end: datetime | None) -> Json:
        vault = self.bench.estate.vault(job.vault)
        succeeded = status in ("Completed", "CompletedWithWarnings") and job.operation == "Backup"
        built = build_job(vault, job.item, job.job_id, operation=job.operation, status=status, start=job.started,
                          end=end, size=_size(self._rng, job.item) if succeeded else None,
                          tasks=(finished_tasks(job.item, job.operation, status) if end
                                 else running_tasks(job.item, job.operation)),
                          error=ERRORS.get(job.item.job_type) if status == "Failed" else None)
        self.bench.estate.add_job(job.vault, built)
        return built
