"""The agent loop: model ↔ tools until a final answer or ``max_iterations``.

The transcript of every agent unit lives in the execution state and is committed after each
model turn and each tool result, so a resumed or recovered agent step continues from its last
completed turn: completed model turns are never sent again and completed tool calls never run
again. A tool call that was in flight when the process died has no result in the transcript
and runs again on recovery (tools are at-least-once across a crash; make them idempotent).

Every tool call of a model turn is answered, in the model's order and each under its own id,
before the next model request. The people a turn's calls need (approvals, argument input,
external results, questions) are asked together, as one human task, before any call of the
turn runs; the turn's calls then run one by one, each result committed before the next.

Strategies: ``react`` (act turns only) and ``plan-act`` (a first planning turn without tools
whose plan stays in the transcript, then act turns). Every tool call goes through the
:class:`~kneo.engine.tool_guard.ToolGuard` (selection, policy, JSON Schema); a denied call
emits ``tool_policy_denied`` and the model receives the refusal as the tool result. Tools
listed in ``approval_required`` (or with ``requires_approval``) pause for a person — after the
guard, so a refused call is never put to anyone; approved runs once, edited runs with the
edited arguments (checked again), rejected returns a refusal to the model. The built-in
``ask_question`` tool pauses with the question and returns the answer as the tool result.
Tools in ``tool_input`` pause for a person to provide flagged or missing arguments (after
the policy check, before the schema check); an ``external`` tool pauses for the caller to
run it and provide the result. MCP tools (``mcp.imports``) take their description and schema
from their server when the step starts (:mod:`kneo.engine.remote_tools`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, NoReturn, Protocol

from kneo.documents import DocumentError, parse_json
from kneo.engine import agent_limits
from kneo.engine import budgets as run_budgets
from kneo.engine.human import QUESTION_TOOL, HumanRequest, question_wait_key
from kneo.engine.middleware import MiddlewareChain
from kneo.engine.providers.base import ChatMessage, ModelReply, Provider, ToolCall
from kneo.engine.remote_tools import LazySessions, resolve_mcp_tools
from kneo.engine.streaming import AnswerStream
from kneo.engine.tool_guard import ToolGuard, ToolOutcome, describe_for_trace
from kneo.errors import ErrorCode, KneoError
from kneo.kernel import resolve_callable
from kneo.kernel.code import LoadedCode
from kneo.policy.access import HostAccess, ProjectBudget
from kneo.redaction import redact
from kneo.runtimes import RuntimeMode, RuntimeRegistry, create_runtime_registry
from kneo.spec.compiled import CompiledStep
from kneo.spec.models import AgentSpec
from kneo.tools import ToolDefinition, ToolHandler, ToolRegistry
from kneo.usage import count_spent

PLAN_INSTRUCTION = (
    "Before acting, write a short numbered plan for answering the user's request. "
    "Do not call tools in this turn."
)


#: What a model call counts against the run's budgets (``cost``: in money, :mod:`kneo.spec.prices`)
_MODEL_COUNTERS = ("model_calls", "tokens", "cost")

#: Unit keys of concurrent branches (``kneo.engine.families``): their ``ask_question`` waits
#: are named per branch, since branches run (and finish) in no fixed order.
_BRANCH_PREFIX = "branch:"


class AgentStepError(KneoError):
    code = ErrorCode.agent_error


class AgentHost(Protocol):
    """What the agent loop needs from the engine for one unit (implemented by the executor)."""

    unit_key: str
    step_id: str
    lock: Any  # guards the agent record against concurrent snapshots
    #: what the run may reach on the host; ``None`` outside a platform
    access: HostAccess | None
    #: the run's pinned project code, where the spec's ``module:function`` refs load from
    code: LoadedCode | None

    def emit(self, event_type: str, data: dict[str, Any]) -> None: ...

    def commit(self, kind: str) -> None: ...

    def checkpoint_cancel(self) -> None: ...

    def agent_record(self) -> dict[str, Any]: ...

    def previous_transcript(self, agent_name: str) -> list[dict[str, Any]] | None: ...

    def decision(self, wait_key: str) -> dict[str, Any] | None: ...

    def pause(self, requests: Sequence[HumanRequest]) -> NoReturn:
        """Pause the unit for ``requests``, one human task (raises)."""
        ...

    def new_request(self, **fields: Any) -> HumanRequest: ...

    def question_index(self, call_id: str) -> int: ...

    def run_usage(self) -> dict[str, int]:
        """What the whole run has spent so far (:func:`kneo.engine.budgets.usage_of`)."""
        ...

    def run_usage_of(self, agent: str) -> dict[str, int]:
        """What the units of the agent named ``agent`` have spent in the run so far."""
        ...

    def mcp(self) -> LazySessions | None:
        """The run's MCP sessions (``None`` when the spec imports no MCP server)."""
        ...

    def delegate(self, unit_key: str, step: CompiledStep, text: str) -> str:
        """Run ``step``'s agent (or the workflow backing it) as unit ``unit_key`` of this run,
        continuing from what that unit recorded; its answer."""
        ...


@dataclass(frozen=True)
class AgentOptions:
    """What an agent step records of its tool calls."""

    record_arguments: bool = False
    record_results: bool = False


def select_runtime(agent: AgentSpec, runtimes: RuntimeRegistry) -> RuntimeMode:
    """The preferred mode if allowed and known, else the first allowed known mode."""
    prefs = agent.runtime_preferences
    allowed = prefs.allowed_modes or [prefs.preferred_mode]
    candidates = [prefs.preferred_mode, *allowed] if prefs.preferred_mode in allowed else allowed
    for name in candidates:
        if name in runtimes:
            return runtimes.get(name)
    raise AgentStepError(
        f"agent '{agent.name}': none of the runtime modes {candidates} is available "
        f"(known: {', '.join(runtimes.names())})",
        code=ErrorCode.E_UNKNOWN_RUNTIME,
    )


class AgentLoop:
    """Runs one agent unit against its durable transcript."""

    def __init__(
        self,
        *,
        providers: Callable[[str], Provider],
        tools: ToolRegistry,
        runtimes: RuntimeRegistry | None = None,
        options: AgentOptions | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._providers = providers
        self._tools = tools
        self._runtimes = runtimes or create_runtime_registry()
        self._options = options or AgentOptions()
        self._monotonic = monotonic

    def run(self, host: AgentHost, step: CompiledStep, input_text: str) -> str:
        agent = step.agent
        if agent is None:
            raise AgentStepError(f"step '{step.id}' has no agent", code=ErrorCode.E_UNKNOWN_REF)
        provider = self._providers(agent.model.provider)
        runtime = select_runtime(agent, self._runtimes)
        tools, remote = resolve_mcp_tools(step.tools, agent, host.mcp())
        guard = ToolGuard(
            _step_registry(self._tools, tools, remote, host),
            allowed=[t.name for t in tools],
            policy=agent.policies.tool,
            runtime=runtime,
            timeout_seconds=step.timeout_seconds,
            code=host.code,
        )
        approval = set(agent.approval_required) | {t.name for t in tools if t.requires_approval}
        chain = middleware_chain(host, agent)
        record = host.agent_record()
        with host.lock:
            fresh = not record.get("messages")
        if fresh:
            earlier = host.previous_transcript(agent.name) if agent.memory.type != "none" else None
            input_text = chain.input(input_text)
            with host.lock:
                self._start(record, agent, input_text, runtime, earlier)
                record["step_id"] = host.step_id  # usage per step in the run view
        max_turns = agent.max_iterations or agent.strategy.max_iterations
        started = self._monotonic()
        while True:
            host.checkpoint_cancel()
            if record.get("final") is not None:
                return str(record["final"])
            if (
                step.timeout_seconds is not None
                and self._monotonic() - started > step.timeout_seconds
            ):
                raise AgentStepError(
                    f"agent step '{step.id}' exceeded its timeout of {step.timeout_seconds:g}s",
                    code=ErrorCode.step_timeout,
                )
            with host.lock:
                messages = [ChatMessage.from_dict(m) for m in record["messages"]]
            pending = unanswered_calls(messages)
            if pending:
                turn = _Turn(guard, chain, step, approval, agent.tool_input)
                self._run_tools(host, turn, pending, record)
                continue
            if record["phase"] == "act" and record.get("act_turns", 0) >= max_turns:
                raise AgentStepError(
                    f"agent '{agent.name}' reached max_iterations ({max_turns}) without a "
                    "final answer",
                    code=ErrorCode.agent_max_iterations,
                )
            self._within_budget(host, _MODEL_COUNTERS)
            if agent.token_budget is not None or agent.rate_limit is not None:
                agent_limits.before_call(
                    agent,
                    record,
                    _agent_tokens(host.run_usage_of(agent.name)),
                    host.decision,
                    lambda fields: host.pause([host.new_request(**fields)]),
                )
            self._model_turn(host, provider, agent, tools, chain.messages(messages), record, chain)

    @staticmethod
    def _start(
        record: dict[str, Any],
        agent: AgentSpec,
        input_text: str,
        runtime: RuntimeMode,
        earlier: list[dict[str, Any]] | None,
    ) -> None:
        """A new transcript; with buffer memory it continues the agent's earlier one in this
        run (a graph node visited again, a group-chat round), trimmed to ``max_messages``."""
        if not record.get("messages"):
            system = agent.system_prompt or agent.instructions or ""
            if earlier:
                messages = [ChatMessage.from_dict(m) for m in earlier]
            else:
                messages = [ChatMessage("system", system)] if system else []
            messages.append(ChatMessage("user", input_text))
            record["messages"] = [m.to_dict() for m in _trim(messages, agent.memory.max_messages)]
            record["agent"] = agent.name
            record["turns"] = 0
            record["phase"] = "plan" if agent.strategy.type == "plan-act" else "act"
            record["runtime"] = runtime.name

    # ------------------------------------------------------------------ turns

    def _model_turn(
        self,
        host: AgentHost,
        provider: Provider,
        agent: AgentSpec,
        step_tools: list[ToolDefinition],
        messages: list[ChatMessage],
        record: dict[str, Any],
        chain: MiddlewareChain,
    ) -> None:
        planning = record["phase"] == "plan"
        if planning:
            messages = [*messages, ChatMessage("system", PLAN_INSTRUCTION)]
        tools = [] if planning else step_tools
        model, reach = agent.model, None
        if host.access is not None:  # the key this call uses, and where it may go
            model, reach = host.access.model_call(model, path=f"agent {agent.name!r}.model")
        streamer = None
        streaming = getattr(provider, "complete_stream", None)
        if agent.model.stream and not planning and streaming is not None:
            turn_no = record["turns"] + 1
            streamer = AnswerStream(
                lambda data: host.emit("answer_delta", data), agent=agent.name, turn=turn_no
            )
            reply = streaming(
                model=model, messages=messages, tools=tools, reach=reach, on_text=streamer.feed
            )
        else:
            reply = provider.complete(model=model, messages=messages, tools=tools, reach=reach)
        truncated = reply.stop_reason == "max_tokens"
        table = host.access.prices if host.access is not None else None
        priced = run_budgets.price_call(table, agent.model.provider, agent.model.name, reply.usage)
        with host.lock:
            count_spent(record, reply.usage, priced)
            agent_limits.after_call(agent, record, record["turns"] + 1, _tokens(reply.usage))
        if host.access is not None and host.access.project_budget is not None:
            cost = (priced.nanos or 0) if priced is not None else 0
            host.access.project_budget.record(1, _tokens(reply.usage), cost)
        if not (truncated or planning or reply.tool_calls):
            reply = replace(reply, text=chain.output(reply.text or ""))
        with host.lock:
            message = None if truncated else self._keep(record, reply, planning)
        calls = message.tool_calls if message is not None else ()
        if streamer is not None:
            streamer.finish(None if calls or message is None else (message.content or ""))
        host.emit(
            "model_turn_completed",
            {
                "agent": agent.name,
                "provider": provider.name,
                "model": agent.model.name,
                "turn": record["turns"] + (1 if truncated else 0),
                "phase": "plan" if planning else "act",
                "tool_calls": [c.name for c in calls],
                "final": not planning and message is not None and not calls,
                "usage": dict(reply.usage),
                "stop_reason": reply.stop_reason,
                **(priced.shown() if priced is not None else {}),
            },
        )
        host.commit("agent_turn")  # the turn, or at least what it cost
        if truncated:
            limit = f" ({agent.model.max_tokens})" if agent.model.max_tokens else ""
            raise AgentStepError(
                f"agent '{agent.name}': the model stopped at its output limit{limit} before "
                "finishing its reply; the incomplete reply was not used (raise "
                "model.max_tokens)",
                code=ErrorCode.model_output_truncated,
                agent=agent.name,
            )

    @staticmethod
    def _keep(record: dict[str, Any], reply: ModelReply, planning: bool) -> ChatMessage:
        """Add a complete reply to the transcript (caller holds the lock)."""
        message = reply.to_message()
        if planning:
            # The plan is kept: the instruction and the plan both stay in the transcript.
            record["messages"].append(ChatMessage("system", PLAN_INSTRUCTION).to_dict())
            message = ChatMessage("assistant", reply.text or "")
            record["phase"] = "act"
        else:
            record["act_turns"] = record.get("act_turns", 0) + 1
            if not message.tool_calls:
                record["final"] = message.content or ""
        record["messages"].append(message.to_dict())
        record["turns"] = record.get("turns", 0) + 1
        return message

    def _run_tools(
        self, host: AgentHost, turn: _Turn, calls: list[ToolCall], record: dict[str, Any]
    ) -> None:
        """The unanswered calls of the last model turn, in the model's order.

        First every call is planned (pure: the guard's checks and the decisions recorded so
        far); the requests the calls still need from people are gathered into one pause, so
        a turn with two approvals is one human task, and nothing of the turn runs until
        every request is decided. Then each call runs and its result is committed before the
        next one starts: a crash or resume never runs a call whose result is recorded.
        """
        asks = _Asks(host)
        plans = [self._plan(asks, turn, call, record) for call in calls]
        if asks.requests:
            host.pause(asks.requests)
        for plan in plans:
            assert plan is not None  # every call without a plan asked for something
            self._within_budget(host, ("tool_calls",))
            self._carry_out(host, turn, plan, record)

    @staticmethod
    def _within_budget(host: AgentHost, counters: tuple[str, ...]) -> None:
        """Before a call that ``counters`` count: the run's budget (the environment's
        ``budgets:``) still allows one more, else fail or pause as the policy says."""
        access = host.access
        if access is not None and access.project_budget is not None and "model_calls" in counters:
            AgentLoop._within_daily(host, access.project_budget)
        budgets = access.budgets if access is not None else None
        if access is None or budgets is None:
            return
        limits = budgets.limits
        totals: dict[str, int] | None = None
        for counter in counters:
            base = limits.get(counter)
            if base is None:
                continue
            totals = totals or host.run_usage()
            spent = run_budgets.used(totals, counter)
            if spent < base:  # below the policy's own limit no raise can have been asked
                continue
            limit = run_budgets.limit_in_force(counter, budgets, host.decision)
            if spent < limit:
                continue
            host.emit(
                "budget_reached",
                {
                    "budget": counter,
                    "used": spent,
                    "limit": limit,
                    "on_exceeded": budgets.on_exceeded,
                },
            )
            if budgets.on_exceeded == "fail":
                raise run_budgets.exceeded(counter, spent, limit, access.environment)
            fields = run_budgets.request_fields(counter, spent, limit, budgets, access.environment)
            host.pause([host.new_request(**fields)])

    @staticmethod
    def _within_daily(host: AgentHost, budget: ProjectBudget) -> None:
        """Before a model call: the project's daily budgets (its ``limits:``) still allow
        one, else fail or pause as its ``on_exceeded`` says (:mod:`kneo.engine.budgets`)."""
        spend = budget.spend()
        for counter, in_force in spend.limits.items():
            used = spend.used[counter]
            if used < in_force:
                continue
            limit = run_budgets.daily_limit_in_force(counter, spend, budget, host.decision)
            if used < limit:
                continue
            event = {"budget": counter, "used": used, "limit": limit, "scope": "project"}
            host.emit("budget_reached", {**event, "on_exceeded": budget.on_exceeded})
            if budget.on_exceeded == "fail":
                raise run_budgets.daily_exceeded(counter, used, limit, budget.project, spend.day)
            fields = run_budgets.daily_request_fields(counter, used, limit, spend, budget.project)
            host.pause([host.new_request(**fields)])

    def _plan(
        self, asks: _Asks, turn: _Turn, call: ToolCall, record: dict[str, Any]
    ) -> _Planned | None:
        """What ``call`` comes to, or ``None`` while a person's answer is missing (asked for
        in ``asks``). Policy and schema first: a call the guard refuses is never put to a
        person. A tool whose arguments a person completes is checked against its policy
        first, then in full once the person's values are in. The middleware refuses after
        the guard, before anyone is asked."""
        guard, approval, tool_input = turn.guard, turn.approval, turn.tool_input
        refusal = guard.check(call, arguments=call.name not in tool_input)
        if refusal is None and call.name in tool_input:
            completed = self._tool_input(
                asks, guard.definition(call.name), call, tool_input[call.name]
            )
            if completed is None:
                return None
            call, refusal = completed, guard.check(completed)
        if refusal is None and (why := turn.chain.tool_call(call)) is not None:
            refusal = ToolOutcome("denied", f"Tool call refused by middleware: {why}.", why)
        if refusal is not None:
            event = "tool_policy_denied" if refusal.status == "denied" else "tool_call_invalid"
            return _Planned(call, refusal, event)
        if call.name == QUESTION_TOOL:
            answer = self._question(asks, call, record)
            return None if answer is None else _Planned(call, ToolOutcome("ok", answer, None))
        definition = guard.definition(call.name)
        if definition.external:
            outcome = self._external(asks, definition, call)
            if outcome is None:
                return None
            return _Planned(call, outcome, "tool_call_completed", external=True)
        if call.name in approval:
            decided = self._approval(asks, call, guard.parameters(call.name))
            if decided is None:
                return None
            call, refusal = decided
            if refusal is None:
                refusal = guard.check(call)  # edited arguments pass the same checks
            if refusal is not None:
                return _Planned(call, refusal, "tool_call_rejected")
        return _Planned(call)

    def _carry_out(
        self, host: AgentHost, turn: _Turn, plan: _Planned, record: dict[str, Any]
    ) -> None:
        """Run a planned call (or take its decided outcome), trace it, commit its result. A
        call an agent answers runs that agent as a unit of its own (``<unit>/<tool>#<n>``,
        the n-th result of this unit), so a pause inside it resumes there and its finished turns never run again."""
        opts = self._options
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

    @staticmethod
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

    @staticmethod
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

    @staticmethod
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

    @staticmethod
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


@dataclass(frozen=True)
class _Turn:
    """What every tool call of one agent turn is checked and run with."""

    guard: ToolGuard
    chain: MiddlewareChain
    step: CompiledStep
    approval: set[str]
    tool_input: dict[str, list[str]]


def middleware_chain(host: AgentHost, agent: AgentSpec) -> MiddlewareChain:
    """The agent's middleware, its functions reached through the trust kernel with the
    run's grant (asked at every call)."""

    def resolve(ref: str, path: str) -> Callable[..., Any]:
        return resolve_callable(ref, grant=host.access, code=host.code, path=path)

    return MiddlewareChain(agent, resolve, at=f"agent {agent.name!r}")


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


def _agent_tokens(usage: Mapping[str, int]) -> int:
    return usage["input_tokens"] + usage["output_tokens"]


def _tokens(usage: Mapping[str, int]) -> int:
    """A reply's input plus output tokens, as its provider reported them."""
    return sum(v for k in ("input_tokens", "output_tokens") if isinstance(v := usage.get(k), int))


def unanswered_calls(messages: Sequence[ChatMessage]) -> list[ToolCall]:
    """The tool calls of the last model turn that have no result yet, in the model's order."""
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].role == "assistant":
            answered = {m.tool_call_id for m in messages[i + 1 :] if m.role == "tool"}
            return [c for c in messages[i].tool_calls if c.id not in answered]
    return []


def _step_registry(
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


def _trim(messages: list[ChatMessage], limit: int) -> list[ChatMessage]:
    """Keep system messages and the newest others up to ``limit``, never an orphan tool result."""
    system = [m for m in messages if m.role == "system" and m is messages[0]]
    rest = messages[len(system) :]
    budget = max(1, limit - len(system))
    if len(rest) > budget:
        rest = rest[-budget:]
        while rest and rest[0].role == "tool":
            rest = rest[1:]
    return system + rest
