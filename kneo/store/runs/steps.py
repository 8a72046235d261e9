"""The rows of a step boundary, already encoded: :class:`StepCheckpoint`, :class:`StepEvent`.

A step boundary is the hottest write Kneo makes (one per completed step, agent turn or tool
result). It is a transaction of its own (:meth:`Transaction.write_step
<kneo.store.transaction.Transaction.write_step>`), written like a run's outcome: the runs
compare-and-set (new state, version+1, ``checkpoint_seq``+k, ``trace_seq``+n, returning the
counters) and the checkpoint and event rows numbered from what it returns; on PostgreSQL all
of it one statement in autocommit (one round trip). The journal encodes the rows once
(payloads compressed or patched, JSON text redacted), so the store writes them as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from kneo import jsontext
from kneo.store import tables as t
from kneo.store.wire import statements as st

#: Compact JSON text exactly as :class:`~kneo.store.column_types.JSONText` stores it.
json_text: Callable[[Any], str] = jsontext.dumps


#: the columns of the rows a step writes, in table order
CHECKPOINT_COLUMNS = st.columns(t.checkpoints)
TRACE_COLUMNS = st.columns(t.trace_events)


class StepCheckpoint(NamedTuple):
    """The checkpoint row of a step boundary, already encoded (see :mod:`.payloads`).

    A patch row (see :mod:`.delta`) applies to the checkpoint numbered ``follows``; readers
    rely on that being the row right before it, so when the run's sequence moved on in
    between (another writer added a checkpoint) ``keyframe()`` is stored instead.

    The rows a step writes are named tuples: made at every step boundary, where a frozen
    dataclass's ``__init__`` (a call per field) cost several times a tuple's.
    """

    type: str
    step_id: str | None
    status: str | None
    encoding: str
    payload: bytes
    size_bytes: int
    truncated: bool
    metadata: Mapping[str, Any]
    follows: int | None = None
    keyframe: Callable[[], StepCheckpoint] | None = None

    def columns(self) -> tuple[Any, ...]:
        """The row's own columns, as stored: type, step_id, status, encoding, payload,
        size_bytes, truncated and metadata (JSON text)."""
        return (
            self.type,
            self.step_id,
            self.status,
            self.encoding,
            self.payload,
            self.size_bytes,
            self.truncated,
            json_text(dict(self.metadata)),
        )

    def at(self, sequence: int) -> StepCheckpoint:
        """What to store as checkpoint ``sequence``: this row, or its keyframe when this is a
        patch on anything but ``sequence - 1``."""
        if self.follows is None or self.follows == sequence - 1:
            return self
        if self.keyframe is None:
            raise ValueError("a checkpoint patch out of sequence needs a keyframe")
        return self.keyframe()


def chain_starts(checkpoints: Sequence[StepCheckpoint]) -> set[int]:
    """The checkpoints the run's last one must be for ``checkpoints`` to be stored as they
    come in one write: the one each patch's chain starts from (a row's index counts the
    rows before it). Empty when all are keyframes; more than one when the patches do not
    follow each other, which only the stepwise path (:meth:`StepCheckpoint.at`) stores."""
    return {c.follows - i for i, c in enumerate(checkpoints) if c.follows is not None}


class StepWritten(NamedTuple):
    """A written step boundary: the run's new version and its sequence counters."""

    version: int
    checkpoint_seq: int
    trace_seq: int


class StepEvent(NamedTuple):
    """One trace event row; ``payload`` is its JSON text."""

    event_type: str
    step_id: str | None
    payload: str
