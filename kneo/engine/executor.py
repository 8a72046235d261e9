"""The workflow engine: runs a :class:`CompiledWorkflow` against a durable execution state.

Every family is a small deterministic program over *units* (one execution of one step, with
a stable key; :mod:`kneo.engine.families`). A unit that completed returns its recorded output
without executing anything, so running the program again against the same state — after a
pause, a crash or a failed step — skips straight to the first unit that has not completed.
Routing decisions are pure functions of recorded outputs, which is why graphs, handoffs and
group chats continue exactly where they stopped.

The engine reports through the injected :class:`~kneo.engine.journal.Journal` (a commit per
unit completion or failure, per agent turn and per tool result) and returns an
:data:`~kneo.engine.outcomes.Outcome`; the final write of the outcome is the caller's.

Here: the engine (what is injected, what it runs with) and its two entry points, ``run`` and
the dry probe ``next_units``, which turn how a program ended (:mod:`kneo.engine.signals`)
into an outcome. One run — its context and each unit's lifecycle — is
:class:`~kneo.engine.workflow_run.WorkflowRun`, which the step kinds are handed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from kneo.clock import Clock, SystemClock
from kneo.engine.agent import AgentLoop
from kneo.engine.bridges import AgentBridges
from kneo.engine.cancellation import CancellationToken, RunCancelled
from kneo.engine.families import PROGRAMS
from kneo.engine.human import HumanResolver
from kneo.engine.journal import Boundary, Journal, RunSuperseded, TraceEvent
from kneo.engine.outcomes import (
    Cancelled,
    Completed,
    Failed,
    Outcome,
    Paused,
    Superseded,
    error_info,
)
from kneo.engine.providers.base import Provider
from kneo.engine.remote_agents import RemoteAgents
from kneo.engine.remote_tools import McpConnector
from kneo.engine.run_context import EngineOptions
from kneo.engine.signals import ProbeStop, RunFailed, RunPaused
from kneo.engine.state import ExecutionState
from kneo.engine.tool_calls import AgentOptions
from kneo.engine.workflow_run import WorkflowRun
from kneo.errors import KneoError
from kneo.ids import new_request_id
from kneo.policy.access import HostAccess
from kneo.runtimes import RuntimeRegistry
from kneo.spec.compiled import CompiledWorkflow
from kneo.tools import ToolRegistry

#: ``EngineOptions`` is defined beside the run's interfaces and exported here too, where
#: callers have always taken it from.
__all__ = ["EngineOptions", "WorkflowEngine"]


class WorkflowEngine:
    """Executes compiled workflows. Stateless between runs; all I/O is injected."""

    def __init__(
        self,
        *,
        providers: Callable[[str], Provider],
        tools: ToolRegistry,
        runtimes: RuntimeRegistry | None = None,
        clock: Clock | None = None,
        sleep: Callable[[float], None] = time.sleep,
        request_ids: Callable[[], str] = new_request_id,
        functions: Mapping[str, Callable[..., Any]] | None = None,
        resolvers: Mapping[str, HumanResolver] | None = None,
        prompts: Mapping[str, Callable[[list[str], dict[str, Any]], str]] | None = None,
        options: EngineOptions | None = None,
        mcp: McpConnector | None = None,
        remote_agents: RemoteAgents | None = None,
        bridges: AgentBridges | None = None,
    ) -> None:
        self.clock: Clock = clock or SystemClock()
        #: calls agents served elsewhere (``agent.remote``); ``None``: none configured
        self.remote_agents = remote_agents
        #: runs framework agents (``agent.implementation``); ``None``: none configured
        self.bridges = bridges
        #: opens a run's MCP sessions (``kneo.mcp.client.connector``); ``None``: no MCP tools
        self.mcp = mcp
        self.sleep = sleep
        self.request_ids = request_ids
        self.functions = dict(functions or {})
        self.resolvers = dict(resolvers or {})
        #: step id -> callable building the prompt from earlier outputs (SDK dynamic prompts)
        self.prompts = dict(prompts or {})
        self.options = options or EngineOptions()
        self._agent_options = AgentOptions(
            record_arguments=self.options.record_tool_arguments,
            record_results=self.options.record_tool_results,
        )
        self.agents = AgentLoop(
            providers=providers, tools=tools, runtimes=runtimes, options=self._agent_options
        )

    def run(
        self,
        workflow: CompiledWorkflow,
        state: ExecutionState,
        journal: Journal,
        *,
        run_id: str = "",
        cancellation: CancellationToken | None = None,
        metadata: Mapping[str, Any] | None = None,
        access: HostAccess | None = None,
    ) -> Outcome:
        """Run (or continue) ``workflow`` from ``state`` until it ends or pauses.

        ``access``: what the run may reach on the host (the platform always gives one); each
        model call and MCP session is resolved through it."""
        ctx = WorkflowRun(
            self,
            workflow,
            state,
            journal,
            run_id,
            cancellation or CancellationToken(),
            dict(metadata or {}),
            access=access,
        )
        try:
            return self._outcome(ctx)
        finally:
            ctx.mcp.close()  # MCP sessions live as long as this call, paused or not

    def _outcome(self, ctx: WorkflowRun) -> Outcome:
        """Run the family's program and turn how it ended into an :data:`Outcome`."""
        state = ctx.state
        try:
            ctx.check_cancel()
            output = PROGRAMS[ctx.workflow.family](ctx)
        except RunPaused as pause:
            with state.lock:
                state.pending = [r.to_dict() for r in pause.requests]
                state.position = {}
            return Paused(tuple(pause.requests), state.snapshot())
        except RunFailed as failure:
            with state.lock:
                state.failure = failure.error
            return Failed(failure.error, state.snapshot())
        except RunCancelled as exc:
            return Cancelled(str(exc), state.snapshot())
        except RunSuperseded as exc:
            return Superseded(exc.reason, exc.status, state.snapshot())
        except KneoError as exc:  # raised outside a unit: routing, max visits, bad workflow
            if exc.retryable:  # the journal could not write: the run did not fail, retry it
                raise
            error = error_info(exc, **_where(state))
            with state.lock:
                state.failure = error
            return Failed(error, state.snapshot())
        with state.lock:
            state.output = output
            state.pending = []
            state.position = {}
            state.failure = None
        return Completed(output, *state.snapshot_with_parts())

    def next_units(self, workflow: CompiledWorkflow, state: ExecutionState) -> list[dict[str, Any]]:
        """The units that would execute next (none: the workflow would finish). No side effects."""
        ctx = WorkflowRun(
            self,
            workflow,
            ExecutionState(state.snapshot()),
            _NullJournal(),
            "",
            CancellationToken(),
            {},
            probe=True,
        )
        try:
            PROGRAMS[workflow.family](ctx)
        except ProbeStop as stop:
            return stop.units
        except (RunFailed, KneoError):
            return []
        return []


def _where(state: ExecutionState) -> dict[str, Any]:
    pos = state.position or {}
    return {k: pos[k] for k in ("step_id", "unit_key") if k in pos}


class _NullJournal:
    def emit(self, event: TraceEvent) -> None:
        pass

    def commit(self, boundary: Boundary) -> None:
        pass
