"""The task page of a model turn with two approved tool calls: each request has its own
form, and one form decides them all together (recorded together, the run goes on once)."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

from console_helpers import Console
from svc_helpers import TWO_APPROVALS, headers


def _paused(api: Any) -> dict[str, Any]:
    body = api.post(
        "/v1/runs", headers=headers("admin"), json={"input": "x", "spec": TWO_APPROVALS}
    ).json()
    assert body["status"] == "paused", body
    return dict(body)


def test_approve_all_decides_every_request_of_the_turn(service: Callable[..., Any]) -> None:
    app, api = service()
    paused = _paused(api)
    cid = paused["continuation_id"]
    reviewer = Console(app)
    reviewer.sign_in("reviewer")
    page = html.unescape(reviewer.get(f"/ui/tasks/{cid}").text)
    assert "Decide all 2 pending requests together" in page
    assert "Approve all" in page and "Reject all" in page
    task = api.get(f"/v1/human-tasks/{cid}", headers=headers("admin")).json()
    ids = " ".join(r["request_id"] for r in task["requests"])
    answer = reviewer.post(
        f"/ui/tasks/{cid}",
        {"request_ids": ids, "decision": "approved", "idempotency_key": "k-all"},
    )
    assert answer.status_code == 303 and answer.headers["location"] == (
        f"/ui/runs/{paused['run_id']}"
    )
    run = api.get(f"/v1/runs/{paused['run_id']}", headers=headers("admin")).json()
    assert run["status"] == "succeeded" and run["output_text"] == "done: sent to bob: b"
    decided = api.get(f"/v1/human-tasks/{cid}", headers=headers("admin")).json()["requests"]
    assert [(r["decision"], r["decided_by"]) for r in decided] == [("approved", "reviewer")] * 2


def test_one_pending_request_has_no_decide_together_form(service: Callable[..., Any]) -> None:
    app, api = service()
    paused = _paused(api)
    cid = paused["continuation_id"]
    first = api.get(f"/v1/human-tasks/{cid}", headers=headers("admin")).json()["requests"][0]
    api.post(
        f"/v1/human-tasks/{cid}/resume",
        headers=headers("reviewer"),
        json={"request_id": first["request_id"], "decision": "approved"},
    )
    reviewer = Console(app)
    reviewer.sign_in("reviewer")
    page = reviewer.get(f"/ui/tasks/{cid}").text
    assert "pending requests together" not in page
