"""A project's ``limits:``, on SQLite and PostgreSQL, with the dummy provider (offline): runs
running and queued at once (``429 project_limit_reached`` at admission; a worker's claim
skips a saturated project, and its start transaction counts again), and model calls and
tokens per UTC day (a run pauses for a person whose approval raises the project's limit for
the day, or fails; new runs get 429 until the next UTC midnight). Every journey has two
projects: the one at its limit never slows or blocks the other."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from runtime_helpers import DRAFT, Service, ServiceFactory

from kneo.errors import ProjectLimitReached
from kneo.platform import create_platform
from kneo.platform.limits import ProjectLimitsGate
from kneo.platform.worker import Worker
from kneo.settings import Settings
from kneo.spec.project import ProjectContext
from kneo.store import RunQuery, open_store
from tests.queue_records import queue_records

#: :data:`DRAFT` drafting twice: two model calls, each checked against the daily budgets
TWO_CALLS = {
    **DRAFT,
    "workflow": {
        "type": "sequential",
        "name": "twice",
        "steps": [
            {"id": "draft", "kind": "agent", "ref": "writer"},
            {"id": "again", "kind": "agent", "ref": "writer"},
        ],
    },
}


def _refused(answer: Any, limit: str) -> dict[str, Any]:
    assert answer.status_code == 429, answer.text
    body = dict(answer.json())
    assert body["error"] == "project_limit_reached" and body["limit"] == limit, body
    assert body["field"] == f"limits.{limit}"
    assert answer.headers["Retry-After"] == str(body["retry_after"])
    return body


def _executing(service: Service, project: str) -> str:
    """A run of ``project`` that another process executes (running, under its live lease)."""
    store = service.manager.for_project(project).store
    with store.transaction() as tx:
        run = tx.create_run(
            target="workflow", input_text="x", status="running", lease=("elsewhere:1:x", 600)
        )
    return run.run_id


def _ends(service: Service, project: str, run_id: str) -> None:
    store = service.manager.for_project(project).store
    assert store.queue.release_run_lease(run_id, "elsewhere:1:x")


def test_a_project_at_max_queued_runs_gets_429_and_the_other_queues_on(
    teams_service: ServiceFactory,
) -> None:
    service = teams_service({"team-a": {"limits": {"max_queued_runs": 2}}})
    for _ in range(2):
        assert service.start("a-op", DRAFT, queued=True).status_code == 202
    body = _refused(service.start("a-op", DRAFT, queued=True), "max_queued_runs")
    assert body["value"] == 2 and body["project"] == "team-a"
    for _ in range(3):  # team-b sets no limit
        assert service.start("b-op", DRAFT, queued=True).status_code == 202
    assert service.start("a-op", DRAFT).json()["status"] == "succeeded"  # runs now: not queued
    assert Worker(service.manager, name="t").run_until_empty() == 5
    assert service.start("a-op", DRAFT, queued=True).status_code == 202  # room again


def test_a_project_at_max_running_runs_refuses_a_start_that_would_execute(
    teams_service: ServiceFactory,
) -> None:
    service = teams_service({"team-a": {"limits": {"max_running_runs": 1}}})
    # a decision's run goes to the queue, whose take-over takes a slot, never straight to a
    # worker of the deciding process (kneo.platform.handoff)
    managers = service.manager.for_project
    assert managers("team-a").decisions.limited and not managers("team-b").decisions.limited
    elsewhere = _executing(service, "team-a")
    _refused(service.start("a-op", DRAFT), "max_running_runs")
    assert service.start("b-op", DRAFT).json()["status"] == "succeeded"
    assert service.start("a-op", DRAFT, queued=True).status_code == 202  # it may wait
    _ends(service, "team-a", elsewhere)
    assert service.start("a-op", DRAFT).json()["status"] == "succeeded"


def test_a_start_that_passed_admission_in_a_race_counts_again_in_its_own_transaction(
    teams_service: ServiceFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two synchronous starts may both pass admission's count; the transaction that
    creates a started run counts again under the project's row lock, so the second of them
    is refused there and nothing is created."""
    service = teams_service({"team-a": {"limits": {"max_running_runs": 1}}})
    _executing(service, "team-a")  # the first start's run, still executing
    monkeypatch.setattr(ProjectLimitsGate, "admit", lambda self, *, queued: None)  # raced
    store = service.manager.for_project("team-a").store
    before = len(store.runs.list_runs(RunQuery(limit=50)).items)
    _refused(service.start("a-op", DRAFT), "max_running_runs")
    assert len(store.runs.list_runs(RunQuery(limit=50)).items) == before  # nothing was created
    assert service.start("b-op", DRAFT).json()["status"] == "succeeded"


def test_a_worker_starts_no_more_runs_of_a_saturated_project_than_its_limit(
    teams_service: ServiceFactory,
) -> None:
    service = teams_service({"team-a": {"limits": {"max_running_runs": 1}}})
    elsewhere = _executing(service, "team-a")
    waiting = [service.start("a-op", DRAFT, queued=True).json()["run_id"] for _ in range(2)]
    other = service.start("b-op", DRAFT, queued=True).json()["run_id"]
    worker = Worker(service.manager, name="t", poll_seconds=0.01)
    assert worker.run_until_empty() == 1  # team-b's: the claim skips team-a's records
    assert service.run("b-op", other)["status"] == "succeeded"
    assert {service.run("a-op", r)["status"] for r in waiting} == {"queued"}
    _ends(service, "team-a", elsewhere)
    time.sleep(0.05)  # the worker counts again at its next poll
    assert worker.run_until_empty() == 2
    assert {service.run("a-op", r)["status"] for r in waiting} == {"succeeded"}


def test_the_start_transaction_counts_again_when_the_claim_did_not_know(
    teams_service: ServiceFactory,
) -> None:
    service = teams_service({"team-a": {"limits": {"max_running_runs": 1}}})
    queued = service.start("a-op", DRAFT, queued=True).json()["run_id"]
    worker = Worker(service.manager, name="t", poll_seconds=60)
    assert worker._slots.excluded() == frozenset()  # counted: team-a has a free slot
    elsewhere = _executing(service, "team-a")  # taken before the worker's next count
    assert worker.run_once()  # claimed, refused in the start's transaction, queued again
    assert service.run("a-op", queued)["status"] == "queued"
    store = service.manager.for_project("team-a").store
    records = queue_records(store, queued)
    assert sorted(r.status for r in records) == ["completed", "queued"]
    with pytest.raises(ProjectLimitReached):
        service.manager.for_project("team-a").execute_run(queued)
    _ends(service, "team-a", elsewhere)
    service.clock.advance(61)  # the new record is due after a poll
    worker._slots.ended(service.manager.for_project("team-a").store.project_id)
    assert worker.run_until_empty() == 1
    assert service.run("a-op", queued)["status"] == "succeeded"


def test_two_starts_of_a_project_with_one_slot_count_one_after_the_other(
    teams_service: ServiceFactory,
) -> None:
    """The start transactions of one project serialize on its row: the second counts after
    the first committed its run's lease, so two workers never both take the last slot."""
    service = teams_service()
    store = service.manager.for_project("team-a").store
    with store.transaction() as tx:
        run = tx.create_run(target="workflow", input_text="x")
    counted, found = threading.Event(), {}

    def second() -> None:
        counted.wait(10)
        with store.transaction() as tx:
            found["second"] = tx.run_slot_free(1)

    racer = threading.Thread(target=second)
    racer.start()
    with store.transaction() as tx:
        found["first"] = tx.run_slot_free(1)
        counted.set()
        time.sleep(0.3)  # the second start waits for this one meanwhile
        tx.update_run(run.run_id, expected_version=run.version, status="running")
        tx.take_run_lease(run.run_id, "w1", 60)
    racer.join(10)
    assert found == {"first": True, "second": False}


def _usage(service: Service, project: str) -> Any:
    store = service.manager.for_project(project).store
    return store.limits.day_usage(service.clock.now().strftime("%Y-%m-%d"))


def test_at_its_daily_model_calls_a_run_pauses_and_an_approval_raises_the_day(
    teams_service: ServiceFactory,
) -> None:
    service = teams_service({"team-a": {"limits": {"max_model_calls_per_day": 3}}})
    assert service.start("a-op", TWO_CALLS).json()["status"] == "succeeded"
    paused = service.start("a-op", TWO_CALLS).json()  # one call left: the second waits
    assert paused["status"] == "paused", paused
    request = paused["metadata"]["pending_human_request"]
    assert request["kind"] == "budget" and request["context"]["scope"] == "project"
    assert request["context"]["limit"] == 3 and request["context"]["raise_to"] == 6
    assert _usage(service, "team-a").model_calls == 3
    _refused(service.start("a-op", DRAFT), "max_model_calls_per_day")
    for _ in range(3):  # team-b has no daily budget: unaffected, and writes no usage
        assert service.start("b-op", TWO_CALLS).json()["status"] == "succeeded"
    assert _usage(service, "team-b").model_calls == 0
    assert service.decide("a-rev", paused).status_code == 202
    assert Worker(service.manager, name="t").run_once()
    assert service.run("a-op", paused["run_id"])["status"] == "succeeded"
    day = _usage(service, "team-a")
    assert (day.model_calls, day.model_calls_limit) == (4, 6)  # raised for the project
    assert service.start("a-op", TWO_CALLS).json()["status"] == "succeeded"  # 6 of 6
    body = _refused(service.start("a-op", DRAFT), "max_model_calls_per_day")
    assert body["retry_after"] == 86400  # the manual clock is at 00:00 UTC
    service.clock.advance(86400)  # the next UTC day: the definition's limit again
    assert service.start("a-op", DRAFT).json()["status"] == "succeeded"


def test_at_its_daily_tokens_a_run_fails_and_new_runs_wait_for_the_next_day(
    teams_service: ServiceFactory,
) -> None:
    limits = {"max_tokens_per_day": 5, "on_exceeded": "fail"}
    service = teams_service({"team-b": {"limits": limits}})
    failed = service.start("b-op", TWO_CALLS).json()
    assert failed["status"] == "failed", failed
    error = failed.get("error") or failed["metadata"]["error"]
    assert error["code"] == "budget_exceeded" and "limits.max_tokens_per_day" in error["message"]
    spent = _usage(service, "team-b").tokens
    assert spent >= 5  # one call's words in and out
    service.clock.advance(3600)
    body = _refused(service.start("b-op", DRAFT, queued=True), "max_tokens_per_day")
    assert body["retry_after"] == 86400 - 3600
    assert service.start("a-op", TWO_CALLS).json()["status"] == "succeeded"  # team-a goes on
    service.clock.advance(86400 - 3600)
    assert service.start("b-op", DRAFT).json()["status"] == "succeeded"


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_the_default_project_takes_its_limits_from_the_host_config(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    (tmp_path / ".kneo").mkdir()
    (tmp_path / ".kneo" / "config.yaml").write_text(
        "version: v1\nname: host\nlimits:\n  max_queued_runs: 1\n"
    )
    url = request.getfixturevalue("pg_database")() if backend == "postgres" else None
    settings = Settings.from_env({})
    project = ProjectContext.discover(cwd=tmp_path, settings=settings)
    store = open_store(url, settings=settings, state_dir=tmp_path / "state")
    manager = create_platform(settings, project, store=store)
    try:
        manager.start_run_from_spec(input_text="x", spec=DRAFT)
        with pytest.raises(ProjectLimitReached) as refused:
            manager.start_run_from_spec(input_text="x", spec=DRAFT)
        assert refused.value.details["limit"] == "max_queued_runs"
        assert refused.value.http_status == 429 and refused.value.retry_after == 5
    finally:
        manager.close()
