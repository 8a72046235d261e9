"""Decision links: a real webhook delivery (the dispatcher POSTs to a local receiver) carries
a signed link for the request's assignee; opening it decides nothing, posting it decides once
as that recipient; used, expired, forged or unentitled links are refused with a page that
says why."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from kneo.platform import create_platform
from kneo.platform.decision_links import DecisionLinks
from kneo.platform.notifications import start_dispatcher, with_decision_link
from kneo.platform.recipients import People, Person
from kneo.service import create_app
from kneo.settings import Settings
from kneo.store import NotificationEvent
from tests.notifications.receiver import Receiver

ROOT = Path(__file__).resolve().parents[2]
SPEC = str(ROOT / "examples" / "hitl_approval.yaml")  # assigned to "reviewer"
#: the reviewer's own endpoint: it may carry their personal link
HOOK = {"name": "hook", "secret_env": "NOTIFY_SECRET", "personal_links": True}


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    monkeypatch.chdir(ROOT)
    hook = Receiver().start()
    settings = Settings.from_env(
        {
            "KNEO_SERV_DATABASE_URL": f"sqlite:///{tmp_path / 'kneo.sqlite'}",
            "KNEO_SERV_PROFILES_PATH": str(tmp_path / "profiles.json"),
            "KNEO_SERV_API_KEYS": "reviewer:reviewer-key-0123456789:reviewer;"
            "viewer:viewer-key-0123456789:viewer",
            "KNEO_SERV_CONSOLE_SECRET": "console-secret-for-links-0123456789",
            "KNEO_SERV_PUBLIC_URL": "http://testserver",
            "KNEO_SERV_DECISION_LINKS": "true",
            "KNEO_SERV_NOTIFICATIONS_POLL_SECONDS": "0.05",
            "KNEO_SERV_NOTIFICATIONS_RECEIVERS": json.dumps([HOOK | {"url": hook.url}]),
            "NOTIFY_SECRET": "whsec-test-0123456789",
        }
    )
    manager = create_platform(settings)
    app = create_app(False, settings=settings, manager=manager, start_worker=False)
    client = TestClient(app, raise_server_exceptions=False)
    client.__enter__()
    dispatcher = start_dispatcher(manager, settings)
    assert dispatcher is not None
    yield {"manager": manager, "client": client, "hook": hook, "settings": settings}
    dispatcher.stop()
    client.__exit__(None, None, None)
    manager.store.close()
    hook.stop()


def delivered_link(hook: Receiver) -> str:
    deadline = time.monotonic() + 20
    while not [b for b in hook.bodies() if b["type"] == "human.requested"]:
        assert time.monotonic() < deadline, "no human.requested delivery"
        time.sleep(0.05)
    body = next(b for b in hook.bodies() if b["type"] == "human.requested")
    link = str(body["decision_link"])
    assert link.startswith("http://testserver/ui/decide/")
    return link.removeprefix("http://testserver")


def test_a_delivered_link_decides_once(world: dict[str, Any]) -> None:
    manager, client = world["manager"], world["client"]
    paused = manager.run_from_spec(input_text="from the message", spec_path=SPEC)
    path = delivered_link(world["hook"])
    opened = client.get(path)
    assert opened.status_code == 200 and "Approve the draft?" in opened.text
    assert "reviewer" in opened.text
    assert manager.store.tasks.get_continuation(paused.continuation_id).status == "pending"  # GET
    decided = client.post(path, data={"decision": "approved"})
    assert decided.status_code == 200 and "Decided: approved" in decided.text
    assert manager.store.runs.get_run(paused.run_id).status == "succeeded"
    again = client.post(path, data={"decision": "rejected"})
    assert again.status_code == 409
    assert "Already approved by" in again.text and "reviewer" in again.text
    assert "Already approved by" in client.get(path).text
    events = client.get(
        "/v1/audit-events",
        params={"run_id": paused.run_id, "event_type": "human.decision"},
        headers={"Authorization": "Bearer reviewer-key-0123456789"},
    ).json()["events"]
    assert [e["actor"] for e in events] == ["reviewer"]
    assert events[0]["payload"]["identity"]["method"] == "decision_link"


def test_expired_forged_and_unentitled_links_are_refused(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    manager, client = world["manager"], world["client"]
    paused = manager.run_from_spec(input_text="refusals", spec_path=SPEC)
    path = delivered_link(world["hook"])
    forged = client.get(path[:-3] + ("aaa" if not path.endswith("aaa") else "bbb"))
    assert forged.status_code == 404 and "not a valid decision link" in forged.text
    links = DecisionLinks.from_settings(world["settings"])
    assert links is not None
    rid = manager.store.tasks.get_continuation(paused.continuation_id).requests[0]["request_id"]
    viewer = links.url(paused.continuation_id, rid, "viewer").removeprefix("http://testserver")
    refused = client.post(viewer, data={"decision": "approved"})
    assert refused.status_code == 403 and "human:write" in refused.text
    import itsdangerous.timed

    later = itsdangerous.timed.TimestampSigner.get_timestamp
    monkeypatch.setattr(
        itsdangerous.timed.TimestampSigner, "get_timestamp", lambda self: later(self) + 2 * 86_400
    )
    expired = client.post(path, data={"decision": "approved"})
    assert expired.status_code == 410 and "expired" in expired.text
    assert manager.store.tasks.get_continuation(paused.continuation_id).status == "pending"


def test_only_a_request_for_one_person_or_key_gets_a_link() -> None:
    links = DecisionLinks("secret-0123456789", 60, "https://kneo.example")
    base = {"id": "evt_1", "type": "human.requested"}

    def event(assignee: str | None) -> Any:
        return NotificationEvent(
            event_id="evt_1",
            event_type="human.requested",
            severity="info",
            environment="dev",
            assignee=assignee,
            actor=None,
            run_id="run_1",
            continuation_id="cont_1",
            payload={"request_id": "req_1", "assignee": assignee},
            created_at=datetime.now(UTC),
        )

    def entry(assignee: str | None) -> dict[str, Any]:
        return {"request_id": "req_1", "assignee": assignee}  # as the task stores it

    people = People([Person("bob@example.com", groups=frozenset({"release-managers"}))])
    group = with_decision_link(
        base, event("group:[REDACTED]"), links, entry("group:release-managers"), people
    )
    assert "decision_link" not in group
    assert links.read(group["decision_links"]["bob@example.com"].rsplit("/", 1)[1]).recipient == (
        "bob@example.com"
    )  # each member, a link of their own
    assert "decision_link" not in with_decision_link(base, event(None), links, entry(None))
    off = with_decision_link(base, event("alice"), None, entry("alice"))  # links off
    assert "decision_link" not in off
    # the event's assignee is redacted; the task's is what the link is for
    redacted = event("user:[REDACTED_EMAIL]")
    link = with_decision_link(base, redacted, links, entry("user:alice@example.com"))
    assert links.read(link["decision_link"].rsplit("/", 1)[1]).recipient == "alice@example.com"
    assert "decision_link" not in with_decision_link(base, redacted, links, None)  # task gone
