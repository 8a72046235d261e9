"""What an exact ``total`` costs: the count of ``/v1/runs``, ``/v1/human-tasks`` and
``/v1/audit-events`` at 100,000 runs (each paused on one task), exact against the count
capped at 1,000 rows past the page (``KNEO_SERV_MAX_LIST_COUNT=1000``, the old default), and
against the sum of the project's counters (``list_counts``, migration 0037: what the runs'
and the pending tasks' first pages take ``total`` from), and the whole first page with
each, on SQLite and PostgreSQL.

    python bench/list_totals.py [--size 100000] [--requests 30] [--pg URL]

The store is filled as ``bench/scale.py`` fills it (a few real paused runs, copied with SQL;
``VACUUM ANALYZE`` on PostgreSQL). *Server time* is the service's own request log.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]
sys.path.insert(0, str(REPO))

from bench.scale import KEY, Durations, fill, pct  # noqa: E402
from bench.scratch_db import scratch_database  # noqa: E402

ROUTES = (
    ("/v1/runs", {}),
    ("/v1/runs", {"status": "paused"}),
    ("/v1/human-tasks", {}),
    ("/v1/audit-events", {}),
)

#: the counts the project's counters answer: room, status
COUNTED = {"runs": ("runs", None), "runs status=paused": ("runs", "paused"),
           "tasks pending": ("tasks", "pending")}  # fmt: skip


def measure(label: str, url: str | None, size: int, requests: int) -> list[dict[str, Any]]:
    from starlette.testclient import TestClient

    from kneo.platform import create_platform
    from kneo.service import create_app
    from kneo.service.middleware import LOGGER_NAME
    from kneo.settings import Settings
    from kneo.store import open_store
    from kneo.store import tables as t
    from kneo.store.base import count_rows
    from kneo.store.list_counts import counted

    rows: list[dict[str, Any]] = []
    tmp = Path(tempfile.mkdtemp(prefix="kneo-totals-bench-"))
    settings = Settings.from_env({"KNEO_SERV_ADMIN_API_KEY": KEY})
    store = open_store(url, settings=settings, state_dir=tmp)
    manager = create_platform(settings=settings, store=store)
    fill(manager, store, size)
    # the count alone, in SQL: exact, and capped 1,000 past a first page of 100
    where = {
        "runs": (t.runs, [t.runs.c.project_id == 1]),
        "runs status=paused": (t.runs, [t.runs.c.project_id == 1, t.runs.c.status == "paused"]),
        "tasks pending": (
            t.continuations,
            [t.continuations.c.project_id == 1, t.continuations.c.status == "pending"],
        ),
        "audit events": (t.audit_events, [t.audit_events.c.project_id == 1]),
    }
    for what, (table, clause) in where.items():
        for kind, cap in (("exact", None), ("capped 1,100", 1_100)):
            samples = []
            with store.engine.connect() as conn:
                for _ in range(3 + requests):
                    began = time.perf_counter()
                    total, _ = count_rows(conn, table, clause, cap)
                    samples.append((time.perf_counter() - began) * 1000)
            rows.append(_row(label, size, f"count {what}", f"{kind} ({total:,})", samples[3:]))
        if what in COUNTED:  # the same total from the project's counters (migration 0037)
            samples = []
            with store.engine.connect() as conn:
                for _ in range(3 + requests):
                    began = time.perf_counter()
                    total = counted(conn, 1, *COUNTED[what])
                    samples.append((time.perf_counter() - began) * 1000)
            rows.append(_row(label, size, f"count {what}", f"counters ({total:,})", samples[3:]))
    for setting, value in (("exact (default)", "0"), ("KNEO_SERV_MAX_LIST_COUNT=1000", "1000")):
        env = {"KNEO_SERV_ADMIN_API_KEY": KEY, "KNEO_SERV_MAX_LIST_COUNT": value}
        chosen = Settings.from_env(env)  # the store counts as its own settings say
        served = open_store(url, settings=chosen, state_dir=tmp)
        platform = create_platform(settings=chosen, store=served)
        app = create_app(False, settings=chosen, manager=platform, start_worker=False)
        durations = Durations()
        logger = logging.getLogger(LOGGER_NAME)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.addHandler(durations)
        client = TestClient(app)
        gc.collect()
        for route, params in ROUTES:
            for _ in range(3):
                client.get(route, params=params, headers={"Authorization": f"Bearer {KEY}"})
            durations.take()
            for _ in range(requests):
                answer = client.get(
                    route, params=params, headers={"Authorization": f"Bearer {KEY}"}
                )
                assert answer.status_code == 200, answer.text[:300]
            what = route + "".join(f"?{k}={v}" for k, v in params.items())
            total = answer.json()["total"]
            rows.append(
                _row(label, size, f"first page {what}", f"{setting} ({total:,})", durations.take())
            )
        served.close()
    store.close()
    return rows


def _row(label: str, size: int, what: str, how: str, values: list[float]) -> dict[str, Any]:
    return {
        "backend": label,
        "size": size,
        "what": what,
        "how": how,
        "p50": statistics.median(values),
        "p95": pct(values, 0.95),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--pg", default=os.environ.get("KNEO_TEST_DATABASE_URL"))
    args = parser.parse_args()
    os.chdir(REPO)
    rows = measure("SQLite", None, args.size, args.requests)
    if args.pg:
        with scratch_database(args.pg, "kneo_totals") as url:
            rows += measure("PostgreSQL", url, args.size, args.requests)
    print("| backend | runs | what | how (total) | p50 ms | p95 ms |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['backend']} | {r['size']:,} | {r['what']} | {r['how']} "
            f"| {r['p50']:.2f} | {r['p95']:.2f} |"
        )


if __name__ == "__main__":
    main()
