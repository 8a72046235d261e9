"""The analysis rule on known data, and the step function."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import get_args

import pytest

from kneo.controller.rollouts import (
    Figures,
    RolloutState,
    Verdict,
    advance,
    judge,
    newcombe,
    start,
    track_of,
    wilson,
)
from kneo.policy.rollout import AnalysisRule, RolloutPolicy, looser_parts
from kneo.spec.models import RequestKind
from kneo.store.rollouts import KindFigures

Z95 = 1.959964  # two-sided 95 %


def test_wilson_and_newcombe_match_the_published_examples() -> None:
    # Newcombe (1998), Statistics in Medicine 17:857-872: 81/263 -> 0.2553 to 0.3662;
    # 56/70 - 48/80 -> 0.0524 to 0.3339 (method 10)
    low, high = wilson(81, 263, Z95)
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)
    low, high = newcombe(56, 70, 48, 80, Z95)
    assert (round(low, 4), round(high, 4)) == (0.0524, 0.3339)
    assert wilson(0, 0, Z95) == (0.0, 1.0)


RULE = AnalysisRule(min_runs=30, max_edit_increase=None, max_escalation_increase=None)


def figures(finished: int, failed: int = 0, decided: int = 0, rejected: int = 0) -> Figures:
    return Figures(
        runs=finished, finished=finished, failed=failed, decided=decided, rejected=rejected
    )


def test_too_few_runs_never_decide_however_bad() -> None:
    verdict = judge(RULE, figures(29, failed=29), figures(500))
    assert verdict.outcome == "wait" and "too few runs" in verdict.reason
    verdict = judge(RULE, figures(100), figures(29))
    assert verdict.outcome == "wait"


def test_a_canary_rejected_far_more_fails_and_a_close_one_waits_then_passes() -> None:
    bad = judge(RULE, figures(30, decided=30, rejected=15), figures(270, decided=270, rejected=27))
    assert bad.outcome == "fail" and "rejection" in bad.reason
    assert bad.checks["rejection"]["difference_bounds"][0] > 0.05
    close = judge(RULE, figures(30, decided=30, rejected=4), figures(270, decided=270, rejected=27))
    assert close.outcome == "wait" and "rejection" in close.reason
    good = judge(
        RULE, figures(2000, decided=2000, rejected=190), figures(8000, decided=8000, rejected=800)
    )
    assert good.outcome == "pass", good
    assert good.checks["rejection"]["difference_bounds"][1] <= 0.05


def test_no_decisions_on_either_side_bear_no_evidence() -> None:
    verdict = judge(RULE, figures(2000, failed=10), figures(8000, failed=40))
    assert verdict.outcome == "pass"
    assert verdict.checks["rejection"]["outcome"] == "pass"


def test_latency_and_cost_ratios() -> None:
    rule = AnalysisRule(
        min_runs=10,
        max_latency_ratio=1.5,
        max_cost_ratio=1.2,
        max_failure_increase=None,
        max_rejection_increase=None,
        max_edit_increase=None,
        max_escalation_increase=None,
    )
    slow = Figures(runs=10, finished=10, p95_latency_ms=3000, cost=1.0, priced=10)
    fast = Figures(runs=10, finished=10, p95_latency_ms=1000, cost=1.0, priced=10)
    assert judge(rule, slow, fast).outcome == "fail"
    assert judge(rule, fast, slow).outcome == "pass"
    dear = Figures(runs=10, finished=10, p95_latency_ms=1000, cost=2.0, priced=10)
    verdict = judge(rule, dear, fast)
    assert verdict.outcome == "fail" and verdict.checks["cost"]["ratio"] == 2.0
    # runs of unknown cost are left out of the mean; none known on a side: the check waits
    unknown = Figures(runs=10, finished=10, p95_latency_ms=1000, cost=0.0, priced=0)
    assert judge(rule, unknown, fast).checks["cost"]["outcome"] == "wait"


T0 = datetime(2026, 3, 1, tzinfo=UTC)
POLICY = RolloutPolicy.model_validate(
    {
        "steps": [
            {"set_weight": 10},
            {"analysis": {}},
            {"pause": {"approvers": ["leads"]}},
            {"set_weight": 50},
            {"pause": {"duration": "1h"}},
            {"set_weight": 100},
        ]
    }
)
PASS, FAIL, WAIT = Verdict("pass"), Verdict("fail", reason="worse"), Verdict("wait")


def test_a_rollout_walks_its_steps() -> None:
    s = start(POLICY, T0)
    assert (s.step, s.weight, s.status) == (1, 10, "progressing")
    assert advance(POLICY, s, T0, verdict=WAIT) == s
    s = advance(POLICY, s, T0, verdict=PASS)
    assert (s.step, s.weight, s.status) == (2, 10, "paused")
    assert advance(POLICY, s, T0 + timedelta(days=9), verdict=None) == s
    s = advance(POLICY, s, T0, verdict=None, approved=True)
    assert (s.step, s.weight, s.status) == (4, 50, "paused")
    assert advance(POLICY, s, T0 + timedelta(minutes=59), verdict=None).step == 4
    s = advance(POLICY, s, T0 + timedelta(hours=1), verdict=None)
    assert (s.weight, s.status) == (100, "promoted")
    assert advance(POLICY, s, T0, verdict=FAIL) == s


def test_a_failed_analysis_aborts_even_when_held_and_a_hold_stops_progress() -> None:
    s = start(POLICY, T0)
    aborted = advance(POLICY, s, T0, verdict=FAIL, held="pinned")
    assert aborted.status == "aborted" and aborted.reason == "worse"
    held = advance(POLICY, s, T0, verdict=PASS, held="frozen: holidays")
    assert (held.step, held.weight, held.reason) == (1, 10, "frozen: holidays")
    at_weight = RolloutState(step=3, weight=10, status="progressing", step_started_at=T0)
    assert advance(POLICY, at_weight, T0, verdict=None, held="pinned").weight == 10


def test_the_split_is_deterministic_sticky_and_near_its_share() -> None:
    keys = [f"session-{i}" for i in range(20_000)]
    at10 = {k for k in keys if track_of(k, "ro_1", 10) == "canary"}
    at50 = {k for k in keys if track_of(k, "ro_1", 50) == "canary"}
    assert at10 <= at50  # raising the share only moves stable keys over
    assert 1800 < len(at10) < 2200 and 9600 < len(at50) < 10400
    assert track_of("x", "ro_1", 100) == "canary"
    assert all(track_of(k, "ro_1", 10) == track_of(k, "ro_1", 10) for k in keys[:100])


@pytest.mark.parametrize("weight", [1, 25, 99])
def test_each_share_is_met(weight: int) -> None:
    n = sum(track_of(str(i), "ro_x", weight) == "canary" for i in range(20_000))
    assert abs(n / 20_000 - weight / 100) < 0.015


def test_request_kinds_judge_only_the_decisions_of_those_kinds() -> None:
    """The canary's reviews are rejected far more, its inputs never: judged over every kind
    the input answers dilute the difference (wait); over ``review`` alone it fails, and over
    ``input`` alone it passes. The figures show each kind's rates."""

    def side(rejected_reviews: int) -> Figures:
        kinds = {
            "review": KindFigures(decided=40, rejected=rejected_reviews),
            "input": KindFigures(decided=400, rejected=0),
        }
        return Figures(runs=440, finished=440, decided=440, rejected=rejected_reviews, kinds=kinds)

    canary, stable = side(20), side(2)
    assert judge(RULE, canary, stable).checks["rejection"]["outcome"] == "wait"
    reviews = RULE.model_copy(update={"request_kinds": ["review"]})
    failed = judge(reviews, canary, stable)
    assert failed.outcome == "fail" and failed.checks["rejection"]["why"] == (
        "rejection rate 20/40 vs 2/40"
    )
    inputs = RULE.model_copy(update={"request_kinds": ["input"]})
    assert judge(inputs, canary, stable).outcome == "pass"
    shown = canary.to_dict()["by_kind"]
    assert shown["review"]["rejection_rate"] == 0.5 and shown["input"]["rejection_rate"] == 0.0
    assert "kinds" not in canary.to_dict()


def test_a_request_kind_judged_no_more_is_looser() -> None:
    def policy(kinds: list[str] | None) -> RolloutPolicy:
        analysis: dict[str, object] = {"min_runs": 30}
        if kinds is not None:
            analysis["request_kinds"] = kinds
        steps = [{"set_weight": 10}, {"analysis": analysis}, {"set_weight": 100}]
        return RolloutPolicy.model_validate({"steps": steps})

    assert looser_parts(policy(None), policy(["review"])) == [
        "rollout.steps[1].analysis.request_kinds no longer counts "
        + ", ".join(sorted(k for k in get_args(RequestKind) if k != "review"))
    ]
    assert looser_parts(policy(["review", "approval"]), policy(["review"])) == [
        "rollout.steps[1].analysis.request_kinds no longer counts approval"
    ]
    assert looser_parts(policy(["review"]), policy(["review", "approval"])) == []
    assert looser_parts(policy(["review"]), policy(None)) == []
    with pytest.raises(ValueError, match="request_kinds"):
        AnalysisRule.model_validate({"request_kinds": ["approvals"]})
