"""A channel carries no one's key, and untrusted text stays text in every channel.

Through the real outbox, a request assigned to ``user:alice@example.com`` reaches a shared
webhook, a Slack incoming webhook and a Teams channel with no personal decision link (their
buttons open the console, where signing in says who may act), while a receiver opted in as
one person's (``personal_links``) carries it. Injection strings a model, a spec or a caller
can write (``<!here>``, ``<url|label>``, ``[x](url)``, ``<script>``) arrive escaped: Slack's
Block Kit checked with ``slack_sdk``'s models, the Teams card with Microsoft's
``adaptivecards`` library and its Markdown rendered by a CommonMark renderer
(``markdown-it-py``), the mail parsed with Python's ``email`` under ``policy.strict``.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt
from slack_sdk.models.blocks import Block

from kneo.platform.cards import mail_for, teams_message
from kneo.platform.messages import slack_message
from kneo.platform.notifications import start_dispatcher
from kneo.platform.slack import request_blocks
from tests.notifications.test_teams_and_email import CARD_CHECK
from tests.npm_packages import node_modules_for, tool

from .conftest import REPO, receivers_env
from .receiver import Receiver
from .test_delivery import FAST, wait_for

SPEC = REPO / "examples" / "hitl_approval.yaml"
#: what a model, a spec or a caller may write to make a message lie
INJECTION = (
    "<!here> <https://evil.example/approve|Approve in Kneo> [Open in Kneo](https://evil.example)"
    " <script>alert(1)</script> **now** & more"
)
LINKS = {
    "KNEO_SERV_CONSOLE_SECRET": "console-secret-for-links-0123456789",
    "KNEO_SERV_PUBLIC_URL": "https://kneo.example",
    "KNEO_SERV_DECISION_LINKS": "true",
}


def test_a_channel_gets_no_personal_link_a_personal_receiver_does(
    platform: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    hooks = {name: Receiver().start() for name in ("shared", "slack", "teams", "private")}
    spec = tmp_path / "alice.yaml"
    spec.write_text(
        SPEC.read_text().replace("assignee: reviewer", "assignee: user:alice@example.com")
    )
    receivers = [
        {"name": "shared", "url": hooks["shared"].url},
        {"name": "slack", "type": "slack", "url_env": "SLACK_HOOK"},
        {"name": "teams", "type": "teams", "url": hooks["teams"].url},
        {"name": "private", "url": hooks["private"].url, "personal_links": True},
    ]
    manager = platform(
        KNEO_SERV_NOTIFICATIONS_RECEIVERS=receivers_env(*receivers),
        SLACK_HOOK=hooks["slack"].url,
        **LINKS,
        **FAST,
    )
    dispatcher = start_dispatcher(manager, manager.settings)
    assert dispatcher is not None
    try:
        paused = manager.run_from_spec(input_text="links", spec_path=str(spec))
        wait_for(lambda: all(h.requests for h in hooks.values()))
    finally:
        dispatcher.stop()
        for hook in hooks.values():
            hook.stop()
    for name in ("shared", "slack", "teams"):
        raw = hooks[name].requests[0][1].decode()
        assert "/ui/decide/" not in raw, name  # nobody's key in a channel
        assert f"/ui/tasks/{paused.continuation_id}" in raw, name  # the console instead
    private = hooks["private"].bodies()[0]
    assert private["decision_link"].startswith("https://kneo.example/ui/decide/")
    for block in hooks["slack"].bodies()[0]["blocks"]:
        Block.parse(block).validate_json()
    card = hooks["teams"].bodies()[0]["attachments"][0]["content"]
    checked = check_card(card)
    assert checked["events"] == []
    assert checked["urls"] == [f"https://kneo.example/ui/tasks/{paused.continuation_id}"]


def check_card(card: dict[str, Any]) -> dict[str, Any]:
    """Microsoft's ``adaptivecards`` parser's view of ``card``: its validation events and
    its actions' URLs."""
    modules = node_modules_for(Path(__file__).parent / "adaptivecards")
    checked = subprocess.run(
        [tool("node"), "-e", CARD_CHECK, str(modules)],
        input=json.dumps(card), capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return dict(json.loads(checked.stdout))


def body(**extra: Any) -> dict[str, Any]:
    return {
        "id": "evt_inject",
        "type": "human.requested",
        "severity": "info",
        "summary": f"{INJECTION} (dev) is waiting for reviewer",
        "environment": "dev",
        "assignee": f"user:{INJECTION}",
        "continuation_id": "cont_1",
        "link": "https://kneo.example/ui/tasks/cont_1",
        "data": {"kind": "approval"},
        **extra,
    }


def mrkdwn_texts(value: Any) -> list[str]:
    """Every ``mrkdwn`` text object in a Block Kit structure."""
    if isinstance(value, dict):
        found = [str(value["text"])] if value.get("type") == "mrkdwn" else []
        return found + [t for v in value.values() for t in mrkdwn_texts(v)]
    if isinstance(value, list):
        return [t for v in value for t in mrkdwn_texts(v)]
    return []


def test_injection_is_escaped_in_slack_messages() -> None:
    webhook = slack_message(body(deciders=[f"user:{INJECTION}"]))
    entry = {"request_id": "req_1", "prompt": INJECTION, "kind": INJECTION, "decisions": None}
    app = request_blocks(body(), entry, deciders=(f"user:{INJECTION}",))
    for blocks in (webhook["blocks"], app):
        for block in blocks:
            Block.parse(block).validate_json()  # slack_sdk's models accept each block
        texts = mrkdwn_texts(blocks)
        assert texts and all("<!here>" not in t and "<https://evil" not in t for t in texts)
        assert any("&lt;!here&gt;" in t for t in texts)  # shown, as text
        angles = [t for text in texts for t in text.split("<")[1:]]
        assert all(a.startswith("https://kneo.example/") for a in angles)  # Kneo's link only
    assert "<!here>" not in webhook["text"]


def test_injection_is_text_in_a_teams_card() -> None:
    card = teams_message(body(deciders=[f"user:{INJECTION}"]))["attachments"][0]["content"]
    assert check_card(card)["events"] == []
    markdown = MarkdownIt("commonmark")
    shown = [b["text"] for b in card["body"] if b["type"] == "TextBlock"]
    shown += [f["value"] for b in card["body"] if b["type"] == "FactSet" for f in b["facts"]]
    assert any("[Open in Kneo]" in markdown.render(t) for t in shown)  # the text, as typed
    for text in shown:
        rendered = markdown.render(text)
        assert "<a " not in rendered and "<script" not in rendered and "<strong>" not in rendered
    assert [a["url"] for a in card["actions"]] == ["https://kneo.example/ui/tasks/cont_1"]


def test_injection_is_text_in_a_mail() -> None:
    from email import message_from_bytes, policy

    mail = mail_for(body(), "kneo@example.com", "ops@example.com", None)
    parsed = message_from_bytes(mail.as_bytes(policy=policy.SMTP), policy=policy.strict)
    html_part = parsed.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "<script>" not in html_part and "&lt;script&gt;" in html_part
    assert "href='https://evil" not in html_part and 'href="https://evil' not in html_part
