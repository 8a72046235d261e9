"""The counters of the lists clients count: ``list_counts`` (migration 0037).

One row per project, list (``room``: :data:`RUNS`, :data:`TASKS`), status, kind (a task's
``workflow_kind``, ``''`` for none and for every run) and shard, holding how many rows of
that list have them. Database triggers on ``runs`` and ``continuations`` keep it, in the
transaction that inserts or deletes a row or changes its status, project or kind (and only
then: a step's update of a run's row fires nothing), so retention, cascades and SQL written
by hand are counted as the store's own writes are. A list filtered by the project, and by
status and kind where they are counted, has ``total`` from these rows: one indexed read of a
few rows, whatever the number of runs, where a ``COUNT`` walked every matching row.

On SQLite a write holds the database, so one row per key (shard 0). On PostgreSQL a trigger
adds to a row of the key no other transaction holds (``FOR UPDATE SKIP LOCKED``; a new row,
at a random shard, when each is held): concurrent workers never wait on a counter, and never
deadlock over two of them in opposite orders. A key has as many rows as the most writers that
ever changed its count at once; readers add them up.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from kneo.store import tables as t

__all__ = ["RUNS", "TASKS", "counted", "counted_total", "list_counts"]

#: the list of runs (``GET /v1/runs``)
RUNS = "runs"
#: the list of human tasks (``GET /v1/human-tasks``: the ``continuations`` rows)
TASKS = "tasks"

list_counts = sa.Table(
    "list_counts",
    t.metadata,
    t.project_column(key=True),
    sa.Column("room", sa.String(8), primary_key=True),
    sa.Column("status", sa.String(32), primary_key=True),
    sa.Column("kind", sa.String(64), primary_key=True),
    sa.Column("shard", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("n", sa.BigInteger, nullable=False),
    sqlite_with_rowid=False,
)


def counted(
    conn: Connection,
    project_id: int,
    room: str,
    status: str | Sequence[str] | None,
    kind: str | None = None,
) -> int:
    """How many rows of ``room`` project ``project_id`` has (of ``status``, any of a
    sequence; of ``kind``): the sum of their counters, a walk of the key's few rows."""
    c = list_counts.c
    where = [c.project_id == project_id, c.room == room]
    if isinstance(status, str):
        where.append(c.status == status)
    elif status is not None:
        where.append(c.status.in_(list(status)))
    if kind is not None:
        where.append(c.kind == kind)
    total = sa.select(sa.func.coalesce(sa.func.sum(c.n), 0)).where(*where)
    return int(conn.execute(total).scalar_one())


def counted_total(
    conn: Connection,
    project_id: int,
    room: str,
    status: str | Sequence[str] | None,
    kind: str | None,
    cap: int | None,
) -> tuple[int, bool]:
    """:func:`counted` as a list's ``total`` and whether it is capped: above ``cap`` (the
    listing's reach, :func:`kneo.store.base.count_reach`), ``(cap, True)``, as a count
    that stopped there says."""
    total = counted(conn, project_id, room, status, kind)
    if cap is not None and total > cap:
        return cap, True
    return total, False
