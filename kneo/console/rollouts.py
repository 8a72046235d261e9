"""``/rollouts/{rollout_id}``: one rollout, where it stands, and a person's decision.

The page shows the rollout's steps and the one it stands at, the stable and canary sides
next to each other (runs, failure, rejection and edit rates, p95 latency, cost per run, a
judge score where the figures carry one) and their decisions by kind of human request, the last analysis' verdict, a small chart of the
figures over time (:mod:`kneo.console.rollout_chart`) and, to whoever may decide
(``rollout_ops``: the API's ``controller:write``), promote, abort and retry buttons. A
decision goes through :meth:`~kneo.platform.rollouts.RolloutOps.decide_rollout`, as the
API's: only the environment's approvers decide; anyone else sees why on the page (403).
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from kneo.console.auth import ConsoleAuth, Posted, Viewer
from kneo.console.rollout_chart import chart
from kneo.console.view import PageView, Render
from kneo.errors import Conflict, Forbidden, InvalidRequest

#: what the page shows of each side, and how (``rate``: a share; ``ms``, ``money``, ``n``)
FIGURES = (
    ("runs", "runs", "n"),
    ("finished", "finished runs", "n"),
    ("failure_rate", "failure rate", "rate"),
    ("rejection_rate", "rejection rate", "rate"),
    ("edit_rate", "edit rate", "rate"),
    ("escalation_rate", "escalation rate", "rate"),
    ("p95_latency_ms", "p95 latency", "ms"),
    ("cost_per_run", "cost per run", "money"),
    ("judge_score", "judge score", "score"),
)
#: what the page shows of each kind of human request on each side
KIND_FIGURES = (
    ("decided", "decided", "n"),
    ("rejection_rate", "rejection rate", "rate"),
    ("edit_rate", "edit rate", "rate"),
    ("escalation_rate", "escalation rate", "rate"),
)


def add_rollout_routes(router: APIRouter, auth: ConsoleAuth, render: Render) -> None:
    """``/rollouts/{rollout_id}``: one rollout, and promote, abort or retry it."""

    @router.get("/rollouts/{rollout_id}", name="rollout")
    def get_rollout(
        request: Request, rollout_id: str, viewer: Viewer = Depends(auth.page("rollout"))
    ) -> Response:
        return rollout_page(PageView(request, viewer, render), rollout_id)

    @router.post("/rollouts/{rollout_id}", name="decide_rollout")
    def decide_rollout(
        request: Request, rollout_id: str, form: Posted = Depends(auth.form("rollout_ops"))
    ) -> Response:
        view, posted = PageView(request, form[0], render), form[1]
        auth.check(view.viewer, "rollout")
        try:
            _decide(view, rollout_id, posted)
        except (InvalidRequest, Conflict, Forbidden) as exc:
            return rollout_page(view, rollout_id, notice=exc.message, status_code=exc.http_status)
        return view.redirect("rollout", rollout_id=rollout_id)


def _decide(view: PageView, rollout_id: str, posted: Mapping[str, str]) -> None:
    decision = posted.get("decision") or ""
    if decision not in ("promote", "abort", "retry"):
        raise InvalidRequest("choose promote, abort or retry", field="decision")
    groups = frozenset(view.viewer.principal.identity().groups)
    view.manager.decide_rollout(
        rollout_id,
        decision,
        actor=view.viewer.name,
        groups=groups,
        full=posted.get("full") == "true",
        reason=(posted.get("reason") or "").strip() or None,
    )


def rollout_page(
    view: PageView, rollout_id: str, *, notice: str | None = None, status_code: int = 200
) -> Response:
    """The rollout page (module docstring); ``notice``: why a decision was refused."""
    shown = view.manager.get_rollout(rollout_id)
    return view.show(
        "rollout.html",
        {
            "r": shown,
            "figures": FIGURES,
            "kind_figures": KIND_FIGURES,
            "chart": chart(shown["history"]),
            "moving": shown["status"] in ("progressing", "paused"),
            "notice": notice,
        },
        status_code=status_code,
    )
