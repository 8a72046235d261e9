"""Fixtures for the MCP tests: the SDK-written server in ``mcp_fixture.py`` over stdio (a
server the project declares, by name in the spec) and over HTTP (a process on an ephemeral
port), a project to run in, and the counter file every tool call appends to."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURE = Path(__file__).with_name("mcp_fixture.py")


def fixture_command(project: Path) -> list[str]:
    return [sys.executable, str(FIXTURE), "stdio", "--counter", str(project / "mcp_calls.txt")]


def declare_servers(project: Path) -> None:
    """The project's config: the fixture server as ``fixture`` (and, given the declared
    secret ``mcp_fixture_token``, as ``fixture-with-secret``), the HTTP token as a secret."""
    config = {
        "version": "v1",
        "secrets": {
            "extra": {"mcp_fixture_token": "MCP_FIXTURE_TOKEN", "fixture_token": "FIXTURE_TOKEN"}
        },
        "mcp_servers": {
            "fixture": {"command": fixture_command(project)},
            "fixture-with-secret": {
                "command": fixture_command(project),
                "secret": "mcp_fixture_token",
            },
        },
    }
    (project / ".kneo" / "config.yaml").write_text(json.dumps(config))


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    (tmp_path / ".kneo").mkdir()
    declare_servers(tmp_path)
    return tmp_path


def counted(project: Path) -> list[str]:
    """The tool calls the fixture server really ran, in order."""
    path = project / "mcp_calls.txt"
    return path.read_text().split() if path.exists() else []


def stdio_import(project: Path, server: str = "fixture", **fields: Any) -> dict[str, Any]:
    """An import of the declared stdio fixture server."""
    return {"name": "fixture", "server": server, **fields}


def agent_spec(
    imports: list[dict[str, Any]], script: list[dict[str, Any]], **agent: Any
) -> dict[str, Any]:
    """A one-agent spec whose dummy model follows ``script`` (tool calls, then text)."""
    return {
        "version": "v1",
        "agent": {
            "name": "mcp-agent",
            "model": {"provider": "dummy", "script": script},
            "tools": agent.pop("tools", ["lookup_user"]),
            "policies": agent.pop("policies", {"tool": {"allow": None}}),
            **agent,
        },
        "mcp": {"imports": imports},
    }


def call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"tool_calls": [{"name": name, "arguments": arguments}]}


@pytest.fixture()
def http_server(project: Path) -> Iterator[Any]:
    """Start the fixture over streamable HTTP; yields ``start(token_env=None) -> url``."""
    procs: list[subprocess.Popen[str]] = []

    def start(token_env: str | None = None, env: dict[str, str] | None = None) -> str:
        args = [sys.executable, str(FIXTURE), "http", "--counter", str(project / "mcp_calls.txt")]
        if token_env:
            args += ["--token-env", token_env]
        proc = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ, **(env or {})},
        )
        procs.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("PORT "), line
        return f"http://127.0.0.1:{int(line.split()[1])}/mcp"

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(10)
