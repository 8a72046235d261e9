"""Write ``kneo/store/migrations/head_sqlite.json``: the DDL a SQLite database has after every
migration script ran, which a fresh database is then made from in one transaction
(:mod:`kneo.store.head_schema`). ``--check``: exit 1 when the committed file is stale."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import sqlalchemy as sa

from kneo.store.head_schema import HEAD_SQLITE, schema_of
from kneo.store.migrate import HEAD_REVISION, upgrade
from kneo.store.wire.dialects import dialect_for


def generate() -> str:
    """The file's text, from a database the scripts built."""
    with tempfile.TemporaryDirectory() as scratch:
        url = sa.make_url(f"sqlite:///{Path(scratch) / 'head.sqlite'}")
        dialect = dialect_for(url)
        engine = dialect.create_engine(url)
        try:
            assert upgrade(engine, dialect, replay=True) == HEAD_REVISION
            with engine.connect() as conn:
                statements = schema_of(conn)
        finally:
            engine.dispose()
    return json.dumps({"revision": HEAD_REVISION, "statements": statements}, indent=1) + "\n"


def main(argv: list[str]) -> int:
    text = generate()
    if "--check" in argv:
        if HEAD_SQLITE.read_text(encoding="utf-8") != text:
            print(f"{HEAD_SQLITE} is stale: run python scripts/build_sqlite_head.py")
            return 1
        return 0
    HEAD_SQLITE.write_text(text, encoding="utf-8")
    print(f"wrote {HEAD_SQLITE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
