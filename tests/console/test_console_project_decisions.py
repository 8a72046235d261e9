"""Decisions from outside the console act in their task's project: a decision link's signed
claim and a Slack button's value name the project, the decider must hold ``human:write``
there, and the request is read and decided there only (a link for team-a cannot decide in
team-b, tampered or not). On SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from projects_helpers import PUBLIC, ROOT, Teams, auth, open_teams
from starlette.testclient import TestClient

from kneo.platform.decision_links import DecisionLinks
from kneo.platform.messages import with_decision_link
from kneo.platform.slack import decision_of, request_blocks
from kneo.platform.slack_signing import signature
from kneo.service.slack import modal
from kneo.store import NotificationEvent

SIGNING = "slack-signing-secret-for-projects"
SLACK_ENV = {
    "KNEO_SERV_NOTIFICATIONS_RECEIVERS": json.dumps(
        [
            {
                "name": "team",
                "type": "slack_app",
                "url": "http://127.0.0.1:9/api",  # nothing listens: a refusal's note is lost
                "channel": "C0KNEO",
                "token_env": "SLACK_BOT_TOKEN",
                "signing_secret_env": "SLACK_SIGNING_SECRET",
                "events": ["human.requested"],
            }
        ]
    ),
    "KNEO_SERV_NOTIFICATIONS_PEOPLE": json.dumps(
        [{"user": "both", "slack": "UBOTH"}, {"user": "a-rev", "slack": "UAREV"}]
    ),
    "SLACK_BOT_TOKEN": "xoxb-projects-test-token",
    "SLACK_SIGNING_SECRET": SIGNING,
}


@pytest.fixture(params=["sqlite", "postgres"])
def slack_teams(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Teams]:
    """:func:`open_teams` with a Slack app receiver and its people's Slack ids."""
    monkeypatch.chdir(ROOT)
    url = request.getfixturevalue("pg_database")() if request.param == "postgres" else None
    opened = open_teams(tmp_path, url, **SLACK_ENV)
    yield opened
    opened.close()


def links_of(teams: Teams) -> DecisionLinks:
    found = DecisionLinks.from_settings(teams.manager.settings)
    assert found is not None
    return found


def request_of(teams: Teams, project: str) -> tuple[str, str]:
    cid = teams.runs[project]["continuation_id"]
    return cid, teams.task(project, cid)["requests"][0]["request_id"]


def page(client: TestClient, link: str, decision: str | None = None) -> Any:
    path = link.removeprefix(PUBLIC)
    if decision is None:
        return client.get(path)
    return client.post(path, data={"decision": decision})


def test_a_link_decides_in_its_tasks_project_and_nowhere_else(teams: Teams) -> None:
    links, client = links_of(teams), TestClient(teams.app, raise_server_exceptions=False)
    cid, rid = request_of(teams, "team-b")
    a_id, b_id = teams.project_id("team-a"), teams.project_id("team-b")
    genuine = links.url(cid, rid, "both", project_id=b_id)
    shown = page(client, genuine)
    assert shown.status_code == 200 and "Approve?" in shown.text
    # team-b's task through a link signed for team-a, or for the default project: not found
    for other in (links.url(cid, rid, "both", project_id=a_id), links.url(cid, rid, "both")):
        assert page(client, other).status_code == 404
        refused = page(client, other, "approved")
        assert refused.status_code == 404 and "not found" in refused.text
    # the claim's project edited in the token: the signature no longer holds
    payload, rest = genuine.rsplit("/", 1)[1].split(".", 1)
    claim = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claim["p"] == b_id
    forged = base64.urlsafe_b64encode(json.dumps({**claim, "p": a_id}).encode()).rstrip(b"=")
    tampered = page(client, f"{PUBLIC}/ui/decide/{forged.decode()}.{rest}", "approved")
    assert tampered.status_code == 404 and "not a valid decision link" in tampered.text
    # a recipient without a grant in team-b may not decide there
    outsider = page(client, links.url(cid, rid, "a-rev", project_id=b_id), "approved")
    assert outsider.status_code == 403 and "team-b" in outsider.text
    assert teams.task("team-b", cid)["status"] == "pending"
    done = page(client, genuine, "approved")
    assert done.status_code == 200 and "Decided: approved" in done.text
    run = teams.api.get(
        f"/v1/runs/{teams.runs['team-b']['run_id']}", headers=auth("plat", "team-b")
    )
    assert run.json()["status"] == "succeeded"
    for project in ("default", "team-a"):  # nothing else moved
        assert teams.task(project, teams.runs[project]["continuation_id"])["status"] == "pending"


def test_an_archived_projects_link_decides_nothing(teams: Teams) -> None:
    links, client = links_of(teams), TestClient(teams.app, raise_server_exceptions=False)
    cid, rid = request_of(teams, "team-b")
    link = links.url(cid, rid, "both", project_id=teams.project_id("team-b"))
    assert teams.api.delete("/v1/projects/team-b", headers=auth("plat")).status_code == 200
    assert page(client, link).status_code == 404
    assert page(client, link, "approved").status_code == 404


def test_a_notifications_links_and_buttons_carry_its_tasks_project(teams: Teams) -> None:
    links = links_of(teams)
    cid, rid = request_of(teams, "team-b")
    b_id = teams.project_id("team-b")
    entry = {"request_id": rid, "assignee": "both", "decisions": ["approved", "rejected"]}

    def event(project_id: int) -> NotificationEvent:
        return NotificationEvent(
            event_id="e1",
            event_type="human.requested",
            severity="info",
            environment=None,
            assignee="both",
            actor=None,
            run_id=None,
            continuation_id=cid,
            payload={},
            created_at=datetime.now(UTC),
            project_id=project_id,
        )

    body = with_decision_link({}, event(b_id), links, entry)
    claim = links.read(body["decision_link"].rsplit("/", 1)[1])
    assert (claim.continuation_id, claim.project_id, claim.recipient) == (cid, b_id, "both")
    message = {"id": "e1", "summary": "waiting", "continuation_id": cid}
    values = [
        element["value"]
        for block in request_blocks(message, entry, b_id)
        if block["type"] == "actions"
        for element in block["elements"]
    ]
    assert [decision_of(v) for v in values] == [
        (cid, rid, "approved", b_id),
        (cid, rid, "rejected", b_id),
    ]
    # the Respond… modal keeps the project for its submission
    opened = modal({"c": cid, "r": rid, "p": b_id}, entry)
    assert json.loads(opened["private_metadata"]) == {"c": cid, "r": rid, "p": b_id}
    # the default project's links and buttons are as before projects (no project named)
    plain = with_decision_link({}, event(1), links, entry)["decision_link"]
    assert "p" not in json.loads(
        base64.urlsafe_b64decode(plain.rsplit("/", 1)[1].split(".")[0] + "==")
    )
    assert '"p"' not in json.dumps(request_blocks(message, entry, 1))


def click(client: TestClient, user: str, value: dict[str, Any]) -> Any:
    """A signed ``block_actions`` callback: ``user`` clicks Approve with ``value``."""
    action = {"action_id": "kneo.approve", "value": json.dumps(value), "type": "button"}
    payload = {"type": "block_actions", "user": {"id": user}, "actions": [action]}
    body = urlencode({"payload": json.dumps(payload)})
    stamp = str(int(time.time()))
    return client.post(
        "/hooks/slack/team/interactions",
        content=body,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": signature(SIGNING, stamp, body.encode()),
        },
    )


def test_a_slack_click_decides_in_its_buttons_project_only(slack_teams: Teams) -> None:
    teams, client = slack_teams, slack_teams.api
    cid, rid = request_of(teams, "team-b")
    b_id = teams.project_id("team-b")
    value = {"c": cid, "r": rid, "d": "approved"}
    unscoped = click(client, "UBOTH", value)  # no project named: the default, no grant there
    assert unscoped.json()["ok"] is False and unscoped.json()["error"] == "forbidden"
    wrong = click(client, "UBOTH", {**value, "p": teams.project_id("team-a")})
    assert wrong.json()["error"] == "not_found"  # a member of team-a: no such task there
    outsider = click(client, "UAREV", {**value, "p": b_id})  # no grant in team-b
    assert outsider.json()["error"] == "forbidden"
    assert teams.task("team-b", cid)["status"] == "pending"
    decided = click(client, "UBOTH", {**value, "p": b_id})
    assert decided.json() == {"ok": True, "decided": "approved", "by": "both"}
    assert teams.task("team-b", cid)["status"] != "pending"
    assert teams.task("team-a", teams.runs["team-a"]["continuation_id"])["status"] == "pending"
