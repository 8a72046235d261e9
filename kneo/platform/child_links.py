"""How a child run and its parent name each other (:mod:`kneo.platform.children`): the
child's id, fixed by its parent's wait; the parent's link in the child's metadata; the
children a run's state names. Pure functions of records: the run view reads them too."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from typing import Any

from kneo.engine.child_step import CHILD_RUN
from kneo.lifecycle import RunStatus
from kneo.store import RunRecord

#: who records a child run's outcome on its parent's wait (audited as this actor)
CHILD_ACTOR = "system:child-run"
#: the key of a child run's metadata that names its parent
PARENT_KEY = "parent"


def child_run_id(parent_run_id: str, request_id: str) -> str:
    """The child run's id for the parent's wait ``request_id``: the same in every process."""
    digest = hashlib.sha256(f"{parent_run_id}\n{request_id}".encode()).hexdigest()
    return f"run_child_{digest[:24]}"


def waits(run: RunRecord) -> Iterator[dict[str, Any]]:
    """The run's pending waits on child runs (requests of kind ``child_run``)."""
    if run.status != RunStatus.PAUSED:
        return
    for request in (run.state or {}).get("pending") or ():
        if request.get("kind") == CHILD_RUN:
            yield dict(request)


def parent_of(run: RunRecord) -> str | None:
    link = (run.metadata or {}).get(PARENT_KEY)
    return str(link["run_id"]) if isinstance(link, Mapping) and link.get("run_id") else None


def children_of(run: RunRecord) -> list[dict[str, Any]]:
    """The run's child runs, from its state: those it waits on and those that answered
    (``run_id`` ``None`` for a child that could not start)."""
    state = run.state or {}
    found: list[dict[str, Any]] = []
    for decision in (state.get("decisions") or {}).values():
        meta = decision.get("metadata") or {}
        if decision.get("actor") == CHILD_ACTOR:
            found.append({"run_id": meta.get("child_run_id"), "step_id": meta.get("step_id")})
    for request in waits(run):
        step = request.get("step_id") or (request.get("context") or {}).get("step_id")
        found.append({"run_id": child_run_id(run.run_id, request["request_id"]), "step_id": step})
    return found


__all__ = ["CHILD_ACTOR", "PARENT_KEY", "child_run_id", "children_of", "parent_of", "waits"]
