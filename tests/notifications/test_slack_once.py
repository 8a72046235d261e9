"""A Slack message is posted once, however its delivery is retried, on SQLite and
PostgreSQL: a dispatcher "killed" (a fault injected where the store records it: the row stays
leased, as after ``kill -9``) between ``chat.postMessage`` and the record of its answer, or
between the record of its intent and the post, leaves the row to another dispatcher, which
finds the message by its key in the conversation's history and updates it instead of posting
again, or posts it once when it was never posted. When Slack will not show the history, the
retry posts nothing rather than risk a second message, and the decision updates what is
known."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.models.metadata import Metadata

from kneo.engine.human import Decision
from kneo.platform.notifications import Dispatcher, load_receivers
from kneo.platform.recipients import load_people
from kneo.platform.slack import METADATA_PREFIX

from .slack_api import SlackApi

ROOT = Path(__file__).resolve().parents[2]
SPEC = str(ROOT / "examples" / "hitl_approval.yaml")  # assigned to "reviewer"
TOKEN = "xoxb-once-test-token"
CHANNEL = "C0KNEO"
DM = "DUREVIEW"  # the reviewer's direct-message conversation (UREVIEW's)


class Killed(Exception):
    """The injected fault: the process dies here (the row stays leased)."""


class Crashing:
    """The dispatcher's store, but a transaction's ``set_metadata`` dies once, when ``at``
    says so: after its write commits (the write done, then the process gone) or instead of
    it (the transaction rolled back)."""

    def __init__(self, store: Any, at: Callable[[list[dict[str, Any]]], bool]) -> None:
        self._store, self._at, self.fired = store, at, False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    @contextlib.contextmanager
    def transaction(self, held: Any = None) -> Iterator[Any]:
        dying = _Dying(self)
        with self._store.transaction(held) as tx:
            dying.tx = tx
            yield dying
        if dying.after_commit:
            raise Killed("killed between the two writes")


class _Dying:
    """A transaction of :class:`Crashing`: its ``set_metadata`` decides when to die."""

    def __init__(self, crashing: Crashing) -> None:
        self.crashing, self.after_commit = crashing, False
        self.tx: Any = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.tx, name)

    def set_metadata(self, key: str, value: Any) -> None:
        crashing = self.crashing
        messages = value.get("messages", []) if key.startswith(METADATA_PREFIX) else []
        if not crashing.fired and crashing._at(messages):
            crashing.fired = True
            if not (messages and not messages[-1].get("ts")):
                raise Killed("killed before the write")
            self.after_commit = True  # the intent is written, then death
        self.tx.set_metadata(key, value)


@pytest.fixture
def slack() -> Iterator[SlackApi]:
    api = SlackApi(TOKEN, {}).start()
    yield api
    api.stop()


def _manager(platform: Any, slack: SlackApi) -> Any:
    receivers = [{"name": "team", "type": "slack_app", "url": slack.url, "channel": CHANNEL,
                  "token_env": "SLACK_BOT_TOKEN", "signing_secret_env": "SLACK_SIGNING_SECRET",
                  "events": ["human.requested", "human.decision"]}]  # fmt: skip
    return platform(
        KNEO_SERV_NOTIFICATIONS_RECEIVERS=json.dumps(receivers),
        KNEO_SERV_NOTIFICATIONS_PEOPLE=json.dumps([{"user": "reviewer", "slack": "UREVIEW"}]),
        KNEO_SERV_NOTIFICATIONS_BACKOFF_SECONDS="0.05",
        SLACK_BOT_TOKEN=TOKEN,
        SLACK_SIGNING_SECRET="once-signing-secret",
    )


def _dispatcher(manager: Any, store: Any, owner: str) -> Dispatcher:
    settings = dataclasses.replace(manager.settings.notifications, lease_seconds=0.3)
    return Dispatcher(
        store,
        load_receivers(manager.settings),
        settings,
        owner=owner,
        people=load_people(manager.settings),
    )


def _deliver(dispatcher: Dispatcher, done: Callable[[], bool]) -> None:
    """Tick ``dispatcher`` until ``done`` (a lease left by a "killed" one lapses first)."""
    deadline = time.monotonic() + 15
    try:
        while not done():
            assert time.monotonic() < deadline, "not delivered"
            dispatcher.run_once()
            dispatcher.wait_idle(5)
            time.sleep(0.02)
    finally:
        dispatcher.stop()


def _posts(slack: SlackApi) -> dict[str, int]:
    """``chat.postMessage`` calls per conversation."""
    found: dict[str, int] = {}
    for call in slack.of("chat.postMessage"):
        found[call["in"]] = found.get(call["in"], 0) + 1
    return found


def _recorded(manager: Any, cid: str) -> list[dict[str, Any]]:
    value = manager.store.metadata.get_metadata(f"{METADATA_PREFIX}team.{cid}") or {}
    return list(value.get("messages", []))


def _sent(manager: Any) -> bool:
    return any(r.status == "sent" for r in manager.store.notifications.list_notifications().items)


#: Where the dispatcher dies: after posting the DM, before recording it; after recording
#: the intent to post to the channel, before posting.
CRASHES: dict[str, Callable[[list[dict[str, Any]]], bool]] = {
    "after-the-post": lambda ms: any(m.get("to") == "UREVIEW" and m.get("ts") for m in ms),
    "after-the-intent": lambda ms: any(m.get("to") == CHANNEL and not m.get("ts") for m in ms),
}


@pytest.mark.parametrize("crash", sorted(CRASHES))
def test_a_retry_after_a_crash_posts_each_message_once(
    platform: Any, slack: SlackApi, crash: str
) -> None:
    manager = _manager(platform, slack)
    paused = manager.run_from_spec(input_text="once", spec_path=SPEC)
    crashing = Crashing(manager.store, CRASHES[crash])
    _deliver(_dispatcher(manager, crashing, "notify:first"), lambda: crashing.fired)
    assert not _sent(manager)  # the "killed" delivery holds its row until its lease lapses
    _deliver(_dispatcher(manager, manager.store, "notify:second"), lambda: _sent(manager))
    assert _posts(slack) == {CHANNEL: 1, DM: 1}  # once each, whatever the crash
    recorded = {
        m["to"]: (m["channel"], m["ts"]) for m in _recorded(manager, paused.continuation_id)
    }
    posted = {c["in"]: c["ts"] for c in slack.of("chat.postMessage")}
    assert recorded == {CHANNEL: (CHANNEL, posted[CHANNEL]), "UREVIEW": (DM, posted[DM])}
    for call in slack.of("chat.postMessage"):
        assert Metadata(**call["metadata"]).to_dict() == call["metadata"]  # slack_sdk's model
    updates = [(u["channel"], u["ts"]) for u in slack.of("chat.update")]
    if crash == "after-the-post":  # found by its key in the DM's history and updated
        assert slack.of("conversations.open")[-1]["users"] == "UREVIEW"
        assert updates == [(DM, posted[DM])]
    else:  # the intent was recorded and nothing posted: the history has nothing, it posts
        assert updates == [] and slack.of("conversations.history")[-1]["channel"] == CHANNEL


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # no storage of its own
def test_an_unreadable_history_posts_nothing_again(
    platform: Any, slack: SlackApi, caplog: pytest.LogCaptureFixture
) -> None:
    slack.refuse["conversations.history"] = "missing_scope"  # an app without *:history
    manager = _manager(platform, slack)
    paused = manager.run_from_spec(input_text="unknown", spec_path=SPEC)
    crashing = Crashing(manager.store, lambda ms: any(m.get("ts") for m in ms))
    _deliver(_dispatcher(manager, crashing, "notify:first"), lambda: crashing.fired)
    with caplog.at_level(logging.WARNING):
        _deliver(_dispatcher(manager, manager.store, "notify:second"), lambda: _sent(manager))
    assert _posts(slack) == {CHANNEL: 1, DM: 1}
    assert "not posted again" in caplog.text and TOKEN not in caplog.text
    recorded = {m["to"]: m for m in _recorded(manager, paused.continuation_id)}
    assert recorded[CHANNEL].get("unknown") is True and "ts" not in recorded[CHANNEL]
    rid = manager.store.tasks.get_continuation(paused.continuation_id).requests[0]["request_id"]
    manager.resume(paused.continuation_id, Decision(rid, "approved"), actor="reviewer")
    _deliver(
        _dispatcher(manager, manager.store, "notify:third"),
        lambda: bool(slack.of("chat.update")),
    )
    assert [(u["channel"], u["ts"]) for u in slack.of("chat.update")] == [
        (DM, recorded["UREVIEW"]["ts"])  # the one known to be posted
    ]
