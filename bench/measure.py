"""What the harness reads: HTTP with timings, /proc of the exporter, the exposition it serves, the machine."""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import os
import platform
import re
import socket
import subprocess
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict[str, str]
    seconds: float


def http_get(port: int, path: str, headers: dict[str, str] | None = None, timeout: float = 60.0) -> Reply:
    """GET http://127.0.0.1:port/path; the body as sent (no decompression), and the time until all of it had
    arrived. A plain socket with Connection: close, read in large blocks: http.client's chunked reading
    would add half again to a big scrape, which is the client's cost, not the exporter's."""
    request = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
    request += [f"{name}: {value}" for name, value in (headers or {}).items()]
    deadline = time.monotonic() + timeout
    parts: list[bytes] = []
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
        started = time.perf_counter()
        connection.sendall(("\r\n".join(request) + "\r\n\r\n").encode())
        while True:
            connection.settimeout(max(0.001, deadline - time.monotonic()))
            block = connection.recv(1 << 20)
            if not block:
                break
            parts.append(block)
        seconds = time.perf_counter() - started
    head, _, body = b"".join(parts).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    if not lines[0].startswith("HTTP/"):
        raise OSError(f"not an HTTP reply from port {port}: {lines[0][:80]!r}")
    status = int(lines[0].split()[1])
    reply_headers = {name.strip().lower(): value.strip()
                     for name, _, value in (line.partition(":") for line in lines[1:])}
    if "chunked" in reply_headers.get("transfer-encoding", "").lower():
        body = _dechunk(body)
    return Reply(status, body, reply_headers, seconds)


def _dechunk(data: bytes) -> bytes:
    chunks: list[bytes] = []
    position = 0
    while True:
        line_end = data.index(b"\r\n", position)
        size = int(data[position:line_end].split(b";")[0], 16)
        if size == 0:
            return b"".join(chunks)
        chunks.append(data[line_end + 2:line_end + 2 + size])
        position = line_end + 2 + size + 2


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (p99 of 20 samples is their maximum)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


# --- the exporter's process ----------------------------------------------------------------------

def memory_mb(pid: int) -> dict[str, float]:
    """VmRSS (now) and VmHWM (peak) of a process, in MB (MiB)."""
    found: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = int(value.split()[0]) / 1024
    return {"rss_mb": found.get("VmRSS", math.nan), "peak_rss_mb": found.get("VmHWM", math.nan)}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the exposition ----------------------------------------------------------------------------------
# At L an exposition is well over 100 MB, and the harness must not eat the CPU the exporter and the fake
# need while it polls: each family is searched only within its own section (re's pos and endpos, no
# copy), with patterns that start with a literal, which re scans for fast.
_STATUS = re.compile(rb'azure_backup_job_last_status\{([^}\n]*)\} 1(?:\.0)?\n')
_TASKS = re.compile(rb'azure_backup_job_last_task_status\{([^}\n]*)\}')
_SUCCESS = re.compile(rb'azure_backup_vault_scrape_success\{([^}\n]*)\} (\S+)\n')
_THROTTLED = re.compile(rb'azure_backup_api_throttled_total (\S+)\n')
_DURATION = re.compile(rb'azure_backup_api_request_duration_seconds_(sum|count)\{[^}\n]*\} (\S+)\n')
_LABEL_BYTES = re.compile(rb'(\w+)="((?:[^"\\]|\\.)*)"')


def labels(text: bytes) -> dict[str, str]:
    """The labels of one sample's {...} part (escapes left as they are)."""
    return {k.decode(): v.decode("utf-8", "replace") for k, v in _LABEL_BYTES.findall(text)}


def series_count(body: bytes) -> int:
    """Samples in a text exposition: its lines less the # HELP and # TYPE lines."""
    lines = body.count(b"\n") + (0 if body.endswith(b"\n") or not body else 1)
    comments = body.count(b"\n#") + (1 if body.startswith(b"#") else 0)
    return lines - comments - body.count(b"\n\n")


def section(body: bytes, family: str) -> tuple[int, int]:
    """Where a family's samples are: from after its # TYPE line to the next family's # HELP."""
    type_line = body.find(f"# TYPE {family} ".encode())
    if type_line < 0:
        return 0, 0
    start = body.find(b"\n", type_line) + 1
    end = body.find(b"\n# ", start)
    return start, len(body) if end < 0 else end + 1


@dataclass
class Coverage:
    """What one scrape says about the estate."""

    series: int = 0
    status_items: set[tuple[str, str]] = field(default_factory=set)  # (vault, item) with a job status of 1
    task_series: set[tuple[str, str, str]] = field(default_factory=set)  # (vault, item, operation) with tasks
    vault_success: dict[str, float] = field(default_factory=dict)
    throttled_total: float = 0.0
    api_seconds: float = 0.0  # total time of the ARM calls the exporter made, by its own histogram
    api_calls: float = 0.0

    def missing(self, items: Iterable[tuple[str, str]]) -> int:
        return sum(1 for item in items if item not in self.status_items)

    def failed_vaults(self, vaults: Iterable[str]) -> int:
        """Vaults whose last refresh failed or that have no verdict yet."""
        return sum(1 for vault in vaults if self.vault_success.get(vault) != 1.0)

    def with_tasks(self, items: Iterable[tuple[str, str]]) -> int:
        return sum(1 for vault, item in items if (vault, item, "Backup") in self.task_series)

    @property
    def mean_call_s(self) -> float:
        return self.api_seconds / self.api_calls if self.api_calls else math.nan


def status_items(body: bytes) -> set[tuple[str, str]]:
    """(vault, item) of every azure_backup_job_last_status sample with the value 1: cheap enough to poll."""
    found = set()
    for match in _STATUS.finditer(body, *section(body, "azure_backup_job_last_status")):
        pairs = labels(match.group(1))
        found.add((pairs.get("vault", ""), pairs.get("backup_item", "")))
    return found


def read_exposition(body: bytes) -> Coverage:
    """Count the samples and pick out job status, tasks, vault success, throttling and ARM call time from the
    text format 0.0.4."""
    coverage = Coverage(series=series_count(body), status_items=status_items(body))
    for match in _TASKS.finditer(body, *section(body, "azure_backup_job_last_task_status")):
        pairs = labels(match.group(1))
        coverage.task_series.add((pairs.get("vault", ""), pairs.get("backup_item", ""), pairs.get("operation", "")))
    for match in _SUCCESS.finditer(body, *section(body, "azure_backup_vault_scrape_success")):
        coverage.vault_success[labels(match.group(1)).get("vault", "")] = float(match.group(2))
    for match in _THROTTLED.finditer(body, *section(body, "azure_backup_api_throttled_total")):
        coverage.throttled_total = float(match.group(1))
    for match in _DURATION.finditer(body, *section(body, "azure_backup_api_request_duration_seconds")):
        if match.group(1) == b"sum":
            coverage.api_seconds += float(match.group(2))
        else:
            coverage.api_calls += float(match.group(2))
    return coverage


def rebuild_seconds(body: bytes) -> tuple[float, int]:
    """What building every metric family anew and rendering it costs with prometheus_client, as the exporter
    did on every scrape before it cached its text: the scraped samples are turned back into families by a
    collector, and only the registry's generate_latest (the collector's families, then the text) is timed.
    Returns the seconds and the samples rendered."""
    families: list[tuple[str, str, list[tuple[str, dict[str, str], float]]]] = []
    help_text = ""
    for line in body.split(b"\n"):
        if line.startswith(b"# HELP "):
            help_text = line.split(b" ", 3)[3].decode("utf-8", "replace") if line.count(b" ") >= 3 else ""
        elif line.startswith(b"# TYPE "):
            families.append((line.split(b" ")[2].decode(), help_text, []))
        elif line and not line.startswith(b"#") and families:
            head, _, value = line.rpartition(b" ")
            name, _, rest = head.partition(b"{")
            families[-1][2].append((name.decode(), labels(rest[:-1]) if rest else {}, float(value)))

    class Replay:
        def describe(self) -> list[Metric]:
            return []

        def collect(self) -> Iterator[Metric]:
            for name, documentation, samples in families:
                metric = Metric(name, documentation, "untyped")
                for sample_name, sample_labels, value in samples:
                    metric.add_sample(sample_name, sample_labels, value)
                yield metric

    registry = CollectorRegistry()
    registry.register(Replay())
    started = time.perf_counter()
    generate_latest(registry)
    return time.perf_counter() - started, sum(len(samples) for _, _, samples in families)


# --- the machine -----------------------------------------------------------------------------------

def machine() -> dict[str, str]:
    model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = "unknown"
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        total = meminfo.read_text().splitlines()[0].split()[1]
        memory = f"{int(total) / 1024 / 1024:.0f} GB"
    return {
        "cpu": model, "cores": str(os.cpu_count()), "memory": memory, "python": platform.python_version(),
        "os": platform.platform(terse=True), "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "exporter": exporter_version(),
    }


def exporter_version() -> str:
    """The commit the exporter ran at, and a digest of exporter/'s changes not committed yet (the simulator aside)."""
    paths = ["--", "exporter", ":(exclude)exporter/simulator"]
    try:
        commit = _git("rev-parse", "--short", "HEAD").strip()
        untracked = _git("ls-files", "--others", "--exclude-standard", *paths).split()
        changes = _git("diff", "HEAD", *paths).encode()
        for name in sorted(untracked):
            changes += name.encode() + (ROOT / name).read_bytes()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if not changes:
        return commit
    return f"{commit} + uncommitted changes in exporter/ (digest {hashlib.sha256(changes).hexdigest()[:8]})"


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=True).stdout
