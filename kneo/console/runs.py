"""``/runs/{run_id}``: a run, its workflow graph, its timeline (trace events) and its
checkpoints; ``/sessions/{session_id}``: the chain of runs a caller grouped in a session, in
the order they were started, each linking to its run page."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import Response, StreamingResponse

from kneo.clock import utc_iso
from kneo.console.auth import ConsoleAuth, Viewer
from kneo.console.graph_layout import Drawing, layout
from kneo.console.paths import query_path
from kneo.console.view import PageView, Render
from kneo.errors import ErrorCode, KneoError, NotFound
from kneo.lifecycle import handoff_of
from kneo.platform import RunQuery
from kneo.platform.events import OPT_IN
from kneo.service.event_stream import event_position, run_event_stream
from kneo.store import RunRecord

if TYPE_CHECKING:
    from kneo.platform.manager import PlatformManager

_LIVE = ("queued", "running")
#: How long a run may wait for a worker before its page says none may be running (workers
#: poll every second or so, and a decision wakes the service's own at once).
UNCLAIMED_SECONDS = 5.0
_TIMELINE_LIMIT = 500
#: How often the live answer's stream reads the run's new events (seconds).
_ANSWER_POLL = 0.2
#: Runs of a session per page (then "later runs »", by cursor).
_CHAIN_PAGE = 50


#: How deep and how wide the run page draws a run's child runs (then "more").
_TREE_DEPTH, _TREE_NODES = 4, 50
_WAITING_CHILD = ("queued", "running", "paused", "starting")


def child_tree(mgr: PlatformManager, run: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The run's child runs (``kind: workflow`` steps), each with its own, as nested
    ``{run_id, step_id, status, children}``: at most :data:`_TREE_DEPTH` levels and
    :data:`_TREE_NODES` runs (a child cut there has ``more`` set)."""
    budget = [_TREE_NODES]

    def level(children: list[dict[str, Any]], depth: int) -> list[dict[str, Any]]:
        out = []
        for child in children:
            node = {**child, "children": [], "more": False}
            if child.get("run_id") and budget[0] > 0:
                budget[0] -= 1
                try:
                    below = mgr.get_run(child["run_id"]).get("children") or []
                except NotFound:
                    below = []
                if below and depth < _TREE_DEPTH:
                    node["children"] = level(below, depth + 1)
                node["more"] = bool(below) and depth >= _TREE_DEPTH
            out.append(node)
        return out

    return level(list(run.get("children") or []), 1)


def add_run_routes(router: APIRouter, auth: ConsoleAuth, render: Render) -> None:
    """``/runs/{run_id}``: a run, its timeline (trace events) and checkpoints."""

    @router.get("/runs/{run_id}", name="run")
    def run_page(
        request: Request, run_id: str, viewer: Viewer = Depends(auth.page("run"))
    ) -> Response:
        view = PageView(request, viewer, render)
        mgr = view.manager
        run = mgr.get_run(run_id, show_personal=viewer.show_personal, include_conversation=True)
        trace = mgr.trace(run_id, limit=_TIMELINE_LIMIT, sort_order="desc")
        checkpoints = mgr.checkpoints(run_id, limit=_TIMELINE_LIMIT)
        graph, drawing, graph_error = _graph(mgr, run_id)
        waiting = waiting_for_worker(mgr.get_run_record(run_id), mgr.clock.now())
        return view.show(
            "run.html",
            {
                "run": run,
                "tree": child_tree(mgr, run),
                "waiting_child": any(c["status"] in _WAITING_CHILD for c in run["children"]),
                "waiting": waiting,
                "events": list(reversed(trace["events"])),
                "events_total": trace["total"],
                "checkpoints": checkpoints["checkpoints"],
                "live": run["status"] in _LIVE,
                "graph": graph,
                "drawing": drawing,
                "graph_error": graph_error,
            },
        )


def add_answer_route(router: APIRouter, auth: ConsoleAuth, render: Render) -> None:
    """``/runs/{run_id}/answer``: the run's events as server-sent events, with its agents'
    answer as it is generated (``answer.delta``), which the run page's ``answer.js`` shows
    while the run runs. The viewer's project's run only (the stream's API route's scopes)."""

    @router.get("/runs/{run_id}/answer", name="run_answer")
    def answer_stream(
        request: Request,
        run_id: str,
        last_event_id: str | None = Header(None, alias="Last-Event-ID"),
        viewer: Viewer = Depends(auth.page("run_answer")),
    ) -> Response:
        mgr = PageView(request, viewer, render).manager
        after = event_position(last_event_id)
        mgr.get_run_record(run_id)  # not_found (another project's run too) before the stream
        stream = run_event_stream(
            request, mgr, run_id, after=after, wanted=OPT_IN, poll_seconds=_ANSWER_POLL
        )
        return StreamingResponse(
            stream,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )


def waiting_for_worker(run: RunRecord, now: datetime) -> dict[str, Any] | None:
    """Whether ``run`` waits for a worker none has claimed yet: queued (started with
    ``async_mode``), or decided or continued and handed to the workers
    (:mod:`kneo.lifecycle`: handed until a worker takes the run over).
    ``{"kind": "start" | "decision" | "continue", "since": ISO time, "stale": bool}``,
    ``stale`` once it has waited :data:`UNCLAIMED_SECONDS` (a worker polls far more often:
    none may be running), else ``None`` (the run page then shows its status alone)."""
    if run.status == "queued":
        kind, since = "start", run.created_at
    elif (mark := handoff_of(run)) is not None:  # handed (kneo.lifecycle): shown as running
        kind = str(mark.get("kind") or "decision")
        since = _time(mark.get("at")) or run.updated_at
    else:
        return None
    stale = (now - since).total_seconds() >= UNCLAIMED_SECONDS
    return {"kind": kind, "since": utc_iso(since), "stale": stale}


def _time(value: object) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None
    except ValueError:
        return None


def add_session_routes(router: APIRouter, auth: ConsoleAuth, render: Render) -> None:
    """``/sessions/{session_id}``: a session's runs, oldest first, each a link to its run."""

    @router.get("/sessions/{session_id}", name="session_chain")
    def session_page(
        request: Request,
        session_id: str,
        cursor: str | None = None,
        start: int = 0,
        viewer: Viewer = Depends(auth.page("session_chain")),
    ) -> Response:
        view = PageView(request, viewer, render)
        found = view.manager.list_runs(
            RunQuery(
                session_id=session_id, limit=_CHAIN_PAGE, sort_order="asc", cursor=cursor or None
            )
        )
        runs = found["runs"]
        if not runs and not cursor:
            raise NotFound(f"no run is in session {session_id!r}", code=ErrorCode.not_found)
        here = request.url.path
        following = found["next_cursor"]
        return view.show(
            "session.html",
            {
                "session_id": session_id,
                "runs": runs,
                "total": found["total"],
                "total_capped": found["total_capped"],
                "live": any(r["status"] in _LIVE for r in runs),
                "start": max(start, 0),  # the runs before this page (for their numbers)
                "next_url": query_path(here, {"cursor": following, "start": start + len(runs)})
                if following
                else None,
                "first_url": here if cursor else None,
            },
        )


def _graph(
    manager: PlatformManager, run_id: str
) -> tuple[dict[str, Any] | None, Drawing | None, str | None]:
    """The run's graph and its drawing, or why there is none (a run stored without its spec,
    a spec that no longer compiles): the page shows the reason instead of failing."""
    try:
        graph = manager.run_graph(run_id)
    except KneoError as exc:
        return None, None, str(exc)
    return graph, layout(graph), None
