"""``/inbox``: the pending requests, one row each, filtered, sorted and paged, with the counts
per assignee (capped), and ``304`` while the client's copy is still current."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from kneo.console.auth import ConsoleAuth, Viewer
from kneo.console.forms import KIND_LABELS
from kneo.console.paths import console_path, query_path
from kneo.console.view import PageView, Render
from kneo.errors import InvalidRequest
from kneo.platform import TaskQuery
from kneo.service.deciders import assignee_names

#: Inbox page size (capped by ``KNEO_SERV_MAX_LIST_ITEMS``).
INBOX_PAGE = 50
#: ``older_than`` choices of the inbox filter, in seconds.
AGES = {"1h": 3600, "4h": 14_400, "1d": 86_400, "3d": 259_200, "7d": 604_800}
#: An inbox listing with nothing in it (a search that was refused).
_EMPTY: dict[str, Any] = {"next_cursor": None, "counts_by_assignee": None, "counts_capped": None}
#: The inbox counts each assignee's pending requests up to this many, then shows "N+".
INBOX_COUNT_CAP = 100


def add_inbox_routes(router: APIRouter, auth: ConsoleAuth, render: Render) -> None:
    """``/inbox``: pending requests, one row each, filtered, sorted and paged."""

    @router.get("/inbox", name="inbox")
    def inbox(
        request: Request,
        viewer: Viewer = Depends(auth.page("inbox")),
        assignee: str = "",
        kind: str = "",
        environment: str = "",
        workflow: str = "",
        escalated: str = "",
        older_than: str = "",
        sort: str = "oldest",
        cursor: str = "",
        q: str = "",
    ) -> Response:
        filters = {
            "q": q,
            "assignee": assignee,
            "kind": kind,
            "environment": environment,
            "workflow": workflow,
            "escalated": escalated,
            "older_than": older_than,
            "sort": sort,
        }
        return _inbox_page(PageView(request, viewer, render), filters, cursor)


def _inbox_etag(view: PageView) -> str:
    """The inbox page's version for this viewer: the project's and its store's
    :meth:`inbox_version`, the query, who asks (their scopes there, and their session's CSRF
    token, which the page's forms carry), and the minute (the page says how long ago each
    task came)."""
    request, viewer = view.request, view.viewer
    minute = int(view.manager.clock.now().timestamp() // 60)
    parts = (
        viewer.project,
        view.manager.store.tasks.inbox_version(),
        str(request.url.query),
        viewer.name,
        sorted(viewer.principal.scopes),
        viewer.session.csrf,
        minute,
    )
    return '"' + hashlib.sha256(repr(parts).encode()).hexdigest()[:32] + '"'


def _inbox_page(view: PageView, filters: dict[str, str], cursor: str) -> Response:
    """The inbox, or ``304`` when the client's ``If-None-Match`` is still current (its
    5-second refresh then costs one primary-key lookup, not a listing and the counts)."""
    etag = _inbox_etag(view)
    if view.request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={"ETag": etag})
    response = _inbox_response(view, filters, cursor, etag)
    response.headers["ETag"] = etag
    return response


def _inbox_response(view: PageView, filters: dict[str, str], cursor: str, etag: str) -> Response:
    sort, escalated, older_than = filters["sort"], filters["escalated"], filters["older_than"]
    if sort not in ("oldest", "newest"):
        raise InvalidRequest("sort must be oldest or newest", field="sort")
    if escalated not in ("", "yes", "no"):
        raise InvalidRequest("escalated must be yes or no", field="escalated")
    if older_than and older_than not in AGES:
        raise InvalidRequest(f"older_than must be one of {', '.join(AGES)}", field="older_than")
    assignee, kind = filters["assignee"], filters["kind"]
    who: str | tuple[str, ...] | None = assignee or None
    if assignee == "mine":  # the entries that name me: as a key, by my proven claim, my groups
        parent, viewer = view.request.app.state.parent, view.viewer
        who = assignee_names(parent, viewer.principal.identity(), viewer.project)
    try:
        listed = _inbox_listing(view, filters, who, cursor)
    except InvalidRequest as exc:
        if exc.details.get("field") != "q":
            raise
        return _inbox_view(view, filters, _EMPTY, search_error=exc.message, etag=etag)
    rows = [
        row
        for task in listed["tasks"]
        for row in _rows(task)
        # a promotion was found by its approvers (the store's filter): it has no assignee
        if (who is None or row["promotion"] or row["assignee"] in _names(who))
        and (not kind or kind == "promotion" or row["kind"] == kind)
    ]
    return _inbox_view(view, filters, listed, rows=rows, cursor=cursor, etag=etag)


def _names(who: str | tuple[str, ...]) -> tuple[str, ...]:
    return (who,) if isinstance(who, str) else who


def _inbox_listing(
    view: PageView, filters: dict[str, str], who: str | tuple[str, ...] | None, cursor: str
) -> dict[str, Any]:
    """The inbox page's tasks (the API listing's call, with the page's filters)."""
    mgr, kind, escalated = view.manager, filters["kind"], filters["escalated"]
    query = TaskQuery(
        q=filters["q"].strip() or None,
        assignee=who,
        kind=kind or None,  # "promotion": the promotions (a kind of their own)
        environment=filters["environment"] or None,
        workflow_name=filters["workflow"] or None,
        escalated={"yes": True, "no": False}.get(escalated),
        sort=filters["sort"],
        limit=min(INBOX_PAGE, mgr.settings.limits.max_list_items or INBOX_PAGE),
        cursor=cursor or None,
        count=False,  # the inbox shows the counts per assignee, not a total
    )
    listed = mgr.list_human_tasks(
        query,
        older_than_seconds=AGES.get(filters["older_than"]),
        # Each assignee's count stops at INBOX_COUNT_CAP (shown "N+"), so the counts cost
        # the same however many tasks are pending; a search shows its results without them.
        by_assignee=not filters["q"].strip(),
        counts_cap=INBOX_COUNT_CAP,
        show_personal=view.viewer.show_personal,
    )
    return dict(listed)


def _inbox_view(
    view: PageView,
    filters: dict[str, str],
    listed: Mapping[str, Any],
    *,
    rows: list[dict[str, Any]] | None = None,
    cursor: str = "",
    search_error: str | None = None,
    etag: str = "",
) -> Response:
    here, url, following = console_path(view.request, "inbox"), view.request.url, None
    if listed["next_cursor"]:
        following = query_path(here, {**filters, "cursor": listed["next_cursor"]})
    counts = listed["counts_by_assignee"] or {}
    return view.show(
        "inbox.html",
        {
            "rows": rows or [],
            "filters": filters,
            "counts": sorted(counts.items()),
            "pending": sum(counts.values()),
            "capped": set(listed.get("counts_capped") or ()),
            "kinds": tuple(KIND_LABELS),
            "ages": AGES,
            "next_url": following,
            "first_url": query_path(here, filters) if cursor else None,
            "refresh_url": str(url.path) + (f"?{url.query}" if url.query else ""),
            "refresh_headers": json.dumps({"If-None-Match": etag}),
            "search_error": search_error,
        },
        status_code=400 if search_error else 200,
    )


def _rows(task: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One inbox row per pending request of a task."""
    promotion = task.get("workflow_kind") == "promotion"
    out = []
    for r in task.get("requests") or []:
        prompt = str(r.get("prompt") or "")
        out.append(
            {
                "continuation_id": task["continuation_id"],
                "request_id": r.get("request_id"),
                "kind": "promotion" if promotion else r.get("kind"),
                "prompt": prompt.splitlines()[0] if prompt else "",
                "preview": task.get("input_preview") or "",
                "workflow": task.get("workflow_name"),
                "environment": task.get("environment"),
                "assignee": r.get("assignee"),
                "approvers": (r.get("context") or {}).get("approvers") if promotion else None,
                "created_at": task.get("created_at"),
                "expires_at": r.get("expires_at") or task.get("expires_at"),
                "escalated_at": r.get("escalated_at") or task.get("escalated_at"),
                "promotion": promotion,
                "several": len(task.get("requests") or []) > 1,
            }
        )
    return out
