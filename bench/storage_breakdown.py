"""Where a paused run's bytes go: SQLite ``dbstat`` pages per table and index, per paused run.

    python bench/storage_breakdown.py [--runs 1000] [--json]

Pauses ``--runs`` runs of ``examples/hitl_approval.yaml`` (as ``bench/hitl.py`` does) in a
temporary project on SQLite, after one warm-up run, and prints the growth of every table and
index (pages in use, from ``dbstat``) divided by the number of runs, largest first. Measures
the ``kneo`` package on ``sys.path`` (set ``PYTHONPATH`` to measure another checkout).
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


def page_bytes(db: Path) -> dict[str, int]:
    """Bytes of pages per table or index (``dbstat``), after a WAL checkpoint."""
    conn = sqlite3.connect(db)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        found = conn.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").fetchall()
    finally:
        conn.close()
    return {str(name): int(size) for name, size in found}


def measure(runs: int) -> dict[str, float]:
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
        settings = Settings.from_env({})
        manager = create_platform(settings, ProjectContext.discover(cwd=root, settings=settings))
        spec = root / "examples" / "hitl_approval.yaml"
        manager.run_from_spec(input_text="launch", spec_path=spec)  # warm-up, creates the db
        db = root / ".kneo" / "kneo_runs.sqlite"
        before = page_bytes(db)
        for _ in range(runs):
            paused = manager.run_from_spec(input_text="launch", spec_path=spec)
        assert paused.status == "paused", paused.status
        manager.store.close()
        after = page_bytes(db)
    grown = {name: (after[name] - before.get(name, 0)) / runs for name in after}
    return dict(sorted(grown.items(), key=lambda item: -item[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    grown = measure(args.runs)
    total = sum(grown.values())
    if args.json:
        print(json.dumps({"runs": args.runs, "bytes_per_run": grown, "total": total}))
        return
    print(f"bytes per paused run, {args.runs} runs of hitl_approval (SQLite dbstat pages)")
    for name, size in grown.items():
        if size:
            print(f"  {name:<45}{size:9.0f}")
    print(f"  {'total':<45}{total:9.0f}")


if __name__ == "__main__":
    main()
