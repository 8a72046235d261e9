"""``/metrics`` after a scripted scenario run by two real ``kneo worker`` processes.

Each process reports only what it did, and every process is a scrape target: the two
workers' ports together count each run once. They are given one shared
``PROMETHEUS_MULTIPROC_DIR`` on purpose (what the docs once said beside "a scrape target per
process"): it once made every target report the sum of all, so each run counted twice. The
pending task, the queue depth and lag come from the database at scrape time. Parsed with the
Prometheus text parser; tests/operations/test_metrics_scrape_shape.py has a real Prometheus
scrape the same shape.
"""

from __future__ import annotations

import json
import signal
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from kneo.service import create_app
from kneo.settings import Settings

from .helpers import Procs, env_for, open_manager, wait_for


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition by (sample name, labels)."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(parsed: dict[Any, float], name: str, **labels: str) -> float:
    return parsed.get((name, frozenset(labels.items())), 0.0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_metrics_after_two_workers_ran_a_scenario(
    project: Path, db_url: str, procs: Procs, tmp_path: Path
) -> None:
    shared = tmp_path / "prometheus"
    shared.mkdir()
    ports = [free_port(), free_port()]
    env = env_for(
        project,
        db_url,
        PROMETHEUS_MULTIPROC_DIR=str(shared),
        KNEO_SERV_WORKER_POLL_SECONDS="0.05",
        KNEO_SERV_METRICS_HOST="127.0.0.1",
    )
    workers = [procs.worker(project, {**env, "KNEO_SERV_METRICS_PORT": str(p)}) for p in ports]
    manager = open_manager(project, db_url)
    settings = Settings.from_env(
        {
            "KNEO_SERV_DATABASE_URL": db_url,
            "PROMETHEUS_MULTIPROC_DIR": str(shared),
            "KNEO_SERV_REQUEST_LOGS": "false",
        }
    )
    app = create_app(False, settings=settings, manager=manager, start_worker=False)
    try:
        with TestClient(app) as client:  # this process runs none of the runs
            api_before = samples(client.get("/metrics").text)
        runs = [
            manager.start_run_from_spec(input_text=f"m{i}", spec_path=project / "three.yaml")
            for i in range(2)
        ]
        wait_for(
            lambda: all(manager.store.runs.get_run(r.run_id).status == "succeeded" for r in runs),
            90,
            "both queued runs to succeed",
        )
        # each worker's own port: unauthenticated, and only what that worker did
        views = [
            samples(wait_for(lambda p=p: _get(f"http://127.0.0.1:{p}/metrics"), 30, "a port"))
            for p in ports
        ]
        done = [value(v, "kneo_runs_total", project="default", status="succeeded") for v in views]
        assert sum(done) == 2, done  # each run once: not once per process
        steps = [
            value(v, "kneo_steps_total", project="default", kind="function", status="completed")
            for v in views
        ]
        assert steps == [3 * n for n in done]
        assert (
            sum(value(v, "kneo_run_duration_seconds_count", project="default") for v in views) == 2
        )
        # the same port answers the worker's probes (it serves no API)
        ready = json.loads(_get(f"http://127.0.0.1:{ports[0]}/readyz") or "{}")
        assert ready == {"status": "ok", "checks": {"loop": "ok", "database": "ok"}}
        for proc in workers:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
        paused = manager.run_from_spec(input_text="ask", spec_path=project / "human.yaml")
        assert paused.status == "paused"
        queued = manager.start_run_from_spec(input_text="later", spec_path=project / "three.yaml")
        assert manager.store.runs.get_run(queued.run_id).status == "queued"

        with TestClient(app) as client:
            response = client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        parsed = samples(response.text)
    finally:
        manager.store.close()

    # the API process reports its own counts: the workers' runs are not in them
    for name, labels in (
        ("kneo_runs_total", {"project": "default", "status": "succeeded"}),
        ("kneo_run_duration_seconds_count", {"project": "default"}),
    ):
        assert value(parsed, name, **labels) == value(api_before, name, **labels)
    pending_here = {"project": "default", "kind": "approval", "environment": "dev"}
    assert value(parsed, "kneo_human_tasks_pending", **pending_here) == 1
    pending = sum(v for (name, _), v in parsed.items() if name == "kneo_human_tasks_pending")
    assert pending == 1
    assert value(parsed, "kneo_queue_depth", project="default") == 1
    assert 0 <= value(parsed, "kneo_queue_lag_seconds", project="default") < 60


def _get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())
    except OSError:
        return None


def test_http_requests_are_counted_by_route_template(project: Path, db_url: str) -> None:
    """One process (no shared directory): requests are counted under their route template,
    never the raw path, so an id in a URL cannot grow the series without bound."""
    manager = open_manager(project, db_url)
    settings = Settings.from_env(
        {"KNEO_SERV_DATABASE_URL": db_url, "KNEO_SERV_REQUEST_LOGS": "false"}
    )
    app = create_app(False, settings=settings, manager=manager, start_worker=False)
    run_route = "/v1/runs/{run_id}"
    with TestClient(app) as client:
        before = samples(client.get("/metrics").text)
        for run_id in ("run_a", "run_b", "run_c"):
            assert client.get(f"/v1/runs/{run_id}").status_code == 404
        assert client.get("/no/such/route").status_code == 404
        after = samples(client.get("/metrics").text)
    manager.store.close()

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("kneo_http_requests_total", route=run_route, status="404") == 3
    assert delta("kneo_http_requests_total", route="unmatched", status="404") == 1
    assert delta("kneo_http_request_duration_seconds_count", route=run_route) == 3
    assert delta("kneo_http_requests_total", route="/metrics", status="200") == 1
    routes = {dict(labels).get("route") for (_, labels) in after}
    assert not {r for r in routes if r and ("run_a" in r or r == "/no/such/route")}


def test_the_metrics_port_answers_the_probes_of_a_process_without_an_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``/livez``: the role's loop runs; ``/readyz``: and the database answers; 503 naming
    the failing check otherwise; every other path is the exposition."""
    from kneo.errors import DatabaseUnavailable
    from kneo.metrics import serve_port
    from kneo.store import open_store

    store = open_store(f"sqlite:///{tmp_path / 'probe.sqlite'}")
    port = free_port()
    settings = Settings.from_env(
        {"KNEO_SERV_METRICS_PORT": str(port), "KNEO_SERV_METRICS_HOST": "127.0.0.1"}
    )
    alive = [True]
    server = serve_port(store, settings, alive=lambda: alive[0])
    base = f"http://127.0.0.1:{port}"

    def probe(path: str) -> tuple[int, dict[str, object]]:
        try:
            with urllib.request.urlopen(base + path, timeout=5) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    try:
        assert probe("/livez") == (200, {"status": "ok", "checks": {"loop": "ok"}})
        assert probe("/readyz")[0] == 200
        assert "kneo_" in (_get(base + "/metrics") or "")
        alive[0] = False  # the worker's threads died
        assert probe("/livez") == (503, {"status": "not_ready", "checks": {"loop": "stopped"}})
        assert probe("/readyz")[1]["checks"]["loop"] == "stopped"  # type: ignore[index]
        alive[0] = True

        def down() -> None:
            raise DatabaseUnavailable("the database is away")

        monkeypatch.setattr(store, "ping", down)
        status, body = probe("/readyz")
        assert status == 503 and body["checks"] == {"loop": "ok", "database": "DatabaseUnavailable"}
        assert probe("/livez")[0] == 200  # alive all the same: no restart for a database outage
    finally:
        server.shutdown()
        store.close()


def test_steps_are_counted_by_their_kind_however_they_end(tmp_path: Path) -> None:
    """A step that completes, one continued past and one that failed the run are counted
    under their own kind: the step's end event names it (the observer keeps no unit per step
    unless it traces)."""
    from kneo import metrics
    from kneo.platform import create_platform
    from kneo.spec.project import ProjectContext

    (tmp_path / "kindsteps.py").write_text(
        "def ok(text):\n    return text\n\ndef boom(text):\n    raise ValueError('no')\n"
    )
    steps = [
        {"id": "a", "kind": "function", "ref": "kindsteps:ok"},
        {"id": "b", "kind": "function", "ref": "kindsteps:boom", "on_error": "continue"},
        {"id": "c", "kind": "function", "ref": "kindsteps:boom"},
    ]
    spec = tmp_path / "kinds.yaml"
    spec.write_text(json.dumps({"version": "v1", "workflow": {"name": "kinds", "steps": steps}}))
    metrics.enable()
    settings = Settings.from_env({"KNEO_SERV_DATABASE_URL": f"sqlite:///{tmp_path / 'k.db'}"})
    registry = metrics.exposition_registry(None, settings)
    before = samples(metrics.render(registry)[0].decode())
    manager = create_platform(settings, ProjectContext.discover(cwd=tmp_path, settings=settings))
    try:
        assert manager.run_from_spec(input_text="x", spec_path=spec).status == "failed"
    finally:
        manager.close()
    after = samples(metrics.render(registry)[0].decode())
    for status in ("completed", "continued", "failed"):
        counted = value(
            after, "kneo_steps_total", project="default", kind="function", status=status
        )
        assert (
            counted
            - value(before, "kneo_steps_total", project="default", kind="function", status=status)
            == 1
        )
    assert not value(after, "kneo_steps_total", project="default", kind="step", status="failed")
