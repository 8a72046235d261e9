"""The README quickstart works as written, on a fresh copy of the project files."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _quickstart_script() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    assert blocks, "the README quickstart has no bash block"
    return "\n".join(blocks)


def test_readme_quickstart_runs(tmp_path: Path) -> None:
    """Every quickstart command exits 0 and the paused run ends succeeded."""
    for name in ("examples", "environments"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / ".kneo").mkdir()
    shutil.copy(ROOT / ".kneo" / "config.yaml", tmp_path / ".kneo" / "config.yaml")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("KNEO_") or k == "KNEO_TEST_DATABASE_URL"
    }
    env.pop("KNEO_TEST_DATABASE_URL", None)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["HOME"] = str(tmp_path)
    script = (
        "set -euo pipefail\n"
        + _quickstart_script()
        + '\nkneo runs get "$RUN" --json > final.json\n'
    )
    result = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert '"status": "succeeded"' in (tmp_path / "final.json").read_text()
    assert "demo-signing-key" not in result.stdout + result.stderr


def test_ci_runs_the_readme_setup_commands() -> None:
    """``.ci/run`` installs and tests exactly as the README's set-up section says, in a new venv."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Set up", 1)[1].split("\n## ", 1)[0]
    setup, checks = (
        block.strip().splitlines() for block in re.findall(r"```bash\n(.*?)```", section, re.S)
    )
    ci = (ROOT / ".ci" / "run").read_text()
    lines = [line.strip() for line in ci.splitlines() if not line.lstrip().startswith("#")]
    assert len(setup) == 2 and all(command in lines for command in setup), setup
    assert checks and all(command in lines for command in checks), checks  # lint and types
    assert lines.index(checks[-1]) < lines.index(setup[-1])  # before the tests: fail fast
    venv = [line for line in lines if "-m venv" in line]
    assert venv and not any("--system-site-packages" in line for line in venv)


def test_run_state_is_ignored_and_project_config_tracked() -> None:
    """What a run leaves under ``.kneo/`` stays out of Git; ``.kneo/config.yaml`` stays in."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a Git checkout")
    state = [".kneo/kneo_runs.sqlite", ".kneo/kneo_runs.sqlite-wal", ".kneo/backups/b.sqlite"]
    state.append(".kneo/logs/service.log")
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", *state, ".kneo/config.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    assert ignored == state
