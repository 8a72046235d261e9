"""The step-boundary write path: a compare-and-set that also allocates sequence numbers.

A step boundary is the hottest write Kneo makes (one per completed step, agent turn or tool
result), so it is written with three statements (:func:`write_step`):

1. the runs compare-and-set (:func:`~kneo.store.dialects.run_update`: new state, version+1,
   ``checkpoint_seq``+k, ``trace_seq``+n, returning the counters): the row lock and the
   sequence allocation in one round trip;
2. ``INSERT`` of the checkpoint row (k rows when a journal writes boundaries together);
3. one multi-row ``INSERT`` of the buffered trace events.

:class:`StepWriter` (a boundary in its own transaction) writes the same rows, on PostgreSQL
as one statement (:func:`~kneo.store.dialects.one_statement_write`: the compare-and-set in
a ``WITH``, the inserts numbered from the row it returns) run as its own transaction
(autocommit): one round trip per step instead of five (``BEGIN``, update, insert, inserts,
``COMMIT``).

The SQL is built once per store from the tables (:class:`~kneo.store.dialects.StoreDialect`)
and executed with the driver's own parameter style; values are converted with the column
types' processors, so rows are byte-for-byte what the rest of the store writes.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy.engine import Engine

from kneo import jsontext
from kneo.store import dialects as d
from kneo.store import tables as t
from kneo.store.dialects import StoreDialect, Text
from kneo.store.errors import db_errors, is_unavailable

#: Compact JSON text exactly as :class:`~kneo.store.tables.JSONText` stores it.
json_text: Callable[[Any], str] = jsontext.dumps


#: the columns of the rows a step writes, in table order
CHECKPOINT_COLUMNS = d.columns(t.checkpoints)
TRACE_COLUMNS = d.columns(t.trace_events)
#: what a one-statement write's update returns (:func:`~kneo.store.dialects.one_statement_write`)
CAS_RETURNING = ("run_id", "version", "checkpoint_seq", "trace_seq", "updated_at")


def _step_text(dialect: StoreDialect, guard: bool, checkpoints: int, events: int) -> Text:
    """A boundary's statement: the compare-and-set alone (SQLite, or PostgreSQL's stepwise
    path, ``events < 0``), or PostgreSQL's whole boundary as one statement."""

    def build() -> str:
        if events < 0:
            return d.run_update(("state",), moves=True)
        update = d.run_update(("state",), moves=True, guard=guard, returning=CAS_RETURNING)
        return d.one_statement_write(update, (checkpoints, events, 0, 0))

    return dialect.text(("step", guard, checkpoints, events), build)


@dataclass(frozen=True)
class StepCheckpoint:
    """The checkpoint row of a step boundary, already encoded (see :mod:`.payloads`).

    A patch row (see :mod:`.delta`) applies to the checkpoint numbered ``follows``; readers
    rely on that being the row right before it, so when the run's sequence moved on in
    between (another writer added a checkpoint) ``keyframe()`` is stored instead.
    """

    type: str
    step_id: str | None
    status: str | None
    encoding: str
    payload: bytes
    size_bytes: int
    truncated: bool
    metadata: Mapping[str, Any]
    follows: int | None = None
    keyframe: Callable[[], StepCheckpoint] | None = field(default=None, compare=False)

    def columns(self) -> tuple[Any, ...]:
        """The row's own columns, as stored: type, step_id, status, encoding, payload,
        size_bytes, truncated and metadata (JSON text)."""
        return (
            self.type,
            self.step_id,
            self.status,
            self.encoding,
            self.payload,
            self.size_bytes,
            self.truncated,
            json_text(dict(self.metadata)),
        )

    def at(self, sequence: int) -> StepCheckpoint:
        """What to store as checkpoint ``sequence``: this row, or its keyframe when this is a
        patch on anything but ``sequence - 1``."""
        if self.follows is None or self.follows == sequence - 1:
            return self
        if self.keyframe is None:
            raise ValueError("a checkpoint patch out of sequence needs a keyframe")
        return self.keyframe()


def chain_starts(checkpoints: Sequence[StepCheckpoint]) -> set[int]:
    """The checkpoints the run's last one must be for ``checkpoints`` to be stored as they
    come in one write: the one each patch's chain starts from (a row's index counts the
    rows before it). Empty when all are keyframes; more than one when the patches do not
    follow each other, which only the stepwise path (:meth:`StepCheckpoint.at`) stores."""
    return {c.follows - i for i, c in enumerate(checkpoints) if c.follows is not None}


class StepWritten(NamedTuple):
    """A written step boundary: the run's new version and its sequence counters."""

    version: int
    checkpoint_seq: int
    trace_seq: int


@dataclass(frozen=True)
class StepEvent:
    """One trace event row; ``payload`` is its JSON text."""

    event_type: str
    step_id: str | None
    payload: str


class Step(NamedTuple):
    """A step boundary to write: the run at ``expected_version`` gets ``state_text`` and
    the checkpoints (one per boundary written together, in order) and events."""

    run_id: str
    expected_version: int
    now: datetime
    state_text: str
    checkpoints: Sequence[StepCheckpoint]
    events: Sequence[StepEvent]


#: rows numbered up to the last sequence number a write allocated
_Rows = Callable[[int], list[tuple[Any, ...]]]


def _params(dialect: StoreDialect, step: Step) -> tuple[dict[str, Any], _Rows, _Rows]:
    """A boundary's compare-and-set parameters (:func:`~kneo.store.dialects.run_update`),
    its checkpoint rows numbered up to the last one and its event rows likewise."""
    run_id, expected_version, now, state_text, checkpoints, events = step
    stamp = dialect.binder(t.runs, "updated_at")(now)
    cas = {
        "v_state": state_text,
        "k_now": stamp,
        "k_checkpoints": len(checkpoints),
        "k_events": len(events),
        "k_run_id": run_id,
        "k_expected": expected_version,
    }

    def checkpoint_rows(last: int) -> list[tuple[Any, ...]]:
        first = last - len(checkpoints) + 1
        return [
            (run_id, first + index, *row.at(first + index).columns(), stamp)
            for index, row in enumerate(checkpoints)
        ]

    def event_rows(last: int) -> list[tuple[Any, ...]]:
        first = last - len(events) + 1
        return [
            (run_id, first + index, event.event_type, event.step_id, event.payload, stamp)
            for index, event in enumerate(events)
        ]

    return cas, checkpoint_rows, event_rows


def write_step(cursor: Any, dialect: StoreDialect, step: Step) -> StepWritten | None:
    """Write one step boundary on a DBAPI ``cursor``, in its transaction; the version and
    counters after it, or ``None`` when the run is missing or not at ``expected_version``."""
    cas, checkpoint_rows, event_rows = _params(dialect, step)
    text = _step_text(dialect, False, 0, -1)
    cursor.execute(text.sql, text.args(cas))
    found = cursor.fetchall()
    if not found:
        return None
    version, checkpoint_seq, trace_seq = (int(v) for v in found[0])
    execute = cursor.execute
    dialect.insert_rows(execute, t.checkpoints, CHECKPOINT_COLUMNS, checkpoint_rows(checkpoint_seq))
    if step.events:
        dialect.insert_rows(execute, t.trace_events, TRACE_COLUMNS, event_rows(trace_seq))
    return StepWritten(version, checkpoint_seq, trace_seq)


#: A connection a :class:`StepWriter` left unused this long goes back to the pool before the
#: next step (whose checkout then pings it on PostgreSQL, see ``dialects``).
HOLD_IDLE_SECONDS = 1.0


class StepWriter:
    """Step boundaries as their own committed transactions, on one held DBAPI connection.

    The per-step hot path: :func:`write_step`'s rows, straight on the DBAPI connection (no
    SQLAlchemy connection, result or event machinery), all or nothing; on PostgreSQL as one
    statement in one round trip (:data:`_BOUNDARY`), on SQLite as its three statements.

    Checking a connection out of the pool and back in (events, reset-on-return rollback) at
    every step cost as much as the step's statements; a run's steps come back to back, so the
    writer keeps its connection between them. It gives it back when it sat unused for
    :data:`HOLD_IDLE_SECONDS` (a long step: the pool's checkout checks a stale one), after any
    error (the pool decides whether it is still usable), after a step that found the pool
    past its steady size (many runs at once: do not starve them), and on :meth:`close`. On
    SQLite (``borrow``) it holds nothing: each commit borrows the process's writer
    connection under the write lock. Not thread-safe: the caller serializes commits (the
    journal holds its lock).
    """

    def __init__(self, engine: Engine, dialect: StoreDialect) -> None:
        self.engine = engine
        self._dialect = dialect
        #: SQLite: each commit borrows the process's writer connection, under the write lock
        #: (:meth:`~kneo.store.dialects.StoreDialect.write_connection`), instead of holding one
        self._borrow = dialect.step_connection(engine)
        self._raw: Any = None
        self._cursor: Any = None
        self._used = 0.0

    def commit(
        self,
        *,
        run_id: str,
        expected_version: int,
        now: datetime,
        state_text: str,
        checkpoints: Sequence[StepCheckpoint],
        events: Sequence[StepEvent],
    ) -> StepWritten | None:
        """A boundary (or boundaries written together: a checkpoint each) in its own
        committed transaction; ``None`` when the run is missing or not at
        ``expected_version`` (nothing written)."""
        step = Step(run_id, expected_version, now, state_text, checkpoints, events)
        if self._borrow is not None:
            with self._borrow() as raw:
                self._raw, self._cursor = raw, raw.cursor()
                try:
                    return self._write(step)
                finally:
                    with contextlib.suppress(Exception):
                        self._cursor.close()
                    self._raw = self._cursor = None
        if self._raw is not None and time.monotonic() - self._used > HOLD_IDLE_SECONDS:
            self.close()
        if self._raw is None:
            with db_errors():
                self._raw = self.engine.raw_connection()
                self._cursor = self._raw.cursor()
        written = self._write(step)
        if self._crowded():
            self.close()
        return written

    def _write(self, step: Step) -> StepWritten | None:
        """The boundary on ``self._raw``; errors roll back and map as in :func:`write_step`."""
        raw = self._raw
        try:
            with db_errors():
                if not self._dialect.batch or len(step.events) > d.MAX_NUMBERED_ROWS:
                    return self._stepwise(step)
                written = self._boundary(step)
                if written is None and chain_starts(step.checkpoints):
                    # Superseded, or a patch whose predecessor is no longer the last
                    # checkpoint: the stepwise path tells them apart (keyframe).
                    written = self._stepwise(step)
                return written
        except BaseException as exc:
            self._fail(raw, exc)
            raise
        finally:
            self._used = time.monotonic()

    def _stepwise(self, step: Step) -> StepWritten | None:
        """:func:`write_step` in its own transaction (SQLite; PostgreSQL when a patch's
        predecessor moved), each statement waited for."""
        dialect, raw, cursor = self._dialect, self._raw, self._cursor
        explicit = dialect.begin is not None and not dialect.pipeline  # SQLite
        if explicit:
            cursor.execute(dialect.begin)
        written = write_step(cursor, dialect, step)
        if written is None:
            raw.rollback()
        elif explicit:  # a cached COMMIT, as in kneo.store.transaction
            cursor.execute("COMMIT")
        else:
            raw.commit()
        return written

    def _boundary(self, step: Step) -> StepWritten | None:
        """PostgreSQL: the boundary as one statement and a transaction of its own, in one
        round trip; no row returned means nothing was written."""
        dialect = self._dialect
        checkpoints, events = step.checkpoints, step.events
        cas = _params(dialect, step)[0]
        # Patches are stored as they come: only while the run's last checkpoint is the one
        # their chain starts from.
        starts = chain_starts(checkpoints)
        if len(starts) > 1:
            return None  # the caller stores them stepwise
        last = starts.pop() if starts else None
        guard = last is not None
        if guard:
            cas["k_last"] = last
        text = _step_text(dialect, guard, len(checkpoints), len(events))
        params = list(text.args(cas))
        for checkpoint in checkpoints:
            params += checkpoint.columns()
        for event in events:
            params += (event.event_type, event.step_id, event.payload)
        rows = dialect.execute_alone(self._raw, self._cursor, text.sql, params)
        if not rows:
            return None
        version, checkpoint_seq, trace_seq = (int(v) for v in rows[0])
        return StepWritten(version, checkpoint_seq, trace_seq)

    def _crowded(self) -> bool:
        """Whether the pool is past its steady size: then holding a connection would take
        an overflow one from other work (many runs at once), so it goes back after each step."""
        pool = self.engine.pool
        size, checkedout = getattr(pool, "size", None), getattr(pool, "checkedout", None)
        if not callable(size) or not callable(checkedout):  # a pool without those counts
            return False
        return bool(checkedout() > size())

    def _fail(self, raw: Any, exc: BaseException) -> None:
        _rollback(raw)
        if self._borrow is None:  # a borrowed connection goes back to its lender as is
            if is_unavailable(exc):  # broken: the pool must not hand it out again
                with contextlib.suppress(Exception):
                    raw.invalidate()
            self.close()

    def close(self) -> None:
        """Give the connection back to the pool (a no-op when none is held)."""
        raw, cursor, self._raw, self._cursor = self._raw, self._cursor, None, None
        if raw is None:
            return
        with contextlib.suppress(Exception):
            cursor.close()
        raw.close()


def _rollback(raw: Any) -> None:
    with contextlib.suppress(Exception):  # a broken connection: the pool discards it on close
        raw.rollback()
