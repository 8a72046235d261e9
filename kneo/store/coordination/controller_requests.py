"""Reconcile requests between API replicas and the leading controller, and its wake-ups.

Any API replica queues a request (a verified webhook, ``POST /v1/controller/reconcile``) as a
row of ``controller_requests``, its project's; on PostgreSQL the same transaction sends
``NOTIFY kneo_controller`` with the project's id and the controller's name (``<id>:<name>``:
:func:`wake_payload`), so the leader, blocked on ``LISTEN`` on a connection of its own, wakes
within milliseconds. SQLite has no notifications: the
controller polls for queued rows instead (one indexed read per poll). The leader takes the
queued rows when a pass starts and records the pass's result on them when it ends, so the
replica that queued one can answer with that result.

Releasing the leader lock notifies too: a standby waiting on ``LISTEN`` takes over at once
instead of at its next poll.

The controller that reconciles every project's source (:mod:`kneo.controller.projects`)
listens once for all of them (`controller_wakeups` without a name, global): one
``LISTEN`` whose payload names the project and the controller, or on SQLite one indexed
read per poll for the sources with queued requests (:meth:`ControllerFacet.
_queued_sources`), however many projects there are.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from kneo.errors import NotFound
from kneo.store import row_records
from kneo.store import tables as t
from kneo.store.base import Facet
from kneo.store.records import ControllerRequest, ControllerRequestCounts

log = logging.getLogger("kneo.controller")

#: The PostgreSQL notification channel; the payload is the controller's name.
CHANNEL = "kneo_controller"
#: Finished requests are kept this long (their results answer status reads), then deleted.
KEEP_FINISHED = timedelta(days=1)
#: The request kind a leader serves with a dry run (``POST /v1/controller/plan``).
PLAN = "plan"
#: How long a ``LISTEN`` wait blocks before it looks at its stop flag.
_LISTEN_SLICE_SECONDS = 1.0


def wake_payload(project_id: int, name: str) -> str:
    """The ``NOTIFY`` payload that wakes controller ``name`` of project ``project_id``."""
    return f"{project_id}:{name}"


class ControllerFacet(Facet):
    """Queued reconcile requests and controller wake-ups on the :class:`~kneo.store.api.Store`,
    the view's project's."""

    def queue_controller_request(
        self,
        name: str,
        kind: str,
        *,
        actor: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> ControllerRequest:
        """Queue a reconcile for the controller ``name`` and wake it (PostgreSQL: ``NOTIFY``
        in the same transaction, delivered when it commits)."""
        with self._write() as conn:
            row = (
                conn.execute(
                    sa.insert(t.controller_requests)
                    .values(
                        project_id=self.project_id,
                        name=name,
                        kind=kind,
                        actor=actor,
                        detail=dict(detail or {}),
                        status="queued",
                        requested_at=self.clock.now(),
                    )
                    .returning(*t.controller_requests.c)
                )
                .mappings()
                .one()
            )
            if self.dialect.name == "postgresql":
                payload = wake_payload(self.project_id, name)
                conn.execute(sa.select(sa.func.pg_notify(CHANNEL, payload)))
        return _request(row)

    def take_controller_requests(self, name: str, owner: str, *, plans: bool = False) -> list[int]:
        """Mark the requests a pass of ``owner`` (the leader) now serves as ``running``: the
        queued ones, and those a previous leader took but never finished (it died).
        ``plans``: the ``plan`` requests (served by a dry run) instead of all the others."""
        r = t.controller_requests.c
        with self._write(one_statement=True) as conn:
            taken = conn.execute(
                sa.update(t.controller_requests)
                .where(
                    r.project_id == self.project_id,
                    r.name == name,
                    r.kind == PLAN if plans else r.kind != PLAN,
                    sa.or_(
                        r.status == "queued",
                        sa.and_(r.status == "running", r.taken_by != owner),
                    ),
                )
                .values(status="running", taken_by=owner, started_at=self.clock.now())
                .returning(r.id)
            )
            return sorted(int(i) for i in taken.scalars())

    def finish_controller_requests(
        self, name: str, ids: Sequence[int], result: dict[str, Any]
    ) -> None:
        """Record the pass's ``result`` on the requests it served; finished requests older
        than :data:`KEEP_FINISHED` go."""
        r = t.controller_requests.c
        now = self.clock.now()
        with self._write() as conn:
            if ids:
                conn.execute(
                    sa.update(t.controller_requests)
                    .where(r.id.in_(list(ids)), r.project_id == self.project_id)
                    .values(status="done", finished_at=now, result=result)
                )
            conn.execute(
                sa.delete(t.controller_requests).where(
                    r.project_id == self.project_id,
                    r.name == name,
                    r.status == "done",
                    r.finished_at < now - KEEP_FINISHED,
                )
            )

    def get_controller_request(self, request_id: int) -> ControllerRequest:
        r = t.controller_requests.c
        with self._read(snapshot=False) as conn:
            row = (
                conn.execute(
                    sa.select(t.controller_requests).where(
                        r.id == request_id, r.project_id == self.project_id
                    )
                )
                .mappings()
                .first()
            )
        if row is None:
            raise NotFound(
                f"controller request {request_id} not found",
                resource="controller_request",
                id=str(request_id),
            )
        return _request(row)

    def _has_queued(self, name: str) -> bool:
        """Whether a request for ``name`` waits (the wake-ups' poll: one indexed read)."""
        r = t.controller_requests.c
        with self._read(snapshot=False) as conn:
            found = conn.execute(
                sa.select(r.id)
                .where(r.status == "queued", r.project_id == self.project_id, r.name == name)
                .limit(1)
            ).first()
        return found is not None

    def controller_request_counts(self, name: str) -> ControllerRequestCounts:
        """Requests waiting for and being served by a pass, and when the oldest waiting one
        came (``GET /v1/controller/status``)."""
        r = t.controller_requests.c
        counts: ControllerRequestCounts = {"queued": 0, "running": 0, "oldest_queued_at": None}
        with self._read() as conn:
            for status, count, oldest in conn.execute(
                sa.select(
                    r.status, sa.func.count(), sa.func.min(r.requested_at, type_=t.UTCDateTime())
                )
                .where(
                    r.project_id == self.project_id,
                    r.name == name,
                    r.status.in_(("queued", "running")),
                )
                .group_by(r.status)
            ):
                if status == "queued":
                    counts["queued"], counts["oldest_queued_at"] = int(count), oldest
                else:
                    counts["running"] = int(count)
        return counts

    def notify_controller(self, name: str) -> None:
        """Wake every controller of ``name`` waiting on ``LISTEN`` (no-op on SQLite)."""
        if self.dialect.name != "postgresql":
            return
        with self._write(one_statement=True) as conn:
            conn.execute(sa.select(sa.func.pg_notify(CHANNEL, wake_payload(self.project_id, name))))

    def controller_wakeups(
        self, wake: Callable[[int, str], None], *, poll_seconds: float, name: str | None = None
    ) -> ControllerWakeups:
        """A started background listener calling ``wake(project_id, name)`` when a request
        for a controller is queued or its leader lock is released: for this project's
        controller ``name`` only, or (``None``) every project's (global; after a
        reconnection: for each request queued meanwhile). ``LISTEN`` on PostgreSQL, a poll
        for queued requests every ``poll_seconds`` on SQLite. ``stop()`` it when done."""
        wakeups = ControllerWakeups(self, wake, name=name, poll_seconds=poll_seconds)
        wakeups.start()
        return wakeups

    def _queued_sources(self) -> set[tuple[int, str]]:
        """Every project's controllers with a queued request, as ``(project id, name)``
        (global: the ``(status, project_id, name)`` index answers it)."""
        r = t.controller_requests.c
        with self._read(
            snapshot=False, everywhere="the elected controller serves every project's sources"
        ) as conn:
            rows = conn.execute(
                sa.select(r.project_id, r.name).where(r.status == "queued").distinct()
            )
            return {(int(pid), str(name)) for pid, name in rows}


class ControllerWakeups:
    """The thread behind :meth:`ControllerFacet.controller_wakeups`."""

    def __init__(
        self,
        store: ControllerFacet,
        wake: Callable[[int, str], None],
        *,
        name: str | None,
        poll_seconds: float,
    ) -> None:
        self.store = store
        self.name = name
        self.wake = wake
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._connection: Any = None

    def start(self) -> None:
        dialect = self.store.dialect
        # LISTEN needs a session of its own: behind a transaction pooler, poll instead
        listen = dialect.name == "postgresql" and not getattr(dialect, "transaction_pooler", 0)
        self._thread = threading.Thread(
            target=self._listen if listen else self._poll,
            name="kneo-controller-wakeups",
            daemon=True,
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self._poll_once()
            except Exception as exc:  # the database is away: the loop's own reads say so
                log.debug("polling for controller requests failed: %s", exc)

    def _poll_once(self) -> None:
        if self.name is None:
            for project_id, name in sorted(self.store._queued_sources()):
                self.wake(project_id, name)
        elif self.store._has_queued(self.name):
            self.wake(self.store.project_id, self.name)

    def _notified(self, payload: str) -> None:
        project_id, sep, name = payload.partition(":")
        if not (sep and project_id.isdigit()):
            return
        if self.name is None or payload == wake_payload(self.store.project_id, self.name):
            self.wake(int(project_id), name)

    def _listen(self) -> None:
        """``LISTEN`` on a connection of its own (detached from the pool), reconnecting
        after a failure. Notifications sent while no connection listened are lost, so every
        (re)connection looks once for the requests queued meanwhile, as a poll does, and
        wakes for those only: a controller with nothing queued is not made to run a pass (a
        blanket wake ran one for every project's source at each reconnection). A lock
        released meanwhile is seen at the standby's next read of it (``poll_seconds``)."""
        while not self._stop.is_set():
            connection: Any = None  # psycopg's connection (the DBAPI's, untyped)
            try:
                fairy = self.store.engine.raw_connection()
                connection = fairy.driver_connection
                fairy.detach()  # no longer the pool's: closed here, not returned
                connection.rollback()
                connection.autocommit = True
                connection.execute(f"LISTEN {CHANNEL}")
                self._poll_once()
                while not self._stop.is_set():
                    for notice in connection.notifies(timeout=_LISTEN_SLICE_SECONDS):
                        self._notified(notice.payload)
            except Exception as exc:
                log.warning("listening for controller requests failed: %s", exc)
                self._stop.wait(self.poll_seconds)
            finally:
                if connection is not None:
                    with contextlib.suppress(Exception):  # already broken
                        connection.close()


def _request(row: Any) -> ControllerRequest:
    return row_records.from_row(
        ControllerRequest, row, detail=dict(row["detail"] or {}), result=row["result"]
    )
