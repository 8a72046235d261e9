"""The write path's statements: built in Core, compiled once per database with only the
parameters callers pass (constants as literals), the rows of a one-statement write last."""

from __future__ import annotations

import re
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from kneo.store import Store
from kneo.store import tables as t
from kneo.store.wire import statements as st
from kneo.store.wire.statement_cache import StatementCache, chunks, named_sql


def _cache(db: sa.engine.Dialect, numbered: bool) -> StatementCache:
    cache = StatementCache()
    cache.db, cache.numbered = db, numbered
    return cache


DIALECTS = [
    pytest.param(lambda: _cache(sqlite.pysqlite.dialect(), False), id="sqlite"),
    pytest.param(lambda: _cache(postgresql.psycopg.dialect(), True), id="pg"),
]


@pytest.mark.parametrize("make", DIALECTS)
def test_an_outcomes_update_takes_only_named_parameters(make: Any) -> None:
    cache = make()
    update = st.run_update(["state", "status"], moves=True, release=True, guard=True)
    text = cache.text("u", lambda: update)
    assert set(text.names) == {
        "v_state", "v_status", "k_now", "k_checkpoints", "k_events", "k_owner", "k_run_id",
        "k_project", "k_expected", "k_last",
    }  # fmt: skip
    marks = re.findall(r"\$\d+", text.sql) if cache.numbered else re.findall(r"\?", text.sql)
    assert len(marks) == len(text.names)  # version + 1: a literal
    # PostgreSQL: SQLAlchemy's bind casts ($1::VARCHAR), as the live store compiles them
    assert ("::" in text.sql) == (cache.db.name == "postgresql")


def test_a_used_dialect_compiles_what_a_fresh_one_does() -> None:
    """A store's dialect has compiled SQLAlchemy's own statements before the write path
    compiles its texts: the texts must not depend on that."""
    used = postgresql.psycopg.dialect()
    sa.select(t.runs).where(t.runs.c.run_id == "x").compile(dialect=used)
    update = st.run_update(["state", "status"], moves=True, release=True, guard=True)
    assert named_sql(update, used) == named_sql(update, postgresql.psycopg.dialect())


def test_the_live_store_compiles_what_a_fresh_dialect_does(store: Store, backend: str) -> None:
    with store.engine.connect() as conn:  # the engine's own statements use its dialect
        conn.execute(sa.select(t.runs.c.run_id).where(t.runs.c.run_id == "x")).all()
    update = st.run_update(["state", "status"], moves=True, release=True, guard=True)
    live = store.dialect.text("live", lambda: update)
    fresh = _cache(type(store.dialect.db)(), store.dialect.numbered).text("live", lambda: update)
    assert live == fresh
    assert ("::" in live.sql) == (backend == "postgresql")


def test_a_one_statement_write_takes_its_rows_positionally_after_the_update() -> None:
    cache = _cache(postgresql.psycopg.dialect(), True)
    update = st.run_update(["state"], moves=True, returning=st.CAS_RETURNING)
    counts = (2, 3, 1, 1, 4, 1, 2, 5)  # a pause's task: its continuation, requests, terms
    text = cache.text("w", lambda: st.one_statement_write(update, counts))
    own = [len(st.cas_params(table)) for table in st.CAS_TABLES]
    rows = sum(count * width for count, width in zip(counts, own, strict=True))
    numbers = [int(n) for n in re.findall(r"\$(\d+)", text.sql)]
    assert numbers == list(range(1, len(text.names) + rows + 1))  # $1, $2 ... in order
    assert text.names == (
        "v_state", "k_now", "k_checkpoints", "k_events", "k_run_id", "k_project", "k_expected"
    )  # fmt: skip


@pytest.mark.parametrize("make", DIALECTS)
def test_a_statement_with_an_anonymous_parameter_is_refused_when_built(make: Any) -> None:
    cache = make()
    with pytest.raises(ValueError, match="not a plain named parameter"):
        cache.text("bad", lambda: sa.update(t.runs).values(version=t.runs.c.version + 1))


def test_row_parameters_must_come_last() -> None:
    cache = _cache(sqlite.pysqlite.dialect(), False)
    stmt = sa.select(t.runs.c.run_id).where(
        t.runs.c.run_id == sa.bindparam("row_x"),
        t.runs.c.version == sa.bindparam("k_v"),
        t.runs.c.project_id == sa.bindparam(st.PROJECT),
    )
    with pytest.raises(ValueError, match="must come last"):
        cache.text("bad", lambda: stmt)


@pytest.mark.parametrize("make", DIALECTS)
def test_a_statement_is_compiled_once_per_key(make: Any) -> None:
    cache = make()
    built: list[int] = []

    def build() -> Any:
        built.append(1)
        return st.select(t.runs, ["version"], "run_id", "run_id")

    first = cache.text("v", build)
    assert cache.text("v", build) is first and built == [1]


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
