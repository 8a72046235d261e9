"""What every part of a :class:`~kneo.store.transaction.Transaction` writes through:
:class:`TransactionBase`, its state and statement hooks.

A transaction runs its statements on its executor (:mod:`kneo.store.wire.executor`), each built
once per store in Core (:mod:`kneo.store.wire.statements`) and bound with the columns' own
processors (:class:`~kneo.store.wire.statement_cache.StatementCache`). What it allocates for a run
(sequence numbers, a lease) is kept in memory once it holds the run's row and written
before the commit (:meth:`TransactionBase._flush_runs`), or with the run's next update.
"""

from __future__ import annotations

import dataclasses
import functools
import operator
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple, NoReturn

import sqlalchemy as sa

from kneo.errors import Conflict, ErrorCode, InvalidRequest
from kneo.store import row_records
from kneo.store import tables as t
from kneo.store.base import StoreHandle, not_found_error
from kneo.store.records import ContinuationRecord, RunRecord
from kneo.store.row_values import NOT_RECORD_FIELDS, RUN_MUTABLE_FIELDS
from kneo.store.wire import statements as st
from kneo.store.wire.dialects import StoreDialect
from kneo.store.wire.executor import Executor
from kneo.store.wire.statement_cache import Text


class NewTask(NamedTuple):
    """A new continuation's rows, bound for the driver: its own (``values`` as the record
    has them, ``bound`` as the driver takes them), its request index and its search rows
    ``(term, created_at, continuation_id)``."""

    values: dict[str, Any]
    bound: dict[str, Any]
    requests: list[dict[str, Any]]
    terms: list[tuple[Any, ...]]

    def taken(self) -> Conflict:
        """The error when another continuation holds this one's id."""
        return Conflict(
            f"continuation {self.values['continuation_id']!r} already exists",
            code=ErrorCode.already_exists,
        )


class TransactionBase:
    """A transaction's state and the hooks its writes (runs, outcomes, continuations, the
    registry's) go through."""

    _d: StoreDialect
    _ex: Executor

    def __init__(self, store: StoreHandle, raw: Any, dialect: StoreDialect) -> None:
        self._store = store
        #: the project this transaction writes and reads (its store's view)
        self._pid = store.project_id
        self._d = dialect
        #: how the statements reach the wire (:mod:`kneo.store.wire.executor`)
        self._ex = dialect.executor(raw)
        self.now = store.clock.now()
        self._stamp: Any = None  # self.now as the driver takes it (:meth:`_now_bound`)
        self._seq: dict[str, list[int]] = {}
        self._seq_dirty: set[str] = set()
        #: leases taken (:meth:`take_run_lease`), written with the run's next update or flush
        self._leases: dict[str, tuple[str, datetime]] = {}
        self._new_specs: list[str] = []
        #: a notification event was written: its dispatcher is woken after the commit
        self.outbox_written = False
        #: a pause's new task, written with the run's outcome (:meth:`_write_task` otherwise)
        self._task: NewTask | None = None
        #: runs and continuations (their rows) this transaction read row-locked: nobody else
        #: can change them before it ends, so its compare-and-set writes of them at the
        #: versions it holds cannot miss and read nothing back
        self._locked_runs: dict[str, RunRecord] = {}
        self._locked_tasks: dict[str, dict[str, Any]] = {}

    def _now_bound(self) -> Any:
        """:attr:`now` as a timestamp column binds it (every row this transaction stamps)."""
        if self._stamp is None:
            self._stamp = self._d.binder(t.runs, "updated_at")(self.now)
        return self._stamp

    def _exec(self, key: Any, build: Callable[[], Any], params: Mapping[str, Any]) -> Any:
        """Run a statement whose result is read (or that must follow what came before: an
        update); the cursor."""
        text = self._d.text(key, build)
        return self._ex.execute(text.sql, self._args(text, params))

    def _args(self, text: Text, params: Mapping[str, Any]) -> tuple[Any, ...]:
        """``text``'s parameters from ``params``, and the project it is scoped to when it
        names one (:data:`~kneo.store.wire.statements.PROJECT`): a statement scoped by its
        builder is so on every call, without each caller passing the project."""
        if st.PROJECT in text.names:
            params = {**params, st.PROJECT: self._pid}
        return text.args(params)

    def _first(
        self, key: Any, build: Callable[[], Any], params: Mapping[str, Any]
    ) -> Sequence[Any] | None:
        """The first row a statement returns, or ``None``."""
        found: list[Sequence[Any]] = self._exec(key, build, params).fetchall()
        return found[0] if found else None

    def _batched(self, key: Any, build: Callable[[], Any], params: Mapping[str, Any]) -> None:
        """A write nobody reads back: an insert, or an update or delete that cannot miss or
        whose miss does not matter (it may wait and go out with the next statement read or
        the commit: :meth:`Executor.add <kneo.store.wire.executor.Executor.add>`)."""
        text = self._d.text(key, build)
        self._ex.add(text.sql, self._args(text, params))

    def _insert_rows(
        self, table: sa.Table, names: tuple[str, ...], values: list[dict[str, Any]]
    ) -> None:
        """Rows of ``table`` (``names`` of each, bound) in multi-row inserts."""
        row_of = operator.itemgetter(*names)
        self._d.insert_rows(
            self._ex.add, table, names, [row_of(self._d.bind(table, v)) for v in values]
        )

    def _select_one(
        self, table: sa.Table, key: Any, build: Callable[[], Any], params: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """The first row of a ``SELECT`` of ``table``'s columns, result-processed, or ``None``."""
        cur = self._exec(key, build, params)
        found = cur.fetchall()
        return self._d.reader(table, self._ex)(found[0]) if found else None

    def _row(
        self, table: sa.Table, key: str, value: Any, *, for_update: bool = False
    ) -> dict[str, Any] | None:
        """The row of ``table`` whose ``key`` column is ``value`` (result-processed), or
        ``None``; ``for_update`` row-locks it where the database has row locks."""

        def build() -> Any:
            return st.select_row(table, key, lock=for_update)

        return self._select_one(table, (table.name, key, for_update), build, {"k": value})

    def _write_task(self, task: NewTask) -> None:
        """Insert a new continuation's rows (:class:`ContinuationWritesMixin`)."""
        raise NotImplementedError

    def _lock_with_run(self, continuation_id: str) -> ContinuationRecord | None:
        """:meth:`get_continuation` ``for_update`` of a continuation of a run: it and its run
        read in one statement, both row-locked; ``None`` when there is no such pair."""
        found = self._exec("run_and_task", st.select_run_and_task, {"k": continuation_id})
        rows = found.fetchall()
        if not rows:
            return None
        run_row = self._d.reader(t.runs, self._ex, 0)(rows[0])
        task = self._d.reader(t.continuations, self._ex, len(t.runs.c))(rows[0])
        self._locked_tasks[continuation_id] = task
        self._locked_run(run_row)  # (may read its spec: after both rows are read)
        return row_records.continuation(task)

    def _locked_run(self, row: dict[str, Any]) -> RunRecord:
        """The record of a run row this transaction read row-locked, its counters and
        version this transaction's from now on."""
        run = row_records.run(row, self._spec_text)
        self._seq.setdefault(run.run_id, [row["checkpoint_seq"], row["trace_seq"]])
        self._locked_runs[run.run_id] = run  # (after an update of it: as updated)
        return run

    def _update_locked_run(self, run: RunRecord, changes: dict[str, Any]) -> RunRecord:
        """:meth:`update_run` of a run this transaction holds row-locked at its version: the
        compare-and-set cannot miss, so nothing is read back and the update waits for the
        commit; the record is ``run`` with ``changes``, as :meth:`finish_run` makes it."""
        keys = self._run_changes(run.run_id, changes)
        bound = self._d.bind(t.runs, changes)
        params = {f"v_{k}": bound[k] for k in keys}
        params |= {"k_run_id": run.run_id, "k_now": self._now_bound(), "k_expected": run.version}
        self._batched(
            ("update_locked_run", keys), lambda: st.run_update(keys, returning=()), params
        )
        checkpoint_seq = int(changes.get("checkpoint_seq", run.checkpoint_seq or 0))
        trace_seq = int(changes.get("trace_seq", run.trace_seq or 0))
        self._run_updated(run.run_id, checkpoint_seq, trace_seq)
        fields = {k: v for k, v in changes.items() if k not in NOT_RECORD_FIELDS}
        updated = dataclasses.replace(
            run,
            **fields,
            version=run.version + 1,
            updated_at=self.now,
            checkpoint_seq=checkpoint_seq,
            trace_seq=trace_seq,
        )
        self._locked_runs[run.run_id] = updated
        return updated

    def _spec_text(self, digest: str) -> str | None:
        def read() -> str | None:
            select = functools.partial(st.select, t.specs, ["spec"], "digest", "digest")
            found = self._first("select_spec", select, {"digest": digest})
            return found[0] if found else None

        return self._d.spec_text(digest, read)

    def _commit(self) -> None:
        """Commit (once), after what this transaction kept in memory for its runs."""
        if self._ex.ended:
            return
        if self._task is not None:  # a task meant for an outcome that did not come
            task, self._task = self._task, None
            self._write_task(task)
        if self._seq_dirty or self._leases:
            self._flush_runs()
        self._ex.commit()

    def _run_changes(self, run_id: str, changes: dict[str, Any]) -> tuple[str, ...]:
        """Check and complete ``update_run``'s changes (folded sequences, inline spec); the
        sorted column names it sets."""
        if not RUN_MUTABLE_FIELDS.issuperset(changes):
            unknown = set(changes) - RUN_MUTABLE_FIELDS
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

    def _run_updated(self, run_id: str, checkpoint_seq: int, trace_seq: int) -> None:
        """Take the sequence counters of the run row an update returned."""
        self._seq[run_id] = [checkpoint_seq, trace_seq]
        self._seq_dirty.discard(run_id)

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

    def _run_version(self, run_id: str) -> int | None:
        """The version of the project's run ``run_id`` (``None``: no such run in it)."""
        select = functools.partial(st.select, t.runs, ["version"], "run_id", "run_id")
        found = self._first("select_version", select, {"run_id": run_id})
        return found[0] if found else None

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

    def _allocate_sequence(self, run_id: str, column: str, count: int) -> Sequence[Any] | None:
        return self._first(
            ("seq", column),
            lambda: st.allocate(column),
            {"k_run_id": run_id, "k_count": count},
        )

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
        self._batched(
            ("set_run_columns", keys),
            lambda: st.set_run_columns(keys),
            {"k_run_id": run_id, **{f"v_{k}": bound[k] for k in keys}},
        )

    def _insert_outbox(self, values: dict[str, Any]) -> None:
        """A notifiable audit event's ``notification_events`` row (the outbox), the
        project's."""
        self.outbox_written = True
        row = {**values, "project_id": self._pid}
        bound = self._d.bind(t.notification_events, row)
        self._batched(
            "outbox", functools.partial(st.insert, t.notification_events, tuple(row)), bound
        )
