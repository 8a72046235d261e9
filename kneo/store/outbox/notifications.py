"""The notifications outbox on the :class:`~kneo.store.api.Store`: routing, leased claims,
outcomes, listing, counts and retry.

Events are written by the transaction that causes them (``notification_events``, see
:func:`kneo.store.row_values.outbox_values`). A dispatcher then, each in one short
transaction: *routes* unrouted events to the receivers its process knows (one
``notifications`` row per (event, receiver), the pair unique, so routing twice adds
nothing); *claims* due rows with a lease (``FOR UPDATE SKIP LOCKED`` on PostgreSQL,
``BEGIN IMMEDIATE`` on SQLite), so two dispatchers never send one row at once; and records
each attempt's outcome under that lease (a lapsed lease, its process killed, makes the row
claimable again). Delivery itself (HTTP) is :mod:`kneo.platform.notifications`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from kneo.errors import InvalidRequest
from kneo.projects import DEFAULT_PROJECT_ID
from kneo.store import tables as t
from kneo.store.base import Facet
from kneo.store.queries import NOTIFICATION_STATUSES, NotificationQuery
from kneo.store.records import Page
from kneo.store.row_records import from_row
from kneo.store.row_values import notification_event_values

#: why the dispatchers' statements see every project (each row says its project)
DISPATCHERS = "a dispatcher routes, claims and finishes the deliveries of every project"


@dataclass(frozen=True)
class NotificationEvent:
    """One notifiable event, as written with its cause (payload redacted)."""

    event_id: str
    event_type: str
    severity: str
    environment: str | None
    assignee: str | None
    actor: str | None
    run_id: str | None
    continuation_id: str | None
    payload: dict[str, Any]
    created_at: datetime
    #: whose event it is (routing is global: its receivers are its project's)
    project_id: int = DEFAULT_PROJECT_ID


@dataclass(frozen=True)
class NotificationRecord:
    """One delivery of an event to a receiver."""

    id: int
    receiver: str
    status: str
    attempts: int
    available_at: datetime
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None
    event: NotificationEvent


@dataclass(frozen=True)
class DeliveryOutcome:
    """One attempt's result, for :meth:`NotificationsFacet.finish_notifications`: ``sent``;
    else retried from ``retry_at``; else (no ``retry_at``) ``dead``."""

    id: int
    sent: bool
    error: str | None = None
    retry_at: datetime | None = None


@dataclass(frozen=True)
class NotificationCounts:
    """A project's outbox counted (:meth:`NotificationsFacet.notification_counts`)."""

    #: its deliveries per ``(receiver, status)``
    deliveries: dict[tuple[str, str], int]
    #: its events written but not yet routed by any dispatcher
    unrouted: int


_EVENT_FIELDS = tuple(f for f in NotificationEvent.__dataclass_fields__)
_ROW_FIELDS: tuple[str, ...] = ("id", "receiver", "status", "attempts", "available_at")
_ROW_FIELDS += ("last_error", "created_at", "updated_at", "sent_at")


def _record(row: Any) -> NotificationRecord:
    event = NotificationEvent(**{f: row[f"e_{f}"] for f in _EVENT_FIELDS})
    return from_row(NotificationRecord, row, event=event)


def _joined() -> sa.Select[Any]:
    n, e = t.notifications.c, t.notification_events.c
    return sa.select(
        *(n[f] for f in _ROW_FIELDS), *(e[f].label(f"e_{f}") for f in _EVENT_FIELDS)
    ).join_from(t.notifications, t.notification_events, n.event_id == e.event_id)


def _event(row: Any) -> NotificationEvent:
    return from_row(NotificationEvent, row)


class NotificationsFacet(Facet):
    """The outbox's operations; every method commits on its own."""

    def add_notification_event(
        self,
        event_id: str,
        event_type: str,
        *,
        run_id: str | None = None,
        continuation_id: str | None = None,
        payload: dict[str, Any] | None = None,
        actor: str | None = None,
    ) -> bool:
        """Write an event with a caller-chosen id (a sweep's ``human.expiring``, keyed so the
        next sweep finds it there); ``False`` when that id exists already."""
        values = notification_event_values(
            event_id,
            event_type,
            actor=actor,
            run_id=run_id,
            continuation_id=continuation_id,
            payload=payload or {},
            now=self.clock.now(),
        )
        values["project_id"] = self.project_id
        with self._write() as conn:
            found = conn.execute(
                self.dialect.insert(t.notification_events)
                .values(**values)
                .on_conflict_do_nothing(index_elements=["event_id"])
                .returning(t.notification_events.c.event_id)
            ).first()
        return found is not None

    def route_notifications(
        self, receivers_for: Callable[[NotificationEvent], Sequence[str]], limit: int = 100
    ) -> int:
        """Fan up to ``limit`` unrouted events of every project out to
        ``receivers_for(event)`` (a pending row each, the event's project's: an event says
        whose it is) and mark them routed, in one transaction; returns how many were
        routed."""
        e, n = t.notification_events.c, t.notifications.c
        now = self.clock.now()
        pick = self.dialect.for_claim(
            sa.select(t.notification_events)
            .where(e.routed == sa.false())
            .order_by(e.created_at)
            .limit(limit)
        )
        with self._write(everywhere=DISPATCHERS) as conn:
            events = [_event(row) for row in conn.execute(pick).mappings()]
            if not events:
                return 0
            deliveries = [
                {
                    "event_id": event.event_id,
                    "receiver": receiver,
                    "task": event.continuation_id,
                    "status": "pending",
                    "attempts": 0,
                    "available_at": now,
                    "created_at": now,
                    "updated_at": now,
                    "project_id": event.project_id,
                }
                for event in events
                for receiver in dict.fromkeys(receivers_for(event))
            ]
            if deliveries:
                conn.execute(
                    self.dialect.insert(t.notifications).on_conflict_do_nothing(
                        index_elements=[n.event_id, n.receiver]
                    ),
                    deliveries,
                )
            conn.execute(
                sa.update(t.notification_events)
                .where(e.event_id.in_([event.event_id for event in events]))
                .values(routed=True)
            )
        return len(events)

    def claim_notifications(
        self,
        owner: str,
        lease_seconds: float,
        limit: int = 10,
        *,
        receivers: Sequence[str] | None = None,
    ) -> list[NotificationRecord]:
        """Lease up to ``limit`` due deliveries to ``owner``, oldest first: pending and due,
        or sending with a lapsed lease (its process died mid-delivery); only ``receivers``'
        rows when given (a process delivers to the receivers it knows). Each claim counts as
        an attempt.

        A task's deliveries to one receiver go in order, across dispatchers: a row waits
        while an earlier one of the same task and receiver is pending (retrying) or in
        flight, so ``human.decision`` never overtakes its ``human.requested``. Rows of
        other tasks, and events of no task, are not held."""
        if lease_seconds <= 0:
            raise InvalidRequest("lease_seconds must be greater than zero", field="lease_seconds")
        n = t.notifications.c
        now = self.clock.now()
        due = sa.or_(
            sa.and_(n.status == "pending", n.available_at <= now),
            sa.and_(n.status == "sending", n.lease_expires_at <= now),
        )
        if receivers is not None:
            due = sa.and_(due, n.receiver.in_(list(receivers)))
        before = t.notifications.alias("before")
        waits = sa.exists().where(
            before.c.receiver == n.receiver,
            before.c.task == n.task,
            before.c.id < n.id,
            before.c.status.in_(("pending", "sending")),
        )
        pick = self.dialect.for_claim(
            sa.select(n.id).where(due, sa.or_(n.task.is_(None), ~waits)).order_by(n.id).limit(limit)
        )
        with self._write(everywhere=DISPATCHERS) as conn:
            ids = [row[0] for row in conn.execute(pick)]
            if not ids:
                return []
            conn.execute(
                sa.update(t.notifications)
                .where(n.id.in_(ids))
                .values(
                    status="sending",
                    attempts=n.attempts + 1,
                    lease_owner=owner,
                    lease_expires_at=now + timedelta(seconds=lease_seconds),
                    updated_at=now,
                )
            )
            found = conn.execute(_joined().where(n.id.in_(ids)).order_by(n.id)).mappings()
            return [_record(row) for row in found]

    def finish_notifications(self, owner: str, outcomes: Sequence[DeliveryOutcome]) -> int:
        """Record attempts' outcomes on rows ``owner`` still leases, in one transaction (a
        dispatcher records a batch: one connection, not one per delivery in flight):
        ``sent``, else pending again from ``retry_at``, else (no ``retry_at``) ``dead``. A
        row whose lease lapsed meanwhile is left to its new owner; returns how many were
        recorded."""
        if not outcomes:
            return 0
        n = t.notifications.c
        now = self.clock.now()
        released: dict[str, Any] = {
            "lease_owner": None,
            "lease_expires_at": None,
            "updated_at": now,
        }
        held = (n.lease_owner == owner, n.status == "sending")
        sent = [o.id for o in outcomes if o.sent]
        recorded = 0
        with self._write(everywhere=DISPATCHERS) as conn:
            if sent:
                result = conn.execute(
                    sa.update(t.notifications)
                    .where(n.id.in_(sent), *held)
                    .values(**released, status="sent", sent_at=now, last_error=None)
                )
                recorded += result.rowcount
            for outcome in outcomes:
                if outcome.sent:
                    continue
                values: dict[str, Any] = {"status": "dead", "last_error": outcome.error}
                if outcome.retry_at is not None:
                    values |= {"status": "pending", "available_at": outcome.retry_at}
                result = conn.execute(
                    sa.update(t.notifications)
                    .where(n.id == outcome.id, *held)
                    .values(**released, **values)
                )
                recorded += result.rowcount
        return recorded

    def list_notifications(
        self, query: NotificationQuery = NotificationQuery()
    ) -> Page[NotificationRecord]:
        """The project's deliveries newest first, filtered by status, receiver or event
        type."""
        q = query
        n, e = t.notifications.c, t.notification_events.c
        where = [n.project_id == self.project_id]
        if q.status is not None:
            where.append(n.status == q.status)
        if q.receiver is not None:
            where.append(n.receiver == q.receiver)
        if q.event_type is not None:
            where.append(e.event_type == q.event_type)
        with self._read() as conn:
            total = conn.execute(
                sa.select(sa.func.count())
                .select_from(t.notifications.join(t.notification_events, n.event_id == e.event_id))
                .where(*where)
            ).scalar_one()
            found = conn.execute(
                _joined().where(*where).order_by(n.id.desc()).limit(q.limit).offset(q.offset)
            ).mappings()
            items = [_record(row) for row in found]
        return Page(items, int(total), q.limit, q.offset, "id", "desc")

    def notification_counts(self) -> NotificationCounts:
        """The project's outbox counted at once (one snapshot): its deliveries per
        ``(receiver, status)`` and its events no dispatcher has routed yet; what a listing
        and a metrics scrape report (the same in every process, since it is the
        database's)."""
        n, e = t.notifications.c, t.notification_events.c
        with self._read() as conn:
            found = conn.execute(
                sa.select(n.receiver, n.status, sa.func.count())
                .where(n.project_id == self.project_id)
                .group_by(n.receiver, n.status)
            )
            deliveries = {(str(r), str(s)): int(c) for r, s, c in found}
            unrouted = conn.execute(
                sa.select(sa.func.count())
                .select_from(t.notification_events)
                .where(e.routed == sa.false(), e.project_id == self.project_id)
            ).scalar_one()
        return NotificationCounts(deliveries, int(unrouted))

    def retry_notifications(self, ids: Sequence[int] | None = None, *, status: str = "dead") -> int:
        """Make the project's deliveries due again now, with a fresh attempt budget: the rows
        ``ids`` (whatever their status but ``sending``), else every row in ``status``."""
        n = t.notifications.c
        now = self.clock.now()
        where = [n.project_id == self.project_id, n.status != "sending"]
        where.append(n.id.in_(list(ids)) if ids is not None else n.status == status)
        with self._write(one_statement=True) as conn:
            result = conn.execute(
                sa.update(t.notifications)
                .where(*where)
                .values(status="pending", attempts=0, available_at=now, updated_at=now)
            )
            return int(result.rowcount)


__all__ = [
    "NOTIFICATION_STATUSES",
    "DeliveryOutcome",
    "NotificationCounts",
    "NotificationEvent",
    "NotificationRecord",
    "NotificationsFacet",
]
