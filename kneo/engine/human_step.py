"""The ``kind: human`` step: it asks a person (or the SDK's inline resolver) and turns the
recorded decision into the step's output.

Approve passes the input on, edit/provide replace it, select names an option (in a graph
whose options are nodes, the route), reject fails the step. The request is built once per
wait and its decision read back on resume, so the step is as durable as any other unit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kneo.engine.functions import as_text
from kneo.engine.human import HumanDecision, HumanInterventionRequest
from kneo.engine.outcomes import HumanRejected
from kneo.engine.signals import RunPaused
from kneo.spec.compiled import CompiledStep

if TYPE_CHECKING:
    from kneo.engine.workflow_run import WorkflowRun

_PREVIEW_CHARS = 2000


def execute_human_step(
    run: WorkflowRun, key: str, step: CompiledStep, text: str
) -> tuple[str, dict[str, Any]]:
    """The step's output from the decision recorded for it (or an inline resolver's answer);
    without one, pause with an approval (or, in a graph, a route) request."""
    component = step.human
    prompt = (component.prompt or component.description if component else None) or (
        f"Approve step '{step.id}'?"
    )
    builder = run.engine.prompts.get(step.id)
    if builder is not None:
        prompt = builder([*run.state.outputs_by_step().values()] or [text], run.metadata)
    decision = run.decision(key)
    if decision is None:
        decision = _resolve_inline(run, key, step, prompt, text)
    options = tuple(component.options) if component else ()
    route = (
        bool(options)
        and run.workflow.family == "graph"
        and set(options) <= set(run.workflow.step_ids)
    )
    if decision is None:
        raise RunPaused(
            [
                run.new_request(
                    kind="route" if route else "approval",
                    wait_key=key,
                    step=step,
                    prompt=prompt,
                    assignee=component.assignee if component else None,
                    options=tuple(component.options) if component else (),
                    input_schema=component.input_schema if component else None,
                    decisions=component.decisions if component else None,
                    context={"step_id": step.id, "input_preview": text[:_PREVIEW_CHARS]},
                    timeout_seconds=component.timeout_seconds if component else None,
                    on_timeout=component.on_timeout if component else "fail",
                    escalate_to=component.escalate_to if component else None,
                )
            ]
        )
    return apply_decision(step, text, decision, route=route)


def _resolve_inline(
    run: WorkflowRun, key: str, step: CompiledStep, prompt: str, text: str
) -> dict[str, Any] | None:
    resolver = run.engine.resolvers.get(step.id)
    if resolver is None:
        return None
    answer = resolver(
        HumanInterventionRequest(
            step_name=step.id,
            prompt=prompt,
            input_text=text,
            messages=tuple(run.state.outputs_by_step().values()),
            metadata=run.metadata,
        )
    )
    if answer is None:
        return None
    decision = HumanDecision(
        request_id="inline",
        decision="approved",
        content=answer,
        actor="resolver",
        decided_at=run.now_iso(),
    ).to_dict()
    with run.state.lock:
        run.state.decisions[key] = decision
    return decision


def apply_decision(
    step: CompiledStep, text: str, decision: Mapping[str, Any], *, route: bool = False
) -> tuple[str, dict[str, Any]]:
    """A human unit's output from its decision: approve passes the input on, edit/provide
    replace it, select names the option (and the route), reject fails the step. A route
    selection (options are graph nodes) passes the input on and routes to the option. An
    inline resolver's answer passes the input on with the answer appended as a message."""
    name = decision.get("decision")
    extra: dict[str, Any] = {"decision": name, "content_present": bool(decision.get("content"))}
    if name == "rejected":
        reason = decision.get("content") or "no reason given"
        raise HumanRejected(f"step '{step.id}' was rejected: {reason}", step_id=step.id)
    if name in ("edited", "provided"):
        return as_text(decision.get("content")), extra
    if name == "selected":
        option = str(decision.get("selected_option") or "")
        extra["route"] = option
        extra["selected_option"] = option
        return (text if route else option), extra
    if decision.get("content") and decision.get("actor") == "resolver":
        # An inline resolver's string is the person's message: it joins the conversation
        # the next step receives (SDK guide: "appended as a human message").
        message = str(decision["content"])
        extra["human_message"] = message
        return (f"{text}\n\n{message}" if text else message), extra
    return text, extra
