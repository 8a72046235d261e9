"""Diagnostics of the workflow: its members have unique ids and name declared agents, humans
and functions; a graph's edges, conditions and ``on_stop`` targets name its nodes, every node
is reachable from ``start``, and a route selection's options are all node ids.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from kneo.names import is_valid_name
from kneo.spec.diagnostics import Diagnostic, diag
from kneo.spec.inventory import workflow_members
from kneo.spec.models import Spec, StepSpec, WorkflowSpec
from kneo.spec.ref_rules import ref_rules
from kneo.spec.refs import is_ref


def workflow_rules(spec: Spec, roots: list[Path]) -> list[Diagnostic]:
    wf = spec.workflow
    if wf is None:
        return []
    out: list[Diagnostic] = []
    at, members = workflow_members(spec)
    if not members:
        out.append(
            diag("E_EMPTY_WORKFLOW", at, f"The {wf.family} workflow has no {at.split('.')[-1]}.")
        )
        return out
    counts = Counter(s.id for s in members)
    seen: set[str] = set()
    for i, step in enumerate(members):
        path = f"{at}[{i}]"
        if counts[step.id] > 1 and step.id in seen:
            out.append(
                diag(
                    "E_DUPLICATE_ID",
                    f"{path}.id",
                    f"Id '{step.id}' is used more than once.",
                    "give every step a unique id",
                )
            )
        seen.add(step.id)
        out += _step_ref(spec, step, f"{path}.ref", roots)
    ids = set(counts)
    if wf.family == "graph":
        out += _graph_rules(spec, ids, roots)
    if wf.family == "handoff" and wf.selector is not None:
        for i, entry in enumerate(wf.selector.sequence):
            if entry not in ids:
                out.append(
                    diag(
                        "E_UNKNOWN_REF",
                        f"workflow.selector.sequence[{i}]",
                        f"Selector entry '{entry}' is not a participant id.",
                    )
                )
    return out


def _step_ref(spec: Spec, step: StepSpec, path: str, roots: list[Path]) -> list[Diagnostic]:
    comps = spec.components
    if step.kind == "agent":
        if step.ref not in spec.all_agents():
            known = ", ".join(spec.all_agents()) or "none declared"
            return [
                diag(
                    "E_UNKNOWN_REF",
                    path,
                    f"Agent '{step.ref}' is not declared (agents: {known}).",
                    "declare it as the top-level agent or under components.agents",
                )
            ]
        return []
    if step.kind == "human":
        if step.ref not in comps.humans:
            return [
                diag(
                    "E_UNKNOWN_REF",
                    path,
                    f"Human '{step.ref}' is not declared under components.humans.",
                    "add components.humans." + step.ref,
                )
            ]
        return []
    if step.kind == "workflow":
        if not is_valid_name(step.ref):
            return [
                diag(
                    "E_UNKNOWN_REF",
                    path,
                    f"'{step.ref}' is not a bundle name (a workflow step names a bundle of "
                    "the run's project).",
                    "use the bundle's name: 1-64 of A-Z a-z 0-9 . _ -",
                )
            ]
        return []
    if step.ref in comps.functions:
        return []
    if not is_ref(step.ref):
        return [
            diag(
                "E_UNKNOWN_REF",
                path,
                f"Function '{step.ref}' is not declared under components.functions.",
                "declare it there or use a 'module:function' ref",
            )
        ]
    return ref_rules(path, step.ref, roots)


def _graph_rules(spec: Spec, ids: set[str], roots: list[Path]) -> list[Diagnostic]:
    """A graph's edges and stops name its nodes, their conditions compile, and every node is
    reachable from ``start`` (over edges and ``on_stop`` targets)."""
    wf = spec.workflow
    assert wf is not None
    adjacency: dict[str, set[str]] = {i: set() for i in ids}
    out = _edge_rules(spec, ids, roots, adjacency)
    out += _on_stop_rules(wf, ids, adjacency)
    out += _route_option_rules(spec, ids)
    return out + _reachability_rules(wf, ids, adjacency)


def _edge_rules(
    spec: Spec, ids: set[str], roots: list[Path], adjacency: dict[str, set[str]]
) -> list[Diagnostic]:
    """Each edge's endpoints and condition; records the edge in ``adjacency``."""
    wf = spec.workflow
    assert wf is not None
    out: list[Diagnostic] = []
    for i, edge in enumerate(wf.edges):
        for end, name in (("from", edge.source), ("to", edge.target)):
            if name not in ids:
                out.append(
                    diag(
                        "E_UNKNOWN_REF",
                        f"workflow.edges[{i}].{end}",
                        f"Edge endpoint '{name}' is not a node id.",
                    )
                )
        if edge.source in ids and edge.target in ids:
            adjacency[edge.source].add(edge.target)
        cond = edge.condition
        if cond is not None and cond.regex is not None:
            try:
                re.compile(cond.regex)
            except re.error as exc:
                out.append(
                    diag(
                        "E_INVALID_CONDITION",
                        f"workflow.edges[{i}].condition.regex",
                        f"Invalid regex: {exc}.",
                    )
                )
        if (
            cond is not None
            and cond.predicate is not None
            and (is_ref(cond.predicate) or cond.predicate in spec.components.functions)
        ):
            # A bare name is a predicate registered with the engine at run time.
            path = f"workflow.edges[{i}].condition.predicate"
            ref = (
                spec.components.functions[cond.predicate].ref
                if cond.predicate in spec.components.functions
                else cond.predicate
            )
            out += ref_rules(path, ref, roots)
    return out


def _on_stop_rules(
    wf: WorkflowSpec, ids: set[str], adjacency: dict[str, set[str]]
) -> list[Diagnostic]:
    """A stopped loop goes on at its ``on_stop`` node, which must exist."""
    out: list[Diagnostic] = []
    for i, member in enumerate(wf.nodes):
        stop = member.human_review.on_stop if member.human_review else None
        if stop is None:
            continue
        if stop in ids and member.id in adjacency:
            adjacency[member.id].add(stop)  # a stopped loop goes on there
        elif stop not in ids:
            out.append(
                diag(
                    "E_UNKNOWN_REF",
                    f"workflow.nodes[{i}].human_review.on_stop",
                    f"on_stop '{stop}' is not a node id.",
                )
            )
    return out


def _reachability_rules(
    wf: WorkflowSpec, ids: set[str], adjacency: dict[str, set[str]]
) -> list[Diagnostic]:
    """The graph starts at a node, and every node can be reached from it."""
    out: list[Diagnostic] = []
    if wf.start is None or wf.start not in ids:
        message = (
            "The graph has no 'start' node."
            if wf.start is None
            else f"Start node '{wf.start}' is not a node id."
        )
        out.append(
            diag("E_GRAPH_NO_START", "workflow.start", message, "set workflow.start to a node id")
        )
        return out
    reached = {wf.start}
    frontier = [wf.start]
    while frontier:
        for nxt in adjacency[frontier.pop()]:
            if nxt not in reached:
                reached.add(nxt)
                frontier.append(nxt)
    for i, node in enumerate(wf.nodes):
        if node.id not in reached:
            out.append(
                diag(
                    "E_GRAPH_UNREACHABLE",
                    f"workflow.nodes[{i}]",
                    f"Node '{node.id}' cannot be reached from '{wf.start}'.",
                    "add an edge to it or remove it",
                )
            )
    return out


def _route_option_rules(spec: Spec, ids: set[str]) -> list[Diagnostic]:
    """A human node whose options name graph nodes is a route selection (kind ``route``);
    the engine treats it as one only when *every* option is a node id, so an option that is
    not (a typo, a removed node) would silently turn the route into a plain choice."""
    wf = spec.workflow
    assert wf is not None
    out: list[Diagnostic] = []
    for node in wf.nodes:
        human = spec.components.humans.get(node.ref) if node.kind == "human" else None
        if human is None or not set(human.options) & ids:
            continue
        for j, option in enumerate(human.options):
            if option not in ids:
                out.append(
                    diag(
                        "E_ROUTE_OPTION_UNKNOWN",
                        f"components.humans.{node.ref}.options[{j}]",
                        f"Route option '{option}' of human node '{node.id}' is not a node id "
                        f"(nodes: {', '.join(sorted(ids))}).",
                        "name only node ids in a route selection's options",
                    )
                )
    return out
