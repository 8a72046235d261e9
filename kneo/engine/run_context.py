"""What one run of a workflow is to the code that runs inside it.

:class:`RunContext` is the interface the workflow families (:mod:`kneo.engine.families`), the
step kinds (:mod:`kneo.engine.functions`, :mod:`kneo.engine.human_step`,
:mod:`kneo.engine.child_step`, :mod:`kneo.engine.agent_host`, :mod:`kneo.engine.bridges`,
:mod:`kneo.engine.remote_agents`), the gates and the ``on_error`` policies
(:mod:`kneo.engine.unit_failures`) are written against; :class:`EngineServices` is what they
read of the engine (its injected functions, resolvers and seams, its options). The one
implementation is :class:`kneo.engine.workflow_run.WorkflowRun`, made by
:class:`kneo.engine.executor.WorkflowEngine` per call.

Why protocols: the step kinds depend on this module only, never on the run's implementation,
which depends on them (it dispatches to them); so the engine's modules form no import cycle
through the run. Protocols cost nothing at run time: the step path reads the same attributes
of the same object as before.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from kneo.clock import Clock
from kneo.engine.agent_seam import AgentHost
from kneo.engine.cancellation import CancellationToken
from kneo.engine.human import HumanRequest, HumanResolver
from kneo.engine.journal import Journal
from kneo.engine.remote_tools import LazySessions, McpConnector
from kneo.engine.state import ExecutionState
from kneo.kernel.code import LoadedCode
from kneo.policy.access import HostAccess
from kneo.spec.compiled import CompiledStep, CompiledWorkflow

if TYPE_CHECKING:  # the seams' own modules run units of a RunContext
    from kneo.engine.bridges import AgentBridges
    from kneo.engine.remote_agents import RemoteAgents

__all__ = ["AgentRunner", "EngineOptions", "EngineServices", "RunContext"]


@dataclass
class EngineOptions:
    """How the engine runs a workflow (what it records, how many steps at once)."""

    record_tool_arguments: bool = False
    record_tool_results: bool = False
    max_parallel: int = 8
    extra: dict[str, Any] = field(default_factory=dict)


class AgentRunner(Protocol):
    """Runs one agent unit against its durable transcript (:class:`kneo.engine.agent.AgentLoop`)."""

    def run(self, host: AgentHost, step: CompiledStep, input_text: str) -> str: ...


class EngineServices(Protocol):
    """What a run reads of its engine (:class:`kneo.engine.executor.WorkflowEngine`): all
    I/O is injected there, so a run never reaches past these."""

    clock: Clock
    sleep: Callable[[float], None]
    request_ids: Callable[[], str]
    #: SDK overrides of function steps, by ref or step id
    functions: dict[str, Callable[..., Any]]
    #: the SDK's inline answers to human steps, by step id
    resolvers: dict[str, HumanResolver]
    #: step id -> callable building a human step's prompt from earlier outputs
    prompts: dict[str, Callable[[list[str], dict[str, Any]], str]]
    options: EngineOptions
    mcp: McpConnector | None
    remote_agents: RemoteAgents | None
    bridges: AgentBridges | None

    @property
    def agents(self) -> AgentRunner:
        """The agent loop the engine's agent units run in."""
        ...


class RunContext(Protocol):
    """One run of a workflow as its families and step kinds see it: what it runs, its durable
    state and journal, who it runs for, and the few operations that change them.

    A nested workflow (one backing an agent) is a run context of its own over the same state:
    its unit keys start with :attr:`prefix` and its input is its unit's. Keyword fields
    (a unit's position, a boundary's metadata, a request's fields) are ``object``: they go
    into JSON records as given."""

    engine: EngineServices
    workflow: CompiledWorkflow
    state: ExecutionState
    journal: Journal
    run_id: str
    cancellation: CancellationToken
    #: the caller's metadata (SDK prompts and resolvers read it)
    metadata: dict[str, Any]
    #: what the run may reach on the host; ``None`` outside a platform
    access: HostAccess | None
    #: the project code the run is pinned to
    code: LoadedCode | None
    #: the run's MCP sessions, opened on first use
    mcp: LazySessions
    #: a dry probe (``WorkflowEngine.next_units``): nothing runs, nothing is recorded
    probe: bool
    #: unit keys of a nested workflow start with its unit's key and ``/``; else ``""``
    prefix: str
    input_text: str

    def unit(
        self,
        key: str,
        step: CompiledStep,
        text: str,
        *,
        closing: bool = False,
        before_person: bool = False,
        **position: object,
    ) -> str:
        """Execute one unit once (a completed unit returns its recorded output)."""
        ...

    def agent_unit(self, key: str, step: CompiledStep, text: str) -> str:
        """An agent's answer as unit ``key`` (a step, or a tool an agent answers)."""
        ...

    def spent(self) -> dict[str, int]:
        """What every agent unit of the run has spent."""
        ...

    def now_iso(self) -> str: ...

    def check_cancel(self) -> None:
        """Raise :class:`~kneo.engine.cancellation.RunCancelled` if the run was cancelled."""
        ...

    def emit(
        self,
        event_type: str,
        data: dict[str, Any],
        *,
        step_id: str | None = None,
        unit_key: str | None = None,
        at: str | None = None,
    ) -> None:
        """A trace event (buffered by the journal until the next boundary)."""
        ...

    def commit(
        self,
        kind: str,
        *,
        step_id: str | None,
        unit_key: str | None,
        status: str = "completed",
        attempt: int = 1,
        closing: bool = False,
        replayable: bool = False,
        before_person: bool = False,
        **metadata: object,
    ) -> None:
        """A journal boundary: the state as it is now becomes durable."""
        ...

    def step_event(
        self,
        kind: str,
        key: str,
        step: CompiledStep,
        data: dict[str, Any],
        *,
        status: str = "completed",
        attempt: int = 1,
        at: str | None = None,
        **boundary: object,
    ) -> None:
        """A unit's lifecycle change: its trace event, then a boundary of the same kind."""
        ...

    def decision(self, wait_key: str) -> dict[str, Any] | None:
        """The decision recorded for ``wait_key`` (a copy), if any."""
        ...

    def ask(
        self, *, kind: str, wait_key: str, step: CompiledStep, prompt: str, **fields: object
    ) -> dict[str, Any]:
        """The decision recorded for ``wait_key``, or pause with a new request for it."""
        ...

    def new_request(
        self, *, kind: str, wait_key: str, step: CompiledStep, prompt: str, **fields: object
    ) -> HumanRequest:
        """A request for ``wait_key``; an already pending one keeps its id and timestamps."""
        ...
