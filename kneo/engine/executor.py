"""The workflow engine: runs a :class:`CompiledWorkflow` against a durable execution state.

Every family is a small deterministic program over *units* (one execution of one step, with
a stable key). :meth:`_Run.unit` returns the recorded output of a completed unit without
executing anything, so running the program again against the same state — after a pause, a
crash or a failed step — skips straight to the first unit that has not completed. Routing
decisions are pure functions of recorded outputs, which is why graphs, handoffs and group
chats continue exactly where they stopped.

Unit keys: sequential ``<step>``; graph ``<node>`` then ``<node>#<visit>``; concurrent
``branch:<participant>``; handoff ``turn<n>:<participant>``; group chat ``r<round>:<id>``.

The engine reports through the injected :class:`~kneo.engine.journal.Journal` (a commit per
unit completion or failure, per agent turn and per tool result) and returns an
:data:`~kneo.engine.outcomes.Outcome`; the final write of the outcome is the caller's.

Here: the engine's entry points and one run's unit lifecycle (gates before, attempts under
``on_error``, output review). What each step kind does lives beside it: function steps in
:mod:`kneo.engine.functions`, agent steps in :mod:`kneo.engine.agent` (reached through
:mod:`kneo.engine.agent_host`), human steps in :mod:`kneo.engine.human_step`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, NoReturn

from kneo.clock import Clock, SystemClock, utc_iso
from kneo.engine import gates
from kneo.engine.agent import AgentLoop, AgentOptions
from kneo.engine.agent_host import UnitAgentHost
from kneo.engine.bridges import AgentBridges, run_bridged_agent
from kneo.engine.budgets import BudgetExceeded, add_usage, usage_of
from kneo.engine.cancellation import CancellationToken, RunCancelled
from kneo.engine.child_step import execute_workflow_step
from kneo.engine.families import _PROGRAMS
from kneo.engine.functions import execute_function_step
from kneo.engine.human import HumanRequest, HumanResolver, build_request
from kneo.engine.human_step import execute_human_step
from kneo.engine.journal import Boundary, Journal, RunSuperseded, TraceEvent
from kneo.engine.outcomes import (
    Cancelled,
    Completed,
    Failed,
    HumanRejected,
    Outcome,
    Paused,
    StepFailure,
    Superseded,
    error_info,
)
from kneo.engine.providers.base import Provider
from kneo.engine.remote_agents import RemoteAgents, run_remote_agent
from kneo.engine.remote_tools import LazySessions, McpConnector
from kneo.engine.signals import _Failure, _Pause, _ProbeStop
from kneo.engine.state import ExecutionState
from kneo.errors import ErrorCode, KneoError
from kneo.ids import new_request_id
from kneo.kernel.code import load_code
from kneo.policy.access import HostAccess
from kneo.runtimes import RuntimeRegistry
from kneo.spec.compiled import CompiledStep, CompiledWorkflow
from kneo.tools import ToolRegistry

# --------------------------------------------------------------------------- engine


@dataclass
class EngineOptions:
    """How the engine runs a workflow (what it records, how many steps at once)."""

    record_tool_arguments: bool = False
    record_tool_results: bool = False
    max_parallel: int = 8
    extra: dict[str, Any] = field(default_factory=dict)


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
        ctx = _Run(
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

    def _outcome(self, ctx: _Run) -> Outcome:
        """Run the family's program and turn how it ended into an :data:`Outcome`."""
        state = ctx.state
        try:
            ctx.check_cancel()
            output = _PROGRAMS[ctx.workflow.family](ctx)
        except _Pause as pause:
            with state.lock:
                state.pending = [r.to_dict() for r in pause.requests]
                state.position = {}
            return Paused(tuple(pause.requests), state.snapshot())
        except _Failure as failure:
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
        ctx = _Run(
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
            _PROGRAMS[workflow.family](ctx)
        except _ProbeStop as stop:
            return stop.units
        except (_Failure, KneoError):
            return []
        return []


def _agent_of(step: Any) -> dict[str, Any]:
    """``{"agent": name}`` for an agent step (its trace event names the agent), else ``{}``."""
    agent = getattr(step, "agent", None) if step.kind == "agent" else None
    name = getattr(agent, "name", None)
    return {"agent": name} if name else {}


def _where(state: ExecutionState) -> dict[str, Any]:
    pos = state.position or {}
    return {k: pos[k] for k in ("step_id", "unit_key") if k in pos}


class _NullJournal:
    def emit(self, event: TraceEvent) -> None:
        pass

    def commit(self, boundary: Boundary) -> None:
        pass


# --------------------------------------------------------------------------- one run


class _Run:
    """Per-run context: executes units, records them, talks to the journal."""

    def __init__(
        self,
        engine: WorkflowEngine,
        workflow: CompiledWorkflow,
        state: ExecutionState,
        journal: Journal,
        run_id: str,
        cancellation: CancellationToken,
        metadata: dict[str, Any],
        *,
        probe: bool = False,
        access: HostAccess | None = None,
        nested: tuple[str, str, LazySessions] | None = None,
    ) -> None:
        self.engine = engine
        self.access = access
        self.workflow = workflow
        self.state = state
        self.journal = journal
        self.run_id = run_id
        self.cancellation = cancellation
        self.metadata = metadata
        self.probe = probe
        #: a nested workflow's unit keys start with its unit's key (``<unit>/``); its input
        #: is that unit's, and it shares the run's MCP sessions
        self.prefix, self.input_text, shared = nested or ("", state.input_text, None)
        self.mcp = shared or LazySessions(
            None if probe else engine.mcp, workflow.spec.mcp.imports, access
        )
        #: the project code this run is pinned to, loaded by path under its own namespace
        self.code = load_code(workflow.code, origin=workflow.code_root) if workflow.code else None
        #: usage of the finished units folded so far (``spent``): their records never change
        self._folded: tuple[int, set[str], dict[str, int]] = (0, set(), usage_of(()))

    def spent(self) -> dict[str, int]:
        """What every agent unit of the run has spent (budgets check it before each call):
        finished units are summed once, as they finish; only running ones each time."""
        state = self.state
        with state.lock:
            count, done, total = self._folded
            if count < len(state.order):
                new = state.order[count:]
                done = done | set(new)
                total = add_usage(total, usage_of(state.agents.get(k) or {} for k in new))
                self._folded = (len(state.order), done, total)
            live = usage_of(r for k, r in state.agents.items() if k not in done)
        return add_usage(total, live)

    # ------------------------------------------------------------------ plumbing

    def now_iso(self) -> str:
        return utc_iso(self.engine.clock.now()) or ""

    def emit(
        self,
        event_type: str,
        data: dict[str, Any],
        *,
        step_id: str | None = None,
        unit_key: str | None = None,
        at: str | None = None,
    ) -> None:
        self.journal.emit(TraceEvent(event_type, at or self.now_iso(), step_id, unit_key, data))

    def commit(
        self,
        kind: str,
        *,
        step_id: str | None,
        unit_key: str | None,
        status: str = "completed",
        attempt: int = 1,
        closing: bool = False,
        replayable: bool = False,
        before_person: bool = False,
        **metadata: Any,
    ) -> None:
        self.journal.commit(
            Boundary(
                kind=kind,
                parts=self.state.snapshot_parts(),  # decoded only if the journal asks
                step_id=step_id,
                unit_key=unit_key,
                status=status,
                attempt=attempt,
                metadata=metadata,
                closing=closing,
                replayable=replayable,
                before_person=before_person,
            )
        )

    def step_event(
        self,
        kind: str,
        key: str,
        step: CompiledStep,
        data: dict[str, Any],
        *,
        status: str = "completed",
        attempt: int = 1,
        at: str | None = None,
        **boundary: Any,
    ) -> None:
        """A unit's lifecycle change: its trace event, then a journal boundary of the same kind."""
        self.emit(kind, data, step_id=step.id, unit_key=key, at=at)
        self.commit(kind, step_id=step.id, unit_key=key, status=status, attempt=attempt, **boundary)

    def _record_error(
        self, key: str, step: CompiledStep, status: str, attempt: int, error: dict[str, Any]
    ) -> None:
        """The unit's record after a failed attempt (``retrying`` or ``failed``)."""
        with self.state.lock:
            self.state.units[key] = {
                "step_id": step.id,
                "status": status,
                "attempts": attempt,
                "error": error,
            }

    def check_cancel(self) -> None:
        self.cancellation.raise_if_cancelled()

    # ------------------------------------------------------------------ units

    def unit(
        self,
        key: str,
        step: CompiledStep,
        text: str,
        *,
        closing: bool = False,
        before_person: bool = False,
        **position: Any,
    ) -> str:
        """Execute one unit once: a completed unit returns its recorded output.

        Order: the step's ``human_review`` gates before it (confirmation, typed input), then
        the attempts under its ``on_error`` policy, then the output review (which may run the
        step again with the reviewer's feedback, up to ``max_reviews`` rounds). ``closing``:
        the program ends once this unit completes (see :attr:`Boundary.closing`);
        ``before_person``: the program's next unit is a human step (:attr:`Boundary.before_person`).
        """
        key = self.prefix + key
        done = self.state.completed(key)
        if done is not None:
            return str(done.get("output") or "")
        # A human step answered by a decision already recorded (a resume): its completion
        # follows from durable state, so its boundary may ride with the next one.
        replayable = step.kind in ("human", "workflow") and self.decision(key) is not None
        if self.probe:
            unit = {"unit_key": key, "step_id": step.id, "kind": step.kind, **position}
            raise _ProbeStop([{**unit, "decided": True} if replayable else unit])
        self.check_cancel()
        with self.state.lock:
            previous = self.state.units.get(key, {})
            attempt = int(previous.get("attempts", 0))
            self.state.position = {"unit_key": key, "step_id": step.id, **position}
        passed_on, human_input = self._before(key, step, text, attempt, previous)
        if passed_on is not None:
            return passed_on
        self.emit(
            "step_started",
            # an agent step names its agent: the observer's invoke_agent span is named by it
            {
                "kind": step.kind,
                "attempt": attempt + 1,
                **position,
                **(_agent_of(step) if step.kind == "agent" else {}),
            },
            step_id=step.id,
            unit_key=key,
        )
        reviewed = self._reviewed(key, step, text, attempt, human_input)
        if reviewed is None:  # on_error passed the input on: no review of a failure
            return str(self.state.units[key].get("output") or "")
        output, extra, attempt = reviewed
        finished = self.now_iso()  # the record and its event share one timestamp
        self._finish_unit(
            key,
            {
                "step_id": step.id,
                "status": "completed",
                "output": output,
                "attempts": attempt,
                "finished_at": finished,
                **extra,
            },
        )
        self.step_event(
            "step_completed",
            key,
            step,
            {"kind": step.kind, "attempt": attempt, "output_chars": len(output)},
            attempt=attempt,
            at=finished,
            closing=closing,
            replayable=replayable,
            before_person=before_person,
            **{k: v for k, v in position.items() if k == "node_id"},
        )
        self.check_cancel()
        return output

    def _before(
        self,
        key: str,
        step: CompiledStep,
        text: str,
        attempt: int,
        previous: Mapping[str, Any],
    ) -> tuple[str | None, dict[str, Any] | None]:
        """What people decided before the unit runs: its confirmation and typed-input gates,
        and (``on_error: pause``) the answer about its last failed attempt. ``(output, None)``
        when the unit ends here, passing ``output`` on; else ``(None, the typed input)``."""
        review = step.human_review
        if review is not None and review.requires_confirmation:
            verdict = gates.confirm(self, key, step, text)
            if verdict == "skip":
                return self._skip(key, step, text), None
            if verdict == "cancel":
                raise RunCancelled(f"step '{step.id}' was rejected; on_reject cancels the run")
            if verdict == "fail":
                rejected = HumanRejected(
                    f"step '{step.id}' was rejected before it ran", step_id=step.id
                )
                self._fail(
                    key,
                    step,
                    attempt,
                    error_info(rejected, step_id=step.id, unit_key=key, attempt=attempt),
                )
        human_input = (
            gates.collect_input(self, key, step, text)
            if review is not None and review.input_schema
            else None
        )
        if previous.get("status") == "failed" and step.on_error == "pause":
            # A person was asked about the last failed attempt: apply the answer first.
            choice = self._error_choice(key, step, attempt, previous.get("error") or {})
            if choice == "skip":
                return self._continue_past(
                    key, step, text, attempt, previous.get("error") or {}
                ), None
            if choice == "fail":
                self._fail(key, step, attempt, previous.get("error") or {})
        return None, human_input

    def _reviewed(
        self,
        key: str,
        step: CompiledStep,
        text: str,
        attempt: int,
        human_input: dict[str, Any] | None,
    ) -> tuple[str, dict[str, Any], int] | None:
        """The attempts, then review rounds until the output is accepted (each rejection runs
        the step again with the feedback; ``max_reviews`` rejections fail it). ``(output,
        extra, attempt)``, or ``None`` when ``on_error`` passed the input on."""
        review = step.human_review
        round_no, feedback = 1, None
        while True:
            reviewing = self.state.units.get(key, {})
            if reviewing.get("status") == "reviewing" and reviewing.get("round") == round_no:
                output, extra = (
                    str(reviewing.get("output") or ""),
                    dict(reviewing.get("extra") or {}),
                )
                attempt = int(reviewing.get("attempts", attempt))
            else:
                ran = self._attempts(key, step, text, attempt, round_no, human_input, feedback)
                if ran is None:
                    return None
                output, extra, attempt = ran
            if review is None or not review.review_output:
                return output, extra, attempt
            if reviewing.get("round") != round_no:
                with self.state.lock:
                    self.state.units[key] = {
                        "step_id": step.id,
                        "status": "reviewing",
                        "round": round_no,
                        "output": output,
                        "attempts": attempt,
                        "extra": extra,
                    }
                self.commit(
                    "step_output",
                    step_id=step.id,
                    unit_key=key,
                    status="reviewing",
                    attempt=attempt,
                )
            outcome = gates.review(self, key, step, round_no, output)
            if outcome.accepted:
                extra = {**extra, "review": outcome.decision, "review_rounds": round_no}
                return outcome.output, extra, attempt
            if round_no >= review.max_reviews:
                error = error_info(
                    HumanRejected(
                        f"step '{step.id}' output was rejected {round_no} times "
                        f"(max_reviews {review.max_reviews}): {outcome.feedback}",
                        code=ErrorCode.review_limit_reached,
                        step_id=step.id,
                    ),
                    step_id=step.id,
                    unit_key=key,
                    attempt=attempt,
                )
                self._fail(key, step, attempt, error)
            round_no, feedback = round_no + 1, outcome.feedback

    def _attempts(
        self,
        key: str,
        step: CompiledStep,
        text: str,
        attempt: int,
        round_no: int,
        human_input: dict[str, Any] | None,
        feedback: str | None,
    ) -> tuple[str, dict[str, Any], int] | None:
        """Attempts of one execution under ``on_error``; ``None`` when the failure was passed
        on (``continue`` or a person's ``skip``). A review round re-runs under its own key so an
        agent starts a fresh transcript with the feedback."""
        exec_key = key if round_no == 1 else f"{key}@review{round_no}"
        run_text = text
        if step.kind == "agent":
            if human_input is not None:
                run_text = gates.with_input(run_text, human_input)
            if feedback is not None:
                run_text = gates.with_feedback(run_text, feedback)
        while True:
            attempt += 1
            try:
                output, extra = self._execute(
                    exec_key, step, run_text, attempt, human_input=human_input, feedback=feedback
                )
            except (_Pause, RunCancelled, RunSuperseded):
                raise
            except Exception as exc:  # a step's own failure: apply its on_error policy
                if isinstance(exc, KneoError) and exc.retryable:
                    raise  # (a boundary the journal could not write is no failure of the step)
                if self._on_error(key, step, text, attempt, exc) is None:
                    continue  # retry
                return None
            return output, extra, attempt

    def _finish_unit(self, key: str, record: dict[str, Any]) -> None:
        """A unit ended (completed, skipped or continued): record it, clear the position."""
        with self.state.lock:
            self.state.units[key] = record
            self.state.order.append(key)
            self.state.position = {}

    def _skip(self, key: str, step: CompiledStep, text: str) -> str:
        """A confirmation was rejected with ``on_reject: skip``: record it, pass the input on."""
        self._finish_unit(
            key,
            {
                "step_id": step.id,
                "status": "skipped",
                "output": text,
                "attempts": 0,
                "finished_at": self.now_iso(),
            },
        )
        self.step_event(
            "step_skipped",
            key,
            step,
            {"kind": step.kind, "reason": "confirmation rejected"},
            status="skipped",
        )
        return text

    def _on_error(
        self, key: str, step: CompiledStep, text: str, attempt: int, exc: BaseException
    ) -> str | None:
        """Retry (returns None), continue (returns the pass-through output) or fail (raises)."""
        error = error_info(exc, step_id=step.id, unit_key=key, attempt=attempt)
        if isinstance(exc, BudgetExceeded):
            self._fail(key, step, attempt, error)  # spending more is what the budget refuses
        fault = not isinstance(exc, HumanRejected)  # a rejection is a decision, not a fault
        if step.on_error == "retry" and fault and attempt <= step.max_retries:
            delay = step.retry_backoff_seconds * (2 ** (attempt - 1))
            self._record_error(key, step, "retrying", attempt, error)
            self.step_event(
                "step_retry",
                key,
                step,
                {"attempt": attempt, "delay_seconds": delay, "error": error},
                status="retrying",
                attempt=attempt,
            )
            if delay > 0:
                self.engine.sleep(delay)
            self.check_cancel()
            return None
        if step.on_error == "pause" and fault:
            choice = self._error_choice(key, step, attempt, error)
            if choice == "retry":
                return None
            if choice == "skip":
                return self._continue_past(key, step, text, attempt, error)
        if step.on_error == "continue":
            return self._continue_past(key, step, text, attempt, error)
        self._fail(key, step, attempt, error)

    def _fail(self, key: str, step: CompiledStep, attempt: int, error: dict[str, Any]) -> NoReturn:
        with self.state.lock:
            self._record_error(key, step, "failed", attempt, error)
            self.state.failure = error
        self.step_event(
            "step_failed",
            key,
            step,
            {"kind": step.kind, "attempt": attempt, "error": error},
            status="failed",
            attempt=attempt,
        )
        raise _Failure(error)

    def _continue_past(
        self, key: str, step: CompiledStep, text: str, attempt: int, error: dict[str, Any]
    ) -> str:
        """``on_error: continue``: record the failure, pass the input on unchanged."""
        self._finish_unit(
            key,
            {
                "step_id": step.id,
                "status": "continued",
                "output": text,
                "attempts": attempt,
                "error": error,
                "finished_at": self.now_iso(),
            },
        )
        self.step_event(
            "step_failed",
            key,
            step,
            {"kind": step.kind, "attempt": attempt, "error": error, "continued": True},
            status="continued",
            attempt=attempt,
        )
        return text

    def _error_choice(
        self, key: str, step: CompiledStep, attempt: int, error: dict[str, Any]
    ) -> str:
        """``on_error: pause``: a person picks retry, skip or fail for this failed attempt."""
        wait_key = f"{key}:error:{attempt}"
        decision = self.decision(wait_key)
        if decision is None:
            self._record_error(key, step, "failed", attempt, error)
            self.commit(
                "step_failed", step_id=step.id, unit_key=key, status="failed", attempt=attempt
            )
            raise _Pause(
                [
                    self.new_request(
                        kind="error",
                        wait_key=wait_key,
                        step=step,
                        prompt=f"Step '{step.id}' failed: {error['message']}. Retry, skip or fail?",
                        options=("retry", "skip", "fail"),
                        decisions=("selected",),
                        context={"error": error},
                    )
                ]
            )
        return str(decision.get("selected_option") or "fail")

    def _execute(
        self,
        key: str,
        step: CompiledStep,
        text: str,
        attempt: int,
        *,
        human_input: dict[str, Any] | None = None,
        feedback: str | None = None,
    ) -> tuple[str, dict[str, Any]]:
        if step.kind == "function":
            output = execute_function_step(self, key, step, text, attempt, human_input, feedback)
            return output, {}
        if step.kind == "agent":
            return self.agent_unit(key, step, text), {}
        if step.kind == "human":
            return execute_human_step(self, key, step, text)
        if step.kind == "workflow":
            return execute_workflow_step(self, key, step, text)
        raise StepFailure(
            f"step '{step.id}' has unknown kind {step.kind!r}", code=ErrorCode.E_SCHEMA
        )

    def agent_unit(self, key: str, step: CompiledStep, text: str) -> str:
        """An agent's answer as unit ``key`` (a step, or a tool an agent answers): its
        backing workflow, the remote agent answering for it, else the agent loop."""
        if step.workflow is not None:
            return self.nested(key, step.workflow, text)
        if step.agent is not None and step.agent.remote is not None:
            return run_remote_agent(self, key, step, text)
        if step.agent is not None and step.agent.implementation is not None:
            return run_bridged_agent(self, key, step, text)
        return self.engine.agents.run(UnitAgentHost(self, key, step), step, text)

    def nested(self, key: str, workflow: CompiledWorkflow, text: str) -> str:
        """Run ``workflow`` (backing an agent) as part of unit ``key``: its units are this
        run's, keyed ``<key>/<unit>``, so a pause inside it resumes there and its completed
        units never run again."""
        sub = _Run(
            self.engine,
            replace(
                workflow,
                metadata=self.workflow.metadata,
                code=self.workflow.code,
                code_root=self.workflow.code_root,
            ),
            self.state,
            self.journal,
            self.run_id,
            self.cancellation,
            self.metadata,
            access=self.access,
            nested=(f"{key}/", text, self.mcp),
        )
        return _PROGRAMS[workflow.family](sub)

    # ------------------------------------------------------------------ people

    def decision(self, wait_key: str) -> dict[str, Any] | None:
        with self.state.lock:
            found = self.state.decisions.get(wait_key)
            return dict(found) if found is not None else None

    def ask(
        self, *, kind: str, wait_key: str, step: CompiledStep, prompt: str, **fields: Any
    ) -> dict[str, Any]:
        """The decision recorded for ``wait_key``, or pause with a new request for it."""
        decision = self.decision(wait_key)
        if decision is None:
            raise _Pause(
                [self.new_request(kind=kind, wait_key=wait_key, step=step, prompt=prompt, **fields)]
            )
        return decision

    def new_request(
        self, *, kind: str, wait_key: str, step: CompiledStep, prompt: str, **fields: Any
    ) -> HumanRequest:
        """A request for ``wait_key``; an already pending one keeps its id and timestamps."""
        with self.state.lock:
            for existing in self.state.pending:
                if existing.get("wait_key") == wait_key:
                    return HumanRequest.from_dict(existing)
        return build_request(
            request_id=self.engine.request_ids(),
            kind=kind,
            wait_key=wait_key,
            step_id=step.id,
            prompt=prompt,
            now=self.engine.clock.now(),
            **fields,
        )
