"""What a write transaction puts in each row.

Row values, defaults, redaction, payload encoding and sequence bookkeeping are built here;
the one write implementation, :class:`~kneo.store.transaction.Transaction`, executes them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypedDict, Unpack

from kneo.errors import InvalidRequest
from kneo.ids import new_id
from kneo.lifecycle import TaskStatus, request_status
from kneo.notification_events import NOTIFICATION_EVENTS, NOTIFIED_AUDITS
from kneo.people import current
from kneo.projects import DEFAULT_PROJECT_ID
from kneo.redaction import redact_mapping


class RunChanges(TypedDict, total=False):
    """The run columns ``update_run`` and ``finish_run`` may change (any other is
    ``invalid_request``); identity, sequences and timestamps the store manages itself."""

    status: str
    output_text: str | None
    error: Mapping[str, Any] | None
    state: Mapping[str, Any]
    cancel_requested: bool
    deadline_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    metadata: Mapping[str, Any]
    spec: Mapping[str, Any] | None
    spec_digest: str | None
    environment: str | None
    workflow_name: str | None
    workflow_kind: str | None
    agent_name: str | None
    bundle_name: str | None
    bundle_revision: int | None
    bundle_commit: str | None


#: Columns ``update_run`` may change: :class:`RunChanges`' keys.
RUN_MUTABLE_FIELDS: frozenset[str] = frozenset(RunChanges.__annotations__)

#: Run columns an update may set that a :class:`~kneo.store.records.RunRecord` does not
#: carry as given (its counters are set apart; the lease and the spec's key it has not).
NOT_RECORD_FIELDS = frozenset(
    {"checkpoint_seq", "trace_seq", "spec_ref", "lease_owner", "lease_expires_at"}
)


def spec_ref(text: str) -> str:
    """A spec's key in ``specs``: the sha256 of its JSON text (:func:`steps.json_text`)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def new_run_columns(
    now: datetime, project_id: int, *, trace_seq: int, lease: tuple[str, float] | None
) -> dict[str, Any]:
    """The columns of a new run that the store sets, not its caller: no outcome yet, the spec
    kept apart (``{}``: it is in ``specs`` under ``spec_ref``), version 1, the counters
    (``trace_seq``: the first trace events written with it), the timestamps and the lease of
    the process executing it now (``(owner, ttl_seconds)``)."""
    return {
        "output_text": None,
        "error": None,
        "spec": {},
        "version": 1,
        "cancel_requested": False,
        "created_at": now,
        "updated_at": now,
        "finished_at": None,
        "checkpoint_seq": 0,
        "trace_seq": trace_seq,
        "lease_owner": lease[0] if lease else None,
        "lease_expires_at": now + timedelta(seconds=lease[1]) if lease else None,
        "project_id": project_id,
    }


def check_trace_events(events: Sequence[Mapping[str, Any]]) -> None:
    """Every trace event needs an ``event_type``."""
    for event in events:
        if not event.get("event_type"):
            raise InvalidRequest("trace event needs an event_type", field="event_type")


def trace_values(
    run_id: str, first: int, events: Sequence[Mapping[str, Any]], now: datetime
) -> list[dict[str, Any]]:
    """``trace_events`` rows for checked ``events`` numbered from ``first``."""
    return [
        {
            "run_id": run_id,
            "sequence": first + index,
            "event_type": event["event_type"],
            "step_id": event.get("step_id"),
            "payload": dict(event.get("payload") or {}),
            "created_at": now,
        }
        for index, event in enumerate(events)
    ]


def continuation_request_list(requests: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The requests as dicts, each with a ``request_id`` unique among them."""
    request_list = [dict(r) for r in requests]
    for request in request_list:
        if not request.get("request_id"):
            raise InvalidRequest("every continuation request needs a request_id", field="requests")
    if len({r["request_id"] for r in request_list}) != len(request_list):
        raise InvalidRequest("continuation request ids must be unique", field="requests")
    return request_list


def continuation_values(
    *,
    run_id: str | None,
    status: str,
    request_list: list[dict[str, Any]],
    context: Mapping[str, Any] | None,
    workflow_kind: str | None,
    expires_at: datetime | None,
    escalated_at: datetime | None,
    now: datetime,
    workflow_name: str | None = None,
    environment: str | None = None,
) -> dict[str, Any]:
    """The ``continuations`` columns a create or a replace writes. ``workflow_name`` and
    ``environment`` (the inbox's labels) are written when given: a replace keeps them."""
    values = {
        "run_id": run_id,
        "status": status,
        "requests": request_list,
        "context": dict(context or {}),
        "workflow_kind": workflow_kind,
        "expires_at": expires_at,
        "escalated_at": escalated_at,
        "updated_at": now,
    }
    if workflow_name is not None:
        values["workflow_name"] = workflow_name
    if environment is not None:
        values["environment"] = environment
    return values


def new_continuation(
    values: dict[str, Any], continuation_id: str, now: datetime, project_id: int
) -> None:
    """Complete ``values`` into a new continuation row (version 1) of project ``project_id``."""
    values |= {"continuation_id": continuation_id, "version": 1, "created_at": now}
    values["project_id"] = project_id


def continuation_request_rows(
    continuation_id: str,
    request_list: list[dict[str, Any]],
    status: str = TaskStatus.PENDING,
    project_id: int = DEFAULT_PROJECT_ID,
) -> list[dict[str, Any]]:
    """``continuation_requests`` index rows of a continuation's requests (of project
    ``project_id``, its continuation's). A row is pending only while its continuation
    (``status``) is, so the inbox counts pending requests without reading the
    continuations."""
    return [
        {
            "continuation_id": continuation_id,
            "request_id": r["request_id"],
            "kind": r.get("kind"),
            "assignee": r.get("assignee"),
            "status": request_status(r, status),
            "project_id": project_id,
        }
        for r in request_list
    ]


class AuditFields(TypedDict, total=False):
    """What an audit event records besides its type (``add_audit``'s keywords): who acted,
    the run or task it is about, and its payload (redacted before it is written)."""

    actor: str | None
    run_id: str | None
    continuation_id: str | None
    payload: Mapping[str, Any] | None


def audit_values(
    event_type: str, *, now: datetime, **fields: Unpack[AuditFields]
) -> dict[str, Any]:
    """An ``audit_events`` row (``evt_...``) with its payload redacted. When the actor is
    the person behind the current request (:mod:`kneo.people`), the payload gains
    ``identity``: their subject, how they signed in, the role-map entries that gave them the
    right (a promotion decision's ``decided_by`` says it already)."""
    actor, payload = fields.get("actor"), fields.get("payload")
    who = current(actor) if actor else None
    if who is not None and who.is_person and not (payload or {}).get("decided_by"):
        payload = {**(payload or {}), "identity": who.audit()}
    return {
        "event_id": new_id("evt"),
        "event_type": event_type,
        "actor": actor,
        "run_id": fields.get("run_id"),
        "continuation_id": fields.get("continuation_id"),
        "payload": redact_mapping(dict(payload or {})),
        "created_at": now,
    }


def outbox_values(audit: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``notification_events`` row an audit row (:func:`audit_values`) causes, written in
    the same transaction; ``None`` for an audit event nobody is notified of. The payload is
    the audit's, already redacted; ``environment`` and ``assignee`` are read from it, and the
    approval task of a held policy change (its ``task``) when the audit names none."""
    kind = NOTIFIED_AUDITS.get(audit["event_type"])
    if kind is None:
        return None
    task = (audit["payload"] or {}).get("task")
    return notification_event_values(
        audit["event_id"],
        kind,
        actor=audit["actor"],
        run_id=audit["run_id"],
        continuation_id=audit["continuation_id"] or (task if isinstance(task, str) else None),
        payload=audit["payload"],
        now=audit["created_at"],
        redacted=True,
    )


def notification_event_values(
    event_id: str,
    event_type: str,
    *,
    actor: str | None,
    run_id: str | None,
    continuation_id: str | None,
    payload: Mapping[str, Any],
    now: datetime,
    redacted: bool = False,
) -> dict[str, Any]:
    """A ``notification_events`` row (payload redacted, not yet routed); ``redacted``: the
    payload is an audit row's, redacted already (a second pass would find nothing)."""
    data = dict(payload) if redacted else redact_mapping(dict(payload))
    return {
        "event_id": event_id,
        "event_type": event_type,
        "severity": NOTIFICATION_EVENTS[event_type],
        "environment": _text(data.get("environment")),
        "assignee": _text(data.get("assignee")),
        "actor": actor,
        "run_id": run_id,
        "continuation_id": continuation_id,
        "payload": data,
        "routed": False,
        "created_at": now,
    }


def _text(value: object) -> str | None:
    return None if value is None else str(value)[:255]
