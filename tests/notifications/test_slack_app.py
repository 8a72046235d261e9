"""The Slack app receiver end to end: a real dispatcher posts Block Kit messages (checked
with ``slack_sdk``'s models) to a local server speaking Slack's Web API through the trust
kernel's client; callbacks signed with ``slack_sdk``'s ``SignatureVerifier`` decide as the
mapped person; forged, stale, replayed and wrong-person clicks are refused; a decision from
the API updates every message; planted secrets appear nowhere. And the root of the
recipient bug: a task assigned to ``user:someone@example.com``, built as production builds
it, gets a link whose recipient is that address, not ``[REDACTED_EMAIL]``."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from slack_sdk.models.blocks import Block
from slack_sdk.signature import SignatureVerifier
from starlette.testclient import TestClient

from kneo.errors import KneoError
from kneo.kernel import Origins, http_client
from kneo.platform import create_platform
from kneo.platform.decision_links import DecisionLinks
from kneo.platform.notifications import DeliveryFailed, Receiver, start_dispatcher
from kneo.platform.slack import call
from kneo.platform.slack_signing import signature, verify
from kneo.service import create_app
from kneo.settings import Settings
from tests.notifications.receiver import Receiver as Hook
from tests.notifications.slack_api import SlackApi

ROOT = Path(__file__).resolve().parents[2]
SPEC = str(ROOT / "examples" / "hitl_approval.yaml")  # assigned to "reviewer"
TOKEN = "xoxb-planted-bot-token-5150"
SIGNING = "planted-signing-secret-8c1d"
KEY = "reviewer-key-0123456789"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("slack")
    users = {
        "UEMAIL": {"id": "UEMAIL", "is_email_confirmed": True,
                   "profile": {"email": "someone@example.com"}},
        "UUNCONF": {"id": "UUNCONF", "is_email_confirmed": False,
                    "profile": {"email": "reviewer@example.com"}},
    }  # fmt: skip
    slack, hook = SlackApi(TOKEN, users).start(), Hook().start()
    spec = tmp / "someone.yaml"
    spec.write_text(
        Path(SPEC).read_text().replace("assignee: reviewer", "assignee: user:someone@example.com")
    )
    receivers = [
        {"name": "team", "type": "slack_app", "url": slack.url, "channel": "C0KNEO",
         "token_env": "SLACK_BOT_TOKEN", "signing_secret_env": "SLACK_SIGNING_SECRET",
         "events": ["human.requested", "human.decision"]},
        {"name": "hook", "url": hook.url, "events": ["human.requested"],
         "personal_links": True},  # one person's endpoint: it may carry their link
    ]  # fmt: skip
    people = [{"user": "reviewer", "slack": "UREVIEW"}, {"user": "viewer", "slack": "UVIEW"}]
    settings = Settings.from_env(
        {
            "KNEO_SERV_DATABASE_URL": f"sqlite:///{tmp / 'kneo.sqlite'}",
            "KNEO_SERV_PROFILES_PATH": str(tmp / "profiles.json"),
            "KNEO_SERV_API_KEYS": f"reviewer:{KEY}:reviewer;viewer:viewer-key-0123456789:viewer",
            "KNEO_SERV_CONSOLE_SECRET": "console-secret-for-links-0123456789",
            "KNEO_SERV_PUBLIC_URL": "http://testserver",
            "KNEO_SERV_DECISION_LINKS": "true",
            "KNEO_SERV_NOTIFICATIONS_POLL_SECONDS": "0.05",
            "KNEO_SERV_NOTIFICATIONS_RECEIVERS": json.dumps(receivers),
            "KNEO_SERV_NOTIFICATIONS_PEOPLE": json.dumps(people),
            "SLACK_BOT_TOKEN": TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING,
        }
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)
        manager = create_platform(settings)
        app = create_app(False, settings=settings, manager=manager, start_worker=False)
        with TestClient(app, raise_server_exceptions=False) as client:
            dispatcher = start_dispatcher(manager, settings)
            assert dispatcher is not None
            yield {"manager": manager, "client": client, "slack": slack, "hook": hook,
                   "settings": settings, "spec": str(spec), "db": tmp / "kneo.sqlite"}  # fmt: skip
            dispatcher.stop()
        manager.store.close()
    slack.stop()
    hook.stop()


def wait_for(check: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + 15
    while not (found := check()):
        assert time.monotonic() < deadline, what
        time.sleep(0.03)
    return found


def posted(slack: SlackApi, continuation_id: str) -> list[dict[str, Any]]:
    return [
        m
        for m in slack.of("chat.postMessage")
        if continuation_id in json.dumps(m.get("blocks") or [])
    ]


def click(
    client: TestClient,
    payload: dict[str, Any],
    *,
    at: int | None = None,
    secret: str = SIGNING,
) -> Any:
    body = urlencode({"payload": json.dumps(payload)})
    stamp = at if at is not None else int(time.time())
    headers = SignatureVerifier(secret).generate_signature(timestamp=str(stamp), body=body)
    return client.post(
        "/hooks/slack/team/interactions",
        content=body,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": str(stamp),
            "X-Slack-Signature": headers,
        },
    )


def button_click(message: dict[str, Any], action_id: str, user: str) -> dict[str, Any]:
    """A ``block_actions`` callback as Slack sends it for a button of ``message``."""
    actions = next(b for b in message["blocks"] if b["type"] == "actions")
    button = next(e for e in actions["elements"] if e["action_id"] == action_id)
    return {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower()},
        "channel": {"id": message["channel"]},
        "container": {"type": "message", "channel_id": message["channel"]},
        "trigger_id": "1337.42.abcd",
        "actions": [{**button, "block_id": actions["block_id"], "action_ts": "1.2"}],
    }


def test_kneo_signs_and_verifies_as_slack_sdk_does(world: dict[str, Any]) -> None:
    store = world["manager"].store.idempotency
    body, stamp = "payload=%7B%7D", str(int(time.time()))
    expected = SignatureVerifier(SIGNING).generate_signature(timestamp=stamp, body=body)
    assert signature(SIGNING, stamp, body.encode()) == expected
    headers = {"x-slack-request-timestamp": stamp, "x-slack-signature": expected}
    assert SignatureVerifier(SIGNING).is_valid_request(body, headers)
    with pytest.raises(KneoError, match="does not match"):
        verify(SIGNING, headers, b"payload=%7B%7D ", time.time(), store, scope="team")
    verify(SIGNING, headers, body.encode(), time.time(), store, scope="team")
    with pytest.raises(KneoError, match="replay"):
        verify(SIGNING, headers, body.encode(), time.time(), store, scope="team")
    verify(SIGNING, headers, body.encode(), time.time(), store, scope="other-app")


def test_a_link_names_the_real_assignee_as_production_builds_the_event(
    world: dict[str, Any],
) -> None:
    paused = world["manager"].run_from_spec(input_text="to someone", spec_path=world["spec"])
    hook = world["hook"]
    body = wait_for(
        lambda: next(
            (b for b in hook.bodies() if b.get("continuation_id") == paused.continuation_id), None
        ),
        "no human.requested delivery",
    )
    assert body["assignee"] == "user:[REDACTED_EMAIL]"  # what viewers of the event see
    links = DecisionLinks.from_settings(world["settings"])
    assert links is not None
    claim = links.read(body["decision_link"].rsplit("/", 1)[1])
    assert claim.recipient == "someone@example.com"


def test_a_click_decides_as_the_mapped_person_and_every_message_updates(
    world: dict[str, Any],
) -> None:
    manager, slack, client = world["manager"], world["slack"], world["client"]
    paused = manager.run_from_spec(input_text="from slack", spec_path=SPEC)
    messages = wait_for(lambda: len(posted(slack, paused.continuation_id)) == 2 and
                        posted(slack, paused.continuation_id), "no Slack messages")  # fmt: skip
    assert {m["channel"] for m in messages} == {"C0KNEO", "UREVIEW"}  # the channel, a DM
    for block in messages[0]["blocks"]:
        Block.parse(block).validate_json()  # slack_sdk's own model accepts each block
    refused = click(client, button_click(messages[0], "kneo.approve", "UVIEW"))
    assert refused.status_code == 200 and refused.json()["error"] == "forbidden"
    told = slack.of("chat.postEphemeral")[-1]
    assert told["user"] == "UVIEW" and "human:write" in told["text"]
    assert manager.store.tasks.get_continuation(paused.continuation_id).status == "pending"
    payload = button_click(messages[0], "kneo.approve", "UREVIEW")
    decided = click(client, payload)
    assert decided.json() == {"ok": True, "decided": "approved", "by": "reviewer"}
    assert manager.store.runs.get_run(paused.run_id).status == "succeeded"
    replayed = click(client, payload, at=int(decided.request.headers["X-Slack-Request-Timestamp"]))
    assert replayed.status_code == 401 and "replay" in replayed.json()["message"]
    every = {(m["in"], m["ts"]) for m in messages}
    updated = wait_for(
        lambda: {(u["channel"], u["ts"]) for u in slack.of("chat.update")} >= every,
        "not every message was updated",
    )
    assert updated
    texts = [u["text"] for u in slack.of("chat.update") if (u["channel"], u["ts"]) in every]
    assert all(t.startswith("*approved* by <@UREVIEW> at ") for t in texts)
    events = client.get(
        "/v1/audit-events",
        params={"run_id": paused.run_id, "event_type": "human.decision"},
        headers={"Authorization": f"Bearer {KEY}"},
    ).json()["events"]
    assert events[0]["actor"] == "reviewer"
    assert events[0]["payload"]["identity"]["method"] == "slack"


def test_forged_stale_and_unknown_clicks_are_refused(world: dict[str, Any]) -> None:
    manager, slack, client = world["manager"], world["slack"], world["client"]
    paused = manager.run_from_spec(input_text="refusals", spec_path=SPEC)
    message = wait_for(lambda: posted(slack, paused.continuation_id), "no Slack message")[0]
    payload = button_click(message, "kneo.approve", "UREVIEW")
    forged = click(client, payload, secret="not-the-signing-secret")
    assert forged.status_code == 401 and forged.json()["error"] == "slack_signature_invalid"
    stale = click(client, payload, at=int(time.time()) - 301)
    assert stale.status_code == 401 and "300 s" in stale.json()["message"]
    unconfirmed = click(client, button_click(message, "kneo.approve", "UUNCONF"))
    assert unconfirmed.json()["error"] == "slack_user_unknown"
    by_email = click(client, button_click(message, "kneo.reject", "UEMAIL"))
    assert by_email.json()["error"] == "forbidden"  # mapped by confirmed e-mail, not entitled
    assert "someone@example.com may not decide" in by_email.json()["message"]
    altered = button_click(message, "kneo.approve", "UREVIEW")
    altered["actions"][0]["action_id"] = "kneo.reject"  # a reject that carries approve
    assert click(client, altered).json()["error"] == "invalid_request"
    assert manager.store.tasks.get_continuation(paused.continuation_id).status == "pending"
    unsigned = client.post("/hooks/slack/team/interactions", content=b"payload=%7B%7D")
    assert unsigned.status_code == 401
    assert client.post("/hooks/slack/nobody/interactions", content=b"").status_code == 404


def test_a_decision_in_the_api_updates_the_slack_messages(world: dict[str, Any]) -> None:
    manager, slack, client = world["manager"], world["slack"], world["client"]
    paused = manager.run_from_spec(input_text="from the api", spec_path=SPEC)
    messages = wait_for(lambda: len(posted(slack, paused.continuation_id)) == 2 and
                        posted(slack, paused.continuation_id), "no Slack messages")  # fmt: skip
    rid = manager.store.tasks.get_continuation(paused.continuation_id).requests[0]["request_id"]
    answer = client.post(
        f"/v1/human-tasks/{paused.continuation_id}/resume",
        json={"request_id": rid, "decision": "rejected"},
        headers={"Authorization": f"Bearer {KEY}"},
    )
    assert answer.status_code == 200, answer.text
    every = {(m["in"], m["ts"]) for m in messages}
    wait_for(
        lambda: {(u["channel"], u["ts"]) for u in slack.of("chat.update")} >= every,
        "the API's decision did not update the Slack messages",
    )
    texts = [u["text"] for u in slack.of("chat.update") if (u["channel"], u["ts"]) in every]
    assert texts and all(t.startswith("*rejected* by <@UREVIEW>") for t in texts)


def test_the_slack_client_reaches_only_the_configured_api() -> None:
    receiver = Receiver("team", "slack_app", "http://127.0.0.1:9/api", token=TOKEN)
    grant = Origins.of("http://127.0.0.1:8/api")
    with (
        http_client(grant, path="notifications.receivers") as c,
        pytest.raises(DeliveryFailed, match="refused") as refused,
    ):
        call(c, receiver, "chat.postMessage", {"channel": "C0KNEO", "text": "x"})
    assert TOKEN not in str(refused.value)


def test_planted_secrets_appear_nowhere(
    world: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    manager, slack, client = world["manager"], world["slack"], world["client"]
    with caplog.at_level(logging.DEBUG):
        paused = manager.run_from_spec(input_text="secrets", spec_path=SPEC)
        message = wait_for(lambda: posted(slack, paused.continuation_id), "no Slack message")[0]
        answers = [
            click(client, button_click(message, "kneo.approve", "UVIEW")).text,
            click(client, {"type": "block_actions", "user": {"id": "U1"}}, secret="x").text,
            client.get("/v1/notifications", headers={"Authorization": f"Bearer {KEY}"}).text,
            client.get("/v1/audit-events", headers={"Authorization": f"Bearer {KEY}"}).text,
        ]
    stored = world["db"].read_bytes()
    for planted in (TOKEN, SIGNING):
        assert planted not in caplog.text
        assert all(planted not in text for text in answers)
        assert planted.encode() not in stored
    shown = repr(Receiver("r", "slack_app", "http://x", token=TOKEN, signing_secret=SIGNING))
    assert TOKEN not in shown and SIGNING not in shown


def test_the_docs_manifest_and_receiver_are_what_kneo_serves() -> None:
    import re

    import yaml

    from kneo.service.slack import router
    from kneo.spec.project import NotificationsConfig

    text = (ROOT / "docs" / "notifications.md").read_text()
    section = text[text.index("## Deciding in Slack") : text.index("## Microsoft Teams")]
    manifest, config = (yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", section, re.S))
    url = manifest["settings"]["interactivity"]["request_url"]
    name = config["notifications"]["receivers"][0]["name"]
    assert url.endswith(f"/hooks/slack/{name}/interactions")
    assert [r.path for r in router.routes] == ["/hooks/slack/{receiver}/interactions"]
    parsed = NotificationsConfig.model_validate(config["notifications"])
    assert parsed.receivers[0].type == "slack_app" and parsed.people[0].slack == "U0ALICE01"


def test_a_request_for_input_is_answered_in_a_modal(world: dict[str, Any]) -> None:
    from slack_sdk.models.views import View

    manager, slack, client = world["manager"], world["slack"], world["client"]
    paused = manager.run_from_spec(
        input_text="modal", spec_path=str(ROOT / "examples" / "hitl_input.yaml")
    )
    message = wait_for(lambda: posted(slack, paused.continuation_id), "no Slack message")[0]
    opened = click(client, button_click(message, "kneo.respond", "UREVIEW"))
    assert opened.json() == {"ok": True, "opened": "modal"}
    call = slack.of("views.open")[-1]
    assert call["trigger_id"] == "1337.42.abcd"
    View(**call["view"]).validate_json()  # slack_sdk's own model accepts the modal
    view = call["view"]
    fields = {b["block_id"]: b for b in view["blocks"]}
    threshold, mode = fields["field.threshold"], fields["field.mode"]  # the schema's fields
    assert threshold["element"]["type"] == "number_input" and threshold["optional"] is False
    assert [o["text"]["text"] for o in mode["element"]["options"]] == ["strict", "lenient"]
    assert mode["optional"] is True and "content" not in fields

    def submit(threshold: str, mode: str | None) -> Any:
        values = {
            "decision": {"value": {"type": "static_select",
                                   "selected_option": {"value": "provided"}}},
            "field.threshold": {"value": {"type": "number_input", "value": threshold}},
            "field.mode": {"value": {"type": "static_select", "selected_option":
                                     {"value": json.dumps(mode)} if mode else None}},
        }  # fmt: skip
        payload = {
            "type": "view_submission",
            "user": {"id": "UREVIEW"},
            "view": {**view, "id": "V1", "state": {"values": values}},
        }
        return click(client, payload).json()

    refused = submit("-", None)  # not a number: shown under its field
    assert refused["response_action"] == "errors" and "field.threshold" in refused["errors"]
    assert manager.store.tasks.get_continuation(paused.continuation_id).status == "pending"
    assert submit("0.8", "strict") == {"ok": True, "decided": "provided", "by": "reviewer"}
    run = manager.store.runs.get_run(paused.run_id)
    assert '{"mode": "strict", "threshold": 0.8}' in str(run.output_text)  # typed, as sent
    assert manager.store.runs.get_run(paused.run_id).status == "succeeded"


def test_respond_asks_who_clicked_first_and_a_failed_form_is_told(world: dict[str, Any]) -> None:
    """``Respond…``: an unknown clicker, and a viewer, get no form (nothing of the request
    is shown to them); Slack refusing ``views.open`` (``expired_trigger_id``) is told to the
    clicker, never a 500."""
    manager, slack, client = world["manager"], world["slack"], world["client"]
    paused = manager.run_from_spec(
        input_text="respond", spec_path=str(ROOT / "examples" / "hitl_input.yaml")
    )
    message = wait_for(lambda: posted(slack, paused.continuation_id), "no Slack message")[0]
    opened = len(slack.of("views.open"))
    for user, code in (("UNOBODY", "slack_user_unknown"), ("UVIEW", "forbidden")):
        refused = click(client, button_click(message, "kneo.respond", user))
        assert refused.status_code == 200 and refused.json()["error"] == code
    assert len(slack.of("views.open")) == opened  # no form for them
    slack.refuse["views.open"] = "expired_trigger_id"
    try:
        failed = click(client, button_click(message, "kneo.respond", "UREVIEW"))
    finally:
        del slack.refuse["views.open"]
    assert failed.status_code == 200
    assert failed.json()["error"] == "slack_call_failed"
    assert "expired_trigger_id" in failed.json()["message"]
    told = slack.of("chat.postEphemeral")[-1]
    assert told["user"] == "UREVIEW" and "did not open the form" in told["text"]
    assert manager.store.tasks.get_continuation(paused.continuation_id).status == "pending"
