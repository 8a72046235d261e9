"""A notification as a Microsoft Teams Adaptive Card and as e-mail (a text and an HTML part).

Pure functions of the message (:func:`kneo.platform.messages.message`, with its
decision links): the dispatcher posts the card to a Teams incoming webhook and sends each
mail through the kernel's SMTP door (:func:`send_mail`). A card's decision actions open the
signed decision links (``Action.OpenUrl``): the link's confirmation page decides, as its
recipient, never the card itself; a mail carries the link of its own recipient only.
"""

from __future__ import annotations

import hashlib
import html
from email.message import EmailMessage
from email.utils import formatdate
from typing import TYPE_CHECKING, Any

from kneo.errors import AccessDenied
from kneo.kernel import Origins, smtp_connection
from kneo.platform.markup import card_markdown
from kneo.platform.messages import DeliveryFailed

if TYPE_CHECKING:
    from kneo.platform.receivers import Receiver

CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
CARD_VERSION = "1.4"


def _facts(body: dict[str, Any]) -> list[tuple[str, str]]:
    data = body.get("data") or {}
    rows = [
        ("Environment", body.get("environment")),
        ("Assignee", body.get("assignee")),
        ("Kind", data.get("kind") if isinstance(data, dict) else None),
        ("Expires", data.get("expires_at") if isinstance(data, dict) else None),
        ("Run", body.get("run_id")),
        ("Event", body.get("id")),
    ]
    return [(title, str(value)) for title, value in rows if value]


def _who_decides(body: dict[str, Any]) -> str | None:
    """The line saying who alone may decide, when the request's assignment binds."""
    deciders = body.get("deciders")
    if not deciders:
        return None
    return f"Only {', '.join(str(d) for d in deciders)} may decide"


def decision_actions(body: dict[str, Any]) -> list[tuple[str, str]]:
    """``(title, url)`` of each decision link: the assignee's, or each group member's."""
    if body.get("decision_link"):
        return [("Decide", str(body["decision_link"]))]
    links = body.get("decision_links") or {}
    return [(f"Decide as {who}", str(url)) for who, url in sorted(links.items())]


def teams_message(body: dict[str, Any]) -> dict[str, Any]:
    """A Teams incoming-webhook message: one Adaptive Card with the summary and the facts
    (literal text: :func:`~kneo.platform.markup.card_markdown`), the console link (where
    signing in says who may act) and, only for a receiver that reaches one person
    (``personal_links``), the signed decision actions: a channel carries no one's link."""
    actions = [{"type": "Action.OpenUrl", "title": t, "url": u} for t, u in decision_actions(body)]
    if body.get("link"):
        actions.append({"type": "Action.OpenUrl", "title": "Open in Kneo", "url": body["link"]})
    facts = [{"title": t, "value": card_markdown(v)} for t, v in _facts(body)]
    who = _who_decides(body)
    if who:
        facts.append({"title": "Who decides", "value": card_markdown(who)})
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "body": [
            {
                "type": "TextBlock",
                "text": f"[{body['severity']}] {body['type']}",
                "weight": "Bolder",
                "wrap": True,
            },
            {"type": "TextBlock", "text": card_markdown(body["summary"]), "wrap": True},
            {"type": "FactSet", "facts": facts},
        ],
        "actions": actions,
    }
    return {
        "type": "message",
        "attachments": [{"contentType": CARD_CONTENT_TYPE, "contentUrl": None, "content": card}],
    }


def message_id(body: dict[str, Any], recipient: str, sender: str) -> str:
    """The ``Message-ID`` of one event's mail to one recipient: the same in every process and
    on every retry (a digest of the event id and the address), so a mail system that sees a
    retried message twice knows it is one."""
    digest = hashlib.sha256(f"{body['id']}\0{recipient.lower()}".encode()).hexdigest()[:24]
    domain = sender.rpartition("@")[2] or "kneo.invalid"
    return f"<{body['id']}.{digest}@{domain}>"


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _for_recipient(body: dict[str, Any], recipient: str, assignee: str | None) -> dict[str, Any]:
    """``body`` as its own recipient reads it: the assignee it names is them, by the address
    they are mailed at, not the redacted form a shared copy shows."""
    shown = body.get("assignee")
    if not assignee or not shown or assignee.removeprefix("user:") != recipient:
        return body
    summary = str(body["summary"]).replace(str(shown), assignee)
    return {**body, "assignee": assignee, "summary": summary}


def mail_for(
    body: dict[str, Any],
    sender: str,
    recipient: str,
    link: str | None,
    assignee: str | None = None,
) -> EmailMessage:
    """One recipient's mail: the summary and facts, as text and as HTML (escaped), with the
    decision link signed for that recipient (none for a copy to a configured address), a
    ``Date`` and a ``Message-ID`` stable across processes and retries (:func:`message_id`).
    ``assignee`` (the request's, unredacted): shown to the recipient it names."""
    if link:
        body = _for_recipient(body, recipient, assignee)
    mail = EmailMessage()
    mail["Subject"] = _one_line(f"[Kneo] {body['summary']}")[:200]
    mail["From"] = sender
    mail["To"] = recipient
    mail["Date"] = formatdate(usegmt=True)
    mail["Message-ID"] = message_id(body, recipient, sender)
    facts = _facts(body)
    who = _who_decides(body)
    if who:
        facts.append(("Who decides", who))
    lines = [str(body["summary"]), "", *(f"{t}: {v}" for t, v in facts)]
    if link:
        lines += ["", f"Decide: {link}"]
    if body.get("link"):
        lines += [f"Open in Kneo: {body['link']}"]
    mail.set_content("\n".join(lines) + "\n")
    rows = "".join(
        f"<tr><th align='left'>{html.escape(t)}</th><td>{html.escape(v)}</td></tr>"
        for t, v in facts
    )
    anchors = []
    if link:
        anchors.append(f"<a href='{html.escape(link)}'>Decide</a>")
    if body.get("link"):
        anchors.append(f"<a href='{html.escape(str(body['link']))}'>Open in Kneo</a>")
    mail.add_alternative(
        f"<p><strong>{html.escape(str(body['summary']))}</strong></p><table>{rows}</table>"
        f"<p>{' · '.join(anchors)}</p>",
        subtype="html",
    )
    return mail


def mails(
    body: dict[str, Any],
    receiver: Receiver,
    links: dict[str, str],
    assignee: str | None = None,
) -> list[EmailMessage]:
    """Every mail of one message: each recipient whose name is an address, with the link
    signed for them (``links``: recipient -> link), and the receiver's ``to`` without one.
    ``assignee``: the request's, as its task stores it (its own recipient sees it)."""
    sender = str(receiver.from_address)
    out = [
        mail_for(body, sender, who, url, assignee)
        for who, url in sorted(links.items())
        if "@" in who
    ]
    sent = {m["To"] for m in out}
    out += [mail_for(body, sender, to, None) for to in receiver.to if to not in sent]
    return out


def send_mail(receiver: Receiver, messages: list[EmailMessage], timeout: float) -> None:
    """Send ``messages`` in one SMTP session through the kernel's door (granted the
    receiver's own server); ``DeliveryFailed`` (no password, no address in it) on error."""
    import smtplib

    if not messages:
        return
    try:
        with smtp_connection(
            Origins.of(receiver.url),
            receiver.url,
            path=f"notifications.receivers.{receiver.name}",
            tls=receiver.smtp_tls,
            timeout=timeout,
        ) as smtp:
            if receiver.smtp_username:
                smtp.login(receiver.smtp_username, receiver.password or "")
            for mail in messages:
                smtp.send_message(mail)
    except AccessDenied:
        raise DeliveryFailed("refused: not the receiver's configured SMTP server") from None
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryFailed(f"SMTP: {type(exc).__name__}") from None


__all__ = [
    "CARD_CONTENT_TYPE",
    "decision_actions",
    "mail_for",
    "mails",
    "message_id",
    "send_mail",
    "teams_message",
]
