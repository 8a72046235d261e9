"""docs/tutorial_custom_tool.md works as printed, and its files are the ones that ship.

The walk starts from a project copy *without* the files the page tells a reader to create,
creates each from its printed block, then runs the page's ``bash`` blocks in order: validate
the spec, run it through the printed factory and through ``kneo run``, find the tool call in
the trace table.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from tests.e2e.doc_walk import FENCE, ROOT, project_copy, reader_env, run_script

PAGE = ROOT / "docs" / "tutorial_custom_tool.md"
CREATE = re.compile(r"[Cc]reate `(examples/[\w./]+)`")


def created_files() -> dict[str, str]:
    """Each file the page says to create -> its printed content (the next fenced block)."""
    text = PAGE.read_text()
    files: dict[str, str] = {}
    for match in CREATE.finditer(text):
        block = FENCE.search(text, match.end())
        assert block is not None, match.group(1)
        files[match.group(1)] = block.group(2)
    return files


def _code(source: str) -> str:
    """A module's code without its docstring and comments (``ast``-normalized)."""
    body = ast.parse(source).body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    return ast.unparse(ast.Module(body=body, type_ignores=[]))


def test_the_page_creates_the_tutorial_files() -> None:
    assert set(created_files()) == {
        "examples/my_tools.py",
        "examples/my_factory.py",
        "examples/lookup_agent.yaml",
        "examples/run_lookup.py",
        "examples/serve_lookup.py",
    }


@pytest.mark.parametrize("name", sorted(created_files()))
def test_the_shipped_file_is_the_printed_one(name: str) -> None:
    printed, shipped = created_files()[name], (ROOT / name).read_text()
    if name.endswith(".py"):
        assert _code(printed) == _code(shipped)
    else:
        assert printed == shipped


def test_the_project_registry_is_not_a_tutorial_file() -> None:
    """What the project config depends on is never a file a reader is told to (re)create."""
    config = (ROOT / ".kneo" / "config.yaml").read_text()
    registry = re.search(r"^tool_registry: ([\w.]+):", config, re.M)
    assert registry is not None
    module_file = registry.group(1).replace(".", "/") + ".py"
    assert (ROOT / module_file).is_file() and module_file not in created_files()


def test_custom_tool_tutorial_as_printed(tmp_path: Path) -> None:
    project = project_copy(tmp_path / "project")
    files = created_files()
    for name in files:
        (project / name).unlink()
    for name, content in files.items():  # step by step, as the reader creates them
        (project / name).write_text(content)
    script = "\n".join(body for lang, body in FENCE.findall(PAGE.read_text()) if lang == "bash")
    walked = run_script(script, project, reader_env(tmp_path))
    assert walked.returncode == 0, walked.stdout[-3000:] + walked.stderr[-3000:]
    out = walked.stdout
    assert "examples/lookup_agent.yaml: valid" in out
    assert out.count("The email for u-002 is bob@example.com.") == 2  # run_lookup, kneo run
    trace = out.split("trace run_", 1)[1]
    started = [line for line in trace.splitlines() if "tool_call_started" in line]
    completed = [line for line in trace.splitlines() if "tool_call_completed" in line]
    assert len(started) == len(completed) == 1
    assert "lookup_user" in started[0] and "lookup_user" in completed[0]
    run_id = re.findall(r"run_id=(\S+)", out)[-1]
    events = run_script(f"kneo runs trace {run_id} -o json", project, reader_env(tmp_path))
    calls = [
        e for e in json.loads(events.stdout)["events"] if e["event_type"] == "tool_call_completed"
    ]
    assert calls[0]["payload"]["result"] == "[REDACTED]"
