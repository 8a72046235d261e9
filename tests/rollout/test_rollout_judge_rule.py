"""An analysis' model judge, pure: the judge check on known counts (fail, pass, wait, and
wait for ``min_judged``), the sample, the ratchet's reading of a changed judge, and a bad
judge refused naming the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from kneo.controller.rollouts import Figures, judge, sampled
from kneo.errors import ErrorCode, SpecError
from kneo.policy.environment import EnvironmentPolicy, load_environment_file
from kneo.policy.ratchet import TIGHTENED, compare, loosened
from kneo.policy.rollout import AnalysisRule, RolloutPolicy, looser_parts

MODEL = {"provider": "dummy", "name": "grader"}
JUDGE: dict[str, Any] = {"model": MODEL, "criterion": "The reply is polite.", "min_judged": 20}
#: only the judge decides: every other figure unjudged
ONLY_JUDGE = {
    "min_runs": 1,
    "max_failure_increase": None,
    "max_rejection_increase": None,
    "max_edit_increase": None,
    "max_escalation_increase": None,
}


def rule(**judge_doc: Any) -> AnalysisRule:
    return AnalysisRule.model_validate({**ONLY_JUDGE, "judge": {**JUDGE, **judge_doc}})


def side(judged: int, passed: int) -> Figures:
    return Figures(runs=500, finished=500, judged=judged, judge_passed=passed)


def test_a_canary_the_judge_fails_far_more_often_fails_the_step() -> None:
    verdict = judge(rule(), side(60, 20), side(60, 57))
    assert verdict.outcome == "fail" and "judge" in verdict.reason
    check = verdict.checks["judge"]
    assert check["outcome"] == "fail"
    assert check["canary"] == pytest.approx(40 / 60) and check["stable"] == pytest.approx(3 / 60)
    assert check["difference_bounds"][0] > 0.10


def test_a_canary_as_good_as_stable_passes_once_the_bound_is_tight() -> None:
    verdict = judge(rule(), side(400, 396), side(400, 394))
    assert verdict.outcome == "pass" and verdict.checks["judge"]["outcome"] == "pass"
    assert verdict.checks["judge"]["difference_bounds"][1] <= 0.10


def test_an_inconclusive_difference_waits() -> None:
    verdict = judge(rule(), side(25, 21), side(25, 23))
    assert verdict.outcome == "wait" and verdict.checks["judge"]["outcome"] == "wait"
    assert "judge" in verdict.reason


def test_too_few_judged_runs_wait_however_bad_they_look() -> None:
    verdict = judge(rule(min_judged=20), side(19, 0), side(60, 60))
    assert verdict.outcome == "wait"
    assert "canary 19 of 20" in verdict.checks["judge"]["why"]
    # the same counts decide once min_judged is met
    assert judge(rule(min_judged=19), side(19, 0), side(60, 60)).outcome == "fail"


def test_without_a_judge_there_is_no_judge_check_and_the_score_is_none() -> None:
    plain = AnalysisRule.model_validate(ONLY_JUDGE)
    assert "judge" not in judge(plain, side(10, 0), side(10, 10)).checks
    assert Figures().to_dict()["judge_score"] is None
    assert side(8, 6).to_dict()["judge_score"] == 0.75
    assert side(8, 6).to_dict()["judged"] == 8


def test_the_sample_is_a_stable_share_of_runs() -> None:
    runs = [f"run_{i}" for i in range(4000)]
    picked = [r for r in runs if sampled("ro_1", r, 0.1)]
    assert 300 <= len(picked) <= 500
    assert picked == [r for r in runs if sampled("ro_1", r, 0.1)]  # the same every time
    assert set(picked) <= {r for r in runs if sampled("ro_1", r, 0.5)}  # a larger share adds
    assert all(sampled("ro_1", r, 1.0) for r in runs[:100])


STEPS: list[dict[str, Any]] = [
    {"set_weight": 10},
    {"analysis": {"judge": JUDGE}},
    {"set_weight": 100},
]


def with_judge(**changes: Any) -> RolloutPolicy:
    judged = {**JUDGE, **changes}
    return RolloutPolicy.model_validate(
        {"steps": [STEPS[0], {"analysis": {"judge": judged}}, STEPS[2]]}
    )


@pytest.mark.parametrize(
    ("new", "words"),
    [
        (
            RolloutPolicy.model_validate({"steps": [STEPS[0], {"analysis": {}}, STEPS[2]]}),
            "rollout.steps[1].analysis.judge removed",
        ),
        (with_judge(sample=0.05), "judge.sample 0.1 → 0.05"),
        (with_judge(min_judged=5), "judge.min_judged 20 → 5"),
        (with_judge(max_failure_increase=0.3), "judge.max_failure_increase 0.1 → 0.3"),
        (with_judge(model={"provider": "dummy", "name": "lenient"}), "judge.model dummy/grader"),
        (with_judge(criterion="Anything goes."), "judge.criterion changed"),
    ],
)
def test_a_looser_judge_is_listed(new: RolloutPolicy, words: str) -> None:
    old = RolloutPolicy.model_validate({"steps": STEPS})
    found = looser_parts(old, new)
    assert any(words in part for part in found), found


def test_a_judge_added_or_made_stricter_is_not_looser() -> None:
    plain = RolloutPolicy.model_validate({"steps": [STEPS[0], {"analysis": {}}, STEPS[2]]})
    judged = RolloutPolicy.model_validate({"steps": STEPS})
    assert looser_parts(plain, judged) == []
    stricter = with_judge(sample=0.5, min_judged=40, max_failure_increase=0.02)
    assert looser_parts(judged, stricter) == []
    old = EnvironmentPolicy.model_validate({"environment": "prod", "rollout": {"steps": STEPS}})
    added = EnvironmentPolicy.model_validate(
        {"environment": "prod", "rollout": stricter.model_dump(mode="json")}
    )
    assert loosened(old, added) == []
    assert [c.direction for c in compare(old, added)] == [TIGHTENED]


@pytest.mark.parametrize(
    ("judge_doc", "path"),
    [
        ({**JUDGE, "sample": 0}, "rollout.steps[1].analysis.judge.sample"),
        ({**JUDGE, "sample": 1.5}, "rollout.steps[1].analysis.judge.sample"),
        ({**JUDGE, "criterion": ""}, "rollout.steps[1].analysis.judge.criterion"),
        ({**JUDGE, "criterion": "x" * 2001}, "rollout.steps[1].analysis.judge.criterion"),
        ({**JUDGE, "min_judged": 0}, "rollout.steps[1].analysis.judge.min_judged"),
        (
            {**JUDGE, "max_failure_increase": -1},
            "rollout.steps[1].analysis.judge.max_failure_increase",
        ),
        ({"criterion": "polite"}, "rollout.steps[1].analysis.judge.model"),
        ({**JUDGE, "mood": "kind"}, "rollout.steps[1].analysis.judge.mood"),
    ],
)
def test_a_bad_judge_names_the_field(tmp_path: Path, judge_doc: dict[str, Any], path: str) -> None:
    steps = [STEPS[0], {"analysis": {"judge": judge_doc}}, STEPS[2]]
    file = tmp_path / "prod.yaml"
    file.write_text(yaml.safe_dump({"version": "v1", "rollout": {"steps": steps}}))
    with pytest.raises(SpecError) as caught:
        load_environment_file(file)
    assert caught.value.code == ErrorCode.E_SCHEMA
    assert caught.value.details["path"] == path, caught.value
