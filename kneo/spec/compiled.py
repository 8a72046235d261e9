"""The executable workflow description: what ``compile`` produces and the engine runs.

Every reference is resolved here (agents to their specs, tools to definitions, humans to
their components, functions to checked ``module:function`` refs), so the engine never
looks anything up by name in the spec. Frozen values; no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from kneo.kernel.code import EMPTY as EMPTY_CODE
from kneo.kernel.code import CodeSet
from kneo.spec.models import (
    AgentSpec,
    EdgeSpec,
    HumanComponent,
    HumanReview,
    SelectorSpec,
    Spec,
)
from kneo.tools import ToolDefinition

Family = Literal["sequential", "graph", "concurrent", "handoff", "group-chat"]


@dataclass(frozen=True)
class CompiledStep:
    """One step of a compiled workflow: what runs, and what happens when it fails."""

    id: str
    kind: Literal["agent", "function", "human", "workflow"]
    ref: str
    on_error: Literal["fail", "retry", "continue", "pause"] = "fail"
    max_retries: int = 0
    retry_backoff_seconds: float = 0.0
    timeout_seconds: float | None = None
    human_review: HumanReview | None = None
    #: kind == "agent": the agent and the tool definitions it may call (policy applies on top).
    agent: AgentSpec | None = None
    tools: tuple[ToolDefinition, ...] = ()
    #: kind == "function": the importable ``module:function`` (checked at compile time).
    function_ref: str | None = None
    #: kind == "human": the component that says who decides what, and by when.
    human: HumanComponent | None = None
    #: kind == "agent": tool name -> the step of the agent answering that tool.
    delegates: tuple[tuple[str, CompiledStep], ...] = ()
    #: kind == "agent", backed by a workflow (``agent.workflow``): it runs instead.
    workflow: CompiledWorkflow | None = None

    def delegate(self, tool: str) -> CompiledStep | None:
        """The step of the agent answering ``tool``, if an agent answers it."""
        return dict(self.delegates).get(tool)


@dataclass(frozen=True)
class CompiledWorkflow:
    """A spec compiled for the engine: its steps in order, its edges and its start."""

    family: Family
    name: str
    steps: tuple[CompiledStep, ...]
    spec: Spec
    edges: tuple[EdgeSpec, ...] = ()
    start: str | None = None
    max_visits: int = 5
    selector: SelectorSpec | None = None
    rounds: int = 1
    #: ``workflow`` runs the spec's workflow; ``agent`` runs its top-level agent alone.
    target: Literal["agent", "workflow"] = "workflow"
    metadata: dict[str, object] = field(default_factory=dict)
    #: the project code the spec's refs reach, pinned by digest (:mod:`kneo.kernel.code`)
    code: CodeSet = EMPTY_CODE
    #: where that code's files are on disk, when they are (``None``: only in the store)
    code_root: Path | None = None

    def step(self, step_id: str) -> CompiledStep:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    @property
    def step_ids(self) -> tuple[str, ...]:
        return tuple(s.id for s in self.steps)
