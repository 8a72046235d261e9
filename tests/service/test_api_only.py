"""The API-only shape: ``kneo service serve --no-worker`` accepts async runs and executes
none; a separate ``kneo worker`` process (real processes, one SQLite database) runs them."""

from __future__ import annotations

import os
import subprocess
import time
from typing import Any

from svc_helpers import ROOT

from tests import http_calls
from tests.cli_zygote import KNEO

SPEC = {"version": "v1", "agent": {"name": "a", "model": {"provider": "dummy", "name": "d"}}}


def _statuses(url: str, ids: list[str]) -> list[str]:
    return [http_calls.get(f"{url}/v1/runs/{i}").json()["status"] for i in ids]


def test_api_without_worker_leaves_async_runs_to_separate_workers(live_server: Any) -> None:
    server = live_server(args=("--no-worker",))
    ids = []
    for i in range(5):
        r = http_calls.post(
            f"{server.url}/v1/runs",
            json={"input": f"in {i}", "spec": SPEC, "async_mode": True},
        )
        assert r.status_code == 202, r.text
        ids.append(r.json()["run_id"])
    time.sleep(1.5)  # three of the API's poll intervals: its worker would have claimed them
    assert set(_statuses(server.url, ids)) == {"queued"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("KNEO_")}
    env.update(server.env)
    worker = subprocess.Popen(
        [*KNEO, "worker"],
        cwd=ROOT,
        env={**env, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while set(_statuses(server.url, ids)) != {"succeeded"}:
            assert time.monotonic() < deadline, _statuses(server.url, ids)
            assert worker.poll() is None, "the worker exited"
            time.sleep(0.2)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
