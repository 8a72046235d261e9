"""The task list's rows are written with the task (``continuations.list_row``) and show what
building the task from its run's state shows: after a pause, a decision that leaves a request
pending and an escalation; to a decider (personal data) and to a watcher (redacted); never a
secret; and gone once the task is not pending."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from kneo import Decision
from kneo.clock import ManualClock
from kneo.store import TaskQuery
from kneo.store import tables as t
from tests.hitl.conftest import make_manager

SECRET = "sk-plantedlistrow1234567890abcdef"
EMAIL = "ann.lister@example.com"


def fan(escalate_to: str = "group:leads") -> dict[str, Any]:
    """Two requests in one task: an approval for ann that escalates after 60 s, another for
    the ops group; prompts that hold personal data and a secret."""
    return {
        "version": "v1",
        "workflow": {
            "type": "concurrent",
            "name": "list-rows",
            "participants": [
                {"id": "h1", "kind": "human", "ref": "r1"},
                {"id": "h2", "kind": "human", "ref": "r2"},
            ],
        },
        "components": {
            "humans": {
                "r1": {
                    "prompt": f"Mail {EMAIL} the key {SECRET}?",
                    "assignee": "ann",
                    "timeout_seconds": 60,
                    "on_timeout": "escalate",
                    "escalate_to": escalate_to,
                },
                "r2": {
                    "prompt": "Which region?",
                    "assignee": "group:ops",
                    "timeout_seconds": 600,
                },
            }
        },
    }


@pytest.fixture()
def manager(project: Path, clock: ManualClock, backend: str | None) -> Iterator[Any]:
    platform = make_manager(project, backend, clock=clock)
    yield platform
    platform.store.close()


@pytest.fixture(autouse=True)
def _importable(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(project))
    sys.modules.pop("examples", None)


def _listings(manager: Any) -> list[dict[str, Any]]:
    """The list as a decider and as a watcher sees it, under each filter it has."""
    out = []
    for personal in (True, False):
        for filters in (
            {},
            {"assignee": "ann"},
            {"assignee": ("nobody", "group:ops")},
            {"kind": "input"},
            {"assignee": "group:leads"},
        ):
            listed = manager.list_human_tasks(
                TaskQuery(limit=100, **filters), show_personal=personal
            )
            out.append({**listed, "filters": repr(filters), "personal": personal})
    return out


def assert_rows_match_the_state(manager: Any) -> list[dict[str, Any]]:
    """Every listing from the written rows equals the same listing built from the runs'
    states (the rows set to NULL, as a row written before them reads); no secret in either,
    nor in any stored row."""
    store = manager.store
    with store.engine.connect() as conn:
        stored = [r for (r,) in conn.execute(sa.select(t.continuations.c.list_row)) if r]
    assert stored, "no list row was written"
    assert all(SECRET not in json.dumps(row) for row in stored)
    fast = _listings(manager)
    with store.engine.begin() as conn:
        conn.execute(sa.update(t.continuations).values(list_row=None))
    slow = _listings(manager)
    assert fast == slow
    assert SECRET not in json.dumps(fast)
    return fast


def test_the_list_row_is_the_task_after_every_change(manager: Any, clock: ManualClock) -> None:
    paused = manager.run_from_spec(input_text=f"ship it, ask {EMAIL}", spec=fan())
    cid = paused.continuation_id
    other = manager.run_from_spec(  # an input task, unassigned, beside it
        input_text="other", spec_path=str(Path("examples/hitl_input.yaml").resolve())
    )
    assert other.status == "paused"
    first, second = paused.metadata["pending_human_requests"]

    listed = assert_rows_match_the_state(manager)
    decider, watcher = (next(x for x in listed[i]["tasks"] if x["continuation_id"] == cid)
                        for i in (0, 5))  # fmt: skip
    assert EMAIL in json.dumps(decider) and EMAIL not in json.dumps(watcher)
    assert "[REDACTED_EMAIL]" in watcher["input_preview"]
    assert [r["request_id"] for r in decider["requests"]] == [
        first["request_id"],
        second["request_id"],
    ]
    # the filters find it by either request's assignee or kind, and not by others
    assert [len(x["tasks"]) for x in listed[:5]] == [2, 1, 1, 1, 0]

    # escalation: the first request moves to group:leads
    clock.advance(61)
    assert manager.prune_expired_human_tasks() == 1
    listed = assert_rows_match_the_state(manager)
    assert [len(x["tasks"]) for x in listed[:5]] == [2, 0, 1, 1, 1]
    assert listed[4]["tasks"][0]["requests"][0]["assignee"] == "group:leads"

    # one request decided: the other is still listed, alone
    manager.resume(cid, Decision(first["request_id"], "approved"), actor="lead")
    listed = assert_rows_match_the_state(manager)
    assert [len(x["tasks"]) for x in listed[:5]] == [2, 0, 1, 1, 0]
    assert [r["request_id"] for r in listed[2]["tasks"][0]["requests"]] == [second["request_id"]]

    # the last one decided: the task leaves the list and its row is dropped
    done = manager.resume(cid, Decision(second["request_id"], "approved"))
    assert done.status == "succeeded"
    assert [x["continuation_id"] for x in manager.list_human_tasks()["tasks"]] == [
        other.continuation_id
    ]
    assert manager.store.tasks.get_continuation(cid).list_row is None


def test_an_expired_task_leaves_the_list(manager: Any, clock: ManualClock) -> None:
    spec = fan()
    spec["components"]["humans"]["r1"]["on_timeout"] = "fail"
    del spec["components"]["humans"]["r1"]["escalate_to"]
    paused = manager.run_from_spec(input_text="go", spec=spec)
    assert_rows_match_the_state(manager)
    assert manager.list_human_tasks()["count"] == 1
    clock.advance(61)
    assert manager.prune_expired_human_tasks() == 1
    assert manager.store.runs.get_run(paused.run_id).status == "expired"
    assert manager.list_human_tasks()["tasks"] == []


def test_the_migration_writes_the_rows_of_pending_tasks(manager: Any) -> None:
    """Migration 0018 gives every pending task the row a pause writes (a resolved one none)."""
    from alembic import command

    from kneo.store.migrate import HEAD_REVISION, _alembic_config, upgrade

    paused = manager.run_from_spec(input_text=f"ship it, ask {EMAIL}", spec=fan())
    done = manager.run_from_spec(
        input_text="done", spec_path=str(Path("examples/hitl_input.yaml").resolve())
    )
    answer = Decision(done.request_id, "provided", content='{"threshold": 0.5}')
    manager.resume(done.continuation_id, answer)
    store = manager.store
    written = store.tasks.get_continuation(paused.continuation_id).list_row
    assert written is not None and "personal" in written
    with (
        store.dialect.connect_write(store.engine) as conn,
        conn.begin(),
        store.dialect.migration_lock(conn),
    ):
        command.downgrade(_alembic_config(conn), "0017")
    assert upgrade(store.engine, store.dialect) == HEAD_REVISION
    assert store.tasks.get_continuation(paused.continuation_id).list_row == written
    assert store.tasks.get_continuation(done.continuation_id).list_row is None


def test_the_stored_text_is_the_rows_json() -> None:
    """The text written with a row is the row's JSON, whether redaction changed nothing (the
    text reused from the redaction check) or the row holds a personal copy."""
    from kneo import jsontext
    from kneo.store.tasks.inbox import encoded_list_row

    body = {
        "request_id": "req_1", "kind": "approval", "step_id": "s", "prompt": "Ship it?",
        "created_at": "2026-01-02T03:04:05Z", "timeout_seconds": 60,
    }  # fmt: skip
    entry = {"request_id": "req_1", "kind": "approval"}
    clean, text = encoded_list_row([entry], [body], "the   release\nnotes")
    assert clean is not None and "personal" not in clean
    assert text == jsontext.dumps(clean) and clean["input_preview"] == "the release notes"
    marked, text = encoded_list_row([entry], [dict(body, prompt=f"Mail {EMAIL}?")], SECRET)
    assert marked is not None and text == jsontext.dumps(marked)
    assert EMAIL in json.dumps(marked["personal"]) and EMAIL not in json.dumps(marked["requests"])
    assert SECRET not in text
    assert encoded_list_row([entry], [], "x") == (None, None)  # a body missing: no row
