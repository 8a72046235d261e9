"""No secret reaches the service's log, even with every logger at DEBUG.

A real ``kneo service serve`` process, its root logger at DEBUG (an operator chasing a
problem), makes a model call (a declared key, to a local OpenAI-compatible listener), an MCP
call (a declared token) and delivers notifications to a Slack receiver and a signed webhook,
both at URLs that carry a token. Everything the process wrote is then searched for every
planted value. HTTP client libraries log each request's full URL at INFO: Kneo sets them to
WARNING, and its own records go through redaction with their URLs reduced.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx2

from tests import http_calls
from tests.security.test_hostile_specs import Listener
from tests.service.svc_helpers import ROOT, free_port

ADMIN = "planted-admin-0d7f3c9a1e"
MODEL_KEY = "planted-model-key-6b2e8c"
MCP_TOKEN = "planted-mcp-token-4c1a9e"
SLACK_TOKEN = "aB3dE5fG7hJ9kL1mN3pQ5rS7"
HOOK_TOKEN = "zY9xW7vU5tS3rQ1pO9nM7lK5"
HOOK_SECRET = "planted-hook-hmac-8f2d4b"
PLANTED = (ADMIN, MODEL_KEY, MCP_TOKEN, SLACK_TOKEN, HOOK_TOKEN, HOOK_SECRET)

LAUNCH = (
    "import logging, sys\n"
    "logging.basicConfig(level=logging.DEBUG)\n"
    "from kneo.cli.main import main\n"
    "sys.argv = ['kneo', *sys.argv[1:]]\n"
    "main()\n"
)


def _project(root: Path) -> None:
    (root / ".kneo").mkdir(parents=True)
    config = {
        "version": "v1",
        "secrets": {"extra": {"model_key": "MODEL_KEY", "mcp_token": "MCP_TOKEN"}},
    }
    (root / ".kneo" / "config.yaml").write_text(json.dumps(config))


def _spec(listener: Listener) -> dict[str, object]:
    script = [{"tool_calls": [{"name": "lookup", "arguments": {}}]}, {"text": "done"}]
    return {
        "version": "v1",
        "components": {
            "agents": {
                "caller": {
                    "name": "caller",
                    "model": {
                        "provider": "openai",
                        "name": "m",
                        "base_url": f"{listener.url}/v1",
                        "api_key_env": "model_key",
                    },
                },
                "mcp": {
                    "name": "mcp",
                    "model": {"provider": "dummy", "script": script},
                    "tools": ["lookup"],
                    "policies": {"tool": {"allow": ["lookup"]}},
                },
            },
            "humans": {"boss": {}},
        },
        "mcp": {
            "imports": [
                {
                    "name": "remote",
                    "transport": "http",
                    "url": f"{listener.url}/mcp",
                    "secret_env": "mcp_token",
                    "tools": ["lookup"],
                }
            ]
        },
        "workflow": {
            "type": "sequential",
            "steps": [
                {"id": "ask", "kind": "agent", "ref": "caller"},
                {"id": "tool", "kind": "agent", "ref": "mcp"},
                {"id": "ok", "kind": "human", "ref": "boss"},
            ],
        },
    }


def test_the_service_log_holds_no_planted_secret(tmp_path: Path) -> None:
    listener = Listener()
    project = tmp_path / "project"
    _project(project)
    receivers = [
        {"name": "slack", "type": "slack", "url_env": "SLACK_URL"},
        {"name": "hook", "type": "webhook", "url_env": "HOOK_URL", "secret_env": "HOOK_SECRET"},
    ]
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KNEO_")}
    env |= {
        "PYTHONPATH": str(ROOT),
        "KNEO_SERV_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
        "KNEO_SERV_AUTH_ENABLED": "true",
        "KNEO_SERV_ADMIN_API_KEY": ADMIN,
        "KNEO_SERV_LOG_LEVEL": "DEBUG",
        "KNEO_SERV_PROVIDER_RETRIES": "0",
        "KNEO_SERV_MCP_RETRIES": "0",
        "KNEO_SERV_NOTIFICATIONS_POLL_SECONDS": "0.1",
        "KNEO_SERV_NOTIFICATIONS_RECEIVERS": json.dumps(receivers),
        "SLACK_URL": f"{listener.url}/services/T0/B0/{SLACK_TOKEN}",
        "HOOK_URL": f"{listener.url}/hooks/{HOOK_TOKEN}?token={HOOK_TOKEN}",
        "HOOK_SECRET": HOOK_SECRET,
        "MODEL_KEY": MODEL_KEY,
        "MCP_TOKEN": MCP_TOKEN,
    }
    log_path = tmp_path / "service.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", LAUNCH, "service", "serve", "--port", str(port)],
            cwd=project,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait(lambda: http_calls.get(url + "/livez", timeout=1).status_code == 200, log_path)
        created = http_calls.post(
            url + "/v1/runs",
            headers={"Authorization": f"Bearer {ADMIN}"},
            json={"spec": _spec(listener), "input": "go"},
            timeout=60,
        )
        assert created.json()["status"] == "paused", created.text
        _wait(lambda: _reached(listener, "/services/") and _reached(listener, "/hooks/"), log_path)
        # the calls really carried the planted values to the listener
        sent = json.dumps(listener.requests)
        assert all(value in sent for value in (MODEL_KEY, MCP_TOKEN, SLACK_TOKEN, HOOK_TOKEN))
        http_calls.get(url + "/v1/runs", headers={"Authorization": f"Bearer {ADMIN}"})
    finally:
        proc.terminate()
        proc.wait(15)
        listener.close()
    text = log_path.read_text()
    assert '"path":"/v1/runs"' in text  # the DEBUG log really was written
    leaked = [value for value in PLANTED if value in text]
    assert not leaked, f"planted values in the service log: {leaked}"
    assert "HTTP Request:" not in text  # the HTTP clients' INFO lines


def _reached(listener: Listener, prefix: str) -> bool:
    return any(path.startswith(prefix) for path in listener.paths())


def _wait(ready: object, log_path: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if ready():  # type: ignore[operator]
                return
        except httpx2.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out; log tail: {log_path.read_text()[-3000:]}")
