"""``/runs/{run_id}``: a run, its timeline (trace events) and its checkpoints."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from kneo.console.auth import ConsoleAuth, Viewer
from kneo.console.view import PageView, Render

_LIVE = ("queued", "running")
_TIMELINE_LIMIT = 500


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
        return view.show(
            "run.html",
            {
                "run": run,
                "events": list(reversed(trace["events"])),
                "events_total": trace["total"],
                "checkpoints": checkpoints["checkpoints"],
                "live": run["status"] in _LIVE,
            },
        )
