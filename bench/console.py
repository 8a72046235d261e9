"""Reviewer console: inbox and task page server time with 10,000 pending tasks, and a
decision from the form against the API's resume, measured in the same run; then the task
page of a 50-message conversation and the inbox search at 100,000 pending tasks.

    python bench/console.py [--tasks 10000] [--requests 200] [--decisions 100]
                            [--search-tasks 100000] [--tabs 5] [--pg URL]

One SQLite store under a temporary directory is filled with paused runs of the HITL examples
(approval, typed input, tool-call approval, confirmation, review, in turn), then the real
service app (auth on, the console mounted) is driven in-process. *Server time* is what the
service's own request log records for each request (``duration_ms``: from the outermost
middleware in to the response out), so the client's overhead is not in it.

* inbox: ``GET /ui/inbox`` first page (50 rows, counts per assignee), a filtered one, the
  100th page (by cursor), and ``GET /v1/human-tasks?limit=50`` for comparison;
* task page: ``GET /ui/tasks/{id}`` of random pending tasks;
* decision: ``POST /ui/tasks/{id}`` (form, CSRF, idempotency key) against
  ``POST /v1/human-tasks/{id}/resume`` (JSON), interleaved, each resuming an approval whose
  run then publishes and finishes. Targets: inbox p95 < 50 ms, task page p95 < 30 ms, form
  decision median <= the API's (ratio ~1);
* context: ``GET /ui/tasks/{id}`` of tool-call approvals paused after 24 tool calls (a
  50-message conversation before the call), as a reviewer (the page with the context) and,
  interleaved, as a key without ``runs:read`` (the same page without it: the page as it
  was before the context), and ``GET /v1/human-tasks/{id}?include=context``. Target: p95 <
  50 ms;
* search: another store with ``--search-tasks`` pending tasks (copies of a real paused run
  with distinct inputs, through the store's writes: ``tests/console/inbox_fill.py``),
  ``GET /ui/inbox?q=`` for a word of one task, a word of every task, two words (every
  task's and one in a hundred's) and newest first, ``GET /v1/human-tasks?q=``, against
  the unsearched first page in the same run, and the inbox's 5-second refresh when nothing
  changed (``If-None-Match``: ``304``), all with ``--tabs`` other inbox tabs open (each
  refreshing every 5 s, left out of the timings). Target: p95 < 50 ms, flat in N; the
  first page p95 < 30 ms at 100,000 with five tabs open. ``--pg URL``: this part on
  PostgreSQL (a fresh database, ``VACUUM ANALYZE`` after the fill as autovacuum would).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests" / "console")]  # kneo, examples, inbox_fill

from inbox_fill import clone_paused  # noqa: E402

from bench.scratch_db import scratch_database  # noqa: E402

EXAMPLES = ("hitl_approval", "hitl_input", "hitl_tool_approval", "hitl_confirmation", "hitl_review")
KEYS = {
    "admin": "bench-admin-key-0123456789",
    "reviewer": "bench-reviewer-key-0123456789",
    "narrow": "bench-narrow-key-0123456789",  # human:read and human:write, not runs:read
}
#: Request ids of the background tabs' refreshes (``X-Request-ID``), left out of the timings.
TAB = "benchtab"
#: A tool-call approval after 24 lookups: 51 messages in the transcript when it pauses.
LOOKUPS = 24
CHATTY = {
    "version": "v1",
    "agent": {
        "name": "researcher",
        "system_prompt": "You research a topic with lookups, then e-mail the team.",
        "tools": ["lookup_on_call", "send_email"],
        "approval_required": ["send_email"],
        "strategy": {"type": "react", "max_iterations": LOOKUPS + 2},
        "model": {
            "provider": "dummy",
            "script": [
                {
                    "text": "Looking that up (the last lookup said: {last_tool_result}).",
                    "tool_calls": [{"name": "lookup_on_call", "arguments": {"topic": "{input}"}}],
                }
            ]
            * LOOKUPS
            + [
                {
                    "text": "Found enough: {last_tool_result}. I will e-mail the team now.",
                    "tool_calls": [
                        {
                            "name": "send_email",
                            "arguments": {"to": "team@example.com", "subject": "{input}"},
                        }
                    ],
                },
                {"text": "Done: {last_tool_result}"},
            ],
        },
    },
    "workflow": {
        "type": "sequential",
        "name": "chatty",
        "steps": [{"id": "research", "kind": "agent", "ref": "researcher"}],
    },
    "components": {
        "tools": {
            name: {
                "description": name,
                "implementation": f"examples.hitl_functions:{name}",
                "parameters": {
                    "type": "object",
                    "properties": {p: {"type": "string"} for p in props},
                    "required": list(props),
                    "additionalProperties": False,
                },
            }
            for name, props in (("lookup_on_call", ["topic"]), ("send_email", ["to", "subject"]))
        }
    },
}


class Durations(logging.Handler):
    """``duration_ms`` of every request the service logs, by path prefix."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.samples: list[tuple[str, str, float]] = []

    def emit(self, record: logging.LogRecord) -> None:
        data = getattr(record, "kneo", None)
        if isinstance(data, dict) and str(data.get("request_id")).startswith(TAB):
            return  # a background tab's refresh: load, not a measured request
        if isinstance(data, dict) and "duration_ms" in data:
            self.samples.append((data["method"], data["path"], float(data["duration_ms"])))

    def take(self) -> list[float]:
        out = [d for _, _, d in self.samples]
        self.samples.clear()
        return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(name: str, values: list[float], cpu: list[float]) -> dict[str, Any]:
    return {
        "what": name,
        "n": len(values),
        "p50_ms": round(statistics.median(values), 2),
        "p95_ms": round(pct(values, 0.95), 2),
        "max_ms": round(max(values), 2),
        "cpu_p50_ms": round(statistics.median(cpu), 2),  # the whole process: client too
    }


def fill(manager: Any, tasks: int) -> list[dict[str, Any]]:
    started = time.perf_counter()
    paused = []
    for i in range(tasks):
        example = EXAMPLES[i % len(EXAMPLES)]
        result = manager.run_from_spec(
            input_text=f"task {i}", spec_path=str(REPO / "examples" / f"{example}.yaml")
        )
        assert result.status == "paused", result
        paused.append({"example": example, "cid": result.continuation_id, "rid": result.request_id})
    elapsed = time.perf_counter() - started
    print(f"filled {tasks} pending tasks in {elapsed:.1f} s", file=sys.stderr)
    return paused


class Bench:
    """The real service app over one store, driven in-process; server times from its
    request log (``measure``) by scenario."""

    def __init__(self, settings: Any, manager: Any) -> None:
        from starlette.testclient import TestClient

        from kneo.service import create_app
        from kneo.service.middleware import LOGGER_NAME

        self.manager = manager
        self.durations = Durations()
        logger = logging.getLogger(LOGGER_NAME)
        self.app = create_app(False, settings=settings, manager=manager, start_worker=False)
        for handler in list(logger.handlers):  # keep the bench's stderr quiet
            logger.removeHandler(handler)
        logger.addHandler(self.durations)
        self.client_class = TestClient
        self.client, self.csrf = self.signed_in(KEYS["reviewer"])
        self.api = {"Authorization": f"Bearer {KEYS['reviewer']}"}
        self.results: list[dict[str, Any]] = []

    def signed_in(self, key: str) -> tuple[Any, str]:
        """A browser-like client signed in with ``key``, and its session's CSRF token."""
        client = self.client_class(self.app)
        login = client.get("/ui/login").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', login).group(1)  # type: ignore[union-attr]
        client.post("/ui/login", data={"api_key": key, "csrf_token": token})
        page = client.get("/ui/inbox").text
        return client, re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]

    def measure(self, *named: tuple[str, Any], n: int) -> None:
        """``n`` calls of each ``(name, call)``, interleaved (one of each in turn, so a
        noisy neighbour slows them alike), after five warm-up calls each."""
        for _, call in named:
            for _ in range(5):  # warm templates and caches
                call()
        self.durations.take()
        server: dict[str, list[float]] = {name: [] for name, _ in named}
        cpu: dict[str, list[float]] = {name: [] for name, _ in named}
        for _ in range(n):
            for name, call in named:
                started = time.process_time()
                answer = call()
                cpu[name].append((time.process_time() - started) * 1000)
                assert answer.status_code in (200, 304), answer.text[:300]
                server[name] += self.durations.take()
        self.results += [summary(name, server[name], cpu[name]) for name, _ in named]


def settings_for(extra: dict[str, str] | None = None) -> Any:
    from kneo.settings import Settings

    return Settings.from_env(
        {
            "KNEO_SERV_API_KEYS": f"reviewer:{KEYS['reviewer']}:reviewer;"
            f"narrow:{KEYS['narrow']}:human:read,human:write",
            "KNEO_SERV_ADMIN_API_KEY": KEYS["admin"],
            "KNEO_SERV_CONSOLE_SECRET": "bench",
            **(extra or {}),
        }
    )


def inbox_and_decisions(bench: Bench, paused: list[dict[str, Any]], args: Any) -> float:
    """The inbox and task page at ``--tasks``; the form's decision against the API's
    (interleaved); returns the form's median over the API's."""
    from kneo.platform import TaskQuery

    client, manager, n = bench.client, bench.manager, args.requests
    bench.measure(("inbox, first page", lambda: client.get("/ui/inbox")), n=n)
    bench.measure(("inbox, kind=input", lambda: client.get("/ui/inbox?kind=input")), n=n)
    bench.measure(("inbox, assignee=mine", lambda: client.get("/ui/inbox?assignee=mine")), n=n)
    cursor = None
    for _ in range(99):
        cursor = manager.list_human_tasks(TaskQuery(limit=50, cursor=cursor))["next_cursor"]
    if cursor:
        page_100 = lambda: client.get("/ui/inbox", params={"cursor": cursor})  # noqa: E731
        bench.measure(("inbox, 100th page (cursor)", page_100), n=n)
    listed = lambda: client.get("/v1/human-tasks?limit=50", headers=bench.api)  # noqa: E731
    bench.measure(("GET /v1/human-tasks?limit=50", listed), n=n)
    sample = random.Random(7).sample(paused, min(len(paused), n))
    pick = iter(sample * 3)
    bench.measure(("task page", lambda: client.get(f"/ui/tasks/{next(pick)['cid']}")), n=n)

    approvals = [p for p in paused if p["example"] == "hitl_approval"][: args.decisions * 2]
    times: dict[str, list[float]] = {"form": [], "api": []}
    cpu: dict[str, list[float]] = {"form": [], "api": []}
    for i, task in enumerate(approvals):
        started = time.process_time()
        if i % 2 == 0:
            answer = client.post(
                f"/ui/tasks/{task['cid']}",
                data={
                    "csrf_token": bench.csrf,
                    "request_id": task["rid"],
                    "decision": "approved",
                    "idempotency_key": f"bench-{i}",
                },
                follow_redirects=False,
            )
            assert answer.status_code == 303, answer.text[:300]
            which = "form"
        else:
            answer = client.post(
                f"/v1/human-tasks/{task['cid']}/resume",
                headers={**bench.api, "Idempotency-Key": f"bench-{i}"},
                json={"request_id": task["rid"], "decision": "approved"},
            )
            assert answer.status_code == 200 and answer.json()["status"] == "succeeded"
            which = "api"
        cpu[which].append((time.process_time() - started) * 1000)
        times[which] += bench.durations.take()
    bench.results.append(summary("decision, console form (POST, 303)", times["form"], cpu["form"]))
    bench.results.append(summary("decision, API resume (POST, 200)", times["api"], cpu["api"]))
    return statistics.median(times["form"]) / statistics.median(times["api"])


def context_pages(bench: Bench, args: Any) -> None:
    """The task page of a tool-call approval after a 50-message conversation, with its
    context (a reviewer) and without it (a key without ``runs:read``), interleaved."""
    manager = bench.manager
    first = manager.run_from_spec(input_text="the quarterly numbers", spec=CHATTY)
    assert first.status == "paused", first
    state = manager.store.runs.get_run(first.run_id).state
    messages = len(state["agents"]["research"]["messages"])
    print(f"the conversation holds {messages} messages when it pauses", file=sys.stderr)
    cids = clone_paused(manager.store, first.run_id, [f"topic {i}" for i in range(200)])
    narrow, _ = bench.signed_in(KEYS["narrow"])
    picks = iter(random.Random(3).choices(cids, k=args.requests * 8))
    client = bench.client
    bench.measure(
        ("task page, 50-message conversation", lambda: client.get(f"/ui/tasks/{next(picks)}")),
        ("task page, same task without context", lambda: narrow.get(f"/ui/tasks/{next(picks)}")),
        (
            "GET /v1/human-tasks/{id}?include=context",
            lambda: client.get(f"/v1/human-tasks/{next(picks)}?include=context", headers=bench.api),
        ),
        n=args.requests,
    )


def search_pages(args: Any) -> Bench:
    """The inbox searched at ``--search-tasks`` pending tasks, against its plain first page."""
    from kneo.platform import create_platform
    from kneo.store import open_store

    settings = settings_for()
    tmp = Path(tempfile.mkdtemp(prefix="kneo-console-search-bench-"))
    with scratch_database(args.pg, "kneo_console") if args.pg else nullcontext() as url:
        store = open_store(url, settings=settings, state_dir=tmp)
        try:
            return _search_pages(
                args, settings, store, create_platform(settings=settings, store=store)
            )
        finally:
            store.close()
            shutil.rmtree(tmp, ignore_errors=True)  # a 100,000-task store is 300 MB


def _search_pages(args: Any, settings: Any, store: Any, manager: Any) -> Bench:
    template = manager.run_from_spec(
        input_text="template", spec_path=str(REPO / "examples" / "hitl_approval.yaml")
    )
    started = time.perf_counter()
    texts = [
        f"Customer {i} asks about invoice {i % 997} in batch b{i % 100}"
        for i in range(args.search_tasks)
    ]
    cids = clone_paused(store, template.run_id, texts)
    if store.dialect.name == "postgresql":  # what autovacuum (on by default) does after a fill
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    elapsed = time.perf_counter() - started
    print(f"made {len(cids)} pending tasks in {elapsed:.1f} s", file=sys.stderr)
    bench = Bench(settings, manager)
    tabs = Tabs(bench, args.tabs)
    client, one = bench.client, args.search_tasks // 2
    seen = [client.get("/ui/inbox").headers.get("etag", "")]

    def refresh() -> Any:
        """The page's own refresh: the last ETag it got (304 until the minute turns)."""
        answer = client.get("/ui/inbox", headers={"If-None-Match": seen[0]})
        seen[0] = answer.headers.get("etag", seen[0])
        return answer

    bench.measure(
        ("inbox at N, first page (no search)", lambda: client.get("/ui/inbox")),
        ("inbox at N, refresh unchanged", refresh),
        ("search, one task's word", lambda: client.get(f"/ui/inbox?q=customer+{one}")),
        ("search, every task's word", lambda: client.get("/ui/inbox?q=invoice")),
        ("search, two words (1 in 100)", lambda: client.get("/ui/inbox?q=invoice+b42")),
        ("search, newest first", lambda: client.get("/ui/inbox?q=asks&sort=newest")),
        (
            "GET /v1/human-tasks?q=&limit=50",
            lambda: client.get("/v1/human-tasks?q=b42&limit=50", headers=bench.api),
        ),
        n=args.requests,
    )
    refreshes = tabs.close()
    print(f"{args.tabs} other tabs refreshed {refreshes} times meanwhile", file=sys.stderr)
    bench.client.close()
    return bench


class Tabs:
    """``count`` other signed-in inbox tabs, each refreshing every 5 seconds as the page
    does (``If-None-Match``), on a thread until :meth:`close`. Their requests carry
    :data:`TAB` request ids, so only the load they add is in the timings."""

    def __init__(self, bench: Bench, count: int) -> None:
        self.clients = [bench.signed_in(KEYS["reviewer"])[0] for _ in range(count)]
        self.refreshes = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._refresh, daemon=True)
        if self.clients:
            self.thread.start()

    def _refresh(self) -> None:
        etags = ["" for _ in self.clients]
        while not self.done.wait(5.0 / len(self.clients)):  # the tabs' refreshes spread out
            i = self.refreshes % len(self.clients)
            headers = {"If-None-Match": etags[i], "X-Request-ID": f"{TAB}{self.refreshes:08d}"}
            answer = self.clients[i].get("/ui/inbox", headers=headers)
            assert answer.status_code in (200, 304), answer.text[:300]
            etags[i] = answer.headers.get("etag", etags[i])
            self.refreshes += 1

    def close(self) -> int:
        """Stop refreshing; how many refreshes the tabs made."""
        self.done.set()
        if self.clients:
            self.thread.join()
        return self.refreshes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--decisions", type=int, default=100)
    parser.add_argument("--search-tasks", type=int, default=100_000)
    parser.add_argument("--only", choices=("console", "search"), help="run one part only")
    parser.add_argument("--tabs", type=int, default=5, help="other inbox tabs open (search part)")
    parser.add_argument(
        "--pg", help="the search part on PostgreSQL: a server URL (a fresh database)"
    )
    args = parser.parse_args()
    os.chdir(REPO)
    results: list[dict[str, Any]] = []
    ratio = None
    if args.only != "search":
        ratio, results = console_at_tasks(args)
    if args.only != "console":
        results += search_pages(args).results
    print(
        json.dumps(
            {
                "tasks": args.tasks,
                "search_tasks": args.search_tasks,
                "machine": {"load_average": os.getloadavg(), "sum_range_1000_us": calibrate()},
                "results": results,
                "form_over_api": round(ratio, 2) if ratio is not None else None,
            },
            indent=2,
        )
    )


def console_at_tasks(args: Any) -> tuple[float, list[dict[str, Any]]]:
    """Inbox, task page and decisions at ``--tasks``, then the context pages."""
    from kneo.platform import create_platform
    from kneo.store import open_store

    settings = settings_for()
    tmp = Path(tempfile.mkdtemp(prefix="kneo-console-bench-"))
    store = open_store(None, settings=settings, state_dir=tmp)
    manager = create_platform(settings=settings, store=store)
    paused = fill(manager, args.tasks)
    bench = Bench(settings, manager)
    ratio = inbox_and_decisions(bench, paused, args)
    context_pages(bench, args)
    bench.client.close()
    store.close()
    shutil.rmtree(tmp, ignore_errors=True)  # a 100,000-task store is 300 MB
    return ratio, bench.results


def calibrate() -> float:
    """Microseconds for ``sum(range(1000))`` now: how fast the (shared) machine runs."""
    import timeit

    return round(min(timeit.repeat("sum(range(1000))", number=2000, repeat=5)) / 2000 * 1e6, 1)


if __name__ == "__main__":
    main()
