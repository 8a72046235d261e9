"""Projects in the store (issue 61), on SQLite and PostgreSQL: every read and write of a
project-owned record is scoped by the view's project, in the store itself.

For each scoped facet method: written in project A, read, updated, deleted, listed, searched
or counted in project B finds nothing (``NotFound``, an empty page, zero counts, the same
inbox version, no search hit), and A still sees its own; a transaction of B cannot update
A's run. The global operations (claims, routing, stranded runs, locks, sessions,
maintenance) see every project and say whose each record is. :data:`GLOBAL` and
:data:`SCOPED` classify every public facet method, so a new one must be classified.
"""

from __future__ import annotations

import re
import threading
import time
import typing
from dataclasses import replace
from typing import Any

import pytest
import sqlalchemy as sa

from kneo.clock import ManualClock
from kneo.errors import Conflict, IllegalTransition, InvalidRequest, NotFound
from kneo.projects import DEFAULT_PROJECT, DEFAULT_PROJECT_ID
from kneo.store import AuditQuery, RegistryQuery, RunQuery, Store, TaskQuery, Transaction
from kneo.store import tables as t
from kneo.store.base import Facet
from kneo.store.outbox.a2a_push import PushTarget
from kneo.store.outbox.notifications import NotificationCounts
from kneo.store.runs.steps import StepEvent
from kneo.store.tasks.search import scoped_term
from tests.operations.helpers import wait_for
from tests.queue_records import queue_records, queue_stats

from .helpers import new_run

#: The store's facets by attribute (``store.runs``: ``RunsFacet``).
FACETS = {
    name: cls
    for name, cls in typing.get_type_hints(Store).items()
    if isinstance(cls, type) and issubclass(cls, Facet)
}

#: The facet methods that see every project (each record they return says its project).
GLOBAL: dict[str, set[str]] = {
    # content-addressed project code: a file is reached only by its sha256, which only the
    # holder of its bytes can name (like ``specs`` rows)
    "code": {"missing", "put", "get"},
    "queue": {
        "claim", "renew_lease", "finish", "release",  # a worker's queue record
        "renew_run_leases", "release_run_lease", "run_lease",  # by run id
        "stranded_runs",  # the sweeper's: each run id says its project
    },
    "locks": {"acquire_lock", "renew_lock", "release_lock", "get_lock"},
    "idempotency": {"first_callback"},  # a callback's key names its receiver
    "notifications": {
        "route_notifications", "claim_notifications", "finish_notifications",
    },
    "a2a_push": {"due_pushes", "record_push"},
    # the controller of every project's source: each source says its project (given a
    # name, the view's project's controller only: test_a_controllers_wakeups_are_its_projects)
    "controller": {"controller_wakeups"},
    "limits": {"executing_runs"},  # a worker's view of the projects it limits, by id
    "sessions": {
        "open_console_session", "console_session", "update_console_session",
    },
    "maintenance": {"prune_retention", "backup_sqlite", "gauges"},
    "projects": {
        "create_project", "get_project", "list_projects", "update_project",
    },
}  # fmt: skip

#: The facet methods that read or write the view's project's rows only.
SCOPED: dict[str, set[str]] = {
    "runs": {
        "get_run", "run_states", "list_runs", "list_checkpoints", "list_trace",
    },
    "tasks": {
        "get_continuation", "list_continuations",
        "pending_counts_by_assignee", "inbox_version",
    },
    "audit": {"list_audit", "get_audit"},
    "metadata": {"get_metadata", "metadata_snapshot", "list_metadata"},
    "idempotency": {"begin_idempotent", "finish_idempotent"},
    "registry": {
        "get_revision", "get_active", "list_revisions", "list_registry",
        "registry_changes_since", "list_conditions", "holds", "get_controller_status",
        "list_promotion_approvals",
    },
    "controller": {
        "queue_controller_request", "take_controller_requests", "finish_controller_requests",
        "get_controller_request", "controller_request_counts",
        "notify_controller",
    },
    "notifications": {
        "add_notification_event", "list_notifications", "notification_counts",
        "retry_notifications",
    },
    "a2a_push": {"set_push_config", "push_configs"},
    "limits": {"count_runs", "day_usage", "add_usage", "raise_day_limit"},
    "schedules": {
        "states", "advance", "set_paused", "claim_tick", "record_tick", "live_run", "ticks", "waiting",
    },
    "triggers": {"claim_event", "record_event"},
    "rollouts": {
        "serving", "get_rollout", "list_rollouts", "active", "figures",
        "unjudged_runs", "record_judgement",
    },
}  # fmt: skip


def _public(cls: type) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_")}


def test_every_facet_method_is_global_or_scoped() -> None:
    """A new facet method fails here until it is classified (and, if scoped, scoped)."""
    for name, cls in FACETS.items():
        global_, scoped = GLOBAL.get(name, set()), SCOPED.get(name, set())
        assert not global_ & scoped, name
        assert _public(cls) == global_ | scoped, name
    assert set(GLOBAL) | set(SCOPED) == set(FACETS)


def test_every_transaction_write_is_scoped() -> None:
    """A transaction writes and reads its view's project only: none of its methods is
    global (a new one is scoped by the statement hooks of ``TransactionBase``)."""
    assert "project_id" not in _public(Transaction)


@pytest.fixture
def a(store: Store) -> Store:
    store.projects.create_project("team-a")
    return store.for_project("team-a")


@pytest.fixture
def b(store: Store) -> Store:
    store.projects.create_project("team-b")
    return store.for_project("team-b")


# -- views and the projects facet ---------------------------------------------------------


def test_views_share_the_engine_and_are_kept(store: Store, a: Store, b: Store) -> None:
    assert (store.project, store.project_id) == (DEFAULT_PROJECT, DEFAULT_PROJECT_ID)
    assert store.for_project(DEFAULT_PROJECT) is store
    assert store.for_project(DEFAULT_PROJECT_ID) is store
    assert a.project == "team-a" and a.project_id not in (DEFAULT_PROJECT_ID, b.project_id)
    assert store.for_project("team-a") is a and store.for_project(a.project_id) is a
    assert a.for_project("team-b") is b and b.for_project(DEFAULT_PROJECT) is store
    assert (a.engine, a.dialect, a.clock, a.settings) == (
        store.engine, store.dialect, store.clock, store.settings,
    )  # fmt: skip
    assert a.specs_held is store.specs_held and a.projects is store.projects
    a.close()  # a view's close leaves the engine to the store it came from
    assert a.runs.list_runs().items == []


def test_projects_are_created_read_defined_and_archived(store: Store, a: Store) -> None:
    projects = store.projects
    default = projects.get_project(DEFAULT_PROJECT)
    assert (default.id, default.status, default.definition) == (1, "active", None)
    assert projects.get_project(a.project_id).name == "team-a"
    with pytest.raises(Conflict) as err:
        projects.create_project("team-a")
    assert err.value.code == "already_exists"
    with pytest.raises(InvalidRequest) as bad:
        projects.create_project("no/slash")
    assert bad.value.code == "invalid_name"
    defined = projects.update_project("team-a", definition={"limits": {"max_running": 2}})
    assert (
        projects.get_project("team-a").definition
        == defined.definition
        == {"limits": {"max_running": 2}}
    )
    assert [p.name for p in projects.list_projects()] == [DEFAULT_PROJECT, "team-a"]
    assert projects.update_project("team-a", status="archived").status == "archived"
    assert [p.name for p in projects.list_projects(status="active")] == [DEFAULT_PROJECT]
    assert [p.name for p in projects.list_projects(status="archived")] == ["team-a"]
    for gone in ("team-a", a.project_id, "nobody", 999):
        with pytest.raises(NotFound) as missing:
            store.for_project(gone)
        assert missing.value.code == "project_not_found"
        assert missing.value.http_status == 404
    with pytest.raises(NotFound) as nobody:
        projects.get_project("nobody")
    assert nobody.value.code == "project_not_found"
    with pytest.raises(IllegalTransition):
        projects.update_project(DEFAULT_PROJECT, status="archived")
    with pytest.raises(IllegalTransition):  # an archived project stays archived
        projects.update_project("team-a", status="active")
    with pytest.raises(InvalidRequest):
        projects.update_project("team-a", status="deleted")
    with pytest.raises(NotFound):
        projects.update_project("nobody", definition=None)
    with pytest.raises(InvalidRequest):
        projects.list_projects(status="deleted")


# -- runs, checkpoints, trace -------------------------------------------------------------


def _run_of(view: Store, clock: ManualClock) -> str:
    """A finished run of ``view``'s project with a checkpoint, events, a session and words."""
    run_id = new_run(view, session_id="s1", status="running")
    with view.transaction() as tx:
        tx.add_checkpoint(run_id, type="step_completed", payload={"x": 1})
        tx.add_trace_events(run_id, [{"event_type": "step.completed"}])
        tx.update_run(run_id, output_text="zeppelin landed", error={"message": "boom"})
    clock.advance(1)
    return run_id


def test_runs_are_their_projects(store: Store, a: Store, b: Store, clock: ManualClock) -> None:
    run_id = _run_of(a, clock)
    for other in (b, store):
        with pytest.raises(NotFound):
            other.runs.get_run(run_id)
        assert other.runs.run_states([run_id]) == {}
        for sort_by in ("created_at", "updated_at", "status"):
            assert other.runs.list_runs(RunQuery(sort_by=sort_by)).total == 0
            for found in (RunQuery(q="zeppelin"), RunQuery(session_id="s1")):
                assert other.runs.list_runs(replace(found, sort_by=sort_by)).items == []
        assert other.runs.list_runs(RunQuery(has_error=True)).items == []
        page = other.runs.list_checkpoints(run_id)
        assert (page.items, page.total) == ([], 0)
        assert other.runs.list_checkpoints(run_id, sequences=[1]).items == []
        assert other.runs.list_checkpoints(run_id, limit=1).items == []
        trace = other.runs.list_trace(run_id)
        assert (trace.items, trace.total) == ([], 0)
    assert a.runs.get_run(run_id).output_text == "zeppelin landed"
    assert list(a.runs.run_states([run_id])) == [run_id]
    assert [r.run_id for r in a.runs.list_runs(RunQuery(q="zeppelin")).items] == [run_id]
    assert [r.run_id for r in a.runs.list_runs(RunQuery(sort_by="status")).items] == [run_id]
    assert a.runs.list_checkpoints(run_id, sequences=[1]).items[0].payload == {"x": 1}
    assert a.runs.list_trace(run_id).total == 1


def test_a_transaction_of_another_project_cannot_touch_a_run(
    a: Store, b: Store, clock: ManualClock
) -> None:
    run_id = _run_of(a, clock)
    run = a.runs.get_run(run_id)
    writes: list[Any] = [
        lambda tx: tx.get_run(run_id),
        lambda tx: tx.get_run(run_id, for_update=True),
        lambda tx: tx.update_run(run_id, status="failed"),
        lambda tx: tx.update_run(run_id, expected_version=run.version, status="failed"),
        lambda tx: tx.update_run(run_id, cancel_requested=True),
        lambda tx: tx.add_checkpoint(run_id, type="x", payload={}),
        lambda tx: tx.add_trace_events(run_id, [{"event_type": "x"}]),
        lambda tx: tx.write_step(
            run_id,
            expected_version=run.version,
            state_text="{}",
            checkpoints=(),
            events=(StepEvent("x", None, "{}"),),
        ),
        lambda tx: tx.finish_run(run, expected_version=run.version, status="succeeded"),
        lambda tx: tx.put_continuation("cont_b", run_id=run_id, requests=[{"request_id": "r"}]),
    ]
    for write in writes:
        with pytest.raises(NotFound), b.transaction() as tx:
            write(tx)
    with b.transaction() as tx:  # a lease taken in B's transaction lands nowhere
        tx.take_run_lease(run_id, "b-worker", 60)
    after = a.runs.get_run(run_id)
    assert (after.version, after.status, after.cancel_requested) == (run.version, run.status, False)
    assert a.queue.run_lease(run_id) is None
    assert a.runs.list_checkpoints(run_id).total == 1 and a.runs.list_trace(run_id).total == 1


# -- human tasks and the inbox --------------------------------------------------------------


def _task_of(view: Store, run_id: str, cid: str = "cont_a") -> str:
    with view.transaction() as tx:
        tx.put_continuation(
            cid,
            run_id=run_id,
            requests=[{"request_id": "req_a", "kind": "approval", "assignee": "alice"}],
            search_text=["launch the rocket"],
        )
        tx.add_audit("human.requested", run_id=run_id, continuation_id=cid)
    return cid


def _inbox(view: Store) -> list[Any]:
    tasks = view.tasks
    return [
        tasks.list_continuations(),
        tasks.list_continuations(TaskQuery(assignee="alice")),
        tasks.list_continuations(TaskQuery(assignee=("alice", "group:x"))),
        tasks.list_continuations(TaskQuery(kind="approval")),
        tasks.list_continuations(TaskQuery(q="rocket")),
        tasks.list_continuations(TaskQuery(q="rocket launch", assignee="alice")),
        tasks.list_continuations(TaskQuery(workflow_name="wf")),
        tasks.list_continuations(TaskQuery(sort="expiring")),
        tasks.list_continuations(TaskQuery(status=None, run_id=None)),
    ]


def test_tasks_are_their_projects(store: Store, a: Store, b: Store) -> None:
    run_id = new_run(a, status="paused")
    before = b.tasks.inbox_version(), store.tasks.inbox_version()
    cid = _task_of(a, run_id)
    for other, version in zip((b, store), before, strict=True):
        with pytest.raises(NotFound):
            other.tasks.get_continuation(cid)
        assert all(page.items == [] and page.total == 0 for page in _inbox(other))
        assert other.tasks.pending_counts_by_assignee() == {}
        assert other.tasks.pending_counts_by_assignee(cap=10) == {}
        assert other.tasks.inbox_version() == version
    assert a.tasks.get_continuation(cid).run_id == run_id
    assert all([c.continuation_id for c in page.items] == [cid] for page in _inbox(a))
    assert a.tasks.pending_counts_by_assignee() == {"alice": 1}
    assert a.tasks.pending_counts_by_assignee(cap=10) == {"alice": 1}
    assert a.tasks.inbox_version() > before[0]


def test_a_transaction_of_another_project_cannot_touch_a_task(a: Store, b: Store) -> None:
    cid = _task_of(a, new_run(a, status="paused"))
    with pytest.raises(NotFound), b.transaction() as tx:
        tx.get_continuation(cid)
    with pytest.raises(NotFound), b.transaction() as tx:
        tx.put_continuation(
            cid, run_id=None, requests=[{"request_id": "req_a"}], status="resolved",
            expected_version=1,
        )  # fmt: skip
    with b.transaction() as tx:
        assert tx.delete_continuation(cid) is False
    kept = a.tasks.get_continuation(cid)
    assert (kept.status, kept.version) == ("pending", 1)
    assert [c.continuation_id for c in a.tasks.list_continuations(TaskQuery(q="rocket")).items] == [
        cid
    ]
    assert a.tasks.pending_counts_by_assignee() == {"alice": 1}
    with a.transaction() as tx:  # its own project deletes it, words and labels too
        assert tx.delete_continuation(cid) is True
    assert a.tasks.list_continuations(TaskQuery(q="rocket")).items == []
    assert a.tasks.list_continuations(TaskQuery(assignee="alice")).items == []


def test_a_scoped_term_names_its_project_in_base_36() -> None:
    assert scoped_term(DEFAULT_PROJECT_ID, "rocket") == "rocket"
    assert [scoped_term(n, "w") for n in (2, 10, 36, 37)] == ["~2:w", "~a:w", "~10:w", "~11:w"]


def test_the_same_words_in_two_projects_are_two_searches(a: Store, b: Store) -> None:
    """Each project walks its own key range of the same search index."""
    cids = {}
    for view in (a, b):
        run_id = new_run(view, status="paused")
        with view.transaction() as tx:
            cid = f"cont_{view.project}"
            tx.put_continuation(
                cid, run_id=run_id, search_text=["rocket"],
                requests=[{"request_id": f"req_{view.project}", "assignee": "alice"}],
            )  # fmt: skip
            tx.update_run(run_id, output_text="rocket")
        cids[view.project] = (cid, run_id)
    for view in (a, b):
        cid, run_id = cids[view.project]
        assert [
            c.continuation_id for c in view.tasks.list_continuations(TaskQuery(q="rocket")).items
        ] == [cid]
        assert [
            c.continuation_id
            for c in view.tasks.list_continuations(TaskQuery(assignee="alice")).items
        ] == [cid]
        assert [r.run_id for r in view.runs.list_runs(RunQuery(q="rocket")).items] == [run_id]
    with a.engine.connect() as conn:  # the default project's terms as they are, others' prefixed
        terms = set(conn.execute(sa.select(t.continuation_terms.c.term)).scalars())
    scoped = {scoped_term(a.project_id, "rocket"), scoped_term(b.project_id, "rocket")}
    assert "rocket" not in terms and scoped <= terms and len(scoped) == 2


# -- audit, metadata, queue, idempotency ------------------------------------------------------


def test_audit_and_metadata_are_their_projects(store: Store, a: Store, b: Store) -> None:
    with a.transaction() as tx:
        event = tx.add_audit("run.created", run_id="run_x", continuation_id="cont_x")
        tx.set_metadata("env_policy:dev", {"a": True})
    for other in (b, store):
        for filters in ({}, {"event_type": "run.created"}, {"run_id": "run_x"},
                        {"continuation_id": "cont_x"}):  # fmt: skip
            page = other.audit.list_audit(AuditQuery(**filters))
            assert (page.items, page.total) == ([], 0)
        with pytest.raises(NotFound):
            other.audit.get_audit(event.event_id)
        assert other.metadata.get_metadata("env_policy:dev", "unset") == "unset"
        with other.metadata.metadata_snapshot(["env_policy:dev"]):
            assert other.metadata.get_metadata("env_policy:dev") is None
        assert other.metadata.list_metadata() == {}
        with other.transaction() as tx:
            assert tx.metadata(["env_policy:dev"]) == {}
    with b.transaction() as tx:  # the same key, B's own value
        tx.set_metadata("env_policy:dev", {"b": True})
    assert a.audit.get_audit(event.event_id) == event
    assert a.audit.list_audit(AuditQuery(run_id="run_x")).total == 1
    assert a.metadata.list_metadata() == {"env_policy:dev": {"a": True}}
    assert b.metadata.get_metadata("env_policy:dev") == {"b": True}


def test_queue_records_are_their_projects_and_a_claim_says_whose(
    store: Store, a: Store, b: Store
) -> None:
    run_id = new_run(a)
    with a.transaction() as tx:
        queued = tx.enqueue(run_id)
    assert queued.project_id == a.project_id
    for other in (b, store):
        assert queue_records(other, run_id) == []
        assert queue_stats(other)["queued"] == 0
    assert queue_stats(a)["queued"] == 1
    claimed = b.queue.claim("worker", 30)  # global: any project's oldest due record
    assert claimed is not None and (claimed.run_id, claimed.project_id) == (run_id, a.project_id)
    assert [r.status for r in queue_records(a, run_id)] == ["leased"]


def test_idempotency_keys_are_their_projects(a: Store, b: Store) -> None:
    assert a.idempotency.begin_idempotent("ci:create", "k1", "hash-a").state == "new"
    assert b.idempotency.begin_idempotent("ci:create", "k1", "hash-b").state == "new"
    a.idempotency.finish_idempotent("ci:create", "k1", (201, {"project": "a"}))
    b.idempotency.finish_idempotent("ci:create", "k1", None)
    with pytest.raises(NotFound):
        b.idempotency.finish_idempotent("ci:create", "k1", (201, {"project": "b"}))
    replay = a.idempotency.begin_idempotent("ci:create", "k1", "hash-a")
    assert (replay.state, replay.response) == ("replay", {"project": "a"})
    assert b.idempotency.begin_idempotent("ci:create", "k1", "hash-b").state == "new"


# -- the registry and the controller's requests -----------------------------------------------


def _registry_of(view: Store) -> None:
    with view.transaction() as tx:
        tx.add_revision("bot", "dev", digest="sha256:1", status="active")
        tx.add_revision("bot", "prod", digest="sha256:1", status="pending_approval")
        tx.set_conditions("bot", "dev", [("Ready", "True", "Promoted", "")])
        tx.set_suspended("bot", "dev", True, reason="hold")
        tx.set_pin("bot", "dev", 1)
        tx.set_blocked("sha256:bad", True, reason="cve")
        tx.set_controller_status(last_fetched_commit="abc")
        tx.add_promotion_approval("bot", "prod", "sha256:1", approver="ann", decision="approved")
        tx.add_promotion_approval("bot", "prod", "freeze:x", approver="ann", decision="approved")


def _registry_reads(view: Store) -> list[Any]:
    r = view.registry
    status, holds = r.get_controller_status(), r.holds()
    return [
        r.get_active("bot", "dev"), r.list_revisions("bot", "dev"), r.list_registry().items,
        r.list_registry(RegistryQuery(status=None)).items, r.list_revisions(heads=True),
        r.registry_changes_since(0)[1], r.list_revisions(status="pending_approval", heads=True),
        r.list_revisions("bot", "dev", digest="sha256:1"), r.list_conditions(),
        r.list_conditions(heads=True), holds.suspensions, holds.pins, holds.blocked,
        status.last_fetched_commit, r.list_promotion_approvals("bot", "prod"),
        r.list_promotion_approvals(prefix="freeze:"),
    ]  # fmt: skip


def test_the_registry_is_its_projects(store: Store, a: Store, b: Store) -> None:
    _registry_of(a)
    for other in (b, store):
        assert not any(_registry_reads(other))
        with pytest.raises(NotFound):
            other.registry.get_revision("bot", "dev", 1)
    assert all(_registry_reads(a))
    with b.transaction() as tx:  # B's transactions see none of A's rows either
        with pytest.raises(NotFound):
            tx.set_revision_status("bot", "dev", 1, "active")
        with pytest.raises(NotFound):
            tx.get_revision("bot", "dev", 1)
        assert tx.get_active("bot", "dev") is None
        assert tx.set_suspended("bot", "dev", False) is None
        assert tx.set_pin("bot", "dev", None) is None
        assert tx.set_blocked("sha256:bad", False) is None
        assert tx.list_promotion_approvals("bot", "prod") == []
        # its own bundle of the same name: numbered, activated and marked on its own
        assert tx.add_revision("bot", "dev", digest="sha256:2", status="active").revision == 1
    assert b.registry.registry_changes_since(0) == (1, {"bot"})
    assert a.registry.get_active("bot", "dev").digest == "sha256:1"  # type: ignore[union-attr]
    holds = a.registry.holds()
    assert ("bot", "dev") in holds.suspensions and holds.blocked


def test_controller_requests_are_their_projects(a: Store, b: Store) -> None:
    request = a.controller.queue_controller_request("default", "reconcile", actor="ci")
    with pytest.raises(NotFound):
        b.controller.get_controller_request(request.id)
    assert b.controller.controller_request_counts("default")["queued"] == 0
    assert b.controller.take_controller_requests("default", "leader-b") == []
    b.controller.finish_controller_requests("default", [request.id], {"ok": "b"})
    assert a.controller.get_controller_request(request.id).status == "queued"
    assert a.controller.controller_request_counts("default")["queued"] == 1
    assert a.controller.take_controller_requests("default", "leader-a") == [request.id]
    a.controller.finish_controller_requests("default", [request.id], {"ok": "a"})
    assert a.controller.get_controller_request(request.id).result == {"ok": "a"}


def test_the_controller_of_every_project_is_woken_for_its_requests(a: Store, b: Store) -> None:
    """The elected controller serves every project's sources: a request queued in one
    project's view wakes the listener of all of them with its project and name (by a poll
    of the queued sources on SQLite, a notification on PostgreSQL)."""
    woken: list[tuple[int | None, str | None]] = []
    seen = threading.Event()

    def wake(project_id: int | None, name: str | None) -> None:
        woken.append((project_id, name))
        if project_id is not None:
            seen.set()

    wakeups = b.controller.controller_wakeups(wake, poll_seconds=0.05)
    try:
        a.controller.queue_controller_request("main", "reconcile", actor="ci")
        assert seen.wait(5), "the controller was not woken"
    finally:
        wakeups.stop()
    assert (a.project_id, "main") in woken


def _listeners(store: Store) -> list[int]:
    """The backends waiting on the controllers' ``LISTEN`` (this test's database)."""
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND query = 'LISTEN kneo_controller'"
            )
        )
        return [int(pid) for (pid,) in rows]


def test_a_listener_wakes_for_what_was_queued_while_none_listened_and_nothing_else(
    a: Store, b: Store
) -> None:
    """Notifications sent while no connection listens are lost: a listener that (re)connects
    wakes the sources whose requests were queued meanwhile, and no other source. A blanket
    wake at each connection made every project's source run a pass, and a pass that finds
    nothing to do overwrites its status' ``counts``. On PostgreSQL the listener's backend
    is then terminated (a real fault): it reconnects and does the same."""
    woken: list[tuple[int, str]] = []
    seen = threading.Event()

    def wake(project_id: int, name: str) -> None:
        woken.append((project_id, name))
        seen.set()

    a.controller.queue_controller_request("main", "reconcile", actor="ci")  # none listens yet
    wakeups = b.controller.controller_wakeups(wake, poll_seconds=0.05)
    try:
        assert seen.wait(5), "the request queued before the listener started was missed"
        if a.dialect.name == "postgresql":
            (first,) = wait_for(lambda: _listeners(a), 5, "the listener's backend")
            assert set(woken) == {(a.project_id, "main")}  # the one catch-up, nothing else
            a.controller.take_controller_requests("main", "leader")  # served: none queued
            woken.clear()
            with a.engine.connect() as conn:
                conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
            wait_for(lambda: _listeners(a) not in ([], [first]), 10, "its reconnection")
            time.sleep(0.3)  # what a blanket wake at the reconnection would have sent
            assert woken == [], "a reconnection woke sources with nothing queued"
            b.controller.queue_controller_request("main", "reconcile", actor="ci")
            wait_for(lambda: (b.project_id, "main") in woken, 5, "a request after it")
    finally:
        wakeups.stop()
    assert {pid for pid, _ in woken} <= {a.project_id, b.project_id}


def test_one_controllers_listener_wakes_it_for_its_requests_only(a: Store, b: Store) -> None:
    """The same for one source's listener (a single controller's): a connection with
    nothing queued, or a request for another project's controller of the same name or
    another of its own project's, does not make it run a pass; a request for it wakes it."""
    woken: list[tuple[int, str]] = []
    seen = threading.Event()

    def wake(project_id: int, name: str) -> None:
        woken.append((project_id, name))
        seen.set()

    wakeups = a.controller.controller_wakeups(wake, name="main", poll_seconds=0.05)
    try:
        if a.dialect.name == "postgresql":
            wait_for(lambda: _listeners(a), 5, "the listener's backend")
        b.controller.queue_controller_request("main", "reconcile", actor="ci")
        a.controller.queue_controller_request("other", "reconcile", actor="ci")
        assert not seen.wait(0.3), f"woken for what is not its own: {woken}"
        a.controller.queue_controller_request("main", "reconcile", actor="ci")
        assert seen.wait(5), "not woken for its request"
    finally:
        wakeups.stop()
    assert set(woken) == {(a.project_id, "main")}


# -- the outbox: notifications and A2A pushes -------------------------------------------------


def test_notifications_are_their_projects_and_routing_says_whose(a: Store, b: Store) -> None:
    assert a.notifications.add_notification_event(
        "evt_a", "human.expiring", run_id="run_a", payload={"environment": "dev"}
    )
    assert a.notifications.notification_counts().unrouted == 1
    assert b.notifications.notification_counts().unrouted == 0  # A's event is A's to count
    routed: list[int] = []
    assert b.notifications.route_notifications(  # global: every project's events
        lambda event: routed.append(event.project_id) or ["hook"]
    ) == 1  # fmt: skip
    assert routed == [a.project_id]
    assert b.notifications.list_notifications().items == []
    assert b.notifications.notification_counts() == NotificationCounts({}, unrouted=0)
    (mine,) = a.notifications.list_notifications().items
    assert mine.event.project_id == a.project_id
    assert b.notifications.retry_notifications([mine.id], status="pending") == 0
    assert a.notifications.notification_counts().deliveries == {("hook", "pending"): 1}
    (claimed,) = b.notifications.claim_notifications("dispatcher", 30)  # global
    assert claimed.event.project_id == a.project_id


def test_push_configs_are_their_projects(a: Store, b: Store) -> None:
    run_id = new_run(a)

    def target(push_id: str) -> PushTarget:
        return PushTarget(push_id, "https://h.example", None, "v1.x", sees_requests=False)

    with pytest.raises(NotFound):  # B cannot set a config on A's run
        b.a2a_push.set_push_config(run_id, "agent", "c1", target("p_b"), limit=2)
    mine = a.a2a_push.set_push_config(run_id, "agent", "c1", target("p_a"), limit=2)
    assert mine is not None and mine.project_id == a.project_id
    assert b.a2a_push.push_configs(run_id, "agent") == []
    assert b.a2a_push.push_configs(push_id="p_a") == []
    assert b.a2a_push.set_push_config(run_id, "agent", "c1", None) is None
    assert a.a2a_push.push_configs(run_id, "agent") == [mine]
    (due,) = b.a2a_push.due_pushes()  # global: the sweep pushes every project's
    assert due.config.project_id == a.project_id
    assert b.a2a_push.record_push(due.config, status="queued", done=False, payload={})
    (delivery,) = a.notifications.list_notifications().items
    assert delivery.event.project_id == a.project_id


# -- what stays global ------------------------------------------------------------------------


def test_stranded_runs_are_every_projects_each_with_its_project(
    store: Store, a: Store, clock: ManualClock
) -> None:
    mine = new_run(store, status="running")
    theirs = new_run(a, status="running")
    clock.advance(120)
    found = {run_id: run_id.project_id for run_id in store.queue.stranded_runs(60)}
    assert found == {mine: DEFAULT_PROJECT_ID, theirs: a.project_id}


def test_the_gauges_and_retention_count_every_project(store: Store, a: Store) -> None:
    run_id = new_run(a, status="paused")
    _task_of(a, run_id)
    _registry_of(a)
    gauges = store.maintenance.gauges()
    assert {key[0] for key in gauges.pending_tasks} == {a.project}
    assert sum(gauges.pending_tasks.values()) == 1
    assert {key[0] for key in gauges.bundles} == {a.project}
    assert sum(gauges.bundles.values()) == 2
    assert gauges.blocked_digests == {DEFAULT_PROJECT: 0, a.project: 1}
    assert a.maintenance.gauges() == gauges  # global on every view


def test_a_session_remembers_the_project_last_viewed(store: Store, a: Store) -> None:
    store.sessions.open_console_session(
        "h1", principal="ann", method="api_key", lifetime_seconds=60
    )
    assert store.sessions.console_session("h1").project_id is None  # type: ignore[union-attr]
    assert a.sessions.update_console_session("h1", project_id=a.project_id) is True
    assert store.sessions.console_session("h1").project_id == a.project_id  # type: ignore[union-attr]
    assert store.sessions.update_console_session("missing", project_id=a.project_id) is False


# -- statements: the project is a parameter -----------------------------------------------------


def _workload(view: Store, clock: ManualClock) -> None:
    run_id = _run_of(view, clock)
    _task_of(view, new_run(view, status="paused"), f"cont_{view.project}")
    _registry_of(view)
    view.runs.get_run(run_id)
    view.runs.list_runs(RunQuery(q="zeppelin"))
    view.tasks.list_continuations(TaskQuery(assignee="alice", q="rocket"))
    view.tasks.pending_counts_by_assignee(cap=5)
    view.registry.list_revisions("bot", "dev")
    with view.metadata.metadata_snapshot(["k"]):
        view.metadata.get_metadata("k")


def test_the_project_is_a_parameter_never_a_literal(
    store: Store, a: Store, b: Store, clock: ManualClock
) -> None:
    """One statement text serves every project: neither the statement caches nor the texts
    the database sees grow with the number of projects."""
    _workload(a, clock)
    cached = len(store.dialect._texts), len(store.dialect._statements)
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    sa.event.listen(store.engine, "before_cursor_execute", record)
    try:
        _workload(b, clock)
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", record)
    assert (len(store.dialect._texts), len(store.dialect._statements)) == cached
    literal = re.compile(rf"project_id\s*=\s*{b.project_id}\b|'~{b.project_id}:")
    assert seen and not [text for text in seen if literal.search(text)]
