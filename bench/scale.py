"""List routes at scale: the first page, a filter, the page after a cursor, a deep ``offset``
and ``include=counts`` of ``/v1/human-tasks``, ``/v1/runs`` and ``/v1/audit-events`` with
1,000 / 10,000 / 100,000 pending tasks (and as many runs and audit events).

    python bench/scale.py [--sizes 1000,10000,100000] [--requests 40] [--pg URL]

SQLite always; PostgreSQL too when ``--pg`` or ``KNEO_TEST_DATABASE_URL`` names a server (a
fresh database is created on it and dropped afterwards). Setup runs a few real paused runs
of the HITL examples, then copies their rows (run, continuation, its request rows, audit
events) with SQL, so 100,000 tasks take seconds, not minutes; assignees cycle over 20 names
and request kinds over the examples'; one task in 1,000 is of a rare environment, another of
a rare workflow (the filters a rare value should cost what a common one does). The real
service app is driven in-process; *server
time* is the service's own request log (``duration_ms``), so the client is not in it.
Start-up's objects are frozen before measuring, as ``kneo serve`` does.
On PostgreSQL the fill ends with ``VACUUM ANALYZE``, what autovacuum (on by default) does
after a bulk insert; ``--no-vacuum`` measures a server where it never ran.
Target: every first page, filter and page after a cursor p95 < 15 ms at 100,000.
Each case also reports its database *work* per request (:func:`work_of`: SQLite VM
instructions, PostgreSQL shared buffers), which a loaded machine does not change: compare
two versions' work when the machine is shared.

If ``bench/scale_reconcile.py`` exists, its ``main(argv)`` runs afterwards (the bundle half:
1k / 10k bundles).
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]
sys.path.insert(0, str(REPO))

from bench.scratch_db import scratch_database  # noqa: E402

EXAMPLES = ("hitl_approval", "hitl_input", "hitl_tool_approval", "hitl_confirmation", "hitl_review")
ASSIGNEES = 20
#: The bench key's own tasks, two in 1,000: its "mine" is two labels (its name and
#: ``user:admin``), so ``assignee=mine`` walks a small queue of several labels.
MINE = {100: "admin", 600: "user:admin"}
KEY = "bench-admin-key-0123456789"


class Durations(logging.Handler):
    """``duration_ms`` of every request the service logs."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.samples: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        data = getattr(record, "kneo", None)
        if isinstance(data, dict) and "duration_ms" in data:
            self.samples.append(float(data["duration_ms"]))

    def take(self) -> list[float]:
        out, self.samples = self.samples, []
        return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def fill(manager: Any, store: Any, size: int, *, no_vacuum: bool = False) -> None:
    """``size`` paused runs with one pending task each: a few real ones, the rest copies."""
    import sqlalchemy as sa

    from kneo.store import tables as t

    for example in EXAMPLES:
        result = manager.run_from_spec(
            input_text=f"template {example}", spec_path=str(REPO / "examples" / f"{example}.yaml")
        )
        assert result.status == "paused", result
    with store.engine.connect() as conn:
        runs = [dict(r) for r in conn.execute(sa.select(t.runs)).mappings()]
        conts = {r["run_id"]: dict(r) for r in conn.execute(sa.select(t.continuations)).mappings()}
        reqs = {
            r["continuation_id"]: dict(r)
            for r in conn.execute(sa.select(t.continuation_requests)).mappings()
        }
        audits = [dict(r) for r in conn.execute(sa.select(t.audit_events)).mappings()]
        # each template task's search words (not its labels): every copy holds its
        # template's, so "template" is in every task and each example's name in a fifth
        words: dict[str, list[str]] = {}
        for term, cid in conn.execute(
            sa.select(t.continuation_terms.c.term, t.continuation_terms.c.continuation_id)
        ):
            if not term.startswith("="):
                words.setdefault(cid, []).append(term)
    try:  # the assignee and kind filters' label rows, where the store writes them
        from kneo.store.tasks.search import task_labels
    except ImportError:
        task_labels = None
    try:  # the run search's rows (migration 0022), where the store writes them
        from kneo.store.tasks.search import outcome_terms
    except ImportError:
        outcome_terms = None
    start = datetime(2026, 1, 1, tzinfo=UTC)
    batch: dict[str, list[dict[str, Any]]] = {
        "runs": [],
        "cont": [],
        "req": [],
        "audit": [],
        "terms": [],
        "run_terms": [],
    }

    def flush() -> None:
        with store.engine.begin() as conn:
            for table, key in (
                (t.runs, "runs"),
                (t.continuations, "cont"),
                (t.continuation_requests, "req"),
                (t.audit_events, "audit"),
                (t.continuation_terms, "terms"),
                *([(t.run_terms, "run_terms")] if hasattr(t, "run_terms") else []),
            ):
                if batch[key]:
                    conn.execute(table.insert(), batch[key])
                    batch[key].clear()

    for i in range(size - len(EXAMPLES)):
        at = start + timedelta(seconds=i)
        run = runs[i % len(runs)]
        cont = conts[run["run_id"]]
        req = reqs[cont["continuation_id"]]
        run_id, cid = f"run-s{i:07d}", f"cont-s{i:07d}"
        assignee = MINE.get(i % 1000, f"user{i % ASSIGNEES}")
        outcome = _run_outcome(i)
        if not hasattr(t.runs.c, "session_id"):
            outcome.pop("session_id")
        batch["runs"].append(
            {**run, "run_id": run_id, "created_at": at, "updated_at": at, **outcome}
        )
        if outcome_terms is not None:
            batch["run_terms"] += [
                {"term": term, "created_at": at, "run_id": run_id}
                for term in outcome_terms(outcome["output_text"], outcome["error"])
            ]
        requests = [{**r, "assignee": assignee} for r in cont["requests"]]
        labels = {}  # one task in 1,000 of a rare environment, another of a rare workflow
        if i % 1000 == 0:
            labels = {"environment": "rare-env"}
        elif i % 1000 == 500:
            labels = {"workflow_name": "rare-workflow"}
        batch["cont"].append(
            {
                **cont,
                "continuation_id": cid,
                "run_id": run_id,
                "requests": requests,
                **_list_row(cont, assignee),
                "created_at": at,
                "updated_at": at,
                **labels,
            }
        )
        batch["req"].append({**req, "continuation_id": cid, "assignee": assignee})
        if task_labels is not None:
            promotion = cont["workflow_kind"] == "promotion"
            batch["terms"] += [
                {"term": term, "created_at": at, "continuation_id": cid}
                for term in [
                    *task_labels(requests, promotion=promotion),
                    *words.get(cont["continuation_id"], ()),
                ]
            ]
        audit = audits[i % len(audits)]
        batch["audit"].append(
            {
                **{k: v for k, v in audit.items() if k != "id"},
                "event_id": f"evt-s{i:07d}",
                "run_id": run_id,
                "created_at": at,
            }
        )
        if len(batch["runs"]) >= 5000:
            flush()
    flush()
    if store.dialect.name == "postgresql":
        # What PostgreSQL's autovacuum (on by default) does after a bulk insert: fresh
        # statistics, and a visibility map so capped counts are index-only scans. Without it
        # (``--no-vacuum``: a server with autovacuum off, which ``kneo db doctor`` flags)
        # every count of ``total`` visits the heap.
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("ANALYZE" if no_vacuum else "VACUUM ANALYZE"))


def _run_outcome(i: int) -> dict[str, Any]:
    """A copied run's session (ten runs each), output (a common word in every one, a rare
    one in one run of 1,000) and, for one run in 1,000, an error; one in 1,000 is of a rare
    workflow."""
    rare = " zephyr" if i % 1000 == 750 else ""
    outcome: dict[str, Any] = {
        "session_id": f"sess{i // 10}",
        "output_text": f"Draft ready for release {i}{rare}",
        "error": {"code": "boom", "message": "ledger unreachable"} if i % 1000 == 250 else None,
    }
    if i % 1000 == 500:
        outcome["workflow_name"] = "rare-workflow"
    return outcome


def _list_row(cont: dict[str, Any], assignee: str) -> dict[str, Any]:
    """The template's list row (``continuations.list_row``, where the store writes one)
    with the copy's assignee."""
    row = cont.get("list_row")
    if not row:
        return {}
    shown = [dict(row, requests=[{**r, "assignee": assignee} for r in row["requests"]])]
    if "personal" in row:
        personal = row["personal"]
        people = [{**r, "assignee": assignee} for r in personal["requests"]]
        shown[0]["personal"] = dict(personal, requests=people)
    return {"list_row": shown[0]}


def work_of(store: Any, call: Callable[[], Any]) -> int:
    """The database work of one request, which the machine's load does not change: SQLite's
    virtual machine instructions (counted by its progress handler, per 100), PostgreSQL's
    shared buffers hit or read by the request's statements (each run again under ``EXPLAIN
    (ANALYZE, BUFFERS)``, its top node's own and its children's)."""
    import sqlalchemy as sa

    seen: list[tuple[str, Any]] = []
    steps = [0]

    def tick() -> int:
        steps[0] += 1
        return 0

    def record(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if store.dialect.name == "sqlite":
            conn.connection.dbapi_connection.set_progress_handler(tick, 100)
        elif statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, params))

    sa.event.listen(store.engine, "before_cursor_execute", record)
    try:
        call()
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", record)
    if store.dialect.name == "sqlite":
        return steps[0] * 100
    blocks = 0
    with store.engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        cursor = raw.cursor()
        for statement, params in seen:
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement, params)
            plan = cursor.fetchone()[0][0]["Plan"]
            blocks += int(plan.get("Shared Hit Blocks", 0)) + int(plan.get("Shared Read Blocks", 0))
        raw.rollback()
    return blocks


def measure_backend(
    label: str, url: str | None, size: int, requests: int, *, no_vacuum: bool = False
) -> list[dict[str, Any]]:
    from starlette.testclient import TestClient

    from kneo.platform import create_platform
    from kneo.service import create_app
    from kneo.service.middleware import LOGGER_NAME
    from kneo.settings import Settings
    from kneo.store import open_store

    tmp = Path(tempfile.mkdtemp(prefix="kneo-scale-bench-"))
    settings = Settings.from_env({"KNEO_SERV_ADMIN_API_KEY": KEY})
    store = open_store(url, settings=settings, state_dir=tmp)
    manager = create_platform(settings=settings, store=store)
    started = time.perf_counter()
    fill(manager, store, size, no_vacuum=no_vacuum)
    print(f"{label}: {size} tasks filled in {time.perf_counter() - started:.1f} s", file=sys.stderr)

    durations = Durations()
    logger = logging.getLogger(LOGGER_NAME)
    app = create_app(False, settings=settings, manager=manager, start_worker=False)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    logger.addHandler(durations)
    client = TestClient(app)
    headers = {"Authorization": f"Bearer {KEY}"}
    rows: list[dict[str, Any]] = []
    # What `kneo serve` does once started (kneo.startup.done): freeze what start-up built, so
    # a full collection walks what requests made, not ~135,000 start-up objects (here ~190 ms
    # each, once every ~40 requests, an artefact of the in-process bench).
    gc.collect()
    gc.freeze()

    def get(path: str, **params: Any) -> dict[str, Any]:
        answer = client.get(path, params=params, headers=headers)
        assert answer.status_code == 200, (path, params, answer.text[:300])
        body: dict[str, Any] = answer.json()
        return body

    def case(route: str, what: str, call: Callable[[], Any]) -> None:
        for _ in range(3):
            call()
        durations.take()
        for _ in range(requests):
            call()
        values = durations.take()
        rows.append(
            {
                "backend": label,
                "size": size,
                "route": route,
                "what": what,
                "p50": statistics.median(values),
                "p95": pct(values, 0.95),
                "work": work_of(store, call),
            }
        )

    deep = min(size // 2, 10_000)  # the offset bound (KNEO_SERV_MAX_LIST_OFFSET default)
    for route, collection, filters in (
        (
            "/v1/human-tasks",
            "tasks",
            {
                "assignee": "user7",
                "kind": "input",
                "environment": "rare-env",
                "workflow": "rare-workflow",
                # "Mine": several labels (issue 73)
                "assignee ": "mine",
                # two words in every task; two words never together (issue 73)
                "q": "template hitl",
                "q ": "hitl_review hitl_input",
                "q  ": "hitl_review",
            },
        ),
        (
            "/v1/runs",
            "runs",
            {
                "status": "paused",
                "session_id": f"sess{size // 20}",
                "has_error": "true",
                "workflow_name": "rare-workflow",
                "created_after": (
                    datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=size - 100)
                ).isoformat(),
                "sort_by": "updated_at",  # the original clients' default (issue 73)
                "sort_by ": {"sort_by": "updated_at", "sort_order": "asc"},
                "sort_by  ": "status",
                "q": "zephyr",
                "q ": "draft release",
                "q  ": "nowhere",
                # the original clients' default order with a search (issue 55)
                "q   ": {"q": "zephyr", "sort_by": "updated_at"},
                "q    ": {"q": "nowhere", "sort_by": "updated_at"},
                "q     ": {"q": "draft release", "sort_by": "updated_at"},
                # a rare word and a common one by update: the rare word's runs by key (issue 73)
                "q      ": {"q": "zephyr release", "sort_by": "updated_at"},
            },
        ),
        ("/v1/audit-events", "events", {"event_type": "run.created"}),
    ):
        case(route, "first page", lambda r=route: get(r))
        for key, value in filters.items():
            name = key.strip()  # (a key repeated with spaces: another value of one filter)
            params = value if isinstance(value, dict) else {name: value}  # (or several)
            what = " ".join(f"{k}={v}" for k, v in params.items())
            case(route, what, lambda r=route, p=params: get(r, **p))
        cursor = get(route).get("next_cursor")
        if cursor:
            case(route, "after a cursor", lambda r=route, c=cursor: get(r, cursor=c))
            middle = cursor
            for _ in range(min(size // 200, 200)):  # walk ~half of the table by cursor
                middle = get(route, cursor=middle, limit=1000).get("next_cursor") or middle
            case(route, "deep cursor", lambda r=route, c=middle: get(r, cursor=c))
        case(route, f"offset={deep}", lambda r=route: get(r, offset=deep))
        case(route, "include=counts", lambda r=route: get(r, include="counts"))
        assert get(route)[collection]
    store.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--pg", default=os.environ.get("KNEO_TEST_DATABASE_URL"))
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument(
        "--no-vacuum",
        action="store_true",
        help="PostgreSQL: ANALYZE only after the fill, as on a server with autovacuum off",
    )
    parser.add_argument(
        "--no-reconcile", action="store_true", help="skip bench/scale_reconcile.py afterwards"
    )
    args = parser.parse_args()
    os.chdir(REPO)
    sizes = [int(s) for s in args.sizes.split(",")]
    rows: list[dict[str, Any]] = []
    for size in sizes:
        if not args.no_sqlite:
            rows += measure_backend("SQLite", None, size, args.requests)
        if args.pg:
            with scratch_database(args.pg, "kneo_scale") as url:
                rows += measure_backend(
                    "PostgreSQL", url, size, args.requests, no_vacuum=args.no_vacuum
                )
    print("| backend | rows | route | request | p50 ms | p95 ms | work |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['backend']} | {r['size']:,} | `{r['route']}` | {r['what']} "
            f"| {r['p50']:.2f} | {r['p95']:.2f} | {r['work']:,} |"
        )
    print("\nwork: SQLite VM instructions, PostgreSQL shared buffers (hit + read) per request")
    over = [
        r
        for r in rows
        if r["p95"] >= 15 and "offset" not in r["what"] and "counts" not in r["what"]
    ]
    print(f"\npages over the 15 ms p95 target: {len(over)}")
    hook = REPO / "bench" / "scale_reconcile.py"
    if hook.exists() and not args.no_reconcile:
        spec = importlib.util.spec_from_file_location("scale_reconcile", hook)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        if hasattr(module, "main"):
            module.main([])


if __name__ == "__main__":
    main()
