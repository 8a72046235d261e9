"""PostgreSQL connection hooks: when a statement is planned, and when a pooled connection is
pinged. Engine events the PostgreSQL dialect (:mod:`kneo.store.wire.dialects`) installs once per
engine; the listings mark their statements with :data:`PLAN_PER_CALL`.
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError

#: A pooled connection idle at least this long is pinged before reuse.
PING_IDLE_SECONDS = 1.0


#: The execution option (on a statement or connection) that has PostgreSQL plan the
#: statement with its parameters' values on every run: see :func:`plan_per_call`.
PLAN_PER_CALL = "kneo_plan_per_call"


def plan_per_call(engine: Engine) -> None:
    """Run statements marked :data:`PLAN_PER_CALL` unprepared, so PostgreSQL plans each run
    with its values (a *custom* plan).

    psycopg prepares a statement on its 5th run, and after five more PostgreSQL may cache a
    *generic* plan, made without the values: it estimates ``term = $1`` or ``status = $1``
    by the column's average and cannot see that this search word, label or status is rare.
    For a listing that is the difference between walking a few index rows and hashing (or
    scanning) a whole table: a two-word search went from 70 ms to 380 ms after its 10th
    call at 100,000 pending tasks (``bench/inbox_search.py``). Planning per call costs about
    0.1 ms; the listings it is asked for (``kneo.store.base.keyset_page``, ``count_rows``,
    the search's rarity counts) cost milliseconds."""
    if engine.dialect.driver != "psycopg":
        return

    @sa.event.listens_for(engine, "do_execute")
    def _execute(cursor: Any, statement: str, parameters: Any, context: Any) -> bool | None:
        if not context.execution_options.get(PLAN_PER_CALL):
            return None
        cursor.execute(statement, parameters, prepare=False)
        return True


def ping_idle_connections(engine: Engine) -> None:
    """``pool_pre_ping``, but only for connections that sat idle in the pool: a run checks a
    connection out once per transaction, back to back, and a round trip per checkout was a
    sizeable part of a short run. A connection returned less than ``PING_IDLE_SECONDS`` ago
    is reused as is; one that fails its ping is discarded and replaced (as pre-ping does),
    and a server lost in between fails that statement with ``database_unavailable``, after
    which SQLAlchemy invalidates the pool."""

    @sa.event.listens_for(engine, "checkin")
    def _checkin(dbapi_connection: Any, record: Any) -> None:
        record.info["kneo_idle_since"] = time.monotonic()

    @sa.event.listens_for(engine, "checkout")
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
