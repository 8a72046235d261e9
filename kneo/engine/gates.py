"""Step-level human gates: ``human_review`` on any step (agent, function or human).

Three gates, each a pause on the same durable mechanism as a ``kind: human`` step:

* **confirmation** before the step runs (``requires_confirmation``); a rejection follows
  ``on_reject``: ``skip`` (the step is recorded ``skipped`` and its input passes on),
  ``cancel`` (the run is cancelled), ``fail`` (the step fails, ``human_rejected``) or
  ``retry`` (the person is asked again);
* **input** before the step runs (``input_schema`` fields): ``provided`` JSON content is
  validated against the fields (422 ``invalid_human_input`` with the field path, the request
  stays pending); function steps read it as ``context.human_input``, agent steps get it
  appended to their input;
* **review** after the step ran (``review_output``): approve keeps the output, ``edited``
  replaces it, ``rejected`` runs the step again with the feedback (``context.review_feedback``
  / appended to an agent's input), at most ``max_reviews`` rounds;
* **iteration** after each visit of a graph node (``review_iterations``): continue, continue
  with an edited output, or stop the loop (on to ``on_stop``, or the end).

Every wait has a stable key under the unit (``<unit>:confirm:<n>``, ``<unit>:input``,
``<unit>:review:<round>``, ``<unit>:iteration``), so answers survive restarts and a replay finds them.
Pure: the executor supplies ``ask`` (which returns a recorded decision or pauses).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from kneo.documents import DocumentError, parse_json
from kneo.engine.human import input_fields_schema
from kneo.spec.compiled import CompiledStep
from kneo.spec.models import HumanReview

_PREVIEW_CHARS = 2000


class Asker(Protocol):
    """The executor side: a recorded decision for ``wait_key``, or a pause (raises)."""

    def ask(
        self, *, kind: str, wait_key: str, step: CompiledStep, prompt: str, **fields: Any
    ) -> dict[str, Any]: ...


def _review_of(step: CompiledStep) -> HumanReview:
    """The step's ``human_review`` (a gate is asked only of a step that has one)."""
    review = step.human_review
    assert review is not None
    return review


def _common(review: HumanReview) -> dict[str, Any]:
    return {
        "assignee": review.assignee,
        "timeout_seconds": review.timeout_seconds,
        "on_timeout": review.on_timeout,
        "escalate_to": review.escalate_to,
    }


def _ask_about_output(
    run: Asker,
    step: CompiledStep,
    review: HumanReview,
    *,
    kind: str,
    wait_key: str,
    prompt: str,
    output: str,
    context: dict[str, Any],
) -> dict[str, Any]:
    """Ask a person to approve, edit or reject the step's ``output`` (the review and
    iteration gates); ``prompt`` unless the review has its own message."""
    return run.ask(
        kind=kind,
        wait_key=wait_key,
        step=step,
        prompt=review.message or prompt,
        decisions=("approved", "edited", "rejected"),
        context={"step_id": step.id, "output_preview": output[:_PREVIEW_CHARS], **context},
        **_common(review),
    )


def confirm(run: Asker, key: str, step: CompiledStep, text: str) -> str:
    """``run`` or one of ``skip``/``cancel``/``fail`` (the rejected confirmation's on_reject)."""
    review = _review_of(step)
    ask = 1
    while True:
        decision = run.ask(
            kind="confirmation",
            wait_key=f"{key}:confirm:{ask}",
            step=step,
            prompt=review.message or f"Run step '{step.id}'?",
            decisions=("approved", "rejected"),
            context={
                "step_id": step.id,
                "input_preview": text[:_PREVIEW_CHARS],
                "on_reject": review.on_reject,
            },
            **_common(review),
        )
        if decision.get("decision") != "rejected":
            return "run"
        if review.on_reject != "retry":
            return review.on_reject
        ask += 1


def collect_input(run: Asker, key: str, step: CompiledStep, text: str) -> dict[str, Any]:
    """The validated values a person provided for the step's ``input_schema`` fields."""
    review = _review_of(step)
    decision = run.ask(
        kind="input",
        wait_key=f"{key}:input",
        step=step,
        prompt=review.input_message or review.message or f"Provide input for step '{step.id}'",
        input_schema=input_fields_schema(review.input_schema),
        decisions=("provided",),
        context={"step_id": step.id, "input_preview": text[:_PREVIEW_CHARS]},
        **_common(review),
    )
    try:
        value = parse_json(decision.get("content") or "{}", source="input")
    except DocumentError:
        value = {}
    return value if isinstance(value, dict) else {}


def with_input(text: str, values: Mapping[str, Any]) -> str:
    """An agent step's input with the person's values appended."""
    return f"{text}\n\nUser input: {json.dumps(dict(values), sort_keys=True)}"


def with_feedback(text: str, feedback: str) -> str:
    """An agent step's input for a reviewed re-run: the original input plus the feedback."""
    return f"{text}\n\nReviewer feedback on the previous answer: {feedback}"


@dataclass(frozen=True)
class Verdict:
    """A review's outcome: ``accepted`` with the final output, else the feedback to re-run."""

    accepted: bool
    output: str = ""
    feedback: str = ""
    decision: str = "approved"


def review(run: Asker, key: str, step: CompiledStep, round_no: int, output: str) -> Verdict:
    review_spec = _review_of(step)
    decision = _ask_about_output(
        run,
        step,
        review_spec,
        kind="review",
        wait_key=f"{key}:review:{round_no}",
        prompt=f"Review the output of step '{step.id}'",
        output=output,
        context={"round": round_no, "max_reviews": review_spec.max_reviews},
    )
    name = str(decision.get("decision"))
    if name == "edited":
        return Verdict(True, str(decision.get("content") or ""), decision=name)
    if name == "rejected":
        return Verdict(False, feedback=str(decision.get("content") or "rejected"), decision=name)
    return Verdict(True, output, decision=name)


@dataclass(frozen=True)
class Iteration:
    """A reviewed loop iteration: go on (with ``output``, edited or not) or stop the loop."""

    stop: bool
    output: str


def iteration(run: Asker, key: str, step: CompiledStep, visit: int, output: str) -> Iteration:
    """``review_iterations``: after each visit of a graph node a person continues
    (``approved``), continues with their text as the node's output (``edited``) or stops the
    loop (``rejected``: the graph goes on at ``on_stop``, or ends)."""
    review_spec = _review_of(step)
    decision = _ask_about_output(
        run,
        step,
        review_spec,
        kind="iteration",
        wait_key=f"{key}:iteration",
        prompt=f"Iteration {visit} of '{step.id}': continue, edit or stop?",
        output=output,
        context={"iteration": visit, "on_stop": review_spec.on_stop},
    )
    name = decision.get("decision")
    if name == "edited":
        return Iteration(False, str(decision.get("content") or ""))
    return Iteration(name == "rejected", output)
