"""Projects at scale (issue 61): one project's task pages with 1 and with 100 projects installed.

    python bench/projects.py [--tasks 1000] [--projects 100] [--requests 40] [--rounds 4]
        [--pg URL] [--no-sqlite]

Two installs per database, filled alike: **1 project** (``default`` with ``--tasks`` pending
tasks) and **100 projects** (``default`` and 99 more, each with ``--tasks`` pending tasks: 100x
the rows). The fill is ``bench/scale.py``'s: a few real paused runs of the HITL examples in
``default``, then copies of their rows (run, continuation, its request rows, audit event,
the task's search words and filter labels) inserted in batches, each copy in its project
(``project_id``, its words and labels behind the project's prefix, as the store writes
them); assignees cycle over 20 names, one task in 1,000 holds the rare word ``zephyr``. On
PostgreSQL the fill ends with ``VACUUM ANALYZE``. The last project is checked through its
own manager (one real pause) before measuring.

Measured: the real service app in-process (a platform administrator's key, the project in
``X-Kneo-Project``), *server time* from the service's request log, for ``GET
/v1/human-tasks``'s first page, ``q=`` a word of every task, ``q=`` the rare word and
``assignee=user7`` (1 in 20): ``default`` in the 1-project install (the baseline), and
``default`` (project 1) and the last project (project 100) in the 100-project install. The
three take turns in every round (``--rounds``, ``--requests`` per case in all), so a load
spike hits each; the ratio is each p50 over the baseline's. Target: flat (within noise).
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
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]
sys.path.insert(0, str(REPO))

from bench.scale import EXAMPLES, Durations, _list_row, pct  # noqa: E402
from bench.scratch_db import scratch_database  # noqa: E402

KEY = "bench-platform-admin-key-0123"
ASSIGNEES = 20
RARE = "zephyr"
CASES: dict[str, dict[str, str]] = {
    "first page": {},
    "q= every task's word": {"q": "template"},
    "q= a rare word (1 in 1,000)": {"q": RARE},
    "assignee=user7 (1 in 20)": {"assignee": "user7"},
}


def templates(manager: Any) -> list[dict[str, Any]]:
    """The default project's real paused runs (one per HITL example), each as its rows."""
    import sqlalchemy as sa

    from kneo.store import tables as t

    for example in EXAMPLES:
        result = manager.run_from_spec(
            input_text=f"template {example}", spec_path=str(REPO / "examples" / f"{example}.yaml")
        )
        assert result.status == "paused", result
    out = []
    with manager.store.engine.connect() as conn:
        for run in conn.execute(sa.select(t.runs)).mappings():
            run_id = run["run_id"]
            cont = conn.execute(
                sa.select(t.continuations).where(t.continuations.c.run_id == run_id)
            ).mappings().one()  # fmt: skip
            cid = cont["continuation_id"]
            req = conn.execute(
                sa.select(t.continuation_requests).where(
                    t.continuation_requests.c.continuation_id == cid
                )
            ).mappings().one()  # fmt: skip
            terms = conn.execute(
                sa.select(t.continuation_terms.c.term).where(
                    t.continuation_terms.c.continuation_id == cid
                )
            ).scalars().all()  # fmt: skip
            audit = conn.execute(
                sa.select(t.audit_events).where(t.audit_events.c.run_id == run_id).limit(1)
            ).mappings().one()  # fmt: skip
            out.append(
                {
                    "run": dict(run),
                    "cont": dict(cont),
                    "req": dict(req),
                    "audit": {k: v for k, v in audit.items() if k != "id"},
                    "words": [w for w in terms if not w.startswith("=")],
                }
            )
    return out


def fill(store: Any, project_id: int, shapes: list[dict[str, Any]], size: int, tag: str) -> None:
    """``size`` pending tasks in project ``project_id``, copies of ``shapes``."""
    from kneo.store import tables as t
    from kneo.store.tasks.search import scoped_term, task_labels

    start = datetime(2026, 1, 1, tzinfo=UTC)
    batch: dict[str, list[dict[str, Any]]] = {k: [] for k in ("runs", "cont", "req", "aud", "t")}
    tables = (
        (t.runs, "runs"),
        (t.continuations, "cont"),
        (t.continuation_requests, "req"),
        (t.audit_events, "aud"),
        (t.continuation_terms, "t"),
    )

    def flush() -> None:
        with store.engine.begin() as conn:
            for table, key in tables:
                if batch[key]:
                    conn.execute(table.insert(), batch[key])
                    batch[key].clear()

    mine = {"project_id": project_id}
    for i in range(size):
        at = start + timedelta(seconds=i)
        shape = shapes[i % len(shapes)]
        cont = shape["cont"]
        run_id, cid = f"run-{tag}-{i:07d}", f"cont-{tag}-{i:07d}"
        assignee = f"user{i % ASSIGNEES}"
        requests = [{**r, "assignee": assignee} for r in cont["requests"]]
        batch["runs"].append(
            {**shape["run"], **mine, "run_id": run_id, "created_at": at, "updated_at": at}
        )
        batch["cont"].append(
            {
                **cont,
                **mine,
                "continuation_id": cid,
                "run_id": run_id,
                "requests": requests,
                **_list_row(cont, assignee),
                "created_at": at,
                "updated_at": at,
            }
        )
        batch["req"].append({**shape["req"], **mine, "continuation_id": cid, "assignee": assignee})
        batch["aud"].append(
            {**shape["audit"], **mine, "event_id": f"evt-{tag}-{i:07d}", "run_id": run_id}
        )
        promotion = cont["workflow_kind"] == "promotion"
        words = [*shape["words"], *([RARE] if i % 1000 == 500 else [])]
        batch["t"] += [
            {"term": scoped_term(project_id, term), "created_at": at, "continuation_id": cid}
            for term in [*words, *task_labels(requests, promotion=promotion)]
        ]
        if len(batch["runs"]) >= 5000:
            flush()
    flush()


@contextmanager
def install(url: str | None, projects: int, size: int) -> Iterator[tuple[Any, str]]:
    """A filled install of ``projects`` projects of ``size`` tasks each: yields the service
    app's test client and the last project's name."""
    import sqlalchemy as sa
    from starlette.testclient import TestClient

    from kneo.platform import create_platform
    from kneo.service import create_app
    from kneo.settings import Settings
    from kneo.store import open_store

    tmp = Path(tempfile.mkdtemp(prefix="kneo-projects-bench-"))
    settings = Settings.from_env(
        {
            "KNEO_SERV_AUTH_ENABLED": "true",
            "KNEO_SERV_API_KEYS": f"bench:{KEY}:platform-admin",
            "KNEO_SERV_REQUEST_LOGS": "true",
        }
    )
    store = open_store(url, settings=settings, state_dir=tmp)
    manager = create_platform(settings=settings, store=store)
    started = time.perf_counter()
    shapes = templates(manager)
    fill(store, store.project_id, shapes, size - len(shapes), "p001")
    last = "default"
    for n in range(2, projects + 1):
        last = f"team-{n:03d}"
        created = store.projects.create_project(last)
        fill(store, created.id, shapes, size, f"p{n:03d}")
    if store.dialect.name == "postgresql":
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE"))
    if projects > 1:  # the last project works through its own manager: one real pause
        example = REPO / "examples" / f"{EXAMPLES[0]}.yaml"
        paused = manager.for_project(last).run_from_spec(input_text="real", spec_path=example)
        assert paused.status == "paused", paused
    print(
        f"{store.dialect.name}: {projects} project(s) x {size:,} tasks filled in "
        f"{time.perf_counter() - started:.1f} s",
        file=sys.stderr,
    )
    app = create_app(False, settings=settings, manager=manager, start_worker=False)
    try:
        with TestClient(app) as client:
            yield client, last
    finally:
        manager.close()


def measure(label: str, url: Callable[[], Any], args: argparse.Namespace) -> list[dict[str, Any]]:
    """The three targets' cases, rounds interleaved."""
    from kneo.service.middleware import LOGGER_NAME

    durations = Durations()
    logger = logging.getLogger(LOGGER_NAME)
    with ExitStack() as stack:
        one, _ = stack.enter_context(install(stack.enter_context(url()), 1, args.tasks))
        many, last = stack.enter_context(
            install(stack.enter_context(url()), args.projects, args.tasks)
        )
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.addHandler(durations)
        logger.propagate = False
        targets = {
            "1 project: default": (one, "default"),
            f"{args.projects} projects: default (project 1)": (many, "default"),
            f"{args.projects} projects: {last} (project {args.projects})": (many, last),
        }
        gc.collect()
        gc.freeze()  # as `kneo service serve` does once started (see bench/scale.py)

        def ask(client: Any, project: str, params: dict[str, str]) -> int:
            headers = {"Authorization": f"Bearer {KEY}", "X-Kneo-Project": project}
            answer = client.get("/v1/human-tasks", params=params, headers=headers)
            assert answer.status_code == 200, answer.text[:300]
            return len(answer.json()["tasks"])

        found: dict[tuple[str, str], int] = {}
        for target, (client, project) in targets.items():  # warm-up, and what each finds
            for case, params in CASES.items():
                for _ in range(3):
                    found[target, case] = ask(client, project, params)
        durations.take()
        samples: dict[tuple[str, str], list[float]] = {k: [] for k in found}
        per_round = max(1, args.requests // args.rounds)
        for _ in range(args.rounds):
            for case, params in CASES.items():
                for target, (client, project) in targets.items():
                    for _ in range(per_round):
                        ask(client, project, params)
                    samples[target, case] += durations.take()
    base = next(iter(targets))
    rows = []
    for (target, case), values in samples.items():
        p50 = statistics.median(values)
        rows.append(
            {
                "backend": label,
                "target": target,
                "case": case,
                "found": found[target, case],
                "p50": p50,
                "p95": pct(values, 0.95),
                "ratio": p50 / statistics.median(samples[base, case]),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000, help="pending tasks per project")
    parser.add_argument("--projects", type=int, default=100)
    parser.add_argument("--requests", type=int, default=40, help="per case and target")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--pg", default=os.environ.get("KNEO_TEST_DATABASE_URL"))
    parser.add_argument("--no-sqlite", action="store_true")
    args = parser.parse_args()
    os.chdir(REPO)
    rows: list[dict[str, Any]] = []

    @contextmanager
    def sqlite() -> Iterator[None]:
        yield None

    if not args.no_sqlite:
        rows += measure("SQLite", sqlite, args)
    if args.pg:
        rows += measure("PostgreSQL", lambda: scratch_database(args.pg, "kneo_projects"), args)
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    print(
        "| backend | install: project | request | tasks on page | p50 ms | p95 ms | p50 / 1 project |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['backend']} | {r['target']} | {r['case']} | {r['found']} "
            f"| {r['p50']:.2f} | {r['p95']:.2f} | {r['ratio']:.2f} |"
        )


if __name__ == "__main__":
    main()
