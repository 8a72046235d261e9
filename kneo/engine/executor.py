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
unit completion or failure, per agent turn and per tool result) and returns an outcome:
:class:`Completed`, :class:`Paused` (with one or more pending requests), :class:`Failed`,
:class:`Cancelled` or :class:`Superseded`. The final write of the outcome is the caller's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

from kneo.clock import Clock, SystemClock, utc_iso
from kneo.engine import gates
from kneo.engine.agent import AgentLoop, AgentOptions
from kneo.engine.budgets import BudgetExceeded, add_usage, usage_of
from kneo.engine.cancellation import CancellationToken, RunCancelled
from kneo.engine.families import _PROGRAMS
from kneo.engine.functions import (
    StepContext,
    arity_of,
    as_text,
    call_function,
    resolve_function,
)
from kneo.engine.human import (
    QUESTION_TOOL,
    HumanDecision,
    HumanInterventionRequest,
    HumanRequest,
    HumanResolver,
    build_request,
)
from kneo.engine.journal import Boundary, Journal, RunSuperseded, TraceEvent
from kneo.engine.providers.base import Provider
from kneo.engine.remote_tools import LazySessions, McpConnector
from kneo.engine.signals import _Failure, _Pause, _ProbeStop
from kneo.engine.state import ExecutionState, StateParts
from kneo.errors import ErrorCode, KneoError
from kneo.ids import new_request_id
from kneo.policy.access import HostAccess
from kneo.redaction import redact_text
from kneo.runtimes import RuntimeRegistry
from kneo.spec.compiled import CompiledStep, CompiledWorkflow
from kneo.tools import ToolRegistry

_PREVIEW_CHARS = 2000


# --------------------------------------------------------------------------- outcomes


@dataclass(frozen=True)
class Completed:
    output_text: str
    state: dict[str, Any]
    #: ``state``'s text and the texts it was joined from, when the engine made them (the
    #: outcome's journal writes the state from them instead of encoding it again)
    parts: StateParts | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Paused:
    requests: tuple[HumanRequest, ...]
    state: dict[str, Any]


@dataclass(frozen=True)
class Failed:
    error: dict[str, Any]
    state: dict[str, Any]


@dataclass(frozen=True)
class Cancelled:
    reason: str
    state: dict[str, Any]


@dataclass(frozen=True)
class Superseded:
    """The run was changed elsewhere mid-execution; nothing more was written."""

    reason: str
    status: str | None
    state: dict[str, Any]


Outcome = Completed | Paused | Failed | Cancelled | Superseded


class StepFailure(KneoError):
    code = ErrorCode.step_failed


def error_info(exc: BaseException, **where: Any) -> dict[str, Any]:
    """A JSON error summary (stable code, one redacted line), never a traceback."""
    code = exc.code if isinstance(exc, KneoError) else ErrorCode.step_error
    message = exc.message if isinstance(exc, KneoError) else f"{type(exc).__name__}: {exc}"
    line = " ".join(redact_text(str(message)).split())[:500]
    return {"code": code, "type": type(exc).__name__, "message": line, **where}


# --------------------------------------------------------------------------- engine


@dataclass
class EngineOptions:
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
    ) -> None:
        self.clock: Clock = clock or SystemClock()
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
        ensure_import_roots(workflow)
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


def ensure_import_roots(workflow: CompiledWorkflow) -> None:
    """Make the spec's import roots (its directory up to the project root) importable, after
    everything already on ``sys.path`` so they never shadow installed packages."""
    import sys

    for root in workflow.metadata.get("import_roots") or ():  # type: ignore[attr-defined]
        if isinstance(root, str) and root not in sys.path:
            sys.path.append(root)


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
        self.mcp = LazySessions(None if probe else engine.mcp, workflow.spec.mcp.imports, access)
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
        self, key: str, step: CompiledStep, text: str, *, closing: bool = False, **position: Any
    ) -> str:
        """Execute one unit once: a completed unit returns its recorded output.

        Order: the step's ``human_review`` gates before it (confirmation, typed input), then
        the attempts under its ``on_error`` policy, then the output review (which may run the
        step again with the reviewer's feedback, up to ``max_reviews`` rounds). ``closing``:
        the program ends once this unit completes (see :attr:`Boundary.closing`).
        """
        done = self.state.completed(key)
        if done is not None:
            return str(done.get("output") or "")
        # A human step answered by a decision already recorded (a resume): its completion
        # follows from durable state, so its boundary may ride with the next one.
        replayable = step.kind == "human" and self.decision(key) is not None
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
            {"kind": step.kind, "attempt": attempt + 1, **position},
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
            "step_skipped", key, step, {"reason": "confirmation rejected"}, status="skipped"
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
            {"attempt": attempt, "error": error},
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
            {"attempt": attempt, "error": error, "continued": True},
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
            return self._function(key, step, text, attempt, human_input, feedback), {}
        if step.kind == "agent":
            host = _AgentHost(self, key, step)
            return self.engine.agents.run(host, step, text), {}
        if step.kind == "human":
            return self._human(key, step, text)
        raise StepFailure(
            f"step '{step.id}' has unknown kind {step.kind!r}", code=ErrorCode.E_SCHEMA
        )

    def _function(
        self,
        key: str,
        step: CompiledStep,
        text: str,
        attempt: int,
        human_input: dict[str, Any] | None = None,
        feedback: str | None = None,
    ) -> str:
        ref = step.function_ref or step.ref
        override = self.engine.functions.get(ref) or self.engine.functions.get(step.id)
        if override is not None:
            fn, arity = override, arity_of(override)
        else:
            fn, arity = resolve_function(ref)
        # A one-parameter ``fn(text)`` never sees the context: do not build it.
        context = (
            StepContext(
                run_id=self.run_id,
                step_id=step.id,
                unit_key=key,
                attempt=attempt,
                input_text=self.state.input_text,
                outputs=self.state.outputs_by_step(),
                metadata=self.metadata,
                cancellation=self.cancellation,
                human_input=human_input,
                review_feedback=feedback,
            )
            if arity == 2
            else None
        )
        if step.timeout_seconds is None:
            return call_function(fn, arity, text, context)
        box: dict[str, Any] = {}

        def target() -> None:
            try:
                box["output"] = call_function(fn, arity, text, context)
            except BaseException as exc:  # re-raised in the calling thread
                box["error"] = exc

        worker = threading.Thread(target=target, name=f"kneo-step-{step.id}", daemon=True)
        worker.start()
        worker.join(step.timeout_seconds)
        if worker.is_alive():
            raise StepFailure(
                f"step '{step.id}' exceeded its timeout of {step.timeout_seconds:g}s",
                code=ErrorCode.step_timeout,
            )
        if "error" in box:
            raise box["error"]
        return str(box["output"])

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

    def _human(self, key: str, step: CompiledStep, text: str) -> tuple[str, dict[str, Any]]:
        component = step.human
        prompt = (component.prompt or component.description if component else None) or (
            f"Approve step '{step.id}'?"
        )
        builder = self.engine.prompts.get(step.id)
        if builder is not None:
            prompt = builder([*self.state.outputs_by_step().values()] or [text], self.metadata)
        decision = self.decision(key)
        if decision is None:
            decision = self._resolve_inline(key, step, prompt, text)
        options = tuple(component.options) if component else ()
        route = (
            bool(options)
            and self.workflow.family == "graph"
            and set(options) <= set(self.workflow.step_ids)
        )
        if decision is None:
            raise _Pause(
                [
                    self.new_request(
                        kind="route" if route else "approval",
                        wait_key=key,
                        step=step,
                        prompt=prompt,
                        assignee=component.assignee if component else None,
                        options=tuple(component.options) if component else (),
                        input_schema=component.input_schema if component else None,
                        decisions=component.decisions if component else None,
                        context={"step_id": step.id, "input_preview": text[:_PREVIEW_CHARS]},
                        timeout_seconds=component.timeout_seconds if component else None,
                        on_timeout=component.on_timeout if component else "fail",
                        escalate_to=component.escalate_to if component else None,
                    )
                ]
            )
        return apply_decision(step, text, decision, route=route)

    def _resolve_inline(
        self, key: str, step: CompiledStep, prompt: str, text: str
    ) -> dict[str, Any] | None:
        resolver = self.engine.resolvers.get(step.id)
        if resolver is None:
            return None
        answer = resolver(
            HumanInterventionRequest(
                step_name=step.id,
                prompt=prompt,
                input_text=text,
                messages=tuple(self.state.outputs_by_step().values()),
                metadata=self.metadata,
            )
        )
        if answer is None:
            return None
        decision = HumanDecision(
            request_id="inline",
            decision="approved",
            content=answer,
            actor="resolver",
            decided_at=self.now_iso(),
        ).to_dict()
        with self.state.lock:
            self.state.decisions[key] = decision
        return decision


class HumanRejected(KneoError):
    code = ErrorCode.human_rejected


def apply_decision(
    step: CompiledStep, text: str, decision: Mapping[str, Any], *, route: bool = False
) -> tuple[str, dict[str, Any]]:
    """A human unit's output from its decision: approve passes the input on, edit/provide
    replace it, select names the option (and the route), reject fails the step. A route
    selection (options are graph nodes) passes the input on and routes to the option. An
    inline resolver's answer passes the input on with the answer appended as a message."""
    name = decision.get("decision")
    extra: dict[str, Any] = {"decision": name, "content_present": bool(decision.get("content"))}
    if name == "rejected":
        reason = decision.get("content") or "no reason given"
        raise HumanRejected(f"step '{step.id}' was rejected: {reason}", step_id=step.id)
    if name in ("edited", "provided"):
        return as_text(decision.get("content")), extra
    if name == "selected":
        option = str(decision.get("selected_option") or "")
        extra["route"] = option
        extra["selected_option"] = option
        return (text if route else option), extra
    if decision.get("content") and decision.get("actor") == "resolver":
        # An inline resolver's string is the person's message: it joins the conversation
        # the next step receives (SDK guide: "appended as a human message").
        message = str(decision["content"])
        extra["human_message"] = message
        return (f"{text}\n\n{message}" if text else message), extra
    return text, extra


class _AgentHost:
    """The engine side of :class:`~kneo.engine.agent.AgentHost` for one agent unit."""

    def __init__(self, run: _Run, unit_key: str, step: CompiledStep) -> None:
        self._run = run
        self.unit_key = unit_key
        self.step_id = step.id
        self._step = step
        self.lock = run.state.lock
        self.access = run.access

    def emit(self, event_type: str, data: dict[str, Any]) -> None:
        self._run.emit(event_type, data, step_id=self.step_id, unit_key=self.unit_key)

    def commit(self, kind: str) -> None:
        self._run.commit(kind, step_id=self.step_id, unit_key=self.unit_key, status="running")

    def checkpoint_cancel(self) -> None:
        self._run.check_cancel()

    def agent_record(self) -> dict[str, Any]:
        with self.lock:
            return self._run.state.agents.setdefault(self.unit_key, {})

    def decision(self, wait_key: str) -> dict[str, Any] | None:
        return self._run.decision(wait_key)

    def previous_transcript(self, agent_name: str) -> list[dict[str, Any]] | None:
        """The newest completed transcript of the same agent in this run (buffer memory)."""
        state = self._run.state
        with self.lock:
            for key in reversed(state.order):
                record = state.agents.get(key)
                if record and record.get("agent") == agent_name and record.get("messages"):
                    return [dict(m) for m in record["messages"]]
        return None

    def pause(self, requests: Sequence[HumanRequest]) -> NoReturn:
        raise _Pause(list(requests))

    def mcp(self) -> LazySessions | None:
        return self._run.mcp

    def new_request(self, **fields: Any) -> HumanRequest:
        return self._run.new_request(step=self._step, **fields)

    def run_usage(self) -> dict[str, int]:
        return self._run.spent()

    def question_index(self, call_id: str) -> int:
        """1-based index of an ``ask_question`` call in the run: calls in completed units (in
        completion order) plus those of this unit up to ``call_id``. Deterministic, so the
        wait name is the same on resume and on replay."""
        state = self._run.state

        def calls(record: dict[str, Any] | None) -> list[str]:
            return [
                c.get("id", "")
                for m in (record or {}).get("messages") or []
                for c in m.get("tool_calls") or []
                if c.get("name") == QUESTION_TOOL
            ]

        with self.lock:
            earlier = sum(
                len(calls(state.agents.get(k))) for k in state.order if k != self.unit_key
            )
            mine = calls(state.agents.get(self.unit_key))
        return earlier + (mine.index(call_id) + 1 if call_id in mine else len(mine) + 1)
