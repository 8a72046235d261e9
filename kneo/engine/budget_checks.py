"""Before each model or tool call of an agent: the budgets that still allow it.

Two budgets are checked: the run's (the environment's ``budgets:``, counted over every agent
unit of the run) and, before a model call, the project's daily ones (its ``limits:``). A
budget reached fails the step or pauses the run for a person to raise it, as its
``on_exceeded`` says; the arithmetic and the requests are :mod:`kneo.engine.budgets`'. Apart
from the agent loop because they are policy, asked of the run through its
:class:`~kneo.engine.agent_seam.AgentHost`, not part of a turn.
"""

from __future__ import annotations

from kneo.engine import budgets as run_budgets
from kneo.engine.agent_seam import AgentHost
from kneo.policy.access import ProjectBudget

__all__ = ["within_budget", "within_daily"]


def within_budget(host: AgentHost, counters: tuple[str, ...]) -> None:
    """Before a call that ``counters`` count: the run's budget (the environment's
    ``budgets:``) still allows one more, else fail or pause as the policy says."""
    access = host.access
    if access is not None and access.project_budget is not None and "model_calls" in counters:
        within_daily(host, access.project_budget)
    budgets = access.budgets if access is not None else None
    if access is None or budgets is None:
        return
    limits = budgets.limits
    totals: dict[str, int] | None = None
    for counter in counters:
        base = limits.get(counter)
        if base is None:
            continue
        totals = totals or host.run_usage()
        spent = run_budgets.used(totals, counter)
        if spent < base:  # below the policy's own limit no raise can have been asked
            continue
        limit = run_budgets.limit_in_force(counter, budgets, host.decision)
        if spent < limit:
            continue
        host.emit(
            "budget_reached",
            {
                "budget": counter,
                "used": spent,
                "limit": limit,
                "on_exceeded": budgets.on_exceeded,
            },
        )
        if budgets.on_exceeded == "fail":
            raise run_budgets.exceeded(counter, spent, limit, access.environment)
        fields = run_budgets.request_fields(counter, spent, limit, budgets, access.environment)
        host.pause([host.new_request(**fields)])


def within_daily(host: AgentHost, budget: ProjectBudget) -> None:
    """Before a model call: the project's daily budgets (its ``limits:``) still allow
    one, else fail or pause as its ``on_exceeded`` says (:mod:`kneo.engine.budgets`)."""
    spend = budget.spend()
    for counter, in_force in spend.limits.items():
        used = spend.used[counter]
        if used < in_force:
            continue
        limit = run_budgets.daily_limit_in_force(counter, spend, budget, host.decision)
        if used < limit:
            continue
        event = {"budget": counter, "used": used, "limit": limit, "scope": "project"}
        host.emit("budget_reached", {**event, "on_exceeded": budget.on_exceeded})
        if budget.on_exceeded == "fail":
            raise run_budgets.daily_exceeded(counter, used, limit, budget.project, spend.day)
        fields = run_budgets.daily_request_fields(counter, used, limit, spend, budget.project)
        host.pause([host.new_request(**fields)])
