"""What a decision or a continue answers over HTTP, wherever the run continues: the outcome
(``200``, the seed's synchronous body) once the run pauses or ends within the service's bound
(``KNEO_SERV_DECISION_WAIT_SECONDS``) or the caller's ``Prefer: wait=N``; ``202`` with
``Location`` on ``Prefer: respond-async`` or when the wait is over; and the ``metadata`` both
routes (and ``/decisions``) keep."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from failing_steps import FAILING_SPEC
from starlette.requests import Request
from starlette.testclient import TestClient
from svc_helpers import ROOT, TWO_APPROVALS, build_manager

from kneo.errors import ConfigError
from kneo.service import create_app
from kneo.service.app import continues_on_workers
from kneo.service.continuations import preferred_wait
from kneo.settings import Settings
from kneo.worker import Worker

SMOKE = "examples/smoke_human_workflow.yaml"
OUTCOME_KEYS = {
    "run_id",
    "status",
    "output_text",
    "human_intervention_required",
    "continuation_id",
    "request_id",
    "metadata",
}

App = Callable[..., tuple[TestClient, Any]]


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[App]:
    """``app(continuations=..., worker=..., env=...)`` -> (started TestClient, its manager)."""
    monkeypatch.chdir(ROOT)
    opened: list[tuple[TestClient, Any]] = []

    def factory(
        continuations: str | None = "queue", worker: bool = False, env: dict[str, str] | None = None
    ) -> tuple[TestClient, Any]:
        root = tmp_path / f"app{len(opened)}"
        settings = Settings.from_env({"KNEO_SERV_PROFILES_PATH": str(root / "p"), **(env or {})})
        manager = build_manager(settings, root)
        application = create_app(
            False,
            settings=settings,
            manager=manager,
            start_worker=worker,
            continuations=continuations,
        )
        client = TestClient(application, raise_server_exceptions=False)
        client.__enter__()
        opened.append((client, manager))
        return client, manager

    yield factory
    for client, manager in opened:
        client.__exit__(None, None, None)
        manager.close()


def _paused(client: TestClient, spec: Any = SMOKE) -> dict[str, Any]:
    source = {"spec_path": spec} if isinstance(spec, str) else {"spec": spec}
    r = client.post("/v1/runs", json={"input": "draft it", **source})
    assert r.status_code == 200 and r.json()["status"] == "paused", r.text
    return dict(r.json())


def _resume(
    client: TestClient, run: dict[str, Any], headers: dict[str, str] | None = None, **extra: Any
) -> Any:
    body = {"request_id": run["request_id"], "decision": "approved", **extra}
    return client.post(
        f"/v1/human-tasks/{run['continuation_id']}/resume", json=body, headers=headers or {}
    )


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], None),
        (["wait=7"], 7),
        (["respond-async, wait=12"], 12),
        (["WAIT = 3"], 3),
        (['wait="4"'], 4),
        (["wait=5; foo=bar"], 5),
        (["respond-async", "wait=9"], 9),
        (["wait=2, wait=8"], 2),
        (["wait=abc"], None),
        (["wait=-1"], None),
        (["wait=1.5"], None),
        (["wait"], None),
        (["waiting=3"], None),
        (["wait=\u0663"], None),  # an Arabic-Indic digit is no delta-seconds
    ],
)
def test_prefer_wait_is_read_as_rfc_7240_says(values: list[str], expected: int | None) -> None:
    headers = [(b"prefer", v.encode()) for v in values]
    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers}
    assert preferred_wait(Request(scope)) == expected


def test_a_decision_handed_to_the_workers_answers_202_with_location(app: App) -> None:
    client, manager = app()
    run = _paused(client)
    key = {"Idempotency-Key": "hand-1", "Prefer": "respond-async"}
    started = time.monotonic()
    answered = _resume(client, run, key)
    assert answered.status_code == 202, answered.text
    assert time.monotonic() - started < 5  # at once: no worker here would ever move it
    assert answered.headers["location"] == f"/v1/runs/{run['run_id']}"
    assert answered.headers["preference-applied"] == "respond-async"
    body = answered.json()
    assert set(body) == OUTCOME_KEYS and body["status"] == "running"
    assert body["continuation_id"] is None and body["output_text"] is None
    assert client.get(answered.headers["location"]).json()["status"] == "running"
    replay = _resume(client, run, key)  # the same key: the first answer again, still 202
    assert replay.status_code == 202 and replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == body

    assert Worker(manager).run_once()
    done = client.get(answered.headers["location"]).json()
    assert done["status"] == "succeeded" and done["visited_steps"] == [
        "draft",
        "approve",
        "publish",
    ]
    waited = _resume(client, run, {**key, "Prefer": "wait=5"})  # replayed, then read now
    assert waited.status_code == 200 and waited.headers["idempotent-replayed"] == "true"
    assert waited.json()["status"] == "succeeded" and "location" not in waited.headers
    again = _resume(client, run, {"Prefer": "wait=5"})
    assert again.status_code == 409 and again.json()["error"] == "request_already_resolved"


def test_waiting_answers_what_the_request_would_have(app: App) -> None:
    """``Prefer: wait`` on a service with its worker gives the synchronous body."""
    inline, _ = app(continuations="request")
    queued, _ = app(continuations=None, worker=True)  # auto: this app runs a worker
    sync = _resume(inline, _paused(inline), {"Prefer": "wait=30"})  # ignored: nothing to wait
    assert sync.status_code == 200, sync.text
    started = time.monotonic()
    waited = _resume(queued, _paused(queued), {"Prefer": "wait=30"})
    assert waited.status_code == 200, waited.text
    assert time.monotonic() - started < 15
    a, b = sync.json(), waited.json()
    assert set(a) == set(b) == OUTCOME_KEYS
    for field in ("status", "output_text", "human_intervention_required", "continuation_id"):
        assert a[field] == b[field], field
    assert b["status"] == "succeeded"
    assert set(a["metadata"]) == set(b["metadata"])


def test_a_wait_longer_than_the_servers_bound_is_cut_to_it(app: App) -> None:
    client, _ = app(env={"KNEO_SERV_MAX_WAIT_SECONDS": "1"})  # and no worker: never settles
    run = _paused(client)
    started = time.monotonic()
    answered = _resume(client, run, {"Prefer": "wait=3600"})
    took = time.monotonic() - started
    assert answered.status_code == 202 and answered.json()["status"] == "running"
    assert 0.9 <= took < 5, took
    malformed = _paused(client)  # ignored: the service's own wait (cut to the bound too)
    started = time.monotonic()
    assert _resume(client, malformed, {"Prefer": "wait=soon"}).status_code == 202
    assert 0.9 <= time.monotonic() - started < 5


def test_the_resume_metadata_is_stored_with_the_decision(app: App) -> None:
    client, _ = app(continuations="request")
    run = _paused(client)
    answered = _resume(client, run, metadata={"ticket": "T-9", "source": "pager"})
    assert answered.status_code == 200 and answered.json()["status"] == "succeeded"
    view = client.get(f"/v1/runs/{run['run_id']}", params={"include": "conversation"}).json()
    [decision] = view["decisions"]
    assert decision["metadata"] == {"ticket": "T-9", "source": "pager"}


def test_decisions_together_keep_metadata_and_hand_off(app: App) -> None:
    client, manager = app()
    run = _paused(client, TWO_APPROVALS)
    task = client.get(f"/v1/human-tasks/{run['continuation_id']}").json()
    answered = client.post(
        f"/v1/human-tasks/{run['continuation_id']}/decisions",
        json={
            "decisions": [
                {"request_id": r["request_id"], "decision": "approved"} for r in task["requests"]
            ],
            "metadata": {"batch": "b-1"},
        },
        headers={"Prefer": "respond-async"},
    )
    assert answered.status_code == 202 and answered.headers["location"].endswith(run["run_id"])
    assert Worker(manager).run_once()
    view = client.get(f"/v1/runs/{run['run_id']}", params={"include": "conversation"}).json()
    assert view["status"] == "succeeded"
    assert [d["metadata"] for d in view["decisions"]] == [{"batch": "b-1"}] * 2


@pytest.mark.parametrize("continuations", ["request", "queue"])
def test_continue_keeps_its_metadata_wherever_the_run_continues(
    app: App, continuations: str
) -> None:
    client, manager = app(continuations=continuations)
    failed = client.post("/v1/runs", json={"input": "x", "spec": FAILING_SPEC}).json()
    assert failed["status"] == "failed", failed
    url = f"/v1/runs/{failed['run_id']}/continue"
    later = {"Prefer": "respond-async"}
    answered = client.post(url, json={"metadata": {"reason": "fixed upstream"}}, headers=later)
    if continuations == "queue":
        assert answered.status_code == 202 and answered.json()["status"] == "running"
        assert answered.headers["location"] == f"/v1/runs/{failed['run_id']}"
        assert client.post(url, json={}, headers=later).status_code == 202  # already queued
        assert Worker(manager).run_once()
    else:
        assert answered.status_code == 200 and answered.json()["status"] == "failed"
    events = client.get(
        "/v1/audit-events", params={"event_type": "run.continued", "run_id": failed["run_id"]}
    ).json()["events"]
    assert [e["payload"]["metadata"] for e in events] == [{"reason": "fixed upstream"}]
    assert client.get(f"/v1/runs/{failed['run_id']}").json()["status"] == "failed"  # boom again


def test_without_workers_a_decision_still_answers_its_outcome(app: App) -> None:
    """``auto`` on an app that runs no worker (an embedder's, a test's): the request drives
    the run on, as the seed's contract says; a bad mode is a configuration error."""
    client, _ = app(continuations=None, worker=False)
    answered = _resume(client, _paused(client))
    assert answered.status_code == 200 and answered.json()["status"] == "succeeded"
    assert "location" not in answered.headers
    with pytest.raises(ConfigError, match="KNEO_SERV_CONTINUATIONS"):
        Settings.from_env({"KNEO_SERV_CONTINUATIONS": "later"})
    with pytest.raises(ConfigError, match="continuations"):
        create_app(False, settings=Settings.from_env({}), start_worker=False, continuations="x")


def _outcome(body: dict[str, Any]) -> dict[str, Any]:
    """What the seed's clients read of a run response (ids and timings apart)."""
    fields = ("status", "output_text", "human_intervention_required", "continuation_id")
    return {f: body[f] for f in fields} | {"metadata_keys": sorted(body["metadata"])}


def test_by_default_a_decision_on_a_worker_answers_the_seeds_synchronous_body(app: App) -> None:
    """No ``Prefer``: the service waits for the worker (woken by the decision, and waking the
    request when the run moved), and answers what the request would have answered."""
    inline, _ = app(continuations="request")
    queued, _ = app(continuations=None, worker=True)  # auto: this app runs a worker
    sync = _resume(inline, _paused(inline))
    started = time.monotonic()
    handed = _resume(queued, _paused(queued))
    took = time.monotonic() - started
    assert sync.status_code == handed.status_code == 200, handed.text
    assert "location" not in handed.headers
    assert _outcome(sync.json()) == _outcome(handed.json())
    assert handed.json()["status"] == "succeeded" and set(handed.json()) == OUTCOME_KEYS
    assert took < 5, took  # woken, not polled for half a minute
    late = _resume(queued, _paused(queued), {"Prefer": "respond-async"})
    assert late.status_code == 202 and late.headers["location"].startswith("/v1/runs/")


TWO_IN_TURN: dict[str, Any] = {
    "version": "v1",
    "workflow": {
        "type": "sequential",
        "name": "two-in-turn",
        "steps": [
            {"id": "draft", "kind": "function", "ref": "examples.hitl_functions:draft"},
            {"id": "first", "kind": "human", "ref": "reviewer"},
            {"id": "second", "kind": "human", "ref": "reviewer"},
            {"id": "publish", "kind": "function", "ref": "examples.hitl_functions:publish"},
        ],
    },
    "components": {"humans": {"reviewer": {"prompt": "Approve?", "assignee": "reviewer"}}},
}


def test_the_next_pause_is_answered_with_its_continuation(app: App) -> None:
    """Two approvals in turn on a worker: the first decision's synchronous answer is the next
    pause, with its new continuation and request, as the request would have answered."""
    client, _ = app(continuations=None, worker=True)
    run = _paused(client, TWO_IN_TURN)
    answered = _resume(client, run)
    assert answered.status_code == 200, answered.text
    body = answered.json()
    assert body["status"] == "paused" and body["human_intervention_required"] is True
    assert body["continuation_id"] and body["continuation_id"] != run["continuation_id"]
    assert body["request_id"] and body["request_id"] != run["request_id"]
    last = _resume(client, body)
    assert last.status_code == 200 and last.json()["status"] == "succeeded"


@pytest.mark.parametrize(
    ("wait", "prefer", "least", "most"), [("1", None, 0.9, 5), ("0", None, 0, 1)]
)
def test_the_services_bound_then_202(
    app: App, wait: str, prefer: str | None, least: float, most: float
) -> None:
    """``KNEO_SERV_DECISION_WAIT_SECONDS``: how long a caller without a preference waits
    for a run no worker takes (``0``: the old ``202`` at once)."""
    client, _ = app(env={"KNEO_SERV_DECISION_WAIT_SECONDS": wait})  # queue, and no worker
    started = time.monotonic()
    answered = _resume(client, _paused(client))
    took = time.monotonic() - started
    assert answered.status_code == 202 and answered.json()["status"] == "running"
    assert least <= took < most, took
    assert "preference-applied" not in answered.headers


def test_continuations_auto_means_one_thing_for_the_cli_and_embedders(app: App) -> None:
    """``auto``: on the workers when workers exist, the app's own or (an API-only replica,
    ``kneo service serve --no-worker``, ``create_app(api_only=True)``) the ones beside it."""
    assert continues_on_workers("auto", True) and not continues_on_workers("auto", False)
    assert continues_on_workers("queue", False) and not continues_on_workers("request", True)
    _, manager = app(continuations=None, worker=False)
    assert manager.handoff.enabled is False  # no workers anywhere: in the request
    replica = create_app(
        False, settings=manager.settings, manager=manager, start_worker=False, api_only=True
    )
    with TestClient(replica):
        assert manager.handoff.enabled is True  # the workers are other processes
