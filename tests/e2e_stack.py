"""Parts of the end-to-end tests: the exporter as its own process, Debian's Prometheus and Alertmanager on
loopback, and a webhook receiver that records every notification."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

from exporter.simulator.fakearm import FakeArm, FakeEstate

JOB = "azure-backup-exporter"
ROOT = Path(__file__).parent.parent
RULES = ROOT / "alerts" / "azure-backup.rules.yml"


def binary(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} missing: apt-get install prometheus prometheus-alertmanager (scripts/test does)"
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, timeout: float = 30.0) -> bool:
    """Whether the exporter at `url` answers /-/ready with 200 within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.ConnectionError):
            if requests.get(f"{url}/-/ready", timeout=2).status_code == 200:
                return True
        time.sleep(0.1)
    return False


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = check()
        except requests.RequestException:
            result = None
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    response = requests.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10)
    body = response.json()
    assert body["status"] == "success", f"{expr}: {body}"
    return list(body["data"]["result"])


class Webhook:
    """An Alertmanager webhook receiver on loopback: every notification, with the path it was sent to."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append((self.path, json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str = "/alert") -> str:
        return f"http://127.0.0.1:{self.server.server_port}{path}"

    def notifications(self, path: str | None = None) -> list[dict[str, Any]]:
        return [body for sent_to, body in list(self.received) if path is None or sent_to == path]

    def firing(self, path: str | None = None) -> list[dict[str, str]]:
        """Labels of every alert notified as firing (one entry per alert per notification)."""
        return [alert["labels"] for note in self.notifications(path) if note["status"] == "firing"
                for alert in note["alerts"]]

    def resolved(self, path: str | None = None) -> list[dict[str, str]]:
        """Labels of every alert notified as resolved."""
        return [alert["labels"] for note in self.notifications(path) for alert in note["alerts"]
                if alert["status"] == "resolved"]

    def close(self) -> None:
        self.server.shutdown()


class Processes:
    """Child processes with their logs in `work`; all ended on close."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.running: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: list[Any] = []

    def start(self, name: str, argv: list[str], env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = open(self.work / f"{name}.log", "ab")  # noqa: SIM115 - closed in close()
        self._logs.append(log)
        process = subprocess.Popen(argv, env=dict(env) if env is not None else None, stdout=log,
                                   stderr=subprocess.STDOUT)
        self.running[name] = process
        return process

    def stop(self, name: str) -> None:
        process = self.running.pop(name)
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()

    def close(self) -> None:
        for name in list(self.running):
            self.stop(name)
        for log in self._logs:
            log.close()


def exporter_env(arm: FakeArm, estate: FakeEstate, port: int) -> dict[str, str]:
    """The exporter's environment against the fake: managed identity and ARM on loopback, refreshing every second."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "IDENTITY_", "MSI_"))}
    env.update({"IDENTITY_ENDPOINT": arm.identity_endpoint, "IDENTITY_HEADER": arm.identity_header,
                "AZURE_BACKUP_EXPORTER_RESOURCE_MANAGER_URL": arm.url,
                "AZURE_BACKUP_EXPORTER_VAULTS": ",".join(v.id for v in [*estate.vaults, *estate.backup_vaults]),
                "AZURE_BACKUP_EXPORTER_REFRESH_INTERVAL": "1s",
                "AZURE_BACKUP_EXPORTER_BACKUP_VAULT_REFRESH_INTERVAL": "1s",
                "AZURE_BACKUP_EXPORTER_LISTEN_ADDRESS": f"127.0.0.1:{port}"})
    return env


def exporter_argv() -> list[str]:
    return [sys.executable, "-m", "exporter"]


def write_prometheus_config(work: Path, alertmanager_port: int, rule_file: Path,
                            scrape_configs: list[dict[str, Any]]) -> None:
    """prometheus.yml in `work`: scrape and evaluate every second, alert to the Alertmanager on loopback."""
    (work / "prometheus.yml").write_text(json.dumps({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}]},
        "rule_files": [str(rule_file)],
        "scrape_configs": scrape_configs,
    }))


def prometheus_argv(work: Path, port: int) -> list[str]:
    return [binary("prometheus"), f"--config.file={work / 'prometheus.yml'}", f"--storage.tsdb.path={work / 'prom'}",
            f"--web.listen-address=127.0.0.1:{port}"]


def alertmanager_argv(work: Path, port: int) -> list[str]:
    return [binary("prometheus-alertmanager"), f"--config.file={work / 'alertmanager.yml'}",
            f"--storage.path={work / 'am'}", f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="]
