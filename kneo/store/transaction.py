"""The SQLAlchemy Core write unit of work of :class:`~kneo.store.api.Store`.

Row values, defaults, redaction, payload encoding and sequence bookkeeping come from
:mod:`kneo.store.rowvalues` (shared with :class:`~kneo.store.rawtx.RawTransaction`); this
module executes them as prepared Core statements.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection

from kneo.errors import Conflict
from kneo.store import rows, steps
from kneo.store import tables as t
from kneo.store.base import not_found_error
from kneo.store.records import AuditEvent, ContinuationRecord, RunRecord, TraceEvent
from kneo.store.registry import RegistryWritesMixin
from kneo.store.rowvalues import (
    RUN_MUTABLE_FIELDS,
    RowWriter,
    audit_values,
    check_trace_events,
    continuation_request_list,
    continuation_request_rows,
    continuation_values,
    new_continuation,
    outbox_values,
    trace_values,
)

if TYPE_CHECKING:
    from kneo.store.api import Store

__all__ = ["RUN_MUTABLE_FIELDS", "Transaction"]

# Statements built once and executed with parameters: SQLAlchemy then reuses their cache key
# and compiled form instead of rebuilding a statement (and coercing every value) per call.
_INSERT_CHECKPOINT = sa.insert(t.checkpoints)
_INSERT_TRACE = sa.insert(t.trace_events)
_INSERT_AUDIT = sa.insert(t.audit_events)
_INSERT_OUTBOX = sa.insert(t.notification_events)
_INSERT_CONT_REQUESTS = sa.insert(t.continuation_requests)
_INSERT_QUEUE = sa.insert(t.queue).returning(t.queue.c.id)
_SEQ_ALLOC = {
    column: sa.update(t.runs)
    .where(t.runs.c.run_id == sa.bindparam("k_run_id"))
    .values({column: t.runs.c[column] + sa.bindparam("k_count", type_=sa.Integer)})
    .returning(t.runs.c.checkpoint_seq, t.runs.c.trace_seq)
    for column in ("checkpoint_seq", "trace_seq")
}
_SEQ_FLUSH = (
    sa.update(t.runs)
    .where(t.runs.c.run_id == sa.bindparam("k_run_id"))
    .values(
        checkpoint_seq=sa.bindparam("k_checkpoint_seq", type_=sa.Integer),
        trace_seq=sa.bindparam("k_trace_seq", type_=sa.Integer),
    )
)


def _update_run_stmt(keys: tuple[str, ...], cas: bool) -> Any:
    c = t.runs.c
    stmt = sa.update(t.runs).where(c.run_id == sa.bindparam("k_run_id"))
    if cas:
        stmt = stmt.where(c.version == sa.bindparam("k_expected", type_=sa.Integer))
    return stmt.values(
        version=c.version + 1,
        updated_at=sa.bindparam("k_now", type_=c.updated_at.type),
        **{k: sa.bindparam(f"v_{k}", type_=c[k].type) for k in keys},
    ).returning(*t.runs.c)


def _dialect_stmt(store: Any, name: str) -> Any:
    """Dialect-specific statements (``ON CONFLICT``), built once per store."""

    def build() -> Any:
        if name == "spec":
            return store.dialect.insert(t.specs).on_conflict_do_nothing(index_elements=["digest"])
        if name == "create_run":
            return (
                store.dialect.insert(t.runs)
                .on_conflict_do_nothing(index_elements=["run_id"])
                .returning(t.runs.c.run_id)
            )
        return (
            store.dialect.insert(t.continuations)
            .on_conflict_do_nothing(index_elements=["continuation_id"])
            .returning(t.continuations.c.continuation_id)
        )

    return store.dialect.memo(name, build)


class Transaction(RowWriter, RegistryWritesMixin):
    """One unit of work on one connection; obtain it from :meth:`Store.transaction`.

    Every method writes through the same database transaction; nothing is visible to other
    processes until the ``with`` block exits normally, and an exception undoes all of it.
    """

    def __init__(self, store: Store, conn: Connection) -> None:
        self._store = store
        self.conn = conn
        self.now = store.clock.now()
        self._seq: dict[str, list[int]] = {}
        self._seq_dirty: set[str] = set()
        self._new_specs: list[str] = []

    # -- runs ------------------------------------------------------------------------
    def _insert_run(self, values: dict[str, Any], *, checked: bool = True) -> bool:
        return (
            self.conn.execute(_dialect_stmt(self._store, "create_run"), values).first() is not None
        )

    def _insert_spec(self, values: dict[str, Any]) -> None:
        self.conn.execute(_dialect_stmt(self._store, "spec"), values)

    def _insert_trace_rows(self, values: list[dict[str, Any]]) -> None:
        self.conn.execute(_INSERT_TRACE, values)

    def get_run(self, run_id: str, *, for_update: bool = False) -> RunRecord:
        """The run as this transaction sees it; ``for_update`` row-locks it on PostgreSQL."""
        stmt = sa.select(t.runs).where(t.runs.c.run_id == run_id)
        if for_update:
            stmt = stmt.with_for_update()
        row = self.conn.execute(stmt).mappings().first()
        if row is None:
            raise not_found_error("run", run_id)
        return rows.run(row, rows.spec_reader(self._store.dialect, self.conn))

    def update_run(
        self, run_id: str, /, *, expected_version: int | None = None, **changes: Any
    ) -> RunRecord:
        """Change a run and bump its version; compare-and-set when ``expected_version`` is given.

        Raises ``Conflict(stale_state)`` if the stored version differs and ``NotFound`` if the
        run does not exist. ``updated_at`` is set from the store's clock.
        """
        keys = self._run_changes(run_id, changes)
        params = {f"v_{k}": changes[k] for k in keys}
        params |= {"k_run_id": run_id, "k_now": self.now, "k_expected": expected_version}
        cas = expected_version is not None
        stmt = self._store.dialect.memo(
            ("update_run", keys, cas), lambda: _update_run_stmt(keys, cas)
        )
        row = self.conn.execute(stmt, params).mappings().first()
        if row is not None:
            self._run_updated(run_id, row)
            return rows.run(row, rows.spec_reader(self._store.dialect, self.conn))
        self._raise_stale(run_id, expected_version)

    def _set_run_lease(self, run_id: str, owner: str, expires_at: datetime) -> None:
        self.conn.execute(
            sa.update(t.runs)
            .where(t.runs.c.run_id == run_id)
            .values(lease_owner=owner, lease_expires_at=expires_at)
        )

    def _run_version(self, run_id: str) -> int | None:
        current: int | None = self.conn.execute(
            sa.select(t.runs.c.version).where(t.runs.c.run_id == run_id)
        ).scalar()
        return current

    def request_cancel(self, run_id: str) -> RunRecord:
        """Flag a run for cooperative cancellation.

        Bumps the version on purpose: a worker's next compare-and-set then fails, it re-reads
        the run and sees the request, so a cancelled run is never overwritten as finished.
        """
        return self.update_run(run_id, cancel_requested=True)

    def _allocate_sequence(self, run_id: str, column: str, count: int) -> Sequence[Any] | None:
        return self.conn.execute(_SEQ_ALLOC[column], {"k_run_id": run_id, "k_count": count}).first()

    def _write_sequences(self, run_id: str, checkpoint_seq: int, trace_seq: int) -> None:
        self.conn.execute(
            _SEQ_FLUSH,
            {"k_run_id": run_id, "k_checkpoint_seq": checkpoint_seq, "k_trace_seq": trace_seq},
        )

    def write_step(
        self,
        run_id: str,
        /,
        *,
        expected_version: int,
        state_text: str,
        checkpoint: steps.StepCheckpoint,
        events: Sequence[steps.StepEvent],
    ) -> steps.StepWritten:
        """One step boundary in three statements (see :mod:`kneo.store.steps`): the run's new
        state with compare-and-set and sequence allocation, its checkpoint, its trace events.
        Returns the new version and counters; ``stale_state``/``not_found`` as
        :meth:`update_run`."""
        if run_id in self._seq_dirty:
            self._flush_sequences()
        written = steps.write_step(
            self.conn,
            self._store.dialect,
            run_id=run_id,
            expected_version=expected_version,
            now=self.now,
            state_text=state_text,
            checkpoint=checkpoint,
            events=events,
        )
        if written is None:
            self._raise_stale(run_id, expected_version)
        self._seq[run_id] = [written.checkpoint_seq, written.trace_seq]
        return written

    # -- checkpoints and trace ---------------------------------------------------------
    def _insert_checkpoints(self, values: list[dict[str, Any]]) -> None:
        self.conn.execute(_INSERT_CHECKPOINT, values)

    def add_trace_event(
        self,
        run_id: str,
        event_type: str,
        *,
        step_id: str | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> TraceEvent:
        """Append one trace event; see :meth:`add_trace_events` for batches."""
        return self.add_trace_events(
            run_id, [{"event_type": event_type, "step_id": step_id, "payload": payload}]
        )[0]

    def add_trace_events(
        self, run_id: str, events: Sequence[Mapping[str, Any]]
    ) -> list[TraceEvent]:
        """Append events (``event_type``, optional ``step_id`` and ``payload``) in order."""
        if not events:
            return []
        first = self._next_sequence(run_id, "trace_seq", len(events))
        check_trace_events(events)
        values = trace_values(run_id, first, events, self.now)
        self.conn.execute(_INSERT_TRACE, values)
        return [rows.trace(v) for v in values]

    # -- continuations -------------------------------------------------------------------
    def get_continuation(
        self, continuation_id: str, *, for_update: bool = False
    ) -> ContinuationRecord:
        """The continuation as this transaction sees it (row-locked on PostgreSQL if asked)."""
        stmt = sa.select(t.continuations).where(
            t.continuations.c.continuation_id == continuation_id
        )
        if for_update:
            stmt = stmt.with_for_update()
        row = self.conn.execute(stmt).mappings().first()
        if row is None:
            raise not_found_error("continuation", continuation_id)
        return rows.continuation(row)

    def put_continuation(
        self,
        continuation_id: str,
        *,
        run_id: str | None,
        requests: Sequence[Mapping[str, Any]],
        context: Mapping[str, Any] | None = None,
        status: str = "pending",
        expires_at: datetime | None = None,
        escalated_at: datetime | None = None,
        workflow_kind: str | None = None,
        expected_version: int | None = None,
        workflow_name: str | None = None,
        environment: str | None = None,
    ) -> ContinuationRecord:
        """Create a continuation, or replace it when ``expected_version`` matches the stored one.

        Each request is a dict with at least ``request_id`` (plus ``kind``, ``assignee``,
        ``status`` ... as the engine defines them); they are indexed for listing by assignee
        and kind. ``workflow_kind``, ``workflow_name`` and ``environment`` default to the
        run's (a replace keeps the stored name and environment). Creating an existing id is
        ``already_exists``; a version mismatch is ``stale_state``.
        """
        request_list = continuation_request_list(requests)
        if workflow_kind is None and run_id is not None:
            r = t.runs.c
            found = self.conn.execute(
                sa.select(r.workflow_kind, r.workflow_name, r.environment).where(r.run_id == run_id)
            ).first()
            if found is not None:
                workflow_kind = found[0]
                workflow_name = workflow_name or found[1]
                environment = environment or found[2]
        values = continuation_values(
            run_id=run_id,
            status=status,
            request_list=request_list,
            context=context,
            workflow_kind=workflow_kind,
            expires_at=expires_at,
            escalated_at=escalated_at,
            now=self.now,
            workflow_name=workflow_name,
            environment=environment,
        )
        c = t.continuations.c
        if expected_version is None:
            new_continuation(values, continuation_id, self.now)
            try:
                inserted = self.conn.execute(
                    _dialect_stmt(self._store, "continuation"), values
                ).first()
            except sa_exc.IntegrityError as exc:  # the only other constraint: the run's key
                raise not_found_error("run", run_id) from exc
            if inserted is None:
                raise Conflict(
                    f"continuation {continuation_id!r} already exists", code="already_exists"
                )
            record = rows.continuation(values)
        else:
            row = (
                self.conn.execute(
                    sa.update(t.continuations)
                    .where(c.continuation_id == continuation_id, c.version == expected_version)
                    .values(version=c.version + 1, **values)
                    .returning(*t.continuations.c)
                )
                .mappings()
                .first()
            )
            if row is None:
                self.get_continuation(continuation_id)  # NotFound if it is gone
                raise Conflict(
                    f"continuation {continuation_id!r} changed since it was read",
                    code="stale_state",
                    continuation_id=continuation_id,
                )
            record = rows.continuation(row)
            self.conn.execute(
                sa.delete(t.continuation_requests).where(
                    t.continuation_requests.c.continuation_id == continuation_id
                )
            )
        if request_list:
            self.conn.execute(
                _INSERT_CONT_REQUESTS,
                continuation_request_rows(continuation_id, request_list, status),
            )
        return record

    def delete_continuation(self, continuation_id: str) -> bool:
        """Remove a continuation and its request index; ``False`` if it did not exist."""
        self.conn.execute(
            sa.delete(t.continuation_requests).where(
                t.continuation_requests.c.continuation_id == continuation_id
            )
        )
        result = self.conn.execute(
            sa.delete(t.continuations).where(t.continuations.c.continuation_id == continuation_id)
        )
        return result.rowcount == 1

    # -- audit, queue, metadata -------------------------------------------------------------
    def add_audit(
        self,
        event_type: str,
        *,
        actor: str | None = None,
        run_id: str | None = None,
        continuation_id: str | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> AuditEvent:
        """Record an audit event (``evt_...``); the payload is redacted before it is written.
        A notifiable one also writes its ``notification_events`` row (the outbox)."""
        values = audit_values(
            event_type,
            actor=actor,
            run_id=run_id,
            continuation_id=continuation_id,
            payload=payload,
            now=self.now,
        )
        self.conn.execute(_INSERT_AUDIT, values)
        outbox = outbox_values(values)
        if outbox is not None:
            self.conn.execute(_INSERT_OUTBOX, outbox)
        return rows.audit(values)

    def _insert_queue(self, values: dict[str, Any]) -> int:
        queue_id: int = self.conn.execute(_INSERT_QUEUE, values).scalar_one()
        return queue_id

    def set_metadata(self, key: str, value: Any) -> None:
        """Upsert one project metadata value (any JSON value)."""
        ins = self._store.dialect.insert(t.project_metadata).values(
            key=key, value=value, updated_at=self.now
        )
        self.conn.execute(
            ins.on_conflict_do_update(
                index_elements=["key"], set_={"value": ins.excluded.value, "updated_at": self.now}
            )
        )

    def delete_metadata(self, key: str) -> bool:
        result = self.conn.execute(
            sa.delete(t.project_metadata).where(t.project_metadata.c.key == key)
        )
        return result.rowcount == 1
