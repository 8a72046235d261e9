"""Every `kneo ...` command shown in README.md and docs/ names real commands and real flags.

Journeys are executed elsewhere (README quickstart, tutorial tests); this guard catches the
drift that creeps in when a flag or command is renamed and a page is not.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer.main

from kneo.cli.main import app

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PAGES = [p for p in PAGES if p.name != "cli_reference.md"]


def _commands(page: Path) -> list[str]:
    found: list[str] = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", page.read_text(), re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.strip()
            if line.startswith("$ "):
                line = line[2:]
            if re.match(r"^kneo\s", line):
                found.append(line.split(" #", 1)[0].split(" | ", 1)[0].split(" > ", 1)[0])
    return found


CASES = [(page.name, cmd) for page in PAGES for cmd in _commands(page)]


def _resolve(tokens: list[str]) -> tuple[Any, list[str]]:
    """Walk the command tree (Typer vendors its own click, so duck-type groups)."""
    command: Any = typer.main.get_command(app)
    ctx = command.context_class(command)
    rest = tokens[1:]
    while hasattr(command, "get_command") and rest and not rest[0].startswith("-"):
        sub = command.get_command(ctx, rest[0])
        if sub is None:
            break
        command, rest = sub, rest[1:]
        ctx = command.context_class(command, parent=ctx)
    return command, rest


@pytest.mark.parametrize(("page", "line"), CASES, ids=[f"{p}:{c[:60]}" for p, c in CASES])
def test_documented_command_exists(page: str, line: str) -> None:
    tokens = shlex.split(line.replace("$(", "(").replace("<", "'<").replace(">", ">'"))
    command, rest = _resolve(tokens)
    if hasattr(command, "get_command") and rest and not rest[0].startswith("-"):
        pytest.fail(f"{page}: unknown command in `{line}`: {rest[0]!r}")
    known = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    known.add("--help")  # every command has it
    for token in rest:
        if token.startswith("--"):
            flag = token.split("=", 1)[0]
            assert flag in known, f"{page}: `{line}` uses unknown flag {flag}"
