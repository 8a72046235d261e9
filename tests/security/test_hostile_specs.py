"""A spec is code: it reaches only the secrets, processes and destinations the project declared.

Every way a spec can name a host resource (a secret, a model ``base_url``, an MCP ``url``, an
MCP stdio command, a function ref) x every way in (a file run by the CLI, an inline spec sent
to ``POST /v1/runs`` with an operator key, a signed bundle through the controller) x allowed
or not by the project -> the documented outcome. A real HTTP listener records every request
that reaches it, and marker files record every process and function that ran: a refused spec
leaves both untouched, and the planted Kneo secrets never reach the listener.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from kneo import Decision
from kneo.clock import ManualClock
from kneo.controller.spec_checks import default_spec_checker
from kneo.platform import create_platform
from kneo.service import create_app
from kneo.settings import Settings
from kneo.spec.project import ProjectContext
from kneo.store import open_store
from tests.cli_zygote import KNEO
from tests.controller.gitops_fixtures import Keys, Repo, make_controller

REPO_ROOT = Path(__file__).resolve().parents[2]
ADMIN_KEY = "planted-admin-key-7c1d9e"
OPERATOR_KEY = "planted-operator-key-55aa01"
LISTENER_TOKEN = "planted-listener-token-0b3f"
PLANTED = {
    "KNEO_SERV_AUTH_ENABLED": "true",
    "KNEO_SERV_ADMIN_API_KEY": ADMIN_KEY,
    "KNEO_SERV_API_KEYS": f"ops:{OPERATOR_KEY}:operator",
    "KNEO_SERV_SPEC_SIGNING_KEY": "planted-signing-key-99e2",
    "LISTENER_TOKEN": LISTENER_TOKEN,
}
RESOURCES = ["secret", "base_url", "mcp_url", "mcp_stdio", "function", "traversal"]
REFUSED_AS = {
    "secret": "E_SECRET_UNDECLARED",
    "base_url": "E_DESTINATION_NOT_ALLOWED",
    "mcp_url": "E_DESTINATION_NOT_ALLOWED",
    "mcp_stdio": "E_PROCESS_UNDECLARED",
    "function": "E_FUNCTION_NOT_ALLOWED",
    # the project's own module, then a path through what it imports: ``logging.os.system``
    "traversal": "E_FUNCTION_NOT_ALLOWED",
}
ENVIRONMENT = "test"  # not dev: loopback is not allowed unless the project lists it


class Listener:
    """An HTTP server recording every request; answers chat completions like OpenAI."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                listener.requests.append(
                    {
                        "path": self.path,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "body": body.decode(),
                    }
                )
                if self.path.endswith("/chat/completions"):
                    reply = {
                        "id": "c1",
                        "object": "chat.completion",
                        "created": 0,
                        "model": "m",
                        "choices": [
                            {
                                "index": 0,
                                "finish_reason": "stop",
                                "message": {"role": "assistant", "content": "listener answered"},
                            }
                        ],
                    }
                    data = json.dumps(reply).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                else:
                    data = b"{}"
                    self.send_response(404)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def paths(self) -> list[str]:
        return [r["path"] for r in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class World:
    """A project whose config declares one of each resource, a listener and marker files."""

    def __init__(self, root: Path, listener: Listener) -> None:
        self.root = root
        self.listener = listener
        (root / ".kneo").mkdir(parents=True)
        self.marker = {"process": root / "process-ran", "function": root / "function-ran"}
        touch = f"open({str(self.marker['process'])!r}, 'w').write('ran')"
        # a module name of its own: every test's module writes to its own marker
        self.module = f"hostile_steps_{secrets.token_hex(4)}"
        config = {
            "version": "v1",
            # an inline spec through the API names only functions declared here
            "functions": {"declared": [f"{self.module}:touch"]},
            "secrets": {
                "extra": {"listener_token": "LISTENER_TOKEN"},
                "destinations": {"listener_token": [f"{listener.url}/allowed"]},
            },
            "network": {"allow": [f"{listener.url}/allowed"]},
            "mcp_servers": {"toucher": {"command": [sys.executable, "-c", touch]}},
            "environments": {ENVIRONMENT: {}, "sandbox": {}},
        }
        (root / ".kneo" / "config.yaml").write_text(json.dumps(config))
        (root / f"{self.module}.py").write_text(
            "import logging\nfrom pathlib import Path\n\n\n"
            "def touch(text: str) -> str:\n"
            f"    Path({str(self.marker['function'])!r}).write_text(text)\n"
            "    return 'touched'\n"
        )

    def spec(self, resource: str, allowed: bool) -> dict[str, Any]:
        """A spec naming ``resource``: the declared one, or one the project does not allow."""
        url = self.listener.url + ("/allowed" if allowed else "/evil")
        model = {"provider": "openai", "name": "m", "base_url": f"{url}/v1"}
        if resource == "secret":
            model = {
                "provider": "openai",
                "name": "m",
                "base_url": f"{self.listener.url}/allowed/v1",
                "api_key_env": "listener_token" if allowed else "KNEO_SERV_ADMIN_API_KEY",
            }
            return {"version": "v1", "agent": {"name": "a", "model": model}}
        if resource == "base_url":
            model["api_key_env"] = "listener_token"
            return {"version": "v1", "agent": {"name": "a", "model": model}}
        if resource in ("mcp_url", "mcp_stdio"):
            if resource == "mcp_url":
                imp: dict[str, Any] = {"name": "remote", "transport": "http", "url": f"{url}/mcp"}
            elif allowed:
                imp = {"name": "remote", "server": "toucher"}
            else:
                touch = f"open({str(self.marker['process'])!r}, 'w').write('ran')"
                imp = {"name": "remote", "command": [sys.executable, "-c", touch]}
            script = [{"tool_calls": [{"name": "lookup", "arguments": {}}]}, {"text": "done"}]
            agent = {
                "name": "a",
                "model": {"provider": "dummy", "script": script},
                "tools": ["lookup"],
                "policies": {"tool": {"allow": ["lookup"]}},
            }
            return {
                "version": "v1",
                "agent": agent,
                "mcp": {"imports": [{**imp, "tools": ["lookup"]}]},
            }
        refused = "posix:system" if resource == "function" else f"{self.module}:logging.os.system"
        ref = f"{self.module}:touch" if allowed else refused
        steps = [{"id": "s", "kind": "function", "ref": ref}]
        return {"version": "v1", "workflow": {"type": "sequential", "steps": steps}}

    def input_text(self) -> str:
        return f"touch {self.marker['function']}"

    def nothing_reached(self) -> None:
        """No request at a refused destination, no marker, no planted secret anywhere."""
        assert not any(p.startswith("/evil") for p in self.listener.paths())
        assert not self.marker["process"].exists()
        assert not self.marker["function"].exists()
        self.no_planted_secret()

    def no_planted_secret(self) -> None:
        sent = json.dumps(self.listener.requests)
        for name, value in PLANTED.items():
            if name != "LISTENER_TOKEN":
                assert value not in sent, f"{name} reached the listener"

    def reached(self, resource: str) -> None:
        """The allowed resource was really used."""
        if resource in ("secret", "base_url"):
            [request] = [r for r in self.listener.requests if r["path"].endswith("/completions")]
            assert request["path"].startswith("/allowed/")
            assert request["headers"]["authorization"] == f"Bearer {LISTENER_TOKEN}"
        elif resource == "mcp_url":
            assert any(p.startswith("/allowed/mcp") for p in self.listener.paths())
        elif resource == "mcp_stdio":
            assert self.marker["process"].read_text() == "ran"
        else:
            assert self.marker["function"].exists()
        self.no_planted_secret()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    listener = Listener()
    yield World(tmp_path / "project", listener)
    listener.close()


def _cli_env() -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("KNEO_")}
    return {**env, **PLANTED, "PYTHONPATH": str(REPO_ROOT), "KNEO_SERV_PROVIDER_RETRIES": "0"}


# --------------------------------------------------------------------------- CLI, a file


@pytest.mark.parametrize("allowed", [False, True], ids=["refused", "allowed"])
@pytest.mark.parametrize("resource", RESOURCES)
def test_a_spec_file_run_by_the_cli(world: World, resource: str, allowed: bool) -> None:
    (world.root / "spec.yaml").write_text(json.dumps(world.spec(resource, allowed)))
    proc = subprocess.run(
        [*KNEO, "run", "spec.yaml", "--env", ENVIRONMENT, "--input", world.input_text(), "--json"],
        cwd=world.root,
        env=_cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if not allowed:
        assert proc.returncode != 0
        assert REFUSED_AS[resource] in proc.stdout + proc.stderr, proc.stdout + proc.stderr
        world.nothing_reached()
        return
    assert proc.returncode == 0, proc.stdout + proc.stderr
    world.reached(resource)


# --------------------------------------------------------------------------- API, inline


@pytest.fixture
def api(world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.chdir(world.root)
    settings = Settings.from_env({**PLANTED, "KNEO_SERV_PROVIDER_RETRIES": "0"})
    project = ProjectContext.discover(cwd=world.root, settings=settings)
    store = open_store(f"sqlite:///{tmp_path / 'api.sqlite'}", settings=settings)
    manager = create_platform(settings, project, store=store)
    app = create_app(False, settings=settings, manager=manager, start_worker=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client
    store.close()


@pytest.mark.parametrize("allowed", [False, True], ids=["refused", "allowed"])
@pytest.mark.parametrize("resource", RESOURCES)
def test_an_inline_spec_sent_by_an_operator(
    world: World, api: TestClient, resource: str, allowed: bool
) -> None:
    response = api.post(
        "/v1/runs",
        headers={"Authorization": f"Bearer {OPERATOR_KEY}"},
        json={
            "spec": world.spec(resource, allowed),
            "environment": ENVIRONMENT,
            "input": world.input_text(),
        },
    )
    if not allowed:
        assert response.status_code == 400, response.text
        assert response.json()["error"] == REFUSED_AS[resource]
        assert "path" in response.json() or "field" in response.json() or response.json()["message"]
        world.nothing_reached()
        return
    assert response.status_code in (200, 201), response.text
    world.reached(resource)


def test_the_api_says_which_field_and_rule(world: World, api: TestClient) -> None:
    """The refusal names the field and what to do, and echoes no secret value."""
    response = api.post(
        "/v1/runs",
        headers={"Authorization": f"Bearer {OPERATOR_KEY}"},
        json={"spec": world.spec("secret", False), "environment": ENVIRONMENT, "input": "x"},
    )
    body = response.json()
    assert "agent.model.api_key_env" in body["message"]
    assert "KNEO_SERV_ADMIN_API_KEY" in body["message"]  # the name, never the value
    assert ADMIN_KEY not in response.text


# --------------------------------------------------------------------------- bundles


ENV_FILES = {
    ENVIRONMENT: "version: v1\n",
    # a sandbox where signed bundles may start their own MCP commands
    "sandbox": "version: v1\nresources: {bundle_processes: true}\n",
}


@pytest.fixture
def gitops(world: World, tmp_path: Path) -> Iterator[tuple[Any, Repo, Keys]]:
    repo = Repo(tmp_path / "git")
    for env, text in ENV_FILES.items():
        repo.write(f"environments/{env}.yaml", text)
    repo.commit("environments")
    keys = Keys(tmp_path / "keys")
    clock = ManualClock(datetime(2026, 3, 1, tzinfo=UTC))
    store = open_store(f"sqlite:///{tmp_path / 'registry.sqlite'}", clock=clock)
    ctl = make_controller(store, repo, keys, clock, tmp_path)
    project = ProjectContext.discover(cwd=world.root, settings=Settings.from_env({}))
    ctl.loader.spec_checker = default_spec_checker(project.tool_registry(), project)
    yield ctl, repo, keys
    store.close()


def _rejection(store: Any, name: str, env: str) -> str:
    conditions = {c.type: c for c in store.registry.list_conditions(name, env)}
    return " ".join(f"{c.reason}: {c.message}" for c in conditions.values() if c.status == "False")


@pytest.mark.parametrize("allowed", [False, True], ids=["refused", "allowed"])
@pytest.mark.parametrize("resource", RESOURCES)
def test_a_signed_bundle_through_the_controller(
    world: World, gitops: tuple[Any, Repo, Keys], resource: str, allowed: bool
) -> None:
    ctl, repo, keys = gitops
    repo.write(
        f"bundles/b/{ENVIRONMENT}.json",
        keys.bundle("b", ENVIRONMENT, world.spec(resource, allowed)),
    )
    repo.commit("a bundle")
    assert ctl.reconcile_once().ok
    active = ctl.store.registry.get_active("b", ENVIRONMENT)
    if allowed:
        assert active is not None, _rejection(ctl.store, "b", ENVIRONMENT)
    else:
        assert active is None
        assert REFUSED_AS[resource] in _rejection(ctl.store, "b", ENVIRONMENT)
    world.nothing_reached()  # the controller checks; it never runs anything


def test_a_bundle_may_start_its_own_command_only_where_the_policy_allows(
    world: World, gitops: tuple[Any, Repo, Keys]
) -> None:
    ctl, repo, keys = gitops
    own_command = world.spec("mcp_stdio", allowed=False)
    for env in (ENVIRONMENT, "sandbox"):
        repo.write(f"bundles/b/{env}.json", keys.bundle("b", env, own_command))
    repo.commit("a bundle with its own command")
    assert ctl.reconcile_once().ok
    assert ctl.store.registry.get_active("b", ENVIRONMENT) is None
    assert "E_PROCESS_UNDECLARED" in _rejection(ctl.store, "b", ENVIRONMENT)
    assert ctl.store.registry.get_active("b", "sandbox") is not None
    world.nothing_reached()


# --------------------------------------------------------------------------- at call time


def test_a_paused_run_resumed_after_the_grant_shrank_reaches_nothing(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The grant is checked again when a run calls out, not only at admission: a run that
    paused while its secret was declared, resumed after the project withdrew it, fails
    its model step without a request leaving."""
    monkeypatch.chdir(world.root)
    settings = Settings.from_env({**PLANTED, "KNEO_SERV_PROVIDER_RETRIES": "0"})
    database = f"sqlite:///{tmp_path / 'runs.sqlite'}"
    spec = world.spec("secret", allowed=True)
    spec["workflow"] = {
        "type": "sequential",
        "steps": [
            {"id": "ok", "kind": "human", "ref": "boss"},
            {"id": "ask", "kind": "agent", "ref": "a"},
        ],
    }
    spec["components"] = {"humans": {"boss": {}}}

    def manager() -> Any:
        project = ProjectContext.discover(cwd=world.root, settings=settings)
        return create_platform(settings, project, store=open_store(database, settings=settings))

    first = manager()
    paused = first.run_from_spec(input_text="x", spec=spec, environment=ENVIRONMENT)
    assert paused.status == "paused"
    first.store.close()
    config_path = world.root / ".kneo" / "config.yaml"
    config = json.loads(config_path.read_text())
    config["secrets"] = {"extra": {}}
    config_path.write_text(json.dumps(config))
    second = manager()
    done = second.resume(paused.continuation_id, Decision(paused.request_id, "approved"))
    assert done.status == "failed"
    assert done.metadata["error"]["code"] == "E_SECRET_UNDECLARED"
    assert world.listener.requests == []
    second.store.close()
