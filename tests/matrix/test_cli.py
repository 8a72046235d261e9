"""The CLI through the service in every shape: the tutorial's ``kneo run … --service-url`` from
the checkout, then ``kneo human list/get/resume`` and ``kneo runs get/list`` with profiles (an
operator's, a reviewer's), and, where a controller runs, ``kneo registry list`` and
``kneo controller status``. Each command runs with a local database URL that must never come
to exist: everything it shows and changes is the service's.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.cli_zygote import KNEO
from tests.matrix.shapes import Shape
from tests.service.svc_helpers import KEYS, ROOT

pytestmark = pytest.mark.slow

SMOKE = "examples/smoke_human_workflow.yaml"


class Cli:
    """The real ``kneo`` from the checkout, with profiles of its own."""

    def __init__(self, tmp: Path, shape: Shape) -> None:
        self.local_database = tmp / "never.sqlite"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("KNEO_")}
        self.env.update(
            PYTHONPATH=str(ROOT),
            KNEO_SERV_PROFILES_PATH=str(tmp / "profiles.json"),
            KNEO_SERV_DATABASE_URL=f"sqlite:///{self.local_database}",
            KNEO_SERV_CLIENT_RETRIES="0",
        )
        for role in ("operator", "reviewer", "viewer"):
            self.kneo("config", "profile", "set", role, "--service-url", shape.url,
                      "--api-key", KEYS[role], "--no-activate")  # fmt: skip

    def kneo(self, *args: str, env: dict[str, str] | None = None) -> str:
        done = subprocess.run(
            [*KNEO, *args],
            cwd=ROOT,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode == 0, (args, done.stdout[-2000:], done.stderr[-2000:])
        return done.stdout

    def json(self, *args: str, env: dict[str, str] | None = None) -> Any:
        return json.loads(self.kneo(*args, "--json", env=env))


def test_the_tutorial_through_the_service(shape: Shape, tmp_path: Path) -> None:
    cli = Cli(tmp_path, shape)
    run = cli.json(
        "run", SMOKE, "--service-url", shape.url, "--input", "hello", "--target", "workflow",
        env={"KNEO_SERV_API_KEY": KEYS["operator"]},
    )  # fmt: skip
    assert run["status"] == "paused" and run["continuation_id"].startswith("cont_"), run
    cid = run["continuation_id"]
    rid = run["metadata"]["pending_human_request"]["request_id"]
    pending = cli.json("human", "list", "--profile", "viewer", "--run-id", run["run_id"])
    items = pending.get("tasks", pending.get("items"))
    assert [t["continuation_id"] for t in items] == [cid], pending
    task = cli.json("human", "get", cid, "--profile", "viewer")
    assert task["run_id"] == run["run_id"]
    done = cli.json(
        "human", "resume", cid, "--request-id", rid, "--approve", "--profile", "reviewer"
    )
    assert done["status"] == "succeeded" and done["run_id"] == run["run_id"], done
    got = cli.json("runs", "get", run["run_id"], "--profile", "operator")
    assert got["status"] == "succeeded"
    listed = cli.json("runs", "list", "--profile", "operator")
    rows = listed.get("runs", listed.get("items"))
    assert run["run_id"] in [r["run_id"] for r in rows]
    assert not cli.local_database.exists()


def test_day_two_commands_read_the_services_controller(shape: Shape, tmp_path: Path) -> None:
    cli = Cli(tmp_path, shape)
    status = cli.json("controller", "status", "--profile", "operator")
    listed = cli.json("registry", "list", "--profile", "viewer")
    bundles = [row["bundle"] for row in listed["items"]]
    if shape.controller:
        assert status["leader"] and status["last_fetched_commit"] == shape.repo.git(  # type: ignore[union-attr]
            "rev-parse", "HEAD"
        )
        assert bundles == ["helper"]
    else:
        assert not status["leader"] and bundles == []
    assert not cli.local_database.exists()
