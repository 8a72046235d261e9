"""The agent loop: model ↔ tools until a final answer or ``max_iterations``.

The transcript of every agent unit lives in the execution state and is committed after each
model turn and each tool result, so a resumed or recovered agent step continues from its last
completed turn: completed model turns are never sent again and completed tool calls never run
again. A tool call that was in flight when the process died has no result in the transcript
and runs again on recovery (tools are at-least-once across a crash; make them idempotent).

Strategies: ``react`` (act turns only) and ``plan-act`` (a first planning turn without tools
whose plan stays in the transcript, then act turns). MCP tools (``mcp.imports``) take their
description and schema from their server when the step starts
(:mod:`kneo.engine.remote_tools`).

Here: the loop and the model side of a turn (the call, streaming, usage, the reply kept in
the transcript). Beside it, by what they decide: a turn's tool calls in
:mod:`kneo.engine.tool_calls`, the budgets checked before each call in
:mod:`kneo.engine.budget_checks`, and what the loop needs of its run in
:mod:`kneo.engine.agent_seam`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from kneo.engine import agent_limits
from kneo.engine import budgets as run_budgets
from kneo.engine.agent_seam import AgentHost
from kneo.engine.budget_checks import within_budget
from kneo.engine.middleware import MiddlewareChain
from kneo.engine.providers.base import ChatMessage, ModelReply, Provider
from kneo.engine.remote_tools import resolve_mcp_tools
from kneo.engine.streaming import AnswerStream
from kneo.engine.tool_calls import (
    AgentOptions,
    ToolTurn,
    run_tools,
    step_registry,
    unanswered_calls,
)
from kneo.engine.tool_guard import ToolGuard
from kneo.errors import ErrorCode, KneoError
from kneo.kernel import resolve_callable
from kneo.runtimes import RuntimeMode, RuntimeRegistry, create_runtime_registry
from kneo.spec.compiled import CompiledStep
from kneo.spec.models import AgentSpec
from kneo.tools import ToolDefinition, ToolRegistry
from kneo.usage import count_spent

PLAN_INSTRUCTION = (
    "Before acting, write a short numbered plan for answering the user's request. "
    "Do not call tools in this turn."
)

#: What a model call counts against the run's budgets (``cost``: in money, :mod:`kneo.spec.prices`)
_MODEL_COUNTERS = ("model_calls", "tokens", "cost")


class AgentStepError(KneoError):
    code = ErrorCode.agent_error


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
            step_registry(self._tools, tools, remote, host),
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
                turn = ToolTurn(guard, chain, step, approval, agent.tool_input, self._options)
                run_tools(host, turn, pending, record)
                continue
            if record["phase"] == "act" and record.get("act_turns", 0) >= max_turns:
                raise AgentStepError(
                    f"agent '{agent.name}' reached max_iterations ({max_turns}) without a "
                    "final answer",
                    code=ErrorCode.agent_max_iterations,
                )
            within_budget(host, _MODEL_COUNTERS)
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
            raise _truncated(agent)

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


def _truncated(agent: AgentSpec) -> AgentStepError:
    """A reply cut at the model's output limit: the turn is recorded (its cost counted), its
    text never used."""
    limit = f" ({agent.model.max_tokens})" if agent.model.max_tokens else ""
    return AgentStepError(
        f"agent '{agent.name}': the model stopped at its output limit{limit} before "
        "finishing its reply; the incomplete reply was not used (raise "
        "model.max_tokens)",
        code=ErrorCode.model_output_truncated,
        agent=agent.name,
    )


def middleware_chain(host: AgentHost, agent: AgentSpec) -> MiddlewareChain:
    """The agent's middleware, its functions reached through the trust kernel with the
    run's grant (asked at every call)."""

    def resolve(ref: str, path: str) -> Callable[..., Any]:
        return resolve_callable(ref, grant=host.access, code=host.code, path=path)

    return MiddlewareChain(agent, resolve, at=f"agent {agent.name!r}")


def _agent_tokens(usage: Mapping[str, int]) -> int:
    return usage["input_tokens"] + usage["output_tokens"]


def _tokens(usage: Mapping[str, int]) -> int:
    """A reply's input plus output tokens, as its provider reported them."""
    return sum(v for k in ("input_tokens", "output_tokens") if isinstance(v := usage.get(k), int))


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
