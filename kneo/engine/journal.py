"""The step-boundary interface between the engine and whatever makes it durable.

The engine never touches storage. It reports trace events with :meth:`Journal.emit`
(buffered) and, at every step boundary — a unit completed or failed, an agent turn or a tool
result recorded — calls :meth:`Journal.commit` with a :class:`Boundary` carrying the full
execution-state snapshot. An implementation must make the boundary atomic: the checkpoint,
the run's position and the buffered events move together or not at all. The platform does
it in one store transaction with compare-and-set on the run version; :class:`MemoryJournal`
keeps everything in memory for the SDK and for tests.

If the run was changed elsewhere (cancelled, continued by another process) ``commit`` raises
:class:`RunSuperseded` and the engine stops without writing anything more.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any, Protocol

from kneo.engine.state import StateParts

_DECODE = json.JSONDecoder().decode


class RunSuperseded(Exception):
    """The run's stored version moved on under us (cancelled or taken over): stop quietly."""

    def __init__(self, reason: str, *, status: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class TraceEvent:
    """One event of a run's trace."""

    event_type: str
    at: str
    step_id: str | None = None
    unit_key: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_type": self.event_type,
            "at": self.at,
            "step_id": self.step_id,
            "unit_key": self.unit_key,
            "data": self.data,
        }


class Boundary:
    """One durable step boundary. ``kind`` is the checkpoint type.

    ``state`` is the full execution-state snapshot. The engine passes it as ``state_text``
    (compact JSON) only and ``state`` is decoded on first use: a journal that stores the text
    as it is never pays for the decode. Read-only by convention, like the frozen dataclass it
    replaced. ``parts`` (:meth:`~kneo.engine.state.ExecutionState.snapshot_parts`) gives
    ``state_text`` with the field and unit texts it was joined from.

    ``closing``: the engine promises to start nothing after this boundary before it returns
    its outcome, unless it emits or commits again first. A journal may then make the boundary
    durable together with the outcome (one transaction instead of two) without widening what
    a crash can lose: no step runs between the two.

    ``replayable``: the unit's result follows from state that is already durable and running
    it again has no effect outside the run (a human step completed from its recorded
    decision). A journal may make the boundary durable together with the next one: a crash in
    between runs the unit again from that state, to the same result.

    ``before_person``: the engine's next unit is a human step, which has no effect outside the
    run before its own boundary or its pause. A journal may make the boundary durable together
    with that next boundary or the pause (the commonest shape: a step, then an approval, is
    one transaction, not two). A crash in between runs this unit again, exactly as a crash
    just before its own commit would; what may be lost is the same unit's work, never a
    person's or another unit's.
    """

    __slots__ = (
        "_state",
        "attempt",
        "before_person",
        "closing",
        "kind",
        "metadata",
        "parts",
        "replayable",
        "state_text",
        "status",
        "step_id",
        "unit_key",
    )

    def __init__(
        self,
        kind: str,
        state: dict[str, Any] | None = None,
        step_id: str | None = None,
        unit_key: str | None = None,
        status: str = "completed",
        attempt: int = 1,
        metadata: dict[str, Any] | None = None,
        state_text: str | None = None,
        parts: StateParts | None = None,
        closing: bool = False,
        replayable: bool = False,
        before_person: bool = False,
    ) -> None:
        if parts is not None:
            state_text = parts.text
        if state is None and state_text is None:
            raise ValueError("a Boundary needs state or state_text")
        self.kind = kind
        self._state = state
        self.step_id = step_id
        self.unit_key = unit_key
        self.status = status
        self.attempt = attempt
        self.metadata: dict[str, Any] = metadata if metadata is not None else {}
        #: ``state`` as compact JSON when the engine already encoded it (journals may reuse it)
        self.state_text = state_text
        #: the texts ``state_text`` is made of, when the engine made it (journals may diff them)
        self.parts = parts
        self.closing = closing
        self.replayable = replayable
        self.before_person = before_person

    @property
    def state(self) -> dict[str, Any]:
        if self._state is None:
            assert self.state_text is not None
            self._state = _DECODE(self.state_text)
        return self._state

    def __repr__(self) -> str:
        return (
            f"Boundary(kind={self.kind!r}, step_id={self.step_id!r}, unit_key={self.unit_key!r}, "
            f"status={self.status!r}, attempt={self.attempt})"
        )


class Journal(Protocol):
    def emit(self, event: TraceEvent) -> None:
        """Buffer a trace event; it becomes durable with the next commit."""
        ...

    def commit(self, boundary: Boundary) -> None:
        """Make ``boundary`` and the buffered events durable atomically, or raise."""
        ...


class MemoryJournal:
    """An in-memory journal: the SDK's default and the engine tests' fake.

    ``keep`` bounds the history: only the last ``keep`` boundaries and events are kept (a
    long-lived in-process workflow would otherwise hold every step it ever ran)."""

    def __init__(self, keep: int | None = None) -> None:
        self.keep = keep
        self._lock = threading.Lock()
        self._buffer: list[TraceEvent] = []
        self.events: list[TraceEvent] = []
        self.boundaries: list[Boundary] = []
        #: Raise RunSuperseded on the next commit (tests simulate a cancel elsewhere).
        self.supersede_with: str | None = None

    def emit(self, event: TraceEvent) -> None:
        with self._lock:
            self._buffer.append(event)

    def commit(self, boundary: Boundary) -> None:
        with self._lock:
            if self.supersede_with is not None:
                raise RunSuperseded("run changed elsewhere", status=self.supersede_with)
            self.boundaries.append(boundary)
            self.events.extend(self._buffer)
            self._buffer.clear()
            self._trim()

    def drain(self) -> list[TraceEvent]:
        """Buffered events not yet committed (the platform writes them with the outcome)."""
        with self._lock:
            events, self._buffer = self._buffer, []
            self.events.extend(events)
            self._trim()
            return events

    def _trim(self) -> None:
        """Drop the oldest records beyond ``keep``, in batches (amortized O(1) per record)."""
        keep = self.keep
        if keep is None:
            return
        for records in (self.events, self.boundaries):
            if len(records) > 2 * keep:
                del records[:-keep]
