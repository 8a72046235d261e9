"""Fixtures for the controller tests; the helpers live in :mod:`gitops_fixtures` so test
modules (and the end-to-end journey) import them by a name no other conftest shadows."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from gitops_fixtures import ENV_FILES, Keys, Repo

from kneo.clock import ManualClock


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    r = Repo(tmp_path / "git")
    for env, text in ENV_FILES.items():
        r.write(f"environments/{env}.yaml", text)
    r.commit("environments")
    return r


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    return Keys(tmp_path / "keys")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 3, 1, tzinfo=UTC))


@pytest.fixture(scope="session")
def registry_pg_url(pg_session_databases: Any) -> str:
    """One PostgreSQL database per test session (per xdist worker), emptied per test."""
    return str(pg_session_databases.new())


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path, clock: ManualClock) -> Iterator[Any]:
    from kneo.store import open_store

    if request.param == "postgres":
        url = request.getfixturevalue("registry_pg_url")
        import sqlalchemy as sa

        from kneo.store import tables

        s = open_store(url, clock=clock)
        with s.engine.begin() as conn:  # a clean registry for each test
            for table in (
                "bundle_revisions",
                "bundle_conditions",
                "bundle_suspensions",
                "bundle_pins",
                "blocked_digests",
                "controller_status",
                "promotion_approvals",
                "registry_changes",
                "registry_change_counter",
                "locks",
                "notifications",  # an earlier test's events would reach this one's router
                "notification_events",
                "code_files",
                "schedule_ticks",
                "schedule_states",
                "trigger_events",
                "queue",  # an earlier test's queued runs would be a worker's next claim here
            ):
                conn.execute(sa.delete(tables.metadata.tables[table]))
            conn.execute(sa.delete(tables.audit_events))
            # the policy in force of an earlier test's repository (kneo.controller.ratchet)
            meta = tables.metadata.tables["project_metadata"]
            conn.execute(sa.delete(meta).where(meta.c.key.startswith("controller.policy:")))
            approval_tasks = sa.select(tables.continuations.c.continuation_id).where(
                tables.continuations.c.workflow_kind == "promotion"
            )
            # their inbox search rows have no foreign key: a task of the same id (the same
            # digest's, in the next test) would find its terms taken
            terms = tables.continuation_terms
            conn.execute(sa.delete(terms).where(terms.c.continuation_id.in_(approval_tasks)))
            conn.execute(
                sa.delete(tables.continuations).where(
                    tables.continuations.c.workflow_kind == "promotion"
                )
            )
    else:
        s = open_store(f"sqlite:///{tmp_path / 'kneo.sqlite'}", clock=clock)
    yield s
    s.close()
