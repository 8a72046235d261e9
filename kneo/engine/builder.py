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
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from kneo.engine.executor import WorkflowEngine
from kneo.engine.human import (
    HumanDecision,
    HumanInterventionRequest,
    HumanInterventionRequiredError,
    HumanRequest,
    HumanResolver,
    validate_decision,
)
from kneo.engine.journal import MemoryJournal
from kneo.engine.outcomes import Completed, Failed, Paused
from kneo.engine.state import ExecutionState
from kneo.errors import ErrorCode, InvalidRequest, KneoError, SpecError
from kneo.spec.compiled import CompiledWorkflow
from kneo.spec.models import (
    AgentSpec,
    ComponentsSpec,
    EdgeCondition,
    EdgeSpec,
    HumanComponent,
    HumanReview,
    InputField,
    ModelSpec,
    Spec,
    StepSpec,
    StrategySpec,
    ToolComponent,
    WorkflowSpec,
)
from kneo.spec.yaml_io import validation_error_to_spec_error
from kneo.tools import ToolRegistry

_M = TypeVar("_M", bound=BaseModel)
PromptBuilder = Callable[[list["SdkMessage"], dict[str, Any]], str]
#: ``(source, target)``, ``(source, target, equals_text)``, or an :class:`EdgeSpec`.
EdgeLike = tuple[str, str] | tuple[str, str, str] | EdgeSpec | Mapping[str, Any]


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
    #: Decisions the step accepts (``None``: derived from its options, as in YAML).
    decisions: tuple[str, ...] | None = None
    #: who the request passes to when ``on_timeout="escalate"`` fires
    escalate_to: str | None = None

    def component(self) -> HumanComponent:
        """The ``components.humans`` entry this step is (a callable prompt is in-process)."""
        fields = {
            "prompt": self.prompt if isinstance(self.prompt, str) else None,
            "assignee": self.assignee,
            "options": list(self.options) or None,
            "timeout_seconds": self.timeout_seconds,
            "on_timeout": self.on_timeout,
            "escalate_to": self.escalate_to,
            "decisions": list(self.decisions) if self.decisions else None,
        }
        return _checked(
            HumanComponent,
            {k: v for k, v in fields.items() if v is not None},
            f"human step '{self.name}'",
        )


@dataclass(frozen=True)
class FunctionStep:
    name: str
    fn: Callable[..., Any]
    on_error: str = "fail"
    max_retries: int = 0
    human_review: HumanReview | None = None


@dataclass(frozen=True)
class PythonTool:
    """A Python function an agent may call (``components.tools`` with an implementation),
    or, with ``fn=None`` and ``external``, a tool the caller runs (:meth:`external_tool`)."""

    name: str
    fn: Callable[..., Any] | None
    description: str = ""
    parameters: Mapping[str, Any] = field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )
    requires_approval: bool = False
    external: bool = False
    result_schema: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class AgentStep:
    """An agent step: the agent (named like the step) and the Python tools it brings."""

    name: str
    agent: AgentSpec
    tools: tuple[PythonTool, ...] = ()
    on_error: str = "fail"
    max_retries: int = 0
    human_review: HumanReview | None = None


Step = HumanInTheLoopStep | FunctionStep | AgentStep
Participant = Step | Callable[..., Any]


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
            else _checked(ModelSpec, dict(model or {}), f"agent step '{name}': model")
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
    return _checked(HumanReview, data, what)


def _check_step(name: str, on_error: str, max_retries: int, what: str) -> None:
    """Refuse a wrong ``on_error``/``max_retries`` when the step is built, not at run time."""
    _checked(
        StepSpec, {"id": name, "ref": name, "on_error": on_error, "max_retries": max_retries}, what
    )


def _checked(model: type[_M], data: dict[str, Any], what: str) -> _M:
    """``model`` from ``data``, or a :class:`~kneo.errors.SpecError` naming the field, what is
    wrong and what was probably meant: the SDK takes the spec's words, and readers bring
    other frameworks' (``on_timeout="approve"`` -> ``"continue"``), as in YAML."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        error = validation_error_to_spec_error(exc, data, file=None, model=model)
        raise SpecError(f"{what}: {error.message}", **error.details) from None


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


def importable_ref(fn: Callable[..., Any], *, what: str) -> str:
    """``module:qualname`` of a module-level callable that another process can import.

    A durable run may resume in another process, which finds the function by this ref, so
    lambdas, nested functions and ``__main__`` are refused with the reason.
    """
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    if not module or not qualname or "<" in qualname or module == "__main__":
        raise InvalidRequest(
            f"{what}: {qualname or fn!r} in {module or '?'} is not importable by another "
            "process; define it at module level in an importable module",
            field="fn",
        )
    target: Any = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part, None)
    if target is not fn:
        raise InvalidRequest(
            f"{what}: {module}:{qualname} does not resolve to this function", field="fn"
        )
    return f"{module}:{qualname}"


@dataclass
class SdkWorkflow:
    """A workflow of Python steps, human steps and agents: a spec built in Python.

    :meth:`to_spec` is the durable form (``manager.run_from_spec(spec=...)``); :meth:`run`
    and :meth:`resume` run it in-process with an in-memory journal (function and human
    steps; agent steps need the platform's providers, so run those durably)."""

    name: str
    steps: list[Step]
    metadata: dict[str, Any] = field(default_factory=dict)
    family: str = "sequential"
    edges: tuple[EdgeSpec, ...] = ()
    start: str | None = None
    max_visits: int = 5
    #: In-process runs keep the trace of about this many recent steps (``journal``).
    history: int = 1000

    def __post_init__(self) -> None:
        names = [s.name for s in self.steps]
        if len(set(names)) != len(names):
            raise InvalidRequest(f"workflow '{self.name}': step names must be unique: {names}")
        self.journal = MemoryJournal(keep=self.history)
        self._compiled_as: tuple[Any, CompiledWorkflow] | None = None

    # ------------------------------------------------------------------ durable form

    def to_spec(self) -> Spec:
        """The :class:`Spec` this workflow is — what a YAML file with the same steps loads.

        Functions and tools become ``module:function`` refs (so they must be importable
        module-level callables); human steps become ``components.humans``. Inline resolvers
        and callable prompts exist only in-process, so they are refused here."""
        for step in self.steps:
            if isinstance(step, HumanInTheLoopStep) and (
                step.resolver is not None or callable(step.prompt)
            ):
                raise InvalidRequest(
                    f"human step '{step.name}': a resolver or a callable prompt runs "
                    "in-process only; a durable spec pauses for a person instead",
                    step_id=step.name,
                )
        return self._spec(durable=True)

    def _spec(self, *, durable: bool) -> Spec:
        members: list[StepSpec] = []
        humans: dict[str, HumanComponent] = {}
        agents: dict[str, AgentSpec] = {}
        tools: dict[str, ToolComponent] = {}
        for step in self.steps:
            common: dict[str, Any] = {"id": step.name}
            if isinstance(step, HumanInTheLoopStep):
                humans[step.name] = step.component()
                members.append(StepSpec(**common, kind="human", ref=step.name))
                continue
            gates: dict[str, Any] = {
                "on_error": step.on_error,
                "max_retries": step.max_retries,
                "human_review": step.human_review,
            }
            gates = {
                k: v
                for k, v in gates.items()
                if v is not None and v != StepSpec.model_fields[k].default
            }
            if isinstance(step, FunctionStep):
                ref = (
                    importable_ref(step.fn, what=f"function step '{step.name}'")
                    if durable
                    else f"sdk:{step.name}"
                )
                members.append(StepSpec(**common, kind="function", ref=ref, **gates))
            else:
                agents[step.name] = step.agent
                for tool in step.tools:
                    tools[tool.name] = ToolComponent(
                        description=tool.description,
                        parameters=dict(tool.parameters),
                        requires_approval=tool.requires_approval,
                        implementation=importable_ref(tool.fn, what=f"tool '{tool.name}'")
                        if tool.fn is not None
                        else None,
                        external=tool.external,
                        result_schema=dict(tool.result_schema) if tool.result_schema else None,
                    )
                members.append(StepSpec(**common, kind="agent", ref=step.name, **gates))
        key = {"graph": "nodes", "sequential": "steps"}.get(self.family, "participants")
        workflow: dict[str, Any] = {"type": self.family, "name": self.name, key: members}
        if self.family == "graph":
            workflow |= {
                "edges": list(self.edges),
                "start": self.start,
                "max_visits": self.max_visits,
            }
        components: dict[str, Any] = {}
        if humans:
            components["humans"] = humans
        if agents:
            components["agents"] = agents
        if tools:
            components["tools"] = tools
        spec = Spec(workflow=WorkflowSpec(**workflow), components=ComponentsSpec(**components))
        if self.metadata:
            spec.metadata = dict(self.metadata)
        return spec

    # ------------------------------------------------------------------ in-process

    def run(
        self, input_text: str, config: None = None, *, state: Mapping[str, Any] | None = None
    ) -> str:
        """Run to the end and return the output, or raise ``HumanInterventionRequiredError``.
        (``config`` exists only to answer another SDK's ``run(messages, config)`` shape.)"""
        if not isinstance(input_text, str) or config is not None:
            raise InvalidRequest(
                f"run() takes the input as text alone, not {type(input_text).__name__}"
                f"{' and a config' if config is not None else ''} (a message list and a "
                "RunConfig are another SDK's shape): workflow.run('draft the launch "
                "announcement'); in async code, await workflow.arun(...)",
                field="input_text",
            )
        exec_state = ExecutionState(state) if state else ExecutionState.new(input_text)
        outcome = self._engine().run(
            self._compiled(), exec_state, self.journal, metadata=self.metadata
        )
        if isinstance(outcome, Completed):
            return outcome.output_text
        if isinstance(outcome, Paused):
            request = outcome.requests[0]
            raise HumanInterventionRequiredError(
                request.step_id,
                request.prompt,
                HumanInterventionRequest(
                    step_name=request.step_id,
                    prompt=request.prompt,
                    input_text=str(request.context.get("input_preview", "")),
                    messages=tuple(ExecutionState(outcome.state).outputs_by_step().values()),
                    metadata=self.metadata,
                    request=request,
                ),
                state=outcome.state,
            )
        if isinstance(outcome, Failed):
            raise KneoError(outcome.error["message"], code=outcome.error["code"])
        raise KneoError(f"workflow '{self.name}' stopped: {outcome}", code=ErrorCode.run_stopped)

    async def arun(self, input_text: str, *, state: Mapping[str, Any] | None = None) -> str:
        """:meth:`run` for async code (``await workflow.arun(text)``): the same run, on a
        worker thread, so the event loop keeps serving while steps and pauses happen."""
        import asyncio

        return await asyncio.to_thread(self.run, input_text, state=state)

    async def aresume(
        self,
        error: HumanInterventionRequiredError,
        decision: str = "approved",
        *,
        content: str | None = None,
        selected_option: str | None = None,
    ) -> str:
        """:meth:`resume` for async code."""
        import asyncio

        return await asyncio.to_thread(
            self.resume, error, decision, content=content, selected_option=selected_option
        )

    def resume(
        self,
        error: HumanInterventionRequiredError,
        decision: str = "approved",
        *,
        content: str | None = None,
        selected_option: str | None = None,
    ) -> str:
        """Answer the pending request of ``error`` and continue from its state."""
        request: HumanRequest | None = error.request.request
        if request is None:
            raise InvalidRequest("this pause carries no request to answer")
        answer = validate_decision(
            request,
            HumanDecision(
                request_id=request.request_id,
                decision=decision,
                content=content,
                selected_option=selected_option,
                actor="sdk",
            ),
        )
        state = dict(error.state)
        state["decisions"] = {**state.get("decisions", {}), request.wait_key: answer.to_dict()}
        state["pending"] = [
            p for p in state.get("pending") or [] if p.get("wait_key") != request.wait_key
        ]
        return self.run(state.get("input_text", ""), state=state)

    def _compiled(self) -> CompiledWorkflow:
        """The in-process spec compiled by the same compiler as YAML (functions by name),
        once: recompiled only when the workflow's definition changed since."""
        shape = (
            tuple(map(id, self.steps)),
            self.family,
            self.edges,
            self.start,
            self.max_visits,
            repr(self.metadata),
        )
        if self._compiled_as is not None and self._compiled_as[0] == shape:
            return self._compiled_as[1]
        workflow = self._compile()
        self._compiled_as = (shape, workflow)
        return workflow

    def _compile(self) -> CompiledWorkflow:
        from kneo.runtimes import create_runtime_registry
        from kneo.spec.compiler import SpecCompiler

        if any(isinstance(s, AgentStep) for s in self.steps):
            raise InvalidRequest(
                f"workflow '{self.name}' has agent steps: run it durably with "
                "manager.run_from_spec(spec=workflow.to_spec(), input_text=...)"
            )
        compiler = SpecCompiler(
            runtime_registry=create_runtime_registry(), tool_registry=ToolRegistry()
        )
        # The refs are ``sdk:<step>`` callables held by this object, so the file-level ref
        # checks do not apply; everything else compiles exactly as a loaded spec does.
        return compiler.compile(self._spec(durable=False), diagnostics=[])

    def _engine(self) -> WorkflowEngine:
        def no_providers(name: str) -> Any:
            raise InvalidRequest(
                "in-process SDK workflows have no model providers", code=ErrorCode.unknown_provider
            )

        prompts: dict[str, Callable[[list[str], dict[str, Any]], str]] = {}
        for step in self.steps:
            if isinstance(step, HumanInTheLoopStep) and callable(step.prompt):
                prompts[step.name] = _prompt_adapter(step.prompt)
        return WorkflowEngine(
            providers=no_providers,
            tools=ToolRegistry(),
            functions={f"sdk:{s.name}": s.fn for s in self.steps if isinstance(s, FunctionStep)},
            resolvers={
                s.name: s.resolver
                for s in self.steps
                if isinstance(s, HumanInTheLoopStep) and s.resolver is not None
            },
            prompts=prompts,
        )


def _prompt_adapter(builder: PromptBuilder) -> Callable[[list[str], dict[str, Any]], str]:
    """The engine passes earlier outputs as text; SDK prompts read ``messages[-1].content``."""

    def build(outputs: list[str], config: dict[str, Any]) -> str:
        return builder([SdkMessage("assistant", o) for o in outputs], config)

    return build
