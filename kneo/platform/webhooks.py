"""How a notification goes over the wire: Standard Webhooks signatures, the CloudEvents
envelope, and the legacy GitHub-style body signature.

Pure functions (no I/O, the time is given): :mod:`kneo.platform.notifications` builds the
message and posts what :func:`wire_request` returns.

- **Standard Webhooks** (https://www.standardwebhooks.com): ``webhook-id`` (the event id, the
  same on every retry), ``webhook-timestamp`` (Unix seconds of this attempt) and
  ``webhook-signature`` (``v1,<base64 HMAC-SHA256 of "id.timestamp.body">``). Signing the id
  and time with the body lets a receiver refuse a replayed delivery: its verifier library
  rejects a timestamp more than :data:`TOLERANCE_SECONDS` away from its clock.
- **CloudEvents 1.0**, structured JSON mode (``application/cloudevents+json``): the Kneo
  message is the event's ``data``; ``id`` and ``type`` map one to one to Kneo's.
- ``X-Kneo-Signature-256``: HMAC-SHA256 of the body alone (GitHub's scheme), kept for
  receivers written against it; it carries no time, so it cannot tell a replay.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from datetime import datetime
from typing import Any

from kneo import __version__, jsontext
from kneo.notification_events import APPROVAL_EVENTS

#: Seconds a delivery's ``webhook-timestamp`` may differ from the receiver's clock: the
#: Standard Webhooks libraries' default, which Kneo's docs tell receivers to keep.
TOLERANCE_SECONDS = 300
#: The scheme's own secret format: ``whsec_`` and the base64 of the key bytes.
SECRET_PREFIX = "whsec_"
#: CloudEvents ``type`` of a Kneo event: this prefix and the Kneo type (``human.requested``).
CLOUDEVENTS_TYPE_PREFIX = "io.kneo."
CLOUDEVENTS_CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"
LEGACY_SIGNATURE_HEADER = "X-Kneo-Signature-256"
EVENT_ID_HEADER = "X-Kneo-Event-Id"
EVENT_TYPE_HEADER = "X-Kneo-Event"


def signing_key(secret: str) -> bytes:
    """The HMAC key for ``webhook-signature``: a ``whsec_<base64>`` secret's decoded bytes,
    any other secret's UTF-8 bytes. ``ValueError`` (naming no value) for bad base64."""
    if not secret.startswith(SECRET_PREFIX):
        return secret.encode()
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a whsec_ secret must be base64 after the prefix") from None
    if not key:
        raise ValueError("a whsec_ secret must not be empty after the prefix")
    return key


def standard_signature(secret: str, message_id: str, timestamp: int, content: bytes) -> str:
    """``v1,<base64>``: HMAC-SHA256 of ``{id}.{timestamp}.{body}`` (Standard Webhooks)."""
    signed = f"{message_id}.{timestamp}.".encode() + content
    digest = hmac.new(signing_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def legacy_signature(secret: str, content: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 of the exact body bytes (GitHub's scheme)."""
    return "sha256=" + hmac.new(secret.encode(), content, hashlib.sha256).hexdigest()


def resource_path(
    kind: str,
    *,
    continuation_id: str | None,
    run_id: str | None,
    environment: str | None,
    bundle: str | None,
) -> str:
    """What an event is about, as the console's path names it (``tasks/cont_...``,
    ``runs/run_...``, ``registry/<bundle>/<env>``): the message's link and CloudEvents'
    ``subject``."""
    from urllib.parse import quote

    if kind in APPROVAL_EVENTS and continuation_id:
        return f"promotions/{continuation_id}"
    if kind in ("human.requested", "human.expiring", "human.escalated") and continuation_id:
        return f"tasks/{continuation_id}"
    if run_id:
        return f"runs/{run_id}"
    if kind == "human.decision" and continuation_id:
        return f"promotions/{continuation_id}"
    if bundle and environment:
        return f"registry/{quote(bundle)}/{quote(environment)}"
    return "registry" if kind.startswith(("bundle.", "controller.", "policy.")) else "inbox"


def cloud_event(body: dict[str, Any], source: str) -> dict[str, Any]:
    """The CloudEvents 1.0 structured form of a Kneo message (``body``: its ``data``)."""
    data = body.get("data") or {}
    return {
        "specversion": "1.0",
        "id": body["id"],
        "source": source,
        "type": CLOUDEVENTS_TYPE_PREFIX + body["type"],
        "subject": resource_path(
            body["type"],
            continuation_id=body.get("continuation_id"),
            run_id=body.get("run_id"),
            environment=body.get("environment"),
            bundle=data.get("bundle") if isinstance(data, dict) else None,
        ),
        "time": body["created_at"],
        "datacontenttype": "application/json",
        "data": body,
    }


def wire_request(
    payload: dict[str, Any],
    *,
    message_id: str,
    event_type: str,
    secret: str | None,
    sent_at: datetime,
    content_type: str = "application/json",
) -> tuple[bytes, dict[str, str]]:
    """The bytes to POST and their headers: Standard Webhooks' three (the signature when
    there is a secret), the legacy signature, and Kneo's event headers."""
    content = jsontext.dumps(payload).encode()
    timestamp = int(sent_at.timestamp())
    headers = {
        "Content-Type": content_type,
        "User-Agent": f"kneo/{__version__}",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        EVENT_ID_HEADER: message_id,
        EVENT_TYPE_HEADER: event_type,
    }
    if secret:
        headers["webhook-signature"] = standard_signature(secret, message_id, timestamp, content)
        headers[LEGACY_SIGNATURE_HEADER] = legacy_signature(secret, content)
    return content, headers


__all__ = [
    "CLOUDEVENTS_CONTENT_TYPE",
    "CLOUDEVENTS_TYPE_PREFIX",
    "EVENT_ID_HEADER",
    "EVENT_TYPE_HEADER",
    "LEGACY_SIGNATURE_HEADER",
    "SECRET_PREFIX",
    "TOLERANCE_SECONDS",
    "cloud_event",
    "legacy_signature",
    "resource_path",
    "signing_key",
    "standard_signature",
    "wire_request",
]
