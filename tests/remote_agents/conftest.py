"""Fixtures for remote agents: the ``a2a-sdk``-served agent in a second process, a project
declaring its secret, and the spec shapes that call it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from kneo.platform import create_platform
from kneo.settings import Settings
from kneo.spec.project import ProjectContext
from tests import http_calls

SERVER = Path(__file__).with_name("a2a_agent_server.py")
TOKEN = "remote-colour-token-planted-9137"


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    (tmp_path / ".kneo").mkdir()
    config = {"version": "v1", "secrets": {"extra": {"colour_token": "COLOUR_TOKEN"}}}
    (tmp_path / ".kneo" / "config.yaml").write_text(json.dumps(config))
    return tmp_path


@pytest.fixture()
def a2a_agent(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """``start(*args) -> base URL`` of the SDK-served agent (its log: ``remote.log``)."""
    procs: list[subprocess.Popen[str]] = []

    def start(*args: str) -> str:
        proc = subprocess.Popen(
            [sys.executable, str(SERVER), "--log", str(tmp_path / "remote.log"), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=dict(os.environ),
        )
        procs.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("PORT "), line
        url = f"http://127.0.0.1:{int(line.split()[1])}"
        deadline = time.monotonic() + 20
        while True:
            try:
                http_calls.get(url + "/.well-known/agent-card.json", timeout=2)
                return url
            except httpx2.TransportError:
                assert time.monotonic() < deadline, "the A2A agent did not start"
                time.sleep(0.05)

    yield start
    for proc in procs:
        proc.kill()
        proc.wait(10)


def remote_log(project: Path) -> list[list[str]]:
    path = project / "remote.log"
    lines = path.read_text().splitlines() if path.exists() else []
    return [line.split(" ", 2) for line in lines]


def manager_for(project: Path, **env: str) -> Any:
    settings = Settings.from_env({"COLOUR_TOKEN": TOKEN, **env})
    return create_platform(settings, ProjectContext.discover(cwd=project, settings=settings))


def step_spec(url: str, **remote: Any) -> dict[str, Any]:
    """A workflow whose one step is the remote agent, followed by a local echo agent."""
    return {
        "version": "v1",
        "workflow": {
            "type": "sequential",
            "steps": [
                {"id": "remote", "kind": "agent", "ref": "colours"},
                {"id": "after", "kind": "agent", "ref": "echo"},
            ],
        },
        "components": {
            "agents": {
                "colours": {
                    "name": "colours",
                    "remote": {"card_url": url, "secret": "colour_token", **remote},
                },
                "echo": {"name": "echo", "model": {"provider": "dummy", "script": []}},
            }
        },
    }
