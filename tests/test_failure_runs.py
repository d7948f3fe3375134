"""Issue 18, point 1: failures in a row per item and operation (azure_backup_job_consecutive_failures).

The alert on a failed backup keeps one identity while the failure lasts, and the page for repeated failure
needs to know that the last two backups failed: both read this family, rendered through the real exposition
from jobs the fake ARM serves over loopback.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from exporter.simulator.fakearm import FakeEstate, FakeVault

from .conftest import NOW, SUB_A, Exporter, fixed_clock
from .test_exporter import _azure_time, _backup, _guid, _item

H = timedelta(hours=1)
RUNS = "azure_backup_job_consecutive_failures"


def _estate(estate: FakeEstate) -> FakeVault:
    vault = estate.add_vault(SUB_A, "rg-prod", "vault-prod", "westeurope")
    histories = {  # oldest first
        "vm-twice": ("Completed", "Failed", "Failed", "InProgress"),  # two nightly failures, a retry running
        "vm-once": ("Completed", "Failed"),
        "vm-repaired": ("Failed", "Completed"),
        "vm-cancelled": ("Failed", "Cancelled"),
        "vm-fine": ("Completed", "Completed"),
    }
    n = 0
    for item, statuses in histories.items():
        for age, status in zip(range(len(statuses) * 24, 0, -24), statuses, strict=True):
            n += 1
            estate.add_job(vault.name, _backup(vault, _guid(n), item, NOW - age * H + H, status=status))
    return vault


def _runs(exporter: Exporter, vault: FakeVault) -> dict[str, float | None]:
    return {item: exporter.value(RUNS, **_item(vault, item))
            for item in ("vm-twice", "vm-once", "vm-repaired", "vm-cancelled", "vm-fine")}


def test_failures_in_a_row_skip_the_running_job_and_end_at_any_other_outcome(
        estate: FakeEstate, make_exporter: Callable[..., Exporter]) -> None:
    vault = _estate(estate)
    exporter = make_exporter(fixed_clock(NOW), vaults=vault.id)
    text = exporter.scrape()
    assert _runs(exporter, vault) == {"vm-twice": 2, "vm-once": 1, "vm-repaired": None, "vm-cancelled": None,
                                      "vm-fine": None}
    assert f"# TYPE {RUNS} gauge" in text
    # the running retry of vm-twice is its latest job: the run of failures still holds (one alert identity)
    assert exporter.value("azure_backup_job_last_status", **_item(vault, "vm-twice"), status="InProgress") == 1


@pytest.mark.parametrize(("outcome", "expected"), [("Failed", 3.0), ("Completed", None)])
def test_the_running_job_extends_or_ends_the_run_when_it_finishes(
        estate: FakeEstate, make_exporter: Callable[..., Exporter], outcome: str, expected: float | None) -> None:
    vault = _estate(estate)
    clock = fixed_clock(NOW)
    exporter = make_exporter(clock, vaults=vault.id)
    exporter.scrape()
    (running,) = [job["name"] for job in estate.jobs(vault.name) if job["properties"]["status"] == "InProgress"]
    estate.update_job(vault.name, running, status=outcome, endTime=_azure_time(NOW + timedelta(minutes=5)))
    clock.advance(timedelta(minutes=31))  # a running job older than the list window is followed by GET
    exporter.scrape()
    assert exporter.value(RUNS, **_item(vault, "vm-twice")) == expected
