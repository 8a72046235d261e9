"""The two series the alert rules added: ``kneo_build_info`` (one series per scrape target,
with the version and the build's revision) and ``kneo_human_task_oldest_pending_seconds``
(the age of the oldest pending request, read from the database, on both backends)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kneo import Decision, __version__, metrics
from kneo.clock import ManualClock
from kneo.settings import Settings
from kneo.version import version_info

from .helpers import open_manager
from .test_metrics import samples


def _build_info(settings: Settings) -> dict[frozenset[tuple[str, str]], float]:
    body, _ = metrics.render(metrics.exposition_registry(None, settings))
    return {
        labels: v
        for (name, labels), v in samples(body.decode()).items()
        if name == ("kneo_build_info")
    }


def test_build_info_names_the_version_and_revision(tmp_path: Path) -> None:
    shared = tmp_path / "prometheus"
    shared.mkdir()
    expected = {frozenset({"version": __version__, "revision": "abc1234"}.items()): 1.0}
    alone = Settings.from_env({"KNEO_SERV_BUILD_REVISION": "abc1234"})
    assert _build_info(alone) == expected
    together = Settings.from_env(
        {"KNEO_SERV_BUILD_REVISION": "abc1234", "PROMETHEUS_MULTIPROC_DIR": str(shared)}
    )
    assert _build_info(together) == expected  # this process's own, not one per process
    # without the image's build argument: the revision `kneo version` names (here, the
    # checkout's commit), never "unknown"
    revision = version_info().revision
    assert revision != "unknown"
    known = {frozenset({"version": __version__, "revision": revision}.items()): 1.0}
    assert _build_info(Settings.from_env({})) == known


def test_oldest_pending_task_age(project: Path, db_url: str) -> None:
    clock = ManualClock(datetime(2026, 3, 1, tzinfo=UTC))
    manager: Any = open_manager(project, db_url, clock=clock)
    try:
        assert manager.store.maintenance.gauges().oldest_pending_seconds == {}
        first = manager.run_from_spec(input_text="a", spec_path=project / "human.yaml")
        clock.advance(1800)
        manager.run_from_spec(input_text="b", spec_path=project / "human.yaml")
        clock.advance(600)
        gauges = manager.store.maintenance.gauges()
        [key] = gauges.pending_tasks
        assert gauges.pending_tasks == {key: 2}
        assert gauges.oldest_pending_seconds == {key: 2400.0}
        task = manager.get_human_task(first.continuation_id)
        manager.resume(
            first.continuation_id, Decision(task["requests"][0]["request_id"], "approved")
        )
        assert manager.store.maintenance.gauges().oldest_pending_seconds == {key: 600.0}
    finally:
        manager.store.close()
