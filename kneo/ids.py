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
    """``run_<UTC timestamp>_<hex>``: sortable by creation time, unique by randomness."""
    return RunId(f"run_{now.strftime('%Y-%m-%dT%H:%M:%S')}_{secrets.token_hex(6)}")


def new_continuation_id() -> ContinuationId:
    return ContinuationId(new_id("cont"))


def new_request_id() -> RequestId:
    return RequestId(new_id("req"))
