"""An app that builds its own platform releases it when it stops."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from kneo.service import create_app
from kneo.settings import Settings


def test_an_app_closes_the_platform_it_built_so_the_wal_is_checkpointed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The app's own store is closed at shutdown: SQLite's last connection copies the WAL
    into the database file and removes it. Left open, the process exits with the WAL (the
    whole schema and every row written) for the next process to read back and verify."""
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "kneo.db"
    settings = Settings.from_env(
        {"KNEO_SERV_DATABASE_URL": f"sqlite:///{db}", "KNEO_SERV_AUTH_ENABLED": "false"}
    )
    app = create_app(settings=settings, start_worker=False)
    with TestClient(app) as client:
        assert client.get("/v1/runs").status_code == 200
        assert Path(f"{db}-wal").exists()  # the writes so far live in the WAL
    assert app.state.manager is None
    assert not Path(f"{db}-wal").exists()
    # the database file alone (its WAL ignored) holds what was written
    with sqlite3.connect(f"file:{db}?immutable=1", uri=True) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert {"runs", "continuations"} <= tables
