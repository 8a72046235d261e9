"""Everything that differs between SQLite and PostgreSQL, one small class per database.

The store's queries are written once; they ask the dialect for the few things that cannot be
portable: how to connect, how to open a *write* transaction (SQLite needs ``BEGIN IMMEDIATE``
so two writers queue instead of failing mid-transaction), how to serialize migrations across
processes, and how to make a queue claim skip rows other workers hold.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from kneo.errors import ConfigError
from kneo.periodic import PeriodicTask
from kneo.store.errors import is_unavailable

log = logging.getLogger("kneo_serv.store")


class StoreDialect:
    """Base: the contract each database-specific class fulfils."""

    name: str = "base"
    #: A statement outside a transaction is its own, and running it so saves round trips
    #: (PostgreSQL: psycopg's ``BEGIN`` and the ``COMMIT`` are one each).
    autocommits_one_statement: bool = False

    def create_engine(self, url: sa.URL) -> Engine:
        raise NotImplementedError

    def connect_write(self, engine: Engine) -> Connection:
        """A connection whose next ``begin()`` takes the write lock up front (where needed)."""
        return engine.connect()

    def insert(self, table: sa.Table) -> Any:
        """A dialect ``INSERT`` supporting ``on_conflict_do_nothing``."""
        raise NotImplementedError

    def for_claim(self, stmt: sa.Select[Any]) -> sa.Select[Any]:
        """Lock the rows a claim selects, skipping those other transactions hold."""
        return stmt

    @contextlib.contextmanager
    def migration_lock(self, conn: Connection) -> Iterator[None]:
        """Hold an exclusive, cross-process lock for the rest of ``conn``'s transaction."""
        yield

    def start_background_work(
        self, engine: Engine, interval: float | None = None
    ) -> PeriodicTask | None:
        """Housekeeping a long-running process does off the request path (``None``: none)."""
        return None

    def write_lock(self, engine: Engine) -> contextlib.AbstractContextManager[object]:
        """Held around each write transaction, from before its ``BEGIN`` to after its end."""
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def write_connection(self, engine: Engine) -> Iterator[Any]:
        """A DBAPI connection for one raw write transaction (the caller commits or rolls
        back): here one of the pool's, given back afterwards."""
        raw = engine.raw_connection()
        try:
            yield raw
        except BaseException as exc:
            if is_unavailable(exc):  # broken: the pool must not hand it out again
                with contextlib.suppress(Exception):
                    raw.invalidate()
            raise
        finally:
            raw.close()

    def step_connection(
        self, engine: Engine
    ) -> Callable[[], contextlib.AbstractContextManager[Any]] | None:
        """Where a run's step writer borrows a connection for each commit; ``None``: it holds
        one of the pool's between a run's steps (a round trip saved per checkout)."""
        return None

    def dispose(self, engine: Engine) -> None:
        """Close what the dialect keeps for ``engine`` beyond its pool."""


#: SQLite copies the WAL back into the database file once it holds this many pages (4 KiB
#: each). SQLite's default, 1,000, made every ~50th run of a three-step workflow pay for a
#: checkpoint and its two fsyncs; with a larger WAL the pages a run rewrites at every step
#: (its row, the tables' last leaves) are copied once per checkpoint instead of once per
#: 1,000 pages. Long-running processes checkpoint in the background
#: (:data:`WAL_CHECKPOINT_SECONDS`), so there this is only the ceiling. With
#: ``synchronous=FULL`` SQLite's default stays: every commit fsyncs the WAL anyway, and a WAL
#: growing to this size makes each of those fsyncs also write the file's new size (measured:
#: 0.33 -> 0.45 ms per step).
WAL_AUTOCHECKPOINT_PAGES = 10_000

#: How often a service or worker process checkpoints the WAL from a background thread.
WAL_CHECKPOINT_SECONDS = 1.0


class SqliteDialect(StoreDialect):
    """SQLite: WAL, ``busy_timeout``, foreign keys; writers serialize with ``BEGIN IMMEDIATE``.

    pysqlite's own transaction handling is switched off (``isolation_level=None``) and the
    ``begin`` event emits ``BEGIN`` itself, so the store decides when the lock is taken.
    """

    name = "sqlite"

    def __init__(self, busy_timeout_ms: int = 30_000, synchronous: str = "normal") -> None:
        if synchronous not in ("normal", "full"):
            raise ConfigError(
                f"SQLite synchronous must be normal or full, got {synchronous!r}",
                variable="KNEO_SERV_SQLITE_SYNCHRONOUS",
            )
        self.busy_timeout_ms = busy_timeout_ms
        self.synchronous = synchronous

    def create_engine(self, url: sa.URL) -> Engine:
        engine = sa.create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": self.busy_timeout_ms / 1000},
            # One connection per thread is plenty; the file is the shared state.
            pool_size=5,
            max_overflow=10,
        )
        busy = self.busy_timeout_ms
        synchronous = self.synchronous.upper()

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute(f"PRAGMA busy_timeout = {int(busy)}")
            cur.execute("PRAGMA foreign_keys = ON")
            if url.database not in (None, "", ":memory:"):
                cur.execute("PRAGMA journal_mode = WAL")
                # NORMAL: WAL commits survive a process crash (kill -9) but not power loss;
                # FULL adds an fsync per commit (KNEO_SERV_SQLITE_SYNCHRONOUS).
                cur.execute(f"PRAGMA synchronous = {synchronous}")
                if synchronous == "NORMAL":
                    cur.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            mode = conn.get_execution_options().get("kneo_begin", "")
            conn.exec_driver_sql(f"BEGIN {mode}".strip())

        return engine

    def connect_write(self, engine: Engine) -> Connection:
        return engine.connect().execution_options(kneo_begin="IMMEDIATE")

    def write_lock(self, engine: Engine) -> _FileLock:
        """One lock per database file and process: SQLite takes one writer at a time anyway,
        and threads of one process that queue on a lock are handed the database as soon as
        it is free, where SQLite's busy handler would have them sleep and retry (1, 2, 5...
        up to 100 ms), which idled the process under load and set its p99 latency. Processes
        still queue on SQLite's own lock. A lock not obtained within the busy timeout is
        given up: the transaction then waits on SQLite as it would without it."""
        return _FileLock(_write_lock_for(engine), self.busy_timeout_ms / 1000)

    @contextlib.contextmanager
    def write_connection(self, engine: Engine) -> Iterator[Any]:
        """The process's writer connection for ``engine``, under the write lock.

        SQLite drops a connection's whole page cache whenever another connection has
        written, so pooled connections taking turns at writing each started cold (dozens of
        page reads per run). Writes are one at a time anyway (:meth:`write_lock`), so the
        hot write path (run create, step boundaries, outcome) goes through one connection
        that stays warm: 15-20 % more runs per second with 4 at once. When the lock does not
        come within the busy timeout, a pooled connection is used as before. A writer that
        failed with a driver error is replaced."""
        lock = self.write_lock(engine)
        with lock:
            if not lock.held:
                with super().write_connection(engine) as raw:
                    yield raw
                return
            writer = _WRITERS.get(engine)
            if writer is None:
                writer = engine.raw_connection()
                writer.detach()  # ours for good: closed by dispose(), never pooled
                _WRITERS[engine] = writer
            broken = (
                engine.dialect.loaded_dbapi.OperationalError,
                engine.dialect.loaded_dbapi.InterfaceError,
            )
            try:
                yield writer
            except BaseException as exc:  # callers map driver errors: look at the cause too
                if isinstance(exc, broken) or isinstance(exc.__cause__, broken):
                    _WRITERS.pop(engine, None)
                    with contextlib.suppress(Exception):
                        writer.close()
                raise

    def step_connection(
        self, engine: Engine
    ) -> Callable[[], contextlib.AbstractContextManager[Any]] | None:
        """Each step commit borrows the writer connection (:meth:`write_connection`)."""
        return lambda: self.write_connection(engine)

    def dispose(self, engine: Engine) -> None:
        with self.write_lock(engine):
            writer = _WRITERS.pop(engine, None)
            if writer is not None:
                with contextlib.suppress(Exception):
                    writer.close()

    def start_background_work(
        self, engine: Engine, interval: float | None = None
    ) -> PeriodicTask | None:
        """A thread checkpointing the WAL (``PASSIVE``: it never waits for, nor blocks,
        readers or writers), so requests do not pay for it. The sqlite3 module releases the
        GIL while SQLite copies pages and fsyncs, so it overlaps with Python work."""
        if engine.url.database in (None, "", ":memory:"):
            return None

        def checkpoint() -> None:
            raw = engine.raw_connection()
            try:
                raw.cursor().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            finally:
                raw.close()

        return PeriodicTask(
            "kneo-wal-checkpoint",
            interval or WAL_CHECKPOINT_SECONDS,
            checkpoint,
            logger=log,
            failure="WAL checkpoint failed",
        )

    def insert(self, table: sa.Table) -> Any:
        from sqlalchemy.dialects.sqlite import insert

        return insert(table)

    @contextlib.contextmanager
    def migration_lock(self, conn: Connection) -> Iterator[None]:
        # The connection was opened with connect_write: its BEGIN IMMEDIATE already holds the
        # database's single write lock until commit, which is exactly the lock we need.
        yield


#: Each SQLite engine's writer connection (:meth:`SqliteDialect.write_connection`).
_WRITERS: weakref.WeakKeyDictionary[Engine, Any] = weakref.WeakKeyDictionary()
_WRITE_LOCKS: dict[str, threading.Lock] = {}
_ENGINE_LOCKS: weakref.WeakKeyDictionary[Engine, threading.Lock] = weakref.WeakKeyDictionary()
_WRITE_LOCKS_GUARD = threading.Lock()


def _write_lock_for(engine: Engine) -> threading.Lock:
    """The process's write lock for ``engine``'s database file (shared by every engine on it;
    the file's real path is resolved once per engine, not per transaction)."""
    lock = _ENGINE_LOCKS.get(engine)
    if lock is not None:
        return lock
    import os

    database = engine.url.database or ""
    key = os.path.realpath(database) if database not in ("", ":memory:") else f"{id(engine)}"
    with _WRITE_LOCKS_GUARD:
        lock = _ENGINE_LOCKS[engine] = _WRITE_LOCKS.setdefault(key, threading.Lock())
    return lock


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


class PostgresDialect(StoreDialect):
    """PostgreSQL (psycopg 3): ``SKIP LOCKED`` claims and transaction-scoped advisory locks."""

    name = "postgresql"
    autocommits_one_statement = True

    def __init__(self, pool_size: int = 5, max_overflow: int = 10) -> None:
        self.pool_size = pool_size
        self.max_overflow = max_overflow

    def create_engine(self, url: sa.URL) -> Engine:
        from kneo.store.tables import use_postgresql_options

        use_postgresql_options()
        engine = sa.create_engine(
            url,
            pool_size=self.pool_size,
            max_overflow=self.max_overflow,
            connect_args={k: v for k, v in PG_CONNECT_ARGS.items() if k not in url.query},
        )
        _ping_idle_connections(engine)
        return engine

    def insert(self, table: sa.Table) -> Any:
        # Imported here: the PostgreSQL dialect is heavy and SQLite-only processes skip it.
        from sqlalchemy.dialects.postgresql import insert

        return insert(table)

    def for_claim(self, stmt: sa.Select[Any]) -> sa.Select[Any]:
        return stmt.with_for_update(skip_locked=True)

    @contextlib.contextmanager
    def migration_lock(self, conn: Connection) -> Iterator[None]:
        conn.execute(
            sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": advisory_key("kneo:migrate")}
        )
        yield


#: libpq settings so an unreachable server fails a request within seconds instead of
#: holding it (and a shutdown) for minutes: a connect gives up after 5 s, and TCP keepalives
#: find a silently dead connection in about 25 s. The database URL's query wins over each.
PG_CONNECT_ARGS: dict[str, int] = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}

#: A pooled connection idle at least this long is pinged before reuse.
PING_IDLE_SECONDS = 1.0


def _ping_idle_connections(engine: Engine) -> None:
    """``pool_pre_ping``, but only for connections that sat idle in the pool: a run checks a
    connection out once per transaction, back to back, and a round trip per checkout was a
    sizeable part of a short run. A connection returned less than ``PING_IDLE_SECONDS`` ago
    is reused as is; one that fails its ping is discarded and replaced (as pre-ping does),
    and a server lost in between fails that statement with ``database_unavailable``, after
    which SQLAlchemy invalidates the pool."""
    import time

    from sqlalchemy import event
    from sqlalchemy.exc import DisconnectionError

    @event.listens_for(engine, "checkin")
    def _checkin(dbapi_connection: Any, record: Any) -> None:
        record.info["kneo_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        since = record.info.get("kneo_idle_since")
        if since is not None and time.monotonic() - since < PING_IDLE_SECONDS:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError(f"stale pooled connection: {exc}") from exc
        if alive is False:
            raise DisconnectionError("stale pooled connection")


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for ``pg_advisory_*`` derived from a readable name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def dialect_for(url: sa.URL, *, sqlite_synchronous: str = "normal") -> StoreDialect:
    """The dialect class for a parsed URL; unsupported backends are a ``config_error``."""
    backend = url.get_backend_name()
    if backend == "sqlite":
        return SqliteDialect(synchronous=sqlite_synchronous)
    if backend == "postgresql":
        return PostgresDialect()
    raise ConfigError(
        f"unsupported database {backend!r}: use sqlite:///PATH or postgresql+psycopg://...",
        variable="KNEO_SERV_DATABASE_URL",
    )
