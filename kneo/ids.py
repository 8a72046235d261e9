"""Identifiers: readable prefixes plus randomness, so logs show what an id names."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import NewType

RunId = NewType("RunId", str)
ContinuationId = NewType("ContinuationId", str)
RequestId = NewType("RequestId", str)


def new_id(prefix: str, nbytes: int = 8) -> str:
    return f"{prefix}_{secrets.token_hex(nbytes)}"


def new_run_id(now: datetime) -> RunId:
    """``run_<UTC timestamp>_<12 hex>``: sortable by creation time, unique by randomness.

    The hex starts with the microsecond (5 digits) and ends with 28 random bits, so ids sort
    by creation time to the microsecond: a run's checkpoint and trace rows, keyed by
    ``(run_id, sequence)``, then go to the right edge of their B-trees instead of splitting
    pages in the middle (fewer pages written per step commit)."""
    return RunId(
        f"run_{now.strftime('%Y-%m-%dT%H:%M:%S')}_{now.microsecond:05x}{secrets.token_hex(4)[:7]}"
    )


def new_continuation_id() -> ContinuationId:
    return ContinuationId(new_id("cont"))


def new_request_id() -> RequestId:
    return RequestId(new_id("req"))
