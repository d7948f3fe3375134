"""The parts of a vault refresh, one at a time and without HTTP: the listing window policy (listing.py), the
details policy (details.py) and the merge (jobbook.py), on Job values built here."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from exporter.arm import ArmError
from exporter.details import RUNNING_DETAILS_MAX_AGE, DetailsPolicy, detail_targets
from exporter.jobbook import JobBook
from exporter.listing import ListWindow, first_reach, first_window, next_window, odata_filters
from exporter.models import Job, Task
from exporter.policy import PolicyIntervals

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
T = NOW.timestamp()
H = timedelta(hours=1)
D = timedelta(days=1)
LOOKBACK = 7 * D


def _job(job_id: str, status: str = "Completed", *, start: timedelta = H, end: timedelta | None = None,
         item: str = "vm-a", tasks: tuple[Task, ...] | None = None, size: float | None = None) -> Job:
    """A VM backup job that started `start` before NOW (and ended `end` before NOW, when given)."""
    return Job(job_id=job_id, job_type="AzureIaaSVMJob", item=item, backup_management_type="AzureIaasVM",
               operation="Backup", status=status, start=(NOW - start).timestamp(),
               end=(NOW - end).timestamp() if end is not None else None, duration=None, container="rg",
               size_bytes=size, tasks=tasks, named_as=("rg", item))


def _policy(**intervals: timedelta) -> PolicyIntervals:
    return PolicyIntervals("p", {kind: interval.total_seconds() for kind, interval in intervals.items()})


# --- the listing window policy -------------------------------------------------------------------


def test_first_window_without_policies_reaches_back_by_the_lookback_and_asks_for_running_jobs() -> None:
    window = first_window(NOW, LOOKBACK, [])
    assert window == ListWindow(NOW - LOOKBACK, NOW + timedelta(minutes=5), with_running=True)
    assert odata_filters(window) == ["startTime eq '2026-03-03 12:00:00 PM' and endTime eq '2026-03-10 12:05:00 PM'",
                                     "status eq 'InProgress'"]


def test_first_window_reaches_back_twice_the_longest_policy_interval_when_longer_than_the_lookback() -> None:
    weekly_full_hourly_log = _policy(full=7 * D, log=H)
    assert first_reach(LOOKBACK, [_policy(full=D), weekly_full_hourly_log]) == 14 * D
    assert first_window(NOW, LOOKBACK, [weekly_full_hourly_log]).since == NOW - 14 * D
    assert first_reach(LOOKBACK, [_policy(full=D)]) == LOOKBACK  # 2 days: the lookback is longer
    assert first_reach(LOOKBACK, [_policy()]) == LOOKBACK  # a policy without a usable schedule


def test_first_window_is_bounded_by_max_lookback() -> None:
    assert first_reach(LOOKBACK, [_policy(full=20 * D)]) == 30 * D
    assert first_reach(30 * D, []) == 30 * D


def test_next_window_starts_an_overlap_before_the_last_list() -> None:
    window = next_window(NOW, NOW - timedelta(minutes=5), [_job("done", start=5 * H, end=4 * H)])
    assert window == ListWindow(NOW - timedelta(minutes=20), NOW + timedelta(minutes=5), with_running=False)
    assert odata_filters(window) == ["startTime eq '2026-03-10 11:40:00 AM' and endTime eq '2026-03-10 12:05:00 PM'"]


def test_next_window_reaches_back_to_the_earliest_running_job_within_the_horizon() -> None:
    jobs = [_job("running-3h", "InProgress", start=3 * H), _job("running-1h", "InProgress", start=H),
            _job("finished-5h", start=5 * H, end=4 * H)]
    assert next_window(NOW, NOW - timedelta(minutes=5), jobs).since == NOW - 3 * H - timedelta(minutes=1)
    at_the_horizon = [_job("running-12h", "InProgress", start=12 * H)]
    assert next_window(NOW, NOW - timedelta(minutes=5), at_the_horizon).since == NOW - 12 * H - timedelta(minutes=1)


def test_next_window_does_not_reach_past_the_running_list_horizon() -> None:
    stuck = [_job("stuck-13h", "InProgress", start=13 * H), _job("stuck-3d", "InProgress", start=3 * D)]
    assert next_window(NOW, NOW - timedelta(minutes=5), stuck).since == NOW - timedelta(minutes=20)
    both = [*stuck, _job("running-2h", "InProgress", start=2 * H)]
    assert next_window(NOW, NOW - timedelta(minutes=5), both).since == NOW - 2 * H - timedelta(minutes=1)


def test_next_window_is_bounded_by_max_lookback() -> None:
    assert next_window(NOW, NOW - 40 * D, []).since == NOW - 30 * D


# --- the details policy --------------------------------------------------------------------------


def _targets(jobs: list[Job], awaiting: set[str] | None = None, fetched_at: Mapping[str, float] | None = None,
             list_window_start: float = float("-inf")) -> list[str]:
    return detail_targets({job.job_id: job for job in jobs}, awaiting or set(), fetched_at or {}, list_window_start, T)


def test_the_latest_finished_job_without_tasks_is_a_target() -> None:
    older = _job("older", start=30 * H, end=29 * H)  # the same item and operation, not the latest: not shown
    other_item = _job("other", start=2 * H, end=H, item="vm-b", tasks=(Task("Take Snapshot", "Completed"),))
    assert _targets([older, _job("latest", start=6 * H, end=5 * H), other_item]) == ["latest"]


def test_a_running_job_is_fetched_when_first_seen_then_at_most_every_max_age() -> None:
    running = _job("running", "InProgress", start=2 * H)
    assert RUNNING_DETAILS_MAX_AGE == 1800.0
    assert _targets([running]) == ["running"]
    assert _targets([running], fetched_at={"running": T - RUNNING_DETAILS_MAX_AGE + 1}) == []
    assert _targets([running], fetched_at={"running": T - RUNNING_DETAILS_MAX_AGE}) == ["running"]


def test_a_running_job_outside_the_list_is_a_target_though_not_the_latest() -> None:
    stuck = _job("stuck", "InProgress", start=3 * D)
    latest = _job("latest", start=H, end=timedelta(minutes=30), tasks=())
    window_start = (NOW - 2 * H).timestamp()
    assert _targets([stuck, latest], list_window_start=window_start) == ["stuck"]
    assert _targets([stuck, latest], list_window_start=(NOW - 4 * D).timestamp()) == []  # the list covers it
    assert _targets([stuck, latest], fetched_at={"stuck": T - 60}, list_window_start=window_start) == []


def test_a_job_awaiting_its_size_is_a_target() -> None:
    older = _job("older", start=30 * H, end=29 * H, tasks=())
    latest = _job("latest", start=6 * H, end=5 * H, tasks=())
    assert _targets([older, latest]) == []
    assert _targets([older, latest], awaiting={"older", "pruned"}) == ["older"]


def _round(book: JobBook, answers: Mapping[str, Any]) -> list[str]:
    """One details round against `answers` (a resource, or an ArmError to raise); the ids asked, in order."""
    asked: list[str] = []

    def get(job_id: str) -> Mapping[str, Any]:
        asked.append(job_id)
        answer = answers[job_id]
        if isinstance(answer, ArmError):
            raise answer
        return {"id": job_id}

    def parse(resource: Mapping[str, Any]) -> Job | None:
        answer = answers[resource["id"]]
        return answer if isinstance(answer, Job) else None

    DetailsPolicy("vault-a").fetch(book, get, parse, float("-inf"), T)
    return asked


def test_a_details_round_applies_answers_drops_404s_and_stops_at_a_transient_error() -> None:
    book = JobBook(LOOKBACK)
    book.merge_list({job.job_id: job for job in [
        _job("a", start=6 * H, end=5 * H), _job("b", start=5 * H, end=4 * H, item="vm-b"),
        _job("c", start=4 * H, end=3 * H, item="vm-c"), _job("d", start=3 * H, end=2 * H, item="vm-d")]},
        NOW, first=True)
    detailed = _job("a", start=6 * H, end=5 * H, tasks=(Task("Take Snapshot", "Completed"),), size=1024.0)
    asked = _round(book, {"a": detailed, "b": ArmError("gone", 404), "c": ArmError("busy", 503), "d": detailed})
    assert asked == ["a", "b", "c"]
    assert book.jobs["a"].tasks == (Task("Take Snapshot", "Completed"),)
    assert book.jobs["a"].size_bytes == 1024.0
    assert sorted(book.jobs) == ["a", "c", "d"]
    assert book.jobs["c"].tasks is None


def test_a_details_round_raises_other_errors() -> None:
    book = JobBook(LOOKBACK)
    book.merge_list({"a": _job("a", start=6 * H, end=5 * H)}, NOW, first=True)
    with pytest.raises(ArmError) as raised:
        _round(book, {"a": ArmError("forbidden", 403)})
    assert raised.value.status == 403


# --- the merge -----------------------------------------------------------------------------------


def test_jobs_finishing_are_counted_once_and_their_size_when_a_get_brings_it() -> None:
    book = JobBook(LOOKBACK)
    book.merge_list({"a": _job("a", "InProgress", start=2 * H), "old": _job("old", start=9 * H, end=8 * H)},
                    NOW, first=True)
    assert sum(book.stats.finished.values()) == 0  # the first list is history
    finished = _job("a", start=2 * H, end=H)
    book.merge_list({"a": finished}, NOW + H, first=False)
    book.merge_list({"a": finished}, NOW + 2 * H, first=False)
    assert book.stats.finished[("AzureIaasVM", "Backup", "Completed")] == 1
    assert book.awaiting_final == {"a"}
    book.merge_details("a", _job("a", start=2 * H, end=H, tasks=(), size=2048.0))
    assert book.awaiting_final == set()
    assert book.stats.transferred[("AzureIaasVM", "Backup")] == 2048.0
    book.merge_list({"a": finished}, NOW + 3 * H, first=False)  # a list carries no details: the GET's stay
    assert (book.jobs["a"].tasks, book.jobs["a"].size_bytes) == ((), 2048.0)
    assert book.successes == {((("AzureIaasVM", "rg", "vm-a"), "full")): (NOW - H).timestamp()}


def test_a_job_seen_running_is_fetched_once_more_when_it_finishes_and_counts_only_its_final_size() -> None:
    book = JobBook(LOOKBACK)
    book.merge_list({"a": _job("a", "InProgress", start=2 * H)}, NOW, first=True)
    book.merge_details("a", _job("a", "InProgress", start=2 * H, tasks=(Task("Take Snapshot", "InProgress"),),
                                 size=0.0))  # a running job's details: Data Transferred 0
    book.merge_list({"a": _job("a", start=2 * H, end=H)}, NOW + H, first=False)
    assert book.stats.finished[("AzureIaasVM", "Backup", "Completed")] == 1
    assert book.stats.transferred.get(("AzureIaasVM", "Backup"), 0.0) == 0.0  # the running 0 is not counted
    assert detail_targets(book.jobs, book.awaiting_final, {}, float("-inf"), T) == ["a"]
    book.merge_details("a", _job("a", start=2 * H, end=H, tasks=(Task("Take Snapshot", "Completed"),), size=4096.0))
    assert book.jobs["a"].tasks == (Task("Take Snapshot", "Completed"),)
    assert book.stats.transferred[("AzureIaasVM", "Backup")] == 4096.0
    assert detail_targets(book.jobs, book.awaiting_final, {}, float("-inf"), T) == []
    book.merge_list({"a": _job("a", start=2 * H, end=H)}, NOW + 2 * H, first=False)
    assert book.stats.transferred[("AzureIaasVM", "Backup")] == 4096.0
    assert book.stats.finished[("AzureIaasVM", "Backup", "Completed")] == 1


def test_a_job_the_list_and_a_get_disagree_on_is_counted_once() -> None:
    """The list says finished, a GET still says running (ARM's replicas lag): one count when it settles."""
    book = JobBook(LOOKBACK)
    book.merge_list({"a": _job("a", "InProgress", start=2 * H)}, NOW, first=True)
    book.merge_list({"a": _job("a", start=2 * H, end=H)}, NOW + H, first=False)
    book.merge_details("a", _job("a", "InProgress", start=2 * H, tasks=()))
    book.merge_details("a", _job("a", start=2 * H, end=H, tasks=(), size=10.0))
    assert book.stats.finished[("AzureIaasVM", "Backup", "Completed")] == 1
    assert book.stats.transferred[("AzureIaasVM", "Backup")] == 10.0
