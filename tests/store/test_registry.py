"""Conformance: the GitOps registry (revisions, one active, conditions, approvals)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from kneo.clock import ManualClock
from kneo.errors import Conflict, IllegalTransition, InvalidRequest, NotFound
from kneo.store import RegistryQuery, Store, open_store
from kneo.store import tables as t
from kneo.store.registry import statements as q
from kneo.store.wire.statement_cache import named_sql


def test_revisions_number_per_bundle_and_environment(store: Store) -> None:
    """Revision numbers count 1, 2, ... separately for each (bundle, environment)."""
    with store.transaction() as tx:
        a1 = tx.add_revision(
            "a",
            "dev",
            digest="d1",
            commit="c1",
            signer_key_ids=["k1"],
            spec={"name": "a"},
            diagnostics=[{"code": "W1"}],
        )
        a2 = tx.add_revision("a", "dev", digest="d2")
        b1 = tx.add_revision("a", "prod", digest="d1")
    assert (a1.revision, a2.revision, b1.revision) == (1, 2, 1)
    got = store.registry.get_revision("a", "dev", 1)
    assert got == a1 and got.signer_key_ids == ["k1"] and got.diagnostics == [{"code": "W1"}]
    assert [r.revision for r in store.registry.list_revisions("a", "dev")] == [1, 2]
    assert store.registry.list_revisions("a", "dev", digest="d1") == [a1]
    assert store.registry.list_revisions("a", "dev", digest="zzz") == []
    with pytest.raises(NotFound):
        store.registry.get_revision("a", "dev", 9)
    with pytest.raises(InvalidRequest), store.transaction() as tx:
        tx.add_revision("a", "dev", digest="d3", status="weird")


def test_activation_keeps_at_most_one_active(store: Store, clock: ManualClock) -> None:
    """Activating a revision deactivates the previous one in the same transaction."""
    with store.transaction() as tx:
        tx.add_revision("a", "dev", digest="d1", status="active")
    clock.advance(10)
    with store.transaction() as tx:
        second = tx.add_revision("a", "dev", digest="d2", status="active", approved_by=["ann"])
    assert second.status == "active" and second.activated_at == clock.now()
    first = store.registry.get_revision("a", "dev", 1)
    assert first.status == "inactive" and first.deactivated_at == clock.now()
    active = store.registry.get_active("a", "dev")
    assert active is not None and active.revision == 2 and active.approved_by == ["ann"]
    assert store.registry.get_active("a", "prod") is None
    assert [
        r.revision for r in store.registry.list_registry(RegistryQuery(environment="dev")).items
    ] == [2]
    assert len(store.registry.list_registry(RegistryQuery(status=None)).items) == 2
    with store.transaction() as tx:
        again = tx.set_revision_status("a", "dev", 1, "active")
    assert (
        again.status == "active" and store.registry.get_revision("a", "dev", 2).status == "inactive"
    )


def test_database_refuses_a_second_active_revision(store: Store) -> None:
    """The partial unique index rejects two active rows even when code bypasses the API."""
    with store.transaction() as tx:
        tx.add_revision("a", "dev", digest="d1", status="active")
        tx.add_revision("a", "dev", digest="d2")
    with pytest.raises(sa.exc.IntegrityError), store.engine.begin() as conn:
        conn.execute(
            sa.update(t.bundle_revisions)
            .where(t.bundle_revisions.c.revision == 2)
            .values(status="active")
        )
    assert [r.status for r in store.registry.list_revisions("a", "dev")] == ["active", "inactive"]


def test_rejected_revision_never_replaces_active(store: Store) -> None:
    """Rejecting records reasons; a rejected revision cannot be activated."""
    with store.transaction() as tx:
        tx.add_revision("a", "dev", digest="d1", status="active")
        bad = tx.add_revision("a", "dev", digest="d2")
    with store.transaction() as tx:
        rejected = tx.set_revision_status(
            "a", "dev", bad.revision, "rejected", diagnostics=[{"code": "bundle_bad_sig"}]
        )
    assert rejected.status == "rejected" and rejected.diagnostics == [{"code": "bundle_bad_sig"}]
    with pytest.raises(IllegalTransition), store.transaction() as tx:
        tx.set_revision_status("a", "dev", bad.revision, "active")
    active = store.registry.get_active("a", "dev")
    assert active is not None and active.revision == 1


def test_prune_and_status_changes(store: Store, clock: ManualClock) -> None:
    """Pruning an active revision deactivates it and stamps deactivated_at."""
    with store.transaction() as tx:
        tx.add_revision("a", "dev", digest="d1", status="active")
    clock.advance(3)
    with store.transaction() as tx:
        pruned = tx.set_revision_status("a", "dev", 1, "pruned")
    assert pruned.status == "pruned" and pruned.deactivated_at == clock.now()
    assert store.registry.get_active("a", "dev") is None
    with store.transaction() as tx:
        pending = tx.add_revision("a", "dev", digest="d2", status="pending_approval")
        approved = tx.set_revision_status(
            "a", "dev", pending.revision, "active", approved_by=["ann", "bob"]
        )
    assert approved.status == "active" and approved.approved_by == ["ann", "bob"]


def test_condition_transition_time_moves_only_on_change(store: Store, clock: ManualClock) -> None:
    """last_transition_time changes only when status, reason or message change."""
    with store.transaction() as tx:
        [first] = tx.set_conditions("a", "dev", [("Ready", "True", "Promoted", "rev 1")])
    t0 = clock.now()
    assert first.last_transition_time == t0
    clock.advance(60)
    with store.transaction() as tx:
        [same] = tx.set_conditions("a", "dev", [("Ready", "True", "Promoted", "rev 1")])
    assert same.last_transition_time == t0 and same.updated_at == clock.now()
    clock.advance(60)
    with store.transaction() as tx:
        [msg] = tx.set_conditions("a", "dev", [("Ready", "True", "Promoted", "rev 2")])
    assert msg.last_transition_time == clock.now()
    clock.advance(60)
    with store.transaction() as tx:
        [flipped] = tx.set_conditions("a", "dev", [("Ready", "False", "Rejected", "rev 2")])
    assert flipped.last_transition_time == clock.now()
    with store.transaction() as tx:
        tx.set_conditions("a", "dev", [("Verified", "True", "SignatureValid", "")])
        tx.set_conditions("b", "prod", [("Ready", "Unknown", "Waiting", "")])
    conds = store.registry.list_conditions("a", "dev")
    assert [(c.type, c.status) for c in conds] == [("Ready", "False"), ("Verified", "True")]
    assert conds[0].last_transition_time == clock.now()
    assert len(store.registry.list_conditions()) == 3
    assert [c.bundle_name for c in store.registry.list_conditions(environment="prod")] == ["b"]


def test_suspend_and_resume(store: Store) -> None:
    """Suspension is a per (bundle, environment) flag; suspending twice is harmless."""
    assert ("a", "dev") not in store.registry.holds().suspensions
    with store.transaction() as tx:
        tx.set_suspended("a", "dev", True, reason="incident", suspended_by="ann")
    with store.transaction() as tx:
        again = tx.set_suspended("a", "dev", True)
    assert again is not None and again.reason == "incident"
    assert set(store.registry.holds().suspensions) == {("a", "dev")}
    assert [s.bundle_name for s in store.registry.holds("dev").suspensions.values()] == ["a"]
    with store.transaction() as tx:
        resumed = tx.set_suspended("a", "dev", False)
    with store.transaction() as tx:
        again_resumed = tx.set_suspended("a", "dev", False)
    assert resumed is not None and resumed.reason == "incident" and again_resumed is None
    assert not store.registry.holds().suspensions


def test_controller_status_partial_updates(store: Store, clock: ManualClock) -> None:
    """Controller status starts empty and keeps fields that an update does not mention."""
    empty = store.registry.get_controller_status()
    assert empty.last_fetched_commit is None and empty.updated_at is None
    with store.transaction() as tx:
        tx.set_controller_status(
            last_fetched_commit="abc",
            last_reconcile_started_at=clock.now(),
            last_reconcile_duration_seconds=0.5,
        )
    clock.advance(1)
    with store.transaction() as tx:
        tx.set_controller_status(last_error="remote unreachable", details={"leader": "c1"})
    status = store.registry.get_controller_status()
    assert status.last_fetched_commit == "abc" and status.last_reconcile_duration_seconds == 0.5
    assert status.last_error == "remote unreachable" and status.details == {"leader": "c1"}
    assert status.updated_at == clock.now()
    with pytest.raises(InvalidRequest), store.transaction() as tx:
        tx.set_controller_status(color="blue")


def test_promotion_approvals_are_one_per_approver(store: Store) -> None:
    """Each approver decides once per digest; approvals list in decision order."""
    with store.transaction() as tx:
        tx.add_promotion_approval("a", "prod", "d1", approver="ann", decision="approved")
        tx.add_promotion_approval(
            "a", "prod", "d1", approver="bob", decision="rejected", comment="not yet"
        )
        tx.add_promotion_approval("a", "prod", "d2", approver="ann", decision="approved")
    with pytest.raises(Conflict) as err, store.transaction() as tx:
        tx.add_promotion_approval("a", "prod", "d1", approver="ann", decision="rejected")
    assert err.value.code == "already_decided"
    with pytest.raises(InvalidRequest), store.transaction() as tx:
        tx.add_promotion_approval("a", "prod", "d1", approver="cy", decision="maybe")
    got = store.registry.list_promotion_approvals("a", "prod", "d1")
    assert [(a.approver, a.decision) for a in got] == [("ann", "approved"), ("bob", "rejected")]
    assert len(store.registry.list_promotion_approvals("a", "prod")) == 3


def test_registry_decision_is_one_transaction(store: Store) -> None:
    """A failure mid-apply leaves neither the new revision nor its condition behind."""
    with store.transaction() as tx:
        tx.add_revision("a", "dev", digest="d1", status="active")
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.add_revision("a", "dev", digest="d2", status="active")
        tx.set_conditions("a", "dev", [("Ready", "True", "Promoted", "")])
        tx.add_audit("bundle.promoted", payload={"bundle": "a"})
        raise RuntimeError("crash")
    active = store.registry.get_active("a", "dev")
    assert active is not None and active.digest == "d1"
    assert store.registry.list_conditions() == [] and store.audit.list_audit().total == 0


def test_revision_heads_omit_specs(store: Store) -> None:
    """Revision heads list every revision in order, with diagnostics only when rejected."""
    with store.transaction() as tx:
        tx.add_revision(
            "a", "dev", digest="d1", spec={"big": "x"}, diagnostics=[{"c": "W"}], status="active"
        )
        bad = tx.add_revision("a", "dev", digest="d2")
        tx.set_revision_status("a", "dev", bad.revision, "rejected", diagnostics=[{"c": "E"}])
        tx.add_revision("b", "prod", digest="d3", commit="c3")
    heads = store.registry.list_revisions(heads=True)
    assert [(h.bundle_name, h.revision, h.status) for h in heads] == [
        ("a", 1, "active"),
        ("a", 2, "rejected"),
        ("b", 1, "inactive"),
    ]
    assert heads[0].diagnostics is None and heads[1].diagnostics == [{"c": "E"}]
    assert heads[2].commit == "c3"
    prod = store.registry.list_revisions(environment="prod", heads=True)
    assert [h.environment for h in prod] == ["prod"]


def test_registry_writes_mark_their_bundle_with_a_change_number(store: Store) -> None:
    """People's writes stamp the key (drift, suspensions, decisions); the controller's own
    transactions opt out, and ``registry_changes_since`` returns what changed after a number."""
    start, _ = store.registry.registry_changes_since(None)
    with store.transaction(marks_registry_changes=False) as tx:  # as the controller applies
        tx.add_revision("quiet", "dev", digest="d1", status="active")
        tx.add_revision("quiet", "dev", digest="d2", status="active")
    assert store.registry.registry_changes_since(start) == (start, set())
    with store.transaction() as tx:
        tx.set_revision_status("quiet", "dev", 1, "active")  # by hand
    first, changed = store.registry.registry_changes_since(start)
    assert first == start + 1 and changed == {"quiet"}
    with store.transaction() as tx:
        tx.set_suspended("other", "prod", True)
    with store.transaction() as tx:
        tx.set_suspended("other", "prod", True)  # idempotent: no new change
    with store.transaction() as tx:
        tx.add_promotion_approval("third", "prod", "d", approver="alice", decision="approved")
    current, changed = store.registry.registry_changes_since(first)
    assert current == first + 2 and changed == {"other", "third"}
    assert store.registry.registry_changes_since(current) == (current, set())
    with store.transaction() as tx:
        resumed = tx.set_suspended("other", "prod", False)
    with store.transaction() as tx:
        resumed_again = tx.set_suspended("other", "prod", False)
    assert resumed is not None and resumed_again is None
    assert store.registry.registry_changes_since(current) == (current + 1, {"other"})
    with pytest.raises(RuntimeError), store.transaction() as tx:  # rolled back: no change
        tx.set_revision_status("quiet", "dev", 2, "active")
        raise RuntimeError("abort")
    assert store.registry.registry_changes_since(current + 1) == (current + 1, set())


def test_registry_reads_narrow_to_bundle_names(store: Store) -> None:
    """An incremental reconcile reads the revisions, conditions and suspensions of its
    scope only, in bounded ``IN`` lists."""
    with store.transaction() as tx:
        for name in ("a", "b", "c"):
            tx.add_revision(name, "dev", digest=f"d-{name}", status="active")
            tx.set_conditions(name, "dev", [("Ready", "True", "Ready", "")])
            tx.set_suspended(name, "dev", True)
        tx.add_revision("b", "prod", digest="d-b", status="pending_approval")
    heads = store.registry.list_revisions(names={"b", "c"}, heads=True)
    assert [(h.bundle_name, h.environment) for h in heads] == [
        ("b", "dev"),
        ("b", "prod"),
        ("c", "dev"),
    ]
    assert [c[0] for c in store.registry.list_conditions(names=["a"], heads=True)] == ["a"]
    assert [s.bundle_name for s in store.registry.holds(names=[]).suspensions.values()] == []
    pending = store.registry.list_revisions(status="pending_approval", heads=True)
    assert [(h.bundle_name, h.environment) for h in pending] == [("b", "prod")]
    many = {f"n{i}" for i in range(1200)} | {"c"}  # more than one IN list
    assert [h.bundle_name for h in store.registry.list_revisions(names=many, heads=True)] == ["c"]


def test_an_approval_already_decided_leaves_the_transaction_usable(store: Store) -> None:
    """A second decision by one approver is ``already_decided`` without failing what the
    transaction wrote before it (no constraint error aborts it: the insert skips the row)."""
    with store.transaction() as tx:
        tx.add_promotion_approval("a", "prod", "d1", approver="ann", decision="approved")
    with store.transaction() as tx:
        tx.add_audit("promotion.decided", payload={"bundle": "a"})
        with pytest.raises(Conflict) as err:
            tx.add_promotion_approval("a", "prod", "d1", approver="ann", decision="rejected")
        assert err.value.code == "already_decided"
        tx.add_promotion_approval("a", "prod", "d1", approver="bob", decision="approved")
    assert store.audit.list_audit().total == 1
    assert [a.approver for a in store.registry.list_promotion_approvals("a", "prod", "d1")] == [
        "ann",
        "bob",
    ]


@pytest.mark.parametrize("write", ["add", "activate"])
def test_concurrent_registry_writers_never_leave_two_active(store: Store, write: str) -> None:
    """Two transactions promoting the same key at once: the second either waits and follows
    (SQLite: one writer at a time) or loses with ``stale_state`` (PostgreSQL: it meets the
    first's row in the unique index); never two active revisions, never a 500."""
    import threading

    if write == "activate":
        with store.transaction() as tx:
            tx.add_revision("a", "dev", digest="d1")
            tx.add_revision("a", "dev", digest="d2")
    first_wrote, outcome = threading.Event(), {}

    def second() -> None:
        first_wrote.wait(5)
        try:
            with store.transaction() as tx:
                if write == "add":
                    tx.add_revision("a", "dev", digest="d-second", status="active")
                else:
                    tx.set_revision_status("a", "dev", 2, "active")
            outcome["second"] = "ok"
        except Conflict as exc:
            outcome["second"] = exc.code

    thread = threading.Thread(target=second)
    thread.start()
    with store.transaction() as tx:
        if write == "add":
            tx.add_revision("a", "dev", digest="d-first", status="active")
        else:
            tx.set_revision_status("a", "dev", 1, "active")
        first_wrote.set()
        thread.join(0.5)  # PostgreSQL: the second blocks on the first's index entry
    thread.join(10)
    active = [r for r in store.registry.list_revisions("a", "dev") if r.status == "active"]
    assert len(active) == 1
    if store.backend == "postgresql":
        assert outcome["second"] == "stale_state"
        assert active[0].digest == ("d-first" if write == "add" else "d1")
    else:
        assert outcome["second"] == "ok"
        assert active[0].digest == ("d-second" if write == "add" else "d2")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_registry_statements_bind_only_the_named_values_callers_pass(backend: str) -> None:
    """A registry statement compiles to ``:name`` parameters only; one that would bind a
    value of its own (an anonymous literal the caller never passes) is refused when built."""
    from sqlalchemy.dialects import postgresql, sqlite

    from kneo.store.registry import statements as q
    from kneo.store.wire.statement_cache import named_sql

    db = sqlite.pysqlite.dialect() if backend == "sqlite" else postgresql.psycopg.dialect()
    sql = named_sql(q.deactivate(), db)
    assert "status='inactive'" in sql.replace(" ", "")
    assert ":deactivated_at" in sql and ":bundle_name" in sql
    assert ("::" in sql) == (backend == "postgresql")  # SQLAlchemy's bind casts (%s::VARCHAR)
    locked = named_sql(q.select(t.bundle_conditions, lock=True), db)
    assert ("FOR UPDATE" in locked) == (backend == "postgresql")
    with pytest.raises(ValueError, match="bundle_name_1"):
        named_sql(sa.select(t.bundle_pins).where(t.bundle_pins.c.bundle_name == "x"), db)


def test_the_next_revision_number_is_a_seek_not_a_walk_of_the_project(tmp_path: Path) -> None:
    """Adding a revision reads its key's head; on a fresh SQLite database (no statistics) the
    planner once answered it from the ``(project_id, status, ...)`` index, walking every
    revision of the project for each one added: a cold reconcile was quadratic."""
    store = open_store(f"sqlite:///{tmp_path / 'plan.db'}")
    try:
        sql = named_sql(q.head(), store.engine.dialect)
        with store.engine.connect() as conn:
            plan = conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN " + sql,
                {"project_id": 1, "bundle_name": "b", "environment": "prod"},
            ).all()
    finally:
        store.close()
    searches = [row[-1] for row in plan if "bundle_revisions" in row[-1]]
    assert searches, plan
    assert all("bundle_name=?" in line for line in searches), searches
