"""docs/troubleshooting.md explains every error code the CLI and the API can emit.

The codes are read from the source (``docs/script/error_codes.py``: class attributes, raise
sites, the diagnostics catalogue, run-error records); the page's table is regenerated from
them (``docs/script/generate_troubleshooting.py``) keeping its hand-written cells. A code
that is new, gone or unexplained fails here.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "docs" / "script"
PAGE = ROOT / "docs" / "troubleshooting.md"


def _module(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


error_codes = _module("error_codes")


@pytest.fixture(scope="module")
def collected() -> dict[str, object]:
    return dict(error_codes.collect())


def test_the_page_is_current() -> None:
    """Regenerate with: python docs/script/generate_troubleshooting.py"""
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / "generate_troubleshooting.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_code_is_explained(collected: dict[str, object]) -> None:
    rows = re.findall(r"^\| `([^`]+)` \| ([^|]*) \| (.*?) \| (.*?) \|$", PAGE.read_text(), re.M)
    codes = collected
    assert [r[0] for r in rows] and set(codes) == {r[0] for r in rows}
    unexplained = [code for code, _, meaning, fix in rows if not meaning.strip() or not fix.strip()]
    assert unexplained == [], "explain these in docs/troubleshooting.md"


@pytest.mark.parametrize(
    ("code", "answer"),
    [
        ("forbidden", {403}),
        ("too_many_requests", {429}),
        ("database_unavailable", {503}),
        ("provider_secret_missing", {502}),
        ("provider_unavailable", {502}),  # chosen into a variable, raised as code=code or ...
        ("method_not_allowed", {405}),  # the service's status table
        ("internal_error", {400, 500}),  # a KneoError and a hand-built 500 envelope
        ("human_continue_failed", set()),  # a run-error record
        ("human_task_expired", {409}),  # a class's code, also recorded as a run error
        ("empty_desired_state", set()),  # a named constant
        ("E_TOOL_FACTORY", {400}),
        ("E_DOCUMENT_TOO_DEEP", set()),  # a limit table's value
    ],
)
def test_the_collector_reads_each_way_a_code_is_written(
    collected: dict[str, object], code: str, answer: set[int]
) -> None:
    assert collected[code].statuses == answer


def test_security_codes_are_covered(collected: dict[str, object]) -> None:
    codes = collected
    for code in (
        "E_SECRET_UNDECLARED",
        "E_DESTINATION_NOT_ALLOWED",
        "E_PROCESS_UNDECLARED",
        "E_MCP_SERVER_UNDECLARED",
        "E_URL_HAS_CREDENTIALS",
        "E_SECRET_NOT_BOUND",
        "E_FUNCTION_NOT_ALLOWED",
        "E_NUMBER_OUT_OF_RANGE",
        "too_many_requests",
    ):
        assert code in codes and f"| `{code}` |" in PAGE.read_text()


def test_a_new_raise_site_is_a_new_row(tmp_path: Path, collected: dict[str, object]) -> None:
    """The check can fail: a code added anywhere in the package shows up in the listing."""
    (tmp_path / "kneo" / "spec").mkdir(parents=True)
    shutil.copy(ROOT / "kneo" / "errors.py", tmp_path / "kneo" / "errors.py")
    shutil.copy(ROOT / "kneo" / "spec" / "diagnostics.py", tmp_path / "kneo" / "spec")
    (tmp_path / "kneo" / "planted.py").write_text(
        "from kneo.errors import Conflict, KneoError\n"
        "def f():\n"
        "    raise Conflict('x', code='planted_conflict')\n"
        "class Planted(KneoError):\n"
        "    code = 'planted_class'\n"
        "    http_status = 418\n"
    )
    codes = error_codes.collect(tmp_path)
    assert codes["planted_conflict"].statuses == {409}
    assert codes["planted_class"].statuses == {418}
    assert "planted_conflict" not in collected
