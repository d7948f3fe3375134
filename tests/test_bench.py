"""The benchmark harness runs end to end on a tiny estate, so it cannot rot.

No timing is asserted: this machine's numbers mean nothing. What is asserted is that every field of the
report is filled in from real measurements, that the exporter got its data, and that with ARM's token
bucket enforced (small enough here to throttle) no vault and no item lost its data.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bench import bv_scale, dpp
from bench.estate import EstateSpec, Simulator, build_estate
from bench.report import ANALYSIS_END, ANALYSIS_START, RESULTS_MARK, merge_previous, render
from bench.run import Options, run


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    options = Options(
        estates=["2x5"], latency=0.01, refresh_interval=1.0, items_refresh_interval=3.0, job_rate=1.0,
        job_seconds=(1.0, 3.0), steady=4.0, settle_max=30.0, scrapes=3, scrape_budget=10.0, cold_timeout=120.0,
        bucket_capacity=5, bucket_refill=10.0, workdir=tmp_path_factory.mktemp("bench"))
    return run(options)


def _numbers(value: Any, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [pair for key, inner in value.items() for pair in _numbers(inner, f"{path}.{key}")]
    return [(path, value)]


def test_every_measurement_is_taken(results: dict[str, Any]) -> None:
    result = results["estates"]["2x5"]
    cold, warm = result["a"]["cold"], result["a"]["warm"]
    for key in ("first_call_s", "lists_done_s", "calls_stop_s", "ready_s", "ideal_s", "ratio", "cpu_s", "fake_cpu_s",
                "mean_call_s", "in_flight_avg"):
        assert isinstance(cold[key], float) and cold[key] > 0, key
    assert cold["calls"] > 0 and cold["calls_by_operation"]["jobs_get"] > 0
    status = result["c"]
    assert status["status_s"] > 0 and status["metric_polls"] > 0 and status["calls"] > 0
    assert warm["series"] > 0 and warm["us_per_series"] > 0 and warm["first_s"] > 0 and warm["rebuild_s"] > 0
    assert warm["rebuild_samples"] == warm["series"]
    for mode in ("plain", "gzip"):
        assert warm[mode]["n"] == 3 and warm[mode]["median_s"] > 0 and warm[mode]["p99_s"] >= warm[mode]["median_s"]
        assert warm[mode]["cpu_s"] >= 0
    assert warm["gzip"]["bytes"] < warm["plain"]["bytes"]
    assert (warm["missing_status"], warm["failed_vaults"]) == (0, 0)  # run A: data complete
    steady = result["b"]["steady"]
    assert steady["rounds"] > 0 and steady["calls"] > 0 and steady["floor"] > 0 and steady["ratio"] > 0
    assert steady["jobs_started"] > 0  # the simulator ran
    for run_name in ("a", "b"):
        memory = result[run_name]["memory"]
        assert 0 < memory["rss_mb"] <= memory["peak_rss_mb"]
    assert not [path for path, value in _numbers(result) if isinstance(value, float) and math.isnan(value)]


def test_the_bucket_throttles_and_no_data_is_lost(results: dict[str, Any]) -> None:
    bucket_run = results["estates"]["2x5"]["b"]
    assert bucket_run["bucket"]["enforced"]
    assert bucket_run["final"]["fake_throttled_total"] > 0  # a bucket of 5 does throttle
    for check in (bucket_run["cold"]["after_first_refresh"], bucket_run["final"]):
        assert (check["failed_vaults"], check["missing_status"]) == (0, 0)
    assert bucket_run["final"]["exporter_throttled_total"] > 0  # the exporter saw (and counted) the 429s


def test_the_report_has_every_section_and_keeps_what_people_wrote(results: dict[str, Any], tmp_path: Path) -> None:
    previous = f"# old\n{ANALYSIS_START}\nThe render thread is the limit.\n{ANALYSIS_END}\n"
    text = render(results, previous)
    for heading in ("## Machine and settings", "## Estates", "## Targets", "## Cold refresh", "## Job status",
                    "## Steady state",
                    "## Warm scrape", "## Memory", "## Token bucket", "## What limits the misses"):
        assert heading in text
    assert "The render thread is the limit." in text
    tables = text.split("## Estates", 1)[1].split("## What limits", 1)[0]
    rows = [line for line in tables.splitlines() if line.startswith("| ") and "soak" not in line.lower()]
    assert rows and not [row for row in rows if "n/a" in row]  # every number measured; only the soak not run
    assert text.count("**met**") + text.count("**not met**") == 11  # 12 targets, the soak not run
    # a later run of other estates keeps this one
    merged = merge_previous({"estates": {}}, text)
    assert set(merged["estates"]) == {"2x5"}
    embedded = text.split(f"<!-- {RESULTS_MARK}\n", 1)[1].split("\n-->", 1)[0]
    assert json.loads(embedded)["estates"]["2x5"]["a"]["cold"]["calls"] == results["estates"]["2x5"]["a"]["cold"][
        "calls"]
    assert "127.0.0.1" not in text and str(results["logs"]) not in text  # nothing of this machine is committed


def test_estates_are_deterministic_and_consistent() -> None:
    spec = EstateSpec.parse("3x20x2")
    first, second = build_estate(spec, seed=5), build_estate(spec, seed=5)
    assert first.manifest()["items"] == second.manifest()["items"]
    assert sorted(first.estate.vault("rsv-bench-000").jobs) == sorted(second.estate.vault("rsv-bench-000").jobs)
    assert len({vault.subscription_id for vault in first.estate.vaults}) == 2
    for vault in first.estate.vaults:
        assert len(vault.items) == 20
        backups = [job for job in vault.jobs.values() if job["properties"]["operation"] == "Backup"]
        assert len(backups) >= 20 * 7
    # an item's protected item carries its latest finished backup's outcome, to the tick
    item = first.items[0]
    latest = max((job["properties"] for job in first.estate.vault(item.vault).jobs.values()
                  if job["properties"]["entityFriendlyName"] == item.name and job["properties"]["operation"] == "Backup"
                  and "endTime" in job["properties"]), key=lambda props: props["startTime"])
    assert first.protections[(item.vault, item.name)].last_time == latest["endTime"]
    assert EstateSpec.parse("L").items == 20_000 and EstateSpec.parse("l").subscriptions == 20
    with pytest.raises(ValueError, match="estate"):
        EstateSpec.parse("huge")


def test_the_simulator_finishes_jobs_and_updates_their_items() -> None:
    bench = build_estate(EstateSpec.parse("1x10"), seed=3)
    simulator = Simulator(bench, rate=0.0, run_seconds=(0.01, 0.01))
    simulator.rate = 2.0
    simulator.step(1.0)  # starts two jobs
    assert simulator.stats()["jobs_started"] == 2
    for job in bench.running:
        job.finishes = 0.0
    simulator.step(0.0)
    stats = simulator.stats()
    assert stats["jobs_finished"] >= 2 and sum(stats["finished_by_status"].values()) == stats["jobs_finished"]
    assert not [job for job in bench.running if job.finishes == 0.0]


def test_the_backup_vault_calls_per_refresh(tmp_path: Path) -> None:
    """bench.dpp: a Backup vault's list takes no filter, so each refresh lists every page; details only once."""
    result = dpp.measure(instances=4, days=3, page_size=5)  # 12 jobs: 3 pages
    rounds = list(result["rounds"].values())
    # every instance has a successful job: no recovery point is listed (issue 19, point 2)
    assert rounds[0] == {"backupJobs": 3, "backupJobs/{id}": 4, "backupInstances": 1, "backupPolicies": 1,
                         "backupVaults/{name}": 1}
    assert rounds[1] == {"backupJobs": 3}
    assert rounds[2] == {"backupJobs": 3, "backupJobs/{id}": 1}  # 13 jobs: still 3 pages; the new job's details
    # the vault itself (its security settings) is read every 3 items intervals: here, with the items, at interval 0
    assert rounds[3] == {"backupJobs": 3, "backupInstances": 1, "backupPolicies": 1, "backupVaults/{name}": 1}
    report = tmp_path / "performance.md"
    report.write_text(f"before\n{dpp.START}\nSTALE TABLE\n{dpp.END}\nafter\n")
    assert dpp.main(["--instances", "2", "--days", "1", "--out", str(report)]) == 0
    text = report.read_text()
    assert text.startswith("before\n") and text.endswith("after\n") and "STALE TABLE" not in text
    assert "| refresh with nothing new | 1 | 0 | 0 | 0 | 0 | 0 | **1** |" in text


def test_the_backup_vault_estates_at_scale() -> None:
    """bench.bv_scale (issue 19, point 4) on a tiny estate: the cold refresh makes the calls the model says and
    publishes every status; an hour at the defaults, scaled down 360 times, lists each vault's jobs about 12
    times (every BACKUP_VAULT_REFRESH_INTERVAL), and no recovery point (every instance's jobs tell)."""
    now = datetime.now(UTC).replace(microsecond=0)
    built = bv_scale.build_estate(vaults=2, instances=4, subscriptions=1, now=now)
    cold = bv_scale.cold_refresh(built, timeout=60.0)
    assert cold["ready"] and cold["missing_status"] == 0
    # + the subscription's vault list, and its resource list (COVERAGE_INTERVAL: every hour, on shard 0)
    assert cold["calls"] == bv_scale.model_cold_calls(2, 4, after=True) + 2
    assert 0 < cold["statuses_out_s"] <= cold["seconds"]
    hour = bv_scale.scaled_hour(built, factor=360.0)
    lists = hour["by_operation"].get("backupJobs", 0)
    assert 2 * 8 <= lists <= 2 * 14, hour
    assert "recoveryPoints" not in hour["by_operation"] and hour["new_jobs"] == 0  # 8 instances: < 1 job an hour
    row = {"estate": "tiny", "vaults": 2, "instances": 4, "subscriptions": 1, "cold": cold, "hour": hour,
           "peak_rss_mb": bv_scale.peak_rss_mb()}
    assert "| tiny (2 x 4 = 8) | 1 |" in bv_scale.report([row])
