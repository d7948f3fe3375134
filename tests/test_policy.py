"""Expected backup intervals from backup policies (exporter/policy.py).

The fixtures are spec examples from Azure/azure-rest-api-specs, copied verbatim (provenance in
tests/fixtures/azure/PROVENANCE.md); each test uses the `responses.200.body` of its example. Every expected
value is worked out by hand in a comment, in whole days or hours.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from exporter.policy import KINDS, PolicyIntervals, parse_policy, policy_name_of

RSB = Path(__file__).parent / "fixtures" / "azure" / "recoveryservicesbackup"

HOUR = 3600.0
DAY = 24 * HOUR


class Errors(Counter[str]):
    def __call__(self, field: str) -> None:
        self[field] += 1


def _body(relative: str) -> Any:
    return json.loads((RSB / relative).read_text())["responses"]["200"]["body"]


def _parse_all(relative: str) -> dict[str, dict[str, float]]:
    """policy name -> intervals, for a single-policy body or a list body; no errors allowed."""
    body = _body(relative)
    errors = Errors()
    policies = [parse_policy(resource, errors) for resource in body.get("value", [body])]
    assert not errors
    assert all(policy is not None for policy in policies)
    return {policy.name: dict(policy.intervals) for policy in policies if policy is not None}


# --- real spec examples -----------------------------------------------------------------------------------------


def test_iaasvm_daily() -> None:
    # SimpleSchedulePolicy, Daily at 02:00: one run a day -> 24 h.
    assert _parse_all("2026-02-01/AzureIaasVm.ProtectionPolicies_Get.json") == {"testPolicy1": {"full": DAY}}


def test_iaasvm_weekly_monday_wednesday_thursday() -> None:
    # Weekly on Mon, Wed, Thu at 10:00: Mon->Wed 2 d, Wed->Thu 1 d, Thu->next Mon 4 d -> longest 4 d = 345600 s.
    assert _parse_all("2026-02-01/AzureIaasVm.ProtectionPolicies_CreateOrUpdate_Complex.json") == {
        "testPolicy1": {"full": 4 * DAY}}
    assert 4 * DAY == 345600


def test_iaasvm_list_with_v1_and_v2_daily_policies() -> None:
    # Two V1 policies Daily (19:00, 02:00) and one V2 (SimpleSchedulePolicyV2, dailySchedule at 10:00): all 24 h.
    assert _parse_all("2026-02-01/AzureIaasVm.V2Policy.v2-List-Policies.json") == {
        "DefaultPolicy": {"full": DAY},
        "testPolicy1": {"full": DAY},
        "v2-daily-policy": {"full": DAY},
    }


def test_iaasvm_enhanced_hourly() -> None:
    # V2 Hourly, interval 4 h, window 16 h from 08:00: runs 08, 12, 16, 20, 24(=00); gaps 4 h each, then
    # 00 -> 08 the next day = 8 h -> longest 8 h = 28800 s.
    assert _parse_all("2025-08-01/AzureIaasVm.V2Policy.IaaS_v2_hourly.json") == {
        "v2-daily-sample": {"full": 8 * HOUR}}
    assert 8 * HOUR == 28800


def test_workload_sql_full_differential_log() -> None:
    # Full weekly Sun + Tue: Sun->Tue 2 d, Tue->Sun 5 d -> 5 d = 432000 s.
    # Differential weekly Fri only: 7 d = 604800 s.  Log every 60 min: 3600 s.
    assert _parse_all("2026-02-01/AzureWorkload.ProtectionPolicies_CreateOrUpdate_Complex.json") == {
        "testPolicy1": {"full": 432000.0, "differential": 604800.0, "log": 3600.0}}


def test_workload_sql_list_full_daily_log_hourly() -> None:
    # Full Daily at 19:00: 24 h.  Log every 60 min: 1 h.
    assert _parse_all("2026-02-01/AzureWorkload.BackupPolicies_List.json") == {
        "HourlyLogBackup": {"full": DAY, "log": HOUR}}


def test_azure_files_daily_vault_standard() -> None:
    # AzureStorage (file share), SimpleSchedulePolicy Daily at 09:30 (vaultRetentionPolicy shape): 24 h.
    assert _parse_all("2026-02-01/AzureStorage.ProtectionPolicies_CreateOrUpdate_Hardened.json") == {
        "newPolicyV2": {"full": DAY}}


def test_azure_files_hourly() -> None:
    # AzureStorage, SimpleSchedulePolicy Hourly, interval 4 h, window 12 h from 08:00: runs 08, 12, 16, 20
    # (the example retains the daily point at 20:00, the window's end); gap 20:00 -> 08:00 = 12 h = 43200 s.
    assert _parse_all("2025-08-01/AzureStorage.ProtectionPolicies_CreateOrUpdate_Hourly.json") == {
        "newPolicy2": {"full": 12 * HOUR}}
    assert 12 * HOUR == 43200


def test_policy_name_of_spec_ids() -> None:
    for relative in ("2026-02-01/AzureIaasVm.ProtectionPolicies_Get.json",
                     "2025-08-01/AzureIaasVm.V2Policy.IaaS_v2_hourly.json"):
        body = _body(relative)
        assert policy_name_of(body["id"]) == body["name"]


# --- synthetic cases -------------------------------------------------------------------------------------------


def _policy(schedule: Any) -> dict[str, Any]:
    return {"name": "p", "properties": {"backupManagementType": "AzureIaasVM", "schedulePolicy": schedule}}


def _workload(*sub_policies: Any) -> dict[str, Any]:
    return {"name": "w", "properties": {"backupManagementType": "AzureWorkload",
                                        "subProtectionPolicy": list(sub_policies)}}


def _weekly(*days: str) -> dict[str, Any]:
    return {"schedulePolicyType": "SimpleSchedulePolicy", "scheduleRunFrequency": "Weekly",
            "scheduleRunDays": list(days), "scheduleRunTimes": ["2024-01-01T22:00:00Z"]}


def _hourly(interval: Any, window: Any) -> dict[str, Any]:
    return {"schedulePolicyType": "SimpleSchedulePolicyV2", "scheduleRunFrequency": "Hourly",
            "hourlySchedule": {"interval": interval, "scheduleWindowStartTime": "2024-01-01T08:00:00Z",
                               "scheduleWindowDuration": window}}


def _log(minutes: Any) -> dict[str, Any]:
    return {"schedulePolicyType": "LogSchedulePolicy", "scheduleFrequencyInMins": minutes}


def _parse(resource: Any) -> tuple[dict[str, float] | None, Errors]:
    errors = Errors()
    policy = parse_policy(resource, errors)
    return (None if policy is None else dict(policy.intervals)), errors


@pytest.mark.parametrize(("days", "expected_days"), [
    (["Sunday"], 7),                               # once a week
    (["Monday", "Thursday"], 4),                   # Mon->Thu 3 d, Thu->Mon 4 d
    (["Thursday", "Monday"], 4),                   # order in the list does not matter
    (["Saturday", "Sunday"], 6),                   # Sat->Sun 1 d, Sun->Sat 6 d (wraps the week's start)
    (["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"], 3),  # Fri->Mon
    (["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"], 1),
    (["Friday", "Friday"], 7),                     # a repeated day is one day
])
def test_weekly_longest_gap(days: list[str], expected_days: int) -> None:
    assert _parse(_policy(_weekly(*days))) == ({"full": expected_days * DAY}, Errors())


def test_weekly_v2_weekly_schedule() -> None:
    schedule = {"schedulePolicyType": "SimpleSchedulePolicyV2", "scheduleRunFrequency": "Weekly",
                "weeklySchedule": {"scheduleRunDays": ["Tuesday", "Saturday"],
                                   "scheduleRunTimes": ["2024-01-01T10:00:00Z"]}}
    # Tue->Sat 4 d, Sat->Tue 3 d -> 4 d
    assert _parse(_policy(schedule)) == ({"full": 4 * DAY}, Errors())


@pytest.mark.parametrize(("interval", "window", "expected_hours"), [
    (4, 12, 12),   # 08, 12, 16, 20; 20 -> 08 = 12 h
    (4, 16, 8),    # 08 .. 24; 00 -> 08 = 8 h
    (4, 24, 4),    # whole day: the run at 08 + 24 h is the next day's first
    (6, 24, 6),
    (8, 16, 8),    # 08, 16, 24: all 8 h apart
    (12, 12, 12),  # 08, 20
    (12, 4, 24),   # window shorter than the interval: one run a day
    (4, 48, 4),    # a window over 24 h is a whole day
    (4, 10, 16),   # window not a multiple of the interval: 08, 12, 16; 16 -> 08 = 16 h
])
def test_hourly_window_wrap(interval: int, window: int, expected_hours: int) -> None:
    assert _parse(_policy(_hourly(interval, window))) == ({"full": expected_hours * HOUR}, Errors())


def test_hourly_v1_file_share_form() -> None:
    schedule = {"schedulePolicyType": "SimpleSchedulePolicy", "scheduleRunFrequency": "Hourly",
                "hourlySchedule": {"interval": 6, "scheduleWindowDuration": 18,
                                   "scheduleWindowStartTime": "2024-01-01T06:00:00Z"}}
    # 06, 12, 18, 24(=00); 00 -> 06 = 6 h
    assert _parse(_policy(schedule)) == ({"full": 6 * HOUR}, Errors())


@pytest.mark.parametrize(("minutes", "expected"), [(15, 900.0), (60, 3600.0), (120, 7200.0), (30.0, 1800.0)])
def test_log_frequency(minutes: float, expected: float) -> None:
    assert _parse(_workload({"policyType": "Log", "schedulePolicy": _log(minutes)})) == ({"log": expected}, Errors())


def test_daily_multiple_run_times_take_the_longest_gap() -> None:
    # MAB-style daily with three run times: 06 -> 12 = 6 h, 12 -> 20 = 8 h, 20 -> 06 = 10 h -> 10 h
    schedule = {"schedulePolicyType": "SimpleSchedulePolicy", "scheduleRunFrequency": "Daily",
                "scheduleRunTimes": ["2024-01-01T12:00:00Z", "2024-01-01T06:00:00Z", "2024-01-01T20:00:00Z"]}
    assert _parse(_policy(schedule)) == ({"full": 10 * HOUR}, Errors())


@pytest.mark.parametrize("times", [None, [], ["not a time"], [17], "2024-01-01T10:00:00Z"])
def test_daily_without_readable_run_times_is_one_run_a_day(times: Any) -> None:
    schedule = {"schedulePolicyType": "SimpleSchedulePolicy", "scheduleRunFrequency": "Daily",
                "scheduleRunTimes": times}
    assert _parse(_policy(schedule)) == ({"full": DAY}, Errors())


@pytest.mark.parametrize("frequency", ["daily", "DAILY", " Daily ", "dAiLy"])
def test_run_frequency_in_odd_casing(frequency: str) -> None:
    schedule = {"schedulePolicyType": "simpleschedulepolicy", "scheduleRunFrequency": frequency,
                "scheduleRunTimes": ["2024-01-01T02:00:00Z"]}
    assert _parse(_policy(schedule)) == ({"full": DAY}, Errors())


def test_weekly_and_days_in_odd_casing() -> None:
    schedule = {**_weekly("MONDAY", "thursday"), "scheduleRunFrequency": "WEEKLY"}
    assert _parse(_policy(schedule)) == ({"full": 4 * DAY}, Errors())


@pytest.mark.parametrize("schedule", [
    {"schedulePolicyType": "SimpleSchedulePolicy", "scheduleRunFrequency": "Monthly"},
    {"schedulePolicyType": "SimpleSchedulePolicy", "scheduleRunFrequency": "Invalid"},
    {"schedulePolicyType": "SimpleSchedulePolicy"},                       # no frequency
    {"schedulePolicyType": "SomethingNew", "scheduleRunFrequency": 7},
    {},
    "Daily",
    ["Daily"],
    _weekly("Someday"),                                                   # unknown day
    _weekly(),                                                            # no days
    {"schedulePolicyType": "SimpleSchedulePolicy", "scheduleRunFrequency": "Weekly", "scheduleRunDays": "Monday"},
    {"schedulePolicyType": "SimpleSchedulePolicy", "scheduleRunFrequency": "Hourly"},  # no hourlySchedule
    _hourly(4, None),                                                     # no window
    _hourly(0, 12),
    _hourly(-4, 12),
    _hourly(4, 0),
    _hourly("4", 12),
    _hourly(True, 12),
    _hourly(float("nan"), 12),
    _hourly(10**400, 12),
    _hourly(4, float("inf")),
    _hourly(0.001, 12),                                                   # under a minute
    _log(0),
    _log(None),
    _log("15"),
    _log(False),
])
def test_unparseable_schedule_drops_only_its_kind(schedule: Any) -> None:
    resource = _workload({"policyType": "Full", "schedulePolicy": schedule},
                         {"policyType": "Log", "schedulePolicy": _log(15)})
    assert _parse(resource) == ({"log": 900.0}, Errors({"policy_schedule": 1}))


def test_unparseable_single_schedule_keeps_the_policy() -> None:
    intervals, errors = _parse(_policy({"schedulePolicyType": "SimpleSchedulePolicy",
                                        "scheduleRunFrequency": "Fortnightly"}))
    assert intervals == {}
    assert errors == Errors({"policy_schedule": 1})


@pytest.mark.parametrize("resource", [
    {"name": "p"},                                      # no properties
    {"name": "p", "properties": None},
    {"name": "p", "properties": "AzureIaasVM"},
    {"properties": {"schedulePolicy": _weekly("Monday")}},  # no name
    {"name": "", "properties": {}},
    {"name": 42, "properties": {}},
    {},
    [],
    None,
])
def test_missing_name_or_properties(resource: Any) -> None:
    assert _parse(resource) == (None, Errors({"policy": 1}))


def test_workload_sub_policy_kinds() -> None:
    daily = {"schedulePolicyType": "SimpleSchedulePolicy", "scheduleRunFrequency": "Daily",
             "scheduleRunTimes": ["2024-01-01T02:00:00Z"]}
    resource = _workload(
        {"policyType": "Full", "schedulePolicy": _weekly("Sunday")},
        {"policyType": "Incremental", "schedulePolicy": daily},
        {"policyType": "CopyOnlyFull", "schedulePolicy": _weekly("Sunday", "Wednesday")},  # Wed->Sun 4 d
        {"policyType": "SnapshotFull", "schedulePolicy": daily},
        {"policyType": "SnapshotCopyOnlyFull", "schedulePolicy": daily},
        {"policyType": "log", "schedulePolicy": _log(120)},               # odd casing of the type
    )
    assert _parse(resource) == ({
        "full": 7 * DAY, "incremental": DAY, "copy_only_full": 4 * DAY, "snapshot_full": DAY,
        "snapshot_copy_only_full": DAY, "log": 2 * HOUR}, Errors())


@pytest.mark.parametrize("sub_policy", [
    {"policyType": "Invalid", "schedulePolicy": _log(15)},
    {"policyType": "Transactional", "schedulePolicy": _log(15)},
    {"schedulePolicy": _log(15)},
    "Log",
    None,
])
def test_unknown_sub_policy_type_is_dropped(sub_policy: Any) -> None:
    resource = _workload(sub_policy, {"policyType": "Full", "schedulePolicy": _weekly("Monday")})
    assert _parse(resource) == ({"full": 7 * DAY}, Errors({"policy_schedule": 1}))


@pytest.mark.parametrize("resource", [
    _workload({"policyType": "Differential"}),                               # schedule-less sub-policy
    _workload({"policyType": "Differential", "schedulePolicy": None}),
    _workload(),
    _policy({"schedulePolicyType": "LongTermSchedulePolicy"}),               # MAB/DPM long-term: no schedule fields
    _policy(None),
    {"name": "mab", "properties": {"backupManagementType": "MAB"}},
    {"name": "generic", "properties": {"backupManagementType": "GenericProtectionPolicy", "fabricName": "x"}},
    {"name": "sql", "properties": {"backupManagementType": "AzureSql",
                                   "retentionPolicy": {"retentionPolicyType": "SimpleRetentionPolicy"}}},
])
def test_no_schedule_no_interval_no_error(resource: Any) -> None:
    assert _parse(resource) == ({}, Errors())


def test_sub_protection_policy_not_a_list() -> None:
    resource = {"name": "w", "properties": {"subProtectionPolicy": {"policyType": "Full"}}}
    assert _parse(resource) == ({}, Errors({"policy_schedule": 1}))


def test_repeated_kind_keeps_the_shorter_interval() -> None:
    for first, second in ((15, 60), (60, 15)):
        resource = _workload({"policyType": "Log", "schedulePolicy": _log(first)},
                             {"policyType": "Log", "schedulePolicy": _log(second)})
        assert _parse(resource) == ({"log": 900.0}, Errors())


def test_result_shape() -> None:
    policy = parse_policy(_policy(_weekly("Monday", "Thursday")), Errors())
    assert policy == PolicyIntervals(name="p", intervals={"full": 4 * DAY})
    assert policy is not None
    with pytest.raises(TypeError):
        policy.intervals["full"] = 1.0  # type: ignore[index]
    assert set(policy.intervals) <= set(KINDS)


@pytest.mark.parametrize(("policy_id", "name"), [
    ("/Subscriptions/0/resourceGroups/rg/providers/Microsoft.RecoveryServices/vaults/v/backupPolicies/DefaultPolicy",
     "DefaultPolicy"),
    ("/subscriptions/0/resourceGroups/rg/providers/Microsoft.RecoveryServices/vaults/v/backupPolicies/Mixed-Case/",
     "Mixed-Case"),
    ("EnhancedPolicy", "EnhancedPolicy"),
    ("", ""),
])
def test_policy_name_of(policy_id: str, name: str) -> None:
    assert policy_name_of(policy_id) == name
