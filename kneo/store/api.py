"""The Store: one persistence interface for SQLite and PostgreSQL.

Reads are methods on :class:`Store`. Writes go through a unit of work so that everything a
step boundary changes commits together or not at all::

    with store.transaction() as tx:
        run = tx.update_run(run_id, expected_version=run.version, state=position)
        tx.add_checkpoint(run_id, type="step_completed", step_id="s1", payload=...)
        tx.add_trace_events(run_id, [{"event_type": "step.completed", "step_id": "s1"}])
        tx.add_audit("run.step", run_id=run_id)

``update_run(..., expected_version=v)`` is a compare-and-set: it bumps ``version`` and raises
:class:`~kneo.errors.Conflict` (``stale_state``) when another writer got there first, which
is how a process holding a stale view of a paused run is stopped from resuming it twice.

Coordination primitives that must commit on their own (queue claims and leases, named locks,
idempotency keys) live in :mod:`kneo.store.coordination`; the GitOps registry in
:mod:`kneo.store.registry`; retention and backup in :mod:`kneo.store.maintenance`. Everything
is reached through this one ``Store`` object.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, NoReturn

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine

from kneo.clock import Clock
from kneo.errors import Conflict, InvalidRequest
from kneo.ids import new_id, new_run_id
from kneo.redaction import redact
from kneo.settings import Settings
from kneo.store import payloads, rawtx, rows, steps
from kneo.store import tables as t
from kneo.store.base import SortOrder, StoreBase, check_order, check_page, not_found_error, ordered
from kneo.store.coordination import CoordinationMixin
from kneo.store.dialects import StoreDialect
from kneo.store.maintenance import MaintenanceMixin
from kneo.store.records import (
    AuditEvent,
    CheckpointRecord,
    ContinuationRecord,
    Page,
    QueueRecord,
    RunRecord,
    TraceEvent,
)
from kneo.store.registry import RegistryReadsMixin, RegistryWritesMixin

#: Columns ``update_run`` may change; identity, sequences and timestamps it manages itself.
RUN_MUTABLE_FIELDS: frozenset[str] = frozenset(
    {
        "status",
        "output_text",
        "error",
        "state",
        "cancel_requested",
        "deadline_at",
        "started_at",
        "finished_at",
        "metadata",
        "spec",
        "spec_digest",
        "environment",
        "workflow_name",
        "workflow_kind",
        "agent_name",
        "bundle_name",
        "bundle_revision",
        "bundle_commit",
    }
)

# Statements built once and executed with parameters: SQLAlchemy then reuses their cache key
# and compiled form instead of rebuilding a statement (and coercing every value) per call.
_INSERT_LOCK = sa.insert(t.locks)
_INSERT_CHECKPOINT = sa.insert(t.checkpoints)
_INSERT_TRACE = sa.insert(t.trace_events)
_INSERT_AUDIT = sa.insert(t.audit_events)
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
_UPDATE_RUN: dict[tuple[tuple[str, ...], bool], Any] = {}
_STMT_BY_DIALECT: dict[tuple[str, str], Any] = {}


def _update_run_stmt(keys: tuple[str, ...], cas: bool) -> Any:
    stmt = _UPDATE_RUN.get((keys, cas))
    if stmt is None:
        c = t.runs.c
        stmt = sa.update(t.runs).where(c.run_id == sa.bindparam("k_run_id"))
        if cas:
            stmt = stmt.where(c.version == sa.bindparam("k_expected", type_=sa.Integer))
        stmt = stmt.values(
            version=c.version + 1,
            updated_at=sa.bindparam("k_now", type_=c.updated_at.type),
            **{k: sa.bindparam(f"v_{k}", type_=c[k].type) for k in keys},
        ).returning(*t.runs.c)
        _UPDATE_RUN[(keys, cas)] = stmt
    return stmt


def _dialect_stmt(store: Any, name: str) -> Any:
    """Dialect-specific statements (``ON CONFLICT``), built once per dialect."""
    key = (store.dialect.name, name)
    stmt = _STMT_BY_DIALECT.get(key)
    if stmt is None:
        if name == "spec":
            stmt = store.dialect.insert(t.specs).on_conflict_do_nothing(index_elements=["digest"])
        elif name == "create_run":
            stmt = (
                store.dialect.insert(t.runs)
                .on_conflict_do_nothing(index_elements=["run_id"])
                .returning(t.runs.c.run_id)
            )
        else:
            stmt = (
                store.dialect.insert(t.continuations)
                .on_conflict_do_nothing(index_elements=["continuation_id"])
                .returning(t.continuations.c.continuation_id)
            )
        _STMT_BY_DIALECT[key] = stmt
    return stmt


_DELETE_LOCK = sa.delete(t.locks).where(
    t.locks.c.name == sa.bindparam("name"), t.locks.c.owner == sa.bindparam("owner")
)

_DELETE_LOCK_ANY = sa.delete(t.locks).where(t.locks.c.name == sa.bindparam("name"))


class Transaction(RegistryWritesMixin):
    """One unit of work on one connection; obtain it from :meth:`Store.transaction`.

    Every method writes through the same database transaction; nothing is visible to other
    processes until the ``with`` block exits normally, and an exception undoes all of it.
    """

    def __init__(self, store: Store, conn: Connection) -> None:
        self._store = store
        self.conn = conn
        self.now = store.clock.now()
        # Sequence counters of runs whose row this transaction holds locked (it inserted or
        # updated it): allocations are counted here and written once, folded into the next
        # update_run or just before commit, instead of one UPDATE per checkpoint/event.
        self._seq: dict[str, list[int]] = {}
        self._seq_dirty: set[str] = set()

    # -- runs ------------------------------------------------------------------------
    def create_run(
        self,
        *,
        target: str,
        input_text: str,
        run_id: str | None = None,
        status: str = "queued",
        workflow_name: str | None = None,
        workflow_kind: str | None = None,
        agent_name: str | None = None,
        environment: str | None = None,
        spec: Mapping[str, Any] | None = None,
        spec_digest: str | None = None,
        bundle_name: str | None = None,
        bundle_revision: int | None = None,
        bundle_commit: str | None = None,
        state: Mapping[str, Any] | None = None,
        deadline_at: datetime | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> RunRecord:
        """Insert a new run at ``version`` 1; a duplicate ``run_id`` is ``already_exists``."""
        values = {
            "run_id": run_id or new_run_id(self.now),
            "status": status,
            "target": target,
            "workflow_name": workflow_name,
            "workflow_kind": workflow_kind,
            "agent_name": agent_name,
            "input_text": input_text,
            "output_text": None,
            "error": None,
            "environment": environment,
            "spec": {},
            "spec_digest": spec_digest,
            "spec_ref": self._put_spec(spec),
            "bundle_name": bundle_name,
            "bundle_revision": bundle_revision,
            "bundle_commit": bundle_commit,
            "state": dict(state or {}),
            "version": 1,
            "cancel_requested": False,
            "deadline_at": deadline_at,
            "created_at": self.now,
            "updated_at": self.now,
            "started_at": None,
            "finished_at": None,
            "metadata": dict(metadata or {}),
            "checkpoint_seq": 0,
            "trace_seq": 0,
        }
        inserted = self.conn.execute(_dialect_stmt(self._store, "create_run"), values).first()
        if inserted is None:
            raise Conflict(f"run {values['run_id']!r} already exists", code="already_exists")
        self._seq[str(values["run_id"])] = [0, 0]
        return rows.run({**values, "spec": dict(spec or {})})

    def _put_spec(self, spec: Mapping[str, Any] | None) -> str | None:
        """Store ``spec`` once in ``specs`` (keyed by the sha256 of its JSON text); its
        digest, or ``None`` for an empty spec (kept inline)."""
        if not spec:
            return None
        text = steps.json_text(dict(spec))
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        self.conn.execute(
            _dialect_stmt(self._store, "spec"),
            {"digest": digest, "spec": text, "created_at": self.now},
        )
        return digest

    def get_run(self, run_id: str, *, for_update: bool = False) -> RunRecord:
        """The run as this transaction sees it; ``for_update`` row-locks it on PostgreSQL."""
        stmt = sa.select(t.runs).where(t.runs.c.run_id == run_id)
        if for_update:
            stmt = stmt.with_for_update()
        row = self.conn.execute(stmt).mappings().first()
        if row is None:
            raise not_found_error("run", run_id)
        return rows.run(row, self.conn)

    def update_run(
        self, run_id: str, /, *, expected_version: int | None = None, **changes: Any
    ) -> RunRecord:
        """Change a run and bump its version; compare-and-set when ``expected_version`` is given.

        Raises ``Conflict(stale_state)`` if the stored version differs and ``NotFound`` if the
        run does not exist. ``updated_at`` is set from the store's clock.
        """
        unknown = set(changes) - RUN_MUTABLE_FIELDS
        if unknown:
            raise InvalidRequest(
                f"run fields cannot be updated: {sorted(unknown)}", field="changes"
            )
        if run_id in self._seq_dirty:
            changes["checkpoint_seq"], changes["trace_seq"] = self._seq[run_id]
        if "spec" in changes:  # a replaced spec is stored inline, no longer by reference
            changes["spec_ref"] = None
        keys = tuple(sorted(changes))
        params = {f"v_{k}": changes[k] for k in keys}
        params |= {"k_run_id": run_id, "k_now": self.now, "k_expected": expected_version}
        stmt = _update_run_stmt(keys, expected_version is not None)
        row = self.conn.execute(stmt, params).mappings().first()
        if row is not None:
            self._seq[run_id] = [row["checkpoint_seq"], row["trace_seq"]]
            self._seq_dirty.discard(run_id)
            return rows.run(row, self.conn)
        self._raise_stale(run_id, expected_version)

    def current(self, run: RunRecord) -> RunRecord:
        """``run`` with the trace count this transaction allocated for it (so a caller can
        report ``trace_event_count`` without counting rows)."""
        known = self._seq.get(run.run_id)
        if known is None or known[1] == run.trace_seq:
            return run
        return dataclasses.replace(run, trace_seq=known[1])

    def take_lock(
        self, name: str, owner: str, ttl_seconds: float, *, replace: bool = False
    ) -> None:
        """Insert the named lock in this transaction, for a name nobody can hold yet (such as
        ``run:<id>`` of a run this transaction creates); a held name fails the transaction
        with a constraint ``conflict``. ``replace`` first removes any row under the name: for
        a caller that knows every holder is gone (the run it moves out of ``queued`` or
        ``paused`` under a compare-and-set had no executor)."""
        from datetime import timedelta

        if replace:
            self.conn.execute(_DELETE_LOCK_ANY, {"name": name})
        self.conn.execute(
            _INSERT_LOCK,
            {
                "name": name,
                "owner": owner,
                "acquired_at": self.now,
                "expires_at": self.now + timedelta(seconds=ttl_seconds),
            },
        )

    def drop_lock(self, name: str, owner: str) -> None:
        """Release the named lock ``owner`` holds, committed with this transaction."""
        self.conn.execute(_DELETE_LOCK, {"name": name, "owner": owner})

    def _raise_stale(self, run_id: str, expected_version: int | None) -> NoReturn:
        current = self.conn.execute(
            sa.select(t.runs.c.version).where(t.runs.c.run_id == run_id)
        ).scalar()
        if current is None:
            raise not_found_error("run", run_id)
        raise Conflict(
            f"run {run_id!r} changed since it was read (version {expected_version}, now {current})",
            code="stale_state",
            run_id=run_id,
            expected_version=expected_version,
            current_version=current,
        )

    def request_cancel(self, run_id: str) -> RunRecord:
        """Flag a run for cooperative cancellation.

        Bumps the version on purpose: a worker's next compare-and-set then fails, it re-reads
        the run and sees the request, so a cancelled run is never overwritten as finished.
        """
        return self.update_run(run_id, cancel_requested=True)

    def _next_sequence(self, run_id: str, column: str, count: int) -> int:
        """Reserve ``count`` sequence numbers for a run; returns the first one.

        The counters live on the run row, so the first allocation row-locks it (an UPDATE) and
        two writers of one run cannot allocate the same number on any backend. Once this
        transaction holds the row, further allocations are counted in memory and written by
        :meth:`_flush_sequences` (or folded into ``update_run``) before commit.
        """
        index = 0 if column == "checkpoint_seq" else 1
        known = self._seq.get(run_id)
        if known is None:
            row = self.conn.execute(
                _SEQ_ALLOC[column], {"k_run_id": run_id, "k_count": count}
            ).first()
            if row is None:
                raise not_found_error("run", run_id)
            self._seq[run_id] = [int(row[0]), int(row[1])]
            return int(row[index]) - count + 1
        first = known[index] + 1
        known[index] += count
        self._seq_dirty.add(run_id)
        return first

    def _flush_sequences(self) -> None:
        """Write counters allocated in memory; called by the store right before commit."""
        for run_id in sorted(self._seq_dirty):
            checkpoint_seq, trace_seq = self._seq[run_id]
            self.conn.execute(
                _SEQ_FLUSH,
                {"k_run_id": run_id, "k_checkpoint_seq": checkpoint_seq, "k_trace_seq": trace_seq},
            )
        self._seq_dirty.clear()

    def write_step(
        self,
        run_id: str,
        /,
        *,
        expected_version: int,
        state_text: str,
        checkpoint: steps.StepCheckpoint,
        events: Sequence[steps.StepEvent],
    ) -> int:
        """One step boundary in three statements (see :mod:`kneo.store.steps`): the run's new
        state with compare-and-set and sequence allocation, its checkpoint, its trace events.
        Returns the new version; ``stale_state``/``not_found`` as :meth:`update_run`."""
        if run_id in self._seq_dirty:
            self._flush_sequences()
        written = steps.write_step(
            self.conn,
            run_id=run_id,
            expected_version=expected_version,
            now=self.now,
            state_text=state_text,
            checkpoint=checkpoint,
            events=events,
        )
        if written is None:
            self._raise_stale(run_id, expected_version)
        self._seq[run_id] = [written[1], written[2]]
        return written[0]

    # -- checkpoints and trace ---------------------------------------------------------
    def add_checkpoint(
        self,
        run_id: str,
        *,
        type: str,
        payload: Mapping[str, Any],
        step_id: str | None = None,
        status: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> CheckpointRecord:
        """Append a checkpoint with the run's next sequence number (compressed or previewed)."""
        encoded = payloads.encode(dict(payload), self._store.settings.checkpoint)
        meta = dict(metadata or {})
        if encoded.reduction is not None:
            meta["payload_reduction"] = encoded.reduction
        sequence = self._next_sequence(run_id, "checkpoint_seq", 1)
        values = {
            "run_id": run_id,
            "sequence": sequence,
            "type": type,
            "step_id": step_id,
            "status": status,
            "encoding": encoded.encoding,
            "payload": encoded.data,
            "size_bytes": encoded.size_bytes,
            "truncated": encoded.truncated,
            "metadata": meta,
            "created_at": self.now,
        }
        self.conn.execute(_INSERT_CHECKPOINT, values)
        return rows.checkpoint(values)

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
        values = []
        for index, event in enumerate(events):
            if not event.get("event_type"):
                raise InvalidRequest("trace event needs an event_type", field="event_type")
            values.append(
                {
                    "run_id": run_id,
                    "sequence": first + index,
                    "event_type": event["event_type"],
                    "step_id": event.get("step_id"),
                    "payload": dict(event.get("payload") or {}),
                    "created_at": self.now,
                }
            )
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
    ) -> ContinuationRecord:
        """Create a continuation, or replace it when ``expected_version`` matches the stored one.

        Each request is a dict with at least ``request_id`` (plus ``kind``, ``assignee``,
        ``status`` ... as the engine defines them); they are indexed for listing by assignee
        and kind. ``workflow_kind`` defaults to the run's. Creating an existing id is
        ``already_exists``; a version mismatch is ``stale_state``.
        """
        request_list = [dict(r) for r in requests]
        for request in request_list:
            if not request.get("request_id"):
                raise InvalidRequest(
                    "every continuation request needs a request_id", field="requests"
                )
        if len({r["request_id"] for r in request_list}) != len(request_list):
            raise InvalidRequest("continuation request ids must be unique", field="requests")
        if workflow_kind is None and run_id is not None:
            workflow_kind = self.conn.execute(
                sa.select(t.runs.c.workflow_kind).where(t.runs.c.run_id == run_id)
            ).scalar()
        values: dict[str, Any] = {
            "run_id": run_id,
            "status": status,
            "requests": request_list,
            "context": dict(context or {}),
            "workflow_kind": workflow_kind,
            "expires_at": expires_at,
            "escalated_at": escalated_at,
            "updated_at": self.now,
        }
        c = t.continuations.c
        if expected_version is None:
            values |= {"continuation_id": continuation_id, "version": 1, "created_at": self.now}
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
                [
                    {
                        "continuation_id": continuation_id,
                        "request_id": r["request_id"],
                        "kind": r.get("kind"),
                        "assignee": r.get("assignee"),
                        "status": r.get("status") or "pending",
                    }
                    for r in request_list
                ],
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
        """Record an audit event (``evt_...``); the payload is redacted before it is written."""
        values = {
            "event_id": new_id("evt"),
            "event_type": event_type,
            "actor": actor,
            "run_id": run_id,
            "continuation_id": continuation_id,
            "payload": redact(dict(payload or {})),
            "created_at": self.now,
        }
        self.conn.execute(_INSERT_AUDIT, values)
        return rows.audit(values)

    def enqueue(self, run_id: str, *, available_at: datetime | None = None) -> QueueRecord:
        """Queue a run for a worker (commits with the rest of the transaction)."""
        values = {
            "run_id": run_id,
            "status": "queued",
            "attempts": 0,
            "lease_owner": None,
            "lease_expires_at": None,
            "error": None,
            "available_at": available_at or self.now,
            "created_at": self.now,
            "updated_at": self.now,
            "finished_at": None,
        }
        queue_id = self.conn.execute(_INSERT_QUEUE, values).scalar_one()
        return rows.queue({**values, "id": queue_id})

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


class Store(CoordinationMixin, RegistryReadsMixin, MaintenanceMixin, StoreBase):
    """The persistence interface. Build it with :func:`kneo.store.open_store`.

    Thread-safe: every call checks a connection out of the engine's pool. Timestamps come
    from the injected clock; JSON payloads are stored as compact text.
    """

    def __init__(
        self, engine: Engine, dialect: StoreDialect, *, settings: Settings, clock: Clock
    ) -> None:
        self.engine = engine
        self.dialect = dialect
        self.settings = settings
        self.clock = clock

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.dialect.name

    def close(self) -> None:
        """Release pooled connections."""
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------
    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """A write unit of work: commits on normal exit, rolls back on any exception."""
        with self._db_errors(), self.dialect.connect_write(self.engine) as conn, conn.begin():
            tx = Transaction(self, conn)
            yield tx
            tx._flush_sequences()

    def raw_transaction(self) -> contextlib.AbstractContextManager[rawtx.RawTransaction]:
        """A run's create or outcome unit of work as prepared statements on a raw DBAPI
        connection (:class:`kneo.store.rawtx.RawTransaction`): same rows, same commit."""
        return rawtx.raw_transaction(self)

    def schema_revision(self) -> str | None:
        """The migration revision recorded in the database (``None`` when empty)."""
        from kneo.store.migrate import current_revision

        with self._read() as conn:
            return current_revision(conn)

    def upgrade_schema(self) -> str | None:
        """Apply pending migrations under the cross-process lock; returns the new revision."""
        from kneo.store.migrate import upgrade

        with self._db_errors():
            return upgrade(self.engine, self.dialect)

    def ping(self) -> None:
        """Readiness: one round trip; ``NotReady`` when the database cannot be reached."""
        with self._read() as conn:
            conn.execute(sa.text("SELECT 1"))

    # -- runs -------------------------------------------------------------------------
    def create_run(self, **fields: Any) -> RunRecord:
        """Shorthand for ``create_run`` in its own transaction."""
        with self.transaction() as tx:
            return tx.create_run(**fields)

    def update_run(
        self, run_id: str, /, *, expected_version: int | None = None, **changes: Any
    ) -> RunRecord:
        """Shorthand for ``update_run`` in its own transaction."""
        with self.transaction() as tx:
            return tx.update_run(run_id, expected_version=expected_version, **changes)

    def request_cancel(self, run_id: str) -> RunRecord:
        """Shorthand for :meth:`Transaction.request_cancel` in its own transaction."""
        with self.transaction() as tx:
            return tx.request_cancel(run_id)

    def write_step(
        self,
        run_id: str,
        /,
        *,
        expected_version: int,
        state_text: str,
        checkpoint: steps.StepCheckpoint,
        events: Sequence[steps.StepEvent],
    ) -> int:
        """:meth:`Transaction.write_step` in its own transaction, committed on return (the
        engine's per-step path; see :func:`kneo.store.steps.commit_step`)."""
        written = steps.commit_step(
            self.engine,
            run_id=run_id,
            expected_version=expected_version,
            now=self.clock.now(),
            state_text=state_text,
            checkpoint=checkpoint,
            events=events,
        )
        if written is None:
            current = self.get_run(run_id).version  # NotFound when it is gone
            raise Conflict(
                f"run {run_id!r} changed since it was read "
                f"(version {expected_version}, now {current})",
                code="stale_state",
                run_id=run_id,
                expected_version=expected_version,
                current_version=current,
            )
        return written[0]

    def get_run(self, run_id: str) -> RunRecord:
        with self._read() as conn:
            row = (
                conn.execute(sa.select(t.runs).where(t.runs.c.run_id == run_id)).mappings().first()
            )
            if row is None:
                raise not_found_error("run", run_id)
            return rows.run(row, conn)

    def list_runs(
        self,
        *,
        status: str | Sequence[str] | None = None,
        limit: int = 50,
        offset: int = 0,
        sort_by: str = "created_at",
        sort_order: str = "desc",
    ) -> Page[RunRecord]:
        """Runs, optionally by status, sorted by ``created_at``, ``updated_at`` or ``status``."""
        check_page(limit, offset)
        order = check_order(sort_order)
        if sort_by not in ("created_at", "updated_at", "status"):
            raise InvalidRequest(
                f"sort_by must be created_at, updated_at or status, got {sort_by!r}",
                field="sort_by",
            )
        where = []
        if isinstance(status, str):
            where.append(t.runs.c.status == status)
        elif status is not None:
            where.append(t.runs.c.status.in_(list(status)))
        stmt = (
            sa.select(t.runs)
            .where(*where)
            .order_by(ordered(t.runs.c[sort_by], order), ordered(t.runs.c.run_id, order))
            .limit(limit)
            .offset(offset)
        )
        with self._read() as conn:
            total = conn.execute(
                sa.select(sa.func.count()).select_from(t.runs).where(*where)
            ).scalar_one()
            items = [rows.run(r, conn) for r in conn.execute(stmt).mappings()]
        return Page(items, total, limit, offset, sort_by, order)

    # -- checkpoints and trace --------------------------------------------------------
    def list_checkpoints(
        self,
        run_id: str,
        *,
        type: str | None = None,
        limit: int = 100,
        offset: int = 0,
        sort_order: str = "asc",
    ) -> Page[CheckpointRecord]:
        """A run's checkpoints by sequence, optionally of one ``type``."""
        check_page(limit, offset)
        order = check_order(sort_order)
        c = t.checkpoints.c
        where = [c.run_id == run_id] + ([c.type == type] if type else [])
        with self._read() as conn:
            total = conn.execute(
                sa.select(sa.func.count()).select_from(t.checkpoints).where(*where)
            ).scalar_one()
            result = conn.execute(
                sa.select(t.checkpoints)
                .where(*where)
                .order_by(ordered(c.sequence, order))
                .limit(limit)
                .offset(offset)
            ).mappings()
            items = [rows.checkpoint(r) for r in result]
        return Page(items, total, limit, offset, "sequence", order)

    def get_checkpoint(self, run_id: str, sequence: int) -> CheckpointRecord:
        c = t.checkpoints.c
        with self._read() as conn:
            row = (
                conn.execute(
                    sa.select(t.checkpoints).where(c.run_id == run_id, c.sequence == sequence)
                )
                .mappings()
                .first()
            )
        if row is None:
            raise not_found_error("checkpoint", f"{run_id}#{sequence}")
        return rows.checkpoint(row)

    def latest_checkpoint(self, run_id: str, *, type: str | None = None) -> CheckpointRecord | None:
        """The run's newest checkpoint (of ``type``), or ``None``."""
        page = self.list_checkpoints(run_id, type=type, limit=1, sort_order="desc")
        return page.items[0] if page.items else None

    def list_trace(
        self,
        run_id: str,
        *,
        event_type: str | None = None,
        limit: int = 100,
        offset: int = 0,
        sort_order: str = "asc",
    ) -> Page[TraceEvent]:
        """A run's timeline by sequence, optionally of one ``event_type``."""
        check_page(limit, offset)
        order = check_order(sort_order)
        c = t.trace_events.c
        where = [c.run_id == run_id] + ([c.event_type == event_type] if event_type else [])
        with self._read() as conn:
            total = conn.execute(
                sa.select(sa.func.count()).select_from(t.trace_events).where(*where)
            ).scalar_one()
            result = conn.execute(
                sa.select(t.trace_events)
                .where(*where)
                .order_by(ordered(c.sequence, order))
                .limit(limit)
                .offset(offset)
            ).mappings()
            items = [rows.trace(r) for r in result]
        return Page(items, total, limit, offset, "sequence", order)

    # -- continuations ----------------------------------------------------------------
    def get_continuation(self, continuation_id: str) -> ContinuationRecord:
        c = t.continuations.c
        with self._read() as conn:
            row = (
                conn.execute(sa.select(t.continuations).where(c.continuation_id == continuation_id))
                .mappings()
                .first()
            )
        if row is None:
            raise not_found_error("continuation", continuation_id)
        return rows.continuation(row)

    def find_continuation_by_request(self, request_id: str) -> ContinuationRecord:
        """The continuation holding ``request_id`` (request ids are unique by construction)."""
        r = t.continuation_requests.c
        with self._read() as conn:
            cid = conn.execute(
                sa.select(r.continuation_id).where(r.request_id == request_id)
            ).scalar()
        if cid is None:
            raise not_found_error("request", request_id)
        return self.get_continuation(cid)

    def _continuation_filters(
        self,
        *,
        status: str | None,
        run_id: str | None,
        workflow_kind: str | None,
        assignee: str | None,
        kind: str | None,
        escalated: bool | None,
        older_than: datetime | None,
    ) -> list[Any]:
        c = t.continuations.c
        r = t.continuation_requests.c
        where: list[Any] = []
        if status is not None:
            where.append(c.status == status)
        if run_id is not None:
            where.append(c.run_id == run_id)
        if workflow_kind is not None:
            where.append(c.workflow_kind == workflow_kind)
        if escalated is not None:
            where.append(c.escalated_at.is_not(None) if escalated else c.escalated_at.is_(None))
        if older_than is not None:
            where.append(c.created_at < older_than)
        if assignee is not None or kind is not None:
            sub = sa.select(r.continuation_id).where(
                r.continuation_id == c.continuation_id, r.status == "pending"
            )
            if assignee is not None:
                sub = sub.where(r.assignee == assignee)
            if kind is not None:
                sub = sub.where(r.kind == kind)
            where.append(sa.exists(sub))
        return where

    def list_continuations(
        self,
        *,
        status: str | None = "pending",
        run_id: str | None = None,
        workflow_kind: str | None = None,
        assignee: str | None = None,
        kind: str | None = None,
        escalated: bool | None = None,
        older_than: datetime | None = None,
        sort: Literal["oldest", "newest"] = "oldest",
        limit: int = 50,
        offset: int = 0,
    ) -> Page[ContinuationRecord]:
        """Continuations (pending by default) filtered as the human task inbox needs.

        ``assignee``/``kind`` match continuations with at least one *pending* request of that
        assignee/kind; ``older_than`` keeps those created before the given time.
        """
        check_page(limit, offset)
        if sort not in ("oldest", "newest"):
            raise InvalidRequest(f"sort must be 'oldest' or 'newest', got {sort!r}", field="sort")
        order: SortOrder = "asc" if sort == "oldest" else "desc"
        c = t.continuations.c
        where = self._continuation_filters(
            status=status,
            run_id=run_id,
            workflow_kind=workflow_kind,
            assignee=assignee,
            kind=kind,
            escalated=escalated,
            older_than=older_than,
        )
        with self._read() as conn:
            total = conn.execute(
                sa.select(sa.func.count()).select_from(t.continuations).where(*where)
            ).scalar_one()
            result = conn.execute(
                sa.select(t.continuations)
                .where(*where)
                .order_by(ordered(c.created_at, order), ordered(c.continuation_id, order))
                .limit(limit)
                .offset(offset)
            ).mappings()
            items = [rows.continuation(r) for r in result]
        return Page(items, total, limit, offset, "created_at", order)

    def pending_counts_by_assignee(self) -> dict[str | None, int]:
        """Pending requests of pending continuations per assignee (``None`` = unassigned)."""
        r = t.continuation_requests.c
        c = t.continuations.c
        stmt = (
            sa.select(r.assignee, sa.func.count())
            .join(t.continuations, c.continuation_id == r.continuation_id)
            .where(r.status == "pending", c.status == "pending")
            .group_by(r.assignee)
        )
        with self._read() as conn:
            return {assignee: int(n) for assignee, n in conn.execute(stmt)}

    # -- audit and metadata ------------------------------------------------------------
    def add_audit(self, event_type: str, **fields: Any) -> AuditEvent:
        """Shorthand for :meth:`Transaction.add_audit` in its own transaction."""
        with self.transaction() as tx:
            return tx.add_audit(event_type, **fields)

    def list_audit(
        self,
        *,
        event_type: str | None = None,
        run_id: str | None = None,
        continuation_id: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Page[AuditEvent]:
        """Audit events, newest first."""
        check_page(limit, offset)
        a = t.audit_events.c
        where = []
        if event_type is not None:
            where.append(a.event_type == event_type)
        if run_id is not None:
            where.append(a.run_id == run_id)
        if continuation_id is not None:
            where.append(a.continuation_id == continuation_id)
        with self._read() as conn:
            total = conn.execute(
                sa.select(sa.func.count()).select_from(t.audit_events).where(*where)
            ).scalar_one()
            result = conn.execute(
                sa.select(t.audit_events)
                .where(*where)
                .order_by(a.id.desc())
                .limit(limit)
                .offset(offset)
            ).mappings()
            items = [rows.audit(r) for r in result]
        return Page(items, total, limit, offset, "created_at", "desc")

    def get_metadata(self, key: str, default: Any = None) -> Any:
        """One project metadata value, or ``default`` when unset."""
        with self._read() as conn:
            row = conn.execute(
                sa.select(t.project_metadata.c.value).where(t.project_metadata.c.key == key)
            ).first()
        return default if row is None else row[0]

    def list_metadata(self, prefix: str = "") -> dict[str, Any]:
        """All metadata whose key starts with ``prefix``."""
        m = t.project_metadata.c
        stmt = sa.select(m.key, m.value).order_by(m.key)
        if prefix:
            stmt = stmt.where(m.key.startswith(prefix, autoescape=True))
        with self._read() as conn:
            return {k: v for k, v in conn.execute(stmt)}

    def set_metadata(self, key: str, value: Any) -> None:
        """Shorthand for :meth:`Transaction.set_metadata` in its own transaction."""
        with self.transaction() as tx:
            tx.set_metadata(key, value)
