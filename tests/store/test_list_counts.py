"""``list_counts``: the counters the database keeps of each project's runs and tasks by
status and kind (migration 0037), and the list totals read from them."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
import sqlalchemy as sa

from kneo.settings import RetentionDays, Settings
from kneo.store import RunQuery, Store, TaskQuery
from kneo.store import tables as t
from kneo.store.list_counts import list_counts

from .conftest import StoreFactory
from .list_count_rows import AT, counted_rows, counters, run_row, task_row

RUN_STATUSES = ("queued", "running", "paused", "succeeded", "failed", "cancelled")
TASK_STATUSES = ("pending", "decided", "expired", "cancelled")
KINDS = (None, "promotion", "child_run")


def _step(conn: sa.Connection, rng: random.Random, made: list[str]) -> None:
    """One random change of a run or a task: a create, a status, kind or project change, a
    delete (a run's tasks with it: the foreign key's cascade)."""
    r, k = t.runs.c, t.continuations.c
    choice = rng.randrange(7) if made else 0
    run_id = rng.choice(made) if made else ""
    if choice == 0:  # a run, with a task or two
        run_id = f"r{len(made)}_{rng.randrange(10**9)}"
        project = rng.choice((1, 2))
        conn.execute(sa.insert(t.runs).values(run_row(run_id, project, rng.choice(RUN_STATUSES), rng.randrange(30))))  # fmt: skip
        for n in range(rng.randrange(3)):
            task = task_row(f"{run_id}_c{n}", run_id, project, rng.choice(TASK_STATUSES), rng.choice(KINDS))  # fmt: skip
            conn.execute(sa.insert(t.continuations).values(task))
        made.append(run_id)
    elif choice == 1:
        conn.execute(sa.update(t.runs).where(r.run_id == run_id).values(status=rng.choice(RUN_STATUSES)))  # fmt: skip
    elif choice == 2:  # a step: no status changes
        conn.execute(sa.update(t.runs).where(r.run_id == run_id).values(version=r.version + 1))
    elif choice == 3:
        values = rng.choice(({"status": rng.choice(TASK_STATUSES)}, {"workflow_kind": rng.choice(KINDS)}))  # fmt: skip
        conn.execute(sa.update(t.continuations).where(k.run_id == run_id).values(**values))
    elif choice == 4:  # moved to the other project, its tasks with it
        conn.execute(sa.update(t.runs).where(r.run_id == run_id).values(project_id=3 - r.project_id))  # fmt: skip
        conn.execute(sa.update(t.continuations).where(k.run_id == run_id).values(project_id=3 - k.project_id))  # fmt: skip
    elif choice == 5:
        conn.execute(sa.delete(t.runs).where(r.run_id == run_id))
        made.remove(run_id)
    else:
        conn.execute(sa.delete(t.continuations).where(k.run_id == run_id))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_counters_are_the_rows_counted_after_any_changes(store: Store, seed: int) -> None:
    """Random creates, status, kind and project changes, deletes and retention purges across
    two projects: the counters always add up to ``COUNT(*) GROUP BY`` of the rows."""
    rng = random.Random(seed)
    made: list[str] = []
    for _ in range(12):
        with store.engine.begin() as conn:
            for _ in range(rng.randrange(1, 12)):
                _step(conn, rng, made)
        if rng.random() < 0.3:  # retention: old finished runs, old settled tasks
            days = rng.randrange(1, 30)
            store.maintenance.prune_retention(
                RetentionDays(runs_days=days, continuations_days=days), now=AT + timedelta(days=1)
            )
            with store.engine.connect() as conn:
                made = [row[0] for row in conn.execute(sa.select(t.runs.c.run_id))]
        with store.engine.connect() as conn:
            assert counters(conn) == counted_rows(conn)
    with store.engine.connect() as conn:
        assert sum(counters(conn).values()) > 0


def _set_counter(store: Store, room: str, status: str, kind: str, n: int) -> None:
    """Make a counter say ``n``: to tell a total read from the counters from a count."""
    c = list_counts.c
    with store.engine.begin() as conn:
        conn.execute(
            sa.delete(list_counts).where(c.room == room, c.status == status, c.kind == kind)
        )
        values = {"project_id": 1, "room": room, "status": status, "kind": kind, "n": n}
        conn.execute(sa.insert(list_counts).values(shard=0, **values))


def test_list_totals_by_project_status_and_kind_are_the_counters(
    store: Store, make_store: StoreFactory
) -> None:
    """By status (or none) and a task's kind alone, ``total`` is the counters' sum; another
    filter counts the rows; a page that ends the list is its own total; the cap caps it."""
    with store.engine.begin() as conn:
        for i in range(3):
            conn.execute(sa.insert(t.runs).values(run_row(f"r{i}", 1, "paused")))
            kind = "promotion" if i else None
            conn.execute(sa.insert(t.continuations).values(task_row(f"c{i}", f"r{i}", 1, "pending", kind)))  # fmt: skip
    _set_counter(store, "runs", "paused", "", 1000)
    _set_counter(store, "tasks", "pending", "promotion", 500)
    runs = store.runs
    assert runs.list_runs(RunQuery(limit=1)).total == 1000
    assert runs.list_runs(RunQuery(status="paused", limit=1, sort_by="updated_at")).total == 1000
    assert runs.list_runs(RunQuery(status=("paused", "failed"), limit=1)).total == 1000
    assert runs.list_runs(RunQuery(status="failed", limit=1)).total == 0
    assert runs.list_runs(RunQuery(limit=5)).total == 3  # the page ends the list
    assert runs.list_runs(RunQuery(limit=1, workflow_name=None)).total == 1000
    assert runs.list_runs(RunQuery(limit=1, session_id="s")).total == 0  # counted
    assert runs.list_runs(RunQuery(limit=1, has_error=False)).total == 3
    assert runs.list_runs(RunQuery(limit=1, count=False)).total is None
    tasks = store.tasks
    assert tasks.list_continuations(TaskQuery(limit=1)).total == 501  # the kinds added up
    assert tasks.list_continuations(TaskQuery(limit=1, kind="promotion")).total == 500
    assert tasks.list_continuations(TaskQuery(limit=1, workflow_kind="promotion")).total == 500
    assert tasks.list_continuations(TaskQuery(limit=1, sort="expiring")).total == 501
    assert tasks.list_continuations(TaskQuery(limit=1, run_id="r1")).total == 1  # counted
    assert tasks.list_continuations(TaskQuery(limit=1, environment="prod")).total == 0
    assert tasks.list_continuations(TaskQuery(limit=1, status=None, workflow_kind="x")).total == 0
    assert tasks.list_continuations(TaskQuery(limit=5)).total == 3
    capped = make_store(Settings.from_env({"KNEO_SERV_MAX_LIST_COUNT": "10"}))
    page = capped.runs.list_runs(RunQuery(limit=1, offset=1))  # 10 past the page's end
    assert (page.total, page.total_capped) == (12, True)
    page = capped.tasks.list_continuations(TaskQuery(limit=1, kind="promotion"))
    assert (page.total, page.total_capped) == (11, True)


def test_a_counter_held_by_one_writer_never_waits_another(store: Store) -> None:
    """Two transactions counting the same project and status at once: the second adds to a
    counter row of its own (PostgreSQL: ``SKIP LOCKED``) instead of waiting on the first's."""
    if store.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time")
    first = store.engine.connect()
    second = store.engine.connect()
    try:
        with first.begin():
            first.execute(sa.insert(t.runs).values(run_row("a", 1, "queued")))
            with second.begin():
                second.exec_driver_sql("SET LOCAL lock_timeout = '2s'")
                second.execute(sa.insert(t.runs).values(run_row("b", 1, "queued")))
    finally:
        first.close()
        second.close()
    with store.engine.connect() as conn:
        assert counters(conn) == {(1, "runs", "queued", ""): 2}
        shards = conn.execute(sa.select(sa.func.count()).select_from(list_counts)).scalar_one()
    assert shards == 2
