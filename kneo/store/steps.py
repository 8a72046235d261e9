"""The step-boundary write path: a compare-and-set that also allocates sequence numbers.

A step boundary is the hottest write Kneo makes (one per completed step, agent turn or tool
result), so it is written with three statements, all in the caller's transaction:

1. ``UPDATE runs SET state, version+1, updated_at, checkpoint_seq+1, trace_seq+n
   WHERE run_id AND version = expected RETURNING version, checkpoint_seq, trace_seq`` —
   the compare-and-set, the row lock and the sequence allocation in one round trip;
2. ``INSERT`` of the checkpoint row;
3. one multi-row ``INSERT`` of the buffered trace events (:func:`insert_rows`).

:class:`StepWriter` (a boundary in its own transaction) writes the same rows, on PostgreSQL
as one statement (:data:`_BOUNDARY`: the compare-and-set in a ``WITH``, the inserts
numbered from the row it returns) run as its own transaction (autocommit): one round trip
per step instead of five (``BEGIN``, update, insert, inserts, ``COMMIT``).

The SQL is plain text prepared once per dialect and executed with the driver's own
parameter style, so no statement is built, cache-keyed or compiled per call; values are
converted with the same type processors the Core tables use, so rows are byte-for-byte what
:meth:`Transaction.add_checkpoint` and :meth:`Transaction.add_trace_events` write.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy.engine import Connection, Dialect, Engine

from kneo import jsontext
from kneo.store import tables as t
from kneo.store.errors import db_errors, is_unavailable

#: Compact JSON text exactly as :class:`~kneo.store.tables.JSONText` stores it.
json_text: Callable[[Any], str] = jsontext.dumps


# Positional parameters (``?``; ``%s`` for psycopg): binding a tuple skips the per-name
# lookups of a dict, and the rows are built as tuples.
_CAS = (
    "UPDATE runs SET state = ?, version = version + 1, updated_at = ?, "
    "checkpoint_seq = checkpoint_seq + 1, trace_seq = trace_seq + ? "
    "WHERE run_id = ? AND version = ? "
    "RETURNING version, checkpoint_seq, trace_seq"
)
_CHECKPOINT = (
    "INSERT INTO checkpoints (run_id, sequence, type, step_id, status, encoding, payload, "
    "size_bytes, truncated, metadata, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_TRACE = "INSERT INTO trace_events (run_id, sequence, event_type, step_id, payload, created_at)"

#: A multi-row INSERT takes up to :data:`EXACT_ROWS` rows in one statement, and longer lists
#: in power-of-two chunks of at most :data:`MAX_ROWS_PER_INSERT`: a table has a dozen
#: statement texts at most, all kept prepared by the driver's statement cache.
EXACT_ROWS = 8
MAX_ROWS_PER_INSERT = 32


@functools.lru_cache(maxsize=256)
def _values_sql(head: str, width: int, count: int, mark: str) -> str:
    row = "(" + ", ".join([mark] * width) + ")"
    return f"{head} VALUES {', '.join([row] * count)}"


def insert_rows(
    execute: Callable[[str, tuple[Any, ...]], object],
    head: str,
    rows: Sequence[Sequence[Any]],
    mark: str = "?",
) -> None:
    """``head`` (``INSERT INTO t (a, b)``) for positional ``rows`` as multi-row ``VALUES``
    statements run with ``execute(sql, params)``: one execution (one step, one GIL release)
    per chunk instead of one per row as with ``executemany``. ``mark``: the driver's
    positional placeholder."""
    for chunk in _chunks(rows):
        sql = _values_sql(head, len(chunk[0]), len(chunk), mark)
        execute(sql, tuple(itertools.chain.from_iterable(chunk)))


def _chunks(rows: Sequence[Any]) -> Iterator[Sequence[Any]]:
    """``rows`` in chunks: all of them up to :data:`EXACT_ROWS`, else power-of-two sizes."""
    start, left = 0, len(rows)
    while left:
        size = (
            left if left <= EXACT_ROWS else min(MAX_ROWS_PER_INSERT, 1 << (left.bit_length() - 1))
        )
        yield rows[start : start + size]
        start, left = start + size, left - size


# PostgreSQL: a whole boundary in one statement. The inserts select from the updated row,
# so they take their sequences from it and write nothing when the compare-and-set found no
# row (no row returned: superseded). ``created_at`` is the row's new ``updated_at``, the
# same value the separate statements bind. {follows} guards a patch checkpoint (see
# StepCheckpoint.at): it is stored only on the checkpoint it follows, else nothing is
# written and StepWriter takes the stepwise path, which stores the keyframe.
_BOUNDARY = (
    "WITH cas AS (UPDATE runs SET state = %s, version = version + 1, updated_at = %s, "
    "checkpoint_seq = checkpoint_seq + 1, trace_seq = trace_seq + %s "
    "WHERE run_id = %s AND version = %s{follows} "
    "RETURNING run_id, version, checkpoint_seq, trace_seq, updated_at), "
    "cp AS (INSERT INTO checkpoints (run_id, sequence, type, step_id, status, encoding, "
    "payload, size_bytes, truncated, metadata, created_at) "
    "SELECT run_id, checkpoint_seq, %s, %s, %s, %s, %s, %s, %s, %s, updated_at FROM cas)"
    "{events} SELECT version, checkpoint_seq, trace_seq FROM cas"
)
_BOUNDARY_FOLLOWS = " AND checkpoint_seq = %s"
#: Trace events numbered from the ``cas`` row of a one-statement write (a boundary here, an
#: outcome in :mod:`kneo.store.rawtx`): ``count`` rows, given as :func:`numbered_rows`.
CAS_EVENTS = (
    ", ev AS (INSERT INTO trace_events (run_id, sequence, event_type, step_id, payload, "
    "created_at) SELECT cas.run_id, cas.trace_seq - {count} + e.n, e.event_type, e.step_id, "
    "e.payload, cas.updated_at FROM cas, {rows} AS e(n, event_type, step_id, payload))"
)


#: A one-statement write takes at most this many rows of a kind; longer lists go row by row
#: (:func:`insert_rows`), so a run makes a bounded number of statement texts.
MAX_NUMBERED_ROWS = 64


@functools.lru_cache(maxsize=256)
def numbered_rows(width: int, count: int) -> str:
    """``(VALUES (1, %s, ...), (2, %s, ...))``: ``count`` rows of ``width`` parameters, each
    led by its number, for an insert that numbers its rows from a ``RETURNING`` in the same
    statement. Plain parameters, not ``unnest`` of arrays: psycopg encodes an array element
    by element in Python, which cost more than the rest of the statement."""
    marks = ", ".join(["%s"] * width)
    return "(VALUES " + ", ".join(f"({n}, {marks})" for n in range(1, count + 1)) + ")"


@functools.lru_cache(maxsize=256)
def _boundary_text(follows: bool, events: int) -> str:
    """:data:`_BOUNDARY` guarding a patch's predecessor (``follows``), with ``events`` rows."""
    return _BOUNDARY.format(
        follows=_BOUNDARY_FOLLOWS if follows else "",
        events=CAS_EVENTS.format(count=events, rows=numbered_rows(3, events)) if events else "",
    )


@dataclass(frozen=True)
class _Prepared:
    cas: str
    checkpoint: str
    mark: str  # the driver's positional placeholder
    timestamp: Callable[[datetime], Any]
    begin: str | None  # what opens a write transaction on a raw DBAPI connection
    #: PostgreSQL's one-statement boundary (:func:`_boundary_text`); ``None`` on SQLite
    boundary: Callable[[bool, int], str] | None = None


_PREPARED: dict[str, _Prepared] = {}


def _prepared(dialect: Dialect) -> _Prepared:
    found = _PREPARED.get(dialect.name)
    if found is not None:
        return found
    sqlite = dialect.name == "sqlite"
    if sqlite:

        def style(sql: str) -> str:
            return sql
    else:  # psycopg takes %s for positional parameters

        def style(sql: str) -> str:
            return sql.replace("?", "%s")

    process = t.value_binder(t.runs.c.updated_at.type, dialect)
    found = _Prepared(
        style(_CAS),
        style(_CHECKPOINT),
        style("?"),
        process if process is not None else (lambda v: v),
        # pysqlite runs with isolation_level=None (see dialects): take the write
        # lock up front like Store.transaction; psycopg begins implicitly.
        "BEGIN IMMEDIATE" if sqlite else None,
        None if sqlite else _boundary_text,
    )
    _PREPARED[dialect.name] = found
    return found


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


def _params(
    sql: _Prepared,
    run_id: str,
    expected_version: int,
    now: datetime,
    state_text: str,
    checkpoint: StepCheckpoint,
    events: Sequence[StepEvent],
) -> tuple[
    tuple[Any, ...], Callable[[int], tuple[Any, ...]], Callable[[int], list[tuple[Any, ...]]]
]:
    stamp = sql.timestamp(now)
    cas = (state_text, stamp, len(events), run_id, expected_version)

    def checkpoint_row(sequence: int) -> tuple[Any, ...]:
        return (run_id, sequence, *checkpoint.at(sequence).columns(), stamp)

    def event_rows(last: int) -> list[tuple[Any, ...]]:
        first = last - len(events) + 1
        return [
            (run_id, first + index, event.event_type, event.step_id, event.payload, stamp)
            for index, event in enumerate(events)
        ]

    return cas, checkpoint_row, event_rows


def write_step(
    conn: Connection,
    *,
    run_id: str,
    expected_version: int,
    now: datetime,
    state_text: str,
    checkpoint: StepCheckpoint,
    events: Sequence[StepEvent],
) -> StepWritten | None:
    """Write one step boundary in the caller's transaction; the version and counters after
    it, or ``None`` when the run is missing or not at ``expected_version``."""
    sql = _prepared(conn.dialect)
    cas, checkpoint_row, event_rows = _params(
        sql, run_id, expected_version, now, state_text, checkpoint, events
    )
    row = conn.exec_driver_sql(sql.cas, cas).first()
    if row is None:
        return None
    version, checkpoint_seq, trace_seq = int(row[0]), int(row[1]), int(row[2])
    conn.exec_driver_sql(sql.checkpoint, checkpoint_row(checkpoint_seq))
    if events:
        insert_rows(conn.exec_driver_sql, _TRACE, event_rows(trace_seq), sql.mark)
    return StepWritten(version, checkpoint_seq, trace_seq)


class _Step(NamedTuple):
    """One boundary as :meth:`StepWriter.commit` takes it."""

    run_id: str
    expected_version: int
    now: datetime
    state_text: str
    checkpoint: StepCheckpoint
    events: Sequence[StepEvent]


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

    def __init__(
        self,
        engine: Engine,
        borrow: Callable[[], contextlib.AbstractContextManager[Any]] | None = None,
    ) -> None:
        self.engine = engine
        #: SQLite: each commit borrows the process's writer connection, under the write lock
        #: (:meth:`~kneo.store.dialects.StoreDialect.write_connection`), instead of holding one
        self._borrow = borrow
        self._sql = _prepared(engine.dialect)
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
        checkpoint: StepCheckpoint,
        events: Sequence[StepEvent],
    ) -> StepWritten | None:
        """One boundary in its own committed transaction; ``None`` when the run is missing
        or not at ``expected_version`` (nothing written)."""
        step = _Step(run_id, expected_version, now, state_text, checkpoint, events)
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

    def _write(self, step: _Step) -> StepWritten | None:
        """The boundary on ``self._raw``; errors roll back and map as in :func:`write_step`."""
        raw = self._raw
        try:
            with db_errors():
                if self._sql.boundary is None or len(step.events) > MAX_NUMBERED_ROWS:
                    return self._stepwise(step)
                written = self._boundary(step)
                if written is None and step.checkpoint.follows is not None:
                    # Superseded, or a patch whose predecessor is no longer the last
                    # checkpoint: the stepwise path tells them apart (keyframe).
                    written = self._stepwise(step)
                return written
        except BaseException as exc:
            self._fail(raw, exc)
            raise
        finally:
            self._used = time.monotonic()

    def _stepwise(self, step: _Step) -> StepWritten | None:
        """:func:`write_step`'s statements in their own transaction (SQLite; PostgreSQL when
        a patch's predecessor moved), each waited for."""
        sql, raw, cursor = self._sql, self._raw, self._cursor
        cas, checkpoint_row, event_rows = _params(sql, *step)
        if sql.begin:
            cursor.execute(sql.begin)
        cursor.execute(sql.cas, cas)
        rows = cursor.fetchall()
        if not rows:
            raw.rollback()
            return None
        version, checkpoint_seq, trace_seq = (int(v) for v in rows[0])
        cursor.execute(sql.checkpoint, checkpoint_row(checkpoint_seq))
        if step.events:
            insert_rows(cursor.execute, _TRACE, event_rows(trace_seq), sql.mark)
        if sql.begin:  # SQLite: a cached COMMIT, as in rawtx's transactions
            cursor.execute("COMMIT")
        else:
            raw.commit()
        return StepWritten(version, checkpoint_seq, trace_seq)

    def _boundary(self, step: _Step) -> StepWritten | None:
        """PostgreSQL: :data:`_BOUNDARY` as a transaction of its own, in one round trip; no
        row returned means nothing was written."""
        sql, raw, cursor = self._sql, self._raw, self._cursor
        assert sql.boundary is not None
        run_id, expected_version, now, state_text, checkpoint, events = step
        guard = checkpoint.follows is not None
        params: list[Any] = [
            state_text,
            sql.timestamp(now),
            len(events),
            run_id,
            expected_version,
        ]
        if guard:
            params.append(checkpoint.follows)
        params += checkpoint.columns()
        for event in events:
            params += (event.event_type, event.step_id, event.payload)
        rows = execute_alone(raw, cursor, sql.boundary(guard, len(events)), params)
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


def execute_alone(
    raw: Any, cursor: Any, sql: str, params: Sequence[Any], *, read: bool = True
) -> list[Any] | None:
    """PostgreSQL: ``sql`` as a transaction of its own (autocommit), committed by the server
    at its Sync: one round trip (psycopg's implicit ``BEGIN`` would cost one of its own, even
    pipelined). Its rows when ``read``."""
    driver = raw.driver_connection
    driver.autocommit = True
    try:
        cursor.execute(sql, params)
        return cursor.fetchall() if read else None
    finally:
        # Refused only by a connection that broke mid-statement; the pool discards it.
        with contextlib.suppress(Exception):
            driver.autocommit = False


def _rollback(raw: Any) -> None:
    with contextlib.suppress(Exception):  # a broken connection: the pool discards it on close
        raw.rollback()
