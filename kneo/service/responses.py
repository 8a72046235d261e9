"""Documented response shapes of the run and human-task operations, for generated clients.

The routes return the views of :mod:`kneo.platform.results` as they are (a response model
would filter and re-validate every answer); these models only describe them in the OpenAPI
document, so ``runsCreate()`` in a generated client returns a typed ``RunOutcome`` instead of
``unknown``. One table maps operation ids to models (:data:`RESPONSES`), applied to the
document in one place (:func:`document_responses`); ``tests/service/test_response_schemas.py``
validates real answers against them, so a view that drifts from its model fails there. Every
model allows fields it does not name: a field added to a view is not a breaking change.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class HumanRequestView(_Open):
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
    status: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    deadline_epoch: int | None = None


class RunOutcomeMetadata(_Open):
    workflow_kind: str | None = None
    trace_event_count: int
    pending_human_request: HumanRequestView | None = None
    pending_human_requests: list[HumanRequestView] | None = None
    environment: str | None = None
    error: Any = None


class RunOutcome(_Open):
    """What starting, resuming, cancelling or continuing a run answers."""

    run_id: str
    status: str = Field(description="queued, running, paused, succeeded, failed, cancelled, ...")
    output_text: str | None
    human_intervention_required: bool
    continuation_id: str | None = Field(description="Resume it here when the run paused.")
    request_id: str | None = Field(description="The single pending request's id.")
    metadata: RunOutcomeMetadata


class RunView(_Open):
    """``GET /v1/runs/{run_id}``: a run's status, position and outcome."""

    run_id: str
    status: str
    target: str | None
    agent_name: str | None
    workflow_name: str | None
    workflow_kind: str | None
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
    cancel_requested: bool
    deadline_at: str | None
    created_at: str | None
    updated_at: str | None
    started_at: str | None
    finished_at: str | None
    version: int
    metadata: dict[str, Any]


class _Page(_Open):
    count: int = Field(description="Items on this page.")
    total: int | None = Field(description="All matching items (with include=counts).")
    limit: int
    offset: int
    next_cursor: str | None = Field(description="Pass as cursor for the next page.")
    sort_by: str | None = None
    sort_order: str | None = None


class RunSummary(_Open):
    run_id: str
    status: str
    workflow_name: str | None
    workflow_kind: str | None
    created_at: str | None
    updated_at: str | None


class RunList(_Page):
    runs: list[RunSummary]


class HumanTask(_Open):
    """A paused run's (or a promotion's) continuation and its pending requests."""

    continuation_id: str
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


class HumanTaskList(_Page):
    tasks: list[HumanTask]
    counts_by_assignee: dict[str, int] | None = None


#: operation id -> (status code, model) of the answers it documents.
RESPONSES: dict[str, tuple[tuple[str, type[BaseModel]], ...]] = {
    "runs-create": (("200", RunOutcome), ("202", RunOutcome)),
    "specs-run": (("200", RunOutcome), ("202", RunOutcome)),
    "runs-get": (("200", RunView),),
    "runs-list": (("200", RunList),),
    "runs-cancel": (("200", RunOutcome),),
    "runs-continue": (("200", RunOutcome),),
    "human-tasks-list": (("200", HumanTaskList),),
    "human-tasks-get": (("200", HumanTask),),
    "human-tasks-resume": (("200", RunOutcome),),
    "human-tasks-decide": (("200", RunOutcome),),
}
_REF = "#/components/schemas/{model}"


def document_responses(document: dict[str, Any]) -> None:
    """Put :data:`RESPONSES` into an OpenAPI document (in place): each model under
    ``components.schemas``, referenced from its operations' JSON answers."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for path in document.get("paths", {}).values():
        for operation in path.values():
            for status, model in RESPONSES.get(operation.get("operationId"), ()):
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
    "HumanRequestView",
    "HumanTask",
    "HumanTaskList",
    "RunList",
    "RunOutcome",
    "RunSummary",
    "RunView",
    "document_responses",
]
