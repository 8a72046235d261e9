"""Fixtures: a local receiver, and a platform on a fresh database of each backend."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kneo.platform import create_platform
from kneo.settings import Settings
from kneo.spec.project import ProjectContext

from .receiver import Receiver

REPO = Path(__file__).resolve().parents[2]
SECRET = "whsec-test-0123456789"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver().start()
    yield hook
    hook.stop()


def receivers_env(*receivers: dict[str, Any]) -> str:
    return json.dumps(list(receivers))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'kneo.sqlite'}"
    new: Callable[[], str] = request.getfixturevalue("pg_database")
    return new()


@pytest.fixture
def platform(tmp_path: Path, database_url: str) -> Callable[..., Any]:
    """``platform(**env)`` -> a PlatformManager with those settings; closed at teardown."""
    opened: list[Any] = []

    def make(**env: str) -> Any:
        environ = {"KNEO_SERV_DATABASE_URL": database_url, "NOTIFY_SECRET": SECRET, **env}
        settings = Settings.from_env(environ)
        project = ProjectContext.discover(cwd=tmp_path, settings=settings)
        manager = create_platform(settings, project)
        opened.append(manager)
        return manager

    yield make
    for manager in opened:
        manager.store.close()
