"""The README: its quickstart script (run from the installed wheel by
tests/release/test_wheel_journey.py, the one place it runs) and its set-up commands."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def quickstart_script() -> str:
    """The README quickstart's bash blocks, then the final run's state into ``final.json``
    (inside the project the quickstart made)."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    assert blocks, "the README quickstart has no bash block"
    body = "\n".join(blocks)
    return "set -euo pipefail\n" + body + '\nkneo runs get "$RUN" --json > final.json\n'


def clean_env(home: Path, bin_dir: Path) -> dict[str, str]:
    """The environment without Kneo's variables, ``bin_dir`` first on PATH, a fresh HOME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KNEO_")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["HOME"] = str(home)
    return env


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
    assert lines.index(checks[-1]) < lines.index(setup[-1])  # started before the tests
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
