"""Tenancy by construction (issue 74): a statement that reaches a project-owned table without
binding its project is refused before it runs, on both databases, whoever built it: a
Core statement on a store connection, a statement of the write path's cache, SQL text.
Only a statement (or connection) declared global passes without the project."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from kneo.store import Store
from kneo.store import tables as t
from kneo.store.base import Facet
from kneo.store.wire import statements as st
from kneo.store.wire import tenancy
from kneo.store.wire.tenancy import UnscopedStatement, everywhere, unscoped

from .helpers import new_run

PROJECT = sa.bindparam("project")
runs, tasks, requests = t.runs, t.continuations, t.continuation_requests


def judged(stmt: Any) -> list[str]:
    return unscoped(stmt, str(stmt))


@pytest.mark.parametrize(
    ("stmt", "missing"),
    [
        (sa.select(runs), ["runs"]),
        (sa.select(runs).where(runs.c.run_id == "r1"), ["runs"]),
        (sa.select(runs).where(runs.c.project_id == PROJECT), []),
        (sa.select(runs).where(runs.c.project_id.in_([1, 2])), []),
        (sa.select(sa.func.count()).select_from(runs).where(runs.c.project_id == 3), []),
        # a join on the key of a scoped table scopes the other side, either way round
        (
            sa.select(tasks, requests)
            .join_from(tasks, requests, requests.c.continuation_id == tasks.c.continuation_id)
            .where(tasks.c.project_id == PROJECT),
            [],
        ),
        (
            sa.select(tasks.c.run_id)
            .join_from(tasks, requests, requests.c.continuation_id == tasks.c.continuation_id)
            .where(requests.c.project_id == PROJECT),
            [],
        ),
        (
            sa.select(tasks, requests).join_from(
                tasks, requests, requests.c.continuation_id == tasks.c.continuation_id
            ),
            ["continuation_requests", "continuations"],
        ),
        # a correlated subquery on another project-owned table must name it too
        (
            sa.select(runs.c.run_id).where(
                runs.c.project_id == PROJECT,
                sa.exists().where(t.queue.c.status == "queued"),
            ),
            ["queue"],
        ),
        (sa.select(runs.alias("other")).where(runs.c.project_id == PROJECT), ["runs"]),
        (sa.update(runs).where(runs.c.run_id == "r").values(status="failed"), ["runs"]),
        (sa.update(runs).where(runs.c.project_id == PROJECT).values(status="failed"), []),
        (sa.delete(t.queue).where(t.queue.c.run_id == "r"), ["queue"]),
        (sa.insert(t.queue).values(run_id="r", status="queued"), ["queue"]),
        (sa.insert(t.queue).values(run_id="r", status="queued", project_id=PROJECT), []),
        (sa.select(t.checkpoints).where(t.checkpoints.c.run_id == "r"), []),  # no project column
        (sa.text("SELECT run_id FROM runs WHERE status = 'failed'"), ["runs"]),
        (sa.text("SELECT run_id FROM runs WHERE project_id = :p"), []),
        (sa.text("SELECT digest FROM specs"), []),
    ],
)
def test_a_statement_is_scoped_only_when_it_binds_each_table_s_project(
    stmt: Any, missing: list[str]
) -> None:
    tenancy.learn_tables(t.metadata.tables.values())
    assert judged(stmt) == missing


def test_the_write_path_s_builders_scope_every_project_owned_table() -> None:
    """The generic builders add the project themselves: a key alone never reaches another
    project's row, whoever calls them."""
    for stmt in (
        st.delete(t.continuation_requests, "continuation_id"),
        st.set_status(t.continuation_requests, "continuation_id"),
        st.select(t.runs, ["version"], "run_id", "run_id"),
        st.select_in(t.project_metadata, ["key"], "key", ["a", "b"]),
        st.select_row(t.continuations, "continuation_id"),
        st.select_run_and_task(),
    ):
        assert judged(stmt) == [], str(stmt)
        assert st.PROJECT in str(stmt)


def test_a_forgetful_read_is_refused_before_it_runs_and_a_global_one_passes(
    store: Store,
) -> None:
    """A new facet method that forgets the project raises instead of reading every
    project's runs; declared global (statement or connection), it runs."""
    mine = new_run(store)
    other = store.for_project(store.projects.create_project("other-team").id)
    theirs = new_run(other)

    class Forgetful(Facet):
        def every_run(self) -> list[str]:
            with self._read() as conn:
                return [row[0] for row in conn.execute(sa.select(t.runs.c.run_id))]

        def every_run_declared(self) -> list[str]:
            stmt = everywhere(sa.select(t.runs.c.run_id), "a test that sees every project")
            with self._read() as conn:
                return sorted(row[0] for row in conn.execute(stmt))

        def every_run_on_a_global_connection(self) -> list[str]:
            with self._read(everywhere="a test that sees every project") as conn:
                return sorted(row[0] for row in conn.execute(sa.select(t.runs.c.run_id)))

        def cached(self) -> Any:
            return self.dialect.text(("forgetful",), lambda: sa.delete(t.runs))

    facet = Forgetful(other)
    with pytest.raises(UnscopedStatement, match="runs"):
        facet.every_run()
    with pytest.raises(UnscopedStatement, match="runs"):
        facet.cached()
    assert facet.every_run_declared() == sorted([mine, theirs])
    assert facet.every_run_on_a_global_connection() == sorted([mine, theirs])
    assert [r.run_id for r in other.runs.list_runs().items] == [theirs]
