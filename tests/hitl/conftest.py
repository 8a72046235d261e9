"""Fixtures for the human-in-the-loop acceptance tests.

``project`` is a temporary project holding a copy of ``examples/`` (so the example specs and
their ``examples.hitl_functions`` import as they do for a user). ``backend`` runs a test on
SQLite and, when ``KNEO_TEST_DATABASE_URL`` is set, on a fresh PostgreSQL database. ``cli``
runs ``kneo`` in a separate process against the same store.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kneo.clock import ManualClock
from kneo.platform import create_platform
from kneo.settings import Settings
from kneo.spec.project import ProjectContext
from tests.cli_zygote import KNEO

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    shutil.copytree(
        REPO / "examples",
        tmp_path / "examples",
        ignore=shutil.ignore_patterns("__pycache__", "keys"),
    )
    return tmp_path


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str | None:
    """``None`` (SQLite under the project's ``.kneo``) or a fresh PostgreSQL URL."""
    if request.param == "sqlite":
        return None
    new: Callable[[], str] = request.getfixturevalue("pg_database")
    return new()


def make_manager(
    project: Path, database_url: str | None = None, clock: ManualClock | None = None
) -> Any:
    env = {"KNEO_SERV_DATABASE_URL": database_url} if database_url else {}
    settings = Settings.from_env(env)
    context = ProjectContext.discover(cwd=project, settings=settings)
    return create_platform(settings, context, clock=clock)


@pytest.fixture()
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture()
def manager(project: Path, clock: ManualClock) -> Iterator[Any]:
    platform = make_manager(project, clock=clock)
    yield platform
    platform.store.close()


def cli_env(project: Path, database_url: str | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KNEO_")}
    env |= {
        "PYTHONPATH": str(REPO),
        "KNEO_HITL_COUNTER": str(project / "counter.txt"),
        "KNEO_DUMMY_CALL_LOG": str(project / "calls.jsonl"),
        **extra,
    }
    if database_url:
        env["KNEO_SERV_DATABASE_URL"] = database_url
    return env


def start_cli(
    project: Path,
    *args: str,
    database_url: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*KNEO, *args],
        cwd=project,
        env=cli_env(project, database_url, **(env or {})),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str], timeout: float = 60) -> tuple[int, Any, str]:
    out, err = proc.communicate(timeout=timeout)
    try:
        data = json.loads(out) if out.strip() else None
    except ValueError:
        data = None
    return proc.returncode, data, err


@pytest.fixture()
def cli(project: Path) -> Callable[..., tuple[int, Any, str]]:
    def run(*args: str, database_url: str | None = None) -> tuple[int, Any, str]:
        return finish(start_cli(project, *args, database_url=database_url))

    return run


def counter(project: Path) -> list[str]:
    path = project / "counter.txt"
    return path.read_text().split() if path.exists() else []
