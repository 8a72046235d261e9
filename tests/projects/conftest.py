"""Two teams on one service, on SQLite and on PostgreSQL: the app, its keys and its projects."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from runtime_helpers import teams_service  # noqa: F401  (two teams on workers, limits)
from starlette.testclient import TestClient
from teams_helpers import KEYS, headers

from kneo.platform import create_platform
from kneo.service import create_app
from kneo.settings import Settings
from kneo.spec.project import ProjectContext
from kneo.store import open_store

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", "postgres"])
def two_teams(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    """A started service with projects ``team-a`` and ``team-b`` (created by the platform
    administrator over the API) beside ``default``."""
    monkeypatch.chdir(ROOT)
    url = request.getfixturevalue("pg_database")() if request.param == "postgres" else None
    env = {
        "KNEO_SERV_AUTH_ENABLED": "true",
        "KNEO_SERV_API_KEYS": ";".join(f"{n}:{k}:{r}" for n, (k, r) in KEYS.items()),
        "KNEO_SERV_PROFILES_PATH": str(tmp_path / "profiles.json"),
    }
    settings = Settings.from_env(env)
    store = open_store(url, settings=settings, state_dir=tmp_path / "state")
    manager = create_platform(settings, ProjectContext.discover(settings=settings), store=store)
    app = create_app(False, settings=settings, manager=manager, start_worker=False)
    client = TestClient(app, raise_server_exceptions=False)
    client.__enter__()
    for name in ("team-a", "team-b"):
        created = client.post("/v1/projects", headers=headers("plat"), json={"name": name})
        assert created.status_code == 201, created.text
    yield client
    client.__exit__(None, None, None)
    manager.close()
