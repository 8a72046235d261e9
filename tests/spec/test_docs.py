"""The spec docs stay true: the diagnostic table mirrors ``CODES`` and the API sample runs."""

from __future__ import annotations

import re

import pytest

from kneo.spec.diagnostics import CODES

from .conftest import REPO

SPEC_DOC = REPO / "docs" / "spec.md"


def test_diagnostic_table_matches_the_catalogue() -> None:
    rows = re.findall(
        r"^\| `([A-Z_]+)` \| (error|warning|info) \| (.+?) \|$", SPEC_DOC.read_text(), re.M
    )
    assert [(code, sev, text) for code, sev, text in rows] == [
        (c, s, m) for c, (s, m) in CODES.items()
    ]


def test_python_api_sample_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    sample = re.search(r"```python\n(.*?)```", SPEC_DOC.read_text(), re.S)
    assert sample is not None
    namespace: dict[str, object] = {}
    exec(compile(sample.group(1), str(SPEC_DOC), "exec"), namespace)
    assert namespace["workflow"].name == "research-pipeline"  # type: ignore[attr-defined]
