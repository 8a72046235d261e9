"""``/schedules``: the schedules of the project's active revisions, as ``GET /v1/schedules``
gives them, with what the API leaves to a second look: why a schedule is held now (paused
by a person, its bundle suspended, its environment frozen) and its latest tick with the run
it started. Whoever may pause and resume (``schedule_ops``: the API's ``controller:write``)
gets the buttons; both go through :func:`kneo.platform.schedule_ops.set_paused`, audited as
the API's. The bundle page shows its own schedules through :func:`schedule_rows`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from kneo.console.auth import ConsoleAuth, Posted, Viewer
from kneo.console.view import PageView, Render
from kneo.errors import InvalidRequest, NotFound
from kneo.platform import schedule_ops as ops
from kneo.platform.bundles import BundleRunner
from kneo.platform.schedules import Scheduler


def add_schedule_routes(router: APIRouter, auth: ConsoleAuth, render: Render) -> None:
    """``/schedules``, and pause or resume one at
    ``/schedules/{bundle}/{environment}/{schedule}``."""

    @router.get("/schedules", name="schedules")
    def schedules(request: Request, viewer: Viewer = Depends(auth.page("schedules"))) -> Response:
        return schedules_page(PageView(request, viewer, render))

    @router.post("/schedules/{bundle}/{environment}/{schedule}", name="schedule_operation")
    def schedule_operation(
        request: Request,
        bundle: str,
        environment: str,
        schedule: str,
        form: Posted = Depends(auth.form("schedule_ops")),
    ) -> Response:
        view, posted = PageView(request, form[0], render), form[1]
        auth.check(view.viewer, "schedules")
        try:
            _pause_or_resume(view, (bundle, environment, schedule), posted)
        except (InvalidRequest, NotFound) as exc:
            return schedules_page(view, notice=exc.message, status_code=exc.http_status)
        return view.redirect("schedules")


def _pause_or_resume(view: PageView, key: tuple[str, str, str], posted: Mapping[str, str]) -> None:
    operation = posted.get("operation") or ""
    if operation not in ("pause", "resume"):
        raise InvalidRequest("choose pause or resume", field="operation")
    ops.set_paused(view.manager, key, operation == "pause", actor=view.viewer.name)


def schedule_rows(platform: BundleRunner, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``items`` (the API's views of schedules), each with ``held``: why it does not tick now
    (none: it ticks), and ``latest``: its newest tick (instant, status, run), or ``None``."""
    if not items:
        return []
    store = platform.store
    suspended, frozen = Scheduler(platform).holds(store.clock.now())
    rows = []
    for item in items:
        key = (item["bundle"], item["environment"], item["name"])
        held = []
        if item["paused"]:
            held.append(f"paused by {item['paused_by'] or 'a person'}")
        if key[:2] in suspended:
            held.append("its bundle is suspended here")
        if key[1] in frozen:
            held.append(f"{key[1]} is frozen: {frozen[key[1]]}")
        latest = store.schedules.ticks(key, limit=1)
        rows.append({**item, "held": held, "latest": latest[0] if latest else None})
    return rows


def schedules_page(
    view: PageView, *, notice: str | None = None, status_code: int = 200
) -> Response:
    """The page (module docstring); ``notice``: why a pause or resume was refused."""
    platform = view.manager
    rows = schedule_rows(platform, ops.list_schedules(platform))
    return view.show(
        "schedules.html", {"schedules": rows, "notice": notice}, status_code=status_code
    )
