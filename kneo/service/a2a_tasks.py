"""A2A tasks from Kneo runs, and Kneo requests from A2A messages (pure: no I/O).

An A2A task *is* a run: the task id is the run id, and the task's state follows the run's
status (:data:`TASK_STATES`). A run paused for a person is ``input-required``; its status
message carries the pending request's prompt as text and the request's schema (kind, the
decisions it accepts, options, input schema) as data, so a calling agent knows how to
answer. The answer is a message on the same task whose data part is a decision, exactly the
body of ``POST /v1/human-tasks/{id}/resume``.
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from a2a.types import a2a_pb2 as pb
from a2a.utils.errors import InvalidParamsError
from google.protobuf.json_format import MessageToDict

#: Run status -> A2A task state. Statuses not listed (a run the service has not classified
#: yet) read as ``working``: the run is not finished and nobody is asked.
TASK_STATES: dict[str, int] = {
    "queued": pb.TASK_STATE_SUBMITTED,
    "running": pb.TASK_STATE_WORKING,
    "paused": pb.TASK_STATE_INPUT_REQUIRED,
    "succeeded": pb.TASK_STATE_COMPLETED,
    "failed": pb.TASK_STATE_FAILED,
    "expired": pb.TASK_STATE_FAILED,
    "timed_out": pb.TASK_STATE_FAILED,
    "cancelled": pb.TASK_STATE_CANCELED,
}
#: States after which a task never changes again.
FINAL_STATES = frozenset({pb.TASK_STATE_COMPLETED, pb.TASK_STATE_FAILED, pb.TASK_STATE_CANCELED})
#: Where a message names the skill (``bundle@environment``) a new task runs.
SKILL_KEY = "skill"
#: The run metadata key of the A2A context id of tasks started before contexts were runs'
#: sessions (a new task's context is its run's ``session_id``).
CONTEXT_KEY = "a2a_context_id"
#: The run metadata key holding the ``messageId`` of the message that started the task.
MESSAGE_KEY = "a2a_message_id"
#: What a context id must look like to be a run's session (``POST /v1/runs`` session_id).
CONTEXT_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")
#: The most history messages a task carries when the request sets no ``historyLength``.
MAX_HISTORY = 100
#: The fields of a decision a data part may carry (the resume body's, less ``metadata``).
DECISION_FIELDS = ("request_id", "decision", "content", "selected_option")


def task_state(status: str) -> int:
    """The A2A state of a run in ``status``."""
    return TASK_STATES.get(status, pb.TASK_STATE_WORKING)


def run_statuses(state: int) -> list[str]:
    """The run statuses an A2A task ``state`` stands for (``ListTasks``' status filter); an
    ``InvalidParamsError`` naming the field for a state no run is ever in."""
    statuses = [status for status, mapped in TASK_STATES.items() if mapped == state]
    if not statuses:
        name = pb.TaskState.Name(state) if state in pb.TaskState.values() else str(state)
        raise InvalidParamsError(
            f"status {name} is not a state a Kneo task takes (those are "
            f"{', '.join(sorted({pb.TaskState.Name(s) for s in TASK_STATES.values()}))})",
            data={"field": "status"},
        )
    return statuses


def context_for(message: pb.Message, caller: str) -> str:
    """The context id of a new task: the message's (it must be a valid session id: it
    becomes the run's), else one derived from the caller and the ``messageId``, so a
    retried message names the same context and replays."""
    if not message.context_id:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"kneo-a2a:{caller}:{message.message_id}"))
    if not CONTEXT_PATTERN.match(message.context_id):
        raise InvalidParamsError(
            "message.contextId must be up to 128 letters, digits and . _ : @ -, starting with "
            "a letter or digit (it is the task's run session)",
            data={"field": "message.contextId"},
        )
    return message.context_id


def skill_id(bundle: str, environment: str) -> str:
    """A skill's id on the card: the bundle and the environment it runs in."""
    return f"{bundle}@{environment}"


def parse_skill(value: Any) -> tuple[str, str]:
    """``(bundle, environment)`` of a skill id; an ``InvalidParamsError`` naming the field
    when it is not ``bundle@environment``."""
    bundle, at, environment = str(value or "").partition("@")
    if not (isinstance(value, str) and at and bundle and environment):
        raise InvalidParamsError(
            f"message.metadata.{SKILL_KEY} must be a skill id of the agent card "
            f"(bundle@environment), got {value!r}",
            data={"field": f"message.metadata.{SKILL_KEY}"},
        )
    return bundle, environment


def input_text(message: pb.Message) -> str:
    """A new run's input: the message's text parts, data parts as JSON, one per line."""
    lines: list[str] = []
    for index, part in enumerate(message.parts):
        kind = part.WhichOneof("content")
        if kind == "text":
            lines.append(part.text)
        elif kind == "data":
            lines.append(json.dumps(_plain(part.data), separators=(",", ":"), sort_keys=True))
        else:
            raise InvalidParamsError(
                f"message.parts[{index}] is a {kind or 'empty'} part: a Kneo run takes "
                "text and data parts",
                data={"field": f"message.parts[{index}]"},
            )
    if not lines:
        raise InvalidParamsError(
            "message.parts is empty: a run needs input", data={"field": "message.parts"}
        )
    return "\n".join(lines)


def decision_body(message: pb.Message, pending: Mapping[str, Any] | None) -> dict[str, Any]:
    """The resume body a message answers an ``input-required`` task with: its one data part
    (``request_id`` defaults to the pending request's), or a text-only message as
    ``provided`` content where the pending request accepts that."""
    data = [p for p in message.parts if p.WhichOneof("content") == "data"]
    if len(data) > 1:
        raise InvalidParamsError(
            "an answer carries one data part (the decision)", data={"field": "message.parts"}
        )
    if data:
        body = _plain(data[0].data)
        if not isinstance(body, dict):
            raise InvalidParamsError(
                "the answer's data part must be an object with decision and request_id",
                data={"field": "message.parts.data"},
            )
    else:
        text = "\n".join(p.text for p in message.parts if p.WhichOneof("content") == "text")
        accepted = (pending or {}).get("decisions") or []
        if not text or "provided" not in accepted:
            raise InvalidParamsError(
                "the answer needs a data part {decision, request_id, content?, "
                f"selected_option?}}; the pending request accepts {', '.join(accepted)}",
                data={"field": "message.parts"},
            )
        body = {"decision": "provided", "content": text}
    if "request_id" not in body and pending is not None:
        body["request_id"] = pending.get("request_id")
    return body


def _plain(value: Any) -> Any:
    """A protobuf ``Value``/``Struct`` as plain Python (a protobuf number is a double: a
    whole one is an ``int`` again, as the caller wrote it in JSON)."""
    return _whole(MessageToDict(value)) if value is not None else None


def _whole(value: object) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _whole(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_whole(v) for v in value]
    return value


def _request_data(request: Mapping[str, Any]) -> dict[str, Any]:
    """What a calling agent needs to answer: the request's schema, never its context."""
    return {
        "continuation_id": request.get("continuation_id"),
        "request_id": request.get("request_id"),
        "kind": request.get("kind"),
        "decisions": list(request.get("decisions") or []),
        "options": list(request.get("options") or []),
        "input_schema": request.get("input_schema"),
        "step_id": request.get("step_id"),
        "expires_at": request.get("expires_at"),
    }


def status_message(
    run: Mapping[str, Any], request: Mapping[str, Any] | None, context_id: str
) -> pb.Message | None:
    """The agent's message of a task's status: the pending request (prompt and schema)
    while ``input-required``, the error of a failed run, else none."""
    run_id = str(run["run_id"])
    if run.get("status") == "paused" and request is not None:
        return _agent_question(run_id, context_id, request)
    if task_state(str(run.get("status"))) != pb.TASK_STATE_FAILED:
        return None
    error = run.get("error")
    why = dict(error) if isinstance(error, Mapping) else {}
    reason, text = why.get("code") or run.get("status"), why.get("message")
    return pb.Message(
        message_id=f"{run_id}:{run.get('status')}",
        context_id=context_id,
        task_id=run_id,
        role=pb.ROLE_AGENT,
        parts=[pb.Part(text=f"{reason}: {text or 'the run stopped'}")],
    )


def artifacts(run: Mapping[str, Any]) -> list[pb.Artifact]:
    """A completed run's output as the task's one artifact."""
    if run.get("status") != "succeeded" or run.get("output_text") is None:
        return []
    return [
        pb.Artifact(
            artifact_id=f"{run['run_id']}:output",
            name="output",
            parts=[pb.Part(text=str(run["output_text"]))],
        )
    ]


def context_of(run: Mapping[str, Any]) -> str:
    """The task's context id: its run's session, else the run id."""
    metadata = run.get("metadata") or {}
    given = metadata.get(CONTEXT_KEY) if isinstance(metadata, Mapping) else None
    session = run.get("session_id") or (
        metadata.get("session_id") if isinstance(metadata, Mapping) else None
    )
    return str(given or session or run["run_id"])


def pending_of(run: Mapping[str, Any], human_task: Mapping[str, Any]) -> dict[str, Any] | None:
    """The pending request of a paused run's human task (with its ``continuation_id``), or
    ``None``."""
    pending = [r for r in human_task.get("requests") or [] if r.get("status") == "pending"]
    if run.get("status") != "paused" or not pending:
        return None
    return {**pending[0], "continuation_id": human_task.get("continuation_id")}


def _agent_question(run_id: str, context_id: str, request: Mapping[str, Any]) -> pb.Message:
    parts = [pb.Part(text=str(request.get("prompt") or "")), pb.Part()]
    parts[1].data.struct_value.update(_request_data(request))
    parts[1].media_type = "application/json"
    return pb.Message(
        message_id=f"{run_id}:{request.get('request_id')}",
        context_id=context_id,
        task_id=run_id,
        role=pb.ROLE_AGENT,
        parts=parts,
    )


def _answer(run_id: str, context_id: str, request: Mapping[str, Any]) -> pb.Message:
    part = pb.Part()
    fields = ("request_id", "decision", "content", "selected_option", "decided_by", "decided_at")
    part.data.struct_value.update({f: request[f] for f in fields if request.get(f) is not None})
    part.media_type = "application/json"
    return pb.Message(
        message_id=f"{run_id}:{request.get('request_id')}:answer",
        context_id=context_id,
        task_id=run_id,
        role=pb.ROLE_USER,
        parts=[part],
    )


def history(
    run: Mapping[str, Any], human_tasks: Sequence[Mapping[str, Any]], limit: int
) -> list[pb.Message]:
    """The task's last ``limit`` messages, oldest first: the message that started it (the
    run's input), then each question it asked (a request of its human tasks, in order) and
    the answer it got. The question still pending is the status message, not history."""
    if limit <= 0:
        return []
    run_id, context_id = str(run["run_id"]), context_of(run)
    metadata = run.get("metadata") or {}
    first = metadata.get(MESSAGE_KEY) if isinstance(metadata, Mapping) else None
    messages = [
        pb.Message(
            message_id=str(first or f"{run_id}:input"),
            context_id=context_id,
            task_id=run_id,
            role=pb.ROLE_USER,
            parts=[pb.Part(text=str(run.get("input_text") or ""))],
        )
    ]
    for human_task in human_tasks:
        for request in human_task.get("requests") or []:
            if request.get("status") == "pending":
                continue
            messages.append(_agent_question(run_id, context_id, request))
            if request.get("decision") is not None:
                messages.append(_answer(run_id, context_id, request))
    return messages[-limit:]


def task_of(run: Mapping[str, Any], request: Mapping[str, Any] | None) -> pb.Task:
    """The A2A task of ``run`` (as ``GET /v1/runs/{id}`` answers) and its pending request
    (one of ``GET /v1/human-tasks/{id}``'s ``requests``, with its ``continuation_id``)."""
    context_id = context_of(run)
    status = pb.TaskStatus(state=task_state(str(run.get("status"))))  # type: ignore[arg-type]
    if run.get("updated_at"):
        with contextlib.suppress(ValueError):
            status.timestamp.FromJsonString(str(run["updated_at"]))
    message = status_message(run, request, context_id)
    if message is not None:
        status.message.CopyFrom(message)
    task = pb.Task(
        id=str(run["run_id"]), context_id=context_id, status=status, artifacts=artifacts(run)
    )
    task.metadata.update(
        {
            "kneo_status": str(run.get("status")),
            "environment": str((run.get("metadata") or {}).get("environment") or ""),
        }
    )
    usage = run.get("usage")
    if isinstance(usage, Mapping) and (usage.get("input_tokens") or usage.get("output_tokens")):
        # the tokens the run used so far, for a caller's token_budget (A2A has no field)
        tokens = {k: int(usage.get(k) or 0) for k in ("input_tokens", "output_tokens")}
        task.metadata.update({"usage": tokens})
    return task


__all__ = [
    "CONTEXT_KEY",
    "DECISION_FIELDS",
    "FINAL_STATES",
    "MAX_HISTORY",
    "MESSAGE_KEY",
    "SKILL_KEY",
    "TASK_STATES",
    "artifacts",
    "context_for",
    "context_of",
    "decision_body",
    "history",
    "input_text",
    "parse_skill",
    "pending_of",
    "run_statuses",
    "skill_id",
    "status_message",
    "task_of",
    "task_state",
]
