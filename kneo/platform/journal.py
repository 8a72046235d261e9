"""The store-backed journal: one store transaction per step boundary.

Each :meth:`StoreJournal.commit` writes, in one transaction, the run's new execution state
(compare-and-set on the run version), a redacted checkpoint and the buffered, redacted trace
events. When the compare-and-set fails — the run was cancelled or taken over by another
process — nothing is written and :class:`~kneo.engine.journal.RunSuperseded` stops the engine.
The execution state is stored as-is (it is what the run continues from); checkpoints and
trace events are redacted at write time because they are what people read.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from kneo.engine.journal import Boundary, RunSuperseded, TraceEvent
from kneo.errors import Conflict
from kneo.redaction import may_need_redaction
from kneo.redaction import redact as _redact_any
from kneo.store import Store, Transaction, payloads
from kneo.store.rawtx import RawTransaction
from kneo.store.steps import StepCheckpoint, StepEvent, json_text


def checkpoint_payload(state: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """What a checkpoint shows: the execution state, redacted."""
    return redact_dict({**state, **extra})


def event_row(event: TraceEvent) -> dict[str, Any]:
    payload = dict(event.data)
    if event.unit_key and event.unit_key != event.step_id:
        payload.setdefault("unit_key", event.unit_key)
    payload.setdefault("at", event.at)
    return {
        "event_type": event.event_type,
        "step_id": event.step_id,
        "payload": redact_dict(payload),
    }


class StoreJournal:
    """A :class:`~kneo.engine.journal.Journal` over a :class:`~kneo.store.Store` for one run."""

    def __init__(
        self,
        store: Store,
        run_id: str,
        version: int,
        *,
        renew: Callable[[], object] | None = None,
        renew_every: float = 20.0,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.version = version
        self._buffer: list[TraceEvent] = []
        self._lock = threading.Lock()
        self._renew = renew
        self._renew_every = renew_every
        self._last_renew = time.monotonic()
        self.commits = 0

    def emit(self, event: TraceEvent) -> None:
        with self._lock:
            self._buffer.append(event)

    def commit(self, boundary: Boundary) -> None:
        with self._lock:
            # Serialize the state once: it is the run row's state and, when redaction has
            # nothing to change (the usual case), the checkpoint payload too.
            state_text = boundary.state_text or json_text(boundary.state)
            checkpoint = self._checkpoint_row(boundary, state_text)
            events = [_event_record(e) for e in self._buffer]
            try:
                version = self.store.write_step(
                    self.run_id,
                    expected_version=self.version,
                    state_text=state_text,
                    checkpoint=checkpoint,
                    events=events,
                )
            except Conflict as exc:
                if exc.code != "stale_state":
                    raise
                current = self.store.get_run(self.run_id)
                raise RunSuperseded(
                    f"run {self.run_id} changed elsewhere", status=current.status
                ) from exc
            self._buffer.clear()
            self.version = version
            self.commits += 1
        if self._renew is not None and time.monotonic() - self._last_renew > self._renew_every:
            self._last_renew = time.monotonic()
            self._renew()

    def write_final(
        self,
        tx: Transaction | RawTransaction,
        boundary: Boundary,
        events: list[dict[str, Any]] | None = None,
    ) -> None:
        """Part of the caller's final transaction: the outcome checkpoint, then the pending
        events followed by ``events`` (rows as ``add_trace_events`` takes them) in one insert."""
        with self._lock:
            self._write_boundary(tx, boundary)
            rows = [event_row(e) for e in self._buffer] + list(events or [])
            if rows:
                tx.add_trace_events(self.run_id, rows)
            self._buffer.clear()

    def _write_boundary(self, tx: Transaction | RawTransaction, boundary: Boundary) -> None:
        meta: dict[str, Any] = {"unit_key": boundary.unit_key, "attempt": boundary.attempt}
        meta.update(boundary.metadata)
        tx.add_checkpoint(
            self.run_id,
            type=boundary.kind,
            step_id=boundary.step_id,
            status=boundary.status,
            payload=checkpoint_payload(boundary.state),
            metadata={k: v for k, v in meta.items() if v is not None},
        )

    def _checkpoint_row(self, boundary: Boundary, state_text: str) -> StepCheckpoint:
        """The boundary's checkpoint, encoded exactly as :meth:`_write_boundary` stores it."""
        meta: dict[str, Any] = {"unit_key": boundary.unit_key, "attempt": boundary.attempt}
        meta.update(boundary.metadata)
        meta = {k: v for k, v in meta.items() if v is not None}
        limits = self.store.settings.checkpoint
        if may_need_redaction(state_text):
            encoded = payloads.encode(checkpoint_payload(boundary.state), limits)
        else:  # redaction would return the state unchanged: reuse its JSON
            encoded = payloads.encode(boundary.state, limits, raw=state_text.encode())
        if encoded.reduction is not None:
            meta["payload_reduction"] = encoded.reduction
        return StepCheckpoint(
            type=boundary.kind,
            step_id=boundary.step_id,
            status=boundary.status,
            encoding=encoded.encoding,
            payload=encoded.data,
            size_bytes=encoded.size_bytes,
            truncated=encoded.truncated,
            metadata=meta,
        )

    def discard(self) -> None:
        """Drop buffered events (the run was superseded: they describe work not committed)."""
        with self._lock:
            self._buffer.clear()


def _event_record(event: TraceEvent) -> StepEvent:
    """:func:`event_row` as a ready-to-insert row (JSON text, redacted when needed)."""
    payload = dict(event.data)
    if event.unit_key and event.unit_key != event.step_id:
        payload.setdefault("unit_key", event.unit_key)
    payload.setdefault("at", event.at)
    text = json_text(payload)
    if may_need_redaction(text):
        text = json_text(redact_dict(payload))
    return StepEvent(event.event_type, event.step_id, text)


def redact_dict(value: dict[str, Any]) -> dict[str, Any]:
    """:func:`kneo.redaction.redact` for a JSON object, typed. When the value's JSON text has
    nothing redaction could change (:func:`~kneo.redaction.may_need_redaction`, a tested
    superset) the value itself is returned: callers serialize it right away."""
    try:
        clean = not may_need_redaction(json_text(value))
    except (TypeError, ValueError):  # not plain JSON: let redact walk it
        clean = False
    if clean:
        return value
    out: dict[str, Any] = _redact_any(value)
    return out
