"""Runs executing on several threads of one process at once (the service's request threads,
an embedded worker's), on both databases: each finishes whole, nothing is lost or mixed up."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from kneo.platform import create_platform
from kneo.settings import Settings

SPEC = (
    "version: v1\n"
    "workflow:\n"
    "  type: sequential\n"
    "  name: threaded-steps\n"
    "  steps:\n"
    "    - {id: a, kind: function, ref: examples.human_functions:draft_report}\n"
    "    - {id: b, kind: function, ref: examples.human_functions:publish_report}\n"
)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_runs_on_several_threads_each_finish_whole(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    if backend == "postgresql":
        new_database: Callable[[], str] = request.getfixturevalue("pg_database")
        url = new_database()
    spec = tmp_path / "steps.yaml"
    spec.write_text(SPEC)
    manager = create_platform(Settings.from_env({"KNEO_SERV_DATABASE_URL": url}))
    results: list[tuple[str, str]] = []
    lock = threading.Lock()

    def work(thread: int) -> None:
        for n in range(10):
            result = manager.run_from_spec(input_text=f"topic {thread}-{n}", spec_path=spec)
            with lock:
                results.append((result.status, result.run_id))

    threads = [threading.Thread(target=work, args=(t,), daemon=True) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    try:
        assert [status for status, _ in results] == ["succeeded"] * 40
        assert len({run_id for _, run_id in results}) == 40
        for _, run_id in results[::10]:
            run = manager.get_run_record(run_id)
            assert (run.status, run.checkpoint_seq) == ("succeeded", 3)  # two steps, the outcome
    finally:
        manager.store.close()
