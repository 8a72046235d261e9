"""The seed tutorial's HTTP walkthrough in every shape, each body compared field by field with
the body the reference documents (ids and times left out: they differ by nature).

The reference (the tutorial's "Run as a service", "Verify readiness", "Submit a real run" and
human-in-the-loop sections): ``/livez`` is ``{"ok": true, "metadata": {}}``; ``/readyz`` is
``ok`` with ``metadata.ready`` and a named check per dependency; ``POST /v1/runs`` on the smoke
spec answers ``paused`` with a ``continuation_id`` and ``metadata.pending_human_request``; the
decision answers ``200`` with the finished run (the seed's synchronous answer, wherever the
run goes on); the decision is in ``/v1/audit-events?event_type=human.decision`` without its
content; the run is in ``/v1/runs?limit=5``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.matrix.shapes import Shape

pytestmark = pytest.mark.slow

SMOKE = "examples/smoke_human_workflow.yaml"
#: the dependency checks the reference's /readyz names, each ``{"name": …, "ok": true}``
READY_CHECKS = (
    "run_state_store",
    "continuation_store",
    "queue",
    "runtime_registry",
    "tool_registry",
    "providers",
    "mcp",
)


def fields(body: dict[str, Any], *names: str) -> dict[str, Any]:
    """``body``'s ``names`` (dotted paths), for one comparison with the reference's."""
    out: dict[str, Any] = {}
    for name in names:
        value: Any = body
        for part in name.split("."):
            value = value[part]
        out[name] = value
    return out


def test_probes_answer_the_references_bodies(shape: Shape) -> None:
    live = shape.get("/livez")
    assert live.status_code == 200 and live.json() == {"ok": True, "metadata": {}}
    ready = shape.get("/readyz")
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert fields(body, "ok", "metadata.ready", "metadata.manager") == {
        "ok": True,
        "metadata.ready": True,
        "metadata.manager": "PlatformManager",
    }
    checks = body["metadata"]["checks"]
    for name in READY_CHECKS:
        assert {checks[name]["name"], checks[name]["ok"]} == {name, True}, checks[name]
    for registry in ("runtime_registry", "tool_registry"):
        assert checks[registry]["count"] == len(checks[registry]["names"]) > 0


def _paused(shape: Shape, text: str) -> dict[str, Any]:
    answer = shape.post(
        "/v1/runs", "operator", {"input": text, "spec_path": SMOKE, "target": "workflow"}
    )
    assert answer.status_code == 200, answer.text
    run: dict[str, Any] = answer.json()
    assert fields(
        run,
        "status",
        "output_text",
        "human_intervention_required",
        "metadata.pending_human_request.prompt",
    ) == {
        "status": "paused",
        "output_text": None,
        "human_intervention_required": True,
        "metadata.pending_human_request.prompt": "Approve the smoke draft?",
    }
    assert run["run_id"].startswith("run_") and run["continuation_id"].startswith("cont_")
    assert run["metadata"]["pending_human_request"]["request_id"].startswith("req_")
    return run


def test_the_walkthrough_from_run_to_audit(shape: Shape) -> None:
    run = _paused(shape, "smoke")
    cid = run["continuation_id"]
    rid = run["metadata"]["pending_human_request"]["request_id"]
    listed = shape.get("/v1/human-tasks", params={"run_id": run["run_id"]}).json()
    assert [t["continuation_id"] for t in listed["tasks"]] == [cid]
    assert listed["tasks"][0]["request"]["request_id"] == rid
    task = shape.get(f"/v1/human-tasks/{cid}").json()
    assert (task["run_id"], task["continuation_id"]) == (run["run_id"], cid)
    decided = shape.post(
        f"/v1/human-tasks/{cid}/resume",
        "reviewer",
        {"request_id": rid, "decision": "approved", "content": "Looks good. Ship it."},
    )
    assert decided.status_code == 200, decided.text  # the seed's answer, also on a worker
    done = decided.json()
    assert fields(done, "status", "human_intervention_required", "continuation_id") == {
        "status": "succeeded",
        "human_intervention_required": False,
        "continuation_id": None,
    }
    assert done["run_id"] == run["run_id"] and done["output_text"]
    audit = shape.get(
        "/v1/audit-events", params={"event_type": "human.decision", "continuation_id": cid}
    ).json()["events"]
    [event] = audit
    assert fields(event, "actor", "payload.decision", "payload.content_present") == {
        "actor": "reviewer",
        "payload.decision": "approved",
        "payload.content_present": True,
    }
    assert event["payload"]["request_id"] == rid and "Ship it" not in json.dumps(audit)
    recent = shape.get("/v1/runs", "operator", params={"limit": 5}).json()
    assert run["run_id"] in [r["run_id"] for r in recent["runs"]]
    again = shape.get(f"/v1/runs/{run['run_id']}").json()
    assert again["status"] == "succeeded"
    assert again["visited_steps"] == ["draft", "approve", "publish"]


def test_an_idempotent_resume_replays_and_a_changed_body_conflicts(shape: Shape) -> None:
    run = _paused(shape, "idempotent")
    cid = run["continuation_id"]
    body = {"request_id": run["metadata"]["pending_human_request"]["request_id"]}
    key = {"Idempotency-Key": f"matrix-{cid}"}
    first = shape.post(f"/v1/human-tasks/{cid}/resume", "reviewer", {**body, "decision": "approved"}, headers=key)  # fmt: skip
    again = shape.post(f"/v1/human-tasks/{cid}/resume", "reviewer", {**body, "decision": "approved"}, headers=key)  # fmt: skip
    assert first.status_code == again.status_code == 200, first.text
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    changed = shape.post(f"/v1/human-tasks/{cid}/resume", "reviewer", {**body, "decision": "rejected"}, headers=key)  # fmt: skip
    assert changed.status_code == 409 and changed.json()["error"] == "idempotency_key_conflict"
