"""A delivery to a trigger: verified, parsed, filtered, deduplicated, then one run.

A trigger is declared in the signed spec of a bundle's **active** revision
(:mod:`kneo.spec.triggers`); anything else is 404. In order:

1. its secret, read through the trust kernel (:func:`kneo.kernel.secret`) with the grant
   of bundle runs in the environment: a secret the project does not declare there is
   refused (``E_SECRET_UNDECLARED``), an unset one refuses every delivery (401);
2. the signature over the raw body (Standard Webhooks by its own library, which also
   refuses a timestamp more than five minutes off; or an HMAC-SHA256 header), 401
   ``unauthorized`` when it fails, before the body is parsed;
3. the event: the body (``json``), or a CloudEvent in structured or binary mode, parsed
   by the ``cloudevents`` SDK;
4. the filter (an event it drops starts nothing and is not recorded);
5. the event claimed by its id (a CloudEvent's source and id; with Standard Webhooks, the
   signed message id too), so a retried delivery starts no second run on any replica;
6. the run, through :func:`kneo.platform.bundles.run_bundle`: the environment's admission
   and the project's limits, as the actor ``trigger:<name>``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kneo.documents import DocumentError, parse_json
from kneo.errors import ErrorCode, InvalidRequest, KneoError, NotFound, Unauthorized
from kneo.kernel import secret as kernel_secret
from kneo.names import check_name
from kneo.platform.bundles import BundleRunner, run_bundle
from kneo.spec.triggers import TriggerSpec, event_of, passes, pick, run_input, run_metadata
from kneo.store.triggers import TriggerKey

#: the largest delivery body accepted
MAX_BODY_BYTES = 1_000_000


@dataclass(frozen=True)
class Delivery:
    """One HTTP delivery: headers (names lower-case) and the raw body."""

    headers: Mapping[str, str]
    body: bytes


def declared(platform: BundleRunner, key: TriggerKey) -> TriggerSpec:
    """The trigger the active revision of the bundle declares under ``key[2]``; 404."""
    check_name(key[0], kind="bundle name", field="bundle")
    check_name(key[1], kind="environment")
    check_name(key[2], kind="trigger name", field="name")
    active = platform.store.registry.get_active(key[0], key[1])
    for raw in ((active.spec or {}).get("triggers") or ()) if active is not None else ():
        if isinstance(raw, Mapping) and raw.get("name") == key[2]:
            return TriggerSpec.model_validate(raw)
    raise NotFound(
        f"no active revision of bundle {key[0]!r} in {key[1]!r} declares a trigger {key[2]!r}",
        resource="trigger",
    )


def trigger_secret(platform: BundleRunner, key: TriggerKey, trigger: TriggerSpec) -> str:
    """The trigger's secret, through the kernel's secret door with the environment's grant."""
    runs = platform.runs
    grant = runs.admission.host_access(key[1], "bundle")
    value = kernel_secret(
        grant, runs.settings.environ, trigger.secret, path=f"triggers.{key[2]}.secret"
    )
    if not value:
        raise Unauthorized("the trigger's secret is not set", code=ErrorCode.unauthorized)
    return value


def verify(trigger: TriggerSpec, secret: str, delivery: Delivery) -> str | None:
    """Check the delivery's signature; the signed message id (Standard Webhooks) or None."""
    if trigger.signature == "standard-webhooks":
        from standardwebhooks.webhooks import Webhook, WebhookVerificationError

        try:
            Webhook(secret).verify(delivery.body, dict(delivery.headers), json_parse=False)
        except (WebhookVerificationError, ValueError) as exc:
            raise Unauthorized(f"the delivery's signature does not verify: {exc}") from None
        return delivery.headers.get("webhook-id")
    given = (delivery.headers.get(trigger.header.lower()) or "").strip()
    given = given.removeprefix("sha256=")
    expected = hmac.new(secret.encode(), delivery.body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), given.encode("utf-8", "surrogateescape")):
        raise Unauthorized(f"the {trigger.header} signature does not match")
    return None


def parse(trigger: TriggerSpec, delivery: Delivery) -> tuple[Any, str]:
    """``(the event document, its id)``; 400 naming what is wrong."""
    if trigger.format == "cloudevents":
        return _cloudevent(trigger, delivery)
    try:
        event = parse_json(delivery.body, source="the delivery's body")
    except DocumentError as exc:
        raise InvalidRequest(str(exc), field="body") from None
    found = pick(event, trigger.event_id)
    if not isinstance(found, (str, int)) or isinstance(found, bool) or found == "":
        raise InvalidRequest(
            f"the event has no id at {trigger.event_id!r} (a string or an integer)",
            field="body",
        )
    return event, str(found)


def _cloudevent(trigger: TriggerSpec, delivery: Delivery) -> tuple[Any, str]:
    from cloudevents.core.bindings.http import HTTPMessage, from_http_event

    binary = "ce-id" in delivery.headers
    if binary and trigger.signature != "standard-webhooks":
        raise InvalidRequest(
            "a binary-mode CloudEvent's attributes are outside the HMAC signature: send "
            "structured mode, or sign with Standard Webhooks",
            field="headers",
        )
    try:
        event = from_http_event(HTTPMessage(headers=dict(delivery.headers), body=delivery.body))
    except Exception as exc:  # the SDK raises several kinds for a malformed event
        raise InvalidRequest(f"not a CloudEvent: {exc}", field="body") from None
    attributes = event.get_attributes()
    doc = event_of(attributes, event.get_data())
    return doc, f"{attributes.get('source')}\n{attributes.get('id')}"


def deliver(
    platform: BundleRunner, key: TriggerKey, delivery: Delivery
) -> tuple[int, dict[str, Any]]:
    """Handle one delivery; ``(HTTP status, body)``: 202 started, 200 duplicate or
    filtered."""
    if len(delivery.body) > MAX_BODY_BYTES:
        raise InvalidRequest(f"the delivery is over {MAX_BODY_BYTES} bytes", field="body")
    trigger = declared(platform, key)
    message_id = verify(trigger, trigger_secret(platform, key, trigger), delivery)
    event, event_id = parse(trigger, delivery)
    if not passes(trigger, event):
        return 200, {"status": "filtered"}
    store = platform.store
    keys = [_key("event", event_id)] + ([_key("message", message_id)] if message_id else [])
    for n, event_key in enumerate(keys):
        first = store.triggers.claim_event(key, event_key)
        if first is not None:  # a delivery of this event claimed it already
            return 200, {"status": "duplicate", "run_id": first["run_id"]}
        if n:  # the message id only guards against a replayed body: no row of its own
            store.triggers.record_event(key, event_key, "message")
    meta = {"trigger": {"name": key[2], "event_id": event_id[:200]}, **run_metadata(trigger, event)}
    try:
        result = run_bundle(
            platform, bundle=key[0], environment=key[1], input_text=run_input(trigger, event),
            target=trigger.target, async_mode=True, metadata=meta, actor=f"trigger:{key[2]}",
        )  # fmt: skip
    except KneoError as exc:
        store.triggers.record_event(key, keys[0], "failed", detail=f"{exc.code}: {exc.message}")
        raise
    store.triggers.record_event(key, keys[0], "started", run_id=result.run_id)
    return 202, {"status": "started", "run_id": result.run_id}


def _key(kind: str, value: str) -> str:
    return hashlib.sha256(f"{kind}\n{value}".encode()).hexdigest()


__all__ = ["MAX_BODY_BYTES", "Delivery", "declared", "deliver", "parse", "verify"]
