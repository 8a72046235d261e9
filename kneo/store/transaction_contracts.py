"""The store's contract for one unit of work: what a transaction may write, by concern.

:meth:`kneo.store.contracts.Transactional.transaction` hands out an object satisfying these
(:class:`~kneo.store.transaction.Transaction`); a caller names the concerns it writes (the
controller :class:`ControllerTransaction`, a run's driver :class:`WorkflowTransaction`).
Everything written in one unit commits together or, on an exception, not at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, Required, TypedDict, Unpack

from kneo.lifecycle import TaskStatus

if TYPE_CHECKING:
    from kneo.store.records import (
        AuditEvent,
        BlockedDigest,
        BundleRevision,
        CheckpointRecord,
        Condition,
        ContinuationRecord,
        ControllerStatus,
        Page,
        Pin,
        PromotionApproval,
        QueueRecord,
        RunRecord,
        Suspension,
        TraceEvent,
    )
    from kneo.store.rollouts import (
        JudgeCandidate,
        RolloutChanges,
        RolloutRecord,
        RolloutRoute,
        SideFigures,
    )
    from kneo.store.runs.steps import StepCheckpoint, StepEvent, StepWritten


class NewRun(TypedDict, total=False):
    """``create_run``'s fields: what a run executes and where it starts (``target`` and
    ``input_text`` required). ``spec_text``: the spec already encoded; ``events``: its first
    trace events; ``lease``: ``(owner, seconds)``, the run created already leased."""

    target: Required[str]
    input_text: Required[str]
    run_id: str | None
    status: str
    workflow_name: str | None
    workflow_kind: str | None
    agent_name: str | None
    environment: str | None
    spec: Mapping[str, Any] | None
    spec_digest: str | None
    bundle_name: str | None
    bundle_revision: int | None
    bundle_commit: str | None
    state: Mapping[str, Any] | None
    deadline_at: datetime | None
    metadata: Mapping[str, Any] | None
    started_at: datetime | None
    spec_text: str | None
    events: Sequence[Mapping[str, Any]]
    lease: tuple[str, float] | None
    session_id: str | None


class RunChanges(TypedDict, total=False):
    """The run columns ``update_run`` and ``finish_run`` may change (any other is
    ``invalid_request``)."""

    status: str
    output_text: str | None
    error: Mapping[str, Any] | None
    state: Mapping[str, Any]
    cancel_requested: bool
    deadline_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    metadata: Mapping[str, Any]
    spec: Mapping[str, Any] | None
    spec_digest: str | None
    environment: str | None
    workflow_name: str | None
    workflow_kind: str | None
    agent_name: str | None
    bundle_name: str | None
    bundle_revision: int | None
    bundle_commit: str | None


class ControllerStatusFields(TypedDict, total=False):
    """The controller status fields ``set_controller_status`` updates (others keep theirs)."""

    last_fetched_commit: str | None
    last_reconcile_started_at: datetime | None
    last_reconcile_duration_seconds: float | None
    last_error: str | None
    details: Mapping[str, Any]


class ApprovalReads(Protocol):
    """The promotion approvals of a digest, read in a transaction or outside one (a task's
    tally reads what the transaction deciding it has written)."""

    def list_promotion_approvals(
        self, bundle_name: str, environment: str, digest: str | None = None
    ) -> list[PromotionApproval]: ...


class RunTransaction(Protocol):
    """A run's writes inside a transaction: creation, compare-and-set updates
    (``expected_version``), step boundaries, checkpoints, trace events and its queue record,
    all committed together or not at all."""

    @property
    def now(self) -> datetime:
        """The time this unit of work stamps its rows with."""
        ...

    def create_run(self, **fields: Unpack[NewRun]) -> RunRecord: ...
    def current(self, run: RunRecord) -> RunRecord: ...
    def get_run(self, run_id: str, *, for_update: bool = False) -> RunRecord: ...
    def take_run_lease(self, run_id: str, owner: str, ttl_seconds: float) -> None: ...
    def run_slot_free(self, limit: int) -> bool: ...
    def update_run(
        self, run_id: str, /, *, expected_version: int | None = None, **changes: Unpack[RunChanges]
    ) -> RunRecord: ...
    def finish_run(
        self,
        run: RunRecord,
        /,
        *,
        expected_version: int,
        state_text: str | None = None,
        release_lease: str | None = None,
        checkpoints: Sequence[StepCheckpoint] = (),
        events: Sequence[Mapping[str, Any]] = (),
        audits: Sequence[Mapping[str, Any]] = (),
        **changes: Unpack[RunChanges],
    ) -> RunRecord: ...
    def write_step(
        self,
        run_id: str,
        /,
        *,
        expected_version: int,
        state_text: str,
        checkpoints: Sequence[StepCheckpoint],
        events: Sequence[StepEvent],
    ) -> StepWritten: ...
    def add_checkpoint(
        self,
        run_id: str,
        *,
        type: str,
        payload: Mapping[str, Any],
        step_id: str | None = None,
        status: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> CheckpointRecord: ...
    def add_trace_events(
        self, run_id: str, events: Sequence[Mapping[str, Any]]
    ) -> list[TraceEvent]: ...
    def enqueue(self, run_id: str, *, available_at: datetime | None = None) -> QueueRecord: ...


class HumanTaskTransaction(Protocol):
    """A human task's writes inside a transaction (a pause writes its continuation with the
    run)."""

    def put_continuation(
        self,
        continuation_id: str,
        *,
        run_id: str | None,
        requests: Sequence[Mapping[str, Any]],
        context: Mapping[str, Any] | None = None,
        status: str = TaskStatus.PENDING,
        expires_at: datetime | None = None,
        escalated_at: datetime | None = None,
        workflow_kind: str | None = None,
        expected_version: int | None = None,
        workflow_name: str | None = None,
        environment: str | None = None,
        search_text: Sequence[str] = (),
        bodies: Sequence[Mapping[str, Any]] | None = None,
        input_text: str = "",
    ) -> ContinuationRecord: ...
    def delete_continuation(self, continuation_id: str) -> bool: ...
    def get_continuation(
        self, continuation_id: str, *, for_update: bool = False
    ) -> ContinuationRecord: ...


class AuditTransaction(Protocol):
    """An audit event and project metadata written with the change they record."""

    def add_audit(
        self,
        event_type: str,
        *,
        actor: str | None = None,
        run_id: str | None = None,
        continuation_id: str | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> AuditEvent: ...
    def metadata(self, keys: Sequence[str]) -> dict[str, Any]: ...
    def set_metadata(self, key: str, value: Any) -> None: ...


class RegistryTransaction(ApprovalReads, Protocol):
    """Registry writes inside a transaction (the only place they are: a single write is a
    transaction of one). ``marks_registry_changes``: ``False`` in the controller's own
    transactions, whose changes its saved reconcile state already accounts for."""

    marks_registry_changes: bool

    def add_revision(
        self,
        bundle_name: str,
        environment: str,
        *,
        digest: str,
        commit: str | None = None,
        signer_key_ids: Sequence[str] = (),
        approved_by: Sequence[str] = (),
        status: str = "inactive",
        diagnostics: Sequence[Mapping[str, Any]] = (),
        spec: Mapping[str, Any] | None = None,
        code: Mapping[str, bytes] | None = None,
    ) -> BundleRevision: ...
    def activate_revision(
        self, bundle_name: str, environment: str, revision: int
    ) -> BundleRevision: ...
    def set_revision_status(
        self,
        bundle_name: str,
        environment: str,
        revision: int,
        status: str,
        *,
        diagnostics: Sequence[Mapping[str, Any]] | None = None,
        approved_by: Sequence[str] | None = None,
    ) -> BundleRevision: ...
    def suspend_bundle(
        self,
        bundle_name: str,
        environment: str,
        *,
        reason: str | None = None,
        suspended_by: str | None = None,
    ) -> Suspension: ...
    def resume_bundle(self, bundle_name: str, environment: str) -> bool: ...
    def set_controller_status(
        self, *, name: str = "default", **fields: Unpack[ControllerStatusFields]
    ) -> ControllerStatus: ...
    def add_promotion_approval(
        self,
        bundle_name: str,
        environment: str,
        digest: str,
        *,
        approver: str,
        decision: str,
        comment: str | None = None,
    ) -> PromotionApproval: ...
    def reject_revision(
        self,
        bundle_name: str,
        environment: str,
        revision: int,
        diagnostics: Sequence[Mapping[str, Any]],
    ) -> BundleRevision: ...
    def prune_revision(
        self, bundle_name: str, environment: str, revision: int
    ) -> BundleRevision: ...
    def set_conditions(
        self,
        bundle_name: str,
        environment: str,
        conditions: Sequence[tuple[str, str, str, str]],
    ) -> list[Condition]: ...
    def get_revision(self, bundle_name: str, environment: str, revision: int) -> BundleRevision: ...
    def get_active(self, bundle_name: str, environment: str) -> BundleRevision | None: ...
    def pin_bundle(
        self,
        bundle_name: str,
        environment: str,
        revision: int,
        *,
        reason: str | None = None,
        pinned_by: str | None = None,
    ) -> Pin: ...
    def unpin_bundle(self, bundle_name: str, environment: str) -> Pin | None: ...
    def block_digest(
        self, digest: str, *, reason: str, blocked_by: str | None = None
    ) -> BlockedDigest: ...
    def unblock_digest(self, digest: str) -> bool: ...


class RolloutReads(Protocol):
    """A project's rollouts: which revision serves a bundle's new runs, each rollout's place
    and its sides' figures (the counters its runs' transactions moved, and a model judge's
    verdicts: the runs it may judge, and a verdict kept once per run, committed on its own)."""

    def current_rollout(self, bundle_name: str, environment: str) -> RolloutRecord | None: ...
    def serving(
        self, bundle_name: str, environment: str
    ) -> tuple[BundleRevision | None, RolloutRoute | None]: ...
    def get_rollout(self, rollout_id: str) -> RolloutRecord: ...
    def list_rollouts(
        self,
        *,
        bundle_name: str | None = None,
        environment: str | None = None,
        status: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        count: bool = False,
    ) -> Page[RolloutRecord]: ...
    def active(self) -> list[RolloutRecord]: ...
    def figures(self, rollout_id: str) -> dict[str, SideFigures]: ...
    def unjudged_runs(
        self,
        record: RolloutRecord,
        *,
        after: tuple[datetime, str] | None = None,
        limit: int = 200,
    ) -> list[JudgeCandidate]: ...
    def record_judgement(
        self, rollout_id: str, run_id: str, *, track: str, passed: bool, reason: str
    ) -> bool: ...


class HasRollouts(Protocol):
    """``store.rollouts``: :class:`RolloutReads`."""

    @property
    def rollouts(self) -> RolloutReads: ...


class RolloutTransaction(Protocol):
    """A rollout's writes: begun with the promotion of its canary, moved by the controller
    or a person; a rollout run's decisions counted with them."""

    def begin_rollout(
        self,
        rollout_id: str,
        *,
        bundle_name: str,
        environment: str,
        stable_revision: int,
        canary_revision: int,
        canary_digest: str | None,
        commit: str | None,
        weight: int,
        step: int,
        policy: Mapping[str, Any],
    ) -> RolloutRecord: ...
    def move_rollout(
        self, record: RolloutRecord, **changes: Unpack[RolloutChanges]
    ) -> RolloutRecord: ...
    def note_rollout_run(self, rollout: Mapping[str, Any]) -> None: ...
    def note_rollout_outcome(
        self,
        rollout: Mapping[str, Any],
        status: str,
        latency_ms: int | None,
        cost: float | None = None,
    ) -> None: ...
    def note_rollout_decisions(
        self,
        rollout: Mapping[str, Any],
        decisions: Sequence[tuple[str, str]] = (),
        escalated: Sequence[str] = (),
    ) -> None: ...


class WorkflowTransaction(
    RunTransaction, HumanTaskTransaction, AuditTransaction, RolloutTransaction, Protocol
):
    """What driving a run writes in one unit of work: the run and its step boundaries, its
    human task when it pauses (atomically with the run), and the audit events."""


class ControllerTransaction(
    RegistryTransaction, HumanTaskTransaction, AuditTransaction, RolloutTransaction, Protocol
):
    """What the controller and the registry operations write in one transaction: registry
    changes, the promotion or rollback task they open or close, and the audit events."""


class StoreTransaction(WorkflowTransaction, ControllerTransaction, Protocol):
    """Every write a transaction offers: what the store's own parts (its mixins) are handed
    by :meth:`kneo.store.api.Store.transaction`, without importing the store's module."""
