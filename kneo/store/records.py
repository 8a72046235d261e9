"""Frozen values the store hands out. Plain data, no I/O, no SQLAlchemy.

Records are immutable snapshots of a row at read time: callers never mutate them and write
changes back through a :class:`~kneo.store.api.Transaction`. JSON-valued fields are plain
``dict``/``list`` values (frozen is shallow; treat them as read-only).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Literal, NamedTuple, TypedDict, TypeVar

from kneo.lifecycle import TERMINAL
from kneo.projects import DEFAULT_PROJECT_ID

T = TypeVar("T")

#: Run statuses after which nothing runs again (retention may delete these).
TERMINAL_RUN_STATUSES: frozenset[str] = frozenset(s.value for s in TERMINAL)
#: Statuses a queue record moves through: queued -> leased -> completed | failed.
QUEUE_STATUSES: tuple[str, ...] = ("queued", "leased", "completed", "failed")
#: Registry revision statuses; at most one ``active`` per (bundle, environment).
REVISION_STATUSES: frozenset[str] = frozenset(
    {"active", "inactive", "rejected", "pending_approval", "pruned"}
)


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing plus what produced it, so APIs can echo paging back."""

    items: list[T]
    #: matching rows in all; ``None`` when the listing was asked not to count (``count=False``)
    total: int | None
    limit: int
    offset: int
    sort_by: str
    sort_order: Literal["asc", "desc"]
    #: keyset listings: the opaque cursor of the page after this one (``None``: last page)
    next_cursor: str | None = None
    #: ``total`` stopped at the count cap (``KNEO_SERV_MAX_LIST_COUNT``): more rows match
    total_capped: bool = False


@dataclass(frozen=True)
class RunRecord:
    """A run: its identity, what it executes, where it is (``state``) and how it ended.

    ``version`` increases on every update; writers pass it back as ``expected_version`` so a
    process holding a stale view cannot overwrite a newer one.
    """

    run_id: str
    status: str
    target: str
    workflow_name: str | None
    workflow_kind: str | None
    agent_name: str | None
    input_text: str
    output_text: str | None
    error: dict[str, Any] | None
    environment: str | None
    spec: dict[str, Any]
    spec_digest: str | None
    bundle_name: str | None
    bundle_revision: int | None
    bundle_commit: str | None
    state: dict[str, Any]
    version: int
    cancel_requested: bool
    deadline_at: datetime | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    metadata: dict[str, Any] = field(default_factory=dict)
    #: trace events recorded for the run (its trace sequence counter); ``None`` when unknown
    trace_seq: int | None = field(default=None, compare=False)
    #: the session the caller grouped it in (``POST /v1/runs`` with ``session_id``)
    session_id: str | None = None
    #: checkpoints recorded for the run (its checkpoint sequence counter); ``None`` when unknown
    checkpoint_seq: int | None = field(default=None, compare=False)


@dataclass(frozen=True)
class CheckpointRecord:
    """A step-boundary snapshot. ``truncated`` means ``payload`` is a bounded preview."""

    run_id: str
    sequence: int
    type: str
    step_id: str | None
    status: str | None
    payload: dict[str, Any]
    metadata: dict[str, Any]
    created_at: datetime
    size_bytes: int = 0
    compressed: bool = False
    truncated: bool = False


@dataclass(frozen=True)
class TraceEvent:
    """One entry of a run's timeline (step started, tool called, paused, ...)."""

    run_id: str
    sequence: int
    event_type: str
    step_id: str | None
    payload: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class ContinuationRecord:
    """A paused run waiting for people: one or more pending requests, each by ``request_id``.

    ``run_id`` is ``None`` for tasks that belong to no run (e.g. a promotion approval).
    """

    continuation_id: str
    run_id: str | None
    status: str
    requests: list[dict[str, Any]]
    context: dict[str, Any]
    workflow_kind: str | None
    expires_at: datetime | None
    escalated_at: datetime | None
    version: int
    created_at: datetime
    updated_at: datetime
    #: the run's workflow name (a promotion's bundle name) and environment: inbox labels
    workflow_name: str | None = None
    environment: str | None = None
    #: while pending: what the task list shows of it, redacted (:mod:`kneo.store.tasks.inbox`)
    list_row: dict[str, Any] | None = None


@dataclass(frozen=True)
class AuditEvent:
    """An immutable record of a decision or operation; payloads are redacted on write."""

    event_id: str
    event_type: str
    actor: str | None
    run_id: str | None
    continuation_id: str | None
    payload: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class QueueRecord:
    """A run waiting for, or held by, a worker. A lease that expires may be claimed again."""

    queue_id: int
    run_id: str
    status: str
    attempts: int
    lease_owner: str | None
    lease_expires_at: datetime | None
    error: dict[str, Any] | None
    available_at: datetime
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    #: its run's project (a worker's claim is global: ``store.for_project(project_id)``)
    project_id: int = DEFAULT_PROJECT_ID


@dataclass(frozen=True)
class IdempotencyOutcome:
    """Result of ``store.idempotency.begin_idempotent``.

    ``state`` is ``new`` (caller owns the key and must finish or release it), ``replay``
    (a finished request with the same body: return ``status_code``/``response``), or
    ``in_progress`` (another caller holds the key right now).
    """

    state: Literal["new", "replay", "in_progress"]
    status_code: int | None = None
    response: Any = None


@dataclass(frozen=True)
class BundleRevision:
    """One revision of a bundle in one environment, numbered 1, 2, ... per pair."""

    bundle_name: str
    environment: str
    revision: int
    digest: str
    commit: str | None
    signer_key_ids: list[str]
    approved_by: list[str]
    status: str
    diagnostics: list[dict[str, Any]]
    spec: dict[str, Any]
    created_at: datetime
    activated_at: datetime | None
    deactivated_at: datetime | None


@dataclass(frozen=True)
class Condition:
    """A Flux-style status condition; ``last_transition_time`` moves only on a real change."""

    bundle_name: str
    environment: str
    type: str
    status: str
    reason: str
    message: str
    last_transition_time: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Pin:
    """A bundle held at one revision in one environment (a rollback pins its target)."""

    bundle_name: str
    environment: str
    revision: int
    digest: str
    reason: str | None
    pinned_by: str | None
    created_at: datetime


@dataclass(frozen=True)
class BlockedDigest:
    """A spec digest the controller never promotes, in any environment, until unblocked."""

    digest: str
    reason: str
    blocked_by: str | None
    created_at: datetime


@dataclass(frozen=True)
class Suspension:
    """A bundle the controller must leave alone in one environment."""

    bundle_name: str
    environment: str
    reason: str | None
    suspended_by: str | None
    created_at: datetime


@dataclass(frozen=True)
class Holds:
    """What keeps the controller from promoting: suspensions and pins by (bundle,
    environment), blocked digests (in every environment, oldest block first)."""

    suspensions: dict[tuple[str, str], Suspension]
    pins: dict[tuple[str, str], Pin]
    blocked: dict[str, BlockedDigest]


@dataclass(frozen=True)
class ControllerStatus:
    """What the controller last did; ``details`` carries anything else it wants to report."""

    last_fetched_commit: str | None
    last_reconcile_started_at: datetime | None
    last_reconcile_duration_seconds: float | None
    last_error: str | None
    details: dict[str, Any]
    updated_at: datetime | None


class ControllerStatusFields(TypedDict, total=False):
    """The :class:`ControllerStatus` fields ``set_controller_status`` updates (others keep
    theirs)."""

    last_fetched_commit: str | None
    last_reconcile_started_at: datetime | None
    last_reconcile_duration_seconds: float | None
    last_error: str | None
    details: Mapping[str, Any]


@dataclass(frozen=True)
class PromotionApproval:
    """One person's decision on promoting ``digest`` of a bundle into an environment."""

    bundle_name: str
    environment: str
    digest: str
    approver: str
    decision: str
    comment: str | None
    created_at: datetime


@dataclass(frozen=True)
class LockRecord:
    """Who holds a named lock and until when (a dead holder's lock lapses at ``expires_at``)."""

    name: str
    owner: str
    acquired_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class ControllerRequest:
    """A queued reconcile: ``queued``, ``running`` (a pass ``taken_by`` a leader is serving
    it) or ``done`` with that pass's ``result``."""

    id: int
    name: str
    kind: str
    actor: str | None
    detail: dict[str, Any]
    status: str
    taken_by: str | None
    requested_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    result: dict[str, Any] | None


class StrandedRun(str):
    """The id of a run nobody executes (``store.queue.stranded_runs``, which looks in every
    project), that says its project too: ``store.for_project(run_id.project_id)``."""

    project_id: int

    def __new__(cls, run_id: str, project_id: int) -> StrandedRun:
        found = super().__new__(cls, run_id)
        found.project_id = project_id
        return found


class RunLease(NamedTuple):
    """The process executing a run and until when its lease holds unless renewed."""

    owner: str
    expires_at: datetime


class RevisionHead(NamedTuple):
    """A registry revision without its spec: what a reconcile compares, cheap to read in bulk.

    ``diagnostics`` is filled only for rejected revisions (the reasons a retry would repeat).
    """

    bundle_name: str
    environment: str
    revision: int
    digest: str
    status: str
    commit: str | None
    diagnostics: list[dict[str, Any]] | None


class ControllerRequestCounts(TypedDict):
    """Requests waiting for and being served by a pass of one controller, and when the
    oldest waiting one came (``None``: none waits)."""

    queued: int
    running: int
    oldest_queued_at: datetime | None
