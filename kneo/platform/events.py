"""A run's event stream as a Python iterator: started, steps, paused (with its requests),
resumed, finished.

Read from the run's durable trace, so the stream is the same in any process and can be
picked up again after a given sequence (the HTTP ``Last-Event-ID``). With ``follow`` the
iterator polls until the run finishes (or pauses, unless ``through_pauses``); the clock and
the sleep are injectable so tests never wait.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kneo.clock import utc_iso
from kneo.lifecycle import TERMINAL, RunStatus
from kneo.platform.tasks import paused_requests
from kneo.redaction import redact_mapping

if TYPE_CHECKING:
    from kneo.store.api import Store

#: trace event type -> stream event type (others are internal detail and not streamed)
STREAMED: dict[str, str] = {
    "run_started": "run.started",
    "run_continued": "run.started",
    "step_started": "step.started",
    "step_completed": "step.completed",
    "step_failed": "step.failed",
    "step_skipped": "step.skipped",
    "step_retry": "step.retry",
    "tool_call_started": "tool.started",
    "tool_call_completed": "tool.completed",
    "remote_agent_progress": "agent.remote",
    "answer_delta": "answer.delta",
    "run_paused": "run.paused",
    "human_decision": "human.decision",
    "human_escalated": "human.escalated",
    "run_resumed": "run.resumed",
    "run_completed": "run.finished",
    "run_failed": "run.finished",
    "run_cancelled": "run.finished",
    "run_expired": "run.finished",
    "run_timed_out": "run.finished",
}
#: Stream event types sent only to a reader that asks for them (``include``).
OPT_IN = frozenset({"answer.delta"})
_FINAL = {
    "run_completed": "succeeded",
    "run_failed": "failed",
    "run_cancelled": "cancelled",
    "run_expired": "expired",
    "run_timed_out": "timed_out",
}


@dataclass(frozen=True)
class RunEvent:
    """One event of a run: ``sequence`` orders (and resumes) the stream."""

    sequence: int
    type: str
    run_id: str
    step_id: str | None = None
    created_at: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "sequence": self.sequence,
            "type": self.type,
            "run_id": self.run_id,
            "step_id": self.step_id,
            "created_at": self.created_at,
            "data": self.data,
        }


def stream_stops(status: str, *, through_pauses: bool = False) -> bool:
    """Whether a followed stream ends at a run ``status``: finished, or paused (the run will
    not move without someone) unless ``through_pauses``."""
    return status in TERMINAL or (status == RunStatus.PAUSED and not through_pauses)


def read_events(
    store: Store,
    run_id: str,
    after: int,
    cache: dict[str, Any],
    include: frozenset[str] = frozenset(),
) -> tuple[list[RunEvent], int]:
    """One page of the trace after sequence ``after`` as stream events, and the last sequence
    read (``after`` when the page was empty). Trace events that are internal detail are read
    past but not returned; ``cache`` keeps request bodies between pages of one stream."""
    page = store.runs.list_trace(run_id, limit=500, offset=after)
    out: list[RunEvent] = []
    for event in page.items:
        after = max(after, event.sequence)
        kind = STREAMED.get(event.event_type)
        if kind is None or (kind in OPT_IN and kind not in include):
            continue
        data = dict(event.payload or {})
        if event.event_type == "run_paused":  # the event names them; bodies are stored once
            data["requests"] = paused_requests(store, run_id, data, cache)
            data.setdefault("request_ids", [r.get("request_id") for r in data["requests"]])
        if event.event_type in _FINAL:
            data.setdefault("status", _FINAL[event.event_type])
        out.append(
            RunEvent(
                event.sequence,
                kind,
                run_id,
                event.step_id,
                utc_iso(event.created_at),
                redact_mapping(data),
            )
        )
    return out, after


def iter_events(
    store: Store,
    run_id: str,
    *,
    after: int = 0,
    follow: bool = False,
    through_pauses: bool = False,
    poll_seconds: float = 0.25,
    timeout_seconds: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    include: frozenset[str] = frozenset(),
) -> Iterator[RunEvent]:
    """Events after ``after``; with ``follow`` until the run ends (or pauses); the opt-in
    types (:data:`OPT_IN`) only when ``include`` names them."""
    store.runs.get_run(run_id)  # not_found before the first event
    cache: dict[str, Any] = {}
    waited = 0.0
    ended = False
    while True:
        events, last = read_events(store, run_id, after, cache, include)
        yield from events
        if last != after:
            after, waited = last, 0.0
            continue
        if not follow:
            return
        run = store.runs.get_run(run_id)
        stop = stream_stops(run.status, through_pauses=through_pauses)
        if stop and not ended:
            # One more read first: the run's last events may have committed, with its
            # status, after the empty page above.
            ended = True
            continue
        if stop:
            return
        ended = False
        if timeout_seconds is not None and waited >= timeout_seconds:
            return
        sleep(poll_seconds)
        waited += poll_seconds


def answer_text(events: Iterator[RunEvent]) -> Iterator[str]:
    """The answer text of ``answer.delta`` events as it comes (a ``replace`` delta is the
    whole answer again: what follows it restarts from there, so a reader prints a line
    break and the answer as it stands)."""
    for event in events:
        if event.type != "answer.delta" or event.data.get("final") is False:
            continue
        text = str(event.data.get("text") or "")
        if event.data.get("replace"):
            yield "\n" + text
        elif text:
            yield text
