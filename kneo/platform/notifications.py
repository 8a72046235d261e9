"""Notification delivery: receivers, messages, signatures, and the dispatcher thread.

Events come from the outbox (:mod:`kneo.store.notifications`), written with their cause.
A :class:`Dispatcher` runs next to the sweeper in every service and worker process
(:func:`start_dispatcher`); each tick it writes due ``human.expiring`` events, routes new
events to the receivers this process is configured with, claims due deliveries with a
lease, and POSTs each one: success is ``sent``; a failure is retried after an exponential
backoff with jitter, until ``KNEO_SERV_NOTIFICATIONS_MAX_ATTEMPTS`` make it ``dead``. A
process killed mid-delivery loses its lease and another delivers the row again, with the
same event id (``X-Kneo-Event-Id``), so a receiver that deduplicates on it acts once.

Runs never wait for any of this: the run's transaction only inserts the event row.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any, Protocol

from kneo import metrics
from kneo.clock import jitter, utc_iso
from kneo.errors import ConfigError, ErrorCode, KneoError
from kneo.logs import get_logger
from kneo.notification_events import SEVERITIES
from kneo.platform.decision_links import DecisionLinks, recipient_of
from kneo.platform.webhooks import (
    CLOUDEVENTS_CONTENT_TYPE,
    EVENT_ID_HEADER,
    LEGACY_SIGNATURE_HEADER,
    cloud_event,
    legacy_signature,
    resource_path,
    signing_key,
    wire_request,
)
from kneo.redaction import redact_mapping, redact_text

if TYPE_CHECKING:
    from kneo.clock import Clock
    from kneo.settings import NotificationSettings, Settings
    from kneo.spec.project import ProjectContext, ReceiverConfig
    from kneo.store import DeliveryOutcome, NotificationEvent, NotificationRecord, Store
    from kneo.store.contracts import HumanTaskReads, NotificationOutbox

    class ExpiringTasks(HumanTaskReads, NotificationOutbox, Protocol):
        """The sweep's reads and writes: pending tasks, the outbox events it adds."""

    class DispatcherStore(ExpiringTasks, Protocol):
        """The dispatcher's: the outbox, the expiring sweep, the store's clock."""

        @property
        def clock(self) -> Clock: ...


log = get_logger("kneo_serv.notifications")

SIGNATURE_HEADER = LEGACY_SIGNATURE_HEADER
#: CloudEvents ``source`` without ``KNEO_SERV_PUBLIC_URL`` (with it: that URL).
CLOUDEVENTS_SOURCE = "/kneo"
RECEIVERS_VARIABLE = "KNEO_SERV_NOTIFICATIONS_RECEIVERS"
_ERROR_CHARS = 500


# --------------------------------------------------------------------------- receivers


@dataclass(frozen=True)
class Receiver:
    """A configured receiver with its secrets resolved (never printed: ``repr`` omits them)."""

    name: str
    type: str
    url: str = field(repr=False)
    secret: str | None = field(default=None, repr=False)
    events: tuple[str, ...] = ()
    environments: tuple[str, ...] = ()
    assignees: tuple[str, ...] = ()
    severity: str = "info"
    format: str = "kneo"

    def wants(self, event: NotificationEvent) -> bool:
        """Whether every filter that is set matches ``event`` (Flux Alert style)."""
        if self.events and not any(fnmatchcase(event.event_type, p) for p in self.events):
            return False
        if self.environments and event.environment not in self.environments:
            return False
        if self.assignees and event.assignee not in self.assignees:
            return False
        return SEVERITIES.index(event.severity) >= SEVERITIES.index(self.severity)


def receiver_configs(settings: Settings, project_config: Any = None) -> list[ReceiverConfig]:
    """The project config's ``notifications.receivers`` plus those in
    ``KNEO_SERV_NOTIFICATIONS_RECEIVERS`` (a JSON list, same schema); a bad entry is a
    ``config_error`` naming the variable and the field."""
    from pydantic import ValidationError

    from kneo.spec.project import NotificationsConfig

    configured = list(getattr(getattr(project_config, "notifications", None), "receivers", []))
    raw = settings.notifications.receivers.strip()
    if raw:
        try:
            data = json.loads(raw)
            extra = NotificationsConfig.model_validate({"receivers": data}).receivers
        except ValueError as exc:  # JSON or pydantic (a ValueError too)
            detail = _validation_text(exc) if isinstance(exc, ValidationError) else str(exc)
            raise ConfigError(
                f"{RECEIVERS_VARIABLE} is not a valid receiver list: {detail}",
                variable=RECEIVERS_VARIABLE,
            ) from None
        configured += extra
    names = [r.name for r in configured]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(
            f"notification receiver names must be unique: {', '.join(repeated)} is configured "
            f"twice (project config and {RECEIVERS_VARIABLE})",
            variable=RECEIVERS_VARIABLE,
        )
    return configured


def _validation_text(exc: Any) -> str:
    return "; ".join(
        f"receivers.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
    )


def _variable(settings: Settings, receiver: str, variable: str) -> str:
    """The value of a receiver's ``variable``; unset or empty is a ``config_error``."""
    value = settings.secret(variable)
    if not value:
        raise ConfigError(
            f"notification receiver {receiver!r}: {variable} is not set", variable=variable
        )
    return value


def load_receivers(settings: Settings, project_config: Any = None) -> list[Receiver]:
    """:func:`receiver_configs` with their URLs and secrets read from the environment; a
    variable that is unset is a ``config_error`` naming it (never its value)."""
    out = []
    for config in receiver_configs(settings, project_config):
        url = config.url
        if config.url_env is not None:
            url = _variable(settings, config.name, config.url_env)
        secret = None
        if config.secret_env is not None:
            secret = _variable(settings, config.name, config.secret_env)
            try:
                signing_key(secret)
            except ValueError as exc:
                raise ConfigError(
                    f"notification receiver {config.name!r}: {config.secret_env}: {exc}",
                    variable=config.secret_env,
                ) from None
        out.append(
            Receiver(
                name=config.name,
                type=config.type,
                url=str(url),
                secret=secret,
                events=tuple(config.events),
                environments=tuple(config.environments),
                assignees=tuple(config.assignees),
                severity=config.severity,
                format=config.format,
            )
        )
    return out


# --------------------------------------------------------------------------- messages


def console_link(event: NotificationEvent, base_url: str) -> str | None:
    """The console page of the event's task, promotion, run or bundle (``None`` without a
    base URL, ``KNEO_SERV_PUBLIC_URL``)."""
    if not base_url:
        return None
    path = resource_path(
        event.event_type,
        continuation_id=event.continuation_id,
        run_id=event.run_id,
        environment=event.environment,
        bundle=event.payload.get("bundle"),
    )
    return f"{base_url}/ui/{path}"


_SUMMARIES: dict[str, str] = {
    "human.requested": "{subject} is waiting for {who}",
    "human.expiring": "{subject} expires at {expires_at} and is still waiting for {who}",
    "human.escalated": "{subject} was not answered in time and is escalated",
    "human.expired": "{subject} expired unanswered: the run stopped",
    "human.decision": "{actor} decided {decision} on {subject}",
    "promotion.awaiting_approval": "{subject} is waiting for a promotion approval",
    "promotion.evals_failed": "{subject} was held back by its eval gate: {detail}",
    "bundle.promoted": "{subject} was promoted",
    "bundle.rejected": "{subject} was rejected",
    "bundle.drift_reverted": "drift on {subject} was reverted",
    "controller.reconcile_failed": "the controller's reconcile failed",
    "run.failed": "{subject} failed",
}


def summary(event: NotificationEvent) -> str:
    """One line a person reads (in Slack, or a webhook's ``summary``)."""
    data = event.payload
    bundle = data.get("bundle")
    name = bundle or data.get("workflow") or event.run_id or event.continuation_id or "kneo"
    subject = f"{name} ({event.environment})" if event.environment else str(name)
    text = _SUMMARIES.get(event.event_type, "{subject}: " + event.event_type).format(
        subject=subject,
        who=event.assignee or "a reviewer",
        expires_at=data.get("expires_at") or "soon",
        actor=event.actor or "someone",
        decision=data.get("decision") or "",
        detail="; ".join(
            str(r.get("message")) for r in data.get("reasons") or [] if isinstance(r, dict)
        ),
    )
    return redact_text(text)


def message(event: NotificationEvent, base_url: str = "") -> dict[str, Any]:
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
            "link": console_link(event, base_url),
            "data": event.payload,
        }
    )


def with_decision_link(
    body: dict[str, Any], event: NotificationEvent, links: DecisionLinks | None
) -> dict[str, Any]:
    """``body`` with its request's signed decision link (:mod:`kneo.platform.decision_links`)
    when links are on and the request is assigned to one person or key. Added after the
    redaction: the link is meant for its recipient."""
    if links is None or event.event_type != "human.requested" or not event.continuation_id:
        return body
    recipient = recipient_of(event.payload.get("assignee"))
    request_id = event.payload.get("request_id")
    if recipient is None or not isinstance(request_id, str):
        return body
    return {**body, "decision_link": links.url(event.continuation_id, request_id, recipient)}


def slack_message(body: dict[str, Any]) -> dict[str, Any]:
    """A Slack incoming-webhook body for a :func:`message`."""
    link = f" <{body['link']}|Open in Kneo>" if body.get("link") else ""
    if body.get("decision_link"):
        link += f" · <{body['decision_link']}|Decide>"
    text = f"*[{body['severity']}] {body['type']}*: {body['summary']}{link}"
    return {
        "text": f"[{body['severity']}] {body['type']}: {body['summary']}",
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"event {body['id']}"}]},
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
    """One attempt failed; the message is safe to store (no URL, no secret)."""


def post(
    client: Any, receiver: Receiver, body: dict[str, Any], sent_at: datetime, base_url: str = ""
) -> int:
    """POST ``body`` to ``receiver``; its status code, or :class:`DeliveryFailed`."""
    import httpx2

    content, headers = request_for(receiver, body, sent_at, base_url)
    try:
        response = client.post(receiver.url, content=content, headers=headers)
    except httpx2.HTTPError as exc:  # the URL may be a secret (Slack): never in the message
        raise DeliveryFailed(f"{type(exc).__name__}: the receiver could not be reached") from None
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


# --------------------------------------------------------------------------- dispatcher


def expiring_event_id(continuation_id: str, expires_at: datetime) -> str:
    """The one ``human.expiring`` event of a continuation's expiry (any sweep, any process)."""
    key = f"{continuation_id}:{utc_iso(expires_at)}".encode()
    return "nexp_" + hashlib.sha256(key).hexdigest()[:32]


def sweep_expiring(store: ExpiringTasks, now: datetime, lead_seconds: float) -> int:
    """Write ``human.expiring`` for pending tasks that expire within ``lead_seconds``; each
    once (keyed by continuation and expiry). Returns how many were new."""
    if lead_seconds <= 0:
        return 0
    written = 0
    cursor = None
    while True:
        page = store.list_continuations(
            status="pending",
            expires_before=now + timedelta(seconds=lead_seconds),
            limit=200,
            cursor=cursor,
            count=False,
        )
        for cont in page.items:
            if cont.expires_at is None or cont.expires_at <= now:
                continue  # expired already: the timeout sweep's business
            pending = [r for r in cont.requests if (r.get("status") or "pending") == "pending"]
            written += store.add_notification_event(
                expiring_event_id(cont.continuation_id, cont.expires_at),
                "human.expiring",
                run_id=cont.run_id,
                continuation_id=cont.continuation_id,
                payload={
                    "expires_at": utc_iso(cont.expires_at),
                    "environment": cont.environment,
                    "workflow": cont.workflow_name,
                    "assignee": next((r["assignee"] for r in pending if r.get("assignee")), None),
                    "request_ids": [r.get("request_id") for r in pending],
                },
            )
        cursor = page.next_cursor
        if cursor is None:
            return written


class Dispatcher:
    """Delivers the outbox for one process until :meth:`stop`.

        A loop thread routes and claims; a pool of ``concurrency`` threads POSTs, at most
        ``receiver_concurrency`` at once per receiver. A receiver that hangs until the timeout
        holds only its own slots: the loop claims for a receiver only as many rows as it has
        free slots, so the others' deliveries never queue behind it. When a receiver had every
        slot busy, the loop is woken to claim its next rows as soon as half of them are free (a
    claim per batch, not per delivery).
    """

    def __init__(
        self,
        store: DispatcherStore,
        receivers: Sequence[Receiver],
        settings: NotificationSettings,
        *,
        owner: str,
        base_url: str = "",
        client: Any = None,
        rand: Callable[[], float] = jitter,
        links: DecisionLinks | None = None,
    ) -> None:
        self.store = store
        self.links = links
        self.receivers = {r.name: r for r in receivers}
        self.settings = settings
        self.owner = owner
        self.base_url = base_url
        self._client = client
        self._rand = rand
        self._next_sweep: datetime | None = None
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, settings.concurrency), thread_name_prefix="kneo-notify"
        )
        self._busy = threading.Condition()
        self._in_flight: dict[str, int] = dict.fromkeys(self.receivers, 0)
        self._full: set[str] = set()  # receivers whose slots were all taken at the last claim
        self._done: list[DeliveryOutcome] = []  # finished, not yet recorded
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def _http(self) -> Any:
        with self._busy:
            if self._client is None:
                import httpx2

                slots = max(1, self.settings.concurrency)
                self._client = httpx2.Client(
                    timeout=self.settings.timeout_seconds,
                    limits=httpx2.Limits(max_connections=slots, max_keepalive_connections=slots),
                )
            return self._client

    def route(self, event: NotificationEvent) -> list[str]:
        return [r.name for r in self.receivers.values() if r.wants(event)]

    def _free_slots(self, name: str) -> int:
        """What ``name`` may claim now: its own free slots, within the dispatcher's."""
        with self._busy:
            total = sum(self._in_flight.values())
            mine = self.settings.receiver_concurrency - self._in_flight[name]
            return max(0, min(mine, self.settings.concurrency - total))

    def run_once(self) -> int:
        """One tick: expiring sweep (at most every 5 s), route, then for each receiver with
        free slots claim that many due rows and hand them to the pool; returns how many
        were claimed (the deliveries go on in the pool: :meth:`wait_idle` waits for them)."""
        now = self.store.clock.now()
        if self._next_sweep is None or now >= self._next_sweep:
            self._next_sweep = now + timedelta(seconds=5)
            sweep_expiring(self.store, now, self.settings.expiring_lead_seconds)
        while self.store.route_notifications(self.route) >= 100:
            pass
        claimed = 0
        for name in self.receivers:
            free = self._free_slots(name)
            if free <= 0:
                continue
            records = self.store.claim_notifications(
                self.owner, self.settings.lease_seconds, limit=free, receivers=[name]
            )
            with self._busy:
                self._in_flight[name] += len(records)
                if len(records) == free:
                    self._full.add(name)
                else:
                    self._full.discard(name)
            for record in records:
                self._pool.submit(self._deliver_in_slot, record)
            claimed += len(records)
        return claimed

    def _deliver_in_slot(self, record: NotificationRecord) -> None:
        try:
            outcome = self.attempt(record)
        except Exception:  # a bug: the row stays leased, and is retried when the lease lapses
            log.exception("notification %d to %s failed", record.id, record.receiver)
            outcome = None
        with self._busy:
            if outcome is not None:
                self._done.append(outcome)
            self._in_flight[record.receiver] -= 1
            half = self.settings.receiver_concurrency // 2
            if record.receiver in self._full and self._in_flight[record.receiver] <= half:
                self._full.discard(record.receiver)
                self._wake.set()  # it had more due rows waiting: claim them in one go
            self._busy.notify_all()

    def record(self) -> int:
        """Write the outcomes of the deliveries finished since the last call, in one
        transaction (the pool's threads never hold a database connection)."""
        with self._busy:
            done, self._done = self._done, []
        try:
            return self.store.finish_notifications(self.owner, done)
        except Exception:
            with self._busy:  # the database blinked: write them with the next batch
                self._done[:0] = done
            raise

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no delivery is in flight, and record their outcomes; ``False`` if
        ``timeout`` came first."""
        with self._busy:
            idle = self._busy.wait_for(lambda: not any(self._in_flight.values()), timeout)
        self.record()
        return idle

    def attempt(self, record: NotificationRecord) -> DeliveryOutcome:
        """POST one claimed delivery; its outcome, to record (``sent``, else retried at
        ``retry_at``, else ``dead``)."""
        from kneo.store import DeliveryOutcome

        receiver = self.receivers[record.receiver]
        try:
            post(
                self._http(),
                receiver,
                with_decision_link(message(record.event, self.base_url), record.event, self.links),
                self.store.clock.now(),
                self.base_url,
            )
        except DeliveryFailed as exc:
            error = str(exc)[:_ERROR_CHARS]
            retry_at = None
            if record.attempts < self.settings.max_attempts:
                delay = retry_delay(
                    record.attempts,
                    self.settings.backoff_seconds,
                    self.settings.backoff_max_seconds,
                    self._rand,
                )
                retry_at = self.store.clock.now() + timedelta(seconds=delay)
            log.warning(
                "notification %s to %s failed (attempt %d): %s",
                record.event.event_id,
                record.receiver,
                record.attempts,
                error,
            )
            metrics.record_notification(record.receiver, "failed" if retry_at else "dead")
            return DeliveryOutcome(record.id, False, error, retry_at)
        metrics.record_notification(record.receiver, "sent")
        return DeliveryOutcome(record.id, True)

    def _loop(self) -> None:
        while not self._stopped.is_set():
            try:
                self.record()
                claimed = self.run_once()
            except Exception:  # the database blinked: next tick
                log.exception("notification dispatch failed")
                claimed = 0
            if not claimed:  # something claimed: more may be due, go on at once
                self._wake.wait(self.settings.poll_seconds)
            self._wake.clear()

    def start(self) -> Dispatcher:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="kneo-notifications")
            self._thread.daemon = True
            self._thread.start()
        return self

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop claiming, let deliveries in flight finish (within ``timeout``), close."""
        self._stopped.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        try:
            self.wait_idle(timeout)
        except Exception:  # the database is gone: the leases lapse, and the rows go again
            log.exception("notification outcomes could not be recorded")
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._client is not None:
            self._client.close()


class NotifyingPlatform(Protocol):
    """What :func:`start_dispatcher` needs of a platform (``PlatformManager`` is one)."""

    @property
    def store(self) -> Store: ...

    @property
    def owner(self) -> str: ...

    @property
    def project(self) -> ProjectContext | None: ...


def start_dispatcher(manager: NotifyingPlatform, settings: Settings) -> Dispatcher | None:
    """The dispatcher of a service or worker process (``None`` when
    ``KNEO_SERV_NOTIFICATIONS_POLL_SECONDS`` is 0); receivers from the manager's project
    config and the environment."""
    if settings.notifications.poll_seconds <= 0:
        return None
    project = manager.project
    receivers = load_receivers(settings, project.config if project is not None else None)
    return Dispatcher(
        manager.store,
        receivers,
        settings.notifications,
        owner=f"notify:{manager.owner}",
        base_url=settings.public_url,
        links=DecisionLinks.from_settings(settings),
    ).start()


def notification_view(record: NotificationRecord) -> dict[str, Any]:
    """A delivery as the API and CLI show it (no payload: that is the receiver's)."""
    event = record.event
    return {
        "id": record.id,
        "event_id": event.event_id,
        "event_type": event.event_type,
        "severity": event.severity,
        "receiver": record.receiver,
        "status": record.status,
        "attempts": record.attempts,
        "last_error": record.last_error,
        "environment": event.environment,
        "assignee": event.assignee,
        "run_id": event.run_id,
        "continuation_id": event.continuation_id,
        "summary": summary(event),
        "created_at": utc_iso(record.created_at),
        "next_attempt_at": utc_iso(record.available_at) if record.status == "pending" else None,
        "sent_at": utc_iso(record.sent_at),
    }


def list_view(
    store: NotificationOutbox,
    *,
    status: str | None = None,
    receiver: str | None = None,
    event_type: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> dict[str, Any]:
    """``/v1/notifications`` and ``kneo notifications list``: a page of deliveries, newest
    first, with the count per status over all of them and the events not yet routed."""
    from kneo.platform.results import page_counts
    from kneo.store.notifications import NOTIFICATION_STATUSES

    page = store.list_notifications(
        status=status, receiver=receiver, event_type=event_type, limit=limit, offset=offset
    )
    counts = dict.fromkeys(NOTIFICATION_STATUSES, 0)
    for (_receiver, state), count in store.notification_counts().items():
        counts[state] = counts.get(state, 0) + count
    return {
        "notifications": [notification_view(r) for r in page.items],
        **page_counts(page),
        "counts": counts,
        "unrouted_events": store.unrouted_notification_events(),
    }


def send_test(receiver: Receiver, settings: Settings) -> int:
    """POST a ``notification.test`` message to ``receiver`` now (not through the outbox);
    its HTTP status, or :class:`KneoError` ``notification_failed``."""
    import httpx2

    from kneo.ids import new_id

    body: dict[str, Any] = {
        "id": new_id("ntest"),
        "type": "notification.test",
        "severity": "info",
        "created_at": utc_iso(datetime.now().astimezone()),
        "summary": f"a test notification from Kneo to {receiver.name}",
        "link": f"{settings.public_url}/ui/inbox" if settings.public_url else None,
        "data": {},
    }
    with httpx2.Client(timeout=settings.notifications.timeout_seconds) as client:
        try:
            return post(client, receiver, body, datetime.now(UTC), settings.public_url)
        except DeliveryFailed as exc:
            raise KneoError(
                f"test notification to {receiver.name!r} failed: {exc}",
                code=ErrorCode.notification_failed,
            ) from None


__all__ = [
    "EVENT_ID_HEADER",
    "SIGNATURE_HEADER",
    "DeliveryFailed",
    "Dispatcher",
    "NotifyingPlatform",
    "Receiver",
    "list_view",
    "load_receivers",
    "message",
    "notification_view",
    "receiver_configs",
    "retry_delay",
    "send_test",
    "sign",
    "slack_message",
    "start_dispatcher",
    "summary",
    "sweep_expiring",
]
