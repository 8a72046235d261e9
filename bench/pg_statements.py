"""Where a PostgreSQL step goes, server side: statements, server time, buffers, WAL bytes,
commits, WAL flushes and rows written per 1-step run, 10-step run, pause and warm resume.

    python bench/pg_statements.py --database-url postgresql+psycopg://postgres@127.0.0.1:5499/postgres
        [--ops 20] [--statements]

Needs a server started with ``shared_preload_libraries=pg_stat_statements`` and
``pg_stat_statements.track=all`` (nested statements, such as a foreign key's trigger, are
counted too), one nobody else uses: the WAL flushes (``pg_stat_wal.wal_sync``) are the
whole server's. A scratch cluster, as the ``postgres`` user::

    initdb -D /tmp/pgs -A trust -U postgres
    pg_ctl -D /tmp/pgs -l /tmp/pgs.log -o "-p 5499 -k /tmp \
        -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all" start

Each kind runs ``--ops`` times on a scratch database, after five warm-up rounds;
``pg_stat_statements`` is reset before and read after. A backend reports its counters at most
once a second (and when idle, after 10 s), so each phase waits 11 s before reading them.
``--statements`` prints each statement's line too. Not part of the test run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.append(str(REPO))

from bench.scratch_db import scratch_database  # noqa: E402

TABLES = "SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del FROM pg_stat_user_tables"
STATEMENTS = """
SELECT calls, total_exec_time, shared_blks_hit + shared_blks_read, wal_bytes, wal_records, query
FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = %s)
ORDER BY calls DESC, total_exec_time DESC"""


class Counters:
    """The server's counters for one database, read through an autocommit connection."""

    def __init__(self, url: str) -> None:
        import psycopg

        self.name = url.rsplit("/", 1)[1]
        self.conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))
        self.conn.autocommit = True
        self.conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")

    def read(self) -> dict[str, Any]:
        time.sleep(11)  # a backend's counters reach the views at most this late
        one = self.conn.execute
        one("SELECT pg_stat_clear_snapshot()")
        return {
            "lsn": one("SELECT pg_current_wal_lsn()").fetchone()[0],  # type: ignore[index]
            "syncs": one("SELECT wal_sync FROM pg_stat_wal").fetchone()[0],  # type: ignore[index]
            "tables": {r[0]: r[1:] for r in one(TABLES)},
        }

    def phase(self, name: str, op: Callable[[], object], n: int, statements: bool) -> None:
        before = self.read()
        self.conn.execute("SELECT pg_stat_statements_reset()")
        for _ in range(n):
            op()
        rows = [r for r in self.conn.execute(STATEMENTS, (self.name,)) if _ours(r[-1])]
        after = self.read()
        wal = self.conn.execute(
            "SELECT pg_wal_lsn_diff(%s, %s)", (after["lsn"], before["lsn"])
        ).fetchone()[0]  # type: ignore[index]
        calls = sum(r[0] for r in rows)
        print(
            f"{name}: per op {calls / n:.1f} statements, server {sum(r[1] for r in rows) / n:.3f}"
            f" ms, buffers {sum(r[2] for r in rows) / n:.0f}, WAL {float(wal) / n:.0f} B in"
            f" {sum(r[4] for r in rows) / n:.1f} records, WAL flushes"
            f" {(after['syncs'] - before['syncs']) / n:.2f}"
        )
        written = {
            table: "/".join(
                f"{(a - b) / n:g}" for a, b in zip(now, before["tables"][table], strict=True)
            )
            for table, now in after["tables"].items()
            if now != before["tables"].get(table)
        }
        print(f"  rows per op (inserted/updated/HOT/deleted): {written}")
        for r in rows if statements else []:
            per = r[0]
            text = " ".join(r[-1].split())[:160]
            print(
                f"  {per / n:5.2f} x {r[1] / per * 1000:6.1f} us {r[2] / per:5.1f} buf"
                f" {int(r[3]) / per:5.0f} B  {text}"
            )


def _ours(query: str) -> bool:
    return not any(w in query for w in ("pg_stat", "pg_current_wal", "pg_wal_lsn", "EXTENSION"))


def platform(url: str, root: Path) -> Any:
    """A platform on ``url`` with a 1- and a 10-step function workflow and the approval
    example under ``root``."""
    from kneo.platform import create_platform
    from kneo.settings import Settings
    from kneo.spec.project import ProjectContext

    (root / "benchsteps.py").write_text("def step(text):\n    return text + '.'\n")
    sys.path.insert(0, str(root))
    for n in (1, 10):
        steps = [{"id": f"s{i}", "kind": "function", "ref": "benchsteps:step"} for i in range(n)]
        spec = {
            "version": "v1",
            "workflow": {"type": "sequential", "name": f"s{n}", "steps": steps},
        }
        (root / f"steps{n}.yaml").write_text(json.dumps(spec))
    shutil.copytree(REPO / "examples", root / "examples", ignore=shutil.ignore_patterns("keys"))
    settings = Settings.from_env({"KNEO_SERV_DATABASE_URL": url})
    return create_platform(settings, ProjectContext.discover(cwd=root, settings=settings))


def main() -> None:
    from kneo import Decision

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--ops", type=int, default=20)
    parser.add_argument("--statements", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, scratch_database(args.database_url, "pgs") as url:
        root = Path(tmp)
        m = platform(url, root)
        approval = root / "examples" / "hitl_approval.yaml"

        def run(n: int) -> Callable[[], object]:
            return lambda: m.run_from_spec(input_text="x", spec_path=root / f"steps{n}.yaml")

        def pause() -> Any:
            return m.run_from_spec(input_text="launch", spec_path=approval)

        def resume(p: Any) -> None:
            assert (
                m.resume(p.continuation_id, Decision(p.request_id, "approved")).status
                == "succeeded"
            )

        for _ in range(5):
            run(10)()
            resume(pause())
        counters = Counters(url)
        counters.phase("1-step run", run(1), args.ops, args.statements)
        counters.phase("10-step run", run(10), args.ops, args.statements)
        paused: list[Any] = []
        counters.phase("pause", lambda: paused.append(pause()), args.ops, args.statements)
        waiting = iter(paused)
        counters.phase("resume", lambda: resume(next(waiting)), args.ops, args.statements)
        m.store.close()
        counters.conn.close()


if __name__ == "__main__":
    main()
