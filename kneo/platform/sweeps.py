"""Sweeps: expired human requests, runs past their deadline, stranded runs.

Two independent timeouts can apply to a paused run; whichever fires first wins.

* A **human request** with ``timeout_seconds`` carries ``expires_at`` and ``on_timeout``;
  :func:`prune_expired_human_tasks` dispatches per expired request of a *paused* run:

  - ``fail``: the run becomes ``expired`` (error ``human_task_expired``), ``human.expired``
    is audited (``run_id``, ``continuation_id``, ``request_id``, ``timeout_seconds``,
    ``expires_at``, ``expired_at``, ``on_timeout``) and the continuation is deleted;
  - ``continue`` / ``reject``: ``human.continued`` / ``human.auto_rejected`` is audited, then an
    ``approved`` / ``rejected`` decision with ``metadata.auto_continued``, ``reason: timeout``
    and ``original_assignee`` resumes the run; if that resume raises,
    ``human.continue_failed`` (``error_type``, ``error_message``) is audited, the run fails
    and the continuation is deleted, so the sweep never retries it forever;
  - ``escalate``: the run stays paused; the request gets ``escalated_at`` and
    ``original_expires_at``, ``human.escalated`` is audited once and later sweeps skip it.

* A **run deadline** (``start_run_from_spec(..., timeout_seconds=)`` → ``deadline_at``):
  :func:`prune_timed_out_runs` moves every queued, running or paused run past it to
  ``timed_out``, deletes its continuation and audits ``run.timed_out``.

* A **stranded run** (``running``, its lease lapsed, nothing queued for it):
  :func:`recover_stranded_runs` queues it to be continued (the rule is in its docstring).

Runs no longer paused are skipped (the resume path owns them). Each sweep returns how many
continuations / runs it acted on. Every write is a compare-and-set (or under a lock), so a
sweep racing a person's resume (or another sweeper) changes nothing twice.

The threads that run these sweeps on a schedule are :mod:`kneo.platform.sweeper`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from kneo import metrics
from kneo.clock import Clock, utc_iso
from kneo.engine.human import Decision
from kneo.errors import Conflict, ErrorCode, IllegalTransition, KneoError, NotFound
from kneo.lifecycle import RunStatus, TaskStatus, phase_of, request_status, transition
from kneo.logs import get_logger
from kneo.platform.decisions import TIMEOUT_ACTOR, Decisions
from kneo.platform.driver import RunDriver
from kneo.platform.runs import end_run, paused_continuation
from kneo.store import ContinuationRecord, RunQuery, RunRecord, Store, TaskQuery
from kneo.store.tasks.inbox import task_requests

if TYPE_CHECKING:
    from kneo.store.api import Store
    from kneo.store.transaction import Transaction

log = get_logger("kneo_serv.sweeps")

_PAGE = 500


def _time(value: object) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _pending(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in requests if request_status(r) is TaskStatus.PENDING]


RECOVERY_ACTOR = "system:sweeper"
_RECOVERY_LOCK = "sweep:stranded-runs"


def _audit_timeout(
    tx: Transaction,
    event: str,
    run: RunRecord,
    cont: ContinuationRecord,
    request: dict[str, Any],
    **fields: object,
) -> dict[str, Any]:
    """Record ``event`` by the timeout actor about ``request`` of ``cont`` in ``tx``: run,
    continuation, request and its timeout, then ``fields``. Returns the payload."""
    payload = {
        "run_id": run.run_id,
        "continuation_id": cont.continuation_id,
        "request_id": request.get("request_id"),
        "timeout_seconds": request.get("timeout_seconds"),
        **fields,
    }
    tx.add_audit(
        event,
        actor=TIMEOUT_ACTOR,
        run_id=run.run_id,
        continuation_id=cont.continuation_id,
        payload=payload,
    )
    return payload


# --------------------------------------------------------------------------- sweeps


def expired_continuations(store: Store, now: datetime) -> list[str]:
    """The project's pending continuations whose ``expires_at`` passed (none: one indexed
    read, however many projects there are)."""
    due: list[str] = []
    cursor = None
    while True:  # collect first: acting changes the pages
        page = store.tasks.list_continuations(
            TaskQuery(
                status=TaskStatus.PENDING,
                expires_before=now,
                limit=_PAGE,
                cursor=cursor,
                count=False,
            )
        )
        due += [c.continuation_id for c in page.items]
        cursor = page.next_cursor
        if cursor is None:
            return due


def timed_out_runs(store: Store, now: datetime) -> list[str]:
    """The project's queued, running or paused runs past their ``deadline_at``."""
    due: list[str] = []
    cursor: str | None = None
    live = (RunStatus.QUEUED.value, RunStatus.RUNNING.value, RunStatus.PAUSED.value)
    while True:  # keyset pages: each costs the same however many live runs there are
        page = store.runs.list_runs(
            RunQuery(status=live, limit=_PAGE, cursor=cursor, sort_order="asc", count=False)
        )
        due += [r.run_id for r in page.items if r.deadline_at is not None and r.deadline_at <= now]
        cursor = page.next_cursor
        if cursor is None:
            return due


@dataclass(kw_only=True, eq=False, repr=False)
class Sweeps:
    """The sweeps over one store: expired human requests, run deadlines, stranded runs.

    A timeout's automatic decision goes through :meth:`Decisions.resume
    <kneo.platform.decisions.Decisions.resume>` like a person's; a run timed out while this
    process drives it is stopped through the driver's cancellation token."""

    store: Store
    clock: Clock
    driver: RunDriver
    decisions: Decisions
    #: the child runs' pass (:meth:`kneo.platform.children.Children.sweep`): waits a dead
    #: process left unfinished
    children: Callable[[], int] | None = None

    def __post_init__(self) -> None:
        # a decision after its deadline applies the timeout no sweep has applied yet
        self.decisions.on_late = self.expire_human_task

    def sweep_children(self) -> int:
        """Child runs' waits left unfinished by a process that died (started or reported
        now); 0 without a children's pass."""
        return self.children() if self.children is not None else 0

    def expire_human_task(self, continuation_id: str) -> int:
        """Apply ``on_timeout`` to one task now, if it is due (a late decision asked)."""
        return self.expire_human_tasks([continuation_id], self.clock.now())

    # ------------------------------------------------------------------ human tasks

    def prune_expired_human_tasks(self) -> int:
        """Apply ``on_timeout`` to every expired request of a paused run of this project;
        returns how many continuations were acted on (already-escalated requests are
        skipped, not counted)."""
        now = self.clock.now()
        return self.expire_human_tasks(expired_continuations(self.store, now), now)

    def expire_human_tasks(self, due: list[str], now: datetime) -> int:
        """Apply ``on_timeout`` to the continuations ``due`` (:func:`expired_continuations`
        found them); how many were acted on."""
        count = 0
        for cid in due:
            try:
                count += self._expire_one(cid, now)
            except Exception:  # one bad continuation must not stop the sweep
                log.exception("timeout sweep failed for continuation %s", cid)
        return count

    def _expire_one(self, cid: str, now: datetime) -> int:
        store = self.store
        try:
            cont = store.tasks.get_continuation(cid)
            run = store.runs.get_run(cont.run_id) if cont.run_id else None
        except NotFound:
            return 0
        if run is None or run.status != RunStatus.PAUSED:
            return 0
        # The continuation row selected this one by its expires_at column; the requests'
        # expiry and policy are in their bodies (the run's state, or old rows' own).
        requests = task_requests(cont.requests, run.state)
        expired = sorted(
            (
                r
                for r in _pending(requests)
                if not r.get("escalated_at")
                and r.get("expires_at")
                and (_time(r["expires_at"]) or now) <= now
            ),
            key=lambda r: str(r.get("expires_at")),
        )
        if not expired:
            return 0
        first = expired[0]
        policy = first.get("on_timeout") or "fail"
        if policy == "escalate":
            return self._escalate(
                cont,
                run,
                requests,
                [r for r in expired if (r.get("on_timeout") or "fail") == "escalate"],
                now,
            )
        if policy in ("continue", "reject"):
            return self._auto_decide(cont, run, first, policy)
        return self._expire(cont, run, first, now)

    def _expire(
        self, cont: ContinuationRecord, run: RunRecord, request: dict[str, Any], now: datetime
    ) -> int:
        timeout = request.get("timeout_seconds")
        error = {
            "code": ErrorCode.human_task_expired,
            "type": "human_task_expired",
            "message": f"human request {request.get('request_id')} was not answered within "
            f"its timeout of {timeout}s",
            "step_id": request.get("step_id"),
        }
        try:
            with self.store.transaction() as tx:
                end_run(
                    tx,
                    run,
                    transition(run.status, RunStatus.EXPIRED, action="expire"),
                    cont.continuation_id,
                    step_id=request.get("step_id"),
                    trace_payload={"request_id": request.get("request_id")},
                    error=error,
                )
                _audit_timeout(
                    tx,
                    "human.expired",
                    run,
                    cont,
                    request,
                    expires_at=request.get("expires_at"),
                    expired_at=utc_iso(now),
                    on_timeout="fail",
                    assignee=request.get("assignee"),
                    environment=run.environment,
                )
        except (Conflict, IllegalTransition, NotFound):
            return 0  # resumed, cancelled or swept elsewhere first
        metrics.record_run(RunStatus.EXPIRED.value, run.started_at, now, project=self.store.project)
        return 1

    def _escalate(
        self,
        cont: ContinuationRecord,
        run: RunRecord,
        everything: list[dict[str, Any]],
        requests: list[dict[str, Any]],
        now: datetime,
    ) -> int:
        """Stamp ``escalated_at`` on the requests' continuation entries (``original_expires_at``
        is their unchanged ``expires_at``, filled in on read) and hand each to its
        ``escalate_to`` (the assignee before it kept as ``escalated_from``)."""
        stamp = utc_iso(now)
        targets = {r["request_id"]: r.get("escalate_to") for r in requests}
        ids = set(targets)
        updated = [
            _escalated(r, stamp, targets[r["request_id"]])
            if r.get("request_id") in ids
            else dict(r)
            for r in cont.requests
        ]
        left = [
            _time(r.get("expires_at"))
            for r in _pending(everything)
            if r.get("expires_at") and not r.get("escalated_at") and r["request_id"] not in ids
        ]
        try:
            with self.store.transaction() as tx:
                tx.put_continuation(
                    cont.continuation_id,
                    run_id=cont.run_id,
                    requests=updated,
                    context=cont.context,
                    expires_at=min(left) if left else None,  # type: ignore[type-var]
                    escalated_at=now,
                    workflow_kind=cont.workflow_kind,
                    expected_version=cont.version,
                    bodies=(run.state or {}).get("pending") or [],
                    input_text=run.input_text or "",
                )
                for r in requests:
                    _audit_timeout(
                        tx,
                        "human.escalated",
                        run,
                        cont,
                        r,
                        assignee=r.get("assignee"),
                        escalated_to=r.get("escalate_to"),
                        original_expires_at=r.get("expires_at"),
                        escalated_at=stamp,
                        on_timeout="escalate",
                        environment=run.environment,
                    )
                tx.add_trace_events(
                    run.run_id,
                    [{"event_type": "human_escalated", "payload": {"request_ids": sorted(ids)}}],
                )
                rollout = (run.metadata or {}).get("rollout")
                if rollout:  # the rollout's escalation rate (kneo.store.rollouts)
                    kinds = [str(r.get("kind") or "") for r in requests]
                    tx.note_rollout(rollout, escalated=kinds)
        except (Conflict, NotFound):
            return 0
        return 1

    def _auto_decide(
        self, cont: ContinuationRecord, run: RunRecord, request: dict[str, Any], policy: str
    ) -> int:
        decision = "approved" if policy == "continue" else "rejected"
        event = "human.continued" if policy == "continue" else "human.auto_rejected"
        with self.store.transaction() as tx:  # committed before the resume it announces
            base = _audit_timeout(
                tx,
                event,
                run,
                cont,
                request,
                expires_at=request.get("expires_at"),
                on_timeout=policy,
                original_assignee=request.get("assignee"),
            )
        try:
            content = "timed out" if decision == "rejected" else None
            self.decisions.decide_on_timeout(
                cont.continuation_id,
                Decision(str(request["request_id"]), decision, content),
                metadata={
                    "auto_continued": True,
                    "reason": "timeout",
                    "original_assignee": request.get("assignee"),
                },
            )
        except KneoError as exc:
            if exc.code in ("resource_locked", "request_already_resolved"):
                return 0  # a person is resolving it right now: theirs wins
            self._continue_failed(cont, run, base, exc)
        except Exception as exc:
            self._continue_failed(cont, run, base, exc)
        return 1

    def _continue_failed(
        self, cont: ContinuationRecord, run: RunRecord, base: dict[str, Any], exc: BaseException
    ) -> None:
        store = self.store
        message = str(exc)[:500]
        with store.transaction() as tx:
            tx.add_audit(
                "human.continue_failed",
                actor=TIMEOUT_ACTOR,
                run_id=run.run_id,
                continuation_id=cont.continuation_id,
                payload={**base, "error_type": type(exc).__name__, "error_message": message},
            )
            tx.delete_continuation(cont.continuation_id)
            current = tx.get_run(run.run_id)
            if current.status == RunStatus.PAUSED:  # a paused run without continuation is stuck
                tx.update_run(
                    run.run_id,
                    expected_version=current.version,
                    status=transition(current.status, RunStatus.FAILED),
                    error={
                        "code": ErrorCode.human_continue_failed,
                        "type": type(exc).__name__,
                        "message": message,
                    },
                    finished_at=tx.now,
                )

    # ------------------------------------------------------------------ run deadlines

    def prune_timed_out_runs(self) -> int:
        """Move every queued, running or paused run of this project past its
        ``deadline_at`` to ``timed_out``."""
        now = self.clock.now()
        return self.time_out_runs(timed_out_runs(self.store, now), now)

    def time_out_runs(self, due: list[str], now: datetime) -> int:
        """Time out the runs ``due`` (:func:`timed_out_runs` found them); how many were."""
        return sum(self._time_out(run_id, now) for run_id in due)

    def _time_out(self, run_id: str, now: datetime) -> int:
        store = self.store
        try:
            run = store.runs.get_run(run_id)
            status = transition(phase_of(run), RunStatus.TIMED_OUT, action="time out the run")
        except (NotFound, IllegalTransition):
            return 0
        cid = paused_continuation(run)
        error = {
            "code": ErrorCode.run_timed_out,
            "type": "run_timed_out",
            "message": f"the run missed its deadline {utc_iso(run.deadline_at)}",
        }
        try:
            with store.transaction() as tx:
                end_run(tx, run, status, cid, error=error, cancel_requested=True)
                tx.add_audit(
                    "run.timed_out",
                    actor=TIMEOUT_ACTOR,
                    run_id=run_id,
                    continuation_id=cid,
                    payload={
                        "run_id": run_id,
                        "previous_status": run.status,
                        "deadline_at": utc_iso(run.deadline_at),
                        "timed_out_at": utc_iso(now),
                        "continuation_id": cid,
                    },
                )
        except (Conflict, NotFound):
            return 0
        metrics.record_run(status, run.started_at, now, project=self.store.project)
        self.driver.signal_cancel(run_id, "timed out")
        return 1

    # ------------------------------------------------------------------ stranded runs

    def recover_stranded_runs(self) -> int:
        """Queue every stranded run for a worker; returns how many were queued.

        A run is stranded when it is ``running`` but nobody executes it: no unexpired lease
        (its process died, or lost the database and gave up, or a synchronous request was cut
        off), no queue record waiting or leased, and not written for a whole lease. The rule:
        it is **resumed**, never guessed about. A queue record is added (with a ``run_recovering``
        trace event and a ``run.stranded`` audit event, in one transaction) and a worker
        continues the run from its last completed step boundary, as ``kneo runs continue`` would;
        a completed step never runs again. It is **failed with a reason** by that worker when it
        cannot be continued (its spec no longer compiles: the error's code) or keeps failing
        (``too_many_attempts`` after the worker's bounded attempts). One process sweeps at a
        time (a store lock); a race that queues a run twice is harmless (the second worker finds
        the run held or finished)."""
        store = self.store
        lease = self.driver.lease_seconds
        if not store.locks.acquire_lock(_RECOVERY_LOCK, self.driver.owner, lease):
            return 0
        count = 0
        try:
            for run_id in store.queue.stranded_runs(lease):
                try:  # (stranded runs are every project's: each is queued in its own)
                    with store.for_project(run_id.project_id).transaction() as tx:
                        tx.enqueue(run_id)
                        tx.add_trace_events(
                            run_id,
                            [
                                {
                                    "event_type": "run_recovering",
                                    "payload": {"reason": "no live owner"},
                                }
                            ],
                        )
                        tx.add_audit(
                            "run.stranded",
                            actor=RECOVERY_ACTOR,
                            run_id=run_id,
                            payload={"action": "resume", "idle_seconds": lease},
                        )
                except KneoError as exc:  # gone or changed meanwhile: the next sweep looks again
                    log.info("stranded run %s not queued: %s", run_id, exc.code)
                    continue
                log.warning("run %s had no live owner: queued to continue", run_id)
                count += 1
        finally:
            store.locks.release_lock(_RECOVERY_LOCK, self.driver.owner)
        return count


def _escalated(entry: Mapping[str, Any], stamp: str | None, target: str | None) -> dict[str, Any]:
    """A request's continuation entry escalated at ``stamp``: assigned to ``target`` (its
    ``escalate_to``) when it has one."""
    out = dict(entry, escalated_at=stamp)
    if target and target != entry.get("assignee"):
        out["escalated_from"] = entry.get("assignee")
        out["assignee"] = target
    return out
