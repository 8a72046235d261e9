"""The store-backed journal: one store transaction per step boundary.

Each :meth:`StoreJournal.commit` writes, in one transaction, the run's new execution state
(compare-and-set on the run version), a redacted checkpoint and the buffered, redacted trace
events. A *closing* boundary (the engine starts nothing after it) waits for the outcome and
is written in the outcome's transaction (:meth:`StoreJournal.final_rows`); a *replayable* one
(a human step completed from its recorded decision) waits for the next boundary and is written
in its transaction, a checkpoint each; one *before a person* (the next unit is a human step)
waits for that unit's boundary or its pause, so a step and the approval after it are one
transaction. When the
compare-and-set fails — the run was cancelled or taken over by another process — nothing is
written and :class:`~kneo.engine.journal.RunSuperseded` stops the engine.
The execution state is stored as-is (it is what the run continues from); checkpoints and
trace events are redacted at write time because they are what people read.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from kneo.engine.journal import Boundary, RunSuperseded, TraceEvent
from kneo.errors import Conflict
from kneo.redaction import may_need_redaction, redact_mapping
from kneo.setting_groups import CheckpointLimits
from kneo.store.runs import delta, payloads
from kneo.store.runs.steps import StepCheckpoint, StepEvent, json_text

if TYPE_CHECKING:
    from kneo.store.api import Store
    from kneo.store.wire.executor import HeldConnection


def checkpoint_payload(state: dict[str, Any], **extra: object) -> dict[str, Any]:
    """What a checkpoint shows: the execution state, redacted."""
    return redact_mapping({**state, **extra})


def _event_payload(event: TraceEvent) -> dict[str, Any]:
    """A trace event's stored payload, before redaction: its data, the unit it belongs to
    when that is not its step, and when it happened."""
    payload = dict(event.data)
    if event.unit_key and event.unit_key != event.step_id:
        payload.setdefault("unit_key", event.unit_key)
    payload.setdefault("at", event.at)
    return payload


def event_row(event: TraceEvent) -> dict[str, Any]:
    return {
        "event_type": event.event_type,
        "step_id": event.step_id,
        "payload": redact_mapping(_event_payload(event)),
    }


#: Trace events written as they happen, not with the next boundary: an answer's deltas
#: (``model.stream``), which are read while the model turn goes on. They describe work not
#: yet committed, so a turn run again after a crash sends its deltas again.
LIVE_EVENTS = frozenset({"answer_delta"})


#: A checkpoint chain holds at most this many rows (a keyframe and its patches), so reading
#: one checkpoint folds at most this many.
KEYFRAME_EVERY = 16


class _Committed(NamedTuple):
    """The journal's last checkpoint: its boundary (the unredacted state, decoded only if a
    patch needs it, and the texts it was made of), that state's JSON length, its sequence
    and how many patches since its keyframe. Its stored payload is exactly
    ``redact(state)``, which is what the next patch applies to."""

    boundary: Boundary
    length: int
    sequence: int
    depth: int


class StoreJournal:
    """A :class:`~kneo.engine.journal.Journal` over a :class:`~kneo.store.Store` for one run.

    Checkpoints are written as patches on the previous one (:mod:`kneo.store.runs.delta`), with a
    full keyframe first, every :data:`KEYFRAME_EVERY` rows, after a preview, and whenever a
    patch would not be smaller: the unchanged rest of the state is neither re-encoded nor
    re-scanned for redaction at every step.
    """

    def __init__(
        self,
        store: Store,
        run_id: str,
        version: int,
        *,
        checkpoint_seq: int | None = None,
        connection: HeldConnection | None = None,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.version = version
        #: the run's last checkpoint sequence at :attr:`version`, when known
        self.checkpoint_seq = checkpoint_seq
        self._buffer: list[TraceEvent] = []
        self._lock = threading.Lock()
        self._committed: _Committed | None = None
        #: boundaries waiting for the next one's transaction or the outcome's
        #: (:meth:`final_rows`): replayable ones, one before a person, and a closing one last
        self._held: list[Boundary] = []
        # One connection for the run's step transactions (PostgreSQL; ``connection``: the
        # one the transaction before the drive used; the outcome's runs on it too), given
        # back by discard, close, or when the journal is dropped.
        self._connection = connection if connection is not None else store.hold_connection()
        weakref.finalize(self, self._connection.close)

    def emit(self, event: TraceEvent) -> None:
        if event.event_type in LIVE_EVENTS:
            self._write_live(event)
            return
        with self._lock:
            if self._held and self._held[-1].closing:
                self._write_held()  # the engine went on after a closing boundary after all
            self._buffer.append(event)

    def commit(self, boundary: Boundary) -> None:
        with self._lock:
            if self._held and self._held[-1].closing:
                self._write_held()
            # a boundary held for the person after it waits for that person's unit only
            after_person = bool(self._held) and any(held.before_person for held in self._held)
            self._held.append(boundary)
            if after_person or not (
                boundary.closing or boundary.replayable or boundary.before_person
            ):
                self._write_held()
            # else nothing that can be lost runs before the next boundary or the outcome:
            # it is written with that one

    def _write_live(self, event: TraceEvent) -> None:
        """A :data:`LIVE_EVENTS` event, in a transaction of its own now: a reader of the
        trace sees it while the turn it belongs to is still running."""
        with self._lock, self.store.transaction(self._connection) as tx:
            tx.add_trace_events(self.run_id, [event_row(event)])

    def _write_held(self) -> None:
        """The held boundaries, the last one's state and the buffered events in their own
        transaction."""
        held, self._held = self._held, []
        # Serialize each state once: the last is the run row's state and, when redaction
        # has nothing to change (the usual case), the checkpoint payloads too.
        chain = self._chain(held)
        events = _event_records(self._buffer)
        boundary, state_text, checkpoint = chain[-1]
        try:
            with self.store.transaction(self._connection) as tx:
                written = tx.write_step(
                    self.run_id,
                    expected_version=self.version,
                    state_text=state_text,
                    checkpoints=[row for _, _, row in chain],
                    events=events,
                )
        except Conflict as exc:  # cancelled or taken over (NotFound when the run is gone)
            if exc.code != "stale_state":
                raise
            current = self.store.runs.get_run(self.run_id)
            raise RunSuperseded(
                f"run {self.run_id} changed elsewhere", status=current.status
            ) from None
        self._buffer.clear()
        self.version = written.version
        self.checkpoint_seq = written.checkpoint_seq
        self._remember(boundary, state_text, checkpoint, written.checkpoint_seq)

    def final_rows(
        self, boundary: Boundary, events: list[dict[str, Any]] | None = None
    ) -> tuple[list[StepCheckpoint], list[dict[str, Any]]]:
        """What the caller's final transaction appends, and ends this journal's chain with:
        the checkpoints of the held boundaries and of ``boundary``, and the pending events
        followed by ``events`` (rows as ``add_trace_events`` takes them). The checkpoints may
        be patches, each on the row before it as this journal expects them numbered; a store
        that numbers them otherwise stores keyframes
        (:meth:`~kneo.store.runs.steps.StepCheckpoint.at`). The caller's compare-and-set on
        :attr:`version` covers the held boundaries too; that transaction may run on
        :attr:`connection`, which :meth:`close` then gives back."""
        with self._lock:
            held, self._held = self._held, []
            checkpoints = [row for _, _, row in self._chain([*held, boundary])]
            self._committed = None
            rows = [event_row(e) for e in self._buffer] + list(events or [])
            self._buffer.clear()
        return checkpoints, rows

    def _chain(self, boundaries: list[Boundary]) -> list[tuple[Boundary, str, StepCheckpoint]]:
        """Each boundary with its state's JSON and its checkpoint row, for one transaction:
        a row may be a patch on the row before it, numbered as this journal expects (the
        last row is remembered by the caller, once its number is known)."""
        chain = []
        for index, boundary in enumerate(boundaries):
            state_text = boundary.state_text or json_text(boundary.state)
            row = self._checkpoint_row(boundary, state_text)
            chain.append((boundary, state_text, row))
            if index == len(boundaries) - 1:
                break
            if self.checkpoint_seq is None:
                self._committed = None  # no number to chain the next patch to
            else:
                self._remember(boundary, state_text, row, self.checkpoint_seq + index + 1)
        return chain

    def _checkpoint_row(self, boundary: Boundary, state_text: str) -> StepCheckpoint:
        """The boundary's checkpoint: a patch on the last one this journal committed when
        that is possible and smaller, else a keyframe (both paths store exactly this)."""
        meta = {"unit_key": boundary.unit_key, "attempt": boundary.attempt, **boundary.metadata}
        if None in meta.values():  # (rarely: a unit and an attempt are usually known)
            meta = {k: v for k, v in meta.items() if v is not None}
        last = self._committed
        limits = self.store.settings.checkpoint
        # Keep the max-bytes rule exact: a state whose JSON (plus zlib's worst-case growth)
        # could exceed the cap takes the keyframe path, which previews it as before.
        size = len(state_text) if state_text.isascii() else len(state_text.encode())
        if (
            last is not None
            and last.depth + 1 < KEYFRAME_EVERY
            and size + 64 + size // 1000 <= limits.max_bytes
        ):
            patch = _patch(last, boundary, state_text)
            if patch is not None and len(patch) < len(state_text):
                encoded = payloads.encode_patch(patch.encode(), limits)
                if encoded is not None:
                    return _row(
                        boundary,
                        encoded,
                        meta,
                        follows=last.sequence,
                        keyframe=lambda: _keyframe(boundary, state_text, meta, limits),
                    )
        return _keyframe(boundary, state_text, meta, limits)

    def _remember(
        self, boundary: Boundary, state_text: str, row: StepCheckpoint, sequence: int
    ) -> None:
        """Take the committed checkpoint as the next patch's base (none after a preview). A
        patch that was stored as a keyframe (:meth:`StepCheckpoint.at`) is no preview: patches
        are only made for states well under the size cap."""
        last = self._committed
        if row.follows is not None and last is not None and row.follows == sequence - 1:
            self._committed = _Committed(boundary, len(state_text), sequence, last.depth + 1)
        elif row.follows is not None or not row.truncated:
            self._committed = _Committed(boundary, len(state_text), sequence, 0)
        else:
            self._committed = None

    def discard(self) -> None:
        """Drop buffered events and a held boundary (the run was superseded: they describe
        work not committed)."""
        with self._lock:
            self._buffer.clear()
            self._held = []
            self._connection.close()

    @property
    def connection(self) -> HeldConnection:
        """The connection the run's step transactions hold (PostgreSQL; SQLite ignores it)."""
        return self._connection

    def close(self) -> None:
        """Give back the connection the step transactions hold (the run stopped driving)."""
        with self._lock:
            self._connection.close()


def _patch(last: _Committed, boundary: Boundary, state_text: str) -> str | None:
    """The redacted patch from the last checkpoint to ``boundary``: from the engine's field
    and unit texts when both have them (nothing decoded or walked but the changed fields),
    else by walking both states (:func:`kneo.store.runs.delta.diff`)."""
    old, new = last.boundary.parts, boundary.parts
    if old is not None and new is not None:
        patch = delta.diff_texts(old.fields, new.fields, old_units=old.units, new_units=new.units)
        if patch is not None:
            return patch
    return delta.diff(
        last.boundary.state, boundary.state, old_length=last.length, new_length=len(state_text)
    )


def _keyframe(
    boundary: Boundary, state_text: str, meta: dict[str, Any], limits: CheckpointLimits
) -> StepCheckpoint:
    """The boundary's state as a whole checkpoint payload: redacted, compressed or previewed
    (:func:`kneo.store.runs.payloads.encode`)."""
    if may_need_redaction(state_text):
        encoded = payloads.encode(checkpoint_payload(boundary.state), limits)
    else:  # redaction would return the state unchanged: reuse its JSON
        encoded = payloads.encode(boundary.state, limits, raw=state_text.encode())
    if encoded.reduction is not None:
        meta = {**meta, "payload_reduction": encoded.reduction}
    return _row(boundary, encoded, meta)


def _row(
    boundary: Boundary,
    encoded: payloads.EncodedPayload,
    meta: dict[str, Any],
    *,
    follows: int | None = None,
    keyframe: Callable[[], StepCheckpoint] | None = None,
) -> StepCheckpoint:
    """The checkpoint row of ``boundary`` with its encoded payload (a patch ``follows`` the
    checkpoint it applies to, with the ``keyframe`` to store instead when it cannot)."""
    return StepCheckpoint(
        type=boundary.kind,
        step_id=boundary.step_id,
        status=boundary.status,
        encoding=encoded.encoding,
        payload=encoded.data,
        size_bytes=encoded.size_bytes,
        truncated=encoded.truncated,
        metadata=meta,
        follows=follows,
        keyframe=keyframe,
    )


def _event_records(events: list[TraceEvent]) -> list[StepEvent]:
    """:func:`event_row` of each event as a ready-to-insert row (JSON text, redacted when
    needed). One :func:`may_need_redaction` scan covers them all: the texts are joined with a
    newline, which JSON text never holds raw and no trigger needs, so a trigger in one text
    is one in the joined text."""
    payloads_ = list(map(_event_payload, events))
    texts = list(map(json_text, payloads_))
    if may_need_redaction("\n".join(texts)):
        texts = [
            json_text(redact_mapping(payload)) if may_need_redaction(text) else text
            for payload, text in zip(payloads_, texts, strict=True)
        ]
    return [StepEvent(e.event_type, e.step_id, text) for e, text in zip(events, texts, strict=True)]
