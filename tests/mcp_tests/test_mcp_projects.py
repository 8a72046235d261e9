"""MCP in projects (tenants): the tools call the API in the caller's project, driven by the
official SDK's client. Over HTTP the MCP request's ``X-Kneo-Project`` header is forwarded;
over stdio ``kneo mcp serve --project`` (or ``KNEO_SERV_PROJECT``) names it. Each caller
sees only its project's tasks and runs; a project without a grant is ``404
project_not_found``, never another team's data."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest

from kneo.platform import create_platform
from kneo.settings import Settings
from kneo.spec.project import ProjectContext
from kneo.store import AuditQuery
from tests.cli_zygote import KNEO
from tests.mcp_tests.conftest import REPO
from tests.mcp_tests.test_mcp_server import SMOKE, Served, error_text, payload, serve_mcp

KEYS = {
    "a": ("key-team-a-11", "reviewer@team-a"),
    "b": ("key-team-b-12", "reviewer@team-b"),
    "both": ("key-both-13", "reviewer@team-a,reviewer@team-b"),
}
AUTH = {
    "KNEO_SERV_AUTH_ENABLED": "true",
    "KNEO_SERV_API_KEYS": ";".join(f"{n}:{k}:{r}" for n, (k, r) in KEYS.items()),
}


def two_projects(manager: Any) -> dict[str, Any]:
    """``team-a`` and ``team-b``, each with one run paused for a person."""
    paused = {}
    for name in ("team-a", "team-b"):
        manager.store.projects.create_project(name)
        run = manager.for_project(name).run_from_spec(input_text=name, spec_path=SMOKE)
        assert run.status == "paused"
        paused[name] = run
    return paused


@asynccontextmanager
async def _http(url: str, headers: dict[str, str]) -> AsyncIterator[Any]:
    from mcp.client.streamable_http import streamable_http_client

    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        streamable_http_client(url, http_client=http) as streams,
    ):
        yield streams


def over_http(url: str, who: str, project: str | None, calls: list[tuple[str, Any]]) -> list[Any]:
    """One SDK client session with ``who``'s key (and ``X-Kneo-Project``) making ``calls``."""
    from mcp import Client

    headers = {"Authorization": f"Bearer {KEYS[who][0]}"}
    if project is not None:
        headers["X-Kneo-Project"] = project

    async def go() -> list[Any]:
        async with Client(_http(url, headers)) as client:
            return [await client.call_tool(name, args) for name, args in calls]

    return asyncio.run(go())


def task_ids(result: Any) -> list[str]:
    return [t["continuation_id"] for t in payload(result)["tasks"]]


@pytest.fixture()
def teams(tmp_path: Path) -> Iterator[tuple[Served, dict[str, Any]]]:
    for served in serve_mcp(tmp_path, AUTH, worker=False):
        yield served, two_projects(served.manager)


def test_over_http_each_project_header_sees_only_that_projects_tasks(
    teams: tuple[Served, dict[str, Any]],
) -> None:
    served, paused = teams
    a, b = paused["team-a"], paused["team-b"]
    in_a, in_b = (
        over_http(served.url, "both", project, [("list_human_tasks", {})])[0]
        for project in ("team-a", "team-b")
    )
    assert task_ids(in_a) == [a.continuation_id]
    assert task_ids(in_b) == [b.continuation_id]
    mine, theirs = over_http(
        served.url,
        "both",
        "team-a",
        [("get_run", {"run_id": a.run_id}), ("get_run", {"run_id": b.run_id})],
    )
    assert payload(mine)["run_id"] == a.run_id
    assert "404 not_found" in error_text(theirs)  # team-b's run does not exist in team-a
    # no header: the key's home project (its first grant)
    assert task_ids(over_http(served.url, "b", None, [("list_human_tasks", {})])[0]) == [
        b.continuation_id
    ]


def test_over_http_a_project_without_a_grant_is_not_found(
    teams: tuple[Served, dict[str, Any]],
) -> None:
    served, paused = teams
    refused, decided = over_http(
        served.url,
        "a",
        "team-b",
        [
            ("list_human_tasks", {}),
            (
                "resume_human_task",
                {
                    "continuation_id": paused["team-b"].continuation_id,
                    "request_id": paused["team-b"].request_id,
                    "decision": "approved",
                },
            ),
        ],
    )
    assert "404 project_not_found" in error_text(refused)
    assert "404 project_not_found" in error_text(decided)
    team_b = served.manager.for_project("team-b")
    assert team_b.get_run(paused["team-b"].run_id)["status"] == "paused"  # untouched


def test_over_http_a_decision_resumes_the_run_in_its_project(
    teams: tuple[Served, dict[str, Any]],
) -> None:
    served, paused = teams
    b = paused["team-b"]
    args = {"continuation_id": b.continuation_id, "request_id": b.request_id}
    [resumed] = over_http(
        served.url, "both", "team-b", [("resume_human_task", {**args, "decision": "approved"})]
    )
    assert payload(resumed)["status"] == "succeeded"
    team_b = served.manager.for_project("team-b").store
    decisions = team_b.audit.list_audit(AuditQuery(event_type="human.decision")).items
    assert [a.actor for a in decisions] == ["both"]
    assert (
        served.manager.store.audit.list_audit(AuditQuery(event_type="human.decision")).items == []
    )


def _stdio(cwd: Path, key: str, *args: str, **env: str) -> Any:
    from mcp import StdioServerParameters

    base = {k: v for k, v in os.environ.items() if not k.startswith("KNEO")}
    return StdioServerParameters(
        command=sys.executable,
        args=[*KNEO[1:], "mcp", "serve", *args],
        env={**base, "PYTHONPATH": str(REPO), **AUTH, "KNEO_SERV_API_KEY": key, **env},
        cwd=str(cwd),
    )


def _list_over_stdio(params: Any) -> Any:
    from mcp import Client
    from mcp.client.stdio import stdio_client

    async def go() -> Any:
        with open(os.devnull, "w") as devnull:
            async with Client(stdio_client(params, errlog=devnull)) as client:
                return await client.call_tool("list_human_tasks", {})

    return asyncio.run(go())


def test_over_stdio_the_project_option_or_variable_names_the_project(tmp_path: Path) -> None:
    (tmp_path / ".kneo").mkdir()
    settings = Settings.from_env(AUTH)
    manager = create_platform(settings, ProjectContext.discover(cwd=tmp_path, settings=settings))
    try:
        paused = two_projects(manager)
    finally:
        manager.close()
    key = KEYS["both"][0]
    in_b = _list_over_stdio(_stdio(tmp_path, key, "--project", "team-b"))
    assert task_ids(in_b) == [paused["team-b"].continuation_id]
    by_env = _list_over_stdio(_stdio(tmp_path, key, KNEO_SERV_PROJECT="team-b"))
    assert task_ids(by_env) == [paused["team-b"].continuation_id]
    home = _list_over_stdio(_stdio(tmp_path, key))  # the key's home: its first grant
    assert task_ids(home) == [paused["team-a"].continuation_id]
    refused = _list_over_stdio(_stdio(tmp_path, KEYS["a"][0], "--project", "team-b"))
    assert "404 project_not_found" in error_text(refused)


def test_over_stdio_a_malformed_project_is_refused_at_start(tmp_path: Path) -> None:
    """Never ignored: the server does not start, and says which name is wrong."""
    (tmp_path / ".kneo").mkdir()
    params = _stdio(tmp_path, KEYS["a"][0], "--project", "Not A Name")
    done = subprocess.run(
        [params.command, *params.args],
        cwd=tmp_path,
        env=params.env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "invalid_name" in done.stderr and "Not A Name" in done.stderr, done.stderr
