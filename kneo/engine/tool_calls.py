"""One agent turn's tool calls: planned, put to people together, carried out one by one.

Every tool call of a model turn is answered, in the model's order and each under its own id,
before the next model request. First every call is *planned* (pure: the guard's checks, the
middleware, and the decisions recorded so far); the people the turn's calls still need
(approvals, argument input, external results, questions) are asked together, as one human
task, before any call of the turn runs. Then each call runs and its result is committed
before the next one starts, so a crash or resume never runs a call whose result is recorded.

Every tool call goes through the :class:`~kneo.engine.tool_guard.ToolGuard` (selection,
policy, JSON Schema); a denied call emits ``tool_policy_denied`` and the model receives the
refusal as the tool result. Tools
listed in ``approval_required`` (or with ``requires_approval``) pause for a person — after the
guard, so a refused call is never put to anyone; approved runs once, edited runs with the
edited arguments (checked again), rejected returns a refusal to the model. The built-in
``ask_question`` tool pauses with the question and returns the answer as the tool result.
Tools in ``tool_input`` pause for a person to provide flagged or missing arguments (after
the policy check, before the schema check); an ``external`` tool pauses for the caller to
run it and provide the result.

Also here: the step's tools as the guard sees them (:func:`step_registry`) and what a step
records of its calls (:class:`AgentOptions`). The model side of a turn is
:mod:`kneo.engine.agent`'s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from kneo.documents import DocumentError, parse_json
from kneo.engine.agent_seam import AgentHost
from kneo.engine.budget_checks import within_budget
from kneo.engine.human import QUESTION_TOOL, HumanRequest, question_wait_key
from kneo.engine.middleware import MiddlewareChain
from kneo.engine.providers.base import ChatMessage, ToolCall
from kneo.engine.tool_guard import ToolGuard, ToolOutcome, describe_for_trace
from kneo.kernel import resolve_callable
from kneo.redaction import redact
from kneo.spec.compiled import CompiledStep
from kneo.tools import ToolDefinition, ToolHandler, ToolRegistry

__all__ = ["AgentOptions", "ToolTurn", "run_tools", "step_registry", "unanswered_calls"]

#: Unit keys of concurrent branches (``kneo.engine.families``): their ``ask_question`` waits
#: are named per branch, since branches run (and finish) in no fixed order.
_BRANCH_PREFIX = "branch:"


@dataclass(frozen=True)
class AgentOptions:
    """What an agent step records of its tool calls."""

    record_arguments: bool = False
    record_results: bool = False


@dataclass(frozen=True)
class ToolTurn:
    """What every tool call of one agent turn is checked and run with."""

    guard: ToolGuard
    chain: MiddlewareChain
    step: CompiledStep
    approval: set[str]
    tool_input: dict[str, list[str]]
    options: AgentOptions


@dataclass(frozen=True)
class _Planned:
    """What one tool call of a turn comes to once every person it needs has answered."""

    call: ToolCall
    #: the model's result without running the tool (a refusal, a person's answer, a result
    #: the caller provided); ``None``: run the tool
    outcome: ToolOutcome | None = None
    #: the trace event that reports ``outcome`` (``None``: none)
    event: str | None = None
    external: bool = False


class _Asks:
    """The requests the calls of one turn still need from people, gathered for one pause."""

    def __init__(self, host: AgentHost) -> None:
        self.host = host
        self.requests: list[HumanRequest] = []

    def decided(self, *, wait_key: str, **request: Any) -> dict[str, Any] | None:
        """The decision recorded under ``wait_key``; without one a request of ``request``'s
        fields joins the pause (made only then)."""
        decision = self.host.decision(wait_key)
        if decision is None:
            self.requests.append(self.host.new_request(wait_key=wait_key, **request))
        return decision


def run_tools(
    host: AgentHost, turn: ToolTurn, calls: list[ToolCall], record: dict[str, Any]
) -> None:
    """The unanswered calls of the last model turn, in the model's order.

    First every call is planned (pure: the guard's checks and the decisions recorded so
    far); the requests the calls still need from people are gathered into one pause, so
    a turn with two approvals is one human task, and nothing of the turn runs until
    every request is decided. Then each call runs and its result is committed before the
    next one starts: a crash or resume never runs a call whose result is recorded.
    """
    asks = _Asks(host)
    plans = [_plan(asks, turn, call, record) for call in calls]
    if asks.requests:
        host.pause(asks.requests)
    for plan in plans:
        assert plan is not None  # every call without a plan asked for something
        within_budget(host, ("tool_calls",))
        _carry_out(host, turn, plan, record)


def _plan(asks: _Asks, turn: ToolTurn, call: ToolCall, record: dict[str, Any]) -> _Planned | None:
    """What ``call`` comes to, or ``None`` while a person's answer is missing (asked for
    in ``asks``). Policy and schema first: a call the guard refuses is never put to a
    person. A tool whose arguments a person completes is checked against its policy
    first, then in full once the person's values are in. The middleware refuses after
    the guard, before anyone is asked."""
    guard, approval, tool_input = turn.guard, turn.approval, turn.tool_input
    refusal = guard.check(call, arguments=call.name not in tool_input)
    if refusal is None and call.name in tool_input:
        completed = _tool_input(asks, guard.definition(call.name), call, tool_input[call.name])
        if completed is None:
            return None
        call, refusal = completed, guard.check(completed)
    if refusal is None and (why := turn.chain.tool_call(call)) is not None:
        refusal = ToolOutcome("denied", f"Tool call refused by middleware: {why}.", why)
    if refusal is not None:
        event = "tool_policy_denied" if refusal.status == "denied" else "tool_call_invalid"
        return _Planned(call, refusal, event)
    if call.name == QUESTION_TOOL:
        answer = _question(asks, call, record)
        return None if answer is None else _Planned(call, ToolOutcome("ok", answer, None))
    definition = guard.definition(call.name)
    if definition.external:
        outcome = _external(asks, definition, call)
        if outcome is None:
            return None
        return _Planned(call, outcome, "tool_call_completed", external=True)
    if call.name in approval:
        decided = _approval(asks, call, guard.parameters(call.name))
        if decided is None:
            return None
        call, refusal = decided
        if refusal is None:
            refusal = guard.check(call)  # edited arguments pass the same checks
        if refusal is not None:
            return _Planned(call, refusal, "tool_call_rejected")
    return _Planned(call)


def _carry_out(host: AgentHost, turn: ToolTurn, plan: _Planned, record: dict[str, Any]) -> None:
    """Run a planned call (or take its decided outcome), trace it, commit its result. A
    call an agent answers runs that agent as a unit of its own (``<unit>/<tool>#<n>``,
    the n-th result of this unit), so a pause inside it resumes there and its finished turns never run again."""
    opts = turn.options
    call, outcome, event = plan.call, plan.outcome, plan.event
    if outcome is None:
        host.emit(
            "tool_call_started",
            describe_for_trace(
                call,
                record_arguments=opts.record_arguments,
                mcp_server=turn.guard.mcp_server(call.name),
            ),
        )
        delegate = turn.step.delegate(call.name)
        if delegate is not None:  # keyed by the results recorded before it: stable
            with host.lock:
                key = f"{host.unit_key}/{call.name}#{record.get('tool_calls', 0) + 1}"
            answer = host.delegate(key, delegate, str(call.arguments.get("input") or ""))
            outcome = ToolOutcome("ok", answer, None)
        else:
            outcome = turn.guard.execute(call)
        event = "tool_call_completed"
    if event == "tool_call_completed":
        outcome = replace(outcome, content=turn.chain.tool_result(call.name, outcome.content))
    if event is not None:
        data = describe_for_trace(
            call,
            outcome,
            record_arguments=opts.record_arguments,
            record_results=opts.record_results and event == "tool_call_completed",
        )
        host.emit(event, {**data, "external": True} if plan.external else data)
    with host.lock:
        record["messages"].append(
            ChatMessage("tool", outcome.content, tool_call_id=call.id, name=call.name).to_dict()
        )
        record["tool_calls"] = record.get("tool_calls", 0) + 1
    host.commit("tool_result")


def _question(asks: _Asks, call: ToolCall, record: dict[str, Any]) -> str | None:
    """``ask_question``: the recorded answer under the wait's stable name (``None``:
    asked)."""
    host = asks.host
    question = str(call.arguments.get("question") or "").strip() or "(no question given)"
    if _BRANCH_PREFIX in host.unit_key:  # a branch, or a unit inside one
        with host.lock:
            mine = [
                c.get("id", "")
                for m in record.get("messages") or []
                for c in m.get("tool_calls") or []
                if c.get("name") == QUESTION_TOOL
            ]
        index = mine.index(call.id) + 1 if call.id in mine else len(mine) + 1
        wait_key = question_wait_key(index, question, unit_key=host.unit_key)
    else:
        wait_key = question_wait_key(host.question_index(call.id), question)
    decision = asks.decided(
        kind="question",
        wait_key=wait_key,
        prompt=question,
        decisions=("provided",),
        context={"tool_call_id": call.id, "wait_name": wait_key},
        metadata={"wait_name": wait_key},
    )
    if decision is None:
        return None
    answer = decision.get("content")
    return str(answer) if answer is not None else ""


def _tool_input(
    asks: _Asks, definition: ToolDefinition, call: ToolCall, flagged: list[str]
) -> ToolCall | None:
    """The call with the argument values a person provided: the ``flagged`` ones and any
    required ones the model left out, validated against the tool's schema (the request's
    ``input_schema``); the model's proposal is shown in the request's context."""
    schema = dict(definition.parameters)
    missing = [n for n in schema.get("required") or [] if n not in call.arguments]
    fields = list(dict.fromkeys([*flagged, *missing]))
    if not fields:
        return call
    properties = schema.get("properties") or {}
    decision = asks.decided(
        kind="tool_input",
        wait_key=f"{asks.host.unit_key}:tool_input:{call.id}",
        prompt=f"Provide {', '.join(fields)} for the call to tool '{call.name}'.",
        input_schema={
            "type": "object",
            "properties": {f: properties.get(f, {}) for f in fields},
            "required": fields,
            "additionalProperties": False,
        },
        decisions=("provided",),
        context={
            "tool_name": call.name,
            "tool_call_id": call.id,
            "arguments": redact(dict(call.arguments)),
            "fields": fields,
        },
    )
    if decision is None:
        return None
    # validated against input_schema when the decision was made
    values = parse_json(decision.get("content") or "{}", source="tool input")
    return ToolCall(id=call.id, name=call.name, arguments={**call.arguments, **values})


def _external(asks: _Asks, definition: ToolDefinition, call: ToolCall) -> ToolOutcome | None:
    """An ``external`` tool: the caller runs the call and provides its result (checked
    against ``result_schema``), or declines (``rejected``, the model is told why)."""
    decision = asks.decided(
        kind="external_tool",
        wait_key=f"{asks.host.unit_key}:external:{call.id}",
        prompt=f"Run tool '{call.name}' and provide its result.",
        input_schema=definition.result_schema,
        decisions=("provided", "rejected"),
        context={
            "tool_name": call.name,
            "tool_call_id": call.id,
            "arguments": dict(call.arguments),
        },
    )
    if decision is None:
        return None
    if decision.get("decision") == "rejected":
        why = decision.get("content") or "no reason given"
        return ToolOutcome(
            "denied", f"The caller declined to run tool '{call.name}': {why}", "declined"
        )
    return ToolOutcome("ok", str(decision.get("content") or ""), "run by the caller")


def _approval(
    asks: _Asks, call: ToolCall, schema: Mapping[str, Any] | None
) -> tuple[ToolCall, ToolOutcome | None] | None:
    """Ask a person about ``call``. The request carries the tool's argument ``schema`` as
    its ``input_schema``, so edited arguments are checked against it when the decision
    is made (a 422 naming the field, the request still pending), not after."""
    decision = asks.decided(
        kind="tool_approval",
        wait_key=f"{asks.host.unit_key}:tool:{call.id}",
        prompt=f"Approve the call to tool '{call.name}'?",
        context={
            "tool_name": call.name,
            "tool_call_id": call.id,
            # The decider judges these: secrets out, personal data kept;
            # every view and record applies the rest of the policy.
            "arguments": redact(dict(call.arguments), show_personal=True),
        },
        decisions=("approved", "rejected", "edited"),
        input_schema=schema,
    )
    if decision is None:
        return None
    name = decision.get("decision")
    if name == "rejected":
        why = decision.get("content") or "no reason given"
        return call, ToolOutcome(
            "denied", f"Tool call rejected by a reviewer: {why}", "rejected by a reviewer"
        )
    if name == "edited":
        try:
            arguments = parse_json(decision.get("content") or "{}", source="edited arguments")
        except DocumentError:
            arguments = None
        if not isinstance(arguments, dict):
            return call, ToolOutcome(
                "invalid",
                "Edited tool arguments are not a JSON object.",
                "edited arguments invalid",
            )
        return ToolCall(id=call.id, name=call.name, arguments=arguments), None
    return call, None


def unanswered_calls(messages: Sequence[ChatMessage]) -> list[ToolCall]:
    """The tool calls of the last model turn that have no result yet, in the model's order."""
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].role == "assistant":
            answered = {m.tool_call_id for m in messages[i + 1 :] if m.role == "tool"}
            return [c for c in messages[i].tool_calls if c.id not in answered]
    return []


def step_registry(
    base: ToolRegistry,
    tools: list[ToolDefinition],
    remote: dict[str, ToolHandler],
    host: AgentHost,
) -> ToolRegistry:
    """The step's tools as the guard sees them: the compiled definitions (spec-declared tools,
    ``requires_approval`` folded in, MCP tools as their server describes them) with the MCP
    session's handler, the registry's handler, else their implementation (through the
    kernel, from the run's pinned code, asking the run's grant)."""
    registry = ToolRegistry()
    for definition in tools:
        handler = remote.get(definition.name)
        if handler is None and definition.name in base:
            handler = base.handler(definition.name)
        if handler is None and (definition.external or definition.agent is not None):
            handler = _run_by_the_caller
        if handler is None and not definition.implementation:
            continue  # the guard reports it as not registered
        if handler is None and definition.implementation:
            handler = resolve_callable(
                definition.implementation,
                grant=host.access,
                code=host.code,
                path=f"components.tools.{definition.name}.implementation",
            )
        registry.register(definition, handler)
    return registry


def _run_by_the_caller(arguments: dict[str, Any]) -> str:
    """Never called: the agent loop pauses an ``external`` tool's call for the caller, and
    runs the agent answering an agent tool itself."""
    raise RuntimeError("an external or agent tool is not run by a handler")
