"""A real service app over a real store (SQLite or PostgreSQL) with rollouts in it, for the
rollout routes', CLI's and console's tests.

Keys: ``alice`` (operator, the environment's approver), ``mallory`` (operator, not an
approver), ``viewer`` (viewer) and ``intruder`` (admin of project ``team-b`` only)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from kneo.controller.rollout_pass import decide
from kneo.service import create_app
from kneo.settings import Settings
from tests.service.svc_helpers import ROOT, build_manager

KEYS = {
    "alice": "alice-rollout-key-1",
    "mallory": "mallory-rollout-key-2",
    "viewer": "viewer-rollout-key-3",
    "intruder": "intruder-rollout-key-4",
}
ROLES = {"alice": "operator", "mallory": "operator", "viewer": "viewer", "intruder": "admin@team-b"}
ADMIN_KEY = "admin-rollout-key-0"

STEPS = [
    {"set_weight": 10},
    {"analysis": {"min_runs": 5, "max_rejection_increase": 0.1}},
    {"pause": {}},
    {"set_weight": 100},
]


def auth(who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS.get(who, ADMIN_KEY)}"}


def begin(store: Any, rollout_id: str, *, bundle: str = "helper", env: str = "dev") -> Any:
    """A rollout of revision 2 over 1 at its first step (10 %), approvers ``alice``."""
    with store.transaction() as tx:
        return tx.begin_rollout(
            rollout_id,
            bundle_name=bundle,
            environment=env,
            stable_revision=1,
            canary_revision=2,
            canary_digest="sha256:" + "c" * 64,
            commit="abc123",
            weight=10,
            step=1,
            policy={"rollout": {"steps": STEPS}, "freeze": [], "approvers": ["alice"]},
        )


def count_runs(store: Any, rollout_id: str) -> None:
    """Some runs on each side: the canary's rejected more."""
    for track, rejected in (("canary", 3), ("stable", 1)):
        side = {"id": rollout_id, "track": track}
        with store.transaction() as tx:
            for i in range(6):
                tx.note_rollout(side, started=True)
                tx.note_rollout(side, status="succeeded", latency_ms=100 + 10 * i, cost=0.02)
            decided = ["rejected"] * rejected + ["approved"] * 2
            tx.note_rollout(side, decisions=[("approval", d) for d in decided])


def aborted(store: Any, rollout_id: str) -> None:
    decide(store, rollout_id, "abort", actor="alice", reason="seeded", now=store.clock.now())


class Service:
    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.manager = client.app.state.manager
        self.store = self.manager.store


@pytest.fixture(params=["sqlite", "postgres"])
def service(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Service]:
    monkeypatch.chdir(ROOT)
    url = request.getfixturevalue("pg_database")() if request.param == "postgres" else None
    keys = ";".join(f"{who}:{key}:{ROLES[who]}" for who, key in KEYS.items())
    settings = Settings.from_env(
        {
            "KNEO_SERV_AUTH_ENABLED": "true",
            "KNEO_SERV_API_KEYS": keys,
            "KNEO_SERV_ADMIN_API_KEY": ADMIN_KEY,
            "KNEO_SERV_PROFILES_PATH": str(tmp_path / "profiles.json"),
            "KNEO_SERV_CONSOLE_SECRET": "rollout-console-secret",
        }
    )
    manager = build_manager(settings, tmp_path, url)
    app = create_app(False, settings=settings, manager=manager, start_worker=False)
    client = TestClient(app, raise_server_exceptions=False)
    client.__enter__()
    made = client.post("/v1/projects", headers=auth("admin"), json={"name": "team-b"})
    assert made.status_code == 201, made.text
    try:
        yield Service(client)
    finally:
        client.__exit__(None, None, None)
        manager.close()
