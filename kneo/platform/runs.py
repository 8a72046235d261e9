"""Runs: starting, executing, cancelling, continuing and replaying runs.

Every new run is prepared first (:class:`~kneo.platform.preparation.SpecPreparation`, which
asks the admission gate), a replay asks the gate as a start does, a queued run is admitted
again before it executes (:meth:`~kneo.platform.admission.RunAdmission.readmit`), and every
run that executes here is driven by the :class:`~kneo.platform.driver.RunDriver`. Each status change is one
compare-and-set transaction through :func:`kneo.lifecycle.transition`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kneo import metrics
from kneo.clock import Clock, utc_iso
from kneo.engine.state import ExecutionState
from kneo.errors import DatabaseUnavailable, IllegalTransition, InvalidRequest, ResourceLocked
from kneo.jsontext import content_hash
from kneo.kernel.code import load_code
from kneo.lifecycle import RunStatus, hand_off, handoff_of, phase_of, take_over, transition
from kneo.platform.admission import RunAdmission
from kneo.platform.driver import RunDriver
from kneo.platform.handoff import HandOff, claimed_event, executor
from kneo.platform.inspect import owner_alive
from kneo.platform.journal import checkpoint_payload
from kneo.platform.preparation import PreparedSpec, RunRequest, SpecPreparation, create_run
from kneo.platform.results import RunResult
from kneo.platform.run_code import move_code
from kneo.redaction import redact_mapping
from kneo.settings import Settings
from kneo.spec.extensions import SkillsOverlay
from kneo.spec.models import Spec
from kneo.store import RunRecord, Store, Transaction

if TYPE_CHECKING:
    from kneo.store.wire.executor import HeldConnection


def _accepted(exc: DatabaseUnavailable, run_id: str) -> DatabaseUnavailable:
    """The database went away after ``run_id`` was created: say so, so a caller polls the
    run instead of starting another (the stranded-run sweep continues it)."""
    return DatabaseUnavailable(
        f"{exc.message}; run {run_id} was created and will continue from its last completed "
        "step once the database is back",
        run_id=run_id,
    )


def paused_continuation(run: RunRecord) -> str | None:
    """The continuation a paused run waits on (``None`` when it is not paused)."""
    return (run.state or {}).get("continuation_id") if run.status == RunStatus.PAUSED else None


def end_run(
    tx: Transaction,
    run: RunRecord,
    status: RunStatus,
    continuation_id: str | None,
    *,
    step_id: str | None = None,
    trace_payload: Mapping[str, Any] | None = None,
    **changes: Any,
) -> RunRecord:
    """Write ``run``'s final ``status`` (cancelled, timed out, expired) in ``tx``: the run row
    (with ``changes``), its continuation dropped, a ``run_<status>`` trace event (by default
    naming the previous status) and a checkpoint of its state. Returns the updated row."""
    event = f"run_{status.value}"
    updated = tx.update_run(
        run.run_id, expected_version=run.version, status=status, finished_at=tx.now, **changes
    )
    if continuation_id:
        tx.delete_continuation(continuation_id)
    payload = trace_payload if trace_payload is not None else {"previous_status": run.status}
    tx.add_trace_events(run.run_id, [{"event_type": event, "step_id": step_id, "payload": payload}])
    tx.add_checkpoint(
        run.run_id, type=event, status=status.value, payload=checkpoint_payload(run.state or {})
    )
    return updated


@dataclass(kw_only=True, eq=False, repr=False)
class Runs:
    """The run lifecycle of one process (see the module docstring)."""

    store: Store
    clock: Clock
    settings: Settings
    preparation: SpecPreparation
    admission: RunAdmission
    driver: RunDriver
    #: whether a continue hands the run to the workers (shared with
    #: :class:`~kneo.platform.decisions.Decisions`; :mod:`kneo.platform.handoff`)
    handoff: HandOff = field(default_factory=HandOff)

    # ------------------------------------------------------------------ starting runs

    def run(
        self, request: RunRequest, *, on_created: Callable[[str], None] | None = None
    ) -> RunResult:
        """Create a run and execute it now; returns when it finishes or pauses.
        ``on_created`` gets the run id before it executes (to follow its events)."""
        if request.timeout_seconds is not None:
            raise InvalidRequest(
                "timeout_seconds applies to async_mode runs", field="timeout_seconds"
            )
        self.admission.within_limits(queued=False)
        prepared = self.preparation.prepare(request)
        held = self.store.hold_connection()  # the creation's, then the run's steps'
        try:
            run = self._create(prepared, request, start=True, connection=held)
            if on_created is not None:
                on_created(run.run_id)
            try:
                return self.driver.drive(run, prepared.workflow, connection=held)
            except DatabaseUnavailable as exc:
                raise _accepted(exc, run.run_id) from exc
        finally:
            held.close()  # (a no-op once the run's journal gave it back)

    def start_run(self, request: RunRequest) -> RunResult:
        """Create a queued run (with ``deadline_at`` when the request has
        ``timeout_seconds``) for a worker; :meth:`execute_run` runs it."""
        timeout = request.timeout_seconds
        if timeout is not None and timeout <= 0:
            raise InvalidRequest(
                "timeout_seconds must be greater than zero", field="timeout_seconds"
            )
        self.admission.within_limits(queued=True)
        prepared = self.preparation.prepare(request)
        deadline = self.clock.now() + timedelta(seconds=timeout) if timeout else None
        run = self._create(prepared, request, start=False, deadline_at=deadline)
        # queued: this process's worker, and (PostgreSQL) the others', claim it now
        self.store.wakeups.queued(run.run_id)
        return self.driver.result(run)

    def run_from_spec(
        self,
        *,
        input_text: str,
        spec_path: str | Path | None = None,
        spec: Spec | Mapping[str, Any] | None = None,
        target: str = "workflow",
        environment: str | None = None,
        overrides: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        actor: str | None = None,
        on_created: Callable[[str], None] | None = None,
        skills: SkillsOverlay | Mapping[str, Any] | None = None,
    ) -> RunResult:
        """:meth:`run` with the request's fields as keywords (the documented Python API)."""
        request = RunRequest(
            input_text=input_text,
            spec_path=spec_path,
            spec=spec,
            target=target,
            environment=environment,
            overrides=overrides,
            metadata=metadata,
            actor=actor,
            skills=overlay_of(skills),
        )
        return self.run(request, on_created=on_created)

    def start_run_from_spec(
        self,
        *,
        input_text: str,
        spec_path: str | Path | None = None,
        spec: Spec | Mapping[str, Any] | None = None,
        target: str = "workflow",
        environment: str | None = None,
        overrides: Mapping[str, Any] | None = None,
        timeout_seconds: float | None = None,
        metadata: Mapping[str, Any] | None = None,
        actor: str | None = None,
        skills: SkillsOverlay | Mapping[str, Any] | None = None,
    ) -> RunResult:
        """:meth:`start_run` with the request's fields as keywords (the documented Python
        API)."""
        request = RunRequest(
            input_text=input_text,
            spec_path=spec_path,
            spec=spec,
            target=target,
            environment=environment,
            overrides=overrides,
            metadata=metadata,
            actor=actor,
            timeout_seconds=timeout_seconds,
            skills=overlay_of(skills),
        )
        return self.start_run(request)

    def execute_run(self, run_id: str, *, run: RunRecord | None = None) -> RunResult:
        """Execute a queued run in this process (what a worker calls), admitted again first.
        ``run``: its record as the caller just read it, so it is not read again (the start is
        a compare-and-set on its version either way)."""
        run = run if run is not None and run.run_id == run_id else self.store.runs.get_run(run_id)
        status = (
            transition(run.status, RunStatus.RUNNING, action="execute the run")
            if run.status == RunStatus.QUEUED
            else None
        )
        if status is None:
            raise IllegalTransition(
                f"cannot execute run {run_id}: it is {run.status}, not queued"
                + ("; use continue_run for an interrupted run" if run.status == "running" else ""),
                current_status=run.status,
            )
        owner = self.driver.owner
        workflow = self.driver.workflow_for(run)  # before the write lock: it may compile
        with self.store.transaction() as tx:
            # The same gate as at accept time, again now: the environment's rules may have
            # changed while the run waited in the queue. A refusal writes nothing here.
            self.admission.readmit(run, tx)
            self.admission.take_slot(tx)  # the project's max_running_runs, when it has one
            # The update next: it reads the run's counters, so the event is numbered in memory.
            run = tx.update_run(
                run_id, expected_version=run.version, status=status, started_at=tx.now
            )
            tx.add_trace_events(
                run_id, [{"event_type": "run_started", "payload": {"owner": owner}}]
            )
            tx.take_run_lease(run_id, owner, self.driver.lease_seconds)
            run = tx.current(run)
        return self.driver.drive(run, workflow)

    def replay_run(
        self, run_id: str, *, reuse: str = "questions", actor: str | None = None
    ) -> RunResult:
        """Run ``run_id`` again as a new run (same spec, input and environment) that reuses
        its recorded answers: ``questions`` (``ask_question`` waits) or ``all`` decisions.
        A reused answer does not pause; anything new still does. A replay is a new run: the
        admission gate decides as for a start (:meth:`RunAdmission.admit_replay`)."""
        if reuse not in ("questions", "all"):
            raise InvalidRequest("reuse must be 'questions' or 'all'", field="reuse")
        source = self.store.runs.get_run(run_id)
        self.admission.within_limits(queued=False)
        pinned = self.admission.admit_replay(source)
        decisions = {
            k: v
            for k, v in ((source.state or {}).get("decisions") or {}).items()
            if reuse == "all" or k.startswith("ask_question:")
        }
        meta = source.metadata or {}
        workflow = self.driver.workflow_for(source)
        prepared = PreparedSpec(
            workflow=workflow,
            data=source.spec or {},
            digest=source.spec_digest or content_hash(source.spec),
            target=source.target,
            environment=source.environment,
            base_dir=meta.get("base_dir"),
            spec_path=meta.get("spec_path"),
            bundle_fields=pinned.run_fields() if pinned is not None else {},
        )
        request = RunRequest(
            input_text=source.input_text, actor=actor, metadata={"replay_of": run_id}
        )
        run = self._create(prepared, request, start=True, decisions=decisions)
        return self.driver.drive(run, workflow)

    # ------------------------------------------------------------------ cancel / continue

    def cancel(self, run_id: str, *, actor: str | None = None) -> RunResult:
        """Cancel a queued, running or paused run now. A step in flight finishes, but its
        result is never committed: the run's version moved on, so its write is refused."""
        run = self.store.runs.get_run(run_id)
        status = transition(phase_of(run), RunStatus.CANCELLED, action="cancel the run")
        with self.store.transaction() as tx:
            updated = end_run(tx, run, status, paused_continuation(run), cancel_requested=True)
            tx.add_audit(
                "run.cancelled", actor=actor, run_id=run_id, payload={"previous_status": run.status}
            )
            updated = tx.current(updated)
        metrics.record_run(
            updated.status, updated.started_at, updated.finished_at, project=self.store.project
        )
        result = self.driver.result(updated)
        self.driver.signal_cancel(run_id, "cancelled")
        if self.driver.after_cancel is not None:  # its children too (kneo.platform.children)
            self.driver.after_cancel(run, updated)
        return result

    def continue_run(
        self,
        run_id: str,
        *,
        actor: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        hand_off: bool | None = None,
        to_revision: int | str | None = None,
        run: RunRecord | None = None,
    ) -> RunResult:
        """Continue a run whose process died (or whose step failed) from its last completed
        step boundary; completed steps and agent turns are not executed again. ``metadata``
        is stored with the ``run.continued`` audit event and the ``run_continued`` trace event.

        ``to_revision`` first moves the run to newer code on purpose
        (:func:`~kneo.platform.run_code.move_code`: a revision number or ``active`` for a
        bundle run, ``current`` for a spec run); a paused run then stays paused, on that code.

        ``hand_off`` (default: whether workers exist, ``handoff.enabled``): record the
        continue and queue the run for a worker instead of driving it here; the result is
        the run as queued (``handed_off``). A run already queued that way is left as it is.
        What a worker calls (``hand_off=False``) on a run handed to it takes the run over
        (:meth:`_take_over`). ``run``: the run as its caller just read it (a worker), else
        read here."""
        if to_revision is not None:
            moved = move_code(self.store, self.driver, run_id, to_revision, actor=actor)
            if moved.status == RunStatus.PAUSED:
                return self.driver.result(moved)
            run = None  # moved: read it again
        if run is None or run.run_id != run_id:
            run = self.store.runs.get_run(run_id)
        _check_continuable(run)
        self._check_not_held(run_id)
        queue = self.handoff.enabled if hand_off is None else hand_off
        marker = handoff_of(run)
        if marker is not None:
            if queue:  # already waiting for a worker: nothing more to record
                return replace(self.driver.result(run), handed_off=True)
            return self._take_over(run, marker, actor)
        workflow = None if queue else self.driver.workflow_for(run)
        updated = self._restart(run, queue=queue, actor=actor, metadata=metadata)
        if workflow is None:
            self.store.wakeups.queued(run_id)
            return replace(self.driver.result(updated), handed_off=True)
        return self.driver.drive(updated, workflow)

    def _restart(
        self,
        run: RunRecord,
        *,
        queue: bool,
        actor: str | None,
        metadata: Mapping[str, Any] | None,
    ) -> RunRecord:
        """Move ``run`` back to ``running`` from its last boundary (its failure cleared) and
        record the continue (trace and audit); ``queue``: marked and queued for a worker,
        else leased to this process's owner in the same compare-and-set."""
        run_id = run.run_id
        state = ExecutionState(run.state)
        state.failure = None
        snapshot = state.snapshot()
        event: dict[str, Any] = {"previous_status": run.status}
        action = "continue the run"
        if queue:
            marker = {"kind": "continue", "at": utc_iso(self.clock.now())}
            status = hand_off(run, snapshot, marker, action=action)
            event["handed_off"] = True
        else:
            status = transition(phase_of(run), RunStatus.RUNNING, action=action)
            event |= executor(self.driver.owner)
        if metadata:  # a trace row is written as given: redacted here (audit rows are)
            event["metadata"] = redact_mapping(dict(metadata))
        with self.store.transaction() as tx:
            if not queue:  # written by the compare-and-set below (_check_not_held: no holder)
                tx.take_run_lease(run_id, self.driver.owner, self.driver.lease_seconds)
            updated = tx.update_run(
                run_id,
                expected_version=run.version,
                status=status,
                error=None,
                finished_at=None,
                state=snapshot,
            )
            tx.add_trace_events(run_id, [{"event_type": "run_continued", "payload": event}])
            tx.add_audit(
                "run.continued",
                actor=actor,
                run_id=run_id,
                payload={
                    "previous_status": run.status,
                    "completed_steps": state.completed_steps(),
                    **({"handed_off": True} if queue else {}),
                    **({"metadata": dict(metadata)} if metadata else {}),
                },
            )
            if queue:
                tx.enqueue(run_id)
            return tx.current(updated)

    def _check_not_held(self, run_id: str) -> None:
        """``resource_locked`` while a live process executes the run; a lease left by a
        process that is gone (on this host) is released."""
        holder = self.store.queue.run_lease(run_id)
        if holder is not None and holder.owner != self.driver.owner:
            if owner_alive(holder.owner):
                raise ResourceLocked(
                    f"run {run_id} is still executing ({holder.owner})", lock=f"run:{run_id}"
                )
            self.store.queue.release_run_lease(run_id, holder.owner)  # its process is gone

    def _take_over(self, run: RunRecord, marker: Mapping[str, Any], actor: str | None) -> RunResult:
        """Drive a run a decision or continue handed to the workers: one compare-and-set
        takes its lease, drops the mark and records who executes it (``run_claimed``: owner,
        host, PID), so of two processes taking it over one drives it and the other reads
        ``stale_state``. The run's span links to the pause's trace context, as a resume in
        the request does."""
        workflow = self.driver.workflow_for(run)
        state = ExecutionState(run.state).snapshot()
        status = take_over(run, state, action="continue the run")
        claimed = claimed_event(self.driver.owner, marker.get("kind"), actor)
        with self.store.transaction() as tx:
            self.admission.take_slot(tx)  # the project's max_running_runs, when it has one
            updated = tx.update_run(
                run.run_id,
                expected_version=run.version,
                status=status,
                state=state,
            )
            tx.add_trace_events(run.run_id, [claimed])
            tx.take_run_lease(run.run_id, self.driver.owner, self.driver.lease_seconds)
            updated = tx.current(updated)
        trace = marker.get("trace")
        return self.driver.drive(
            updated,
            workflow,
            resumed_from=trace if isinstance(trace, Mapping) else None,
        )

    # ------------------------------------------------------------------ internals

    def _create(
        self,
        prepared: PreparedSpec,
        request: RunRequest,
        *,
        start: bool,
        deadline_at: Any = None,
        decisions: Mapping[str, Any] | None = None,
        connection: HeldConnection | None = None,
    ) -> RunRecord:
        code = prepared.workflow.code
        if code and self.store.code.missing((code.digest,)):
            # the files the run is pinned to and their manifest (the run records its digest
            # alone), by digest, before the run names them
            files = load_code(code, origin=prepared.workflow.code_root).files()
            self.store.code.put({**files, code.digest: code.manifest_bytes})
        return create_run(
            self.store,
            prepared,
            request.input_text,
            start=start,
            lease=(self.driver.owner, self.driver.lease_seconds),
            max_input_chars=self.settings.limits.max_input_chars,
            deadline_at=deadline_at,
            metadata=with_overlay(request),
            actor=request.actor,
            decisions=decisions,
            session_id=request.session_id,
            slot=self.admission.take_slot,
            connection=connection,
            run_id=request.run_id,
        )


def overlay_of(skills: SkillsOverlay | Mapping[str, Any] | None) -> SkillsOverlay | None:
    """A skills overlay as given to the Python API (a model or its fields)."""
    if skills is None or isinstance(skills, SkillsOverlay):
        return skills
    return SkillsOverlay.model_validate(dict(skills))


def with_overlay(request: RunRequest) -> Mapping[str, Any] | None:
    """The run's metadata, with the skills overlay it started with (``skills_overlay``)."""
    skills = request.skills
    if skills is None or skills.empty:
        return request.metadata
    return {**(request.metadata or {}), "skills_overlay": skills.model_dump(exclude_none=True)}


def _check_continuable(run: RunRecord) -> None:
    """``illegal_transition`` unless ``run`` may be continued (running or failed)."""
    if run.status == RunStatus.PAUSED:
        raise IllegalTransition(
            f"run {run.run_id} is paused: resume its continuation instead",
            current_status=run.status,
        )
    if run.status not in (RunStatus.RUNNING, RunStatus.FAILED):
        raise IllegalTransition(
            f"cannot continue run {run.run_id}: it is {run.status}", current_status=run.status
        )
