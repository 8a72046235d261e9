"""CLI tables at 80 columns: ids whole, other columns wrapped at word boundaries (optional
columns left out, and named, when even that does not fit), trace rows led by the tool."""

from __future__ import annotations

import re

import pytest

from kneo.cli.output import print_table
from kneo.cli.runs_cmd import _trace_row

ROWS = [
    [
        "cont_fb51e14fa09f3953",
        "req_d35c316e1c5b65d5",
        "approval",
        "reviewer@example.com",
        "Approve the smoke draft before it is published to the announcements channel?",
        "2026-11-24T04:27:41.5Z",
        "yes",
    ]
]
COLUMNS = ["continuation", "request", "kind", "assignee", "prompt", "expires_at", "escalated"]


@pytest.mark.parametrize("width", [80, 100, 200])
def test_no_word_is_broken(width: int, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("COLUMNS", str(width))
    print_table("tasks", COLUMNS, ROWS, optional=("assignee", "expires_at", "escalated"))
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert all(len(line) <= width for line in lines), out
    shown = lines[1].split()  # the header row
    words = set(re.findall(r"\S+", "\n".join(lines[2:])))
    for column, cell in zip(COLUMNS, ROWS[0], strict=True):
        if column == "expires_at":
            cell = "2026-11-24 04:27:41Z"  # to the second
        if column in shown:  # every word of a shown cell is whole
            assert set(cell.split()) <= words, (column, out)
    dropped = [c for c in COLUMNS if c not in shown]
    assert dropped == {
        80: ["assignee", "expires_at", "escalated"],
        100: ["expires_at", "escalated"],
    }.get(width, [])
    if dropped:
        assert lines[0].endswith(f"(not shown at this width: {', '.join(dropped)})")


def test_trace_rows_lead_with_the_tool_and_status() -> None:
    event = {
        "sequence": 6,
        "event_type": "tool_call_completed",
        "step_id": "answer",
        "payload": {
            "tool_name": "lookup_user",
            "tool_call_id": "call_0_0",
            "status": "ok",
            "result": "[REDACTED]",
            "usage": {"prompt_tokens": 1, "total_tokens": 3},
            "at": "2026-11-24T03:31:06Z",
        },
    }
    assert _trace_row(event) == [
        6,
        "tool_call_completed",
        "answer",
        "lookup_user",
        "ok",
        "result=[REDACTED] usage.total_tokens=3",
    ]
