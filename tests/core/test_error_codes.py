"""Errors are a table: every code is a row of ``kneo.errors.ErrorCode``, written as
``ErrorCode.<code>`` wherever the source raises or records one, agreeing with the class that
raises it, and listed in ``docs/service_api.md``; ``retryable``/``retry_after`` come from the
row and drive the service's ``Retry-After``.

The source is read with ``ast`` by ``docs/script/error_codes.py`` (the same reader that keeps
``docs/troubleshooting.md`` complete), so a bare string code anywhere in ``kneo/`` fails here.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from kneo.errors import (
    ERRORS,
    RETRY_AFTER_SECONDS,
    DatabaseUnavailable,
    ErrorCode,
    KneoError,
    NotFound,
    NotReady,
    TooManyRequests,
)

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "docs" / "script"

#: How a code that no ``KneoError`` raises reaches a user (the row's ``category``).
RECORDED = {"run error", "reconcile problem", "response"}

#: A status a code is raised with besides its row's, and why that is no wire contract.
ALSO_RAISED = {
    ("internal_error", 400): "the controller's plan check (a bug); recorded as a problem",
}


def _module(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


error_codes = _module("error_codes")


@pytest.fixture(scope="module")
def collected() -> dict[str, Any]:
    return dict(error_codes.collect())


def test_every_code_in_the_source_is_written_from_the_table(collected: dict[str, Any]) -> None:
    bare = {code: entry.literals for code, entry in collected.items() if entry.literals}
    assert bare == {}, "write these as ErrorCode.<code> (and add a row if it is new)"


def test_the_table_is_exactly_the_codes_the_source_uses(collected: dict[str, Any]) -> None:
    used = {code for code, e in collected.items() if e.files - {"kneo/spec/diagnostics.py"}}
    assert used - set(ERRORS) == set(), "add a row to kneo.errors.ErrorCode"
    assert set(ERRORS) - used == set(), "a row no code path uses: remove it"


def test_each_constant_is_its_own_code() -> None:
    names = {k: v for k, v in vars(ErrorCode).items() if not k.startswith("_")}
    assert names == {code: code for code in ERRORS}


def test_rows_agree_with_the_classes_that_raise_them(collected: dict[str, Any]) -> None:
    for code, row in ERRORS.items():
        entry = collected[code]
        extra = {s for s in entry.statuses if (code, s) not in ALSO_RAISED}
        if row.category in RECORDED:
            assert extra <= {row.http_status} if row.http_status else not extra, code
            continue
        assert row.http_status is not None, code
        assert extra <= {row.http_status}, (code, entry.statuses)
        if entry.classes:  # a code chosen at run time (a table's value) is seen by no class
            assert row.category in entry.classes, (code, entry.classes)
        assert row.summary and "\n" not in row.summary, code


def test_every_503_is_retryable_after_the_pause() -> None:
    """The wire promise: every 503 carries ``Retry-After: 2``, and only transient codes are
    retryable."""
    for row in ERRORS.values():
        if row.http_status == 503:
            assert row.retryable and row.retry_after == RETRY_AFTER_SECONDS, row.code
        elif row.retryable:
            throttled = (ErrorCode.too_many_requests, ErrorCode.project_limit_reached)
            assert row.code in throttled, row.code


def test_an_error_reads_retryable_from_its_row() -> None:
    assert DatabaseUnavailable("down").retryable
    assert DatabaseUnavailable("down").retry_after == RETRY_AFTER_SECONDS
    assert NotReady("x", code=ErrorCode.schema_too_new).retryable
    assert not NotFound("gone").retryable and NotFound("gone").retry_after is None
    throttled = TooManyRequests("slow down", retry_after=7)
    assert throttled.retryable and throttled.retry_after == 7
    assert throttled.to_dict()["retry_after"] == 7  # the envelope is unchanged
    unknown = KneoError("a diagnostic", code="E_NOT_A_ROW")
    assert not unknown.retryable and unknown.code == "E_NOT_A_ROW"


def test_the_service_sets_retry_after_from_the_error() -> None:
    from kneo.service.errors import error_headers

    assert error_headers(503, ErrorCode.database_unavailable) == {"Retry-After": "2"}
    assert error_headers(503, ErrorCode.not_ready) == {"Retry-After": "2"}
    assert error_headers(429, ErrorCode.too_many_requests, 7) == {"Retry-After": "7"}
    assert error_headers(401, ErrorCode.unauthorized) == {"WWW-Authenticate": "Bearer"}
    assert error_headers(404, ErrorCode.not_found) == {}


def test_codes_are_plain_strings_on_the_wire() -> None:
    import json

    import yaml

    error = NotFound("no such run")
    assert type(error.code) is str and type(ErrorCode.not_found) is str
    assert json.loads(json.dumps(error.to_dict()))["error"] == "not_found"
    assert yaml.safe_load(yaml.safe_dump(error.to_dict()))["error"] == "not_found"


def test_service_api_lists_every_code() -> None:
    page = (ROOT / "docs" / "service_api.md").read_text()
    missing = [code for code in ERRORS if f"| `{code}` |" not in page]
    assert missing == [], "run python docs/script/generate_troubleshooting.py"


def test_a_bare_string_code_is_found(tmp_path: Path) -> None:
    """The check can fail: a code written as a string anywhere in the package is reported."""
    (tmp_path / "kneo" / "spec").mkdir(parents=True)
    shutil.copy(ROOT / "kneo" / "errors.py", tmp_path / "kneo" / "errors.py")
    shutil.copy(ROOT / "kneo" / "spec" / "diagnostics.py", tmp_path / "kneo" / "spec")
    (tmp_path / "kneo" / "planted.py").write_text(
        "from kneo.errors import Conflict, ErrorCode\n"
        "PLANTED = 'planted_constant'\n"
        "def f(x):\n"
        "    if x:\n"
        "        raise Conflict('x', code='planted_conflict')\n"
        "    raise Conflict('x', code=ErrorCode.conflict if x else PLANTED)\n"
        "def g():\n"
        "    return {'code': 'planted_record'}\n"
    )
    codes = error_codes.collect(tmp_path)
    assert codes["planted_conflict"].literals == ["kneo/planted.py:5"]
    assert codes["planted_constant"].literals == ["kneo/planted.py:2"]
    assert codes["planted_record"].literals == ["kneo/planted.py:8"]
    assert codes["conflict"].literals == [] and "Conflict" in codes["conflict"].classes
