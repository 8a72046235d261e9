"""Fixtures for the HTTP service: real app, real store, Starlette TestClient or uvicorn."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from svc_helpers import ROOT, LiveServer, build_manager, request_log  # noqa: F401 (fixture)

from kneo.service import create_app
from kneo.settings import Settings


@pytest.fixture
def make_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., TestClient]]:
    """``make_client(env={...}, worker=False)`` -> a started TestClient over the real app."""
    monkeypatch.chdir(ROOT)
    opened: list[tuple[TestClient, Any]] = []

    def factory(env: dict[str, str] | None = None, worker: bool = False) -> TestClient:
        environ = {"KNEO_SERV_PROFILES_PATH": str(tmp_path / "profiles.json"), **(env or {})}
        settings = Settings.from_env(environ)
        manager = build_manager(settings, tmp_path)
        app = create_app(False, settings=settings, manager=manager, start_worker=worker)
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        opened.append((client, manager))
        return client

    yield factory
    for client, manager in opened:
        client.__exit__(None, None, None)
        manager.close()


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    servers: list[LiveServer] = []

    def factory(env: dict[str, str] | None = None, args: tuple[str, ...] = ()) -> LiveServer:
        environ = {
            "KNEO_SERV_DATABASE_URL": f"sqlite:///{tmp_path / 'live.sqlite'}",
            "KNEO_SERV_PROFILES_PATH": str(tmp_path / "profiles.json"),
            "KNEO_SERV_WORKER_POLL_SECONDS": "0.1",
            **(env or {}),
        }
        server = LiveServer(environ, ROOT, tmp_path / "server.log", args).start()
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.stop()
