"""``--project``, ``KNEO_SERV_PROJECT`` and a profile's project: the CLI acts in the project
it is told, against a real service (its header), and on the local store; never ignoring it."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from teams_helpers import KEYS, paused_run

from kneo.cli.profiles import ProfileStore, resolve_connection
from kneo.platform import create_platform
from kneo.platform.preparation import RunRequest
from kneo.settings import Settings
from kneo.spec.project import ProjectContext
from kneo.store import open_store
from tests.cli_zygote import KNEO
from tests.service.svc_helpers import serving_app

ROOT = Path(__file__).resolve().parents[2]


def _kneo(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("KNEO_")}
    environ.update(env, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [*KNEO, *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def served(two_teams: TestClient) -> Iterator[tuple[str, TestClient]]:
    with serving_app(two_teams.app) as url:
        yield url, two_teams


def test_the_cli_acts_in_the_project_it_names(
    served: tuple[str, TestClient], tmp_path: Path
) -> None:
    url, client = served
    run_a = paused_run(client, "both", "team-a")["run_id"]
    run_b = paused_run(client, "b-op")["run_id"]
    env = {"KNEO_SERV_API_KEY": KEYS["both"][0], "KNEO_SERV_PROFILES_PATH": str(tmp_path / "p")}

    def listed(*args: str, **extra: str) -> tuple[list[str], Any]:
        done = _kneo(
            tmp_path, {**env, **extra}, "runs", "list", "--service-url", url, "--json", *args
        )
        assert done.returncode == 0, done.stderr
        data = json.loads(done.stdout)
        return [r["run_id"] for r in data["runs"]], data["meta"]["service"]

    assert listed()[0] == [run_a]  # the key's home: team-a
    ids, service = listed("--project", "team-b")
    assert ids == [run_b] and service["project"] == "team-b"
    assert listed(KNEO_SERV_PROJECT="team-b")[0] == [run_b]
    assert listed("--project", "team-a", KNEO_SERV_PROJECT="team-b")[0] == [run_a]
    refused = _kneo(
        tmp_path, env, "runs", "list", "--service-url", url, "--project", "default", "--json"
    )
    assert refused.returncode != 0
    assert json.loads(refused.stdout)["error"] == "project_not_found"


def test_a_profile_remembers_its_project(served: tuple[str, TestClient], tmp_path: Path) -> None:
    url, client = served
    run_b = paused_run(client, "b-op")["run_id"]
    env = {"KNEO_SERV_PROFILES_PATH": str(tmp_path / "profiles.json")}
    made = _kneo(
        tmp_path, env, "config", "profile", "set", "lead", "--service-url", url,
        "--api-key", KEYS["both"][0], "--project", "team-b", "--json",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["project"] == "team-b"
    got = _kneo(tmp_path, env, "runs", "list", "--json")
    assert got.returncode == 0, got.stderr
    assert [r["run_id"] for r in json.loads(got.stdout)["runs"]] == [run_b]
    bad = _kneo(
        tmp_path, env, "config", "profile", "set", "x", "--service-url", url, "--project", "../etc"
    )
    assert bad.returncode != 0 and "not a valid name" in bad.stderr + bad.stdout


def test_precedence_of_the_project(tmp_path: Path) -> None:
    profiles = tmp_path / "profiles.json"
    ProfileStore(profiles).set("p", "http://kneo.example", "k", project="from-profile")
    settings = Settings.from_env({"KNEO_SERV_PROFILES_PATH": str(profiles)})
    pick = resolve_connection(service_url=None, profile="p", settings=settings)
    assert pick is not None and pick.project == "from-profile"
    with_env = Settings.from_env(
        {"KNEO_SERV_PROFILES_PATH": str(profiles), "KNEO_SERV_PROJECT": "from-env"}
    )
    pick = resolve_connection(service_url=None, profile="p", settings=with_env)
    assert pick is not None and pick.project == "from-env"
    pick = resolve_connection(service_url=None, profile="p", settings=with_env, project="flag")
    assert pick is not None and pick.project == "flag"


def test_the_local_cli_acts_in_a_project_of_its_store(tmp_path: Path) -> None:
    """Locally, ``--project`` opens that project of the directory's store; a spec check
    or a controller pass here belongs to the directory, so ``--project`` is refused there."""
    project = tmp_path / "demo"
    (project / ".kneo").mkdir(parents=True)
    (project / ".kneo" / "config.yaml").write_text("version: v1\nname: demo\n")
    settings = Settings.from_env({})
    context = ProjectContext.discover(cwd=project, settings=settings)
    store = open_store(None, settings=settings, state_dir=project / ".kneo")
    store.projects.create_project("team-a")
    manager = create_platform(settings, context, store=store).for_project("team-a")
    spec = {
        "version": "v1",
        "workflow": {"type": "sequential", "steps": [{"id": "ask", "kind": "human", "ref": "r"}]},
        "components": {"humans": {"r": {"prompt": "ok?"}}},
    }
    (project / "ask.json").write_text(json.dumps(spec))
    run = manager.run(RunRequest(input_text="x", spec=spec, origin="inline"))
    store.close()
    env = {"KNEO_SERV_PROFILES_PATH": str(tmp_path / "p")}
    mine = _kneo(project, env, "runs", "list", "--project", "team-a", "--json")
    assert mine.returncode == 0, mine.stderr
    assert [r["run_id"] for r in json.loads(mine.stdout)["runs"]] == [run.run_id]
    default = _kneo(project, env, "runs", "list", "--json")
    assert json.loads(default.stdout)["runs"] == []
    made = _kneo(project, env, "projects", "create", "team-b", "--json")
    assert made.returncode == 0, made.stderr
    listed = json.loads(_kneo(project, env, "projects", "list", "--json").stdout)
    assert [p["name"] for p in listed["projects"]] == ["default", "team-a", "team-b"]
    for args in (("spec", "validate", "ask.json"), ("controller", "plan")):
        refused = _kneo(project, env, *args, "--project", "team-a", "--json")
        assert refused.returncode != 0
        assert "--project names a project" in refused.stdout + refused.stderr, args


def test_kneo_projects_manages_the_catalog(served: tuple[str, TestClient], tmp_path: Path) -> None:
    """A platform administrator creates, redefines and archives a project from the CLI; a
    member lists its own projects; a definition file that is not a project config is refused
    naming the field."""
    url, _client = served
    admin = {"KNEO_SERV_API_KEY": KEYS["plat"][0], "KNEO_SERV_PROFILES_PATH": str(tmp_path / "p")}
    good = tmp_path / "team-c.yaml"
    good.write_text(
        "environments:\n  prod:\n    policy_enforcement:\n      require_human_review: true\n"
    )
    made = _kneo(tmp_path, admin, "projects", "create", "team-c", "--definition", str(good),
                 "--service-url", url, "--json")  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["definition"]["environments"]["prod"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("environments:\n  prod:\n    policy_enforcement:\n      nope: 1\n")
    refused = _kneo(tmp_path, admin, "projects", "update", "team-c", "--definition", str(bad),
                    "--service-url", url, "--json")  # fmt: skip
    assert refused.returncode != 0 and "environments.prod.policy_enforcement" in refused.stdout
    member = {**admin, "KNEO_SERV_API_KEY": KEYS["both"][0]}
    listed = _kneo(tmp_path, member, "projects", "list", "--service-url", url, "--json")
    assert [p["name"] for p in json.loads(listed.stdout)["projects"]] == ["team-a", "team-b"]
    denied = _kneo(
        tmp_path, member, "projects", "archive", "team-a", "--service-url", url, "--json"
    )
    assert denied.returncode != 0 and json.loads(denied.stdout)["error"] == "forbidden"
    gone = _kneo(tmp_path, admin, "projects", "archive", "team-c", "--service-url", url, "--json")
    assert gone.returncode == 0 and json.loads(gone.stdout)["status"] == "archived"
