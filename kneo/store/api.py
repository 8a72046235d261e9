"""The Store: one persistence interface for SQLite and PostgreSQL.

Reads are methods of the Store's facets, one per concern (``store.runs.get_run(...)``,
``store.registry.list_revisions(...)``); a caller annotates with the facet's class (or
``Store``, ``Transaction``): one implementation, each signature written once. Writes go
through a unit of work so that everything a step boundary changes commits together or not
at all::

    with store.transaction() as tx:
        run = tx.update_run(run_id, expected_version=run.version, state=position)
        tx.add_checkpoint(run_id, type="step_completed", step_id="s1", payload=...)
        tx.add_trace_events(run_id, [{"event_type": "step.completed", "step_id": "s1"}])
        tx.add_audit("run.step", run_id=run_id)

``update_run(..., expected_version=v)`` is a compare-and-set: it bumps ``version`` and raises
:class:`~kneo.errors.Conflict` (``stale_state``) when another writer got there first, which
is how a process holding a stale view of a paused run is stopped from resuming it twice.

Coordination primitives that must commit on their own (queue claims and leases, named locks,
idempotency keys) live in :mod:`kneo.store.coordination.queue_and_locks`; the inbox's reads in
:mod:`kneo.store.tasks.reads`; the GitOps registry in :mod:`kneo.store.registry.reads`;
retention and backup in :mod:`kneo.store.maintenance.retention`. Everything is reached through
this one ``Store`` object: its lifecycle and transactions on it, each concern as its facet
attribute.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from kneo.clock import Clock
from kneo.periodic import PeriodicTask
from kneo.projects import DEFAULT_PROJECT, DEFAULT_PROJECT_ID
from kneo.settings import Settings
from kneo.store import row_records, transaction
from kneo.store import tables as t
from kneo.store.audit_log import AuditFacet
from kneo.store.base import (
    Facet,
    HeldSpecs,
    StoreBase,
    check_order,
    check_page,
    count_reach,
    count_rows,
    get_by_key,
    keyset_page,
    not_found_error,
    ordered,
    page_total,
    page_walk,
)
from kneo.store.code import CodeFacet
from kneo.store.coordination.controller_requests import ControllerFacet
from kneo.store.coordination.limits import LimitsFacet
from kneo.store.coordination.queue_and_locks import IdempotencyFacet, LocksFacet, QueueFacet
from kneo.store.coordination.wakeups import Wakeups
from kneo.store.list_counts import RUNS, counted_total
from kneo.store.maintenance.retention import MaintenanceFacet
from kneo.store.migrate import current_revision, upgrade
from kneo.store.outbox.a2a_push import A2aPushFacet
from kneo.store.outbox.notifications import NotificationsFacet
from kneo.store.project_metadata import MetadataFacet
from kneo.store.projects import ProjectsFacet
from kneo.store.queries import RunQuery
from kneo.store.records import (
    CheckpointRecord,
    Page,
    RunRecord,
    TraceEvent,
)
from kneo.store.registry.reads import RegistryFacet
from kneo.store.rollouts import RolloutFacet
from kneo.store.runs import chains
from kneo.store.runs.filters import few_runs, run_where, searched, whole_rows
from kneo.store.schedules import SchedulesFacet
from kneo.store.sessions import SessionsFacet
from kneo.store.tasks.reads import TasksFacet
from kneo.store.transaction import Transaction as Transaction
from kneo.store.triggers import TriggersFacet
from kneo.store.wire.dialects import StoreDialect
from kneo.store.wire.executor import HeldConnection

if TYPE_CHECKING:
    from kneo.store.migrate import MigrationProgress


_GET_RUN = get_by_key(t.runs, "run_id")
#: ``list_runs``' orders by ``sort_by``: the columns of an index on ``runs`` (0009), so a page
#: (and the page after a cursor) is a walk of that index, never a sort
_RUN_ORDERS = {
    "created_at": ("created_at", "run_id"),
    "updated_at": ("updated_at", "run_id"),
    "status": ("status", "created_at", "run_id"),
}


def _runs_by_update(
    conn: Connection,
    where: list[Any],
    status: str | Sequence[str] | None,
    tag: str,
    *,
    limit: int,
    offset: int,
    cursor: str | None,
    count: bool,
    cap: int | None,
) -> tuple[list[Any], int | None, bool, str | None]:
    """A page of runs in ``updated_at`` order. Its index holds the settled runs only (a
    running run's ``updated_at`` moves at every step: ``tables.SETTLED``), so the page is two
    walks merged by that order: the settled runs along the index, and the running ones,
    which ``(project_id, status, created_at, run_id)`` finds (as many as execute at once) and the walk
    sorts; each walk stops at the page's end. A status filter leaves out the walk it
    excludes."""
    c = t.runs.c
    columns = (c.updated_at, c.run_id)
    wanted = None if status is None else {status} if isinstance(status, str) else set(status)
    walks = [
        [*where, part]
        for part, needed in (
            (c.status == "running", wanted is None or "running" in wanted),
            (t.SETTLED, wanted is None or bool(wanted - {"running"})),
        )
        if needed
    ]
    if len(walks) < 2:  # (none: an empty status list, which ``where`` already says)
        return keyset_page(
            conn, t.runs, walks[0] if walks else where, columns, tag, limit=limit,
            offset=offset, cursor=cursor, count=count, cap=cap,
        )  # fmt: skip
    pages = [  # whole rows: no join back to the table
        page_walk(sa.select(t.runs), walk, columns, tag, cursor, limit=limit, offset=offset)
        for walk in walks
    ]
    merged = sa.union_all(*(sa.select(page) for page in pages)).subquery()
    by = tuple(merged.c[col.name] for col in columns)
    # the page of what the walks found (each started after the cursor already)
    found, _, _, next_cursor = keyset_page(conn, merged, [], by, tag, limit=limit, offset=offset)
    total, capped = None, False
    if count:  # (no ORDER BY: no index of every run holds this order, the filters' do not)
        total = page_total(len(found), next_cursor is not None, offset, cursor)
        if total is None:
            total, capped = count_rows(conn, t.runs, where, cap, (c.created_at, c.run_id))
    return found, total, capped, next_cursor


class _RunPaging(NamedTuple):
    """What :meth:`RunsFacet.list_runs` pages by: the order's columns, the cursor's tag, the
    ``sort_by`` it came from, and the page asked for."""

    columns: tuple[Any, ...]
    tag: str
    sort_by: str
    limit: int
    offset: int
    cursor: str | None


class RunsFacet(Facet):
    """Runs, their checkpoints and their trace (``store.runs``)."""

    # -- runs -------------------------------------------------------------------------
    def get_run(self, run_id: str) -> RunRecord:
        # One statement (and, when not cached, the run's spec, which never changes), built
        # once: SQLAlchemy builds and keys a statement made per call every time.
        with self._read(snapshot=False) as conn:
            params = {"run_id": run_id, "project_id": self.project_id}
            row = conn.execute(_GET_RUN, params).mappings().first()
            if row is None:
                raise not_found_error("run", run_id)
            return row_records.run(row, row_records.spec_reader(self.dialect, conn))

    def run_states(self, run_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The execution state of each existing run in ``run_ids``, in one query (for views
        that join many continuations to their runs' pending requests)."""
        wanted = sorted(set(run_ids))
        if not wanted:
            return {}
        c = t.runs.c
        mine = c.project_id == self.project_id
        with self._read() as conn:
            result = conn.execute(sa.select(c.run_id, c.state).where(c.run_id.in_(wanted), mine))
            return {r.run_id: r.state or {} for r in result}

    def list_runs(self, query: RunQuery = RunQuery()) -> Page[RunRecord]:
        """Runs of the query's status and filters (:mod:`kneo.store.runs.filters`), sorted
        by ``created_at``, ``updated_at`` or ``status`` (then ``created_at``), ties by
        ``run_id``: each order is an index's. The page's ``next_cursor``, passed back as
        ``cursor``, continues after its last row (keyset paging, see
        :meth:`list_continuations`); ``count=False`` leaves ``total`` out. By status alone,
        ``total`` is the project's counters' (:mod:`kneo.store.list_counts`): flat in the
        number of runs; another filter counts the runs it keeps."""
        q = query
        order = check_order(q.sort_order)
        keys = _RUN_ORDERS[q.sort_by]
        c = t.runs.c
        where = [c.project_id == self.project_id]
        if isinstance(q.status, str):
            where.append(c.status == q.status)
        elif q.status is not None:
            where.append(c.status.in_(list(q.status)))
        filtered = q.filtered()
        where += run_where(q)
        cap = count_reach(self.settings.limits.max_list_count, q.offset, q.limit)
        paging = _RunPaging(
            tuple(c[k] for k in keys), f"{q.sort_by} {order}", q.sort_by, q.limit, q.offset,
            q.cursor,
        )  # fmt: skip
        with self._read() as conn:
            found, total, capped, next_cursor = self._runs_page(
                conn, where, paging, q, count=q.count and filtered, cap=cap
            )
            if q.count and not filtered:  # the project's counters
                total = page_total(len(found), next_cursor is not None, q.offset, q.cursor)
                if total is None:
                    total, capped = counted_total(conn, self.project_id, RUNS, q.status, None, cap)
            spec_text = row_records.spec_reader(self.dialect, conn)
            items = [row_records.run(r, spec_text) for r in found]
        return Page(items, total, q.limit, q.offset, q.sort_by, order, next_cursor, capped)

    def _runs_page(
        self,
        conn: Connection,
        where: list[Any],
        paging: _RunPaging,
        query: RunQuery,
        *,
        count: bool,
        cap: int | None,
    ) -> tuple[list[Any], int | None, bool, str | None]:
        """:meth:`list_runs`' page, and its ``total`` counted when ``count`` asks: a search
        walks its words' rows (a common word's by the rarest's), a filter in another order
        its few runs (:func:`few_runs`), ``updated_at`` two walks (:func:`_runs_by_update`)."""
        c = t.runs.c
        columns, tag = paging.columns, paging.tag
        limit, offset, cursor = paging.limit, paging.offset, paging.cursor
        table: sa.FromClause = t.runs
        counted: tuple[sa.FromClause, list[Any]] | None = None
        if query.q is not None:
            by_created = paging.sort_by == "created_at"
            unsearched = where
            table, where, columns = searched(
                conn, where, query.q, columns, by_created, self.project_id
            )
            if table is t.runs and not by_created and count:  # every word common:
                made = (c.created_at, c.run_id)  # counted by the rarest's rows (issue 73)
                counted = searched(conn, unsearched, query.q, made, True, self.project_id)[:2]
        elif paging.sort_by != "created_at" and len(where) > 1:  # a filter, another order
            table, where, columns = few_runs(conn, where, columns) or (t.runs, where, columns)
        if paging.sort_by == "updated_at" and table is t.runs:
            found, total, capped, next_cursor = _runs_by_update(
                conn, where, query.status, tag, limit=limit, offset=offset, cursor=cursor,
                count=count and counted is None, cap=cap,
            )  # fmt: skip
        else:
            searching = query.q is not None
            by: tuple[Any, ...] | None = (c.created_at, c.run_id) if table is t.runs else ()
            by = None if searching and table is t.runs else by  # (a search: its words')
            found, total, capped, next_cursor = keyset_page(
                conn, table, where, columns, tag, limit=limit, offset=offset,
                cursor=cursor, count=count and counted is None, cap=cap, count_order=by,
            )  # fmt: skip
            if table is not t.runs:  # a rare word's runs, paged by their keys
                found = whole_rows(conn, found, self.project_id)
        if counted is not None:
            total = page_total(len(found), next_cursor is not None, offset, cursor)
            if total is None:
                walk = (t.run_terms.c.created_at, t.run_terms.c.run_id)
                total, capped = count_rows(conn, counted[0], counted[1], cap, walk)
        return found, total, capped, next_cursor

    # -- checkpoints and trace --------------------------------------------------------
    def _owned(self, run_id: Any) -> Any:
        """Whether the run ``run_id`` (a column) is this project's: checkpoints and trace
        events have no project of their own, so their reads probe the run's key."""
        r = t.runs.c
        mine = sa.select(r.run_id).where(r.run_id == run_id, r.project_id == self.project_id)
        return sa.exists(mine)

    def list_checkpoints(
        self,
        run_id: str,
        *,
        type: str | None = None,
        sequences: Sequence[int] | None = None,
        limit: int = 100,
        offset: int = 0,
        sort_order: str = "asc",
    ) -> Page[CheckpointRecord]:
        """A run's checkpoints by sequence, optionally of one ``type`` or only the
        ``sequences`` named (a diff's two ends in one read; one not stored is left out)."""
        check_page(limit, offset)
        order = check_order(sort_order)
        c = t.checkpoints.c
        where = [c.run_id == run_id, self._owned(c.run_id)] + ([c.type == type] if type else [])
        if sequences is not None:
            where.append(c.sequence.in_(sorted(set(sequences))))
        with self._read() as conn:
            total = conn.execute(
                sa.select(sa.func.count()).select_from(t.checkpoints).where(*where)
            ).scalar_one()
            result = conn.execute(
                sa.select(t.checkpoints)
                .where(*where)
                .order_by(ordered(c.sequence, order))
                .limit(limit)
                .offset(offset)
            ).mappings()
            items = chains.records(conn, run_id, list(result))
        return Page(items, total, limit, offset, "sequence", order)

    def list_trace(
        self,
        run_id: str,
        *,
        event_type: str | None = None,
        limit: int = 100,
        offset: int = 0,
        sort_order: str = "asc",
    ) -> Page[TraceEvent]:
        """A run's timeline by sequence, optionally of one ``event_type``."""
        check_page(limit, offset)
        order = check_order(sort_order)
        c = t.trace_events.c
        where = [c.run_id == run_id, self._owned(c.run_id)]
        where += [c.event_type == event_type] if event_type else []
        with self._read() as conn:
            total = conn.execute(
                sa.select(sa.func.count()).select_from(t.trace_events).where(*where)
            ).scalar_one()
            result = conn.execute(
                sa.select(t.trace_events)
                .where(*where)
                .order_by(ordered(c.sequence, order))
                .limit(limit)
                .offset(offset)
            ).mappings()
            items = [row_records.trace(r) for r in result]
        return Page(items, total, limit, offset, "sequence", order)


class Store(StoreBase):
    """The persistence interface. Build it with :func:`kneo.store.open_store`.

    The Store itself is its lifecycle (transactions, schema, connections, close); each
    concern is a facet attribute (``store.runs.get_run(...)``,
    ``store.registry.list_revisions(...)``), all on this store's engine and clock.

    A Store is one project's view (:meth:`for_project`): its facets and its transactions
    read and write that project's rows only. The Store :func:`~kneo.store.open_store`
    returns is the ``default`` project's, so a caller that never names a project works on
    it; the operations that must see every project (a worker's claim, the outbox's routing,
    stranded runs, locks, sessions, maintenance) are global on every view, and their records
    say whose they are (``project_id``).

    Thread-safe: every call checks a connection out of the engine's pool. Timestamps come
    from the injected clock; JSON payloads are stored as compact text.
    """

    #: the project's name, and its ``projects.id`` (what its rows carry)
    project: str = DEFAULT_PROJECT
    project_id: int = DEFAULT_PROJECT_ID

    runs: RunsFacet
    tasks: TasksFacet
    audit: AuditFacet
    metadata: MetadataFacet
    queue: QueueFacet
    locks: LocksFacet
    idempotency: IdempotencyFacet
    registry: RegistryFacet
    controller: ControllerFacet
    notifications: NotificationsFacet
    a2a_push: A2aPushFacet
    sessions: SessionsFacet
    maintenance: MaintenanceFacet
    projects: ProjectsFacet
    limits: LimitsFacet
    code: CodeFacet
    schedules: SchedulesFacet
    triggers: TriggersFacet
    rollouts: RolloutFacet
    wakeups: Wakeups

    def __init__(
        self, engine: Engine, dialect: StoreDialect, *, settings: Settings, clock: Clock
    ) -> None:
        self.engine = engine
        self.dialect = dialect
        self.settings = settings
        self.clock = clock
        #: ``specs`` digests committed through this store
        self.specs_held = HeldSpecs()
        #: the store that owns the engine; a project's view is another Store on it
        self._root = self
        self._views: dict[int, Store] = {}
        self._views_lock = threading.Lock()
        #: wake-ups between this database's processes (every project's view shares them)
        self.wakeups = Wakeups(engine, dialect.name)
        self.projects = ProjectsFacet(self)
        self._build_facets()

    def for_project(self, project: str | int) -> Store:
        """The view of the active project named ``project`` (or of that ``projects.id``, as
        a global record carries it): a Store sharing this one's engine, dialect, settings,
        clock and caches, whose facets and transactions read and write that project's rows
        only. ``project_not_found`` when it is unknown or archived. Views are kept: asking
        again returns the same one (``default``'s is the store ``open_store`` returned)."""
        root = self._root
        if project in (DEFAULT_PROJECT, DEFAULT_PROJECT_ID):
            return root
        project_id, name = root.projects._resolve(project)
        if project_id == DEFAULT_PROJECT_ID:
            return root
        with root._views_lock:
            view = root._views.get(project_id)
            if view is None:
                view = root._views[project_id] = root._view(project_id, name)
        return view

    def _view(self, project_id: int, name: str) -> Store:
        """A view of project ``project_id`` on this store's engine (see :meth:`for_project`)."""
        view = Store.__new__(Store)
        view.engine, view.dialect = self.engine, self.dialect
        view.settings, view.clock = self.settings, self.clock
        view.specs_held = self.specs_held  # content-addressed: the same for every project
        view.project_id, view.project = project_id, name
        view.wakeups = self.wakeups
        view._root = self
        view.projects = self.projects
        view._build_facets()
        return view

    def _build_facets(self) -> None:
        """This view's facets, each bound to its project."""
        self.runs = RunsFacet(self)
        self.tasks = TasksFacet(self)
        self.audit = AuditFacet(self)
        self.metadata = MetadataFacet(self)
        self.queue = QueueFacet(self)
        self.locks = LocksFacet(self)
        self.idempotency = IdempotencyFacet(self)
        self.registry = RegistryFacet(self)
        self.controller = ControllerFacet(self)
        self.notifications = NotificationsFacet(self)
        self.a2a_push = A2aPushFacet(self)
        self.sessions = SessionsFacet(self)
        self.maintenance = MaintenanceFacet(self)
        self.limits = LimitsFacet(self)
        self.code = CodeFacet(self)
        self.schedules = SchedulesFacet(self)
        self.triggers = TriggersFacet(self)
        self.rollouts = RolloutFacet(self)

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.dialect.name

    def close(self) -> None:
        """Release pooled connections (and SQLite's writer connection). A project's view
        shares its engine with the store it came from, which closes it: closing a view does
        nothing."""
        if self._root is not self:
            return
        self.wakeups.stop()
        self.dialect.dispose(self.engine)
        self.engine.dispose()

    def start_background_work(self, interval: float | None = None) -> PeriodicTask | None:
        """Start the database's housekeeping thread for a long-running process (SQLite: WAL
        checkpoints off the request path); ``None`` where there is none. Call ``stop()``."""
        return self.dialect.start_background_work(self.engine, interval)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------
    def transaction(
        self, held: HeldConnection | None = None, *, marks_registry_changes: bool = True
    ) -> contextlib.AbstractContextManager[Transaction]:
        """The write unit of work (:class:`kneo.store.transaction.Transaction`): commits on
        normal exit, rolls back on any exception. ``held``: the connection a run keeps
        between its consecutive transactions (:meth:`hold_connection`);
        ``marks_registry_changes=False``: the controller's own, whose registry writes its
        saved reconcile state accounts for (not stamped for an incremental reconcile to
        find: :class:`~kneo.store.registry.writes.RegistryWritesMixin`)."""
        return transaction.TransactionScope(self, held, marks_registry_changes)

    def hold_connection(self) -> HeldConnection:
        """A connection one run keeps between its back-to-back write transactions (its step
        boundaries: :class:`~kneo.store.wire.executor.HeldConnection`); close it when done."""
        return HeldConnection(self.engine)

    def schema_revision(self) -> str | None:
        """The migration revision recorded in the database (``None`` when empty)."""
        with self._read() as conn:
            return current_revision(conn)

    def upgrade_schema(self, progress: MigrationProgress | None = None) -> str | None:
        """Apply pending migrations under the cross-process lock; returns the new revision.
        ``progress(revision)`` is told after each script has run."""
        with self._db_errors():
            return upgrade(self.engine, self.dialect, progress=progress)

    def ping(self) -> None:
        """Readiness: one round trip; ``NotReady`` when the database cannot be reached."""
        with self._read() as conn:
            conn.execute(sa.text("SELECT 1"))
