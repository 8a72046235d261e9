"""Spec v1 as pydantic models: the contract every other layer reads.

Unknown fields are errors (``extra="forbid"``), so a typo surfaces as ``E_SCHEMA`` with its
path instead of being silently ignored. Models are plain data: no I/O, no registries.
Semantic checks (references, graph shape, governance) live in ``kneo.spec.validation``.
"""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from kneo.spec.extensions import Middleware, SkillSpec
from kneo.spec.schedules import ScheduleSpec
from kneo.spec.triggers import TriggerSpec

SPEC_VERSION = "v1"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# --------------------------------------------------------------------------- agent


class DummyScriptTurn(_Model):
    """One scripted reply of the ``dummy`` provider: final text, or tool calls, or echo."""

    text: str | None = None
    tool_calls: list[ScriptedToolCall] = Field(default_factory=list)
    echo: bool = False


class ScriptedToolCall(_Model):
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class ToolChoiceName(_Model):
    """``tool_choice: {name: TOOL}``: the model must call this one tool."""

    name: str = Field(min_length=1, max_length=128)


class ModelSpec(_Model):
    provider: str = "dummy"
    name: str = "dummy"
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    max_tokens: int | None = Field(default=None, ge=1)
    base_url: str | None = None
    #: Name of the project secret (or environment variable) holding the API key.
    api_key_env: str | None = None
    #: ``azure-openai`` only: the API version (default ``2024-10-21``).
    api_version: str | None = Field(default=None, max_length=40)
    #: Whether the model may, must or must not call a tool when tools are offered: ``auto``
    #: (the default whenever tools are offered), ``required``, ``none`` or ``{name: TOOL}``.
    #: Sent explicitly: some servers (llama.cpp) leave tools out of the prompt without it.
    tool_choice: Literal["auto", "required", "none"] | ToolChoiceName | None = None
    #: Seconds one model call may take (per attempt); ``KNEO_SERV_PROVIDER_TIMEOUT_SECONDS``
    #: (120 s by default) when unset.
    timeout_seconds: float | None = Field(default=None, gt=0, le=3600)
    #: Stream the answer as it is generated (``answer.delta`` events on the run's event
    #: stream, redacted as the final answer), where the provider streams (``dummy``,
    #: OpenAI-compatible); elsewhere the answer comes whole.
    stream: bool = False
    #: ``dummy`` provider only: replies in order; the last one repeats. Empty means echo.
    script: list[DummyScriptTurn] = Field(default_factory=list)


class StrategySpec(_Model):
    type: Literal["react", "plan-act"] = "react"
    max_iterations: int = Field(default=6, ge=1, le=100)


class RuntimePreferences(_Model):
    preferred_mode: str = "native"
    allowed_modes: list[str] = Field(default_factory=lambda: ["native"])


class ToolSelection(_Model):
    """Explicit tool selection. A bare list (``tools: [a, b]``) is the shorthand form."""

    include: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)


class ToolPolicy(_Model):
    allow: list[str] | None = None
    deny: list[str] = Field(default_factory=list)
    network: bool = False
    filesystem: bool | Literal["none", "read", "write"] = False
    shell: bool = False
    allowed_domains: list[str] = Field(default_factory=list)

    @property
    def filesystem_read(self) -> bool:
        return self.filesystem in (True, "read", "write")

    @property
    def filesystem_write(self) -> bool:
        return self.filesystem in (True, "write")


class AgentPolicies(_Model):
    tool: ToolPolicy | None = None


class GuardrailSpec(_Model):
    name: str
    stage: Literal["input", "output", "tool"] = "input"
    type: str = "pattern"
    config: dict[str, Any] = Field(default_factory=dict)


class MemorySpec(_Model):
    type: Literal["none", "buffer", "summary"] = "buffer"
    max_messages: int = Field(default=50, ge=1)
    #: Tool used to compress history for ``summary`` memory.
    compress_with: str | None = None


class ObservabilitySpec(_Model):
    tracing: bool = True
    #: Record tool arguments/results unredacted in traces (needs a data review).
    record_tool_arguments: bool = False
    record_tool_results: bool = False


class RemoteAgentSpec(_Model):
    """An agent served elsewhere over A2A (``agent.remote``): Kneo calls it instead of a
    model. Its card URL must be on the environment's network allow-list, and its secret (a
    declared one, sent as ``Authorization: Bearer``) bound to that destination; every
    request, every redirect hop included, is asked of the trust kernel."""

    protocol: Literal["a2a"] = "a2a"
    #: where the agent card is: ``https://host/.well-known/agent-card.json`` or the base URL
    card_url: str = Field(min_length=1, max_length=2048, pattern=r"^https?://")
    #: a secret declared in ``.kneo/config.yaml`` (its name), sent as a bearer token
    secret: str | None = Field(default=None, min_length=1, max_length=128)
    #: the skill a new task asks for (sent as the message's ``metadata.skill``; a Kneo
    #: service's skills are ``bundle@environment``)
    skill: str | None = Field(default=None, min_length=1, max_length=255)
    #: seconds one exchange with the remote task may take (until it ends or asks)
    timeout_seconds: float = Field(default=300.0, gt=0, le=86400)
    #: seconds the person has to answer a remote question (unset: no deadline)
    answer_timeout_seconds: int | None = Field(default=None, ge=1)
    #: who answers a remote question (``group:NAME``, ``user:EMAIL``)
    assignee: str | None = Field(default=None, min_length=1, max_length=255)


class TokenBudget(_Model):
    """``token_budget``: what this agent's model calls may use (input + output tokens)."""

    #: tokens one model call may use
    per_call: int | None = Field(default=None, ge=1)
    #: tokens this agent may use in one run (all its units)
    per_run: int | None = Field(default=None, ge=1)
    #: ``fail`` the step, or ``pause`` for a person (who may raise the limit or stop)
    on_exceeded: Literal["fail", "pause"] = "fail"

    @model_validator(mode="after")
    def _some_limit(self) -> Self:
        if self.per_call is None and self.per_run is None:
            raise ValueError("token_budget needs per_call, per_run or both")
        return self


class RateLimit(_Model):
    """``rate_limit``: model calls per minute, in this process."""

    calls_per_minute: int = Field(ge=1, le=1_000_000)
    #: ``agent`` (this agent's name) or ``provider`` (its provider and base_url)
    scope: Literal["agent", "provider"] = "agent"
    #: ``wait`` for the window to allow the call, or ``fail`` the step
    on_exceeded: Literal["wait", "fail"] = "wait"


class AgentSpec(_Model):
    name: str
    description: str | None = None
    system_prompt: str = ""
    model: ModelSpec = Field(default_factory=ModelSpec)
    strategy: StrategySpec = Field(default_factory=StrategySpec)
    runtime_preferences: RuntimePreferences = Field(default_factory=RuntimePreferences)
    #: ``[a, b]`` (shorthand), ``{include: [...]}`` (explicit) or ``"all"`` (unrestricted).
    tools: list[str] | ToolSelection | Literal["all", "*"] = Field(default_factory=list)
    #: Tools whose every call pauses for a person's approval.
    approval_required: list[str] = Field(default_factory=list)
    #: Tool name -> argument names a person provides before each call (validated against
    #: the tool's schema); ``[]``: only the required arguments the model left out.
    tool_input: dict[str, list[str]] = Field(default_factory=dict)
    policies: AgentPolicies = Field(default_factory=AgentPolicies)
    guardrails: list[GuardrailSpec] = Field(default_factory=list)
    memory: MemorySpec = Field(default_factory=MemorySpec)
    observability: ObservabilitySpec = Field(default_factory=ObservabilitySpec)
    #: Declared skills (``skills:``) this agent uses: their instructions and tools join its own.
    skills: list[str] = Field(default_factory=list)
    #: Applied around the agent's model and tool calls, in this order.
    middleware: list[Middleware] = Field(default_factory=list, max_length=50)
    #: Back this agent with a workflow (``components.workflows`` key): where the agent is
    #: used (a step, a tool), the workflow runs instead, its input the agent's.
    workflow: str | None = Field(default=None, min_length=1)
    #: A remote agent answering for this one (A2A): where it is used (a step, a tool),
    #: Kneo calls it; its questions (``input-required``) pause the run for a person.
    remote: RemoteAgentSpec | None = None
    #: A bridged agent (``module:function``): the function returns an OpenAI Agents SDK
    #: ``Agent`` (or a LangGraph compiled graph); it runs instead of Kneo's loop, with this
    #: agent's ``model``, its tool calls through the tool guard (``approval_required`` and
    #: ``policies.tool`` apply), its model turns and tool results checkpointed.
    implementation: str | None = Field(default=None, min_length=3, max_length=255)
    #: Tokens this agent's model calls may use, per call and per run (docs/agents.md).
    token_budget: TokenBudget | None = None
    #: Model calls per minute, per agent or per provider (docs/agents.md).
    rate_limit: RateLimit | None = None
    #: Deprecated (v0): use ``system_prompt``.
    instructions: str | None = None
    #: Deprecated (v0): use ``strategy.max_iterations``.
    max_iterations: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        kinds = [k for k in ("remote", "implementation", "workflow") if getattr(self, k)]
        if len(kinds) > 1:
            raise ValueError(
                f"{' and '.join(kinds)} exclude each other: an agent is remote (an A2A agent), "
                "bridged (implementation: a framework's agent) or backed by a workflow"
            )
        return self

    def tool_names(self) -> list[str]:
        """The tool names this agent selects (``all`` selects none by name)."""
        if isinstance(self.tools, list):
            return list(self.tools)
        if isinstance(self.tools, ToolSelection):
            return [t for t in self.tools.include if t not in self.tools.exclude]
        return []

    @property
    def has_guardrails(self) -> bool:
        """A declared guardrail, or a ``guardrail`` middleware layer."""
        return bool(self.guardrails) or any(m.type == "guardrail" for m in self.middleware)

    @property
    def tools_unrestricted(self) -> bool:
        return isinstance(self.tools, str)

    @property
    def tools_shorthand(self) -> bool:
        return isinstance(self.tools, list | str)


# --------------------------------------------------------------------------- human review


class InputField(_Model):
    name: str
    type: Literal["string", "integer", "number", "boolean", "float", "int", "bool"] = "string"
    required: bool = True
    description: str | None = None
    enum: list[Any] | None = None


class HumanReview(_Model):
    """Step-level gates: confirm before, collect input before, review output after."""

    requires_confirmation: bool = False
    message: str | None = None
    on_reject: Literal["skip", "cancel", "fail", "retry"] = "skip"
    input_schema: list[InputField] = Field(default_factory=list)
    input_message: str | None = None
    review_output: bool = False
    max_reviews: int = Field(default=3, ge=1)
    assignee: str | None = None
    timeout_seconds: int | None = Field(default=None, ge=1)
    on_timeout: Literal["fail", "continue", "reject", "escalate"] = "fail"
    #: ``on_timeout: escalate`` hands the request to this assignee (``group:NAME``,
    #: ``user:EMAIL`` or a key's name) when it expires.
    escalate_to: str | None = Field(default=None, min_length=1, max_length=255)

    @model_validator(mode="after")
    def _escalation_needs_escalate(self) -> Self:
        if self.escalate_to is not None and self.on_timeout != "escalate":
            raise ValueError("escalate_to needs on_timeout: escalate")
        return self

    #: Graph nodes: a person reviews every visit (each iteration of a loop): continue,
    #: edit the output and continue, or stop the loop.
    review_iterations: bool = False
    #: Where a stopped loop goes on (a node id); unset, the run ends with the node's output.
    on_stop: str | None = None


# --------------------------------------------------------------------------- workflow


class StepSpec(_Model):
    id: str = Field(min_length=1)
    #: ``workflow``: ``ref`` names a bundle of the run's project whose active revision in the
    #: run's environment runs as a child run; the step waits for it (docs/triggers.md).
    kind: Literal["agent", "function", "human", "workflow"] = "agent"
    ref: str = Field(min_length=1)
    description: str | None = None
    on_error: Literal["fail", "retry", "continue", "pause"] = "fail"
    max_retries: int = Field(default=0, ge=0, le=20)
    retry_backoff_seconds: float = Field(default=0.0, ge=0.0)
    timeout_seconds: float | None = Field(default=None, gt=0)
    human_review: HumanReview | None = None


class EdgeCondition(_Model):
    """A safe condition over the previous step's output text: exactly one test is set."""

    contains: str | None = None
    not_contains: str | None = None
    equals: str | None = None
    regex: str | None = None
    predicate: str | None = None
    ignore_case: bool = True

    @model_validator(mode="after")
    def _exactly_one(self) -> EdgeCondition:
        tests = [self.contains, self.not_contains, self.equals, self.regex, self.predicate]
        if sum(t is not None for t in tests) != 1:
            raise ValueError(
                "a condition needs exactly one of contains, not_contains, equals, regex, predicate"
            )
        return self


class EdgeSpec(_Model):
    source: str = Field(alias="from")
    target: str = Field(alias="to")
    condition: EdgeCondition | None = None
    #: Taken when no conditional edge from ``source`` matches.
    default: bool = False


class SelectorSpec(_Model):
    type: Literal["sequence", "round_robin"] = "sequence"
    sequence: list[str] = Field(default_factory=list)
    max_turns: int | None = Field(default=None, ge=1)


#: The human pause kinds an eval case may expect (:mod:`kneo.evals.suite`): every
#: :data:`RequestKind` but ``budget`` and ``child_run``.
PauseKind = Literal[
    "approval",
    "confirmation",
    "input",
    "review",
    "route",
    "iteration",
    "tool_approval",
    "tool_input",
    "external_tool",
    "question",
    "error",
]
#: The kinds of human request a run pauses on (``kneo.engine.human.HumanRequest.kind``).
RequestKind = Literal[PauseKind, "budget", "child_run"]

WorkflowType = Literal["sequential", "graph", "concurrent", "handoff", "group-chat", "group_chat"]


class WorkflowSpec(_Model):
    type: WorkflowType = "sequential"
    name: str = "workflow"
    description: str | None = None
    steps: list[StepSpec] = Field(default_factory=list)
    nodes: list[StepSpec] = Field(default_factory=list)
    edges: list[EdgeSpec] = Field(default_factory=list)
    start: str | None = None
    #: Loop guard for graphs: how often one node may run in one run.
    max_visits: int = Field(default=5, ge=1, le=1000)
    participants: list[StepSpec] = Field(default_factory=list)
    selector: SelectorSpec | None = None
    rounds: int = Field(default=1, ge=1, le=100)

    @field_validator("nodes", mode="before")
    @classmethod
    def _keyed_nodes(cls, value: object) -> Any:
        """Graph nodes may be keyed (``nodes: {analyze: {kind: agent, ref: a}}``)."""
        if isinstance(value, dict):
            return [
                {"id": key, **body} if isinstance(body, dict) else body
                for key, body in value.items()
            ]
        return value

    @property
    def family(self) -> str:
        """``group_chat`` and ``group-chat`` are one family; this returns ``group-chat``."""
        return "group-chat" if self.type == "group_chat" else self.type

    def members(self) -> list[StepSpec]:
        """The steps, nodes or participants, whichever this family uses."""
        if self.family == "sequential":
            return self.steps
        if self.family == "graph":
            return self.nodes
        return self.participants


# --------------------------------------------------------------------------- components


class FunctionComponent(_Model):
    ref: str = Field(description="module:function")
    description: str | None = None


class HumanComponent(_Model):
    description: str | None = None
    prompt: str | None = None
    assignee: str | None = None
    timeout_seconds: int | None = Field(default=None, ge=1)
    on_timeout: Literal["fail", "continue", "reject", "escalate"] = "fail"
    #: ``on_timeout: escalate`` hands the request to this assignee (``group:NAME``,
    #: ``user:EMAIL`` or a key's name) when it expires.
    escalate_to: str | None = Field(default=None, min_length=1, max_length=255)

    @model_validator(mode="after")
    def _escalation_needs_escalate(self) -> Self:
        if self.escalate_to is not None and self.on_timeout != "escalate":
            raise ValueError("escalate_to needs on_timeout: escalate")
        return self

    #: Choices for ``selected`` decisions; for graph route selection, node ids.
    options: list[str] = Field(default_factory=list)
    #: JSON Schema for ``provided``/``edited`` content.
    input_schema: dict[str, Any] | None = None
    #: Decisions this human accepts; default depends on options/input_schema.
    decisions: list[Literal["approved", "rejected", "edited", "selected", "provided"]] | None = None


class ToolComponent(_Model):
    description: str = ""
    implementation: str | None = Field(default=None, description="module:function")
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    capabilities: list[Literal["network", "filesystem_read", "filesystem_write", "shell"]] = Field(
        default_factory=list
    )
    requires_approval: bool = False
    #: Run by the caller, not by Kneo: the run pauses with the call and continues with the
    #: result the caller provides (no ``implementation`` needed).
    external: bool = False
    #: JSON Schema the caller's result must match (as JSON); unset: any non-empty text.
    result_schema: dict[str, Any] | None = None
    #: An agent (its name) answering the call: the model's ``input`` argument is its input,
    #: its final answer the result (no ``implementation`` needed).
    agent: str | None = Field(default=None, min_length=1)


class ComponentsSpec(_Model):
    agents: dict[str, AgentSpec] = Field(default_factory=dict)
    functions: dict[str, FunctionComponent] = Field(default_factory=dict)
    humans: dict[str, HumanComponent] = Field(default_factory=dict)
    tools: dict[str, ToolComponent] = Field(default_factory=dict)
    #: Workflows an agent may be backed by (``agent.workflow``).
    workflows: dict[str, WorkflowSpec] = Field(default_factory=dict)

    @field_validator("functions", mode="before")
    @classmethod
    def _function_shorthand(cls, value: object) -> Any:
        """``functions: {draft: "pkg.mod:draft"}`` is shorthand for ``{ref: ...}``."""
        if isinstance(value, dict):
            return {k: {"ref": v} if isinstance(v, str) else v for k, v in value.items()}
        return value


class McpImport(_Model):
    name: str
    #: A server the project declares (``mcp_servers`` in ``.kneo/config.yaml``), which gives
    #: the transport, command or url and secret. With no ``command`` and no ``url`` an
    #: import names the declared server called ``name``.
    server: str | None = None
    transport: Literal["stdio", "http", "sse"] = "stdio"
    #: A command of the spec's own: runs only from a signed bundle where the environment's
    #: policy allows it (``resources.bundle_processes``).
    command: list[str] | None = None
    url: str | None = None
    tools: list[str] = Field(default_factory=list)
    #: A declared secret (its name or variable) for a server the spec defines itself.
    secret_env: str | None = None

    @model_validator(mode="after")
    def _server_or_own(self) -> McpImport:
        if self.server is not None and (self.command or self.url or self.secret_env):
            raise ValueError(
                "an import of a declared server takes its command, url and secret from the "
                "project config: drop command, url and secret_env"
            )
        return self

    @property
    def declared_server(self) -> str | None:
        """The declared server this import uses, or ``None`` when it defines its own."""
        if self.server is not None:
            return self.server
        return self.name if self.command is None and self.url is None else None


class McpSpec(_Model):
    imports: list[McpImport] = Field(default_factory=list)


class PinnedFile(_Model):
    """One project module a signed spec runs, pinned by the sha256 of its bytes."""

    module: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
    #: relative to the project root, ``/``-separated, never leaving it
    path: str = Field(pattern=r"^[^/\\][^\\]*\.py$", max_length=1024)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    package: bool = False

    @field_validator("path")
    @classmethod
    def _inside(cls, value: str) -> str:
        if ".." in value.split("/"):
            raise ValueError("a pinned path stays inside the project (no '..')")
        return value


class Spec(_Model):
    """A whole spec document (``version: v1``)."""

    version: Literal["v1"] = "v1"
    agent: AgentSpec | None = None
    workflow: WorkflowSpec | None = None
    components: ComponentsSpec = Field(default_factory=ComponentsSpec)
    mcp: McpSpec = Field(default_factory=McpSpec)
    #: Skills agents switch on by name (``agent.skills``).
    skills: dict[str, SkillSpec] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    #: The project code the spec runs, pinned when it is signed (``kneo spec bundle sign``
    #: writes it; the digest covers it): its refs run these bytes, or nothing.
    code: list[PinnedFile] | None = Field(default=None, max_length=500)
    #: When runs of this spec start by themselves: ticked only while it is the active
    #: revision of a bundle in the registry (:mod:`kneo.spec.schedules`, docs/triggers.md).
    schedules: list[ScheduleSpec] = Field(default_factory=list, max_length=100)
    #: Which inbound events start runs of this spec, at a per-trigger endpoint: also only
    #: while it is the active revision of a bundle (:mod:`kneo.spec.triggers`).
    triggers: list[TriggerSpec] = Field(default_factory=list, max_length=50)

    @model_validator(mode="after")
    def _has_something_to_run(self) -> Spec:
        if self.agent is None and self.workflow is None:
            raise ValueError("a spec needs an agent, a workflow, or both")
        for kind, items in (("schedule", self.schedules), ("trigger", self.triggers)):
            names = [s.name for s in items]
            if len(names) != len(set(names)):
                raise ValueError(f"{kind} names must be unique within a spec")
        return self

    def all_agents(self) -> dict[str, AgentSpec]:
        """Every agent by name: the top-level agent and ``components.agents``."""
        agents = dict(self.components.agents)
        if self.agent is not None:
            agents.setdefault(self.agent.name, self.agent)
        return agents


DummyScriptTurn.model_rebuild()
StepSpec.model_rebuild()
