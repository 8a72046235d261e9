"""A2A in projects (tenants), driven by the official ``a2a-sdk`` client: the agent card lists
the skills of the caller's project, a task is started, read, listed and answered in it, and
a push config is kept in it, whichever project the ``X-Kneo-Project`` header (or the key's
home) names. Another project's task is ``TaskNotFound``; a project the key holds no grant in
is ``404 project_not_found`` before any A2A handling. The push sweep is global: it pushes a
paused task of any project."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from a2a.client import ClientConfig, ClientFactory
from a2a.types import a2a_pb2 as pb
from a2a.utils.errors import A2AError, TaskNotFoundError

from kneo.platform import create_platform
from kneo.service.a2a_tasks import skill_id
from kneo.service.app import create_app
from kneo.settings import Settings
from kneo.spec.project import ProjectContext
from kneo.store import AuditQuery
from tests import http_calls
from tests.mcp_tests.conftest import REPO
from tests.service.svc_helpers import serving_app

SMOKE = REPO / "examples" / "smoke_human_workflow.yaml"
KEYS = {
    "a": ("a2a-team-a-key-21", "service@team-a"),
    "b": ("a2a-team-b-key-22", "service@team-b"),
    "both": ("a2a-both-key-23", "service@team-a,service@team-b"),
}
#: each project's one approved bundle
BUNDLES = {"team-a": "alpha", "team-b": "beta"}
ALLOWED = "http://127.0.0.1:9"  # nothing listens there: deliveries fail, pushes are made
PUSH_TO = f"{ALLOWED}/a2a-push"


class Teams:
    def __init__(self, url: str, manager: Any, paused: dict[str, Any]) -> None:
        self.url = url
        self.manager = manager
        self.paused = paused


@pytest.fixture()
def teams(tmp_path: Path) -> Iterator[Teams]:
    (tmp_path / ".kneo").mkdir()
    settings = Settings.from_env(
        {
            "KNEO_SERV_AUTH_ENABLED": "true",
            "KNEO_SERV_API_KEYS": ";".join(f"{n}:{k}:{r}" for n, (k, r) in KEYS.items()),
            "KNEO_SERV_A2A_PUSH_DESTINATIONS": ALLOWED,
            "KNEO_SERV_A2A_PUSH_SECRET": "a2a-projects-sealing-secret-0123456789",
            "KNEO_SERV_NOTIFICATIONS_POLL_SECONDS": "0.1",
        }
    )
    manager = create_platform(settings, ProjectContext.discover(cwd=tmp_path, settings=settings))
    spec = yaml.safe_load(SMOKE.read_text())
    paused = {}
    for project, bundle in BUNDLES.items():
        manager.store.projects.create_project(project)
        team = manager.for_project(project)
        with team.store.transaction() as tx:
            tx.add_revision(bundle, "dev", digest="sha256:" + "1" * 64, status="active", spec=spec)
        paused[project] = team.run_from_spec(input_text=project, spec_path=str(SMOKE))
    app = create_app(False, settings=settings, manager=manager, start_worker=False, a2a=True)
    try:
        with serving_app(app) as base:
            yield Teams(base, manager, paused)
    finally:
        manager.close()


def _headers(who: str, project: str | None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {KEYS[who][0]}"}
    return headers | ({"X-Kneo-Project": project} if project else {})


async def _client(url: str, who: str, project: str | None) -> tuple[Any, httpx.AsyncClient]:
    http = httpx.AsyncClient(headers=_headers(who, project), timeout=30)
    config = ClientConfig(httpx_client=http, streaming=False)
    return await ClientFactory(config).create_from_url(url), http


async def _error(call: Any) -> A2AError:
    try:
        await call
    except A2AError as exc:
        return exc
    raise AssertionError("the call was accepted")


def _message(**fields: Any) -> pb.Message:
    return pb.Message(message_id=str(uuid.uuid4()), role=pb.ROLE_USER, **fields)


def test_the_card_lists_the_skills_of_the_callers_project(teams: Teams) -> None:
    def skills(who: str, project: str | None) -> list[str]:
        card = http_calls.get(
            f"{teams.url}/.well-known/agent-card.json", headers=_headers(who, project)
        )
        assert card.status_code == 200, card.text
        return [s["id"] for s in card.json()["skills"]]

    assert skills("both", "team-a") == [skill_id("alpha", "dev")]
    assert skills("both", "team-b") == [skill_id("beta", "dev")]
    assert skills("b", None) == [skill_id("beta", "dev")]  # the key's home project
    refused = http_calls.get(
        f"{teams.url}/.well-known/agent-card.json", headers=_headers("a", "team-b")
    )
    assert refused.status_code == 404 and refused.json()["error"] == "project_not_found"
    endpoint = http_calls.post(f"{teams.url}/a2a", json={}, headers=_headers("a", "team-b"))
    assert endpoint.status_code == 404 and endpoint.json()["error"] == "project_not_found"


def test_tasks_are_started_read_listed_and_answered_in_the_callers_project(
    teams: Teams,
) -> None:
    in_a, in_b = teams.paused["team-a"], teams.paused["team-b"]

    async def journey() -> None:
        team_a, http_a = await _client(teams.url, "both", "team-a")
        team_b, http_b = await _client(teams.url, "both", "team-b")
        try:
            started = _message(parts=[pb.Part(text="hello")])
            started.metadata.update({"skill": skill_id("alpha", "dev")})
            configuration = pb.SendMessageConfiguration(return_immediately=True)
            request = pb.SendMessageRequest(message=started, configuration=configuration)
            [event] = [e async for e in team_a.send_message(request)]
            new = event.task.id
            assert teams.manager.for_project("team-a").get_run(new)["status"] == "queued"
            beta = _message(parts=[pb.Part(text="hello")])
            beta.metadata.update({"skill": skill_id("beta", "dev")})
            refused = await _error(
                _collect(team_a.send_message(pb.SendMessageRequest(message=beta)))
            )
            assert "beta" in str(refused)  # team-b's bundle is not team-a's skill
            task = await team_a.get_task(pb.GetTaskRequest(id=in_a.run_id))
            assert task.status.state == pb.TASK_STATE_INPUT_REQUIRED
            for other in (in_a.run_id, new):
                missing = await _error(team_b.get_task(pb.GetTaskRequest(id=other)))
                assert isinstance(missing, TaskNotFoundError)
            listed = await team_a.list_tasks(pb.ListTasksRequest())
            assert {t.id for t in listed.tasks} == {in_a.run_id, new}
            listed_b = await team_b.list_tasks(pb.ListTasksRequest())
            assert {t.id for t in listed_b.tasks} == {in_b.run_id}
            answer = _message(task_id=in_a.run_id)
            part = pb.Part()
            part.data.struct_value.update({"decision": "approved"})
            answer.parts.append(part)
            wrong = await _error(
                _collect(team_b.send_message(pb.SendMessageRequest(message=answer)))
            )
            assert isinstance(wrong, TaskNotFoundError)
            [done] = [e async for e in team_a.send_message(pb.SendMessageRequest(message=answer))]
            assert done.task.status.state == pb.TASK_STATE_COMPLETED
        finally:
            await http_a.aclose()
            await http_b.aclose()

    asyncio.run(journey())
    team_a = teams.manager.for_project("team-a").store
    decisions = team_a.audit.list_audit(AuditQuery(event_type="human.decision")).items
    assert [d.actor for d in decisions] == ["both"]
    assert teams.manager.for_project("team-b").get_run(in_b.run_id)["status"] == "paused"


async def _collect(events: Any) -> list[Any]:
    return [e async for e in events]


def test_a_push_config_is_kept_in_its_project_and_the_global_sweep_pushes_it(
    teams: Teams,
) -> None:
    in_b = teams.paused["team-b"]
    config = pb.TaskPushNotificationConfig(task_id=in_b.run_id, url=PUSH_TO, id="mine")

    async def journey() -> None:
        team_b, http_b = await _client(teams.url, "b", None)  # its home: team-b
        team_a, http_a = await _client(teams.url, "both", "team-a")
        try:
            shown = await team_b.create_task_push_notification_config(config)
            assert shown.id == "mine" and shown.task_id == in_b.run_id
            listed = await team_b.list_task_push_notification_configs(
                pb.ListTaskPushNotificationConfigsRequest(task_id=in_b.run_id)
            )
            assert [c.id for c in listed.configs] == ["mine"]
            elsewhere = await _error(
                team_a.list_task_push_notification_configs(
                    pb.ListTaskPushNotificationConfigsRequest(task_id=in_b.run_id)
                )
            )
            assert isinstance(elsewhere, TaskNotFoundError)  # team-b's task, not team-a's
        finally:
            await http_a.aclose()
            await http_b.aclose()

    asyncio.run(journey())
    team_b = teams.manager.for_project("team-b").store
    [kept] = team_b.a2a_push.push_configs(in_b.run_id, "b")
    assert kept.project_id == team_b.project_id
    assert teams.manager.store.a2a_push.push_configs(in_b.run_id, "b") == []
    deadline = time.monotonic() + 30
    while team_b.a2a_push.push_configs(in_b.run_id, "b")[0].pushed_status != "paused":
        assert time.monotonic() < deadline, "the sweep never pushed team-b's paused task"
        time.sleep(0.05)
