"""A database's recovery points show the backups its jobs do not (issue 17, point 3): the newest log backup of a
SQL database, and every scheduled backup of an SAP HANA database. Fake ARM over real HTTP; the payload shape is
Microsoft's documented answer (tests/fixtures/azure/recoveryservicesbackup/2016-12-01, PROVENANCE.md)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from exporter.models import parse_item
from exporter.parsing import parse_timestamp
from exporter.policy import PolicyIntervals
from exporter.simulator.fakearm import (
    FakeArm,
    FakeEstate,
    FakeVault,
    Fault,
    make_job,
    make_policy,
    make_protected_item,
    make_workload_recovery_point,
    workload_job_name,
)
from exporter.workload_points import newest_by_kind, unlisted_kinds

from .conftest import FIXTURES, NOW, SUB_A, Clock, Exporter

DOCUMENTED = FIXTURES / "azure" / "recoveryservicesbackup" / "2016-12-01" / \
    "docs.RecoveryPoints_List.sql-database.response.json"
H = timedelta(hours=1)
MIN = timedelta(minutes=1)
BY_KIND = "azure_backup_last_successful_backup_by_kind_timestamp_seconds"
INTERVAL = "azure_backup_item_expected_backup_interval_seconds"


def _documented() -> list[dict[str, Any]]:
    points: list[dict[str, Any]] = json.loads(DOCUMENTED.read_text())["value"]
    return points


def test_the_documented_answer_gives_the_newest_full_and_the_end_of_the_log_chain() -> None:
    errors: list[str] = []
    newest = newest_by_kind(_documented(), errors.append)
    assert newest == {"full": parse_timestamp("2018-06-01T22:15:12Z"), "log": parse_timestamp("2018-06-02T00:02:31Z")}
    assert errors == []


def test_a_point_that_does_not_parse_is_skipped_and_counted() -> None:
    errors: list[str] = []
    broken = [{"properties": {"type": "Full", "recoveryPointTimeInUTC": "yesterday"}}, {"name": "no properties"},
              {"properties": {"type": "Log", "timeRanges": [{"startTime": "2018-05-28T11:03:34Z"}]}}]
    assert newest_by_kind([*broken, *_documented()[:1]], errors.append) == {
        "full": parse_timestamp("2018-06-01T22:15:12Z")}
    assert errors == ["recovery_point", "recovery_point"]


def test_the_fake_lists_points_in_the_documented_shape(estate: FakeEstate) -> None:
    documented_full, documented_range = _documented()[0], _documented()[-1]
    vault = estate.add_vault(SUB_A, "rg", "v")
    item = make_protected_item(vault=vault, item_type="AzureVmWorkloadSQLDatabase", friendly_name="msdb",
                               container="sqlserver-0")
    full = make_workload_recovery_point(item, time=NOW)
    chain = make_workload_recovery_point(item, log_ranges=[(NOW - H, NOW)])
    for made, documented in ((full, documented_full), (chain, documented_range)):
        assert list(made) == list(documented)
        assert list(made["properties"]) == list(documented["properties"])
        assert made["type"] == documented["type"]
        assert made["id"].endswith(f"/recoveryPoints/{made['name']}")
    assert chain["name"] == "DefaultRangeRecoveryPoint"


def _policy(kinds: dict[str, float]) -> PolicyIntervals:
    return PolicyIntervals("p", kinds)


@pytest.mark.parametrize(("item", "kinds", "expected"), [
    (("AzureVmWorkloadSQLDatabase", "SQLDataBase", "Protected"), {"full": 86400, "log": 900}, {"log"}),
    (("AzureVmWorkloadSQLDatabase", "SQLDataBase", "Protected"), {"full": 86400}, set()),
    (("AzureVmWorkloadSAPHanaDatabase", "SAPHanaDatabase", "Protected"), {"full": 86400, "log": 1800},
     {"full", "log"}),
    (("AzureVmWorkloadSQLDatabase", "SQLDataBase", "ProtectionStopped"), {"full": 86400, "log": 900}, set()),
    (("Microsoft.Compute/virtualMachines", None, "Protected"), {"full": 86400}, set()),
])
def test_only_databases_with_backups_the_jobs_do_not_list_are_asked(
        estate: FakeEstate, item: tuple[str, str | None, str], kinds: dict[str, float], expected: set[str]) -> None:
    item_type, workload, state = item
    vault = estate.add_vault(SUB_A, "rg", "v")
    resource = make_protected_item(vault=vault, item_type=item_type, friendly_name="db", workload_type=workload,
                                   protection_state=state, policy="p")
    parsed = parse_item(resource, lambda _: None)
    assert parsed is not None
    assert unlisted_kinds(parsed, _policy(kinds)) == expected


# --- over HTTP --------------------------------------------------------------------------------------------------


def _sql_database(estate: FakeEstate, vault: FakeVault) -> tuple[dict[str, Any], dict[str, str]]:
    """SalesDB on sqlvm01: daily fulls (listed as jobs) and log backups every 15 minutes (never listed)."""
    estate.add_policy(vault.name, make_policy(vault=vault, name="SqlDailyLog15",
                                              backup_management_type="AzureWorkload", log_minutes=15))
    item = make_protected_item(vault=vault, item_type="AzureVmWorkloadSQLDatabase", friendly_name="SalesDB",
                               container="sqlvm01", last_backup_status="Healthy", last_backup_time=NOW - 12 * MIN,
                               policy="SqlDailyLog15")
    estate.add_item(vault.name, item)
    start = NOW - 20 * H
    estate.add_job(vault.name, make_job("00000000-0000-0000-0000-000000000100", vault=vault,
                                        item=workload_job_name("MSSQLSERVER", "SalesDB", "sqlvm01"),
                                        job_type="AzureWorkloadJob", operation="Backup (Full)", start=start,
                                        end=start + 3 * MIN))
    labels = {"subscription_id": vault.subscription_id, "resource_group": vault.resource_group, "vault": vault.name,
              "vault_type": "recovery_services", "backup_management_type": "AzureWorkload",
              "container": "sqlvm01/MSSQLSERVER", "backup_item": "SalesDB"}
    return item, labels


def _points_requests(arm: FakeArm) -> int:
    return sum(1 for r in arm.requests if r.path.endswith("/recoveryPoints"))


def _series(text: str, metric: str, *fragments: str) -> list[str]:
    return [line for line in text.splitlines()
            if line.startswith(metric + "{") and all(fragment in line for fragment in fragments)]


def test_a_sql_databases_log_backups_are_watched_through_its_log_chain(
        estate: FakeEstate, arm: FakeArm, make_exporter: Callable[..., Exporter]) -> None:
    vault = estate.add_vault(SUB_A, "rg-sql", "vault-sql")
    item, db = _sql_database(estate, vault)
    estate.add_item_recovery_point(vault.name, item["id"], make_workload_recovery_point(item, time=NOW - 20 * H))
    estate.add_item_recovery_point(vault.name, item["id"], make_workload_recovery_point(
        item, log_ranges=[(NOW - 3 * 24 * H, NOW - 10 * MIN)]))
    clock = Clock(NOW)
    exporter = make_exporter(clock, vaults=vault.id, items_refresh_interval="0s")
    text = exporter.scrape()
    assert len(_series(text, INTERVAL, 'kind="log"')) == 1  # the rendered text has SalesDB's log interval
    assert exporter.value(INTERVAL, **db, kind="log") == 900
    assert exporter.value(INTERVAL, **db, kind="full") == 86400
    assert exporter.value(BY_KIND, **db, kind="log") == (NOW - 10 * MIN).timestamp()
    assert exporter.value(BY_KIND, **db, kind="full") == (NOW - 20 * H + 3 * MIN).timestamp()  # the job's end
    assert _points_requests(arm) == 1

    clock.advance(5 * MIN)
    exporter.scrape()  # within DATABASE_RECOVERY_POINTS_INTERVAL (30m): not asked again
    assert _points_requests(arm) == 1


def test_a_database_without_a_log_chain_has_no_log_interval(
        estate: FakeEstate, arm: FakeArm, make_exporter: Callable[..., Exporter]) -> None:
    """A database in the simple recovery model never has log backups: nothing to compare a log interval with."""
    vault = estate.add_vault(SUB_A, "rg-sql", "vault-sql")
    item, db = _sql_database(estate, vault)
    estate.add_item_recovery_point(vault.name, item["id"], make_workload_recovery_point(item, time=NOW - 20 * H))
    exporter = make_exporter(Clock(NOW), vaults=vault.id)
    exporter.scrape()
    assert _points_requests(arm) == 1
    assert exporter.value(INTERVAL, **db, kind="log") is None
    assert exporter.value(BY_KIND, **db, kind="log") is None


def test_a_hana_databases_scheduled_backups_are_watched_through_its_recovery_points(
        estate: FakeEstate, make_exporter: Callable[..., Exporter]) -> None:
    vault = estate.add_vault(SUB_A, "rg-hana", "vault-hana")
    estate.add_policy(vault.name, make_policy(vault=vault, name="HanaDailyLog30",
                                              backup_management_type="AzureWorkload", log_minutes=30))
    item = make_protected_item(vault=vault, item_type="AzureVmWorkloadSAPHanaDatabase", friendly_name="h22",
                               container="hanavm01", last_backup_status="Healthy", last_backup_time=NOW - 5 * MIN,
                               policy="HanaDailyLog30")
    estate.add_item(vault.name, item)
    for days in (1, 2):
        estate.add_item_recovery_point(vault.name, item["id"], make_workload_recovery_point(
            item, time=NOW - days * 24 * H + 2 * H))
    estate.add_item_recovery_point(vault.name, item["id"], make_workload_recovery_point(
        item, log_ranges=[(NOW - 2 * 24 * H, NOW - 5 * MIN)]))
    exporter = make_exporter(Clock(NOW), vaults=vault.id)
    text = exporter.scrape()
    hana = 'backup_item="h22"'
    assert _series(text, INTERVAL, hana, 'kind="full"')[0].endswith(" 86400.0")
    assert _series(text, INTERVAL, hana, 'kind="log"')[0].endswith(" 1800.0")
    assert float(_series(text, BY_KIND, hana, 'kind="full"')[0].rsplit(" ", 1)[1]) == (NOW - 22 * H).timestamp()
    assert float(_series(text, BY_KIND, hana, 'kind="log"')[0].rsplit(" ", 1)[1]) == (NOW - 5 * MIN).timestamp()


def test_a_role_that_may_not_read_recovery_points_keeps_what_the_exporter_did_before(
        estate: FakeEstate, arm: FakeArm, make_exporter: Callable[..., Exporter],
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="exporter.recovery_services")
    vault = estate.add_vault(SUB_A, "rg-sql", "vault-sql")
    item, db = _sql_database(estate, vault)
    estate.add_item_recovery_point(vault.name, item["id"], make_workload_recovery_point(
        item, log_ranges=[(NOW - 24 * H, NOW - 10 * MIN)]))
    arm.set_fault(vault.name, Fault.authorization_failed(
        operations=frozenset({"item_recovery_points_list", "item_recovery_points_next_page"})))
    clock = Clock(NOW)
    exporter = make_exporter(clock, vaults=vault.id, items_refresh_interval="0s")
    text = exporter.scrape()
    assert exporter.value("azure_backup_vault_scrape_success", **{k: db[k] for k in (
        "subscription_id", "resource_group", "vault", "vault_type")}) == 1
    assert exporter.value(INTERVAL, **db, kind="full") == 86400  # the full, from its jobs, as before
    assert exporter.value(INTERVAL, **db, kind="log") is None
    assert _series(text, "azure_backup_api_requests_total", 'operation="item_recovery_points_list"', 'code="403"')
    clock.advance(5 * MIN)
    exporter.scrape()
    assert _points_requests(arm) == 1  # asked again only after DATABASE_RECOVERY_POINTS_INTERVAL
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "vault=vault-sql" in warnings[0] and "log backups" in warnings[0]

    arm.set_fault(vault.name, None)  # the role is granted recoveryPoints/read
    clock.advance(30 * MIN)
    exporter.scrape()
    assert exporter.value(INTERVAL, **db, kind="log") == 900
    assert any("listed again" in r.getMessage() for r in caplog.records if r.levelno == logging.INFO)


def test_zero_turns_the_lists_off(estate: FakeEstate, arm: FakeArm, make_exporter: Callable[..., Exporter]) -> None:
    vault = estate.add_vault(SUB_A, "rg-sql", "vault-sql")
    item, db = _sql_database(estate, vault)
    estate.add_item_recovery_point(vault.name, item["id"], make_workload_recovery_point(
        item, log_ranges=[(NOW - 24 * H, NOW - 10 * MIN)]))
    exporter = make_exporter(Clock(NOW), vaults=vault.id, database_recovery_points_interval="0")
    exporter.scrape()
    assert _points_requests(arm) == 0
    assert exporter.value(INTERVAL, **db, kind="log") is None
