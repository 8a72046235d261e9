"""The names the SDK guide uses work: ``HumanInTheLoopStep``, ``HumanInterventionRequest``,
``HumanInterventionRequiredError`` from ``kneo``, and ``await workflow.arun(...)``; the
other SDK's ``run(messages, config)`` shape is answered with what to write instead."""

from __future__ import annotations

import asyncio

import pytest

from examples.hitl_functions import draft
from kneo import (
    HumanInterventionRequest,
    HumanInterventionRequiredError,
    HumanInTheLoopStep,
    InvalidRequest,
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
