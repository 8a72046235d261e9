"""Cross-backend guarantees: checkpoint storage limits give identical stored bytes on SQLite
and PostgreSQL; a SQLite backup taken and restored through the CLI keeps runs, checkpoints,
audit events, continuations and the registry, and the restored paused run resumes."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from kneo.clock import ManualClock
from kneo.setting_groups import CheckpointLimits
from kneo.settings import Settings
from kneo.store import AuditQuery, open_store
from kneo.store import tables as t

from .helpers import env_for, kneo_json, open_manager

LIMITS = CheckpointLimits(
    compress_bytes=1_000, max_bytes=4_000, preview_chars=50, max_list_items=3, max_dict_items=4
)


def _stored_rows(url: str, payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    store = open_store(url, settings=Settings(checkpoint=LIMITS), clock=ManualClock())
    try:
        with store.transaction() as tx:
            run_id = tx.create_run(
                target="workflow",
                input_text="x",
                workflow_name="wf",
                workflow_kind="sequential",
                run_id="run_parity",
            ).run_id
        with store.transaction() as tx:
            for payload in payloads:
                tx.add_checkpoint(
                    run_id,
                    type="step",
                    step_id="s",
                    status="completed",
                    payload=payload,
                    metadata={"m": 1},
                )
        c = t.checkpoints.c
        with store.engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    c.sequence, c.encoding, c.payload, c.size_bytes, c.truncated, c.metadata
                ).order_by(c.sequence)
            )
            return [dict(r._mapping, payload=bytes(r.payload)) for r in rows]
    finally:
        store.close()


def test_checkpoint_limits_store_identical_bytes_on_both_backends(
    tmp_path: Path, pg_database: Callable[[], str]
) -> None:
    noise = secrets.token_hex(6_000)
    payloads = [
        {"small": "ok"},  # plain
        {"text": "abc" * 1_000, "items": list(range(100))},  # compressed
        {
            "blob": noise,
            "list": list(range(10)),  # bounded preview
            "many": {f"k{i}": i for i in range(10)},
            "unicode": "ü" * 80,
        },
    ]
    on_sqlite = _stored_rows(f"sqlite:///{tmp_path / 'parity.sqlite'}", payloads)
    on_pg = _stored_rows(pg_database(), payloads)
    assert [r["encoding"] for r in on_sqlite] != [on_sqlite[0]["encoding"]] * 3
    assert [r["truncated"] for r in on_sqlite] == [False, False, True]
    assert on_sqlite == on_pg


def test_cli_backup_and_restore_keep_everything(project: Path) -> None:
    db = project / ".kneo" / "kneo_runs.sqlite"
    manager = open_manager(project, f"sqlite:///{db}")
    try:
        done = manager.run_from_spec(input_text="kept", spec_path=project / "three.yaml")
        paused = manager.run_from_spec(input_text="waiting", spec_path=project / "human.yaml")
        with manager.store.transaction() as tx:
            tx.add_revision("ops-bundle", "prod", digest="sha256:abc", status="active")
            tx.set_conditions("ops-bundle", "prod", [("Ready", "True", "Promoted", "")])
    finally:
        manager.store.close()
    env = env_for(project)
    backup = kneo_json(project, env, "maintenance", "backup", "backups/kneo.sqlite")
    assert backup["bytes"] > 0
    # life goes on after the backup, then the database is lost
    kneo_json(project, env, "run", "three.yaml", "-i", "after")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    kneo_json(project, env, "maintenance", "restore", "backups/kneo.sqlite")

    runs = {r["run_id"]: r["status"] for r in kneo_json(project, env, "runs", "list")["runs"]}
    assert runs == {done.run_id: "succeeded", paused.run_id: "paused"}
    checkpoints = kneo_json(project, env, "runs", "checkpoints", done.run_id)["checkpoints"]
    assert checkpoints and checkpoints[-1]["type"] == "run_completed"
    store = open_store(f"sqlite:///{db}")
    try:
        assert store.audit.list_audit(AuditQuery(run_id=done.run_id)).total >= 1
        assert store.tasks.get_continuation(paused.continuation_id).status == "pending"
        active = store.registry.get_active("ops-bundle", "prod")
        assert active is not None and active.digest == "sha256:abc"
        request_id = store.tasks.get_continuation(paused.continuation_id).requests[0]["request_id"]
    finally:
        store.close()
    resumed = kneo_json(
        project,
        env,
        "human",
        "resume",
        paused.continuation_id,
        "--request-id",
        request_id,
        "--approve",
    )
    assert resumed["status"] == "succeeded"
