"""Timeouts (every ``on_timeout`` branch, the run deadline, whichever fires first), decision
validation, idempotent resume, the event stream and the guard-before-approval rule.
Time is a ManualClock; nothing sleeps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kneo import Decision
from kneo.clock import ManualClock
from kneo.errors import IdempotencyConflict, InvalidDecision, KneoError
from kneo.store import AuditQuery, TaskQuery
from tests.hitl.conftest import counter


def spec(
    on_timeout: str, *, decisions: list[str] | None = None, escalate_to: str | None = None
) -> dict[str, Any]:
    human: dict[str, Any] = {
        "prompt": "Approve?",
        "assignee": "ann",
        "timeout_seconds": 60,
        "on_timeout": on_timeout,
    }
    if decisions:
        human["decisions"] = decisions
    if escalate_to:
        human["escalate_to"] = escalate_to
    return {
        "version": "v1",
        "workflow": {
            "type": "sequential",
            "name": "t",
            "steps": [
                {"id": "draft", "kind": "function", "ref": "examples.hitl_functions:draft"},
                {"id": "approve", "kind": "human", "ref": "reviewer"},
                {"id": "publish", "kind": "function", "ref": "examples.hitl_functions:publish"},
            ],
        },
        "components": {"humans": {"reviewer": human}},
    }


def start(manager: Any, project: Path, on_timeout: str, **kw: Any) -> Any:
    import sys

    if str(project) not in sys.path:
        sys.path.insert(0, str(project))
    return manager.run_from_spec(input_text="launch", spec=spec(on_timeout, **kw))


def audit(manager: Any, run_id: str) -> dict[str, dict[str, Any]]:
    return {
        a.event_type: a.payload
        for a in manager.store.audit.list_audit(AuditQuery(run_id=run_id)).items
    }


@pytest.fixture(autouse=True)
def _counter(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KNEO_HITL_COUNTER", str(project / "counter.txt"))


def test_fail_expires_the_run(manager: Any, project: Path, clock: ManualClock) -> None:
    paused = start(manager, project, "fail")
    assert manager.prune_expired_human_tasks() == 0  # not yet due
    clock.advance(61)
    assert manager.prune_expired_human_tasks() == 1
    run = manager.store.runs.get_run(paused.run_id)
    assert run.status == "expired" and run.error["type"] == "human_task_expired"
    event = audit(manager, paused.run_id)["human.expired"]
    assert {
        "run_id",
        "continuation_id",
        "timeout_seconds",
        "expires_at",
        "expired_at",
        "on_timeout",
    } <= set(event) and event["on_timeout"] == "fail"
    assert manager.list_human_tasks()["total"] == 0
    assert manager.prune_expired_human_tasks() == 0  # idempotent


def test_continue_synthesizes_an_approval(manager: Any, project: Path, clock: ManualClock) -> None:
    paused = start(manager, project, "continue")
    clock.advance(61)
    assert manager.prune_expired_human_tasks() == 1
    run = manager.store.runs.get_run(paused.run_id)
    assert run.status == "succeeded" and counter(project) == ["publish"]
    decision = run.state["decisions"]["approve"]
    assert decision["decision"] == "approved"
    assert decision["metadata"] == {
        "auto_continued": True,
        "reason": "timeout",
        "original_assignee": "ann",
    }
    assert "human.continued" in audit(manager, paused.run_id)


def test_continue_failure_is_recorded_and_dropped(
    manager: Any, project: Path, clock: ManualClock
) -> None:
    paused = start(manager, project, "continue", decisions=["rejected", "edited"])
    clock.advance(61)
    assert manager.prune_expired_human_tasks() == 1
    events = audit(manager, paused.run_id)
    assert events["human.continue_failed"]["error_type"] == "InvalidDecision"
    assert manager.list_human_tasks()["total"] == 0
    assert manager.store.runs.get_run(paused.run_id).status == "failed"
    assert manager.prune_expired_human_tasks() == 0


def test_reject_synthesizes_a_rejection(manager: Any, project: Path, clock: ManualClock) -> None:
    paused = start(manager, project, "reject")
    clock.advance(61)
    assert manager.prune_expired_human_tasks() == 1
    run = manager.store.runs.get_run(paused.run_id)
    assert run.status == "failed" and run.error["code"] == "human_rejected"
    assert counter(project) == []


def test_escalate_fires_once_and_the_task_stays(
    manager: Any, project: Path, clock: ManualClock
) -> None:
    paused = start(manager, project, "escalate")
    clock.advance(61)
    assert manager.prune_expired_human_tasks() == 1
    clock.advance(3600)
    assert manager.prune_expired_human_tasks() == 0  # later sweeps skip it
    task = manager.get_human_task(paused.continuation_id)
    request = task["requests"][0]
    assert task["escalated_at"] and request["escalated_at"]
    assert request["original_expires_at"] == request["expires_at"]
    assert manager.store.audit.list_audit(AuditQuery(event_type="human.escalated")).total == 1
    assert audit(manager, paused.run_id)["human.escalated"]["assignee"] == "ann"
    assert manager.list_human_tasks(TaskQuery(escalated=True))["total"] == 1
    done = manager.resume(paused.continuation_id, Decision(paused.request_id, "approved"))
    assert done.status == "succeeded"


def test_escalate_to_hands_the_task_to_a_group(
    manager: Any, project: Path, clock: ManualClock
) -> None:
    """``escalate_to: group:...``: the expired request moves from its assignee to the
    group, whose people now find it under "Mine" (the assignee filter with their groups),
    and the audit says from whom to whom."""
    paused = start(manager, project, "escalate", escalate_to="group:release-managers")
    mine = ("user:bob@example.com", "group:release-managers")
    assert manager.list_human_tasks(TaskQuery(assignee=mine))["tasks"] == []
    clock.advance(61)
    assert manager.prune_expired_human_tasks() == 1
    request = manager.get_human_task(paused.continuation_id)["requests"][0]
    assert request["assignee"] == "group:release-managers"
    assert request["escalated_from"] == "ann" and request["escalated_at"]
    found = manager.list_human_tasks(TaskQuery(assignee=mine))["tasks"]
    assert [t["continuation_id"] for t in found] == [paused.continuation_id]
    assert manager.list_human_tasks(TaskQuery(assignee="ann"))["tasks"] == []
    escalated = audit(manager, paused.run_id)["human.escalated"]
    assert (escalated["assignee"], escalated["escalated_to"]) == (
        "ann",
        "group:release-managers",
    )
    done = manager.resume(paused.continuation_id, Decision(paused.request_id, "approved"))
    assert done.status == "succeeded"


def test_escalate_to_needs_on_timeout_escalate(manager: Any, project: Path) -> None:
    with pytest.raises(KneoError) as info:
        start(manager, project, "fail", escalate_to="group:release-managers")
    assert "escalate_to needs on_timeout: escalate" in str(info.value)


def test_run_deadline_times_out_a_paused_run(
    manager: Any, project: Path, clock: ManualClock
) -> None:
    queued = manager.start_run_from_spec(input_text="x", spec=spec("fail"), timeout_seconds=30)
    import sys

    sys.path.insert(0, str(project))
    paused = manager.execute_run(queued.run_id)
    assert paused.status == "paused"
    assert manager.get_run(paused.run_id)["deadline_at"]
    clock.advance(31)  # the run deadline (30 s) fires before the human timeout (60 s)
    assert manager.prune_timed_out_runs() == 1
    run = manager.store.runs.get_run(paused.run_id)
    assert run.status == "timed_out"
    assert audit(manager, paused.run_id)["run.timed_out"]["previous_status"] == "paused"
    assert manager.list_human_tasks()["total"] == 0
    clock.advance(60)
    assert manager.prune_expired_human_tasks() == 0  # preempted: the run is not paused
    assert manager.prune_timed_out_runs() == 0


def test_human_timeout_first_makes_the_deadline_irrelevant(
    manager: Any, project: Path, clock: ManualClock
) -> None:
    import sys

    sys.path.insert(0, str(project))
    queued = manager.start_run_from_spec(input_text="x", spec=spec("fail"), timeout_seconds=120)
    paused = manager.execute_run(queued.run_id)
    clock.advance(61)
    assert manager.prune_expired_human_tasks() == 1
    clock.advance(120)
    assert manager.prune_timed_out_runs() == 0
    assert manager.store.runs.get_run(paused.run_id).status == "expired"


def test_invalid_input_is_422_with_the_field_and_stays_pending(manager: Any, project: Path) -> None:
    paused = manager.run_from_spec(
        input_text="x", spec_path=project / "examples" / "hitl_input.yaml"
    )
    before = manager.store.runs.get_run(paused.run_id).version
    for content, path in (
        ('{"mode": "strict"}', "threshold"),
        ('{"threshold": "high"}', "threshold"),
        ('{"threshold": 1, "mode": "loose"}', "mode"),
    ):
        with pytest.raises(KneoError) as info:
            manager.resume(
                paused.continuation_id, Decision(paused.request_id, "provided", content=content)
            )
        assert (info.value.code, info.value.http_status) == ("invalid_human_input", 422)
        assert info.value.details["path"] == path
    with pytest.raises(InvalidDecision):
        manager.resume(paused.continuation_id, Decision(paused.request_id, "approved"))
    assert manager.store.runs.get_run(paused.run_id).version == before
    assert manager.get_human_task(paused.continuation_id)["status"] == "pending"


def test_idempotent_resume_replays_and_refuses_a_different_body(
    manager: Any, project: Path
) -> None:
    paused = manager.run_from_spec(
        input_text="x", spec_path=project / "examples" / "hitl_approval.yaml"
    )
    first = manager.resume(
        paused.continuation_id,
        Decision(paused.request_id, "approved"),
        actor="ann",
        idempotency_key="k1",
    )
    again = manager.resume(
        paused.continuation_id,
        Decision(paused.request_id, "approved"),
        actor="ann",
        idempotency_key="k1",
    )
    assert again.replayed and again.to_dict() == first.to_dict()
    with pytest.raises(IdempotencyConflict):
        manager.resume(
            paused.continuation_id,
            Decision(paused.request_id, "rejected"),
            actor="ann",
            idempotency_key="k1",
        )
    assert counter(project) == ["publish"]


def test_policy_denied_tool_is_never_put_to_a_person(manager: Any, project: Path) -> None:
    import yaml

    data = yaml.safe_load((project / "examples" / "hitl_tool_approval.yaml").read_text())
    data["agent"]["policies"] = {"tool": {"deny": ["send_email"]}}
    result = manager.run_from_spec(input_text="x", spec=data)
    assert result.status == "succeeded" and "denied by policy" in result.output_text
    assert manager.list_human_tasks()["total"] == 0 and counter(project) == []


def test_review_reject_reruns_with_feedback_then_edit(manager: Any, project: Path) -> None:
    paused = manager.run_from_spec(
        input_text="x", spec_path=project / "examples" / "hitl_review.yaml"
    )
    again = manager.resume(
        paused.continuation_id, Decision(paused.request_id, "rejected", content="mention the date")
    )
    assert again.status == "paused"
    assert (
        "revised: mention the date"
        in again.metadata["pending_human_request"]["context"]["output_preview"]
    )
    done = manager.resume(again.continuation_id, Decision(again.request_id, "approved"))
    assert done.output_text == "SUMMARY of 'x' (revised: mention the date)"


def test_event_stream(manager: Any, project: Path) -> None:
    paused = manager.run_from_spec(
        input_text="x", spec_path=project / "examples" / "hitl_approval.yaml"
    )
    kinds = [e.type for e in manager.events(paused.run_id)]
    assert kinds == ["run.started", "step.started", "step.completed", "step.started", "run.paused"]
    pause = list(manager.events(paused.run_id))[-1]
    assert pause.data["requests"][0]["request_id"] == paused.request_id
    manager.resume(paused.continuation_id, Decision(paused.request_id, "approved"))
    after = [e.type for e in manager.events(paused.run_id, after=pause.sequence, follow=True)]
    assert after[:2] == ["human.decision", "run.resumed"] and after[-1] == "run.finished"
