"""A rollout's analysis and its next step: pure functions over per-revision figures.

**The figures** (:class:`Figures`) of one revision, from the runs that started on it since
the rollout began: finished runs and how many failed, decided human requests and how many
were rejected, edited or escalated, the p95 latency of finished runs and their cost.

**The rule** (:func:`judge`), per figure of an ``analysis`` step
(:class:`~kneo.policy.rollout.AnalysisRule`):

* nothing is decided before both revisions have ``min_runs`` finished runs (``wait``);
* a rate (failures per finished run; rejections, edits, escalations per decided request,
  of the step's ``request_kinds`` when it names some, else of every kind) is compared by
  the difference *canary - stable* and its Newcombe hybrid score interval
  (Newcombe 1998, method 10: from the two Wilson score intervals) at the one-sided
  ``confidence``: **fail** when the lower bound is above the step's ``max_*_increase``
  (the canary is worse by more than the margin, with that confidence), **pass** when the
  upper bound is at or below it, **wait** otherwise. A decision rate with no decided
  request on either side bears no evidence and passes (the workflow asks nobody);
* a model judge (the step's ``judge``) of a sample of finished runs: its FAIL rate is a
  rate like the others (``judge.max_failure_increase``), decided once each side has
  ``judge.min_judged`` judged runs (:mod:`kneo.platform.rollout_judge` judges them);
* latency and cost compare the canary's p95 (cost: mean per run of known cost) to the stable's, each
  ``max_*_ratio`` at most (a point estimate, once ``min_runs`` is met);
* the step fails when any figure fails, passes when every figure passes, waits otherwise.

**The step function** (:func:`advance`): a rollout's state and the verdicts it may use give
its next state: ``set_weight`` moves the share (``100``: promoted), ``analysis`` passes on or
aborts, ``pause`` waits for its ``duration`` or for a person; a ``held`` rollout (a pin, a
freeze) does not move forward, but a failed analysis still aborts it (going back to stable
is always allowed).

Reconcile layer, but pure: no clock, no I/O.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from statistics import NormalDist
from typing import Any, Literal

from kneo.policy.rollout import AnalysisRule, RolloutPolicy
from kneo.store.rollouts import KindFigures, SideFigures

__all__ = [
    "Figures",
    "RolloutState",
    "Verdict",
    "advance",
    "judge",
    "newcombe",
    "sampled",
    "wilson",
]

Outcome = Literal["pass", "fail", "wait"]
Status = Literal["progressing", "paused", "promoted", "aborted"]
#: statuses a rollout leaves no more
FINAL: tuple[str, ...] = ("promoted", "aborted", "superseded")


def wilson(successes: int, n: int, z: float) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``successes / n`` at ``z``."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe(k1: int, n1: int, k2: int, n2: int, z: float) -> tuple[float, float]:
    """The Newcombe hybrid score interval of ``k1/n1 - k2/n2`` at ``z`` (each side's
    Wilson interval combined)."""
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson(k1, n1, z)
    l2, u2 = wilson(k2, n2, z)
    d = p1 - p2
    return (
        d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2),
        d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2),
    )


@dataclass(frozen=True)
class Figures(SideFigures):
    """One revision's runs since the rollout began (see the module docstring): the store's
    sums of its counters (:class:`~kneo.store.rollouts.SideFigures`, whose fields these are),
    with the rates the rule compares."""

    @property
    def cost_per_run(self) -> float | None:
        return self.cost / self.priced if self.priced else None

    def of_kinds(self, kinds: Sequence[str]) -> Figures:
        """These figures with the decision counts of ``kinds`` of request only."""

        def total(name: str) -> int:
            return sum(int(getattr(self.kinds.get(kind, _NO_DECISIONS), name)) for kind in kinds)

        return replace(
            self,
            decided=total("decided"),
            rejected=total("rejected"),
            edited=total("edited"),
            escalated=total("escalated"),
        )

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        kinds: dict[str, dict[str, int]] = out.pop("kinds")
        out["failure_rate"] = self.failed / self.finished if self.finished else None
        out.update(_decision_rates(out))
        out["cost_per_run"] = self.cost_per_run
        out["judge_score"] = self.judge_passed / self.judged if self.judged else None
        out["by_kind"] = {
            kind: {n: int(c.get(n, 0)) for n in _DECISION_COUNTS} | _decision_rates(c)
            for kind, c in sorted(kinds.items())
        }
        return out


_DECISION_COUNTS = ("decided", "rejected", "edited", "escalated")
_NO_DECISIONS = KindFigures()


def _decision_rates(counts: Mapping[str, Any]) -> dict[str, float | None]:
    decided = counts.get("decided") or 0
    return {
        f"{name}_rate": (counts.get(count) or 0) / decided if decided else None
        for name, count in (
            ("rejection", "rejected"),
            ("edit", "edited"),
            ("escalation", "escalated"),
        )
    }


@dataclass(frozen=True)
class Verdict:
    """An analysis' outcome, each figure's, and why."""

    outcome: Outcome
    checks: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "reason": self.reason, "checks": dict(self.checks)}


_RATES = (
    ("failure", "max_failure_increase", "failed", "finished"),
    ("rejection", "max_rejection_increase", "rejected", "decided"),
    ("edit", "max_edit_increase", "edited", "decided"),
    ("escalation", "max_escalation_increase", "escalated", "decided"),
)


def _rate_check(
    rule: AnalysisRule, z: float, canary: Figures, stable: Figures, spec: tuple[str, ...]
) -> dict[str, Any] | None:
    name, limit_name, count, total = spec
    margin = getattr(rule, limit_name)
    if margin is None:
        return None
    k1, n1 = getattr(canary, count), getattr(canary, total)
    k2, n2 = getattr(stable, count), getattr(stable, total)
    if total == "decided" and n1 == 0 and n2 == 0:
        return {"outcome": "pass", "why": "no decided request on either side"}
    if n1 == 0 or n2 == 0:
        return {"outcome": "wait", "why": f"no {total} on one side yet"}
    return _difference_check(f"{name} rate", k1, n1, k2, n2, z, margin)


def _difference_check(
    what: str, k1: int, n1: int, k2: int, n2: int, z: float, margin: float
) -> dict[str, Any]:
    """``k1/n1 - k2/n2`` (canary - stable) by its Newcombe bounds at ``z``: fail above
    ``margin`` with that confidence, pass within it, wait otherwise."""
    low, high = newcombe(k1, n1, k2, n2, z)
    outcome: Outcome = "fail" if low > margin else "pass" if high <= margin else "wait"
    return {
        "outcome": outcome,
        "canary": k1 / n1,
        "stable": k2 / n2,
        "difference_bounds": [round(low, 6), round(high, 6)],
        "max_increase": margin,
        "why": f"{what} {k1}/{n1} vs {k2}/{n2}",
    }


def _judge_check(rule: AnalysisRule, z: float, canary: Figures, stable: Figures) -> (
    dict[str, Any] | None
):  # fmt: skip
    """The judge FAIL rate, canary - stable, by the rates' rule once each side has
    ``min_judged`` judgements."""
    judged = rule.judge
    if judged is None:
        return None
    short = [
        f"{side} {f.judged}" for side, f in (("canary", canary), ("stable", stable))
        if f.judged < judged.min_judged
    ]  # fmt: skip
    if short:
        return {
            "outcome": "wait",
            "why": f"too few judged runs: {', '.join(short)} of {judged.min_judged} needed",
        }
    return _difference_check(
        "judge FAIL rate",
        canary.judged - canary.judge_passed, canary.judged,
        stable.judged - stable.judge_passed, stable.judged,
        z, judged.max_failure_increase,
    )  # fmt: skip


def _ratio_check(limit: float | None, canary: float | None, stable: float | None, what: str) -> (
    dict[str, Any] | None
):  # fmt: skip
    if limit is None:
        return None
    if canary is None or stable is None:
        return {"outcome": "wait", "why": f"no {what} on one side yet"}
    ratio = canary / stable if stable > 0 else (1.0 if canary <= 0 else math.inf)
    return {
        "outcome": "fail" if ratio > limit else "pass",
        "canary": canary,
        "stable": stable,
        "ratio": ratio if math.isfinite(ratio) else None,
        "max_ratio": limit,
    }


def judge(rule: AnalysisRule, canary: Figures, stable: Figures) -> Verdict:
    """The verdict of an analysis step on the two revisions' figures (module docstring)."""
    short = [
        f"{side} has {f.finished} finished run(s)"
        for side, f in (("canary", canary), ("stable", stable))
        if f.finished < rule.min_runs
    ]
    if short:
        return Verdict("wait", {}, f"too few runs: {', '.join(short)} of {rule.min_runs} needed")
    if rule.request_kinds is not None:
        canary, stable = canary.of_kinds(rule.request_kinds), stable.of_kinds(rule.request_kinds)
    z = NormalDist().inv_cdf(rule.confidence)
    checks: dict[str, dict[str, Any]] = {}
    for spec in _RATES:
        found = _rate_check(rule, z, canary, stable, spec)
        if found is not None:
            checks[spec[0]] = found
    for name, limit, c, s in (
        ("latency", rule.max_latency_ratio, canary.p95_latency_ms, stable.p95_latency_ms),
        ("cost", rule.max_cost_ratio, canary.cost_per_run, stable.cost_per_run),
    ):
        found = _ratio_check(limit, c, s, name)
        if found is not None:
            checks[name] = found
    found = _judge_check(rule, z, canary, stable)
    if found is not None:
        checks["judge"] = found
    failed = [n for n, c in checks.items() if c["outcome"] == "fail"]
    if failed:
        return Verdict("fail", checks, f"the canary is worse: {', '.join(failed)}")
    waiting = [n for n, c in checks.items() if c["outcome"] == "wait"]
    if waiting:
        return Verdict("wait", checks, f"not conclusive yet: {', '.join(waiting)}")
    return Verdict("pass", checks, "the canary is no worse than the stable revision")


# --------------------------------------------------------------------------- steps


@dataclass(frozen=True)
class RolloutState:
    """Where a rollout stands: the step it is at (``len(steps)``: done), the canary's share
    of new runs, its status, when the step began, and why it last stopped."""

    step: int
    weight: int
    status: Status
    step_started_at: datetime
    reason: str | None = None


def start(policy: RolloutPolicy, now: datetime) -> RolloutState:
    """A rollout at its first step (a share: it is applied at once)."""
    first = policy.steps[0].set_weight or 0
    return RolloutState(step=1, weight=first, status="progressing", step_started_at=now)


def advance(
    policy: RolloutPolicy,
    state: RolloutState,
    now: datetime,
    *,
    verdict: Verdict | None,
    held: str | None = None,
    approved: bool = False,
) -> RolloutState:
    """The next state (the same one when nothing moves): one pass of the controller.

    ``verdict``: the analysis of the figures now, for an ``analysis`` step (``None``: not
    computed). ``held``: why progress stops (a pin, a freeze). ``approved``: a person
    promoted the pause step it stands at."""
    if state.status not in ("progressing", "paused"):
        return state
    while state.step < len(policy.steps):
        step = policy.steps[state.step]
        if step.analysis is not None:
            if verdict is not None and verdict.outcome == "fail":
                return replace(state, status="aborted", reason=verdict.reason)
            if verdict is None or verdict.outcome == "wait" or held:
                return replace(state, reason=held or (verdict.reason if verdict else None) or None)
            verdict = None  # one verdict passes one analysis step per pass
        elif step.pause is not None:
            due = step.pause.duration is not None and (
                (now - state.step_started_at).total_seconds() >= step.pause.duration
            )
            if held or not (due or approved):
                why = held or (
                    "waiting for approval"
                    if step.pause.duration is None
                    else f"pausing {step.pause.duration}s"
                )
                return replace(state, status="paused", reason=why)
            approved = False
        else:
            if held:
                return replace(state, reason=held)
            state = replace(state, weight=step.set_weight or state.weight)
        state = replace(
            state, step=state.step + 1, status="progressing", step_started_at=now, reason=None
        )
        if state.weight >= 100:
            return replace(state, status="promoted")
    return replace(state, status="promoted", weight=100)


def track_of(key: str, rollout_id: str, weight: int) -> Literal["canary", "stable"]:
    """Which side a new run with split ``key`` (its session, else the run) takes: a stable
    hash of the rollout and the key into 10,000 buckets, the first ``weight`` % canary. A
    key's bucket never changes within a rollout, so raising the share only moves stable
    keys to the canary (a session is sticky)."""
    digest = hashlib.blake2b(f"{rollout_id}\0{key}".encode(), digest_size=8).digest()
    bucket = int.from_bytes(digest, "big") % 10_000
    return "canary" if bucket < weight * 100 else "stable"


def sampled(rollout_id: str, run_id: str, share: float) -> bool:
    """Whether a model judge judges run ``run_id`` of a rollout: a stable hash of the
    rollout and the run into 10,000 buckets, the first ``share`` of them (every process,
    every pass, picks the same runs)."""
    digest = hashlib.blake2b(f"{rollout_id}\0{run_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 10_000 < round(share * 10_000)
