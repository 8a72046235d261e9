"""docs/cli_reference.md is generated from the Typer app and must not drift from it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_cli_reference_is_current() -> None:
    """Regenerate with: python docs/script/generate_reference_docs.py"""
    result = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "script" / "generate_reference_docs.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
