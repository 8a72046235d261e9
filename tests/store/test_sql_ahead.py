"""The statement texts compiled ahead (``kneo/store/sql_ahead.py``) are what Core compiles.

The same work as ``scripts/generate_sql_texts.py`` runs with nothing compiled ahead; the
file must hold exactly the texts it compiled, so a statement changed in Core and not
regenerated fails here (PostgreSQL's when ``KNEO_TEST_DATABASE_URL`` is set).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from sqlalchemy.dialects import sqlite

from kneo.store import compiled
from kneo.store.sql_ahead import TEXTS

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "generate_sql_texts.py"
REGENERATE = "run: python scripts/generate_sql_texts.py --pg <a PostgreSQL server URL>"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_sql_texts", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_texts_compiled_ahead_are_what_core_compiles(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url: str = request.getfixturevalue("db_url")
    assert url.startswith(backend)
    compiled_now = _script().workload(url, tmp_path / "project")
    ahead = TEXTS[backend]
    changed = sorted(
        repr(k) for k in ahead.keys() & compiled_now.keys() if ahead[k] != compiled_now[k]
    )
    assert not changed, f"statements changed in Core: {changed}; {REGENERATE}"
    assert ahead.keys() == compiled_now.keys(), REGENERATE


def test_a_statement_compiled_ahead_is_not_compiled_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key, (sql, names) = next(iter(TEXTS["sqlite"].items()))

    def cache() -> compiled.StatementCache:
        made = compiled.StatementCache()
        made.db = sqlite.pysqlite.dialect()
        return made

    def build() -> None:
        raise AssertionError("compiled again")

    assert cache().text(key, build) == compiled.Text(sql, names)
    monkeypatch.setattr(compiled, "AHEAD", {})
    with pytest.raises(AssertionError, match="compiled again"):
        cache().text(key, build)
