"""Continuations run where runs run: where workers exist, a decision or a continue records
itself and queues the rest of its run, and a worker executes it (SQLite and PostgreSQL).

The library half drives the platform directly (a manager that hands off, another that works
the queue); the process half is the split production shape: ``kneo service serve
--no-worker`` replicas and a ``kneo worker`` process on one database, where the steps and the
model calls after a decision are shown to run in the worker's process (its PID in the trace,
in the function steps' counter and in the dummy model's call log), never in the API's.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2
import pytest

from kneo import Decision
from kneo.engine import functions
from kneo.engine.providers import read_call_log
from kneo.errors import RequestAlreadyResolved, ResourceLocked
from kneo.lifecycle import HANDOFF_KEY, RunStatus, phase_of
from kneo.platform.worker import fail_run
from kneo.store import AuditQuery, RunQuery
from kneo.worker import Worker
from tests import http_calls

from .helpers import Procs, counter_lines, env_for, open_manager, step_counts, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "service"))
from svc_helpers import LiveServer

from tests.queue_records import queue_records

#: s1, a person's approval, an agent (one dummy model call), s2
AGENT_AFTER_APPROVAL = {
    "version": "v1",
    "agent": {
        "name": "writer",
        "model": {"provider": "dummy", "name": "after", "script": [{"text": "written"}]},
    },
    "workflow": {
        "type": "sequential",
        "name": "approve-then-write",
        "steps": [
            {"id": "s1", "kind": "function", "ref": "opsteps:s1"},
            {"id": "approve", "kind": "human", "ref": "reviewer"},
            {"id": "write", "kind": "agent", "ref": "writer"},
            {"id": "s2", "kind": "function", "ref": "opsteps:s2"},
        ],
    },
    "components": {
        "humans": {
            "reviewer": {"description": "Approve.", "prompt": "Approve?", "assignee": "operator"}
        },
    },
}


@pytest.fixture(autouse=True)
def _fresh_step_imports(monkeypatch: pytest.MonkeyPatch) -> None:
    """Function refs are imported once per process (``kneo.engine.functions``): each test's
    project has its own ``opsteps`` writing its own counter, so each starts without them."""
    monkeypatch.setattr(functions, "_cache", {})


#: s1, a person's approval, s3 (blocks the first time when the input says so), s4
HUMAN_AFTER = {
    "version": "v1",
    "workflow": {
        "type": "sequential",
        "name": "human-after",
        "steps": [
            {"id": "s1", "kind": "function", "ref": "opsteps:s1"},
            {"id": "approve", "kind": "human", "ref": "reviewer"},
            {"id": "s3", "kind": "function", "ref": "opsteps:s3"},
            {"id": "s4", "kind": "function", "ref": "opsteps:s4"},
        ],
    },
    "components": AGENT_AFTER_APPROVAL["components"],
}


def _trace(manager: Any, run_id: str, event_type: str) -> list[dict[str, Any]]:
    return [
        dict(e.payload or {})
        for e in manager.store.runs.list_trace(run_id, limit=500).items
        if e.event_type == event_type
    ]


# --------------------------------------------------------------------------- the library


def test_a_decision_queues_the_run_and_a_worker_takes_it_over(project: Path, db_url: str) -> None:
    api = open_manager(project, db_url)
    api.handoff.enabled = True
    worker_side = open_manager(project, db_url)
    try:
        paused = api.run_from_spec(input_text="d1 go", spec_path=project / "human.yaml")
        assert paused.status == "paused" and paused.request_id
        cid, rid = str(paused.continuation_id), paused.request_id
        done = api.resume(cid, Decision(rid, "approved"), actor="ann", metadata={"ticket": "T-1"})
        assert done.handed_off and done.status == "running"
        assert done.to_dict()["status"] == "running" and "handed_off" not in done.to_dict()
        run = api.store.runs.get_run(paused.run_id)
        assert run.status == "running" and run.state[HANDOFF_KEY]["kind"] == "decision"
        assert phase_of(run) is RunStatus.HANDED  # to the lifecycle; running to everyone else
        listed = api.list_runs(RunQuery(status="running"))
        assert [r["run_id"] for r in listed["runs"]] == [run.run_id] and listed["total"] == 1
        assert listed["runs"][0]["status"] == "running"
        assert api.store.queue.run_lease(paused.run_id) is None  # nobody executes it yet
        queued = [r for r in queue_records(api.store, run.run_id) if r.status == "queued"]
        assert len(queued) == 1
        assert step_counts(project)[("d1", "s2")] == 0  # nothing after the decision ran here
        [audit] = api.store.audit.list_audit(
            AuditQuery(event_type="human.decision", continuation_id=cid)
        ).items
        assert audit.payload["handed_off"] is True and audit.payload["result_status"] == "running"
        with pytest.raises(ResourceLocked):  # a racing decision: 409 as while a request drove it
            api.resume(cid, Decision(rid, "rejected"), actor="bob")

        assert Worker(worker_side).run_once()
        finished = api.store.runs.get_run(paused.run_id)
        assert finished.status == "succeeded" and HANDOFF_KEY not in finished.state
        assert phase_of(finished) is RunStatus.SUCCEEDED
        assert step_counts(project)[("d1", "s1")] == 1 and step_counts(project)[("d1", "s2")] == 1
        [claimed] = _trace(api, paused.run_id, "run_claimed")
        assert claimed["owner"] == worker_side.owner and claimed["pid"] == os.getpid()
        assert claimed["handed_off"] == "decision"
        [decided] = finished.state["decisions"].values()
        assert decided["actor"] == "ann" and decided["metadata"] == {"ticket": "T-1"}
        with pytest.raises(RequestAlreadyResolved):
            api.resume(cid, Decision(rid, "rejected"), actor="bob")
        assert (
            len(
                api.store.audit.list_audit(
                    AuditQuery(event_type="human.decision", run_id=run.run_id)
                ).items
            )
            == 1
        )
    finally:
        api.store.close()
        worker_side.store.close()


def test_an_idle_worker_of_this_process_is_given_the_run_in_the_decisions_transaction(
    project: Path, db_url: str
) -> None:
    """The service's shape: the decision's one transaction writes what the worker's claim and
    take-over would (the record claimed by the worker, the run ``running`` under this
    process's lease, ``run_claimed``), and the worker's idle thread drives it from there."""
    api = open_manager(project, db_url)
    api.handoff.enabled = True
    worker = Worker(api, poll_seconds=60)  # started below: nothing claims the record meanwhile
    worker.idle = lambda: True  # type: ignore[method-assign]  # a thread about to wait
    api.handoff.local = worker
    try:
        paused = api.run_from_spec(input_text="g1 go", spec_path=project / "human.yaml")
        done = api.resume(str(paused.continuation_id), Decision(str(paused.request_id), "approved"))
        assert done.handed_off and done.status == "running"
        run = api.store.runs.get_run(paused.run_id)
        assert run.status == "running" and HANDOFF_KEY not in run.state  # taken over already
        assert api.store.queue.run_lease(paused.run_id).owner == api.owner
        [record] = queue_records(api.store, paused.run_id)
        assert (record.status, record.lease_owner, record.attempts) == ("leased", worker.owner, 1)
        [claimed] = _trace(api, paused.run_id, "run_claimed")
        assert claimed["owner"] == api.owner and claimed["pid"] == os.getpid()
        assert claimed["handed_off"] == "decision"
        kinds = [e.event_type for e in api.store.runs.list_trace(paused.run_id, limit=500).items]
        assert kinds.index("run_claimed") == kinds.index("run_resumed") + 1  # one commit
        assert step_counts(project)[("g1", "s2")] == 0

        del worker.idle  # the real count of waiting threads from here on
        worker.start()  # its thread runs what it was given before it looks at the queue
        wait_for(lambda: api.store.runs.get_run(paused.run_id).status == "succeeded", 10, "the run")
        assert [step_counts(project)[("g1", s)] for s in ("s1", "s2")] == [1, 1]
        assert api.store.queue.run_lease(paused.run_id) is None  # given back with the outcome
        # the record is settled in the worker's next commit (a crash between the two leaves it
        # leased, and the next claim finds the run finished and settles it)
        wait_for(
            lambda: queue_records(api.store, paused.run_id)[0].status == "completed",
            10,
            "the queue record settled",
        )
        [record] = queue_records(api.store, paused.run_id)
        assert (record.status, record.attempts) == ("completed", 1)
        wait_for(worker.idle, 10, "the worker's thread waiting for work")
        worker.stop()
        assert not worker.idle()
        later = api.run_from_spec(input_text="g2 go", spec_path=project / "human.yaml")
        queued = api.resume(str(later.continuation_id), Decision(str(later.request_id), "approved"))
        assert queued.handed_off  # a stopped worker is given nothing: the queue, marked
        assert api.store.runs.get_run(later.run_id).state[HANDOFF_KEY]["kind"] == "decision"
    finally:
        worker.stop()
        api.store.close()


def test_a_run_given_to_a_stopping_worker_is_handed_over(project: Path, db_url: str) -> None:
    """Given but not started when the worker stops: its record and the run's lease are
    released, and another worker continues the run from the decision, once."""
    api = open_manager(project, db_url)
    api.handoff.enabled = True
    idle = Worker(api, poll_seconds=60)
    idle.idle = lambda: True  # type: ignore[method-assign]  # a thread about to wait
    api.handoff.local = idle
    other = open_manager(project, db_url)
    try:
        paused = api.run_from_spec(input_text="h1 go", spec_path=project / "human.yaml")
        api.resume(str(paused.continuation_id), Decision(str(paused.request_id), "approved"))
        assert api.store.queue.run_lease(paused.run_id) is not None  # taken over, not started
        assert idle.stop(timeout=1) == [paused.run_id]
        assert api.store.queue.run_lease(paused.run_id) is None
        assert Worker(other).run_once()
        assert other.store.runs.get_run(paused.run_id).status == "succeeded"
        assert [step_counts(project)[("h1", s)] for s in ("s1", "s2")] == [1, 1]
    finally:
        api.store.close()
        other.store.close()


def test_a_project_with_limits_hands_its_decisions_to_the_queue(project: Path, db_url: str) -> None:
    """A take-over takes one of the project's ``max_running_runs`` slots, which only the
    worker's own take-over counts: a project with ``limits:`` is never given directly."""
    api = open_manager(project, db_url)
    api.handoff.enabled = True
    idle = Worker(api, poll_seconds=60)
    idle.idle = lambda: True  # type: ignore[method-assign]
    api.handoff.local = idle
    api.decisions.limited = True  # (what a project's limits: set; tests/projects try them)
    try:
        paused = api.run_from_spec(input_text="l1 go", spec_path=project / "human.yaml")
        api.resume(str(paused.continuation_id), Decision(str(paused.request_id), "approved"))
        assert api.store.runs.get_run(paused.run_id).state[HANDOFF_KEY]["kind"] == "decision"
        assert idle.stop(timeout=1) == []  # nothing was given
    finally:
        api.store.close()


def test_a_continue_queues_the_run_once_and_stores_its_metadata(project: Path, db_url: str) -> None:
    api = open_manager(project, db_url)
    api.handoff.enabled = True
    try:
        run_id = api.start_run_from_spec(
            input_text="c1 go", spec_path=project / "three.yaml"
        ).run_id
        started = api.store.queue.claim("gone", 5.0)
        assert started is not None and api.store.queue.finish(started.queue_id, "gone")
        fail_run(api.store, run_id, {"type": "test", "message": "its worker gave up"})
        first = api.continue_run(run_id, actor="ops", metadata={"reason": "db back"})
        again = api.continue_run(run_id, actor="ops", metadata={"reason": "impatient"})
        assert first.handed_off and again.handed_off and again.status == "running"
        queued = [r for r in queue_records(api.store, run_id) if r.status == "queued"]
        assert len(queued) == 1  # the second continue found it waiting: nothing recorded
        [audit] = api.store.audit.list_audit(
            AuditQuery(event_type="run.continued", run_id=run_id)
        ).items
        assert audit.actor == "ops" and audit.payload["metadata"] == {"reason": "db back"}
        [event] = _trace(api, run_id, "run_continued")
        assert event["handed_off"] is True and event["metadata"] == {"reason": "db back"}
        assert Worker(api).run_once()  # this manager's worker never hands the run on again
        assert api.store.runs.get_run(run_id).status == "succeeded"
        assert [step_counts(project)[("c1", s)] for s in ("s1", "s2", "s3")] == [1, 1, 1]
        assert _trace(api, run_id, "run_claimed")[0]["handed_off"] == "continue"
    finally:
        api.store.close()


def test_two_workers_holding_records_of_one_handed_off_run_drive_it_once(
    project: Path, db_url: str
) -> None:
    """A duplicate record (a retried enqueue, a sweep) is harmless: the take-over is a
    compare-and-set, so one worker drives the run and the other finds it held or done."""
    api = open_manager(project, db_url)
    api.handoff.enabled = True
    workers = [open_manager(project, db_url) for _ in range(2)]
    try:
        runs = []
        for i in range(4):
            paused = api.run_from_spec(input_text=f"w{i} go", spec_path=project / "human.yaml")
            api.resume(str(paused.continuation_id), Decision(str(paused.request_id), "approved"))
            with api.store.transaction() as tx:
                tx.enqueue(paused.run_id)
            runs.append(paused.run_id)
        gate = threading.Barrier(2)

        def drain(manager: Any) -> None:
            gate.wait()
            worker = Worker(manager, poll_seconds=0.05)
            deadline = time.monotonic() + 60
            while any(manager.store.runs.get_run(r).status != "succeeded" for r in runs):
                assert time.monotonic() < deadline
                worker.run_once() or time.sleep(0.05)

        with ThreadPoolExecutor(2) as pool:
            list(pool.map(drain, workers))
        for i, run_id in enumerate(runs):
            assert step_counts(project)[(f"w{i}", "s2")] == 1
            assert len(_trace(api, run_id, "run_claimed")) == 1
    finally:
        for manager in (api, *workers):
            manager.store.close()


def test_a_worker_killed_after_taking_a_decision_over_is_replaced(
    project: Path, db_url: str, procs: Procs
) -> None:
    """``kill -9`` of the worker inside the first step after the decision: after its lease
    another worker continues; the step before the pause never runs again, the one in flight
    runs again (it never completed), the rest once; one decision, recorded once."""
    spec = {**HUMAN_AFTER, "workflow": {**HUMAN_AFTER["workflow"], "name": "crash"}}
    (project / "crash.json").write_text(json.dumps(spec))
    env = env_for(
        project, db_url, KNEO_SERV_WORKER_LEASE_SECONDS="1.5", KNEO_SERV_WORKER_POLL_SECONDS="0.05"
    )
    api = open_manager(project, db_url)
    api.handoff.enabled = True
    try:
        paused = api.run_from_spec(input_text="k1 block", spec_path=project / "crash.json")
        workers = [procs.worker(project, env) for _ in range(2)]
        api.resume(str(paused.continuation_id), Decision(str(paused.request_id), "approved"))
        marker = project / "markers" / "k1"
        wait_for(marker.exists, 60, "s3 to start on a worker")
        victim_pid = int(wait_for(marker.read_text, 5, "the marker's pid"))
        victim = next(w for w in workers if w.pid == victim_pid)
        os.kill(victim_pid, signal.SIGKILL)
        victim.wait(timeout=10)
        wait_for(
            lambda: api.store.runs.get_run(paused.run_id).status == "succeeded",
            60,
            "another worker",
        )
        counts = step_counts(project)
        assert [counts[("k1", s)] for s in ("s1", "s3", "s4")] == [1, 2, 1]
        assert api.store.runs.get_run(paused.run_id).output_text == "k1 block 1 3 4"
        [claimed] = _trace(api, paused.run_id, "run_claimed")
        assert claimed["pid"] == victim_pid  # the first worker took it over, then died
        survivor = {w.pid for w in workers} - {victim_pid}
        finishers = {int(pid) for key, step, pid in counter_lines(project) if step == "s4"}
        assert finishers == survivor
        decisions = api.store.audit.list_audit(
            AuditQuery(event_type="human.decision", run_id=paused.run_id)
        )
        assert len(decisions.items) == 1
    finally:
        api.store.close()


# --------------------------------------------------------------------------- processes


def _resume(
    url: str,
    task: dict[str, Any],
    *,
    wait: int | None = None,
    prefer: str | None = None,
    timeout: float = 60,
) -> httpx2.Response:
    preference = f"wait={wait}" if wait is not None else prefer
    headers = {"Prefer": preference} if preference else {}
    return http_calls.post(
        f"{url}/v1/human-tasks/{task['continuation_id']}/resume",
        json={"request_id": task["request_id"], "decision": "approved"},
        headers=headers,
        timeout=timeout,
    )


def _paused(url: str, key: str, spec: str = "agent.json") -> dict[str, Any]:
    body = http_calls.post(
        f"{url}/v1/runs", timeout=60, json={"input": f"{key} go", "spec_path": spec}
    ).json()
    assert body["status"] == "paused", body
    return dict(body)


def test_an_api_only_replica_leaves_the_continuation_to_a_worker_process(
    project: Path, db_url: str, procs: Procs
) -> None:
    (project / "agent.json").write_text(json.dumps(AGENT_AFTER_APPROVAL))
    calls = project / "calls.jsonl"
    env = env_for(
        project,
        db_url,
        KNEO_SERV_WORKER_POLL_SECONDS="0.05",
        KNEO_DUMMY_CALL_LOG=str(calls),
        KNEO_SERV_PROFILES_PATH=str(project / "profiles.json"),
    )
    apis = [LiveServer(env, project, project / f"api-{i}.log", ("--no-worker",)) for i in (0, 1)]
    for api in apis:
        api.start()
    manager = open_manager(project, db_url)
    try:
        url = apis[0].url
        api_pids = {api.pid for api in apis}
        first = _paused(url, "a1")
        answered = _resume(url, first, prefer="respond-async")
        assert answered.status_code == 202, answered.text
        assert answered.headers["location"] == f"/v1/runs/{first['run_id']}"
        body = answered.json()
        assert body["run_id"] == first["run_id"] and body["status"] == "running"
        time.sleep(1.0)  # twenty of a worker's polls: no worker, so nothing moves
        state = http_calls.get(url + answered.headers["location"]).json()
        assert state["status"] == "running" and state["visited_steps"] == ["s1"]
        assert not read_call_log(calls)  # the API made no model call after the decision

        worker = procs.worker(project, env)
        wait_for(
            lambda: (
                http_calls.get(url + answered.headers["location"]).json()["status"] == "succeeded"
            ),
            60,
            "the worker to finish the run",
        )
        second = _paused(apis[1].url, "a2")
        waited = _resume(apis[1].url, second, wait=30)  # the caller waits: the seed's 200 body
        assert waited.status_code == 200, waited.text
        assert (
            waited.json()["status"] == "succeeded" and waited.json()["output_text"] == "written 2"
        )
        assert "location" not in waited.headers
        third = _paused(url, "a3")
        by_default = _resume(url, third)  # no preference: the service's wait, the seed's body
        assert by_default.status_code == 200, by_default.text
        assert by_default.json()["status"] == "succeeded"
        assert by_default.json()["output_text"].startswith("written")

        for run in (first, second, third):
            [claimed] = _trace(manager, run["run_id"], "run_claimed")
            assert claimed["pid"] == worker.pid and claimed["handed_off"] == "decision"
        after = [line for line in counter_lines(project) if line[1] == "s2"]
        assert len(after) == 3 and {int(pid) for _, _, pid in after} == {worker.pid}
        before = [line for line in counter_lines(project) if line[1] == "s1"]
        assert {int(pid) for _, _, pid in before} <= api_pids  # the sync start, in the request
        assert [c["pid"] for c in read_call_log(calls)] == [worker.pid] * 3

        # two replicas decide one task at once: one decision, the other 409
        for round_ in range(3):
            race = _paused(url, f"r{round_}", "human.yaml")
            with ThreadPoolExecutor(2) as pool:
                answers = list(pool.map(_resume, [a.url for a in apis], [race, race]))
            codes = sorted(a.status_code for a in answers)
            assert codes == [200, 409], [a.text for a in answers]  # the winner: the outcome
            refused = next(a for a in answers if a.status_code == 409).json()["error"]
            assert refused in ("resource_locked", "request_already_resolved")
            raced = race["run_id"]
            wait_for(
                lambda: manager.store.runs.get_run(raced).status == "succeeded",  # noqa: B023
                60,
                "the raced run",
            )
            decisions = manager.store.audit.list_audit(
                AuditQuery(event_type="human.decision", run_id=race["run_id"])
            ).items
            assert len(decisions) == 1
            assert step_counts(project)[(f"r{round_}", "s2")] == 1
        logs = "".join(api.log_path.read_text() for api in apis)
        assert "Traceback" not in logs
    finally:
        manager.store.close()
        for api in apis:
            api.stop()
