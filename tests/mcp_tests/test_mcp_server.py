"""``kneo mcp serve`` and ``/mcp`` on the service, driven by the official SDK's client.

Each MCP tool is an API route called with the caller's key, so the tests check what the API
guarantees through MCP: a key is required, a viewer key cannot resume (403 from the route's
scope), a reviewer's decision resumes the run and is audited with the key's name.
"""

from __future__ import annotations

import asyncio
import json
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
from kneo.service.app import create_app
from kneo.service.auth import route_scopes
from kneo.service.mcp import TOOLS
from kneo.settings import Settings
from kneo.spec.project import ProjectContext
from kneo.store import AuditQuery
from tests import http_calls
from tests.cli_zygote import KNEO
from tests.mcp_tests.conftest import REPO
from tests.service.svc_helpers import serving_app

KEYS = {"operator": "op-key-4711", "reviewer": "rev-key-4712", "viewer": "view-key-4713"}
AUTH = {
    "KNEO_SERV_AUTH_ENABLED": "true",
    "KNEO_SERV_API_KEYS": ";".join(f"{role}:{key}:{role}" for role, key in KEYS.items()),
}
SMOKE = str(REPO / "examples" / "smoke_human_workflow.yaml")


class Served:
    def __init__(self, url: str, manager: Any) -> None:
        self.url = url
        self.manager = manager


def serve_mcp(tmp_path: Path, env: dict[str, str], *, worker: bool) -> Iterator[Served]:
    """The service app with ``/mcp`` on a real socket (uvicorn in a thread, port 0), with
    or without its worker (decisions continue on it)."""
    settings = Settings.from_env(env)
    manager = create_platform(settings, ProjectContext.discover(cwd=tmp_path, settings=settings))
    app = create_app(False, settings=settings, manager=manager, start_worker=worker, mcp=True)
    with serving_app(app) as base:
        yield Served(base + "/mcp", manager)
    manager.store.close()


@pytest.fixture()
def served(tmp_path: Path) -> Iterator[Served]:
    yield from serve_mcp(tmp_path, AUTH, worker=False)


@asynccontextmanager
async def _http(url: str, key: str | None) -> AsyncIterator[Any]:
    from mcp.client.streamable_http import streamable_http_client

    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        streamable_http_client(url, http_client=http) as streams,
    ):
        yield streams


def session(url: str, key: str | None, calls: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    """Open one SDK client session with ``key`` and make ``calls``; returns the results."""
    from mcp import Client

    async def go() -> list[Any]:
        async with Client(_http(url, key)) as client:
            out: list[Any] = []
            for name, args in calls:
                if name == "__list__":
                    out.append([t.name for t in (await client.list_tools()).tools])
                else:
                    out.append(await client.call_tool(name, args))
            return out

    return asyncio.run(go())


def payload(result: Any) -> Any:
    assert not result.is_error, result.content
    return (
        result.structured_content
        if result.structured_content
        else json.loads(result.content[0].text)
    )


def error_text(result: Any) -> str:
    assert result.is_error
    return " ".join(getattr(block, "text", "") for block in result.content)


def test_every_tool_is_an_api_route_with_its_scope(served: Served) -> None:
    """No second scope table: each tool names a route the app serves, which has a scope."""
    app = create_app(False, settings=Settings.from_env(AUTH), start_worker=False)
    routes = {(method, path): scope for method, path, scope in route_scopes(app)}
    for tool in TOOLS:
        assert routes.get((tool.method, tool.path)), tool
    listed = session(served.url, KEYS["viewer"], [("__list__", {})])[0]
    assert sorted(listed) == sorted(t.name for t in TOOLS)


def test_mcp_over_http_requires_an_api_key(served: Served) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    accept = {"Accept": "application/json, text/event-stream"}
    for headers in ({}, {"Authorization": "Bearer wrong-key"}):
        response = http_calls.post(served.url, json=body, headers={**accept, **headers})
        assert response.status_code == 401
        assert response.json()["error"] == "unauthorized"
    assert "wrong-key" not in response.text


def test_a_reviewer_resumes_and_a_viewer_cannot(served: Served) -> None:
    paused = served.manager.run_from_spec(input_text="smoke", spec_path=SMOKE)
    assert paused.status == "paused"
    cont, req = paused.continuation_id, paused.request_id
    listed, task, refused = session(
        served.url,
        KEYS["viewer"],
        [
            ("list_human_tasks", {"run_id": paused.run_id}),
            ("get_human_task", {"continuation_id": cont}),
            (
                "resume_human_task",
                {"continuation_id": cont, "request_id": req, "decision": "approved"},
            ),
        ],
    )
    tasks = payload(listed)["tasks"]
    assert [t["continuation_id"] for t in tasks] == [cont]
    assert payload(task)["request"]["request_id"] == req
    assert "403 forbidden" in error_text(refused) and "human:write" in error_text(refused)
    assert served.manager.get_run(paused.run_id)["status"] == "paused"  # nothing changed
    resumed, run, trace = session(
        served.url,
        KEYS["reviewer"],
        [
            (
                "resume_human_task",
                {"continuation_id": cont, "request_id": req, "decision": "approved"},
            ),
            ("get_run", {"run_id": paused.run_id}),
            ("get_run_trace", {"run_id": paused.run_id}),
        ],
    )
    assert payload(resumed)["status"] == "succeeded"
    assert payload(run)["status"] == "succeeded"
    assert "run_resumed" in {e["event_type"] for e in payload(trace)["events"]}
    decisions = served.manager.store.audit.list_audit(AuditQuery(event_type="human.decision")).items
    assert [(a.actor, a.payload["decision"]) for a in decisions] == [("reviewer", "approved")]
    again = session(
        served.url,
        KEYS["reviewer"],
        [
            (
                "resume_human_task",
                {"continuation_id": cont, "request_id": req, "decision": "approved"},
            )
        ],
    )[0]
    assert "409" in error_text(again) or "404" in error_text(again)


def test_an_assistant_searches_and_reads_a_tasks_context_as_the_api_gives_it(
    served: Served,
) -> None:
    """``list_human_tasks`` with ``q``; ``get_human_task`` with ``include_context``: the agent's words for the call and the
    earlier tool result, exactly ``GET /v1/human-tasks/{id}?include=context``."""
    spec = str(REPO / "examples" / "hitl_tool_context.yaml")
    paused = served.manager.run_from_spec(input_text="release notes", spec_path=spec)
    cid = paused.continuation_id
    served.manager.run_from_spec(input_text="other notes", spec_path=spec)
    found, bare, full = session(
        served.url,
        KEYS["reviewer"],
        [
            ("list_human_tasks", {"q": "release"}),
            ("get_human_task", {"continuation_id": cid}),
            ("get_human_task", {"continuation_id": cid, "include_context": True}),
        ],
    )
    assert [t["continuation_id"] for t in payload(found)["tasks"]] == [cid]
    assert payload(found)["tasks"][0]["input_preview"] == "release notes"
    assert "context" not in payload(bare)
    context = payload(full)["context"]
    assert context["requests"][0]["agent_message"].startswith("The lookup says:")
    assert context["conversations"][0]["messages"][3]["name"] == "lookup_on_call"
    base = served.url.removesuffix("/mcp")
    api = http_calls.get(
        f"{base}/v1/human-tasks/{cid}?include=context",
        headers={"Authorization": f"Bearer {KEYS['reviewer']}"},
    )
    assert payload(full) == api.json()


def test_registry_controller_and_runs_answer_as_the_api_does(served: Served) -> None:
    base = served.url.removesuffix("/mcp")
    viewer = {"Authorization": f"Bearer {KEYS['viewer']}"}
    bundles, status, start = session(
        served.url,
        KEYS["viewer"],
        [
            ("list_registry_bundles", {}),
            ("controller_status", {}),
            ("start_run", {"bundle": "helper", "environment": "prod", "input": "x"}),
        ],
    )
    assert payload(bundles) == http_calls.get(f"{base}/v1/registry/bundles", headers=viewer).json()
    api_status = http_calls.get(f"{base}/v1/controller/status", headers=viewer)
    if api_status.status_code == 200:
        assert payload(status) == api_status.json()
    else:
        assert f"{api_status.status_code} " in error_text(status)
    assert "403 forbidden" in error_text(start) and "runs:write" in error_text(start)
    missing = session(
        served.url,
        KEYS["operator"],
        [("start_run", {"bundle": "nope", "environment": "prod", "input": "x"})],
    )[0]
    api = http_calls.post(
        f"{base}/v1/runs",
        json={"bundle": "nope", "environment": "prod", "input": "x"},
        headers={"Authorization": f"Bearer {KEYS['operator']}"},
    )
    assert api.status_code >= 400
    assert f"{api.status_code} {api.json()['error']}: {api.json()['message']}" in error_text(
        missing
    )


def _cli_env(project: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KNEO")}
    return {**env, "PYTHONPATH": str(REPO), **AUTH, **extra}


def test_stdio_server_uses_the_cli_key_and_its_scopes(tmp_path: Path) -> None:
    from mcp import Client, StdioServerParameters

    (tmp_path / ".kneo").mkdir()
    settings = Settings.from_env(AUTH)
    manager = create_platform(settings, ProjectContext.discover(cwd=tmp_path, settings=settings))
    paused = manager.run_from_spec(input_text="smoke", spec_path=SMOKE)
    manager.store.close()

    def call(key: str, name: str, args: dict[str, Any]) -> Any:
        params = StdioServerParameters(
            command=sys.executable,
            args=[*KNEO[1:], "mcp", "serve"],
            env=_cli_env(tmp_path, KNEO_SERV_API_KEY=key),
            cwd=str(tmp_path),
        )

        async def go() -> Any:
            with open(os.devnull, "w") as devnull:
                from mcp.client.stdio import stdio_client

                async with Client(stdio_client(params, errlog=devnull)) as client:
                    return await client.call_tool(name, args)

        return asyncio.run(go())

    args = {
        "continuation_id": paused.continuation_id,
        "request_id": paused.request_id,
        "decision": "approved",
    }
    assert "403 forbidden" in error_text(call(KEYS["viewer"], "resume_human_task", args))
    assert payload(call(KEYS["reviewer"], "resume_human_task", args))["status"] == "succeeded"


def test_own_port_http_server(tmp_path: Path) -> None:
    (tmp_path / ".kneo").mkdir()
    proc = subprocess.Popen(
        [
            *KNEO,
            "mcp",
            "serve",
            "--transport",
            "http",
            "--port",
            "0",
        ],
        cwd=tmp_path,
        env=_cli_env(tmp_path),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert "streamable HTTP on " in line, line
        url = line.rsplit(" ", 1)[1].strip()
        assert http_calls.post(url, json={}).status_code == 401
        tasks = session(url, KEYS["viewer"], [("list_human_tasks", {})])[0]
        assert payload(tasks)["tasks"] == []
    finally:
        proc.terminate()
        proc.wait(10)


def test_resume_defaults_to_the_one_pending_request_as_a2a_does(served: Served) -> None:
    """``resume_human_task`` without ``request_id``: the task's one pending request is
    decided; a task waiting on several asks for ``request_id`` and decides nothing."""
    one = served.manager.run_from_spec(input_text="one", spec_path=SMOKE)
    human = {"prompt": "OK?", "assignee": "reviewer"}
    both = {
        "version": "v1",
        "workflow": {
            "type": "concurrent",
            "name": "two-asks",
            "participants": [
                {"id": "h1", "kind": "human", "ref": "r1"},
                {"id": "h2", "kind": "human", "ref": "r2"},
            ],
        },
        "components": {"humans": {"r1": human, "r2": human}},
    }
    two = served.manager.run_from_spec(input_text="two", spec=both)
    assert len(served.manager.get_human_task(two.continuation_id)["requests"]) > 1
    decided, ambiguous = session(
        served.url,
        KEYS["reviewer"],
        [
            ("resume_human_task", {"continuation_id": one.continuation_id, "decision": "approved"}),
            ("resume_human_task", {"continuation_id": two.continuation_id, "decision": "approved"}),
        ],
    )
    assert payload(decided)["status"] == "succeeded"
    assert "name one as request_id" in error_text(ambiguous)
    assert served.manager.get_run(two.run_id)["status"] == "paused"


def test_a_binding_assignment_refuses_another_reviewer_over_mcp(tmp_path: Path) -> None:
    """With ``assignments.assignees: binding``, a second reviewer key (``human:write``)
    cannot decide a request assigned to ``reviewer``: the tool answers the API's ``403
    not_the_assignee`` naming who may; the reviewer decides it."""
    config = tmp_path / ".kneo" / "config.yaml"
    config.parent.mkdir()
    config.write_text("version: v1\nassignments:\n  assignees: binding\n")
    keys = AUTH["KNEO_SERV_API_KEYS"] + ";second:second-key-4715:reviewer"
    spec = str(REPO / "examples" / "hitl_approval.yaml")  # assigned to "reviewer"
    for served in serve_mcp(tmp_path, {**AUTH, "KNEO_SERV_API_KEYS": keys}, worker=False):
        paused = served.manager.run_from_spec(input_text="bound", spec_path=spec)
        args = {"continuation_id": paused.continuation_id, "decision": "approved"}
        [refused] = session(served.url, "second-key-4715", [("resume_human_task", args)])
        assert "403 not_the_assignee" in error_text(refused)
        assert "only reviewer may decide" in error_text(refused)
        [decided] = session(served.url, KEYS["reviewer"], [("resume_human_task", args)])
        assert payload(decided)["status"] == "succeeded"
