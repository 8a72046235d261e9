"""Documented response shapes of the run, human-task, graph and policy-preview operations,
for generated clients.

The routes return the views of :mod:`kneo.platform.results` as they are (a response model
would filter and re-validate every answer); these models only describe them in the OpenAPI
document, so ``runsCreate()`` in a generated client returns a typed ``RunOutcome`` instead of
``unknown``. One table maps operation ids to models (:data:`RESPONSES`), applied to the
document in one place (:func:`document_responses`); ``tests/service/test_response_schemas.py``
validates real answers against them, so a view that drifts from its model fails there. Every
model allows fields it does not name: a field added to a view is not a breaking change.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class OpenView(BaseModel):
    """Base of every documented view. It allows fields it does not name, and its schema is
    built on first use (``defer_build``): only the OpenAPI document and the schema tests use
    these models, so a worker or a CLI process no longer pays ~0.1 s of import building them."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, defer_build=True)


class HumanRequestView(OpenView):
    """One question to a person (``kneo.engine.human.HumanRequest`` as operators see it)."""

    request_id: str
    kind: str = Field(description="approval, confirmation, input, review, selection, ...")
    prompt: str | None = None
    assignee: str | None = None
    options: list[str] = Field(default_factory=list)
    input_schema: dict[str, Any] | None = None
    decisions: list[str] = Field(default_factory=list, description="Decisions it accepts.")
    step_id: str | None = None
    wait_key: str | None = None
    context: dict[str, Any] = Field(default_factory=dict)
    created_at: str | None = None
    expires_at: str | None = None
    timeout_seconds: float | None = None
    on_timeout: str | None = None
    escalate_to: str | None = Field(None, description="Who it passes to when it escalates.")
    status: str | None = None
    escalated_at: str | None = None
    escalated_from: str | None = Field(None, description="The assignee before it escalated.")
    metadata: dict[str, Any] = Field(default_factory=dict)
    deadline_epoch: int | None = None


class RunOutcomeMetadata(OpenView):
    workflow_kind: str | None = None
    trace_event_count: int
    pending_human_request: HumanRequestView | None = None
    pending_human_requests: list[HumanRequestView] | None = None
    environment: str | None = None
    session_id: str | None = Field(None, description="The session the run was started in.")
    error: Any = None


class RunOutcome(OpenView):
    """What starting, resuming, cancelling or continuing a run answers."""

    run_id: str
    status: str = Field(description="queued, running, paused, succeeded, failed, cancelled, ...")
    output_text: str | None
    human_intervention_required: bool
    continuation_id: str | None = Field(description="Resume it here when the run paused.")
    request_id: str | None = Field(description="The single pending request's id.")
    metadata: RunOutcomeMetadata


class ToolCallView(OpenView):
    id: str | None
    name: str | None
    arguments: dict[str, Any]


class MessageView(OpenView):
    """One message of an agent's transcript (redacted; ``content`` cut at 4,000 characters,
    ``content_chars`` its whole length)."""

    index: int
    role: str = Field(description="system, user, assistant or tool")
    content: str | None = None
    content_chars: int | None = None
    tool_calls: list[ToolCallView] | None = None
    tool_call_id: str | None = Field(None, description="The call a tool result answers.")
    name: str | None = Field(None, description="The tool a result is from.")


class ConversationView(OpenView):
    """One agent step's transcript up to now (the newest 200 messages)."""

    unit: str
    step_id: str
    agent: str | None
    turns: int
    finished: bool
    omitted: int = Field(description="Older messages left out.")
    messages: list[MessageView]


class DecisionView(OpenView):
    """A decision recorded on a run (a person's, or a timeout's: ``automatic``)."""

    wait_key: str
    request_id: str | None
    decision: str | None
    decided_by: str | None
    decided_at: str | None
    content: str | None = None
    selected_option: str | None = None
    automatic: bool | None = None
    metadata: dict[str, Any] | None = Field(
        None, description="What the decider sent with it (redacted); a timeout's: why."
    )


class StepPosition(OpenView):
    step_id: str
    kind: str | None
    status: str = Field(description="done, skipped, waiting or not_reached")
    visits: int


class PositionView(OpenView):
    family: str | None
    steps: list[StepPosition]
    visited: list[str]


class RequestContext(OpenView):
    """What is particular to one request: the model's words for a tool call, an output
    under review next to what produced it."""

    request_id: str
    unit: str | None
    message_index: int | None = None
    agent_message: str | None = None
    output: str | None = None
    output_chars: int | None = None
    produced_by: dict[str, Any] | None = None


class TaskContext(OpenView):
    """``include=context``: the run a decider judges by (redacted for the caller)."""

    run: dict[str, Any]
    position: PositionView
    conversations: list[ConversationView]
    decisions: list[DecisionView]
    requests: list[RequestContext]


class _Cost(OpenView):
    cost: float | None = Field(
        default=None,
        description="In currency units, priced by the project's price table when each call "
        "was recorded (docs/runs.md#costs); null when a call was not priced (no table, or a "
        "model it does not name), never 0 for unknown.",
    )
    currency: str | None = Field(default=None, description="The price table's (ISO 4217).")
    unpriced_calls: int = Field(default=0, description="Model calls no price table priced.")


class StepUsage(_Cost):
    step_id: str
    model_calls: int
    tool_calls: int
    input_tokens: int
    output_tokens: int


class RunUsage(_Cost):
    """What a run's agents spent, as the providers reported it, and what it cost
    (docs/runs.md#usage)."""

    model_calls: int
    tool_calls: int
    input_tokens: int
    output_tokens: int
    steps: list[StepUsage] = Field(description="Per step that ran an agent, in first-use order.")


class ChildRunView(OpenView):
    """A child run a ``kind: workflow`` step of the run started (docs/triggers.md)."""

    run_id: str | None = Field(description="None when the child could not start.")
    step_id: str | None = Field(description="The step that started it.")
    status: str = Field(description="The child's status now (not_started: it was refused).")


class RunView(OpenView):
    """``GET /v1/runs/{run_id}``: a run's status, position and outcome."""

    run_id: str
    status: str
    target: str | None
    agent_name: str | None
    workflow_name: str | None
    workflow_kind: str | None
    session_id: str | None = Field(None, description="The session the run was started in.")
    current_step_index: int | None
    current_step_id: str | None
    current_node_id: str | None
    visited_steps: list[str]
    visited_nodes: list[str]
    trace_event_count: int
    input_text: str | None
    output_text: str | None
    error: Any
    continuation_id: str | None
    human_intervention_required: bool = Field(description="Whether it waits for a person.")
    request_id: str | None = Field(
        description="The first pending request's id while it is paused (resume with it)."
    )
    cancel_requested: bool
    deadline_at: str | None
    created_at: str | None
    updated_at: str | None
    started_at: str | None
    finished_at: str | None
    version: int
    metadata: dict[str, Any]
    usage: RunUsage
    parent_run_id: str | None = Field(
        None, description="The run whose workflow step started this one (a child run)."
    )
    children: list[ChildRunView] = Field(
        default_factory=list, description="The child runs its workflow steps started."
    )
    conversations: list[ConversationView] | None = Field(
        None, description="With include=conversation."
    )
    decisions: list[DecisionView] | None = Field(None, description="With include=conversation.")


class _Page(OpenView):
    count: int = Field(description="Items on this page.")
    total: int | None = Field(
        description="All matching items, exact (KNEO_SERV_MAX_LIST_COUNT=N: counted up to N "
        "past the page, then total_capped)."
    )
    limit: int
    offset: int
    next_cursor: str | None = Field(description="Pass as cursor for the next page.")
    sort_by: str | None = None
    sort_order: str | None = None
    total_capped: bool | None = Field(
        None, description="total stopped at the count cap past this page: more rows match."
    )
    window: int | None = Field(None, description="The deepest offset served (then: cursor).")


class RunSummary(OpenView):
    run_id: str
    status: str
    continuation_id: str | None = Field(None, description="Its task, while it is paused.")
    request_id: str | None = Field(None, description="Its first pending request, if paused.")
    workflow_name: str | None
    workflow_kind: str | None
    session_id: str | None = None
    has_error: bool | None = Field(None, description="Whether the run recorded an error.")
    created_at: str | None
    updated_at: str | None


class RunList(_Page):
    runs: list[RunSummary]


class SessionChain(RunList):
    """``GET /v1/sessions/{session_id}``: the session's runs, oldest first."""

    session_id: str


class HumanTask(OpenView):
    """A paused run's (or a promotion's) continuation and its pending requests."""

    continuation_id: str
    id: str | None = Field(None, description="The continuation_id again (in listings).")
    run_id: str | None
    status: str
    workflow_kind: str | None
    workflow_name: str | None
    environment: str | None
    created_at: str | None
    updated_at: str | None
    expires_at: str | None
    escalated_at: str | None
    request: HumanRequestView | None = Field(description="The first of ``requests``.")
    requests: list[HumanRequestView]
    input_preview: str | None = Field(
        None, description="The first words of the run's input (in a listing)."
    )
    context: TaskContext | None = Field(
        None, description="With include=context (null for a task of no run)."
    )


class HumanTaskList(_Page):
    tasks: list[HumanTask]
    counts_by_assignee: dict[str, int] | None = None
    counts_capped: list[str] | None = Field(
        None,
        description="With include=counts: the assignees counted up to the cap "
        "(KNEO_SERV_MAX_LIST_COUNT) and stopped there: each has more than its count shows.",
    )


class GraphNodeView(OpenView):
    """One step of a workflow graph (:class:`kneo.spec.graph.GraphNode`)."""

    id: str
    kind: str = Field(description="agent, function, human or workflow")
    ref: str
    on_error: str
    max_retries: int
    timeout_seconds: float | None = None
    visits: int = Field(description="How often the run executed it (0 on a spec's graph).")
    state: str = Field(description="pending, visited, current or failed")


class GraphEdgeView(OpenView):
    """One way between two nodes (:class:`kneo.spec.graph.GraphEdge`)."""

    source: str
    target: str
    kind: str = Field(description="next, branch or again")
    condition: str | None = Field(None, description='As people read it: contains "APPROVED".')
    default: bool
    label: str | None = None
    conditional: bool
    taken: int = Field(description="How often the run went this way (0 on a spec's graph).")


class WorkflowGraphView(OpenView):
    """A workflow's nodes and edges (``POST /v1/specs/graph``)."""

    workflow_name: str
    workflow_kind: str
    target: str
    start: str | None = None
    max_visits: int | None = None
    rounds: int | None = None
    nodes: list[GraphNodeView]
    edges: list[GraphEdgeView]
    current: str | None = Field(None, description="The node the run is at (runs only).")
    visited: list[str] = Field(description="Nodes executed, first reached first.")


class RunGraphView(WorkflowGraphView):
    """A run's workflow graph with where it is (``GET /v1/runs/{run_id}/graph``)."""

    run_id: str
    status: str


class GateChangeView(OpenView):
    gate: str
    direction: str = Field(description="loosened or tightened")
    summary: str


class PolicyPreviewView(OpenView):
    """What a ``PUT`` of an environment policy would change (:mod:`kneo.policy.preview`)."""

    environment: str
    current_source: str = Field(description="stored, project or none")
    current_policy: dict[str, Any] | None = None
    policy: dict[str, Any]
    changed: bool
    diff: dict[str, dict[str, Any]]
    changes: list[GateChangeView]
    loosened: list[GateChangeView]
    tightened: list[GateChangeView]
    needs_policy_approval: bool = Field(
        description="It loosens a gate: a change the GitOps controller would hold for approval."
    )
    runs_evaluated: int = Field(description="Recent runs of the environment checked twice.")
    affected_run_ids: list[str] = Field(description="Runs the proposed policy judges otherwise.")
    newly_blocking: list[str] = Field(description="Runs admitted now that it would refuse.")


class SkillView(OpenView):
    """A skill the project declares (``skills:`` in ``.kneo/config.yaml``)."""

    name: str
    description: str
    instructions: str = Field(description="What joins the system prompt of an agent using it.")
    tools: list[str] = Field(description="Tools it brings to the agent's selection.")
    path: str | None = Field(
        description="The file of the project its instructions are kept in (instructions_file)."
    )
    source: str = Field(description="project")


class SkillList(OpenView):
    """``GET /v1/skills``: the project's skills, by name."""

    skills: list[SkillView]
    count: int = Field(description="Items on this page.")
    total: int
    total_capped: bool
    limit: int
    offset: int
    sort_by: str
    sort_order: str


#: operation id -> (status code, model) of the answers it documents.
RESPONSES: dict[str, tuple[tuple[str, type[BaseModel]], ...]] = {
    "runs-create": (("200", RunOutcome), ("202", RunOutcome)),
    "specs-run": (("200", RunOutcome), ("202", RunOutcome)),
    "runs-get": (("200", RunView),),
    "runs-list": (("200", RunList),),
    "sessions-get": (("200", SessionChain),),
    "runs-cancel": (("200", RunOutcome),),
    "runs-continue": (("200", RunOutcome), ("202", RunOutcome)),
    "human-tasks-list": (("200", HumanTaskList),),
    "human-tasks-get": (("200", HumanTask),),
    "human-tasks-resume": (("200", RunOutcome), ("202", RunOutcome)),
    "human-tasks-decide": (("200", RunOutcome), ("202", RunOutcome)),
    "runs-graph": (("200", RunGraphView),),
    "specs-graph": (("200", WorkflowGraphView),),
    "environment-policies-preview": (("200", PolicyPreviewView),),
    "skills-list": (("200", SkillList),),
}
_REF = "#/components/schemas/{model}"


def document_responses(
    document: dict[str, Any],
    table: Mapping[str, tuple[tuple[str, type[BaseModel]], ...]] = RESPONSES,
) -> None:
    """Put ``table`` (:data:`RESPONSES` by default) into an OpenAPI document (in place): each
    model under ``components.schemas``, referenced from its operations' JSON answers."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for path in document.get("paths", {}).values():
        for operation in path.values():
            for status, model in table.get(operation.get("operationId"), ()):
                generated = model.model_json_schema(ref_template=_REF)
                schemas.update(generated.pop("$defs", {}))
                schemas[model.__name__] = generated
                answer = operation.setdefault("responses", {}).setdefault(status, {})
                answer.setdefault("description", "Successful Response")
                answer["content"] = {
                    "application/json": {"schema": {"$ref": _REF.format(model=model.__name__)}}
                }


__all__ = [
    "RESPONSES",
    "GateChangeView",
    "GraphEdgeView",
    "GraphNodeView",
    "HumanRequestView",
    "HumanTask",
    "HumanTaskList",
    "OpenView",
    "PolicyPreviewView",
    "RunGraphView",
    "RunList",
    "RunOutcome",
    "RunSummary",
    "RunView",
    "TaskContext",
    "WorkflowGraphView",
    "document_responses",
]
