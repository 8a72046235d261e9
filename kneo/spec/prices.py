"""What model calls cost in money: a project's price table (``prices:`` in
``.kneo/config.yaml``, docs/project_config.md#prices) and the one function that prices a call.

A price is per **million** tokens, per provider and model, in the table's ``currency``
(default ``USD``): ``input``, ``output`` and, optionally, ``cached_input`` (input tokens the
provider read from its prompt cache; the ``input`` price when unset). Prices are decimals,
exact as written (``0.15`` is 0.15, not its binary float).

A call's cost is computed once, when the call is recorded, in **nanos** (10⁻⁹ of the
currency unit), rounded half up to the nano: an integer, so sums over steps, runs, rollouts
and days are exact and equal on every database. A model the table does not name has **no
cost** (``None``, shown as ``null``), never 0. The table's :attr:`PriceTable.digest` is
recorded with what it priced, so a later table prices later calls only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from functools import cached_property

from pydantic import BaseModel, ConfigDict, Field

from kneo.usage import NANOS

#: a price is per this many tokens
PER_TOKENS = 1_000_000
_PER_TOKEN = Decimal(NANOS) / Decimal(PER_TOKENS)  # nanos per token at a price of 1

#: at most this many models per provider, and providers, in one table
_MAX_ENTRIES = 500


class ModelPrice(BaseModel):
    """One model's prices per million tokens, in the table's currency."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: Decimal = Field(ge=0, le=1_000_000, allow_inf_nan=False)
    output: Decimal = Field(ge=0, le=1_000_000, allow_inf_nan=False)
    #: input tokens read from the provider's prompt cache (``input`` when unset)
    cached_input: Decimal | None = Field(default=None, ge=0, le=1_000_000, allow_inf_nan=False)


class PriceTable(BaseModel):
    """``prices:`` of a project config: ``currency`` and ``providers.<provider>.<model>``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: an ISO 4217 code; every price of the table is in it
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    providers: dict[str, dict[str, ModelPrice]] = Field(
        default_factory=dict, max_length=_MAX_ENTRIES
    )

    @cached_property
    def digest(self) -> str:
        """The table's version: a digest of its canonical content (16 hex digits)."""
        body = self.model_dump(mode="json")
        text = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @cached_property
    def rates(self) -> dict[tuple[str, str], tuple[Decimal, Decimal, Decimal]]:
        """Nanos per token (input, cached input, output) by ``(provider, model)``."""
        return {
            (provider, model): (
                p.input * _PER_TOKEN,
                (p.input if p.cached_input is None else p.cached_input) * _PER_TOKEN,
                p.output * _PER_TOKEN,
            )
            for provider, models in self.providers.items()
            for model, p in models.items()
        }

    def cost(self, provider: str, model: str, usage: Mapping[str, int]) -> int | None:
        """What one call of ``model`` at ``provider`` cost, in nanos (:func:`call_cost`)."""
        return call_cost(self, provider, model, usage)


def call_cost(table: PriceTable, provider: str, model: str, usage: Mapping[str, int]) -> int | None:
    """The cost in nanos of one call that reported ``usage`` (``input_tokens``, of which
    ``cached_input_tokens`` came from the prompt cache, and ``output_tokens``; a count it
    did not report is 0), rounded half up to the nano; ``None`` when the table has no price
    for ``model`` at ``provider``. The one place a cost is computed."""
    rates = table.rates.get((provider, model))
    if rates is None:
        return None
    inp, out = _count(usage, "input_tokens"), _count(usage, "output_tokens")
    cached = min(_count(usage, "cached_input_tokens"), inp)
    exact = (inp - cached) * rates[0] + cached * rates[1] + out * rates[2]
    return int(exact.to_integral_value(rounding=ROUND_HALF_UP))


def _count(usage: Mapping[str, int], key: str) -> int:
    value = usage.get(key)
    return value if isinstance(value, int) and value > 0 else 0


__all__ = ["ModelPrice", "PriceTable", "call_cost"]
