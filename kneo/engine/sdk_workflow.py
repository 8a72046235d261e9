"""A workflow built with the SDK: the spec it is (:meth:`SdkWorkflow.to_spec`, run durably
like YAML) and its in-process run and resume, journaled in memory.

In-process, function steps run by name (``sdk:<step>``), inline resolvers answer human steps
and callable prompts build theirs; agent steps need the platform's providers, so a workflow
with one runs durably only."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kneo.engine.executor import WorkflowEngine
from kneo.engine.human import (
    HumanDecision,
    HumanInterventionRequest,
    HumanInterventionRequiredError,
    HumanRequest,
    validate_decision,
)
from kneo.engine.journal import MemoryJournal
from kneo.engine.outcomes import Completed, Failed, Paused
from kneo.engine.sdk_steps import (
    AgentStep,
    FunctionStep,
    HumanInTheLoopStep,
    PromptBuilder,
    SdkMessage,
    Step,
    importable_ref,
)
from kneo.engine.state import ExecutionState
from kneo.errors import ErrorCode, InvalidRequest, KneoError
from kneo.runtimes import create_runtime_registry
from kneo.spec.compiled import CompiledWorkflow
from kneo.spec.compiler import SpecCompiler
from kneo.spec.models import (
    AgentSpec,
    ComponentsSpec,
    EdgeSpec,
    HumanComponent,
    Spec,
    StepSpec,
    ToolComponent,
    WorkflowSpec,
)
from kneo.tools import ToolRegistry


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
