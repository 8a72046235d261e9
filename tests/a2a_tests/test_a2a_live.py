"""A2A through a real ``kneo service serve --a2a`` process, driven by the official ``a2a-sdk``
client, on SQLite and on PostgreSQL: the card, a workflow that pauses (``input-required``,
streaming and polling), the answer (a decision through the human resume route), the
artifact, the history, ``ListTasks``, push notifications to a real HTTP receiver (and the
destinations refused), the refusals, and a restart of the service between the pause and
the answer.

One live service per database for the module, both started at once: each one's embedded
controller reconciles a real Git repository of signed bundles at start-up (``helper``
approved for dev and prod, ``devonly`` for dev only; prod runs approved bundles only).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from a2a.client import ClientConfig, ClientFactory
from a2a.types import a2a_pb2 as pb
from a2a.utils.errors import (
    A2AError,
    InvalidParamsError,
    InvalidRequestError,
    TaskNotFoundError,
)
from google.protobuf.json_format import MessageToDict

from kneo.platform.webhooks import standard_signature
from tests import http_calls
from tests.a2a_tests.push_receiver import METADATA_URL, Receiver
from tests.conftest import PG_ENV, PgDatabases, pg_base_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "controller"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "service"))

from gitops_fixtures import Keys, Repo
from svc_helpers import LiveServer

KEYS = {
    "agent": "a2a-agent-key-0001",  # service: starts runs and decides (runs:write, human:write)
    "starter": "a2a-starter-key-0002",  # operator: starts runs, may not decide
    "viewer": "a2a-viewer-key-0003",  # viewer: reads only
    "writer": "a2a-writer-key-0004",  # may start runs, may not read them (no runs:read)
    "admin": "a2a-admin-key-0005",  # the notifications' deliveries
    "reader": "a2a-reader-key-0006",  # reads runs, not human tasks (no human:read)
}
ROLES = {
    "agent": "service",
    "starter": "operator",
    "viewer": "viewer",
    "writer": "runs:write,registry:read",
    "admin": "admin",
    "reader": "runs:read,registry:read",
}
PUSH_SECRET = "a2a-push-sealing-secret-0123456789abcdef"


def flow(draft: str) -> dict[str, Any]:
    """A workflow that drafts (scripted dummy model) and then waits for a person."""
    return {
        "version": "v1",
        "agent": {
            "name": "helper",
            "system_prompt": "Draft a note.",
            "model": {"provider": "dummy", "name": "dummy", "script": [{"text": draft}]},
        },
        "workflow": {
            "type": "sequential",
            "name": "helper-flow",
            "steps": [
                {"id": "draft", "kind": "agent", "ref": "helper"},
                {"id": "approve", "kind": "human", "ref": "reviewer"},
            ],
        },
        "components": {"humans": {"reviewer": {"prompt": "Publish this draft?"}}},
    }


def _server(
    backend: str, tmp: Path, repo: Repo, keys: Keys, receiver: Receiver, url: str
) -> LiveServer:
    project = tmp / backend
    (project / ".kneo").mkdir(parents=True)
    (project / ".kneo" / "config.yaml").write_text(
        "version: v1\ncontroller:\n"
        f"  repo: {repo.url}\n  branch: main\n  interval: 60\n"
        f"  trusted_keys: {keys.trusted_dir}\n  cache_dir: {tmp / f'cache-{backend}'}\n"
        "  lease_seconds: 10\n"
    )
    env = {
        "KNEO_SERV_DATABASE_URL": url,
        "KNEO_SERV_AUTH_ENABLED": "true",
        "KNEO_SERV_API_KEYS": ";".join(f"{n}:{k}:{ROLES[n]}" for n, k in KEYS.items()),
        "KNEO_SERV_WORKER_POLL_SECONDS": "0.05",
        # push notifications to the test's receiver only, delivered and retried at once
        "KNEO_SERV_A2A_PUSH_DESTINATIONS": receiver.url,
        "KNEO_SERV_A2A_PUSH_SECRET": PUSH_SECRET,
        "KNEO_SERV_NOTIFICATIONS_POLL_SECONDS": "0.2",
        "KNEO_SERV_NOTIFICATIONS_BACKOFF_SECONDS": "0.05",
        "KNEO_SERV_NOTIFICATIONS_BACKOFF_MAX_SECONDS": "0.1",
        "KNEO_SERV_NOTIFICATIONS_MAX_ATTEMPTS": "3",
    }
    return LiveServer(env, project, tmp / f"{backend}.log", args=("--a2a",))


def _reconciled(server: LiveServer) -> LiveServer:
    server.start(timeout=120)
    deadline = time.monotonic() + 60
    auth = {"Authorization": f"Bearer {KEYS['agent']}"}
    while True:  # the embedded controller reconciles at start-up
        listed = http_calls.get(f"{server.url}/v1/registry/bundles", headers=auth).json()
        if len(listed.get("revisions") or []) == 3:
            return server
        assert time.monotonic() < deadline, listed
        time.sleep(0.05)


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.close()


@pytest.fixture(scope="module")
def services(
    tmp_path_factory: pytest.TempPathFactory, receiver: Receiver
) -> Iterator[dict[str, LiveServer]]:
    """A live service on SQLite, and on PostgreSQL where there is a server, started at once."""
    tmp = tmp_path_factory.mktemp("a2a")
    repo = Repo(tmp / "git")
    repo.write("environments/dev.yaml", "version: v1\n")
    repo.write("environments/prod.yaml", "version: v1\nruns: {require_approved_bundle: true}\n")
    keys = Keys(tmp / "keys")
    repo.write("bundles/helper/dev.json", keys.bundle("helper", "dev", flow("dev draft")))
    repo.write("bundles/helper/prod.json", keys.bundle("helper", "prod", flow("prod draft")))
    repo.write("bundles/devonly/dev.json", keys.bundle("devonly", "dev", flow("dev only")))
    repo.commit("bundles")
    databases = PgDatabases(pg_base_url(), "kneo_a2a") if os.environ.get(PG_ENV) else None
    urls = {"sqlite": f"sqlite:///{tmp / 'service.sqlite'}"}
    if databases is not None:
        urls["postgresql"] = databases.new()
    servers = {b: _server(b, tmp, repo, keys, receiver, u) for b, u in urls.items()}
    try:
        with ThreadPoolExecutor() as pool:  # both start at once
            list(pool.map(_reconciled, servers.values()))
        yield servers
    finally:
        for server in servers.values():
            server.stop()
        if databases is not None:
            databases.drop_all()


@pytest.fixture(params=["sqlite", "postgresql"])
def served(request: pytest.FixtureRequest, services: dict[str, LiveServer]) -> LiveServer:
    if request.param not in services:
        pg_base_url()  # skips, or fails under CI, saying why
    return services[request.param]


async def _client(
    url: str, key: str | None, *, streaming: bool = True, polling: bool = False
) -> Any:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    http = httpx.AsyncClient(headers=headers, timeout=30)
    config = ClientConfig(httpx_client=http, streaming=streaming, polling=polling)
    return await ClientFactory(config).create_from_url(url), http


def _message(text: str | None = None, *, skill: str | None = None, **fields: Any) -> pb.Message:
    message = pb.Message(message_id=str(uuid.uuid4()), role=pb.ROLE_USER, **fields)
    if text is not None:
        message.parts.append(pb.Part(text=text))
    if skill is not None:
        message.metadata.update({"skill": skill})
    return message


def _decision(task_id: str, decision: str, **more: Any) -> pb.Message:
    message = _message(task_id=task_id)
    part = pb.Part()
    part.data.struct_value.update({"decision": decision, **more})
    message.parts.append(part)
    return message


async def _send(client: Any, message: pb.Message) -> list[Any]:
    return await _send_request(client, pb.SendMessageRequest(message=message))


async def _send_request(client: Any, request: pb.SendMessageRequest) -> list[Any]:
    return [event async for event in client.send_message(request)]


def _state_at_end(events: list[Any]) -> int:
    """The task's state after a stream: its last status update, or its one task event (a
    worker may finish the run before the stream's first read)."""
    last = events[-1]
    return int(
        last.status_update.status.state
        if last.HasField("status_update")
        else last.task.status.state
    )


def _run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def test_the_card_lists_the_skills_the_caller_may_start(served: LiveServer) -> None:
    async def cards() -> tuple[Any, Any, Any]:
        agent, http = await _client(served.url, KEYS["agent"])
        viewer, http2 = await _client(served.url, KEYS["viewer"])
        anonymous = http_calls.get(f"{served.url}/.well-known/agent-card.json").json()
        extended = await agent.get_extended_agent_card(pb.GetExtendedAgentCardRequest())
        result = (agent._card, viewer._card, anonymous, extended)
        await http.aclose()
        await http2.aclose()
        return result

    agent_card, viewer_card, anonymous, extended = _run(cards())
    assert sorted(s.id for s in agent_card.skills) == ["devonly@dev", "helper@dev", "helper@prod"]
    assert [s.id for s in extended.skills] == [s.id for s in agent_card.skills]
    assert list(viewer_card.skills) == []  # no runs:write: nothing it may start
    assert anonymous["skills"] == [] and set(anonymous["securitySchemes"]) == {"bearer", "apiKey"}
    interface = agent_card.supported_interfaces[0]
    assert interface.url == f"{served.url}/a2a" and interface.protocol_binding == "JSONRPC"
    assert agent_card.capabilities.streaming
    wrong = http_calls.get(
        f"{served.url}/.well-known/agent-card.json", headers={"Authorization": "Bearer nope"}
    )
    assert wrong.status_code == 401 and KEYS["agent"] not in wrong.text


def test_stream_pauses_for_input_then_the_answer_completes_with_the_artifact(
    served: LiveServer,
) -> None:
    async def journey() -> tuple[list[Any], list[Any], Any]:
        client, http = await _client(served.url, KEYS["agent"])
        try:
            started = await _send(client, _message("write it", skill="helper@prod"))
            task_id = started[0].task.id
            answered = await _send(client, _decision(task_id, "approved"))
            final = await client.get_task(pb.GetTaskRequest(id=task_id))
            return started, answered, final
        finally:
            await http.aclose()

    started, answered, final = _run(journey())
    assert started[0].HasField("task")
    last = started[-1]
    status = last.status_update.status if last.HasField("status_update") else last.task.status
    assert status.state == pb.TASK_STATE_INPUT_REQUIRED
    prompt, schema = status.message.parts
    assert prompt.text == "Publish this draft?"
    data = MessageToDict(schema.data)
    assert data["kind"] == "approval" and "approved" in data["decisions"]
    assert data["request_id"].startswith("req_")
    kinds = [e.WhichOneof("payload") for e in answered]
    assert kinds[0] == "task"
    # the artifact and the end come as updates (the artifact just before `completed`), or
    # in the first task when a worker finished the run before the stream's first read
    updates = [e.artifact_update.artifact for e in answered if e.HasField("artifact_update")]
    (artifact,) = [*answered[0].task.artifacts, *updates]
    assert "prod draft" in artifact.parts[0].text  # the prod revision's model script
    assert _state_at_end(answered) == pb.TASK_STATE_COMPLETED
    assert len(answered) == 1 or kinds[-2:] == ["artifact_update", "status_update"], kinds
    assert final.status.state == pb.TASK_STATE_COMPLETED
    assert final.artifacts[0].parts[0].text == artifact.parts[0].text
    audit = http_calls.get(
        f"{served.url}/v1/audit-events",
        params={"run_id": final.id, "event_type": "human.decision"},
        headers={"Authorization": f"Bearer {KEYS['agent']}"},
    ).json()
    assert [e["actor"] for e in audit["events"]] == ["agent"]  # the key's name, as over HTTP


def test_polling_send_then_get_until_input_required(served: LiveServer) -> None:
    async def journey() -> tuple[Any, Any, Any]:
        client, http = await _client(served.url, KEYS["agent"], streaming=False, polling=True)
        try:
            (first,) = await _send(client, _message("write it", skill="helper@dev"))
            task = first.task
            deadline = time.monotonic() + 20
            while task.status.state != pb.TASK_STATE_INPUT_REQUIRED:
                assert time.monotonic() < deadline, task
                await asyncio.sleep(0.05)
                task = await client.get_task(pb.GetTaskRequest(id=task.id))
            blocking, http2 = await _client(served.url, KEYS["agent"], streaming=False)
            (done,) = await _send(blocking, _decision(task.id, "approved"))
            await http2.aclose()
            return first.task, task, done.task
        finally:
            await http.aclose()

    first, paused, done = _run(journey())
    assert first.status.state in (
        pb.TASK_STATE_SUBMITTED,
        pb.TASK_STATE_WORKING,
        pb.TASK_STATE_INPUT_REQUIRED,
    )
    assert paused.id == first.id and paused.status.message.parts[0].text == "Publish this draft?"
    assert done.status.state == pb.TASK_STATE_COMPLETED
    assert "dev draft" in done.artifacts[0].parts[0].text


def _refusal(served: LiveServer, key: str, message: pb.Message) -> A2AError:
    async def attempt() -> A2AError:
        client, http = await _client(served.url, key, streaming=False)
        try:
            await _send(client, message)
        except A2AError as exc:
            return exc
        finally:
            await http.aclose()
        raise AssertionError("the message was accepted")

    return _run(attempt())


def _paused_task(served: LiveServer, skill: str = "helper@dev") -> str:
    async def start() -> str:
        client, http = await _client(served.url, KEYS["agent"], streaming=False)
        try:
            (event,) = await _send(client, _message("write it", skill=skill))
            assert event.task.status.state == pb.TASK_STATE_INPUT_REQUIRED, event.task
            return str(event.task.id)
        finally:
            await http.aclose()

    return str(_run(start()))


def test_refusals_keep_the_api_rules(served: LiveServer) -> None:
    # a bundle not approved for prod, where only approved bundles run
    unapproved = _refusal(served, KEYS["agent"], _message("x", skill="devonly@prod"))
    assert unapproved.data and unapproved.data["status"] in ("403", "404"), unapproved
    # a key without runs:write cannot start
    viewer = _refusal(served, KEYS["viewer"], _message("x", skill="helper@dev"))
    assert isinstance(viewer, InvalidRequestError) and viewer.data == {
        "error": "forbidden",
        "status": "403",
    }
    # a key that may start runs but not decide cannot answer input-required
    task_id = _paused_task(served)
    starter = _refusal(served, KEYS["starter"], _decision(task_id, "approved"))
    assert isinstance(starter, InvalidRequestError) and starter.data["error"] == "forbidden"
    # a decision the request does not accept is the route's validation error
    wrong = _refusal(served, KEYS["agent"], _decision(task_id, "provided", content="x"))
    assert wrong.data and wrong.data["status"] in ("400", "422"), wrong
    missing = _refusal(served, KEYS["agent"], _decision("run_nope", "approved"))
    assert isinstance(missing, TaskNotFoundError)
    nobody = http_calls.post(
        f"{served.url}/a2a", json={"jsonrpc": "2.0", "id": 1, "method": "GetTask"}
    )
    assert nobody.status_code == 401 and nobody.headers["WWW-Authenticate"].startswith("Bearer")
    # the task still waits: nothing above decided it
    state = http_calls.get(
        f"{served.url}/v1/runs/{task_id}", headers={"Authorization": f"Bearer {KEYS['agent']}"}
    ).json()["status"]
    assert state == "paused"


def test_cancel_ends_a_waiting_task(served: LiveServer) -> None:
    task_id = _paused_task(served)

    async def cancel() -> tuple[Any, A2AError | None]:
        client, http = await _client(served.url, KEYS["agent"], streaming=False)
        try:
            task = await client.cancel_task(pb.CancelTaskRequest(id=task_id))
            try:
                await client.cancel_task(pb.CancelTaskRequest(id=task_id))
                again = None
            except A2AError as exc:
                again = exc
            return task, again
        finally:
            await http.aclose()

    task, again = _run(cancel())
    assert task.status.state == pb.TASK_STATE_CANCELED
    assert again is not None and "has ended" in again.message
    # the A2A 0.3 method names on the same endpoint (no A2A-Version header: 0.3)
    legacy = http_calls.post(
        f"{served.url}/a2a",
        json={"jsonrpc": "2.0", "id": 7, "method": "tasks/get", "params": {"id": task_id}},
        headers={"Authorization": f"Bearer {KEYS['agent']}"},
    ).json()
    assert legacy["result"]["id"] == task_id and legacy["result"]["status"]["state"] == "canceled"


def test_a_restart_between_pause_and_answer(services: dict[str, LiveServer]) -> None:
    """Every backend's service restarted at once between the pause and the answer."""
    paused = {backend: _paused_task(server, "helper@prod") for backend, server in services.items()}
    with ThreadPoolExecutor() as pool:
        list(pool.map(lambda server: server.stop(), services.values()))
        list(pool.map(lambda server: server.start(timeout=120), services.values()))

    async def after(server: LiveServer, task_id: str) -> tuple[Any, list[Any]]:
        client, http = await _client(server.url, KEYS["agent"])
        try:
            task = await client.get_task(pb.GetTaskRequest(id=task_id))
            followed = [e async for e in client.subscribe(pb.SubscribeToTaskRequest(id=task_id))]
            assert [e.task.status.state for e in followed] == [pb.TASK_STATE_INPUT_REQUIRED]
            answered = await _send(client, _decision(task_id, "approved"))
            return task, answered
        finally:
            await http.aclose()

    for backend, task_id in paused.items():
        task, answered = _run(after(services[backend], task_id))
        assert task.status.state == pb.TASK_STATE_INPUT_REQUIRED, backend
        assert task.status.message.parts[0].text == "Publish this draft?"
        assert _state_at_end(answered) == pb.TASK_STATE_COMPLETED


# ---------------------------------------------------------------------- history, ListTasks


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[key]}"}


def _refused(served: LiveServer, key: str, call: Any) -> A2AError:
    """The A2A error ``call(client)`` ends in (a non-streaming client on ``key``)."""

    async def attempt() -> A2AError:
        client, http = await _client(served.url, key, streaming=False)
        try:
            await call(client)
        except A2AError as exc:
            return exc
        finally:
            await http.aclose()
        raise AssertionError("the call was accepted")

    return _run(attempt())


def test_history_is_the_input_the_questions_and_the_answers(served: LiveServer) -> None:
    async def journey() -> tuple[str, str, Any, Any, Any, Any, Any]:
        client, http = await _client(served.url, KEYS["agent"], streaming=False)
        try:
            first = _message("write it", skill="helper@dev")
            (started,) = await _send(client, first)
            task_id = started.task.id
            answer = _decision(task_id, "approved")
            asked = pb.SendMessageRequest(message=answer)
            asked.configuration.history_length = 2
            (done,) = [e async for e in client.send_message(asked)]
            full = await client.get_task(pb.GetTaskRequest(id=task_id))
            last = await client.get_task(pb.GetTaskRequest(id=task_id, history_length=1))
            none = await client.get_task(pb.GetTaskRequest(id=task_id, history_length=0))
            reader, http2 = await _client(served.url, KEYS["reader"], streaming=False)
            read = await reader.get_task(pb.GetTaskRequest(id=task_id))
            await http2.aclose()
            return first.message_id, task_id, done.task, full, last, none, read
        finally:
            await http.aclose()

    first_id, task_id, done, full, last, none, read = _run(journey())
    assert [m.role for m in full.history] == [pb.ROLE_USER, pb.ROLE_AGENT, pb.ROLE_USER]
    started, question, answer = full.history
    assert started.message_id == first_id and started.parts[0].text == "write it"
    assert question.parts[0].text == "Publish this draft?"
    decided = MessageToDict(answer.parts[0].data)
    assert decided["decision"] == "approved" and decided["decided_by"] == "agent"
    assert decided["request_id"] == MessageToDict(question.parts[1].data)["request_id"]
    assert {m.task_id for m in full.history} == {task_id}
    assert list(done.history) == list(full.history)[-2:]  # SendMessage's historyLength
    assert list(last.history) == [answer] and list(none.history) == []
    assert list(read.history) == [started]  # no human:read: the questions and answers are not its
    negative = _refused(
        served,
        KEYS["agent"],
        lambda c: c.get_task(pb.GetTaskRequest(id=task_id, history_length=-1)),
    )
    assert isinstance(negative, InvalidParamsError)
    assert negative.data == {"field": "historyLength"}


def test_list_tasks_of_a_context_newest_change_first(served: LiveServer) -> None:
    context = f"ctx-{uuid.uuid4().hex}"

    async def journey() -> tuple[list[str], Any, Any, Any, Any, Any]:
        client, http = await _client(served.url, KEYS["agent"], streaming=False)
        try:
            ids = []
            for text in ("one", "two"):
                (event,) = await _send(
                    client, _message(text, skill="helper@dev", context_id=context)
                )
                ids.append(event.task.id)
            await client.cancel_task(pb.CancelTaskRequest(id=ids[0]))
            listed = await client.list_tasks(pb.ListTasksRequest(context_id=context))
            first = await client.list_tasks(pb.ListTasksRequest(context_id=context, page_size=1))
            second = await client.list_tasks(
                pb.ListTasksRequest(
                    context_id=context, page_size=1, page_token=first.next_page_token
                )
            )
            waiting = await client.list_tasks(
                pb.ListTasksRequest(
                    context_id=context,
                    status=pb.TASK_STATE_INPUT_REQUIRED,
                    history_length=1,
                    include_artifacts=True,
                )
            )
            viewer, http2 = await _client(served.url, KEYS["viewer"], streaming=False)
            seen = await viewer.list_tasks(pb.ListTasksRequest(context_id=context))
            await http2.aclose()
            return ids, listed, first, second, waiting, seen
        finally:
            await http.aclose()

    (one, two), listed, first, second, waiting, seen = _run(journey())
    # the cancelled one changed last: newest change first
    assert [t.id for t in listed.tasks] == [one, two] and listed.total_size == 2
    assert [t.status.state for t in listed.tasks] == [
        pb.TASK_STATE_CANCELED,
        pb.TASK_STATE_INPUT_REQUIRED,
    ]
    assert {t.context_id for t in listed.tasks} == {context}
    assert [t.id for t in first.tasks] == [one] and first.next_page_token
    assert [t.id for t in second.tasks] == [two] and not second.next_page_token
    (paused,) = waiting.tasks
    assert paused.id == two and [m.parts[0].text for m in paused.history] == ["two"]
    assert [t.id for t in seen.tasks] == [one, two]  # a key that may read runs sees them
    # refusals: each names its field, never a silently ignored parameter
    no_read = _refused(served, KEYS["writer"], lambda c: c.list_tasks(pb.ListTasksRequest()))
    assert isinstance(no_read, InvalidRequestError)
    assert no_read.data == {"error": "forbidden", "status": "403"}
    for request, field in (
        (pb.ListTasksRequest(page_size=101), "pageSize"),
        (pb.ListTasksRequest(status=pb.TASK_STATE_REJECTED), "status"),
        (pb.ListTasksRequest(context_id="not a context"), "contextId"),
        (pb.ListTasksRequest(page_token="nope"), "pageToken"),
        (pb.ListTasksRequest(status_timestamp_after={"seconds": 1}), "statusTimestampAfter"),
    ):
        bad = _refused(served, KEYS["agent"], lambda c, r=request: c.list_tasks(r))
        assert isinstance(bad, InvalidParamsError) and bad.data["field"] == field, (field, bad)


# ---------------------------------------------------------------------- push notifications


def _push_config(url: str, token: str, **fields: Any) -> pb.TaskPushNotificationConfig:
    return pb.TaskPushNotificationConfig(url=url, token=token, **fields)


def _stored_rows(served: LiveServer) -> str:
    """Every stored push config and outbox event, as text."""
    engine = sa.create_engine(served.env["KNEO_SERV_DATABASE_URL"])
    try:
        with engine.connect() as conn:
            rows = [
                *conn.execute(sa.text("SELECT * FROM a2a_push_configs")),
                *conn.execute(sa.text("SELECT * FROM notification_events")),
            ]
    finally:
        engine.dispose()
    return "\n".join(str(tuple(r)) for r in rows)


def test_push_notifications_reach_the_receiver_once_each_signed(
    served: LiveServer, receiver: Receiver
) -> None:
    token = f"tok-{uuid.uuid4().hex}"
    credentials = f"cred-{uuid.uuid4().hex}"
    capability = f"cap-{uuid.uuid4().hex}"  # a URL's path may be a secret too
    config = _push_config(
        f"{receiver.url}/flaky/{capability}",  # each delivery fails once, its retry is taken
        token,
        id="mine",
        authentication=pb.AuthenticationInfo(scheme="Bearer", credentials=credentials),
    )

    async def journey() -> tuple[str, Any, Any]:
        http = httpx.AsyncClient(headers=_auth("agent"), timeout=30)
        client = await ClientFactory(
            ClientConfig(httpx_client=http, streaming=False, push_notification_config=config)
        ).create_from_url(served.url)
        try:
            (event,) = await _send(client, _message("write it", skill="helper@dev"))
            task_id = event.task.id
            receiver.wait_for(
                lambda _: any(
                    p.status == 200 and p.task.status.state == pb.TASK_STATE_INPUT_REQUIRED
                    for p in receiver.of(task_id)
                )
            )
            shown = await client.get_task_push_notification_config(
                pb.GetTaskPushNotificationConfigRequest(task_id=task_id, id="mine")
            )
            listed = await client.list_task_push_notification_configs(
                pb.ListTaskPushNotificationConfigsRequest(task_id=task_id)
            )
            await _send(client, _decision(task_id, "approved"))
            return task_id, shown, listed
        finally:
            await http.aclose()

    task_id, shown, listed = _run(journey())
    done = receiver.wait_for(
        lambda _: [
            p
            for p in receiver.of(task_id)
            if p.status == 200 and p.task.status.state == pb.TASK_STATE_COMPLETED
        ]
    )
    # read back without its secrets: the caller set them, nobody reads them again
    assert (shown.id, shown.task_id, shown.url) == ("mine", task_id, config.url)
    assert shown.token == "" and shown.authentication.credentials == ""
    assert shown.authentication.scheme == "Bearer" and list(listed.configs) == [shown]
    pushes = receiver.of(task_id)
    states = [p.task.status.state for p in pushes if p.status == 200]
    # one push per change of state: the sweep may also see the task working (before it
    # pauses, or after the decision) when it looks at the right moment
    assert all(a != b for a, b in itertools.pairwise(states)), states
    assert set(states) <= {
        pb.TASK_STATE_SUBMITTED,
        pb.TASK_STATE_WORKING,
        pb.TASK_STATE_INPUT_REQUIRED,
        pb.TASK_STATE_COMPLETED,
    }
    assert pb.TASK_STATE_INPUT_REQUIRED in states[:-1] and states[-1] == pb.TASK_STATE_COMPLETED
    # each event delivered once, as the retry of a refused first try (same webhook-id). The
    # decision's send sets config "mine" again: a new config, and a push of the old one refused
    # just before is dropped with it; the last config's pushes all arrive, in order.
    sent = [p.headers["webhook-id"] for p in pushes if p.status == 200]
    failed = [p.headers["webhook-id"] for p in pushes if p.status == 500]
    assert len(sent) == len(set(sent)) and set(sent) <= set(failed)
    last = done[-1].headers["webhook-id"].rsplit("_", 1)[0]
    assert [f for f in failed if f.startswith(f"{last}_")] == [
        s for s in sent if s.startswith(f"{last}_")
    ]
    paused = next(p for p in pushes if p.task.status.state == pb.TASK_STATE_INPUT_REQUIRED)
    assert paused.task.status.message.parts[0].text == "Publish this draft?"
    assert "dev draft" in done[0].task.artifacts[0].parts[0].text
    for push in pushes:  # the token, the credentials, and the token's signature of the body
        assert push.headers["x-a2a-notification-token"] == token
        assert push.headers["authorization"] == f"Bearer {credentials}"
        signed = standard_signature(
            token, push.headers["webhook-id"], int(push.headers["webhook-timestamp"]), push.body
        )
        assert push.headers["webhook-signature"] == signed
    stored = _stored_rows(served)
    assert task_id in stored and receiver.url in stored  # the origin, in clear
    assert token not in stored and credentials not in stored and capability not in stored


async def _error(call: Any) -> A2AError:
    """The A2A error the awaitable ``call`` ends in."""
    try:
        await call
    except A2AError as exc:
        return exc
    raise AssertionError("the call was accepted")


def test_push_destinations_and_configs_are_refused_to_who_should_not_pass(
    served: LiveServer, receiver: Receiver
) -> None:
    task_id = _paused_task(served)
    hook = f"{receiver.url}/hook"
    context = f"ctx-{uuid.uuid4().hex}"

    def config(url: str, task: str = task_id, **fields: Any) -> pb.TaskPushNotificationConfig:
        return pb.TaskPushNotificationConfig(task_id=task, url=url, **fields)

    async def journey() -> dict[str, Any]:
        clients = {
            k: await _client(served.url, KEYS[k], streaming=False)
            for k in ("agent", "starter", "viewer")
        }
        agent, starter, viewer = (clients[k][0] for k in ("agent", "starter", "viewer"))
        out: dict[str, Any] = {}
        try:
            # the door: only the operator's allow-list, whatever a client names
            out["urls"] = {
                url: await _error(agent.create_task_push_notification_config(config(url)))
                for url in (
                    f"{served.url}/v1/runs",  # Kneo's own port on loopback
                    METADATA_URL,  # the cloud's metadata service
                    receiver.url.replace("127.0.0.1", "localhost"),  # the port by another name
                    receiver.url.replace("http://", "http://user:pw@"),  # credentials in it
                    "file:///etc/passwd",
                )
            }
            out["fields"] = {
                field: await _error(agent.create_task_push_notification_config(config(hook, **f)))
                for f, field in (
                    ({"token": "has space"}, "token"),
                    ({"authentication": {"scheme": "Bearer"}}, "authentication.credentials"),
                    (
                        {"authentication": {"scheme": "A B", "credentials": "x"}},
                        "authentication.scheme",
                    ),
                )
            }
            # a message whose push config is refused starts no run
            message = pb.SendMessageRequest(
                message=_message("x", skill="helper@dev", context_id=context)
            )
            message.configuration.task_push_notification_config.url = METADATA_URL
            out["message"] = await _error(_send_request(agent, message))
            # the scope: a key that may not start runs sets no pushes; a task must exist
            out["viewer"] = await _error(viewer.create_task_push_notification_config(config(hook)))
            out["missing"] = await _error(
                agent.create_task_push_notification_config(config(hook, task="run_nope"))
            )
            # another caller's config: invisible, untouchable
            await agent.create_task_push_notification_config(config(hook, id="a"))
            out["get"] = await _error(
                starter.get_task_push_notification_config(
                    pb.GetTaskPushNotificationConfigRequest(task_id=task_id, id="a")
                )
            )
            out["delete"] = await _error(
                starter.delete_task_push_notification_config(
                    pb.DeleteTaskPushNotificationConfigRequest(task_id=task_id, id="a")
                )
            )
            listing = pb.ListTaskPushNotificationConfigsRequest(task_id=task_id)
            out["mine"] = await agent.list_task_push_notification_configs(listing)
            out["theirs"] = await starter.list_task_push_notification_configs(listing)
            return out
        finally:
            for _, http in clients.values():
                await http.aclose()

    out = _run(journey())
    for url, refused in out["urls"].items():
        assert isinstance(refused, InvalidParamsError), url
        assert refused.data == {"field": "url", "error": "E_DESTINATION_NOT_ALLOWED"}, url
    for field, bad in out["fields"].items():
        assert isinstance(bad, InvalidParamsError) and bad.data["field"] == field, field
    assert isinstance(out["message"], InvalidParamsError)
    runs = http_calls.get(
        f"{served.url}/v1/runs", params={"session_id": context}, headers=_auth("agent")
    ).json()
    assert runs["runs"] == []
    assert isinstance(out["viewer"], InvalidRequestError)
    assert out["viewer"].data["error"] == "forbidden"
    assert isinstance(out["missing"], TaskNotFoundError)
    assert isinstance(out["get"], TaskNotFoundError)
    assert isinstance(out["delete"], TaskNotFoundError)
    assert [c.id for c in out["mine"].configs] == ["a"] and list(out["theirs"].configs) == []
    legacy = http_calls.post(  # the A2A 0.3 name on the same endpoint
        f"{served.url}/a2a",
        json={
            "jsonrpc": "2.0",
            "id": 3,
            "method": "tasks/pushNotificationConfig/get",
            "params": {"id": task_id, "pushNotificationConfigId": "a"},
        },
        headers=_auth("agent"),
    ).json()
    assert legacy["result"]["pushNotificationConfig"] == {"id": "a", "url": f"{receiver.url}/hook"}
    audit = http_calls.get(
        f"{served.url}/v1/audit-events",
        params={"run_id": task_id, "event_type": "a2a.push_config.set"},
        headers=_auth("agent"),
    ).json()
    assert [(e["actor"], e["payload"]["origin"]) for e in audit["events"]] == [
        ("agent", receiver.url)
    ]


def test_a_redirect_is_not_followed(served: LiveServer, receiver: Receiver) -> None:
    """A receiver on the list that redirects (to the metadata service): the hop is not
    taken, the delivery fails and ends dead after its attempts."""
    task_id = _paused_task(served)

    async def subscribe() -> Any:
        client, http = await _client(served.url, KEYS["agent"], streaming=False)
        try:
            return await client.create_task_push_notification_config(
                pb.TaskPushNotificationConfig(task_id=task_id, url=f"{receiver.url}/redirect")
            )
        finally:
            await http.aclose()

    assert _run(subscribe()).id == task_id  # no id given: the task's, as the a2a-sdk does
    receiver.wait_for(
        lambda _: len([p for p in receiver.of(task_id) if p.path == "/redirect"]) == 3
    )
    deadline = time.monotonic() + 30
    while True:
        listed = http_calls.get(
            f"{served.url}/v1/notifications",
            params={"receiver": "a2a", "status": "dead"},
            headers=_auth("admin"),
        ).json()
        dead = [n for n in listed["notifications"] if n["run_id"] == task_id]
        if dead:
            break
        assert time.monotonic() < deadline, listed
        time.sleep(0.05)
    assert dead[0]["attempts"] == 3 and dead[0]["last_error"] == "HTTP 307"
    assert dead[0]["event_type"] == "a2a.task_status"
