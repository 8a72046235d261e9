"""How a write transaction reaches the wire: the :class:`Executor`, one strategy per database.

:class:`~kneo.store.transaction.Transaction` decides *what* is written; its executor owns the
connection's state while it is: when the transaction begins, how statements go out, how it
commits, and how every way out (a failure in the middle or in the commit itself) leaves the
connection as it came: idle, transactional, out of any pipeline. It also says where the
connection comes from (:class:`PooledConnection`, :class:`HeldConnection`,
:class:`SharedWriter`).

- :class:`SqliteExecutor`: ``BEGIN IMMEDIATE`` at once (the write lock up front, so two
  writers queue instead of failing mid-transaction), each statement sent as it comes, and
  ``COMMIT`` from the cursor's statement cache.
- :class:`PostgresExecutor`, three speed-only strategies, each on its own so it can go alone:
  *batching* (writes nobody reads back wait and go out as one statement,
  :func:`compound`, with the next read or at commit; an update or a delete with no other
  write of its table), *alone* (a transaction that is one
  statement runs in autocommit: no ``BEGIN``, no ``COMMIT``, one round trip) and the
  *pipeline* (psycopg's pipeline mode from the first read: a round trip per read plus one
  for the commit, not one per statement).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from sqlalchemy.engine import Engine

from kneo.store.wire.driver_errors import is_unavailable

Statement = tuple[str, Sequence[Any]]


class Executor:
    """One write transaction on one DBAPI connection (``raw``, SQLAlchemy's pool proxy)."""

    def __init__(self, raw: Any, cursor: Any = None) -> None:
        self.raw = raw
        self.cursor = raw.cursor() if cursor is None else cursor
        #: committed (or written whole by :meth:`alone`): nothing may follow
        self.ended = False
        #: the text of the last statement whose result may be read (its rows' reader's key)
        self.last_sql = ""

    def check_open(self) -> None:
        if self.ended:
            raise RuntimeError("the transaction committed: nothing may follow it")

    def execute(self, sql: str, args: Sequence[Any]) -> Any:
        """Run a statement whose result is read (or that must follow what came before: an
        update); the cursor, to fetch from."""
        raise NotImplementedError

    def add(self, sql: str, args: Sequence[Any]) -> None:
        """A write nobody reads back (it may wait, see :class:`PostgresExecutor`)."""
        self.execute(sql, args)

    @property
    def untouched(self) -> bool:
        """Nothing sent and nothing waiting: the next statement may be the whole transaction
        (:meth:`alone`)."""
        return False

    def alone(self, sql: str, args: Sequence[Any]) -> list[Any] | None:
        """``sql`` as the whole transaction, committed, when it returns rows (the rows; the
        executor is then :attr:`ended`); ``None`` when it wrote nothing or the database has no
        such strategy, and the caller goes statement by statement."""
        return None

    def commit(self) -> None:
        raise NotImplementedError

    def abort(self, exc: BaseException) -> None:
        """After a failure (even in :meth:`commit`): leave what the transaction entered; the
        caller rolls the connection back."""

    def close(self) -> None:
        self.cursor.close()


class SqliteExecutor(Executor):
    """SQLite: the write lock taken up front, statements sent as they come."""

    def __init__(self, raw: Any) -> None:
        super().__init__(raw)
        try:
            self.cursor.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.cursor.close()
            raise

    def execute(self, sql: str, args: Sequence[Any]) -> Any:
        if self.ended:  # check_open(), inline: every statement of every step passes here
            self.check_open()
        self.cursor.execute(sql, args)
        self.last_sql = sql
        return self.cursor

    add = execute  # sent as it comes (the result unread)

    def commit(self) -> None:
        self.ended = True
        # The cursor's statement cache has it (pysqlite's commit() prepares "COMMIT" anew).
        self.cursor.execute("COMMIT")


class PostgresExecutor(Executor):
    """PostgreSQL (psycopg 3): batching, alone, and (``pipeline``) the pipeline."""

    def __init__(self, raw: Any, cursor_class: Any, *, pipeline: bool) -> None:
        """``cursor_class``: psycopg's ``RawCursor``, for texts numbered ``$1, $2 ...``."""
        super().__init__(raw, cursor_class(raw.driver_connection))
        self._pipeline = pipeline
        #: batching: writes nobody reads back, waiting to go out as one statement, and the
        #: tables they write (``True``: an update or delete among them)
        self._waiting: list[Statement] = []
        self._waiting_tables: dict[str, bool] = {}
        self._open = False  # the transaction began on the connection
        #: what leaving the transaction undoes, last in first out (:meth:`_enter_pipeline`)
        self._undo = contextlib.ExitStack()

    def execute(self, sql: str, args: Sequence[Any]) -> Any:
        self.check_open()
        self._send()
        self.cursor.execute(sql, args)
        self.last_sql = sql
        return self.cursor

    def add(self, sql: str, args: Sequence[Any]) -> None:
        """Wait with the other writes nobody reads back. The parts of one statement see one
        snapshot and none of each other's changes, so an update or a delete never waits
        with another write of its table: that write goes out first."""
        self.check_open()
        table, changes = _written(sql)
        waiting = self._waiting_tables.get(table)
        if waiting or (changes and waiting is not None):
            self._send()
        self._waiting.append((sql, args))
        self._waiting_tables[table] = changes or self._waiting_tables.get(table, False)

    @property
    def untouched(self) -> bool:
        return not self._open and not self._waiting

    def _send(self) -> None:
        """Begin if need be and send the waiting inserts (one statement)."""
        if not self._open:
            self._open = True
            if self._pipeline:
                self._enter_pipeline()
            # else psycopg begins on its own at the first statement
        if self._waiting:
            self.cursor.execute(*compound(self._waiting))
            self._waiting.clear()
            self._waiting_tables.clear()

    def _enter_pipeline(self) -> None:
        """Pipeline mode, in autocommit with a ``BEGIN`` of its own queued like the rest
        (psycopg's implicit one would wait for a round trip of its own). Leaving it (the
        commit, or :meth:`abort`) leaves the pipeline, which syncs (what failed in the queue
        raises there), then :func:`_transactional_again`."""
        driver = self.raw.driver_connection
        driver.autocommit = True
        self._undo.push(_transactional_again(driver))
        self._undo.enter_context(driver.pipeline())
        self.cursor.execute("BEGIN")

    def alone(self, sql: str, args: Sequence[Any]) -> list[Any] | None:
        with _autocommit(self.raw.driver_connection):
            self.cursor.execute(sql, args)
            found: list[Any] = self.cursor.fetchall()
        if not found:
            return None
        self.ended = True
        return found

    def commit(self) -> None:
        """Commit: the waiting inserts alone in autocommit when nothing else was sent, else
        after them; in the pipeline the ``COMMIT`` is queued and leaving it syncs once."""
        self.ended = True
        if not self._open:
            if self._waiting:
                with _autocommit(self.raw.driver_connection):
                    self.cursor.execute(*compound(self._waiting))
                self._waiting.clear()
            return
        self._send()
        if self._pipeline:
            self.cursor.execute("COMMIT")
            self._undo.close()
        else:
            self.raw.commit()

    def abort(self, exc: BaseException) -> None:
        with contextlib.suppress(Exception):  # a broken connection: the pool discards it
            self._undo.__exit__(type(exc), exc, exc.__traceback__)


def compound(statements: Sequence[Statement]) -> Statement:
    """Writes as one statement: all but the last as data-modifying ``WITH`` parts. They run
    together, see none of each other's changes and fail or commit together; foreign keys are
    checked at the statement's end, so a child row may go with its parent's insert. Each
    part's numbered parameters (``$1``) move past the parts before it."""
    if len(statements) == 1:
        return statements[0]
    texts, offset = [], 0
    for sql, args in statements:
        texts.append(_shifted(sql, offset) if offset else sql)
        offset += len(args)
    parts = ", ".join(f"w{i} AS ({sql})" for i, sql in enumerate(texts[:-1]))
    args = tuple(itertools.chain.from_iterable(a for _, a in statements))
    return f"WITH {parts} {texts[-1]}", args


_NUMBER = re.compile(r"\$(\d+)")
_WRITE = re.compile(r"(INSERT INTO|UPDATE|DELETE FROM) (\w+)")


@functools.lru_cache(maxsize=512)
def _written(sql: str) -> tuple[str, bool]:
    """The table a write statement writes, and whether it changes rows already there (an
    update or a delete)."""
    found = _WRITE.match(sql)
    if found is None:
        raise ValueError(f"not a write a transaction may batch: {sql[:60]!r}")
    return found.group(2), found.group(1) != "INSERT INTO"


@functools.lru_cache(maxsize=512)
def _shifted(sql: str, offset: int) -> str:
    """``sql`` with each ``$n`` parameter as ``$(n + offset)`` (a statement's texts and
    their places in a compound are few: each shift is made once)."""
    return _NUMBER.sub(lambda match: f"${int(match.group(1)) + offset}", sql)


def _transactional_again(driver: Any) -> Callable[..., None]:
    def leave(exc_type: type[BaseException] | None, *_: object) -> None:
        """Autocommit back off, after a rollback when something failed; the failure is what
        the caller sees (a connection that broke refuses these too: the pool discards it)."""
        if exc_type is None:
            driver.autocommit = False
            return
        with contextlib.suppress(Exception):
            driver.execute("ROLLBACK")
        with contextlib.suppress(Exception):
            driver.autocommit = False

    return leave


@contextlib.contextmanager
def _autocommit(driver: Any) -> Iterator[None]:
    """One statement as a transaction of its own, committed by the server at its Sync: one
    round trip (psycopg's implicit ``BEGIN`` would cost one of its own, even pipelined)."""
    driver.autocommit = True
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):  # refused only by a connection that broke
            driver.autocommit = False
        raise
    driver.autocommit = False


class LoneRead(Executor):
    """``with``: one read statement as a transaction of its own on a pooled DBAPI connection,
    then given back (PostgreSQL: in autocommit, one round trip). For a hot single-statement
    read outside a transaction: the statement cache's text on the driver, without
    SQLAlchemy's execution context and result objects per call (which were most of a run
    start's policy read). ``cursor_class``: psycopg's ``RawCursor``; ``None`` for sqlite3's
    own cursor (a ``SELECT`` begins no transaction there)."""

    def __init__(self, engine: Engine, cursor_class: Any = None) -> None:
        self._loan = PooledConnection(engine)
        self._cursor_class = cursor_class

    def __enter__(self) -> LoneRead:
        raw = self._loan.__enter__()
        try:
            cls = self._cursor_class
            super().__init__(raw, None if cls is None else cls(raw.driver_connection))
        except BaseException as exc:
            self._loan.__exit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    def execute(self, sql: str, args: Sequence[Any]) -> Any:
        self.ended = True  # one statement, whose rows the caller fetches
        if self._cursor_class is None:
            self.cursor.execute(sql, args)
        else:
            with _autocommit(self.raw.driver_connection):
                self.cursor.execute(sql, args)
        self.last_sql = sql
        return self.cursor

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        try:
            self.cursor.close()
        finally:
            self._loan.__exit__(exc_type, exc, tb)


# -- where the connection comes from --------------------------------------------------------
# Loans are classes, not generator context managers: every step boundary takes one, and a
# generator's set-up cost more than what it does.
class PooledConnection:
    """``with``: a DBAPI connection for one write transaction (the caller commits or rolls
    back): ``held``'s (see :class:`HeldConnection`), else one of the pool's, given back
    afterwards."""

    __slots__ = ("_engine", "_held", "_raw")

    def __init__(self, engine: Engine, held: HeldConnection | None = None) -> None:
        self._engine = engine
        self._held = held
        self._raw: Any = None

    def __enter__(self) -> Any:
        held = self._held
        self._raw = held.take() if held is not None else self._engine.raw_connection()
        return self._raw

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        held, raw = self._held, self._raw
        if held is not None:
            if exc is None:
                held.done()
            else:
                held.failed(exc)
            return
        try:
            if exc is not None:
                _discard_if_broken(raw, exc)
        finally:
            raw.close()


def _discard_if_broken(raw: Any, exc: BaseException) -> None:
    if is_unavailable(exc):  # broken: the pool must not hand it out again
        with contextlib.suppress(Exception):
            raw.invalidate()


#: A :class:`HeldConnection` left unused this long goes back to the pool before the next
#: transaction (whose checkout then pings it on PostgreSQL, see
#: :func:`kneo.store.wire.pg_hooks.ping_idle_connections`).
HOLD_IDLE_SECONDS = 1.0


class HeldConnection:
    """A pooled connection kept between one run's back-to-back write transactions (its step
    boundaries), for :class:`PooledConnection`.

    On PostgreSQL checking a connection out and back in (pool events, a fresh connection
    state) at every step cost about as much as the step's one statement; a run's steps come
    back to back, so its journal keeps one. It goes back to the pool when it sat unused for
    :data:`HOLD_IDLE_SECONDS` (a long step: the pool's checkout checks a stale one), after
    any error (the pool decides whether it is still usable), after a transaction that found
    the pool past its steady size (many runs at once: do not starve them), and on
    :meth:`close`. SQLite ignores it: its writes share the process's writer connection.
    Not thread-safe: the owner serializes its transactions (the journal holds its lock)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._raw: Any = None
        self._used = 0.0

    def take(self) -> Any:
        """The held connection, or a fresh one from the pool."""
        if self._raw is not None and time.monotonic() - self._used > HOLD_IDLE_SECONDS:
            self.close()
        if self._raw is None:
            self._raw = self.engine.raw_connection()
        return self._raw

    def done(self) -> None:
        """A transaction on it ended: keep it, unless the pool is crowded."""
        self._used = time.monotonic()
        pool = self.engine.pool
        size, checkedout = getattr(pool, "size", None), getattr(pool, "checkedout", None)
        if callable(size) and callable(checkedout) and checkedout() > size():
            self.close()

    def failed(self, exc: BaseException) -> None:
        """A transaction on it failed (and was rolled back): give it back."""
        if self._raw is not None:
            _discard_if_broken(self._raw, exc)
        self.close()

    def close(self) -> None:
        """Give the connection back to the pool (a no-op when none is held)."""
        raw, self._raw = self._raw, None
        if raw is not None:
            raw.close()


class SharedWriter:
    """SQLite: the process's one writer connection for a database file, under the file's
    write lock (:meth:`lock`).

    SQLite drops a connection's whole page cache whenever another connection has written,
    so pooled connections taking turns at writing each started cold (dozens of page reads
    per run). Writes are one at a time anyway, so the hot write path (run create, step
    boundaries, outcome) goes through one connection that stays warm: 15-20 % more runs per
    second with 4 at once. When the lock does not come within the busy timeout, a pooled
    connection is used as before. A writer that failed with a driver error is replaced."""

    def __init__(self) -> None:
        #: the process's write lock for the database file, once known
        self._lock: threading.Lock | None = None
        self._writer: Any = None

    def lock(self, engine: Engine, timeout: float) -> _FileLock:
        """One lock per database file and process: SQLite takes one writer at a time anyway,
        and threads of one process that queue on a lock are handed the database as soon as
        it is free, where SQLite's busy handler would have them sleep and retry (1, 2, 5...
        up to 100 ms), which idled the process under load and set its p99 latency. Processes
        still queue on SQLite's own lock. A lock not obtained within the busy timeout is
        given up (``timeout``, the busy timeout's): the transaction then waits on SQLite as
        it would without it."""
        if self._lock is None:
            database = engine.url.database or ""
            key = os.path.realpath(database) if database not in ("", ":memory:") else id(self)
            with _WRITE_LOCKS_GUARD:
                self._lock = _WRITE_LOCKS.setdefault(key, threading.Lock())
        return _FileLock(self._lock, timeout)

    def connection(self, engine: Engine, timeout: float) -> _WriterLoan:
        """``with``: the writer connection for ``engine`` under the write lock (a pooled one
        when the lock did not come within ``timeout``)."""
        return _WriterLoan(self, engine, timeout)

    def _take(self, engine: Engine) -> Any:
        """The writer connection (the caller holds the write lock)."""
        writer = self._writer
        if writer is None:
            writer = self._writer = engine.raw_connection()
            writer.detach()  # ours for good: closed by close(), never pooled
        return writer

    def _failed(self, engine: Engine, exc: BaseException) -> None:
        """A transaction on the writer failed: a driver error (callers map them: the cause
        too) means the connection may be broken, and the next one makes a new writer."""
        dbapi = engine.dialect.loaded_dbapi
        broken = (dbapi.OperationalError, dbapi.InterfaceError)
        if isinstance(exc, broken) or isinstance(exc.__cause__, broken):
            writer, self._writer = self._writer, None
            with contextlib.suppress(Exception):
                writer.close()

    def close(self, engine: Engine, timeout: float) -> None:
        with self.lock(engine, timeout):
            writer, self._writer = self._writer, None
            if writer is not None:
                with contextlib.suppress(Exception):
                    writer.close()


#: Each database file's write lock in this process, shared by every store on the file (not a
#: cache: two stores of one process on one file must take turns).
_WRITE_LOCKS: dict[Any, threading.Lock] = {}
_WRITE_LOCKS_GUARD = threading.Lock()


class _WriterLoan:
    """``with``: :meth:`SharedWriter.connection`'s connection, the write lock held."""

    __slots__ = ("_engine", "_lock", "_pooled", "_shared", "_timeout")

    def __init__(self, shared: SharedWriter, engine: Engine, timeout: float) -> None:
        self._shared = shared
        self._engine = engine
        self._timeout = timeout
        self._lock: threading.Lock | None = None
        self._pooled: PooledConnection | None = None

    def __enter__(self) -> Any:
        shared, engine = self._shared, self._engine
        lock = shared._lock
        if lock is None:
            lock = shared.lock(engine, self._timeout)._lock
        if not lock.acquire(timeout=self._timeout):
            self._pooled = PooledConnection(engine)
            return self._pooled.__enter__()
        self._lock = lock
        try:
            writer = shared._writer
            return writer if writer is not None else shared._take(engine)
        except BaseException:
            self._lock = None
            lock.release()
            raise

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if self._pooled is not None:
            self._pooled.__exit__(exc_type, exc, tb)
            return
        lock, self._lock = self._lock, None
        assert lock is not None
        try:
            if exc is not None:
                self._shared._failed(self._engine, exc)
        finally:
            lock.release()


class _FileLock:
    """``with``: the lock if it comes within ``timeout`` seconds, else nothing."""

    __slots__ = ("_held", "_lock", "_timeout")

    def __init__(self, lock: threading.Lock, timeout: float) -> None:
        self._lock = lock
        self._timeout = timeout
        self._held = False

    @property
    def held(self) -> bool:
        return self._held

    def __enter__(self) -> object:
        self._held = self._lock.acquire(timeout=self._timeout)
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._held:
            self._held = False
            self._lock.release()
