"""Fixtures for the reviewer console: the real service app (API and console) over a real
store, and the service's request log."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from console_helpers import ROOT, console_env
from projects_helpers import Teams, open_teams
from starlette.testclient import TestClient
from svc_helpers import build_manager, request_log  # noqa: F401 (fixture)

from kneo.service import create_app
from kneo.settings import Settings


@pytest.fixture
def service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., tuple[Any, TestClient]]]:
    """``service(env_extra..., controller=None)`` -> (app, API client) over a fresh store."""
    monkeypatch.chdir(ROOT)
    opened: list[tuple[TestClient, Any]] = []

    def factory(controller: Any = None, store: Any = None, **extra: str) -> tuple[Any, TestClient]:
        environ = {"KNEO_SERV_PROFILES_PATH": str(tmp_path / "profiles.json"), **console_env()}
        settings = Settings.from_env({**environ, **extra})
        if store is None:
            manager = build_manager(settings, tmp_path)
        else:
            from kneo.platform import create_platform

            manager = create_platform(settings=settings, store=store)
        app = create_app(
            False, settings=settings, manager=manager, start_worker=False, controller=controller
        )
        api = TestClient(app, raise_server_exceptions=False)
        api.__enter__()
        opened.append((api, manager))
        return app, api

    yield factory
    for api, manager in opened:
        api.__exit__(None, None, None)
        manager.close()


@pytest.fixture(params=["sqlite", "postgres"])
def teams(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Teams]:
    """Two teams on one service (``projects_helpers.open_teams``), on SQLite and on
    PostgreSQL."""
    monkeypatch.chdir(ROOT)
    url = request.getfixturevalue("pg_database")() if request.param == "postgres" else None
    opened = open_teams(tmp_path, url)
    yield opened
    opened.close()
