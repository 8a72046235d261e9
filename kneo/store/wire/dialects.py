"""Everything that differs between SQLite and PostgreSQL, one small class per database.

The store's queries are written once; they ask the dialect for the few things that cannot be
portable: how to connect, how to open a *write* transaction (SQLite needs ``BEGIN IMMEDIATE``
so two writers queue instead of failing mid-transaction), how to serialize migrations across
processes, and how to make a queue claim skip rows other workers hold.

A dialect instance is its store's own and caches the raw write path's compiled statements
(:class:`~kneo.store.wire.statement_cache.StatementCache`); it picks the executor that takes a write
transaction to the wire (:mod:`kneo.store.wire.executor`).
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from kneo.errors import ConfigError
from kneo.logs import get_logger
from kneo.periodic import PeriodicTask
from kneo.store.tables import use_postgresql_options
from kneo.store.wire.executor import (
    Executor,
    HeldConnection,
    PooledConnection,
    PostgresExecutor,
    SharedWriter,
    SqliteExecutor,
)
from kneo.store.wire.pg_hooks import ping_idle_connections, plan_per_call
from kneo.store.wire.statement_cache import StatementCache

log = get_logger("kneo_serv.store")


class StoreDialect(StatementCache):
    """Base: the contract each database-specific class fulfils."""

    name: str = "base"
    #: A statement outside a transaction is its own, and running it so saves round trips
    #: (PostgreSQL: psycopg's ``BEGIN`` and the ``COMMIT`` are one each).
    autocommits_one_statement: bool = False
    #: the cursor statements go through (psycopg's ``RawCursor``); ``None``: the DBAPI's own
    cursor_class: Any = None

    def _engine(self, engine: Engine) -> Engine:
        self.db = engine.dialect
        return engine

    def create_engine(self, url: sa.URL) -> Engine:
        raise NotImplementedError

    def executor(self, raw: Any) -> Executor:
        """What runs a write transaction on the DBAPI connection ``raw``."""
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

    def write_connection(
        self, engine: Engine, held: HeldConnection | None = None
    ) -> contextlib.AbstractContextManager[Any]:
        """A DBAPI connection for one write transaction: ``held``'s or a pooled one
        (:class:`~kneo.store.wire.executor.PooledConnection`)."""
        return PooledConnection(engine, held)

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


def enter_wal(cur: Any, timeout: float) -> None:
    """Put the file in WAL mode, retrying while another connection does the same.

    Two processes opening a new file at once both hold a shared lock and both want the
    exclusive one the switch needs; SQLite answers one of them "database is locked" at once
    instead of calling the busy handler (it would deadlock). The mode is the file's, so once
    anyone has switched, the check reads ``wal`` and nothing is retried.
    """
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        if str(cur.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
            return
        try:
            cur.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


class SqliteDialect(StoreDialect):
    """SQLite: WAL, ``busy_timeout``, foreign keys; writers serialize with ``BEGIN IMMEDIATE``.

    pysqlite's own transaction handling is switched off (``isolation_level=None``) and the
    ``begin`` event emits ``BEGIN`` itself, so the store decides when the lock is taken.
    """

    name = "sqlite"

    def __init__(self, busy_timeout_ms: int = 30_000, synchronous: str = "normal") -> None:
        super().__init__()
        if synchronous not in ("normal", "full"):
            raise ConfigError(
                f"SQLite synchronous must be normal or full, got {synchronous!r}",
                variable="KNEO_SERV_SQLITE_SYNCHRONOUS",
            )
        self.busy_timeout_ms = busy_timeout_ms
        self.synchronous = synchronous
        #: the process's writer connection and the file's write lock
        self.writer = SharedWriter()

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
                enter_wal(cur, busy / 1000)
                # NORMAL: WAL commits survive a process crash (kill -9) but not power loss;
                # FULL adds an fsync per commit (KNEO_SERV_SQLITE_SYNCHRONOUS).
                cur.execute(f"PRAGMA synchronous = {synchronous}")
                if synchronous == "NORMAL":
                    cur.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            if (mode := conn.get_execution_options().get("kneo_begin", "")) is not None:
                conn.exec_driver_sql(f"BEGIN {mode}".strip())  # None: a lone statement's own

        return self._engine(engine)

    def connect_write(self, engine: Engine) -> Connection:
        return engine.connect().execution_options(kneo_begin="IMMEDIATE")

    def executor(self, raw: Any) -> Executor:
        return SqliteExecutor(raw)

    def write_lock(self, engine: Engine) -> contextlib.AbstractContextManager[object]:
        """The file's write lock in this process (:meth:`SharedWriter.lock
        <kneo.store.wire.executor.SharedWriter.lock>`)."""
        return self.writer.lock(engine, self.busy_timeout_ms / 1000)

    def write_connection(
        self, engine: Engine, held: HeldConnection | None = None
    ) -> contextlib.AbstractContextManager[Any]:
        """The process's writer connection (``held`` is not needed: it stays warm for
        everyone), see :class:`~kneo.store.wire.executor.SharedWriter`."""
        return self.writer.connection(engine, self.busy_timeout_ms / 1000)

    def dispose(self, engine: Engine) -> None:
        self.writer.close(engine, self.busy_timeout_ms / 1000)

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


class PostgresDialect(StoreDialect):
    """PostgreSQL (psycopg 3): ``SKIP LOCKED`` claims and transaction-scoped advisory locks."""

    name = "postgresql"
    autocommits_one_statement = True
    numbered = True
    #: a write transaction that reads runs in psycopg's pipeline mode (where libpq has it)
    pipeline = False

    def __init__(
        self, pool_size: int = 5, max_overflow: int = 10, *, transaction_pooler: bool = False
    ) -> None:
        super().__init__()
        self.pool_size = pool_size
        self.max_overflow = max_overflow
        #: behind PgBouncer in transaction mode: each transaction may run on another server
        #: connection, so nothing may outlive one (prepared statements, ``LISTEN``)
        self.transaction_pooler = transaction_pooler

    def _connect_args(self, url: sa.URL) -> dict[str, Any]:
        args: dict[str, Any] = {k: v for k, v in PG_CONNECT_ARGS.items() if k not in url.query}
        if self.transaction_pooler:
            args["prepare_threshold"] = None  # psycopg prepares a statement run 5 times
        return args

    def create_engine(self, url: sa.URL) -> Engine:
        use_postgresql_options()
        engine = sa.create_engine(
            url,
            pool_size=self.pool_size,
            max_overflow=self.max_overflow,
            connect_args=self._connect_args(url),
        )
        ping_idle_connections(engine)
        plan_per_call(engine)
        import psycopg  # the only driver a PostgreSQL URL is given (open_store)

        self.pipeline = bool(psycopg.Pipeline.is_supported())
        self.cursor_class = psycopg.RawCursor
        return self._engine(engine)

    def executor(self, raw: Any) -> Executor:
        return PostgresExecutor(raw, self.cursor_class, pipeline=self.pipeline)

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


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for ``pg_advisory_*`` derived from a readable name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def dialect_for(
    url: sa.URL,
    *,
    sqlite_synchronous: str = "normal",
    pool_size: int = 15,
    transaction_pooler: bool = False,
) -> StoreDialect:
    """The dialect class for a parsed URL; unsupported backends are a ``config_error``.
    PostgreSQL opens at most ``pool_size`` connections."""
    backend = url.get_backend_name()
    if backend == "sqlite":
        return SqliteDialect(synchronous=sqlite_synchronous)
    if backend == "postgresql":
        kept = min(pool_size, 5)  # open when idle; the rest opened when busy, then closed
        return PostgresDialect(kept, pool_size - kept, transaction_pooler=transaction_pooler)
    raise ConfigError(
        f"unsupported database {backend!r}: use sqlite:///PATH or postgresql+psycopg://...",
        variable="KNEO_SERV_DATABASE_URL",
    )
