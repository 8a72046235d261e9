"""Bridged agents (``agent.implementation``): a framework's own agent loop under the engine's
control. The engine's side of the seam; it imports no framework.

The platform injects an :class:`AgentBridges` (``kneo.bridges``) that runs the framework's
agent (the OpenAI Agents SDK's ``Runner``, a LangGraph graph) with two hooks of a
:class:`BridgeSession` at the framework's boundaries:

* **model turns** — each reply is checkpointed (its payload as the framework's own JSON, its
  usage counted like a native turn's); a turn already recorded is *replayed* from the
  checkpoint, never sent again;
* **tool calls** — each call goes through the :class:`~kneo.engine.tool_guard.ToolGuard`
  (selection, ``policies.tool``, the argument schema, the runtime's isolation) and, for a tool
  in ``approval_required``, waits for a person's ``tool_approval`` decision: the session
  stops the framework, the run pauses durably, and on resume the framework runs again from
  the start with every recorded turn and result replayed up to the call, which now has its
  decision. A result already recorded is replayed, never run again.

Before each model call not replayed, the agent's ``token_budget`` and ``rate_limit`` are
checked as for a native agent (:mod:`kneo.engine.agent_limits`); a person to ask stops the
framework as an approval does.

So a bridged agent must be deterministic given its model replies and tool results (as
Temporal's or LangGraph's own replay assumes): the n-th model call and the n-th tool call of
a replay are the recorded ones.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from kneo.engine import agent_limits
from kneo.engine import budgets as run_budgets
from kneo.engine.agent_host import UnitAgentHost
from kneo.engine.outcomes import StepFailure
from kneo.engine.providers.base import ToolCall
from kneo.engine.signals import RunPaused
from kneo.engine.tool_guard import ToolGuard, ToolOutcome, describe_for_trace
from kneo.errors import ErrorCode, KneoError
from kneo.kernel import resolve_callable
from kneo.redaction import redact
from kneo.runtimes import RuntimeMode
from kneo.spec.compiled import CompiledStep
from kneo.tools import ToolDefinition, ToolRegistry
from kneo.usage import count_spent

if TYPE_CHECKING:
    from kneo.engine.workflow_run import WorkflowRun
    from kneo.policy.access import HostAccess

__all__ = ["AgentBridges", "BridgeSession", "BridgeStopped", "run_bridged_agent"]


#: a framework's tools are its own objects (closures, bound methods): they run in-process
_IN_PROCESS = RuntimeMode("native", "the framework's tools, in-process")


class BridgeStopped(Exception):
    """Raised into the framework to stop it: the session waits for a person (or already
    stopped). The engine turns the session's pending pause into the run's pause."""


class AgentBridges(Protocol):
    """Runs a framework's agent object with a session's hooks."""

    def run(
        self,
        build: Callable[..., Any],
        session: BridgeSession,
        text: str,
        *,
        access: HostAccess | None,
    ) -> str:
        """The answer to ``text`` of the agent ``build`` returns (given what it asks for,
        such as ``model``); ``BridgeStopped`` when the session stopped it; a framework it
        does not know: ``StepFailure``."""
        ...


class BridgeSession:
    """One bridged unit's checkpointed model turns and guarded tool calls."""

    def __init__(self, run: WorkflowRun, key: str, step: CompiledStep) -> None:
        assert step.agent is not None
        self.agent = step.agent
        self.step = step
        self._run = run
        self._host = UnitAgentHost(run, key, step)
        self.key = key
        record = self._host.agent_record()
        with self._host.lock:
            record.setdefault("agent", step.agent.name)
            record["step_id"] = step.id
            self._journal: dict[str, list[Any]] = record.setdefault(
                "bridge", {"model": [], "tools": []}
            )
        self._record = record
        self._models = 0
        self._tools = 0
        self._lock = threading.Lock()
        #: the pause the framework was stopped for, if any
        self.pending: RunPaused | None = None
        #: the limit that failed the step, if any (raised again past the framework)
        self.failure: KneoError | None = None

    # ------------------------------------------------------------------ model turns

    def next_model(self) -> Mapping[str, Any] | None:
        """The next model turn's recorded payload (a replay), or ``None``: call the model,
        then :meth:`record_model`."""
        with self._lock:
            self._stopped()
            self._host.checkpoint_cancel()
            index = self._models
            self._models += 1
            turns = self._journal["model"]
            if index < len(turns):
                return dict(turns[index])
        self._limits()
        return None

    def _limits(self) -> None:
        """Before a model call the framework is about to send: the agent's ``token_budget``
        and ``rate_limit`` (:mod:`kneo.engine.agent_limits`, as for a native agent). A
        person to ask stops the framework; a limit that fails the step is kept for the
        engine (a framework may wrap what its model raises)."""
        agent = self.agent
        if agent.token_budget is None and agent.rate_limit is None:
            return

        def ask(fields: dict[str, Any]) -> None:
            self.pending = RunPaused([self._host.new_request(**fields)])
            raise BridgeStopped("waiting for a person's decision on the agent's token_budget")

        used = agent_limits.tokens_of(self._host.run_usage_of(agent.name))
        try:
            agent_limits.before_call(agent, self._record, used, self._host.decision, ask)
        except KneoError as exc:
            self.failure = exc
            raise

    def record_model(self, payload: Mapping[str, Any], usage: Mapping[str, int]) -> None:
        """A new model turn: checkpointed with its usage before the framework reads it (a
        reply over ``token_budget.per_call`` fails the step or asks before the next call)."""
        access = self._host.access
        table = access.prices if access is not None else None
        model = self.agent.model
        priced = run_budgets.price_call(table, model.provider, model.name, usage)
        with self._host.lock:
            self._journal["model"].append(dict(payload))
            count_spent(self._record, usage, priced)
            turn = len(self._journal["model"])
            try:
                agent_limits.after_call(
                    self.agent, self._record, turn, agent_limits.tokens_of(usage)
                )
            except KneoError as exc:
                self.failure = exc
                raise
        self._host.emit(
            "model_turn_completed",
            {
                "agent": self.agent.name,
                "usage": dict(usage),
                "bridge": True,
                **(priced.shown() if priced is not None else {}),
            },
        )
        self._host.commit("model_turn")

    # ------------------------------------------------------------------ tool calls

    def tool(
        self,
        name: str,
        arguments: Mapping[str, Any],
        handler: Callable[[dict[str, Any]], Any],
        *,
        parameters: Mapping[str, Any] | None = None,
        description: str = "",
    ) -> str:
        """The result of the framework's call to its tool ``name``: replayed when recorded;
        else through the guard (and a person's approval where required), then recorded."""
        with self._lock:
            self._stopped()
            index = self._tools
            self._tools += 1
            done = self._journal["tools"]
            if index < len(done):
                return str(done[index]["result"])
        call = ToolCall(id=f"bridge-{index}", name=name, arguments=dict(arguments))
        definition = ToolDefinition(
            name=name,
            description=description,
            parameters=dict(parameters or {"type": "object", "properties": {}}),
        )
        registry = ToolRegistry()
        registry.register(definition, handler)
        guard = ToolGuard(
            registry,
            allowed=[name] if self._selected(name) else [],
            policy=self.agent.policies.tool,
            runtime=_IN_PROCESS,
            timeout_seconds=self.step.timeout_seconds,
        )
        outcome = guard.check(call)
        if outcome is None and name in self.agent.approval_required:
            call, outcome = self._approved(call, guard)
        if outcome is None:
            self._host.emit("tool_call_started", {**describe_for_trace(call), "bridge": True})
            outcome = guard.execute(call)
        self._finish(call, outcome)
        return outcome.content

    def _selected(self, name: str) -> bool:
        """A framework's own tools are its agent's unless the spec selects some by name."""
        names = self.agent.tool_names()
        return not names or name in names

    def _approved(self, call: ToolCall, guard: ToolGuard) -> tuple[ToolCall, ToolOutcome | None]:
        wait_key = f"{self.key}:tool:{call.id}"
        decision = self._run.decision(wait_key)
        if decision is None:
            self.pending = RunPaused(
                [
                    self._run.new_request(
                        kind="tool_approval",
                        wait_key=wait_key,
                        step=self.step,
                        prompt=f"Approve the call to tool '{call.name}'?",
                        context={
                            "tool_name": call.name,
                            "tool_call_id": call.id,
                            "arguments": redact(dict(call.arguments), show_personal=True),
                            "bridge": True,
                        },
                        decisions=("approved", "rejected"),
                    )
                ]
            )
            raise BridgeStopped("waiting for a person's approval")
        if decision.get("decision") == "rejected":
            why = decision.get("content") or "no reason given"
            return call, ToolOutcome(
                "denied", f"Tool call rejected by a reviewer: {why}", "rejected by a reviewer"
            )
        return call, None

    def _finish(self, call: ToolCall, outcome: ToolOutcome) -> None:
        options = self._run.engine.options
        trace = describe_for_trace(
            call,
            outcome,
            record_arguments=options.record_tool_arguments,
            record_results=options.record_tool_results,
        )
        with self._host.lock:
            self._journal["tools"].append({"name": call.name, "result": outcome.content})
            self._record["tool_calls"] = int(self._record.get("tool_calls", 0)) + 1
        kind = {"denied": "tool_policy_denied", "invalid": "tool_call_invalid"}.get(
            outcome.status, "tool_call_completed"
        )
        self._host.emit(kind, {**trace, "bridge": True})
        self._host.commit("tool_result")

    def _stopped(self) -> None:
        if self.pending is not None:
            raise BridgeStopped("the session is stopped")


def run_bridged_agent(run: WorkflowRun, key: str, step: CompiledStep, text: str) -> str:
    """Unit ``key``: the bridged agent's answer (pausing where its session stopped it)."""
    assert step.agent is not None and step.agent.implementation is not None
    bridges = run.engine.bridges
    path = f"components.agents.{step.agent.name}.implementation"
    if bridges is None:
        raise StepFailure(
            f"step '{step.id}': no agent bridges are configured in this process",
            code=ErrorCode.E_SCHEMA,
        )
    record = UnitAgentHost(run, key, step).agent_record()
    if record.get("final") is not None:
        return str(record["final"])
    build = resolve_callable(step.agent.implementation, grant=run.access, code=run.code, path=path)
    session = BridgeSession(run, key, step)
    try:
        answer = bridges.run(build, session, text, access=run.access)
    except BridgeStopped:
        if session.pending is None:
            raise
        raise session.pending from None
    except Exception:
        if session.pending is not None:  # the framework wrapped the stop in its own error
            raise session.pending from None
        if session.failure is not None:
            raise session.failure from None
        raise
    if session.pending is not None:
        raise session.pending
    with run.state.lock:
        record["final"] = answer
    return answer
