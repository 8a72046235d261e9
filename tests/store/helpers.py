"""Small helpers shared by the store tests."""

from __future__ import annotations

from kneo.store import Store


def new_run(store: Store, **fields: object) -> str:
    """Create a run with sensible defaults; returns its id."""
    values: dict[str, object] = {"target": "workflow", "input_text": "hello",
                                 "workflow_name": "wf", "workflow_kind": "sequential"}
    values.update(fields)
    return store.create_run(**values).run_id
