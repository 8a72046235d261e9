"""Documented answers of the operations :mod:`kneo.service.responses` does not cover: health,
audit, notifications, policies, specs, a run's trace, checkpoints, replay and recovery, the
registry, the controller, projects and the version.

Like those models, these only describe the views the routes return (each allows fields it
does not name), so a generated client types every answer; ``tests/service/
test_response_schemas.py`` validates real answers against them. Their table
(:data:`PLATFORM_RESPONSES`) joins :data:`kneo.service.responses.RESPONSES`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from kneo.service.responses import OpenView, WorkflowGraphView
from kneo.service.responses_rollouts import ROLLOUT_RESPONSES


class _Listing(OpenView):
    """The counts every list answers with (``total`` exact; see docs/service_api.md)."""

    count: int = Field(description="Items on this page.")
    total: int | None = Field(None, description="All matching items (with include=counts).")
    total_capped: bool | None = None
    limit: int | None = None
    offset: int | None = None
    next_cursor: str | None = Field(None, description="Pass as cursor for the next page.")


class HealthView(OpenView):
    """``/healthz``, ``/livez`` and ``/readyz``: whether it is up, and the checks."""

    ok: bool
    metadata: dict[str, Any]


class VersionView(OpenView):
    api_version: str
    kneo_version: str
    version: str
    revision: str | None = None
    schema_revision: str | None = None
    schema_head: str | None = None


class AuditEventView(OpenView):
    """One audit event (``metadata``/``occurred_at``: ``payload``/``created_at`` again)."""

    id: str
    event_type: str
    actor: str | None
    run_id: str | None
    continuation_id: str | None
    payload: dict[str, Any]
    metadata: dict[str, Any] | None = None
    created_at: str | None
    occurred_at: str | None = None


class AuditEventList(_Listing):
    events: list[AuditEventView]
    sort_by: str | None = None
    sort_order: str | None = None
    window: int | None = None


class NotificationList(_Listing):
    notifications: list[dict[str, Any]]
    counts: dict[str, int] | None = Field(None, description="Notifications by status.")
    unrouted_events: int | None = None


class NotificationRetry(OpenView):
    retried: int = Field(description="Dead notifications queued again.")


class EnvironmentPolicyList(OpenView):
    policies: dict[str, dict[str, Any]]
    count: int
    total: int | None = None


class EnvironmentPolicyView(OpenView):
    environment: str
    policy: dict[str, Any]
    previous_policy: dict[str, Any] | None = Field(None, description="After a replace.")


class TraceEventView(OpenView):
    sequence: int
    event_type: str
    step_id: str | None
    payload: dict[str, Any]
    created_at: str | None
    type: str | None = None
    timestamp: str | None = None


class TraceList(_Listing):
    run_id: str
    events: list[TraceEventView]


class CheckpointView(OpenView):
    sequence: int
    type: str
    step_id: str | None
    status: str | None
    created_at: str | None
    size_bytes: int | None = None
    truncated: bool | None = None
    metadata: dict[str, Any] | None = None
    payload: Any = None


class CheckpointList(_Listing):
    run_id: str
    checkpoints: list[CheckpointView]
    sort_by: str | None = None
    sort_order: str | None = None


class CheckpointDiff(OpenView):
    run_id: str
    from_sequence: int
    to_sequence: int
    change_count: int
    added: list[dict[str, Any]]
    removed: list[dict[str, Any]]
    changed: list[dict[str, Any]]


class RecoveryView(OpenView):
    """What a failed or stopped run would do next (``kneo runs recovery``)."""

    run_id: str
    status: str
    workflow_kind: str | None = None
    can_continue: bool
    reason: str | None = None
    next_step: str | None = None
    completed_steps: list[str] = Field(default_factory=list)


class ReplayView(OpenView):
    run_id: str
    status: str
    timeline: list[dict[str, Any]]
    pending_human_request_id: str | None = None


class PolicyReportView(OpenView):
    valid: bool
    report: dict[str, Any] | None = None


class DiagnosticView(OpenView):
    code: str
    severity: str
    path: str | None = None
    message: str
    suggestion: str | None = None


class SpecValidation(PolicyReportView):
    diagnostics: list[DiagnosticView] = Field(default_factory=list)


class SpecCompilation(OpenView):
    ok: bool
    compiled: bool | None = None
    environment: str | None = None
    workflow: dict[str, Any] | None = None


class SpecExplanation(OpenView):
    valid: bool
    environment: str | None = None
    workflow: dict[str, Any] | None = None
    summary: dict[str, Any] | None = None
    explanation: dict[str, Any] | None = None


class CredentialsView(OpenView):
    """Which credentials the service could use: names and presence, never values."""

    inventory: dict[str, Any]


class ProjectView(OpenView):
    name: str
    status: str
    created_at: str | None
    updated_at: str | None
    definition: dict[str, Any] | None = Field(None, description="For an administrator.")


class ProjectList(OpenView):
    projects: list[ProjectView]
    home: str | None = Field(None, description="The caller's first project.")


class PinView(OpenView):
    revision: int
    digest: str
    reason: str | None
    pinned_by: str | None
    since: str | None


class RevisionView(OpenView):
    """One bundle revision in one environment (its spec only where asked)."""

    bundle_name: str
    environment: str
    revision: int
    digest: str
    commit: str | None
    status: str
    signer_key_ids: list[str] = Field(default_factory=list)
    approved_by: list[str] = Field(default_factory=list)
    created_at: str | None = None
    activated_at: str | None = None
    deactivated_at: str | None = None
    ready: str | None = Field(None, description="The Ready condition of an active revision.")


class RevisionList(_Listing):
    revisions: list[RevisionView]


class BundleView(OpenView):
    bundle: str
    environment: str
    active: RevisionView | None
    revisions: list[RevisionView]
    conditions: list[dict[str, Any]]
    suspended: bool
    pin: PinView | None


class RevisionDiff(OpenView):
    bundle: str
    environment: str
    from_revision: int = Field(alias="from")
    to_revision: int = Field(alias="to")
    changed: dict[str, Any]
    spec_diff: str


class BundleGraphView(WorkflowGraphView):
    revision: int | None = None
    digest: str | None = None


class PinChange(OpenView):
    bundle: str
    environment: str
    pin: PinView | None
    changed: bool | None = None


class SuspensionChange(OpenView):
    bundle: str
    environment: str
    suspended: bool
    reason: str | None = None
    suspended_by: str | None = None
    changed: bool | None = None


class RollbackAnswer(OpenView):
    """``rolled_back`` (its new revision and pin) or ``awaiting_approval`` (its task)."""

    status: str
    bundle: str
    environment: str
    revision: int | None = None
    rollback_of: int | None = None
    digest: str | None = None
    continuation_id: str | None = None
    pin: PinView | None = None


class BlockedDigestView(OpenView):
    digest: str
    reason: str | None = None
    blocked_by: str | None = None
    since: str | None = None


class BlockedDigestList(OpenView):
    blocked: list[BlockedDigestView]
    count: int


class BlockChange(BlockedDigestView):
    blocked: bool
    changed: bool | None = None


class ControllerRequestView(OpenView):
    """A queued reconcile or plan: ``queued``, ``running`` or ``done`` with its result."""

    request_id: int
    kind: str
    status: str
    requested_at: str | None
    started_at: str | None
    finished_at: str | None
    result: dict[str, Any] | None


class ControllerStatusView(OpenView):
    name: str
    configured: bool
    leader: str | None
    is_leader: bool
    source: str | None = None
    last_fetched_commit: str | None = None
    last_error: str | None = None
    last_success_at: str | None = None
    counts: dict[str, Any] = Field(default_factory=dict)
    problems: list[Any] = Field(default_factory=list)
    requests: dict[str, Any] = Field(default_factory=dict)


class WebhookAnswer(OpenView):
    accepted: bool
    event: str | None = None
    ref: str | None = None
    request_id: int | None = Field(None, description="The queued request, when accepted.")


class ScheduleView(OpenView):
    """A schedule an active revision declares: its definition, pause, last and next tick."""

    bundle: str
    environment: str
    name: str
    revision: int = Field(description="The active revision declaring it.")
    definition: dict[str, Any] = Field(description="As the bundle declares it (cron or every).")
    paused: bool
    paused_by: str | None = None
    last_tick: str | None = Field(None, description="The latest tick claimed (ISO 8601).")
    next_tick: str = Field(description="When it ticks next (ISO 8601, UTC).")


class ScheduleTickView(OpenView):
    tick: str = Field(description="The instant it stands for (ISO 8601).")
    status: str = Field(description="started, skipped, failed, ...")
    run_id: str | None = None
    detail: str | None = None


class ScheduleDetail(ScheduleView):
    """``GET /v1/schedules/{bundle}/{environment}/{name}``: a schedule and its latest ticks."""

    ticks: list[ScheduleTickView] = Field(description="Newest first.")


class ScheduleList(OpenView):
    schedules: list[ScheduleView]
    count: int


class ScheduleTrigger(OpenView):
    """A manual trigger: the tick it recorded and the run it queued."""

    status: str
    tick: str
    run_id: str | None
    detail: str | None = None


class TriggerDelivery(OpenView):
    """An event delivered to a trigger: ``started`` (202), ``duplicate`` or ``filtered``."""

    status: str = Field(description="started, duplicate or filtered")
    run_id: str | None = Field(None, description="The run it started (or started before).")


_OK = "200"
#: operation id -> (status code, model) of the answers it documents.
PLATFORM_RESPONSES: dict[str, tuple[tuple[str, type[BaseModel]], ...]] = {
    "health-check": ((_OK, HealthView),),
    "health-live": ((_OK, HealthView),),
    "health-ready": ((_OK, HealthView),),
    "service-version": ((_OK, VersionView),),
    "audit-events-list": ((_OK, AuditEventList),),
    "audit-events-get": ((_OK, AuditEventView),),
    "notifications-list": ((_OK, NotificationList),),
    "notifications-retry": ((_OK, NotificationRetry),),
    "environment-policies-list": ((_OK, EnvironmentPolicyList),),
    "environment-policies-get": ((_OK, EnvironmentPolicyView),),
    "environment-policies-replace": ((_OK, EnvironmentPolicyView),),
    "runs-trace": ((_OK, TraceList),),
    "runs-checkpoints-list": ((_OK, CheckpointList),),
    "runs-checkpoints-diff": ((_OK, CheckpointDiff),),
    "runs-recovery": ((_OK, RecoveryView),),
    "runs-replay": ((_OK, ReplayView),),
    "runs-policy-report": ((_OK, PolicyReportView),),
    "specs-policy-report": ((_OK, PolicyReportView),),
    "specs-validate": ((_OK, SpecValidation),),
    "specs-compile": ((_OK, SpecCompilation),),
    "specs-explain": ((_OK, SpecExplanation),),
    "security-credentials-get": ((_OK, CredentialsView),),
    "projects-list": ((_OK, ProjectList),),
    "projects-get": ((_OK, ProjectView),),
    "projects-create": (("201", ProjectView),),
    "projects-replace": ((_OK, ProjectView),),
    "projects-archive": ((_OK, ProjectView),),
    "registry-bundles-list": ((_OK, RevisionList),),
    "registry-bundles-get": ((_OK, BundleView),),
    "registry-bundles-diff": ((_OK, RevisionDiff),),
    "registry-bundles-graph": ((_OK, BundleGraphView),),
    "registry-bundles-pin": ((_OK, PinChange),),
    "registry-bundles-unpin": ((_OK, PinChange),),
    "registry-bundles-suspend": ((_OK, SuspensionChange),),
    "registry-bundles-resume": ((_OK, SuspensionChange),),
    "registry-bundles-rollback": ((_OK, RollbackAnswer),),
    "registry-blocked-digests-list": ((_OK, BlockedDigestList),),
    "registry-blocked-digests-block": ((_OK, BlockChange),),
    "registry-blocked-digests-unblock": ((_OK, BlockChange),),
    "controller-status": ((_OK, ControllerStatusView),),
    "controller-requests-get": ((_OK, ControllerRequestView),),
    "controller-reconcile": ((_OK, ControllerRequestView), ("202", ControllerRequestView)),
    "controller-plan": ((_OK, ControllerRequestView), ("202", ControllerRequestView)),
    "controller-webhook": (("202", WebhookAnswer),),
    "schedules-list": ((_OK, ScheduleList),),
    "schedules-get": ((_OK, ScheduleDetail),),
    "schedules-pause": ((_OK, ScheduleDetail),),
    "schedules-resume": ((_OK, ScheduleDetail),),
    "schedules-trigger": (("202", ScheduleTrigger),),
    "triggers-deliver": ((_OK, TriggerDelivery), ("202", TriggerDelivery)),
    **ROLLOUT_RESPONSES,
}

__all__ = ["PLATFORM_RESPONSES"]
