"""A provider that cannot be keyed or reached says how to run offline, when an overlay of the
spec runs on the ``dummy`` provider (``examples/research_agent.yaml`` and its ``dev``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from kneo.platform import create_platform
from kneo.settings import Settings
from kneo.spec.loader import load_spec, offline_environments
from kneo.spec.project import ProjectContext
from tests.e2e.doc_walk import project_copy
from tests.e2e.test_reset_and_init import kneo

REPO = Path(__file__).resolve().parents[2]


def test_offline_environments_of_the_examples() -> None:
    config = ProjectContext.discover(cwd=REPO, settings=Settings.from_env({})).config
    research = REPO / "examples" / "research_agent.yaml"
    assert offline_environments(load_spec(research, project=config), config) == ["dev"]
    assert offline_environments(load_spec(research, env="dev", project=config), config) == []
    smoke = load_spec(REPO / "examples" / "smoke_human_workflow.yaml", project=config)
    assert offline_environments(smoke, config) == []  # offline already


@pytest.fixture
def platform(tmp_path: Path):  # type: ignore[no-untyped-def]
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    (tmp_path / ".kneo").mkdir()
    shutil.copy(REPO / ".kneo" / "config.yaml", tmp_path / ".kneo" / "config.yaml")
    settings = Settings.from_env({})
    manager = create_platform(settings, ProjectContext.discover(cwd=tmp_path, settings=settings))
    yield manager, tmp_path
    manager.store.close()


def test_a_missing_key_names_the_offline_overlay(platform) -> None:  # type: ignore[no-untyped-def]
    manager, root = platform
    spec = root / "examples" / "research_agent.yaml"
    failed = manager.run_from_spec(input_text="x", spec_path=spec)
    assert failed.status == "failed"
    error = manager.get_run(failed.run_id)["error"]
    assert error["code"] == "provider_secret_missing"
    assert error["hint"].startswith(
        "to run examples/research_agent.yaml offline, add --env dev (over HTTP: "
        '"environment": "dev"): that environment\'s overlay runs every agent on the '
        "in-process dummy provider"
    )
    assert manager.run_from_spec(input_text="x", spec_path=spec, environment="dev").status == (
        "succeeded"
    )


def test_no_overlay_no_hint(platform) -> None:  # type: ignore[no-untyped-def]
    manager, root = platform
    spec = root / "examples" / "research_agent.yaml"
    for env in ("dev", "staging", "prod"):
        (root / "examples" / f"research_agent.{env}.yaml").unlink()
    failed = manager.run_from_spec(input_text="x", spec_path=spec)
    error = manager.get_run(failed.run_id)["error"]
    assert error["code"] == "provider_secret_missing" and "hint" not in error


def test_the_cli_prints_the_hint(tmp_path: Path) -> None:
    project = project_copy(tmp_path / "project")
    failed = kneo(project, "run", "examples/research_agent.yaml", "-i", "x")
    assert failed.returncode == 1
    status, hint = failed.stderr.splitlines()[-2:]
    assert "[provider_secret_missing] Provider 'openai' needs an API key" in status
    assert hint.startswith("hint: to run examples/research_agent.yaml offline, add --env dev")
    shown = json.loads(
        kneo(project, "run", "examples/research_agent.yaml", "-i", "x", "--json").stdout
    )
    assert "--env dev" in shown["metadata"]["error"]["hint"]
