"""Teams and e-mail receivers through the real outbox: the Teams message's Adaptive Card is
parsed and validated by Microsoft's own ``adaptivecards`` library (node); a real SMTP server
(``aiosmtpd``) receives a mail per recipient, each with its own decision link, and the
assignee's link, opened in Chromium, decides once as them. The SMTP door refuses a server
it was not granted and a STARTTLS the server does not offer; the planted password appears
nowhere."""

from __future__ import annotations

import json
import logging
import re
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from kneo.errors import AccessDenied
from kneo.kernel import Origins, smtp_connection
from kneo.platform import create_platform
from kneo.platform.cards import mail_for, send_mail
from kneo.platform.notifications import DeliveryFailed, Receiver, start_dispatcher
from kneo.service import create_app  # imported first: its logger's wiring is set before tests
from kneo.settings import Settings
from kneo.store import AuditQuery
from tests.notifications.receiver import Receiver as Hook
from tests.notifications.test_slack_app import wait_for
from tests.npm_packages import node_modules_for, tool

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "examples" / "hitl_approval.yaml"
PASSWORD = "planted-smtp-password-77aa"
CHROMIUM = shutil.which("chromium") or "/usr/lib/chromium/chromium"
CARD_CHECK = """
const AC = require(process.argv[1] + "/adaptivecards/dist/adaptivecards.js");
const card = new AC.AdaptiveCard(), ctx = new AC.SerializationContext();
card.parse(JSON.parse(require("fs").readFileSync(0, "utf8")), ctx);
const events = [];
for (let i = 0; i < ctx.eventCount; i++) events.push(ctx.getEventAt(i).message);
for (const e of card.validateProperties().validationEvents) events.push(e.message);
const urls = [];
for (let i = 0; i < card.getActionCount(); i++) urls.push(card.getActionAt(i).url);
console.log(JSON.stringify({version: card.version.toString(), items: card.getItemCount(), urls, events}));
"""


class Mailbox:
    """aiosmtpd's handler: every message it accepted, and the logins it saw."""

    def __init__(self) -> None:
        self.mails: list[EmailMessage] = []
        self.logins: list[tuple[bytes, bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.mails.append(message_from_bytes(envelope.content, policy=policy.default))  # type: ignore[arg-type]
        return "250 OK"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, auth: Any):  # type: ignore[no-untyped-def]
        from aiosmtpd.smtp import AuthResult

        self.logins.append((auth.login, auth.password))
        return AuthResult(success=auth.password == PASSWORD.encode())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    import uvicorn
    from aiosmtpd.controller import Controller

    tmp = tmp_path_factory.mktemp("mail")
    box = Mailbox()
    smtp = Controller(box, hostname="127.0.0.1", port=free_port(), authenticator=box.authenticate,
                      auth_require_tls=False)  # fmt: skip
    smtp.start()
    hook = Hook().start()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    spec = tmp / "someone.yaml"
    spec.write_text(
        SPEC.read_text().replace("assignee: reviewer", "assignee: user:someone@example.com")
    )
    receivers = [
        {"name": "teams", "type": "teams", "url": hook.url, "events": ["human.requested"]},
        {"name": "mail", "type": "email", "url": f"smtp://127.0.0.1:{smtp.port}",
         "smtp_tls": "none", "smtp_username": "kneo", "smtp_password_env": "SMTP_PASSWORD",
         "from_address": "kneo@example.com", "to": ["ops@example.com"],
         "events": ["human.requested"]},
    ]  # fmt: skip
    settings = Settings.from_env(
        {
            "KNEO_SERV_DATABASE_URL": f"sqlite:///{tmp / 'kneo.sqlite'}",
            "KNEO_SERV_PROFILES_PATH": str(tmp / "profiles.json"),
            "KNEO_SERV_CONSOLE_SECRET": "console-secret-for-links-0123456789",
            "KNEO_SERV_PUBLIC_URL": url,
            "KNEO_SERV_DECISION_LINKS": "true",
            "KNEO_SERV_NOTIFICATIONS_POLL_SECONDS": "0.05",
            "KNEO_SERV_NOTIFICATIONS_RECEIVERS": json.dumps(receivers),
            "SMTP_PASSWORD": PASSWORD,
        }
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)
        manager = create_platform(settings)
        app = create_app(False, settings=settings, manager=manager, start_worker=False)
        server = uvicorn.Server(uvicorn.Config(app, log_config=None, log_level="warning"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        wait_for(lambda: server.started, "the server did not start")
        dispatcher = start_dispatcher(manager, settings)
        assert dispatcher is not None
        yield {"manager": manager, "box": box, "hook": hook, "spec": str(spec), "url": url,
               "db": tmp / "kneo.sqlite", "smtp": smtp}  # fmt: skip
        dispatcher.stop()
        server.should_exit = True
        thread.join(15)
        sock.close()
        manager.store.close()
    smtp.stop()
    hook.stop()


def mails_of(box: Mailbox, continuation_id: str) -> list[EmailMessage]:
    return [m for m in box.mails if continuation_id in m.get_body(("plain",)).get_content()]  # type: ignore[union-attr]


def test_teams_gets_an_adaptive_card_the_card_library_accepts(world: dict[str, Any]) -> None:
    modules = node_modules_for(Path(__file__).parent / "adaptivecards")
    paused = world["manager"].run_from_spec(input_text="teams", spec_path=world["spec"])
    hook = world["hook"]
    message = wait_for(
        lambda: next((b for b in hook.bodies() if paused.continuation_id in json.dumps(b)), None),
        "no Teams delivery",
    )
    [attachment] = message["attachments"]
    assert message["type"] == "message"
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    checked = subprocess.run(
        [tool("node"), "-e", CARD_CHECK, str(modules)],
        input=json.dumps(attachment["content"]),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result = json.loads(checked.stdout)
    assert result["events"] == [] and result["version"] == "1.4" and result["items"] == 3
    [console] = result["urls"]  # a channel: the console, never the assignee's own link
    assert console == f"{world['url']}/ui/tasks/{paused.continuation_id}"
    broken = dict(attachment["content"], body=[{"type": "TextBlok", "text": "x"}])
    rejected = subprocess.run(
        [tool("node"), "-e", CARD_CHECK, str(modules)],
        input=json.dumps(broken), capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert json.loads(rejected.stdout)["events"]  # the check can fail


@pytest.mark.browser
def test_each_recipient_gets_a_mail_and_the_link_decides_in_chromium(
    world: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed")
    from playwright.sync_api import sync_playwright

    manager, box = world["manager"], world["box"]
    with caplog.at_level(logging.DEBUG):
        paused = manager.run_from_spec(input_text="by mail", spec_path=world["spec"])
        mails = wait_for(lambda: len(mails_of(box, paused.continuation_id)) == 2 and
                         mails_of(box, paused.continuation_id), "no mails")  # fmt: skip
    by_to = {m["To"]: m for m in mails}
    assert set(by_to) == {"someone@example.com", "ops@example.com"}
    assert box.logins and box.logins[-1] == (b"kneo", PASSWORD.encode())
    text = by_to["someone@example.com"].get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html_part = by_to["someone@example.com"].get_body(("html",)).get_content()  # type: ignore[union-attr]
    link = re.search(r"Decide: (\S+)", text)
    assert link is not None and f"href='{link.group(1)}'" in html_part
    ops = by_to["ops@example.com"].get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Decide:" not in ops and "Open in Kneo:" in ops  # a copy carries nobody's link
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page()
        page.goto(link.group(1))
        assert "Approve the draft?" in page.content()
        assert manager.store.tasks.get_continuation(paused.continuation_id).status == "pending"
        page.get_by_role("button", name="Approve").click()
        page.wait_for_load_state()
        assert "Decided: approved" in page.content()
        page.goto(link.group(1))
        assert "Already approved by" in page.content()
        browser.close()
    assert manager.store.runs.get_run(paused.run_id).status == "succeeded"
    events = manager.store.audit.list_audit(
        AuditQuery(run_id=paused.run_id, event_type="human.decision")
    )
    assert [e.actor for e in events.items] == ["someone@example.com"]
    assert PASSWORD not in caplog.text
    assert PASSWORD.encode() not in world["db"].read_bytes()


def test_the_smtp_door_refuses_what_it_was_not_granted(world: dict[str, Any]) -> None:
    here = f"smtp://127.0.0.1:{world['smtp'].port}"
    with pytest.raises(AccessDenied, match="leaves the configured endpoint"):
        smtp_connection(Origins.of("smtp://127.0.0.1:1"), here, path="t", tls="none", timeout=5)
    receiver = Receiver("mail", "email", here, smtp_tls="starttls", from_address="k@example.com")
    mail = mail_for({"id": "evt_1", "summary": "s", "severity": "info", "type": "t"}, "k@example.com", "a@example.com", None)  # fmt: skip
    with pytest.raises(DeliveryFailed, match="SMTPNotSupportedError"):
        send_mail(receiver, [mail], timeout=5)  # no STARTTLS offered: nothing sent in clear
