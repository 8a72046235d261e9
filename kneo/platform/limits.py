"""A project's ``limits:`` at run time (docs/projects.md#limits).

* **Admission** (:meth:`ProjectLimitsGate.admit`): a new run that would execute now (a
  synchronous start, a replay) is refused while ``max_running_runs`` of the project's runs
  execute; one that would wait in the queue while ``max_queued_runs`` wait; any new run
  while a daily budget is spent. Each is ``429 project_limit_reached`` naming the limit,
  with ``Retry-After`` (a daily budget: until the next UTC midnight).
* **Workers**: a worker skips the queue records of a project at ``max_running_runs`` in its
  claim (:class:`kneo.platform.runtime.ProjectSlots`), and the transaction that starts a
  run of such a project counts again under the project's row lock
  (:meth:`ProjectLimitsGate.take_slot`), so no interleaving of workers starts more.
* **Daily budgets** (:class:`DailyBudget`): each model call of the project's runs adds to
  the day's ``project_usage`` row; before each model call the run reads it and, at a
  budget, pauses for a person or fails (:mod:`kneo.engine.budgets`).

A project without ``limits:`` pays for none of it: no count, no read, no write.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from kneo.engine.budgets import DAILY_FIELDS
from kneo.errors import ProjectLimitReached
from kneo.policy.access import DailySpend
from kneo.spec.limits import ProjectLimits
from kneo.usage import shown_amount

if TYPE_CHECKING:
    from kneo.store.api import Store
    from kneo.store.transaction import Transaction


#: How long a client is told to wait at a running or queued limit (runs end in seconds).
RETRY_AFTER_SECONDS = 5
_FIELDS = DAILY_FIELDS


def utc_day(now: datetime) -> str:
    """The UTC day ``now`` falls on, as ``project_usage`` keys it (``YYYY-MM-DD``)."""
    return now.astimezone(UTC).strftime("%Y-%m-%d")


def seconds_to_midnight(now: datetime) -> int:
    """Whole seconds from ``now`` to the next UTC midnight, at least 1."""
    now = now.astimezone(UTC)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1, int((midnight - now).total_seconds() + 0.999))


@dataclass(eq=False)
class DailyBudget:
    """A project's daily budgets (:class:`~kneo.policy.access.ProjectBudget`) over its
    ``project_usage`` rows: what a run's agent loop asks before and tells after each model
    call."""

    store: Store
    limits: ProjectLimits

    @property
    def project(self) -> str:
        return self.store.project

    @property
    def on_exceeded(self) -> str:
        return self.limits.on_exceeded

    def spend(self) -> DailySpend:
        """Today's usage and the limits in force (a person's raise, else the definition's)."""
        day = utc_day(self.store.clock.now())
        usage = self.store.limits.day_usage(day)
        base = self.limits.daily
        return DailySpend(
            day=day,
            used={counter: usage.used(counter) for counter in base},
            limits={c: max(limit, usage.raised(c) or 0) for c, limit in base.items()},
            base=base,
        )

    def record(self, model_calls: int, tokens: int, cost: int = 0) -> None:
        """Add one call's usage (``cost`` in nanos) to today's row (an upsert; every
        process's calls add up)."""
        day = utc_day(self.store.clock.now())
        self.store.limits.add_usage(day, model_calls=model_calls, tokens=tokens, cost=cost)

    def raise_limit(self, day: str, counter: str, limit: int) -> int:
        """Raise the project's limit on ``counter`` for ``day`` (a person's decision); the
        limit in force after it (a higher raise stands)."""
        usage = self.store.limits.raise_day_limit(day, counter, limit)
        return max(self.limits.daily[counter], usage.raised(counter) or 0)


@dataclass(eq=False)
class ProjectLimitsGate:
    """The admission side of one project's ``limits:`` (see the module docstring)."""

    store: Store
    limits: ProjectLimits

    @property
    def budget(self) -> DailyBudget | None:
        """The project's daily budgets, for its runs' grants (``None``: it has none)."""
        return DailyBudget(self.store, self.limits) if self.limits.daily else None

    def admit(self, *, queued: bool) -> None:
        """Whether a new run may start now: executing at once (``queued`` false) or waiting
        for a worker; ``429 project_limit_reached`` naming the limit otherwise."""
        limits, counts = self.limits, self.store.limits
        if queued and limits.max_queued_runs is not None:
            cap = limits.max_queued_runs
            if counts.count_runs("queued", cap) >= cap:
                raise self._reached("max_queued_runs", cap, "runs waiting in the queue")
        if not queued and limits.max_running_runs is not None:
            cap = limits.max_running_runs
            if counts.count_runs("running", cap, executing_only=True) >= cap:
                raise self._reached("max_running_runs", cap, "runs executing")
        if limits.daily:
            self._within_daily()

    def _within_daily(self) -> None:
        now = self.store.clock.now()
        spend = DailyBudget(self.store, self.limits).spend()
        for counter, limit in spend.limits.items():
            if spend.used[counter] >= limit:
                used, shown = spend.used[counter], shown_amount(counter, limit)
                raise ProjectLimitReached(
                    f"project {self.store.project!r} has used {shown_amount(counter, used)} of "
                    f"the {shown} {counter.replace('_', ' ')} its daily budget allows on "
                    f"{spend.day} (UTC): new runs start after midnight UTC",
                    retry_after=seconds_to_midnight(now),
                    limit=_FIELDS[counter],
                    value=float(shown) if counter == "cost" else limit,
                    project=self.store.project,
                    field=f"limits.{_FIELDS[counter]}",
                )

    def take_slot(self, tx: Transaction) -> None:
        """In the transaction that starts one of the project's runs: ``429`` when
        ``max_running_runs`` of them execute, counted after the project's row is locked (so
        a second starter counts after the first commits); nothing without that limit."""
        cap = self.limits.max_running_runs
        if cap is not None and not tx.run_slot_free(cap):
            raise self._reached("max_running_runs", cap, "runs executing")

    def _reached(self, name: str, cap: int, what: str) -> ProjectLimitReached:
        return ProjectLimitReached(
            f"project {self.store.project!r} has {cap} {what}, its limit (limits.{name}): "
            "try again when one ends",
            retry_after=RETRY_AFTER_SECONDS,
            limit=name,
            value=cap,
            project=self.store.project,
            field=f"limits.{name}",
        )


def limits_of(config: object) -> ProjectLimits:
    """A project config's ``limits:`` (an embedder's manager without a project: none)."""
    found = getattr(config, "limits", None)
    return found if isinstance(found, ProjectLimits) else ProjectLimits()


__all__ = [
    "RETRY_AFTER_SECONDS",
    "DailyBudget",
    "ProjectLimitsGate",
    "limits_of",
    "seconds_to_midnight",
    "utc_day",
]
