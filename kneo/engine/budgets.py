"""Run budgets: what one run may spend (``budgets:`` in the environment's policy file).

Usage is counted where it happens, in each agent unit's record of the execution state
(``spent``: model calls, tokens and, with a price table, their cost; ``tool_calls``;
:mod:`kneo.usage`), so the run's totals are the sum over its units and survive every crash,
resume and replay with the state. A limit is checked before the model call or tool call it
would count: a call is never cut off half-way, and a token or cost limit can be passed by
the one call that crosses it (its tokens are known only after it). ``max_cost`` counts the
cost of the priced calls, in nanos of the price table's currency (:mod:`kneo.spec.prices`);
its requests and errors show amounts in the currency unit.

At a limit the policy's ``on_exceeded`` decides: ``fail`` ends the run with
``budget_exceeded``; ``pause`` asks a person (a request of kind ``budget``): *approved*
continues with the limit raised by the policy's amount again, *provided* with the limit the
person gives (``{"limit": N}``), *rejected* stops the run with ``budget_exceeded``. Each
raise is a decision under the wait key ``budget:<counter>:<limit>``, so the limit in force is
replayed from the state like every other answer, and the next time the raised limit is
reached is a new question.

A project's **daily** budgets (``limits: max_model_calls_per_day, max_tokens_per_day,
max_cost_per_day``,
:class:`~kneo.policy.access.ProjectBudget`) are checked before each model call too, over
every run of the project that UTC day. At one, ``on_exceeded`` of the project's limits
decides alike; the request's wait key is ``project:<counter>:<day>:<limit>``, and an
approval raises *the project's* limit for the day (recorded with the day's usage, so every
run of the project goes on), by the definition's amount again or to the limit given.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from contextlib import suppress
from typing import Any

from kneo.documents import DocumentError, parse_json
from kneo.errors import ErrorCode, KneoError
from kneo.policy.access import DailySpend, ProjectBudget
from kneo.policy.environment import BudgetsPolicy
from kneo.spec.prices import PriceTable
from kneo.usage import (
    USAGE_TOTALS,
    PricedCall,
    add_usage,
    in_units,
    shown_amount,
    to_nanos,
    usage_of,
)

_NOUNS = {
    "model_calls": "model calls",
    "tool_calls": "tool calls",
    "tokens": "tokens",
    "cost": "in model cost",
}


#: the ``limits:`` field of each daily budget
DAILY_FIELDS = {
    "model_calls": "max_model_calls_per_day",
    "tokens": "max_tokens_per_day",
    "cost": "max_cost_per_day",
}


class BudgetExceeded(KneoError):
    """A run reached a budget its policy ends it at, or a person stopped it there."""

    code = ErrorCode.budget_exceeded


def used(totals: Mapping[str, int], counter: str) -> int:
    """How much of ``counter`` (``model_calls``, ``tool_calls``, ``tokens``, ``cost``: in
    nanos) is spent."""
    if counter == "tokens":
        return totals["input_tokens"] + totals["output_tokens"]
    if counter == "cost":
        return totals["cost_nanos"]
    return totals[counter]


def price_call(
    table: PriceTable | None, provider: str, model: str, usage: Mapping[str, int]
) -> PricedCall | None:
    """What ``table`` says one call cost (``None`` without a table: nothing is computed)."""
    if table is None:
        return None
    return PricedCall(table.cost(provider, model, usage), [table.digest, table.currency])


def _limit_value(counter: str, value: int) -> float | int:
    return in_units(value) if counter == "cost" else value


def _provided_limit(counter: str, content: str | None) -> int:
    """The limit a person provided (``{"limit": N}``; a cost in the currency unit)."""
    value = parse_json(content or "{}", source="limit")["limit"]
    return to_nanos(value) if counter == "cost" else int(value)


def wait_key(counter: str, limit: int) -> str:
    return f"budget:{counter}:{limit}"


def limit_in_force(
    counter: str, budgets: BudgetsPolicy, decision: Callable[[str], Mapping[str, Any] | None]
) -> int:
    """The policy's limit on ``counter`` raised by every decision recorded for it; raises
    :class:`BudgetExceeded` when a person stopped the run at it."""
    base = budgets.limits[counter]
    limit = base
    while (found := decision(wait_key(counter, limit))) is not None:
        name = found.get("decision")
        if name == "rejected":
            why = found.get("content") or "no reason given"
            raise BudgetExceeded(
                f"the run was stopped at its budget of {shown_amount(counter, limit)} "
                f"{_NOUNS[counter]}: {why}",
                counter=counter,
                limit=_limit_value(counter, limit),
            )
        raised = limit + base
        if name == "provided":  # validated against the request's schema when it was made
            with suppress(DocumentError, KeyError, TypeError, ValueError, ArithmeticError):
                raised = _provided_limit(counter, found.get("content"))
        limit = max(raised, limit + 1)
    return limit


def request_fields(
    counter: str, spent: int, limit: int, budgets: BudgetsPolicy, environment: str
) -> dict[str, Any]:
    """The ``budget`` request a pause at ``limit`` puts to a person."""
    noun, a = _NOUNS[counter], functools.partial(shown_amount, counter)
    raise_to = limit + budgets.limits[counter]
    return _raise_request(
        counter,
        wait_key(counter, limit),
        f"The run has used {a(spent)} of the {a(limit)} {noun} its budget in {environment!r} "
        f"allows. Continue with a raised limit (approve: {a(raise_to)}), or stop the run?",
        spent,
        f"the new limit on {noun} for this run",
        {"budget": counter, "used": spent, "limit": limit, "raise_to": raise_to,
         "environment": environment},
    )  # fmt: skip


def _raise_request(
    counter: str, key: str, prompt: str, spent: int, what: str, context: dict[str, Any]
) -> dict[str, Any]:
    """A ``budget`` request: approve (the raise the context names), provide a new limit
    above what was ``spent`` (``what`` it limits), or reject (stop the run). A cost is
    asked and shown in the currency unit."""
    for name in ("used", "limit", "raise_to"):
        context[name] = _limit_value(counter, context[name])
    limit: dict[str, Any] = {"type": "integer", "minimum": spent + 1, "description": what}
    if counter == "cost":
        limit = {"type": "number", "exclusiveMinimum": in_units(spent), "description": what}
    return {
        "kind": "budget",
        "wait_key": key,
        "prompt": prompt,
        "decisions": ("approved", "provided", "rejected"),
        "input_schema": {
            "type": "object",
            "properties": {"limit": limit},
            "required": ["limit"],
            "additionalProperties": False,
        },
        "context": context,
    }


def exceeded(counter: str, spent: int, limit: int, environment: str) -> BudgetExceeded:
    a = functools.partial(shown_amount, counter)
    return BudgetExceeded(
        f"the run has used {a(spent)} of the {a(limit)} {_NOUNS[counter]} its budget in "
        f"{environment!r} allows (budgets.max_{counter} in environments/{environment}.yaml)",
        counter=counter,
        limit=_limit_value(counter, limit),
        used=_limit_value(counter, spent),
    )


def daily_wait_key(counter: str, day: str, limit: int) -> str:
    return f"project:{counter}:{day}:{limit}"


def daily_limit_in_force(
    counter: str,
    spend: DailySpend,
    budget: ProjectBudget,
    decision: Callable[[str], Mapping[str, Any] | None],
) -> int:
    """Today's limit on ``counter``, raised (for the whole project) by each decision this
    run recorded at it: the raise is written again on every replay, which is harmless (the
    higher limit stands). Raises :class:`BudgetExceeded` when a person stopped the run."""
    limit, used, base = spend.limits[counter], spend.used[counter], spend.base[counter]
    while used >= limit and (found := decision(daily_wait_key(counter, spend.day, limit))):
        if found.get("decision") == "rejected":
            why = found.get("content") or "no reason given"
            raise BudgetExceeded(
                f"the run was stopped at project {budget.project!r}'s daily budget of "
                f"{shown_amount(counter, limit)} {_NOUNS[counter]} ({spend.day}): {why}",
                counter=counter,
                limit=_limit_value(counter, limit),
                day=spend.day,
            )
        raised = limit + base
        if found.get("decision") == "provided":
            with suppress(DocumentError, KeyError, TypeError, ValueError, ArithmeticError):
                raised = _provided_limit(counter, found.get("content"))
        limit = budget.raise_limit(spend.day, counter, max(raised, limit + 1))
    return limit


def daily_request_fields(
    counter: str, spent: int, limit: int, spend: DailySpend, project: str
) -> dict[str, Any]:
    """The ``budget`` request a pause at project ``project``'s daily ``limit`` puts to a
    person: approving raises the project's limit for the day."""
    noun, a = _NOUNS[counter], functools.partial(shown_amount, counter)
    raise_to = limit + spend.base[counter]
    return _raise_request(
        counter,
        daily_wait_key(counter, spend.day, limit),
        f"Project {project!r} has used {a(spent)} of the {a(limit)} {noun} its daily budget "
        f"allows on {spend.day} (UTC). Raise today's limit for the project (approve: "
        f"{a(raise_to)}), or stop this run?",
        spent,
        f"the project's new limit on {noun} for {spend.day}",
        {"budget": counter, "scope": "project", "project": project, "day": spend.day,
         "used": spent, "limit": limit, "raise_to": raise_to},
    )  # fmt: skip


def daily_exceeded(counter: str, spent: int, limit: int, project: str, day: str) -> BudgetExceeded:
    field = DAILY_FIELDS[counter]
    a = functools.partial(shown_amount, counter)
    return BudgetExceeded(
        f"project {project!r} has used {a(spent)} of the {a(limit)} {_NOUNS[counter]} its "
        f"daily budget allows on {day} (UTC) (limits.{field})",
        counter=counter,
        limit=_limit_value(counter, limit),
        used=_limit_value(counter, spent),
        day=day,
        field=f"limits.{field}",
    )


__all__ = [
    "DAILY_FIELDS",
    "USAGE_TOTALS",
    "BudgetExceeded",
    "add_usage",
    "price_call",
    "shown_amount",
    "usage_of",
]
