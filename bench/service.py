"""Service throughput: sustained ``POST /v1/runs`` (sync, a 3-step function workflow) over
loopback with auth on, next to a bare FastAPI endpoint doing one INSERT into the same
database, measured in the same run. Reports runs/s, p50/p99 latency and the ratio
(target: the service reaches at least half the bare endpoint's throughput).

Both servers are one uvicorn process each, started fresh; the load is ``--clients``
keep-alive connections for ``--seconds`` after a warm-up. ``--rounds N`` (default 3) alternates the two
loads N times and reports the median ratio (a shared machine's load drifts between phases).
Each phase also reports the server process's CPU per request (Linux ``/proc``), which moves
much less with the load generator than throughput does, and the run reports the median of
its ratio (bare / service) next to the throughput ratio.

    python bench/service.py                                   # PostgreSQL if KNEO_TEST_DATABASE_URL
    python bench/service.py --database-url postgresql+psycopg://postgres@127.0.0.1/kneo_bench
    python bench/service.py --sqlite --seconds 5 --rounds 3
    python bench/service.py --sqlite --environment staging    # runs that name an environment
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TARGET_RATIO = 0.5
TOKEN = "bench-operator-token-0123456789"

SPEC = """\
version: v1
workflow:
  type: sequential
  name: bench-three-steps
  steps:
    - id: draft
      kind: function
      ref: examples.human_functions:draft_report
    - id: review
      kind: function
      ref: examples.human_functions:draft_report
    - id: publish
      kind: function
      ref: examples.human_functions:publish_report
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bare_app(database_url: str) -> Any:
    """The baseline: FastAPI, one sync route, one INSERT per request, same pool settings."""
    import sqlalchemy as sa
    from fastapi import FastAPI

    from kneo.store import resolve_url
    from kneo.store.dialects import dialect_for

    url = resolve_url(database_url)
    engine = dialect_for(url).create_engine(url)
    meta = sa.MetaData()
    table = sa.Table(
        "bench_bare_runs",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("input_text", sa.Text, nullable=False),
    )
    meta.create_all(engine)
    app = FastAPI()

    @app.post("/v1/runs")
    def create(body: dict[str, Any]) -> dict[str, Any]:
        with engine.begin() as conn:
            new_id = conn.execute(
                sa.insert(table).values(input_text=str(body.get("input", ""))).returning(table.c.id)
            ).scalar_one()
        return {"run_id": str(new_id), "status": "succeeded"}

    return app


def start(cmd: list[str], env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    import httpx2

    environ = {k: v for k, v in os.environ.items() if not k.startswith("KNEO_")}
    environ.update(env)
    environ["PYTHONPATH"] = str(REPO)
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=environ, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
        try:
            httpx2.post(f"http://127.0.0.1:{port}/v1/runs", json={}, timeout=1)
            return proc
        except httpx2.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU of a process so far (Linux), or ``None`` where ``/proc`` is missing."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load(
    url: str,
    body: dict[str, Any],
    headers: dict[str, str],
    clients: int,
    seconds: float,
    warmup: float,
    server_pid: int | None = None,
) -> dict[str, float]:
    """Closed-loop load: each client posts back to back; latencies after the warm-up, and
    the server's CPU per request over the same window when ``server_pid`` is given."""
    import httpx2

    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    start_at = time.perf_counter() + warmup
    stop_at = start_at + seconds
    cpu: dict[str, float | None] = {}
    if server_pid is not None:
        timer = threading.Timer(warmup, lambda: cpu.update(start=cpu_seconds(server_pid)))
        timer.start()

    def client() -> None:
        mine: list[float] = []
        bad = 0
        with httpx2.Client(timeout=60, headers=headers) as http:
            while True:
                t0 = time.perf_counter()
                if t0 >= stop_at:
                    break
                r = http.post(url, json=body)
                t1 = time.perf_counter()
                if r.status_code != 200 or r.json().get("status") != "succeeded":
                    bad += 1
                elif t0 >= start_at:
                    mine.append(t1 - t0)
        with lock:
            latencies.extend(mine)
            errors[0] += bad

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    latencies.sort()
    n = len(latencies)
    result = {
        "requests": n,
        "errors": errors[0],
        "per_second": n / seconds,
        "p50_ms": statistics.median(latencies) * 1000 if n else float("nan"),
        "p99_ms": latencies[min(n - 1, int(n * 0.99))] * 1000 if n else float("nan"),
    }
    if server_pid is not None:
        timer.join()
        end, begin = cpu_seconds(server_pid), cpu.get("start")
        if end is not None and begin is not None and n:
            result["server_cpu_ms"] = (end - begin) * 1000 / n
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("KNEO_TEST_DATABASE_URL"))
    parser.add_argument("--sqlite", action="store_true", help="Use SQLite in a temp dir")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument(
        "--rounds", type=int, default=3, help="Alternate the loads N times (median reported)"
    )
    parser.add_argument("--environment", help="Name this environment in every request")
    parser.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.serve_bare:
        import uvicorn

        uvicorn.run(
            bare_app(args.database_url),
            host="127.0.0.1",
            port=args.serve_bare,
            access_log=False,
            log_level="warning",
        )
        return 0

    tmp = Path(tempfile.mkdtemp(prefix="kneo-bench-"))
    url = (
        f"sqlite:///{tmp / 'bench.sqlite'}"
        if args.sqlite or not args.database_url
        else args.database_url
    )
    spec_path = tmp / "three_steps.yaml"
    spec_path.write_text(SPEC)

    service_port, bare_port = free_port(), free_port()
    service = start(
        [sys.executable, "-m", "kneo.cli.main", "service", "serve", "--port", str(service_port)],
        {
            "KNEO_SERV_AUTH_ENABLED": "true",
            "KNEO_SERV_API_KEYS": f"bench:{TOKEN}:operator",
            "KNEO_SERV_DATABASE_URL": url,
            "KNEO_SERV_LOG_LEVEL": "WARNING",
            "KNEO_SERV_SPEC_ROOTS": str(tmp),  # the spec lives in the temporary directory
        },
        service_port,
        tmp / "service.log",
    )
    bare = start(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--serve-bare",
            str(bare_port),
            "--database-url",
            url,
        ],
        {},
        bare_port,
        tmp / "bare.log",
    )
    rounds: list[tuple[dict[str, float], dict[str, float]]] = []
    try:
        body = {"input": "benchmark", "spec_path": str(spec_path), "target": "workflow"}
        if args.environment:
            body["environment"] = args.environment
        auth = {"Authorization": f"Bearer {TOKEN}"}
        for _ in range(max(1, args.rounds)):
            bare_result = load(
                f"http://127.0.0.1:{bare_port}/v1/runs",
                body,
                {},
                args.clients,
                args.seconds,
                args.warmup,
                bare.pid,
            )
            service_result = load(
                f"http://127.0.0.1:{service_port}/v1/runs",
                body,
                auth,
                args.clients,
                args.seconds,
                args.warmup,
                service.pid,
            )
            rounds.append((bare_result, service_result))
    finally:
        for proc in (service, bare):
            proc.terminate()
            proc.wait(timeout=15)
    backend = "postgresql" if url.startswith("postgresql") else "sqlite"
    print(f"backend={backend} clients={args.clients} seconds={args.seconds}")
    ratios = [s["per_second"] / b["per_second"] for b, s in rounds]
    for index, (bare_result, service_result) in enumerate(rounds):
        if len(rounds) > 1:
            print(f"round {index + 1}: ratio {ratios[index]:.2f}")
        for name, r in (("bare insert", bare_result), ("POST /v1/runs", service_result)):
            cpu = f"  server CPU {r['server_cpu_ms']:.2f} ms/req" if "server_cpu_ms" in r else ""
            print(
                f"{name:>14}: {r['per_second']:8.1f} req/s  p50 {r['p50_ms']:7.2f} ms  "
                f"p99 {r['p99_ms']:7.2f} ms  ({r['requests']} ok, {r['errors']} errors){cpu}"
            )
    ratio = statistics.median(ratios)
    verdict = "PASS" if ratio >= TARGET_RATIO else "BELOW TARGET"
    spread = f" (rounds {min(ratios):.2f}-{max(ratios):.2f})" if len(ratios) > 1 else ""
    print(f"ratio: {ratio:.2f}{spread} (target >= {TARGET_RATIO}) {verdict}")
    # Server CPU per request moves far less with a shared machine's load than throughput:
    # its ratio (bare / service) says where the service stands when the throughputs drift.
    cpu_ratios = [
        b["server_cpu_ms"] / s["server_cpu_ms"]
        for b, s in rounds
        if "server_cpu_ms" in b and "server_cpu_ms" in s
    ]
    cpu_ratio = statistics.median(cpu_ratios) if cpu_ratios else None
    if cpu_ratio is not None:
        print(f"server CPU per request, bare / service: {cpu_ratio:.2f}")
    bare_result, service_result = rounds[ratios.index(sorted(ratios)[(len(ratios) - 1) // 2])]
    print(
        json.dumps(
            {
                "backend": backend,
                "bare": bare_result,
                "service": service_result,
                "ratio": round(ratio, 3),
                "rounds": [round(r, 3) for r in ratios],
                "cpu_ratio": None if cpu_ratio is None else round(cpu_ratio, 3),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
