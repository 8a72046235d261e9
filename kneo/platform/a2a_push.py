"""A2A push notifications, the delivering half: the grant, the sealed credentials, and the
POST of one task update through the notifications outbox (docs/a2a.md#push-notifications).

The A2A server (``kneo service serve --a2a``, :mod:`kneo.service.a2a_push`) stores a
client's push configs and, each time a task it has configs for changes state, writes one
``a2a.task_status`` event with its delivery row (receiver :data:`RECEIVER`) in one
transaction. Any process's notification dispatcher then delivers it as it delivers the
other receivers' rows: leased, retried with backoff, ``dead`` after the last attempt, and
in order per config. This module is that delivery, with no A2A SDK (a worker has none):
the body was written with the event.

Three doors, each refused here whatever the store holds:

* **the destination**: the config's URL must be on the operator's allow-list
  (``KNEO_SERV_A2A_PUSH_DESTINATIONS``, :class:`kneo.kernel.AllowList`), asked by the
  kernel's HTTP client before the request and at every redirect hop (redirects are not
  followed: a ``3xx`` is a failed attempt);
* **the credentials**: the config's URL (its path may be a capability), ``token`` and
  ``authentication.credentials`` are sealed at rest (AES-256-GCM, the key derived from ``KNEO_SERV_A2A_PUSH_SECRET``, the config's id
  as associated data: a sealed value copied to another row does not open), opened only here
  to be sent;
* **the receiver's proof**: the token goes back as ``X-A2A-Notification-Token`` (the
  a2a-sdk's header) and signs the request (Standard Webhooks: ``webhook-id`` the event id,
  the same on every retry, ``webhook-timestamp`` and ``webhook-signature``), so a receiver
  can check the sender, the body and its freshness; ``authentication`` is the
  ``Authorization`` header (``<scheme> <credentials>``) Kneo presents to the receiver.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from kneo import tracing
from kneo.errors import AccessDenied, ConfigError, NotFound
from kneo.kernel import AllowList, http_client
from kneo.platform.messages import DeliveryFailed
from kneo.platform.webhooks import wire_request
from kneo.projects import DEFAULT_PROJECT_ID

if TYPE_CHECKING:
    import httpx2

    from kneo.settings import Settings
    from kneo.store import NotificationEvent
    from kneo.store.api import Store
    from kneo.store.outbox.a2a_push import A2aPushFacet

#: The outbox receiver of every push delivery (one name: ``kneo notifications list
#: --receiver a2a`` lists them, ``retry`` retries them; each config's go in order).
RECEIVER = "a2a"
#: The outbox event type of a push (its payload: ``push_id``, ``state`` and the ``body``).
EVENT_TYPE = "a2a.task_status"
#: The a2a-sdk's header for a config's token (a2a-go reads ``A2A-Notification-Token``:
#: both are sent).
TOKEN_HEADER = "X-A2A-Notification-Token"
TOKEN_HEADERS = (TOKEN_HEADER, "A2A-Notification-Token")
DESTINATIONS_VARIABLE = "KNEO_SERV_A2A_PUSH_DESTINATIONS"
SECRET_VARIABLE = "KNEO_SERV_A2A_PUSH_SECRET"
#: The shortest push secret accepted (it is a key: a person's password is not one).
MIN_SECRET_CHARS = 32
_SEAL_PREFIX = "v1."
_NONCE_BYTES = 12
_KEY_INFO = b"kneo a2a push credentials v1"


class PushFailed(DeliveryFailed):
    """One attempt failed; the message is safe to store (no URL, no token)."""


class PushGone(DeliveryFailed):
    """The config of a delivery is gone (deleted, or replaced under the same id): the
    delivery is dropped (``dead``), not retried."""

    final = True


def _key(secret: str) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_KEY_INFO).derive(
        secret.encode()
    )


def seal(secret: str, push_id: str, values: Mapping[str, str]) -> str:
    """``values`` (the URL, a token, credentials) sealed for the config ``push_id``."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    kept = {k: v for k, v in values.items() if v}
    nonce = os.urandom(_NONCE_BYTES)
    sealed = AESGCM(_key(secret)).encrypt(
        nonce, json.dumps(kept, sort_keys=True).encode(), push_id.encode()
    )
    return _SEAL_PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode()


def unseal(secret: str, push_id: str, sealed: str) -> dict[str, str]:
    """What :func:`seal` sealed for ``push_id``; :class:`PushFailed` when it does not open
    (another secret, another row's value)."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    try:
        raw = base64.urlsafe_b64decode(sealed.removeprefix(_SEAL_PREFIX).encode())
        opened = AESGCM(_key(secret)).decrypt(
            raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], push_id.encode()
        )
    except (InvalidTag, ValueError, binascii.Error):
        raise PushFailed(
            f"the push config's credentials do not open with {SECRET_VARIABLE} (was it changed?)"
        ) from None
    values = json.loads(opened)
    return {str(k): str(v) for k, v in values.items()}


@dataclass(frozen=True)
class PushGrant:
    """Push notifications as the operator configured them: where (the allow-list) and the
    key that seals the credentials (never printed)."""

    destinations: AllowList
    secret: str = field(repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> PushGrant | None:
        """The grant, ``None`` when ``KNEO_SERV_A2A_PUSH_DESTINATIONS`` is empty (no push
        notifications); a ``config_error`` naming the variable for a bad entry, or for a
        list without a secret to seal the credentials with."""
        destinations = AllowList.parse(
            settings.a2a_push.destinations, variable=DESTINATIONS_VARIABLE
        )
        if not destinations:
            return None
        secret = settings.a2a_push.secret
        if len(secret) < MIN_SECRET_CHARS:
            raise ConfigError(
                f"{DESTINATIONS_VARIABLE} needs {SECRET_VARIABLE} (at least "
                f"{MIN_SECRET_CHARS} characters, the same on every process): push tokens "
                "and credentials are sealed with it in the store",
                variable=SECRET_VARIABLE,
            )
        return cls(destinations, secret)


class PushSender:
    """Delivers ``a2a.task_status`` events (the dispatcher's receiver :data:`RECEIVER`),
    each with the config of the event's project (``projects``; without it, ``store``'s)."""

    def __init__(
        self,
        store: A2aPushFacet,
        grant: PushGrant,
        *,
        timeout: float,
        projects: Store | None = None,
    ) -> None:
        self.store = store
        self.projects = projects
        self.grant = grant
        self.timeout = timeout
        self._client: httpx2.Client | None = None

    def client(self) -> httpx2.Client:
        """The kernel's HTTP client: the allow-list asked before every request, no
        redirect followed."""
        if self._client is None:
            self._client = http_client(
                self.grant.destinations, path=DESTINATIONS_VARIABLE, timeout=self.timeout
            )
        return self._client

    def send(self, event: NotificationEvent, sent_at: datetime) -> int:
        """POST the event's body to its config's URL; the HTTP status, else
        :class:`PushFailed` (retried) or :class:`PushGone` (dropped)."""
        import httpx2

        push_id = str(event.payload.get("push_id") or "")
        configs: A2aPushFacet = self.store
        if self.projects is not None:
            try:
                configs = self.projects.for_project(event.project_id).a2a_push
            except NotFound:  # its project was archived: nothing to push to any more
                raise PushGone("the push config's project is archived") from None
        found = configs.push_configs(push_id=push_id) if push_id else []
        if not found:
            raise PushGone("the push config was deleted or replaced")
        config = found[0]
        secrets = unseal(self.grant.secret, config.push_id, config.sealed)
        token, url = secrets.get("token"), secrets.get("url", "")
        content, headers = wire_request(
            dict(event.payload.get("body") or {}),
            message_id=event.event_id,
            event_type=EVENT_TYPE,
            secret=token,
            sent_at=sent_at,
        )
        if token:
            headers.update(dict.fromkeys(TOKEN_HEADERS, token))
        if config.auth_scheme and secrets.get("credentials"):
            headers["Authorization"] = f"{config.auth_scheme} {secrets['credentials']}"
        try:  # a call out to the A2A client's webhook: a CLIENT span (no URL: it is sealed)
            with tracing.client_span(
                "POST a2a push",
                **{"http.request.method": "POST", "kneo.a2a.push_id": config.push_id},
            ) as span:
                response = self.client().post(url, content=content, headers=headers)
                if span is not None:
                    span.set_attribute("http.response.status_code", response.status_code)
        except AccessDenied:
            raise PushFailed(
                f"refused: not on {DESTINATIONS_VARIABLE} (the list changed since the config "
                "was set)"
            ) from None
        except httpx2.HTTPError as exc:
            raise PushFailed(f"{type(exc).__name__}: the receiver could not be reached") from None
        if not 200 <= response.status_code < 300:
            raise PushFailed(f"HTTP {response.status_code}")
        return int(response.status_code)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def push_sender(store: Store, settings: Settings) -> PushSender | None:
    """The deliverer of a process whose settings allow pushes (else ``None``: it claims
    none of them), for every project's configs."""
    grant = PushGrant.from_settings(settings)
    if grant is None:
        return None
    timeout = settings.notifications.timeout_seconds
    own = store.for_project(DEFAULT_PROJECT_ID).a2a_push
    return PushSender(own, grant, timeout=timeout, projects=store)


__all__ = [
    "DESTINATIONS_VARIABLE",
    "EVENT_TYPE",
    "RECEIVER",
    "SECRET_VARIABLE",
    "TOKEN_HEADER",
    "PushFailed",
    "PushGone",
    "PushGrant",
    "PushSender",
    "push_sender",
    "seal",
    "unseal",
]
