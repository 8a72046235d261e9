"""``POST /v1/human-tasks/{id}/decisions``: the requests of one task decided together.

A model turn that asks for two approved tool calls is one task with two requests. The
decisions are checked first and written in one transaction: one refused decision writes
none; accepted, the run continues once and each call runs once.
"""

from __future__ import annotations

from typing import Any

from svc_helpers import TWO_APPROVALS as SPEC
from svc_helpers import auth_env, headers


def _paused_task(client: Any) -> tuple[str, list[str]]:
    r = client.post("/v1/runs", headers=headers("operator"), json={"input": "x", "spec": SPEC})
    assert r.status_code == 200 and r.json()["status"] == "paused", r.text
    cid = r.json()["continuation_id"]
    task = client.get(f"/v1/human-tasks/{cid}", headers=headers("viewer")).json()
    return cid, [q["request_id"] for q in task["requests"]]


def test_one_refused_decision_writes_none_then_both_apply_at_once(make_client: Any) -> None:
    client = make_client(auth_env())
    cid, (first, second) = _paused_task(client)
    url = f"/v1/human-tasks/{cid}/decisions"
    bad = client.post(
        url,
        headers=headers("reviewer"),
        json={
            "decisions": [
                {"request_id": first, "decision": "approved"},
                {"request_id": second, "decision": "edited", "content": '{"to": 7}'},
            ]
        },
    )
    assert bad.status_code == 422 and bad.json()["error"] == "invalid_human_input", bad.text
    task = client.get(f"/v1/human-tasks/{cid}", headers=headers("viewer")).json()
    assert [q["status"] for q in task["requests"]] == ["pending", "pending"]
    twice = client.post(
        url,
        headers=headers("reviewer"),
        json={"decisions": [{"request_id": first, "decision": "approved"}] * 2},
    )
    assert twice.status_code == 400, twice.text

    done = client.post(
        url,
        headers={**headers("reviewer"), "Idempotency-Key": "both-1"},
        json={
            "decisions": [
                {"request_id": first, "decision": "approved"},
                {"request_id": second, "decision": "rejected", "content": "not bob"},
            ]
        },
    )
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["status"] == "succeeded"
    assert body["output_text"].startswith("done: Tool call rejected by a reviewer: not bob")
    audits = client.get(
        "/v1/audit-events?event_type=human.decision", headers=headers("viewer")
    ).json()["events"]
    assert sorted(a["payload"]["decision"] for a in audits) == ["approved", "rejected"]
    assert {a["actor"] for a in audits} == {"reviewer"}
    replay = client.post(
        url,
        headers={**headers("reviewer"), "Idempotency-Key": "both-1"},
        json={
            "decisions": [
                {"request_id": first, "decision": "approved"},
                {"request_id": second, "decision": "rejected", "content": "not bob"},
            ]
        },
    )
    assert replay.json() == body and replay.headers["idempotent-replayed"] == "true"


def test_decided_one_by_one_the_run_waits_for_the_last(make_client: Any) -> None:
    client = make_client(auth_env())
    cid, (first, second) = _paused_task(client)
    url = f"/v1/human-tasks/{cid}/resume"
    one = client.post(
        url, headers=headers("reviewer"), json={"request_id": second, "decision": "approved"}
    )
    assert one.status_code == 200 and one.json()["status"] == "paused"
    two = client.post(
        url, headers=headers("reviewer"), json={"request_id": first, "decision": "approved"}
    )
    assert two.json()["status"] == "succeeded"
    assert two.json()["output_text"] == "done: sent to bob: b"
