"""Rows of ``runs`` and ``continuations`` written with SQL, and what ``list_counts`` should
hold for them: the counter tests' helpers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from kneo.store import tables as t
from kneo.store.list_counts import list_counts

AT = datetime(2026, 3, 1, tzinfo=UTC)


def run_row(run_id: str, project_id: int, status: str, age_days: int = 0) -> dict[str, Any]:
    at = AT - timedelta(days=age_days)
    return {
        "run_id": run_id, "project_id": project_id, "status": status, "target": "function",
        "input_text": "x", "spec": {}, "state": {}, "version": 1, "cancel_requested": False,
        "created_at": at, "updated_at": at, "finished_at": None, "metadata": {},
        "checkpoint_seq": 0, "trace_seq": 0,
    }  # fmt: skip


def task_row(
    continuation_id: str, run_id: str, project_id: int, status: str, kind: str | None
) -> dict[str, Any]:
    return {
        "continuation_id": continuation_id, "run_id": run_id, "project_id": project_id,
        "status": status, "requests": [], "context": {}, "workflow_kind": kind, "version": 1,
        "created_at": AT, "updated_at": AT,
    }  # fmt: skip


def counters(conn: sa.Connection) -> dict[tuple[Any, ...], int]:
    """What the counters hold per project, room, status and kind (shards added up, zeros
    left out)."""
    c = list_counts.c
    key = (c.project_id, c.room, c.status, c.kind)
    summed = sa.select(*key, sa.func.sum(c.n)).group_by(*key)
    return {tuple(r[:4]): int(r[4]) for r in conn.execute(summed) if r[4]}


def counted_rows(conn: sa.Connection) -> dict[tuple[Any, ...], int]:
    """The same, counted from the rows (``COUNT(*) GROUP BY``)."""
    r, k = t.runs.c, t.continuations.c
    found: dict[tuple[Any, ...], int] = {}
    runs = sa.select(r.project_id, r.status, sa.func.count()).group_by(r.project_id, r.status)
    for project_id, status, n in conn.execute(runs):
        found[(project_id, "runs", status, "")] = n
    key = (k.project_id, k.status, k.workflow_kind)
    for project_id, status, kind, n in conn.execute(
        sa.select(*key, sa.func.count()).group_by(*key)
    ):
        whole = (project_id, "tasks", status, kind or "")
        found[whole] = found.get(whole, 0) + n
    return found
