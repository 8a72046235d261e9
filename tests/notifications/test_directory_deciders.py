"""The people directory's groups count where a person decides from a message: a decision
link and a Slack click go through the one deciders check, which puts the person in their
``notifications.people`` groups before the role map (``group:release=reviewer``) and a
promotion's approvers (``group:release``) are asked. A member of ``release`` decides a task
assigned to ``group:release`` and approves a promotion ``release`` approves; someone outside
the group is refused, whether they lack the right (403 ``forbidden``) or hold it by another
rule but are no approver of the promotion (403 ``not_an_approver``; a run's task, as in the
console, any holder of the right may decide); the audit says the directory made the group
theirs."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from slack_sdk.signature import SignatureVerifier
from starlette.testclient import TestClient

from kneo.controller.promotion import PromotionGate
from kneo.platform import create_platform
from kneo.platform.decision_links import DecisionLinks
from kneo.service import create_app
from kneo.settings import Settings

from .slack_api import SlackApi

ROOT = Path(__file__).resolve().parents[2]
SIGNING = "directory-signing-secret"
TOKEN = "xoxb-directory-token"
ADMIN = "admin-key-0123456789abcdef"
PEOPLE = [
    {"user": "alice@example.com", "slack": "UALICE", "groups": ["release"]},
    {"user": "bob@example.com", "slack": "UBOB", "groups": ["support"]},
    {"user": "carol@example.com", "slack": "UCAROL"},
]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("directory")
    slack = SlackApi(TOKEN, {}).start()
    spec = tmp / "group.yaml"
    spec.write_text(
        (ROOT / "examples" / "hitl_approval.yaml")
        .read_text()
        .replace("assignee: reviewer", "assignee: group:release")
    )
    receivers = [{"name": "team", "type": "slack_app", "url": slack.url, "channel": "C0KNEO",
                  "token_env": "SLACK_BOT_TOKEN", "signing_secret_env": "SLACK_SIGNING_SECRET",
                  "events": ["human.decision"]}]  # fmt: skip
    settings = Settings.from_env(
        {
            "KNEO_SERV_DATABASE_URL": f"sqlite:///{tmp / 'kneo.sqlite'}",
            "KNEO_SERV_PROFILES_PATH": str(tmp / "profiles.json"),
            "KNEO_SERV_API_KEYS": f"admin:{ADMIN}:admin",
            # people sign in through a provider; who may decide is the role map's
            "KNEO_SERV_OIDC_ISSUER": "https://idp.example",
            "KNEO_SERV_OIDC_AUDIENCE": "kneo",
            "KNEO_SERV_OIDC_ROLES": "group:release=reviewer;user:carol@example.com=reviewer",
            "KNEO_SERV_CONSOLE_SECRET": "directory-console-secret-0123456789",
            "KNEO_SERV_PUBLIC_URL": "http://testserver",
            "KNEO_SERV_DECISION_LINKS": "true",
            "KNEO_SERV_NOTIFICATIONS_RECEIVERS": json.dumps(receivers),
            "KNEO_SERV_NOTIFICATIONS_PEOPLE": json.dumps(PEOPLE),
            "SLACK_BOT_TOKEN": TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING,
        }
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)
        manager = create_platform(settings)
        app = create_app(False, settings=settings, manager=manager, start_worker=False)
        with TestClient(app, raise_server_exceptions=False) as client:
            links = DecisionLinks.from_settings(settings)
            yield {"manager": manager, "client": client, "slack": slack, "links": links,
                   "spec": str(spec)}  # fmt: skip
        manager.store.close()
    slack.stop()


def link(world: dict[str, Any], cid: str, recipient: str) -> str:
    rid = world["manager"].store.tasks.get_continuation(cid).requests[0]["request_id"]
    return str(world["links"].url(cid, rid, recipient)).removeprefix("http://testserver")


def click(world: dict[str, Any], cid: str, user: str) -> dict[str, Any]:
    """An Approve click by Slack user ``user``, signed as Slack signs it."""
    rid = world["manager"].store.tasks.get_continuation(cid).requests[0]["request_id"]
    value = json.dumps({"c": cid, "r": rid, "d": "approved"})
    payload = {"type": "block_actions", "user": {"id": user}, "trigger_id": uuid.uuid4().hex,
               "channel": {"id": "C0KNEO"},
               "actions": [{"action_id": "kneo.approve", "value": value}]}  # fmt: skip
    body = urlencode({"payload": json.dumps(payload)})
    stamp = str(int(time.time()))
    signature = SignatureVerifier(SIGNING).generate_signature(timestamp=stamp, body=body)
    answer = world["client"].post(
        "/hooks/slack/team/interactions",
        content=body,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": signature,
        },
    )
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def audit(world: dict[str, Any], event_type: str, **params: str) -> list[dict[str, Any]]:
    found = world["client"].get(
        "/v1/audit-events",
        params={"event_type": event_type, **params},
        headers={"Authorization": f"Bearer {ADMIN}"},
    )
    return list(found.json()["events"])


def test_a_group_member_decides_a_group_task_by_link_others_are_refused(
    world: dict[str, Any],
) -> None:
    manager, client = world["manager"], world["client"]
    paused = manager.run_from_spec(input_text="by link", spec_path=world["spec"])
    cid = paused.continuation_id
    refused = client.post(link(world, cid, "bob@example.com"), data={"decision": "approved"})
    assert refused.status_code == 403 and "may not decide" in refused.text  # support only
    assert manager.store.tasks.get_continuation(cid).status == "pending"
    decided = client.post(link(world, cid, "alice@example.com"), data={"decision": "approved"})
    assert decided.status_code == 200 and "Decided: approved" in decided.text
    assert manager.store.runs.get_run(paused.run_id).status == "succeeded"
    events = audit(world, "human.decision", run_id=paused.run_id)
    assert [e["actor"] for e in events] == ["alice@example.com"]
    assert events[0]["payload"]["identity"]["method"] == "decision_link"


def test_a_group_member_decides_a_group_task_in_slack_others_are_refused(
    world: dict[str, Any],
) -> None:
    manager, slack = world["manager"], world["slack"]
    paused = manager.run_from_spec(input_text="by button", spec_path=world["spec"])
    cid = paused.continuation_id
    refused = click(world, cid, "UBOB")
    assert (
        refused["error"] == "forbidden" and "bob@example.com may not decide" in refused["message"]
    )
    told = slack.of("chat.postEphemeral")[-1]
    assert told["user"] == "UBOB" and "human:write" in told["text"]
    assert manager.store.tasks.get_continuation(cid).status == "pending"
    assert click(world, cid, "UALICE") == {
        "ok": True,
        "decided": "approved",
        "by": "alice@example.com",
    }
    events = audit(world, "human.decision", run_id=paused.run_id)
    assert [e["actor"] for e in events] == ["alice@example.com"]
    assert events[0]["payload"]["identity"]["method"] == "slack"


def test_a_promotion_for_the_group_is_approved_by_its_members_alone(
    world: dict[str, Any],
) -> None:
    manager, client = world["manager"], world["client"]
    store = manager.store
    with store.transaction() as tx:
        cid = PromotionGate().open(
            tx, name="mailer", environment="prod", digest="sha256:" + "ab" * 32, revision=2,
            approvers=("group:release",), min_approvals=2, now=store.clock.now(),
        )  # fmt: skip
    # carol may decide human requests (user:carol@example.com=reviewer), but release approves
    by_carol = client.post(link(world, cid, "carol@example.com"), data={"decision": "approved"})
    assert by_carol.status_code == 403 and "not an approver" in by_carol.text
    assert click(world, cid, "UCAROL")["error"] == "not_an_approver"
    assert click(world, cid, "UBOB")["error"] == "forbidden"  # no right at all
    by_alice = client.post(link(world, cid, "alice@example.com"), data={"decision": "approved"})
    assert by_alice.status_code == 200, by_alice.text
    tally = manager.get_human_task(cid, show_personal=True)["promotion"]
    assert [d["approver"] for d in tally["decisions"]] == ["alice@example.com"]
    decided_by = audit(world, "promotion.approved")[0]["payload"]["decided_by"]
    assert decided_by["matched"] == "group:release"
    assert decided_by["matched_claim"] == "notifications.people"
    assert decided_by["method"] == "decision_link"
