"""What a write transaction puts in each row, and the write methods built on it.

Row values, defaults, redaction, payload encoding and sequence bookkeeping are built here;
:class:`RowWriter` holds the write methods that need only them and the statement hooks at
its end, which :class:`~kneo.store.rawtx.RawTransaction` (and so
:class:`~kneo.store.transaction.Transaction`) implements once.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn

from kneo.errors import Conflict, InvalidRequest
from kneo.ids import new_id, new_run_id
from kneo.notification_events import NOTIFICATION_EVENTS, NOTIFIED_AUDITS
from kneo.redaction import redact_mapping
from kneo.store import payloads, rows, steps
from kneo.store.base import not_found_error
from kneo.store.records import CheckpointRecord, QueueRecord, RunRecord

if TYPE_CHECKING:
    from kneo.store.api import Store

#: Columns ``update_run`` may change; identity, sequences and timestamps it manages itself.
RUN_MUTABLE_FIELDS: frozenset[str] = frozenset(
    {
        "status",
        "output_text",
        "error",
        "state",
        "cancel_requested",
        "deadline_at",
        "started_at",
        "finished_at",
        "metadata",
        "spec",
        "spec_digest",
        "environment",
        "workflow_name",
        "workflow_kind",
        "agent_name",
        "bundle_name",
        "bundle_revision",
        "bundle_commit",
    }
)


def spec_ref(text: str) -> str:
    """A spec's key in ``specs``: the sha256 of its JSON text (:func:`steps.json_text`)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


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


def new_continuation(values: dict[str, Any], continuation_id: str, now: datetime) -> None:
    """Complete ``values`` into a new continuation row (version 1)."""
    values |= {"continuation_id": continuation_id, "version": 1, "created_at": now}


def continuation_request_rows(
    continuation_id: str, request_list: list[dict[str, Any]], status: str = "pending"
) -> list[dict[str, Any]]:
    """``continuation_requests`` index rows of a continuation's requests. A row is pending
    only while its continuation (``status``) is, so the inbox counts pending requests
    without reading the continuations."""
    return [
        {
            "continuation_id": continuation_id,
            "request_id": r["request_id"],
            "kind": r.get("kind"),
            "assignee": r.get("assignee"),
            "status": (r.get("status") or "pending") if status == "pending" else "resolved",
        }
        for r in request_list
    ]


def audit_values(
    event_type: str,
    *,
    actor: str | None,
    run_id: str | None,
    continuation_id: str | None,
    payload: Mapping[str, Any] | None,
    now: datetime,
) -> dict[str, Any]:
    """An ``audit_events`` row (``evt_...``) with its payload redacted."""
    return {
        "event_id": new_id("evt"),
        "event_type": event_type,
        "actor": actor,
        "run_id": run_id,
        "continuation_id": continuation_id,
        "payload": redact_mapping(dict(payload or {})),
        "created_at": now,
    }


def outbox_values(audit: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``notification_events`` row an audit row (:func:`audit_values`) causes, written in
    the same transaction; ``None`` for an audit event nobody is notified of. The payload is
    the audit's, already redacted; ``environment`` and ``assignee`` are read from it."""
    kind = NOTIFIED_AUDITS.get(audit["event_type"])
    if kind is None:
        return None
    payload = audit["payload"]
    return notification_event_values(
        audit["event_id"],
        kind,
        actor=audit["actor"],
        run_id=audit["run_id"],
        continuation_id=audit["continuation_id"],
        payload=payload,
        now=audit["created_at"],
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
) -> dict[str, Any]:
    """A ``notification_events`` row (payload redacted, not yet routed)."""
    data = redact_mapping(dict(payload))
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


def _text(value: Any) -> str | None:
    return None if value is None else str(value)[:255]


class RowWriter:
    """The write-transaction methods whose only difference is how a statement executes."""

    _store: Store
    now: datetime
    # Sequence counters of runs whose row this transaction holds locked (it inserted or
    # updated it): allocations are counted here and written once, folded into the next
    # update_run or just before commit, instead of one UPDATE per checkpoint/event.
    _seq: dict[str, list[int]]
    _seq_dirty: set[str]
    #: ``specs`` digests this transaction inserted; the store holds them once it commits
    _new_specs: list[str]

    # -- runs ------------------------------------------------------------------------
    def create_run(
        self,
        *,
        target: str,
        input_text: str,
        run_id: str | None = None,
        status: str = "queued",
        workflow_name: str | None = None,
        workflow_kind: str | None = None,
        agent_name: str | None = None,
        environment: str | None = None,
        spec: Mapping[str, Any] | None = None,
        spec_digest: str | None = None,
        bundle_name: str | None = None,
        bundle_revision: int | None = None,
        bundle_commit: str | None = None,
        state: Mapping[str, Any] | None = None,
        deadline_at: datetime | None = None,
        metadata: Mapping[str, Any] | None = None,
        started_at: datetime | None = None,
        spec_text: str | None = None,
        events: Sequence[Mapping[str, Any]] = (),
        lease: tuple[str, float] | None = None,
    ) -> RunRecord:
        """Insert a new run at ``version`` 1; a duplicate ``run_id`` is ``already_exists``.

        ``spec_text``: ``spec``'s JSON text when the caller already has it (a prepared spec),
        so it is not encoded and hashed again. ``events``: the run's first trace events,
        numbered from 1 with the row inserted already counting them (no counter update).
        ``lease``: ``(owner, ttl_seconds)`` of the process that executes the run now."""
        if events:
            check_trace_events(events)
        values = {
            "run_id": run_id or new_run_id(self.now),
            "status": status,
            "target": target,
            "workflow_name": workflow_name,
            "workflow_kind": workflow_kind,
            "agent_name": agent_name,
            "input_text": input_text,
            "output_text": None,
            "error": None,
            "environment": environment,
            "spec": {},
            "spec_digest": spec_digest,
            "spec_ref": self._put_spec(spec, spec_text),
            "bundle_name": bundle_name,
            "bundle_revision": bundle_revision,
            "bundle_commit": bundle_commit,
            "state": dict(state or {}),
            "version": 1,
            "cancel_requested": False,
            "deadline_at": deadline_at,
            "created_at": self.now,
            "updated_at": self.now,
            "started_at": started_at,
            "finished_at": None,
            "metadata": dict(metadata or {}),
            "checkpoint_seq": 0,
            "trace_seq": len(events),
            "lease_owner": lease[0] if lease else None,
            "lease_expires_at": self.now + timedelta(seconds=lease[1]) if lease else None,
        }
        if not self._insert_run(values, checked=run_id is not None):
            raise Conflict(f"run {values['run_id']!r} already exists", code="already_exists")
        run_id = str(values["run_id"])
        self._seq[run_id] = [0, len(events)]
        if events:
            self._insert_trace_rows(trace_values(run_id, 1, events, self.now))
        return rows.run({**values, "spec": dict(spec or {})})

    def _put_spec(self, spec: Mapping[str, Any] | None, text: str | None = None) -> str | None:
        """Store ``spec`` once in ``specs`` (keyed by the sha256 of its JSON text); its
        digest, or ``None`` for an empty spec (kept inline).

        No INSERT when this store already committed that digest (:attr:`Store.specs_held`):
        rows of ``specs`` are content-addressed and never deleted, so one written by any
        process stays, whatever the other processes do."""
        if not spec:
            return None
        text = text if text is not None else steps.json_text(dict(spec))
        digest = spec_ref(text)
        if digest not in self._store.specs_held:
            self._insert_spec({"digest": digest, "spec": text, "created_at": self.now})
            self._new_specs.append(digest)
        return digest

    def _run_changes(self, run_id: str, changes: dict[str, Any]) -> tuple[str, ...]:
        """Check and complete ``update_run``'s changes (folded sequences, inline spec); the
        sorted column names it sets."""
        unknown = set(changes) - RUN_MUTABLE_FIELDS
        if unknown:
            raise InvalidRequest(
                f"run fields cannot be updated: {sorted(unknown)}", field="changes"
            )
        if run_id in self._seq_dirty:
            changes["checkpoint_seq"], changes["trace_seq"] = self._seq[run_id]
        if "spec" in changes:  # a replaced spec is stored inline, no longer by reference
            changes["spec_ref"] = None
        return tuple(sorted(changes))

    def _run_updated(self, run_id: str, row: Mapping[Any, Any]) -> None:
        """Take the sequence counters of the run row ``update_run`` returned."""
        self._seq[run_id] = [row["checkpoint_seq"], row["trace_seq"]]
        self._seq_dirty.discard(run_id)

    def current(self, run: RunRecord) -> RunRecord:
        """``run`` with the trace count this transaction allocated for it (so a caller can
        report ``trace_event_count`` without counting rows)."""
        known = self._seq.get(run.run_id)
        if known is None or known[1] == run.trace_seq:
            return run
        return dataclasses.replace(run, trace_seq=known[1])

    def take_run_lease(self, run_id: str, owner: str, ttl_seconds: float) -> None:
        """Give ``owner`` the lease on ``run_id`` in this transaction, whoever held it: for a
        caller that knows every holder is gone (the run it moves out of ``queued`` or
        ``paused`` under a compare-and-set had no executor). A new run takes its lease in
        :meth:`create_run`, its outcome gives it back in ``finish_run``."""
        self._set_run_lease(run_id, owner, self.now + timedelta(seconds=ttl_seconds))

    def _raise_stale(self, run_id: str, expected_version: int | None) -> NoReturn:
        current = self._run_version(run_id)
        if current is None:
            raise not_found_error("run", run_id)
        raise Conflict(
            f"run {run_id!r} changed since it was read (version {expected_version}, now {current})",
            code="stale_state",
            run_id=run_id,
            expected_version=expected_version,
            current_version=current,
        )

    def _next_sequence(self, run_id: str, column: str, count: int) -> int:
        """Reserve ``count`` sequence numbers for a run; returns the first one.

        The counters live on the run row, so the first allocation row-locks it (an UPDATE) and
        two writers of one run cannot allocate the same number on any backend. Once this
        transaction holds the row, further allocations are counted in memory and written by
        :meth:`_flush_sequences` (or folded into ``update_run``) before commit.
        """
        index = 0 if column == "checkpoint_seq" else 1
        known = self._seq.get(run_id)
        if known is None:
            row = self._allocate_sequence(run_id, column, count)
            if row is None:
                raise not_found_error("run", run_id)
            self._seq[run_id] = [int(row[0]), int(row[1])]
            return int(row[index]) - count + 1
        first = known[index] + 1
        known[index] += count
        self._seq_dirty.add(run_id)
        return first

    def _flush_sequences(self) -> None:
        """Write counters allocated in memory; called by the store right before commit."""
        for run_id in sorted(self._seq_dirty):
            checkpoint_seq, trace_seq = self._seq[run_id]
            self._write_sequences(run_id, checkpoint_seq, trace_seq)
        self._seq_dirty.clear()

    # -- checkpoints, queue ------------------------------------------------------------
    def add_checkpoint(
        self,
        run_id: str,
        *,
        type: str,
        payload: Mapping[str, Any],
        step_id: str | None = None,
        status: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> CheckpointRecord:
        """Append a checkpoint with the run's next sequence number (compressed or previewed).
        It is a keyframe, holding the whole payload; patches come from the journal through
        ``RawTransaction.finish_run`` and ``write_step``."""
        encoded = payloads.encode(dict(payload), self._store.settings.checkpoint)
        meta = dict(metadata or {})
        if encoded.reduction is not None:
            meta["payload_reduction"] = encoded.reduction
        values = {
            "run_id": run_id,
            "sequence": self._next_sequence(run_id, "checkpoint_seq", 1),
            "type": type,
            "step_id": step_id,
            "status": status,
            "encoding": encoded.encoding,
            "payload": encoded.data,
            "size_bytes": encoded.size_bytes,
            "truncated": encoded.truncated,
            "metadata": meta,
            "created_at": self.now,
        }
        self._insert_checkpoints([values])
        return rows.checkpoint(values)

    def enqueue(self, run_id: str, *, available_at: datetime | None = None) -> QueueRecord:
        """Queue a run for a worker (commits with the rest of the transaction)."""
        values = {
            "run_id": run_id,
            "status": "queued",
            "attempts": 0,
            "lease_owner": None,
            "lease_expires_at": None,
            "error": None,
            "available_at": available_at or self.now,
            "created_at": self.now,
            "updated_at": self.now,
            "finished_at": None,
        }
        return rows.queue({**values, "id": self._insert_queue(values)})

    # -- statement execution, supplied by each transaction class --------------------------
    def _insert_run(self, values: dict[str, Any], *, checked: bool = True) -> bool:
        """Insert the run row unless its id exists; whether it was inserted. ``checked=False``:
        the id is new (generated here), so the insert need not be read back; a clash would
        still fail the transaction, as a constraint ``conflict``."""
        raise NotImplementedError

    def _insert_spec(self, values: dict[str, Any]) -> None:
        raise NotImplementedError

    def _insert_trace_rows(self, values: list[dict[str, Any]]) -> None:
        """Insert trace event rows as :func:`trace_values` builds them."""
        raise NotImplementedError

    def _run_version(self, run_id: str) -> int | None:
        raise NotImplementedError

    def _set_run_lease(self, run_id: str, owner: str, expires_at: datetime) -> None:
        raise NotImplementedError

    def _allocate_sequence(self, run_id: str, column: str, count: int) -> Sequence[Any] | None:
        """Add ``count`` to the run's ``column``; its new ``(checkpoint_seq, trace_seq)``."""
        raise NotImplementedError

    def _write_sequences(self, run_id: str, checkpoint_seq: int, trace_seq: int) -> None:
        raise NotImplementedError

    def _insert_checkpoints(self, values: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    def _insert_queue(self, values: dict[str, Any]) -> int:
        """Insert the queue row; its ``id``."""
        raise NotImplementedError
