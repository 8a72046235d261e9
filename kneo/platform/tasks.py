"""Where a human request is stored, and how its views are put back together.

A pending request's body (prompt, context, decisions, expiry...) is stored once, in the run's
execution state (``state.pending``), as the compact record of
:func:`~kneo.engine.human.compact_request`: the run resumes from that state and decisions are
validated against it, unredacted like the rest of the state. The continuation row is the
inbox index: per request only ``request_id``, ``kind`` and ``assignee`` (the store copies them
into its ``continuation_requests`` index), ``status`` once not pending and ``escalated_at``.
When a request is answered its body leaves the state, so :func:`resolved_entry` moves it,
redacted, into the continuation entry: a resolved task still shows what was asked. The
``run_paused`` trace event names the requests (id and kind) and nothing more.

Rows written before this layout hold full bodies in the continuation; an entry with a
``prompt`` is used as it is, so they read unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from kneo.engine.human import (
    HumanDecision,
    HumanRequest,
    compact_request,
    complete_request,
    public_request,
)
from kneo.errors import NotFound
from kneo.lifecycle import TaskStatus, request_status, transition
from kneo.redaction import redact_mapping, redact_text
from kneo.store import ContinuationRecord
from kneo.store.tasks.inbox import has_body, task_requests
from kneo.store.tasks.search import INPUT_CHARS as SEARCH_INPUT_CHARS

if TYPE_CHECKING:
    from kneo.store.api import Store


def pending_entry(request: HumanRequest) -> dict[str, Any]:
    """A new request's continuation entry: what the inbox filters on, nothing else."""
    entry: dict[str, Any] = {"request_id": request.request_id, "kind": request.kind}
    if request.assignee is not None:
        entry["assignee"] = request.assignee  # the inbox's filter key: kept unredacted
    return entry


def resolved_entry(
    entry: Mapping[str, Any], request: HumanRequest, answer: HumanDecision | None = None
) -> dict[str, Any]:
    """An answered request's entry: its body (redacted, compact) joins the index fields,
    with the decision and who took it when (so a late reviewer is told by whom)."""
    decided = {}
    if answer is not None:
        decided = {
            "decision": answer.decision,
            "decided_by": answer.actor,
            "decided_at": answer.decided_at,
        }
    decided["status"] = transition(
        request_status(entry), TaskStatus.RESOLVED, action="decide the request"
    )
    if "prompt" in entry:  # the body is already here (rows written before this layout)
        return {**entry, **decided}
    body = redact_mapping(compact_request(request.to_dict()))
    return {**body, **entry, **decided}


def search_text(input_text: str, requests: Sequence[HumanRequest]) -> list[str]:
    """What a new task is found by in the inbox search besides its workflow name and
    assignees (:mod:`kneo.store.tasks.search`): its prompts and its run's input, redacted like
    every stored record, so no secret or personal data becomes a search term."""
    texts = [r.prompt for r in requests] + [input_text[:SEARCH_INPUT_CHARS]]
    return [redact_text(text) for text in texts]


def next_expiry(
    entries: Sequence[Mapping[str, Any]], pending: Sequence[Mapping[str, Any]]
) -> datetime | None:
    """The earliest ``expires_at`` of the requests still pending and not escalated: the
    continuation's ``expires_at`` column, which the timeout sweep selects by."""
    left = [
        str(r["expires_at"])
        for r in task_requests(entries, {"pending": list(pending)})
        if r["status"] == TaskStatus.PENDING and r.get("expires_at") and not r.get("escalated_at")
    ]
    return datetime.fromisoformat(min(left).replace("Z", "+00:00")) if left else None


def run_state(store: Store, run_id: str | None) -> Mapping[str, Any] | None:
    if run_id is None:
        return None
    try:
        return store.runs.get_run(run_id).state
    except NotFound:
        return None


def with_bodies(
    store: Store, cont: ContinuationRecord, *, state: Mapping[str, Any] | None = None
) -> ContinuationRecord:
    """``cont`` with full request dicts, for views and sweeps (reads the run only when an
    entry has no body of its own and ``state``, the run's, is not given)."""
    if state is not None:
        return dataclasses.replace(cont, requests=task_requests(cont.requests, state))
    return with_bodies_many(store, [cont])[0]


def with_bodies_many(
    store: Store,
    conts: Sequence[ContinuationRecord],
    states: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[ContinuationRecord]:
    """:func:`with_bodies` for a page of continuations: the runs they need, in one query
    (or from ``states``, the runs' states by id, when the caller read them)."""
    if states is None:
        needed = [
            c.run_id
            for c in conts
            if c.run_id is not None and not all(has_body(r) for r in c.requests)
        ]
        states = store.runs.run_states(needed)
    return [
        dataclasses.replace(
            c, requests=task_requests(c.requests, states.get(c.run_id) if c.run_id else None)
        )
        for c in conts
    ]


def paused_requests(
    store: Store, run_id: str, payload: Mapping[str, Any], cache: dict[str, Any]
) -> list[dict[str, Any]]:
    """The full requests a ``run_paused`` event names, for the event stream.

    Bodies come from the run's state while pending and from the continuation once answered;
    when neither has one any more (the run was cancelled or timed out and its continuation
    deleted) the event's ``request_id`` and ``kind`` are what is left. ``cache`` holds the
    state and continuation per pause for the rest of one read of the stream."""
    named = [dict(r) for r in payload.get("requests") or []]
    if all(has_body(r) for r in named):
        return named  # written before this layout: the event holds the bodies
    cid = str(payload.get("continuation_id") or "")
    if cid not in cache:  # one read per pause, whatever the stream holds after it
        try:
            entries = store.tasks.get_continuation(cid).requests if cid else []
        except NotFound:
            entries = []
        cache[cid] = ({r.get("request_id"): r for r in entries}, run_state(store, run_id))
    entries_by_id, state = cache[cid]
    bodies = {p.get("request_id"): p for p in (state or {}).get("pending") or []}
    out = []
    for r in named:
        rid = r.get("request_id")
        entry = entries_by_id.get(rid) or {}
        body = entry if has_body(entry) else {**(bodies.get(rid) or {}), **entry}
        if has_body(body):
            full = complete_request({**r, **body})
            r = public_request(dict(full, status=request_status(entry)))
        out.append(r)
    return out
