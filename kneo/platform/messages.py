"""What a notification says and how it is sent to a webhook: the message (its summary,
console link and redacted data), its recipients' decision links, the Slack, Teams and
CloudEvents shapes, the signed POST of one attempt and the backoff before the next. The
dispatcher (:mod:`kneo.platform.notifications`) decides when; this module, what."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from kneo.clock import jitter, utc_iso
from kneo.errors import AccessDenied
from kneo.platform.decision_links import DecisionLinks, recipient_of
from kneo.platform.markup import mrkdwn
from kneo.platform.recipients import DECIDABLE, People
from kneo.platform.webhooks import (
    CLOUDEVENTS_CONTENT_TYPE,
    LEGACY_SIGNATURE_HEADER,
    cloud_event,
    legacy_signature,
    resource_path,
    wire_request,
)
from kneo.projects import CONSOLE_PREFIX, DEFAULT_PROJECT
from kneo.redaction import redact_mapping, redact_text

if TYPE_CHECKING:
    import httpx2

    from kneo.platform.receivers import Receiver
    from kneo.store import NotificationEvent

SIGNATURE_HEADER = LEGACY_SIGNATURE_HEADER
#: CloudEvents ``source`` without ``KNEO_SERV_PUBLIC_URL`` (with it: that URL).
CLOUDEVENTS_SOURCE = "/kneo"


def console_link(
    event: NotificationEvent, base_url: str, project: str = DEFAULT_PROJECT
) -> str | None:
    """The console page of the event's task, promotion, run or bundle, in the event's
    ``project`` (``None`` without a base URL, ``KNEO_SERV_PUBLIC_URL``)."""
    if not base_url:
        return None
    path = resource_path(
        event.event_type,
        continuation_id=event.continuation_id,
        run_id=event.run_id,
        environment=event.environment,
        bundle=event.payload.get("bundle"),
    )
    if project != DEFAULT_PROJECT:  # the console's path form of a project
        return f"{base_url}/ui{CONSOLE_PREFIX}{quote(project, safe='')}/{path}"
    return f"{base_url}/ui/{path}"


_SUMMARIES: dict[str, str] = {
    "human.requested": "{subject} is waiting for {who}",
    "human.expiring": "{subject} expires at {expires_at} and is still waiting for {who}",
    "human.escalated": "{subject} was not answered in time and is escalated",
    "human.expired": "{subject} expired unanswered: the run stopped",
    "human.decision": "{actor} decided {decision} on {subject}",
    "promotion.awaiting_approval": "{subject} is waiting for a promotion approval",
    "promotion.override_requested": "{subject} is frozen: promoting it needs a freeze override",
    "rollback.awaiting_approval": "rolling {subject} back to revision {rollback_of} is waiting "
    "for approval",
    "policy.held": "a policy change of {subject} is held: it loosens gates and waits for the "
    "signatures the policy in force demands",
    "policy.below_floor": "a policy change of {subject} is below its floor and refused",
    "policy.applied": "a policy change of {subject} was applied",
    "policy.changed": "the policy of {subject} was changed",
    "promotion.evals_failed": "{subject} was held back by its eval gate: {detail}",
    "bundle.promoted": "{subject} was promoted",
    "bundle.rejected": "{subject} was rejected",
    "bundle.drift_reverted": "drift on {subject} was reverted",
    "controller.reconcile_failed": "the controller's reconcile failed",
    "run.failed": "{subject} failed",
    "a2a.task_status": "{subject}: A2A task {state}",
}


def summary(event: NotificationEvent) -> str:
    """One line a person reads (in Slack, or a webhook's ``summary``)."""
    data = event.payload
    bundle = data.get("bundle")
    name = bundle or data.get("workflow") or event.run_id or event.continuation_id or "kneo"
    subject = f"{name} ({event.environment})" if event.environment else str(name)
    if event.event_type.startswith("policy."):  # about an environment, not a bundle
        subject = f"environment {event.environment or '?'}"
    text = _SUMMARIES.get(event.event_type, "{subject}: " + event.event_type).format(
        subject=subject,
        who=event.assignee or "a reviewer",
        expires_at=data.get("expires_at") or "soon",
        actor=event.actor or "someone",
        decision=data.get("decision") or "",
        rollback_of=data.get("rollback_of") or "?",
        state=data.get("state") or "",
        detail="; ".join(
            str(r.get("message")) for r in data.get("reasons") or [] if isinstance(r, dict)
        ),
    )
    return redact_text(text)


def message(
    event: NotificationEvent, base_url: str = "", project: str = DEFAULT_PROJECT
) -> dict[str, Any]:
    """The webhook body: the event (``id`` stable across retries, for deduplication), a
    summary, the console link and the event's (redacted) data."""
    return redact_mapping(
        {
            "id": event.event_id,
            "type": event.event_type,
            "severity": event.severity,
            "created_at": utc_iso(event.created_at),
            "environment": event.environment,
            "assignee": event.assignee,
            "actor": event.actor,
            "run_id": event.run_id,
            "continuation_id": event.continuation_id,
            "summary": summary(event),
            "link": console_link(event, base_url, project),
            "data": event.payload,
        }
    )


def with_decision_link(
    body: dict[str, Any],
    event: NotificationEvent,
    links: DecisionLinks | None,
    entry: dict[str, Any] | None,
    people: People | None = None,
) -> dict[str, Any]:
    """``body`` with its request's signed decision links (:mod:`kneo.platform.decision_links`)
    when links are on: ``decision_link`` for a request assigned to one person or key,
    ``decision_links`` (recipient -> link) for each member of an assigned group and for each
    approver of a promotion. ``entry`` is the request as its task stores it
    (:func:`~kneo.platform.recipients.request_entry`): the event's own ``assignee`` is
    redacted, the recipient's name must not be. Added after the redaction: each link is
    meant for its recipient."""
    if links is None or event.event_type not in DECIDABLE or not event.continuation_id:
        return body
    if entry is None or not isinstance(entry.get("request_id"), str):
        return body
    request_id = str(entry["request_id"])
    recipient = recipient_of(entry.get("assignee"))
    if event.event_type == "human.requested" and recipient is not None:
        link = links.url(event.continuation_id, request_id, recipient, project_id=event.project_id)
        return {**body, "decision_link": link}
    members = (people or People()).deciders(event.event_type, entry)
    if not members:
        return body
    project_id = event.project_id  # the link decides in the task's project only
    urls = {
        m: links.url(event.continuation_id, request_id, m, project_id=project_id) for m in members
    }
    return {**body, "decision_links": urls}


def slack_message(body: dict[str, Any]) -> dict[str, Any]:
    """A Slack incoming-webhook body for a :func:`message`: the summary as literal text
    (:func:`~kneo.platform.markup.mrkdwn`), the console link (sign-in decides who may act),
    and a personal ``Decide`` link only where the receiver carries one (``personal_links``)."""
    link = f" <{body['link']}|Open in Kneo>" if body.get("link") else ""
    if body.get("decision_link"):
        link += f" · <{body['decision_link']}|Decide>"
    said = mrkdwn(body["summary"])
    text = f"*[{body['severity']}] {body['type']}*: {said}{link}"
    facts = f"event {body['id']}"
    if body.get("deciders"):  # a binding assignment: who alone may decide
        facts += f" · only {mrkdwn(', '.join(str(d) for d in body['deciders']))} may decide"
    return {
        "text": f"[{body['severity']}] {body['type']}: {said}",
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": facts}]},
        ],
    }


def sign(secret: str, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 of the exact body bytes (GitHub's scheme)."""
    return legacy_signature(secret, body)


def request_for(
    receiver: Receiver, body: dict[str, Any], sent_at: datetime, base_url: str = ""
) -> tuple[bytes, dict[str, str]]:
    """The bytes to POST and their headers, in the receiver's format, signed for this
    attempt (``sent_at`` goes into ``webhook-timestamp``: a retry is signed afresh)."""
    content_type = "application/json"
    if receiver.type == "slack":
        payload = slack_message(body)
    elif receiver.type == "teams":
        from kneo.platform.cards import teams_message  # import cycle: cards imports this module

        payload = teams_message(body)
    elif receiver.format == "cloudevents":
        payload = cloud_event(body, base_url or CLOUDEVENTS_SOURCE)
        content_type = CLOUDEVENTS_CONTENT_TYPE
    else:
        payload = body
    return wire_request(
        payload,
        message_id=str(body["id"]),
        event_type=str(body["type"]),
        secret=receiver.secret,
        sent_at=sent_at,
        content_type=content_type,
    )


class DeliveryFailed(Exception):
    """One attempt failed; the message is safe to store (no URL, no secret). ``final``:
    retrying cannot help (the delivery is ``dead`` at once)."""

    final = False


def post(
    client: httpx2.Client,
    receiver: Receiver,
    body: dict[str, Any],
    sent_at: datetime,
    base_url: str = "",
) -> int:
    """POST ``body`` to ``receiver``; its status code, or :class:`DeliveryFailed`."""
    import httpx2

    content, headers = request_for(receiver, body, sent_at, base_url)
    try:
        response = client.post(receiver.url, content=content, headers=headers)
    except httpx2.HTTPError as exc:  # the URL may be a secret (Slack): never in the message
        raise DeliveryFailed(f"{type(exc).__name__}: the receiver could not be reached") from None
    except AccessDenied:  # the kernel's client reaches only the receivers' own endpoints
        raise DeliveryFailed("refused: not a configured receiver's endpoint") from None
    if not 200 <= response.status_code < 300:
        raise DeliveryFailed(f"HTTP {response.status_code}")
    return int(response.status_code)


def retry_delay(
    attempts: int, base: float, cap: float, rand: Callable[[], float] = jitter
) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones: ``base * 2^(n-1)``
    capped at ``cap``, times a jitter in [0.5, 1) so receivers that come back are not hit by
    every dispatcher at once."""
    return float(min(cap, base * 2.0 ** max(0, attempts - 1)) * (0.5 + rand() / 2))


__all__ = [
    "CLOUDEVENTS_SOURCE",
    "SIGNATURE_HEADER",
    "DeliveryFailed",
    "console_link",
    "message",
    "post",
    "request_for",
    "retry_delay",
    "sign",
    "slack_message",
    "summary",
    "with_decision_link",
]
