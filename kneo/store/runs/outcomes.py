"""A run's compare-and-set advance: :class:`OutcomeWritesMixin`, a step boundary
(:meth:`~OutcomeWritesMixin.write_step`) or a run's outcome
(:meth:`~OutcomeWritesMixin.finish_run`) with the rows it numbers, committed.

The compare-and-set moves the run's counters and the checkpoint, trace, audit and outbox
rows are numbered from what it returns. On PostgreSQL, with nothing before it in the
transaction, all of it is one statement in autocommit
(:func:`~kneo.store.wire.statements.one_statement_write`, :meth:`Executor.alone
<kneo.store.wire.executor.Executor.alone>`); otherwise, or when that statement wrote nothing (a
stale run, or a patch whose predecessor is no longer the run's last checkpoint), the
statements run one by one, which tells those apart.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, Unpack

import sqlalchemy as sa

from kneo import jsontext
from kneo.store import tables as t
from kneo.store.records import RunRecord
from kneo.store.rollouts import RolloutRunWrites
from kneo.store.row_values import (
    NOT_RECORD_FIELDS,
    RunChanges,
    audit_values,
    check_trace_events,
    outbox_values,
)
from kneo.store.runs.steps import (
    CHECKPOINT_COLUMNS,
    TRACE_COLUMNS,
    StepCheckpoint,
    StepEvent,
    StepWritten,
    chain_starts,
)
from kneo.store.tasks.search import outcome_terms, scoped_term
from kneo.store.transaction_base import NewTask
from kneo.store.wire import statements as st
from kneo.usage import cost_of

_AUDIT_COLUMNS = st.cas_params(t.audit_events)
_OUTBOX_COLUMNS = st.cas_params(t.notification_events)
_TASK_COLUMNS = st.cas_params(t.continuations)
_REQUEST_COLUMNS = st.cas_params(t.continuation_requests)
_RUN_TERM_COLUMNS = st.columns(t.run_terms)


def _lock_project() -> Any:
    """The transaction's project row, row-locked where the database has row locks."""
    p = t.projects.c
    return sa.select(p.id).where(p.id == st.p(st.PROJECT)).with_for_update()


def _executing_runs(cap: int) -> Any:
    """How many of the project's runs execute (running, lease not lapsed), up to ``cap``."""
    r = t.runs.c
    now = sa.bindparam("k_now", type_=r.lease_expires_at.type)
    some = (
        sa.select(st.n(1))
        .where(
            r.project_id == st.p(st.PROJECT), r.status == st.p("k_status"), r.lease_expires_at > now
        )
        .limit(st.n(cap))
        .offset(st.n(0))  # (SQLite renders a bound OFFSET 0 otherwise)
    )
    return sa.select(sa.func.count()).select_from(some.subquery())


class _Write(NamedTuple):
    """A run's advance (:meth:`OutcomeWritesMixin._advance`) as both ways of writing it take it:
    the compare-and-set's key (columns set, lease released, counters moved) and parameters,
    and the rows numbered from what it returns (audits bound, outbox rows)."""

    run_id: str
    update: tuple[tuple[str, ...], bool, bool]
    params: dict[str, Any]
    checkpoints: Sequence[StepCheckpoint]
    events: Sequence[StepEvent]
    audits: list[dict[str, Any]]
    outbox: list[dict[str, Any]]
    terms: Sequence[tuple[Any, ...]]
    task: NewTask | None


class OutcomeWritesMixin(RolloutRunWrites):
    """Step boundaries and outcomes, inside a :class:`~kneo.store.transaction.Transaction`."""

    def finish_run(
        self,
        run: RunRecord,
        /,
        *,
        expected_version: int,
        state_text: str | None = None,
        release_lease: str | None = None,
        checkpoints: Sequence[StepCheckpoint] = (),
        events: Sequence[Mapping[str, Any]] = (),
        audits: Sequence[Mapping[str, Any]] = (),
        **fields: Unpack[RunChanges],
    ) -> RunRecord:
        """:meth:`update_run` with compare-and-set for a run's outcome, reading back only the
        version and counters: ``run`` is the record the run was driven from, and the
        compare-and-set proves every column but the journal's (state, version) is still as
        it says, so the result is ``run`` with ``changes`` applied, not a re-read row.

        ``state_text``: ``changes["state"]`` already encoded (:func:`kneo.jsontext.dumps`),
        stored as is. ``release_lease``: the owner whose lease on the run ends with it (a
        lease someone else took meanwhile stays). ``checkpoints`` and ``events``: rows
        appended after the run's last ones (patches or keyframes as :meth:`write_step` stores
        them), numbered from the counters this update moves, so they cost no statement of
        their own to number. ``audits``: :meth:`add_audit`'s arguments, one mapping each.

        The outcome is a transaction's last write: this commits it, and any statement after it
        raises. (On PostgreSQL, when nothing came before it, it is the whole transaction, one
        statement in autocommit: :meth:`_finish_alone`.)"""
        changes: dict[str, Any] = dict(fields)
        if events:
            check_trace_events(events)
        rows_ = [
            StepEvent(
                e["event_type"], e.get("step_id"), jsontext.dumps(dict(e.get("payload") or {}))
            )
            for e in events
        ]
        rollout = (run.metadata or {}).get("rollout")
        if rollout and "status" in changes:
            self._note_outcome(run, rollout, changes)
        terms, stored = None, False
        if "output_text" in changes or "error" in changes:
            terms = self._outcome_terms(run.run_id, run.created_at, changes)
            stored = bool(outcome_terms(run.output_text, run.error))  # to be replaced
        version, checkpoint_seq, trace_seq = self._advance(
            run.run_id,
            expected_version,
            changes,
            state_text,
            release_lease,
            checkpoints,
            rows_,
            audits,
            terms or (),
            replace_terms=stored,
        )
        kept = {k: v for k, v in changes.items() if k not in NOT_RECORD_FIELDS}
        return dataclasses.replace(
            run,
            **kept,
            version=version,
            updated_at=self.now,
            trace_seq=trace_seq,
            checkpoint_seq=checkpoint_seq,
        )

    def _note_outcome(
        self, run: RunRecord, rollout: Mapping[str, Any], changes: Mapping[str, Any]
    ) -> None:
        """A rollout run's outcome, latency and cost (its state's model calls: ``None`` when
        one was not priced, 0 when it made none), for its rollout's analysis."""
        began = run.started_at or run.created_at
        ended = changes.get("finished_at") or self.now
        latency = int((ended - began).total_seconds() * 1000) if began and ended else None
        state = changes.get("state")
        cost = None
        if isinstance(state, Mapping):
            cost = cost_of(list((state.get("agents") or {}).values()))
        self.note_rollout(rollout, status=str(changes["status"]), latency_ms=latency, cost=cost)

    def run_slot_free(self, limit: int) -> bool:
        """Whether the project has fewer than ``limit`` runs executing (``running`` under a
        live lease), as this transaction sees them. The project's row is locked first
        (PostgreSQL ``FOR UPDATE``; SQLite's write transaction holds the database), so of two
        transactions starting runs of one project the second counts after the first commits:
        a worker starts a run of a project at its ``max_running_runs`` only when a slot is
        free. Only a project with that limit asks."""
        self._exec("lock_project", _lock_project, {})
        found = self._first(
            ("executing_runs", limit),
            functools.partial(_executing_runs, limit),
            {"k_now": self._now_bound(), "k_status": "running"},
        )
        return found is None or int(found[0]) < limit

    def write_step(
        self,
        run_id: str,
        /,
        *,
        expected_version: int,
        state_text: str,
        checkpoints: Sequence[StepCheckpoint],
        events: Sequence[StepEvent],
    ) -> StepWritten:
        """A step boundary (or boundaries written together: a checkpoint each) as this
        transaction's one write, committed: the run at ``expected_version`` gets the state
        (``state_text``, already encoded) and the rows, encoded by the caller, numbered from
        the counters its compare-and-set moves. Raises ``stale_state`` when the run moved on
        (cancelled, taken over) and ``not_found`` when it is gone; nothing is written then.
        Written as :meth:`finish_run` writes an outcome (on PostgreSQL one statement)."""
        return StepWritten(
            *self._advance(
                run_id, expected_version, {"state": None}, state_text, None, checkpoints, events, ()
            )
        )

    def _advance(
        self,
        run_id: str,
        expected_version: int,
        changes: dict[str, Any],
        state_text: str | None,
        release_lease: str | None,
        checkpoints: Sequence[StepCheckpoint],
        events: Sequence[StepEvent],
        audits: Sequence[Mapping[str, Any]],
        terms: Sequence[tuple[Any, ...]] = (),
        *,
        replace_terms: bool = False,
    ) -> tuple[int, int, int]:
        """:meth:`finish_run`'s and :meth:`write_step`'s write, committed: the run's
        compare-and-set and the rows it numbers; the run's new version and counters.
        ``terms``: search rows the run's outcome adds; ``replace_terms``: they replace the
        run's old ones (an outcome written again: statement by statement then)."""
        keys = self._run_changes(run_id, changes)
        added = (len(checkpoints), len(events))
        if "checkpoint_seq" in changes:  # counted in memory by this transaction: absolute
            changes["checkpoint_seq"] += added[0]
            changes["trace_seq"] += added[1]
            added = (0, 0)
        params = self._outcome_params(run_id, keys, changes, state_text, added)
        params["k_expected"] = expected_version
        if release_lease is not None:
            params["k_owner"] = release_lease
        audit_rows, outbox = self._outcome_audits(audits) if audits else ([], [])
        update = (keys, release_lease is not None, added != (0, 0))
        task, self._task = self._task, None
        write = _Write(run_id, update, params, checkpoints, events, audit_rows, outbox, terms, task)
        found = None
        counts = [len(checkpoints), len(events), len(audits), len(terms)]
        counts += (len(task.requests), len(task.terms)) if task is not None else ()
        alone = (
            not replace_terms
            and self._ex.untouched
            and not (self._seq_dirty | self._leases.keys()) - {run_id}
            and max(counts) <= st.MAX_NUMBERED_ROWS
        )
        if alone:
            found = self._finish_alone(write)
        if found is None:  # the statements one by one (or a patch's predecessor moved)
            if task is not None:
                self._write_task(task)
            if replace_terms:
                self._delete_run_terms(run_id)
            found = self._finish_stepwise(write)
        row = found[0]
        version, checkpoint_seq, trace_seq = int(row[0]), int(row[1]), int(row[2])
        self._run_updated(run_id, checkpoint_seq, trace_seq)
        self._commit()
        return version, checkpoint_seq, trace_seq

    def _outcome_terms(
        self, run_id: str, created_at: Any, values: Mapping[str, Any]
    ) -> list[tuple[Any, ...]]:
        """The ``run_terms`` rows of a run's output and error (:func:`outcome_terms`)."""
        words = outcome_terms(values.get("output_text"), values.get("error"))
        at = self._d.binder(t.run_terms, "created_at")(created_at) if words else None
        return [(scoped_term(self._pid, word), at, run_id) for word in words]

    def _replace_run_terms(self, run_id: str, terms: list[tuple[Any, ...]]) -> None:
        """The run's search rows become ``terms``."""
        self._delete_run_terms(run_id)
        self._d.insert_rows(self._ex.add, t.run_terms, _RUN_TERM_COLUMNS, terms)

    def _delete_run_terms(self, run_id: str) -> None:
        delete = functools.partial(st.delete, t.run_terms, "run_id")
        self._exec("delete_run_terms", delete, {"k_id": run_id})

    def _outcome_params(
        self,
        run_id: str,
        keys: tuple[str, ...],
        changes: dict[str, Any],
        state_text: str | None,
        added: tuple[int, int],
    ) -> dict[str, Any]:
        """The outcome's runs update parameters: ``changes`` bound (the state as given
        when already encoded), the key, the time and how far the counters move."""
        values = dict(changes)
        if state_text is not None:
            del values["state"]
        bound = self._d.bind(t.runs, values) if values else {}
        if state_text is not None:
            bound["state"] = state_text
        params = {f"v_{k}": bound[k] for k in keys}
        params["k_run_id"], params["k_now"] = run_id, self._now_bound()
        params["k_checkpoints"], params["k_events"] = added
        return params

    def _outcome_audits(
        self, audits: Sequence[Mapping[str, Any]]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The outcome's audit rows (bound) and the outbox rows of the notifiable ones."""
        values = [
            audit_values(
                audit["event_type"],
                actor=audit.get("actor"),
                run_id=audit.get("run_id"),
                continuation_id=audit.get("continuation_id"),
                payload=audit.get("payload"),
                now=self.now,
            )
            | {"project_id": self._pid}
            for audit in audits
        ]
        outbox = [row for v in values if (row := outbox_values(v)) is not None]
        self.outbox_written = self.outbox_written or bool(outbox)
        return [self._d.bind(t.audit_events, v) for v in values], outbox

    def _finish_stepwise(self, w: _Write) -> list[Any]:
        """The outcome as its statements one by one: the compare-and-set, then the rows
        numbered from the counters it returned; its ``(version, checkpoint_seq,
        trace_seq)`` row (``stale_state``/``not_found`` when the update found no row)."""
        run_id, (keys, release, moves), params, checkpoints, events, audits, outbox, terms, _ = w

        def build() -> Any:
            return st.run_update(keys, moves=moves, release=release)

        found: list[Any] = self._exec(("finish_run", *w.update), build, params).fetchall()
        if not found:
            self._raise_stale(run_id, params["k_expected"])
        checkpoint_seq, trace_seq = found[0][1], found[0][2]
        stamp = params["k_now"]
        if checkpoints:
            self._insert_step_checkpoints(
                run_id, checkpoints, checkpoint_seq - len(checkpoints) + 1, stamp
            )
        if events:
            first = trace_seq - len(events) + 1
            trace_rows = [
                (run_id, first + offset, e.event_type, e.step_id, e.payload, stamp)
                for offset, e in enumerate(events)
            ]
            self._d.insert_rows(self._ex.add, t.trace_events, TRACE_COLUMNS, trace_rows)
        for row in audits:
            self._batched("audit", functools.partial(st.insert, t.audit_events, tuple(row)), row)
        for values in outbox:
            self._insert_outbox(values)
        if terms:
            self._d.insert_rows(self._ex.add, t.run_terms, _RUN_TERM_COLUMNS, terms)
        return found

    def _finish_alone(self, w: _Write) -> list[Any] | None:
        """PostgreSQL: the outcome as one statement in autocommit
        (:func:`~kneo.store.wire.statements.one_statement_write`); its ``(version, checkpoint_seq,
        trace_seq)`` row, or ``None`` when it wrote nothing (stale, or a patch's predecessor is
        no longer the run's last checkpoint) and the caller is to take the stepwise path, which
        tells those apart."""
        _, (keys, release, moves), params, checkpoints, events, audits, outbox, terms, task = w
        # The run's last checkpoint must be the one the patches' chain starts from;
        # keyframes go anywhere.
        starts = chain_starts(checkpoints)
        if len(starts) > 1:
            return None
        last = starts.pop() if starts else None
        if last is not None:
            params["k_last"] = last
        tasks = (1, len(task.requests), len(task.terms)) if task is not None else (0, 0, 0)
        shape = (len(checkpoints), len(events), len(audits), len(outbox), len(terms), *tasks)

        def build() -> Any:
            cas = st.run_update(
                keys,
                moves=moves,
                release=release,
                guard=last is not None,
                returning=st.CAS_RETURNING,
            )
            return st.one_statement_write(cas, shape)

        text = self._d.text(("finish_alone", *w.update, last is not None, *shape), build)
        args = list(self._args(text, params))
        first = 1 if last is None else last + 1
        for index, checkpoint in enumerate(checkpoints):
            args += checkpoint.at(first + index).columns()
        for event in events:
            args += (event.event_type, event.step_id, event.payload)
        for audit in audits:
            args += (audit[name] for name in _AUDIT_COLUMNS)
        for row in outbox:
            bound = self._d.bind(t.notification_events, row)
            args += (bound[name] for name in _OUTBOX_COLUMNS)
        for term, created_at, _ in terms:
            args += (term, created_at)
        if task is not None:
            args += self._task_args(task)
        try:
            return self._ex.alone(text.sql, args)
        except self._d.db.loaded_dbapi.IntegrityError as exc:
            if task is None:
                raise
            raise task.taken() from exc  # the run was just updated: only the task's id is left

    def _task_args(self, task: NewTask) -> list[Any]:
        """A new task's rows as a one-statement write's parameters, in :func:`st.cas_params`
        order: the continuation, its request index rows, its search rows."""
        args = [task.bound[name] for name in _TASK_COLUMNS]
        for row in task.requests:
            bound = self._d.bind(t.continuation_requests, row)
            args += (bound[name] for name in _REQUEST_COLUMNS)
        for term_row in task.terms:
            args += term_row
        return args

    def _insert_step_checkpoints(
        self, run_id: str, checkpoints: Sequence[StepCheckpoint], first: int, stamp: Any
    ) -> None:
        """Insert ``checkpoints`` as sequences ``first``, ``first + 1``, ... stamped ``stamp``
        (a patch on any row but the one before it is stored as its keyframe:
        :meth:`StepCheckpoint.at`)."""
        rows_ = [
            (run_id, first + offset, *checkpoint.at(first + offset).columns(), stamp)
            for offset, checkpoint in enumerate(checkpoints)
        ]
        self._d.insert_rows(self._ex.add, t.checkpoints, CHECKPOINT_COLUMNS, rows_)
