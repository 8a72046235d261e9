"""The SDK surface: build workflows in Python, run them in-process or durably.

``WorkflowBuilder.human_step(name, prompt, resolver=...)`` is the SDK guide's human step: a
resolver returning a string answers inline (the string is appended to the conversation as
the human's message: the next step receives the input followed by it); no resolver, or ``None``, raises
:class:`~kneo.engine.human.HumanInterventionRequiredError` carrying ``step_name``, ``prompt``
and ``request`` — plus the execution state, so :meth:`SdkWorkflow.resume` continues without
redoing completed steps.

Every pause kind a YAML spec declares can be declared here too — step confirmation
(:meth:`WorkflowBuilder.confirmation`), typed input (:meth:`~WorkflowBuilder.typed_input`),
output review (:meth:`~WorkflowBuilder.output_review`), route selection
(:meth:`~WorkflowBuilder.route_step` in a :meth:`~WorkflowBuilder.graph`), loop-iteration
review (:meth:`~WorkflowBuilder.iteration_review`), tool-call approval, tool-argument input,
external tools (:meth:`~WorkflowBuilder.external_tool`) and ``ask_question``
(:meth:`~WorkflowBuilder.agent_step`), and ``on_error="pause"``. A built
workflow *is* a spec: :meth:`SdkWorkflow.to_spec` returns the :class:`~kneo.spec.models.Spec`
the YAML path loads, so ``manager.run_from_spec(spec=workflow.to_spec(), input_text=...)``
runs it durably (checked, compiled and resumed from any process exactly like YAML), and
:meth:`SdkWorkflow.run` compiles the same models for an in-process run journaled in memory.

Here: :class:`WorkflowBuilder`, which checks its arguments and builds the participants
(:mod:`kneo.engine.sdk_steps`) into a workflow (:mod:`kneo.engine.sdk_workflow`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kneo.engine.human import HumanResolver
from kneo.engine.sdk_steps import (
    AgentStep,
    FunctionStep,
    HumanInTheLoopStep,
    Participant,
    PromptBuilder,
    PythonTool,
    Step,
    checked,
)
from kneo.engine.sdk_workflow import SdkWorkflow
from kneo.errors import InvalidRequest
from kneo.spec.models import (
    AgentSpec,
    EdgeCondition,
    EdgeSpec,
    HumanReview,
    InputField,
    ModelSpec,
    StepSpec,
    StrategySpec,
)

#: ``(source, target)``, ``(source, target, equals_text)``, or an :class:`EdgeSpec`.
EdgeLike = tuple[str, str] | tuple[str, str, str] | EdgeSpec | Mapping[str, Any]


class WorkflowBuilder:
    """Factory for SDK workflows, their participants and their human gates."""

    # ------------------------------------------------------------------ participants

    @staticmethod
    def human_step(
        name: str,
        prompt: str | PromptBuilder,
        resolver: HumanResolver | None = None,
        *,
        assignee: str | None = None,
        options: Sequence[str] = (),
        timeout_seconds: int | None = None,
        on_timeout: str = "fail",
        escalate_to: str | None = None,
    ) -> HumanInTheLoopStep:
        step = HumanInTheLoopStep(
            name,
            prompt,
            resolver,
            assignee,
            tuple(options),
            timeout_seconds,
            on_timeout,
            escalate_to=escalate_to,
        )
        step.component()  # a wrong word fails here, with what was meant
        return step

    @staticmethod
    def route_step(
        name: str,
        prompt: str,
        options: Sequence[str],
        *,
        assignee: str | None = None,
        timeout_seconds: int | None = None,
        on_timeout: str = "fail",
        escalate_to: str | None = None,
    ) -> HumanInTheLoopStep:
        """A graph node where a person picks the next node among ``options`` (node ids);
        it accepts only ``selected`` (kind ``route``)."""
        if not options:
            raise InvalidRequest(f"route step '{name}' needs options (node ids)", field="options")
        step = HumanInTheLoopStep(
            name,
            prompt,
            None,
            assignee,
            tuple(options),
            timeout_seconds,
            on_timeout,
            decisions=("selected",),
            escalate_to=escalate_to,
        )
        step.component()
        return step

    @staticmethod
    def function_step(
        name: str,
        fn: Callable[..., Any],
        *,
        on_error: str = "fail",
        max_retries: int = 0,
        human_review: HumanReview | None = None,
    ) -> FunctionStep:
        """A Python function step; ``on_error="pause"`` asks a person to retry, skip or fail,
        ``human_review`` adds gates (:meth:`confirmation`, :meth:`typed_input`,
        :meth:`output_review`)."""
        _check_step(name, on_error, max_retries, f"function step '{name}'")
        return FunctionStep(name, fn, on_error, max_retries, human_review)

    @staticmethod
    def tool(
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        parameters: Mapping[str, Any] | None = None,
        requires_approval: bool = False,
    ) -> PythonTool:
        """A tool implemented by ``fn(args: dict) -> str``; ``requires_approval`` pauses
        every call for a person (as does naming it in ``approval_required``)."""
        doc = (fn.__doc__ or "").strip().splitlines()
        return PythonTool(
            name=name or fn.__name__,
            fn=fn,
            description=description if description is not None else (doc[0] if doc else ""),
            parameters=dict(parameters or {"type": "object", "properties": {}}),
            requires_approval=requires_approval,
        )

    @staticmethod
    def external_tool(
        name: str,
        *,
        description: str = "",
        parameters: Mapping[str, Any] | None = None,
        result_schema: Mapping[str, Any] | None = None,
    ) -> PythonTool:
        """A tool the caller runs (kind ``external_tool``): the run pauses with the call and
        continues with the result the caller provides, checked against ``result_schema``."""
        return PythonTool(
            name=name,
            fn=None,
            description=description,
            parameters=dict(parameters or {"type": "object", "properties": {}}),
            external=True,
            result_schema=dict(result_schema) if result_schema else None,
        )

    @staticmethod
    def agent_step(
        name: str,
        *,
        system_prompt: str = "",
        model: ModelSpec | Mapping[str, Any] | None = None,
        tools: Sequence[str | PythonTool] = (),
        approval_required: Sequence[str] = (),
        tool_input: Mapping[str, Sequence[str]] | None = None,
        max_iterations: int = 6,
        on_error: str = "fail",
        max_retries: int = 0,
        human_review: HumanReview | None = None,
    ) -> AgentStep:
        """An agent step (the agent is named like the step). ``tools`` mixes registered tool
        names (``"ask_question"`` is built in), :meth:`tool` and :meth:`external_tool`
        objects; calls to tools in ``approval_required`` pause for a person (kind
        ``tool_approval``); ``tool_input`` names per tool the arguments a person provides
        (kind ``tool_input``; ``[]``: the required ones the model left out)."""
        _check_step(name, on_error, max_retries, f"agent step '{name}'")
        python_tools = tuple(t for t in tools if isinstance(t, PythonTool))
        model_spec = (
            model
            if isinstance(model, ModelSpec)
            else checked(ModelSpec, dict(model or {}), f"agent step '{name}': model")
        )
        agent = AgentSpec(
            name=name,
            system_prompt=system_prompt,
            model=model_spec,
            strategy=StrategySpec(max_iterations=max_iterations),
            tools=[t.name if isinstance(t, PythonTool) else t for t in tools],
            approval_required=list(approval_required),
            tool_input={k: list(v) for k, v in (tool_input or {}).items()},
        )
        return AgentStep(name, agent, python_tools, on_error, max_retries, human_review)

    # ------------------------------------------------------------------ gates

    @staticmethod
    def confirmation(
        message: str | None = None,
        *,
        on_reject: str = "skip",
        assignee: str | None = None,
        timeout_seconds: int | None = None,
        on_timeout: str = "fail",
        escalate_to: str | None = None,
    ) -> HumanReview:
        """Ask before the step runs (kind ``confirmation``); a rejection follows ``on_reject``
        (``skip``, ``cancel``, ``fail`` or ``retry``)."""
        return _review(
            {
                "requires_confirmation": True,
                "message": message,
                "on_reject": on_reject,
                "assignee": assignee,
                "timeout_seconds": timeout_seconds,
                "on_timeout": on_timeout,
                "escalate_to": escalate_to,
            },
            "WorkflowBuilder.confirmation",
        )

    @staticmethod
    def typed_input(
        fields: Sequence[InputField | Mapping[str, Any]],
        *,
        message: str | None = None,
        assignee: str | None = None,
        timeout_seconds: int | None = None,
        on_timeout: str = "fail",
        escalate_to: str | None = None,
    ) -> HumanReview:
        """Collect typed values before the step runs (kind ``input``): each field has a
        ``name``, ``type``, ``required``, ``description`` and ``enum``."""
        if not fields:
            raise InvalidRequest("typed_input needs at least one field", field="fields")
        return _review(
            {
                "input_schema": [
                    f.model_dump() if isinstance(f, InputField) else dict(f) for f in fields
                ],
                "input_message": message,
                "assignee": assignee,
                "timeout_seconds": timeout_seconds,
                "on_timeout": on_timeout,
                "escalate_to": escalate_to,
            },
            "WorkflowBuilder.typed_input",
        )

    @staticmethod
    def output_review(
        message: str | None = None,
        *,
        max_reviews: int = 3,
        assignee: str | None = None,
        timeout_seconds: int | None = None,
        on_timeout: str = "fail",
        escalate_to: str | None = None,
    ) -> HumanReview:
        """Review the step's output (kind ``review``): approve, edit, or reject with feedback
        to run it again, at most ``max_reviews`` rounds."""
        return _review(
            {
                "review_output": True,
                "message": message,
                "max_reviews": max_reviews,
                "assignee": assignee,
                "timeout_seconds": timeout_seconds,
                "on_timeout": on_timeout,
                "escalate_to": escalate_to,
            },
            "WorkflowBuilder.output_review",
        )

    @staticmethod
    def iteration_review(
        message: str | None = None,
        *,
        on_stop: str | None = None,
        assignee: str | None = None,
        timeout_seconds: int | None = None,
        on_timeout: str = "fail",
        escalate_to: str | None = None,
    ) -> HumanReview:
        """Review every visit of a graph node (kind ``iteration``): continue (``approved``),
        continue with an edited output (``edited``) or stop the loop (``rejected``: on to
        ``on_stop``, or the end)."""
        return _review(
            {
                "review_iterations": True,
                "message": message,
                "on_stop": on_stop,
                "assignee": assignee,
                "timeout_seconds": timeout_seconds,
                "on_timeout": on_timeout,
                "escalate_to": escalate_to,
            },
            "WorkflowBuilder.iteration_review",
        )

    # ------------------------------------------------------------------ workflows

    @staticmethod
    def sequential(participants: Sequence[Participant], name: str = "workflow") -> SdkWorkflow:
        return SdkWorkflow(name, [_as_step(p, i) for i, p in enumerate(participants)])

    @staticmethod
    def graph(
        participants: Sequence[Participant],
        edges: Sequence[EdgeLike],
        *,
        start: str | None = None,
        name: str = "workflow",
        max_visits: int = 5,
    ) -> SdkWorkflow:
        """A graph: ``edges`` are ``(source, target)``, ``(source, target, equals_text)`` or
        :class:`~kneo.spec.models.EdgeSpec`; ``start`` defaults to the first participant."""
        steps = [_as_step(p, i) for i, p in enumerate(participants)]
        return SdkWorkflow(
            name,
            steps,
            family="graph",
            edges=tuple(_edge(e) for e in edges),
            start=start or (steps[0].name if steps else None),
            max_visits=max_visits,
        )

    @staticmethod
    def concurrent(participants: Sequence[Participant], name: str = "workflow") -> SdkWorkflow:
        """Branches on the same input; several may pause at once (one continuation)."""
        return SdkWorkflow(
            name, [_as_step(p, i) for i, p in enumerate(participants)], family="concurrent"
        )


def _as_step(participant: Participant, index: int) -> Step:
    if isinstance(participant, HumanInTheLoopStep | FunctionStep | AgentStep):
        return participant
    if callable(participant):
        raw = getattr(participant, "__name__", "") or f"step_{index + 1}"
        name = re.sub(r"[^A-Za-z0-9_-]", "_", raw) if raw != "<lambda>" else f"step_{index + 1}"
        return FunctionStep(name, participant)
    raise InvalidRequest(f"participant {index} is not a step or a callable")


def _review(fields: Mapping[str, Any], what: str) -> HumanReview:
    """A ``human_review`` with only the fields given (a clean spec dump)."""
    data = {k: v for k, v in fields.items() if v is not None}
    return checked(HumanReview, data, what)


def _check_step(name: str, on_error: str, max_retries: int, what: str) -> None:
    """Refuse a wrong ``on_error``/``max_retries`` when the step is built, not at run time."""
    checked(
        StepSpec, {"id": name, "ref": name, "on_error": on_error, "max_retries": max_retries}, what
    )


def _edge(edge: EdgeLike) -> EdgeSpec:
    if isinstance(edge, EdgeSpec):
        return edge
    if isinstance(edge, Mapping):
        return EdgeSpec.model_validate(dict(edge))
    if len(edge) == 3:
        source, target, equals = edge
        return EdgeSpec.model_validate(
            {"from": source, "to": target, "condition": EdgeCondition(equals=equals)}
        )
    source, target = edge
    return EdgeSpec.model_validate({"from": source, "to": target})
