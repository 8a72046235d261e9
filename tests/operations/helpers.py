"""Helpers for the operations suite: project layout, environments, processes, counters."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from tests.cli_zygote import FRESH, KNEO
from tests.queue_records import queue_stats

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures"


def _sequential(name: str, steps: Iterable[str]) -> dict[str, Any]:
    return {
        "version": "v1",
        "workflow": {
            "type": "sequential",
            "name": name,
            "steps": [{"id": step, "kind": "function", "ref": f"opsteps:{step}"} for step in steps],
        },
    }


HUMAN_SPEC = {
    "version": "v1",
    "workflow": {
        "type": "sequential",
        "name": "ops-human",
        "steps": [
            {"id": "s1", "kind": "function", "ref": "opsteps:s1"},
            {"id": "approve", "kind": "human", "ref": "reviewer"},
            {"id": "s2", "kind": "function", "ref": "opsteps:s2"},
        ],
    },
    "components": {
        "humans": {
            "reviewer": {
                "description": "Approve.",
                "prompt": "Approve?",
                "assignee": "operator",
                "timeout_seconds": 3600,
                "on_timeout": "fail",
            }
        }
    },
}


def make_project(root: Path) -> Path:
    """A project dir: step module, specs (three.yaml, five.yaml, human.yaml), ``.kneo/`` with a
    config declaring the step functions."""
    root.mkdir(parents=True)
    (root / ".kneo").mkdir()
    # the step functions an inline spec sent to the API may call
    declared = [f"opsteps:s{n}" for n in range(1, 6)]
    (root / ".kneo" / "config.yaml").write_text(
        json.dumps({"version": "v1", "functions": {"declared": declared}})
    )
    shutil.copy(FIXTURES / "opsteps.py", root / "opsteps.py")
    shutil.copy(FIXTURES / "racer.py", root / "racer.py")
    (root / "three.yaml").write_text(json.dumps(_sequential("three", ["s1", "s2", "s3"])))
    (root / "five.yaml").write_text(json.dumps(_sequential("five", ["s1", "s2", "s3", "s4", "s5"])))
    (root / "human.yaml").write_text(json.dumps(HUMAN_SPEC))
    return root


def env_for(project: Path, database_url: str | None = None, **extra: str) -> dict[str, str]:
    """A child environment: no inherited KNEO_*; the project and repo importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KNEO")}
    env["PYTHONPATH"] = os.pathsep.join([str(project), str(REPO)])
    env["COLUMNS"] = "200"
    if database_url:
        env["KNEO_SERV_DATABASE_URL"] = database_url
    env.update(extra)
    return env


def kneo(
    project: Path, env: dict[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*KNEO, *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def kneo_json(project: Path, env: dict[str, str], *args: str, check: int = 0) -> Any:
    proc = kneo(project, env, *args, "--json")
    assert proc.returncode == check, proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr
    return json.loads(proc.stdout)


class Procs:
    """Child processes started by a test; all stopped (SIGTERM, then SIGKILL) at teardown."""

    def __init__(self) -> None:
        self.items: list[subprocess.Popen[bytes]] = []

    def worker(
        self, project: Path, env: dict[str, str], *args: str, log: Path | None = None
    ) -> subprocess.Popen[bytes]:
        out = (log or project / f"worker-{len(self.items)}.log").open("ab")
        proc = subprocess.Popen(
            [*FRESH, "worker", *args],
            cwd=project,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        self.items.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.items:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.items:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def open_manager(project: Path, database_url: str, clock: Any = None, **settings_env: str) -> Any:
    """An in-process PlatformManager for ``project`` on ``database_url`` (steps importable)."""
    from kneo.platform import create_platform
    from kneo.settings import Settings
    from kneo.spec.project import ProjectContext

    if str(project) not in sys.path:
        sys.path.insert(0, str(project))
    sys.modules.pop("opsteps", None)  # each test's project has its own copy
    settings = Settings.from_env({"KNEO_SERV_DATABASE_URL": database_url, **settings_env})
    context = ProjectContext.discover(cwd=project, settings=settings)
    return create_platform(settings=settings, project=context, clock=clock)


def counter_lines(project: Path) -> list[tuple[str, str, str]]:
    path = project / "counter.log"
    if not path.exists():
        return []
    return [tuple(line.split()) for line in path.read_text().splitlines()]  # type: ignore[misc]


def step_counts(project: Path) -> Counter[tuple[str, str]]:
    """How often each (key, step) executed."""
    return Counter((key, step) for key, step, _pid in counter_lines(project))


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def assert_queue_drained(store: Any, runs: int) -> None:
    """Every one of ``runs`` queue records completed, none queued or leased. Waited for: a
    worker answers a run's waiters before it settles the run's queue record."""
    wait_for(
        lambda: queue_stats(store)["completed"] == runs, timeout=30, what="every record settled"
    )
    stats = queue_stats(store)
    assert stats["completed"] == runs and stats["queued"] == stats["leased"] == 0
