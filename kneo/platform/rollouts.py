"""Rollouts as people see and decide them: ``GET /v1/rollouts``, ``GET /v1/rollouts/{id}``,
``POST /v1/rollouts/{id}/promote|abort|retry``, ``kneo rollout`` and the console's page.

* :meth:`RolloutOps.list_rollouts`: one page of a project's rollouts, newest first, by
  bundle, environment and status (keyset-paged like the other lists);
* :meth:`RolloutOps.get_rollout`: one rollout: where it stands (its steps, each ``done``,
  ``current`` or ``pending``, and a sentence), why it last stopped, each side's figures now
  (:meth:`~kneo.store.rollouts.RolloutFacet.figures`), the last analysis' verdict and the
  figures' history (:mod:`kneo.controller.rollout_history`);
* :meth:`RolloutOps.decide_rollout`: a person's ``promote`` (``full``: to 100 % at once),
  ``abort`` (``reason`` required) or ``retry``, through
  :func:`kneo.controller.rollout_pass.decide`: only the environment's approvers (and a pause
  step's own) decide (``403 not_an_approver``); a rollout that cannot take the decision is
  ``409 illegal_transition``, one moved meanwhile ``409 stale_state``.

Everything here is in the store's project: another project's rollout is ``404 not_found``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from kneo.clock import Clock
from kneo.controller import rollout_history
from kneo.controller.rollout_pass import decide, figures_of, policy_of
from kneo.errors import InvalidRequest
from kneo.store.queries import ROLLOUT_STATUSES

if TYPE_CHECKING:
    from kneo.store import Store
    from kneo.store.queries import RolloutQuery
    from kneo.store.rollouts import RolloutRecord

__all__ = ["DECISIONS", "STATUSES", "RolloutOps", "rollout_summary", "steps_of"]

#: what a rollout's ``status`` may be
STATUSES = ROLLOUT_STATUSES
#: what a person may decide
DECISIONS = ("promote", "abort", "retry")
#: the longest reason an abort records
MAX_REASON = 2000


def steps_of(record: RolloutRecord) -> list[dict[str, Any]]:
    """The rollout's steps, each with where the rollout stands to it: ``done``, ``current``
    (the step it waits at, while it moves) or ``pending``."""
    policy = policy_of(record)
    moving = record.status in ("progressing", "paused")
    out = []
    for index, step in enumerate(policy.steps):
        if record.status == "promoted" or index < record.step:
            state = "done"
        elif moving and index == record.step:
            state = "current"
        else:
            state = "pending"
        out.append({"index": index, "kind": step.kind, "describe": step.describe(), "state": state})
    return out


def standing(record: RolloutRecord) -> str:
    """Where the rollout stands, in a sentence."""
    total = len(policy_of(record).steps)
    share = f"the canary (revision {record.canary_revision}) takes {record.weight} %"
    if record.status == "promoted":
        return f"promoted: revision {record.canary_revision} takes every new run"
    if record.status in ("aborted", "superseded"):
        return f"{record.status}: new runs take revision {record.stable_revision}"
    if record.step >= total:
        return f"finishing: {share}"
    step = policy_of(record).steps[record.step]
    return f"{record.status} at step {record.step + 1} of {total} ({step.describe()}): {share}"


def rollout_summary(record: RolloutRecord) -> dict[str, Any]:
    """A rollout as a listing shows it (no figures: one read per page)."""
    return {
        "rollout_id": record.rollout_id,
        "bundle": record.bundle_name,
        "environment": record.environment,
        "stable_revision": record.stable_revision,
        "canary_revision": record.canary_revision,
        "canary_digest": record.canary_digest,
        "commit": record.commit,
        "status": record.status,
        "step": record.step,
        "step_count": len(policy_of(record).steps),
        "weight": record.weight,
        "reason": record.reason,
        "standing": standing(record),
        "started_at": record.started_at.isoformat(),
        "updated_at": record.updated_at.isoformat(),
        "finished_at": record.finished_at.isoformat() if record.finished_at else None,
        "version": record.version,
    }


def _approvers(record: RolloutRecord) -> list[str]:
    """Who may decide now: the environment's approvers and the current pause step's own
    (empty: anyone who may write the controller's state)."""
    allowed = list(record.policy.get("approvers") or [])
    policy = policy_of(record)
    if record.step < len(policy.steps):
        pause = policy.steps[record.step].pause
        if pause is not None:
            allowed += [a for a in pause.approvers if a not in allowed]
    return allowed


@dataclass(kw_only=True, eq=False, repr=False)
class RolloutOps:
    """A project's rollouts, read and decided by people."""

    store: Store
    clock: Clock

    def list_rollouts(self, query: RolloutQuery) -> dict[str, Any]:
        """One page of rollouts, newest first (module docstring); the query's ``count``:
        ``total`` counted (up to the count cap) where the page itself does not tell it."""
        page = self.store.rollouts.list_rollouts(query)
        items = [rollout_summary(r) for r in page.items]
        return {"rollouts": items, "count": len(items), "total": page.total,
                "total_capped": page.total_capped, "limit": query.limit,
                "next_cursor": page.next_cursor}  # fmt: skip

    def get_rollout(self, rollout_id: str) -> dict[str, Any]:
        """One rollout with its steps, figures, verdict and history (module docstring)."""
        record = self.store.rollouts.get_rollout(rollout_id)
        return self._view(record)

    def _view(self, record: RolloutRecord) -> dict[str, Any]:
        kept: Mapping[str, Any] = record.figures or {}
        sides = {side: f.to_dict() for side, f in figures_of(self.store, record).items()}
        return {
            **rollout_summary(record),
            "step_started_at": record.step_started_at.isoformat(),
            "steps": steps_of(record),
            "approvers": _approvers(record),
            "figures": sides,
            "verdict": kept.get("verdict"),
            "history": rollout_history.history_of(kept),
        }

    def decide_rollout(
        self,
        rollout_id: str,
        decision: Literal["promote", "abort", "retry"],
        *,
        actor: str,
        groups: frozenset[str] = frozenset(),
        full: bool = False,
        reason: str | None = None,
    ) -> dict[str, Any]:
        """A person's decision (module docstring); the rollout as it then stands."""
        if decision not in DECISIONS:
            raise InvalidRequest(f"not a rollout decision: {decision!r}", field="decision")
        if decision == "abort" and not (reason or "").strip():
            raise InvalidRequest("an abort says why: reason is required", field="reason")
        if reason is not None and len(reason) > MAX_REASON:
            raise InvalidRequest(f"reason is longer than {MAX_REASON} characters", field="reason")
        decide(
            self.store, rollout_id, decision, actor=actor, groups=groups,
            full=full, reason=reason.strip() if reason else None, now=self.clock.now(),
        )  # fmt: skip
        return self.get_rollout(rollout_id)
