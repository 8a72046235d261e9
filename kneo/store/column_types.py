"""The column types Kneo's tables are made of: one stored form per value on every backend.

JSON is kept as compact text (one encoding on every backend) and timestamps are UTC-aware
on the way out whatever the database stores (:class:`UTCDateTime`). The raw read and write
paths use :func:`value_binder` and :func:`value_reader`, which know these types directly.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from kneo import jsontext


class _EpochMicros(sa.types.TypeEngine[int]):
    """SQLite's column for :class:`UTCDateTime`: declared ``DATETIME``, values pass as is."""

    __visit_name__ = "DATETIME"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def epoch_micros(value: datetime) -> int:
    """SQLite's stored form of a timestamp (naive means UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // _MICROSECOND


def _as_utc(value: datetime) -> datetime:
    """PostgreSQL's bound form of a timestamp (naive means UTC)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in Python; ``timestamptz`` on PostgreSQL, integer microseconds since
    the Unix epoch on SQLite.

    On SQLite an integer takes 6-8 bytes where SQLAlchemy's ISO text takes 26, orders the same
    way, and needs no string formatting or parsing per value. The column stays declared
    ``DATETIME`` (what migrations 0001-0004 created): that gives it NUMERIC affinity, so
    integers are stored as integers with no table rebuild, and new and migrated databases
    have the same schema. Migration 0005 converts the text values written before.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "sqlite":
            return _EpochMicros()
        return self.impl_instance

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | int | None:
        if value is None:
            return None
        return epoch_micros(value) if dialect.name == "sqlite" else _as_utc(value)

    def process_result_value(
        self, value: int | datetime | None, dialect: Dialect
    ) -> datetime | None:
        return _stored_utc(value)


def _stored_utc(value: int | datetime | None) -> datetime | None:
    """A stored timestamp (SQLite's integer, PostgreSQL's ``timestamptz``) as aware UTC."""
    if value is None:
        return None
    if isinstance(value, int):
        return _EPOCH + timedelta(microseconds=value)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class JSONText(TypeDecorator[Any]):
    """JSON stored as compact text, identical on SQLite and PostgreSQL."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return jsontext.dumps(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:
        return _stored_json(value)


def _stored_json(value: str | None) -> Any:
    """A stored JSON text as its value."""
    return None if value is None else json.loads(value)


def value_binder(
    coltype: sa.types.TypeEngine[Any], dialect: Dialect
) -> Callable[[Any], Any] | None:
    """What ``coltype``'s bind processor does to a value that is not ``None``, for the raw
    write paths (:meth:`~kneo.store.wire.statement_cache.StatementCache.bind`); ``None``: pass it
    as is.
    Kneo's own types directly: SQLAlchemy's wrapper of a :class:`TypeDecorator` adds two
    calls per value (their implementations have no processor of their own)."""
    if isinstance(coltype, JSONText):
        return jsontext.dumps
    if isinstance(coltype, UTCDateTime):
        return epoch_micros if dialect.name == "sqlite" else _as_utc
    return coltype.dialect_impl(dialect).bind_processor(dialect)


def value_reader(
    coltype: sa.types.TypeEngine[Any], dialect: Dialect, dbapi_type: Any
) -> Callable[[Any], Any] | None:
    """What ``coltype``'s result processor does to a fetched value, for the raw read paths
    (:meth:`~kneo.store.wire.dialects.StoreDialect.result`); ``None``: take it as is. Kneo's own
    types directly: adapting a :class:`TypeDecorator` to the dialect costs more than a
    first read's every other step."""
    if isinstance(coltype, JSONText):
        return _stored_json
    if isinstance(coltype, UTCDateTime):
        return _stored_utc
    return coltype.dialect_impl(dialect).result_processor(dialect, dbapi_type)
