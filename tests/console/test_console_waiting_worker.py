"""A run handed to the workers says so on its page: decided (or continued, or queued) and
not yet claimed by any worker, it shows a hint instead of "running" forever, naming what
to start once it has waited longer than a worker takes; the hint goes once a worker takes
the run over."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from console_helpers import Console, headers, start

from kneo.clock import utc_iso
from kneo.console.runs import UNCLAIMED_SECONDS, waiting_for_worker
from kneo.worker import Worker

HINT = 'id="waiting-for-worker"'


def test_a_decided_run_no_worker_claimed_shows_a_hint_until_one_does(service: Any) -> None:
    app, api = service(KNEO_SERV_CONTINUATIONS="queue")  # decisions go to workers; none runs
    manager = app.state.manager
    run = start(api, "smoke_human_workflow")
    decided = api.post(  # answered at once (the seed's answer would wait for the worker)
        f"/v1/human-tasks/{run['continuation_id']}/resume",
        headers={**headers("reviewer"), "Prefer": "respond-async"},
        json={"request_id": run["request_id"], "decision": "approved"},
    )
    assert decided.status_code == 202 and decided.json()["status"] == "running", decided.text
    viewer = Console(app)
    viewer.sign_in("viewer")
    page = viewer.get(f"/ui/runs/{run['run_id']}")
    assert page.status_code == 200 and HINT in page.text, page.text[:3000]
    hint = page.text.split(HINT)[1].split("</p>")[0]
    assert "Decided" in hint and "none has claimed it yet" in hint
    assert "kneo worker" not in hint  # not yet: a worker may be about to take it
    # still waiting after longer than a worker takes: the hint says what to start
    record = manager.store.runs.get_run(run["run_id"])
    waiting = waiting_for_worker(record, manager.clock.now())
    assert waiting is not None and waiting["kind"] == "decision" and not waiting["stale"]
    later = manager.clock.now() + timedelta(seconds=UNCLAIMED_SECONDS + 1)
    assert waiting_for_worker(record, later) == {**waiting, "stale": True}
    # a worker takes it over: the run goes on and the hint is gone
    assert Worker(manager).run_once()
    done = viewer.get(f"/ui/runs/{run['run_id']}")
    assert HINT not in done.text
    assert manager.store.runs.get_run(run["run_id"]).status == "succeeded"
    assert waiting_for_worker(manager.store.runs.get_run(run["run_id"]), later) is None


def test_a_queued_run_shows_the_hint_and_a_paused_or_running_one_does_not(service: Any) -> None:
    app, api = service(KNEO_SERV_CONTINUATIONS="queue")
    manager = app.state.manager
    queued = api.post(
        "/v1/runs",
        headers=headers("admin"),
        json={"input": "hi", "spec_path": "examples/smoke_human_workflow.yaml", "async_mode": True},
    ).json()
    assert queued["status"] == "queued"
    viewer = Console(app)
    viewer.sign_in("viewer")
    hint = viewer.get(f"/ui/runs/{queued['run_id']}").text.split(HINT)[1].split("</p>")[0]
    assert hint.lstrip("> ").startswith("Queued")
    paused = start(api, "smoke_human_workflow")
    assert HINT not in viewer.get(f"/ui/runs/{paused['run_id']}").text
    record = manager.store.runs.get_run(paused["run_id"])
    now = manager.clock.now()
    running = replace(record, status="running", state={})  # driven by a process that holds it
    assert waiting_for_worker(running, now) is None
    marked = replace(
        record,
        status="running",
        state={"handoff": {"kind": "continue", "at": utc_iso(now - timedelta(minutes=2))}},
    )
    assert waiting_for_worker(marked, now) == {
        "kind": "continue",
        "since": utc_iso(now - timedelta(minutes=2)),
        "stale": True,
    }
