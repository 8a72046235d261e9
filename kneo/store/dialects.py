"""Everything that differs between SQLite and PostgreSQL, one small class per database.

The store's queries are written once; they ask the dialect for the few things that cannot be
portable: how to connect, how to open a *write* transaction (SQLite needs ``BEGIN IMMEDIATE``
so two writers queue instead of failing mid-transaction), how to serialize migrations across
processes, and how to make a queue claim skip rows other workers hold.

The raw write path (:mod:`kneo.store.transaction`) also takes its
statements from the dialect instance, which is its store's own: SQL text built once from the
:mod:`~kneo.store.tables` objects by the builders below, in the driver's positional
placeholder, and the column types' bind and result processors, resolved once. How a write
transaction reaches the wire is its executor's (:mod:`kneo.store.executor`), which the
dialect picks.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect, Engine

from kneo.errors import ConfigError
from kneo.logs import get_logger
from kneo.periodic import PeriodicTask
from kneo.store import tables as t
from kneo.store.executor import (
    Executor,
    HeldConnection,
    PostgresExecutor,
    SharedWriter,
    SqliteExecutor,
    pooled_connection,
)

log = get_logger("kneo_serv.store")

_NAMED = re.compile(r":([a-z_]+)")
_Proc = Callable[[Any], Any] | None

#: A multi-row INSERT takes up to :data:`EXACT_ROWS` rows in one statement, and longer lists
#: in power-of-two chunks of at most :data:`MAX_ROWS_PER_INSERT`: a table has a dozen
#: statement texts at most, all kept prepared by the driver's statement cache.
EXACT_ROWS = 8
MAX_ROWS_PER_INSERT = 32
#: A one-statement write takes at most this many rows of a kind; longer lists go as
#: multi-row inserts, so a run makes a bounded number of statement texts.
MAX_NUMBERED_ROWS = 64


class Text(NamedTuple):
    """A statement with positional placeholders and the parameter name each one takes."""

    sql: str
    names: tuple[str, ...]

    def args(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple([params[name] for name in self.names])


# -- SQL built from the tables (``:name`` parameters; StoreDialect.text makes them positional)
def columns(table: sa.Table) -> tuple[str, ...]:
    """The columns an insert writes: all but an autoincrementing key."""
    return tuple(c.name for c in table.c if c.autoincrement is not True)


def quoted(names: Sequence[str]) -> str:
    """Column names for a statement, each quoted (``commit`` is a keyword on SQLite)."""
    return ", ".join(f'"{n}"' for n in names)


def insert_sql(table: sa.Table, names: Sequence[str], suffix: str = "") -> str:
    """One row's ``INSERT`` of ``names`` (each bound as ``:name``), then ``suffix``."""
    marks = ", ".join(":" + n for n in names)
    return f"INSERT INTO {table.name} ({quoted(names)}) VALUES ({marks}){suffix}"


def select_sql(table: sa.Table, where: str) -> str:
    """``SELECT`` of all of ``table``'s columns where ``where`` holds."""
    return f"SELECT {quoted([c.name for c in table.c])} FROM {table.name} WHERE {where}"


def run_update(
    keys: Sequence[str],
    *,
    cas: bool = True,
    moves: bool = False,
    release: bool = False,
    guard: bool = False,
    returning: Sequence[str] = ("version", "checkpoint_seq", "trace_seq"),
) -> str:
    """The runs update every write path uses: bump ``version``, stamp ``updated_at``
    (``:k_now``), set ``keys`` (``:v_<key>``), where ``run_id = :k_run_id`` and, for a
    compare-and-set (``cas``), ``version = :k_expected``. ``moves``: the sequence counters
    advance by ``:k_checkpoints`` and ``:k_events`` (the rows the write adds); ``release``:
    the lease ends when ``:k_owner`` still holds it; ``guard``: only while the run's last
    checkpoint is ``:k_last`` (the one a patch follows)."""
    sets = ["version = version + 1", "updated_at = :k_now", *(f"{k} = :v_{k}" for k in keys)]
    if moves:
        sets += [
            "checkpoint_seq = checkpoint_seq + :k_checkpoints",
            "trace_seq = trace_seq + :k_events",
        ]
    if release:
        mine = "CASE WHEN lease_owner = :k_owner THEN NULL ELSE {0} END"
        sets += [f"{c} = {mine.format(c)}" for c in ("lease_owner", "lease_expires_at")]
    where = "run_id = :k_run_id" + (" AND version = :k_expected" if cas else "")
    where += " AND checkpoint_seq = :k_last" if guard else ""
    return f"UPDATE runs SET {', '.join(sets)} WHERE {where} RETURNING {', '.join(returning)}"


def numbered_rows(width: int, count: int) -> str:
    """``(VALUES (1, %s, ...), (2, %s, ...))``: ``count`` rows of ``width`` parameters, each
    led by its number, for an insert that numbers its rows from a ``RETURNING`` in the same
    statement. Plain parameters, not ``unnest`` of arrays: psycopg encodes an array element
    by element in Python, which cost more than the rest of the statement."""
    marks = ", ".join(["%s"] * width)
    return "(VALUES " + ", ".join(f"({n}, {marks})" for n in range(1, count + 1)) + ")"


#: What a row added by a one-statement write takes from the updated run (``cas``): the
#: rest of its columns are parameters. ``{count}``: how many rows of the kind it adds.
_FROM_CAS: dict[str, dict[str, str]] = {
    "checkpoints": {
        "run_id": "cas.run_id",
        "sequence": "cas.checkpoint_seq - {count} + r.n",
        "created_at": "cas.updated_at",
    },
    "trace_events": {
        "run_id": "cas.run_id",
        "sequence": "cas.trace_seq - {count} + r.n",
        "created_at": "cas.updated_at",
    },
    "audit_events": {"created_at": "cas.updated_at"},
    "notification_events": {"routed": "false", "created_at": "cas.updated_at"},
}
#: The tables a one-statement write adds rows to, in the order its parameters come.
CAS_TABLES = (t.checkpoints, t.trace_events, t.audit_events, t.notification_events)


def cas_params(table: sa.Table) -> tuple[str, ...]:
    """The columns of ``table`` a one-statement write takes as parameters, in order."""
    return tuple(c for c in columns(table) if c not in _FROM_CAS[table.name])


def one_statement_write(update: str, counts: Sequence[int]) -> str:
    """PostgreSQL: a runs update (:func:`run_update` returning ``run_id, version,
    checkpoint_seq, trace_seq, updated_at``) and the rows it adds, ``counts[i]`` of
    :data:`CAS_TABLES`' ``i``-th table, as one statement: each insert selects from the
    updated row, so the rows are numbered from its counters and nothing is written when the
    update finds no row."""
    sql = f"WITH cas AS ({update})"
    for index, (table, count) in enumerate(zip(CAS_TABLES, counts, strict=True)):
        if count:
            fixed, own, names = _FROM_CAS[table.name], cas_params(table), columns(table)
            if count == 1:  # the row's parameters inline, numbered as the counter itself
                exprs = [fixed.get(c, "%s").replace(" - {count} + r.n", "") for c in names]
                source = "cas"
            else:
                exprs = [fixed.get(c, f"r.{c}").format(count=count) for c in names]
                source = f"cas, {numbered_rows(len(own), count)} AS r(n, {', '.join(own)})"
            sql += (
                f", w{index} AS (INSERT INTO {table.name} ({', '.join(names)}) "
                f"SELECT {', '.join(exprs)} FROM {source})"
            )
    return sql + " SELECT version, checkpoint_seq, trace_seq FROM cas"


def chunks(rows: Sequence[Any]) -> Iterator[Sequence[Any]]:
    """``rows`` in chunks: all of them up to :data:`EXACT_ROWS`, else power-of-two sizes."""
    start, left = 0, len(rows)
    while left:
        size = (
            left if left <= EXACT_ROWS else min(MAX_ROWS_PER_INSERT, 1 << (left.bit_length() - 1))
        )
        yield rows[start : start + size]
        start, left = start + size, left - size


class StoreDialect:
    """Base: the contract each database-specific class fulfils, and the raw write paths'
    statements and processors (built once per instance, that is per store)."""

    name: str = "base"
    #: A statement outside a transaction is its own, and running it so saves round trips
    #: (PostgreSQL: psycopg's ``BEGIN`` and the ``COMMIT`` are one each).
    autocommits_one_statement: bool = False
    #: the driver's positional placeholder
    mark: str = "?"
    #: what a ``SELECT`` ends with to row-lock what it reads (SQLite: the write lock does)
    row_lock: str = ""

    def __init__(self) -> None:
        #: the engine's SQLAlchemy dialect, set by :meth:`create_engine`
        self.db: Dialect = sa.engine.default.DefaultDialect()
        self._texts: dict[Any, Text] = {}
        self._rows: dict[tuple[str, tuple[str, ...], int], str] = {}
        self._binds: dict[str, dict[str, _Proc]] = {}
        self._results: dict[tuple[str, str, Any], _Proc] = {}
        self._statements: dict[Any, Any] = {}
        #: spec JSON text by content digest: immutable once written, so caching it is right
        self.spec_texts: dict[str, str] = {}

    def _engine(self, engine: Engine) -> Engine:
        self.db = engine.dialect
        return engine

    def memo(self, key: Any, build: Callable[[], Any]) -> Any:
        """``build()`` (a Core statement) made once per ``key``: SQLAlchemy builds and
        cache-keys a statement made per call at every call."""
        found = self._statements.get(key)
        if found is None:
            found = self._statements[key] = build()
        return found

    def spec_text(self, digest: str, read: Callable[[], str | None]) -> str | None:
        """The stored JSON text of the spec with ``digest``: cached, else ``read()``."""
        text = self.spec_texts.get(digest)
        if text is None:
            text = read()
            if text is None:
                return None
            if len(self.spec_texts) >= 256:
                self.spec_texts.clear()
            self.spec_texts[digest] = text
        return text

    # -- the raw write paths' statements --------------------------------------------------
    def text(self, key: Any, build: Callable[[], str]) -> Text:
        """``build()``'s statement (``:name`` parameters) in the driver's positional style,
        built once per ``key``."""
        found = self._texts.get(key)
        if found is None:
            names: list[str] = []

            def mark(match: re.Match[str]) -> str:
                names.append(match.group(1))
                return self.mark

            sql = _NAMED.sub(mark, build())
            found = self._texts[key] = Text(sql, tuple(names))
        return found

    def insert_rows(
        self,
        execute: Callable[[str, tuple[Any, ...]], object],
        table: sa.Table,
        names: tuple[str, ...],
        rows: Sequence[Sequence[Any]],
    ) -> None:
        """Positional ``rows`` of ``table``'s ``names`` as multi-row ``VALUES`` inserts run
        with ``execute(sql, params)``: one execution per chunk (:func:`chunks`) instead of
        one per row as with ``executemany``."""
        for chunk in chunks(rows):
            key = (table.name, names, len(chunk))
            sql = self._rows.get(key)
            if sql is None:
                row = "(" + ", ".join([self.mark] * len(names)) + ")"
                head = f"INSERT INTO {table.name} ({', '.join(names)})"
                sql = self._rows[key] = f"{head} VALUES {', '.join([row] * len(chunk))}"
            execute(sql, tuple(itertools.chain.from_iterable(chunk)))

    def _procs(self, table: sa.Table) -> dict[str, _Proc]:
        """``table``'s bind processors by column (``None``: pass as is), resolved once."""
        found = self._binds.get(table.name)
        if found is None:
            found = self._binds[table.name] = {
                c.name: t.value_binder(c.type, self.db) for c in table.c
            }
        return found

    def binder(self, table: sa.Table, name: str) -> Callable[[Any], Any]:
        """What a column's bind processor does to a value that is not ``None``."""
        return self._procs(table)[name] or _same

    def bind(self, table: sa.Table, values: Mapping[str, Any]) -> dict[str, Any]:
        """``values`` as the driver takes them (the columns' bind processors)."""
        procs = self._procs(table)
        out = {}
        for name, value in values.items():
            proc = procs[name]
            out[name] = proc(value) if proc is not None and value is not None else value
        return out

    def result(self, table: sa.Table, description: Any, row: Sequence[Any]) -> dict[str, Any]:
        """A fetched ``row`` as values (the columns' result processors)."""
        out = {}
        for column, value in zip(description, row, strict=True):
            name, coltype = column[0], column[1]
            key = (table.name, name, coltype)
            try:
                proc = self._results[key]
            except KeyError:
                proc = self._results[key] = t.value_reader(table.c[name].type, self.db, coltype)
            out[name] = proc(value) if proc is not None else value
        return out

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
        (:func:`~kneo.store.executor.pooled_connection`)."""
        return pooled_connection(engine, held)

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

        return self._engine(engine)

    def connect_write(self, engine: Engine) -> Connection:
        return engine.connect().execution_options(kneo_begin="IMMEDIATE")

    def executor(self, raw: Any) -> Executor:
        return SqliteExecutor(raw)

    def write_lock(self, engine: Engine) -> contextlib.AbstractContextManager[object]:
        """The file's write lock in this process (:meth:`SharedWriter.lock
        <kneo.store.executor.SharedWriter.lock>`)."""
        return self.writer.lock(engine, self.busy_timeout_ms / 1000)

    def write_connection(
        self, engine: Engine, held: HeldConnection | None = None
    ) -> contextlib.AbstractContextManager[Any]:
        """The process's writer connection (``held`` is not needed: it stays warm for
        everyone), see :class:`~kneo.store.executor.SharedWriter`."""
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


def _same(value: Any) -> Any:
    return value


class PostgresDialect(StoreDialect):
    """PostgreSQL (psycopg 3): ``SKIP LOCKED`` claims and transaction-scoped advisory locks."""

    name = "postgresql"
    autocommits_one_statement = True
    mark = "%s"
    #: a write transaction that reads runs in psycopg's pipeline mode (where libpq has it)
    pipeline = False
    row_lock = " FOR UPDATE"

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
        from kneo.store.tables import use_postgresql_options

        use_postgresql_options()
        engine = sa.create_engine(
            url,
            pool_size=self.pool_size,
            max_overflow=self.max_overflow,
            connect_args=self._connect_args(url),
        )
        _ping_idle_connections(engine)
        if engine.dialect.driver == "psycopg":
            import psycopg

            self.pipeline = bool(psycopg.Pipeline.is_supported())
        return self._engine(engine)

    def executor(self, raw: Any) -> Executor:
        return PostgresExecutor(raw, pipeline=self.pipeline)

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
