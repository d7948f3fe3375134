"""Fast, cached rendering of /metrics.

prometheus_client formats every sample on every scrape (tens of microseconds each), which
at 20,000 backup items is most of a minute. Job and item data change only when a vault's
refresh finds something new, so each vault's sample lines are formatted once and reused
until its data changes. The output is byte for byte what prometheus_client renders (a test
holds them equal), in the text format 0.0.4 or OpenMetrics; both share the sample lines.

Each cached chunk is kept as a gzip member, and concatenated gzip members are one valid gzip
stream (RFC 1952). A gzip scrape, which is what Prometheus makes, is served by concatenating
the cached members with a few small members compressed per scrape (headers, the exporter's own
metrics); only an uncompressed scrape inflates the cache.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Iterator
from operator import itemgetter
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.utils import floatToGoString

from .catalogue import MetricSpec
from .collector import BackupCollector, SeriesOptions, VaultRows, to_metric
from .vault import DURATION_BUCKETS, VaultData, VaultSnapshot

OPENMETRICS_EOF = b"# EOF\n"


def _escape_label(value: str) -> str:
    if "\\" not in value and "\n" not in value and '"' not in value:
        return value  # the common case, tested in C
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def sample_lines(metric: Metric) -> bytes:
    """The family's samples as exposition lines (the same in both formats for our families)."""
    lines = []
    for sample in metric.samples:
        labels = ""
        if sample.labels:
            pairs = sample.labels
            labels = "{" + ",".join([f'{k}="{_escape_label(pairs[k])}"' for k in sorted(pairs)]) + "}"
        lines.append(f"{sample.name}{labels} {floatToGoString(sample.value)}\n")  # type: ignore[no-untyped-call]
    return "".join(lines).encode()


class LineFormat:
    """A family's sample lines straight from its rows, as prometheus_client writes them: labels sorted by
    name, values escaped, numbers as Go writes them. A %-template per sample name, made once."""

    def __init__(self, spec: MetricSpec) -> None:
        self.spec = spec
        name = spec.sample_names()[0] if spec.type == "counter" else spec.name
        self.line = _Template(name, spec.labels)
        if spec.type == "histogram":
            self.bucket = _Template(f"{name}_bucket", (*spec.labels, "le"))
            self.count, self.sum = _Template(f"{name}_count", spec.labels), _Template(f"{name}_sum", spec.labels)

    def render(self, rows: list[Any]) -> bytes:
        if self.spec.type == "histogram":
            return "".join(self._histogram_lines(rows)).encode()
        text, pick = self.line.text, self.line.pick
        return "".join([text % (*map(_escape_label, pick(labels)), _number(value)) for labels, value in rows]).encode()

    def _histogram_lines(self, rows: list[Any]) -> Iterator[str]:
        for labels, counts, total in rows:
            running = 0
            for bound, count in zip(BUCKET_BOUNDS, counts, strict=True):
                running += count
                yield self.bucket.format((*labels, bound), running)
            yield self.count.format(labels, running)
            yield self.sum.format(labels, total)


class _Template:
    """'name{a="%s",b="%s"} %s\n' with the labels in sorted order, and what picks a row's values in it."""

    def __init__(self, sample_name: str, labels: tuple[str, ...]) -> None:
        order = sorted(range(len(labels)), key=lambda index: labels[index])
        # Every family rendered here has several labels, so the picker returns a tuple.
        self.pick = itemgetter(*order)
        self.text = sample_name + "{" + ",".join(f'{labels[index]}="%s"' for index in order) + "} %s\n"

    def format(self, labels: tuple[str, ...], value: float) -> str:
        return self.text % (*map(_escape_label, self.pick(labels)), _number(value))


# The `le` label values, as collector._cumulative writes them.
BUCKET_BOUNDS = (*(str(bound) for bound in DURATION_BUCKETS), "+Inf")


def _number(value: float) -> str:
    # 0 and 1 are most of the values (one-hot families); the rest are written as Go would.
    if value == 1:
        return "1.0"
    if value == 0:
        return "0.0"
    return floatToGoString(value)  # type: ignore[no-any-return,no-untyped-call]


def header(metric: Metric, openmetrics: bool) -> bytes:
    # The text format names a counter family by its _total sample; OpenMetrics by the bare name.
    name = metric.name + "_total" if metric.type == "counter" and not openmetrics else metric.name
    help_text = metric.documentation.replace("\\", r"\\").replace("\n", r"\n")
    return f"# HELP {name} {help_text}\n# TYPE {name} {metric.type}\n".encode()


class CachedExposition:
    """Renders the registry's output from per-vault cached chunks; see the module docstring."""

    def __init__(self, collector: BackupCollector, telemetry: CollectorRegistry) -> None:
        self.collector = collector
        self.telemetry = telemetry
        self._lock = threading.Lock()
        self.options: SeriesOptions = collector.options
        self._families = [to_metric(spec, []) for spec in self.options.families()]  # names, types, HELP
        self._formats = [LineFormat(spec) for spec in self.options.families()]
        # vault key -> (the data it was rendered from, its sample lines per family, each a gzip member:
        # at 20,000 items the text is ~160 MB, compressed ~6 MB, and inflating it costs ~0.2 s a scrape)
        self._cache: dict[str, tuple[VaultData, list[bytes]]] = {}
        self._status_cache: dict[str, tuple[Metric, bytes]] = {}  # family name -> (family, its lines)

    def render(self, openmetrics: bool = False) -> Iterator[bytes]:
        """The exposition as chunks of text (never joined: at 20,000 items it is over 100 MB)."""
        for compressed, chunk in self._parts(openmetrics):
            yield zlib.decompress(chunk, GZIP_WBITS) if compressed else chunk

    def render_gzip(self, openmetrics: bool = False) -> Iterator[bytes]:
        """The same exposition as one gzip stream: the cached members as they are, the rest compressed now.
        Consecutive uncached parts go into one member."""
        pending: list[bytes] = []
        for compressed, chunk in self._parts(openmetrics):
            if not compressed:
                pending.append(chunk)
                continue
            if pending:
                yield gzip_member(b"".join(pending))
                pending.clear()
            yield chunk
        if pending:
            yield gzip_member(b"".join(pending))

    def _parts(self, openmetrics: bool) -> Iterator[tuple[bool, bytes]]:
        """(is a cached gzip member, bytes) in exposition order."""
        snapshots = self.collector.refresher.snapshots()
        per_vault = [self._vault_chunks(snap) for snap in snapshots]
        self._forget_vaults_not_in(snapshots)
        telemetry = (generate_openmetrics if openmetrics else generate_latest)(self.telemetry)
        yield False, telemetry.removesuffix(OPENMETRICS_EOF)
        for index, metric in enumerate(self._families):
            yield False, header(metric, openmetrics)
            for chunks in per_vault:
                if chunks[index]:
                    yield True, chunks[index]
        for metric in self.collector.status_families(snapshots):
            yield False, header(metric, openmetrics) + self._status_lines(metric)
        if openmetrics:
            yield False, OPENMETRICS_EOF

    def _status_lines(self, metric: Metric) -> bytes:
        """A status family's lines, formatted again only when the collector gives a new family object (the
        protectable resources' families are kept between scrapes; the others are new every time)."""
        cached = self._status_cache.get(metric.name)
        if cached is not None and cached[0] is metric:
            return cached[1]
        lines = sample_lines(metric)
        with self._lock:
            self._status_cache[metric.name] = (metric, lines)
        return lines

    def prerender(self, snap: VaultSnapshot) -> None:
        """Render a vault whose refresh just finished, in its worker, so no scrape waits for it."""
        self._vault_chunks(snap)

    def _vault_chunks(self, snap: VaultSnapshot) -> list[bytes]:
        key = snap.ref.key
        cached = self._cache.get(key)
        if cached is not None and cached[0] is snap.data:
            return cached[1]
        rows = VaultRows(snap, self.options).in_order()
        chunks = [gzip_member(lines) if lines else b""
                  for lines in (line_format.render(family_rows)
                                for line_format, (_, family_rows) in zip(self._formats, rows, strict=True))]
        with self._lock:
            self._cache[key] = (snap.data, chunks)
        return chunks

    def _forget_vaults_not_in(self, snapshots: list[VaultSnapshot]) -> None:
        keep = {snap.ref.key for snap in snapshots}
        with self._lock:
            for key in [k for k in self._cache if k not in keep]:
                del self._cache[key]


GZIP_WBITS = 31  # zlib's window bits for the gzip container


def gzip_member(data: bytes, level: int = 1) -> bytes:
    """One complete gzip member. Level 1: at 160 MB of text it is ~3x faster than level 6 for ~20% more bytes."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, GZIP_WBITS)
    return compressor.compress(data) + compressor.flush()
