"""Migration 0026 (projects), on SQLite and PostgreSQL: a database at 0025 holding a paused
run the platform made, its pending task, registry rows, idempotency records and search terms
is upgraded with everything in the ``default`` project; the run still resumes through a
``PlatformManager``, and the inbox and the searches find what they found before.

The 0025 database is the platform's own, taken back to 0025 by 0026's downgrade (as
``tests/hitl/test_list_rows.py`` does for 0018): the shapes of 0025's tables, with rows
the platform wrote.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from kneo import Decision
from kneo.clock import ManualClock
from kneo.store import RunQuery, Store, TaskQuery
from kneo.store import tables as t
from kneo.store.migrate import HEAD_REVISION, _alembic_config, current_revision, upgrade
from tests.hitl.conftest import make_manager

REPO = Path(__file__).resolve().parents[2]
#: the tables whose rows 0026 gives a ``project_id`` (all of them the default project's)
OWNED = [table for table in t.metadata.sorted_tables if "project_id" in table.c]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copytree(
        REPO / "examples", tmp_path / "examples", ignore=shutil.ignore_patterns("__pycache__")
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("examples", None)
    return tmp_path


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, project: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{project / 'kneo.sqlite'}"
    new: Callable[[], str] = request.getfixturevalue("pg_database")
    return new()


@pytest.fixture
def managers(project: Path, database_url: str) -> Iterator[Callable[[], Any]]:
    opened: list[Any] = []

    def open_manager() -> Any:
        opened.append(make_manager(project, database_url, clock=ManualClock()))
        return opened[-1]

    yield open_manager
    for manager in opened:
        manager.store.close()


def _write_0025_rows(manager: Any, project: Path) -> tuple[Any, str]:
    """A paused run (with its task), a finished run with words, registry rows, an
    idempotency record and metadata, written by the platform."""
    spec = str(project / "examples" / "hitl_approval.yaml")
    paused = manager.run_from_spec(input_text="launch the zeppelin", spec_path=spec)
    store: Store = manager.store
    with store.transaction() as tx:
        done = tx.create_run(target="workflow", input_text="x", status="running")
        tx.update_run(done.run_id, status="succeeded", output_text="airship landed")
        tx.add_revision("bot", "dev", digest="sha256:1", status="active")
        tx.add_revision("bot", "prod", digest="sha256:1", status="pending_approval")
        tx.set_conditions("bot", "dev", [("Ready", "True", "Promoted", "")])
        tx.set_pin("bot", "dev", 1)
        tx.set_blocked("sha256:bad", True, reason="cve")
        tx.set_controller_status(last_fetched_commit="abc")
        tx.add_promotion_approval("bot", "prod", "sha256:1", approver="ann", decision="approved")
        tx.set_metadata("env_policy:dev", {"ok": True})
    store.idempotency.begin_idempotent("ci:create", "k1", "hash")
    store.idempotency.finish_idempotent("ci:create", "k1", (201, {"ok": 1}))
    return paused, done.run_id


def _seen(store: Store) -> dict[str, Any]:
    """What the inbox, the searches and the registry show."""
    tasks = store.tasks
    return {
        "inbox": [c.continuation_id for c in tasks.list_continuations().items],
        "search": [
            c.continuation_id for c in tasks.list_continuations(TaskQuery(q="zeppelin")).items
        ],
        "mine": [
            c.continuation_id
            for c in tasks.list_continuations(TaskQuery(assignee="reviewer")).items
        ],
        "counts": tasks.pending_counts_by_assignee(cap=10),
        "runs": [r.run_id for r in store.runs.list_runs(RunQuery(q="airship")).items],
        "registry": [(r.bundle_name, r.environment) for r in store.registry.list_registry().items],
        "pending": store.registry.list_revisions(status="pending_approval", heads=True),
        "changes": store.registry.registry_changes_since(0),
        "blocked": [b.digest for b in store.registry.holds().blocked.values()],
        "approvals": len(store.registry.list_promotion_approvals("bot", "prod")),
        "metadata": store.metadata.list_metadata(),
    }


def _downgrade_to_0025(store: Store) -> None:
    from alembic import command

    with (
        store.dialect.connect_write(store.engine) as conn,
        conn.begin(),
        store.dialect.migration_lock(conn),
    ):
        command.downgrade(_alembic_config(conn), "0025")
    with store.engine.connect() as conn:
        assert current_revision(conn) == "0025"
        inspector = sa.inspect(conn)
        assert not inspector.has_table("projects")
        assert "project_id" not in {c["name"] for c in inspector.get_columns("runs")}
        assert "id" in {c["name"] for c in inspector.get_columns("registry_change_counter")}


def test_a_database_at_0025_is_the_default_projects(
    managers: Callable[[], Any], project: Path
) -> None:
    first = managers()
    paused, done = _write_0025_rows(first, project)
    before = _seen(first.store)
    assert before["search"] == before["mine"] == [paused.continuation_id]
    assert before["runs"] == [done]
    _downgrade_to_0025(first.store)
    assert upgrade(first.store.engine, first.store.dialect) == HEAD_REVISION

    manager = managers()  # a fresh process's view of the upgraded database
    store: Store = manager.store
    with store.engine.connect() as conn:
        projects = conn.execute(sa.select(t.projects.c.id, t.projects.c.name)).all()
        assert [tuple(row) for row in projects] == [(1, "default")]
        for table in OWNED:
            found = conn.execute(sa.select(table.c.project_id).distinct()).scalars().all()
            assert set(found) <= {1}, table.name
    assert _seen(store) == before
    replay = store.idempotency.begin_idempotent("ci:create", "k1", "hash")
    assert (replay.state, replay.response) == ("replay", {"ok": 1})
    resumed = manager.resume(paused.continuation_id, Decision(paused.request_id, "approved"))
    assert resumed.status == "succeeded"
    assert store.runs.get_run(paused.run_id).status == "succeeded"
    assert store.tasks.list_continuations().items == []
    with store.transaction() as tx:  # the default project's registry goes on numbering
        assert tx.add_revision("bot", "dev", digest="sha256:2", status="active").revision == 2
    assert store.registry.registry_changes_since(0)[0] == before["changes"][0] + 1
    created = store.projects.create_project("team-a")  # new ids after the default's
    assert created.id == 2


def test_the_downgrade_refuses_while_another_project_exists(
    managers: Callable[[], Any],
) -> None:
    store: Store = managers().store
    store.projects.create_project("team-a")
    with pytest.raises(RuntimeError, match="besides 'default'"):
        _downgrade_to_0025(store)
    with store.engine.connect() as conn:
        assert current_revision(conn) == HEAD_REVISION
