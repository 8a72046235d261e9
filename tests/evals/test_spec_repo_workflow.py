"""The spec repository workflow's eval step (.github/workflows/spec-repo.yml), run as GitHub
would run it: its shell script with bash, in a spec repository, with ``kneo`` on PATH."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.evals.conftest import ROOT, break_the_prompt, git

WORKFLOW = ROOT / ".github" / "workflows" / "spec-repo.yml"


def _step(name: str) -> str:
    jobs = yaml.safe_load(WORKFLOW.read_text())["jobs"]
    [step] = [s for s in jobs["specs"]["steps"] if s.get("name") == name]
    return str(step["run"]).replace("${{ github.event_name }}", "pull_request")


def test_a_pull_request_that_breaks_two_cases_fails_with_a_summary(tmp_path: Path) -> None:
    repo = tmp_path / "specs-repo"
    for name in (
        "examples/__init__.py",
        "examples/hitl_functions.py",
        "examples/hitl_counter.py",
        "examples/project_tools.py",
    ):
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, repo / name)
    (repo / "specs").mkdir()
    (repo / "evals").mkdir()
    shutil.copy(ROOT / "examples/support_agent.yaml", repo / "specs/support_agent.yaml")
    shutil.copy(
        ROOT / "examples/evals/support_agent.eval.yaml", repo / "evals/support_agent.eval.yaml"
    )
    (repo / ".kneo").mkdir()
    (repo / ".kneo/config.yaml").write_text(
        "version: v1\nname: specs\ntool_registry: examples.project_tools:create_registry\n"
        "environments:\n  dev: {}\n"
    )
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "base")
    base = git(repo, "rev-parse", "HEAD")
    # the pull request: the worked example's prompt change
    (repo / "examples").mkdir(exist_ok=True)
    spec = repo / "specs/support_agent.yaml"
    (repo / "examples/support_agent.yaml").write_text(spec.read_text())
    break_the_prompt(repo)
    shutil.move(repo / "examples/support_agent.yaml", spec)
    summary = tmp_path / "summary.md"
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "SPECS": "specs/support_agent.yaml",
        "BASE": base,
        "ENVIRONMENTS": "dev",
        "GITHUB_STEP_SUMMARY": str(summary),
    }
    env.pop("KNEO_SERV_DATABASE_URL", None)
    done = subprocess.run(
        ["bash", "-c", _step("Run eval suites")],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1, done.stderr
    text = summary.read_text()
    assert "**Newly failing:** `refund-window`, `ticket-opened`" in text
    assert (repo / "eval-results/support_agent.dev.xml").is_file()
    assert (repo / "eval-results/support_agent.dev.json").is_file()
