"""Shared helpers for the service tests (keys, headers, manager, live server, request log)."""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
import uvicorn

from kneo.service.middleware import LOGGER_NAME
from kneo.settings import Settings
from kneo.spec.project import ProjectContext
from tests import http_calls
from tests.cli_zygote import KNEO
from tests.kneo_cli import PID_FILE

ROOT = Path(__file__).resolve().parents[2]

KEYS = {
    "admin": "admin-secret-token-1",
    "operator": "operator-secret-token-2",
    "reviewer": "reviewer-secret-token-3",
    "service": "service-secret-token-4",
    "viewer": "viewer-secret-token-5",
}
API_KEYS_ENV = ";".join(f"{role}:{key}:{role}" for role, key in KEYS.items() if role != "admin")


def auth_env() -> dict[str, str]:
    return {
        "KNEO_SERV_AUTH_ENABLED": "true",
        "KNEO_SERV_API_KEYS": API_KEYS_ENV,
        "KNEO_SERV_ADMIN_API_KEY": KEYS["admin"],
    }


def headers(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[role]}"}


def project_declaring(settings: Settings, *refs: str) -> ProjectContext:
    """The project of the working directory (as the platform would discover it) with
    ``refs`` added to ``functions.declared``: the test modules' functions that the tests'
    inline specs (``POST /v1/runs`` with ``spec``) call."""
    project = ProjectContext.discover(settings=settings)
    functions = project.config.functions.model_copy(
        update={"declared": [*project.config.functions.declared, *refs]}
    )
    config = project.config.model_copy(update={"functions": functions})
    return dataclasses.replace(project, config=config)


def build_manager(settings: Settings, tmp_path: Path, database_url: str | None = None) -> Any:
    """The real platform manager over a fresh store (SQLite in ``tmp_path`` by default)."""
    from kneo.platform import create_platform
    from kneo.store import open_store

    store = open_store(database_url, settings=settings, state_dir=tmp_path / "state")
    project = project_declaring(settings, "tests.service.failing_steps:boom")
    manager = create_platform(settings=settings, project=project, store=store)
    manager.close = store.close
    return manager


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServer:
    """``kneo service serve`` in a real process on a free loopback port (forked from the
    worker's zygote: :attr:`pid` is the server's, ``proc`` the launcher that stands for it)."""

    def __init__(
        self, env: dict[str, str], cwd: Path, log_path: Path, args: tuple[str, ...] = ()
    ) -> None:
        self.args = args
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = env
        self.cwd = cwd
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.pid: int | None = None

    def start(self, timeout: float = 60.0) -> LiveServer:
        """Start on a port free now: a restart never reuses the port the last process gave
        up, which a test running alongside may have taken in between."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        environ = {k: v for k, v in os.environ.items() if not k.startswith("KNEO_")}
        environ.update(self.env)
        environ["PYTHONPATH"] = str(ROOT)
        pid_file = self.log_path.with_name(f"{self.log_path.name}.pid")
        pid_file.unlink(missing_ok=True)
        environ[PID_FILE] = str(pid_file)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                *KNEO,
                "service",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                *self.args,
            ],
            cwd=self.cwd,
            env=environ,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-2000:]}")
            try:
                if http_calls.get(self.url + "/livez", timeout=1.0).status_code == 200:
                    self.pid = int(pid_file.read_text())
                    return self
            except httpx2.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not start: {self.log_path.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = self.pid = None


@contextmanager
def serving_app(app: Any) -> Iterator[str]:
    """``app`` on a real socket (uvicorn in a thread, port 0) with its lifespan; yields the
    base URL, and stops the server when the block ends."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    server = uvicorn.Server(
        uvicorn.Config(app, log_config=None, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def request_log() -> Iterator[list[logging.LogRecord]]:
    """Records of the service's request logger, from a handler attached to that logger.

    The logger does not propagate (its JSON lines go to stderr only), so ``caplog`` cannot see
    them; this handler does, whatever pytest's caplog wiring, and is removed afterwards.
    """
    handler = _Records()
    logger = logging.getLogger(LOGGER_NAME)
    logger.addHandler(handler)
    yield handler.records
    logger.removeHandler(handler)


_SEND_EMAIL = {
    "description": "Send an e-mail.",
    "implementation": "examples.hitl_functions:send_email",
    "parameters": {
        "type": "object",
        "properties": {"to": {"type": "string"}, "subject": {"type": "string"}},
        "required": ["to", "subject"],
        "additionalProperties": False,
    },
}
#: An inline spec whose one model turn asks for two approved ``send_email`` calls (to ann,
#: then bob): one human task with two ``tool_approval`` requests.
TWO_APPROVALS: dict[str, Any] = {
    "version": "v1",
    "agent": {
        "name": "mailer",
        "tools": ["send_email"],
        "approval_required": ["send_email"],
        "policies": {"tool": {"allow": ["send_email"]}},
        "model": {
            "provider": "dummy",
            "script": [
                {
                    "tool_calls": [
                        {"name": "send_email", "arguments": {"to": "ann", "subject": "a"}},
                        {"name": "send_email", "arguments": {"to": "bob", "subject": "b"}},
                    ]
                },
                {"text": "done: {last_tool_result}"},
            ],
        },
    },
    "workflow": {
        "type": "sequential",
        "name": "mail-two",
        "steps": [{"id": "mail", "kind": "agent", "ref": "mailer"}],
    },
    "components": {"tools": {"send_email": _SEND_EMAIL}},
}
