"""Slack's request signing: how Kneo knows an interaction callback came from Slack.

Slack signs every request to an app with the app's signing secret: ``X-Slack-Signature`` is
``v0=`` and the hex HMAC-SHA256 of ``v0:{X-Slack-Request-Timestamp}:{raw body}``. Kneo
accepts a callback only when that signature matches (compared in constant time), its
timestamp is within :data:`TOLERANCE_SECONDS` of Kneo's clock, and the same signature was
not accepted before by any process sharing the store (:class:`Replays`: the store's
``seen_callbacks``, keyed by a digest of the receiver and the signature, kept until the
timestamp's window has passed, then deleted; a captured callback sent again inside the
window is refused, after it its timestamp is). Pure but for that memory; the time is given.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Protocol

from kneo.errors import ErrorCode, Unauthorized

#: Seconds a callback's timestamp may differ from Kneo's clock (Slack's own advice).
TOLERANCE_SECONDS = 300
#: How long an accepted callback is remembered after its timestamp: its window, and as much
#: again for a process whose clock is up to the window behind the one that accepted it.
REMEMBERED_SECONDS = 2 * TOLERANCE_SECONDS
VERSION = "v0"
SIGNATURE_HEADER = "x-slack-signature"
TIMESTAMP_HEADER = "x-slack-request-timestamp"


class SlackSignatureInvalid(Unauthorized):
    """A callback that is not Slack's, is too old or was sent before (401)."""

    code = ErrorCode.slack_signature_invalid


class Replays(Protocol):
    """The callbacks already accepted (``store.idempotency.first_callback``)."""

    def first_callback(self, key: str, expires_at: datetime) -> bool: ...


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """``v0=<hex HMAC-SHA256 of "v0:{timestamp}:{body}">`` with the app's signing secret."""
    base = f"{VERSION}:{timestamp}:".encode() + body
    return f"{VERSION}=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def replay_key(scope: str, given: str) -> str:
    """What a callback is remembered by: the SHA-256 of its receiver and its signature (the
    signature itself is never stored: inside its window it would let a reader replay it)."""
    return hashlib.sha256(f"{scope}\0{given}".encode()).hexdigest()


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    now: float,
    replays: Replays,
    *,
    scope: str,
) -> None:
    """Refuse (401 ``slack_signature_invalid``, saying which check failed) unless ``body``
    is a callback Slack signed with ``secret`` within the window, seen for the first time by
    any process (``replays``; ``scope``: the receiver). ``headers``: lower-case names."""
    stamp = headers.get(TIMESTAMP_HEADER, "")
    given = headers.get(SIGNATURE_HEADER, "")
    if not stamp.isdigit() or not given:
        raise SlackSignatureInvalid(
            "a Slack callback needs X-Slack-Request-Timestamp and X-Slack-Signature"
        )
    if abs(now - int(stamp)) > TOLERANCE_SECONDS:
        raise SlackSignatureInvalid(
            f"the Slack callback's timestamp is more than {TOLERANCE_SECONDS} s from now"
        )
    if not hmac.compare_digest(signature(secret, stamp, body), given):
        raise SlackSignatureInvalid("the Slack callback's signature does not match")
    until = datetime.fromtimestamp(int(stamp) + REMEMBERED_SECONDS, UTC)
    if not replays.first_callback(replay_key(scope, given), until):
        raise SlackSignatureInvalid("this Slack callback was already received (a replay)")


__all__ = [
    "REMEMBERED_SECONDS",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "TOLERANCE_SECONDS",
    "Replays",
    "SlackSignatureInvalid",
    "replay_key",
    "signature",
    "verify",
]
