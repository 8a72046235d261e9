"""The write unit of work: :class:`Transaction`, from :meth:`Store.transaction
<kneo.store.api.Store.transaction>`.

Every write that spans rows goes through it: runs (create, compare-and-set update, step
boundary, outcome),
checkpoints, trace events, continuations and their request index, audit and outbox rows,
queue entries, leases, project metadata and the registry
(:class:`~kneo.store.registry_writes.RegistryWritesMixin`). It runs on one DBAPI connection (SQLite:
the process's writer connection); every statement is SQL text built once per dialect from
the :mod:`~kneo.store.tables` objects (positional parameters),
and values pass through the Core column types' own bind and result processors, so nothing is
built, cache-keyed or compiled per call and no SQLAlchemy connection, result or event
machinery runs. Everything commits together or not at all; the caller never says which
database it is on.

How the statements reach the wire (when the transaction begins, batching, psycopg's
pipeline, one-statement transactions in autocommit, commit, and leaving the connection as it
came after any failure) is its executor's (:mod:`kneo.store.executor`). A step boundary
(:meth:`Transaction.write_step`) or a run's outcome (:meth:`Transaction.finish_run`) with
nothing before it may be one statement on PostgreSQL: the compare-and-set in a ``WITH``,
every row it adds selected from the row it returns (:meth:`Executor.alone
<kneo.store.executor.Executor.alone>`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import operator
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn

import sqlalchemy as sa

from kneo import jsontext
from kneo.errors import Conflict, ErrorCode, InvalidRequest
from kneo.ids import new_run_id
from kneo.store import dialects as d
from kneo.store import inbox, payloads, rows
from kneo.store import tables as t
from kneo.store.base import not_found_error
from kneo.store.dialects import StoreDialect
from kneo.store.errors import db_errors
from kneo.store.executor import HeldConnection
from kneo.store.records import (
    AuditEvent,
    CheckpointRecord,
    ContinuationRecord,
    QueueRecord,
    RunRecord,
    TraceEvent,
)
from kneo.store.registry_writes import RegistryWritesMixin
from kneo.store.rowvalues import (
    RUN_MUTABLE_FIELDS,
    audit_values,
    check_trace_events,
    continuation_request_list,
    continuation_request_rows,
    continuation_values,
    new_continuation,
    outbox_values,
    spec_ref,
    trace_values,
)
from kneo.store.search import LABEL, PROMOTION, task_labels, task_terms
from kneo.store.steps import (
    CAS_RETURNING,
    CHECKPOINT_COLUMNS,
    TRACE_COLUMNS,
    StepCheckpoint,
    StepEvent,
    StepWritten,
    chain_starts,
)

if TYPE_CHECKING:
    from kneo.store.api import Store

_RUN_COLUMNS = d.columns(t.runs)
#: run columns ``update_run`` may set that a :class:`RunRecord` does not carry as given
_NOT_RECORD_FIELDS = frozenset(
    {"checkpoint_seq", "trace_seq", "spec_ref", "lease_owner", "lease_expires_at"}
)
_AUDIT_COLUMNS = d.cas_params(t.audit_events)
_OUTBOX_COLUMNS = d.cas_params(t.notification_events)


def _insert(table: sa.Table, names: Sequence[str], suffix: str = "") -> Callable[[], str]:
    return lambda: d.insert_sql(table, names, suffix)


class _Write(NamedTuple):
    """A run's advance (:meth:`Transaction._advance`) as both ways of writing it take it:
    the compare-and-set's key (columns set, lease released, counters moved) and parameters,
    and the rows numbered from what it returns (audits bound, outbox rows)."""

    run_id: str
    update: tuple[tuple[str, ...], bool, bool]
    params: dict[str, Any]
    checkpoints: Sequence[StepCheckpoint]
    events: Sequence[StepEvent]
    audits: list[dict[str, Any]]
    outbox: list[dict[str, Any]]


class Transaction(RegistryWritesMixin):
    """One unit of work on one DBAPI connection; see the module docstring.

    Nothing is visible to other processes until the ``with`` block of
    :meth:`Store.transaction <kneo.store.api.Store.transaction>` exits normally, and an
    exception undoes all of it."""

    def __init__(self, store: Store, raw: Any, dialect: StoreDialect) -> None:
        self._store = store
        self._d = dialect
        #: how the statements reach the wire (:mod:`kneo.store.executor`)
        self._ex = dialect.executor(raw)
        self.now = store.clock.now()
        self._stamp: Any = None  # self.now as the driver takes it (:meth:`_now_bound`)
        self._seq: dict[str, list[int]] = {}
        self._seq_dirty: set[str] = set()
        #: leases taken (:meth:`take_run_lease`), written with the run's next update or flush
        self._leases: dict[str, tuple[str, datetime]] = {}
        self._new_specs: list[str] = []

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
        started_at: datetime | None = None,
        spec_text: str | None = None,
        events: Sequence[Mapping[str, Any]] = (),
        lease: tuple[str, float] | None = None,
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
            "output_text": None,
            "error": None,
            "environment": environment,
            "spec": {},
            "spec_digest": spec_digest,
            "spec_ref": self._put_spec(spec, spec_text),
            "bundle_name": bundle_name,
            "bundle_revision": bundle_revision,
            "bundle_commit": bundle_commit,
            "state": dict(state or {}),
            "version": 1,
            "cancel_requested": False,
            "deadline_at": deadline_at,
            "created_at": self.now,
            "updated_at": self.now,
            "started_at": started_at,
            "finished_at": None,
            "metadata": dict(metadata or {}),
            "checkpoint_seq": 0,
            "trace_seq": len(events),
            "lease_owner": lease[0] if lease else None,
            "lease_expires_at": self.now + timedelta(seconds=lease[1]) if lease else None,
        }
        if not self._insert_run(values, checked=run_id is not None):
            raise Conflict(
                f"run {values['run_id']!r} already exists", code=ErrorCode.already_exists
            )
        run_id = str(values["run_id"])
        self._seq[run_id] = [0, len(events)]
        if events:
            self._insert_trace_rows(trace_values(run_id, 1, events, self.now))
        return rows.run({**values, "spec": dict(spec or {})})

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

    def _run_changes(self, run_id: str, changes: dict[str, Any]) -> tuple[str, ...]:
        """Check and complete ``update_run``'s changes (folded sequences, inline spec); the
        sorted column names it sets."""
        unknown = set(changes) - RUN_MUTABLE_FIELDS
        if unknown:
            raise InvalidRequest(
                f"run fields cannot be updated: {sorted(unknown)}", field="changes"
            )
        if run_id in self._seq_dirty:
            changes["checkpoint_seq"], changes["trace_seq"] = self._seq[run_id]
        if run_id in self._leases:
            changes["lease_owner"], changes["lease_expires_at"] = self._leases.pop(run_id)
        if "spec" in changes:  # a replaced spec is stored inline, no longer by reference
            changes["spec_ref"] = None
        return tuple(sorted(changes))

    def _run_updated(self, run_id: str, row: Mapping[Any, Any]) -> None:
        """Take the sequence counters of the run row ``update_run`` returned."""
        self._seq[run_id] = [row["checkpoint_seq"], row["trace_seq"]]
        self._seq_dirty.discard(run_id)

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
        counters are this transaction's to allocate from in memory (:meth:`_next_sequence`)."""
        row = self._row(t.runs, "run_id", run_id, for_update=for_update)
        if row is None:
            raise not_found_error("run", run_id)
        if for_update:
            self._seq.setdefault(run_id, [row["checkpoint_seq"], row["trace_seq"]])
        return rows.run(row, self._spec_text)

    def request_cancel(self, run_id: str) -> RunRecord:
        """Flag a run for cooperative cancellation.

        Bumps the version on purpose: a worker's next compare-and-set then fails, it re-reads
        the run and sees the request, so a cancelled run is never overwritten as finished.
        """
        return self.update_run(run_id, cancel_requested=True)

    def take_run_lease(self, run_id: str, owner: str, ttl_seconds: float) -> None:
        """Give ``owner`` the lease on ``run_id`` in this transaction, whoever held it: for a
        caller that knows every holder is gone (the run it moves out of ``queued`` or
        ``paused`` under a compare-and-set had no executor). A new run takes its lease in
        :meth:`create_run`, its outcome gives it back in ``finish_run``. Written with the
        run's next update in this transaction, or before the commit (:meth:`_flush_runs`)."""
        self._leases[run_id] = (owner, self.now + timedelta(seconds=ttl_seconds))

    def _raise_stale(self, run_id: str, expected_version: int | None) -> NoReturn:
        current = self._run_version(run_id)
        if current is None:
            raise not_found_error("run", run_id)
        raise Conflict(
            f"run {run_id!r} changed since it was read (version {expected_version}, now {current})",
            code=ErrorCode.stale_state,
            run_id=run_id,
            expected_version=expected_version,
            current_version=current,
        )

    def _next_sequence(self, run_id: str, column: str, count: int) -> int:
        """Reserve ``count`` sequence numbers for a run; returns the first one.

        The counters live on the run row, so the first allocation row-locks it (an UPDATE, or
        an earlier ``get_run(for_update=True)``) and two writers of one run cannot allocate the
        same number on any backend. Once this transaction holds the row, further allocations
        are counted in memory and written by :meth:`_flush_runs` (or folded into
        ``update_run``) before commit.
        """
        index = 0 if column == "checkpoint_seq" else 1
        known = self._seq.get(run_id)
        if known is None:
            row = self._allocate_sequence(run_id, column, count)
            if row is None:
                raise not_found_error("run", run_id)
            self._seq[run_id] = [int(row[0]), int(row[1])]
            return int(row[index]) - count + 1
        first = known[index] + 1
        known[index] += count
        self._seq_dirty.add(run_id)
        return first

    def _flush_runs(self) -> None:
        """Write what this transaction kept in memory for a run since its last update
        (counters allocated, a lease taken), one statement a run; right before commit."""
        if not (self._seq_dirty or self._leases):
            return
        for run_id in sorted(self._seq_dirty | self._leases.keys()):
            values: dict[str, Any] = {}
            if run_id in self._seq_dirty:
                values["checkpoint_seq"], values["trace_seq"] = self._seq[run_id]
            if run_id in self._leases:
                values["lease_owner"], values["lease_expires_at"] = self._leases[run_id]
            self._set_run_columns(run_id, values)
        self._seq_dirty.clear()
        self._leases.clear()

    def _set_run_columns(self, run_id: str, values: dict[str, Any]) -> None:
        keys, bound = tuple(values), self._d.bind(t.runs, values)
        self._exec(
            ("set_run_columns", keys),
            lambda: "UPDATE runs SET {} WHERE run_id = :k_run_id".format(
                ", ".join(f"{k} = :v_{k}" for k in keys)
            ),
            {"k_run_id": run_id, **{f"v_{k}": bound[k] for k in keys}},
        )

    # -- checkpoints, queue ------------------------------------------------------------
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
        return rows.checkpoint(values)

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
        return rows.queue({**values, "id": self._insert_queue(values)})

    # -- statement execution -----------------------------------------------------------
    def _now_bound(self) -> Any:
        """:attr:`now` as a timestamp column binds it (every row this transaction stamps)."""
        if self._stamp is None:
            self._stamp = self._d.binder(t.runs, "updated_at")(self.now)
        return self._stamp

    def _exec(self, key: Any, build: Callable[[], str], params: Mapping[str, Any]) -> Any:
        """Run a statement whose result is read (or that must follow what came before: an
        update); the cursor."""
        text = self._d.text(key, build)
        return self._ex.execute(text.sql, text.args(params))

    def _first(
        self, key: Any, build: Callable[[], str], params: Mapping[str, Any]
    ) -> Sequence[Any] | None:
        """The first row a statement returns, or ``None``."""
        found: list[Sequence[Any]] = self._exec(key, build, params).fetchall()
        return found[0] if found else None

    def _insert(self, key: Any, build: Callable[[], str], params: Mapping[str, Any]) -> None:
        """An insert nobody reads back (it may wait: :meth:`Executor.add
        <kneo.store.executor.Executor.add>`)."""
        text = self._d.text(key, build)
        self._ex.add(text.sql, text.args(params))

    def _commit(self) -> None:
        """Commit (once), after what this transaction kept in memory for its runs."""
        if self._ex.ended:
            return
        self._flush_runs()
        self._ex.commit()

    def _insert_rows(
        self, table: sa.Table, names: tuple[str, ...], values: list[dict[str, Any]]
    ) -> None:
        """Rows of ``table`` (``names`` of each, bound) in multi-row inserts."""
        row_of = operator.itemgetter(*names)
        self._d.insert_rows(
            self._ex.add, table, names, [row_of(self._d.bind(table, v)) for v in values]
        )

    # -- runs ------------------------------------------------------------------------
    def _insert_run(self, values: dict[str, Any], *, checked: bool = True) -> bool:
        bound = self._d.bind(t.runs, values)
        if not checked:  # nothing to read back: in psycopg's pipeline, no round trip
            self._insert("create_new_run", _insert(t.runs, _RUN_COLUMNS), bound)
            return True
        cur = self._exec(
            "create_run",
            _insert(t.runs, _RUN_COLUMNS, " ON CONFLICT (run_id) DO NOTHING RETURNING run_id"),
            bound,
        )
        return bool(cur.fetchall())

    def _insert_spec(self, values: dict[str, Any]) -> None:
        self._insert(
            "spec",
            _insert(t.specs, ("digest", "spec", "created_at"), " ON CONFLICT (digest) DO NOTHING"),
            self._d.bind(t.specs, values),
        )

    def _spec_text(self, digest: str) -> str | None:
        def read() -> str | None:
            sql = "SELECT spec FROM specs WHERE digest = :digest"
            found = self._first("select_spec", lambda: sql, {"digest": digest})
            return found[0] if found else None

        return self._d.spec_text(digest, read)

    def update_run(
        self, run_id: str, /, *, expected_version: int | None = None, **changes: Any
    ) -> RunRecord:
        """:meth:`Transaction.update_run <kneo.store.api.Transaction.update_run>`."""
        keys = self._run_changes(run_id, changes)
        cas = expected_version is not None

        def build() -> str:
            return d.run_update(keys, cas=cas, returning=_RUN_COLUMNS)

        bound = self._d.bind(t.runs, changes)
        params = {f"v_{k}": bound[k] for k in keys}
        params |= {"k_run_id": run_id, "k_now": self._now_bound()}
        if cas:
            params["k_expected"] = expected_version
        cur = self._exec(("update_run", keys, cas), build, params)
        found = cur.fetchall()
        if not found:
            self._raise_stale(run_id, expected_version)
        row = self._d.result(t.runs, cur.description, found[0])
        self._run_updated(run_id, row)
        return rows.run(row, self._spec_text)

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
        **changes: Any,
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
        if events:
            check_trace_events(events)
        rows_ = [
            StepEvent(
                e["event_type"], e.get("step_id"), jsontext.dumps(dict(e.get("payload") or {}))
            )
            for e in events
        ]
        version, checkpoint_seq, trace_seq = self._advance(
            run.run_id,
            expected_version,
            changes,
            state_text,
            release_lease,
            checkpoints,
            rows_,
            audits,
        )
        fields = {k: v for k, v in changes.items() if k not in _NOT_RECORD_FIELDS}
        return dataclasses.replace(
            run,
            **fields,
            version=version,
            updated_at=self.now,
            trace_seq=trace_seq,
            checkpoint_seq=checkpoint_seq,
        )

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
    ) -> tuple[int, int, int]:
        """:meth:`finish_run`'s and :meth:`write_step`'s write, committed: the run's
        compare-and-set and the rows it numbers; the run's new version and counters."""
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
        audit_rows, outbox = self._outcome_audits(audits)
        update = (keys, release_lease is not None, added != (0, 0))
        write = _Write(run_id, update, params, checkpoints, events, audit_rows, outbox)
        found = None
        alone = (
            self._ex.untouched
            and not (self._seq_dirty | self._leases.keys()) - {run_id}
            and max(len(checkpoints), len(events), len(audits)) <= d.MAX_NUMBERED_ROWS
        )
        if alone:
            found = self._finish_alone(write)
        if found is None:  # the statements one by one (or a patch's predecessor moved)
            found = self._finish_stepwise(write)
        version, checkpoint_seq, trace_seq = (int(v) for v in found[0])
        self._run_updated(run_id, {"checkpoint_seq": checkpoint_seq, "trace_seq": trace_seq})
        self._commit()
        return version, checkpoint_seq, trace_seq

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
        bound = self._d.bind(t.runs, values)
        if state_text is not None:
            bound["state"] = state_text
        params = {f"v_{k}": bound[k] for k in keys}
        params |= {"k_run_id": run_id, "k_now": self._now_bound()}
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
            for audit in audits
        ]
        outbox = [row for v in values if (row := outbox_values(v)) is not None]
        return [self._d.bind(t.audit_events, v) for v in values], outbox

    def _finish_stepwise(self, w: _Write) -> list[Any]:
        """The outcome as its statements one by one: the compare-and-set, then the rows
        numbered from the counters it returned; its ``(version, checkpoint_seq,
        trace_seq)`` row (``stale_state``/``not_found`` when the update found no row)."""
        run_id, (keys, release, moves), params, checkpoints, events, audits, outbox = w

        def build() -> str:
            return d.run_update(keys, moves=moves, release=release)

        found: list[Any] = self._exec(("finish_run", *w.update), build, params).fetchall()
        if not found:
            self._raise_stale(run_id, params["k_expected"])
        checkpoint_seq, trace_seq = found[0][1], found[0][2]
        if checkpoints:
            self._insert_step_checkpoints(
                run_id, checkpoints, checkpoint_seq - len(checkpoints) + 1
            )
        if events:
            first = trace_seq - len(events) + 1
            stamp = self._now_bound()
            trace_rows = [
                (run_id, first + offset, e.event_type, e.step_id, e.payload, stamp)
                for offset, e in enumerate(events)
            ]
            self._d.insert_rows(self._ex.add, t.trace_events, TRACE_COLUMNS, trace_rows)
        for row in audits:
            self._insert("audit", _insert(t.audit_events, tuple(row)), row)
        for values in outbox:
            self._insert_outbox(values)
        return found

    def _finish_alone(self, w: _Write) -> list[Any] | None:
        """PostgreSQL: the outcome as one statement in autocommit
        (:func:`~kneo.store.dialects.one_statement_write`); its ``(version, checkpoint_seq, trace_seq)`` row, or
        ``None`` when it wrote nothing (stale, or a patch's predecessor is no longer the run's
        last checkpoint) and the caller is to take the stepwise path, which tells those apart."""
        _, (keys, release, moves), params, checkpoints, events, audits, outbox = w
        # The run's last checkpoint must be the one the patches' chain starts from;
        # keyframes go anywhere.
        starts = chain_starts(checkpoints)
        if len(starts) > 1:
            return None
        last = starts.pop() if starts else None
        if last is not None:
            params["k_last"] = last
        shape = (len(checkpoints), len(events), len(audits), len(outbox))

        def build() -> str:
            cas = d.run_update(
                keys, moves=moves, release=release, guard=last is not None, returning=CAS_RETURNING
            )
            return d.one_statement_write(cas, shape)

        text = self._d.text(("finish_alone", *w.update, last is not None, *shape), build)
        args = list(text.args(params))
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
        return self._ex.alone(text.sql, args)

    def _run_version(self, run_id: str) -> int | None:
        sql = "SELECT version FROM runs WHERE run_id = :run_id"
        found = self._first("select_version", lambda: sql, {"run_id": run_id})
        return found[0] if found else None

    def _allocate_sequence(self, run_id: str, column: str, count: int) -> Sequence[Any] | None:
        return self._first(
            ("seq", column),
            lambda: (
                f"UPDATE runs SET {column} = {column} + :k_count WHERE run_id = :k_run_id "
                "RETURNING checkpoint_seq, trace_seq"
            ),
            {"k_run_id": run_id, "k_count": count},
        )

    # -- checkpoints and trace ---------------------------------------------------------
    def _insert_step_checkpoints(
        self, run_id: str, checkpoints: Sequence[StepCheckpoint], first: int
    ) -> None:
        """Insert ``checkpoints`` as sequences ``first``, ``first + 1``, ... (a patch on any
        row but the one before it is stored as its keyframe: :meth:`StepCheckpoint.at`)."""
        stamp = self._now_bound()
        rows_ = [
            (run_id, first + offset, *checkpoint.at(first + offset).columns(), stamp)
            for offset, checkpoint in enumerate(checkpoints)
        ]
        self._d.insert_rows(self._ex.add, t.checkpoints, CHECKPOINT_COLUMNS, rows_)

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
        return [rows.trace(v) for v in values]

    def add_trace_event(
        self,
        run_id: str,
        event_type: str,
        *,
        step_id: str | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> TraceEvent:
        """Append one trace event; see :meth:`add_trace_events` for batches."""
        event = {"event_type": event_type, "step_id": step_id, "payload": payload}
        return self.add_trace_events(run_id, [event])[0]

    def _insert_trace_rows(self, values: list[dict[str, Any]]) -> None:
        self._insert_rows(t.trace_events, TRACE_COLUMNS, values)

    # -- continuations, audit, queue -----------------------------------------------------
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
        search_text: Sequence[str] = (),
        bodies: Sequence[Mapping[str, Any]] | None = None,
        input_text: str = "",
    ) -> ContinuationRecord:
        """Create a continuation, or replace it when ``expected_version`` matches the stored one.

        Each request is a dict with at least ``request_id`` (plus ``kind``, ``assignee``,
        ``status`` ... as the engine defines them); they are indexed for listing by assignee
        and kind. ``workflow_kind``, ``workflow_name`` and ``environment`` default to the
        run's (a replace keeps the stored name and environment). Creating an existing id is
        ``already_exists``; a version mismatch is ``stale_state``.

        A new pending continuation is indexed for the inbox search by the words of
        ``search_text`` (its prompts and run input, redacted by the caller), its workflow
        name and its assignees (:mod:`kneo.store.search`); a replace keeps those words while
        it stays pending and drops them when it does not.

        A pending continuation's ``list_row`` (what the task list shows, redacted:
        :mod:`kneo.store.inbox`) is built here from ``requests``, ``bodies`` (the pending
        requests' bodies in the run's state; ``None`` when the entries hold their own) and
        ``input_text`` (the run's input); it is dropped when the continuation stops being
        pending.
        """
        request_list, values = self._continuation(
            run_id, requests, context, status, expires_at, escalated_at, workflow_kind,
            workflow_name, environment,
        )  # fmt: skip
        values["list_row"] = (
            inbox.list_row(request_list, bodies, input_text) if status == "pending" else None
        )
        if expected_version is not None:
            record = self._replace_continuation(continuation_id, expected_version, values)
            self._insert_requests(continuation_id, request_list, status)
            if status != "pending" or search_text:
                self._delete_terms(continuation_id)
            elif status == "pending":  # its words stay; its labels follow its requests
                self._delete_labels(continuation_id)
            if status == "pending":
                self._insert_terms(record, search_text, words=bool(search_text))
            return record
        new_continuation(values, continuation_id, self.now)
        dbapi = self._d.db.loaded_dbapi
        try:
            cur = self._exec(
                ("continuation", tuple(values)),
                _insert(
                    t.continuations,
                    tuple(values),
                    " ON CONFLICT (continuation_id) DO NOTHING RETURNING continuation_id",
                ),
                self._d.bind(t.continuations, values),
            )
            inserted = cur.fetchall()
        except dbapi.IntegrityError as exc:  # the only other constraint: the run's key
            raise not_found_error("run", run_id) from exc
        if not inserted:
            raise Conflict(
                f"continuation {continuation_id!r} already exists", code=ErrorCode.already_exists
            )
        self._insert_requests(continuation_id, request_list, status)
        record = rows.continuation(values)
        if status == "pending":
            self._insert_terms(record, search_text)
        return record

    def _insert_terms(
        self, cont: ContinuationRecord, search_text: Sequence[str], *, words: bool = True
    ) -> None:
        """The inbox search's rows of a pending continuation (:mod:`kneo.store.search`): its
        words (unless ``words`` is false) and the labels of its pending requests."""
        terms = task_labels(cont.requests, promotion=cont.workflow_kind == PROMOTION)
        if words:
            assignees = [r.get("assignee") for r in cont.requests]
            terms += task_terms([cont.workflow_name, *assignees, *search_text])
        at, cid = cont.created_at, cont.continuation_id
        if terms:
            self._insert_rows(
                t.continuation_terms,
                d.columns(t.continuation_terms),
                [{"term": w, "created_at": at, "continuation_id": cid} for w in terms],
            )

    def _replace_continuation(
        self, continuation_id: str, expected_version: int, values: dict[str, Any]
    ) -> ContinuationRecord:
        """Compare-and-set the continuation's columns to ``values``; its request index is
        dropped for the caller to write anew. The record is ``values`` and the columns the
        update kept, read back (scalars: the JSON just written is not decoded again)."""
        keys = tuple(values)
        kept = tuple(c for c in d.columns(t.continuations) if c not in values)

        def build() -> str:
            sets = ", ".join(["version = version + 1", *(f"{k} = :v_{k}" for k in keys)])
            return (
                f"UPDATE continuations SET {sets} WHERE continuation_id = :k_id AND "
                f"version = :k_expected RETURNING {', '.join(kept)}"
            )

        bound = self._d.bind(t.continuations, values)
        params = {f"v_{k}": bound[k] for k in keys}
        params |= {"k_id": continuation_id, "k_expected": expected_version}
        cur = self._exec(("replace_continuation", keys), build, params)
        found = cur.fetchall()
        if not found:
            sql = "SELECT version FROM continuations WHERE continuation_id = :k_id"
            if self._first("continuation_version", lambda: sql, params) is None:
                raise not_found_error("continuation", continuation_id)
            raise Conflict(
                f"continuation {continuation_id!r} changed since it was read",
                code=ErrorCode.stale_state,
                continuation_id=continuation_id,
            )
        stored = self._d.result(t.continuations, cur.description, found[0])
        self._delete_requests(continuation_id)
        return rows.continuation({**values, **stored})

    def _delete_requests(self, continuation_id: str) -> None:
        sql = "DELETE FROM continuation_requests WHERE continuation_id = :k_id"
        self._exec("delete_requests", lambda: sql, {"k_id": continuation_id})

    def _delete_terms(self, continuation_id: str) -> None:
        sql = "DELETE FROM continuation_terms WHERE continuation_id = :k_id"
        self._exec("delete_terms", lambda: sql, {"k_id": continuation_id})

    def _delete_labels(self, continuation_id: str) -> None:
        sql = (
            "DELETE FROM continuation_terms WHERE continuation_id = :k_id "
            f"AND substr(term, 1, 1) = '{LABEL}'"
        )
        self._exec("delete_labels", lambda: sql, {"k_id": continuation_id})

    def delete_continuation(self, continuation_id: str) -> bool:
        """Remove a continuation, its request index and its search words; ``False`` if it
        did not exist."""
        self._delete_requests(continuation_id)
        self._delete_terms(continuation_id)
        # RETURNING, not rowcount: in psycopg's pipeline a rowcount is known only once synced
        sql = "DELETE FROM continuations WHERE continuation_id = :k_id RETURNING continuation_id"
        return (
            self._first("delete_continuation", lambda: sql, {"k_id": continuation_id}) is not None
        )

    def get_continuation(
        self, continuation_id: str, *, for_update: bool = False
    ) -> ContinuationRecord:
        """The continuation as this transaction sees it (row-locked on PostgreSQL if asked)."""
        row = self._row(t.continuations, "continuation_id", continuation_id, for_update=for_update)
        if row is None:
            raise not_found_error("continuation", continuation_id)
        return rows.continuation(row)

    def _continuation(
        self,
        run_id: str | None,
        requests: Sequence[Mapping[str, Any]],
        context: Mapping[str, Any] | None,
        status: str,
        expires_at: datetime | None,
        escalated_at: datetime | None,
        workflow_kind: str | None,
        workflow_name: str | None,
        environment: str | None,
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """A continuation's checked requests and the columns a create or replace writes;
        ``workflow_kind``, ``workflow_name`` and ``environment`` default to the run's."""
        request_list = continuation_request_list(requests)
        if workflow_kind is None and run_id is not None:
            found = self._first(
                "select_kind",
                lambda: (
                    "SELECT workflow_kind, workflow_name, environment FROM runs "
                    "WHERE run_id = :run_id"
                ),
                {"run_id": run_id},
            )
            if found:
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
        return request_list, values

    def _insert_requests(
        self, continuation_id: str, request_list: list[dict[str, Any]], status: str
    ) -> None:
        """The continuation's request index rows."""
        if request_list:
            self._insert_rows(
                t.continuation_requests,
                d.columns(t.continuation_requests),
                continuation_request_rows(continuation_id, request_list, status),
            )

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
        self._insert(
            "audit", _insert(t.audit_events, tuple(values)), self._d.bind(t.audit_events, values)
        )
        outbox = outbox_values(values)
        if outbox is not None:
            self._insert_outbox(outbox)
        return rows.audit(values)

    def _insert_outbox(self, values: dict[str, Any]) -> None:
        """A notifiable audit event's ``notification_events`` row (the outbox)."""
        bound = self._d.bind(t.notification_events, values)
        self._insert("outbox", _insert(t.notification_events, tuple(values)), bound)

    # -- metadata ----------------------------------------------------------------------
    def set_metadata(self, key: str, value: Any) -> None:
        """Upsert one project metadata value (any JSON value)."""
        self._exec(
            "set_metadata",
            _insert(
                t.project_metadata,
                ("key", "value", "updated_at"),
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value, "
                "updated_at = excluded.updated_at",
            ),
            self._d.bind(t.project_metadata, {"key": key, "value": value, "updated_at": self.now}),
        )

    # -- reading rows ------------------------------------------------------------------
    def _row(
        self, table: sa.Table, key: str, value: Any, *, for_update: bool = False
    ) -> dict[str, Any] | None:
        """The row of ``table`` whose ``key`` column is ``value`` (result-processed), or
        ``None``; ``for_update`` row-locks it where the database has row locks."""

        def build() -> str:
            return d.select_sql(table, f"{key} = :k") + (self._d.row_lock if for_update else "")

        return self._select_one(table, (table.name, key, for_update), build, {"k": value})

    def _select_one(
        self, table: sa.Table, key: Any, build: Callable[[], str], params: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """The first row of a ``SELECT`` of ``table``'s columns, result-processed, or ``None``."""
        cur = self._exec(key, build, params)
        found = cur.fetchall()
        return self._d.result(table, cur.description, found[0]) if found else None

    def _insert_queue(self, values: dict[str, Any]) -> int:
        cur = self._exec(
            "enqueue",
            _insert(t.queue, tuple(values), " RETURNING id"),
            self._d.bind(t.queue, values),
        )
        queue_id: int = cur.fetchall()[0][0]
        return queue_id


@contextlib.contextmanager
def transaction(store: Store, held: HeldConnection | None = None) -> Iterator[Transaction]:
    """A :class:`Transaction` on a DBAPI connection (SQLite: the process's writer
    connection; else ``held``'s or a pooled one, see
    :meth:`~kneo.store.dialects.StoreDialect.write_connection`): commits on normal exit,
    rolls back on any exception; driver failures, getting the connection included, map to
    ``conflict``/``database_unavailable`` (:mod:`kneo.store.errors`)."""
    with db_errors(), store.dialect.write_connection(store.engine, held) as raw:  # rollbacks
        try:
            tx = Transaction(store, raw, store.dialect)
            try:
                yield tx
                tx._commit()
            except BaseException as exc:
                tx._ex.abort(exc)
                raise
            finally:
                tx._ex.close()
            store.hold_specs(tx._new_specs)
        except BaseException:
            with contextlib.suppress(Exception):  # a broken connection: the pool discards it
                raw.rollback()
            raise
