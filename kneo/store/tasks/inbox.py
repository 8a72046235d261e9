"""The inbox's list rows: what a row of the task list shows, written with the task.

A pending task's requests are stored once, as compact bodies in its run's state (the record
the run resumes from); the continuation holds only the index fields. Building a page of the
inbox from that (decode each run's state, complete each request, redact it) cost ~20 ms for
100 tasks, where the query took ~1.5 ms. So the continuation also carries ``list_row``: its
pending requests as the list shows them (:func:`~kneo.engine.human.public_request`) and the
first words of its run's input, built from the same bodies in the transaction that writes
the task (a pause, a decision that leaves requests pending, an escalation) and dropped
(``NULL``) when the task stops being pending. A page is then one indexed query, a JSON
decode per row and the task's own columns.

Redaction follows :mod:`kneo.redaction`: the row is redacted of secrets and personal data,
like every stored record. A decider's list shows personal data, so when redacting personal
data changed anything, the row also holds ``personal``: the same row redacted of secrets
only, shown only to callers with the decision scope. That is a copy of what the run's state
already holds unredacted for the run to resume from, and it leaves with the pending
request (a resolved request's entry is redacted of both).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kneo import jsontext
from kneo.lifecycle import TaskStatus, request_status
from kneo.redaction import may_need_redaction, redact_mapping, redact_text

#: Characters of an inbox row's line from the run's input.
PREVIEW_CHARS = 90


def input_preview(input_text: str, *, show_personal: bool) -> str:
    """The first words of a run's input on one line, redacted for the reader: what tells
    one inbox row from the next when a workflow's prompts all read the same."""
    return _one_line(redact_text(input_text[:1000], show_personal=show_personal))


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    if len(text) <= PREVIEW_CHARS:
        return text
    cut = text[:PREVIEW_CHARS]
    return (cut.rsplit(" ", 1)[0] if " " in cut[20:] else cut) + "…"


def has_body(entry: Mapping[str, Any]) -> bool:
    return "prompt" in entry


def task_requests(
    entries: Sequence[Mapping[str, Any]], state: Mapping[str, Any] | None
) -> list[dict[str, Any]]:
    """Every entry as a full request dict with ``status``: the body from the entry itself
    (old rows, answered requests, promotions) or from the state's pending record of the
    same id."""
    from kneo.engine.human import complete_request  # kneo.store loads no engine module

    bodies = {p.get("request_id"): p for p in (state or {}).get("pending") or []}
    out = []
    for entry in entries:
        body = {} if has_body(entry) else bodies.get(entry.get("request_id")) or {}
        merged = complete_request({**body, **entry})
        merged["status"] = request_status(entry)
        out.append(merged)
    return out


def list_row(
    entries: Sequence[Mapping[str, Any]],
    bodies: Sequence[Mapping[str, Any]] | None,
    input_text: str,
) -> dict[str, Any] | None:
    """A pending task's ``list_row`` from its continuation entries, the pending bodies of its
    run's state (``None``: every entry holds its body, as a promotion's do) and its run's
    input. ``None`` when a body is missing: the list then builds that row from the run's
    state on read, as before this row existed, rather than show an incomplete one."""
    return encoded_list_row(entries, bodies, input_text)[0]


def encoded_list_row(
    entries: Sequence[Mapping[str, Any]],
    bodies: Sequence[Mapping[str, Any]] | None,
    input_text: str,
) -> tuple[dict[str, Any] | None, str | None]:
    """:func:`list_row` and its JSON text (:func:`kneo.jsontext.dumps` of it), the text made
    from the one the redaction check scanned rather than encoded twice."""
    from kneo.engine.human import request_view  # kneo.store loads no engine module

    if bodies is None and not all(has_body(e) for e in entries):
        return None, None
    requests = task_requests(entries, {"pending": list(bodies or ())})
    pending = [r for r in requests if r["status"] is TaskStatus.PENDING]
    if not all(has_body(r) for r in pending):
        return None, None
    views = [request_view(r) for r in pending]
    text = jsontext.dumps(views)
    head = input_text[:1000]
    # Nothing redaction could change (the usual row): both readers' rows are the views as
    # they are, found by one scan of their JSON text and one of the input's.
    if not may_need_redaction(text) and not may_need_redaction(head):
        preview = _one_line(head)
        row: dict[str, Any] = {"requests": views, "input_preview": preview}
        return row, f'{{"requests":{text},"input_preview":{jsontext.dumps(preview)}}}'
    row = {
        "requests": [redact_mapping(v) for v in views],
        "input_preview": input_preview(input_text, show_personal=False),
    }
    personal = {
        "requests": [redact_mapping(v, show_personal=True) for v in views],
        "input_preview": input_preview(input_text, show_personal=True),
    }
    if personal != row:
        row["personal"] = personal
    return row, jsontext.dumps(row)


def listed(row: Mapping[str, Any], *, show_personal: bool) -> Mapping[str, Any]:
    """The part of ``row`` a reader sees: ``requests`` and ``input_preview``."""
    if show_personal:
        return row.get("personal") or row
    return row
