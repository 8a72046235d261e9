"""What every part of the Store shares: the engine, the dialect, time, and error translation.

The store is assembled from a few mixins (runs and continuations in ``api``, queue/locks/
idempotency in ``coordination``, the registry, maintenance); they all build on this base so
each module stays small and none imports another's internals.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from kneo.clock import Clock
from kneo.errors import InvalidRequest, NotFound
from kneo.settings import Settings
from kneo.store.dialects import StoreDialect
from kneo.store.errors import db_errors

if TYPE_CHECKING:
    from kneo.store.api import Transaction


class StoreBase:
    """Engine, dialect, settings and clock, plus read and write connection helpers."""

    engine: Engine
    dialect: StoreDialect
    settings: Settings
    clock: Clock

    def transaction(self) -> contextlib.AbstractContextManager[Transaction]:
        raise NotImplementedError

    @contextlib.contextmanager
    def _read(self, *, snapshot: bool = True) -> Iterator[Connection]:
        """A read on a pooled connection: one transaction, so its statements share a snapshot.
        ``snapshot=False``: they need none (one statement, or rows that never change), so on
        PostgreSQL none is opened, which saves the ``BEGIN`` and ``COMMIT`` round trips."""
        with self._db_errors(), self.engine.connect() as conn:
            if not snapshot and self.dialect.autocommits_one_statement:
                yield conn.execution_options(isolation_level="AUTOCOMMIT")
                return
            with conn.begin():
                yield conn

    @contextlib.contextmanager
    def _write(self, *, one_statement: bool = False) -> Iterator[Connection]:
        """A bare write transaction for primitives that commit on their own (claims, locks).
        ``one_statement``: the caller runs a single statement, which on PostgreSQL is then its
        own transaction (autocommit: one round trip instead of three)."""
        if one_statement and self.dialect.autocommits_one_statement:
            with (
                self._db_errors(),
                self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn,
            ):
                yield conn
            return
        with (
            self._db_errors(),
            self.dialect.write_lock(self.engine),
            self.dialect.connect_write(self.engine) as conn,
            conn.begin(),
        ):
            yield conn

    @contextlib.contextmanager
    def _db_errors(self) -> Iterator[None]:
        """Translate driver failures at the boundary; Kneo errors pass through untouched."""
        with db_errors():
            yield


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


def encode_cursor(order: SortOrder, *position: str | int) -> str:
    """An opaque keyset cursor: the sort order and the sort key of a page's last row."""
    raw = json.dumps([order, *position], separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str, order: SortOrder, types: tuple[type, ...]) -> list[Any]:
    """The sort key :func:`encode_cursor` put in ``cursor``; ``invalid_request`` naming the
    ``cursor`` field when it is not one, or was made for the other sort order."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw) if len(cursor) <= MAX_CURSOR_CHARS else None
    except ValueError:
        data = None
    if (
        not isinstance(data, list)
        or len(data) != len(types) + 1
        or not all(type(v) is t for v, t in zip(data[1:], types, strict=True))
    ):
        raise InvalidRequest("cursor is not one this listing returned", field="cursor")
    if data[0] != order:
        raise InvalidRequest(
            f"cursor was made for sort order {data[0]!r}, not {order!r}", field="cursor"
        )
    return data[1:]


def after_key(columns: tuple[Any, Any], values: tuple[Any, Any], order: SortOrder) -> Any:
    """Rows strictly after ``values`` in the ``(column, tiebreak)`` order: the keyset
    condition, written so the leading column's index bounds the scan."""
    (lead, tie), (lead_value, tie_value) = columns, values
    if order == "asc":
        return sa.and_(lead >= lead_value, sa.or_(lead > lead_value, tie > tie_value))
    return sa.and_(lead <= lead_value, sa.or_(lead < lead_value, tie < tie_value))


def not_found_error(kind: str, ident: object) -> NotFound:
    return NotFound(f"{kind} {ident!r} not found", resource=kind, id=str(ident))
