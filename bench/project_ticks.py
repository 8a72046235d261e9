"""What a worker process's background work costs per tick with 1 and with 100 projects: an
idle claim (``Worker.run_once`` on an empty queue), a timeout-sweep tick
(``Sweeper.sweep_once``, every project) and a notification tick (``Dispatcher.run_once``,
its ``human.expiring`` sweep of every project included), on SQLite and PostgreSQL.

Each project holds ``--paused`` paused runs (a person's approval, not yet expired) and, with
``--limited``, every other project sets ``max_running_runs``. Reported per tick: the
statements sent (SQLAlchemy's, counted on the engine) and the median milliseconds over
``--ticks`` ticks, after a warm-up tick (the catalog read and the projects' configs parsed:
that happens once per five seconds, not per tick).

    python bench/project_ticks.py                   # SQLite, and PostgreSQL if
                                                    # KNEO_TEST_DATABASE_URL is set
    python bench/project_ticks.py --projects 1 100 --paused 5 --ticks 20 --json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.append(str(REPO))  # bench.scratch_db (appended: the kneo measured stays the same)

import sqlalchemy as sa  # noqa: E402

from bench.scratch_db import scratch_database  # noqa: E402
from kneo.platform import create_platform  # noqa: E402
from kneo.platform.notifications import (  # noqa: E402
    Dispatcher,
    ProjectAudiences,
    load_receivers,
)
from kneo.platform.sweeper import Sweeper  # noqa: E402
from kneo.platform.worker import Worker  # noqa: E402
from kneo.settings import Settings  # noqa: E402
from kneo.spec.project import ProjectContext  # noqa: E402
from kneo.store import open_store  # noqa: E402

SPEC = {
    "version": "v1",
    "workflow": {
        "type": "sequential",
        "name": "ticks",
        "steps": [{"id": "approve", "kind": "human", "ref": "reviewer"}],
    },
    "components": {
        "humans": {"reviewer": {"prompt": "ok?", "timeout_seconds": 3600, "on_timeout": "fail"}}
    },
}


@contextlib.contextmanager
def _database(backend: str, tmp: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp / 'ticks.sqlite'}"
        return
    server = os.environ["KNEO_TEST_DATABASE_URL"]
    with scratch_database(server, "kneo_ticks") as url:
        yield url


def _fill(manager: Any, projects: int, paused: int, limited: bool) -> None:
    names = ["default", *(f"team-{i:03d}" for i in range(1, projects))]
    for i, name in enumerate(names[1:], start=1):
        definition: dict[str, Any] = {
            "notifications": {
                "receivers": [
                    # routed but never due here: the tick's cost, not a delivery's, is measured
                    {
                        "name": "hook",
                        "url": f"https://hooks.example/{name}",
                        "events": ["bundle.promoted"],
                    }
                ]
            }
        }
        if limited and i % 2:
            definition["limits"] = {"max_running_runs": 4}
        manager.store.projects.create_project(name, definition=definition)
    for name in names:
        team = manager.for_project(name)
        for _ in range(paused):
            assert team.run_from_spec(input_text="x", spec=SPEC).status == "paused"


def _measure(engine: Any, tick: Callable[[], Any], ticks: int) -> dict[str, float]:
    count = [0]

    def counted(*_args: Any) -> None:
        count[0] += 1

    tick()  # warm: the catalog read, the configs parsed, the statements built
    sa.event.listen(engine, "before_cursor_execute", counted)
    try:
        times = []
        for _ in range(ticks):
            start = time.perf_counter()
            tick()
            times.append((time.perf_counter() - start) * 1000)
    finally:
        sa.event.remove(engine, "before_cursor_execute", counted)
    return {"statements": count[0] / ticks, "ms": round(statistics.median(times), 3)}


def run(backend: str, projects: int, paused: int, ticks: int, limited: bool) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix="kneo-ticks-") as tmp,
        _database(backend, Path(tmp)) as url,
    ):
        root = Path(tmp)
        (root / ".kneo").mkdir()
        (root / ".kneo" / "config.yaml").write_text("version: v1\n")
        env = {"KNEO_SERV_NOTIFICATIONS_POLL_SECONDS": "3600", "KNEO_SERV_WORKER_POLL_SECONDS": "0"}
        settings = Settings.from_env(env)
        project = ProjectContext.discover(cwd=root, settings=settings)
        store = open_store(url, settings=settings)
        manager = create_platform(settings, project, store=store)
        try:
            _fill(manager, projects, paused, limited)
            worker = Worker(manager, name="bench", poll_seconds=1e-6)
            sweeper = Sweeper(manager.sweeps, None, directory=worker.directory)
            dispatcher = Dispatcher(  # as start_dispatcher builds it, its thread not started
                manager.store,
                load_receivers(settings, project.config),
                settings.notifications,
                owner="bench",
                projects=ProjectAudiences(worker.directory, settings),
            )

            def notify() -> int:
                dispatcher._next_sweep = None  # the expiring sweep every tick (it is every 5 s)
                return dispatcher.run_once()

            out = {
                "backend": backend,
                "projects": projects,
                "limited": limited,
                "idle_claim": _measure(store.engine, worker.run_once, ticks),
                "sweep_tick": _measure(store.engine, sweeper.sweep_once, ticks),
                "notify_tick": _measure(store.engine, notify, ticks),
            }
            dispatcher.stop(1.0)
            return out
        finally:
            manager.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, nargs="+", default=[1, 100])
    parser.add_argument("--paused", type=int, default=3, help="paused runs per project")
    parser.add_argument("--ticks", type=int, default=20)
    parser.add_argument("--limited", action="store_true", help="half the projects limit runs")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    backends = ["sqlite", *(["postgresql"] if os.environ.get("KNEO_TEST_DATABASE_URL") else [])]
    results = []
    for backend in backends:
        for projects in args.projects:
            found = run(backend, projects, args.paused, args.ticks, args.limited)
            results.append(found)
            if not args.json:
                cells = "  ".join(
                    f"{k}: {v['statements']:.0f} statements, {v['ms']:.2f} ms"
                    for k, v in found.items()
                    if isinstance(v, dict)
                )
                print(f"{backend:>10} {projects:>4} projects: {cells}")
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
