"""The store's contract: what callers may rely on, one :class:`~typing.Protocol` per concern.

:class:`~kneo.store.api.Store` is one class over SQLite and PostgreSQL; its lifecycle is its
own (:class:`StoreLifecycle`) and each concern is a facet attribute (``store.runs``,
``store.registry``, ...) whose class implements one protocol here, named by a ``Has*``
protocol for a store holding it. A caller depends on the few concerns it uses (the controller on registry reads and registry
writes, a lease keeper on run leases, ...), named here, so what it touches is visible to
mypy and a second implementation (or a narrower fake) knows what to provide. Store-side
protocols are reads and the coordination primitives that must commit on their own (claims,
leases, locks, idempotency keys); the ``*Transaction`` protocols
(:mod:`kneo.store.transaction_contracts`, re-exported here) are the writes of one unit of
work, reached through :class:`Transactional`'s ``transaction()``. A write is the
transaction's only (the Store has no shorthand of it): one way to write, one signature.

:func:`_conformance` and its two siblings below are checked by ``mypy --strict``: they fail
when ``Store``, a facet or ``Transaction`` stops satisfying a protocol;
``tests/store/test_contract_coverage.py`` fails when a public facet method has no protocol,
``tests/store/test_store_surface.py`` when a transaction's write is on the Store again.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from kneo.store.transaction_contracts import (
    ApprovalReads,
    AuditTransaction,
    ControllerStatusFields,
    ControllerTransaction,
    HumanTaskTransaction,
    NewRun,
    RegistryTransaction,
    RunChanges,
    RunTransaction,
    WorkflowTransaction,
)

if TYPE_CHECKING:
    from kneo.clock import Clock
    from kneo.periodic import PeriodicTask
    from kneo.settings import RetentionDays, Settings
    from kneo.store.api import Store, Transaction
    from kneo.store.coordination.controller_requests import ControllerWakeups
    from kneo.store.coordination.limits import DayUsage
    from kneo.store.coordination.wakeups import Wakeups
    from kneo.store.maintenance.gauges import Gauges
    from kneo.store.migrate import MigrationProgress
    from kneo.store.outbox.a2a_push import DuePush, PushConfig
    from kneo.store.outbox.notifications import (
        DeliveryOutcome,
        NotificationEvent,
        NotificationRecord,
    )
    from kneo.store.projects import ProjectRecord
    from kneo.store.records import (
        AuditEvent,
        BlockedDigest,
        BundleRevision,
        CheckpointRecord,
        Condition,
        ContinuationRecord,
        ControllerRequest,
        ControllerRequestCounts,
        ControllerStatus,
        IdempotencyOutcome,
        LockRecord,
        Page,
        Pin,
        PromotionApproval,
        QueueRecord,
        RevisionHead,
        RunLease,
        RunRecord,
        StrandedRun,
        Suspension,
        TraceEvent,
    )
    from kneo.store.runs.filters import RunFilter
    from kneo.store.sessions import ConsoleSession
    from kneo.store.wire.executor import HeldConnection

_Tx_co = TypeVar("_Tx_co", covariant=True)


class Transactional(Protocol[_Tx_co]):
    """Opens a unit of work whose writes commit together on normal exit and roll back on any
    exception; ``_Tx_co`` is the transaction's protocol (what the caller writes in it).
    ``held``: the connection a run keeps between its consecutive transactions."""

    def transaction(self, held: HeldConnection | None = None) -> AbstractContextManager[_Tx_co]: ...


class StoreLifecycle(Protocol):
    """The store as a process holds it: which database, its schema, its background work and
    its end. ``clock`` and ``settings`` are the ones the store stamps and bounds its writes
    with, so callers that compute deadlines agree with it. A store is one project's view
    (``project``, ``project_id``); ``for_project`` opens another project's on the same
    database."""

    @property
    def clock(self) -> Clock: ...
    @property
    def settings(self) -> Settings: ...
    @property
    def backend(self) -> str: ...
    @property
    def project(self) -> str: ...
    @property
    def project_id(self) -> int: ...
    @property
    def wakeups(self) -> Wakeups: ...
    def for_project(self, project: str | int) -> Store: ...
    def close(self) -> None: ...
    def start_background_work(self, interval: float | None = None) -> PeriodicTask | None: ...
    def hold_specs(self, digests: Sequence[str]) -> None: ...
    def hold_connection(self) -> HeldConnection: ...
    def schema_revision(self) -> str | None: ...
    def upgrade_schema(self, progress: MigrationProgress | None = None) -> str | None: ...
    def ping(self) -> None: ...


class RunReads(Protocol):
    """Runs and what they left behind (checkpoints, trace events), read outside any
    transaction."""

    def get_run(self, run_id: str) -> RunRecord: ...
    def run_states(self, run_ids: Sequence[str]) -> dict[str, dict[str, Any]]: ...
    def list_runs(
        self,
        *,
        status: str | Sequence[str] | None = None,
        limit: int = 50,
        offset: int = 0,
        sort_by: str = "created_at",
        sort_order: str = "desc",
        cursor: str | None = None,
        count: bool = True,
        filters: RunFilter | None = None,
    ) -> Page[RunRecord]: ...
    def list_checkpoints(
        self,
        run_id: str,
        *,
        type: str | None = None,
        limit: int = 100,
        offset: int = 0,
        sort_order: str = "asc",
    ) -> Page[CheckpointRecord]: ...
    def get_checkpoint(self, run_id: str, sequence: int) -> CheckpointRecord: ...
    def latest_checkpoint(
        self, run_id: str, *, type: str | None = None
    ) -> CheckpointRecord | None: ...
    def list_trace(
        self,
        run_id: str,
        *,
        event_type: str | None = None,
        limit: int = 100,
        offset: int = 0,
        sort_order: str = "asc",
    ) -> Page[TraceEvent]: ...


class HumanTaskReads(Protocol):
    """Human tasks (continuations) and the inbox: one task, a filtered keyset page, the
    counts per assignee and the number that changes whenever the inbox does."""

    def get_continuation(self, continuation_id: str) -> ContinuationRecord: ...
    def find_continuation_by_request(self, request_id: str) -> ContinuationRecord: ...
    def list_continuations(
        self,
        *,
        status: str | None = "pending",
        run_id: str | None = None,
        workflow_kind: str | None = None,
        assignee: str | tuple[str, ...] | None = None,
        kind: str | None = None,
        escalated: bool | None = None,
        older_than: datetime | None = None,
        expires_before: datetime | None = None,
        workflow_name: str | None = None,
        environment: str | None = None,
        sort: Literal["oldest", "newest"] = "oldest",
        limit: int = 50,
        offset: int = 0,
        cursor: str | None = None,
        count: bool = True,
        search: Sequence[str] = (),
    ) -> Page[ContinuationRecord]: ...
    def pending_counts_by_assignee(self, cap: int | None = None) -> dict[str | None, int]: ...
    def inbox_version(self) -> int: ...


class AuditLog(Protocol):
    """The append-only audit log as the audit views read it; every change people or the
    controller make writes to it in its transaction (:class:`AuditTransaction`)."""

    def list_audit(
        self,
        *,
        event_type: str | None = None,
        run_id: str | None = None,
        continuation_id: str | None = None,
        limit: int = 50,
        offset: int = 0,
        cursor: str | None = None,
        count: bool = True,
    ) -> Page[AuditEvent]: ...
    def get_audit(self, event_id: str) -> AuditEvent: ...


class ProjectMetadata(Protocol):
    """Project metadata: small JSON values by key (trust roots, stored policy, reconcile
    state); ``metadata_snapshot`` makes the reads of a few keys inside it one query. A value
    is set in a transaction (:class:`AuditTransaction`)."""

    def get_metadata(self, key: str, default: Any = None) -> Any: ...
    def metadata_snapshot(
        self, keys: Sequence[str], tx: AuditTransaction | None = None
    ) -> AbstractContextManager[None]: ...
    def list_metadata(self, prefix: str = "") -> dict[str, Any]: ...


class RunLeases(Protocol):
    """Per-run leases: which process is executing a run, so a run whose process stopped
    renewing is found (``stranded_runs``) and taken over."""

    def acquire_run_lease(self, run_id: str, owner: str, ttl_seconds: float) -> bool: ...
    def renew_run_leases(self, run_ids: Sequence[str], owner: str, ttl_seconds: float) -> int: ...
    def stranded_runs(self, idle_seconds: float, limit: int = 100) -> list[StrandedRun]: ...
    def release_run_lease(self, run_id: str, owner: str) -> bool: ...
    def run_lease(self, run_id: str) -> RunLease | None: ...


class RunQueue(RunLeases, Protocol):
    """The run queue and the per-run leases: at-least-once delivery to workers through leases that expire, so a run
    whose worker died is claimed again. A run is queued in a transaction, with the change
    that queues it (:class:`RunTransaction`'s ``enqueue``)."""

    def claim(
        self, owner: str, lease_seconds: float, *, excluded_projects: Collection[int] = ()
    ) -> QueueRecord | None: ...
    def renew_lease(self, queue_id: int, owner: str, lease_seconds: float) -> bool: ...
    def complete(self, queue_id: int, owner: str) -> bool: ...
    def fail(self, queue_id: int, owner: str, error: Mapping[str, Any]) -> bool: ...
    def release(self, queue_id: int, owner: str, *, delay_seconds: float = 0.0) -> bool: ...
    def get_queue_record(self, queue_id: int) -> QueueRecord: ...
    def queue_records_for_run(self, run_id: str) -> list[QueueRecord]: ...
    def queue_stats(self) -> dict[str, int]: ...


class NamedLocks(Protocol):
    """Named locks with an owner and a time to live (the controller's leadership,
    maintenance jobs): at most one live holder per name."""

    def acquire_lock(self, name: str, owner: str, ttl_seconds: float) -> bool: ...
    def renew_lock(self, name: str, owner: str, ttl_seconds: float) -> bool: ...
    def release_lock(self, name: str, owner: str) -> bool: ...
    def get_lock(self, name: str) -> LockRecord | None: ...
    def lock(self, name: str, owner: str, ttl_seconds: float) -> AbstractContextManager[None]: ...


class CallbackReplays(Protocol):
    """Signed callbacks already accepted (a Slack click), so a replay is refused by every
    process sharing the database, until the callback's window has passed."""

    def first_callback(self, key: str, expires_at: datetime) -> bool: ...


class IdempotencyKeys(CallbackReplays, Protocol):
    """Idempotency keys for the service's POSTs: the first request with a key runs, a repeat
    with the same body gets the first's response, a different body a conflict; and the
    signed callbacks already accepted."""

    def begin_idempotent(
        self, scope: str, key: str, request_hash: str, *, stale_after_seconds: float = 300.0
    ) -> IdempotencyOutcome: ...
    def finish_idempotent(self, scope: str, key: str, status_code: int, response: Any) -> None: ...
    def release_idempotent(self, scope: str, key: str) -> None: ...


class RegistryReads(ApprovalReads, Protocol):
    """The GitOps registry as the controller, the service and the platform read it:
    revisions, conditions, suspensions, pins, blocked digests, promotion approvals and the
    change feed of an incremental reconcile."""

    def get_revision(self, bundle_name: str, environment: str, revision: int) -> BundleRevision: ...
    def get_active(self, bundle_name: str, environment: str) -> BundleRevision | None: ...
    def list_revisions(self, bundle_name: str, environment: str) -> list[BundleRevision]: ...
    def list_registry(
        self,
        environment: str | None = None,
        *,
        status: str | None = "active",
        limit: int | None = None,
        cursor: str | None = None,
        count: bool = False,
    ) -> Page[BundleRevision]: ...
    def list_revision_heads(
        self, environment: str | None = None, *, names: Collection[str] | None = None
    ) -> list[RevisionHead]: ...
    def registry_changes_since(self, seq: int | None) -> tuple[int, set[str]]: ...
    def pending_promotion_names(self) -> set[str]: ...
    def find_revision(
        self, bundle_name: str, environment: str, digest: str
    ) -> BundleRevision | None: ...
    def list_conditions(
        self, bundle_name: str | None = None, environment: str | None = None
    ) -> list[Condition]: ...
    def list_condition_heads(
        self, *, names: Collection[str] | None = None
    ) -> list[tuple[str, str, str, str, str, str]]: ...
    def is_suspended(self, bundle_name: str, environment: str) -> bool: ...
    def list_suspensions(
        self, environment: str | None = None, *, names: Collection[str] | None = None
    ) -> list[Suspension]: ...
    def get_pin(self, bundle_name: str, environment: str) -> Pin | None: ...
    def list_pins(
        self, environment: str | None = None, *, names: Collection[str] | None = None
    ) -> list[Pin]: ...
    def list_blocked_digests(self) -> list[BlockedDigest]: ...
    def get_controller_status(self, name: str = "default") -> ControllerStatus: ...
    def list_subject_approvals(
        self, prefix: str, names: Collection[str] | None = None
    ) -> list[PromotionApproval]: ...


class ControllerRequests(Protocol):
    """Requests to a named controller (reconcile now, rescan) and its wake-ups: the service
    queues, the controller takes and finishes them, a waiter polls one."""

    def queue_controller_request(
        self,
        name: str,
        kind: str,
        *,
        actor: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> ControllerRequest: ...
    def take_controller_requests(
        self, name: str, owner: str, *, plans: bool = False
    ) -> list[int]: ...
    def finish_controller_requests(
        self, name: str, ids: Sequence[int], result: dict[str, Any]
    ) -> None: ...
    def get_controller_request(self, request_id: int) -> ControllerRequest: ...
    def has_queued_controller_requests(self, name: str) -> bool: ...
    def controller_request_counts(self, name: str) -> ControllerRequestCounts: ...
    def notify_controller(self, name: str) -> None: ...
    def controller_wakeups(
        self, name: str, wake: Callable[[], None], *, poll_seconds: float
    ) -> ControllerWakeups: ...
    def queued_controller_sources(self) -> set[tuple[int, str]]: ...
    def all_controller_wakeups(
        self, wake: Callable[[int | None, str | None], None], *, poll_seconds: float
    ) -> ControllerWakeups: ...


class NotificationOutbox(Protocol):
    """The notification outbox: events written with the change that caused them, routed to
    receivers, claimed under a lease and finished by the dispatchers."""

    def add_notification_event(
        self,
        event_id: str,
        event_type: str,
        *,
        run_id: str | None = None,
        continuation_id: str | None = None,
        payload: dict[str, Any] | None = None,
        actor: str | None = None,
    ) -> bool: ...
    def route_notifications(
        self, receivers_for: Callable[[NotificationEvent], Sequence[str]], limit: int = 100
    ) -> int: ...
    def claim_notifications(
        self,
        owner: str,
        lease_seconds: float,
        limit: int = 10,
        *,
        receivers: Sequence[str] | None = None,
    ) -> list[NotificationRecord]: ...
    def finish_notification(
        self,
        notification_id: int,
        owner: str,
        *,
        sent: bool,
        error: str | None = None,
        retry_at: datetime | None = None,
    ) -> bool: ...
    def finish_notifications(self, owner: str, outcomes: Sequence[DeliveryOutcome]) -> int: ...
    def list_notifications(
        self,
        *,
        status: str | None = None,
        receiver: str | None = None,
        event_type: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> Page[NotificationRecord]: ...
    def notification_counts(self) -> dict[tuple[str, str], int]: ...
    def unrouted_notification_events(self) -> int: ...
    def retry_notifications(
        self, ids: Sequence[int] | None = None, *, status: str = "dead"
    ) -> int: ...


class A2aPushConfigs(Protocol):
    """A2A push notification configs, each its owner's, and the outbox rows of their pushes
    (:mod:`kneo.store.outbox.a2a_push`)."""

    def put_push_config(
        self,
        *,
        push_id: str,
        run_id: str,
        config_id: str,
        owner: str,
        origin: str,
        auth_scheme: str | None,
        sealed: str,
        sees_requests: bool,
        limit: int,
    ) -> PushConfig: ...
    def push_configs(self, run_id: str, owner: str) -> list[PushConfig]: ...
    def push_config(self, push_id: str) -> PushConfig | None: ...
    def delete_push_config(self, run_id: str, owner: str, config_id: str) -> bool: ...
    def due_pushes(self, limit: int = 100) -> list[DuePush]: ...
    def record_push(
        self, config: PushConfig, *, status: str, done: bool, payload: dict[str, Any]
    ) -> bool: ...


class ProjectLimitCounts(Protocol):
    """What a project's ``limits:`` are checked against: its runs executing and queued,
    counted up to the limit, and its usage per UTC day (``project_usage``)."""

    def count_runs(self, status: str, cap: int, *, executing_only: bool = False) -> int: ...
    def executing_runs(self, project_ids: Sequence[int]) -> dict[int, int]: ...
    def day_usage(self, day: str) -> DayUsage: ...
    def add_usage(self, day: str, *, model_calls: int, tokens: int, cost: int = 0) -> None: ...
    def raise_day_limit(self, day: str, counter: str, limit: int) -> DayUsage: ...


class CodeFiles(Protocol):
    """Project code files by sha256 (``code_files``): content-addressed, never changed."""

    def missing(self, digests: Iterable[str]) -> list[str]: ...
    def put(self, files: Mapping[str, bytes]) -> None: ...
    def get(self, digests: Iterable[str]) -> dict[str, bytes]: ...
    def one(self, digest: str) -> bytes | None: ...


class ConsoleSessions(Protocol):
    """Console sign-in sessions, keyed by a hash of the cookie (never the cookie itself)."""

    def open_console_session(
        self,
        session_hash: str,
        *,
        principal: str,
        method: str,
        lifetime_seconds: float,
        person: dict[str, Any] | None = None,
    ) -> None: ...
    def console_session(self, session_hash: str) -> ConsoleSession | None: ...
    def end_console_session(self, session_hash: str) -> bool: ...
    def set_console_project(self, session_hash: str, project_id: int | None) -> bool: ...


class Projects(Protocol):
    """The projects (the unit of tenancy): created, read, defined and archived by a platform
    administrator; the same on every project's view."""

    def create_project(
        self, name: str, *, definition: dict[str, Any] | None = None
    ) -> ProjectRecord: ...
    def get_project(self, project: str | int) -> ProjectRecord: ...
    def list_projects(self, *, status: str | None = None) -> list[ProjectRecord]: ...
    def update_project_definition(
        self, name: str, definition: dict[str, Any] | None
    ) -> ProjectRecord: ...
    def archive_project(self, name: str) -> ProjectRecord: ...


class Maintenance(Protocol):
    """Retention, SQLite backups and the shared-state gauges ``/metrics`` reports; retention
    windows are counted from the store's ``clock``."""

    @property
    def clock(self) -> Clock: ...

    def prune_retention(
        self, retention: RetentionDays, now: datetime | None = None, *, dry_run: bool = False
    ) -> dict[str, int]: ...
    def sqlite_path(self) -> Path: ...
    def backup_sqlite(self, dest: str | Path) -> Path: ...
    def gauges(self, now: datetime | None = None) -> Gauges: ...


# -- the store as callers hold it: its facets, one attribute per concern -------------------


class HasRuns(Protocol):
    """``store.runs``: :class:`RunReads`."""

    @property
    def runs(self) -> RunReads: ...


class HasTasks(Protocol):
    """``store.tasks``: :class:`HumanTaskReads`."""

    @property
    def tasks(self) -> HumanTaskReads: ...


class HasAudit(Protocol):
    """``store.audit``: :class:`AuditLog`."""

    @property
    def audit(self) -> AuditLog: ...


class HasMetadata(Protocol):
    """``store.metadata``: :class:`ProjectMetadata`."""

    @property
    def metadata(self) -> ProjectMetadata: ...


class HasQueue(Protocol):
    """``store.queue``: :class:`RunQueue`."""

    @property
    def queue(self) -> RunQueue: ...


class HasLocks(Protocol):
    """``store.locks``: :class:`NamedLocks`."""

    @property
    def locks(self) -> NamedLocks: ...


class HasIdempotency(Protocol):
    """``store.idempotency``: :class:`IdempotencyKeys`."""

    @property
    def idempotency(self) -> IdempotencyKeys: ...


class HasRegistry(Protocol):
    """``store.registry``: :class:`RegistryReads`."""

    @property
    def registry(self) -> RegistryReads: ...


class HasController(Protocol):
    """``store.controller``: :class:`ControllerRequests`."""

    @property
    def controller(self) -> ControllerRequests: ...


class HasNotifications(Protocol):
    """``store.notifications``: :class:`NotificationOutbox`."""

    @property
    def notifications(self) -> NotificationOutbox: ...


class HasA2aPush(Protocol):
    """``store.a2a_push``: :class:`A2aPushConfigs`."""

    @property
    def a2a_push(self) -> A2aPushConfigs: ...


class HasLimits(Protocol):
    """``store.limits``: :class:`ProjectLimitCounts`."""

    @property
    def limits(self) -> ProjectLimitCounts: ...


class HasCode(Protocol):
    @property
    def code(self) -> CodeFiles: ...


class HasSessions(Protocol):
    """``store.sessions``: :class:`ConsoleSessions`."""

    @property
    def sessions(self) -> ConsoleSessions: ...


class HasMaintenance(Protocol):
    """``store.maintenance``: :class:`Maintenance`."""

    @property
    def maintenance(self) -> Maintenance: ...


class HasProjects(Protocol):
    """``store.projects``: :class:`Projects`."""

    @property
    def projects(self) -> Projects: ...


class MetadataStore(HasMetadata, Transactional[AuditTransaction], Protocol):
    """Project metadata read, and set in a transaction (the trust and policy the controller
    publishes, the Slack messages posted)."""


class RunAndTaskReads(HasRuns, HasTasks, Protocol):
    """What a view of a run with its human tasks reads (the event stream, a task's page)."""


class ControllerReads(HasRegistry, HasTasks, Protocol):
    """What a controller observes: the registry and the promotion tasks open on it."""


class ControllerStateReads(HasRegistry, HasLocks, HasController, Protocol):
    """What the service shows of a controller: its status, its leader lock, its requests."""


class RegistryAdmin(
    ControllerReads,
    HasMetadata,
    Transactional[ControllerTransaction],
    Protocol,
):
    """The registry operations people run (suspend, pin, block, rollback, decide a task):
    registry and task reads, then a transaction of registry writes and audit. A rollback is
    judged at the store's ``clock`` against the trust the controller published (metadata),
    in the store's ``project``.
    """

    @property
    def clock(self) -> Clock: ...
    @property
    def project(self) -> str: ...


class ControllerStore(RegistryAdmin, HasLocks, HasController, Protocol):
    """Everything a reconciling controller uses: the registry, its leadership lock, its saved
    state (metadata), its requests and the promotion tasks it opens."""


def _conformance(store: Store) -> list[object]:
    """Never called: ``mypy --strict`` checks that the Store and each of its facets satisfy
    their protocols (an assignment to a protocol type is checked member by member)."""
    c0: StoreLifecycle = store
    c1: HasRuns = store
    c2: HasTasks = store
    c3: HasAudit = store
    c4: HasMetadata = store
    c5: HasQueue = store
    c6: HasLocks = store
    c7: HasIdempotency = store
    c8: HasRegistry = store
    c9: HasController = store
    c10: HasNotifications = store
    c11: HasA2aPush = store
    c12: HasSessions = store
    c13: HasMaintenance = store
    c14: MetadataStore = store
    c15: RunAndTaskReads = store
    c16: ControllerReads = store
    c17: ControllerStateReads = store
    c18: RegistryAdmin = store
    c19: ControllerStore = store
    c20: Transactional[WorkflowTransaction] = store
    c21: HasProjects = store
    c22: HasLimits = store
    c23: HasCode = store
    return [
        c0,
        c1,
        c2,
        c3,
        c4,
        c5,
        c6,
        c7,
        c8,
        c9,
        c10,
        c11,
        c12,
        c13,
        c14,
        c15,
        c16,
        c17,
        c18,
        c19,
        c20,
        c21,
        c22,
        c23,
    ]


def _facet_conformance(store: Store) -> list[object]:
    """Never called: each facet against its one protocol (see :func:`_conformance`)."""
    c0: RunReads = store.runs
    c1: HumanTaskReads = store.tasks
    c2: AuditLog = store.audit
    c3: ProjectMetadata = store.metadata
    c4: RunQueue = store.queue
    c5: NamedLocks = store.locks
    c6: IdempotencyKeys = store.idempotency
    c7: RegistryReads = store.registry
    c8: ControllerRequests = store.controller
    c9: NotificationOutbox = store.notifications
    c10: A2aPushConfigs = store.a2a_push
    c11: ConsoleSessions = store.sessions
    c12: Maintenance = store.maintenance
    c13: Projects = store.projects
    c14: ProjectLimitCounts = store.limits
    c15: CodeFiles = store.code
    return [c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15]


def _transaction_conformance(tx: Transaction) -> list[object]:
    """Never called: the Transaction against its protocols (see :func:`_conformance`)."""
    c0: RunTransaction = tx
    c1: HumanTaskTransaction = tx
    c2: AuditTransaction = tx
    c3: RegistryTransaction = tx
    c4: ControllerTransaction = tx
    c5: WorkflowTransaction = tx
    c6: ApprovalReads = tx
    return [c0, c1, c2, c3, c4, c5, c6]


__all__ = [
    "ApprovalReads",
    "AuditLog",
    "AuditTransaction",
    "CallbackReplays",
    "CodeFiles",
    "ConsoleSessions",
    "ControllerReads",
    "ControllerRequests",
    "ControllerStateReads",
    "ControllerStatusFields",
    "ControllerStore",
    "ControllerTransaction",
    "HasA2aPush",
    "HasAudit",
    "HasCode",
    "HasController",
    "HasIdempotency",
    "HasLimits",
    "HasLocks",
    "HasMaintenance",
    "HasMetadata",
    "HasNotifications",
    "HasProjects",
    "HasQueue",
    "HasRegistry",
    "HasRuns",
    "HasSessions",
    "HasTasks",
    "HumanTaskReads",
    "HumanTaskTransaction",
    "IdempotencyKeys",
    "Maintenance",
    "MetadataStore",
    "NamedLocks",
    "NewRun",
    "NotificationOutbox",
    "ProjectLimitCounts",
    "ProjectMetadata",
    "Projects",
    "RegistryAdmin",
    "RegistryReads",
    "RegistryTransaction",
    "RunAndTaskReads",
    "RunChanges",
    "RunLeases",
    "RunQueue",
    "RunReads",
    "RunTransaction",
    "StoreLifecycle",
    "Transactional",
    "WorkflowTransaction",
]
