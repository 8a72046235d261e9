"""``promotion.require_evals``: the policy's form, how two sources merge, and the verdicts
the planner acts on."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from kneo.bundle import CaseOutcome, EvalAttestation
from kneo.policy.environment import EnvironmentPolicy, EvalRequirement, merge_stricter
from kneo.policy.evals import judge_evals

DIGEST = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64


def _attested(suite: str, outcomes: list[str], digest: str = DIGEST) -> EvalAttestation:
    passed = outcomes.count("passed")
    return EvalAttestation(
        suite=suite,
        suite_digest="sha256:" + "c" * 64,
        digest=digest,
        pass_rate=passed / len(outcomes),
        passed=passed,
        total=len(outcomes),
        cases=[CaseOutcome(id=f"case-{i}", outcome=o) for i, o in enumerate(outcomes)],  # type: ignore[arg-type]
        kneo_version="0.1.0",
    )


def test_require_evals_is_part_of_the_promotion_policy() -> None:
    policy = EnvironmentPolicy.model_validate(
        {"promotion": {"require_evals": [{"suite": "support-agent", "min_pass_rate": 0.9}]}}
    )
    assert policy.promotion.require_evals == [
        EvalRequirement(suite="support-agent", min_pass_rate=0.9)
    ]
    assert EnvironmentPolicy().promotion.require_evals == []


@pytest.mark.parametrize(
    "evals",
    [
        [{"suite": "s", "min_pass_rate": 1.5}],
        [{"suite": "Not A Name"}],
        [{"suite": "s"}, {"suite": "s", "min_pass_rate": 0.5}],
        [{"suite": "s", "rate": 1}],
    ],
)
def test_a_bad_requirement_is_refused(evals: list[dict[str, object]]) -> None:
    with pytest.raises(ValidationError):
        EnvironmentPolicy.model_validate({"promotion": {"require_evals": evals}})


def test_merging_keeps_every_suite_at_the_higher_rate() -> None:
    a = EnvironmentPolicy.model_validate(
        {"promotion": {"require_evals": [{"suite": "one", "min_pass_rate": 0.8}]}}
    )
    b = EnvironmentPolicy.model_validate(
        {
            "promotion": {
                "require_evals": [{"suite": "one", "min_pass_rate": 0.95}, {"suite": "two"}]
            }
        }
    )
    for merged in (merge_stricter(a, b), merge_stricter(b, a)):
        assert merged.promotion.require_evals == [
            EvalRequirement(suite="one", min_pass_rate=0.95),
            EvalRequirement(suite="two", min_pass_rate=1.0),
        ]


def test_verdicts_name_the_suite_the_rate_and_what_failed() -> None:
    required = [
        EvalRequirement(suite="support-agent"),
        EvalRequirement(suite="safety", min_pass_rate=0.5),
    ]
    attested = [
        _attested("support-agent", ["passed", "failed", "passed", "failed"]),
        _attested("safety", ["passed", "failed"]),
    ]
    support, safety = judge_evals(required, attested, DIGEST)
    assert not support.passed and safety.passed
    assert support.message() == (
        "eval suite 'support-agent' failed: 50% (requires 100%); failing: case-1, case-3"
    )
    assert safety.message().startswith("eval suite 'safety' passed: 50%")


def test_a_result_for_another_digest_or_none_at_all_does_not_count() -> None:
    required = [EvalRequirement(suite="support-agent")]
    [missing] = judge_evals(required, [_attested("support-agent", ["passed"], OTHER)], DIGEST)
    assert not missing.passed and missing.rate is None
    assert "no signed result for this digest" in missing.message()
    assert judge_evals([], [], DIGEST) == []
