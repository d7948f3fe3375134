"""The exporter as a process: HTTP endpoints, content negotiation, --once, shutdown on SIGTERM."""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from exporter.server import scrape_deadline
from exporter.simulator.fakearm import FakeArm, FakeEstate, FakeVault, make_job

from .conftest import SUB_A
from .e2e_stack import free_port, wait_ready


def _env(arm: FakeArm, vault: FakeVault, **extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "IDENTITY_", "MSI_"))}
    return {**base, "IDENTITY_ENDPOINT": arm.identity_endpoint, "IDENTITY_HEADER": arm.identity_header,
            "AZURE_BACKUP_EXPORTER_RESOURCE_MANAGER_URL": arm.url, "AZURE_BACKUP_EXPORTER_VAULTS": vault.id, **extra}


@pytest.fixture
def vault(estate: FakeEstate) -> FakeVault:
    vault = estate.add_vault(SUB_A, "rg-prod", "vault-prod")
    now = datetime.now(UTC)
    estate.add_job(vault.name, make_job("00000000-0000-0000-0000-000000000001", vault=vault, item="vm-web",
                                        status="Failed", start=now - timedelta(hours=2), end=now - timedelta(hours=1)))
    return vault


@pytest.fixture
def server(arm: FakeArm, vault: FakeVault) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "exporter", "--web.listen-address", f"127.0.0.1:{port}"],
                            env=_env(arm, vault), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url)
    yield url, proc
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


def test_endpoints(server: tuple[str, subprocess.Popen[str]]) -> None:
    url, _ = server
    assert requests.get(f"{url}/-/ready", timeout=5).status_code == 200
    assert requests.get(f"{url}/-/healthy", timeout=5).text == "OK\n"
    landing = requests.get(f"{url}/", timeout=5)
    assert "Azure Backup Exporter" in landing.text and "vault-prod" in landing.text
    assert 'href="/metrics"' in landing.text
    assert requests.get(f"{url}/nope", timeout=5).status_code == 404


def test_metrics_negotiation_and_gzip(server: tuple[str, subprocess.Popen[str]]) -> None:
    url, _ = server
    plain = requests.get(f"{url}/metrics", timeout=10)
    assert plain.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert 'azure_backup_job_last_status{backup_item="vm-web"' in plain.text
    assert "azure_backup_up 1.0" in plain.text
    openmetrics = requests.get(f"{url}/metrics", headers={"Accept": "application/openmetrics-text"}, timeout=10)
    assert openmetrics.headers["Content-Type"].startswith("application/openmetrics-text")
    assert openmetrics.text.rstrip().endswith("# EOF")
    raw = requests.get(f"{url}/metrics", headers={"Accept-Encoding": "gzip"}, timeout=10, stream=True)
    assert raw.headers["Content-Encoding"] == "gzip"
    assert b"azure_backup_up" in gzip.decompress(raw.raw.read())


def test_output_passes_promtool_check_metrics(server: tuple[str, subprocess.Popen[str]]) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: install Debian's prometheus package (scripts/test does)"
    url, _ = server
    text = requests.get(f"{url}/metrics", timeout=10).text
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True,
                            timeout=30, check=False)
    assert result.returncode == 0, result.stderr


def test_sigterm_shuts_down_cleanly(server: tuple[str, subprocess.Popen[str]]) -> None:
    _, proc = server
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    assert "shutting down" in proc.stderr.read() if proc.stderr else False


def test_once_prints_the_exposition(arm: FakeArm, vault: FakeVault) -> None:
    result = subprocess.run([sys.executable, "-m", "exporter", "--once"], env=_env(arm, vault),
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert 'azure_backup_vault_scrape_success{resource_group="rg-prod"' in result.stdout
    assert arm.token not in result.stdout + result.stderr


def test_once_exits_1_when_no_vault_refreshed(arm: FakeArm, vault: FakeVault) -> None:
    env = _env(arm, vault, AZURE_BACKUP_EXPORTER_RESOURCE_MANAGER_URL=f"http://127.0.0.1:{free_port()}",
               AZURE_BACKUP_EXPORTER_REQUEST_TIMEOUT="1s")
    result = subprocess.run([sys.executable, "-m", "exporter", "--once"], env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 1
    assert "azure_backup_up 0.0" in result.stdout
    assert "refresh failed" in result.stderr


def test_demo_once_shows_simulated_data_loudly() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "IDENTITY_", "MSI_"))}
    env["AZURE_BACKUP_EXPORTER_COLLECTOR_JOB_INFO"] = "true"  # job_type is on the info series, off by default
    result = subprocess.run([sys.executable, "-m", "exporter", "--demo", "--once"], env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "SIMULATED" in result.stderr
    for job_type in ("AzureIaaSVMJob", "AzureWorkloadJob", "AzureStorageJob", "MabJob", "DpmJob"):
        assert f'job_type="{job_type}"' in result.stdout
    failed = [sample for family in text_string_to_metric_families(result.stdout)
              if family.name == "azure_backup_job_last_status"
              for sample in family.samples if sample.labels["status"] == "Failed" and sample.value == 1]
    assert failed, "the demo should start with a failed backup"


@pytest.mark.parametrize(("header", "expected"), [("10", 9.0), ("4", 3.3), (None, 18.5), ("junk", 18.5)])
def test_scrape_deadline_follows_prometheus_timeout_header(header: str | None, expected: float) -> None:
    environ = {"HTTP_X_PROMETHEUS_SCRAPE_TIMEOUT_SECONDS": header} if header else {}
    # without a usable header the configured default (20 s here) applies
    assert scrape_deadline(environ, 20.0, 100.0) - 100.0 == pytest.approx(expected)


def test_json_logs_are_one_object_per_line(arm: FakeArm, vault: FakeVault) -> None:
    env = _env(arm, vault, AZURE_BACKUP_EXPORTER_LOG_FORMAT="json",
               AZURE_BACKUP_EXPORTER_VAULTS=vault.id.replace("vault-prod", "vault-missing"))
    result = subprocess.run([sys.executable, "-m", "exporter", "--once"], env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert any(entry["level"] == "warning" and "vault-missing" in entry["msg"] for entry in lines)
    assert arm.token not in result.stderr


def test_demo_server_turns_ready_without_a_scrape_and_serves_every_vault() -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "IDENTITY_", "MSI_"))}
    proc = subprocess.Popen([sys.executable, "-m", "exporter", "--demo", "--web.listen-address", f"127.0.0.1:{port}"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        assert wait_ready(url), "/-/ready must turn 200 after the first refresh, discovered vaults included"
        text = requests.get(f"{url}/metrics", timeout=10).text
        assert text.count("azure_backup_vault_scrape_success{") == 5  # 4 Recovery Services vaults, 1 Backup vault
        assert re.search(r'azure_backup_vault_scrape_success\{[^}]*vault_type="backup"[^}]*\} 1\.0', text)
        # the demo's AKS cluster, whose latest backup failed, as a Backup vault item
        assert re.search(r'azure_backup_job_last_status\{[^}]*backup_management_type="AzureKubernetesService"'
                         r'[^}]*status="Failed"[^}]*vault_type="backup"\} 1\.0', text)
        assert "azure_backup_subscription_discovery_success{" in text
    finally:
        proc.terminate()
        proc.wait(timeout=10)
