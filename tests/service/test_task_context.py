"""The context a decider judges by: ``GET /v1/human-tasks/{id}?include=context`` and
``GET /v1/runs/{id}?include=conversation`` over the real app, and the pure builders of
``kneo.platform.context`` on edge cases (long texts, long conversations).

What is planted: an e-mail address (personal data: shown to a decider, redacted for a
viewer) and secrets (redacted for everyone) in the run's input, which the agent passes to a
tool, whose result repeats it, and which the model's own words quote."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient
from svc_helpers import API_KEYS_ENV, auth_env, headers

from kneo.platform.context import (
    CONVERSATION_MESSAGES,
    MESSAGE_CHARS,
    conversations,
    decisions,
)

SECRET = "sk-plantedOPENAIkey0123456789"
PASSWORD = "hunter2secret"
EMAIL = "bob.planted@example.com"
INPUT = f"release notes for {EMAIL} password={PASSWORD} {SECRET}"
NARROW = "narrow-secret-token-9"  # human:read and human:write, but not runs:read


def _client(make_client: Any) -> TestClient:
    env = auth_env()
    env["KNEO_SERV_API_KEYS"] = f"{API_KEYS_ENV};narrow:{NARROW}:human:read,human:write"
    client: TestClient = make_client(env)
    return client


def _start(client: TestClient, example: str, text: str = INPUT) -> dict[str, Any]:
    body = client.post(
        "/v1/runs",
        headers=headers("operator"),
        json={"input": text, "spec_path": f"examples/{example}.yaml"},
    ).json()
    assert body["status"] == "paused", body
    return dict(body)


def _context(client: TestClient, cid: str, role: str = "reviewer") -> dict[str, Any]:
    answer = client.get(f"/v1/human-tasks/{cid}?include=context", headers=headers(role))
    assert answer.status_code == 200, answer.text
    assert SECRET not in answer.text and PASSWORD not in answer.text
    return dict(answer.json()["context"])


def test_a_tool_call_approval_carries_the_agents_words_and_the_earlier_tool_result(
    make_client: Any,
) -> None:
    client = _client(make_client)
    paused = _start(client, "hitl_tool_context")
    cid = paused["continuation_id"]
    plain = client.get(f"/v1/human-tasks/{cid}", headers=headers("reviewer")).json()
    assert "context" not in plain  # only when asked for

    context = _context(client, cid)
    assert context["run"]["input_text"].startswith(f"release notes for {EMAIL} password=")
    (conv,) = context["conversations"]
    assert (conv["step_id"], conv["agent"], conv["finished"]) == ("notify", "notifier", False)
    roles = [m["role"] for m in conv["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "assistant"]
    lookup = conv["messages"][3]
    assert lookup["name"] == "lookup_on_call" and EMAIL in lookup["content"]
    assert "[REDACTED]" in lookup["content"]  # the secrets it repeated
    (about,) = context["requests"]
    assert about["request_id"] == plain["request"]["request_id"]
    assert about["unit"] == "notify" and about["message_index"] == 4
    assert about["agent_message"].startswith("The lookup says: the release team")
    assert conv["messages"][4]["tool_calls"][0]["name"] == "send_email"
    assert [(s["step_id"], s["status"]) for s in context["position"]["steps"]] == [
        ("notify", "waiting")
    ]
    assert context["decisions"] == []

    seen = _context(client, cid, role="viewer")  # a viewer sees no personal data
    assert EMAIL not in str(seen) and "[REDACTED_EMAIL]" in seen["requests"][0]["agent_message"]


def test_the_context_takes_runs_read_and_include_is_checked(make_client: Any) -> None:
    client = _client(make_client)
    cid = _start(client, "hitl_tool_context")["continuation_id"]
    narrow = {"Authorization": f"Bearer {NARROW}"}
    assert client.get(f"/v1/human-tasks/{cid}", headers=narrow).status_code == 200
    refused = client.get(f"/v1/human-tasks/{cid}?include=context", headers=narrow)
    assert refused.status_code == 403 and refused.json()["required_scope"] == "runs:read"
    wrong = client.get(f"/v1/human-tasks/{cid}?include=everything", headers=headers("admin"))
    assert wrong.status_code == 400 and wrong.json()["field"] == "include"
    wrong = client.get("/v1/runs/x?include=context", headers=headers("admin"))
    assert wrong.status_code == 400 and wrong.json()["field"] == "include"


def test_an_output_review_shows_what_produced_it_and_the_earlier_rejection(
    make_client: Any,
) -> None:
    client = _client(make_client)
    paused = _start(client, "hitl_review", f"notes for {EMAIL}")
    cid, rid = paused["continuation_id"], paused["request_id"]
    again = client.post(
        f"/v1/human-tasks/{cid}/resume",
        headers=headers("reviewer"),
        json={"request_id": rid, "decision": "rejected", "content": f"shorter, ask {EMAIL}"},
    ).json()
    assert again["status"] == "paused"
    context = _context(client, again["continuation_id"])
    (about,) = context["requests"]
    assert about["output"].startswith("SUMMARY of") and "revised: shorter" in about["output"]
    producer = about["produced_by"]
    assert (producer["step_id"], producer["kind"]) == ("summarize", "function")
    assert producer["ref"] == "examples.hitl_functions:summarize"
    assert producer["input"] == f"notes for {EMAIL}"  # the first step: the run's input
    (earlier,) = context["decisions"]
    assert (earlier["decision"], earlier["decided_by"]) == ("rejected", "reviewer")
    assert earlier["content"] == f"shorter, ask {EMAIL}" and earlier["wait_key"].endswith(":1")


def test_an_approval_shows_where_the_run_is(make_client: Any) -> None:
    client = _client(make_client)
    context = _context(client, _start(client, "hitl_approval")["continuation_id"])
    steps = [(s["step_id"], s["kind"], s["status"]) for s in context["position"]["steps"]]
    assert steps == [
        ("draft", "function", "done"),
        ("approve", "human", "waiting"),
        ("publish", "function", "not_reached"),
    ]
    assert context["position"]["visited"] == ["draft"] and context["conversations"] == []


def test_the_run_shows_its_conversation_and_decisions(make_client: Any) -> None:
    client = _client(make_client)
    paused = _start(client, "hitl_tool_context")
    done = client.post(
        f"/v1/human-tasks/{paused['continuation_id']}/resume",
        headers=headers("reviewer"),
        json={"request_id": paused["request_id"], "decision": "approved"},
    ).json()
    assert done["status"] == "succeeded", done
    run = client.get(f"/v1/runs/{paused['run_id']}?include=conversation", headers=headers("viewer"))
    assert SECRET not in run.text and EMAIL not in run.text
    body = run.json()
    (conv,) = body["conversations"]
    assert conv["finished"] is True
    result = conv["messages"][5]
    assert result["name"] == "send_email" and result["content"].startswith("sent to [REDACTED_")
    assert conv["messages"][-1]["content"].startswith("Done: sent to")
    assert [(d["decision"], d["decided_by"]) for d in body["decisions"]] == [
        ("approved", "reviewer")
    ]
    plain = client.get(f"/v1/runs/{paused['run_id']}", headers=headers("viewer")).json()
    assert "conversations" not in plain


def test_a_long_message_is_redacted_before_it_is_cut() -> None:
    """A secret straddling the cut must not leave as a prefix the patterns miss."""
    content = "x" * (MESSAGE_CHARS - 6) + " " + SECRET + " tail"
    state = {"agents": {"a": {"agent": "a", "messages": [{"role": "user", "content": content}]}}}
    (message,) = conversations(state, show_personal=False)[0]["messages"]
    assert "sk-" not in message["content"] and "plantedOPENAI" not in message["content"]
    assert message["content"].endswith("…") and message["content_chars"] > MESSAGE_CHARS


def test_a_long_conversation_keeps_its_newest_messages() -> None:
    messages = [{"role": "user", "content": f"m{i}"} for i in range(CONVERSATION_MESSAGES + 7)]
    state = {"agents": {"a": {"agent": "a", "messages": messages}}}
    (conv,) = conversations(state, show_personal=True)
    assert conv["omitted"] == 7 and len(conv["messages"]) == CONVERSATION_MESSAGES
    assert conv["messages"][0] == {"index": 7, "role": "user", "content": "m7", "content_chars": 2}


def test_decisions_are_listed_oldest_first_with_timeouts_marked() -> None:
    state = {
        "decisions": {
            "b": {"decision": "approved", "actor": "kneo-timeout", "decided_at": "2026-01-02",
                  "metadata": {"auto_continued": True}},
            "a": {"decision": "selected", "selected_option": "retry", "actor": "ann",
                  "decided_at": "2026-01-01"},
        }
    }  # fmt: skip
    shown = decisions(state, show_personal=False)
    assert [(d["wait_key"], d.get("automatic")) for d in shown] == [("a", None), ("b", True)]
    assert shown[0]["selected_option"] == "retry"
