"""The store's contract: what callers may rely on, one :class:`~typing.Protocol` per concern.

:class:`~kneo.store.api.Store` is one class over SQLite and PostgreSQL; its lifecycle is its
own (:class:`StoreLifecycle`) and each concern is a facet attribute (``store.runs``,
``store.registry``, ...) whose class implements one protocol, named by a ``Has*`` protocol
for a store holding it. A caller depends on the few concerns it uses (the controller on
registry reads and registry writes, a lease keeper on run leases, ...), named here, so what
it touches is visible to mypy and a second implementation (or a narrower fake) knows what to
provide. Store-side protocols are reads and the coordination primitives that must commit on
their own (claims, leases, locks, idempotency keys); the ``*Transaction`` protocols
(:mod:`kneo.store.transaction_contracts`, re-exported here) are the writes of one unit of
work, reached through :class:`Transactional`'s ``transaction()``. A write is the
transaction's only (the Store has no shorthand of it): one way to write, one signature.

This module holds the store's own: its lifecycle, the reads of runs, human tasks, audit and
metadata, maintenance, the ``Has*`` holders and their combinations. The other rooms'
protocols are each in a module of their own, re-exported here:
:mod:`kneo.store.coordination_contracts`, :mod:`kneo.store.registry_contracts`,
:mod:`kneo.store.outbox_contracts` and :mod:`kneo.store.project_contracts` (schedules' and
triggers' are :mod:`kneo.store.start_contracts`').

:func:`_conformance` and its two siblings below are checked by ``mypy --strict``: they fail
when ``Store``, a facet or ``Transaction`` stops satisfying a protocol;
``tests/store/test_contract_coverage.py`` fails when a public facet method has no protocol,
``tests/store/test_store_surface.py`` when a transaction's write is on the Store again.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from kneo.lifecycle import TaskStatus
from kneo.store.coordination_contracts import (
    CallbackReplays,
    IdempotencyKeys,
    NamedLocks,
    ProjectLimitCounts,
    RunLeases,
    RunQueue,
)
from kneo.store.outbox_contracts import A2aPushConfigs, NotificationOutbox
from kneo.store.project_contracts import CodeFiles, ConsoleSessions, Projects
from kneo.store.registry_contracts import ControllerRequests, RegistryReads
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
    from kneo.store.coordination.wakeups import Wakeups
    from kneo.store.maintenance.gauges import Gauges
    from kneo.store.migrate import MigrationProgress
    from kneo.store.records import (
        AuditEvent,
        CheckpointRecord,
        ContinuationRecord,
        Page,
        RunRecord,
        TraceEvent,
    )
    from kneo.store.runs.filters import RunFilter
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
        status: str | None = TaskStatus.PENDING,
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
    "A2aPushConfigs",
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
