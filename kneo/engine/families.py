"""The workflow families as small deterministic programs over units.

Unit keys: sequential ``<step>``; graph ``<node>`` then ``<node>#<visit>``; concurrent
``branch:<participant>``; handoff ``turn<n>:<participant>``; group chat ``r<round>:<id>``.
Routing is a pure function of recorded outputs (or a person's recorded route selection), so
running a program again against the same state continues exactly where it stopped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from kneo.engine import conditions, gates
from kneo.engine.cancellation import RunCancelled
from kneo.engine.human import HumanRequest
from kneo.engine.journal import RunSuperseded
from kneo.engine.signals import ProbeStop, RunFailed, RunPaused
from kneo.errors import ErrorCode, KneoError
from kneo.spec.compiled import CompiledStep, CompiledWorkflow

if TYPE_CHECKING:
    from kneo.engine.workflow_run import WorkflowRun


def _sequential(ctx: WorkflowRun) -> str:
    text = ctx.input_text
    steps = ctx.workflow.steps
    last = len(steps) - 1
    for index, step in enumerate(steps):
        text = ctx.unit(
            step.id,
            step,
            text,
            closing=index == last,
            before_person=index < last and steps[index + 1].kind == "human",
            step_index=index,
        )
    return text


def _graph(ctx: WorkflowRun) -> str:
    wf = ctx.workflow
    if not wf.steps:
        return ctx.input_text
    nodes = {s.id: s for s in wf.steps}
    node: str | None = wf.start or wf.steps[0].id
    text = ctx.input_text
    visits: Counter[str] = Counter()
    while node is not None:
        if node not in nodes:
            raise KneoError(
                f"graph routes to unknown node '{node}'", code=ErrorCode.graph_unknown_node
            )
        visits[node] += 1
        if visits[node] > wf.max_visits:
            raise KneoError(
                f"node '{node}' would run a {visits[node]}th time; max_visits is {wf.max_visits}",
                code=ErrorCode.graph_max_visits,
                step_id=node,
            )
        if not ctx.probe:
            with ctx.state.lock:
                seen = ctx.state.visits.get(ctx.prefix + node, 0)
                ctx.state.visits[ctx.prefix + node] = max(seen, visits[node])
        key = node if visits[node] == 1 else f"{node}#{visits[node]}"
        review = nodes[node].human_review
        reviewed = review is not None and review.review_iterations and not ctx.probe
        # no edge: the graph ends here (unless a person reviews this iteration first)
        terminal = not reviewed and not any(e.source == node for e in wf.edges)
        output = ctx.unit(
            key, nodes[node], text, closing=terminal, node_id=node, visit=visits[node]
        )
        key = ctx.prefix + key  # the unit's key in the run (``unit`` prefixes its own)
        unit = ctx.state.completed(key) or {}
        following = unit.get("route") or None
        if reviewed and review is not None:
            verdict = gates.iteration(ctx, key, nodes[node], visits[node], output)
            if verdict.output != output:
                with ctx.state.lock:
                    ctx.state.units[key] = {**ctx.state.units[key], "output": verdict.output}
                output = verdict.output
            if verdict.stop:
                following = review.on_stop or None
                if not ctx.probe:
                    _record_route(ctx, key, node, following)
                node, text = following, output
                continue
        following = following or _route(wf, node, output)
        if not ctx.probe:
            _record_route(ctx, key, node, following)
        node, text = following, output
    return text


def _route(wf: CompiledWorkflow, node: str, output: str) -> str | None:
    """First matching conditional edge in declaration order, else the default, else the first
    unconditional edge; no edge ends the graph."""
    edges = [e for e in wf.edges if e.source == node]
    for edge in edges:
        if edge.condition is not None and conditions.evaluate(edge.condition, output):
            return edge.target
    for edge in edges:
        if edge.default:
            return edge.target
    for edge in edges:
        if edge.condition is None:
            return edge.target
    return None


def _record_route(ctx: WorkflowRun, key: str, node: str, target: str | None) -> None:
    with ctx.state.lock:
        if any(r.get("unit_key") == key for r in ctx.state.routes):
            return
        ctx.state.routes.append({"unit_key": key, "from": node, "to": target})


def _concurrent(ctx: WorkflowRun) -> str:
    steps = ctx.workflow.steps
    text = ctx.input_text
    results: dict[str, str] = {}
    errors: list[tuple[int, BaseException]] = []
    pauses: list[HumanRequest] = []
    probes: list[dict[str, Any]] = []

    def branch(index: int, step: CompiledStep) -> None:
        try:
            results[step.id] = ctx.unit(f"branch:{step.id}", step, text, branch=step.id)
        except RunPaused as pause:
            pauses.extend(pause.requests)
        except ProbeStop as stop:
            probes.extend(stop.units)
        except BaseException as exc:  # collected; raised in declaration order below
            errors.append((index, exc))

    pending = [
        (i, s)
        for i, s in enumerate(steps)
        if ctx.state.completed(f"{ctx.prefix}branch:{s.id}") is None
    ]
    if ctx.probe or len(pending) <= 1:
        for index, step in enumerate(steps):
            branch(index, step)
    else:
        for index, step in enumerate(steps):
            if ctx.state.completed(f"{ctx.prefix}branch:{step.id}") is not None:
                branch(index, step)
        workers = min(len(pending), ctx.engine.options.max_parallel)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kneo-branch") as pool:
            for future in [pool.submit(branch, i, s) for i, s in pending]:
                future.result()
    if probes:
        raise ProbeStop(probes)
    for _, exc in sorted(errors, key=lambda item: item[0]):
        if isinstance(exc, RunSuperseded | RunCancelled | RunFailed):
            raise exc
    if errors:
        raise sorted(errors, key=lambda item: item[0])[0][1]
    if pauses:
        order = {s.id: i for i, s in enumerate(steps)}
        raise RunPaused(sorted(pauses, key=lambda r: order.get(r.step_id, 0)))
    return "\n\n".join(f"## {s.id}\n{results[s.id]}" for s in steps)


def _handoff(ctx: WorkflowRun) -> str:
    wf = ctx.workflow
    by_id = {s.id: s for s in wf.steps}
    selector = wf.selector
    order = [p for p in (selector.sequence if selector else []) if p in by_id] or list(by_id)
    if selector is not None and selector.type == "round_robin":
        turns = selector.max_turns or len(order) * wf.rounds
    else:
        turns = selector.max_turns if selector and selector.max_turns else len(order)
    text = ctx.input_text
    for turn in range(turns):
        participant = by_id[order[turn % len(order)]]
        text = ctx.unit(
            f"turn{turn + 1}:{participant.id}",
            participant,
            text,
            turn=turn + 1,
            participant=participant.id,
        )
    return text


def _group_chat(ctx: WorkflowRun) -> str:
    wf = ctx.workflow
    topic = ctx.input_text
    lines: list[str] = []
    for round_no in range(1, wf.rounds + 1):
        for participant in wf.steps:
            conversation = "\n\n".join([f"Topic: {topic}", *lines]) if lines else topic
            output = ctx.unit(
                f"r{round_no}:{participant.id}",
                participant,
                conversation,
                round=round_no,
                participant=participant.id,
            )
            lines.append(f"[{participant.id}] {output}")
    return "\n\n".join(lines)


PROGRAMS: dict[str, Callable[[WorkflowRun], str]] = {
    "sequential": _sequential,
    "graph": _graph,
    "concurrent": _concurrent,
    "handoff": _handoff,
    "group-chat": _group_chat,
    "group_chat": _group_chat,
}
