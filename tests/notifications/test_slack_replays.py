"""A Slack callback is accepted once by all of Kneo, on SQLite and PostgreSQL: replayed to
another service process (two apps, each with its own platform, on one database: two
replicas), or to a process started after the first one stopped, it is refused
(``401 slack_signature_invalid``) before anything in it is read; a new callback is not.
Only a callback Slack signed, within its window, is remembered: a forged or stale one
writes nothing."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa
from slack_sdk.signature import SignatureVerifier
from starlette.testclient import TestClient

from kneo.platform import create_platform
from kneo.service import create_app
from kneo.settings import Settings
from kneo.store import tables as t

from .slack_api import SlackApi

ROOT = Path(__file__).resolve().parents[2]
SIGNING = "replay-test-signing-secret"
TOKEN = "xoxb-replay-test-token"


@pytest.fixture
def replica(database_url: str, tmp_path: Path) -> Iterator[Any]:
    """``replica()`` -> a started service app (its own platform) on the shared database;
    ``replica.stop(app)`` stops one, as a process exits."""
    slack = SlackApi(TOKEN, {}).start()
    receivers = [{"name": "team", "type": "slack_app", "url": slack.url, "channel": "C0KNEO",
                  "token_env": "SLACK_BOT_TOKEN", "signing_secret_env": "SLACK_SIGNING_SECRET",
                  "events": ["human.decision"]}]  # fmt: skip
    settings = Settings.from_env(
        {
            "KNEO_SERV_DATABASE_URL": database_url,
            "KNEO_SERV_PROFILES_PATH": str(tmp_path / "profiles.json"),
            "KNEO_SERV_NOTIFICATIONS_RECEIVERS": json.dumps(receivers),
            "KNEO_SERV_CONSOLE_ENABLED": "false",  # the API alone: three apps start faster
            "SLACK_BOT_TOKEN": TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING,
        }
    )
    running: dict[int, tuple[TestClient, Any]] = {}

    class Replicas:
        def __call__(self) -> TestClient:
            manager = create_platform(settings)
            app = create_app(False, settings=settings, manager=manager, start_worker=False)
            client = TestClient(app, raise_server_exceptions=False)
            client.__enter__()
            running[id(client)] = (client, manager)
            return client

        def stop(self, client: TestClient) -> None:
            client, manager = running.pop(id(client))
            client.__exit__(None, None, None)
            manager.store.close()

    replicas = Replicas()
    yield replicas
    for client in [c for c, _ in running.values()]:
        replicas.stop(client)
    slack.stop()


def signed(trigger: str) -> tuple[bytes, dict[str, str]]:
    """A callback as Slack signs it (a click on no Kneo button: verified, then refused)."""
    payload = {"type": "block_actions", "user": {"id": "UANY"}, "trigger_id": trigger,
               "actions": [{"action_id": "kneo.approve", "value": "{}"}]}  # fmt: skip
    body = urlencode({"payload": json.dumps(payload)})
    stamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": SignatureVerifier(SIGNING).generate_signature(
            timestamp=stamp, body=body
        ),
    }
    return body.encode(), headers


def test_a_replay_to_another_replica_or_after_a_restart_is_refused(replica: Any) -> None:
    first, second = replica(), replica()
    path = "/hooks/slack/team/interactions"
    store = first.app.state.manager.store  # type: ignore[attr-defined]

    def remembered() -> int:
        seen = t.seen_callbacks
        with store.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(seen)).scalar_one())

    body, headers = signed("1.first")
    # a caller without the signing secret, or with a stale callback, writes nothing
    forged = {**headers, "X-Slack-Signature": "v0=" + "0" * 64}
    stale = {**headers, "X-Slack-Request-Timestamp": str(int(time.time()) - 301)}
    for bad in (forged, stale):
        assert first.post(path, content=body, headers=bad).status_code == 401
    assert remembered() == 0
    accepted = first.post(path, content=body, headers=headers)
    assert accepted.status_code == 200 and accepted.json()["error"] == "invalid_request"
    assert remembered() == 1
    elsewhere = second.post(path, content=body, headers=headers)
    assert elsewhere.status_code == 401
    assert elsewhere.json()["error"] == "slack_signature_invalid"
    assert "replay" in elsewhere.json()["message"]
    replica.stop(first)
    replica.stop(second)
    restarted = replica()  # no process that saw it is left
    again = restarted.post(path, content=body, headers=headers)
    assert again.status_code == 401 and "replay" in again.json()["message"]
    fresh_body, fresh_headers = signed("1.second")  # a callback of its own is not a replay
    fresh = restarted.post(path, content=fresh_body, headers=fresh_headers)
    assert fresh.status_code == 200 and fresh.json()["error"] == "invalid_request"
