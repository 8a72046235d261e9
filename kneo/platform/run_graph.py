"""A run's workflow graph with where the run is on it: ``GET /v1/runs/{id}/graph`` and the
console's run page; and the graph of a bundle's active revision, by name from the registry
(``GET /v1/registry/bundles/{bundle}/{environment}/graph``).

The nodes and edges come from the run's own spec, compiled as the run was
(:meth:`kneo.platform.driver.RunDriver.workflow_for`, the recovery view's way); the position
from its execution state, the JSON the journal checkpoints at every step boundary
(:mod:`kneo.engine.state`): no new stored field, and the same answer on SQLite and
PostgreSQL because it is read from the one run row.

:func:`position_of` is pure: which steps completed (in order, with their visit counts), which
routing decisions were taken, and the node the run is at: the unit executing (``running``),
the step whose person it waits for (``paused``), or the step that failed (``failed``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kneo.engine.state import DONE
from kneo.errors import InvalidRequest, NotFound
from kneo.spec.graph import WorkflowGraph, with_position, workflow_graph
from kneo.spec.loader import load_spec_data

if TYPE_CHECKING:
    from kneo.spec.compiled import CompiledWorkflow
    from kneo.spec.compiler import SpecCompiler
    from kneo.store import RunRecord
    from kneo.store.api import Store


@dataclass(frozen=True)
class RunPosition:
    """Where a run is: steps done (first reached first), visits per step, routes taken, and
    the node it is at (``failed``: it failed there)."""

    visited: list[str]
    visits: dict[str, int]
    taken: dict[tuple[str, str], int]
    current: str | None
    failed: bool


def _failed_step(state: Mapping[str, Any]) -> str | None:
    failure = state.get("failure") or {}
    if failure.get("step_id"):
        return str(failure["step_id"])
    for unit in (state.get("units") or {}).values():
        if unit.get("status") == "failed":
            return str(unit.get("step_id"))
    return None


def _current(state: Mapping[str, Any], status: str) -> str | None:
    if status == "paused":
        pending = state.get("pending") or []
        step = pending[0].get("step_id") if pending else None
        return str(step) if step else None
    if status == "failed":
        return _failed_step(state)
    if status == "running":
        step = (state.get("position") or {}).get("step_id")
        return str(step) if step else None
    return None


def position_of(state: Mapping[str, Any] | None, status: str) -> RunPosition:
    """The position of a run in ``status`` whose execution state is ``state``."""
    state = state or {}
    units = state.get("units") or {}
    done = [
        str(units[key]["step_id"])
        for key in state.get("order") or []
        if key in units and units[key].get("status") in DONE
    ]
    taken = Counter(
        (str(r["from"]), str(r["to"])) for r in state.get("routes") or [] if r.get("to")
    )
    return RunPosition(
        visited=list(dict.fromkeys(done)),
        visits=dict(Counter(done)),
        taken=dict(taken),
        current=_current(state, status),
        failed=status == "failed",
    )


def run_graph(run: RunRecord, workflow: CompiledWorkflow) -> dict[str, Any]:
    """The graph answer for a stored run (``RunRecord``) and its compiled workflow."""
    graph: WorkflowGraph = workflow_graph(workflow)
    where = position_of(run.state, str(run.status))
    placed = with_position(
        graph,
        visits=where.visits,
        visited=where.visited,
        current=where.current,
        failed=where.failed,
        taken=where.taken,
    )
    return {"run_id": run.run_id, "status": str(run.status), **placed.to_dict()}


def registry_graph(
    store: Store, compiler: SpecCompiler, bundle: str, environment: str
) -> dict[str, Any]:
    """The graph of the revision of ``bundle`` active in ``environment`` (``404`` when none
    is): its signed spec compiled as a run of it would be (every node ``pending``)."""
    active = store.registry.get_active(bundle, environment)
    if active is None:
        raise NotFound(
            f"bundle {bundle!r} has no active revision in {environment!r}", resource="bundle"
        )
    source = f"bundle {bundle} revision {active.revision}"
    workflow = compiler.compile(load_spec_data(dict(active.spec), source=source), source=source)
    return {
        "bundle": bundle,
        "environment": environment,
        "revision": active.revision,
        "digest": active.digest,
        **workflow_graph(workflow).to_dict(),
    }


def require_spec(run: RunRecord) -> None:
    """A run stored without its spec has no graph to draw (400, like its policy report)."""
    if not run.spec:
        raise InvalidRequest(f"run {run.run_id} carries no spec metadata", run_id=run.run_id)


__all__ = ["RunPosition", "position_of", "registry_graph", "require_spec", "run_graph"]
