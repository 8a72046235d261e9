"""Human tasks: validating a person's decision, applying it to a paused run.

:class:`Decisions` holds them (the inbox's reads are :class:`kneo.platform.inbox.Inbox`'s).
:meth:`~Decisions.resume` replays an idempotent decision or goes on to
:meth:`~Decisions.resume_decision`, which in one transaction reads the continuation and its
run row-locked, checks the decision against them (request pending, run paused, answer valid)
and writes it, then hands the run to the :class:`~kneo.platform.driver.RunDriver` when
nothing is left pending; a decision on a promotion task is recorded there instead
(:func:`kneo.platform.bundles.resume_promotion`).

The decision is recorded in the execution state under the request's ``wait_key``; the
request leaves the state's ``pending`` and its body moves to its continuation entry, marked
resolved (:func:`~kneo.platform.tasks.resolved_entry`). While other requests of the
continuation are still pending the run stays paused, otherwise it moves to running and the
engine continues: in this process, or, when workers exist (:mod:`kneo.platform.handoff`), on
the worker that claims the run the same transaction queued.
Of two racing decisions the second waits for the first's locks and reads what it wrote: the
request decided (``request_already_resolved``), the run being resumed by the winner
(``resource_locked``), or its own request still pending, which it applies.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from kneo import metrics
from kneo.clock import Clock, utc_iso
from kneo.engine.child_step import CHILD_RUN
from kneo.engine.human import Decision, HumanDecision, HumanRequest, validate_decision
from kneo.engine.state import ExecutionState
from kneo.errors import (
    HumanTaskExpired,
    IllegalTransition,
    InvalidDecision,
    InvalidRequest,
    NotFound,
    RequestAlreadyResolved,
    ResourceLocked,
)
from kneo.jsontext import content_hash
from kneo.lifecycle import RunStatus, TaskStatus, hand_off, phase_of, request_status, transition
from kneo.platform.assignments import AssignmentRule, Rules, check_assignee, rules_of
from kneo.platform.bundles import resume_promotion
from kneo.platform.child_links import CHILD_ACTOR
from kneo.platform.deadlines import refuse_late, swept_late
from kneo.platform.driver import Audits, RunDriver
from kneo.platform.handoff import HandOff, LocalWorker, claimed_event
from kneo.platform.idempotency import idempotent
from kneo.platform.recipients import load_people
from kneo.platform.results import RunResult
from kneo.platform.tasks import next_expiry, resolved_entry
from kneo.settings import Settings
from kneo.store import ContinuationRecord, QueueRecord, RunRecord, Store, Transaction

if TYPE_CHECKING:
    from kneo.controller.watch import Triggerable
    from kneo.platform.recipients import People
    from kneo.spec.project import ProjectConfig
    from kneo.store.wire.executor import HeldConnection

#: who decides a request its timeout took (``on_timeout: continue`` / ``reject``)
TIMEOUT_ACTOR = "system:timeout"


def legacy_decision(
    decision: Decision | str,
    request_id: str | None,
    content: str | None,
    selected_option: str | None,
) -> Decision:
    """The :class:`Decision` of a resume call in either form; the old keyword form warns.

    ``decision`` a string is the form before 0.2 (``request_id=``, ``decision=``,
    ``content=``, ``selected_option=``); mixing the forms is refused, naming the field."""
    loose = {"request_id": request_id, "content": content, "selected_option": selected_option}
    if isinstance(decision, Decision):
        given = [name for name, value in loose.items() if value is not None]
        if given:
            raise InvalidRequest(
                f"{given[0]}: give it inside the Decision, not beside it", field=given[0]
            )
        return decision
    warnings.warn(
        "PlatformManager.resume(continuation_id, request_id=..., decision=...) is deprecated "
        "since 0.2 and will be removed in 0.3: pass kneo.Decision(request_id, decision, "
        "content, selected_option) as the second argument",
        DeprecationWarning,
        stacklevel=3,  # the caller of resume (the facade hands out the bound method itself)
    )
    if not request_id:
        raise InvalidRequest("request_id: required with the keyword form", field="request_id")
    return Decision(request_id, decision, content, selected_option)


#: a run handed to this process's worker in its decision's transaction, and its queue record
Given = tuple[LocalWorker, QueueRecord]


@dataclass(kw_only=True, eq=False, repr=False)
class Decisions:
    """The decisions on human tasks: resume (a run's request, or a GitOps promotion's
    approval). The driver continues a run once no request is left pending."""

    store: Store
    clock: Clock
    settings: Settings
    driver: RunDriver
    #: whether a run whose last request is decided continues on the workers (shared with
    #: :class:`~kneo.platform.runs.Runs`; :mod:`kneo.platform.handoff`)
    handoff: HandOff = field(default_factory=HandOff)
    #: whether the project sets ``limits:`` (a run taken over takes a slot: through the queue)
    limited: bool = field(default=False, init=False)
    #: the in-process GitOps controller a promotion decision wakes (attach_controller)
    controller: Triggerable | None = field(default=None, init=False)
    #: whether a run's environment makes its assignees binding (:mod:`.assignments`), and
    #: the project's people directory (read when a binding assignment is checked)
    assignment_rules: Rules | None = field(default=None, init=False)
    directory: Callable[[], People | None] | None = field(default=None, init=False)
    #: applies a task's timeout now (the manager's sweeps): called with the continuation id
    #: when a decision came after its deadline and no sweep has applied it yet
    on_late: Callable[[str], object] | None = field(default=None, init=False)

    def resume(
        self,
        continuation_id: str,
        decision: Decision | str,
        *,
        actor: str | None = None,
        idempotency_key: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        request_id: str | None = None,
        content: str | None = None,
        selected_option: str | None = None,
    ) -> RunResult:
        """Apply a person's ``decision`` on one request of the task; continue the run once
        no request is pending: here, or when workers exist (``handoff``) on a worker, the
        result then being the run as queued (``handed_off`` set, status ``running``).

        With ``idempotency_key`` the same key and decision replay the first result
        (``replayed`` is set), a different decision under it is ``idempotency_key_conflict``.
        ``metadata`` is stored with the decision (``auto_continued`` for timeouts). A decision
        on a promotion task is recorded there (:func:`kneo.platform.bundles.resume_promotion`).

        Deprecated since 0.2, removed no earlier than 0.3 (docs/compatibility.md): the old
        form ``resume(continuation_id, request_id=..., decision="approved", content=...,
        selected_option=...)`` still works and warns (``DeprecationWarning``)."""
        decision = legacy_decision(decision, request_id, content, selected_option)
        if idempotency_key is not None:
            return self._idempotent(continuation_id, [decision], actor, idempotency_key, metadata)
        return self._decide(continuation_id, [decision], actor=actor, metadata=metadata)

    def decide(
        self,
        continuation_id: str,
        decisions: Sequence[Decision],
        *,
        actor: str | None = None,
        idempotency_key: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> RunResult:
        """Decide several requests of one task together: every decision is checked first,
        then all are written in one transaction (none if any is refused), and the run
        continues once, when no request is left pending. A task's requests may as well be
        decided one by one (:meth:`resume`); the run waits for all of them either way.
        ``metadata`` is stored with each decision."""
        if not decisions:
            raise InvalidRequest("decisions: give at least one decision", field="decisions")
        ids = [d.request_id for d in decisions]
        if len(set(ids)) != len(ids):
            raise InvalidRequest("decisions: a request is decided twice", field="decisions")
        if idempotency_key is not None:
            return self._idempotent(continuation_id, decisions, actor, idempotency_key, metadata)
        return self._decide(continuation_id, list(decisions), actor=actor, metadata=metadata)

    def _idempotent(
        self,
        continuation_id: str,
        decisions: Sequence[Decision],
        actor: str | None,
        key: str,
        metadata: Mapping[str, Any] | None,
    ) -> RunResult:
        """:meth:`_decide` once per key: the same key, decisions and metadata replay the first
        result (a hand-off's is stored as ``202``, so its replay says so too)."""

        def call() -> tuple[int, dict[str, Any]]:
            done = self._decide(continuation_id, list(decisions), actor=actor, metadata=metadata)
            # Kept with personal data (secrets redacted): the replay is redacted for
            # whoever reads it, like the first answer (``RunResult.to_dict``).
            return (202 if done.handed_off else 200), done.to_dict(show_personal=True)

        asked: Any = [d.to_dict() for d in decisions]
        if metadata:  # without: the digest of the decisions alone, as before metadata counted
            asked = {"decisions": asked, "metadata": dict(metadata)}
        status, body, replayed = idempotent(
            self.store,
            scope=f"{actor or 'anonymous'}:human.resume:{continuation_id}",
            key=key,
            digest=content_hash(asked),
            call=call,
        )
        return RunResult.from_dict(body, replayed=replayed, handed_off=status == 202)

    def resume_decision(
        self,
        continuation_id: str,
        decision: Decision,
        *,
        actor: str | None,
        metadata: Mapping[str, Any] | None,
    ) -> RunResult:
        """Check a decision against what is stored and write it, in one transaction.

        The continuation and its run are read in the decision's own transaction, in one
        statement and row-locked (PostgreSQL; SQLite: under the write lock, on the warm
        writer connection): of two racing decisions the second reads what the first wrote,
        and the writes, which cannot miss, read nothing back. A run that a resume already
        moved to ``running`` answers ``resource_locked`` (another process is resuming it)
        until it pauses or ends; a request already decided, ``request_already_resolved``.
        """
        return self._decide(continuation_id, [decision], actor=actor, metadata=metadata)

    def _decide(
        self,
        continuation_id: str,
        decisions: list[Decision],
        *,
        actor: str | None,
        metadata: Mapping[str, Any] | None,
        on_timeout: bool = False,
    ) -> RunResult:
        """:meth:`resume_decision` for one or more decisions on one continuation. The
        decision's transaction and the run's steps after it share one connection. A decision
        after its request's deadline is ``human_task_expired`` (:mod:`kneo.platform.deadlines`),
        before the timeout is applied (which it then is) and after; ``on_timeout``: the
        timeout's own decision, which the deadline lets through."""
        held = self.store.hold_connection()
        try:
            return self._decide_on(held, continuation_id, decisions, actor, metadata, on_timeout)
        except HumanTaskExpired:
            held.close()  # the refusal rolled back: the timeout path runs on its own
            if self.on_late is not None:
                self.on_late(continuation_id)
            raise
        except (NotFound, RequestAlreadyResolved, ResourceLocked, IllegalTransition) as exc:
            swept = None if on_timeout else swept_late(self.store, continuation_id, _ids(decisions))
            if swept is not None:
                raise swept from exc
            raise
        finally:
            held.close()  # (a no-op once the run's journal gave it back)

    def decide_on_timeout(
        self, continuation_id: str, decision: Decision, metadata: Mapping[str, Any]
    ) -> RunResult:
        """The timeout sweep's decision (``on_timeout: continue`` / ``reject``), past the
        deadline that refuses a person's."""
        return self._decide(
            continuation_id, [decision], actor=TIMEOUT_ACTOR, metadata=metadata, on_timeout=True
        )

    def decide_for_child(
        self, continuation_id: str, decision: Decision, metadata: Mapping[str, Any]
    ) -> RunResult:
        """A child run's outcome on its parent's wait (:mod:`kneo.platform.children`), as
        the platform: past the assignee and deadline checks a person's decision meets."""
        return self._decide(
            continuation_id, [decision], actor=CHILD_ACTOR, metadata=metadata, on_timeout=True
        )

    def _decide_on(
        self,
        held: HeldConnection,
        continuation_id: str,
        decisions: list[Decision],
        actor: str | None,
        metadata: Mapping[str, Any] | None,
        on_timeout: bool = False,
    ) -> RunResult:
        with self.store.transaction(held) as tx:
            cont = tx.get_continuation(continuation_id, for_update=True)  # and its run
            if cont.workflow_kind != "promotion":  # (a GitOps promotion has no run)
                run, state, requests = _pending(tx, cont, _ids(decisions))
                if not on_timeout:
                    refuse_child_waits(requests)
                    rule = self.assignment_rule(run.environment)
                    if rule.binding:  # only the assignee (and the override) may decide
                        people = self.directory() if self.directory is not None else None
                        for request in requests:
                            check_assignee(rule, request, actor, people, metadata)
                    # (after: whom the assignment refuses learns nothing of the deadline)
                    refuse_late(continuation_id, requests, self.clock.now())
                now = utc_iso(self.clock.now())
                answers = [
                    (request, self._checked(request, d, actor, now, metadata))
                    for request, d in zip(requests, decisions, strict=True)
                ]
                updated, remaining, given = self._write_decision(tx, run, cont, state, answers)
        if cont.workflow_kind != "promotion":  # committed: the run goes on
            return self._continue(updated, cont, answers, remaining, held, given)
        if len(decisions) != 1:
            raise InvalidRequest("a promotion task takes one decision at a time", field="decisions")
        return resume_promotion(
            self.store,
            continuation_id,
            decisions[0],
            actor=actor,
            controller=self.controller,
        )

    def assign_by(self, config: ProjectConfig | None) -> None:
        """Read from the project's ``config`` whether assignees bind, per environment, and
        the people directory whose groups count for a bound request (read when first needed)."""
        self.assignment_rules = rules_of(config)
        self.directory = functools.cache(lambda: load_people(self.settings, config))

    def assignment_rule(self, environment: str | None) -> AssignmentRule:
        """Whether assignees bind in ``environment`` (advisory without a rule)."""
        rules = self.assignment_rules
        return rules(environment) if rules is not None else AssignmentRule()

    def _checked(
        self,
        request: HumanRequest,
        given: Decision,
        actor: str | None,
        now: str | None,
        metadata: Mapping[str, Any] | None,
    ) -> HumanDecision:
        """``given`` as a decision on ``request``, or the error saying why it is not one."""
        return validate_decision(
            request,
            HumanDecision(
                request_id=request.request_id,
                decision=given.decision,
                content=given.content,
                selected_option=given.selected_option,
                actor=actor,
                decided_at=now,
                metadata=dict(metadata or {}),
            ),
            max_content_chars=self.settings.limits.max_human_content_chars,
        )

    def _write_decision(
        self,
        tx: Transaction,
        run: RunRecord,
        cont: ContinuationRecord,
        state: ExecutionState,
        answers: list[tuple[HumanRequest, HumanDecision]],
    ) -> tuple[RunRecord, list[dict[str, Any]], Given | None]:
        """The decisions' writes (compare-and-set on the run and the continuation): the run
        stays paused while other requests are pending, else it goes back to running. Returns
        the updated run, the requests still pending and what is given to this process's
        worker (:meth:`_resolve`)."""
        by_id = {request.request_id: (request, answer) for request, answer in answers}
        rollout = (run.metadata or {}).get("rollout")
        if rollout:  # counted for the rollout's analysis (kneo.store.rollouts)
            tx.note_rollout(rollout, decisions=[(r.kind, a.decision) for r, a in answers])
        with state.lock:
            for request, answer in answers:
                state.decisions[request.wait_key] = answer.to_dict()
            state.pending = [r for r in state.pending if r.get("request_id") not in by_id]
            remaining = list(state.pending)
        requests = [
            resolved_entry(r, *by_id[r["request_id"]]) if r.get("request_id") in by_id else dict(r)
            for r in cont.requests
        ]
        decided = [_decided_event(request, answer) for request, answer in answers]
        if not remaining:
            resolved, given = self._resolve(tx, run, cont, state, requests, decided, answers)
            return tx.current(resolved), remaining, given
        tx.put_continuation(
            cont.continuation_id,
            run_id=run.run_id,
            requests=requests,
            context=cont.context,
            expires_at=next_expiry(requests, remaining),
            workflow_kind=cont.workflow_kind,
            expected_version=cont.version,
            bodies=remaining,
            input_text=run.input_text or "",
            same_requests=True,
        )
        tx.add_trace_events(run.run_id, decided)
        _audit_decisions(tx, run, cont, answers, result_status="paused")
        snapshot = {**state.snapshot(), "continuation_id": cont.continuation_id}
        updated = tx.update_run(run.run_id, expected_version=run.version, state=snapshot)
        return tx.current(updated), remaining, None

    def _continue(
        self,
        updated: RunRecord,
        cont: ContinuationRecord,
        answers: list[tuple[HumanRequest, HumanDecision]],
        remaining: list[dict[str, Any]],
        held: HeldConnection | None = None,
        given: Given | None = None,
    ) -> RunResult:
        """After the decisions committed: the paused run's result while requests remain,
        else the run driven on from its pause (the decisions audited with its outcome; its
        steps on ``held``, the decision's connection), or handed to a worker (``given``:
        claimed for this process's worker, which drives it on its thread)."""
        waited = (self.clock.now() - cont.created_at).total_seconds()
        for _ in answers:
            metrics.record_human_wait(waited, project=self.store.project)
        if remaining:
            return self.driver.result(updated)
        trace = cont.context.get("trace")  # the pause's trace context, which the run resumes
        if given is not None:
            worker, record = given

            def execute(_run_id: str) -> RunResult:
                workflow = self.driver.workflow_for(updated)
                return self.driver.drive(updated, workflow, resumed_from=trace)

            worker.give(record, self.driver.owner, execute)
            return replace(self.driver.result(updated), handed_off=True)
        if phase_of(updated) is RunStatus.HANDED:  # queued for a worker in the decision's commit
            self.store.wakeups.queued(updated.run_id)
            return replace(self.driver.result(updated), handed_off=True)
        audits: Audits = [
            (
                "human.decision",
                answer.actor,
                cont.continuation_id,
                _decision_audit(updated, request, answer),
            )
            for request, answer in answers
        ]
        return self.driver.drive(
            updated,
            self.driver.workflow_for(updated),
            audits=audits,
            resumed_from=trace,
            connection=held,
        )

    def _resolve(
        self,
        tx: Transaction,
        run: RunRecord,
        cont: ContinuationRecord,
        state: ExecutionState,
        requests: list[dict[str, Any]],
        decided: list[dict[str, Any]],
        answers: list[tuple[HumanRequest, HumanDecision]],
    ) -> tuple[RunRecord, Given | None]:
        """The last pending request decided: the run goes back to running (where:
        :meth:`_go_on`), the continuation is resolved, and the run is traced as resumed.
        With workers the decisions are audited now (no outcome here to audit them with).
        The run's update comes last: the lease and the events' counters go with it."""
        snapshot = state.snapshot()
        resumed: dict[str, Any] = {"continuation_id": cont.continuation_id}
        events: list[dict[str, Any]] = [{"event_type": "run_resumed", "payload": resumed}]
        status, given = self._go_on(tx, run, cont, snapshot, events)
        if self.handoff.enabled:
            resumed["handed_off"] = True
            _audit_decisions(
                tx, run, cont, answers, result_status=RunStatus.RUNNING.value, handed_off=True
            )
        tx.put_continuation(
            cont.continuation_id,
            run_id=run.run_id,
            requests=requests,
            context=cont.context,
            status=transition(cont.status, TaskStatus.RESOLVED, action="resolve the task"),
            expires_at=cont.expires_at,
            workflow_kind=cont.workflow_kind,
            expected_version=cont.version,
            same_requests=True,
        )
        tx.add_trace_events(run.run_id, [*decided, *events])
        updated = tx.update_run(
            run.run_id,
            expected_version=run.version,
            state=snapshot,
            status=status,
        )
        return updated, given

    def _go_on(
        self,
        tx: Transaction,
        run: RunRecord,
        cont: ContinuationRecord,
        snapshot: dict[str, Any],
        events: list[dict[str, Any]],
    ) -> tuple[str, Given | None]:
        """Where the resolved run goes on, written in the decision's transaction: queued and
        marked for whichever worker claims it, or executed by this process under its lease,
        in the caller or claimed for this process's idle worker (``run_claimed`` added to
        ``events``). The run's new status, and what is given to that worker."""
        action = "resume the run"
        taker = None if self.limited else self.handoff.taker()
        if self.handoff.enabled and taker is None:
            marker = {
                "kind": "decision",
                "continuation_id": cont.continuation_id,
                "at": utc_iso(self.clock.now()),
                **({"trace": cont.context["trace"]} if cont.context.get("trace") else {}),
            }
            tx.enqueue(run.run_id)
            return hand_off(run, snapshot, marker, action=action), None
        status = transition(run.status, RunStatus.RUNNING, action=action)
        tx.take_run_lease(run.run_id, self.driver.owner, self.driver.lease_seconds)
        if taker is None:
            return status, None
        record = tx.enqueue(run.run_id, leased_to=(taker.owner, taker.lease_seconds))
        events.append(claimed_event(self.driver.owner, "decision"))
        return status, (taker, record)


def _pending(
    tx: Transaction, cont: ContinuationRecord, request_ids: Sequence[str]
) -> tuple[RunRecord, ExecutionState, list[HumanRequest]]:
    """The paused run, its state and the still-pending requests the decisions answer, or
    the error that says why there are none (``cont`` read locked with its run)."""
    stored = {r.get("request_id"): r for r in cont.requests}
    for request_id in request_ids:
        if request_id not in stored:
            raise NotFound(
                f"request {request_id!r} is not part of continuation {cont.continuation_id}",
                resource="request",
                id=request_id,
            )
    if cont.run_id is None:
        raise InvalidRequest(f"continuation {cont.continuation_id} belongs to no run")
    run = tx.get_run(cont.run_id, for_update=True)  # (locked with the task: not read again)
    if run.status == RunStatus.RUNNING:
        # A resume (a person's or a timeout's) committed its decision and is executing.
        raise ResourceLocked(
            f"continuation {cont.continuation_id} is being resumed by another process",
            lock=f"continuation:{cont.continuation_id}",
        )
    for request_id in request_ids:
        if request_status(stored[request_id], cont.status) is not TaskStatus.PENDING:
            raise RequestAlreadyResolved(
                f"request {request_id} was already resolved", request_id=request_id
            )
    if run.status != RunStatus.PAUSED:
        raise IllegalTransition(
            f"cannot resume run {run.run_id}: it is {run.status}, not paused",
            current_status=run.status,
        )
    state = ExecutionState(run.state)
    requests = []
    for request_id in request_ids:
        raw = state.pending_request(request_id)
        if raw is None:
            raise RequestAlreadyResolved(
                f"request {request_id} is no longer pending", request_id=request_id
            )
        requests.append(HumanRequest.from_dict(raw))
    return run, state, requests


def refuse_child_waits(requests: Sequence[HumanRequest]) -> None:
    """A wait on a child run is answered by the child's outcome, never by a person."""
    for request in requests:
        if request.kind == CHILD_RUN:
            raise InvalidDecision(
                f"request {request.request_id} waits for a child run: its outcome decides it",
                request_id=request.request_id,
            )


def _ids(decisions: Sequence[Decision]) -> list[str]:
    return [d.request_id for d in decisions]


def _audit_decisions(
    tx: Transaction,
    run: RunRecord,
    cont: ContinuationRecord,
    answers: list[tuple[HumanRequest, HumanDecision]],
    **outcome: Any,
) -> None:
    """The ``human.decision`` audits written with the decisions themselves, where no run
    outcome follows to carry them (the run pauses again, or goes to a worker); ``outcome``
    says which."""
    for request, answer in answers:
        tx.add_audit(
            "human.decision",
            actor=answer.actor,
            run_id=run.run_id,
            continuation_id=cont.continuation_id,
            payload={**_decision_audit(run, request, answer), **outcome},
        )


def _decision_audit(run: RunRecord, request: HumanRequest, answer: HumanDecision) -> dict[str, Any]:
    """The ``human.decision`` audit payload (whether content came, never the content)."""
    return {
        "request_id": request.request_id,
        "decision": answer.decision,
        "selected_option": answer.selected_option,
        "content_present": bool(answer.content),
        "assignee": request.assignee,
        "environment": run.environment,
    }


def _decided_event(request: HumanRequest, answer: HumanDecision) -> dict[str, Any]:
    """The ``human_decision`` trace event (what was decided, never the content)."""
    return {
        "event_type": "human_decision",
        "step_id": request.step_id,
        "payload": {
            "request_id": request.request_id,
            "decision": answer.decision,
            "kind": request.kind,
            "content_present": bool(answer.content),
            "actor": answer.actor,
        },
    }
