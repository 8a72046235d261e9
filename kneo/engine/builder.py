"""The SDK surface: build small workflows in Python and run them in-process.

``WorkflowBuilder.human_step(name, prompt, resolver=...)`` is the SDK guide's human step: a
resolver returning a string answers inline (the string is recorded as the human message and
the step's input passes on); no resolver, or ``None``, raises
:class:`~kneo.engine.human.HumanInterventionRequiredError` carrying ``step_name``, ``prompt``
and ``request`` — plus the execution state, so :meth:`SdkWorkflow.resume` continues without
redoing completed steps. Runs use the same engine as the platform, journaled in memory.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kneo.engine.executor import Completed, Failed, Paused, WorkflowEngine
from kneo.engine.human import (
    HumanDecision,
    HumanInterventionRequest,
    HumanInterventionRequiredError,
    HumanRequest,
    HumanResolver,
    validate_decision,
)
from kneo.engine.journal import MemoryJournal
from kneo.engine.state import ExecutionState
from kneo.errors import InvalidRequest, KneoError
from kneo.spec.compiled import CompiledStep, CompiledWorkflow
from kneo.spec.models import HumanComponent, Spec, StepSpec, WorkflowSpec
from kneo.tools import ToolRegistry

PromptBuilder = Callable[[list["SdkMessage"], dict[str, Any]], str]


@dataclass(frozen=True)
class SdkMessage:
    """An earlier step's output as the SDK's dynamic prompts see it (``messages[-1].content``)."""

    role: str
    content: str


@dataclass(frozen=True)
class HumanInTheLoopStep:
    name: str
    prompt: str | PromptBuilder
    resolver: HumanResolver | None = None
    assignee: str | None = None
    options: tuple[str, ...] = ()
    timeout_seconds: int | None = None
    on_timeout: str = "fail"


@dataclass(frozen=True)
class FunctionStep:
    name: str
    fn: Callable[..., Any]
    on_error: str = "fail"
    max_retries: int = 0


Participant = HumanInTheLoopStep | FunctionStep | Callable[..., Any]


class WorkflowBuilder:
    """Factory for SDK workflows and their participants."""

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
    ) -> HumanInTheLoopStep:
        return HumanInTheLoopStep(name, prompt, resolver, assignee, tuple(options),
                                  timeout_seconds, on_timeout)

    @staticmethod
    def function_step(name: str, fn: Callable[..., Any], *, on_error: str = "fail",
                      max_retries: int = 0) -> FunctionStep:
        return FunctionStep(name, fn, on_error, max_retries)

    @staticmethod
    def sequential(participants: Sequence[Participant], name: str = "workflow") -> SdkWorkflow:
        return SdkWorkflow(name, [_as_step(p, i) for i, p in enumerate(participants)])


def _as_step(participant: Participant, index: int) -> HumanInTheLoopStep | FunctionStep:
    if isinstance(participant, HumanInTheLoopStep | FunctionStep):
        return participant
    if callable(participant):
        raw = getattr(participant, "__name__", "") or f"step_{index + 1}"
        name = re.sub(r"[^A-Za-z0-9_-]", "_", raw) if raw != "<lambda>" else f"step_{index + 1}"
        return FunctionStep(name, participant)
    raise InvalidRequest(f"participant {index} is not a step or a callable")


@dataclass
class SdkWorkflow:
    """A sequential workflow of Python callables and human steps, run in-process."""

    name: str
    steps: list[HumanInTheLoopStep | FunctionStep]
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = [s.name for s in self.steps]
        if len(set(names)) != len(names):
            raise InvalidRequest(f"workflow '{self.name}': step names must be unique: {names}")
        self.journal = MemoryJournal()

    def run(self, input_text: str, *, state: Mapping[str, Any] | None = None) -> str:
        """Run to the end and return the output, or raise ``HumanInterventionRequiredError``."""
        exec_state = ExecutionState(state) if state else ExecutionState.new(input_text)
        outcome = self._engine().run(self._compiled(), exec_state, self.journal,
                                     metadata=self.metadata)
        if isinstance(outcome, Completed):
            return outcome.output_text
        if isinstance(outcome, Paused):
            request = outcome.requests[0]
            raise HumanInterventionRequiredError(
                request.step_id, request.prompt,
                HumanInterventionRequest(step_name=request.step_id, prompt=request.prompt,
                                         input_text=str(request.context.get("input_preview", "")),
                                         metadata=self.metadata, request=request),
                state=outcome.state)
        if isinstance(outcome, Failed):
            raise KneoError(outcome.error["message"], code=outcome.error["code"])
        raise KneoError(f"workflow '{self.name}' stopped: {outcome}", code="run_stopped")

    def resume(self, error: HumanInterventionRequiredError, decision: str = "approved", *,
               content: str | None = None, selected_option: str | None = None) -> str:
        """Answer the pending request of ``error`` and continue from its state."""
        request: HumanRequest | None = error.request.request
        if request is None:
            raise InvalidRequest("this pause carries no request to answer")
        answer = validate_decision(request, HumanDecision(
            request_id=request.request_id, decision=decision, content=content,
            selected_option=selected_option, actor="sdk"))
        state = dict(error.state)
        state["decisions"] = {**state.get("decisions", {}), request.wait_key: answer.to_dict()}
        state["pending"] = []
        return self.run(state.get("input_text", ""), state=state)

    # ------------------------------------------------------------------ compile

    def _compiled(self) -> CompiledWorkflow:
        steps: list[CompiledStep] = []
        specs: list[StepSpec] = []
        for step in self.steps:
            if isinstance(step, FunctionStep):
                steps.append(CompiledStep(id=step.name, kind="function", ref=f"sdk:{step.name}",
                                          function_ref=f"sdk:{step.name}",
                                          on_error=step.on_error,  # type: ignore[arg-type]
                                          max_retries=step.max_retries))
                specs.append(StepSpec(id=step.name, kind="function", ref=f"sdk:{step.name}"))
            else:
                component = HumanComponent(
                    prompt=step.prompt if isinstance(step.prompt, str) else None,
                    assignee=step.assignee, options=list(step.options),
                    timeout_seconds=step.timeout_seconds,
                    on_timeout=step.on_timeout,  # type: ignore[arg-type]
                )
                steps.append(CompiledStep(id=step.name, kind="human", ref=step.name,
                                          human=component))
                specs.append(StepSpec(id=step.name, kind="human", ref=step.name))
        spec = Spec(workflow=WorkflowSpec(type="sequential", name=self.name, steps=specs))
        return CompiledWorkflow(family="sequential", name=self.name, steps=tuple(steps), spec=spec)

    def _engine(self) -> WorkflowEngine:
        def no_providers(name: str) -> Any:
            raise InvalidRequest("SDK workflows built with WorkflowBuilder have no model steps",
                                 code="unknown_provider")

        prompts: dict[str, Callable[[list[str], dict[str, Any]], str]] = {}
        for step in self.steps:
            if isinstance(step, HumanInTheLoopStep) and callable(step.prompt):
                prompts[step.name] = _prompt_adapter(step.prompt)
        return WorkflowEngine(
            providers=no_providers,
            tools=ToolRegistry(),
            functions={f"sdk:{s.name}": s.fn for s in self.steps if isinstance(s, FunctionStep)},
            resolvers={s.name: s.resolver for s in self.steps
                       if isinstance(s, HumanInTheLoopStep) and s.resolver is not None},
            prompts=prompts,
        )


def _prompt_adapter(builder: PromptBuilder) -> Callable[[list[str], dict[str, Any]], str]:
    """The engine passes earlier outputs as text; SDK prompts read ``messages[-1].content``."""

    def build(outputs: list[str], config: dict[str, Any]) -> str:
        return builder([SdkMessage("assistant", o) for o in outputs], config)

    return build
