"""The GitHub workflows (.github/ and the one ``kneo init --template gitops`` writes) pass
actionlint, and every action they use runs on GitHub's current JavaScript runtime (node24):
node20 actions are deprecated on GitHub's runners."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.release.wheel_build import ROOT

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
TEMPLATE = ROOT / "kneo" / "templates" / "gitops" / ".github" / "workflows" / "kneo-specs.yml"
#: The first major of each action the workflows use that runs on node24 (each action's
#: action.yml `runs.using`); an action not listed here is a new one to look up and add.
NODE24_SINCE = {
    "actions/checkout": 5,
    "actions/setup-python": 6,
    "actions/setup-node": 5,
    "actions/upload-artifact": 5,
}
USES = re.compile(r"^\s*-?\s*uses:\s*([\w.-]+/[\w.-]+)@v(\d+)\s*$", re.M)


def actionlint() -> str:
    beside = Path(sys.executable).parent / "actionlint"
    found = str(beside) if beside.is_file() else shutil.which("actionlint")
    if found is None:
        pytest.fail("actionlint is missing: pip install -e '.[dev]'", pytrace=False)
    return str(found)


def test_every_action_runs_on_node24() -> None:
    used = [
        (path, *m.groups())
        for path in [*WORKFLOWS, TEMPLATE]
        for m in USES.finditer(path.read_text())
    ]
    assert len(used) >= 10
    for path, action, major in used:
        assert action in NODE24_SINCE, f"{path.name}: {action}: look up its runtime, add it"
        assert int(major) >= NODE24_SINCE[action], f"{path.name}: {action}@v{major} runs on node20"
    everything = "".join(p.read_text() for p in [*WORKFLOWS, TEMPLATE])
    assert len(USES.findall(everything)) == everything.count("uses:")  # all pinned to a major


@pytest.mark.parametrize("path", [*WORKFLOWS, TEMPLATE], ids=lambda p: p.name)
def test_actionlint_passes(path: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"  # actionlint lints a repository's .github/workflows
    (repo / ".github" / "workflows").mkdir(parents=True)
    shutil.copy(path, repo / ".github" / "workflows" / path.name)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    done = subprocess.run([actionlint()], cwd=repo, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_would_catch_a_mistake(tmp_path: Path) -> None:
    broken = TEMPLATE.read_text().replace("github.event_name", "github.event_nam", 1)
    path = tmp_path / "kneo-specs.yml"
    path.write_text(broken)
    with pytest.raises(AssertionError, match="event_nam"):
        test_actionlint_passes(path, tmp_path / "lint")
