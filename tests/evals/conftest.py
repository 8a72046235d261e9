"""A throwaway project (a Git repository) holding the support agent and its eval suite, and
``kneo`` run in-process through the real entry point."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FILES = [
    "examples/__init__.py",
    "examples/hitl_functions.py",
    "examples/hitl_counter.py",
    "examples/project_tools.py",
    "examples/support_agent.yaml",
    "examples/evals/support_agent.eval.yaml",
]
SPEC = "examples/support_agent.yaml"
SUITE = "examples/evals/support_agent.eval.yaml"


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)
    return done.stdout.strip()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The example files in a fresh Git repository (one commit), as the current directory."""
    for var in ("KNEO_ENV", "KNEO_PROJECT_CONFIG", "KNEO_SERV_DATABASE_URL"):
        monkeypatch.delenv(var, raising=False)
    for name in FILES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / ".kneo").mkdir()
    (tmp_path / ".kneo" / "config.yaml").write_text(
        "version: v1\nname: support\ntool_registry: examples.project_tools:create_registry\n"
        "environments:\n  dev: {}\n  prod: {}\n"
    )
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "add", "-A")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "one")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def kneo(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., CliResult]]:
    from kneo.cli import output
    from kneo.cli.main import app

    def run(*args: str) -> CliResult:
        monkeypatch.setattr(sys, "argv", ["kneo", *args])
        monkeypatch.setattr(output, "_error_format", None)
        capsys.readouterr()
        code = output.run_cli(app)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    yield run


def break_the_prompt(project: Path) -> None:
    """The worked example's prompt change: shorter replies that drop the refund window and
    the ticket line (the scripted reply stands in for what the model now answers)."""
    spec = project / SPEC
    text = spec.read_text()
    text = text.replace(
        "Thanks for contacting Acme support. You asked: {input}. Our refund window is 30 days. "
        "Ticket opened.",
        "Thanks for contacting Acme support. You asked: {input}. We will get back to you.",
    )
    text = text.replace("quote the\n    30-day refund window", "keep replies\n    short")
    spec.write_text(text)
