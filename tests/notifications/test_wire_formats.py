"""Deliveries checked by verifier libraries no one here wrote: the ``standardwebhooks``
library verifies a real delivery (and its retry) and refuses a replayed one; the
``cloudevents`` SDK parses a ``format: cloudevents`` delivery. The legacy body signature
still verifies for receivers written against it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cloudevents.core.bindings.http import HTTPMessage, from_http_event
from standardwebhooks import Webhook, WebhookVerificationError

from kneo.errors import ConfigError
from kneo.notification_events import NOTIFICATION_EVENTS
from kneo.platform import create_platform
from kneo.platform.notifications import load_receivers, start_dispatcher
from kneo.platform.webhooks import CLOUDEVENTS_TYPE_PREFIX, cloud_event
from kneo.settings import Settings
from kneo.spec.project import ProjectContext

from .conftest import SECRET, receivers_env
from .receiver import Receiver
from .test_delivery import FAST, SMOKE, rows, wait_for

#: A secret in the Standard Webhooks format: ``whsec_`` and base64 of 32 random bytes.
WHSEC = "whsec_" + base64.b64encode(b"kneo-standard-webhooks-test-key!").decode()


def deliver_one(manager: Any, receiver: Receiver, count: int = 1) -> list[tuple[dict, bytes]]:
    """Pause a run and wait until ``count`` requests for it reached ``receiver``."""
    dispatcher = start_dispatcher(manager, manager.settings)
    assert dispatcher is not None
    try:
        manager.run_from_spec(input_text="hello", spec_path=SMOKE)
        wait_for(lambda: [r for r in rows(manager) if r.status == "sent"])
        wait_for(lambda: len(receiver.requests) >= count)
    finally:
        dispatcher.stop()
    return receiver.requests


def hook(url: str, **fields: Any) -> dict[str, str]:
    config = {"name": "hook", "url": url, "secret_env": "NOTIFY_SECRET", **fields}
    return {"KNEO_SERV_NOTIFICATIONS_RECEIVERS": receivers_env(config)}


def test_a_delivery_verifies_with_the_standardwebhooks_library(
    platform: Any, receiver: Receiver
) -> None:
    manager = platform(**hook(receiver.url), NOTIFY_SECRET=WHSEC)
    [(headers, body)] = deliver_one(manager, receiver)
    message = Webhook(WHSEC).verify(body, headers)
    assert message["type"] == "human.requested"
    assert headers["webhook-id"] == message["id"] == headers["x-kneo-event-id"]
    assert abs(int(headers["webhook-timestamp"]) - datetime.now(UTC).timestamp()) < 60
    with pytest.raises(WebhookVerificationError):  # another key does not verify it
        Webhook("whsec_" + base64.b64encode(b"some-other-key").decode()).verify(body, headers)
    legacy = "sha256=" + hmac.new(WHSEC.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["x-kneo-signature-256"], legacy)


def test_a_plain_text_secret_is_the_key_bytes(platform: Any, receiver: Receiver) -> None:
    """A secret not in ``whsec_`` form signs with its UTF-8 bytes (the library takes bytes)."""
    manager = platform(**hook(receiver.url))  # NOTIFY_SECRET=SECRET, plain text
    [(headers, body)] = deliver_one(manager, receiver)
    assert Webhook(SECRET.encode()).verify(body, headers)["type"] == "human.requested"


def test_a_retry_is_signed_again_under_the_same_id(platform: Any, receiver: Receiver) -> None:
    receiver.status = 500
    manager = platform(**hook(receiver.url), **FAST, NOTIFY_SECRET=WHSEC)
    dispatcher = start_dispatcher(manager, manager.settings)
    assert dispatcher is not None
    try:
        manager.run_from_spec(input_text="hello", spec_path=SMOKE)
        wait_for(lambda: len(receiver.requests) >= 1)
        receiver.status = 200
        wait_for(lambda: [r for r in rows(manager) if r.status == "sent"])
    finally:
        dispatcher.stop()
    assert len(receiver.requests) >= 2
    ids = {headers["webhook-id"] for headers, _ in receiver.requests}
    assert len(ids) == 1
    for headers, body in receiver.requests:
        Webhook(WHSEC).verify(body, headers)


class _Behind:
    """A sender whose deliveries were captured ``minutes`` ago and are replayed now."""

    def __init__(self, minutes: float) -> None:
        self.offset = timedelta(minutes=minutes)

    def now(self) -> datetime:
        return datetime.now(UTC) - self.offset


def test_a_replayed_delivery_is_refused(tmp_path: Path, receiver: Receiver) -> None:
    env = {
        "KNEO_SERV_DATABASE_URL": f"sqlite:///{tmp_path / 'kneo.sqlite'}",
        "NOTIFY_SECRET": WHSEC,
        **hook(receiver.url),
    }
    settings = Settings.from_env(env)
    project = ProjectContext.discover(cwd=tmp_path, settings=settings)
    manager = create_platform(settings, project, clock=_Behind(minutes=10))
    try:
        [(headers, body)] = deliver_one(manager, receiver)
    finally:
        manager.store.close()
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(WHSEC).verify(body, headers)
    # Refreshing the timestamp does not help: it is signed with the id and the body.
    fresh = {**headers, "webhook-timestamp": str(int(datetime.now(UTC).timestamp()))}
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(WHSEC).verify(body, fresh)


def test_a_cloudevents_delivery_parses_with_the_cloudevents_sdk(
    platform: Any, receiver: Receiver
) -> None:
    manager = platform(
        **hook(receiver.url, format="cloudevents"),
        KNEO_SERV_PUBLIC_URL="https://kneo.example",
        NOTIFY_SECRET=WHSEC,
    )
    [(headers, body)] = deliver_one(manager, receiver)
    assert headers["content-type"].startswith("application/cloudevents+json")
    event = from_http_event(HTTPMessage(headers=headers, body=body))
    data = event.get_data()
    assert isinstance(data, dict)
    cid = data["continuation_id"]
    assert event.get_specversion() == "1.0"
    assert event.get_id() == data["id"] == headers["webhook-id"]
    assert event.get_type() == "io.kneo.human.requested"
    assert event.get_source() == "https://kneo.example"
    assert event.get_subject() == f"tasks/{cid}"
    assert event.get_time() == datetime.fromisoformat(data["created_at"])
    assert event.get_datacontenttype() == "application/json"
    assert data["link"] == f"https://kneo.example/ui/tasks/{cid}"
    Webhook(WHSEC).verify(body, headers)  # signed as any webhook


def test_cloudevents_types_map_one_to_one() -> None:
    body = {"id": "evt_1", "created_at": "2026-01-01T00:00:00Z", "data": {}}
    types = {cloud_event({**body, "type": t}, "/kneo")["type"] for t in NOTIFICATION_EVENTS}
    assert types == {CLOUDEVENTS_TYPE_PREFIX + t for t in NOTIFICATION_EVENTS}


def test_bad_configuration_is_refused_naming_the_field() -> None:
    slack = {"name": "chat", "type": "slack", "url": "https://x.example", "format": "cloudevents"}
    settings = Settings.from_env({"KNEO_SERV_NOTIFICATIONS_RECEIVERS": json.dumps([slack])})
    with pytest.raises(ConfigError, match="format applies to webhook receivers only"):
        load_receivers(settings)
    bad = "whsec_not base64!"
    settings = Settings.from_env({**hook("https://x.example"), "NOTIFY_SECRET": bad})
    with pytest.raises(ConfigError, match="NOTIFY_SECRET: a whsec_ secret must be base64") as e:
        load_receivers(settings)
    assert bad not in str(e.value)
