"""Notification delivery: the dispatcher thread, and the deliveries as the API shows them.

Receivers are :mod:`kneo.platform.receivers`'; what a message says and how one attempt is
POSTed, :mod:`kneo.platform.messages`' (both re-exported here); a Slack app's messages,
:mod:`kneo.platform.slack`'; Teams cards and e-mail, :mod:`kneo.platform.cards`'.

Events come from the outbox (:mod:`kneo.store.outbox.notifications`), written with their cause.
A :class:`Dispatcher` runs next to the sweeper in every service and worker process
(:func:`start_dispatcher`); each tick it writes due ``human.expiring`` events, routes new
events to the receivers this process is configured with, claims due deliveries with a
lease, and POSTs each one: success is ``sent``; a failure is retried after an exponential
backoff with jitter, until ``KNEO_SERV_NOTIFICATIONS_MAX_ATTEMPTS`` make it ``dead``. A
process killed mid-delivery loses its lease and another delivers the row again, with the
same event id (``X-Kneo-Event-Id``), so a receiver that deduplicates on it acts once.

Runs never wait for any of this: the run's transaction only inserts the event row.

One dispatcher serves every project of its database: an event goes to the receivers and
people of *its* project (:class:`Audience`; the process's own project, ``default``, has the
host's; the others' come from their definitions through :class:`ProjectAudiences`), its
request is read from that project's tasks, and the ``human.expiring`` sweep looks in each
project whose receivers want it (one indexed read per such project every 5 s).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from kneo import metrics
from kneo.clock import jitter, utc_iso
from kneo.errors import ErrorCode, KneoError
from kneo.ids import new_id
from kneo.kernel import Origins, http_client
from kneo.logs import get_logger
from kneo.platform import a2a_push
from kneo.platform.assignments import Rules, rules_of
from kneo.platform.cards import mails, send_mail
from kneo.platform.decision_links import DecisionLinks, recipient_of
from kneo.platform.messages import (
    SIGNATURE_HEADER,
    DeliveryFailed,
    message,
    post,
    retry_delay,
    sign,
    slack_message,
    summary,
    with_decision_link,
)
from kneo.platform.receivers import (
    Receiver,
    load_receivers,
    project_settings,
    receiver_configs,
)
from kneo.platform.recipients import DECIDABLE, People, load_people, request_entry
from kneo.platform.results import page_counts
from kneo.platform.slack import deliver
from kneo.platform.webhooks import EVENT_ID_HEADER
from kneo.projects import DEFAULT_PROJECT_ID
from kneo.redaction import redact_text
from kneo.store import DeliveryOutcome, TaskQuery
from kneo.store.queries import NOTIFICATION_STATUSES, NotificationQuery

if TYPE_CHECKING:
    import httpx2

    from kneo.platform.directory import ProjectDirectory, ProjectEntry
    from kneo.setting_groups import NotificationSettings
    from kneo.settings import Settings
    from kneo.spec.project import ProjectContext
    from kneo.store import NotificationEvent, NotificationRecord, Store


log = get_logger("kneo_serv.notifications")

_ERROR_CHARS = 500


# --------------------------------------------------------------------------- dispatcher


def expiring_event_id(continuation_id: str, expires_at: datetime) -> str:
    """The one ``human.expiring`` event of a continuation's expiry (any sweep, any process)."""
    key = f"{continuation_id}:{utc_iso(expires_at)}".encode()
    return "nexp_" + hashlib.sha256(key).hexdigest()[:32]


def sweep_expiring(store: Store, now: datetime, lead_seconds: float) -> int:
    """Write ``human.expiring`` for pending tasks that expire within ``lead_seconds``; each
    once (keyed by continuation and expiry). Returns how many were new."""
    if lead_seconds <= 0:
        return 0
    written = 0
    cursor = None
    while True:
        before = now + timedelta(seconds=lead_seconds)
        page = store.tasks.list_continuations(
            TaskQuery(
                status="pending", expires_before=before, limit=200, cursor=cursor, count=False
            )
        )
        for cont in page.items:
            if cont.expires_at is None or cont.expires_at <= now:
                continue  # expired already: the timeout sweep's business
            pending = [r for r in cont.requests if (r.get("status") or "pending") == "pending"]
            written += store.notifications.add_notification_event(
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


@dataclass(frozen=True)
class Audience:
    """Where one project's events go: its receivers (by name) and people, and its store's
    view (the tasks an event's request is read from, the Slack messages it posted)."""

    receivers: dict[str, Receiver]
    people: People
    store: Store
    project_id: int
    #: whether its environments' assignees bind (messages then say who alone may decide)
    rules: Rules | None = None

    @property
    def expiring(self) -> bool:
        """Whether a receiver here wants ``human.expiring`` (else its sweep writes none)."""
        return any(r.wants_type("human.expiring") for r in self.receivers.values())


class ProjectAudiences:
    """The audiences of the projects other than the dispatcher's own, from their definitions'
    ``notifications`` blocks (:class:`~kneo.platform.directory.ProjectDirectory`: read again
    within its recheck; built again when a definition changes). A project whose receivers
    cannot be loaded (a variable unset) has none, logged, rather than stopping the others'."""

    def __init__(self, directory: ProjectDirectory, settings: Settings) -> None:
        self.directory = directory
        self.settings = project_settings(settings)
        self._built: dict[int, tuple[object, Audience]] = {}
        self._lock = threading.Lock()

    def others(self) -> list[Audience]:
        """Every active project's audience but the root manager's own."""
        own = self.directory.root.store.project_id
        return [self._of(e) for e in self.directory.entries() if e.id != own]

    def of(self, project_id: int) -> Audience | None:
        """Project ``project_id``'s audience; ``None`` when it is archived (a project made
        since the catalog was last read is read again first, so its events are not lost)."""
        entry = self.directory.entry(project_id)
        if entry is None:
            self.directory.refresh()
            entry = self.directory.entry(project_id)
        return None if entry is None else self._of(entry)

    def _of(self, entry: ProjectEntry) -> Audience:
        with self._lock:
            built = self._built.get(entry.id)
        if built is not None and built[0] is entry.config:
            return built[1]
        try:
            receivers = load_receivers(self.settings, entry.config)
            people = load_people(self.settings, entry.config)
        except KneoError as exc:
            log.error("project %s: its notification receivers: %s", entry.name, exc)
            receivers, people = [], People()
        store = self.directory.root.store.for_project(entry.id)
        rules = rules_of(entry.config)
        audience = Audience({r.name: r for r in receivers}, people, store, entry.id, rules)
        with self._lock:
            self._built[entry.id] = (entry.config, audience)
        return audience


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
        store: Store,
        receivers: Sequence[Receiver],
        settings: NotificationSettings,
        *,
        owner: str,
        base_url: str = "",
        client: httpx2.Client | None = None,
        rand: Callable[[], float] = jitter,
        links: DecisionLinks | None = None,
        people: People | None = None,
        pushes: a2a_push.PushSender | None = None,
        projects: ProjectAudiences | None = None,
        rules: Rules | None = None,
    ) -> None:
        self.store = store
        self.pushes = pushes
        self.links = links
        self.people = people or People()
        self.receivers = {r.name: r for r in receivers}
        #: the other projects' receivers (``None``: this dispatcher routes its own only)
        self.projects = projects
        project_id = getattr(store, "project_id", DEFAULT_PROJECT_ID)
        self._own = Audience(self.receivers, self.people, store, project_id, rules)
        #: what this process claims for: every project's receivers, and A2A pushes where it
        #: has their grant (:mod:`kneo.platform.a2a_push`)
        names = [*self.receivers, *([a2a_push.RECEIVER] if pushes is not None else [])]
        metrics.declare_receivers(names)
        self.settings = settings
        self.owner = owner
        self.base_url = base_url
        self._client = client
        #: the HTTP client of each project's receivers (their origins), by project id
        self._clients: dict[int, httpx2.Client] = {}
        self._rand = rand
        self._next_sweep: datetime | None = None
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, settings.concurrency), thread_name_prefix="kneo-notify"
        )
        self._busy = threading.Condition()
        self._in_flight: dict[str, int] = dict.fromkeys(names, 0)
        self._full: set[str] = set()  # receivers whose slots were all taken at the last claim
        self._done: list[DeliveryOutcome] = []  # finished, not yet recorded
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._unsubscribe: Callable[[], None] = _nothing

    def _http(self, audience: Audience | None = None) -> httpx2.Client:
        """The HTTP client to ``audience``'s receivers (the own project's by default): their
        endpoints only, no redirects; one per project (a client given to the dispatcher
        serves every project)."""
        key = (audience or self._own).project_id
        with self._busy:
            if self._client is not None:
                return self._client
            found = self._clients.get(key)
            if found is None:
                import httpx2

                receivers = (audience or self._own).receivers.values()
                slots = max(1, self.settings.concurrency)
                found = self._clients[key] = http_client(
                    Origins.of(*(r.url for r in receivers if r.type != "email")),
                    path="notifications.receivers",
                    timeout=self.settings.timeout_seconds,
                    limits=httpx2.Limits(max_connections=slots, max_keepalive_connections=slots),
                )
            return found

    def audience(self, project_id: int) -> Audience | None:
        """Where project ``project_id``'s events go (``None``: a project this dispatcher
        does not serve, or that is archived: its events go nowhere)."""
        if project_id == self._own.project_id:
            return self._own
        return self.projects.of(project_id) if self.projects is not None else None

    def route(self, event: NotificationEvent) -> list[str]:
        """The receivers of the event's project that want it."""
        audience = self.audience(event.project_id)
        if audience is None:
            return []
        return [r.name for r in audience.receivers.values() if r.wants(event)]

    def _audiences(self) -> list[Audience]:
        return [self._own, *(self.projects.others() if self.projects is not None else [])]

    def _names(self) -> list[str]:
        """The receiver names this dispatcher claims for: every project's, and A2A pushes."""
        names = dict.fromkeys(self._in_flight)
        for audience in self._audiences():
            names.update(dict.fromkeys(audience.receivers))
        new = [name for name in names if name not in self._in_flight]
        if new:
            metrics.declare_receivers(new)
            with self._busy:
                for name in new:
                    self._in_flight.setdefault(name, 0)
        return list(names)

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
            for audience in self._audiences():  # each project's expiring tasks, if wanted
                if audience is self._own or audience.expiring:
                    sweep_expiring(audience.store, now, self.settings.expiring_lead_seconds)
        while self.store.notifications.route_notifications(self.route) >= 100:
            pass
        claimed = 0
        for name in self._names():
            free = self._free_slots(name)
            if free <= 0:
                continue
            records = self.store.notifications.claim_notifications(
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
            return self.store.notifications.finish_notifications(self.owner, done)
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
        try:
            self._send(record.receiver, record.event)
        except DeliveryFailed as exc:
            error = str(exc)[:_ERROR_CHARS]
            retry_at = None
            if record.attempts < self.settings.max_attempts and not exc.final:
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
            outcome = "failed" if retry_at else "dead"
            metrics.record_notification(record.receiver, outcome, project=self._project_of(record))
            return DeliveryOutcome(record.id, False, error, retry_at)
        metrics.record_notification(record.receiver, "sent", project=self._project_of(record))
        return DeliveryOutcome(record.id, True)

    def _project_of(self, record: NotificationRecord) -> str:
        """The name of the project whose event ``record`` delivers (its metrics' label)."""
        audience = self.audience(record.event.project_id)
        return audience.store.project if audience is not None else str(record.event.project_id)

    def _send(self, name: str, event: NotificationEvent) -> None:
        """One attempt at one receiver: the message with its recipients' decision links
        (the request read from its task, never from the redacted event); an A2A push."""
        if self.pushes is not None and name == a2a_push.RECEIVER:
            self.pushes.send(event, self.store.clock.now())
            return
        audience = self.audience(event.project_id)
        receiver = audience.receivers.get(name) if audience is not None else None
        if audience is None or receiver is None:  # its project dropped the receiver since
            raise DeliveryFailed(f"receiver {name!r} is not configured in the event's project")
        entry, store, people = None, audience.store, audience.people
        if event.event_type in DECIDABLE:
            wanted = event.payload.get("request_id")  # a promotion's task has one request
            entry = request_entry(store, event.continuation_id, wanted)
        body = message(event, self.base_url, store.project)
        if entry is not None and audience.rules is not None and event.environment:
            deciders = audience.rules(event.environment).deciders(entry.get("assignee"))
            if deciders and event.event_type == "human.requested":  # who alone may decide
                body["deciders"] = [redact_text(d) for d in deciders]
        if receiver.personal:  # a channel carries no one's link (Receiver.personal)
            body = with_decision_link(body, event, self.links, entry, people)
        if receiver.type == "slack_app":
            now = self.store.clock.now().timestamp()
            deliver(self._http(audience), receiver, body, event, entry, store, people, now)
            return
        if receiver.type == "email":
            links = dict(body.get("decision_links") or {})
            single = recipient_of(entry.get("assignee")) if entry else None
            if single and body.get("decision_link"):
                links[single] = str(body["decision_link"])
            assignee = entry.get("assignee") if entry else None
            letters = mails(body, receiver, links, assignee if isinstance(assignee, str) else None)
            send_mail(receiver, letters, self.settings.timeout_seconds)
            return
        post(self._http(audience), receiver, body, self.store.clock.now(), self.base_url)

    def _loop(self) -> None:
        while not self._stopped.is_set():
            self._wake.clear()  # before the claim: an event committed during it wakes the wait
            try:
                self.record()
                claimed = self.run_once()
            except Exception:  # the database blinked: next tick
                log.exception("notification dispatch failed")
                claimed = 0
            if not claimed:  # something claimed: more may be due, go on at once
                self._wake.wait(self.settings.poll_seconds)

    def start(self) -> Dispatcher:
        """Deliver from a thread of its own, woken by every committed event (this process's,
        and on PostgreSQL every process's) and else every ``poll_seconds``."""
        if self._thread is None:
            self._unsubscribe = self.store.wakeups.on_outbox(self._wake.set)
            self.store.wakeups.start()
            self._thread = threading.Thread(target=self._loop, name="kneo-notifications")
            self._thread.daemon = True
            self._thread.start()
        return self

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop claiming, let deliveries in flight finish (within ``timeout``), close."""
        self._stopped.set()
        self._unsubscribe()
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
        for built in self._clients.values():
            built.close()
        if self.pushes is not None:
            self.pushes.close()


class NotifyingPlatform(Protocol):
    """What :func:`start_dispatcher` needs of a platform (``PlatformManager`` is one)."""

    @property
    def store(self) -> Store: ...

    @property
    def owner(self) -> str: ...

    @property
    def project(self) -> ProjectContext | None: ...


def start_dispatcher(
    manager: NotifyingPlatform, settings: Settings, *, directory: ProjectDirectory | None = None
) -> Dispatcher | None:
    """The dispatcher of a service or worker process (``None`` when
    ``KNEO_SERV_NOTIFICATIONS_POLL_SECONDS`` is 0); receivers from the manager's project
    config and the environment, and (``directory``) every other project's from its
    definition."""
    if settings.notifications.poll_seconds <= 0:
        return None
    project = manager.project
    receivers = load_receivers(settings, project.config if project is not None else None)
    projects = ProjectAudiences(directory, settings) if directory is not None else None
    return Dispatcher(
        manager.store,
        receivers,
        settings.notifications,
        owner=f"notify:{manager.owner}",
        base_url=settings.public_url,
        links=DecisionLinks.from_settings(settings),
        people=load_people(settings, project.config if project is not None else None),
        pushes=a2a_push.push_sender(manager.store, settings),
        projects=projects,
        rules=rules_of(project.config if project is not None else None),
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


def list_view(store: Store, query: NotificationQuery = NotificationQuery()) -> dict[str, Any]:
    """``/v1/notifications`` and ``kneo notifications list``: a page of deliveries, newest
    first, with the count per status over all of them and the project's events not yet
    routed."""
    page = store.notifications.list_notifications(query)
    counted = store.notifications.notification_counts()
    counts = dict.fromkeys(NOTIFICATION_STATUSES, 0)
    for (_receiver, state), count in counted.deliveries.items():
        counts[state] = counts.get(state, 0) + count
    return {
        "notifications": [notification_view(r) for r in page.items],
        **page_counts(page),
        "counts": counts,
        "unrouted_events": counted.unrouted,
    }


def send_test(receiver: Receiver, settings: Settings) -> int:
    """POST a ``notification.test`` message to ``receiver`` now (not through the outbox);
    its HTTP status, or :class:`KneoError` ``notification_failed``."""
    body: dict[str, Any] = {
        "id": new_id("ntest"),
        "type": "notification.test",
        "severity": "info",
        "created_at": utc_iso(datetime.now().astimezone()),
        "summary": f"a test notification from Kneo to {receiver.name}",
        "link": f"{settings.public_url}/ui/inbox" if settings.public_url else None,
        "data": {},
    }
    with http_client(
        Origins.of(receiver.url),
        path=f"notifications.receivers.{receiver.name}",
        timeout=settings.notifications.timeout_seconds,
    ) as client:
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
    "Audience",
    "DeliveryFailed",
    "Dispatcher",
    "NotifyingPlatform",
    "ProjectAudiences",
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
    "with_decision_link",
]


def _nothing() -> None:
    """What stopping a dispatcher that never started unsubscribes."""
