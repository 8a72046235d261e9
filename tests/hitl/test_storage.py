"""How a paused run stores its requests: each body once (the run's state), the continuation
and the ``run_paused`` event by id only, no empty or derivable fields in stored records, every
view still complete, and rows written in the earlier layout (full bodies everywhere) still
read, resume and escalate."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from kneo import Decision
from kneo.clock import ManualClock, utc_iso
from kneo.engine.human import build_request, compact_request, complete_request
from kneo.store import AuditQuery
from tests.hitl.conftest import make_manager

PROMPT = "Sign off the launch plan (prompt-marker-7f3a)?"
VIEW_FIELDS = {
    "request_id",
    "kind",
    "prompt",
    "assignee",
    "options",
    "input_schema",
    "decisions",
    "step_id",
    "wait_key",
    "context",
    "created_at",
    "expires_at",
    "timeout_seconds",
    "on_timeout",
    "escalate_to",
    "metadata",
    "deadline_epoch",
}


def spec() -> dict[str, Any]:
    return {
        "version": "v1",
        "workflow": {
            "type": "sequential",
            "name": "storage",
            "steps": [
                {"id": "draft", "kind": "function", "ref": "examples.hitl_functions:draft"},
                {"id": "approve", "kind": "human", "ref": "reviewer"},
                {"id": "publish", "kind": "function", "ref": "examples.hitl_functions:publish"},
            ],
        },
        "components": {
            "humans": {
                "reviewer": {
                    "prompt": PROMPT,
                    "assignee": "ann",
                    "timeout_seconds": 60,
                    "on_timeout": "escalate",
                }
            }
        },
    }


@pytest.fixture()
def manager(project: Path, clock: ManualClock, backend: str | None) -> Iterator[Any]:
    """The platform on SQLite and, with ``KNEO_TEST_DATABASE_URL``, on PostgreSQL."""
    platform = make_manager(project, backend, clock=clock)
    yield platform
    platform.store.close()


@pytest.fixture(autouse=True)
def _importable(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(project))
    monkeypatch.setenv("KNEO_HITL_COUNTER", str(project / "counter.txt"))
    sys.modules.pop("examples", None)


def pause(manager: Any) -> Any:
    paused = manager.run_from_spec(input_text="launch", spec=spec())
    assert paused.status == "paused"
    return paused


def stored_texts(manager: Any, run_id: str, cid: str) -> dict[str, str]:
    """What each table holds for the run, as JSON text (checkpoints are the state's history
    and are left to the checkpoint encoding)."""
    store = manager.store
    return {
        "runs": json.dumps(store.runs.get_run(run_id).state),
        "continuations": json.dumps(store.tasks.get_continuation(cid).requests),
        "trace_events": json.dumps([e.payload for e in store.runs.list_trace(run_id).items]),
        "audit_events": json.dumps(
            [a.payload for a in store.audit.list_audit(AuditQuery(run_id=run_id)).items]
        ),
    }


def test_a_pending_request_body_is_stored_once(manager: Any) -> None:
    paused = pause(manager)
    cid = paused.continuation_id
    texts = stored_texts(manager, paused.run_id, cid)
    assert {t: s.count(PROMPT) for t, s in texts.items()} == {
        "runs": 1,
        "continuations": 0,
        "trace_events": 0,
        "audit_events": 0,
    }
    # The continuation and the event name the request; the body has no empty or derivable
    # fields (decisions from the kind, wait_key = step id, expires_at = created + timeout).
    state = manager.store.runs.get_run(paused.run_id).state
    (body,) = state["pending"]
    assert set(body) == {
        "request_id",
        "kind",
        "step_id",
        "prompt",
        "assignee",
        "context",
        "created_at",
        "timeout_seconds",
        "on_timeout",
    }
    assert body["context"] == {"input_preview": "DRAFT: launch"}
    assert manager.store.tasks.get_continuation(cid).requests == [
        {"request_id": paused.request_id, "kind": "approval", "assignee": "ann"}
    ]
    (event,) = [
        e
        for e in manager.store.runs.list_trace(paused.run_id).items
        if e.event_type == "run_paused"
    ]
    assert event.payload == {
        "continuation_id": cid,
        "requests": [{"request_id": paused.request_id, "kind": "approval"}],
    }
    audit = manager.store.audit.list_audit(
        AuditQuery(event_type="human.requested", run_id=paused.run_id)
    ).items
    assert set(audit[0].payload) == {
        "request_id",
        "kind",
        "step_id",
        "assignee",
        "expires_at",
        "environment",  # the run's labels, for notification filters and messages
        "workflow",
    }


def test_every_view_shows_the_complete_request(manager: Any, clock: ManualClock) -> None:
    paused = pause(manager)
    created = datetime.fromisoformat(
        paused.metadata["pending_human_request"]["created_at"].replace("Z", "+00:00")
    )
    expected = {
        "request_id": paused.request_id,
        "kind": "approval",
        "prompt": PROMPT,
        "assignee": "ann",
        "options": [],
        "input_schema": None,
        "decisions": ["approved", "rejected", "edited"],
        "step_id": "approve",
        "wait_key": "approve",
        "context": {"step_id": "approve", "input_preview": "DRAFT: launch"},
        "created_at": utc_iso(created),
        "expires_at": utc_iso(created + timedelta(seconds=60)),
        "timeout_seconds": 60,
        "on_timeout": "escalate",
        "escalate_to": None,
        "metadata": {},
        "deadline_epoch": int((created + timedelta(seconds=60)).timestamp()),
    }
    assert paused.metadata["pending_human_request"] == expected
    assert manager.get_run_result(paused.run_id).metadata["pending_human_request"] == expected
    listed = manager.list_human_tasks()["tasks"][0]["requests"][0]
    shown = manager.get_human_task(paused.continuation_id)["requests"][0]
    assert listed == shown == {**expected, "status": "pending"}
    event = list(manager.events(paused.run_id))[-1]
    assert event.type == "run.paused" and event.data["request_ids"] == [paused.request_id]
    assert event.data["requests"] == [{**expected, "status": "pending"}]

    # Escalation stamps the continuation entry only; original_expires_at is derived.
    clock.advance(61)
    assert manager.prune_expired_human_tasks() == 1
    (entry,) = manager.store.tasks.get_continuation(paused.continuation_id).requests
    assert set(entry) == {"request_id", "kind", "assignee", "escalated_at"}
    shown = manager.get_human_task(paused.continuation_id)["requests"][0]
    assert shown["original_expires_at"] == expected["expires_at"] and shown["escalated_at"]

    # Answered: the body moves from the state to the continuation, still stored once.
    done = manager.resume(paused.continuation_id, Decision(paused.request_id, "approved"))
    assert done.status == "succeeded"
    texts = stored_texts(manager, paused.run_id, paused.continuation_id)
    assert {t: s.count(PROMPT) for t, s in texts.items()} == {
        "runs": 0,
        "continuations": 1,
        "trace_events": 0,
        "audit_events": 0,
    }
    task = manager.get_human_task(paused.continuation_id)
    assert task["status"] == "resolved"
    assert task["requests"][0] == {
        **expected,
        "status": "resolved",
        "escalated_at": shown["escalated_at"],
        "original_expires_at": expected["expires_at"],
        "decision": "approved",
        "decided_by": None,  # no actor given
        "decided_at": utc_iso(clock.now()),
    }
    # The stream still shows what the pause asked, now from the continuation.
    paused_event = next(e for e in manager.events(paused.run_id) if e.type == "run.paused")
    assert paused_event.data["requests"][0]["prompt"] == PROMPT


def _old_layout(manager: Any, paused: Any) -> dict[str, Any]:
    """Rewrite the paused run's rows as the earlier writer stored them: the full request in
    the state, again (with ``deadline_epoch`` and ``status``) in the continuation and in the
    ``run_paused`` event, and the workflow name as continuation context."""
    store = manager.store
    run = store.runs.get_run(paused.run_id)
    cont = store.tasks.get_continuation(paused.continuation_id)
    full = complete_request(run.state["pending"][0])
    assert len(full) == 16  # every HumanRequest field
    old_entry = {
        **full,
        "deadline_epoch": int(
            datetime.fromisoformat(full["expires_at"].replace("Z", "+00:00")).timestamp()
        ),
        "status": "pending",
    }
    with store.transaction() as tx:
        tx.update_run(
            run.run_id, expected_version=run.version, state={**run.state, "pending": [full]}
        )
        tx.put_continuation(
            cont.continuation_id,
            run_id=run.run_id,
            requests=[old_entry],
            context={"workflow_name": "storage"},
            expires_at=cont.expires_at,
            workflow_kind=cont.workflow_kind,
            expected_version=cont.version,
        )
    payload = {
        "continuation_id": cont.continuation_id,
        "request_ids": [paused.request_id],
        "requests": [old_entry],
    }
    with store.engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE trace_events SET payload = :p"
                " WHERE run_id = :r AND event_type = 'run_paused'"
            ),
            {"p": json.dumps(payload), "r": run.run_id},
        )
    return old_entry


def test_rows_in_the_earlier_layout_still_read_and_resume(manager: Any, clock: ManualClock) -> None:
    fresh = pause(manager)
    new_view = fresh.metadata["pending_human_request"]
    old = pause(manager)
    old_entry = _old_layout(manager, old)
    assert manager.store.tasks.get_continuation(old.continuation_id).requests == [old_entry]

    view = manager.get_run_result(old.run_id).metadata["pending_human_request"]
    assert set(view) == set(new_view) == VIEW_FIELDS
    assert view == {k: v for k, v in old_entry.items() if k != "status"}
    tasks = {t["continuation_id"]: t for t in manager.list_human_tasks()["tasks"]}
    assert tasks[old.continuation_id]["requests"] == [old_entry]
    assert manager.get_human_task(old.continuation_id)["requests"] == [old_entry]
    event = next(e for e in manager.events(old.run_id) if e.type == "run.paused")
    assert event.data["requests"] == [old_entry]
    assert event.data["request_ids"] == [old.request_id]

    clock.advance(61)
    assert manager.prune_expired_human_tasks() == 2  # both layouts escalate
    shown = manager.get_human_task(old.continuation_id)["requests"][0]
    assert shown["original_expires_at"] == old_entry["expires_at"] and shown["escalated_at"]
    with pytest.raises(Exception, match="does not accept 'provided'"):
        manager.resume(old.continuation_id, Decision(old.request_id, "provided", content="x"))
    done = manager.resume(old.continuation_id, Decision(old.request_id, "approved"))
    assert done.status == "succeeded"
    resolved = manager.get_human_task(old.continuation_id)["requests"][0]
    assert resolved["status"] == "resolved" and resolved["prompt"] == PROMPT


NOW = datetime(2026, 11, 21, 12, 0, 0, 123456, tzinfo=UTC)


@pytest.mark.parametrize(
    "fields",
    [
        {
            "kind": "approval",
            "wait_key": "approve",
            "step_id": "approve",
            "assignee": "ann",
            "context": {"step_id": "approve", "input_preview": "x"},
            "timeout_seconds": 60,
            "on_timeout": "escalate",
        },
        {
            "kind": "route",
            "wait_key": "choose",
            "step_id": "choose",
            "options": ["a", "b"],
            "context": {"step_id": "choose", "input_preview": "x"},
        },
        {
            "kind": "confirmation",
            "wait_key": "p:confirm:1",
            "step_id": "p",
            "decisions": ["approved", "rejected"],
            "context": {"step_id": "p", "on_reject": "skip"},
        },
        {
            "kind": "input",
            "wait_key": "p:input",
            "step_id": "p",
            "decisions": ["provided"],
            "input_schema": {"type": "object", "properties": {"t": {"type": "number"}}},
            "context": {"step_id": "p", "input_preview": "x"},
        },
        {
            "kind": "question",
            "wait_key": "ask_question:1:abcd1234",
            "step_id": "agent",
            "decisions": ["provided"],
            "context": {"tool_call_id": "c1", "wait_name": "ask_question:1:abcd1234"},
            "metadata": {"wait_name": "ask_question:1:abcd1234"},
        },
        {
            "kind": "error",
            "wait_key": "f:error:1",
            "step_id": "f",
            "options": ["retry", "skip", "fail"],
            "decisions": ["selected"],
            "context": {"error": {"message": "boom"}},
        },
        # Values that differ from what the reader would derive are kept as they are.
        {
            "kind": "approval",
            "wait_key": "approve#2",
            "step_id": "approve",
            "decisions": ["approved"],
            "context": {"step_id": "elsewhere"},
        },
        {
            "kind": "tool_approval",
            "wait_key": "a:tool:c1",
            "step_id": "a",
            "decisions": ["approved"],
        },
    ],
)
def test_compact_records_restore_exactly(fields: dict[str, Any]) -> None:
    request = build_request(request_id="req_1", prompt="P?", now=NOW, **fields).to_dict()
    record = compact_request(request)
    assert complete_request(record) == request
    assert [k for k, v in record.items() if v in (None, [], {})] == []
    for key in ("options", "decisions", "wait_key", "expires_at"):
        derived = complete_request({k: v for k, v in record.items() if k != key})
        if key in record:  # kept only because the reader could not derive it
            assert derived[key] != request[key], key
    assert compact_request(record) == record  # storing a stored record changes nothing


def test_an_expiry_that_is_not_created_plus_timeout_is_kept() -> None:
    request = build_request(
        request_id="req_1",
        kind="approval",
        wait_key="a",
        step_id="a",
        prompt="P?",
        now=NOW,
        timeout_seconds=60,
    ).to_dict()
    request["expires_at"] = utc_iso(NOW + timedelta(seconds=61))
    record = compact_request(request)
    assert record["expires_at"] == request["expires_at"]
    assert complete_request(record) == request


def test_a_shape_the_reader_would_misread_is_stored_whole() -> None:
    """An approval whose context lacks the step id the engine always copies there: leaving
    fields out would make the reader add it, so the record keeps every field."""
    request = build_request(
        request_id="req_1", kind="approval", wait_key="a", step_id="a", prompt="P?", now=NOW
    ).to_dict()
    record = compact_request(request)
    assert record == request and complete_request(record) == request


def test_answering_one_request_moves_the_continuation_expiry_to_the_next(
    manager: Any, clock: ManualClock
) -> None:
    """The continuation's expires_at column (what the sweep selects by) follows the requests
    still pending: answering the earliest one moves it to the next, and the sweep then
    expires the run at that time, not before."""
    humans = {
        "r1": {"prompt": "one?", "timeout_seconds": 60},
        "r2": {"prompt": "two?", "timeout_seconds": 120},
    }
    fan = {
        "version": "v1",
        "workflow": {
            "type": "concurrent",
            "name": "fan",
            "participants": [
                {"id": "h1", "kind": "human", "ref": "r1"},
                {"id": "h2", "kind": "human", "ref": "r2"},
            ],
        },
        "components": {"humans": humans},
    }
    paused = manager.run_from_spec(input_text="go", spec=fan)
    first, second = paused.metadata["pending_human_requests"]
    cid = paused.continuation_id
    assert utc_iso(manager.store.tasks.get_continuation(cid).expires_at) == first["expires_at"]
    half = manager.resume(cid, Decision(first["request_id"], "approved"))
    assert half.status == "paused"
    assert utc_iso(manager.store.tasks.get_continuation(cid).expires_at) == second["expires_at"]
    texts = stored_texts(manager, paused.run_id, cid)
    assert (texts["runs"].count("one?"), texts["continuations"].count("one?")) == (0, 1)
    assert (texts["runs"].count("two?"), texts["continuations"].count("two?")) == (1, 0)
    clock.advance(61)
    assert manager.prune_expired_human_tasks() == 0
    clock.advance(60)
    assert manager.prune_expired_human_tasks() == 1
    assert manager.store.runs.get_run(paused.run_id).status == "expired"


def test_a_secret_in_a_request_stays_in_the_state_only(manager: Any) -> None:
    """The state keeps the body as the run resumes from it; every view redacts it, the trace
    and audit never hold it, and the body an answer moves to the continuation is redacted."""
    secret = "sk-plantedsecret1234567890"
    paused = manager.run_from_spec(input_text=f"launch {secret}", spec=spec())
    cid = paused.continuation_id
    texts = stored_texts(manager, paused.run_id, cid)
    assert {t: secret in s for t, s in texts.items()} == {
        "runs": True,
        "continuations": False,
        "trace_events": False,
        "audit_events": False,
    }
    views = [
        paused.to_dict(),
        manager.get_run_result(paused.run_id).to_dict(),
        manager.list_human_tasks(),
        manager.get_human_task(cid),
        [e.to_dict() for e in manager.events(paused.run_id)],
    ]
    assert secret not in json.dumps(views)
    assert "[REDACTED]" in json.dumps(manager.get_human_task(cid))
    manager.resume(cid, Decision(paused.request_id, "approved"))
    texts = stored_texts(manager, paused.run_id, cid)
    assert not any(secret in s for t, s in texts.items() if t != "runs")
    assert manager.store.tasks.get_continuation(cid).requests[0]["prompt"] == PROMPT
