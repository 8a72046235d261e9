"""A project's limits (``limits:`` in ``.kneo/config.yaml`` or a project's definition): how
many of its runs execute and wait at once, and what it may spend per UTC day.

Contract layer: one pydantic model. What enforces it is :mod:`kneo.platform.limits` (the
``429 project_limit_reached`` at admission, the workers' claim) and the agent loop (the daily
budgets, :mod:`kneo.engine.budgets`).
"""

from __future__ import annotations

from decimal import Decimal
from functools import cached_property
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from kneo.usage import to_nanos


class ProjectLimits(BaseModel):
    """What one project may hold and spend (docs/projects.md#limits). An unset limit takes
    no part, so a project without ``limits:`` pays nothing for them."""

    model_config = ConfigDict(extra="forbid")

    #: Runs executing at once (synchronous starts, and what workers take from the queue).
    max_running_runs: int | None = Field(default=None, ge=1)
    #: Runs waiting in the queue at once (``async_mode`` starts).
    max_queued_runs: int | None = Field(default=None, ge=1)
    #: Model requests per UTC day, over every run of the project.
    max_model_calls_per_day: int | None = Field(default=None, ge=1)
    #: Input plus output tokens per UTC day, over every run of the project.
    max_tokens_per_day: int | None = Field(default=None, ge=1)
    #: What model calls may cost per UTC day, over every run of the project, in the price
    #: table's currency (``prices:``); calls of unpriced models count 0 here.
    max_cost_per_day: Decimal | None = Field(
        default=None, gt=0, le=1_000_000_000, allow_inf_nan=False
    )
    #: At a daily budget: ``pause`` asks a person (approving raises today's limit), ``fail``
    #: fails the run with ``budget_exceeded``. New runs get ``429`` either way.
    on_exceeded: Literal["pause", "fail"] = "pause"

    @cached_property
    def daily(self) -> dict[str, int]:
        """The set daily budgets by what they count (``model_calls``, ``tokens``; ``cost``
        in nanos of the currency, :mod:`kneo.spec.prices`)."""
        cost = None if self.max_cost_per_day is None else to_nanos(self.max_cost_per_day)
        pairs = (
            ("model_calls", self.max_model_calls_per_day),
            ("tokens", self.max_tokens_per_day),
            ("cost", cost),
        )
        return {name: value for name, value in pairs if value is not None}

    @property
    def enforced(self) -> bool:
        """Whether any limit is set."""
        return bool(self.max_running_runs or self.max_queued_runs or self.daily)


__all__ = ["ProjectLimits"]
