"""Mail that mail systems trust: each message, as a real SMTP server (``aiosmtpd``) receives
it and Python's ``email`` parser reads it under ``policy.strict``, has a ``Date`` and a
``Message-ID`` that is the same when the delivery is retried from another process (one
message per event and recipient), and shows its recipient their own address where a shared
copy shows the redacted one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from typing import Any

import pytest

from kneo.platform.cards import mails, send_mail
from kneo.platform.notifications import Receiver
from tests.notifications.test_teams_and_email import free_port

from .conftest import REPO

BODY = {
    "id": "evt_mail_1",
    "type": "human.requested",
    "severity": "info",
    "summary": "hitl-approval (dev) is waiting for user:[REDACTED_EMAIL]",
    "environment": "dev",
    "assignee": "user:[REDACTED_EMAIL]",
    "continuation_id": "cont_1",
    "link": "https://kneo.example/ui/tasks/cont_1",
    "data": {"kind": "approval"},
}
LINKS = {"alice@example.com": "https://kneo.example/ui/decide/token-for-alice"}
SEND = """
import json, sys
from kneo.platform.cards import mails, send_mail
from kneo.platform.notifications import Receiver
body, links, port = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
receiver = Receiver("mail", "email", f"smtp://127.0.0.1:{port}", smtp_tls="none",
                    from_address="kneo@example.com", to=("ops@example.com",))
send_mail(receiver, mails(body, receiver, links, "user:alice@example.com"), timeout=10)
"""


class Box:
    def __init__(self) -> None:
        self.raw: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.raw.append(bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Box, int]]:
    from aiosmtpd.controller import Controller

    box, port = Box(), free_port()
    server = Controller(box, hostname="127.0.0.1", port=port)
    server.start()
    yield box, port
    server.stop()


def strict(raw: bytes) -> EmailMessage:
    parsed = message_from_bytes(raw, policy=policy.strict)
    assert isinstance(parsed, EmailMessage)
    return parsed


def test_a_retry_from_another_process_is_the_same_message(smtp: tuple[Box, int]) -> None:
    box, port = smtp
    receiver = Receiver("mail", "email", f"smtp://127.0.0.1:{port}", smtp_tls="none",
                        from_address="kneo@example.com", to=("ops@example.com",))  # fmt: skip
    send_mail(receiver, mails(BODY, receiver, LINKS, "user:alice@example.com"), timeout=10)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = [json.dumps(BODY), json.dumps(LINKS), str(port)]
    subprocess.run([sys.executable, "-c", SEND, *args], env=env, check=True, timeout=60)
    first, retried = [strict(r) for r in box.raw[:2]], [strict(r) for r in box.raw[2:]]
    assert (
        [m["To"] for m in first]
        == [m["To"] for m in retried]
        == [
            "alice@example.com",
            "ops@example.com",
        ]
    )
    for one, two in zip(first, retried, strict=True):
        assert one["Message-ID"] == two["Message-ID"]  # one message, whoever sends it
        assert one["Message-ID"].endswith("@example.com>")
        assert parsedate_to_datetime(str(one["Date"])).tzinfo is not None
    assert first[0]["Message-ID"] != first[1]["Message-ID"]  # one per recipient
    alice = first[0].get_body(("plain",)).get_content()  # type: ignore[union-attr]
    ops = first[1].get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "waiting for user:alice@example.com" in alice and "[REDACTED_EMAIL]" not in alice
    assert "Decide: https://kneo.example/ui/decide/token-for-alice" in alice
    assert "[REDACTED_EMAIL]" in ops and "alice@example.com" not in ops and "Decide:" not in ops
