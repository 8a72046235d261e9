"""Reviewer console: inbox and task page server time with 10,000 pending tasks, and a
decision from the form against the API's resume, measured in the same run.

    python bench/console.py [--tasks 10000] [--requests 200] [--decisions 100]

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
  decision median <= the API's (ratio ~1).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = ("hitl_approval", "hitl_input", "hitl_tool_approval", "hitl_confirmation", "hitl_review")
KEYS = {"admin": "bench-admin-key-0123456789", "reviewer": "bench-reviewer-key-0123456789"}


class Durations(logging.Handler):
    """``duration_ms`` of every request the service logs, by path prefix."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.samples: list[tuple[str, str, float]] = []

    def emit(self, record: logging.LogRecord) -> None:
        data = getattr(record, "kneo", None)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--decisions", type=int, default=100)
    args = parser.parse_args()
    os.chdir(REPO)
    sys.path.insert(0, str(REPO))

    from starlette.testclient import TestClient

    from kneo.platform import create_platform
    from kneo.service import create_app
    from kneo.service.middleware import LOGGER_NAME
    from kneo.settings import Settings
    from kneo.store import open_store

    tmp = Path(tempfile.mkdtemp(prefix="kneo-console-bench-"))
    settings = Settings.from_env(
        {
            "KNEO_SERV_API_KEYS": f"reviewer:{KEYS['reviewer']}:reviewer",
            "KNEO_SERV_ADMIN_API_KEY": KEYS["admin"],
            "KNEO_SERV_CONSOLE_SECRET": "bench",
        }
    )
    store = open_store(None, settings=settings, state_dir=tmp)
    manager = create_platform(settings=settings, store=store)
    paused = fill(manager, args.tasks)

    durations = Durations()
    logger = logging.getLogger(LOGGER_NAME)
    app = create_app(False, settings=settings, manager=manager, start_worker=False)
    for handler in list(logger.handlers):  # keep the bench's stderr quiet
        logger.removeHandler(handler)
    logger.addHandler(durations)
    client = TestClient(app)
    login = client.get("/ui/login").text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', login).group(1)  # type: ignore[union-attr]
    client.post("/ui/login", data={"api_key": KEYS["reviewer"], "csrf_token": csrf})
    page = client.get("/ui/inbox").text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    api = {"Authorization": f"Bearer {KEYS['reviewer']}"}
    results = []

    def measure(name: str, call: Any, n: int) -> None:
        for _ in range(5):  # warm templates and caches
            call()
        durations.take()
        cpu = []
        for _ in range(n):
            started = time.process_time()
            answer = call()
            cpu.append((time.process_time() - started) * 1000)
            assert answer.status_code == 200, answer.text[:300]
        results.append(summary(name, durations.take(), cpu))

    measure("inbox, first page", lambda: client.get("/ui/inbox"), args.requests)
    measure("inbox, kind=input", lambda: client.get("/ui/inbox?kind=input"), args.requests)
    measure("inbox, assignee=mine", lambda: client.get("/ui/inbox?assignee=mine"), args.requests)
    cursor = None
    for _ in range(99):
        listed = manager.list_human_tasks(limit=50, cursor=cursor)
        cursor = listed["next_cursor"]
    if cursor:
        measure(
            "inbox, 100th page (cursor)",
            lambda: client.get("/ui/inbox", params={"cursor": cursor}),
            args.requests,
        )
    measure(
        "GET /v1/human-tasks?limit=50",
        lambda: client.get("/v1/human-tasks?limit=50", headers=api),
        args.requests,
    )
    sample = random.Random(7).sample(paused, min(len(paused), args.requests))
    pick = iter(sample * 2)
    measure("task page", lambda: client.get(f"/ui/tasks/{next(pick)['cid']}"), args.requests)

    approvals = [p for p in paused if p["example"] == "hitl_approval"][: args.decisions * 2]
    form_times: list[float] = []
    api_times: list[float] = []
    form_cpu: list[float] = []
    api_cpu: list[float] = []
    for i, task in enumerate(approvals):
        started = time.process_time()
        if i % 2 == 0:
            answer = client.post(
                f"/ui/tasks/{task['cid']}",
                data={
                    "csrf_token": csrf,
                    "request_id": task["rid"],
                    "decision": "approved",
                    "idempotency_key": f"bench-{i}",
                },
                follow_redirects=False,
            )
            assert answer.status_code == 303, answer.text[:300]
            form_cpu.append((time.process_time() - started) * 1000)
            form_times += durations.take()
        else:
            answer = client.post(
                f"/v1/human-tasks/{task['cid']}/resume",
                headers={**api, "Idempotency-Key": f"bench-{i}"},
                json={"request_id": task["rid"], "decision": "approved"},
            )
            assert answer.status_code == 200 and answer.json()["status"] == "succeeded"
            api_cpu.append((time.process_time() - started) * 1000)
            api_times += durations.take()
    results.append(summary("decision, console form (POST, 303)", form_times, form_cpu))
    results.append(summary("decision, API resume (POST, 200)", api_times, api_cpu))
    ratio = statistics.median(form_times) / statistics.median(api_times)
    client.close()
    store.close()
    print(
        json.dumps(
            {
                "tasks": args.tasks,
                "machine": {"load_average": os.getloadavg(), "sum_range_1000_us": calibrate()},
                "results": results,
                "form_over_api": round(ratio, 2),
            },
            indent=2,
        )
    )


def calibrate() -> float:
    """Microseconds for ``sum(range(1000))`` now: how fast the (shared) machine runs."""
    import timeit

    return round(min(timeit.repeat("sum(range(1000))", number=2000, repeat=5)) / 2000 * 1e6, 1)


if __name__ == "__main__":
    main()
