"""Runs and human tasks over HTTP: the tutorial's curl flow, idempotency, paging, SSE, cancel."""

from __future__ import annotations

import json
import time

from svc_helpers import auth_env, headers

SMOKE = "examples/smoke_human_workflow.yaml"
HUMAN = "examples/human_approval_workflow.yaml"


def _paused(client, role: str = "operator", spec: str = SMOKE, **extra) -> dict:
    r = client.post(
        "/v1/runs",
        headers=headers(role),
        json={"input": "hello", "spec_path": spec, "target": "workflow", **extra},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "paused" and body["human_intervention_required"] is True
    return body


def test_tutorial_hitl_flow(make_client) -> None:
    """Create a paused run, list tasks, resume with approved, see the human.decision audit."""
    client = make_client(auth_env())
    run = _paused(client)
    request_id = run["metadata"]["pending_human_request"]["request_id"]
    cid = run["continuation_id"]
    tasks = client.get(f"/v1/human-tasks?run_id={run['run_id']}", headers=headers("viewer")).json()
    assert tasks["count"] == 1 and tasks["tasks"][0]["continuation_id"] == cid
    assert tasks["tasks"][0]["request"]["request_id"] == request_id
    assert {"total", "limit", "offset", "sort_by", "sort_order"} <= set(tasks)
    task = client.get(f"/v1/human-tasks/{cid}", headers=headers("viewer")).json()
    assert task["run_id"] == run["run_id"]
    r = client.post(
        f"/v1/human-tasks/{cid}/resume",
        headers=headers("reviewer"),
        json={"request_id": request_id, "decision": "approved", "content": "Looks good. Ship it."},
    )
    assert r.status_code == 200, r.text
    done = r.json()
    assert done["status"] == "succeeded" and done["continuation_id"] is None
    events = client.get(
        "/v1/audit-events?event_type=human.decision", headers=headers("viewer")
    ).json()["events"]
    assert len(events) == 1
    payload = events[0]["payload"]
    assert events[0]["actor"] == "reviewer"
    assert payload["decision"] == "approved" and payload["content_present"] is True
    assert "Ship it" not in json.dumps(events)
    got = client.get(f"/v1/runs/{run['run_id']}", headers=headers("viewer")).json()
    assert got["status"] == "succeeded" and got["visited_steps"] == ["draft", "approve", "publish"]
    # the legacy alias answers the same
    assert (
        client.get(f"/runs/{run['run_id']}", headers=headers("viewer")).json()["status"]
        == "succeeded"
    )
    second = client.post(
        f"/v1/human-tasks/{cid}/resume",
        headers=headers("reviewer"),
        json={"request_id": request_id, "decision": "approved"},
    )
    assert second.status_code in (404, 409)


def test_idempotent_create_and_resume(make_client) -> None:
    """Same key + body replays; a different body is 409 idempotency_key_conflict."""
    client = make_client(auth_env())
    body = {"input": "hello", "spec_path": SMOKE}
    h = {**headers("operator"), "Idempotency-Key": "key-1"}
    first = client.post("/v1/runs", headers=h, json=body)
    again = client.post("/v1/runs", headers=h, json=body)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert client.get("/v1/runs", headers=headers("viewer")).json()["count"] == 1
    conflict = client.post("/v1/runs", headers=h, json={**body, "input": "other"})
    assert conflict.status_code == 409 and conflict.json()["error"] == "idempotency_key_conflict"
    run = first.json()
    cid, rid = run["continuation_id"], run["metadata"]["pending_human_request"]["request_id"]
    rh = {**headers("reviewer"), "Idempotency-Key": "resume-1"}
    decision = {"request_id": rid, "decision": "approved"}
    r1 = client.post(f"/v1/human-tasks/{cid}/resume", headers=rh, json=decision)
    r2 = client.post(f"/v1/human-tasks/{cid}/resume", headers=rh, json=decision)
    assert r1.status_code == r2.status_code == 200 and r1.json() == r2.json()
    events = client.get(
        "/v1/audit-events?event_type=human.decision", headers=headers("viewer")
    ).json()
    assert events["count"] == 1


def test_validation_errors_and_limits(make_client) -> None:
    client = make_client({**auth_env(), "KNEO_SERV_MAX_INPUT_CHARS": "10"})
    op = headers("operator")
    r = client.post("/v1/runs", headers=op, json={"input": "x", "spec_path": SMOKE, "bogus": 1})
    assert r.status_code == 422 and r.json()["error"] == "validation_error"
    r = client.post("/v1/runs", headers=op, json={"input": "x"})
    assert r.status_code == 422
    r = client.post("/v1/runs", headers=op, json={"input": "x" * 11, "spec_path": SMOKE})
    assert r.status_code == 422 and "KNEO_SERV_MAX_INPUT_CHARS" in r.json()["message"]
    r = client.post("/v1/runs", headers=op, json={"input": "x", "spec_path": "nope.yaml"})
    assert r.status_code in (400, 404) and "error" in r.json()
    r = client.get("/v1/runs/run_missing", headers=op)
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    r = client.post(
        "/v1/human-tasks/cont_missing/resume",
        headers=headers("reviewer"),
        json={"request_id": "req_x", "decision": "maybe"},
    )
    assert r.status_code == 422


def test_list_runs_paging_and_inspection_routes(make_client) -> None:
    client = make_client()
    ids = [_paused(client)["run_id"] for _ in range(3)]
    page = client.get("/v1/runs", params={"limit": 2, "sort_order": "asc"}).json()
    assert [r["run_id"] for r in page["runs"]] == ids[:2]
    assert (page["count"], page["total"], page["limit"], page["offset"]) == (2, 3, 2, 0)
    assert page["sort_by"] == "created_at" and page["sort_order"] == "asc"
    after = {"limit": 2, "sort_order": "asc", "cursor": page["next_cursor"]}
    rest = client.get("/v1/runs", params=after).json()
    assert [r["run_id"] for r in rest["runs"]] == ids[2:] and rest["next_cursor"] is None
    assert client.get("/v1/runs", params={"sort_by": "bogus"}).status_code == 400
    counted = client.get("/v1/runs", params={"status": "paused", "include": "counts"}).json()
    assert counted["total"] == 3
    rid = ids[0]
    trace = client.get(f"/v1/runs/{rid}/trace", params={"limit": 2}).json()
    assert trace["count"] == 2 and trace["total"] >= 3 and trace["sort_by"] == "sequence"
    cps = client.get(f"/v1/runs/{rid}/checkpoints").json()
    assert cps["total"] >= 1
    assert client.get(f"/v1/runs/{rid}/replay").json()["status"] == "paused"
    assert client.get(f"/v1/runs/{rid}/recovery").json()["can_continue"] is False
    assert client.get(f"/v1/runs/{rid}/checkpoints/diff").status_code == 200
    report = client.get(f"/v1/runs/{rid}/policy-report").json()
    assert report["report"]["human_approval"]["present"] is True
    cancelled = client.post(f"/v1/runs/{rid}/cancel").json()
    assert cancelled["status"] == "cancelled"
    assert client.get("/v1/human-tasks", params={"run_id": rid}).json()["count"] == 0


def test_spec_routes(make_client) -> None:
    client = make_client(auth_env())
    h = headers("viewer")
    v = client.post("/v1/specs/validate", headers=h, json={"spec_path": SMOKE})
    assert v.status_code == 200 and v.json()["valid"] is True
    c = client.post("/v1/specs/compile", headers=h, json={"spec_path": SMOKE}).json()
    assert c["workflow"]["family"] == "sequential"
    e = client.post("/v1/specs/explain", headers=h, json={"spec_path": SMOKE}).json()
    assert [s["kind"] for s in e["workflow"]["steps"]] == ["agent", "human", "function"]
    bad = client.post(
        "/v1/specs/validate",
        headers=h,
        json={
            "spec": {
                "version": "v1",
                "agent": {
                    "name": "x",
                    "model": {"provider": "dummy", "name": "d"},
                    "tools": {"include": ["no_such_tool"]},
                },
            }
        },
    )
    assert bad.status_code == 200 and bad.json()["valid"] is False
    assert "E_UNKNOWN_TOOL" in {d["code"] for d in bad.json()["diagnostics"]}
    run = client.post(
        "/v1/specs/run", headers=headers("operator"), json={"input": "hi", "spec_path": SMOKE}
    )
    assert run.status_code == 200 and run.json()["status"] == "paused"
    audit = client.get("/v1/audit-events", headers=h).json()["events"]
    assert {"spec.validated", "spec.compiled", "spec.explained", "run.created"} <= {
        e["event_type"] for e in audit
    }


def test_service_policy_gates_runs(make_client) -> None:
    """A stored environment policy is enforced on spec validation and run creation.

    (In ``dev``: the repository's ``environments/staging.yaml`` runs only approved bundles,
    so a spec run there is ``403 bundle_not_approved`` before any policy gate.)"""
    client = make_client()
    client.put("/v1/policies/environment/dev", json={"require_guardrails": True})
    v = client.post("/v1/specs/validate", json={"spec_path": SMOKE, "environment": "dev"})
    assert v.json()["valid"] is False
    r = client.post("/v1/runs", json={"input": "x", "spec_path": SMOKE, "environment": "dev"})
    assert r.status_code == 400 and r.json()["error"].startswith("E_POLICY")


def test_policies_read_per_request_and_per_environment(make_client) -> None:
    """A run naming an environment reads its two policy keys in one snapshot per request:
    a change is seen by the very next run, and another environment's policy never gates it.
    (Spec runs work in ``dev`` only here: staging and prod files require approved bundles.)"""
    client = make_client()
    store = client.app.state.manager.store

    def run() -> int:
        body = {"input": "x", "spec_path": SMOKE, "environment": "dev"}
        return client.post("/v1/runs", json=body).status_code

    assert run() == 200
    client.put("/v1/policies/environment/staging", json={"require_guardrails": True})
    assert run() == 200
    client.put("/v1/policies/environment/dev", json={"require_guardrails": True})
    assert run() == 400
    client.put("/v1/policies/environment/dev", json={})
    assert run() == 200
    # The registry's per-environment rules (written by the controller) are the other key.
    with store.transaction() as tx:
        tx.set_metadata(
            "registry.environment_policies", {"staging": {"require_approved_bundle": True}}
        )
    assert run() == 200
    with store.transaction() as tx:
        tx.set_metadata("registry.environment_policies", {"dev": {"require_approved_bundle": True}})
    assert run() == 403
    with store.transaction() as tx:
        tx.set_metadata("registry.environment_policies", {})
    assert run() == 200


def test_async_mode_queues_and_worker_executes(make_client) -> None:
    client = make_client(worker=True)
    r = client.post("/v1/runs", json={"input": "hi", "spec_path": SMOKE, "async_mode": True})
    assert r.status_code == 202 and r.json()["status"] == "queued"
    rid = r.json()["run_id"]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        status = client.get(f"/v1/runs/{rid}").json()["status"]
        if status == "paused":
            break
        time.sleep(0.05)
    assert status == "paused"
    # read back, the paused run names what to decide, as a synchronous start answers
    view = client.get(f"/v1/runs/{rid}").json()
    [task] = client.get("/v1/human-tasks", params={"run_id": rid}).json()["tasks"]
    assert view["human_intervention_required"] is True
    assert view["continuation_id"] == task["continuation_id"]
    assert view["request_id"] == task["request"]["request_id"]
    [listed] = [r for r in client.get("/v1/runs").json()["runs"] if r["run_id"] == rid]
    assert (listed["continuation_id"], listed["request_id"]) == (
        task["continuation_id"],
        view["request_id"],
    )
    decided = client.post(
        f"/v1/human-tasks/{task['continuation_id']}/resume",
        json={"request_id": view["request_id"], "decision": "approved"},
    )
    assert decided.status_code in (200, 202), decided.text
    while client.get(f"/v1/runs/{rid}").json()["status"] not in ("succeeded", "failed"):
        assert time.monotonic() < deadline + 20
        time.sleep(0.05)
    after = client.get(f"/v1/runs/{rid}").json()
    assert after["request_id"] is None and after["human_intervention_required"] is False
    [done] = [r for r in client.get("/v1/runs").json()["runs"] if r["run_id"] == rid]
    assert done["request_id"] is None and done["continuation_id"] is None


def test_events_stream_until_pause(make_client) -> None:
    client = make_client(worker=True)
    rid = client.post(
        "/v1/runs", json={"input": "hi", "spec_path": SMOKE, "async_mode": True}
    ).json()["run_id"]
    with client.stream("GET", f"/v1/runs/{rid}/events", params={"poll_seconds": 0.05}) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        text = "".join(resp.iter_text())
    names = [line[7:] for line in text.splitlines() if line.startswith("event: ")]
    assert names[0] == "run.started" and names[-1] == "end"  # run_created is not streamed
    assert "run.paused" in names and "step.completed" in names
    last = json.loads([ln for ln in text.splitlines() if ln.startswith("data: ")][-1][6:])
    assert last["status"] == "paused"


def _sse_events(
    client, rid: str, last_event_id: int | None = None
) -> list[tuple[int | None, str, dict]]:
    extra = {"Last-Event-ID": str(last_event_id)} if last_event_id is not None else {}
    with client.stream(
        "GET", f"/v1/runs/{rid}/events", params={"poll_seconds": 0.05}, headers=extra
    ) as resp:
        assert resp.status_code == 200
        text = "".join(resp.iter_text())
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields:
            events.append(
                (
                    int(fields["id"]) if "id" in fields else None,
                    fields["event"],
                    json.loads(fields["data"]),
                )
            )
    return events


def test_events_follow_a_run_through_a_pause(make_client) -> None:
    """Stream to the pause, resume, reconnect with Last-Event-ID: the rest of the run, once."""
    client = make_client()
    run = _paused(client)
    first = _sse_events(client, run["run_id"])
    assert first[-1][1] == "end" and first[-1][2]["status"] == "paused"
    # The same events as PlatformManager.events(): the pause carries its full requests.
    [paused] = [data for _, name, data in first if name == "run.paused"]
    request = run["metadata"]["pending_human_request"]
    assert paused["type"] == "run.paused" and paused["run_id"] == run["run_id"]
    assert paused["data"]["requests"][0]["request_id"] == request["request_id"]
    assert paused["data"]["requests"][0]["prompt"] == request["prompt"]
    last_id = max(i for i, _, _ in first if i is not None)
    r = client.post(
        f"/v1/human-tasks/{run['continuation_id']}/resume",
        json={
            "request_id": run["metadata"]["pending_human_request"]["request_id"],
            "decision": "approved",
        },
    )
    assert r.status_code == 200 and r.json()["status"] == "succeeded"
    rest = _sse_events(client, run["run_id"], last_event_id=last_id)
    ids = [i for i, _, _ in rest if i is not None]
    assert ids and min(ids) > last_id and ids == sorted(set(ids))  # nothing twice
    names = [name for _, name, _ in rest]
    assert "run.resumed" in names and "run.finished" in names
    [finished] = [data for _, name, data in rest if name == "run.finished"]
    assert finished["data"]["status"] == "succeeded"
    assert names[-1] == "end" and rest[-1][2]["status"] == "succeeded"


def test_a_bad_last_event_id_is_refused_before_the_stream(make_client) -> None:
    """A ``Last-Event-ID`` that no stream sent is ``400 invalid_request`` naming the header,
    not a ``200`` stream that dies; ``0`` and a real id resume as before."""
    client = make_client()
    run = _paused(client)
    for bad in ("-136", "abc", "1.5", "9" * 20, "0x10", "+3", "1 2"):
        r = client.get(
            f"/v1/runs/{run['run_id']}/events",
            params={"poll_seconds": 0.05},
            headers={"Last-Event-ID": bad},
        )
        assert r.status_code == 400, (bad, r.status_code, r.text)
        assert r.headers["content-type"].startswith("application/json")
        body = r.json()
        assert body["error"] == "invalid_request" and body["field"] == "Last-Event-ID", body
    first = _sse_events(client, run["run_id"], last_event_id=0)
    assert first[0][1] == "run.started" and first[-1][1] == "end"
    last_id = max(i for i, _, _ in first if i is not None)
    assert [name for _, name, _ in _sse_events(client, run["run_id"], last_id)] == ["end"]


def test_a_misspelt_filter_is_refused_with_what_was_meant(make_client) -> None:
    """``status=suceeded`` or ``kind=aproval`` would match nothing and look like "no runs":
    a 400 names the field, the values it takes and the one probably meant."""
    client = make_client()
    _paused(client)
    for path, field, wrong, meant in (
        ("/v1/runs", "status", "suceeded", "succeeded"),
        ("/v1/human-tasks", "kind", "aproval", "approval"),
    ):
        r = client.get(path, params={field: wrong})
        assert r.status_code == 400, r.text
        body = r.json()
        assert body["error"] == "invalid_request" and body["field"] == field
        assert body["message"].startswith(f"{field} must be one of ")
        assert body["message"].endswith(f", got '{wrong}'; did you mean '{meant}'?")
        assert client.get(path, params={field: meant}).status_code == 200
    assert client.get("/v1/human-tasks", params={"kind": "promotion"}).json()["count"] == 0
    assert client.get("/v1/runs", params={"status": "paused"}).json()["count"] == 1
