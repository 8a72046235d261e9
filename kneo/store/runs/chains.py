"""Reading checkpoints stored as patches: fold each one onto its keyframe.

A patch row applies to the row right before it, and every chain starts at a keyframe (a row
holding the whole payload, written at least every few rows), so a checkpoint's payload is its
keyframe folded with the patches up to it. Readers fetch, per page, only the ranges
``[keyframe, checkpoint]`` its patch rows need, in one query each.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from kneo.store import row_records
from kneo.store import tables as t
from kneo.store.records import CheckpointRecord
from kneo.store.runs import delta, payloads

#: What a checkpoint whose chain cannot be folded shows (a base row is missing).
UNAVAILABLE = {"_preview": "checkpoint payload unavailable: its base checkpoint is missing"}

_c = t.checkpoints.c
_k = t.checkpoints.alias("k")
_KEYFRAME_OF = (
    sa.select(_k.c.sequence)
    .where(
        _k.c.run_id == _c.run_id,
        _k.c.sequence <= _c.sequence,
        _k.c.encoding.in_(payloads.KEYFRAME_ENCODINGS),
    )
    .order_by(_k.c.sequence.desc())
    .limit(1)
    .scalar_subquery()
)


def records(
    conn: Connection, run_id: str, found: Sequence[row_records.Row]
) -> list[CheckpointRecord]:
    """The records of ``found`` (rows of ``run_id``'s checkpoints) with whole payloads."""
    wanted = {int(r["sequence"]) for r in found if payloads.is_patch(r["encoding"])}
    if not wanted:
        return [row_records.checkpoint(r) for r in found]
    keyframes = conn.execute(
        sa.select(_c.sequence, _KEYFRAME_OF).where(
            _c.run_id == run_id, _c.sequence.in_(sorted(wanted))
        )
    ).all()
    folded: dict[int, dict[str, Any]] = {}
    for low, high in _ranges([(k, s) for s, k in keyframes if k is not None]):
        chain = conn.execute(
            sa.select(_c.sequence, _c.encoding, _c.payload)
            .where(_c.run_id == run_id, _c.sequence.between(low, high))
            .order_by(_c.sequence)
        ).all()
        fold(chain, wanted, folded)
    out = []
    for r in found:
        sequence = int(r["sequence"])
        if sequence not in wanted:
            out.append(row_records.checkpoint(r))
        elif sequence in folded:
            out.append(row_records.checkpoint(r, payload=folded[sequence]))
        else:
            out.append(row_records.checkpoint(r, payload=dict(UNAVAILABLE), truncated=True))
    return out


def _ranges(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Overlapping ``(low, high)`` spans merged, in order."""
    merged: list[tuple[int, int]] = []
    for low, high in sorted(spans):
        if merged and low <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(high, merged[-1][1]))
        else:
            merged.append((low, high))
    return merged


def fold(chain: Sequence[Any], wanted: set[int], out: dict[int, dict[str, Any]]) -> None:
    """Fold consecutive rows from a keyframe, recording the payloads of ``wanted`` rows; a gap
    or an unreadable patch leaves the rows after it unresolved."""
    state: dict[str, Any] | None = None
    previous = None
    for sequence, encoding, data in chain:
        if not payloads.is_patch(encoding):
            state = payloads.decode(encoding, bytes(data))
        elif state is None or previous != sequence - 1:
            state = None
        else:
            try:
                state = delta.apply(state, payloads.decode_patch(encoding, bytes(data)))
            except (KeyError, IndexError, TypeError, ValueError, AttributeError):
                state = None
        previous = sequence
        if state is not None and sequence in wanted:
            out[sequence] = state
