"""Every pause kind declared in Python with ``WorkflowBuilder``: the built workflow is a
``Spec`` run durably by ``PlatformManager.run_from_spec`` (the YAML path), pauses with the
right request kind, and resumes to the end state ``docs/human_in_the_loop.md`` documents."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from examples.hitl_functions import draft, fragile, process, publish, send_email, summarize
from kneo import Decision
from kneo.engine import HumanInterventionRequiredError, WorkflowBuilder
from kneo.errors import InvalidDecision, InvalidRequest, SpecError, ValidationFailed
from kneo.spec.loader import load_spec
from kneo.store import AuditQuery, TaskQuery
from tests.hitl.conftest import REPO, counter

WB = WorkflowBuilder


@pytest.fixture(autouse=True)
def _counter(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KNEO_HITL_COUNTER", str(project / "counter.txt"))


def paused(result: Any, kind: str) -> dict[str, Any]:
    """The single pending request of a paused result, checked to be of ``kind``."""
    assert result.status == "paused", result
    request = result.metadata["pending_human_request"]
    assert request["kind"] == kind
    assert {"request_id", "prompt", "created_at", "expires_at", "decisions"} <= set(request)
    return request


def answer(manager: Any, result: Any, decision: str, **kw: Any) -> Any:
    return manager.resume(result.continuation_id, Decision(result.request_id, decision, **kw))


def test_approval(manager: Any, project: Path) -> None:
    wf = WB.sequential(
        [draft, WB.human_step("approve", "Approve the draft?", assignee="reviewer"), publish],
        name="py-approval",
    )
    first = manager.run_from_spec(input_text="launch", spec=wf.to_spec())
    assert paused(first, "approval")["assignee"] == "reviewer"
    done = answer(manager, first, "approved")
    assert done.status == "succeeded" and done.output_text.startswith("Published. https://")
    assert counter(project) == ["publish"]


def test_confirmation_reject_skips(manager: Any, project: Path) -> None:
    wf = WB.sequential(
        [
            draft,
            WB.function_step(
                "publish", publish, human_review=WB.confirmation("Publish the draft now?")
            ),
        ]
    )
    first = manager.run_from_spec(input_text="launch", spec=wf.to_spec())
    request = paused(first, "confirmation")
    assert request["prompt"] == "Publish the draft now?"
    assert request["decisions"] == ["approved", "rejected"]
    done = answer(manager, first, "rejected")
    assert (done.status, done.output_text) == ("succeeded", "DRAFT: launch")
    assert counter(project) == []  # skipped: publish never ran


def test_confirmation_on_reject_cancel(manager: Any) -> None:
    wf = WB.sequential(
        [WB.function_step("publish", publish, human_review=WB.confirmation(on_reject="cancel"))]
    )
    first = manager.run_from_spec(input_text="launch", spec=wf.to_spec())
    assert answer(manager, first, "rejected").status == "cancelled"


def test_typed_input(manager: Any) -> None:
    gate = WB.typed_input(
        [
            {"name": "threshold", "type": "number"},
            {"name": "mode", "required": False, "enum": ["strict", "lenient"]},
        ],
        message="Parameters for processing",
    )
    wf = WB.sequential([WB.function_step("process", process, human_review=gate)])
    first = manager.run_from_spec(input_text="launch", spec=wf.to_spec())
    request = paused(first, "input")
    assert request["input_schema"]["required"] == ["threshold"]
    with pytest.raises(ValidationFailed) as bad:
        answer(manager, first, "provided", content='{"mode": "strict"}')
    assert bad.value.details["path"] == "threshold"
    assert manager.list_human_tasks(TaskQuery(run_id=first.run_id))["total"] == 1  # still pending
    done = answer(manager, first, "provided", content='{"threshold": 0.8, "mode": "strict"}')
    assert done.output_text == 'Processed \'launch\' with {"mode": "strict", "threshold": 0.8}'


def test_output_review_reject_reruns_with_feedback(manager: Any) -> None:
    gate = WB.output_review("Is this summary good enough?", max_reviews=2)
    wf = WB.sequential([WB.function_step("summarize", summarize, human_review=gate)])
    first = manager.run_from_spec(input_text="launch", spec=wf.to_spec())
    assert paused(first, "review")["context"]["output_preview"] == "SUMMARY of 'launch'"
    second = answer(manager, first, "rejected", content="mention the date")
    assert paused(second, "review")["context"]["round"] == 2
    done = answer(manager, second, "approved")
    assert done.output_text == "SUMMARY of 'launch' (revised: mention the date)"


def test_route_selection_in_a_graph(manager: Any, project: Path) -> None:
    wf = WB.graph(
        [
            draft,
            WB.route_step(
                "choose", "Which path should this draft take?", ["fast_track", "full_review"]
            ),
            WB.function_step("fast_track", publish),
            WB.function_step("full_review", summarize),
        ],
        [
            ("draft", "choose"),
            ("choose", "fast_track", "fast_track"),
            ("choose", "full_review", "full_review"),
        ],
        name="hitl-route",
    )
    first = manager.run_from_spec(input_text="launch", spec=wf.to_spec())
    assert paused(first, "route")["options"] == ["fast_track", "full_review"]
    with pytest.raises(InvalidDecision):
        answer(manager, first, "approved")  # a route accepts only `selected`
    with pytest.raises(InvalidDecision):
        answer(manager, first, "selected", selected_option="nowhere")
    done = answer(manager, first, "selected", selected_option="full_review")
    assert done.output_text == "SUMMARY of 'DRAFT: launch'" and counter(project) == []


def test_route_spec_is_the_yaml_example() -> None:
    """Same spec, same compiled workflow: the builder has no execution path of its own."""
    wf = WB.graph(
        [
            WB.function_step("draft", draft),
            WB.route_step(
                "choose", "Which path should this draft take?", ["fast_track", "full_review"]
            ),
            WB.function_step("fast_track", publish),
            WB.function_step("full_review", summarize),
        ],
        [
            ("draft", "choose"),
            ("choose", "fast_track", "fast_track"),
            ("choose", "full_review", "full_review"),
        ],
        name="hitl-route",
    )
    built, yaml = wf.to_spec(), load_spec(REPO / "examples" / "hitl_route.yaml").spec
    expected = yaml.workflow.model_dump()
    expected["nodes"][1]["ref"] = "choose"  # the builder names a step's human component after it
    assert built.workflow.model_dump() == expected
    assert built.components.humans["choose"] == yaml.components.humans["router"]


def mailer(**kw: Any) -> Any:
    tool = WB.tool(
        send_email,
        parameters={
            "type": "object",
            "properties": {"to": {"type": "string"}, "subject": {"type": "string"}},
            "required": ["to", "subject"],
            "additionalProperties": False,
        },
    )
    script = [
        {
            "tool_calls": [
                {
                    "name": "send_email",
                    "arguments": {"to": "team@example.com", "subject": "{input}"},
                }
            ]
        },
        {"text": "Done: {last_tool_result}"},
    ]
    return WB.agent_step(
        "mail",
        system_prompt="You send e-mails.",
        tools=[tool],
        model={"provider": "dummy", "script": script},
        **kw,
    )


def test_tool_call_approval(manager: Any, project: Path) -> None:
    wf = WB.sequential([mailer(approval_required=["send_email"])])
    first = manager.run_from_spec(input_text="launch", spec=wf.to_spec())
    request = paused(first, "tool_approval")
    assert request["context"]["tool_name"] == "send_email"
    assert counter(project) == []
    done = answer(manager, first, "approved")
    assert done.output_text == "Done: sent to team@example.com: launch"
    assert counter(project) == ["send_email"]  # exactly once


def test_tool_call_edit_and_requires_approval(manager: Any, project: Path) -> None:
    step = mailer()
    tool = step.tools[0]
    step = WB.agent_step(
        "mail",
        system_prompt="",
        model=step.agent.model,
        tools=[WB.tool(tool.fn, parameters=tool.parameters, requires_approval=True)],
    )
    first = manager.run_from_spec(input_text="launch", spec=WB.sequential([step]).to_spec())
    paused(first, "tool_approval")
    done = answer(manager, first, "edited", content='{"to": "ops@example.com", "subject": "Hi"}')
    assert done.output_text == "Done: sent to ops@example.com: Hi"


def test_ask_question(manager: Any) -> None:
    question = "What suffix should I add before publishing?"
    script = [
        {"tool_calls": [{"name": "ask_question", "arguments": {"question": question}}]},
        {"text": "Published: {input} {last_tool_result}"},
    ]
    wf = WB.sequential(
        [
            WB.agent_step(
                "publish", tools=["ask_question"], model={"provider": "dummy", "script": script}
            )
        ]
    )
    first = manager.run_from_spec(input_text="launch", spec=wf.to_spec())
    request = paused(first, "question")
    assert request["prompt"] == question and request["wait_key"].startswith("ask_question:1:")
    done = answer(manager, first, "provided", content="Verified by ops on call")
    assert done.output_text == "Published: launch Verified by ops on call"
    replay = manager.replay_run(first.run_id)
    assert (replay.status, replay.output_text) == ("succeeded", done.output_text)


def test_pause_on_error(manager: Any, project: Path) -> None:
    wf = WB.sequential([WB.function_step("fetch", fragile, on_error="pause"), publish])
    first = manager.run_from_spec(input_text="launch", spec=wf.to_spec())
    request = paused(first, "error")
    assert request["options"] == ["retry", "skip", "fail"]
    done = answer(manager, first, "selected", selected_option="retry")
    assert done.status == "succeeded" and counter(project) == ["publish"]


def test_concurrent_branches_pause_together(manager: Any) -> None:
    wf = WB.concurrent([WB.human_step("legal", "Legal OK?"), WB.human_step("brand", "Brand OK?")])
    first = manager.run_from_spec(input_text="launch", spec=wf.to_spec())
    requests = first.metadata["pending_human_requests"]
    assert sorted(r["step_id"] for r in requests) == ["brand", "legal"]
    still = manager.resume(first.continuation_id, Decision(requests[0]["request_id"], "approved"))
    assert still.status == "paused"
    done = manager.resume(first.continuation_id, Decision(requests[1]["request_id"], "approved"))
    assert done.status == "succeeded"


def test_in_process_gates_use_the_same_engine() -> None:
    wf = WB.sequential(
        [draft, WB.function_step("summarize", summarize, human_review=WB.output_review())]
    )
    with pytest.raises(HumanInterventionRequiredError) as first:
        wf.run("launch")
    assert first.value.request.request.kind == "review"
    with pytest.raises(HumanInterventionRequiredError) as second:
        wf.resume(first.value, "rejected", content="shorter")
    assert wf.resume(second.value, "approved") == "SUMMARY of 'DRAFT: launch' (revised: shorter)"


def test_in_process_runs_compile_once_and_keep_bounded_history() -> None:
    def shout(text: str) -> str:
        return text.upper()

    wf = WB.sequential([shout, WB.function_step("again", shout)])
    wf.journal.keep = 10
    compiled = wf._compiled()
    for i in range(40):
        assert wf.run(f"run {i}") == f"RUN {i}"
    assert wf._compiled() is compiled  # 40 runs, one compile
    assert len(wf.journal.boundaries) <= 20 and len(wf.journal.events) <= 20
    assert "RUN 39" in str(wf.journal.boundaries[-1].state)  # the newest are the ones kept
    wf.steps.append(WB.function_step("third", shout))
    assert wf._compiled() is not compiled  # a changed definition compiles again
    assert wf.run("x") == "X"


def test_to_spec_refuses_what_another_process_cannot_run() -> None:
    with pytest.raises(InvalidRequest, match="not importable"):
        WB.sequential([lambda text: text]).to_spec()
    with pytest.raises(InvalidRequest, match="in-process only"):
        WB.sequential([WB.human_step("h", "ok?", resolver=lambda r: "yes")]).to_spec()
    with pytest.raises(InvalidRequest, match="agent steps"):
        WB.sequential([mailer()]).run("launch")


def test_route_to_an_unknown_node_is_refused_before_the_run(manager: Any) -> None:
    wf = WB.graph(
        [
            draft,
            WB.route_step("choose", "Where?", ["fast_track", "nowhere"]),
            WB.function_step("fast_track", publish),
        ],
        [("draft", "choose"), ("choose", "fast_track")],
    )
    with pytest.raises(SpecError) as refused:
        manager.run_from_spec(input_text="launch", spec=wf.to_spec())
    assert "E_ROUTE_OPTION_UNKNOWN" in str(refused.value.to_dict())
    assert manager.list_runs()["total"] == 0


def test_ask_question_in_concurrent_branches_is_named_per_branch(manager: Any) -> None:
    question = "Which region?"
    script = [
        {"tool_calls": [{"name": "ask_question", "arguments": {"question": question}}]},
        {"text": "{input} -> {last_tool_result}"},
    ]
    wf = WB.concurrent(
        [
            WB.agent_step(
                name, tools=["ask_question"], model={"provider": "dummy", "script": script}
            )
            for name in ("legal", "brand")
        ]
    )
    first = manager.run_from_spec(input_text="launch", spec=wf.to_spec())
    requests = {r["step_id"]: r for r in first.metadata["pending_human_requests"]}
    digest = requests["legal"]["wait_key"].rsplit(":", 1)[1]
    assert requests["legal"]["wait_key"] == f"ask_question:branch:legal:1:{digest}"
    assert requests["brand"]["wait_key"] == f"ask_question:branch:brand:1:{digest}"
    for step, region in (("legal", "EU"), ("brand", "US")):
        result = manager.resume(
            first.continuation_id,
            Decision(requests[step]["request_id"], "provided", content=region),
        )
    assert result.status == "succeeded"
    assert "launch -> EU" in result.output_text and "launch -> US" in result.output_text
    replay = manager.replay_run(first.run_id)
    assert (replay.status, replay.output_text) == ("succeeded", result.output_text)


def _audit(manager: Any, run_id: str) -> set[str]:
    return {a.event_type for a in manager.store.audit.list_audit(AuditQuery(run_id=run_id)).items}


def test_timeout_continue_on_an_input_request_fails_the_run(manager: Any, clock: Any) -> None:
    """``continue`` synthesizes ``approved``, which an input request does not accept."""
    gate = WB.typed_input(
        [{"name": "threshold", "type": "number"}], timeout_seconds=60, on_timeout="continue"
    )
    wf = WB.sequential([WB.function_step("process", process, human_review=gate)])
    first = manager.run_from_spec(input_text="launch", spec=wf.to_spec())
    clock.advance(61)
    assert manager.prune_expired_human_tasks() == 1
    assert manager.store.runs.get_run(first.run_id).status == "failed"
    assert "human.continue_failed" in _audit(manager, first.run_id)
    assert manager.list_human_tasks(TaskQuery(run_id=first.run_id))["total"] == 0


def test_timeout_continue_then_a_failing_step_is_an_ordinary_failure(
    manager: Any, clock: Any
) -> None:
    wf = WB.sequential(
        [WB.human_step("approve", "OK?", timeout_seconds=60, on_timeout="continue"), fragile]
    )
    first = manager.run_from_spec(input_text="launch", spec=wf.to_spec())
    clock.advance(61)
    assert manager.prune_expired_human_tasks() == 1
    run = manager.store.runs.get_run(first.run_id)
    assert run.status == "failed" and "upstream service unavailable" in str(run.error)
    events = _audit(manager, first.run_id)
    assert "human.continued" in events and "human.continue_failed" not in events
