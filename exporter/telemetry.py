"""The exporter's own instrumentation: how it uses ARM and what it could not parse.

These are events the exporter itself causes, so plain prometheus_client metrics
(incremented as they happen) are right here; API data goes through the collector.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, disable_created_metrics

from . import catalogue as c

API_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# Fields whose parse errors are pre-set to 0, so that increase() sees the first one.
PARSED_FIELDS = ("job", "startTime", "endTime", "duration", "Backup Size", "tasksList", "vault", "item",
                 "lastBackupTime", "lastRecoveryPoint")


class Telemetry:
    def __init__(self, registry: CollectorRegistry) -> None:
        # _created samples add a series per counter and nothing an alert or dashboard here uses.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.api_requests = Counter(c.API_REQUESTS.name, c.API_REQUESTS.help, c.API_REQUESTS.labels,
                                    registry=registry)
        self.api_duration = Histogram(c.API_DURATION.name, c.API_DURATION.help, c.API_DURATION.labels,
                                      buckets=API_LATENCY_BUCKETS, registry=registry)
        self.api_throttled = Counter(c.API_THROTTLED.name, c.API_THROTTLED.help, registry=registry)
        self.ratelimit_remaining = Gauge(c.API_RATELIMIT.name, c.API_RATELIMIT.help, c.API_RATELIMIT.labels,
                                         registry=registry)
        self.parse_errors = Counter(c.PARSE_ERRORS.name, c.PARSE_ERRORS.help, c.PARSE_ERRORS.labels,
                                    registry=registry)
        for field in PARSED_FIELDS:
            self.parse_errors.labels(field)
        # process_resident_memory_bytes and friends (from /proc, on Linux): the memory a Kubernetes limit is set
        # against, and the CPU a refresh costs.
        ProcessCollector(registry=registry)

    def parse_error(self, field: str) -> None:
        self.parse_errors.labels(field).inc()

    def record_response(self, operation: str, status: int, headers: dict[str, str] | None = None,
                        subscription: str = "") -> None:
        """subscription: the one whose ARM budget the request spent ('' for tenant-level calls); ARM keeps a
        read budget per subscription, so the headroom is reported per subscription."""
        self.api_requests.labels(operation, str(status)).inc()
        if status == 429:
            self.api_throttled.inc()
        for name, value in (headers or {}).items():
            lowered = name.lower()
            if lowered.startswith("x-ms-ratelimit-remaining-"):
                try:
                    self.ratelimit_remaining.labels(lowered, subscription).set(float(value))
                except ValueError:
                    self.parse_error("ratelimit_header")

    def record_failure(self, operation: str) -> None:
        """A request that got no HTTP response (timeout, refused, reset)."""
        self.api_requests.labels(operation, "error").inc()
