"""A followed event stream does not lose the run's last events when they commit, together with
the final status, between its last empty read and its status check."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kneo.platform import PlatformManager, create_platform
from kneo.settings import Settings
from kneo.spec.project import ProjectContext
from kneo.store import RunRecord


@pytest.fixture()
def manager(tmp_path: Path) -> Iterator[PlatformManager]:
    settings = Settings.from_env({})
    platform = create_platform(settings, ProjectContext.discover(cwd=tmp_path, settings=settings))
    yield platform
    platform.store.close()


def test_events_committed_with_the_final_status_are_streamed(
    manager: PlatformManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = manager.store
    with store.transaction() as tx:
        run = tx.create_run(input_text="x", workflow_name="w", target="workflow")
        tx.update_run(run.run_id, status="running")
        tx.add_trace_events(run.run_id, [{"event_type": "run_started", "payload": {}}])
    read = store.runs.get_run
    calls: list[str] = []
    finished: list[Any] = []

    def get_run(run_id: str) -> RunRecord:
        calls.append(run_id)
        # Call 1 checks the run exists; call 2 follows the stream's first empty read: the run
        # ends right then, its last event and status in one transaction.
        if len(calls) == 2:
            with store.transaction() as tx:
                tx.add_trace_events(
                    run_id, [{"event_type": "run_completed", "payload": {"output_chars": 1}}]
                )
                finished.append(tx.update_run(run_id, status="succeeded"))
        return read(run_id)

    monkeypatch.setattr(store.runs, "get_run", get_run)
    streamed = list(manager.events(run.run_id, follow=True, poll_seconds=0.01))
    assert finished and len(calls) >= 2
    assert [e.type for e in streamed] == ["run.started", "run.finished"]
    assert streamed[-1].data["status"] == "succeeded"
