"""Event -> delivered: how long after a pause commits its ``human.requested`` reaches a
local webhook receiver, with the default poll settings; print p50/p95/max.

    python bench/notifications.py [--count 40] [--database-url URL]

Each sample pauses a run (the smoke human workflow) at a random point of the dispatcher's
poll cycle, and waits for the signed POST to arrive. The clock starts when the run's outcome
transaction has committed (``run_from_spec`` returned). Target: p95 under 1 s.
"""

from __future__ import annotations

import argparse
import json
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


def _receiver() -> tuple[ThreadingHTTPServer, dict[str, float], threading.Condition]:
    arrived: dict[str, float] = {}
    ready = threading.Condition()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with ready:
                arrived[body["run_id"]] = time.perf_counter()
                ready.notify_all()
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, arrived, ready


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=40)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
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
    p95 = latencies[max(0, round(0.95 * len(latencies)) - 1)]
    backend = "postgresql" if args.database_url else "sqlite"
    print(f"event -> delivered ({backend}, poll {poll} s, {len(latencies)} samples)")
    print(
        f"  p50 {p50 * 1000:.0f} ms   p95 {p95 * 1000:.0f} ms   max {latencies[-1] * 1000:.0f} ms"
    )
    print(f"  target p95 < 1000 ms: {'met' if p95 < 1.0 else 'MISSED'}")


if __name__ == "__main__":
    main()
