"""Shared fixtures: real registries, spec files in tmp dirs, and an in-process ``kneo``."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from kneo.runtimes import RuntimeRegistry, create_runtime_registry
from kneo.tools import ToolRegistry
from kneo.tools.defaults import create_tool_registry

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
#: The example specs this issue owns (others add examples that need custom registries).
EXAMPLE_SPECS = [
    EXAMPLES / name
    for name in (
        "research_agent.yaml",
        "human_approval_workflow.yaml",
        "smoke_human_workflow.yaml",
        "graph_review_workflow.yaml",
        "concurrent_review_workflow.yaml",
        "group_chat_workflow.yaml",
    )
]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests choose KNEO_ENV / KNEO_PROJECT_CONFIG explicitly; the host's never leak in."""
    for name in ("KNEO_ENV", "KNEO_PROJECT_CONFIG"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def tools() -> ToolRegistry:
    return create_tool_registry()


@pytest.fixture
def runtimes() -> RuntimeRegistry:
    return create_runtime_registry()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """An empty project root (the ``.kneo`` marker bounds ref lookups to it)."""
    (tmp_path / ".kneo").mkdir()
    return tmp_path


def write_yaml(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False), encoding="utf-8"
    )
    return path


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def kneo(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., CliResult]]:
    """Run ``kneo <args>`` in-process through the real entry point (``run_cli``)."""
    from kneo.cli import output
    from kneo.cli.main import app

    def run(*args: str, cwd: Path | None = None) -> CliResult:
        if cwd is not None:
            monkeypatch.chdir(cwd)
        monkeypatch.setattr(sys, "argv", ["kneo", *args])
        monkeypatch.setattr(output, "_error_format", None)
        capsys.readouterr()
        code = output.run_cli(app)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    yield run
