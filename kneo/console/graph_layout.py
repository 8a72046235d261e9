"""Where the run page draws each node and edge of a workflow graph (an SVG, drawn by the
server like every console page: no script, nothing the CSP has to allow).

Pure: the graph answer (:func:`kneo.platform.run_graph.run_graph`) in, boxes and paths out.
Nodes go in columns from left to right by their distance from the start (breadth first, so
a loop back does not push its target further right); nodes no edge reaches (a concurrent
workflow's branches) share the first column, one under the other. An edge to a column at or
left of its source's (a loop, another round) is drawn as an arc under the nodes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

NODE_W, NODE_H = 168, 46
GAP_X, GAP_Y, PAD = 150, 22, 12


@dataclass(frozen=True)
class PlacedNode:
    id: str
    kind: str
    state: str
    visits: int
    x: int
    y: int


@dataclass(frozen=True)
class PlacedEdge:
    path: str
    label: str | None
    label_x: int
    label_y: int
    taken: bool
    back: bool


@dataclass(frozen=True)
class Drawing:
    width: int
    height: int
    nodes: tuple[PlacedNode, ...]
    edges: tuple[PlacedEdge, ...]


def _columns(
    ids: Sequence[str], edges: Sequence[Mapping[str, Any]], start: str | None
) -> dict[str, int]:
    """Each node's column: its breadth-first distance from ``start`` (0 where unreached)."""
    forward: dict[str, list[str]] = {i: [] for i in ids}
    for edge in edges:
        if edge["source"] in forward and edge["target"] in forward and edge["kind"] != "again":
            forward[edge["source"]].append(edge["target"])
    column: dict[str, int] = {}
    if start in forward:
        column[start] = 0
        queue = deque([start])
        while queue:
            node = queue.popleft()
            for target in forward[node]:
                if target not in column:
                    column[target] = column[node] + 1
                    queue.append(target)
    return {i: column.get(i, 0) for i in ids}


def layout(graph: Mapping[str, Any]) -> Drawing:
    """Boxes and edge paths for ``graph`` (its ``nodes``, ``edges`` and ``start``)."""
    nodes = list(graph.get("nodes") or [])
    edges = list(graph.get("edges") or [])
    column = _columns([n["id"] for n in nodes], edges, graph.get("start"))
    rows: dict[int, int] = {}
    placed: dict[str, PlacedNode] = {}
    for node in nodes:
        col = column[node["id"]]
        row = rows.get(col, 0)
        rows[col] = row + 1
        placed[node["id"]] = PlacedNode(
            node["id"],
            node["kind"],
            node.get("state", "pending"),
            int(node.get("visits", 0)),
            PAD + col * (NODE_W + GAP_X),
            PAD + row * (NODE_H + GAP_Y),
        )
    height = PAD * 2 + max(rows.values(), default=1) * (NODE_H + GAP_Y) - GAP_Y
    drawn = [
        _edge(placed, e, height) for e in edges if e["source"] in placed and e["target"] in placed
    ]
    back = any(e.back for e in drawn)
    width = PAD * 2 + (max(column.values(), default=0) + 1) * (NODE_W + GAP_X) - GAP_X
    return Drawing(width, height + (40 if back else 0), tuple(placed.values()), tuple(drawn))


def _edge(placed: Mapping[str, PlacedNode], edge: Mapping[str, Any], height: int) -> PlacedEdge:
    a, b = placed[edge["source"]], placed[edge["target"]]
    taken = int(edge.get("taken", 0)) > 0
    label = edge.get("label")
    if b.x > a.x:  # forward: right side of the source to the left side of the target
        x1, y1, x2, y2 = a.x + NODE_W, a.y + NODE_H // 2, b.x, b.y + NODE_H // 2
        mid = (x1 + x2) // 2
        path = f"M{x1},{y1} C{mid},{y1} {mid},{y2} {x2 - 2},{y2}"
        # the label near the target, where edges from one source have parted
        return PlacedEdge(path, label, x2 - GAP_X // 2, y2 - 6, taken, False)
    # back (or within a column): an arc under the drawing, bottom to bottom
    x1, x2 = a.x + NODE_W // 2, b.x + NODE_W // 2
    y1, y2, low = a.y + NODE_H, b.y + NODE_H, height + 24
    if x1 == x2:  # the same column: leave from the side
        x1 += NODE_W // 4
        x2 -= NODE_W // 4
    path = f"M{x1},{y1} C{x1},{low} {x2},{low} {x2},{y2 + 2}"
    return PlacedEdge(path, label or "again", (x1 + x2) // 2, low - 2, taken, True)


__all__ = ["Drawing", "PlacedEdge", "PlacedNode", "layout"]
