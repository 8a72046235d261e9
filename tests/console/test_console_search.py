"""Inbox search over the API (``GET /v1/human-tasks?q=``) and on the inbox page, and the
line per row that tells tasks of one workflow apart (the run input's first words)."""

from __future__ import annotations

import html
from typing import Any

from console_helpers import Console, start
from inbox_fill import clone_paused
from svc_helpers import headers


def _ids(api: Any, query: str, role: str = "reviewer", **params: str) -> list[str]:
    answer = api.get("/v1/human-tasks", params={"q": query, **params}, headers=headers(role))
    assert answer.status_code == 200, answer.text
    return [t["continuation_id"] for t in answer.json()["tasks"]]


def test_the_api_searches_prompts_inputs_workflows_and_assignees(service: Any) -> None:
    _, api = service()
    invoice = start(api, "hitl_approval", "Customer Ada asks about invoice 7")
    rota = start(api, "hitl_tool_context", "holiday rota for bob@example.com token=abc123xyz")
    assert _ids(api, "INVOICE") == [invoice["continuation_id"]]
    assert _ids(api, "invoice 7 ada") == [invoice["continuation_id"]]
    assert _ids(api, "invoice 8") == []
    assert _ids(api, "hitl tool context") == [rota["continuation_id"]]  # the workflow
    assert _ids(api, "send_email") == [rota["continuation_id"]]  # the prompt names the tool
    assert _ids(api, "reviewer") == [invoice["continuation_id"]]  # hitl_approval's assignee
    assert _ids(api, "abc123xyz") == [] and _ids(api, "bob") == []  # indexed redacted
    both = _ids(api, "approve", sort_order="desc")
    assert both == [rota["continuation_id"], invoice["continuation_id"]]
    listed = api.get("/v1/human-tasks", headers=headers("viewer")).json()["tasks"]
    previews = {t["continuation_id"]: t["input_preview"] for t in listed}
    assert previews[invoice["continuation_id"]] == "Customer Ada asks about invoice 7"
    assert previews[rota["continuation_id"]] == "holiday rota for [REDACTED_EMAIL] token=[REDACTED]"
    refused = api.get("/v1/human-tasks?q=%20%3F%20", headers=headers("reviewer"))
    assert refused.status_code == 400 and refused.json()["field"] == "q"
    assert api.get("/v1/human-tasks?q=", headers=headers("reviewer")).json()["count"] == 2
    resumed = api.post(
        f"/v1/human-tasks/{invoice['continuation_id']}/resume",
        headers=headers("reviewer"),
        json={"request_id": invoice["request_id"], "decision": "approved"},
    )
    assert resumed.json()["status"] == "succeeded"
    assert _ids(api, "invoice") == []  # answered: no longer found


def test_the_inbox_finds_one_task_among_many_and_pages_the_rest(service: Any) -> None:
    app, api = service()
    template = start(api, "hitl_approval", "template")
    texts = [f"weekly report {i} for team {i % 3}" for i in range(120)]
    made = clone_paused(app.state.manager.store, template["run_id"], texts)
    reviewer = Console(app)
    reviewer.sign_in("reviewer")
    page = reviewer.get("/ui/inbox?q=report+57")
    text = html.unescape(page.text)
    assert page.status_code == 200 and f"/ui/tasks/{made[57]}" in text
    assert text.count("/ui/tasks/cont_") == 1 and "weekly report 57 for team 0" in text
    assert 'name="q" value="report 57"' in text
    first = reviewer.get("/ui/inbox?q=team+1")
    assert first.text.count("/ui/tasks/cont_") == 40  # one page of the 40
    assert 'rel="next"' not in first.text
    many = reviewer.get("/ui/inbox?q=weekly")
    assert many.text.count("/ui/tasks/cont_") == 50 and 'rel="next"' in many.text
    none = reviewer.get("/ui/inbox?q=monthly")
    assert "No pending task holds every word of" in html.unescape(none.text)
    bad = reviewer.get("/ui/inbox?q=%3F%21")
    assert bad.status_code == 400 and "q must hold a word" in html.unescape(bad.text)
    assert 'aria-invalid="true"' in bad.text and "pending" in bad.text
