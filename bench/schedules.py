"""What the scheduler costs: an idle pass (nothing due) with no schedule and with 10,000
declared, as CPU per pass and per minute (a process passes once a second), and a tick to a
queued run (p50/p95 of the work from the tick's pass to the run's commit).

The registry is filled directly (``bundles`` active revisions of ``per_bundle`` schedules
each: 100 x 100 by default), as the controller would leave it; the clock is a manual one, so
a pass sees exactly the ticks the bench makes due. A pass in a process of its own; the
databases: a scratch SQLite file, and PostgreSQL when ``--pg URL`` names a server (a
database is created there and dropped after).

    python bench/schedules.py [--bundles 100] [--per-bundle 100] [--passes 30] [--ticks 200]
    python bench/schedules.py --pg postgresql+psycopg://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def spec(per_bundle: int, *, every: int | None = None) -> dict[str, Any]:
    """A one-step agent workflow with ``per_bundle`` schedules: daily at 03:00 Paris (never
    due in the bench), or every ``every`` seconds."""
    clock: dict[str, Any] = (
        {"every_seconds": every, "overlap": "allow"}
        if every
        else {"cron": "0 3 * * *", "timezone": "Europe/Paris"}
    )
    return {
        "version": "v1",
        "agent": {"name": "a", "model": {"provider": "dummy", "script": [{"text": "ok"}]}},
        "workflow": {"type": "sequential", "steps": [{"id": "s", "kind": "agent", "ref": "a"}]},
        "schedules": [{"name": f"s{i}", "input": "tick", **clock} for i in range(per_bundle)],
    }


def fill(store: Any, bundles: int, per_bundle: int, every: int | None = None) -> None:
    body = spec(per_bundle, every=every)
    with store.transaction() as tx:
        for n in range(bundles):
            tx.add_revision(f"b{n}", "dev", digest=f"sha256:{n:064x}", status="active", spec=body)


def platform(root: Path, url: str, clock: Any) -> Any:
    from kneo.platform import create_platform
    from kneo.settings import Settings
    from kneo.spec.project import ProjectContext
    from kneo.store import open_store

    (root / ".kneo").mkdir(parents=True, exist_ok=True)
    (root / ".kneo" / "config.yaml").write_text("version: v1\nenvironments: {dev: {}}\n")
    settings = Settings.from_env({})
    store = open_store(url, clock=clock)
    project = ProjectContext.discover(cwd=root, settings=settings)
    return create_platform(settings=settings, project=project, store=store, clock=clock)


def idle(url: str, root: Path, bundles: int, per_bundle: int, passes: int) -> dict[str, Any]:
    """CPU of idle passes: the first (reads every spec once), then the steady ones."""
    from kneo.clock import ManualClock
    from kneo.platform.schedules import Scheduler

    clock = ManualClock(datetime(2026, 3, 1, 12, tzinfo=UTC))
    manager = platform(root, url, clock)
    if bundles:
        fill(manager.store, bundles, per_bundle)
    scheduler = Scheduler(manager)
    start = time.process_time()
    scheduler.tick_once()
    first = time.process_time() - start
    cpu: list[float] = []
    for _ in range(passes):
        clock.advance(1)
        start = time.process_time()
        counts = scheduler.tick_once()
        cpu.append(time.process_time() - start)
        assert counts["started"] == 0, counts
    steady = statistics.median(cpu)
    return {
        "schedules": bundles * per_bundle,
        "first_pass_cpu_ms": round(first * 1000, 2),
        "idle_pass_cpu_ms": round(steady * 1000, 3),
        "cpu_seconds_per_minute": round(steady * 60, 3),
    }


def latency(url: str, root: Path, ticks: int) -> dict[str, Any]:
    """Per tick: claim, overlap check, the run queued through admission, the tick recorded."""
    from kneo.clock import ManualClock
    from kneo.platform.schedules import Scheduler

    clock = ManualClock(datetime(2026, 3, 1, 12, tzinfo=UTC))
    manager = platform(root, url, clock)
    fill(manager.store, 10, 1, every=1)
    scheduler = Scheduler(manager)
    scheduler.tick_once()
    per_tick: list[float] = []
    while len(per_tick) < ticks:
        clock.advance(1)
        start = time.perf_counter()
        started = scheduler.tick_once()["started"]
        per_tick.extend([(time.perf_counter() - start) / max(started, 1)] * started)
    per_tick.sort()
    return {
        "ticks": len(per_tick),
        "tick_to_queued_p50_ms": round(statistics.median(per_tick) * 1000, 2),
        "tick_to_queued_p95_ms": round(per_tick[int(len(per_tick) * 0.95) - 1] * 1000, 2),
    }


def child(argv: list[str]) -> None:
    kind, url, root, *rest = argv
    numbers = [int(a) for a in rest]
    if kind == "idle":
        result = idle(url, Path(root), *numbers)
    else:
        result = latency(url, Path(root), *numbers)
    print(json.dumps(result))


def run_child(*args: Any) -> dict[str, Any]:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("KNEO")}}
    env["PYTHONPATH"] = str(REPO)
    out = subprocess.run(
        [sys.executable, __file__, "--child", *map(str, args)],
        env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


class Scratch:
    """Scratch database URLs by name: SQLite files under ``tmp``, or PostgreSQL databases
    made on the ``pg`` server (dropped by :meth:`close`)."""

    def __init__(self, tmp: Path, pg: str | None) -> None:
        self.tmp, self.pg, self.made = tmp, pg, []
        self.admin: Any = None
        if pg:
            import sqlalchemy as sa

            self.admin = sa.create_engine(pg, isolation_level="AUTOCOMMIT")

    def url(self, name: str) -> str:
        if self.admin is None:
            return f"sqlite:///{self.tmp / name}.sqlite"
        import sqlalchemy as sa

        db = f"kneo_bench_sched_{uuid.uuid4().hex[:8]}"
        with self.admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{db}"'))
        self.made.append(db)
        return str(sa.make_url(self.pg).set(database=db).render_as_string(hide_password=False))

    def close(self) -> None:
        if self.admin is None:
            return
        import sqlalchemy as sa

        with self.admin.connect() as conn:
            for db in self.made:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
        self.admin.dispose()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundles", type=int, default=100)
    parser.add_argument("--per-bundle", type=int, default=100)
    parser.add_argument("--passes", type=int, default=30)
    parser.add_argument("--ticks", type=int, default=200)
    parser.add_argument("--pg", help="a PostgreSQL server URL (a scratch database is made)")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name, pg in (("sqlite", None), ("postgresql", args.pg)):
            if name == "postgresql" and not pg:
                continue
            scratch = Scratch(root / name, pg)
            (root / name).mkdir()
            try:
                results[name] = {
                    "idle_none": run_child("idle", scratch.url("none"), root / name / "a", 0, 0,
                                           args.passes),
                    "idle_declared": run_child(
                        "idle", scratch.url("many"), root / name / "b", args.bundles,
                        args.per_bundle, args.passes,
                    ),
                    "latency": run_child("latency", scratch.url("lat"), root / name / "c",
                                         args.ticks),
                }  # fmt: skip
            finally:
                scratch.close()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
