"""Small helpers shared by the store tests."""

from __future__ import annotations

import multiprocessing
from typing import Any

from kneo.store import Store


def new_run(store: Store, **fields: object) -> str:
    """Create a run with sensible defaults; returns its id."""
    values: dict[str, object] = {
        "target": "workflow",
        "input_text": "hello",
        "workflow_name": "wf",
        "workflow_kind": "sequential",
    }
    values.update(fields)
    return store.create_run(**values).run_id


def process_context() -> Any:
    """Worker processes for the multi-process tests.

    ``forkserver`` with Kneo's store preloaded: children start in milliseconds instead of
    re-importing SQLAlchemy and Alembic each (as ``spawn`` does), and unlike plain ``fork``
    they never inherit the test process's open database connections.
    """
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(
        [
            "kneo.store",
            "kneo.store.migrate",
            "alembic.command",
            "psycopg",
            "sqlalchemy.dialects.postgresql",
            "sqlalchemy.dialects.sqlite",
        ]
    )
    return ctx
