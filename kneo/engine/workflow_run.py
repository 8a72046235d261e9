"""One run of a workflow: :class:`WorkflowRun`, what the workflow families and step kinds run in.

A run holds what one call of ``WorkflowEngine.run`` works with (the workflow, its durable
execution state, the journal, who it runs for, its MCP sessions and pinned code) and one
unit's lifecycle over it: :meth:`WorkflowRun.unit` returns the recorded output of a completed
unit without executing anything, else runs the step's ``human_review`` gates before it, the
attempts under ``on_error`` (the policies in :mod:`kneo.engine.unit_failures`), then the
output review. What each step kind does lives beside it: function steps in
:mod:`kneo.engine.functions`, agent steps in :mod:`kneo.engine.agent` (reached through
:mod:`kneo.engine.agent_host`, or :mod:`kneo.engine.remote_agents` and
:mod:`kneo.engine.bridges`), human steps in :mod:`kneo.engine.human_step`, child runs in
:mod:`kneo.engine.child_step`; each is handed the run itself (naming this class under
``TYPE_CHECKING`` only, since the run imports them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from kneo.clock import utc_iso
from kneo.engine import gates
from kneo.engine.agent_host import UnitAgentHost
from kneo.engine.bridges import run_bridged_agent
from kneo.engine.budgets import add_usage, usage_of
from kneo.engine.cancellation import CancellationToken, RunCancelled
from kneo.engine.child_step import execute_workflow_step
from kneo.engine.families import PROGRAMS
from kneo.engine.functions import execute_function_step
from kneo.engine.human import HumanRequest, build_request
from kneo.engine.human_step import execute_human_step
from kneo.engine.journal import Boundary, Journal, RunSuperseded, TraceEvent
from kneo.engine.outcomes import HumanRejected, StepFailure, error_info
from kneo.engine.remote_agents import run_remote_agent
from kneo.engine.remote_tools import LazySessions
from kneo.engine.signals import ProbeStop, RunPaused
from kneo.engine.state import ExecutionState
from kneo.engine.unit_failures import continue_past, error_choice, fail, finish_unit, on_error, skip
from kneo.errors import ErrorCode, KneoError
from kneo.kernel.code import load_code
from kneo.policy.access import HostAccess
from kneo.spec.compiled import CompiledStep, CompiledWorkflow

if TYPE_CHECKING:  # (the engine makes runs: it imports this module)
    from kneo.engine.executor import WorkflowEngine

__all__ = ["WorkflowRun"]


def _agent_of(step: Any) -> dict[str, Any]:
    """``{"agent": name}`` for an agent step (its trace event names the agent), else ``{}``."""
    agent = getattr(step, "agent", None) if step.kind == "agent" else None
    name = getattr(agent, "name", None)
    return {"agent": name} if name else {}


class WorkflowRun:
    """One run (or a nested workflow's part of it): executes units, records them in the
    execution state, talks to the journal. Made per call by ``WorkflowEngine``; all it
    remembers is in ``state``, but for the usage it already summed (:meth:`spent`).

    A nested workflow (one backing an agent) is a run of its own over the same state: its
    unit keys start with :attr:`prefix` and its input is its unit's. Keyword fields (a
    unit's position, a boundary's metadata, a request's fields) go into JSON records as
    given."""

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
        """The engine clock's now, as the run's records stamp it."""
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
        """A trace event (buffered by the journal until the next boundary)."""
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
        """A journal boundary: the state as it is now becomes durable."""
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

    def check_cancel(self) -> None:
        """Raise :class:`~kneo.engine.cancellation.RunCancelled` if the run was cancelled."""
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
            raise ProbeStop([{**unit, "decided": True} if replayable else unit])
        self.check_cancel()
        passed_on, human_input, attempt = self._before(key, step, text, position)
        if passed_on is not None:
            return passed_on
        reviewed = self._reviewed(key, step, text, attempt, human_input)
        if reviewed is None:  # on_error passed the input on: no review of a failure
            return str(self.state.units[key].get("output") or "")
        output, extra, attempt = reviewed
        finished = self.now_iso()  # the record and its event share one timestamp
        finish_unit(
            self.state,
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
        self, key: str, step: CompiledStep, text: str, position: Mapping[str, Any]
    ) -> tuple[str | None, dict[str, Any] | None, int]:
        """The unit's start: its position, then what people decided before it runs (its
        confirmation and typed-input gates, and with ``on_error: pause`` the answer about its
        last failed attempt), then its ``step_started`` event. ``(output, None, attempts)``
        when the unit ends here, passing ``output`` on; else ``(None, the typed input,
        attempts so far)``."""
        with self.state.lock:
            previous = self.state.units.get(key, {})
            attempt = int(previous.get("attempts", 0))
            self.state.position = {"unit_key": key, "step_id": step.id, **position}
        review = step.human_review
        if review is not None and review.requires_confirmation:
            verdict = gates.confirm(self, key, step, text)
            if verdict == "skip":
                return skip(self, key, step, text), None, attempt
            if verdict == "cancel":
                raise RunCancelled(f"step '{step.id}' was rejected; on_reject cancels the run")
            if verdict == "fail":
                rejected = HumanRejected(
                    f"step '{step.id}' was rejected before it ran", step_id=step.id
                )
                fail(
                    self,
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
            choice = error_choice(self, key, step, attempt, previous.get("error") or {})
            if choice == "skip":
                error = previous.get("error") or {}
                return continue_past(self, key, step, text, attempt, error), None, attempt
            if choice == "fail":
                fail(self, key, step, attempt, previous.get("error") or {})
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
        return None, human_input, attempt

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
                fail(self, key, step, attempt, error)
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
            except (RunPaused, RunCancelled, RunSuperseded):
                raise
            except Exception as exc:  # a step's own failure: apply its on_error policy
                if isinstance(exc, KneoError) and exc.retryable:
                    raise  # (a boundary the journal could not write is no failure of the step)
                if on_error(self, key, step, text, attempt, exc) is None:
                    continue  # retry
                return None
            return output, extra, attempt

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
        sub = WorkflowRun(
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
        return PROGRAMS[workflow.family](sub)

    # ------------------------------------------------------------------ people

    def decision(self, wait_key: str) -> dict[str, Any] | None:
        """The decision recorded for ``wait_key`` (a copy), if any."""
        with self.state.lock:
            found = self.state.decisions.get(wait_key)
            return dict(found) if found is not None else None

    def ask(
        self, *, kind: str, wait_key: str, step: CompiledStep, prompt: str, **fields: Any
    ) -> dict[str, Any]:
        """The decision recorded for ``wait_key``, or pause with a new request for it."""
        decision = self.decision(wait_key)
        if decision is None:
            raise RunPaused(
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
