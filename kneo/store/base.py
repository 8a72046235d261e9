"""What every part of the Store shares: the engine, the dialect, time, and error translation.

The store's concerns are facets (:class:`Facet`: runs in ``api``, the inbox in
``tasks.reads``, queue/locks/idempotency in ``coordination.queue_and_locks``, the registry,
maintenance, ...); they all build on this base so each module stays small and none imports
another's internals.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from kneo.clock import Clock
from kneo.documents import DocumentError, parse_json
from kneo.errors import InvalidRequest, NotFound
from kneo.settings import Settings
from kneo.store.column_types import UTCDateTime, epoch_micros
from kneo.store.coordination.wakeups import Wakeups
from kneo.store.wire import statements as st
from kneo.store.wire import tenancy
from kneo.store.wire.dialects import StoreDialect
from kneo.store.wire.driver_errors import db_errors
from kneo.store.wire.executor import LoneRead
from kneo.store.wire.pg_hooks import PLAN_PER_CALL


class StoreHandle(Protocol):
    """What a transaction uses of the store it belongs to (:class:`kneo.store.api.Store`):
    named here, below both, so the transaction modules never import the store's."""

    engine: Engine
    dialect: StoreDialect
    settings: Settings
    clock: Clock
    specs_held: HeldSpecs
    #: the database's wake-ups (a committed notification event wakes the dispatcher)
    wakeups: Wakeups
    #: the project the store is a view of: what its transactions write and read
    project_id: int


class HeldSpecs:
    """The ``specs`` digests committed through a store, so later runs of the same spec skip
    the INSERT. Correct across processes because ``specs`` rows are content-addressed and
    never deleted (retention prunes runs, not specs); bounded: a full set starts over."""

    LIMIT = 4096

    def __init__(self) -> None:
        self._digests: set[str] = set()

    def __contains__(self, digest: object) -> bool:
        return digest in self._digests

    def __len__(self) -> int:
        return len(self._digests)

    def hold(self, digests: Sequence[str]) -> None:
        """Remember ``digests``, which a transaction has just committed."""
        if len(self._digests) >= self.LIMIT:
            self._digests.clear()
        self._digests.update(digests)


class StoreBase:
    """Engine, dialect, settings and clock, plus read and write connection helpers; the
    project (``projects.id``) whose rows it reads and writes."""

    engine: Engine
    dialect: StoreDialect
    settings: Settings
    clock: Clock
    project_id: int

    @contextlib.contextmanager
    def _read(self, *, snapshot: bool = True, everywhere: str = "") -> Iterator[Connection]:
        """A read on a pooled connection: one transaction, so its statements share a snapshot.
        ``snapshot=False``: they need none (one statement, or rows that never change), so on
        PostgreSQL none is opened, which saves the ``BEGIN`` and ``COMMIT`` round trips.
        ``everywhere``: why its statements see every project (:mod:`~kneo.store.wire.tenancy`)."""
        with self._db_errors(), self.engine.connect() as conn:
            conn.execution_options(**tenancy.judged(everywhere))
            if not snapshot and self.dialect.autocommits_one_statement:
                yield conn.execution_options(isolation_level="AUTOCOMMIT")
                return
            if not snapshot:  # SQLite: no BEGIN, the statement is its own read transaction
                yield conn.execution_options(kneo_begin=None)
                return
            with conn.begin():
                yield conn

    def _read_alone(
        self, table: sa.Table, key: Any, build: Callable[[], Any], params: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        """The rows (``table``'s columns, result-processed) of one read statement, built and
        compiled once per ``key`` (the statement cache), run as a transaction of its own on
        the driver (:class:`~kneo.store.wire.executor.LoneRead`); a statement scoped to the
        project (:data:`~kneo.store.wire.statements.PROJECT`) gets this store's."""
        d = self.dialect
        text = d.text(key, build)
        if st.PROJECT in text.names:
            params = {**params, st.PROJECT: self.project_id}
        with self._db_errors(), LoneRead(self.engine, d.cursor_class) as ex:
            found = ex.execute(text.sql, text.args(params)).fetchall()
            return d.rows(table, ex, found)

    @contextlib.contextmanager
    def _write(self, *, one_statement: bool = False, everywhere: str = "") -> Iterator[Connection]:
        """A bare write transaction for primitives that commit on their own (claims, locks).
        ``one_statement``: the caller runs a single statement, which on PostgreSQL is then its
        own transaction (autocommit: one round trip instead of three). ``everywhere``: why
        its statements see every project (:mod:`~kneo.store.wire.tenancy`)."""
        options = tenancy.judged(everywhere)
        if one_statement and self.dialect.autocommits_one_statement:
            with (
                self._db_errors(),
                self.engine.connect().execution_options(
                    isolation_level="AUTOCOMMIT", **options
                ) as conn,
            ):
                yield conn
            return
        with (
            self._db_errors(),
            self.dialect.write_lock(self.engine),
            self.dialect.connect_write(self.engine).execution_options(**options) as conn,
            conn.begin(),
        ):
            yield conn

    @staticmethod
    def _db_errors() -> contextlib.AbstractContextManager[None]:
        """Translate driver failures at the boundary; Kneo errors pass through untouched."""
        return db_errors()


class Facet(StoreBase):
    """One concern of the store (``store.runs``, ``store.registry``, ...): its reads, or the
    primitives that commit on their own, on the store's own engine, dialect, settings and
    clock. A caller annotates with the facet's class itself (one implementation, its
    signatures written once) and the Store keeps only its lifecycle. A facet of
    a project's view (:meth:`kneo.store.api.Store.for_project`) reads and writes that
    project's rows only, its ``project_id`` bound as a statement parameter."""

    def __init__(self, store: StoreBase) -> None:
        self.engine = store.engine
        self.dialect = store.dialect
        self.settings = store.settings
        self.clock = store.clock
        self.project_id = store.project_id


SortOrder = Literal["asc", "desc"]
MAX_PAGE = 1000
MAX_CURSOR_CHARS = 1024

#: The largest ``offset`` a listing takes (every backend's integer holds it).
MAX_OFFSET = 2**31 - 1


def check_page(limit: int, offset: int) -> None:
    """Refuse paging values that would make a listing unbounded or meaningless."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidRequest(f"limit must be between 1 and {MAX_PAGE}, got {limit}", field="limit")
    check_offset(offset)


def count_reach(cap: int, offset: int, limit: int | None) -> int | None:
    """How far a listing counts: everything (``None``, an exact ``total``) when ``cap`` is
    ``0``, the default; else ``cap`` rows *past the page's end*, so whenever rows remain
    after the page its ``total`` says so (a client paging by ``offset`` until ``offset +
    count`` reaches ``total`` gets every row), at a cost bounded by the page's own depth."""
    if cap <= 0:
        return None
    return cap + offset + (limit or 0)


def check_offset(offset: int) -> None:
    if not 0 <= offset <= MAX_OFFSET:
        raise InvalidRequest(
            f"offset must be between 0 and {MAX_OFFSET}, got {offset}", field="offset"
        )


def check_order(sort_order: str) -> SortOrder:
    if sort_order not in ("asc", "desc"):
        raise InvalidRequest(
            f"sort_order must be 'asc' or 'desc', got {sort_order!r}", field="sort_order"
        )
    return sort_order  # type: ignore[return-value]


def ordered(column: Any, order: SortOrder) -> Any:
    return column.asc() if order == "asc" else column.desc()


def encode_cursor(order: str, *position: str | int) -> str:
    """An opaque keyset cursor: the sort order (``"asc"``, or ``"<column> desc"`` where a
    listing sorts by more than one column) and the sort key of a page's last row."""
    raw = json.dumps([order, *position], separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str, order: str, types: tuple[type, ...]) -> list[Any]:
    """The sort key :func:`encode_cursor` put in ``cursor``; ``invalid_request`` naming the
    ``cursor`` field when it is not one, or was made for the other sort order."""
    data = None
    if len(cursor) <= MAX_CURSOR_CHARS:  # before decoding: an oversized one is not ours
        with contextlib.suppress(ValueError, DocumentError):
            data = parse_json(
                base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)), source="cursor"
            )
    if not isinstance(data, list) or not data or not isinstance(data[0], str):
        raise InvalidRequest("cursor is not one this listing returned", field="cursor")
    if data[0] != order:
        raise InvalidRequest(
            f"cursor was made for sort order {data[0][:40]!r}, not {order!r}", field="cursor"
        )
    if len(data) != len(types) + 1 or not all(
        type(v) is t for v, t in zip(data[1:], types, strict=True)
    ):
        raise InvalidRequest("cursor is not one this listing returned", field="cursor")
    return data[1:]


def after_key(columns: tuple[Any, ...], values: tuple[Any, ...], order: SortOrder) -> Any:
    """Rows strictly after ``values`` in the order of ``columns`` (the last one unique): the
    keyset condition, written so the leading column's index bounds the scan."""
    (lead, *rest), (lead_value, *rest_values) = columns, values
    if not rest:
        return lead > lead_value if order == "asc" else lead < lead_value
    tail = after_key(tuple(rest), tuple(rest_values), order)
    if order == "asc":
        return sa.and_(lead >= lead_value, sa.or_(lead > lead_value, tail))
    return sa.and_(lead <= lead_value, sa.or_(lead < lead_value, tail))


def keyset_after(cursor: str | None, tag: str, columns: tuple[Any, ...]) -> list[Any]:
    """The ``WHERE`` condition that starts a page after ``cursor`` (none without one): the
    listing ``tag`` (its sort order, and sort column where there are several) must be the
    one the cursor was made for, its values of the types ``columns`` hold."""
    if cursor is None:
        return []
    types = tuple(int if _as_int(col) else str for col in columns)
    decoded = decode_cursor(cursor, tag, types)
    if any(
        (v.bit_length() > (55 if _is_time(col) else 62))  # 55 bits of µs: years 829-3111
        if isinstance(v, int)
        else ("\x00" in v or len(v) > 255)
        for col, v in zip(columns, decoded, strict=True)
    ):  # what no row holds, and a driver would refuse: not from this listing
        raise InvalidRequest("cursor is not one this listing returned", field="cursor")
    values = [
        datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=v) if _is_time(col) else v
        for col, v in zip(columns, decoded, strict=True)
    ]
    order: SortOrder = "desc" if tag.endswith("desc") else "asc"
    return [after_key(columns, tuple(values), order)]


def keyset_next(row: Any, tag: str, columns: tuple[Any, ...]) -> str:
    """The cursor of the page after ``row`` (a result mapping holding ``columns``)."""
    values = [row[col.name] for col in columns]
    return encode_cursor(tag, *(epoch_micros(v) if isinstance(v, datetime) else v for v in values))


def page_walk(
    stmt: sa.Select[Any],
    where: list[Any],
    columns: tuple[Any, ...],
    tag: str,
    cursor: str | None,
    *,
    limit: int,
    offset: int,
) -> sa.Subquery:
    """One walk of a page merged from several: ``stmt``'s rows matching ``where`` after
    ``cursor``, in the order of ``columns``, as many as the page at ``offset`` can take and
    one more (whether a next page exists). The merged rows are then paged by
    :func:`keyset_page`."""
    order: SortOrder = "desc" if tag.endswith("desc") else "asc"
    return (
        stmt.where(*where, *keyset_after(cursor, tag, columns))
        .order_by(*(ordered(col, order) for col in columns))
        .limit(offset + limit + 1)
        .subquery()
    )


def keyset_page(
    conn: Connection,
    table: sa.FromClause,
    where: list[Any],
    columns: tuple[Any, ...],
    tag: str,
    *,
    limit: int | None,
    offset: int = 0,
    cursor: str | None = None,
    count: bool = False,
    cap: int | None = None,
    count_order: tuple[Any, ...] | None = None,
) -> tuple[list[Any], int | None, bool, str | None]:
    """One page of ``table`` (or of a subquery) in the order of ``columns`` (ascending or
    descending as ``tag`` ends), starting after ``cursor``: its rows (every one when ``limit`` is ``None``), the
    matching total when ``count`` asks for it (counted up to ``cap``: then ``cap`` and
    ``True``, capped; a capped count walks ``count_order``, the filters' index order, by
    default ``columns``; an exact one has no order), and the cursor of the page after it.
    A page that ends the list from its start is its own total (:func:`page_total`)."""
    order: SortOrder = "desc" if tag.endswith("desc") else "asc"
    stmt = (
        sa.select(table)
        .where(*where, *keyset_after(cursor, tag, columns))
        .order_by(*(ordered(col, order) for col in columns))
        .execution_options(**{PLAN_PER_CALL: True})  # the values choose the index
    )
    if limit is not None:
        stmt = stmt.limit(limit + 1).offset(offset)
    found = list(conn.execute(stmt).mappings())
    total, capped = None, False
    if count:
        more = limit is not None and len(found) > limit
        known = page_total(len(found), more, offset, cursor)
        if known is not None:
            total = known
        else:
            by = columns if count_order is None else count_order
            total, capped = count_rows(conn, table, where, cap, by)
    if limit is None or len(found) <= limit:
        return found, total, capped, None
    return found[:limit], total, capped, keyset_next(found[limit - 1], tag, columns)


def page_total(rows: int, more: bool, offset: int, cursor: str | None) -> int | None:
    """The exact ``total`` a page itself tells, with no count: a page of ``rows`` from the
    start (no ``cursor``) with no row after it (not ``more``) ends the list, so the total is
    its offset and its rows (unless an ``offset`` past the end found none, which says
    nothing of how far the list goes). ``None``: only a count can tell."""
    if cursor is not None or more or (not rows and offset):
        return None
    return offset + rows


def count_rows(
    conn: Connection,
    table: sa.FromClause,
    where: list[Any],
    cap: int | None,
    order: tuple[Any, ...] = (),
) -> tuple[int, bool]:
    """How many rows of ``table`` match ``where``: exactly up to ``cap`` (the count stops
    after ``cap + 1`` rows, so its cost is bounded however many match), then ``(cap, True)``.
    An exact count (no ``cap``) has no ``ORDER BY``: the database counts the filter's index.
    ``order`` (a capped count's): the order the filters' indexes hold (the inbox's, the
    runs' ``created_at``, a term's), so the capped count walks an index rather than the
    table (a sequential scan that stops at ``cap`` is cheap while most rows match, and
    reads the whole table when few do), never a page's sort no index of the filter holds
    (``updated_at``: that sorted every run, issue 73)."""
    per_call = {PLAN_PER_CALL: True}  # the values choose the index (as the page's do)
    if cap is None:
        counted = sa.select(sa.func.count()).select_from(table).where(*where)
        return int(conn.execute(counted, execution_options=per_call).scalar_one()), False
    matching = sa.select(sa.literal(1)).select_from(table).where(*where).limit(cap + 1)
    if order:
        matching = matching.order_by(*order)
    capped = sa.select(sa.func.count()).select_from(matching.subquery())
    found = int(conn.execute(capped, execution_options=per_call).scalar_one())
    return min(found, cap), found > cap


def _is_time(column: Any) -> bool:
    return isinstance(column.type, UTCDateTime)


def _as_int(column: Any) -> bool:
    return _is_time(column) or isinstance(column.type, sa.Integer)


def given(*filters: tuple[Any, object]) -> list[Any]:
    """``column = value`` for each ``(column, value)`` whose value is given (not ``None``):
    a listing's optional equality filters."""
    return [column == value for column, value in filters if value is not None]


def not_found_error(kind: str, ident: object) -> NotFound:
    return NotFound(f"{kind} {ident!r} not found", resource=kind, id=str(ident))


def get_by_key(table: sa.Table, key: str) -> sa.TextualSelect:
    """``SELECT * FROM table WHERE key = :key AND project_id = :project_id`` as text typed by
    the table's columns: the same rows and value processing as ``select(table)``, but
    compiling it (once per process, on the first call: a fresh process's first resume) costs
    a tenth of a select's. A row of another project is not found."""
    names = ", ".join(c.name for c in table.c)
    where = f"{key} = :{key} AND project_id = :project_id"
    return sa.text(f"SELECT {names} FROM {table.name} WHERE {where}").columns(*table.c)


def one_of_cursor_offset(cursor: str | None, offset: int) -> None:
    """A page asks for a ``cursor`` or an ``offset``, not both (``invalid_request``)."""
    if cursor is not None and offset:
        raise InvalidRequest("use cursor or offset, not both", field="cursor")
