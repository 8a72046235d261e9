"""The production shape as local processes: controllers (``kneo controller run``) and API-only
replicas (``kneo service serve --no-controller --no-worker``) on one database, a real Git
remote, and the clocks to measure them with. Used by ``test_controller_shape.py`` and by
``bench/controller_shape.py``; nothing here is a fixture, so both build it the same way.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx2

from tests import http_calls
from tests.cli_zygote import FRESH

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "controller"))
sys.path.insert(0, str(HERE.parent / "service"))

from gitops_fixtures import Keys, Repo  # noqa: E402
from svc_helpers import LiveServer  # noqa: E402

WEBHOOK_SECRET = "webhook-secret-value-for-the-shape"
OPERATOR = "operator-key-for-the-shape-0123"
API_KEYS = f"operator:{OPERATOR}:operator"


def prompt_spec(text: str) -> dict[str, Any]:
    return {"version": "v1", "agent": {"name": "helper", "system_prompt": text}}


def signed_push(ref: str = "refs/heads/main") -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"ref": ref}).encode()
    signature = "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return body, {"X-Hub-Signature-256": signature, "X-GitHub-Event": "push"}


class Shape:
    """Controllers and API replicas over ``database_url``, reconciling ``repo``."""

    def __init__(
        self,
        root: Path,
        database_url: str,
        *,
        lease_seconds: float = 3.0,
        poll_seconds: float = 0.25,
        interval: float = 60.0,
        local: bool = False,
    ) -> None:
        self.root = root
        self.database_url = database_url
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self.interval = interval
        self.repo = Repo(root / "git")
        self.repo.write("environments/dev.yaml", "version: v1\n")
        self.repo.commit("environments")
        self.keys = Keys(root / "keys")
        self.project = root / "project"
        (self.project / ".kneo").mkdir(parents=True)
        source = self.repo.work if local else self.repo.url
        (self.project / ".kneo" / "config.yaml").write_text(
            "version: v1\ncontroller:\n"
            f"  repo: {source}\n  branch: main\n  interval: {interval}\n"
            f"  trusted_keys: {self.keys.trusted_dir}\n"
            "  webhook_secret_env: KNEO_TEST_WEBHOOK_SECRET\n"
            f"  lease_seconds: {lease_seconds}\n  poll_seconds: {poll_seconds}\n"
        )
        self.controllers: list[subprocess.Popen[bytes]] = []
        self.apis: list[LiveServer] = []
        self._store: Any = None

    # ---------------------------------------------------------------- processes

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KNEO_", "OTEL_"))}
        env.update(
            KNEO_SERV_DATABASE_URL=self.database_url,
            KNEO_SERV_API_KEYS=API_KEYS,
            KNEO_SERV_AUTH_ENABLED="true",
            KNEO_TEST_WEBHOOK_SECRET=WEBHOOK_SECRET,
            PYTHONPATH=str(HERE.parents[1]),
        )
        return env

    def start_controller(self) -> subprocess.Popen[bytes]:
        """One more ``kneo controller run`` (its own fetch cache), printing a JSON document
        per pass to ``controller-N.out``."""
        n = len(self.controllers)
        out = (self.root / f"controller-{n}.out").open("ab")
        proc = subprocess.Popen(
            [*FRESH, "controller", "run", "--json",
             "--cache-dir", str(self.root / f"cache-{n}")],
            cwd=self.project, env=self.env(), stdout=out,
            stderr=(self.root / f"controller-{n}.err").open("ab"),
        )  # fmt: skip
        self.controllers.append(proc)
        return proc

    def start_api(self) -> LiveServer:
        env = self.env()
        env.pop("PYTHONPATH")
        server = LiveServer(
            env,
            self.project,
            self.root / f"api-{len(self.apis)}.log",
            ("--no-controller", "--no-worker"),
        ).start()
        self.apis.append(server)
        return server

    def passes(self, n: int) -> list[dict[str, Any]]:
        """The pass documents controller ``n`` printed (standby notes included)."""
        text = (self.root / f"controller-{n}.out").read_text()
        decoder, at = json.JSONDecoder(), 0
        docs: list[dict[str, Any]] = []
        while True:
            at = text.find("{", at)
            if at < 0:
                return docs
            try:
                doc, end = decoder.raw_decode(text, at)
            except json.JSONDecodeError:
                return docs  # a document still being written
            docs.append(doc)
            at = end

    def stop(self) -> None:
        for proc in self.controllers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.controllers:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for server in self.apis:
            server.stop()
        if self._store is not None:
            self._store.close()

    # ---------------------------------------------------------------- observing

    @property
    def store(self) -> Any:
        if self._store is None:
            from kneo.store import open_store

            self._store = open_store(self.database_url)
        return self._store

    def leader_pid(self, timeout: float = 20.0) -> int:
        """The pid of the controller holding the lock (its owner is ``host:pid:id``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lock = self.store.locks.get_lock("controller:default")
            if lock is not None:
                return int(lock.owner.split(":")[1])
            time.sleep(0.05)
        raise AssertionError("no controller took the lead")

    def commit(self, text: str) -> str:
        self.repo.write(
            "bundles/helper/dev.json", self.keys.bundle("helper", "dev", prompt_spec(text))
        )
        return str(self.repo.commit(text))

    def active_commit(self) -> str | None:
        active = self.store.registry.get_active("helper", "dev")
        return None if active is None else str(active.commit)

    def wait_active(self, sha: str, timeout: float) -> float:
        """Seconds until ``sha`` is the active revision's commit (polled every 5 ms)."""
        started = time.monotonic()
        while self.active_commit() != sha:
            if time.monotonic() - started > timeout:
                raise AssertionError(f"{sha[:12]} not active after {timeout}s")
            time.sleep(0.005)
        return time.monotonic() - started

    def webhook(self, api: LiveServer) -> httpx2.Response:
        body, headers = signed_push()
        return http_calls.post(
            api.url + "/v1/controller/webhook", content=body, headers=headers, timeout=10
        )

    def status(self, api: LiveServer) -> dict[str, Any]:
        r = http_calls.get(
            api.url + "/v1/controller/status",
            headers={"Authorization": f"Bearer {OPERATOR}"},
            timeout=10,
        )
        assert r.status_code == 200, r.text
        return dict(r.json())


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]
