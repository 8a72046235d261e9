"""A write unit of work on a raw DBAPI connection, for a run's create and outcome transactions.

:class:`RawTransaction` has the subset of :class:`~kneo.store.api.Transaction` that creating a
run (insert, spec, audit, trace, start, ``run:<id>`` lock or queue entry) and writing its
outcome (continuation and request rows, checkpoint, trace, compare-and-set update, audits,
lock release) use, with the same semantics and the same rows: every statement is plain SQL
text prepared once per dialect and table (driver parameter style, like
:mod:`kneo.store.steps`) and values pass through the Core column types' own bind and result
processors, so nothing is built, cache-keyed or compiled per call and no SQLAlchemy
connection, result or event machinery runs. Everything commits together in
:meth:`Store.raw_transaction <kneo.store.api.Store.raw_transaction>` or not at all. On
PostgreSQL the transaction runs in psycopg's pipeline mode (:func:`_pipeline`), so it costs a
round trip per ``RETURNING`` read plus one for the commit, not one per statement.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import operator
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect, Engine

from kneo.errors import Conflict, KneoError, NotReady
from kneo.store import rows
from kneo.store import tables as t
from kneo.store.base import not_found_error
from kneo.store.records import ContinuationRecord, RunRecord
from kneo.store.rowvalues import (
    RowWriter,
    audit_values,
    check_trace_events,
    continuation_request_list,
    continuation_request_rows,
    continuation_values,
    new_continuation,
    trace_values,
)
from kneo.store.steps import StepCheckpoint, insert_rows

if TYPE_CHECKING:
    from kneo.store.api import Store

_NAMED = re.compile(r":([a-z_]+)")
_Proc = Callable[[Any], Any] | None


class _Sql:
    """Prepared statements and column processors for one dialect."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.pyformat = dialect.paramstyle not in ("named", "qmark")
        self.pipeline = dialect.driver == "psycopg" and _pipeline_supported()
        # What opens the transaction: SQLite takes its write lock up front; in psycopg's
        # pipeline the BEGIN is queued with the statements (see _pipeline).
        self.begin = (
            "BEGIN IMMEDIATE" if dialect.name == "sqlite" else "BEGIN" if self.pipeline else None
        )
        self._texts: dict[Any, str] = {}
        self._binds: dict[tuple[str, str], _Proc] = {}
        self._results: dict[tuple[str, str, Any], _Proc] = {}

    def text(self, key: Any, build: Callable[[], str]) -> str:
        sql = self._texts.get(key)
        if sql is None:
            sql = build()
            if self.pyformat:
                sql = _NAMED.sub(r"%(\1)s", sql)
            self._texts[key] = sql
        return sql

    def bind(self, table: sa.Table, values: Mapping[str, Any]) -> dict[str, Any]:
        out = {}
        for name, value in values.items():
            key = (table.name, name)
            try:
                proc = self._binds[key]
            except KeyError:
                proc = self._binds[key] = t.value_binder(table.c[name].type, self.dialect)
            out[name] = proc(value) if proc is not None and value is not None else value
        return out

    def result(self, table: sa.Table, description: Any, row: Sequence[Any]) -> dict[str, Any]:
        out = {}
        for column, value in zip(description, row, strict=True):
            name, coltype = column[0], column[1]
            key = (table.name, name, coltype)
            try:
                proc = self._results[key]
            except KeyError:
                proc = self._results[key] = table.c[name].type._cached_result_processor(
                    self.dialect, coltype
                )
            out[name] = proc(value) if proc is not None else value
        return out


_SQL: dict[str, _Sql] = {}


def _pipeline_supported() -> bool:
    import psycopg

    return bool(psycopg.Pipeline.is_supported())


@contextlib.contextmanager
def _pipeline(raw: Any, sql: _Sql) -> Iterator[None]:
    """psycopg's pipeline mode on PostgreSQL: statements whose result nobody reads yet go out
    together, so inserts ride with the next read or the commit (a round trip per
    ``RETURNING`` read plus the commit, instead of one per statement). Errors surface at that
    read or at the commit, still inside the transaction.

    The connection is in autocommit meanwhile and the transaction sends its own ``BEGIN``
    (:attr:`_Sql.begin`), queued like the rest: psycopg's implicit one waits for a round trip
    of its own. A failure sends ``ROLLBACK`` before autocommit is switched back off, so the
    connection goes back to the pool idle and transactional as it came."""
    if not sql.pipeline:
        yield
        return
    driver = raw.driver_connection
    driver.autocommit = True
    try:
        with driver.pipeline():
            yield
    except BaseException:
        with contextlib.suppress(Exception):  # a broken connection: the pool discards it
            driver.execute("ROLLBACK")
        raise
    finally:
        with contextlib.suppress(Exception):  # refused only by a broken connection
            driver.autocommit = False


def _sql(dialect: Dialect) -> _Sql:
    found = _SQL.get(dialect.name)
    if found is None:
        found = _SQL[dialect.name] = _Sql(dialect)
    return found


def _insert(table: sa.Table, names: Sequence[str], suffix: str = "") -> Callable[[], str]:
    def build() -> str:
        return (
            f"INSERT INTO {table.name} ({', '.join(names)}) VALUES "
            f"({', '.join(':' + n for n in names)}){suffix}"
        )

    return build


_RUN_COLUMNS = tuple(c.name for c in t.runs.c)
_CHECKPOINT_COLUMNS = tuple(c.name for c in t.checkpoints.c)
#: run columns ``update_run`` may set that a :class:`RunRecord` does not carry as given
_NOT_RECORD_FIELDS = frozenset({"checkpoint_seq", "trace_seq", "spec_ref"})
_RUN_RETURNING = ", ".join(_RUN_COLUMNS)


class RawTransaction(RowWriter):
    """One unit of work on one raw DBAPI connection; see the module docstring."""

    def __init__(self, store: Store, cursor: Any, sql: _Sql) -> None:
        self._store = store
        self._cur = cursor
        self._sql = sql
        self.now = store.clock.now()
        self._seq: dict[str, list[int]] = {}
        self._seq_dirty: set[str] = set()
        self._new_specs: list[str] = []

    def _exec(self, key: Any, build: Callable[[], str], params: Mapping[str, Any]) -> Any:
        self._cur.execute(self._sql.text(key, build), params)
        return self._cur

    def _insert_rows(
        self, table: sa.Table, names: Sequence[str], values: list[dict[str, Any]]
    ) -> None:
        """Rows of ``table`` (``names`` of each, bound) in multi-row inserts."""
        row_of = operator.itemgetter(*names)
        insert_rows(
            self._cur.execute,
            f"INSERT INTO {table.name} ({', '.join(names)})",
            [row_of(self._sql.bind(table, v)) for v in values],
            "%s" if self._sql.pyformat else "?",
        )

    # -- runs ------------------------------------------------------------------------
    def _insert_run(self, values: dict[str, Any], *, checked: bool = True) -> bool:
        bound = self._sql.bind(t.runs, values)
        if not checked:  # nothing to read back: in psycopg's pipeline, no round trip
            self._exec("create_new_run", _insert(t.runs, _RUN_COLUMNS), bound)
            return True
        cur = self._exec(
            "create_run",
            _insert(t.runs, _RUN_COLUMNS, " ON CONFLICT (run_id) DO NOTHING RETURNING run_id"),
            bound,
        )
        return bool(cur.fetchall())

    def _insert_spec(self, values: dict[str, Any]) -> None:
        self._exec(
            "spec",
            _insert(t.specs, ("digest", "spec", "created_at"), " ON CONFLICT (digest) DO NOTHING"),
            self._sql.bind(t.specs, values),
        )

    def _spec_text(self, digest: str) -> str | None:
        text = rows._SPEC_TEXT.get(digest)
        if text is None:
            cur = self._exec(
                "select_spec",
                lambda: "SELECT spec FROM specs WHERE digest = :digest",
                {"digest": digest},
            )
            found = cur.fetchall()
            if not found:
                return None
            text = found[0][0]
            if len(rows._SPEC_TEXT) >= 256:
                rows._SPEC_TEXT.clear()
            rows._SPEC_TEXT[digest] = text
        return text

    def update_run(
        self, run_id: str, /, *, expected_version: int | None = None, **changes: Any
    ) -> RunRecord:
        """:meth:`Transaction.update_run <kneo.store.api.Transaction.update_run>`."""
        keys = self._run_changes(run_id, changes)
        cas = expected_version is not None

        def build() -> str:
            sets = ", ".join(
                ["version = version + 1", "updated_at = :k_now"] + [f"{k} = :v_{k}" for k in keys]
            )
            where = "run_id = :k_run_id" + (" AND version = :k_expected" if cas else "")
            return f"UPDATE runs SET {sets} WHERE {where} RETURNING {_RUN_RETURNING}"

        bound = self._sql.bind(t.runs, {**changes, "updated_at": self.now})
        params = {f"v_{k}": bound[k] for k in keys}
        params |= {"k_run_id": run_id, "k_now": bound["updated_at"]}
        if cas:
            params["k_expected"] = expected_version
        cur = self._exec(("update_run", keys, cas), build, params)
        found = cur.fetchall()
        if not found:
            self._raise_stale(run_id, expected_version)
        row = self._sql.result(t.runs, cur.description, found[0])
        self._run_updated(run_id, row)
        spec = row["spec"] or {}
        if row.get("spec_ref") and not spec:
            text = self._spec_text(row["spec_ref"])
            row["spec"] = json.loads(text) if text is not None else {}
        return rows.run(row)

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
        **changes: Any,
    ) -> RunRecord:
        """:meth:`update_run` with compare-and-set for a run's outcome, reading back only the
        version and counters: ``run`` is the record the run was driven from, and the
        compare-and-set proves every column but the journal's (state, version) is still as
        it says, so the result is ``run`` with ``changes`` applied, not a re-read row.
        ``state_text``: ``changes["state"]`` already encoded (:func:`kneo.jsontext.dumps`),
        stored as is. ``release_lease``: the owner whose lease on the run ends with it (a
        lease someone else took meanwhile stays). ``checkpoints`` and ``events``: rows
        appended after the run's last ones (patches or keyframes as ``write_step`` stores them), numbered from
        the counters this update moves, so they cost no statement of their own to number."""
        if events:
            check_trace_events(events)
        keys = self._run_changes(run.run_id, changes)
        release = release_lease is not None
        added = (len(checkpoints), len(events))
        if "checkpoint_seq" in changes:  # counted in memory by this transaction: absolute
            changes["checkpoint_seq"] += added[0]
            changes["trace_seq"] += added[1]
            added = (0, 0)
        moves = added != (0, 0)

        def build() -> str:
            sets = ["version = version + 1", "updated_at = :k_now"]
            sets += [f"{k} = :v_{k}" for k in keys]
            if moves:
                sets += [
                    "checkpoint_seq = checkpoint_seq + :k_checkpoints",
                    "trace_seq = trace_seq + :k_events",
                ]
            if release:
                mine = "CASE WHEN lease_owner = :k_owner THEN NULL ELSE {0} END"
                sets += [
                    f"lease_owner = {mine.format('lease_owner')}",
                    f"lease_expires_at = {mine.format('lease_expires_at')}",
                ]
            return (
                f"UPDATE runs SET {', '.join(sets)} "
                "WHERE run_id = :k_run_id AND version = :k_expected "
                "RETURNING version, checkpoint_seq, trace_seq"
            )

        values = {**changes, "updated_at": self.now}
        if state_text is not None:
            del values["state"]
        bound = self._sql.bind(t.runs, values)
        if state_text is not None:
            bound["state"] = state_text
        params = {f"v_{k}": bound[k] for k in keys}
        params |= {"k_run_id": run.run_id, "k_now": bound["updated_at"]}
        params["k_expected"] = expected_version
        if release:
            params["k_owner"] = release_lease
        if moves:
            params["k_checkpoints"], params["k_events"] = added
        found = self._exec(("finish_run", keys, release, moves), build, params).fetchall()
        if not found:
            self._raise_stale(run.run_id, expected_version)
        version, checkpoint_seq, trace_seq = found[0]
        self._run_updated(run.run_id, {"checkpoint_seq": checkpoint_seq, "trace_seq": trace_seq})
        if checkpoints:
            self._insert_step_checkpoints(
                run.run_id, checkpoints, checkpoint_seq - len(checkpoints) + 1
            )
        if events:
            first = trace_seq - len(events) + 1
            self._insert_trace_rows(trace_values(run.run_id, first, events, self.now))
        fields = {k: v for k, v in changes.items() if k not in _NOT_RECORD_FIELDS}
        return dataclasses.replace(
            run,
            **fields,
            version=int(version),
            updated_at=self.now,
            trace_seq=int(trace_seq),
            checkpoint_seq=int(checkpoint_seq),
        )

    def _set_run_lease(self, run_id: str, owner: str, expires_at: datetime) -> None:
        self._exec(
            "set_lease",
            lambda: (
                "UPDATE runs SET lease_owner = :lease_owner, lease_expires_at = :lease_expires_at "
                "WHERE run_id = :run_id"
            ),
            self._sql.bind(
                t.runs, {"run_id": run_id, "lease_owner": owner, "lease_expires_at": expires_at}
            ),
        )

    def _run_version(self, run_id: str) -> int | None:
        cur = self._exec(
            "select_version",
            lambda: "SELECT version FROM runs WHERE run_id = :run_id",
            {"run_id": run_id},
        )
        found = cur.fetchall()
        return found[0][0] if found else None

    def _allocate_sequence(self, run_id: str, column: str, count: int) -> Sequence[Any] | None:
        cur = self._exec(
            ("seq", column),
            lambda: (
                f"UPDATE runs SET {column} = {column} + :k_count WHERE run_id = :k_run_id "
                "RETURNING checkpoint_seq, trace_seq"
            ),
            {"k_run_id": run_id, "k_count": count},
        )
        found = cur.fetchall()
        return found[0] if found else None

    def _write_sequences(self, run_id: str, checkpoint_seq: int, trace_seq: int) -> None:
        self._exec(
            "seq_flush",
            lambda: (
                "UPDATE runs SET checkpoint_seq = :k_checkpoint_seq, trace_seq = :k_trace_seq "
                "WHERE run_id = :k_run_id"
            ),
            {"k_run_id": run_id, "k_checkpoint_seq": checkpoint_seq, "k_trace_seq": trace_seq},
        )

    # -- checkpoints and trace ---------------------------------------------------------
    def _insert_step_checkpoints(
        self, run_id: str, checkpoints: Sequence[StepCheckpoint], first: int
    ) -> None:
        """Insert ``checkpoints`` as sequences ``first``, ``first + 1``, ... (a patch on any
        row but the one before it is stored as its keyframe: :meth:`StepCheckpoint.at`)."""
        values = []
        for offset, checkpoint in enumerate(checkpoints):
            row = checkpoint.at(first + offset)
            values.append(
                {
                    "run_id": run_id,
                    "sequence": first + offset,
                    "type": row.type,
                    "step_id": row.step_id,
                    "status": row.status,
                    "encoding": row.encoding,
                    "payload": row.payload,
                    "size_bytes": row.size_bytes,
                    "truncated": row.truncated,
                    "metadata": dict(row.metadata),
                    "created_at": self.now,
                }
            )
        self._insert_checkpoints(values)

    def _insert_checkpoints(self, values: list[dict[str, Any]]) -> None:
        self._insert_rows(t.checkpoints, _CHECKPOINT_COLUMNS, values)

    def add_trace_events(self, run_id: str, events: Sequence[Mapping[str, Any]]) -> None:
        """:meth:`Transaction.add_trace_events <kneo.store.api.Transaction.add_trace_events>`."""
        if not events:
            return
        check_trace_events(events)
        first = self._next_sequence(run_id, "trace_seq", len(events))
        self._insert_trace_rows(trace_values(run_id, first, events, self.now))

    def _insert_trace_rows(self, values: list[dict[str, Any]]) -> None:
        names = ("run_id", "sequence", "event_type", "step_id", "payload", "created_at")
        self._insert_rows(t.trace_events, names, values)

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
    ) -> ContinuationRecord:
        """:meth:`Transaction.put_continuation <kneo.store.api.Transaction.put_continuation>`
        for a new continuation (no ``expected_version``)."""
        request_list = continuation_request_list(requests)
        if workflow_kind is None and run_id is not None:
            cur = self._exec(
                "select_kind",
                lambda: "SELECT workflow_kind FROM runs WHERE run_id = :run_id",
                {"run_id": run_id},
            )
            found = cur.fetchall()
            workflow_kind = found[0][0] if found else None
        values = continuation_values(
            run_id=run_id,
            status=status,
            request_list=request_list,
            context=context,
            workflow_kind=workflow_kind,
            expires_at=expires_at,
            escalated_at=escalated_at,
            now=self.now,
        )
        new_continuation(values, continuation_id, self.now)
        dbapi = self._sql.dialect.loaded_dbapi
        try:
            cur = self._exec(
                "continuation",
                _insert(
                    t.continuations,
                    tuple(values),
                    " ON CONFLICT (continuation_id) DO NOTHING RETURNING continuation_id",
                ),
                self._sql.bind(t.continuations, values),
            )
            inserted = cur.fetchall()
        except dbapi.IntegrityError as exc:  # the only other constraint: the run's key
            raise not_found_error("run", run_id) from exc
        if not inserted:
            raise Conflict(
                f"continuation {continuation_id!r} already exists", code="already_exists"
            )
        if request_list:
            names = ("continuation_id", "request_id", "kind", "assignee", "status")
            self._insert_rows(
                t.continuation_requests,
                names,
                continuation_request_rows(continuation_id, request_list),
            )
        return rows.continuation(values)

    def add_audit(
        self,
        event_type: str,
        *,
        actor: str | None = None,
        run_id: str | None = None,
        continuation_id: str | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> None:
        """:meth:`Transaction.add_audit <kneo.store.api.Transaction.add_audit>` (redacted)."""
        values = audit_values(
            event_type,
            actor=actor,
            run_id=run_id,
            continuation_id=continuation_id,
            payload=payload,
            now=self.now,
        )
        self._exec(
            "audit", _insert(t.audit_events, tuple(values)), self._sql.bind(t.audit_events, values)
        )

    def _insert_queue(self, values: dict[str, Any]) -> int:
        cur = self._exec(
            "enqueue",
            _insert(t.queue, tuple(values), " RETURNING id"),
            self._sql.bind(t.queue, values),
        )
        queue_id: int = cur.fetchall()[0][0]
        return queue_id


@contextlib.contextmanager
def raw_transaction(store: Store) -> Iterator[RawTransaction]:
    """A :class:`RawTransaction` on a DBAPI connection (SQLite: the process's writer
    connection, see :meth:`~kneo.store.dialects.StoreDialect.write_connection`): commits on
    normal exit, rolls back on any exception; driver failures map to
    ``conflict``/``database_unavailable`` like
    :meth:`Store.transaction <kneo.store.api.Store.transaction>`."""
    engine = store.engine
    with store.dialect.write_connection(engine) as raw:  # rollbacks too happen in it
        yield from _raw_transaction(store, engine, raw)


def _raw_transaction(store: Store, engine: Engine, raw: Any) -> Iterator[RawTransaction]:
    sql = _sql(engine.dialect)
    dbapi = engine.dialect.loaded_dbapi
    try:
        with _pipeline(raw, sql):
            cursor = raw.cursor()
            try:
                if sql.begin:
                    cursor.execute(sql.begin)
                tx = RawTransaction(store, cursor, sql)
                yield tx
                tx._flush_sequences()
                if sql.begin:
                    # The explicit BEGIN's pair: on SQLite from the cursor's statement cache
                    # (pysqlite's commit() prepares "COMMIT" anew each time); in psycopg's
                    # pipeline queued too, and leaving it syncs once for everything.
                    cursor.execute("COMMIT")
                else:
                    raw.commit()
            finally:
                cursor.close()
        store.hold_specs(tx._new_specs)
    except KneoError:
        _rollback(raw)
        raise
    except dbapi.IntegrityError as exc:
        _rollback(raw)
        raise Conflict(f"database constraint violated: {exc}", code="conflict") from exc
    except (dbapi.OperationalError, dbapi.InterfaceError) as exc:
        _rollback(raw)
        raise NotReady(
            f"database unavailable: {type(exc).__name__}: {exc}", code="database_unavailable"
        ) from exc
    except BaseException:
        _rollback(raw)
        raise


def _rollback(raw: Any) -> None:
    with contextlib.suppress(Exception):  # a broken connection: the pool discards it on close
        raw.rollback()
