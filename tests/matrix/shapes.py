"""The four shapes Kneo documents, each as real processes on a free loopback port.

``one-box-sqlite`` and ``one-box-postgresql``: one ``kneo service serve`` (its worker in the
process). ``split-postgresql``: an API-only replica (``serve --no-worker --no-controller``), a
``kneo worker`` process and an elected ``kneo controller run`` on one PostgreSQL database.
``two-projects``: one ``serve`` with its controller on (the host's source and, through their
definitions, ``team-a``'s and ``team-b``'s), created over the API by the platform
administrator. Every shape serves the console and takes the service tests' keys
(:data:`svc_helpers.KEYS`) for the host project, so one journey runs unchanged in each.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2

from tests import http_calls
from tests.cli_zygote import KNEO
from tests.conftest import PgDatabases, pg_base_url
from tests.controller.gitops_fixtures import Keys, Repo, spec
from tests.service.svc_helpers import API_KEYS_ENV, KEYS, ROOT, LiveServer, auth_env

SHAPES = ("one-box-sqlite", "one-box-postgresql", "split-postgresql", "two-projects")
CONSOLE_SECRET = "matrix-console-secret"
#: the other projects' people (two-projects only): role@project grants beside the host's keys
TEAM_KEYS = {
    "plat": ("matrix-platform-admin-1", "platform-admin"),
    "a-op": ("matrix-a-operator-2", "operator@team-a"),
    "b-op": ("matrix-b-operator-3", "operator@team-b"),
    "a-rev": ("matrix-a-reviewer-4", "reviewer@team-a"),
}


@dataclass
class Shape:
    """One running shape: the URL clients use, how it was built, and its processes."""

    name: str
    url: str
    database_url: str
    controller: bool
    projects: tuple[str, ...] = ("default",)
    servers: list[LiveServer] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    repo: Repo | None = None
    keys: Keys | None = None
    teardown: list[Callable[[], None]] = field(default_factory=list)
    #: the original clients' answers (``client``: kneo-client, ``dash``: kneo-dash)
    outcomes: dict[str, Any] = field(default_factory=dict)

    def get(
        self, path: str, role: str = "viewer", headers: dict[str, str] | None = None, **kw: Any
    ) -> httpx2.Response:
        sent = {**bearer(role), **(headers or {})}
        return http_calls.get(self.url + path, headers=sent, timeout=60, **kw)

    def post(
        self, path: str, role: str, body: Any, headers: dict[str, str] | None = None
    ) -> httpx2.Response:
        sent = {**bearer(role), **(headers or {})}
        return http_calls.post(self.url + path, headers=sent, json=body, timeout=120)

    def settled(self, run_id: str, timeout: float = 60) -> str:
        """The run's status once it is no longer ``running`` (a worker may be finishing it)."""
        deadline = time.monotonic() + timeout
        while True:
            status = str(self.get(f"/v1/runs/{run_id}").json()["status"])
            if status not in ("running", "queued") or time.monotonic() > deadline:
                return status
            time.sleep(0.1)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        for server in self.servers:
            server.stop()
        for step in self.teardown:
            step()


def bearer(role: str) -> dict[str, str]:
    key = KEYS[role] if role in KEYS else TEAM_KEYS[role][0]
    return {"Authorization": f"Bearer {key}"}


def _env(database_url: str, tmp: Path, extra_keys: str = "") -> dict[str, str]:
    env = {
        **auth_env(),
        "KNEO_SERV_DATABASE_URL": database_url,
        "KNEO_SERV_PROFILES_PATH": str(tmp / "server-profiles.json"),
        "KNEO_SERV_WORKER_POLL_SECONDS": "0.1",
        "KNEO_SERV_CONSOLE_SECRET": CONSOLE_SECRET,
    }
    env["KNEO_SERV_API_KEYS"] = API_KEYS_ENV + extra_keys
    return env


def _gitops(tmp: Path) -> tuple[Repo, Keys]:
    """A signed-bundle repository (``helper`` active in dev once reconciled)."""
    repo, keys = Repo(tmp / "git"), Keys(tmp / "keys")
    repo.write("environments/dev.yaml", "version: v1\n")
    repo.write("bundles/helper/dev.json", keys.bundle("helper", "dev", spec("matrix")))
    repo.commit("helper")
    return repo, keys


def _wait(ready: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"the shape never got ready: {what}")
        time.sleep(0.1)


def _led(shape: Shape) -> bool:
    answer = shape.get("/v1/controller/status", "operator")
    return answer.status_code == 200 and bool(answer.json().get("last_fetched_commit"))


def _database(name: str, tmp: Path) -> tuple[str, Callable[[], None] | None]:
    if "postgresql" not in name:
        return f"sqlite:///{tmp / 'matrix.sqlite'}", None
    databases = PgDatabases(pg_base_url(), "kneo_mx")
    return databases.new(), databases.drop_all


def build(name: str, tmp: Path) -> Shape:
    """Start shape ``name`` under ``tmp`` and wait until it answers (and leads, where a
    controller runs)."""
    database_url, drop = _database(name, tmp)
    repo, keys = _gitops(tmp)
    controller_flags = ("--trusted-keys", str(keys.trusted_dir), "--cache-dir", str(tmp / "c"))
    team_keys = "".join(f";{n}:{k}:{r}" for n, (k, r) in TEAM_KEYS.items())
    env = _env(database_url, tmp, team_keys if name == "two-projects" else "")
    if name == "split-postgresql":
        args: tuple[str, ...] = ("--no-worker", "--no-controller")
    elif name == "two-projects":
        args = ("--controller-repo", repo.url, "--trusted-keys", str(keys.trusted_dir))
    else:
        args = ("--no-controller",)
    api = LiveServer(env, ROOT, tmp / "api.log", args)
    shape = Shape(name, "", database_url, controller=name in ("split-postgresql", "two-projects"))
    shape.repo, shape.keys = repo, keys
    if drop is not None:
        shape.teardown.append(drop)
    try:
        shape.url = api.start(timeout=240).url
        shape.servers.append(api)
        if name == "split-postgresql":
            _start_split(shape, env, tmp, controller_flags)
        if name == "two-projects":
            _define_teams(shape, tmp)
        if shape.controller:
            _wait(lambda: _led(shape), "the controller's first pass")
    except BaseException:
        shape.stop()
        raise
    return shape


def _start_split(
    shape: Shape, env: dict[str, str], tmp: Path, controller_flags: tuple[str, ...]
) -> None:
    """The worker and the elected controller beside the API-only replica."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("KNEO_")}
    environ.update(env, PYTHONPATH=str(ROOT))
    assert shape.repo is not None
    commands = {
        "worker": ["worker", "--concurrency", "2"],
        "controller": ["controller", "run", "--repo", shape.repo.url, "--interval", "3600",
                       "--lease-seconds", "5", "--poll-seconds", "0.2", *controller_flags],
    }  # fmt: skip
    for label, command in commands.items():
        shape.procs.append(
            subprocess.Popen(
                [*KNEO, *command],
                cwd=ROOT,
                env=environ,
                stdout=(tmp / f"{label}.out").open("ab"),
                stderr=subprocess.STDOUT,
            )
        )


def _define_teams(shape: Shape, tmp: Path) -> None:
    """team-a and team-b, each watching a signed repository of its own."""
    for team in ("team-a", "team-b"):
        repo, keys = Repo(tmp / team / "git"), Keys(tmp / team / "keys")
        repo.write("environments/dev.yaml", "version: v1\n")
        repo.write(f"bundles/{team}-bot/dev.json", keys.bundle(f"{team}-bot", "dev", spec(team)))
        repo.commit(team)
        definition = {
            "controller": {
                "repo": repo.url,
                "branch": "main",
                "interval": 3600,
                "trusted_keys": str(keys.trusted_dir),
                "cache_dir": str(tmp / team / "cache"),
            }
        }
        created = shape.post("/v1/projects", "plat", {"name": team, "definition": definition})
        assert created.status_code == 201, created.text
    shape.projects = ("default", "team-a", "team-b")

    def active(team: str) -> bool:
        answer = http_calls.get(
            f"{shape.url}/v1/registry/bundles/{team}-bot/dev",
            headers={**bearer("a-op" if team == "team-a" else "b-op"), "X-Kneo-Project": team},
            timeout=30,
        )
        return answer.status_code == 200 and answer.json().get("active") is not None

    _wait(lambda: active("team-a") and active("team-b"), "each team's bundle applied")
