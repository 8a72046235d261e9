"""Row -> record conversion, shared by the store's read and write paths."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import fields
from typing import Any, TypeVar

import sqlalchemy as sa

from kneo.store import tables as t
from kneo.store.records import (
    AuditEvent,
    BlockedDigest,
    BundleRevision,
    CheckpointRecord,
    Condition,
    ContinuationRecord,
    ControllerStatus,
    LockRecord,
    Pin,
    PromotionApproval,
    QueueRecord,
    RunRecord,
    Suspension,
    TraceEvent,
)
from kneo.store.runs import payloads
from kneo.store.wire.dialects import StoreDialect

Row = Mapping[Any, Any]
R = TypeVar("R")

_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def from_row(cls: type[R], r: Row, **values: Any) -> R:
    """A record of ``cls`` from the row's columns of the same names; ``values`` supply the
    fields a column does not give as is (defaults for NULL, renamed columns)."""
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))  # type: ignore[arg-type]
    return cls(**{n: r[n] for n in names if n not in values}, **values)


_SELECT_SPEC = sa.select(t.specs.c.spec).where(t.specs.c.digest == sa.bindparam("digest"))


def spec_reader(dialect: StoreDialect, conn: Any) -> Callable[[str], str | None]:
    """Reads a spec's JSON text by digest on ``conn``, through ``dialect``'s cache."""

    def read(digest: str) -> str | None:
        return dialect.spec_text(
            digest, lambda: conn.execute(_SELECT_SPEC, {"digest": digest}).scalar()
        )

    return read


def run(r: Row, spec_text: Callable[[str], str | None] | None = None) -> RunRecord:
    """A run record; ``spec_text`` reads the spec when the row references it in ``specs``."""
    spec = r["spec"] or {}
    ref = r.get("spec_ref")
    if ref and not spec and spec_text is not None:
        text = spec_text(ref)
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
        session_id=r.get("session_id"),
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
    return from_row(TraceEvent, r, payload=r["payload"] or {})


def continuation(r: Row) -> ContinuationRecord:
    return from_row(
        ContinuationRecord,
        r,
        requests=r["requests"] or [],
        context=r["context"] or {},
        # rows read before migration 0008 added them (the inbox labels)
        workflow_name=r.get("workflow_name"),
        environment=r.get("environment"),
        list_row=r.get("list_row"),  # rows read before migration 0018 added it
    )


def audit(r: Row) -> AuditEvent:
    return from_row(AuditEvent, r, payload=r["payload"] or {})


def queue(r: Row) -> QueueRecord:
    return from_row(QueueRecord, r, queue_id=r["id"])


def lock(r: Row) -> LockRecord:
    return from_row(LockRecord, r)


def revision(r: Row) -> BundleRevision:
    return from_row(
        BundleRevision,
        r,
        signer_key_ids=list(r["signer_key_ids"] or []),
        approved_by=list(r["approved_by"] or []),
        diagnostics=list(r["diagnostics"] or []),
        spec=r["spec"] or {},
    )


def condition(r: Row) -> Condition:
    return from_row(Condition, r)


def suspension(r: Row) -> Suspension:
    return from_row(Suspension, r)


def pin(r: Row) -> Pin:
    return from_row(Pin, r)


def blocked(r: Row) -> BlockedDigest:
    return from_row(BlockedDigest, r)


def approval(r: Row) -> PromotionApproval:
    return from_row(PromotionApproval, r)


def controller_status(r: Row) -> ControllerStatus:
    return from_row(ControllerStatus, r, details=r["details"] or {})
