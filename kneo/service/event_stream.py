"""A run's events as server-sent events: what ``GET /v1/runs/{run_id}/events`` streams and
the console's live answer (``/ui/runs/{run_id}/answer``) reads, one loop for both."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from fastapi import Request

from kneo.errors import InvalidRequest
from kneo.platform.events import stream_stops
from kneo.platform.results import run_result

if TYPE_CHECKING:
    from kneo.platform import PlatformManager

__all__ = ["MAX_EVENT_ID", "event_position", "run_event_stream", "sse"]

#: Event sequences are 64-bit integers in both databases.
MAX_EVENT_ID = 2**63 - 1
#: Seconds without an event before a comment keeps the connection open.
_KEEP_ALIVE = 15.0


def sse(event: str, data: dict[str, Any], event_id: int | None = None) -> bytes:
    """One server-sent event."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def event_position(header: str | None) -> int:
    """The sequence a ``Last-Event-ID`` resumes after (0 without one): an id this stream
    sent, a whole number from 0; anything else is refused before the stream starts (a
    ``200`` that then dies tells the client nothing)."""
    if header is None or not header.strip():
        return 0
    text = header.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 19 or int(text) > MAX_EVENT_ID:
        raise InvalidRequest(
            f"Last-Event-ID must be an event id this stream sent (a whole number from 0 to "
            f"{MAX_EVENT_ID}), got {text[:40]!r}",
            field="Last-Event-ID",
        )
    return int(text)


async def run_event_stream(
    request: Request,
    manager: PlatformManager,
    run_id: str,
    *,
    after: int,
    wanted: frozenset[str],
    poll_seconds: float,
) -> AsyncIterator[bytes]:
    """The run's events after sequence ``after`` (with the opt-in types in ``wanted``) until
    it pauses or finishes, then an ``end`` event carrying the run's result; stops when the
    client goes away."""
    idle = 0.0
    cache: dict[str, Any] = {}
    ended = False
    while True:
        events, last = await asyncio.to_thread(manager.read_events, run_id, after, cache, wanted)
        for event in events:
            yield sse(event.type, event.to_dict(), event.sequence)
        if last != after:
            after, idle = last, 0.0
            continue
        run = await asyncio.to_thread(manager.get_run_record, run_id)
        stop = stream_stops(run.status)
        if stop and not ended:
            # One more read first: the last events may have committed, with the status,
            # after the empty page above.
            ended = True
            continue
        if stop:
            yield sse("end", run_result(run, trace_event_count=after).to_dict())
            return
        ended = False
        if await request.is_disconnected():
            return
        idle += poll_seconds
        if idle >= _KEEP_ALIVE:
            idle = 0.0
            yield b": keep-alive\n\n"
        await asyncio.sleep(poll_seconds)
