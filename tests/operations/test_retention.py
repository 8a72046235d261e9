"""Platform retention: ``PlatformManager.prune_retention`` prunes rows (both backends) and the
project's artifact and log files, with an injected clock; the project's ``retention:`` block
applies under ``KNEO_SERV_RETENTION_*`` (env wins per field); ``kneo maintenance prune``."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from kneo import Decision
from kneo.clock import ManualClock
from kneo.errors import ConfigError
from kneo.platform.maintenance import prune_files, retention_policy
from kneo.setting_groups import RetentionDays
from kneo.settings import Settings
from kneo.spec.project import ProjectContext
from kneo.store import RunQuery
from kneo.worker import Worker
from tests.queue_records import queue_stats

from .helpers import HUMAN_SPEC, env_for, kneo_json, open_manager

CONFIG = """version: v1
paths:
  state_dir: .kneo
  artifacts_dir: out/artifacts
  logs_dir: out/logs
retention:
  runs_days: 30
  checkpoints_days: 30
  queue_days: 7
  continuations_days: 30
  artifacts_days: 10
  logs_days: 90
"""


def _touch(path: Path, when: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x")
    os.utime(path, (when, when))
    return path


def test_env_wins_per_field_over_project_config(project: Path) -> None:
    (project / ".kneo" / "config.yaml").write_text(CONFIG)
    settings = Settings.from_env(
        {"KNEO_SERV_RETENTION_LOGS_DAYS": "3", "KNEO_SERV_RETENTION_QUEUE_DAYS": "0"}
    )
    policy = retention_policy(settings, ProjectContext.discover(cwd=project, settings=settings))
    assert policy == RetentionDays(
        runs_days=30,
        checkpoints_days=30,
        queue_days=0,
        continuations_days=30,
        artifacts_days=10,
        logs_days=3,
    )
    # nothing set: finished queue records are kept a week, everything else forever
    assert retention_policy(Settings(), None) == RetentionDays(queue_days=7)


def test_every_process_prunes_finished_queue_records_by_default(project: Path, db_url: str) -> None:
    from kneo.platform.sweeper import start_sweeper

    clock = ManualClock()
    manager = open_manager(project, db_url, clock=clock)
    try:
        done = manager.start_run_from_spec(input_text="old", spec_path=project / "three.yaml")
        assert Worker(manager).run_once()  # executed: its queue record is completed
        assert manager.store.runs.get_run(done.run_id).status == "succeeded"
        waiting = manager.start_run_from_spec(input_text="q", spec_path=project / "three.yaml")
        sweeper = start_sweeper(manager, manager.settings)  # no retention configured
        try:
            assert sweeper.queue_days == 7
            clock.advance(days=6)
            assert sweeper.prune_queue() == 0  # not a week old yet
            clock.advance(days=2)
            assert sweeper.prune_queue() == 1  # the completed one; the queued one stays
        finally:
            sweeper.stop()
        assert queue_stats(manager.store)["queued"] == 1
        assert manager.store.runs.get_run(waiting.run_id).status == "queued"
    finally:
        manager.store.close()


def _untimed(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` with no deadline on its people's requests."""
    humans = {
        name: {k: v for k, v in human.items() if k not in ("timeout_seconds", "on_timeout")}
        for name, human in spec["components"]["humans"].items()
    }
    return {**spec, "components": {**spec["components"], "humans": humans}}


def test_prune_retention_rows_and_files_with_injected_clock(project: Path, db_url: str) -> None:
    (project / ".kneo" / "config.yaml").write_text(CONFIG)
    clock = ManualClock()
    manager = open_manager(project, db_url, clock=clock)
    try:
        old_done = manager.run_from_spec(input_text="olddone", spec_path=project / "three.yaml")
        # a request with no deadline: 40 days on, a person may still decide it (one with a
        # deadline is past it then: the decision is refused as human_task_expired)
        untimed = project / "human_untimed.yaml"
        untimed.write_text(json.dumps(_untimed(HUMAN_SPEC)))
        old_paused = manager.run_from_spec(input_text="oldpaused", spec_path=untimed)
        old_queued = manager.start_run_from_spec(
            input_text="oldqueued", spec_path=project / "three.yaml"
        )
        clock.advance(days=40)
        new_done = manager.run_from_spec(input_text="newdone", spec_path=project / "three.yaml")
        now = clock.now().timestamp()
        artifacts, logs = project / "out" / "artifacts", project / "out" / "logs"
        _touch(artifacts / "run1" / "report.md", now - 20 * 86400)  # > 10 days: pruned
        _touch(artifacts / "fresh.md", now - 2 * 86400)
        _touch(logs / "old.log", now - 100 * 86400)  # > 90 days: pruned
        _touch(logs / "recent.log", now - 20 * 86400)
        _touch(artifacts / "kneo_runs.sqlite", now - 400 * 86400)  # never a database file

        dry = manager.prune_retention(dry_run=True)
        # the old finished run's checkpoints fall to the checkpoint window first
        assert dry["checkpoints"] >= 4
        assert dry == {
            "runs": 1,
            "checkpoints": dry["checkpoints"],
            "queue": 0,
            "continuations": 0,
            "artifacts": 1,
            "logs": 1,
        }
        assert (artifacts / "run1" / "report.md").exists()
        assert manager.prune_retention() == dry
        assert not (artifacts / "run1").exists() and (artifacts / "fresh.md").exists()
        assert not (logs / "old.log").exists() and (logs / "recent.log").exists()
        assert (artifacts / "kneo_runs.sqlite").exists()
        remaining = {r["run_id"] for r in manager.list_runs(RunQuery(limit=50))["runs"]}
        assert remaining == {old_paused.run_id, old_queued.run_id, new_done.run_id}
        assert old_done.run_id not in remaining
        # the paused run is still resumable after pruning
        cid = old_paused.continuation_id
        request_id = manager.store.tasks.get_continuation(cid).requests[0]["request_id"]
        assert manager.resume(cid, Decision(request_id, "approved")).status == "succeeded"
        # an explicit policy overrides configuration; finished queue records go
        assert Worker(manager).run_once()  # executes the old queued run, completes its record
        assert manager.store.runs.get_run(old_queued.run_id).status == "succeeded"
        clock.advance(days=8)
        counts = manager.prune_retention(RetentionDays(queue_days=7))
        assert counts["queue"] == 1 and counts["runs"] == counts["artifacts"] == 0
    finally:
        manager.store.close()


def test_prune_files_refuses_a_root_holding_the_state_dir(project: Path) -> None:
    with pytest.raises(ConfigError):
        prune_files(project, ManualClock().now(), protected=(project / ".kneo",))
    assert prune_files(project / "missing", ManualClock().now()) == 0


def test_cli_prune_covers_artifacts_and_logs(project: Path) -> None:
    (project / ".kneo" / "config.yaml").write_text(CONFIG)
    now = ManualClock().now().timestamp()  # files from 2026-01-01; the CLI uses real time
    real_now = __import__("time").time()
    _touch(project / "out" / "artifacts" / "a.txt", min(now, real_now - 30 * 86400))
    _touch(project / "out" / "logs" / "l.log", real_now - 200 * 86400)
    _touch(project / "out" / "logs" / "keep.log", real_now - timedelta(days=1).total_seconds())
    env = env_for(project, KNEO_SERV_RETENTION_LOGS_DAYS="365")
    dry = kneo_json(project, env, "maintenance", "prune", "--dry-run")
    assert dry["dry_run"] and dry["retention"]["logs_days"] == 365
    assert dry["counts"]["artifacts"] == 1 and dry["counts"]["logs"] == 0
    env = env_for(project)
    done = kneo_json(project, env, "maintenance", "prune")
    assert done["counts"]["artifacts"] == 1 and done["counts"]["logs"] == 1
    assert not (project / "out" / "logs" / "l.log").exists()
    assert (project / "out" / "logs" / "keep.log").exists()
