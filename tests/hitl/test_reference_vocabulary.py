"""The names the SDK guide uses work: ``HumanInTheLoopStep``, ``HumanInterventionRequest``
(with the messages and config it lists), ``HumanInterventionRequiredError`` from ``kneo``,
and ``await workflow.arun(...)``; the other SDK's ``run(messages, config)`` shape and the
HITL documents' words (``on_timeout="approve"``, ``field_type``) are answered with what to
write instead."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from examples.hitl_functions import draft
from kneo import (
    HumanInterventionRequest,
    HumanInterventionRequiredError,
    HumanInTheLoopStep,
    InvalidRequest,
    SpecError,
    WorkflowBuilder,
)


def _publish(text: str) -> str:
    return f"published {text!r}"


def test_the_guide_names_and_an_async_entry_point() -> None:
    step = WorkflowBuilder.human_step("approval", "Approve this draft?")
    assert isinstance(step, HumanInTheLoopStep)
    workflow = WorkflowBuilder.sequential([draft, step, _publish], name="release-workflow")

    async def main() -> str:
        try:
            await workflow.arun("launch")
        except HumanInterventionRequiredError as exc:
            assert exc.step_name == "approval" and exc.prompt == "Approve this draft?"
            assert isinstance(exc.request, HumanInterventionRequest)
            return await workflow.aresume(exc, "approved")
        raise AssertionError("the workflow did not pause")

    assert asyncio.run(main()) == "published 'DRAFT: launch'"


def test_an_inline_resolver_answers_in_async_code_too() -> None:
    review = WorkflowBuilder.human_step("approval", "Approve?", resolver=lambda r: "Approved")
    workflow = WorkflowBuilder.sequential([draft, review, _publish])
    assert asyncio.run(workflow.arun("x")) == "published 'DRAFT: x\\n\\nApproved'"


def test_the_other_sdks_run_shape_is_answered() -> None:
    workflow = WorkflowBuilder.sequential([draft, _publish])
    with pytest.raises(InvalidRequest) as info:
        workflow.run([{"role": "user", "content": "launch"}], {"config": 1})  # type: ignore[arg-type]
    assert "run() takes the input as text alone, not list and a config" in info.value.message
    assert "await workflow.arun(...)" in info.value.message


def test_the_request_carries_the_messages_and_the_config_the_guide_lists() -> None:
    """The guide's resolver receives the current messages and the active config; the
    dynamic prompt reads ``messages[-1].content``; a pause's ``exc.request`` carries the same."""
    seen: list[HumanInterventionRequest] = []

    def resolver(request: HumanInterventionRequest) -> str:
        seen.append(request)
        return "Approved"

    review = WorkflowBuilder.human_step(
        "editor_review",
        lambda messages, config: f"Approve this draft? {messages[-1].content} ({config['team']})",
        resolver=resolver,
    )
    workflow = WorkflowBuilder.sequential([draft, review, _publish], name="release-workflow")
    workflow.metadata["team"] = "docs"
    assert workflow.run("launch") == "published 'DRAFT: launch\\n\\nApproved'"
    (request,) = seen
    assert request.prompt == "Approve this draft? DRAFT: launch (docs)"
    assert request.messages == ("DRAFT: launch",) and request.config == {"team": "docs"}

    paused = WorkflowBuilder.sequential([draft, WorkflowBuilder.human_step("ok", "Ok?"), _publish])
    with pytest.raises(HumanInterventionRequiredError) as info:
        paused.run("launch")
    assert info.value.request.messages == ("DRAFT: launch",)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: WorkflowBuilder.confirmation(
                "Deploy?", timeout_seconds=300, on_timeout="approve"
            ),
            "WorkflowBuilder.confirmation: on_timeout: Input should be 'fail', 'continue', "
            "'reject' or 'escalate'; did you mean 'continue'? (here, 'continue' approves the "
            "request when it times out and goes on)",
        ),
        (
            lambda: WorkflowBuilder.human_step("approve", "Ok?", on_timeout="cancel"),
            "human step 'approve': on_timeout: Input should be 'fail', 'continue', 'reject' or "
            "'escalate'; did you mean 'fail'? (here, 'fail' ends the run as expired; no "
            "timeout cancels a run here)",
        ),
        (
            lambda: WorkflowBuilder.confirmation("Process?", on_reject="else_branch"),
            "WorkflowBuilder.confirmation: on_reject: Input should be 'skip', 'cancel', 'fail' "
            "or 'retry'; did you mean 'skip'?",
        ),
        (
            lambda: WorkflowBuilder.typed_input([{"name": "threshold", "field_type": "float"}]),
            "WorkflowBuilder.typed_input: input_schema[0].field_type: unknown field; did you "
            "mean 'type'? (Kneo's name for field_type)",
        ),
        (
            lambda: WorkflowBuilder.function_step("fetch", _publish, on_error="pasue"),
            "function step 'fetch': on_error: Input should be 'fail', 'retry', 'continue' or "
            "'pause'; did you mean 'pause'?",
        ),
        (
            lambda: WorkflowBuilder.agent_step("triage", model={"provider": "dummy", "nmae": "x"}),
            "agent step 'triage': model: nmae: unknown field; did you mean 'name'?",
        ),
    ],
    ids=["on_timeout-approve", "on_timeout-cancel", "on_reject", "field_type", "typo", "model"],
)
def test_the_sdk_answers_the_documents_words_when_a_step_is_built(
    build: Callable[[], object], message: str
) -> None:
    """Python callers get what YAML callers get: the field, what is wrong and what was
    meant, as a SpecError when the step is built (not a pydantic trace at run time)."""
    with pytest.raises(SpecError) as info:
        build()
    assert info.value.message.startswith(message), info.value.message
    assert info.value.code == "E_SCHEMA" and info.value.details["diagnostics"]
