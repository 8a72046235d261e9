"""The runnable Python examples exit non-zero when their run does not reach its documented end,
so a script (or CI) that runs them can trust ``$?``: ``python -m examples.run_lookup`` once
printed ``None`` and exited 0 for a failed run. Each is run as a reader runs it, in a project
copy, once as shipped and once with the copy broken so the run fails."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.doc_walk import project_copy, reader_env


def _run(module: str, project: Path, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module],
        cwd=project,
        env=reader_env(home, PYTHONPATH=str(project)),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _break_lookup(project: Path) -> None:
    """One model turn allowed, two needed: the run fails with ``agent_max_iterations``."""
    spec = project / "examples" / "lookup_agent.yaml"
    spec.write_text(spec.read_text().replace("max_iterations: 4", "max_iterations: 1"))


def _break_draft(project: Path) -> None:
    """The workflow's first function raises: the run fails before its approval pause."""
    functions = project / "examples" / "human_functions.py"
    functions.write_text(
        functions.read_text().replace(
            '    topic = _text(text).strip() or "untitled"\n',
            '    raise RuntimeError("the draft service is down")\n',
        )
    )


CASES = [
    ("examples.run_lookup", _break_lookup, "The email for u-002 is bob@example.com.", "failed"),
    ("examples.run_with_timeout", _break_draft, "status=paused", "failed"),
]


@pytest.mark.parametrize(
    ("module", "breaks", "success", "failure"), CASES, ids=[c[0] for c in CASES]
)
def test_example_exits_by_its_runs_outcome(
    module: str, breaks: Callable[[Path], None], success: str, failure: str, tmp_path: Path
) -> None:
    good = project_copy(tmp_path / "good")
    done = _run(module, good, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert success in done.stdout

    bad = project_copy(tmp_path / "bad")
    breaks(bad)
    failed = _run(module, bad, tmp_path)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "None" not in failed.stdout.splitlines()
    assert failed.stderr.startswith(f"{failure}: [")
    assert "Traceback" not in failed.stderr
