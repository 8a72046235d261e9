"""The console's pages: each reads through the platform calls the API routes use and
decides through ``PlatformManager.resume``, as ``POST /v1/human-tasks/{id}/resume`` does.

What is here is presentation: which call feeds which template, forms in and redirects out.
"""

from __future__ import annotations

import functools
import hashlib
import json
import posixpath
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote, unquote, urlencode, urlsplit

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from kneo.console.auth import ConsoleAuth, Posted, Viewer
from kneo.console.drafts import (
    SIGNED_IN_AGAIN,
    SessionLost,
    kept_context,
    kept_draft,
    kept_form,
)
from kneo.console.forms import KIND_LABELS, Rejected, decision_form, parse_decision
from kneo.console.links import add_link_routes
from kneo.console.oidc import add_oidc_routes
from kneo.console.session import COOKIE, Session
from kneo.engine.human import Decision
from kneo.errors import (
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    NotReady,
    TooManyRequests,
    Unauthorized,
    ValidationFailed,
)
from kneo.service.auth import sign_in
from kneo.service.dependencies import current_manager

#: Inbox page size (capped by ``KNEO_SERV_MAX_LIST_ITEMS``).
INBOX_PAGE = 50
#: ``older_than`` choices of the inbox filter, in seconds.
AGES = {"1h": 3600, "4h": 14_400, "1d": 86_400, "3d": 259_200, "7d": 604_800}
_LIVE = ("queued", "running")
#: Context fields the task page shows in their own place (the rest under "More context").
_SHOWN_CONTEXT = frozenset(
    {
        "tool_name",
        "tool_call_id",
        "arguments",
        "output_preview",
        "input_preview",
        "error",
        "step_id",
        "round",
        "max_reviews",
        "wait_name",
        "iteration",
        "on_stop",
        "fields",
    }
)
_TIMELINE_LIMIT = 500
#: Characters a path segment keeps unquoted (RFC 3986 ``pchar``): run ids hold ``:``.
_PATH_SAFE = ":@!$&'()*+,;="


class Render(Protocol):
    """Renders a template into a response (``kneo.console.app``)."""

    def __call__(
        self,
        request: Request,
        name: str,
        context: dict[str, Any],
        *,
        status_code: int = 200,
        session: Session | None = None,
    ) -> Response: ...


def build_router(auth: ConsoleAuth, render: Render) -> APIRouter:
    """The console's routes over ``auth`` (sessions and scopes) and ``render`` (templates),
    one group per resource: sign-in, inbox, human tasks, promotions, runs, registry."""
    router = APIRouter()
    routes = (_sign_in, add_oidc_routes, add_link_routes, _inbox, _tasks, _promotions, _runs)
    for add in (*routes, _registry):
        add(router, auth, render)
    return router


@dataclass(frozen=True)
class _View:
    """A signed-in viewer's request, and how its page is drawn."""

    request: Request
    viewer: Viewer
    render: Render

    @property
    def manager(self) -> Any:
        """The platform manager of the service the console is mounted on."""
        found = current_manager(self.request.app.state.parent)
        if found is None:
            raise NotReady("no platform manager is configured", check="manager")
        return found

    def show(self, template: str, context: dict[str, Any], *, status_code: int = 200) -> Response:
        """``template`` over ``context``, the viewer and the platform clock's now."""
        shown = {"viewer": self.viewer, **context, "now": self.manager.clock.now()}
        return self.render(self.request, template, shown, status_code=status_code)

    def redirect(self, name: str, **params: Any) -> Response:
        """303 to the console route ``name``; for a form htmx posted, ``HX-Redirect`` (the
        browser loads the page, as after a plain form)."""
        target = console_path(self.request, name, **params)
        if self.request.headers.get("hx-request"):
            return Response(status_code=204, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)


def _sign_in(router: APIRouter, auth: ConsoleAuth, render: Render) -> None:
    """``/`` (to the inbox), ``/login`` (form and sign-in with an API key), ``/logout``."""

    @router.get("/", include_in_schema=False)
    def home() -> Response:
        return RedirectResponse("inbox", status_code=303)

    @router.get("/login", name="login")
    def login_page(request: Request, next: str = "") -> Response:
        session = auth.session(request)
        issue = session is None  # a pre-session: only the sign-in form's CSRF token
        if session is None:
            session = Session.anonymous()
        context = {"next": safe_next(request, next), "csrf": session.csrf}
        return render(request, "login.html", context, session=session if issue else None)

    @router.post("/login", name="login_submit")
    async def login(request: Request) -> Response:
        posted = await auth.posted(request)
        target = safe_next(request, posted.get("next", ""))
        kept = kept_draft(posted)
        try:
            principal = sign_in(
                auth.authenticator,
                auth.throttle,
                request,
                posted.get("api_key") or None,
                surface="console",
            )
        except (Unauthorized, TooManyRequests) as exc:
            fresh = Session.anonymous()
            error = (
                exc.message if isinstance(exc, TooManyRequests) else "That API key is not valid."
            )
            context: dict[str, Any] = {"next": target, "csrf": fresh.csrf, "error": error}
            if kept is not None:  # a typo in the key does not lose the answer either
                context |= kept_context(kept)
            page = render(
                request, "login.html", context, status_code=exc.http_status, session=fresh
            )
            if exc.retryable and exc.retry_after is not None:  # throttled: when to try again
                page.headers["Retry-After"] = str(exc.retry_after)
            return page
        found = auth.authenticator.named(principal.name)
        digest = found[1] if found else b""
        session = await run_in_threadpool(
            auth.open_session, principal, proof=auth.codec.proof(digest)
        )
        if kept is not None:  # back to the form it was typed in, filled in again
            viewer = auth.viewer_of(principal, session)
            response = redraw_draft(request, viewer, render, kept, notice=SIGNED_IN_AGAIN)
        else:
            response = RedirectResponse(target or console_path(request, "inbox"), status_code=303)
        set_session(request, response, auth, session)
        return response

    @router.post("/logout", name="logout")
    async def logout(request: Request) -> Response:
        await auth.posted(request)
        await run_in_threadpool(auth.end_session, request)
        response = RedirectResponse(console_path(request, "login"), status_code=303)
        response.delete_cookie(COOKIE, path=_cookie_path(request))
        return response


def _inbox(router: APIRouter, auth: ConsoleAuth, render: Render) -> None:
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
        return _inbox_page(_View(request, viewer, render), filters, cursor)


def _inbox_etag(view: _View) -> str:
    """The inbox page's version for this viewer: the store's :meth:`inbox_version`, the
    query, who asks (and their session's CSRF token, which the page's forms carry), and the
    minute (the page says how long ago each task came)."""
    request, viewer = view.request, view.viewer
    minute = int(view.manager.clock.now().timestamp() // 60)
    parts = (
        view.manager.store.inbox_version(),
        str(request.url.query),
        viewer.name,
        sorted(viewer.principal.scopes),
        viewer.session.csrf,
        minute,
    )
    return '"' + hashlib.sha256(repr(parts).encode()).hexdigest()[:32] + '"'


def _inbox_page(view: _View, filters: dict[str, str], cursor: str) -> Response:
    """The inbox, or ``304`` when the client's ``If-None-Match`` is still current (its
    5-second refresh then costs one primary-key lookup, not a listing and the counts)."""
    etag = _inbox_etag(view)
    if view.request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={"ETag": etag})
    response = _inbox_response(view, filters, cursor, etag)
    response.headers["ETag"] = etag
    return response


def _inbox_response(view: _View, filters: dict[str, str], cursor: str, etag: str) -> Response:
    sort, escalated, older_than = filters["sort"], filters["escalated"], filters["older_than"]
    if sort not in ("oldest", "newest"):
        raise InvalidRequest("sort must be oldest or newest", field="sort")
    if escalated not in ("", "yes", "no"):
        raise InvalidRequest("escalated must be yes or no", field="escalated")
    if older_than and older_than not in AGES:
        raise InvalidRequest(f"older_than must be one of {', '.join(AGES)}", field="older_than")
    assignee, kind = filters["assignee"], filters["kind"]
    who: str | tuple[str, ...] | None = assignee or None
    if assignee == "mine":  # my name, as a key or as user:..., and my groups
        name = view.viewer.name
        who = (name, f"user:{name}", *sorted(f"group:{g}" for g in view.viewer.groups))
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
        if (who is None or row["assignee"] in ((who,) if isinstance(who, str) else who))
        and (not kind or kind == "promotion" or row["kind"] == kind)
    ]
    return _inbox_view(view, filters, listed, rows=rows, cursor=cursor, etag=etag)


def _inbox_listing(
    view: _View, filters: dict[str, str], who: str | tuple[str, ...] | None, cursor: str
) -> dict[str, Any]:
    """The inbox page's tasks (the API listing's call, with the page's filters)."""
    mgr, kind, escalated = view.manager, filters["kind"], filters["escalated"]
    listed = mgr.list_human_tasks(
        q=filters["q"].strip() or None,
        assignee=who,
        kind=kind or None,  # "promotion": the promotions (a kind of their own)
        environment=filters["environment"] or None,
        workflow=filters["workflow"] or None,
        escalated={"yes": True, "no": False}.get(escalated),
        older_than_seconds=AGES.get(filters["older_than"]),
        sort=filters["sort"],
        limit=min(INBOX_PAGE, mgr.settings.limits.max_list_items or INBOX_PAGE),
        cursor=cursor or None,
        count=False,  # the inbox shows the counts per assignee, not a total
        # Each assignee's count stops at INBOX_COUNT_CAP (shown "N+"), so the counts cost
        # the same however many tasks are pending; a search shows its results without them.
        by_assignee=not filters["q"].strip(),
        counts_cap=INBOX_COUNT_CAP,
        show_personal=view.viewer.show_personal,
    )
    return dict(listed)


#: An inbox listing with nothing in it (a search that was refused).
_EMPTY: dict[str, Any] = {"next_cursor": None, "counts_by_assignee": None, "counts_capped": None}
#: The inbox counts each assignee's pending requests up to this many, then shows "N+".
INBOX_COUNT_CAP = 100


def _inbox_view(
    view: _View,
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
        following = _query(here, {**filters, "cursor": listed["next_cursor"]})
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
            "first_url": _query(here, filters) if cursor else None,
            "refresh_url": str(url.path) + (f"?{url.query}" if url.query else ""),
            "refresh_headers": json.dumps({"If-None-Match": etag}),
            "search_error": search_error,
        },
        status_code=400 if search_error else 200,
    )


def _tasks(router: APIRouter, auth: ConsoleAuth, render: Render) -> None:
    """``/tasks/{continuation_id}``: a human task's requests, and a decision on one of them."""

    @router.get("/tasks/{continuation_id}", name="task")
    def get_task(
        request: Request,
        continuation_id: str,
        request_id: str | None = None,
        viewer: Viewer = Depends(auth.page("task")),
    ) -> Response:
        return _task_page(_View(request, viewer, render), continuation_id, request_id=request_id)

    @router.post("/tasks/{continuation_id}", name="decide")
    def decide(
        request: Request,
        continuation_id: str,
        form: Posted = Depends(kept_form(auth, "decide", back="task")),
    ) -> Response:
        return _decide(_View(request, form[0], render), continuation_id, form[1])


def _task_page(
    view: _View,
    continuation_id: str,
    *,
    request_id: str | None = None,
    rejected: Rejected | None = None,
    notice: str | None = None,
    status_code: int = 200,
    idempotency_key: str | None = None,
) -> Response:
    viewer = view.viewer
    task = view.manager.get_human_task(
        continuation_id,
        show_personal=viewer.show_personal,
        include_context=viewer.can("run"),  # the run's data takes what the run page takes
    )
    if task["workflow_kind"] == "promotion":
        return view.redirect("promotion", continuation_id=continuation_id)
    requests = task["requests"]
    if request_id is not None and not any(r["request_id"] == request_id for r in requests):
        raise NotFound(
            f"request {request_id!r} is not part of {continuation_id}", resource="request"
        )
    context = task.get("context")
    about = {a["request_id"]: a for a in (context or {}).get("requests") or []}
    shown = []
    for r in requests:
        form = None
        if r["status"] == "pending" and viewer.can("decide"):
            mine = rejected if rejected is not None and r["request_id"] == request_id else None
            form = decision_form(r, mine)
        extra = {k: v for k, v in (r.get("context") or {}).items() if k not in _SHOWN_CONTEXT}
        shown.append(
            {
                "request": r,
                "form": form,
                "focus": r["request_id"] == request_id,
                "extra": extra,
                "about": about.get(r["request_id"]) or {},
            }
        )
    # Requests a person may decide with one click together: every pending one accepts it.
    pending = [i["request"] for i in shown if i["form"] is not None]
    together = [
        d
        for d in ("approved", "rejected")
        if len(pending) > 1 and all(d in (r.get("decisions") or ()) for r in pending)
    ]
    return view.show(
        "task.html",
        {
            "task": task,
            "items": shown,
            "together": {"ids": " ".join(r["request_id"] for r in pending), "decisions": together}
            if together
            else None,
            "context": context,
            "marks": _marks(shown),
            # a "decide together" answer kept over a new sign-in (kneo.console.drafts)
            "kept": rejected.posted if rejected and "request_ids" in rejected.posted else {},
            "notice": notice,
            "idempotency_key": idempotency_key or secrets.token_urlsafe(18),
        },
        status_code=status_code,
    )


def _marks(items: list[dict[str, Any]]) -> dict[str, list[int]]:
    """Agent unit -> the transcript messages that made a pending request's tool call (the
    task page marks them in the conversation)."""
    marks: dict[str, list[int]] = {}
    for item in items:
        about = item["about"]
        if item["request"]["status"] == "pending" and "message_index" in about:
            marks.setdefault(about["unit"], []).append(about["message_index"])
    return marks


def _decide(view: _View, continuation_id: str, posted: dict[str, str]) -> Response:
    """A decision posted from the task page: resumes the run, or shows the page again with
    the form's error (or the conflict's notice)."""
    mgr = view.manager
    if posted.get("request_ids"):
        return _decide_together(view, continuation_id, posted)
    request_id = posted.get("request_id") or ""
    stored: Mapping[str, Any] = {"request_id": request_id}
    if posted.get("decision") == "provided" and "content" not in posted:
        # Typed input posts one field per property: its schema says how to read them.
        task = mgr.get_human_task(continuation_id)
        found = next((r for r in task["requests"] if r["request_id"] == request_id), None)
        if found is None:
            raise NotFound(
                f"request {request_id!r} is not part of {continuation_id}", resource="request"
            )
        stored = found
    chosen = parse_decision(stored, posted)
    again = functools.partial(_task_page, view, continuation_id, request_id=request_id)
    try:
        result = mgr.resume(
            continuation_id,
            chosen,
            actor=view.viewer.name,
            idempotency_key=posted.get("idempotency_key") or None,
        )
    except (ValidationFailed, InvalidRequest) as exc:
        rejected = Rejected(chosen.decision, posted, exc.message, exc.details.get("path"))
        return again(rejected=rejected, status_code=exc.http_status)
    except Conflict as exc:  # already resolved, a racing resume, the run moved on
        return again(notice=exc.message, status_code=409)
    if result.status == "paused" and result.continuation_id == continuation_id:
        return view.redirect("task", continuation_id=continuation_id)
    return view.redirect("run", run_id=result.run_id)


def _decide_together(view: _View, continuation_id: str, posted: dict[str, str]) -> Response:
    """One decision (approve or reject) for every listed request of the task, recorded
    together (all or none)."""

    decision = posted.get("decision") or ""
    ids = (posted.get("request_ids") or "").split()
    content = (posted.get("content") or "").strip() or None
    again = functools.partial(_task_page, view, continuation_id)
    if decision not in ("approved", "rejected"):
        return again(notice="Decide together approves or rejects.", status_code=400)
    try:
        result = view.manager.decide(
            continuation_id,
            [Decision(rid, decision, content) for rid in ids],
            actor=view.viewer.name,
            idempotency_key=posted.get("idempotency_key") or None,
        )
    except (ValidationFailed, InvalidRequest) as exc:
        return again(notice=exc.message, status_code=exc.http_status)
    except Conflict as exc:
        return again(notice=exc.message, status_code=409)
    if result.status == "paused" and result.continuation_id == continuation_id:
        return view.redirect("task", continuation_id=continuation_id)
    return view.redirect("run", run_id=result.run_id)


def _promotions(router: APIRouter, auth: ConsoleAuth, render: Render) -> None:
    """``/promotions/{continuation_id}``: a promotion's approvals, and an approver's decision."""

    @router.get("/promotions/{continuation_id}", name="promotion")
    def get_promotion(
        request: Request, continuation_id: str, viewer: Viewer = Depends(auth.page("promotion"))
    ) -> Response:
        return _promotion_page(_View(request, viewer, render), continuation_id)

    @router.post("/promotions/{continuation_id}", name="decide_promotion")
    def decide_promotion(
        request: Request,
        continuation_id: str,
        form: Posted = Depends(kept_form(auth, "decide", back="promotion")),
    ) -> Response:
        view, posted = _View(request, form[0], render), form[1]
        auth.check(view.viewer, "promotion")
        decision = posted.get("decision") or ""
        if decision not in ("approved", "rejected"):
            notice = "Choose approve or reject."
            return _promotion_page(view, continuation_id, notice=notice, status_code=400)
        try:
            view.manager.resume(
                continuation_id,
                Decision(posted.get("request_id") or "", decision, posted.get("content") or None),
                actor=view.viewer.name,
                idempotency_key=posted.get("idempotency_key") or None,
            )
        except (Conflict, Forbidden) as exc:
            status = exc.http_status
            return _promotion_page(view, continuation_id, notice=exc.message, status_code=status)
        return view.redirect("promotion", continuation_id=continuation_id)


def _promotion_page(
    view: _View,
    continuation_id: str,
    *,
    notice: str | None = None,
    status_code: int = 200,
    draft: Mapping[str, str] | None = None,
) -> Response:
    """The promotion page; ``draft``: a decision kept over a new sign-in (its comment back
    in the box, its idempotency key in the form)."""
    from kneo.platform.registry import promotion_view

    mgr, personal = view.manager, view.viewer.show_personal
    task = mgr.get_human_task(continuation_id, show_personal=personal)
    if task["workflow_kind"] != "promotion":
        return view.redirect("task", continuation_id=continuation_id)
    continuation = mgr.store.get_continuation(continuation_id)
    detail = promotion_view(mgr.store, continuation, show_personal=personal)
    return view.show(
        "promotion.html",
        {
            "task": task,
            "req": task["requests"][0] if task["requests"] else None,
            "p": detail,
            "mine": next(
                (d for d in detail["decisions"] if d["approver"] == view.viewer.name), None
            ),
            "notice": notice,
            "draft": draft or {},
            "idempotency_key": (draft or {}).get("idempotency_key") or secrets.token_urlsafe(18),
        },
        status_code=status_code,
    )


def _runs(router: APIRouter, auth: ConsoleAuth, render: Render) -> None:
    """``/runs/{run_id}``: a run, its timeline (trace events) and checkpoints."""

    @router.get("/runs/{run_id}", name="run")
    def run_page(
        request: Request, run_id: str, viewer: Viewer = Depends(auth.page("run"))
    ) -> Response:
        view = _View(request, viewer, render)
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


def _registry(router: APIRouter, auth: ConsoleAuth, render: Render) -> None:
    """``/registry``: bundles by environment and the controller; one bundle in one
    environment at ``/registry/{bundle}/{environment}``."""

    @router.get("/registry", name="registry")
    def registry(request: Request, viewer: Viewer = Depends(auth.page("registry"))) -> Response:
        from kneo.platform.reconcile import controller_view
        from kneo.platform.registry import registry_overview

        view = _View(request, viewer, render)
        store = view.manager.store
        overview = registry_overview(store)
        parent = request.app.state.parent.state
        controller = getattr(parent, "controller", None)
        return view.show(
            "registry.html",
            {
                "overview": overview,
                "cells": {(c["bundle"], c["environment"]): c for c in overview["cells"]},
                "controller": controller_view(
                    store, getattr(parent, "controller_config", None), controller
                ),
            },
        )

    @router.get("/registry/{bundle}/{environment}", name="bundle")
    def bundle(
        request: Request,
        bundle: str,
        environment: str,
        viewer: Viewer = Depends(auth.page("bundle")),
    ) -> Response:

        return _bundle_page(_View(request, viewer, render), bundle, environment)

    @router.post("/registry/{bundle}/{environment}", name="bundle_operation")
    def bundle_operation(
        request: Request,
        bundle: str,
        environment: str,
        form: Posted = Depends(auth.form("bundle_ops")),
    ) -> Response:
        """Roll back (to ``revision``), suspend, resume, pin, unpin or block a revision's
        digest, as the signed-in person."""
        view, posted = _View(request, form[0], render), form[1]
        auth.check(view.viewer, "bundle")
        try:
            asked = _bundle_operation(view, bundle, environment, posted)
        except (InvalidRequest, Conflict, NotFound) as exc:
            return _bundle_page(
                view, bundle, environment, notice=exc.message, status_code=exc.http_status
            )
        if asked is not None:  # a rollback waiting for approvers: its task
            return view.redirect("promotion", continuation_id=asked)
        return view.redirect("bundle", bundle=bundle, environment=environment)


def _bundle_operation(
    view: _View, bundle: str, environment: str, posted: Mapping[str, str]
) -> str | None:
    """Perform the posted operation; the approval task's id when a rollback must wait."""
    from kneo.controller import operations

    store, actor = view.manager.store, view.viewer.name
    action = posted.get("operation") or ""
    reason = (posted.get("reason") or "").strip() or None
    if action == "rollback":
        to = posted.get("revision") or ""
        if not to.isdigit():
            raise InvalidRequest("choose the revision to roll back to", field="revision")
        done = operations.rollback(
            store, bundle, environment, to=int(to), actor=actor, reason=reason
        )
        return str(done["continuation_id"]) if done["status"] == "awaiting_approval" else None
    if action == "suspend":
        operations.suspend(store, bundle, environment, actor=actor, reason=reason)
    elif action == "resume":
        operations.resume(store, bundle, environment, actor=actor)
    elif action == "unpin":
        operations.unpin(store, bundle, environment, actor=actor)
    elif action == "pin":
        operations.pin(store, bundle, environment, actor=actor, reason=reason)
    elif action == "block":
        if reason is None:
            raise InvalidRequest("a block needs a reason", field="reason")
        operations.block(store, posted.get("digest") or "", actor=actor, reason=reason)
    else:
        raise InvalidRequest(f"unknown operation {action[:40]!r}", field="operation")
    return None


def _bundle_page(
    view: _View, bundle: str, environment: str, *, notice: str | None = None, status_code: int = 200
) -> Response:
    """One bundle in one environment: pin, conditions, history and its operations."""
    from kneo.controller import operations
    from kneo.platform.registry import CONDITION_TYPES, bundle_view

    shown = bundle_view(view.manager.store, bundle, environment)
    active = shown["active"]
    targets = [
        r["revision"]
        for r in shown["revisions"]
        if r["status"] in ("inactive", "pruned")
        and (active is None or r["digest"] != active["digest"])
    ]
    blocked = {b.digest: b for b in view.manager.store.list_blocked_digests()}
    return view.show(
        "bundle.html",
        {
            "b": shown,
            "blocked": {d: operations.blocked_view(b) for d, b in blocked.items()},
            "condition_types": CONDITION_TYPES,
            "rollback_targets": targets,
            "notice": notice,
        },
        status_code=status_code,
    )


def redraw_draft(
    request: Request,
    viewer: Viewer,
    render: Render,
    lost: SessionLost,
    notice: str,
    status_code: int = 200,
) -> Response:
    """The page a kept decision was typed on, the decision filled in again (nothing is
    decided: the person submits it once more, under this session's CSRF token)."""
    view, draft = _View(request, viewer, render), lost.draft
    if lost.back == "promotion":
        return _promotion_page(
            view, lost.continuation_id, notice=notice, draft=draft, status_code=status_code
        )
    return _task_page(
        view,
        lost.continuation_id,
        request_id=draft.get("request_id") or None,
        rejected=Rejected(draft.get("decision") or "", draft, ""),
        notice=notice,
        status_code=status_code,
        # a decision on several requests keeps its own key in its own form
        idempotency_key=None if "request_ids" in draft else draft.get("idempotency_key"),
    )


# ---------------------------------------------------------------------- helpers


def set_session(request: Request, response: Response, auth: ConsoleAuth, session: Session) -> None:
    """The session cookie: signed, expiring, HttpOnly, SameSite=Strict, Secure over HTTPS."""
    response.set_cookie(
        COOKIE,
        auth.codec.dumps(session),
        max_age=auth.codec.max_age,
        path=_cookie_path(request),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def _cookie_path(request: Request) -> str:
    return str(request.scope.get("root_path") or "/ui")


def console_path(request: Request, name: str, **params: Any) -> str:
    """The path of the console route ``name``, under wherever the console is mounted.

    Starlette looks a route up by name through every route (~75 us here); the inbox links
    each of its rows, so the path's pattern is looked up once per route and parameter
    names, then filled in (values URL-quoted)."""
    console = request.scope["app"]
    key = (name, *sorted(params))
    formats: dict[tuple[str, ...], str] = console.state.path_formats
    pattern = formats.get(key)
    if pattern is None:
        marked = {k: f"\x00{k}\x00" for k in params}
        pattern = str(console.url_path_for(name, **marked)).replace("{", "{{").replace("}", "}}")
        for k in params:
            pattern = pattern.replace(f"\x00{k}\x00", "{" + k + "}")
        formats[key] = pattern
    values = {k: quote(str(v), safe=_PATH_SAFE) for k, v in params.items()}
    return str(request.scope.get("root_path", "")) + pattern.format_map(values)


def _query(path: str, params: Mapping[str, Any]) -> str:
    kept = {k: v for k, v in params.items() if v not in (None, "")}
    return f"{path}?{urlencode(kept)}" if kept else path


def safe_next(request: Request, target: str) -> str:
    """Only a console page is a place to go after sign-in: never another site, and never a
    path that only looks like one (``/ui/../v1/...`` and its percent-encoded forms leave the
    console once a browser resolves them; control characters are dropped by browsers)."""
    root = _cookie_path(request)
    if not target or "\\" in target or any(ord(c) < 0x20 or ord(c) == 0x7F for c in target):
        return ""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or parts.fragment:
        return ""
    path = posixpath.normpath(unquote(parts.path))
    if not path.startswith(root + "/") or path.startswith("//"):
        return ""
    return path + (f"?{parts.query}" if parts.query else "")  # the redirect quotes it


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
                "created_at": task.get("created_at"),
                "expires_at": r.get("expires_at") or task.get("expires_at"),
                "escalated_at": r.get("escalated_at") or task.get("escalated_at"),
                "promotion": promotion,
                "several": len(task.get("requests") or []) > 1,
            }
        )
    return out
