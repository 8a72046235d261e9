"""A compiled workflow's shape as nodes and edges: what ``/v1/specs/graph``, ``/v1/runs/{id}/graph``
and the console's run page draw.

Pure (a :class:`~kneo.spec.compiled.CompiledWorkflow` in, plain values out). Every family has
a graph, so a reader never has to tell "no graph" from "a graph with no nodes":

* ``sequential``: the steps, each feeding the next (a spec run as its agent: one node);
* ``graph``: the declared nodes and edges, a condition shown as people read it
  (``contains "APPROVED"``), the default edge marked;
* ``concurrent``: the branches, no edges (each gets the input; the outputs are joined);
* ``handoff``: the selector's turn order (``sequence``), or the participants in order with an
  edge back to the first (``round_robin``, when its turns go round more than once);
* ``group-chat``: the participants in order, with an edge back to the first for each further
  round.

Node ids are step ids, the ids a run's state records its units under, so a run's visited and
current nodes (:mod:`kneo.platform.run_graph`) land on these nodes directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from itertools import pairwise
from typing import Any, Literal

from kneo.spec.compiled import CompiledStep, CompiledWorkflow
from kneo.spec.models import EdgeCondition, EdgeSpec

#: ``next``: runs after its source; ``branch``: taken when its condition matches (or, as the
#: default, when none does); ``again``: the way back for another round or turn.
EdgeKind = Literal["next", "branch", "again"]
#: Where a run is on a node: not reached, done (at least once), in progress or waiting for
#: a person, or where it failed.
NodeState = Literal["pending", "visited", "current", "failed"]


@dataclass(frozen=True)
class GraphNode:
    """One step of the workflow as a node."""

    id: str
    kind: str
    ref: str
    on_error: str = "fail"
    max_retries: int = 0
    timeout_seconds: float | None = None
    #: Set on a run's graph: how often the run executed this node, and where it stands.
    visits: int = 0
    state: NodeState = "pending"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "ref": self.ref,
            "on_error": self.on_error,
            "max_retries": self.max_retries,
            "timeout_seconds": self.timeout_seconds,
            "visits": self.visits,
            "state": self.state,
        }


@dataclass(frozen=True)
class GraphEdge:
    """A way from one node to the next; ``condition`` is its test as people read it."""

    source: str
    target: str
    kind: EdgeKind = "next"
    condition: str | None = None
    default: bool = False
    #: Set on a run's graph: how often the run went this way.
    taken: int = 0

    @property
    def label(self) -> str | None:
        """What a drawing writes on the edge."""
        if self.condition is not None:
            return self.condition
        if self.default:
            return "otherwise"
        return "again" if self.kind == "again" else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "kind": self.kind,
            "condition": self.condition,
            "default": self.default,
            "label": self.label,
            "conditional": self.condition is not None,
            "taken": self.taken,
        }


@dataclass(frozen=True)
class WorkflowGraph:
    """A workflow's nodes and edges, where it starts, and (for a run) where it is."""

    family: str
    name: str
    target: str
    start: str | None
    nodes: tuple[GraphNode, ...]
    edges: tuple[GraphEdge, ...]
    max_visits: int | None = None
    rounds: int | None = None
    #: Set on a run's graph: the node in progress, waiting or failed, and the nodes executed
    #: in the order they were first reached.
    current: str | None = None
    visited: tuple[str, ...] = field(default=())

    def node_ids(self) -> tuple[str, ...]:
        return tuple(n.id for n in self.nodes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "workflow_name": self.name,
            "workflow_kind": self.family,
            "target": self.target,
            "start": self.start,
            "max_visits": self.max_visits,
            "rounds": self.rounds,
            "nodes": [n.to_dict() for n in self.nodes],
            "edges": [e.to_dict() for e in self.edges],
            "current": self.current,
            "visited": list(self.visited),
        }


def describe_condition(condition: EdgeCondition) -> str:
    """``contains "APPROVED"``, ``matches /^ok/``, ``predicate mod:fn``; ``(case-sensitive)``
    when it is."""
    if condition.predicate is not None:
        return f"predicate {condition.predicate}"
    tests = (
        ("contains", condition.contains),
        ("does not contain", condition.not_contains),
        ("equals", condition.equals),
    )
    text = next((f'{word} "{value}"' for word, value in tests if value is not None), None)
    if text is None:
        text = f"matches /{condition.regex}/"
    return text if condition.ignore_case else f"{text} (case-sensitive)"


def _node(step: CompiledStep) -> GraphNode:
    return GraphNode(
        id=step.id,
        kind=step.kind,
        ref=step.ref,
        on_error=step.on_error,
        max_retries=step.max_retries,
        timeout_seconds=step.timeout_seconds,
    )


def _chain(ids: list[str]) -> list[GraphEdge]:
    return [GraphEdge(a, b) for a, b in pairwise(ids)]


def _declared(edge: EdgeSpec) -> GraphEdge:
    condition = describe_condition(edge.condition) if edge.condition is not None else None
    kind: EdgeKind = "branch" if condition is not None or edge.default else "next"
    return GraphEdge(edge.source, edge.target, kind, condition, edge.default)


def _edges(wf: CompiledWorkflow, ids: list[str]) -> tuple[list[GraphEdge], str | None]:
    """The family's edges and its start node."""
    if wf.family == "graph":
        return [_declared(e) for e in wf.edges], wf.start or (ids[0] if ids else None)
    if wf.family == "concurrent":
        return [], None
    if wf.family == "handoff" and wf.selector is not None and wf.selector.type == "sequence":
        order = list(wf.selector.sequence) or ids
        return list(dict.fromkeys(_chain(order))), order[0] if order else None
    edges = _chain(ids)
    max_turns = wf.selector.max_turns if wf.family == "handoff" and wf.selector else None
    again = wf.rounds > 1 if wf.family == "group-chat" else (max_turns or 0) > len(ids)
    if again and len(ids) > 1:
        edges.append(GraphEdge(ids[-1], ids[0], "again"))
    return edges, ids[0] if ids else None


def workflow_graph(wf: CompiledWorkflow) -> WorkflowGraph:
    """The nodes and edges of a compiled workflow (no run position: every node ``pending``)."""
    ids = [s.id for s in wf.steps]
    edges, start = _edges(wf, ids)
    return WorkflowGraph(
        family=wf.family,
        name=wf.name,
        target=wf.target,
        start=start,
        nodes=tuple(_node(s) for s in wf.steps),
        edges=tuple(edges),
        max_visits=wf.max_visits if wf.family == "graph" else None,
        rounds=wf.rounds if wf.family == "group-chat" else None,
    )


def with_position(
    graph: WorkflowGraph,
    *,
    visits: dict[str, int],
    visited: list[str],
    current: str | None,
    failed: bool,
    taken: dict[tuple[str, str], int],
) -> WorkflowGraph:
    """``graph`` with a run's position on it: each node's visits and state, each edge's
    ``taken`` count, the ``current`` node (``failed``: the run failed there) and ``visited``
    (first reached first). Ids the graph does not have are left out."""
    known = set(graph.node_ids())

    def state(node: GraphNode) -> NodeState:
        if node.id == current:
            return "failed" if failed else "current"
        return "visited" if visits.get(node.id) else "pending"

    nodes = tuple(replace(n, visits=visits.get(n.id, 0), state=state(n)) for n in graph.nodes)
    edges = tuple(replace(e, taken=taken.get((e.source, e.target), 0)) for e in graph.edges)
    return replace(
        graph,
        nodes=nodes,
        edges=edges,
        current=current if current in known else None,
        visited=tuple(v for v in dict.fromkeys(visited) if v in known),
    )


__all__ = [
    "EdgeKind",
    "GraphEdge",
    "GraphNode",
    "NodeState",
    "WorkflowGraph",
    "describe_condition",
    "with_position",
    "workflow_graph",
]
