"""The last HITL levels, in YAML and Python, durable like the others: loop-iteration review,
tool-argument input, external execution; and an inline resolver's string in the conversation.

(Each YAML example also pauses, is listed and resumes across processes in
``test_cross_process.py``.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from examples.hitl_functions import draft, improve, publish, send_email
from kneo.engine import WorkflowBuilder
from kneo.errors import InvalidDecision, SpecError, ValidationFailed
from kneo.spec.loader import load_spec
from kneo.spec.models import ToolPolicy
from tests.hitl.conftest import REPO, counter
from tests.hitl.test_builder import answer, paused

WB = WorkflowBuilder


@pytest.fixture(autouse=True)
def _counter(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KNEO_HITL_COUNTER", str(project / "counter.txt"))


def pending(result: Any, kind: str) -> dict[str, Any]:
    request = paused(result, kind)
    assert result.request_id == request["request_id"]  # the top-level request_id too
    return request


def example(project: Path, name: str) -> str:
    return str(project / "examples" / name)


# --------------------------------------------------------------------------- loop iterations


def test_iteration_review_continue_edit_and_stop(manager: Any, project: Path) -> None:
    path = example(project, "hitl_iteration.yaml")
    first = manager.run_from_spec(input_text="launch", spec_path=path)
    request = pending(first, "iteration")
    assert request["context"]["iteration"] == 1
    assert request["context"]["output_preview"] == "DRAFT: launch [rev 1]"
    assert request["decisions"] == ["approved", "edited", "rejected"]
    second = answer(manager, first, "approved")  # another iteration
    assert pending(second, "iteration")["context"]["output_preview"] == "DRAFT: launch [rev 2]"
    done = answer(manager, second, "edited", content="FINAL: the launch note")
    assert done.status == "succeeded" and done.output_text.startswith("Published.")
    assert counter(project) == ["publish"]
    assert manager.get_run(done.run_id)["visited_nodes"] == [
        "draft",
        "improve",
        "improve",
        "publish",
    ]
    # rejected stops the loop: on_stop goes on to publish at once
    stopped = answer(manager, manager.run_from_spec(input_text="x", spec_path=path), "rejected")
    assert stopped.status == "succeeded" and counter(project) == ["publish", "publish"]


def test_iteration_review_in_python_without_on_stop_ends_the_run(manager: Any) -> None:
    wf = WB.graph(
        [draft, WB.function_step("improve", improve, human_review=WB.iteration_review())],
        [("draft", "improve"), ("improve", "improve")],
        max_visits=3,
    )
    first = manager.run_from_spec(input_text="launch", spec=wf.to_spec())
    again = answer(manager, first, "approved")
    done = answer(manager, again, "rejected")
    assert (done.status, done.output_text) == ("succeeded", "DRAFT: launch [rev 2]")


def test_iteration_review_spec_is_the_yaml_example() -> None:
    wf = WB.graph(
        [
            WB.function_step("draft", draft),
            WB.function_step(
                "improve",
                improve,
                human_review=WB.iteration_review("Keep improving this draft?", on_stop="publish"),
            ),
            WB.function_step("publish", publish),
        ],
        [
            ("draft", "improve"),
            {"from": "improve", "to": "publish", "condition": {"contains": "FINAL"}},
            {"from": "improve", "to": "improve", "default": True},
        ],
        name="hitl-iteration",
    )
    yaml = load_spec(REPO / "examples" / "hitl_iteration.yaml").spec
    assert wf.to_spec().workflow.model_dump() == yaml.workflow.model_dump()


def test_on_stop_must_name_a_node(manager: Any) -> None:
    wf = WB.graph(
        [
            draft,
            WB.function_step("improve", improve, human_review=WB.iteration_review(on_stop="x")),
        ],
        [("draft", "improve")],
    )
    with pytest.raises(SpecError) as info:
        manager.run_from_spec(input_text="launch", spec=wf.to_spec())
    assert info.value.code == "E_UNKNOWN_REF"
    assert info.value.details["path"] == "workflow.nodes[1].human_review.on_stop"


# --------------------------------------------------------------------------- tool arguments


def test_tool_input_asks_validates_and_runs_once(manager: Any, project: Path) -> None:
    first = manager.run_from_spec(
        input_text="launch", spec_path=example(project, "hitl_tool_input.yaml")
    )
    request = pending(first, "tool_input")
    assert request["context"]["fields"] == ["to"]
    assert request["context"]["arguments"] == {"subject": "launch"}  # the model's proposal
    assert request["input_schema"]["required"] == ["to"]
    with pytest.raises(ValidationFailed) as bad:
        answer(manager, first, "provided", content='{"to": "x"}')  # minLength 3
    assert bad.value.details["path"] == "to"
    with pytest.raises(ValidationFailed):
        answer(manager, first, "provided", content='{"to": "ops-team", "bcc": "all"}')
    with pytest.raises(InvalidDecision):
        answer(manager, first, "approved")
    assert counter(project) == []  # nothing ran while the request was pending
    done = answer(manager, first, "provided", content='{"to": "ops-team"}')
    assert done.output_text == "Done: sent to ops-team: launch"
    assert counter(project) == ["send_email"]


def test_tool_input_in_python_flags_a_given_argument_and_respects_policy(manager: Any) -> None:
    email = WB.tool(
        send_email,
        parameters={
            "type": "object",
            "properties": {"to": {"type": "string"}, "subject": {"type": "string"}},
            "required": ["to", "subject"],
        },
    )
    script = [
        {"tool_calls": [{"name": "send_email", "arguments": {"to": "model-pick"}}]},
        {"text": "{last_tool_result}"},
    ]
    step = WB.agent_step(
        "mail",
        tools=[email],
        tool_input={"send_email": []},  # only what the model left out: subject
        model={"provider": "dummy", "script": script},
    )
    first = manager.run_from_spec(input_text="launch", spec=WB.sequential([step]).to_spec())
    assert pending(first, "tool_input")["context"]["fields"] == ["subject"]
    done = answer(manager, first, "provided", content='{"subject": "from a person"}')
    assert done.output_text == "sent to model-pick: from a person"
    denied = WB.sequential([step]).to_spec()
    denied.components.agents["mail"].policies.tool = ToolPolicy(deny=["send_email"])
    refused = manager.run_from_spec(input_text="launch", spec=denied)
    assert refused.status == "succeeded" and "denied by policy" in refused.output_text


# --------------------------------------------------------------------------- external execution


def test_external_tool_result_is_validated_then_continues(manager: Any, project: Path) -> None:
    path = example(project, "hitl_external.yaml")
    first = manager.run_from_spec(input_text="launch", spec_path=path)
    request = pending(first, "external_tool")
    assert request["context"]["tool_name"] == "create_ticket"
    assert request["context"]["arguments"] == {"title": "launch", "priority": "high"}
    assert request["decisions"] == ["provided", "rejected"]
    with pytest.raises(ValidationFailed) as bad:
        answer(manager, first, "provided", content='{"ticket": "lowercase-1"}')
    assert bad.value.details["path"] == "ticket"
    done = answer(manager, first, "provided", content='{"ticket": "OPS-42"}')
    assert done.output_text == 'Filed: {"ticket": "OPS-42"}'
    events = manager.trace(done.run_id)["events"]
    completed = [e for e in events if e["event_type"] == "tool_call_completed"]
    assert completed[0]["payload"]["external"] is True
    assert completed[0]["payload"]["result"] == "[REDACTED]"
    declined = answer(
        manager,
        manager.run_from_spec(input_text="x", spec_path=path),
        "rejected",
        content="tracker down",
    )
    assert declined.output_text == (
        "Filed: The caller declined to run tool 'create_ticket': tracker down"
    )


def test_external_tool_in_python(manager: Any) -> None:
    ticket = WB.external_tool(
        "create_ticket",
        parameters={"type": "object", "properties": {"title": {"type": "string"}}},
        result_schema={"type": "string", "minLength": 2},
    )
    script = [
        {"tool_calls": [{"name": "create_ticket", "arguments": {"title": "{input}"}}]},
        {"text": "ticket {last_tool_result}"},
    ]
    wf = WB.sequential(
        [WB.agent_step("triage", tools=[ticket], model={"provider": "dummy", "script": script})]
    )
    spec = wf.to_spec()
    assert spec.components.tools["create_ticket"].external
    assert spec.components.tools["create_ticket"].implementation is None
    first = manager.run_from_spec(input_text="launch", spec=spec)
    assert pending(first, "external_tool")["input_schema"] == {"type": "string", "minLength": 2}
    assert answer(manager, first, "provided", content="T-1").output_text == "ticket T-1"


# --------------------------------------------------------------------------- SDK resolver


def test_resolver_string_joins_the_conversation() -> None:
    """SDK guide: the resolver's string is appended as a human message; the next step
    receives it after the earlier output."""
    seen: list[str] = []

    def publish_step(text: str) -> str:
        seen.append(text)
        return "published"

    review = WB.human_step(
        "approval", "Approve this draft?", resolver=lambda r: "Approved by Alice"
    )
    wf = WB.sequential([draft, review, publish_step], name="release-workflow")
    assert wf.run("launch") == "published"
    assert seen == ["DRAFT: launch\n\nApproved by Alice"]


def test_tool_input_names_a_registered_tool(manager: Any) -> None:
    step = WB.agent_step("mail", tools=[], tool_input={"nope": ["x"]})
    with pytest.raises(SpecError) as info:
        manager.run_from_spec(input_text="x", spec=WB.sequential([step]).to_spec())
    assert info.value.code == "E_UNKNOWN_TOOL"
    assert json.dumps(info.value.details).count("tool_input.nope") >= 1
