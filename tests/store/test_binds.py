"""The raw write paths bind values exactly as the Core tables would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from kneo.store import tables as t
from kneo.store.dialects import chunks

SAMPLES: list[tuple[type, list[Any]]] = [
    (t.JSONText, [{"a": [1, "ü", None]}, [], "text", 3, {"at": datetime(2026, 1, 2, tzinfo=UTC)}]),
    (
        t.UTCDateTime,
        [
            datetime(2026, 11, 21, 17, 46, 14, 123456, tzinfo=UTC),
            datetime(2026, 11, 21, 17, 46, 14),  # naive means UTC
            datetime(2026, 11, 21, 19, 46, tzinfo=timezone(timedelta(hours=2))),
        ],
    ),
    (sa.Boolean, [True, False]),
    (sa.Integer, [0, 7, 2**40]),
    (sa.Float, [0.5, 3.0]),
    (sa.LargeBinary, [b"\x00raw"]),
    (sa.String, ["x", "ü"]),
]


def _samples(coltype: Any) -> list[Any]:
    return next(values for kind, values in SAMPLES if isinstance(coltype, kind))


@pytest.mark.parametrize(
    "dialect", [sqlite.pysqlite.dialect(), postgresql.psycopg.dialect()], ids=["sqlite", "pg"]
)
def test_value_binder_is_the_columns_bind_processor(dialect: sa.engine.Dialect) -> None:
    checked = 0
    for table in t.metadata.sorted_tables:
        for column in table.c:
            reference = column.type._cached_bind_processor(dialect)
            fast = t.value_binder(column.type, dialect)
            for value in _samples(column.type):
                want = reference(value) if reference is not None else value
                got = fast(value) if fast is not None else value
                assert got == want and type(got) is type(want), (table.name, column.name, value)
                checked += 1
    assert checked > 150


def test_chunks_are_whole_up_to_eight_then_powers_of_two() -> None:
    sizes = {n: [len(c) for c in chunks(list(range(n)))] for n in (0, 1, 8, 9, 15, 32, 77)}
    assert sizes == {
        0: [],
        1: [1],
        8: [8],
        9: [8, 1],
        15: [8, 7],
        32: [32],
        77: [32, 32, 8, 5],
    }
