"""Conformance: retention pruning; SQLite online backup and restore."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from kneo.clock import ManualClock
from kneo.errors import InvalidRequest, NotFound
from kneo.setting_groups import RetentionDays
from kneo.store import (
    AuditQuery,
    RunQuery,
    Store,
    backup_sqlite_database,
    open_store,
    restore_sqlite_database,
)
from kneo.store.maintenance import retention

from .helpers import new_run

ALL_30 = RetentionDays(
    runs_days=30,
    checkpoints_days=30,
    queue_days=30,
    continuations_days=30,
    artifacts_days=30,
    logs_days=30,
)


def _populate_old(store: Store, clock: ManualClock) -> dict[str, str]:
    """Runs 40 days old: finished, failed, paused (with a continuation) and a running one."""
    ids = {}
    for status in ("succeeded", "failed", "paused", "running"):
        run_id = new_run(store, run_id=f"run_{status}")
        ids[status] = run_id
        with store.transaction() as tx:
            tx.add_checkpoint(run_id, type="step", payload={})
            tx.add_trace_events(run_id, [{"event_type": "step.completed"}])
            tx.enqueue(run_id)
    with store.transaction() as tx:
        for status in ("succeeded", "failed"):
            tx.update_run(ids[status], status=status, finished_at=clock.now())
        tx.update_run(ids["paused"], status="paused")
    with store.transaction() as tx:
        tx.put_continuation("cont_live", run_id=ids["paused"], requests=[{"request_id": "r1"}])
        tx.put_continuation(
            "cont_old",
            run_id=ids["paused"],
            status="resolved",
            requests=[{"request_id": "r0", "status": "resolved"}],
        )
    done = store.queue.claim("w", 60)
    assert done is not None and store.queue.finish(done.queue_id, "w")
    with store.transaction() as tx:
        tx.add_audit("run.created", run_id=ids["succeeded"])
    clock.advance(days=40)
    return ids


def test_prune_counts_and_spares_live_work(store: Store, clock: ManualClock) -> None:
    """Only terminal runs, their checkpoints, finished queue records and settled
    continuations older than the window are deleted; paused and running runs survive."""
    ids = _populate_old(store, clock)
    fresh = new_run(store, run_id="run_fresh", status="succeeded")
    with store.transaction() as tx:
        tx.update_run(fresh, status="succeeded", finished_at=clock.now())
    counts = store.maintenance.prune_retention(ALL_30)
    assert counts == {
        "runs": 2,
        "checkpoints": 2,
        "queue": 1,
        "continuations": 1,
        "artifacts": 0,
        "logs": 0,
    }
    remaining = {r.run_id for r in store.runs.list_runs(RunQuery(limit=100)).items}
    assert remaining == {ids["paused"], ids["running"], fresh}
    assert store.runs.list_checkpoints(ids["paused"]).total == 1
    assert store.tasks.get_continuation("cont_live").status == "pending"
    with pytest.raises(NotFound):
        store.tasks.get_continuation("cont_old")
    assert store.runs.list_trace(ids["succeeded"]).total == 0
    assert store.audit.list_audit().total == 1  # audit history is kept
    assert store.maintenance.prune_retention(ALL_30) == dict.fromkeys(counts, 0)


def test_prune_dry_run_counts_without_deleting(store: Store, clock: ManualClock) -> None:
    """dry_run reports the same counts and leaves every row in place."""
    _populate_old(store, clock)
    planned = store.maintenance.prune_retention(ALL_30, dry_run=True)
    assert planned["runs"] == 2 and planned["queue"] == 1
    assert store.runs.list_runs(RunQuery(limit=100)).total == 4
    assert store.maintenance.prune_retention(ALL_30) == planned


def test_prune_commits_chunk_by_chunk_and_judges_each_again(
    store: Store, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A prune deletes a chunk per transaction (no writer waits out a whole prune, and on
    PostgreSQL the list counters stay linear), and judges each chunk again when it deletes
    it: a failed run continued after the prune listed it is kept."""
    runs = [new_run(store, run_id=f"run_{i}", status="failed") for i in range(5)]
    with store.transaction() as tx:
        for run_id in runs:
            tx.update_run(run_id, status="failed", finished_at=clock.now())
    clock.advance(days=40)
    monkeypatch.setattr(retention, "CHUNK", 2)
    listed = retention._chunked
    gone_before_last: list[str] = []
    continued: list[str] = []

    def chunked(batch: retention.Batch, query: object) -> object:
        chunks = list(listed(batch, query))  # type: ignore[arg-type]
        for number, chunk in enumerate(chunks):
            if number == len(chunks) - 1 and not continued:  # earlier chunks committed?
                left = {r.run_id for r in store.runs.list_runs(RunQuery(limit=100)).items}
                gone_before_last.extend(sorted(set(runs) - left))
                with store.transaction() as tx:  # a retry takes the run up again
                    tx.update_run(chunk[0], status="running")
                continued.append(chunk[0])
            yield chunk

    monkeypatch.setattr(retention, "_chunked", chunked)
    counts = store.maintenance.prune_retention(RetentionDays(runs_days=30))
    assert len(gone_before_last) == 4  # two chunks of two, committed before the last began
    assert counts["runs"] == 4
    left = {r.run_id for r in store.runs.list_runs(RunQuery(limit=100)).items}
    assert left == set(continued)


def test_unset_windows_prune_nothing(store: Store, clock: ManualClock) -> None:
    """A window of None leaves its category alone; a longer window keeps younger rows."""
    _populate_old(store, clock)
    assert set(store.maintenance.prune_retention(RetentionDays()).values()) == {0}
    assert store.maintenance.prune_retention(RetentionDays(runs_days=60))["runs"] == 0
    only_queue = store.maintenance.prune_retention(RetentionDays(queue_days=1))
    assert only_queue["queue"] == 1 and only_queue["runs"] == 0
    assert (
        store.maintenance.prune_retention(RetentionDays(checkpoints_days=1), now=clock.now())[
            "checkpoints"
        ]
        == 2
    )


def test_backup_is_postgres_unsupported(store: Store, backend: str, tmp_path: Path) -> None:
    """Online backup is for SQLite; on PostgreSQL it says to use pg_dump."""
    if backend == "sqlite":
        assert store.maintenance.backup_sqlite(tmp_path / "b.sqlite").is_file()
        return
    with pytest.raises(InvalidRequest) as err:
        store.maintenance.backup_sqlite(tmp_path / "b.sqlite")
    assert err.value.code == "unsupported_backend"


def test_sqlite_backup_and_restore_keep_everything(tmp_path: Path) -> None:
    """A restored backup holds the runs, checkpoints, audit, continuations and registry."""
    clock = ManualClock()
    store = open_store(None, state_dir=tmp_path / "live", clock=clock)
    run_id = new_run(store, run_id="run_b", status="paused")
    with store.transaction() as tx:
        tx.add_checkpoint(run_id, type="step", payload={"big": "z" * 100_000})
        tx.add_audit("human.requested", run_id=run_id)
        tx.put_continuation("cont_b", run_id=run_id, requests=[{"request_id": "req_b"}])
        tx.add_revision("bundle", "dev", digest="d1", status="active")
        tx.set_conditions("bundle", "dev", [("Ready", "True", "Promoted", "")])
    backup = store.maintenance.backup_sqlite(tmp_path / "backups" / "kneo.sqlite")
    new_run(store, run_id="run_after_backup")
    store.close()

    restored_path = restore_sqlite_database(backup, tmp_path / "restored" / "kneo_runs.sqlite")
    restored = open_store(f"sqlite:///{restored_path}", clock=clock)
    assert restored.runs.get_run(run_id).status == "paused"
    assert restored.runs.list_checkpoints(run_id, sequences=[1]).items[0].payload == {
        "big": "z" * 100_000
    }
    assert (
        restored.audit.list_audit(AuditQuery(run_id=run_id)).items[0].event_type
        == "human.requested"
    )
    assert restored.tasks.get_continuation("cont_b").requests == [{"request_id": "req_b"}]
    active = restored.registry.get_active("bundle", "dev")
    assert active is not None and active.digest == "d1"
    assert restored.registry.list_conditions()[0].reason == "Promoted"
    with pytest.raises(NotFound):
        restored.runs.get_run("run_after_backup")
    restored.close()


def test_backup_file_is_self_contained(tmp_path: Path) -> None:
    """The backup needs no WAL sidecar: the module-level API copies a live database."""
    store = open_store(None, state_dir=tmp_path)
    new_run(store, run_id="run_x")
    target = backup_sqlite_database(tmp_path / "kneo_runs.sqlite", tmp_path / "copy.sqlite")
    store.close()
    assert not (tmp_path / "copy.sqlite-wal").exists()
    with sqlite3.connect(target) as conn:
        assert conn.execute("SELECT run_id FROM runs").fetchall() == [("run_x",)]


def test_restore_refuses_bad_input(tmp_path: Path) -> None:
    """Restoring a missing file, a non-database or a foreign database fails clearly."""
    with pytest.raises(NotFound):
        restore_sqlite_database(tmp_path / "nope.sqlite", tmp_path / "out.sqlite")
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(InvalidRequest) as err:
        restore_sqlite_database(junk, tmp_path / "out.sqlite")
    assert err.value.code == "invalid_backup"
    foreign = tmp_path / "foreign.sqlite"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE t (x)")
    with pytest.raises(InvalidRequest) as err2:
        restore_sqlite_database(foreign, tmp_path / "out.sqlite")
    assert "not a Kneo database" in err2.value.message
    with pytest.raises(NotFound):
        backup_sqlite_database(tmp_path / "missing.sqlite", tmp_path / "b.sqlite")


def test_prune_uses_store_clock_by_default(store: Store, clock: ManualClock) -> None:
    """Without ``now`` the window is measured from the store's clock."""
    run_id = new_run(store)
    with store.transaction() as tx:
        tx.update_run(run_id, status="cancelled", finished_at=clock.now())
    clock.advance(days=2)
    assert store.maintenance.prune_retention(RetentionDays(runs_days=3))["runs"] == 0
    assert store.maintenance.prune_retention(RetentionDays(runs_days=1))["runs"] == 1
    assert (
        store.maintenance.prune_retention(
            RetentionDays(runs_days=1), now=clock.now() - timedelta(days=5)
        )["runs"]
        == 0
    )
