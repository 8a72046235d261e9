"""What runs spend, counted where it happens: model calls, tokens, tool calls and the cost in
money of each agent unit (its record in the execution state), and their sums over a run,
a step or a rollout run.

A cost is an integer number of **nanos** (10⁻⁹ of the price table's currency unit), so its
sums are exact and equal on every database; :mod:`kneo.spec.prices` computes a call's cost
from the project's price table, and only when the project has one. Base layer: no
framework, no pydantic (the store sums a finished run's cost with :func:`cost_of`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

#: nanos per currency unit: a cost is an integer number of nanos
NANOS = 1_000_000_000


def in_units(nanos: int) -> float:
    """``nanos`` in the currency unit, as a JSON number (a double: exact to the nano for
    amounts below about 9 million units)."""
    return nanos / NANOS


def to_nanos(amount: Decimal | float | int | str) -> int:
    """An amount in the currency unit as nanos, rounded half up."""
    exact = Decimal(str(amount)) * NANOS
    return int(exact.to_integral_value(rounding=ROUND_HALF_UP))


def shown_amount(counter: str, value: int) -> str:
    """A limit or usage of ``counter`` as a person reads it (``cost``: in the currency
    unit, no trailing zeros)."""
    if counter != "cost":
        return str(value)
    return f"{Decimal(value) / NANOS:f}".rstrip("0").rstrip(".") or "0"


#: What a run's ``usage`` counts, summed over its agent units: ``cost_nanos`` is the cost
#: of its priced model calls, ``unpriced_calls`` the calls no price table priced
#: (:mod:`kneo.spec.prices`; the run view shows ``cost``, ``null`` while any is unpriced).
USAGE_TOTALS = (
    "model_calls", "tool_calls", "input_tokens", "output_tokens", "cost_nanos", "unpriced_calls"
)  # fmt: skip


def usage_of(records: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """The summed usage of agent unit records (:data:`USAGE_TOTALS`, zeros included)."""
    total = dict.fromkeys(USAGE_TOTALS, 0)
    for record in records:
        spent = record.get("spent")  # :func:`count_spent`
        if spent:
            total["model_calls"] += spent[0]
            total["input_tokens"] += spent[1]
            total["output_tokens"] += spent[2]
            if len(spent) > 3:
                total["cost_nanos"] += spent[3]
                total["unpriced_calls"] += spent[4]
            else:
                total["unpriced_calls"] += spent[0]
        calls = record.get("tool_calls")
        if isinstance(calls, int):
            total["tool_calls"] += calls
    return total


def shown_usage(records: Collection[Mapping[str, Any]]) -> dict[str, Any]:
    """The usage of agent unit records as a run view shows it: counts, ``cost`` in the
    currency unit (``null`` when a call was not priced: no price table, or a model it does
    not name; never 0 for unknown), ``currency`` and ``unpriced_calls``."""
    total: dict[str, Any] = usage_of(records)
    nanos, unpriced = total.pop("cost_nanos"), total["unpriced_calls"]
    currencies = {str(r["prices"][1]) for r in records if r.get("prices")}
    known = not unpriced and len(currencies) <= 1
    total["cost"] = in_units(nanos) if known else None
    total["currency"] = next(iter(currencies)) if len(currencies) == 1 else None
    return total


def cost_of(records: Collection[Mapping[str, Any]]) -> float | None:
    """The run's cost in the currency unit (:func:`shown_usage`'s ``cost``)."""
    cost = shown_usage(records)["cost"]
    return cost if isinstance(cost, float) else None


def add_usage(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
    return {name: a[name] + b[name] for name in USAGE_TOTALS}


#: What an agent unit's ``usage`` counts (the evals' record of a case).
USAGE_FIELDS = ("model_calls", "input_tokens", "output_tokens")


def count_usage(record: dict[str, Any], usage: Mapping[str, int]) -> None:
    """Add one model call and its tokens to ``record["usage"]`` (:data:`USAGE_FIELDS`)."""
    total = record.setdefault("usage", dict.fromkeys(USAGE_FIELDS, 0))
    total["model_calls"] = total.get("model_calls", 0) + 1
    for field in ("input_tokens", "output_tokens"):
        value = usage.get(field)
        if isinstance(value, int):
            total[field] = total.get(field, 0) + value


def count_spent(
    record: dict[str, Any], usage: Mapping[str, int], priced: PricedCall | None = None
) -> None:
    """Add one model call and its tokens to an agent unit's ``spent``: ``[model calls, input
    tokens, output tokens]``, one list, so the change a turn makes to the record is one
    value (a state is encoded and diffed at every boundary). Where a price table is in
    force (``priced``) the list goes on with ``cost in nanos, unpriced calls`` (the calls
    before it counted unpriced), and ``prices`` names the table that priced the unit."""
    spent: list[int] = record.get("spent") or [0, 0, 0]
    inp, out = usage.get("input_tokens"), usage.get("output_tokens")
    counts = [
        spent[0] + 1,
        spent[1] + (inp if isinstance(inp, int) else 0),
        spent[2] + (out if isinstance(out, int) else 0),
    ]
    if priced is None and len(spent) == 3:
        record["spent"] = counts
        return
    cost, unpriced = (spent[3], spent[4]) if len(spent) > 3 else (0, spent[0])
    if priced is None or priced.nanos is None:
        unpriced += 1
    else:
        cost += priced.nanos
    record["spent"] = [*counts, cost, unpriced]
    if priced is not None and record.get("prices") != priced.table:
        record["prices"] = priced.table


@dataclass(frozen=True)
class PricedCall:
    """What a price table said of one call: its cost in nanos (``None``: the table has no
    price for its model) and the table's ``[digest, currency]``."""

    nanos: int | None
    table: list[str]

    def shown(self) -> dict[str, Any]:
        """The call's cost as its ``model_turn_completed`` event shows it."""
        cost = None if self.nanos is None else in_units(self.nanos)
        return {"cost": cost, "currency": self.table[1], "prices": self.table[0]}


__all__ = [
    "NANOS",
    "USAGE_FIELDS",
    "USAGE_TOTALS",
    "PricedCall",
    "add_usage",
    "cost_of",
    "count_spent",
    "count_usage",
    "in_units",
    "shown_amount",
    "shown_usage",
    "to_nanos",
    "usage_of",
]
