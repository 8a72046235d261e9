"""Documented answers of the rollout operations (``GET /v1/rollouts`` and the rest): like
:mod:`kneo.service.responses_platform`'s, they describe the views the routes return and
allow fields they do not name. Their table (:data:`ROLLOUT_RESPONSES`) joins
:data:`~kneo.service.responses_platform.PLATFORM_RESPONSES`."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from kneo.service.responses import OpenView


class RolloutSummary(OpenView):
    """A rollout as a listing shows it."""

    rollout_id: str
    bundle: str
    environment: str
    stable_revision: int
    canary_revision: int
    canary_digest: str | None = None
    commit: str | None = None
    status: str = Field(description="progressing, paused, promoted, aborted or superseded.")
    step: int = Field(description="The index of the step it stands at (step_count: done).")
    step_count: int
    weight: int = Field(description="The canary's share of new runs, in %.")
    reason: str | None = None
    standing: str = Field(description="Where it stands, in a sentence.")
    started_at: str
    updated_at: str
    finished_at: str | None = None
    version: int


class RolloutList(OpenView):
    rollouts: list[RolloutSummary]
    count: int
    total: int | None = Field(None, description="All matching rollouts (with include=counts).")
    total_capped: bool | None = None
    limit: int | None = None
    next_cursor: str | None = Field(None, description="Pass as cursor for the next page.")


class RolloutStepView(OpenView):
    index: int
    kind: str = Field(description="set_weight, analysis or pause.")
    describe: str
    state: str = Field(description="done, current or pending.")


class RolloutDetail(RolloutSummary):
    """One rollout: its steps, both sides' figures now, the verdict and the history."""

    steps: list[RolloutStepView]
    step_started_at: str
    approvers: list[str]
    figures: dict[str, dict[str, Any]] = Field(description="canary and stable: their figures.")
    verdict: dict[str, Any] | None = Field(None, description="The last analysis' verdict.")
    history: list[dict[str, Any]] = Field(description="The figures over time, oldest first.")


_OK = "200"
ROLLOUT_RESPONSES: dict[str, tuple[tuple[str, type[BaseModel]], ...]] = {
    "rollouts-list": ((_OK, RolloutList),),
    "rollouts-get": ((_OK, RolloutDetail),),
    "rollouts-promote": ((_OK, RolloutDetail),),
    "rollouts-abort": ((_OK, RolloutDetail),),
    "rollouts-retry": ((_OK, RolloutDetail),),
}

__all__ = ["ROLLOUT_RESPONSES"]
