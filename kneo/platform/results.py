"""The run response and JSON views of runs, checkpoints, trace events and human tasks.

:class:`RunResult` is exactly the HTTP API's run response (``run_id``, ``status``,
``output_text``, ``human_intervention_required``, ``continuation_id``, ``metadata`` with
``workflow_kind``, ``trace_event_count`` and ``pending_human_request``); the CLI's ``--json``
prints the same. Views are redacted: they are where data leaves. ``show_personal`` follows
the one policy of :mod:`kneo.redaction`: ``True`` only for a caller with the decision scope.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kneo.clock import utc_iso
from kneo.engine.human import public_request
from kneo.lifecycle import TaskStatus, request_status
from kneo.redaction import may_need_redaction, redact_mapping
from kneo.store import (
    AuditEvent,
    CheckpointRecord,
    ContinuationRecord,
    Page,
    RunRecord,
    TraceEvent,
)
from kneo.usage import shown_usage


@dataclass(frozen=True)
class RunResult:
    """What a run call returns: the run's status, output and any pending human request."""

    run_id: str
    status: str
    output_text: str | None = None
    human_intervention_required: bool = False
    continuation_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    #: True when an idempotent call replayed a stored response (not part of the JSON).
    replayed: bool = field(default=False, compare=False)
    #: True when the rest of the run was handed to the workers (a decision or continue that
    #: queued it, :mod:`kneo.platform.handoff`): the run is ``running`` somewhere else.
    handed_off: bool = field(default=False, compare=False)

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, replayed: bool = False, handed_off: bool = False
    ) -> RunResult:
        return cls(
            run_id=data["run_id"],
            status=data["status"],
            output_text=data.get("output_text"),
            human_intervention_required=bool(data.get("human_intervention_required")),
            continuation_id=data.get("continuation_id"),
            metadata=dict(data.get("metadata") or {}),
            replayed=replayed,
            handed_off=handed_off,
        )

    @property
    def request_id(self) -> str | None:
        pending = self.metadata.get("pending_human_request") or {}
        return pending.get("request_id")

    def to_dict(self, *, show_personal: bool = False) -> dict[str, Any]:
        return redact_mapping(
            {
                "run_id": self.run_id,
                "status": self.status,
                "output_text": self.output_text,
                "human_intervention_required": self.human_intervention_required,
                "continuation_id": self.continuation_id,
                # the single pending request's id at the top level (the tutorial reads it
                # there); several pending requests are in metadata.pending_human_requests
                "request_id": self.request_id,
                "metadata": self.metadata,
            },
            show_personal=show_personal,
        )


def pending_requests(state: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [dict(r) for r in state.get("pending") or []]


def run_result(run: RunRecord, *, trace_event_count: int) -> RunResult:
    state = run.state or {}
    pending = pending_requests(state) if run.status == "paused" else []
    metadata: dict[str, Any] = {
        "workflow_kind": run.workflow_kind,
        "trace_event_count": trace_event_count,
    }
    if pending:  # personal data stays until ``to_dict`` knows who reads it
        metadata["pending_human_request"] = public_request(pending[0], show_personal=True)
        if len(pending) > 1:
            metadata["pending_human_requests"] = [
                public_request(r, show_personal=True) for r in pending
            ]
    if run.error:
        metadata["error"] = run.error
    if run.environment:
        metadata["environment"] = run.environment
    if run.session_id:
        metadata["session_id"] = run.session_id
    return RunResult(
        run_id=run.run_id,
        status=run.status,
        output_text=run.output_text if run.status == "succeeded" else None,
        human_intervention_required=bool(pending),
        continuation_id=state.get("continuation_id") if pending else None,
        metadata=metadata,
    )


def run_view(
    run: RunRecord, *, trace_event_count: int, show_personal: bool = False
) -> dict[str, Any]:
    """``GET /runs/{id}``: status, position and outcome."""
    state = run.state or {}
    units = state.get("units") or {}
    order = [k for k in state.get("order") or [] if k in units]
    visited = [units[k]["step_id"] for k in order]
    position = state.get("position") or {}
    pending = pending_requests(state) if run.status == "paused" else []
    view: dict[str, Any] = {
        "run_id": run.run_id,
        "status": run.status,
        "target": run.target,
        "agent_name": run.agent_name,
        "workflow_name": run.workflow_name,
        "workflow_kind": run.workflow_kind,
        "session_id": run.session_id,
        "current_step_index": position.get("step_index", len(order)),
        "current_step_id": position.get("step_id"),
        "current_node_id": position.get("node_id")
        or (visited[-1] if visited and run.workflow_kind == "graph" else None),
        "visited_steps": visited,
        "visited_nodes": visited if run.workflow_kind == "graph" else [],
        "trace_event_count": trace_event_count,
        "input_text": run.input_text,
        "output_text": run.output_text,
        "error": run.error,
        "continuation_id": state.get("continuation_id") if run.status == "paused" else None,
        # as in the run response (RunResult): a paused run read back, however it was
        # started (an async run's only answer was 202 queued), names what to decide
        "human_intervention_required": bool(pending),
        "request_id": pending[0].get("request_id") if pending else None,
        "cancel_requested": run.cancel_requested,
        "deadline_at": utc_iso(run.deadline_at),
        "created_at": utc_iso(run.created_at),
        "updated_at": utc_iso(run.updated_at),
        "started_at": utc_iso(run.started_at),
        "finished_at": utc_iso(run.finished_at),
        "version": run.version,
        "metadata": {"environment": run.environment, **_shown_metadata(run.metadata)},
        "usage": run_usage(state),
    }
    return redact_mapping(view, show_personal=show_personal)


def run_usage(state: Mapping[str, Any]) -> dict[str, Any]:
    """What the run's agents spent (model calls, tool calls, tokens, cost), in total and per
    step (``steps``, in the order the steps were first used; a step run several times, as a
    graph node visited again or a review round, sums its units)."""
    agents: Mapping[str, Any] = state.get("agents") or {}
    units: Mapping[str, Any] = state.get("units") or {}
    by_step: dict[str, list[Mapping[str, Any]]] = {}
    for key, record in agents.items():
        step = record.get("step_id") or (units.get(key) or {}).get("step_id") or key
        by_step.setdefault(str(step), []).append(record)
    return {
        **shown_usage(agents.values()),
        "steps": [{"step_id": step, **shown_usage(records)} for step, records in by_step.items()],
    }


def _shown_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """A run's metadata without ``base_dir``, the server directory its refs import from."""
    return {k: v for k, v in (metadata or {}).items() if k != "base_dir"}


def audit_to_dict(event: AuditEvent) -> dict[str, Any]:
    """An audit event as the API and the CLI show it (``metadata``/``occurred_at``: the
    reference's names for ``payload``/``created_at``)."""
    return {
        "id": event.event_id,
        "event_type": event.event_type,
        "actor": event.actor,
        "run_id": event.run_id,
        "continuation_id": event.continuation_id,
        "payload": event.payload,
        "metadata": event.payload,
        "created_at": utc_iso(event.created_at),
        "occurred_at": utc_iso(event.created_at),
    }


def audit_listing(page: Page[AuditEvent]) -> dict[str, Any]:
    """``GET /v1/audit-events``' answer for one page of events, newest first."""
    return {
        "events": [audit_to_dict(e) for e in page.items],
        **page_counts(page),
        "sort_by": "created_at",
        "sort_order": "desc",
        "next_cursor": page.next_cursor,
    }


def page_counts(page: Page[Any]) -> dict[str, Any]:
    """What a listing answers about its page: ``count`` (rows on it), ``total`` (``None``
    when not counted; at the count cap, ``total_capped``), ``limit`` and ``offset``."""
    return {
        "count": len(page.items),
        "total": page.total,
        "total_capped": page.total_capped,
        "limit": page.limit,
        "offset": page.offset,
    }


def run_summary(run: RunRecord) -> dict[str, Any]:
    """A run in a listing; a paused one names its task and first pending request, as its
    read-back (:func:`run_view`) does."""
    pending = pending_requests(run.state or {}) if run.status == "paused" else []
    return {
        "run_id": run.run_id,
        "status": run.status,
        "continuation_id": (run.state or {}).get("continuation_id") if pending else None,
        "request_id": pending[0].get("request_id") if pending else None,
        "workflow_name": run.workflow_name,
        "workflow_kind": run.workflow_kind,
        "session_id": run.session_id,
        "has_error": run.error is not None,
        "created_at": utc_iso(run.created_at),
        "updated_at": utc_iso(run.updated_at),
    }


def trace_view(event: TraceEvent) -> dict[str, Any]:
    """One trace event; ``type`` and ``timestamp`` repeat ``event_type`` and ``created_at``
    under the names the original platform's clients read."""
    at = utc_iso(event.created_at)
    return redact_mapping(
        {
            "sequence": event.sequence,
            "event_type": event.event_type,
            "step_id": event.step_id,
            "payload": event.payload,
            "created_at": at,
            "type": event.event_type,
            "timestamp": at,
        }
    )


def checkpoint_view(cp: CheckpointRecord, *, include_payload: bool = False) -> dict[str, Any]:
    view: dict[str, Any] = {
        "sequence": cp.sequence,
        "type": cp.type,
        "step_id": cp.step_id,
        "status": cp.status,
        "created_at": utc_iso(cp.created_at),
        "size_bytes": cp.size_bytes,
        "truncated": cp.truncated,
        "metadata": cp.metadata,
    }
    if include_payload:
        view["payload"] = cp.payload
    return redact_mapping(view)


def task_view(
    cont: ContinuationRecord,
    *,
    pending_only: bool = True,
    show_personal: bool = False,
    shown: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A human task (a continuation) with its requests; ``shown``: its pending requests as
    views already (a list row's, :mod:`kneo.store.tasks.inbox`)."""
    if shown is None:
        requests: Sequence[Mapping[str, Any]] = cont.requests
        if pending_only:
            requests = [r for r in requests if request_status(r) is TaskStatus.PENDING]
        shown = [public_request(r, show_personal=show_personal) for r in requests]  # redacted
    view: dict[str, Any] = {
        "continuation_id": cont.continuation_id,
        "run_id": cont.run_id,
        "status": cont.status,
        "workflow_kind": cont.workflow_kind,
        "workflow_name": cont.workflow_name,
        "environment": cont.environment,
        "created_at": utc_iso(cont.created_at),
        "updated_at": utc_iso(cont.updated_at),
        "expires_at": utc_iso(cont.expires_at),
        "escalated_at": utc_iso(cont.escalated_at),
    }
    # Only the names and ids could hold what redaction changes (the times are Kneo's own
    # ISO text): the prefilter reads those, joined by a line break, which every trigger
    # treats as the end of a text, instead of the whole view's JSON (3x less per list row).
    names = (cont.continuation_id, cont.run_id, cont.status, cont.workflow_kind,
             cont.workflow_name, cont.environment)  # fmt: skip
    if may_need_redaction("\n".join(n for n in names if n)):
        view = redact_mapping(view, show_personal=show_personal)
    return {**view, "request": shown[0] if shown else None, "requests": shown}
