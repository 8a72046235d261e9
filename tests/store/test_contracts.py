"""The store's contract, run on SQLite and PostgreSQL: one check per facet (``store.runs``,
``store.registry``, ...) and per concern of the transaction.

Modelled on LangGraph's checkpointer conformance suite: each ``check_*`` function is the
behaviour a facet promises, handed that facet (or the store, for what a caller combines)
and using nothing else; the tests below run them on every backend of
``tests/store/conftest.py``, and every public method of the Store, its facets and the
Transaction is called by a test of this suite. The rest of ``tests/store`` covers
the edges (concurrency, migrations, SQL shapes); these say what a caller may rely on.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from kneo.clock import ManualClock
from kneo.errors import Conflict, IdempotencyConflict, NotFound
from kneo.setting_groups import RetentionDays
from kneo.store import AuditQuery, DeliveryOutcome, NotificationQuery, RunQuery, TaskQuery
from kneo.store.api import RunsFacet, Store, Transaction
from kneo.store.audit_log import AuditFacet
from kneo.store.base import Facet
from kneo.store.coordination.controller_requests import ControllerFacet
from kneo.store.coordination.queue_and_locks import IdempotencyFacet, LocksFacet, QueueFacet
from kneo.store.maintenance.retention import MaintenanceFacet
from kneo.store.outbox.notifications import NotificationCounts, NotificationsFacet
from kneo.store.project_metadata import MetadataFacet
from kneo.store.registry.reads import ApprovalReads, RegistryFacet
from kneo.store.runs import payloads
from kneo.store.runs.steps import StepCheckpoint, StepEvent, json_text
from kneo.store.sessions import SessionsFacet
from kneo.store.tasks.reads import TasksFacet
from tests.queue_records import queue_records, queue_stats


class _Rollback(Exception):
    """Raised inside a transaction to prove its writes go with it."""


def _request(request_id: str, assignee: str = "ops") -> dict[str, object]:
    return {"request_id": request_id, "kind": "approval", "assignee": assignee, "prompt": "ok?"}


# ------------------------------------------------------------------------- the checks


def check_store_lifecycle(store: Store) -> None:
    """It names its database, answers a ping, is at the newest schema (upgrading again is
    a no-op) and stamps with the clock it was given."""
    assert store.backend in ("sqlite", "postgresql")
    store.ping()
    revision = store.schema_revision()
    assert revision is not None
    assert store.upgrade_schema() == revision == store.schema_revision()
    assert store.clock.now().tzinfo is not None


def check_runs(reads: RunsFacet, units: Store) -> None:
    """A run reads back as written; an update is a compare-and-set on ``version`` (a stale
    writer gets ``stale_state`` and changes nothing); a transaction's writes commit
    together or, on an exception, not at all; checkpoints and trace events are numbered
    in order per run; listings filter and page."""
    with units.transaction() as tx:
        run = tx.create_run(run_id="run_c1", target="workflow", input_text="hello")
    assert reads.get_run("run_c1") == run
    assert (run.status, run.version, run.input_text) == ("queued", 1, "hello")
    with units.transaction() as tx:
        moved = tx.update_run("run_c1", expected_version=1, status="running")
    assert (moved.status, moved.version) == ("running", 2)
    with pytest.raises(Conflict) as stale, units.transaction() as tx:
        tx.update_run("run_c1", expected_version=1, status="failed")
    assert stale.value.code == "stale_state"
    assert reads.get_run("run_c1").status == "running"
    with units.transaction() as tx:
        assert tx.update_run("run_c1", cancel_requested=True).cancel_requested is True

    with units.transaction() as tx:
        tx.add_checkpoint("run_c1", type="step_completed", step_id="s1", payload={"n": 1})
        tx.add_checkpoint("run_c1", type="step_completed", step_id="s2", payload={"n": 2})
        run = tx.get_run("run_c1", for_update=True)
        events = tx.add_trace_events(
            "run_c1", [{"event_type": "step.started"}, {"event_type": "step.completed"}]
        )
        assert tx.current(run).trace_seq == 2  # what this transaction allocated
    assert [e.sequence for e in events] == [1, 2]
    checkpoints = reads.list_checkpoints("run_c1")
    assert [c.step_id for c in checkpoints.items] == ["s1", "s2"] and checkpoints.total == 2
    [latest] = reads.list_checkpoints("run_c1", limit=1, sort_order="desc").items
    assert latest is not None and latest.payload == {"n": 2}
    assert reads.list_checkpoints("run_c1", sequences=[latest.sequence]).items == [latest]
    trace = reads.list_trace("run_c1", event_type="step.completed")
    assert [e.event_type for e in trace.items] == ["step.completed"]

    with pytest.raises(_Rollback), units.transaction() as tx:
        tx.create_run(run_id="run_gone", target="workflow", input_text="x")
        tx.add_trace_events("run_c1", [{"event_type": "never.written"}])
        raise _Rollback
    with pytest.raises(NotFound):
        reads.get_run("run_gone")
    assert reads.list_trace("run_c1").total == 2

    with units.transaction() as tx:
        tx.create_run(run_id="run_c2", target="workflow", input_text="x", status="succeeded")
    assert [r.run_id for r in reads.list_runs(RunQuery(status="succeeded")).items] == ["run_c2"]
    first = reads.list_runs(RunQuery(limit=1, sort_order="asc", sort_by="created_at"))
    assert first.next_cursor is not None and first.total == 2
    rest = reads.list_runs(
        RunQuery(limit=1, sort_order="asc", sort_by="created_at", cursor=first.next_cursor)
    )
    assert {first.items[0].run_id, rest.items[0].run_id} == {"run_c1", "run_c2"}
    assert set(reads.run_states(["run_c1", "run_missing"])) == {"run_c1"}


def _step_checkpoint(state: dict[str, object], step_id: str) -> StepCheckpoint:
    raw = json_text(state).encode()
    return StepCheckpoint(
        type="step_completed",
        step_id=step_id,
        status="completed",
        encoding=payloads.ENCODING_JSON,
        payload=raw,
        size_bytes=len(raw),
        truncated=False,
        metadata={"unit_key": step_id},
    )


def check_step_boundaries(units: Store, reads: RunsFacet, log: AuditFacet) -> None:
    """A step boundary is a compare-and-set of the run's state with its checkpoint and
    events numbered after the run's last ones; a stale one writes nothing. The outcome is
    the same with the run's final columns and audit events, and a stale outcome writes
    nothing either (on PostgreSQL both are the one-statement writes)."""
    with units.transaction() as tx:
        run = tx.create_run(run_id="run_s1", target="workflow", input_text="x", status="running")
        tx.add_trace_events("run_s1", [{"event_type": "run_started"}])
    state: dict[str, object] = {"units": {"s1": {"output": "ü"}}, "order": ["s1"]}
    with units.transaction() as tx:
        written = tx.write_step(
            "run_s1",
            expected_version=run.version,
            state_text=json_text(state),
            checkpoints=[_step_checkpoint(state, "s1")],
            events=[StepEvent("step_completed", "s1", json_text({"n": 1}))],
        )
    assert (written.version, written.checkpoint_seq, written.trace_seq) == (2, 1, 2)
    assert reads.get_run("run_s1").state == state
    [checkpoint] = reads.list_checkpoints("run_s1").items
    assert (checkpoint.sequence, checkpoint.payload) == (1, state)
    with pytest.raises(Conflict) as stale, units.transaction() as tx:
        tx.write_step(
            "run_s1",
            expected_version=run.version,
            state_text=json_text({}),
            checkpoints=[_step_checkpoint({}, "s2")],
            events=[StepEvent("step_completed", "s2", "{}")],
        )
    assert stale.value.code == "stale_state"
    assert reads.list_trace("run_s1").total == 2 and reads.get_run("run_s1").version == 2

    current = reads.get_run("run_s1")
    with pytest.raises(Conflict), units.transaction() as tx:
        tx.finish_run(run, expected_version=run.version, status="succeeded")  # stale
    with units.transaction() as tx:
        done = tx.finish_run(
            current,
            expected_version=current.version,
            status="succeeded",
            output_text="out",
            finished_at=tx.now,
            events=[{"event_type": "run_completed"}],
            audits=[{"event_type": "run.succeeded", "run_id": "run_s1"}],
        )
    read = reads.get_run("run_s1")
    assert (read.status, read.output_text, read.version) == ("succeeded", "out", 3)
    assert (done.status, done.version, done.output_text) == (read.status, 3, read.output_text)
    assert [e.event_type for e in reads.list_trace("run_s1").items][-1] == "run_completed"
    assert [e.event_type for e in log.list_audit(AuditQuery(run_id="run_s1")).items] == [
        "run.succeeded"
    ]


def check_human_tasks(reads: TasksFacet, units: Store) -> None:
    """A task written in a transaction is found by id and by request, listed by status and
    assignee, counted per assignee; the inbox version moves with the audit event a task
    change writes in its transaction; a stale version is refused; a deleted task is gone."""
    before = reads.inbox_version()
    with units.transaction() as tx:
        written = tx.put_continuation(
            "cont_c1", run_id=None, requests=[_request("req_c1")], workflow_kind="promotion"
        )
        tx.add_audit("human.requested", continuation_id="cont_c1")
    assert reads.inbox_version() != before
    assert reads.get_continuation("cont_c1") == written and written.version == 1
    assert [r["request_id"] for r in written.requests] == ["req_c1"]
    assert [
        c.continuation_id for c in reads.list_continuations(TaskQuery(assignee="ops")).items
    ] == ["cont_c1"]
    assert reads.list_continuations(TaskQuery(assignee="someone-else")).items == []
    assert reads.pending_counts_by_assignee() == {"ops": 1}
    with pytest.raises(Conflict), units.transaction() as tx:
        tx.put_continuation(
            "cont_c1", run_id=None, requests=[_request("req_c1")], expected_version=7
        )
    with units.transaction() as tx:
        tx.put_continuation(
            "cont_c1",
            run_id=None,
            requests=[{**_request("req_c1"), "status": "resolved"}],
            status="resolved",
            expected_version=1,
        )
    assert reads.list_continuations().items == []  # pending is the default filter
    assert reads.list_continuations(TaskQuery(status="resolved")).total == 1
    with units.transaction() as tx:
        assert tx.delete_continuation("cont_c1") is True
    with pytest.raises(NotFound):
        reads.get_continuation("cont_c1")


def check_audit(log: AuditFacet, units: Store) -> None:
    """Audit events are appended, read by id and filtered by run; one written in a
    transaction that fails is not kept."""
    units_run = "run_a1"
    with units.transaction() as tx:
        tx.create_run(run_id=units_run, target="workflow", input_text="x")
        event = tx.add_audit("run.created", actor="alice", run_id=units_run, payload={"k": "v"})
        tx.add_audit("other.thing")
    assert log.get_audit(event.event_id) == event
    assert (event.actor, event.payload) == ("alice", {"k": "v"})
    assert [e.event_id for e in log.list_audit(AuditQuery(run_id=units_run)).items] == [
        event.event_id
    ]
    assert log.list_audit().total == 2
    with pytest.raises(_Rollback), units.transaction() as tx:
        tx.add_audit("run.cancelled", run_id=units_run)
        raise _Rollback
    assert log.list_audit(AuditQuery(event_type="run.cancelled")).total == 0
    with pytest.raises(NotFound):
        log.get_audit("evt_missing")


def check_metadata(metadata: Store) -> None:
    """JSON values by key, set in a transaction: the default when unset, the last write
    wins, a prefix lists; inside a snapshot the keys it names read as they were when it
    opened."""
    reads: MetadataFacet = metadata.metadata
    assert reads.get_metadata("a.one", "unset") == "unset"
    with metadata.transaction() as tx:
        tx.set_metadata("a.one", {"n": 1})
        tx.set_metadata("a.two", [1, 2])
        tx.set_metadata("b.one", "x")
    with metadata.transaction() as tx:
        tx.set_metadata("a.one", {"n": 2})
    assert reads.get_metadata("a.one") == {"n": 2}
    assert reads.list_metadata("a.") == {"a.one": {"n": 2}, "a.two": [1, 2]}
    with reads.metadata_snapshot(["a.one", "a.missing"]):
        assert reads.get_metadata("a.one") == {"n": 2}
        assert reads.get_metadata("a.missing", 0) == 0


def check_queue(queue: QueueFacet, units: Store, clock: ManualClock) -> None:
    """Runs are queued in a transaction; claims are oldest first, leased and counted; a
    lapsed lease is claimed again and its old owner can no longer finish; release puts a
    record back (after a delay)."""
    assert queue.claim("w1", 30) is None
    with units.transaction() as tx:
        first, second = tx.enqueue("run_q1"), tx.enqueue("run_q2")
    claimed = queue.claim("w1", 30)
    assert claimed is not None and claimed.queue_id == first.queue_id
    assert (claimed.status, claimed.attempts, claimed.lease_owner) == ("leased", 1, "w1")
    assert queue.renew_lease(claimed.queue_id, "w1", 30) is True
    assert queue.renew_lease(claimed.queue_id, "intruder", 30) is False
    clock.advance(31)
    again = queue.claim("w2", 30)
    assert again is not None and again.queue_id == first.queue_id and again.attempts == 2
    assert queue.finish(first.queue_id, "w1") is False  # its lease lapsed
    assert queue.finish(first.queue_id, "w2") is True
    taken = queue.claim("w2", 30)
    assert taken is not None and taken.queue_id == second.queue_id
    assert queue.release(taken.queue_id, "w2", delay_seconds=60) is True
    assert queue.claim("w3", 30) is None  # not due yet
    clock.advance(61)
    retaken = queue.claim("w3", 30)
    assert retaken is not None and queue.finish(retaken.queue_id, "w3", {"error": "boom"})
    [failed] = queue_records(units, "run_q2")
    assert (failed.queue_id, failed.error) == (second.queue_id, {"error": "boom"})
    stats = queue_stats(units)
    assert (stats["completed"], stats["failed"], stats["queued"]) == (1, 1, 0)


def check_locks(locks: LocksFacet, clock: ManualClock) -> None:
    """One live holder per name (re-acquiring is renewing); only the holder renews or
    releases; an expired lock is free."""
    assert locks.acquire_lock("leader", "a", 30) is True
    assert locks.acquire_lock("leader", "b", 30) is False
    assert locks.acquire_lock("leader", "a", 30) is True
    held = locks.get_lock("leader")
    assert held is not None and held.owner == "a"
    assert locks.renew_lock("leader", "b", 30) is False
    assert locks.release_lock("leader", "b") is False
    clock.advance(31)
    assert locks.acquire_lock("leader", "b", 30) is True
    assert locks.renew_lock("leader", "a", 30) is False
    assert locks.release_lock("leader", "b") is True and locks.get_lock("leader") is None


def check_run_leases(leases: QueueFacet, units: Store, clock: ManualClock) -> None:
    """One process executes a run at a time; renewing keeps the lease, a run whose lease
    lapsed is stranded and taken over; only its holder renews or releases it."""
    with units.transaction() as tx:
        tx.create_run(
            run_id="run_l1", target="workflow", input_text="x", status="running", lease=("a", 30)
        )
    lease = leases.run_lease("run_l1")
    assert lease is not None and lease.owner == "a"
    clock.advance(20)
    assert leases.renew_run_leases(["run_l1"], "a", 30) == 1
    clock.advance(20)
    assert leases.stranded_runs(idle_seconds=5) == []  # renewed 20 s ago, good for 30
    clock.advance(40)
    assert leases.stranded_runs(idle_seconds=5) == ["run_l1"]
    assert leases.renew_run_leases(["run_l1"], "b", 30) == 0
    with units.transaction() as tx:
        tx.take_run_lease("run_l1", "b", 30)
    assert leases.renew_run_leases(["run_l1"], "a", 30) == 0
    assert leases.release_run_lease("run_l1", "a") is False
    assert leases.release_run_lease("run_l1", "b") is True
    assert leases.run_lease("run_l1") is None


def check_idempotency(keys: IdempotencyFacet) -> None:
    """The first request with a key runs; a repeat while it runs is told so, after it
    finished gets its response; another body under the key is a conflict; a released key
    runs again."""
    assert keys.begin_idempotent("resume", "k1", "h1").state == "new"
    assert keys.begin_idempotent("resume", "k1", "h1").state == "in_progress"
    keys.finish_idempotent("resume", "k1", (200, {"ok": True}))
    replay = keys.begin_idempotent("resume", "k1", "h1")
    assert (replay.state, replay.status_code, replay.response) == ("replay", 200, {"ok": True})
    with pytest.raises(IdempotencyConflict):
        keys.begin_idempotent("resume", "k1", "h2")
    assert keys.begin_idempotent("other-scope", "k1", "h2").state == "new"
    keys.finish_idempotent("other-scope", "k1", None)
    assert keys.begin_idempotent("other-scope", "k1", "h3").state == "new"


def check_registry(reads: RegistryFacet, units: Store) -> None:
    """Revisions number per bundle and environment with at most one active; suspensions,
    pins and blocked digests read back and lift; conditions and the controller's status
    keep the last write; every write people make is in the change feed, the controller's
    own (``marks_registry_changes=False``) is not."""
    start, _ = reads.registry_changes_since(None)
    with units.transaction() as tx:
        one = tx.add_revision("helper", "dev", digest="sha256:" + "1" * 64, spec={"v": 1})
        two = tx.add_revision("helper", "dev", digest="sha256:" + "2" * 64, spec={"v": 2})
    assert (one.revision, two.revision) == (1, 2)
    with units.transaction() as tx:
        tx.set_revision_status("helper", "dev", 1, "active")
        tx.set_revision_status("helper", "dev", 2, "active")
    active = reads.get_active("helper", "dev")
    assert active is not None and active.revision == 2 and active.spec == {"v": 2}
    assert reads.get_revision("helper", "dev", 1).status == "inactive"
    assert [r.revision for r in reads.list_revisions("helper", "dev")] == [1, 2]  # oldest first
    assert reads.list_revisions("helper", "dev", digest=one.digest) == [
        reads.get_revision("helper", "dev", 1)
    ]
    assert [
        (h.revision, h.status) for h in reads.list_revisions(environment="dev", heads=True)
    ] == [
        (1, "inactive"),
        (2, "active"),
    ]
    with pytest.raises(NotFound):
        reads.get_revision("helper", "dev", 9)

    with units.transaction() as tx:
        tx.set_suspended("helper", "dev", True, reason="incident", suspended_by="alice")
    assert ("helper", "dev") in reads.holds().suspensions and len(
        reads.holds("dev").suspensions
    ) == 1
    with units.transaction() as tx:
        assert tx.set_suspended("helper", "dev", False) is not None
    assert ("helper", "dev") not in reads.holds().suspensions
    with units.transaction() as tx:
        assert tx.set_suspended("helper", "dev", False) is None
    with units.transaction() as tx:
        tx.set_pin("helper", "dev", 1, reason="hold", pinned_by="alice")
        tx.set_blocked(two.digest, True, reason="bad", blocked_by="bob")
    pin = reads.holds().pins.get(("helper", "dev"))
    assert pin is not None and pin.revision == 1 and len(reads.holds().pins) == 1
    assert [b.digest for b in reads.holds().blocked.values()] == [two.digest]
    with units.transaction() as tx:
        assert tx.set_pin("helper", "dev", None) is not None
        assert tx.set_blocked(two.digest, False) is not None
    assert reads.holds().pins.get(("helper", "dev")) is None and not reads.holds().blocked

    with units.transaction() as tx:
        tx.set_conditions("helper", "dev", [("Ready", "False", "Verifying", "")])
    with units.transaction() as tx:
        tx.set_conditions("helper", "dev", [("Ready", "True", "Active", "")])
    [ready] = reads.list_conditions("helper", "dev")
    assert (ready.type, ready.status, ready.reason) == ("Ready", "True", "Active")
    with units.transaction() as tx:
        tx.set_controller_status(last_fetched_commit="abc")
    with units.transaction() as tx:
        tx.set_controller_status(last_error="boom")
    status = reads.get_controller_status()
    assert (status.last_fetched_commit, status.last_error) == ("abc", "boom")

    seq, changed = reads.registry_changes_since(start)
    assert changed == {"helper"} and seq > start
    with units.transaction(marks_registry_changes=False) as tx:
        tx.add_revision("quiet", "dev", digest="sha256:" + "3" * 64)
    assert reads.registry_changes_since(seq)[1] == set()


def check_promotion_approvals(reads: ApprovalReads, units: Store) -> None:
    """One approval per approver and digest; a transaction reads the approvals it wrote."""
    digest = "sha256:" + "4" * 64
    with units.transaction() as tx:
        tx.add_promotion_approval("helper", "prod", digest, approver="alice", decision="approved")
        assert [a.approver for a in tx.list_promotion_approvals("helper", "prod", digest)] == [
            "alice"
        ]
        tx.add_audit("promotion.approved", actor="alice")
    with pytest.raises(Conflict), units.transaction() as tx:
        tx.add_promotion_approval("helper", "prod", digest, approver="alice", decision="rejected")
    [approval] = reads.list_promotion_approvals("helper", "prod", digest)
    assert (approval.approver, approval.decision) == ("alice", "approved")


def check_controller_requests(requests: ControllerFacet) -> None:
    """A queued request waits until a pass takes it; a new leader takes what a dead one
    left running; a finished one carries the pass's result."""
    assert requests.controller_request_counts("main")["queued"] == 0
    queued = requests.queue_controller_request("main", "reconcile", actor="alice")
    assert requests.controller_request_counts("main")["queued"] == 1
    assert requests.take_controller_requests("main", "leader-1") == [queued.id]
    assert requests.controller_request_counts("main")["queued"] == 0
    assert requests.take_controller_requests("main", "leader-1") == []
    assert requests.take_controller_requests("main", "leader-2") == [queued.id]
    requests.finish_controller_requests("main", [queued.id], {"ok": True})
    done = requests.get_controller_request(queued.id)
    assert (done.status, done.result, done.actor) == ("done", {"ok": True}, "alice")
    requests.notify_controller("main")  # a wake-up with nobody listening is harmless
    with pytest.raises(NotFound):
        requests.get_controller_request(queued.id + 1000)


def check_notifications(outbox: NotificationsFacet, clock: ManualClock) -> None:
    """An event id is written once; routing fans it out per receiver; a claim leases due
    deliveries; a retried one waits for its time, a sent one is done, and only the lease
    holder can finish."""
    assert outbox.add_notification_event("evt_n1", "human.expiring", payload={"k": 1}) is True
    assert outbox.add_notification_event("evt_n1", "human.expiring") is False
    assert outbox.notification_counts() == NotificationCounts({}, unrouted=1)
    assert outbox.route_notifications(lambda event: ["chat", "mail"]) == 1
    assert outbox.notification_counts() == NotificationCounts(
        {("chat", "pending"): 1, ("mail", "pending"): 1}, unrouted=0
    )
    claimed = outbox.claim_notifications("d1", 30, receivers=["chat"])
    assert [(n.receiver, n.event.event_id, n.attempts) for n in claimed] == [("chat", "evt_n1", 1)]
    assert (
        outbox.finish_notifications("d2", [DeliveryOutcome(claimed[0].id, sent=True)]) == 0
    )  # not its lease
    retry_at = clock.now() + timedelta(seconds=60)
    assert (
        outbox.finish_notifications(
            "d1", [DeliveryOutcome(claimed[0].id, sent=False, error="503", retry_at=retry_at)]
        )
        == 1
    )
    [mail] = outbox.claim_notifications("d1", 30)
    assert mail.receiver == "mail" and outbox.claim_notifications("d1", 30) == []
    assert outbox.finish_notifications("d1", [DeliveryOutcome(mail.id, sent=True)]) == 1
    clock.advance(61)
    [again] = outbox.claim_notifications("d1", 30)
    assert (again.receiver, again.attempts) == ("chat", 2)
    assert outbox.finish_notifications("d1", [DeliveryOutcome(again.id, False, "gone")]) == 1
    assert outbox.notification_counts().deliveries == {("chat", "dead"): 1, ("mail", "sent"): 1}
    assert [
        n.receiver for n in outbox.list_notifications(NotificationQuery(status="dead")).items
    ] == ["chat"]
    assert outbox.retry_notifications() == 1
    assert outbox.notification_counts().deliveries[("chat", "pending")] == 1


def check_console_sessions(sessions: SessionsFacet, clock: ManualClock) -> None:
    """A session lives until it is ended or expires; ending is idempotent."""
    person = {"sub": "a1", "groups": ["release-managers"]}
    sessions.open_console_session(
        "h1", principal="alice", method="oidc_session", lifetime_seconds=60, person=person
    )
    sessions.open_console_session("h2", principal="bob", method="api_key", lifetime_seconds=60)
    found = sessions.console_session("h1")
    assert found is not None and (found.principal, found.person) == ("alice", person)
    assert sessions.update_console_session("h1", ended=True) is True
    assert sessions.update_console_session("h1", ended=True) is False
    assert sessions.console_session("h1") is None and sessions.console_session("nope") is None
    clock.advance(61)
    assert sessions.console_session("h2") is None


def check_retention(
    maintenance: MaintenanceFacet,
    units: Store,
    reads: RunsFacet,
    clock: ManualClock,
) -> None:
    """Runs that ended before the window go (a dry run counts them and keeps them); runs
    still in progress and younger ones stay. The window is counted from the store's clock."""
    with units.transaction() as tx:
        tx.create_run(run_id="run_old", target="workflow", input_text="x", status="succeeded")
        tx.create_run(run_id="run_live", target="workflow", input_text="x", status="running")
        tx.update_run("run_old", finished_at=clock.now())
    clock.advance(days=40)
    with units.transaction() as tx:
        tx.create_run(run_id="run_new", target="workflow", input_text="x", status="failed")
    window = RetentionDays(runs_days=30)
    assert maintenance.prune_retention(window, dry_run=True)["runs"] == 1
    assert reads.list_runs().total == 3
    assert maintenance.prune_retention(window)["runs"] == 1
    assert {r.run_id for r in reads.list_runs().items} == {"run_live", "run_new"}
    assert maintenance.prune_retention(window, maintenance.clock.now())["runs"] == 0
    gauges = maintenance.gauges()
    assert gauges.queue_depth == {"default": 0} and gauges.blocked_digests == {"default": 0}


def check_controller_store(store: Store) -> None:
    """What the controller combines: a registry write and the promotion task it opens
    commit together (or, failing, neither does), and its reads see both."""
    reads = admin = store
    with pytest.raises(_Rollback), admin.transaction() as tx:
        tx.add_revision("svc", "prod", digest="sha256:" + "5" * 64, status="pending_approval")
        tx.put_continuation("cont_promo", run_id=None, requests=[_request("req_p")])
        raise _Rollback
    assert (
        reads.registry.list_revisions(heads=True) == []
        and reads.tasks.list_continuations().items == []
    )
    with admin.transaction() as tx:
        tx.add_revision("svc", "prod", digest="sha256:" + "5" * 64, status="pending_approval")
        tx.put_continuation(
            "cont_promo", run_id=None, requests=[_request("req_p")], workflow_kind="promotion"
        )
    assert reads.registry.get_revision("svc", "prod", 1).status == "pending_approval"
    assert reads.tasks.list_continuations(TaskQuery(workflow_kind="promotion")).total == 1


def check_controller_state(state: Store) -> None:
    """What a replica shows of a controller, read from the database: no status and no
    leader before one runs, then its leader lock and its waiting requests."""
    empty = state.registry.get_controller_status("main")
    assert (empty.last_fetched_commit, empty.updated_at) == (None, None)
    assert state.locks.get_lock("controller:main") is None
    assert state.locks.acquire_lock("controller:main", "replica-1", 30) is True
    held = state.locks.get_lock("controller:main")
    assert held is not None and held.owner == "replica-1"
    state.controller.queue_controller_request("main", "reconcile")
    counts = state.controller.controller_request_counts("main")
    assert (counts["queued"], counts["running"]) == (1, 0)
    assert counts["oldest_queued_at"] is not None


def check_run_views(views: Store, units: Store) -> None:
    """A pause is one transaction: the run and its task are seen together."""
    with units.transaction() as tx:
        tx.create_run(run_id="run_p1", target="workflow", input_text="x", status="paused")
        tx.put_continuation("cont_p1", run_id="run_p1", requests=[_request("req_p1")])
    assert views.runs.get_run("run_p1").status == "paused"
    assert views.tasks.get_continuation("cont_p1").run_id == "run_p1"


# ---------------------------------------------------------------- run on every backend

CHECKS: dict[str, Callable[[Store, ManualClock], None]] = {
    "lifecycle": lambda s, c: check_store_lifecycle(s),
    "runs": lambda s, c: check_runs(s.runs, s),
    "steps": lambda s, c: check_step_boundaries(s, s.runs, s.audit),
    "tasks": lambda s, c: check_human_tasks(s.tasks, s),
    "audit": lambda s, c: check_audit(s.audit, s),
    "metadata": lambda s, c: check_metadata(s),
    "queue": lambda s, c: check_queue(s.queue, s, c),
    "locks": lambda s, c: check_locks(s.locks, c),
    "run_leases": lambda s, c: check_run_leases(s.queue, s, c),
    "idempotency": lambda s, c: check_idempotency(s.idempotency),
    "registry": lambda s, c: check_registry(s.registry, s),
    "promotion_approvals": lambda s, c: check_promotion_approvals(s.registry, s),
    "controller_requests": lambda s, c: check_controller_requests(s.controller),
    "notifications": lambda s, c: check_notifications(s.notifications, c),
    "sessions": lambda s, c: check_console_sessions(s.sessions, c),
    "maintenance": lambda s, c: check_retention(s.maintenance, s, s.runs, c),
    "controller_store": lambda s, c: check_controller_store(s),
    "controller_state": lambda s, c: check_controller_state(s),
    "run_views": lambda s, c: check_run_views(s, s),
}


@pytest.mark.parametrize("concern", sorted(CHECKS))
def test_the_store_keeps_its_contract(concern: str, store: Store, clock: ManualClock) -> None:
    """Each concern's check on this backend (``store`` is parametrised over SQLite and
    PostgreSQL by the store suite's conftest)."""
    CHECKS[concern](store, clock)


def _public_methods(cls: type) -> set[str]:
    return {n for n in dir(cls) if not n.startswith("_") and callable(getattr(cls, n))}


def test_every_public_method_is_called_by_a_test() -> None:
    """A method added to a facet or the Transaction without a test calling it fails: the
    facets' checks are above, the rest in this suite's modules of their room
    (``test_coordination.py``, ``test_code_files.py``, ``test_start_contracts.py``,
    ``test_rollout_contracts.py``, ...) or, for what needs a process around it (the
    controller's wake-ups), the suites of its callers."""
    text = "".join(path.read_text() for path in Path(__file__).parents[1].rglob("test_*.py"))
    facets = {
        name: cls
        for name, cls in typing.get_type_hints(Store).items()
        if isinstance(cls, type) and issubclass(cls, Facet)
    }
    classes = {"Transaction": Transaction, **facets}
    uncalled = {
        name: sorted(m for m in _public_methods(cls) if f".{m}(" not in text)
        for name, cls in classes.items()
    }
    assert {name: found for name, found in uncalled.items() if found} == {}


def test_backup_is_sqlite_only(store: Store, backend: str, tmp_path: Path) -> None:
    """``MaintenanceFacet.backup_sqlite``: a consistent copy on SQLite, ``invalid_request`` on
    PostgreSQL (use pg_dump)."""
    maintenance: MaintenanceFacet = store.maintenance
    if backend == "sqlite":
        copy = maintenance.backup_sqlite(tmp_path / "copy.sqlite")
        assert copy.stat().st_size > 0
    else:
        with pytest.raises(Exception, match="SQLite"):
            maintenance.backup_sqlite(tmp_path / "copy.sqlite")
