"""What a retention prune costs: ``SIZE`` finished runs, each with its task, pruned by
``store.maintenance.prune_retention`` (what ``kneo db prune`` runs), on SQLite and on
PostgreSQL.

    python bench/retention.py [--size 20000] [--pg URL]

The store is filled as ``bench/scale.py`` fills it (a few real paused runs, copied with SQL),
then every run is marked finished a day ago. Printed: the prune's wall time and what it
deleted. Run it on two checkouts (``PYTHONPATH=CHECKOUT``) to compare them.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]
sys.path.insert(0, str(REPO))

from bench.scale import fill  # noqa: E402
from bench.scratch_db import scratch_database  # noqa: E402


def measure(label: str, url: str | None, size: int) -> None:
    import sqlalchemy as sa

    from kneo.platform import create_platform
    from kneo.setting_groups import RetentionDays
    from kneo.settings import Settings
    from kneo.store import open_store
    from kneo.store import tables as t

    settings = Settings()
    store = open_store(url, settings=settings, state_dir=Path(tempfile.mkdtemp()))
    try:
        fill(create_platform(settings=settings, store=store), store, size, no_vacuum=True)
        ended = datetime.now(UTC) - timedelta(days=1)
        with store.engine.connect() as conn:
            ids = [row[0] for row in conn.execute(sa.select(t.runs.c.run_id))]
        for start in range(0, len(ids), 1_000):  # as runs end: a transaction at a time
            with store.engine.begin() as conn:
                conn.execute(
                    sa.update(t.runs)
                    .where(t.runs.c.run_id.in_(ids[start : start + 1_000]))
                    .values(status="succeeded", finished_at=ended, updated_at=ended)
                )
        started = time.perf_counter()
        counts = store.maintenance.prune_retention(RetentionDays(runs_days=0))
        took = time.perf_counter() - started
        print(f"{label}: pruned {counts['runs']:,} runs in {took:.2f} s", flush=True)
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=20_000)
    parser.add_argument("--pg", help="a PostgreSQL server URL (a scratch database is made)")
    args = parser.parse_args()
    measure("sqlite", None, args.size)
    if args.pg:
        with scratch_database(args.pg, "kneo_retention_bench") as url:
            measure("postgresql", url, args.size)


if __name__ == "__main__":
    main()
