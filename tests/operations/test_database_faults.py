"""PostgreSQL faults under load (issue rows 3 and 4): 503 with ``Retry-After``, never a 500;
no accepted run lost or stranded; a bounded SIGTERM.

The database is reached through :class:`FaultProxy`, a TCP proxy in this file that can drop
every connection at once and refuse new ones for a while; row 4's fault is the server
terminating every backend of the database (``pg_terminate_backend``). Sizes are kept small
for CI (``KNEO_OPS_FAULT_SECONDS``: seconds of load per scenario, default 8).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
import sqlalchemy as sa

from .helpers import env_for, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "service"))
from svc_helpers import LiveServer

LOAD_SECONDS = float(os.environ.get("KNEO_OPS_FAULT_SECONDS", "8"))


class FaultProxy:
    """``127.0.0.1:<port>`` -> ``upstream``, byte for byte, with faults on demand.

    :meth:`drop` closes every proxied connection at once (both ends see it go);
    :meth:`refuse` also stops listening, so connects are refused, until :meth:`heal`
    listens on the same port again. Threads, no asyncio: one accepting (it alone opens and
    closes the listening socket), two per connection.
    """

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.faults = 0
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._closed = False
        self._refusing = threading.Event()
        self._listening = threading.Event()
        listener = self._listen_outside_ephemeral()
        self.port = listener.getsockname()[1]
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        self._listening.wait(5)

    @classmethod
    def _listen_outside_ephemeral(cls) -> socket.socket:
        """A port the kernel never hands out as a connection's source port, so it is still
        free when :meth:`heal` listens on it again."""
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
        for _ in range(200):
            try:
                return cls._listen(random.randrange(10_000, low))
            except OSError:
                continue
        raise RuntimeError("no free port below the ephemeral range")

    @staticmethod
    def _listen(port: int) -> socket.socket:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(128)
        sock.settimeout(0.05)
        return sock

    def _accept(self, listener: socket.socket | None) -> None:
        while not self._closed:
            if self._refusing.is_set():
                if listener is not None:
                    listener.close()
                    listener = None
                    self._listening.clear()
                time.sleep(0.02)
                continue
            if listener is None:
                try:
                    listener = self._listen(self.port)
                except OSError:
                    time.sleep(0.05)
                    continue
            self._listening.set()
            try:
                client, _ = listener.accept()
            except OSError:  # the timeout: look at the flags again
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            for sock in (client, upstream):
                sock.settimeout(None)
                # no Nagle: a pipeline's small writes would each wait out the peer's delayed
                # ACK (~40 ms a round trip), which the proxy alone added
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._pairs.append((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()
        if listener is not None:
            listener.close()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def drop(self) -> None:
        """Cut every open connection (the server and the client each see theirs end)."""
        self.faults += 1
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for sock in pair:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def refuse(self) -> None:
        """Refuse connections (and cut the open ones) until :meth:`heal`."""
        self._refusing.set()
        deadline = time.monotonic() + 5
        while self._listening.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)
        self.drop()

    def heal(self) -> None:
        self._refusing.clear()
        assert self._listening.wait(10), "the proxy did not listen again"

    def close(self) -> None:
        self._closed = True
        self.drop()


@pytest.fixture
def database(pg_database: Callable[[], str]) -> Iterator[tuple[str, str, FaultProxy]]:
    """(direct URL, URL through the proxy, proxy) for a fresh PostgreSQL database."""
    direct = sa.make_url(pg_database())
    proxy = FaultProxy((direct.host or "127.0.0.1", direct.port or 5432))
    via = direct.set(host="127.0.0.1", port=proxy.port)
    yield (
        direct.render_as_string(hide_password=False),
        via.render_as_string(hide_password=False),
        proxy,
    )
    proxy.close()


# --------------------------------------------------------------------------- every route


ADMIN = "admin-token-for-faults"
SMOKE = "examples/smoke_human_workflow.yaml"
#: Routes that answer without the database, and what they answer.
NO_DATABASE = {
    ("GET", "/livez"): 200,
    ("GET", "/healthz"): 200,
    ("GET", "/readyz"): 503,  # not_ready: its checks name the stores
    ("GET", "/v1/livez"): 200,
    ("GET", "/v1/healthz"): 200,
    ("GET", "/v1/readyz"): 503,
    ("GET", "/v1/skills"): 200,  # the project config's skills: read from the file, not the store
}  # the webhook too needs the database now: it queues the request there for the leader
BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/v1/projects"): {"name": "team-x"},
    ("PUT", "/v1/projects/{project}"): {"definition": None},
    ("POST", "/v1/runs"): {"input": "x", "spec_path": SMOKE},
    ("POST", "/v1/specs/run"): {"input": "x", "spec_path": SMOKE},
    ("POST", "/v1/specs/validate"): {"spec_path": SMOKE},
    ("POST", "/v1/specs/compile"): {"spec_path": SMOKE},
    ("POST", "/v1/specs/explain"): {"spec_path": SMOKE},
    ("POST", "/v1/specs/graph"): {"spec_path": SMOKE},
    ("POST", "/v1/policies/environment/{environment}/preview"): {},
    ("POST", "/v1/specs/policy-report"): {"spec_path": SMOKE},
    ("POST", "/v1/human-tasks/{continuation_id}/resume"): {
        "request_id": "req_x",
        "decision": "approved",
    },
    ("POST", "/v1/human-tasks/{continuation_id}/decisions"): {
        "decisions": [{"request_id": "req_x", "decision": "approved"}]
    },
    ("PUT", "/v1/policies/environment/{environment}"): {},
    ("POST", "/v1/runs/{run_id}/continue"): {},
    ("POST", "/v1/notifications/retry"): {"status": "dead"},
    ("POST", "/v1/registry/bundles/{bundle}/{environment}/rollback"): {"to": 1},
    ("POST", "/v1/registry/blocked-digests"): {"digest": "sha256:" + "1" * 64, "reason": "x"},
    ("POST", "/v1/rollouts/{rollout_id}/abort"): {"reason": "x"},
}
#: query parameters a route requires (without them it is a 422 before the database)
QUERIES = {("GET", "/v1/registry/bundles/{bundle}/{environment}/diff"): "?from=1&to=2"}
PARAMS = {
    "session_id": "sess_x",
    "run_id": "run_x",
    "continuation_id": "cont_x",
    "environment": "dev",
    "bundle": "b",
    "request_id": "1",
    "event_id": "1",
    "digest": "sha256:" + "1" * 64,
    "project": "team-x",
    "name": "tick",  # a schedule's or a trigger's
    "rollout_id": "ro_x",
}


def test_row3_every_route_family_answers_503_with_retry_after(
    database: tuple[str, str, FaultProxy], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Row 3: with PostgreSQL unreachable, routes answered 500 (the raw transaction opened
    its connection outside the error mapping). Every route that needs the database must
    answer ``503 database_unavailable`` with ``Retry-After``, and recover with it."""
    import hashlib
    import hmac

    from starlette.testclient import TestClient

    from kneo.bundle.keys import Keyring
    from kneo.controller.config import ControllerConfig
    from kneo.controller.controller import Controller
    from kneo.controller.source import GitSource
    from kneo.platform import create_platform
    from kneo.service import create_app
    from kneo.service.auth import route_scopes
    from kneo.settings import Settings
    from kneo.store import open_store

    _direct, via, proxy = database
    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    settings = Settings.from_env(
        {"KNEO_SERV_ADMIN_API_KEY": ADMIN, "HOOK": "s", "KNEO_SERV_PROFILES_PATH": str(tmp_path)}
    )
    store = open_store(via, settings=settings)
    manager = create_platform(settings=settings, store=store)
    controller = Controller(
        store,
        GitSource(str(tmp_path)),
        Keyring(),
        config=ControllerConfig(webhook_secret_env="HOOK"),
    )
    app = create_app(
        False, settings=settings, manager=manager, start_worker=False, controller=controller
    )
    routes = sorted(
        (method, path)
        for method, path, _scope in route_scopes(app)
        if path.startswith("/v1/") or path in ("/livez", "/healthz", "/readyz")
    )
    auth = {"Authorization": f"Bearer {ADMIN}"}
    answers: dict[tuple[str, str], tuple[int, str | None, str | None]] = {}
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/v1/runs", headers=auth).status_code == 200  # healthy first
        proxy.refuse()
        try:
            for method, path in routes:
                url = path.format(**PARAMS) + QUERIES.get((method, path), "")
                headers = dict(auth)
                body = BODIES.get((method, path))
                content = json.dumps(body).encode() if body is not None else b""
                if path.endswith("/webhook"):
                    digest = hmac.new(b"s", content, hashlib.sha256).hexdigest()
                    headers["X-Hub-Signature-256"] = f"sha256={digest}"
                r = client.request(
                    method,
                    url,
                    headers={**headers, "content-type": "application/json"},
                    content=content,
                )
                code = r.json().get("error") if r.status_code >= 400 else None
                answers[(method, path)] = (r.status_code, code, r.headers.get("retry-after"))
        finally:
            proxy.heal()
        recovered = wait_for(
            lambda: client.get("/v1/runs", headers=auth).status_code == 200, 30, "recovery"
        )
    store.close()
    assert recovered
    assert len(answers) >= 30  # every route family of the API, not a sample
    wrong = {
        key: answer
        for key, answer in answers.items()
        if (
            answer[0] != NO_DATABASE[key]
            if key in NO_DATABASE
            else answer[:2] != (503, "database_unavailable")
        )
        or (answer[0] == 503 and not (answer[2] or "").isdigit())
    }
    assert not wrong, wrong
    assert answers[("GET", "/readyz")][2] is not None  # every 503 says when to come back


# --------------------------------------------------------------------------- under load


SPEC = {
    "version": "v1",
    "workflow": {
        "type": "sequential",
        "name": "faulty",
        "steps": [{"id": s, "kind": "function", "ref": f"opsteps:{s}"} for s in ("s1", "s2", "s3")],
    },
}


class Load:
    """Clients posting runs (sync and async alternately) until stopped; every answer kept."""

    def __init__(self, url: str, clients: int = 4) -> None:
        self.url = url
        self.answers: list[tuple[int, dict[str, Any], str | None]] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._post, args=(i,), daemon=True) for i in range(clients)
        ]

    def start(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def _post(self, index: int) -> None:
        n = 0
        with httpx2.Client(timeout=30) as client:
            while not self._stop.is_set():
                n += 1
                body = {"input": f"c{index}n{n} go", "spec": SPEC, "async_mode": n % 2 == 0}
                try:
                    r = client.post(f"{self.url}/v1/runs", json=body)
                except httpx2.TransportError:
                    continue  # the server itself stays up; counted as no answer
                with self._lock:
                    self.answers.append((r.status_code, r.json(), r.headers.get("retry-after")))
                if r.status_code == 503:
                    time.sleep(0.2)


def _terminate_backends(direct: str) -> Callable[[], None]:
    engine = sa.create_engine(direct, isolation_level="AUTOCOMMIT")
    name = sa.make_url(direct).database

    def terminate() -> None:
        with engine.connect() as conn:
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :db AND pid <> pg_backend_pid()"
                ),
                {"db": name},
            )

    return terminate


def _runs(direct: str) -> dict[str, tuple[str, Any]]:
    engine = sa.create_engine(direct)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT run_id, status, output_text FROM runs")).all()
    finally:
        engine.dispose()
    return {row[0]: (row[1], row[2]) for row in rows}


def _queue(direct: str) -> list[tuple[str, str, int]]:
    engine = sa.create_engine(direct)
    try:
        with engine.connect() as conn:
            return [
                (r[0], r[1], r[2])
                for r in conn.execute(sa.text("SELECT run_id, status, attempts FROM queue"))
            ]
    finally:
        engine.dispose()


@pytest.mark.parametrize("fault", ["proxy", "terminate"])
def test_rows3_4_faults_under_load_lose_nothing_and_sigterm_is_bounded(
    fault: str, database: tuple[str, str, FaultProxy], project: Path
) -> None:
    """Row 3: ``POST /v1/runs`` under load with PostgreSQL cut off answered 500 (524 of 545
    failures). Row 4: with every backend terminated every few seconds, async runs answered
    202 then ended ``failed: database_unavailable`` (queue record completed), sync runs cut
    off sat ``running`` with no owner, and SIGTERM was ignored for minutes.

    Now every failure is ``503 database_unavailable`` with ``Retry-After``, every accepted
    run (202, 200, or a 503 naming the run it created) succeeds, no run is left queued or
    running, no queue record completed before its run, and SIGTERM exits within 30 s."""
    direct, via, proxy = database
    env = env_for(
        project,
        via,
        KNEO_SERV_WORKER_LEASE_SECONDS="2",  # the run lease has a 5 s floor
        KNEO_SERV_WORKER_POLL_SECONDS="0.1",
        KNEO_SERV_PROFILES_PATH=str(project / "profiles.json"),
        KNEO_SERV_REQUEST_LOGS="false",
    )
    server = LiveServer(env, project, project / "server.log").start()
    try:
        _load_with_faults(server, fault, direct, proxy)
    finally:
        server.stop()  # a no-op once the test's own SIGTERM ended it


def _load_with_faults(server: LiveServer, fault: str, direct: str, proxy: FaultProxy) -> None:
    terminate = _terminate_backends(direct)
    load = Load(server.url).start()
    faults = 0
    try:
        deadline = time.monotonic() + LOAD_SECONDS
        step = 0
        while time.monotonic() < deadline:
            time.sleep(1.0)
            step += 1
            if fault == "terminate":
                terminate()
                faults += 1
            elif step % 4 == 2:  # refused for 2 s
                proxy.refuse()
                time.sleep(2.0)
                proxy.heal()
            else:
                proxy.drop()
        faults += proxy.faults
    finally:
        load.stop()
        proxy.heal()
    statuses = Counter(status for status, _, _ in load.answers)
    assert set(statuses) <= {200, 202, 503}, statuses  # no 500, no other 5xx
    assert statuses[200] + statuses[202] > 0 and statuses[503] > 0, statuses  # load, and faults
    for status, body, retry in load.answers:
        if status == 503:
            assert body["error"] == "database_unavailable" and retry, body

    accepted = {body["run_id"] for status, body, _ in load.answers if status in (200, 202)}
    accepted |= {body["run_id"] for status, body, _ in load.answers if body.get("run_id")}

    def settled() -> dict[str, tuple[str, Any]] | None:
        runs = _runs(direct)
        return runs if all(s in ("succeeded", "failed") for s, _ in runs.values()) else None

    runs = wait_for(settled, 120, "every run to finish (the sweep continues stranded ones)", 0.5)
    assert accepted <= set(runs), "an accepted run is missing"
    failed = {r: s for r, s in runs.items() if s[0] != "succeeded"}
    assert not failed, failed  # nothing lost to a transient outage
    for run_id, (_, output) in runs.items():
        assert output.endswith("go 1 2 3"), (run_id, output)
    queue = _queue(direct)
    assert all(status in ("completed",) for _, status, _ in queue), Counter(s for _, s, _ in queue)

    started = time.monotonic()
    assert server.proc is not None
    server.proc.send_signal(signal.SIGTERM)
    server.proc.wait(timeout=40)
    shutdown = time.monotonic() - started
    assert shutdown <= 30.0, shutdown
    print(  # the issue asks for these numbers
        f"\n{fault}: faults={faults} answers={dict(statuses)} runs_checked={len(runs)} "
        f"accepted={len(accepted)} sigterm_exit_s={shutdown:.1f}"
    )
