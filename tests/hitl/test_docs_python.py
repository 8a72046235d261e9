"""The Python snippets of ``docs/human_in_the_loop.md`` run as written, in order, in a fresh
project directory (each snippet asserts the end state the docs describe)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.hitl.conftest import REPO

DOC = REPO / "docs" / "human_in_the_loop.md"


def python_snippets() -> list[str]:
    section = DOC.read_text().split("\n## Python\n", 1)[1]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_every_pause_kind_has_a_snippet() -> None:
    text = "\n".join(python_snippets())
    for declared in (
        "human_step(",
        "WB.confirmation(",
        "WB.typed_input(",
        "WB.output_review(",
        "WB.route_step(",
        "approval_required=",
        '"ask_question"',
        'on_error="pause"',
        "WB.iteration_review(",
        "tool_input=",
        "WB.external_tool(",
        "resolver=lambda",
    ):
        assert declared in text, declared


def test_python_snippets_run(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [k for k in os.environ if k.startswith("KNEO_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("KNEO_HITL_COUNTER", str(project / "counter.txt"))
    monkeypatch.chdir(project)
    namespace: dict[str, object] = {"__name__": "docs_snippets"}
    try:
        for index, snippet in enumerate(python_snippets()):
            exec(compile(snippet, f"{DOC}#python-{index}", "exec"), namespace)
    finally:
        manager = namespace.get("manager")
        if manager is not None:
            manager.store.close()  # type: ignore[attr-defined]
    assert (project / ".kneo").exists()  # the runs went to the project's own store
