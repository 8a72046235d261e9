"""Fixtures for the MCP tests: the SDK-written server in ``mcp_fixture.py`` over stdio (a
command in the spec) and over HTTP (a process on an ephemeral port), a project to run in,
and the counter file every tool call appends to."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURE = Path(__file__).with_name("mcp_fixture.py")


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    (tmp_path / ".kneo").mkdir()
    return tmp_path


def counted(project: Path) -> list[str]:
    """The tool calls the fixture server really ran, in order."""
    path = project / "mcp_calls.txt"
    return path.read_text().split() if path.exists() else []


def stdio_import(project: Path, **fields: Any) -> dict[str, Any]:
    command = [sys.executable, str(FIXTURE), "stdio", "--counter", str(project / "mcp_calls.txt")]
    return {"name": "fixture", "transport": "stdio", "command": command, **fields}


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
