"""Row -> record conversion, shared by the store's read and write paths."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from kneo.store import payloads
from kneo.store import tables as t
from kneo.store.records import (
    AuditEvent,
    BundleRevision,
    CheckpointRecord,
    Condition,
    ContinuationRecord,
    LockRecord,
    PromotionApproval,
    QueueRecord,
    RunRecord,
    Suspension,
    TraceEvent,
)

Row = Mapping[Any, Any]

_SELECT_SPEC = sa.select(t.specs.c.spec).where(t.specs.c.digest == sa.bindparam("digest"))
#: spec JSON text by content digest: immutable once written, so caching it is always right
_SPEC_TEXT: dict[str, str] = {}


def spec_text(conn: Any, digest: str) -> str | None:
    """The stored JSON text of the spec with ``digest`` (cached per process)."""
    text = _SPEC_TEXT.get(digest)
    if text is None:
        text = conn.execute(_SELECT_SPEC, {"digest": digest}).scalar()
        if text is None:
            return None
        if len(_SPEC_TEXT) >= 256:
            _SPEC_TEXT.clear()
        _SPEC_TEXT[digest] = text
    return text


def run(r: Row, conn: Any = None) -> RunRecord:
    """A run record; ``conn`` reads the spec from ``specs`` when the row references it."""
    spec = r["spec"] or {}
    ref = r.get("spec_ref")
    if ref and not spec and conn is not None:
        text = spec_text(conn, ref)
        spec = json.loads(text) if text is not None else {}
    return RunRecord(
        run_id=r["run_id"],
        status=r["status"],
        target=r["target"],
        workflow_name=r["workflow_name"],
        workflow_kind=r["workflow_kind"],
        agent_name=r["agent_name"],
        input_text=r["input_text"],
        output_text=r["output_text"],
        error=r["error"],
        environment=r["environment"],
        spec=spec,
        spec_digest=r["spec_digest"],
        bundle_name=r["bundle_name"],
        bundle_revision=r["bundle_revision"],
        bundle_commit=r["bundle_commit"],
        state=r["state"] or {},
        version=r["version"],
        cancel_requested=bool(r["cancel_requested"]),
        deadline_at=r["deadline_at"],
        created_at=r["created_at"],
        updated_at=r["updated_at"],
        started_at=r["started_at"],
        finished_at=r["finished_at"],
        metadata=r["metadata"] or {},
        trace_seq=r.get("trace_seq"),
        checkpoint_seq=r.get("checkpoint_seq"),
    )


def checkpoint(
    r: Row, *, payload: dict[str, Any] | None = None, truncated: bool = False
) -> CheckpointRecord:
    """A checkpoint record; ``payload`` is the folded one of a patch row (:mod:`.chains`)."""
    if payload is None:
        payload = payloads.decode(r["encoding"], bytes(r["payload"]))
    return CheckpointRecord(
        run_id=r["run_id"],
        sequence=r["sequence"],
        type=r["type"],
        step_id=r["step_id"],
        status=r["status"],
        payload=payload,
        metadata=r["metadata"] or {},
        created_at=r["created_at"],
        size_bytes=r["size_bytes"],
        compressed=payloads.is_compressed(r["encoding"]),
        truncated=truncated or bool(r["truncated"]),
    )


def trace(r: Row) -> TraceEvent:
    return TraceEvent(
        run_id=r["run_id"],
        sequence=r["sequence"],
        event_type=r["event_type"],
        step_id=r["step_id"],
        payload=r["payload"] or {},
        created_at=r["created_at"],
    )


def continuation(r: Row) -> ContinuationRecord:
    return ContinuationRecord(
        continuation_id=r["continuation_id"],
        run_id=r["run_id"],
        status=r["status"],
        requests=r["requests"] or [],
        context=r["context"] or {},
        workflow_kind=r["workflow_kind"],
        expires_at=r["expires_at"],
        escalated_at=r["escalated_at"],
        version=r["version"],
        created_at=r["created_at"],
        updated_at=r["updated_at"],
        workflow_name=r.get("workflow_name"),
        environment=r.get("environment"),
    )


def audit(r: Row) -> AuditEvent:
    return AuditEvent(
        event_id=r["event_id"],
        event_type=r["event_type"],
        actor=r["actor"],
        run_id=r["run_id"],
        continuation_id=r["continuation_id"],
        payload=r["payload"] or {},
        created_at=r["created_at"],
    )


def queue(r: Row) -> QueueRecord:
    return QueueRecord(
        queue_id=r["id"],
        run_id=r["run_id"],
        status=r["status"],
        attempts=r["attempts"],
        lease_owner=r["lease_owner"],
        lease_expires_at=r["lease_expires_at"],
        error=r["error"],
        available_at=r["available_at"],
        created_at=r["created_at"],
        updated_at=r["updated_at"],
        finished_at=r["finished_at"],
    )


def lock(r: Row) -> LockRecord:
    return LockRecord(
        name=r["name"], owner=r["owner"], acquired_at=r["acquired_at"], expires_at=r["expires_at"]
    )


def revision(r: Row) -> BundleRevision:
    return BundleRevision(
        bundle_name=r["bundle_name"],
        environment=r["environment"],
        revision=r["revision"],
        digest=r["digest"],
        commit=r["commit"],
        signer_key_ids=list(r["signer_key_ids"] or []),
        approved_by=list(r["approved_by"] or []),
        status=r["status"],
        diagnostics=list(r["diagnostics"] or []),
        spec=r["spec"] or {},
        created_at=r["created_at"],
        activated_at=r["activated_at"],
        deactivated_at=r["deactivated_at"],
    )


def condition(r: Row) -> Condition:
    return Condition(
        bundle_name=r["bundle_name"],
        environment=r["environment"],
        type=r["type"],
        status=r["status"],
        reason=r["reason"],
        message=r["message"],
        last_transition_time=r["last_transition_time"],
        updated_at=r["updated_at"],
    )


def suspension(r: Row) -> Suspension:
    return Suspension(
        bundle_name=r["bundle_name"],
        environment=r["environment"],
        reason=r["reason"],
        suspended_by=r["suspended_by"],
        created_at=r["created_at"],
    )


def approval(r: Row) -> PromotionApproval:
    return PromotionApproval(
        bundle_name=r["bundle_name"],
        environment=r["environment"],
        digest=r["digest"],
        approver=r["approver"],
        decision=r["decision"],
        comment=r["comment"],
        created_at=r["created_at"],
    )
