"""kill -9 between a Slack click and its decision: the service process dies while the click
is being handled (Slack's ``users.info`` held), a new process starts on the same database,
and the task is decided exactly once: the interrupted click decided nothing, the next click
decides, and a later one is refused as already decided."""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx2
import pytest
from slack_sdk.signature import SignatureVerifier

from tests import http_calls
from tests.notifications.slack_api import SlackApi

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "service"))
from svc_helpers import LiveServer

ROOT = Path(__file__).resolve().parents[2]
SIGNING = "kill-test-signing-secret"
TOKEN = "xoxb-kill-test-token"


def click(url: str, value: dict[str, str]) -> httpx2.Response:
    payload = {
        "type": "block_actions",
        "user": {"id": "UANN"},
        # each click is its own callback, as Slack sends it (a fresh trigger id): two clicks
        # in one second must not read as a replay of one
        "trigger_id": uuid.uuid4().hex,
        "actions": [{"action_id": "kneo.approve", "value": json.dumps(value)}],
    }
    body = urlencode({"payload": json.dumps(payload)})
    stamp = str(int(time.time()))
    signature = SignatureVerifier(SIGNING).generate_signature(timestamp=stamp, body=body)
    return http_calls.post(
        f"{url}/hooks/slack/team/interactions",
        content=body,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": signature,
        },
        timeout=30,
    )


@pytest.mark.slow
def test_kill_9_between_click_and_decision_decides_once(tmp_path: Path) -> None:
    users = {"UANN": {"id": "UANN", "is_email_confirmed": True,
                      "profile": {"email": "ann@example.com"}}}  # fmt: skip
    slack = SlackApi(TOKEN, users).start()
    receivers = [{"name": "team", "type": "slack_app", "url": slack.url, "channel": "C0KNEO",
                  "token_env": "SLACK_BOT_TOKEN", "signing_secret_env": "SLACK_SIGNING_SECRET",
                  "events": ["human.decision"]}]  # fmt: skip
    env = {
        "KNEO_SERV_DATABASE_URL": f"sqlite:///{tmp_path / 'kneo.sqlite'}",
        "KNEO_SERV_PROFILES_PATH": str(tmp_path / "profiles.json"),
        "KNEO_SERV_NOTIFICATIONS_RECEIVERS": json.dumps(receivers),
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING,
    }
    server = LiveServer(env, ROOT, tmp_path / "server.log")
    server.start()
    try:
        run = http_calls.post(f"{server.url}/v1/runs", timeout=60,
                          json={"input": "x", "spec_path": "examples/hitl_approval.yaml"}).json()  # fmt: skip
        value = {"c": run["continuation_id"], "d": "approved",
                 "r": run["metadata"]["pending_human_request"]["request_id"]}  # fmt: skip
        slack.holding.set()
        answers: list[Any] = []
        clicking = threading.Thread(target=lambda: answers.append(_try(click, server.url, value)))
        clicking.start()
        assert slack.held.wait(30), "the click never reached users.info"
        assert server.proc is not None
        server.proc.send_signal(signal.SIGKILL)  # between the click and its decision
        server.proc.wait(10)
        clicking.join(30)
        assert answers and answers[0] is None  # the click got no answer: its process died
        slack.holding.clear()
        slack.release.set()
        server.start()  # the same database, a new process
        task = http_calls.get(f"{server.url}/v1/human-tasks/{value['c']}", timeout=30).json()
        assert task["status"] == "pending"  # the interrupted click decided nothing
        again = click(server.url, value).json()
        assert again == {"ok": True, "decided": "approved", "by": "ann@example.com"}
        # The click is answered at once and its run goes on on the worker: a click while the
        # run is still being resumed is ``resource_locked`` (documented); once it has ended,
        # the request is resolved.
        deadline = time.monotonic() + 60
        while (
            http_calls.get(f"{server.url}/v1/runs/{run['run_id']}", timeout=30).json()["status"]
            == "running"
            and time.monotonic() < deadline
        ):
            time.sleep(0.05)
        third = click(server.url, value).json()
        assert third["ok"] is False and third["error"] == "request_already_resolved"
        audit = http_calls.get(f"{server.url}/v1/audit-events", timeout=30,
                           params={"run_id": run["run_id"], "event_type": "human.decision"}).json()  # fmt: skip
        assert [e["actor"] for e in audit["events"]] == ["ann@example.com"]
    finally:
        server.stop()
        slack.release.set()
        slack.stop()


def _try(call: Any, *args: Any) -> Any:
    try:
        return call(*args)
    except httpx2.HTTPError:
        return None
