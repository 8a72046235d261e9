"""Event -> delivered: how long after a pause commits its ``human.requested`` reaches a
local webhook receiver, with the default poll settings; print p50/p95/max.

    python bench/notifications.py [--count 40] [--database-url URL]
    python bench/notifications.py --rate 100 [--seconds 10] [--database-url URL]

Each sample pauses a run (the smoke human workflow) at a random point of the dispatcher's
poll cycle, and waits for the signed POST to arrive. The clock starts when the run's outcome
transaction has committed (``run_from_spec`` returned). Target: p95 under 1 s.

``--rate N``: pause N runs a second for ``--seconds`` (``--producers`` processes, as API
replicas or workers would, on schedule; the dispatcher runs in this one)
with two receivers: ``team`` answers each POST after 100 ms, ``down`` never answers within
the timeout (``KNEO_SERV_NOTIFICATIONS_TIMEOUT_SECONDS``, 10 s by default). Times each
pause to its arrival at ``team``; deliveries that have not arrived ``--grace`` seconds after
the last pause count as missed (and as slower than any p95 they fall in). Target: ``team``'s
p95 under 1 s, whatever ``down`` does. ``--direct``: the producers write the events a pause
writes (``human.requested`` outbox rows) instead of pausing runs, when a loaded machine
cannot pause that many runs a second.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kneo.platform import create_platform  # noqa: E402
from kneo.platform.notifications import start_dispatcher  # noqa: E402
from kneo.settings import Settings  # noqa: E402
from kneo.spec.project import ProjectContext  # noqa: E402

SMOKE = str(REPO / "examples" / "smoke_human_workflow.yaml")


def _receiver(
    delay: float = 0.0,
) -> tuple[ThreadingHTTPServer, dict[str, float], threading.Condition]:
    """A local receiver answering each POST after ``delay`` seconds; records arrivals."""
    arrived: dict[str, float] = {}
    ready = threading.Condition()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a real receiver behind a proxy

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with ready:
                arrived.setdefault(body["run_id"], time.perf_counter())
                ready.notify_all()
            time.sleep(delay)
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        request_queue_size = 128  # a dispatcher connects many at once
        daemon_threads = True

    server = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, arrived, ready


def _p95(values: list[float]) -> float:
    return values[max(0, round(0.95 * len(values)) - 1)]


def produce(
    url: str, tmp: str, first: int, args: Any, total: int, start: float, results: Any
) -> None:
    """A producer process (as the API or a worker would be): pauses its share of the runs
    on schedule, and reports each run's commit time (``perf_counter`` is system-wide)."""
    settings = Settings.from_env({"KNEO_SERV_DATABASE_URL": url})
    manager = create_platform(settings, ProjectContext.discover(cwd=Path(tmp), settings=settings))
    for i in range(first, total, args.producers):
        lag = start + i / args.rate - time.perf_counter()
        if lag > 0:
            time.sleep(lag)
        if args.direct:  # the outbox row a pause writes, without the run
            run_id = f"bench-{i}"
            manager.store.notifications.add_notification_event(
                f"evt_bench_{i}", "human.requested", run_id=run_id, payload={"assignee": "ops"}
            )
        else:
            run_id = manager.run_from_spec(input_text="bench", spec_path=SMOKE).run_id
        results.put((run_id, time.perf_counter()))
    manager.store.close()


def at_rate(args: argparse.Namespace) -> None:
    """``--rate``: pauses on schedule, a 100 ms receiver beside one that times out."""
    team, arrived, _ = _receiver(0.1)
    down_timeout = Settings.from_env({}).notifications.timeout_seconds
    down, _, _ = _receiver(down_timeout * 2)
    hooks = [
        {"name": "team", "url": f"http://127.0.0.1:{team.server_address[1]}/hook"},
        {"name": "down", "url": f"http://127.0.0.1:{down.server_address[1]}/hook"},
    ]
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            "KNEO_SERV_DATABASE_URL": args.database_url or f"sqlite:///{tmp}/bench.sqlite",
            "KNEO_SERV_NOTIFICATIONS_RECEIVERS": json.dumps(hooks),
        }
        settings = Settings.from_env(env)
        manager = create_platform(
            settings, ProjectContext.discover(cwd=Path(tmp), settings=settings)
        )
        manager.run_from_spec(input_text="warm up", spec_path=SMOKE)
        dispatcher = start_dispatcher(manager, settings)
        assert dispatcher is not None
        committed: dict[str, float] = {}
        total = int(args.rate * args.seconds)
        ctx = multiprocessing.get_context("spawn")
        results: Any = ctx.Queue()
        start = time.perf_counter() + 3  # once the producers have started
        producers = [
            ctx.Process(
                target=produce,
                args=(env["KNEO_SERV_DATABASE_URL"], tmp, j, args, total, start, results),
            )
            for j in range(args.producers)
        ]
        try:
            for process in producers:
                process.start()
            for _ in range(total):
                run_id, at = results.get(timeout=120)
                committed[run_id] = at
            for process in producers:
                process.join()
            produced = time.perf_counter() - start
            deadline = time.perf_counter() + args.grace
            while time.perf_counter() < deadline and len(arrived) < total + 1:
                time.sleep(0.1)
        finally:
            dispatcher.stop(timeout=1)
            manager.store.close()
            team.shutdown()
            down.shutdown()
    latencies = sorted(arrived[r] - c for r, c in committed.items() if r in arrived)
    missed = total - len(latencies)
    ranked = latencies + [float("inf")] * missed
    backend = "postgresql" if args.database_url else "sqlite"
    noun = "events" if args.direct else "pauses"
    print(
        f"event -> delivered at {args.rate:g} {noun}/s for {args.seconds:g} s ({backend}): "
        f"{total} {noun} in {produced:.1f} s ({total / produced:.0f}/s), a 100 ms receiver "
        f"beside one that times out ({down_timeout:g} s)"
    )
    if latencies:
        print(
            f"  p50 {statistics.median(ranked) * 1000:.0f} ms   p95 {_p95(ranked) * 1000:.0f} ms"
            f"   max delivered {latencies[-1] * 1000:.0f} ms   missed {missed} of {total}"
        )
    print(f"  target p95 < 1000 ms: {'met' if _p95(ranked) < 1.0 else 'MISSED'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=40)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--rate", type=float, default=0, help="pauses a second (0: one by one)")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument(
        "--direct", action="store_true", help="write the outbox events, not pause runs"
    )
    parser.add_argument("--producers", type=int, default=2, help="processes pausing runs")
    parser.add_argument("--grace", type=float, default=15, help="wait after the last pause")
    args = parser.parse_args()
    if args.rate:
        at_rate(args)
        return
    server, arrived, ready = _receiver()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            "KNEO_SERV_DATABASE_URL": args.database_url or f"sqlite:///{tmp}/bench.sqlite",
            "BENCH_SECRET": "bench-secret",
            "KNEO_SERV_NOTIFICATIONS_RECEIVERS": json.dumps(
                [{"name": "bench", "url": url, "secret_env": "BENCH_SECRET"}]
            ),
        }
        settings = Settings.from_env(env)
        manager = create_platform(
            settings, ProjectContext.discover(cwd=Path(tmp), settings=settings)
        )
        dispatcher = start_dispatcher(manager, settings)
        assert dispatcher is not None
        poll = settings.notifications.poll_seconds
        latencies = []
        rng = random.Random(7)
        try:
            manager.run_from_spec(input_text="warm up", spec_path=SMOKE)
            time.sleep(2 * poll)
            for _ in range(args.count):
                time.sleep(rng.uniform(0, poll))  # land anywhere in the poll cycle
                run = manager.run_from_spec(input_text="bench", spec_path=SMOKE)
                committed = time.perf_counter()
                with ready:
                    if not ready.wait_for(lambda rid=run.run_id: rid in arrived, timeout=30):
                        raise SystemExit(f"run {run.run_id}: nothing delivered in 30 s")
                latencies.append(arrived[run.run_id] - committed)
        finally:
            dispatcher.stop()
            manager.store.close()
            server.shutdown()
    latencies.sort()
    p50 = statistics.median(latencies)
    p95 = _p95(latencies)
    backend = "postgresql" if args.database_url else "sqlite"
    print(f"event -> delivered ({backend}, poll {poll} s, {len(latencies)} samples)")
    print(
        f"  p50 {p50 * 1000:.0f} ms   p95 {p95 * 1000:.0f} ms   max {latencies[-1] * 1000:.0f} ms"
    )
    print(f"  target p95 < 1000 ms: {'met' if p95 < 1.0 else 'MISSED'}")


if __name__ == "__main__":
    main()
