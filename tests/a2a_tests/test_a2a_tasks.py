"""The pure mapping between runs and A2A tasks (``kneo.service.a2a_tasks``), and the API
error mapping (``kneo.service.a2a_bridge.api_error``): every run status, the question of a
paused run, the decision an answer carries, and the refusals that name their field."""

from __future__ import annotations

from typing import Any

import pytest
from a2a.types import a2a_pb2 as pb
from a2a.utils.errors import (
    InternalError,
    InvalidParamsError,
    InvalidRequestError,
    TaskNotFoundError,
)
from google.protobuf.json_format import MessageToDict

from kneo.service import a2a_tasks as t
from kneo.service.a2a_bridge import api_error

REQUEST = {
    "continuation_id": "cont_1",
    "request_id": "req_1",
    "kind": "input",
    "prompt": "Which region?",
    "decisions": ["provided", "rejected"],
    "options": [],
    "input_schema": {"type": "string"},
    "context": {"input_preview": "private words"},
}


def _run(status: str, **fields: Any) -> dict[str, Any]:
    return {"run_id": "run_1", "status": status, "metadata": {"environment": "dev"}, **fields}


def _message(*parts: pb.Part, **fields: Any) -> pb.Message:
    return pb.Message(message_id="m1", role=pb.ROLE_USER, parts=list(parts), **fields)


def _data(value: Any) -> pb.Part:
    part = pb.Part()
    if isinstance(value, dict):
        part.data.struct_value.update(value)
    else:
        part.data.string_value = str(value)
    return part


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("queued", pb.TASK_STATE_SUBMITTED),
        ("running", pb.TASK_STATE_WORKING),
        ("paused", pb.TASK_STATE_INPUT_REQUIRED),
        ("succeeded", pb.TASK_STATE_COMPLETED),
        ("failed", pb.TASK_STATE_FAILED),
        ("expired", pb.TASK_STATE_FAILED),
        ("timed_out", pb.TASK_STATE_FAILED),
        ("cancelled", pb.TASK_STATE_CANCELED),
        ("something-new", pb.TASK_STATE_WORKING),
    ],
)
def test_every_run_status_has_its_task_state(status: str, state: int) -> None:
    task = t.task_of(_run(status), None)
    assert task.status.state == state and task.id == "run_1"
    assert task.metadata["kneo_status"] == status


def test_a_paused_run_asks_its_question_without_its_context() -> None:
    task = t.task_of(_run("paused", metadata={t.CONTEXT_KEY: "ctx-9"}), REQUEST)
    assert task.context_id == "ctx-9"
    prompt, schema = task.status.message.parts
    assert prompt.text == "Which region?"
    data = MessageToDict(schema.data)
    assert data["decisions"] == ["provided", "rejected"] and data["request_id"] == "req_1"
    assert data["input_schema"] == {"type": "string"}
    assert "private words" not in str(task)  # the request's context stays in Kneo


def test_a_finished_run_carries_its_output_or_its_error() -> None:
    done = t.task_of(_run("succeeded", output_text="the note"), None)
    assert [a.parts[0].text for a in done.artifacts] == ["the note"]
    assert not done.HasField("status") or not done.status.HasField("message")
    failed = t.task_of(_run("failed", error={"code": "step_error", "message": "boom"}), None)
    assert failed.status.message.parts[0].text == "step_error: boom" and not failed.artifacts


def test_the_answer_is_the_resume_body() -> None:
    body = t.decision_body(_message(_data({"decision": "rejected"})), REQUEST)
    assert body == {"decision": "rejected", "request_id": "req_1"}
    text = t.decision_body(_message(pb.Part(text="eu-west")), REQUEST)
    assert text == {"decision": "provided", "content": "eu-west", "request_id": "req_1"}
    approval = {**REQUEST, "decisions": ["approved", "rejected"]}
    with pytest.raises(InvalidParamsError) as refused:
        t.decision_body(_message(pb.Part(text="yes")), approval)
    assert refused.value.data == {"field": "message.parts"} and "approved" in refused.value.message
    with pytest.raises(InvalidParamsError, match="one data part"):
        t.decision_body(_message(_data({"decision": "x"}), _data({"decision": "y"})), REQUEST)
    with pytest.raises(InvalidParamsError, match="must be an object"):
        t.decision_body(_message(_data("approved")), REQUEST)


def test_input_and_skill_are_checked_naming_the_field() -> None:
    assert t.input_text(_message(pb.Part(text="a"), _data({"k": 1}))) == 'a\n{"k":1}'
    with pytest.raises(InvalidParamsError) as file_part:
        t.input_text(_message(pb.Part(text="a"), pb.Part(url="https://x.example/f.pdf")))
    assert file_part.value.data == {"field": "message.parts[1]"}
    with pytest.raises(InvalidParamsError, match="needs input"):
        t.input_text(_message())
    assert t.parse_skill("helper@prod") == ("helper", "prod")
    for bad in (None, "helper", "@prod", "helper@", 3):
        with pytest.raises(InvalidParamsError) as skill:
            t.parse_skill(bad)
        assert skill.value.data == {"field": "message.metadata.skill"}


def test_api_errors_become_a2a_errors_with_the_kneo_code() -> None:
    body = {"error": "forbidden", "message": "needs human:write"}
    refused = api_error(403, body)
    assert isinstance(refused, InvalidRequestError)
    assert refused.data == {"error": "forbidden", "status": "403"}
    assert isinstance(api_error(404, {"error": "not_found"}, missing="run_1"), TaskNotFoundError)
    invalid = api_error(422, {"error": "validation_failed", "field": "decision"})
    assert isinstance(invalid, InvalidParamsError) and invalid.data["field"] == "decision"
    assert isinstance(api_error(503, "not json"), InternalError)


def test_a_task_state_is_the_run_statuses_it_stands_for() -> None:
    assert t.run_statuses(pb.TASK_STATE_FAILED) == ["failed", "expired", "timed_out"]
    assert t.run_statuses(pb.TASK_STATE_INPUT_REQUIRED) == ["paused"]
    for never in (pb.TASK_STATE_REJECTED, pb.TASK_STATE_AUTH_REQUIRED, 99):
        with pytest.raises(InvalidParamsError) as refused:
            t.run_statuses(never)
        assert refused.value.data == {"field": "status"}


def test_a_context_is_the_messages_or_one_a_retry_finds_again() -> None:
    given = _message(pb.Part(text="x"), context_id="ctx-1")
    assert t.context_for(given, "agent") == "ctx-1"
    derived = t.context_for(_message(pb.Part(text="x")), "agent")
    assert derived == t.context_for(_message(pb.Part(text="x")), "agent")  # a retry's
    assert derived != t.context_for(_message(pb.Part(text="x")), "other")  # another caller's
    with pytest.raises(InvalidParamsError) as bad:
        t.context_for(_message(pb.Part(text="x"), context_id="has space"), "agent")
    assert bad.value.data == {"field": "message.contextId"}
    assert t.context_of(_run("paused", session_id="ctx-2")) == "ctx-2"
    assert t.context_of(_run("paused")) == "run_1"


def test_history_is_the_input_then_each_question_and_its_answer() -> None:
    run = _run(
        "paused",
        input_text="write it",
        updated_at="2026-11-25T10:00:00Z",
        metadata={t.MESSAGE_KEY: "m-start"},
    )
    decided = {
        **REQUEST,
        "status": "resolved",
        "decision": "provided",
        "content": "eu-west",
        "decided_by": "agent",
    }
    later = {**REQUEST, "request_id": "req_2", "prompt": "And then?", "status": "pending"}
    tasks = [{"continuation_id": "cont_1", "requests": [decided]}, {"requests": [later]}]
    messages = t.history(run, tasks, 10)
    assert [(m.role, m.message_id) for m in messages] == [
        (pb.ROLE_USER, "m-start"),
        (pb.ROLE_AGENT, "run_1:req_1"),
        (pb.ROLE_USER, "run_1:req_1:answer"),
    ]
    assert messages[0].parts[0].text == "write it"
    assert messages[1].parts[0].text == "Which region?"
    answer = MessageToDict(messages[2].parts[0].data)
    assert answer == {
        "request_id": "req_1",
        "decision": "provided",
        "content": "eu-west",
        "decided_by": "agent",
    }
    assert t.history(run, tasks, 1) == messages[-1:] and t.history(run, tasks, 0) == []
    assert t.pending_of(run, tasks[1]) == {**later, "continuation_id": None}
    task = t.task_of(run, None)
    assert task.status.timestamp.ToJsonString() == "2026-11-25T10:00:00Z"


def test_a_task_reports_the_runs_tokens_in_its_metadata() -> None:
    """A caller's ``token_budget`` reads them (A2A has no usage field of its own)."""
    usage = {"model_calls": 2, "input_tokens": 120, "output_tokens": 30, "tool_calls": 1}
    task = t.task_of(_run("succeeded", usage=usage), None)
    assert dict(task.metadata["usage"]) == {"input_tokens": 120, "output_tokens": 30}
    assert "usage" not in t.task_of(_run("running", usage={"input_tokens": 0}), None).metadata
