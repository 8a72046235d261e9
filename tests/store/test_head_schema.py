"""A fresh SQLite database is made at head from the committed DDL
(``kneo/store/migrations/head_sqlite.json``), the same database the migration scripts make:
the same tables, indexes and constraints, in the same words, with the same seeded rows. A
stale file, or a database that holds anything, leaves the work to the scripts."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest
import sqlalchemy as sa

from kneo.store import head_schema, open_store
from kneo.store.migrate import HEAD_REVISION, upgrade
from kneo.store.wire.dialects import dialect_for

REPO = Path(__file__).resolve().parents[2]


def _build_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "build_sqlite_head", REPO / "scripts" / "build_sqlite_head.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _made(path: Path, *, replay: bool) -> tuple[list[tuple[str, ...]], list[tuple[object, ...]]]:
    """``sqlite_master`` (implicit indexes included) and the seeded rows of a new database."""
    url = sa.make_url(f"sqlite:///{path}")
    dialect = dialect_for(url)
    engine = dialect.create_engine(url)
    try:
        assert upgrade(engine, dialect, replay=replay) == HEAD_REVISION
        with engine.connect() as conn:
            master = conn.exec_driver_sql(
                "SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_master ORDER BY name"
            ).all()
            rows = [
                *conn.exec_driver_sql("SELECT id, name, status, definition FROM projects"),
                *conn.exec_driver_sql("SELECT version_num FROM schema_migrations"),
            ]
    finally:
        engine.dispose()
    return [tuple(m) for m in master], [tuple(r) for r in rows]


def test_the_committed_ddl_is_what_the_scripts_make() -> None:
    """``python scripts/build_sqlite_head.py --check`` in the suite: regenerate and compare."""
    text = _build_script().generate()
    assert head_schema.HEAD_SQLITE.read_text(encoding="utf-8") == text, (
        "kneo/store/migrations/head_sqlite.json is stale: run python scripts/build_sqlite_head.py"
    )


def test_a_database_made_at_head_is_the_one_the_scripts_make(tmp_path: Path) -> None:
    made = _made(tmp_path / "at_head.sqlite", replay=False)
    replayed = _made(tmp_path / "replayed.sqlite", replay=True)
    assert made == replayed
    assert made[1] == [(1, "default", "active", None), (HEAD_REVISION,)]
    assert sum(1 for kind, *_ in made[0] if kind == "table") > 30


def test_a_stale_file_or_a_used_database_leaves_it_to_the_scripts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stale = tmp_path / "stale.json"
    stale.write_text(json.dumps({"revision": "0001", "statements": ["CREATE TABLE wrong (x)"]}))
    monkeypatch.setattr(head_schema, "HEAD_SQLITE", stale)
    made, _ = _made(tmp_path / "stale.sqlite", replay=False)
    assert "wrong" not in {name for _, name, *_ in made} and ("table", "runs", "runs") in {
        m[:3] for m in made
    }
    monkeypatch.undo()
    used = tmp_path / "used.sqlite"
    url = f"sqlite:///{used}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE mine (x INTEGER)")
        # not empty: the committed DDL is not applied
        assert head_schema.create_at_head(conn, HEAD_REVISION, "schema_migrations") is False
    engine.dispose()
    store = open_store(url)  # the scripts make the schema beside the table already there
    assert store.projects.get_project("default").id == 1
    store.close()
