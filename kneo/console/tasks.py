"""``/tasks/{continuation_id}``: a human task's requests and a person's decision on one of them
(or one decision on several together), through ``PlatformManager.resume`` as the API's
``POST /v1/human-tasks/{id}/resume``; and a decision kept over a new sign-in, drawn again."""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from kneo.console.auth import ConsoleAuth, Posted, Viewer
from kneo.console.drafts import SessionLost, kept_form
from kneo.console.forms import Rejected, decision_form, parse_decision
from kneo.console.promotions import promotion_page
from kneo.console.view import PageView, Render
from kneo.engine.human import Decision
from kneo.errors import Conflict, HumanTaskExpired, InvalidRequest, NotFound, ValidationFailed

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


def add_task_routes(router: APIRouter, auth: ConsoleAuth, render: Render) -> None:
    """``/tasks/{continuation_id}``: a human task's requests, and a decision on one of them."""

    @router.get("/tasks/{continuation_id}", name="task")
    def get_task(
        request: Request,
        continuation_id: str,
        request_id: str | None = None,
        viewer: Viewer = Depends(auth.page("task")),
    ) -> Response:
        return _task_page(PageView(request, viewer, render), continuation_id, request_id=request_id)

    @router.post("/tasks/{continuation_id}", name="decide")
    def decide(
        request: Request,
        continuation_id: str,
        form: Posted = Depends(kept_form(auth, "decide", back="task")),
    ) -> Response:
        return _decide(PageView(request, form[0], render), continuation_id, form[1])


def _task_page(
    view: PageView,
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


def _decide(view: PageView, continuation_id: str, posted: dict[str, str]) -> Response:
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
    except Conflict as exc:  # already resolved, a racing resume, the run moved on, too late
        return _conflict(again, exc)
    if result.status == "paused" and result.continuation_id == continuation_id:
        return view.redirect("task", continuation_id=continuation_id)
    return view.redirect("run", run_id=result.run_id)


def _conflict(again: Callable[..., Response], exc: Conflict) -> Response:
    """The task page again with the conflict's notice; a task its timeout deleted meanwhile
    (``human_task_expired``) is that error's page, not "not found"."""
    try:
        return again(notice=exc.message, status_code=409)
    except NotFound:
        if isinstance(exc, HumanTaskExpired):
            raise exc from None
        raise


def _decide_together(view: PageView, continuation_id: str, posted: dict[str, str]) -> Response:
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
        return _conflict(again, exc)
    if result.status == "paused" and result.continuation_id == continuation_id:
        return view.redirect("task", continuation_id=continuation_id)
    return view.redirect("run", run_id=result.run_id)


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
    view, draft = PageView(request, viewer, render), lost.draft
    if lost.back == "promotion":
        return promotion_page(
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
