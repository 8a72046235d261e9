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


def test_shared_options_are_declared_once() -> None:
    """``--json``, ``--profile`` and the client's ``--service-url`` mean the same everywhere:
    one declaration each (``kneo.cli.output``), so their help and behaviour cannot drift."""
    sources = {p: p.read_text() for p in (ROOT / "kneo" / "cli").glob("*.py")}
    for flag in ('"--json"', '"--profile"'):
        assert [p.name for p, s in sources.items() if flag in s] == ["output.py"], flag
    declaring = sorted(p.name for p, s in sources.items() if '"--service-url"' in s)
    assert declaring == ["output.py", "profiles.py"]  # profiles: the URL a profile stores
