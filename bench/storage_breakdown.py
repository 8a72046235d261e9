"""Where a paused run's bytes go: pages per table and index, per paused run.

    python bench/storage_breakdown.py [--runs 1000] [--json] [--database-url URL]

Pauses ``--runs`` runs of ``examples/hitl_approval.yaml`` (as ``bench/hitl.py`` does) in a
temporary project, after one warm-up run, and prints the growth of every table and index
divided by the number of runs, largest first. On SQLite (the default) the bytes are the pages
in use, from ``dbstat``; with ``--database-url postgresql+psycopg://...`` (a server: a scratch
database is made on it and dropped) they are ``pg_relation_size`` after ``VACUUM FULL``, so
the dead row versions a vacuum reclaims are not counted; a table's TOAST is listed as
``<table> (toast)``. Measures the ``kneo`` package on ``sys.path`` (set ``PYTHONPATH`` to
measure another checkout).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench.scratch_db

#: Every relation of the public schema with its bytes; a TOAST table under its owner's name.
PG_SIZES = (
    "SELECT COALESCE(o.relname || ' (toast)', c.relname), pg_relation_size(c.oid) "
    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "LEFT JOIN pg_class o ON o.reltoastrelid = c.oid "
    "WHERE (n.nspname = 'public' OR (n.nspname = 'pg_toast' AND o.oid IS NOT NULL)) "
    "AND c.relkind IN ('r', 'i', 't')"
)


def page_bytes(db: Path) -> dict[str, int]:
    """Bytes of pages per table or index (``dbstat``), after a WAL checkpoint."""
    conn = sqlite3.connect(db)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        found = conn.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").fetchall()
    finally:
        conn.close()
    return {str(name): int(size) for name, size in found}


def pg_bytes(url: str) -> dict[str, int]:
    """Bytes per relation after ``VACUUM FULL`` (a TOAST index is left out: it is small)."""
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        conn.autocommit = True
        conn.execute("VACUUM FULL")
        found = conn.execute(PG_SIZES).fetchall()
    return {str(name): int(size) for name, size in found}


def measure(runs: int, database_url: str | None = None) -> dict[str, float]:
    import kneo
    from kneo.platform import create_platform
    from kneo.settings import Settings
    from kneo.spec.project import ProjectContext

    examples = Path(kneo.__file__).resolve().parents[1] / "examples"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shutil.copytree(
            examples, root / "examples", ignore=shutil.ignore_patterns("__pycache__", "keys")
        )
        env = {"KNEO_SERV_DATABASE_URL": database_url} if database_url else {}
        settings = Settings.from_env(env)
        manager = create_platform(settings, ProjectContext.discover(cwd=root, settings=settings))
        spec = root / "examples" / "hitl_approval.yaml"
        manager.run_from_spec(input_text="launch", spec_path=spec)  # warm-up, creates the db
        db = root / ".kneo" / "kneo_runs.sqlite"
        sizes = (lambda: pg_bytes(database_url)) if database_url else (lambda: page_bytes(db))
        before = sizes()
        for _ in range(runs):
            paused = manager.run_from_spec(input_text="launch", spec_path=spec)
        assert paused.status == "paused", paused.status
        manager.store.close()
        after = sizes()
    grown = {name: (after[name] - before.get(name, 0)) / runs for name in after}
    return dict(sorted(grown.items(), key=lambda item: -item[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--database-url", help="a PostgreSQL server: measure there instead")
    args = parser.parse_args()
    if args.database_url:
        from bench.scratch_db import scratch_database

        with scratch_database(args.database_url, "kneo_bytes") as url:
            grown = measure(args.runs, url)
    else:
        grown = measure(args.runs)
    total = sum(grown.values())
    if args.json:
        print(json.dumps({"runs": args.runs, "bytes_per_run": grown, "total": total}))
        return
    how = "PostgreSQL, after VACUUM FULL" if args.database_url else "SQLite dbstat pages"
    print(f"bytes per paused run, {args.runs} runs of hitl_approval ({how})")
    for name, size in grown.items():
        if size:
            print(f"  {name:<45}{size:9.0f}")
    print(f"  {'total':<45}{total:9.0f}")


if __name__ == "__main__":
    main()
