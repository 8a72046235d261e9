"""The write unit of work: :class:`Transaction`, from :meth:`Store.transaction
<kneo.store.api.Store.transaction>`.

Every write that spans rows goes through it: runs (create, compare-and-set update) with
their checkpoints, trace events, audit and outbox rows, queue entries, leases and project
metadata here; step boundaries and outcomes (:mod:`kneo.store.runs.outcomes`), continuations
(:mod:`kneo.store.tasks.writes`) and the registry
(:class:`~kneo.store.registry.writes.RegistryWritesMixin`) in mixins over
:class:`~kneo.store.transaction_base.TransactionBase`. It runs on one DBAPI connection
(SQLite: the process's writer connection); every statement is built once per store in
SQLAlchemy Core from the :mod:`~kneo.store.tables` objects (:mod:`kneo.store.wire.statements`),
compiled once for its database, and values pass through the Core column types' own bind and
result processors, so nothing is built, cache-keyed or compiled per call and no SQLAlchemy
connection, result or event machinery runs. Everything commits together or not at all; the
caller never says which database it is on.

How the statements reach the wire (when the transaction begins, batching, psycopg's
pipeline, one-statement transactions in autocommit, commit, and leaving the connection as it
came after any failure) is its executor's (:mod:`kneo.store.wire.executor`). A step boundary
(:meth:`~OutcomeWritesMixin.write_step`) or a run's outcome
(:meth:`~OutcomeWritesMixin.finish_run`) with
nothing before it may be one statement on PostgreSQL: the compare-and-set in a ``WITH``,
every row it adds selected from the row it returns (:meth:`Executor.alone
<kneo.store.wire.executor.Executor.alone>`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Unpack

from kneo import jsontext
from kneo.errors import Conflict, ErrorCode
from kneo.ids import new_run_id
from kneo.store import row_records
from kneo.store import tables as t
from kneo.store.base import StoreHandle, not_found_error
from kneo.store.records import AuditEvent, CheckpointRecord, QueueRecord, RunRecord, TraceEvent
from kneo.store.registry.writes import RegistryWritesMixin
from kneo.store.row_values import (
    AuditFields,
    RunChanges,
    audit_values,
    check_trace_events,
    new_run_columns,
    outbox_values,
    spec_ref,
    trace_values,
)
from kneo.store.runs import payloads
from kneo.store.runs.outcomes import OutcomeWritesMixin
from kneo.store.runs.steps import CHECKPOINT_COLUMNS, TRACE_COLUMNS
from kneo.store.tasks.writes import ContinuationWritesMixin
from kneo.store.wire import statements as st
from kneo.store.wire.driver_errors import db_errors
from kneo.store.wire.executor import HeldConnection

_RUN_COLUMNS = st.columns(t.runs)


def metadata_read(keys: Sequence[str]) -> tuple[Any, Callable[[], Any], dict[str, Any]]:
    """The project's metadata values of ``keys`` as one statement: its cache key, its
    builder and its parameters (in a transaction, or alone: ``MetadataFacet``)."""
    m, names = t.project_metadata, [f"k{i}" for i in range(len(keys))]

    def build() -> Any:
        return st.select_in(m, ["key", "value"], "key", names)

    return ("metadata", len(names)), build, dict(zip(names, keys, strict=True))


class Transaction(OutcomeWritesMixin, ContinuationWritesMixin, RegistryWritesMixin):
    """One unit of work on one DBAPI connection; see the module docstring.

    Nothing is visible to other processes until the ``with`` block of
    :meth:`Store.transaction <kneo.store.api.Store.transaction>` exits normally, and an
    exception undoes all of it."""

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
        started_at: datetime | None = None,
        spec_text: str | None = None,
        events: Sequence[Mapping[str, Any]] = (),
        lease: tuple[str, float] | None = None,
        session_id: str | None = None,
    ) -> RunRecord:
        """Insert a new run at ``version`` 1; a duplicate ``run_id`` is ``already_exists``.

        ``spec_text``: ``spec``'s JSON text when the caller already has it (a prepared spec),
        so it is not encoded and hashed again. ``events``: the run's first trace events,
        numbered from 1 with the row inserted already counting them (no counter update).
        ``lease``: ``(owner, ttl_seconds)`` of the process that executes the run now."""
        if events:
            check_trace_events(events)
        values = {
            "run_id": run_id or new_run_id(self.now),
            "status": status,
            "target": target,
            "workflow_name": workflow_name,
            "workflow_kind": workflow_kind,
            "agent_name": agent_name,
            "input_text": input_text,
            "environment": environment,
            "spec_digest": spec_digest,
            "spec_ref": self._put_spec(spec, spec_text),
            "bundle_name": bundle_name,
            "bundle_revision": bundle_revision,
            "bundle_commit": bundle_commit,
            "state": dict(state or {}),
            "deadline_at": deadline_at,
            "started_at": started_at,
            "metadata": dict(metadata or {}),
            "session_id": session_id,
            **new_run_columns(self.now, self._pid, trace_seq=len(events), lease=lease),
        }
        if not self._insert_run(values, checked=run_id is not None):
            raise Conflict(
                f"run {values['run_id']!r} already exists", code=ErrorCode.already_exists
            )
        self._new_run_written(str(values["run_id"]), metadata, events)
        return row_records.run({**values, "spec": dict(spec or {})})

    def _new_run_written(
        self, run_id: str, metadata: Mapping[str, Any] | None, events: Sequence[Mapping[str, Any]]
    ) -> None:
        """What follows a new run's row: its counters held for this transaction, its start
        counted on its rollout's side (``metadata.rollout``), its first trace events."""
        self._seq[run_id] = [0, len(events)]
        rollout = (metadata or {}).get("rollout")
        if rollout:
            self.note_rollout(rollout, started=True)
        if events:
            self._insert_trace_rows(trace_values(run_id, 1, events, self.now))

    def _put_spec(self, spec: Mapping[str, Any] | None, text: str | None = None) -> str | None:
        """Store ``spec`` once in ``specs`` (keyed by the sha256 of its JSON text); its
        digest, or ``None`` for an empty spec (kept inline).

        No INSERT when this store already committed that digest (:attr:`Store.specs_held`):
        rows of ``specs`` are content-addressed and never deleted, so one written by any
        process stays, whatever the other processes do."""
        if not spec:
            return None
        text = text if text is not None else jsontext.dumps(dict(spec))
        digest = spec_ref(text)
        if digest not in self._store.specs_held:
            self._insert_spec({"digest": digest, "spec": text, "created_at": self.now})
            self._new_specs.append(digest)
        return digest

    def current(self, run: RunRecord) -> RunRecord:
        """``run`` with the trace count this transaction allocated for it (so a caller can
        report ``trace_event_count`` without counting rows)."""
        known = self._seq.get(run.run_id)
        if known is None or known[1] == run.trace_seq:
            return run
        return dataclasses.replace(run, trace_seq=known[1])

    def get_run(self, run_id: str, *, for_update: bool = False) -> RunRecord:
        """The run as this transaction sees it; ``for_update`` row-locks it on PostgreSQL
        (on SQLite the transaction holds the database's write lock already), so its sequence
        counters are this transaction's to allocate from in memory (:meth:`_next_sequence`)
        and its compare-and-set updates at the version it holds read nothing back
        (:meth:`update_run`). A run locked with its continuation
        (:meth:`get_continuation`) is not read again."""
        if for_update and run_id in self._locked_runs:
            return self._locked_runs[run_id]  # (locked with its continuation, or before)
        row = self._row(t.runs, "run_id", run_id, for_update=for_update)
        if row is None:
            raise not_found_error("run", run_id)
        return self._locked_run(row) if for_update else row_records.run(row, self._spec_text)

    def take_run_lease(self, run_id: str, owner: str, ttl_seconds: float) -> None:
        """Give ``owner`` the lease on ``run_id`` in this transaction, whoever held it: for a
        caller that knows every holder is gone (the run it moves out of ``queued`` or
        ``paused`` under a compare-and-set had no executor; a run continued has none alive).
        A new run takes its lease in :meth:`create_run`, its outcome gives it back in
        ``finish_run``; no lease is taken outside a transaction that writes the run, so two
        processes taking one run meet at its compare-and-set (``store.queue`` renews and
        releases a lease held). Written with the run's next update in this transaction, or
        before the commit (:meth:`_flush_runs`)."""
        self._leases[run_id] = (owner, self.now + timedelta(seconds=ttl_seconds))

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
        """Append a checkpoint with the run's next sequence number (compressed or previewed).
        It is a keyframe, holding the whole payload; patches come from the journal through
        :meth:`finish_run` and :meth:`write_step`."""
        encoded = payloads.encode(dict(payload), self._store.settings.checkpoint)
        meta = dict(metadata or {})
        if encoded.reduction is not None:
            meta["payload_reduction"] = encoded.reduction
        values = {
            "run_id": run_id,
            "sequence": self._next_sequence(run_id, "checkpoint_seq", 1),
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
        self._insert_checkpoints([values])
        return row_records.checkpoint(values)

    def enqueue(
        self,
        run_id: str,
        *,
        available_at: datetime | None = None,
        leased_to: tuple[str, float] | None = None,
    ) -> QueueRecord:
        """Queue a run for a worker (commits with the rest of the transaction); ``leased_to``
        (owner, seconds): written already claimed by that worker, as its claim would have."""
        owner, seconds = leased_to if leased_to is not None else (None, 0.0)
        values = {
            "run_id": run_id,
            "status": "queued" if owner is None else "leased",
            "attempts": 0 if owner is None else 1,
            "lease_owner": owner,
            "lease_expires_at": None if owner is None else self.now + timedelta(seconds=seconds),
            "error": None,
            "available_at": available_at or self.now,
            "created_at": self.now,
            "updated_at": self.now,
            "finished_at": None,
            "project_id": self._pid,  # the run's: a worker's claim is global
        }
        return row_records.queue({**values, "id": self._insert_queue(values)})

    def _insert_run(self, values: dict[str, Any], *, checked: bool = True) -> bool:
        bound = self._d.bind(t.runs, values)
        if not checked:  # nothing to read back: in psycopg's pipeline, no round trip
            self._batched(
                "create_new_run", functools.partial(st.insert, t.runs, _RUN_COLUMNS), bound
            )
            return True
        cur = self._exec(
            "create_run",
            lambda: st.insert_new(self._d.insert, t.runs, _RUN_COLUMNS, "run_id", ["run_id"]),
            bound,
        )
        return bool(cur.fetchall())

    def _insert_spec(self, values: dict[str, Any]) -> None:
        self._batched(
            "spec",
            lambda: st.insert_new(
                self._d.insert, t.specs, ("digest", "spec", "created_at"), "digest"
            ),
            self._d.bind(t.specs, values),
        )

    def update_run(
        self, run_id: str, /, *, expected_version: int | None = None, **fields: Unpack[RunChanges]
    ) -> RunRecord:
        """Change a run's columns (:class:`~kneo.store.row_values.RunChanges`); with
        ``expected_version``, a compare-and-set: ``stale_state`` when another writer got
        there first."""
        changes: dict[str, Any] = dict(fields)
        locked = self._locked_runs.get(run_id)
        if (
            locked is not None
            and locked.version == expected_version
            and not ("output_text" in changes or "error" in changes)
        ):
            return self._update_locked_run(locked, changes)
        keys = self._run_changes(run_id, changes)
        cas = expected_version is not None

        def build() -> Any:
            return st.run_update(keys, cas=cas, returning=_RUN_COLUMNS)

        bound = self._d.bind(t.runs, changes)
        params = {f"v_{k}": bound[k] for k in keys}
        params |= {"k_run_id": run_id, "k_now": self._now_bound()}
        if cas:
            params["k_expected"] = expected_version
        cur = self._exec(("update_run", keys, cas), build, params)
        found = cur.fetchall()
        if not found:
            self._raise_stale(run_id, expected_version)
        row = self._d.reader(t.runs, self._ex)(found[0])
        self._run_updated(run_id, row["checkpoint_seq"], row["trace_seq"])
        if "output_text" in changes or "error" in changes:
            self._replace_run_terms(run_id, self._outcome_terms(run_id, row["created_at"], row))
        if locked is not None:
            return self._locked_run(row)
        return row_records.run(row, self._spec_text)

    def _insert_checkpoints(self, values: list[dict[str, Any]]) -> None:
        self._insert_rows(t.checkpoints, CHECKPOINT_COLUMNS, values)

    def add_trace_events(
        self, run_id: str, events: Sequence[Mapping[str, Any]]
    ) -> list[TraceEvent]:
        """Append events (``event_type``, optional ``step_id`` and ``payload``) in order."""
        if not events:
            return []
        check_trace_events(events)
        first = self._next_sequence(run_id, "trace_seq", len(events))
        values = trace_values(run_id, first, events, self.now)
        self._insert_trace_rows(values)
        return [row_records.trace(v) for v in values]

    def _insert_trace_rows(self, values: list[dict[str, Any]]) -> None:
        self._insert_rows(t.trace_events, TRACE_COLUMNS, values)

    def add_audit(self, event_type: str, **fields: Unpack[AuditFields]) -> AuditEvent:
        """Record an audit event (``evt_...``: :class:`~kneo.store.row_values.AuditFields`);
        the payload is redacted before it is written. A notifiable one also writes its
        ``notification_events`` row (the outbox)."""
        values = audit_values(event_type, now=self.now, **fields)
        values["project_id"] = self._pid
        self._batched(
            "audit",
            functools.partial(st.insert, t.audit_events, tuple(values)),
            self._d.bind(t.audit_events, values),
        )
        outbox = outbox_values(values)
        if outbox is not None:
            self._insert_outbox(outbox)
        return row_records.audit(values)

    def metadata(self, keys: Sequence[str]) -> dict[str, Any]:
        """The values of those of ``keys`` that are set, as this transaction sees them (one
        statement: in PostgreSQL's pipeline, one round trip)."""
        cur = self._exec(*metadata_read(keys))
        found = self._d.rows(t.project_metadata, self._ex, cur.fetchall())
        return {row["key"]: row["value"] for row in found}

    def set_metadata(self, key: str, value: Any) -> None:
        """Upsert one project metadata value (any JSON value)."""
        values = {"project_id": self._pid, "key": key, "value": value, "updated_at": self.now}
        self._exec(
            "set_metadata",
            lambda: st.upsert(
                self._d.insert, t.project_metadata, tuple(values), ("project_id", "key")
            ),
            self._d.bind(t.project_metadata, values),
        )

    def _insert_queue(self, values: dict[str, Any]) -> int:
        cur = self._exec(
            "enqueue",
            lambda: st.insert(t.queue, tuple(values), ["id"]),
            self._d.bind(t.queue, values),
        )
        queue_id: int = cur.fetchall()[0][0]
        return queue_id


class TransactionScope:
    """``with``: a :class:`Transaction` on a DBAPI connection (SQLite: the process's writer
    connection; else ``held``'s or a pooled one, see
    :meth:`~kneo.store.wire.dialects.StoreDialect.write_connection`): commits on normal exit,
    rolls back on any exception; driver failures, getting the connection included, map to
    ``conflict``/``database_unavailable`` (:mod:`kneo.store.wire.driver_errors`). A class, not a
    generator context manager: every step boundary enters one, and the generators' set-up
    cost more than the rest of the scaffolding."""

    __slots__ = ("_held", "_loan", "_marks", "_raw", "_store", "_tx")

    def __init__(
        self, store: StoreHandle, held: HeldConnection | None = None, marks: bool = True
    ) -> None:
        self._store = store
        self._held = held
        self._marks = marks

    def __enter__(self) -> Transaction:
        store = self._store
        try:
            self._loan = store.dialect.write_connection(store.engine, self._held)
            self._raw = self._loan.__enter__()
        except Exception as exc:
            _raise_mapped(exc)
            raise
        try:
            self._tx = Transaction(store, self._raw, store.dialect)
            if not self._marks:  # the controller's own (RegistryWritesMixin)
                self._tx._marks_registry_changes = False
        except BaseException as exc:
            self._rolled_back(exc)
            raise
        return self._tx

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        if exc is not None:  # the block's failure propagates (mapped when a driver's)
            self._abort(exc)
            return
        tx = self._tx
        try:
            if not tx._ex.ended:  # (a step boundary or outcome committed already)
                tx._commit()
        except BaseException as failure:
            self._abort(failure)
            raise
        try:
            tx._ex.close()
        except BaseException as failure:
            self._rolled_back(failure)
            raise
        if tx._new_specs:
            self._store.specs_held.hold(tx._new_specs)
        if tx.outbox_written:
            self._store.wakeups.outbox_written()
        try:
            self._loan.__exit__(None, None, None)
        except Exception as failure:
            _raise_mapped(failure)
            raise

    def _abort(self, exc: BaseException) -> None:
        """After a failure: the executor leaves what the transaction entered, then
        :meth:`_rolled_back`."""
        ex = self._tx._ex
        try:
            ex.abort(exc)
            ex.close()
        except BaseException as failure:
            self._rolled_back(failure)
            raise
        self._rolled_back(exc)

    def _rolled_back(self, exc: BaseException) -> None:
        """Roll the connection back, hand it back (its loan sees the failure: a broken
        connection is discarded) and raise the Kneo error a driver failure stands for."""
        with contextlib.suppress(Exception):  # a broken connection: the pool discards it
            self._raw.rollback()
        try:
            self._loan.__exit__(type(exc), exc, exc.__traceback__)
        except Exception as failure:
            _raise_mapped(failure)
            raise
        _raise_mapped(exc)


def _raise_mapped(exc: BaseException) -> None:
    """Raise the Kneo error ``exc`` stands for when it is a driver failure
    (:func:`~kneo.store.wire.driver_errors.db_errors`); else return."""
    db_errors().__exit__(type(exc), exc, exc.__traceback__)
