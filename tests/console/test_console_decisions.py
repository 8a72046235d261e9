"""The task page: one form per request kind, decisions through the platform's resume, field
errors, double submits, late decisions, and the redaction rule on the API and the console."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from console_helpers import Console, start
from svc_helpers import headers

from kneo.store import AuditQuery


def _request(paused: dict[str, Any]) -> dict[str, Any]:
    return dict(paused["metadata"]["pending_human_request"])


def _task(api: Any, cid: str) -> dict[str, Any]:
    return dict(api.get(f"/v1/human-tasks/{cid}", headers=headers("admin")).json())


def _run(api: Any, run_id: str) -> dict[str, Any]:
    return dict(api.get(f"/v1/runs/{run_id}", headers=headers("admin")).json())


# (example, what the form must offer, the decision posted, the run's status after it)
KINDS = [
    (
        "hitl_approval",
        ['value="approved"', 'value="edited"', 'value="rejected"', "DRAFT: launch"],
        {"decision": "edited", "content": "my own text"},
        "succeeded",
    ),
    (
        "hitl_confirmation",
        ['value="approved"', 'value="rejected"', "Publish the draft now?"],
        {"decision": "rejected"},
        "succeeded",
    ),
    (
        "hitl_input",
        ['name="field.threshold"', "<select", 'value="strict"', "Minimum score", "*</abbr>"],
        {"decision": "provided", "field.threshold": "0.8", "field.mode": "strict"},
        "succeeded",
    ),
    (
        "hitl_review",
        ["Output to review", "round 1 of", 'value="edited"', "Feedback for the next round"],
        {"decision": "rejected", "content": "mention the date"},
        "paused",  # a new round of review
    ),
    (
        "hitl_route",
        ['name="selected_option" value="fast_track"', 'value="full_review"'],
        {"decision": "selected", "selected_option": "full_review"},
        "succeeded",
    ),
    (
        "hitl_tool_approval",
        ["send_email", "Arguments (JSON)", "Argument schema", 'value="rejected"'],
        {"decision": "rejected", "content": "not today"},
        "succeeded",
    ),
    (
        "hitl_iteration",
        ["Output of iteration 1", "DRAFT: launch [rev 1]", "stopping goes on at", "Stop the loop"],
        {"decision": "edited", "content": "FINAL: my text"},  # FINAL: the exit edge
        "succeeded",
    ),
    (
        "hitl_tool_input",
        ['name="field.to"', "send_email", "You provide to", "Run the call with these values"],
        {"decision": "provided", "field.to": "ops-team"},
        "succeeded",
    ),
    (
        "hitl_external",
        ["create_ticket", "Result schema", "Decline to run it", "Message to the agent"],
        {"decision": "provided", "content": '{"ticket": "OPS-42"}'},
        "succeeded",
    ),
    (
        "hitl_question",
        ["The agent asks", 'name="content"', 'value="provided"'],
        {"decision": "provided", "content": "(v2)"},
        "succeeded",
    ),
    (
        "hitl_on_error",
        ["The step failed", "upstream service unavailable", 'value="retry"', 'value="skip"'],
        {"decision": "selected", "selected_option": "retry"},
        "succeeded",
    ),
]


@pytest.mark.parametrize(("example", "offers", "post", "after"), KINDS, ids=[k[0] for k in KINDS])
def test_each_kind_has_its_form_and_decides_like_the_api(
    service: Callable[..., Any], example: str, offers: list[str], post: dict[str, str], after: str
) -> None:
    app, api = service()
    paused = start(api, example)
    cid, rid = paused["continuation_id"], _request(paused)["request_id"]
    reviewer = Console(app)
    reviewer.sign_in("reviewer")
    page = reviewer.get(f"/ui/tasks/{cid}")
    assert page.status_code == 200
    text = html.unescape(page.text)
    for expected in offers:
        assert expected in text, expected
    key = reviewer.form_key(f"/ui/tasks/{cid}")
    answer = reviewer.post(f"/ui/tasks/{cid}", {"request_id": rid, "idempotency_key": key, **post})
    assert answer.status_code == 303, answer.text[:500]
    assert _run(api, paused["run_id"])["status"] == after
    decided = next(r for r in _task(api, cid)["requests"] if r["request_id"] == rid)
    assert (decided["status"], decided["decision"], decided["decided_by"]) == (
        "resolved",
        post["decision"],
        "reviewer",
    )
    if after == "succeeded":
        assert answer.headers["location"] == f"/ui/runs/{paused['run_id']}"


def test_typed_input_error_is_shown_next_to_the_field(service: Callable[..., Any]) -> None:
    """Invalid input re-renders the form with the platform's error at the field, keeps
    what was typed, and the task stays pending; then valid input goes through."""
    app, api = service()
    paused = start(api, "hitl_input")
    cid, rid = paused["continuation_id"], _request(paused)["request_id"]
    reviewer = Console(app)
    reviewer.sign_in("reviewer")
    url = f"/ui/tasks/{cid}"
    for fields, wrong in (
        ({"field.threshold": "", "field.mode": "strict"}, "threshold"),
        ({"field.threshold": "high", "field.mode": ""}, "threshold"),
    ):
        answer = reviewer.post(url, {"request_id": rid, "decision": "provided", **fields})
        assert answer.status_code == 422
        error = re.search(
            rf'name="field\.{wrong}".*?<p class="field-error" role="alert">([^<]*)</p>',
            answer.text,
            re.S,
        )
        assert error and wrong in error.group(1), answer.text
        assert 'value="high"' in answer.text or not fields["field.threshold"]
        assert _task(api, cid)["status"] == "pending"
    done = reviewer.post(url, {"request_id": rid, "decision": "provided", "field.threshold": "0.8"})
    assert done.status_code == 303
    assert _run(api, paused["run_id"])["output_text"] == (
        "Processed 'launch' with {\"threshold\": 0.8}"
    )


# (example, an invalid post, the form control its error is shown after, what must stay typed)
INVALID = [
    ("hitl_iteration", {"decision": "edited", "content": ""}, 'name="content"', None),
    ("hitl_tool_input", {"decision": "provided", "field.to": "x"}, 'name="field.to"', 'value="x"'),
    (
        "hitl_external",
        {"decision": "provided", "content": '{"ticket": "not a ticket"}'},
        'name="content"',
        "not a ticket",
    ),
]


@pytest.mark.parametrize(
    ("example", "post", "control", "kept"), INVALID, ids=[k[0] for k in INVALID]
)
def test_new_kinds_show_the_error_at_the_field_and_hide_controls_from_viewers(
    service: Callable[..., Any], example: str, post: dict[str, str], control: str, kept: str | None
) -> None:
    """Loop-iteration review, tool-argument input and external execution: an answer the
    platform refuses re-renders the form with its error after the field it is about, the
    task stays pending; a viewer sees the request and no decision controls."""
    app, api = service()
    paused = start(api, example)
    cid, rid = paused["continuation_id"], _request(paused)["request_id"]
    reviewer = Console(app)
    reviewer.sign_in("reviewer")
    answer = reviewer.post(f"/ui/tasks/{cid}", {"request_id": rid, **post})
    assert answer.status_code in (400, 422), answer.text[:500]
    form = re.search(rf'class="action a-{post["decision"]}"[^>]*>(.*?)</form>', answer.text, re.S)
    assert form, answer.text
    error = re.search(
        rf'{re.escape(control)}.*?<p class="field-error" role="alert">([^<]+)</p>',
        form.group(1),
        re.S,
    )
    assert error, form.group(1)
    assert kept is None or kept in html.unescape(form.group(1))
    assert _task(api, cid)["status"] == "pending"
    viewer = Console(app)
    viewer.sign_in("viewer")
    page = viewer.get(f"/ui/tasks/{cid}").text
    assert 'name="decision"' not in page and "may look but not decide" in page
    assert _request(paused)["prompt"] in html.unescape(page)


def test_edited_tool_arguments_are_checked_against_the_tool_schema(
    service: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Arguments edited as JSON are validated against the tool's schema when the decision is
    made, on the console and the API alike; valid ones run the tool once, with them."""
    counter = tmp_path / "calls"
    monkeypatch.setenv("KNEO_HITL_COUNTER", str(counter))
    app, api = service()
    paused = start(api, "hitl_tool_approval")
    cid, rid = paused["continuation_id"], _request(paused)["request_id"]
    assert _request(paused)["input_schema"]["required"] == ["to", "subject"]
    reviewer = Console(app)
    reviewer.sign_in("reviewer")
    url = f"/ui/tasks/{cid}"
    bad = json.dumps({"to": "ops@example.com"})
    answer = reviewer.post(url, {"request_id": rid, "decision": "edited", "content": bad})
    assert answer.status_code == 422 and "subject" in answer.text
    assert bad in html.unescape(answer.text)  # what was typed stays in the box
    via_api = api.post(
        f"/v1/human-tasks/{cid}/resume",
        headers=headers("reviewer"),
        json={"request_id": rid, "decision": "edited", "content": bad},
    )
    assert via_api.status_code == 422 and via_api.json()["path"] == "subject"
    assert _task(api, cid)["status"] == "pending" and not counter.exists()
    good = json.dumps({"to": "ops@example.com", "subject": "Hi"})
    assert (
        reviewer.post(url, {"request_id": rid, "decision": "edited", "content": good}).status_code
        == 303
    )
    run = _run(api, paused["run_id"])
    assert run["status"] == "succeeded"
    assert run["output_text"] == "Done: sent to ops@example.com: Hi"  # admin: a decider
    assert counter.read_text().splitlines() == ["send_email"]


def test_a_double_submit_applies_once(
    service: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The idempotency key minted with the form makes a resubmitted form a replay."""
    counter = tmp_path / "calls"
    monkeypatch.setenv("KNEO_HITL_COUNTER", str(counter))
    app, api = service()
    paused = start(api, "hitl_approval")
    cid, rid = paused["continuation_id"], _request(paused)["request_id"]
    reviewer = Console(app)
    reviewer.sign_in("reviewer")
    key = reviewer.form_key(f"/ui/tasks/{cid}")
    form = {"request_id": rid, "decision": "approved", "idempotency_key": key}
    first = reviewer.post(f"/ui/tasks/{cid}", form)
    second = reviewer.post(f"/ui/tasks/{cid}", form)
    assert first.status_code == second.status_code == 303
    assert first.headers["location"] == second.headers["location"]
    assert counter.read_text().splitlines() == ["publish"]
    audit = api.get("/v1/audit-events?event_type=human.decision", headers=headers("admin"))
    assert [e["actor"] for e in audit.json()["events"]] == ["reviewer"]


def test_a_late_decision_says_by_whom_and_when(service: Callable[..., Any]) -> None:
    app, api = service()
    paused = start(api, "hitl_approval")
    cid, rid = paused["continuation_id"], _request(paused)["request_id"]
    reviewer, admin = Console(app), Console(app)
    reviewer.sign_in("reviewer")
    admin.sign_in("admin")
    stale_key = admin.form_key(f"/ui/tasks/{cid}")  # admin opened the page first
    reviewer.post(f"/ui/tasks/{cid}", {"request_id": rid, "decision": "approved"})
    late = admin.post(
        f"/ui/tasks/{cid}",
        {"request_id": rid, "decision": "rejected", "idempotency_key": stale_key},
    )
    assert late.status_code == 409
    decided_at = _task(api, cid)["requests"][0]["decided_at"]
    text = html.unescape(late.text)
    assert "already resolved" in text
    assert re.search(r"Decided <strong>approved</strong>\s+by <strong>reviewer</strong>", text)
    assert decided_at in text
    assert _run(api, paused["run_id"])["status"] == "succeeded"


SECRET = "sk-live-ABCDEFGH12345678"
PLANTED = {
    "version": "v1",
    "agent": {
        "name": "mailer",
        "system_prompt": "Send e-mails.",
        "tools": ["send_email"],
        "approval_required": ["send_email"],
        "model": {
            "provider": "dummy",
            "script": [
                {
                    "tool_calls": [
                        {
                            "name": "send_email",
                            "arguments": {"to": "ann@example.com", "subject": f"key {SECRET}"},
                        }
                    ]
                },
                {"text": "Done: {last_tool_result}"},
            ],
        },
    },
    "workflow": {
        "type": "sequential",
        "name": "planted",
        "steps": [{"id": "mail", "kind": "agent", "ref": "mailer"}],
    },
    "components": {
        "tools": {
            "send_email": {
                "description": "Send an e-mail.",
                "implementation": "examples.hitl_functions:send_email",
                "parameters": {
                    "type": "object",
                    "properties": {"to": {"type": "string"}, "subject": {"type": "string"}},
                    "required": ["to", "subject"],
                },
            }
        }
    },
}


def test_one_redaction_rule_on_the_api_and_the_console(service: Callable[..., Any]) -> None:
    """Secrets: redacted for everyone. Personal data: shown to callers with the decision
    scope (API and console alike), redacted for others and in traces and audit."""
    app, api = service()
    body = api.post(
        "/v1/runs", headers=headers("admin"), json={"input": "go", "spec": PLANTED}
    ).json()
    cid, run_id = body["continuation_id"], body["run_id"]
    for role, shows in (("reviewer", True), ("service", True), ("viewer", False)):
        got = api.get(f"/v1/human-tasks/{cid}", headers=headers(role)).json()
        arguments = got["requests"][0]["context"]["arguments"]
        assert (arguments["to"] == "ann@example.com") is shows, role
        assert SECRET not in json.dumps(got)
        listed = api.get("/v1/human-tasks", headers=headers(role)).text
        assert ("ann@example.com" in listed) is shows and SECRET not in listed
        person = Console(app)
        person.sign_in(role)
        page = person.get(f"/ui/tasks/{cid}").text
        assert ("ann@example.com" in page) is shows, role
        assert ("[REDACTED_EMAIL]" in page) is not shows and SECRET not in page
        run_page = person.get(f"/ui/runs/{run_id}").text
        assert SECRET not in run_page  # the conversation is a response: as the task page
        assert ("ann@example.com" in run_page) is shows, role
        trace = run_page.split('<ol class="timeline">', 1)[1]
        assert "ann@example.com" not in trace  # trace events are records: redacted for all
    rid = body["metadata"]["pending_human_request"]["request_id"]
    done = api.post(
        f"/v1/human-tasks/{cid}/resume",
        headers=headers("reviewer"),
        json={"request_id": rid, "decision": "approved"},
    ).json()
    assert done["output_text"].startswith("Done: sent to ann@example.com")
    viewer_view = api.get(f"/v1/runs/{run_id}", headers=headers("viewer")).json()
    assert "ann@example.com" not in viewer_view["output_text"]
    store = app.state.manager.store
    trace = json.dumps([e.payload for e in store.runs.list_trace(run_id).items])
    audit = json.dumps([e.payload for e in store.audit.list_audit(AuditQuery(run_id=run_id)).items])
    for record in (trace, audit):
        assert "ann@example.com" not in record and SECRET not in record


def test_inbox_filters_counts_and_pages(service: Callable[..., Any]) -> None:
    """Filters by kind, assignee ("mine"), workflow and age; counts per assignee; keyset
    pages that visit every task once."""
    app, api = service(KNEO_SERV_MAX_LIST_ITEMS="2")
    runs = [start(api, spec) for spec in ("hitl_approval", "hitl_input", "hitl_confirmation")]
    runs.append(start(api, "hitl_approval"))
    person = Console(app)
    person.sign_in("reviewer")
    seen: list[str] = []
    url = "/ui/inbox"
    for _ in range(4):
        page = person.get(url).text
        seen += re.findall(r'href="/ui/tasks/(cont_[0-9a-f]+)"', page)
        following = re.search(r'href="([^"]+)" rel="next"', page)
        if following is None:
            break
        url = html.unescape(following.group(1))
    assert seen == [r["continuation_id"] for r in runs]
    page = person.get("/ui/inbox?kind=input").text
    assert re.findall(r'href="/ui/tasks/(cont_[0-9a-f]+)"', page) == [runs[1]["continuation_id"]]
    mine = person.get("/ui/inbox?assignee=mine").text  # hitl_approval is assigned to reviewer
    assert re.findall(r'href="/ui/tasks/(cont_[0-9a-f]+)"', mine) == [
        runs[0]["continuation_id"],
        runs[3]["continuation_id"],
    ]
    wf = person.get("/ui/inbox?workflow=hitl-confirmation&sort=newest").text
    assert re.findall(r'href="/ui/tasks/(cont_[0-9a-f]+)"', wf) == [runs[2]["continuation_id"]]
    assert "Nothing waits" in person.get("/ui/inbox?older_than=1d").text
    counts = re.findall(r'assignee=(\w+)">\w+</a> <span class="count">(\d+)', page)
    assert dict(counts) == {"reviewer": "2", "editor": "1"}
    assert person.get("/ui/inbox?older_than=forever").status_code == 400
    assert person.get("/ui/inbox?cursor=garbage").status_code == 400


def test_every_request_kind_is_in_the_inbox_filter_with_a_readable_label(
    service: Callable[..., Any],
) -> None:
    """The kind filter offers each kind the engine can ask (labelled for people, posting the
    API's name) and filters by it; rows show the readable label."""
    from typing import get_args

    from kneo.spec.models import RequestKind

    app, api = service()
    runs = {spec: start(api, spec) for spec in ("hitl_iteration", "hitl_external")}
    person = Console(app)
    person.sign_in("reviewer")
    page = person.get("/ui/inbox").text
    offered = dict(re.findall(r'<option value="(\w+)" >([^<]+)</option>', page))
    assert set(get_args(RequestKind)) | {"promotion"} <= set(offered)
    assert offered["external_tool"] == "external tool"
    assert all("_" not in label for label in offered.values())
    only = person.get("/ui/inbox?kind=external_tool").text
    assert re.findall(r'href="/ui/tasks/(cont_[0-9a-f]+)"', only) == [
        runs["hitl_external"]["continuation_id"]
    ]
    assert '<span class="kind k-external_tool" title="external_tool">external tool</span>' in only
