"""A human request's deadline, held where a decision comes in.

A request with ``timeout_seconds`` carries ``expires_at`` and ``on_timeout``. Past
``expires_at`` its fate is the timeout's, whether or not a sweep has applied it yet: a
decision on a request whose ``on_timeout`` is ``fail``, ``continue`` or ``reject`` is refused
with ``409 human_task_expired`` (:func:`refuse_late`), and the platform then applies the
timeout itself if no sweep did. After the sweep applied it (the run expired and its task
deleted, or the timeout's decision took the request) the same decision is refused alike
(:func:`swept_late` reads the sweep's audit event), never ``404 not_found`` or
``request_already_resolved``: a client tells "too late" from "never existed".

``escalate`` is the exception by design: the request stays open past its deadline (handed to
``escalate_to`` by the sweep) and a decision on it is taken as ever.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from kneo.clock import utc_iso
from kneo.engine.human import HumanRequest
from kneo.errors import HumanTaskExpired
from kneo.store import AuditQuery, Store

#: the audit events a timeout sweep records when it takes a request out of a person's hands
TIMEOUT_EVENTS = frozenset({"human.expired", "human.continued", "human.auto_rejected"})
#: how many of a task's newest audit events are read for the sweep's (a task has a handful)
_AUDIT_LOOK = 100


def _parsed(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def refuse_late(continuation_id: str, requests: Sequence[HumanRequest], now: datetime) -> None:
    """``human_task_expired`` when one of ``requests`` is past its ``expires_at`` and its
    ``on_timeout`` is not ``escalate``."""
    for request in requests:
        if request.on_timeout == "escalate" or not request.expires_at:
            continue
        expires = _parsed(request.expires_at)
        if expires is not None and expires <= now:
            raise late(continuation_id, request.request_id, request.on_timeout, request.expires_at)


def swept_late(
    store: Store, continuation_id: str, request_ids: Sequence[str]
) -> HumanTaskExpired | None:
    """The refusal of a decision on one of ``request_ids`` that a timeout sweep already took
    (its audit event on the task), or ``None``."""
    page = store.audit.list_audit(
        AuditQuery(continuation_id=continuation_id, limit=_AUDIT_LOOK, count=False)
    )
    for event in page.items:
        payload = event.payload or {}
        if event.event_type in TIMEOUT_EVENTS and payload.get("request_id") in request_ids:
            return late(
                continuation_id,
                str(payload.get("request_id")),
                str(payload.get("on_timeout") or "fail"),
                str(payload.get("expires_at") or utc_iso(event.created_at)),
            )
    return None


def late(
    continuation_id: str, request_id: str, on_timeout: str, expires_at: str | None
) -> HumanTaskExpired:
    return HumanTaskExpired(
        f"human request {request_id} of task {continuation_id} expired at {expires_at} "
        f"(on_timeout: {on_timeout}); it is no longer decided by a person",
        continuation_id=continuation_id,
        request_id=request_id,
        expires_at=expires_at,
        on_timeout=on_timeout,
    )
