"""Every import is declared, every declared package is used (deptry, configured in pyproject).

Two passes: the whole tree against every extra (tests, bench and scripts import from ``dev``
and ``bench``), then the package alone with ``dev`` and ``bench`` as development extras, so
``kneo`` itself can never start importing a package only the test set-up installs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "args",
    [(".",), ("kneo", "--optional-dependencies-dev-groups", "dev,bench")],
    ids=["whole-tree", "package-only"],
)
def test_imports_match_declared_dependencies(args: tuple[str, ...]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "deptry", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
