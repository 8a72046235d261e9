"""What a person deciding on a task sees around it: the run's input, the agents'
conversations up to the pause, where the run is in its workflow, the decisions taken so far
and, per request, the agent's own words for it (the model's message that made the tool
call) or, for an output review, the output next to what produced it.

Everything comes from the run's execution state (transcripts, units, decisions), which is
stored unredacted because the run resumes from it; this module is where it leaves, so every
text is redacted by the reader's scopes (:mod:`kneo.redaction`) *before* it is cut to its
display length (a cut never splits a secret into a part the patterns no longer match).
Pure: the caller reads the run, its requests and its compiled workflow.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from kneo.lifecycle import TaskStatus, request_status
from kneo.redaction import redact, redact_text
from kneo.spec.compiled import CompiledWorkflow
from kneo.store import RunRecord

#: Characters of one message (or tool result, or decision comment) shown; the rest is cut
#: and ``content_chars`` says how long it was.
MESSAGE_CHARS = 4000
#: Characters of the run's input shown.
INPUT_CHARS = 20_000
#: Newest messages shown per conversation (``omitted`` counts the older ones left out).
CONVERSATION_MESSAGES = 200
#: The unit a wait belongs to, from its key (``kneo.engine.gates``, ``kneo.engine.agent``):
#: ``<unit>:review:<n>``, ``<unit>:tool:<call id>``, ...
_WAIT = re.compile(
    r"^(?P<unit>.+):(?:review:\d+|confirm:\d+|input|iteration|tool:.+|tool_input:.+|external:.+)$"
)
_DONE = ("completed", "continued", "skipped")


def _text(value: object, show_personal: bool, limit: int = MESSAGE_CHARS) -> tuple[str, int]:
    """``value`` as text, redacted, then cut to ``limit``; and its redacted length."""
    text = redact_text(str(value), show_personal=show_personal)
    return (text if len(text) <= limit else text[:limit] + "…"), len(text)


def _message(index: int, message: Mapping[str, Any], show_personal: bool) -> dict[str, Any]:
    """One transcript message as shown: role, content, tool calls, the call it answers."""
    out: dict[str, Any] = {"index": index, "role": message.get("role")}
    content = message.get("content")
    if content:
        out["content"], out["content_chars"] = _text(content, show_personal)
    calls = message.get("tool_calls") or []
    if calls:
        out["tool_calls"] = [
            {
                "id": c.get("id"),
                "name": c.get("name"),
                "arguments": redact(c.get("arguments") or {}, show_personal=show_personal),
            }
            for c in calls
        ]
    if message.get("tool_call_id") is not None:
        out["tool_call_id"] = message["tool_call_id"]
        out["name"] = message.get("name")
    return out


def _agent_units(state: Mapping[str, Any]) -> list[str]:
    """Agent unit keys in the order they ran: finished ones as they finished, then those
    still running (the one paused mid-loop among them)."""
    agents = state.get("agents") or {}
    order = [k for k in state.get("order") or [] if k in agents]
    return order + [k for k in agents if k not in order]


def _step_of(state: Mapping[str, Any], unit: str) -> str:
    found = ((state.get("units") or {}).get(unit) or {}).get("step_id")
    return str(found) if found else unit


def conversations(state: Mapping[str, Any], *, show_personal: bool) -> list[dict[str, Any]]:
    """Every agent unit's transcript (system, user, assistant and tool messages) up to now,
    newest :data:`CONVERSATION_MESSAGES` of each, redacted for the reader."""
    agents = state.get("agents") or {}
    out = []
    for unit in _agent_units(state):
        record = agents[unit]
        messages = list(record.get("messages") or [])
        first = max(0, len(messages) - CONVERSATION_MESSAGES)
        out.append(
            {
                "unit": unit,
                "step_id": _step_of(state, unit),
                "agent": record.get("agent"),
                "turns": record.get("turns", 0),
                "finished": record.get("final") is not None,
                "omitted": first,
                "messages": [
                    _message(i, m, show_personal)
                    for i, m in enumerate(messages[first:], start=first)
                ],
            }
        )
    return out


def decisions(state: Mapping[str, Any], *, show_personal: bool) -> list[dict[str, Any]]:
    """The decisions recorded on the run so far (people's and timeouts'), oldest first."""
    out = []
    for wait_key, d in (state.get("decisions") or {}).items():
        shown: dict[str, Any] = {
            "wait_key": wait_key,
            "request_id": d.get("request_id"),
            "decision": d.get("decision"),
            "decided_by": d.get("actor"),
            "decided_at": d.get("decided_at"),
        }
        if d.get("selected_option") is not None:
            shown["selected_option"] = d["selected_option"]
        if d.get("content"):
            shown["content"], shown["content_chars"] = _text(d["content"], show_personal)
        metadata = d.get("metadata") or {}
        if metadata.get("auto_continued"):
            shown["automatic"] = True
        if metadata:  # what the decider sent with it (a timeout's: why it decided)
            shown["metadata"] = redact(dict(metadata), show_personal=show_personal)
        out.append(shown)
    return sorted(out, key=lambda d: str(d.get("decided_at") or ""))


def position(
    state: Mapping[str, Any], workflow: CompiledWorkflow | None, waiting: Iterable[str]
) -> dict[str, Any]:
    """Where the run is: each step of the workflow (or, without it, each step seen) with
    ``done``, ``skipped``, ``waiting`` (a request is pending there) or ``not_reached`` and
    its visits, and the steps in the order they finished."""
    units = state.get("units") or {}
    visited = [units[k]["step_id"] for k in state.get("order") or [] if k in units]
    waiting = list(dict.fromkeys(waiting))
    steps: Sequence[tuple[str, str | None]] = (
        [(s.id, s.kind) for s in workflow.steps]
        if workflow is not None
        else [(s, None) for s in dict.fromkeys([*visited, *waiting])]
    )
    last: dict[str, str] = {}
    for key in state.get("order") or []:
        unit = units.get(key) or {}
        if unit.get("step_id"):
            last[unit["step_id"]] = str(unit.get("status"))
    shown = []
    for step_id, kind in steps:
        status = "not_reached"
        if step_id in waiting:
            status = "waiting"
        elif step_id in last:
            status = "skipped" if last[step_id] == "skipped" else "done"
        shown.append(
            {"step_id": step_id, "kind": kind, "status": status, "visits": visited.count(step_id)}
        )
    return {
        "family": workflow.family if workflow is not None else None,
        "steps": shown,
        "visited": visited,
    }


def _unit_of(request: Mapping[str, Any], state: Mapping[str, Any]) -> str | None:
    """The unit a request pauses: named in its wait key, else its step's own unit."""
    found = _WAIT.match(str(request.get("wait_key") or ""))
    if found:
        return found.group("unit")
    step = request.get("step_id")
    units, agents = state.get("units") or {}, state.get("agents") or {}
    return str(step) if step and (step in units or step in agents) else None


def _calling_message(
    state: Mapping[str, Any], call_id: str, preferred: str | None
) -> tuple[str, int, Mapping[str, Any]] | None:
    """The unit, index and assistant message that made tool call ``call_id`` (call ids
    are unique within a transcript; the request's own unit is searched first)."""
    agents = state.get("agents") or {}
    units = _agent_units(state)
    if preferred in agents:
        units = [preferred, *(u for u in units if u != preferred)]  # type: ignore[list-item]
    for unit in units:
        for index, message in enumerate(agents[unit].get("messages") or []):
            if message.get("role") == "assistant" and any(
                c.get("id") == call_id for c in message.get("tool_calls") or []
            ):
                return unit, index, message
    return None


def _previous_output(state: Mapping[str, Any], unit: str | None) -> str:
    """The output of the unit that finished last before ``unit`` (a sequential step's
    input), or the run's input when none did."""
    units = state.get("units") or {}
    order = [k for k in state.get("order") or [] if k in units and k != unit]
    outputs = [units[k].get("output") for k in order if units[k].get("output") is not None]
    return str(outputs[-1]) if outputs else str(state.get("input_text") or "")


def _produced_by(
    state: Mapping[str, Any],
    request: Mapping[str, Any],
    unit: str | None,
    workflow: CompiledWorkflow | None,
    show_personal: bool,
) -> dict[str, Any]:
    """An output review's producer: the step, what runs it, and the input it was given."""
    step_id = str(request.get("step_id") or "")
    shown: dict[str, Any] = {"step_id": step_id, "unit": unit}
    if workflow is not None and step_id in workflow.step_ids:
        step = workflow.step(step_id)
        shown["kind"] = step.kind
        shown["ref"] = step.function_ref or step.ref
    if unit in (state.get("agents") or {}):
        shown["conversation_unit"] = unit  # the agent's transcript is in ``conversations``
    shown["input"], shown["input_chars"] = _text(
        _previous_output(state, unit), show_personal, INPUT_CHARS
    )
    return shown


def request_context(
    request: Mapping[str, Any],
    state: Mapping[str, Any],
    workflow: CompiledWorkflow | None,
    *,
    show_personal: bool,
) -> dict[str, Any]:
    """What is particular to one request: the unit it pauses; for a tool call the model's
    message that made it (``agent_message``, ``None`` when the model gave no words) and its
    place in the transcript; for an output review the output and what produced it."""
    unit = _unit_of(request, state)
    shown: dict[str, Any] = {"request_id": request.get("request_id"), "unit": unit}
    call_id = (request.get("context") or {}).get("tool_call_id")
    if call_id:
        found = _calling_message(state, str(call_id), unit)
        if found is not None:
            unit, index, message = found
            words = message.get("content")
            shown["unit"], shown["message_index"] = unit, index
            shown["agent_message"] = _text(words, show_personal)[0] if words else None
    if request.get("kind") in ("review", "iteration"):
        units = state.get("units") or {}
        output = (units.get(unit) or {}).get("output") if unit else None
        if output is None:
            output = (request.get("context") or {}).get("output_preview")
        shown["output"], shown["output_chars"] = _text(output or "", show_personal, INPUT_CHARS)
        shown["produced_by"] = _produced_by(state, request, unit, workflow, show_personal)
    return shown


def task_context(
    run: RunRecord,
    requests: Sequence[Mapping[str, Any]],
    workflow: CompiledWorkflow | None,
    *,
    show_personal: bool,
) -> dict[str, Any]:
    """The context of a task's ``requests`` (full, unredacted request dicts) in ``run``:
    ``run`` (input and labels), ``position``, ``conversations``, ``decisions`` and
    ``requests`` (:func:`request_context` of each), redacted for the reader."""
    state = run.state or {}
    waiting = [str(r.get("step_id")) for r in requests if request_status(r) is TaskStatus.PENDING]
    text, chars = _text(run.input_text or "", show_personal, INPUT_CHARS)
    return {
        "run": {
            "run_id": run.run_id,
            "status": run.status,
            "workflow_name": run.workflow_name,
            "workflow_kind": run.workflow_kind,
            "environment": run.environment,
            "input_text": text,
            "input_chars": chars,
        },
        "position": position(state, workflow, waiting),
        "conversations": conversations(state, show_personal=show_personal),
        "decisions": decisions(state, show_personal=show_personal),
        "requests": [
            request_context(r, state, workflow, show_personal=show_personal) for r in requests
        ],
    }
