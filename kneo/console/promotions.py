"""``/promotions/{continuation_id}``: a promotion's approvals and an approver's decision.

:func:`kneo.platform.registry.promotion_view` is imported by the page that shows it (+38 ms
with the bundle's cryptography): every service creates the console, few open this page.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from kneo.console.auth import ConsoleAuth, Posted, Viewer
from kneo.console.drafts import kept_form
from kneo.console.view import PageView, Render
from kneo.engine.human import Decision
from kneo.errors import Conflict, Forbidden


def add_promotion_routes(router: APIRouter, auth: ConsoleAuth, render: Render) -> None:
    """``/promotions/{continuation_id}``: a promotion's approvals, and an approver's decision."""

    @router.get("/promotions/{continuation_id}", name="promotion")
    def get_promotion(
        request: Request, continuation_id: str, viewer: Viewer = Depends(auth.page("promotion"))
    ) -> Response:
        return promotion_page(PageView(request, viewer, render), continuation_id)

    @router.post("/promotions/{continuation_id}", name="decide_promotion")
    def decide_promotion(
        request: Request,
        continuation_id: str,
        form: Posted = Depends(kept_form(auth, "decide", back="promotion")),
    ) -> Response:
        view, posted = PageView(request, form[0], render), form[1]
        auth.check(view.viewer, "promotion")
        decision = posted.get("decision") or ""
        if decision not in ("approved", "rejected"):
            notice = "Choose approve or reject."
            return promotion_page(view, continuation_id, notice=notice, status_code=400)
        try:
            view.manager.resume(
                continuation_id,
                Decision(posted.get("request_id") or "", decision, posted.get("content") or None),
                actor=view.viewer.name,
                idempotency_key=posted.get("idempotency_key") or None,
            )
        except (Conflict, Forbidden) as exc:
            status = exc.http_status
            return promotion_page(view, continuation_id, notice=exc.message, status_code=status)
        return view.redirect("promotion", continuation_id=continuation_id)


def promotion_page(
    view: PageView,
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
    continuation = mgr.store.tasks.get_continuation(continuation_id)
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
