"""A GitOps deployment in real processes, and a laptop that talks to it.

:class:`Served` is ``kneo service serve`` (its GitOps controller in the process) over a real
Git remote of signed bundles and its own SQLite database, with auth on. :class:`Laptop` runs
the real ``kneo`` CLI in a directory of its own, as an operator's machine would: no project,
its own profiles file, and a local database URL that must never come to exist. GitHub's push
payload shape is here too (:func:`github_push`), with the signature GitHub computes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import pty
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx2

from tests import http_calls
from tests.cli_zygote import KNEO
from tests.controller.gitops_fixtures import Keys, Repo, spec
from tests.service.svc_helpers import KEYS, ROOT, LiveServer, auth_env

WEBHOOK_SECRET = "served-webhook-secret-0x51"
SECRET_ENV = "KNEO_TEST_WEBHOOK_SECRET"


class Served:
    """``kneo service serve`` reconciling ``repo`` (signed by ``keys``) into its database."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.repo = Repo(root / "git")
        self.repo.write("environments/dev.yaml", "version: v1\n")
        self.repo.commit("environments")
        self.keys = Keys(root / "keys")
        project = root / "server"
        (project / ".kneo").mkdir(parents=True)
        (project / ".kneo" / "config.yaml").write_text(
            "version: v1\ncontroller:\n"
            f"  repo: {self.repo.url}\n  branch: main\n  interval: 3600\n"
            f"  trusted_keys: {self.keys.trusted_dir}\n  cache_dir: {root / 'cache'}\n"
            f"  webhook_secret_env: {SECRET_ENV}\n  poll_seconds: 0.1\n"
        )
        self.database = root / "server.sqlite"
        env = {
            **auth_env(),
            "KNEO_SERV_DATABASE_URL": f"sqlite:///{self.database}",
            "KNEO_SERV_PROFILES_PATH": str(root / "server-profiles.json"),
            SECRET_ENV: WEBHOOK_SECRET,
        }
        self.server = LiveServer(env, project, root / "server.log")

    def start(self) -> Served:
        self.server.start()
        self.wait(lambda: self.get("/v1/controller/status")["leader"] is not None)
        return self

    @property
    def url(self) -> str:
        return self.server.url

    def commit(self, name: str, prompt: str) -> str:
        self.repo.write(f"bundles/{name}/dev.json", self.keys.bundle(name, "dev", spec(prompt)))
        return self.repo.commit(f"{name}: {prompt}")

    def get(self, path: str, role: str = "viewer", **params: Any) -> Any:
        r = http_calls.get(
            self.url + path, params=params, headers={"X-API-Key": KEYS[role]}, timeout=30
        )
        assert r.status_code == 200, (path, r.status_code, r.text)
        return r.json()

    def active(self, name: str) -> dict[str, Any] | None:
        r = http_calls.get(
            f"{self.url}/v1/registry/bundles/{name}/dev",
            headers={"X-API-Key": KEYS["viewer"]},
            timeout=30,
        )
        if r.status_code == 404:
            return None
        assert r.status_code == 200, r.text
        active: dict[str, Any] | None = r.json()["active"]
        return active

    def wait_commit(self, name: str, sha: str, timeout: float = 20) -> dict[str, Any]:
        """The active revision of ``name`` once it is ``sha``'s."""
        self.wait(lambda: (self.active(name) or {}).get("commit") == sha, timeout)
        active = self.active(name)
        assert active is not None
        return active

    def requests_made(self) -> int:
        """Every reconcile request the database holds (queued, running or done)."""
        import sqlite3

        with sqlite3.connect(self.database) as db:
            return int(db.execute("select count(*) from controller_requests").fetchone()[0])

    @staticmethod
    def wait(ready: Any, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if time.monotonic() > deadline:
                raise AssertionError("timed out")
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.stop()


class Laptop:
    """The real CLI in a directory with no project, a profiles file of its own and a local
    database URL that no command may create."""

    def __init__(self, root: Path) -> None:
        self.home = root / "laptop"
        self.home.mkdir()
        self.profiles = root / "laptop-profiles.json"
        self.local_database = self.home / "never.sqlite"

    def env(self) -> dict[str, str]:
        environ = {k: v for k, v in os.environ.items() if not k.startswith("KNEO_")}
        environ.update(
            PYTHONPATH=str(ROOT),
            KNEO_SERV_PROFILES_PATH=str(self.profiles),
            KNEO_SERV_DATABASE_URL=f"sqlite:///{self.local_database}",
            KNEO_SERV_CLIENT_RETRIES="0",
            COLUMNS="200",
        )
        return environ

    def kneo(self, *args: str, code: int | None = 0) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [*KNEO, *args],
            cwd=self.home,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=180,
        )
        if code is not None:
            assert done.returncode == code, (args, done.returncode, done.stdout, done.stderr)
        return done

    def json(self, *args: str) -> Any:
        return json.loads(self.kneo(*args, "--json").stdout)

    def on_a_terminal(self, *args: str) -> tuple[int, str, str]:
        """``kneo ARGS`` with its stderr on a pseudo-terminal: (exit code, stdout, stderr)."""
        main, terminal = pty.openpty()
        try:
            done = subprocess.run(
                [*KNEO, *args],
                cwd=self.home,
                env=self.env(),
                stdout=subprocess.PIPE,
                stderr=terminal,
                text=True,
                timeout=180,
            )
        finally:
            os.close(terminal)
        seen = b""
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # EIO: the terminal's other end is closed and drained
                break
            if not chunk:
                break
            seen += chunk
        os.close(main)
        return done.returncode, done.stdout, seen.decode(errors="replace")

    def left_no_local_state(self) -> bool:
        return not self.local_database.exists() and not (self.home / ".kneo").exists()


def github_push(repo: Repo, *, ref: str = "refs/heads/main") -> dict[str, Any]:
    """A push event as GitHub sends it (the fields of its documented payload, abridged to
    one commit): what the controller reads is ``ref``; the rest is there to be parsed."""
    after = repo.git("rev-parse", "HEAD")
    before = repo.git("rev-parse", "HEAD~1")
    owner = {"name": "acme", "login": "acme", "id": 9919, "type": "Organization"}
    author = {"name": "Dana Operator", "email": "dana@acme.example", "username": "dana"}
    commit = {
        "id": after,
        "tree_id": repo.git("rev-parse", "HEAD^{tree}"),
        "distinct": True,
        "message": "helper: tighten the prompt\n\nRéviser le ton — “quotes” & ampersands",
        "timestamp": "2026-03-01T10:00:00+01:00",
        "url": f"https://github.com/acme/agents/commit/{after}",
        "author": author,
        "committer": author,
        "added": [],
        "removed": [],
        "modified": ["bundles/helper/dev.json"],
    }
    return {
        "ref": ref,
        "before": before,
        "after": after,
        "repository": {
            "id": 123456789,
            "node_id": "R_kgDOBz1a2Q",
            "name": "agents",
            "full_name": "acme/agents",
            "private": True,
            "owner": owner,
            "html_url": "https://github.com/acme/agents",
            "default_branch": "main",
            "master_branch": "main",
            "pushed_at": 1772355600,
        },
        "pusher": {"name": "dana", "email": "dana@acme.example"},
        "organization": {"login": "acme", "id": 9919},
        "sender": {"login": "dana", "id": 4242, "type": "User", "site_admin": False},
        "created": False,
        "deleted": False,
        "forced": False,
        "base_ref": None,
        "compare": f"https://github.com/acme/agents/compare/{before[:12]}...{after[:12]}",
        "commits": [commit],
        "head_commit": commit,
    }


def github_delivery(
    payload: dict[str, Any] | str,
    *,
    form: bool,
    secret: str = WEBHOOK_SECRET,
    event: str = "push",
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of GitHub's delivery of ``payload``: ``application/json`` or its
    default ``application/x-www-form-urlencoded`` (``payload=`` and the JSON, form-encoded),
    signed as GitHub signs, HMAC-SHA256 of the exact body bytes with the hook's secret."""
    text = (
        payload
        if isinstance(payload, str)
        else json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    )
    body = urlencode({"payload": text}).encode("ascii") if form else text.encode("utf-8")
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return body, {
        "Content-Type": "application/x-www-form-urlencoded" if form else "application/json",
        "User-Agent": "GitHub-Hookshot/7b3c2e1",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-GitHub-Hook-ID": "471522001",
        "X-GitHub-Hook-Installation-Target-ID": "123456789",
        "X-GitHub-Hook-Installation-Target-Type": "repository",
        "X-Hub-Signature": "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest(),
        "X-Hub-Signature-256": "sha256=" + digest,
    }


def deliver(served: Served, body: bytes, headers: dict[str, str]) -> httpx2.Response:
    return http_calls.post(
        served.url + "/v1/controller/webhook", content=body, headers=headers, timeout=30
    )
