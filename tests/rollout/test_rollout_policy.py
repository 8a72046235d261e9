"""``rollout:`` in an environment policy: validation naming the field, the stricter-wins
merge, the ratchet's judgement of a change, a bundle's override within the policy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kneo.errors import ConfigError, ErrorCode, SpecError
from kneo.policy.environment import EnvironmentPolicy, load_environment_file, merge_stricter
from kneo.policy.ratchet import LOOSENED, TIGHTENED, compare, loosened, unclassified
from kneo.policy.rollout import RolloutPolicy, effective_rollout, looser_parts, parse_duration

STEPS: list[dict[str, Any]] = [
    {"setWeight": 10},
    {"analysis": {"min_runs": 50}},
    {"pause": {"approvers": ["release-managers"]}},
    {"set_weight": 50},
    {"analysis": {}},
    {"pause": {"duration": "1h"}},
    {"set_weight": 100},
]


def rollout(steps: list[dict[str, Any]] | None = None, **extra: Any) -> RolloutPolicy:
    return RolloutPolicy.model_validate({"steps": steps or STEPS, **extra})


def policy(**rollout_doc: Any) -> EnvironmentPolicy:
    return EnvironmentPolicy.model_validate(
        {"environment": "prod", "rollout": {"steps": STEPS, **rollout_doc}}
    )


def env_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "prod.yaml"
    path.write_text(text)
    return path


def test_a_rollout_reads_with_argo_and_kneo_names() -> None:
    r = rollout()
    assert [s.kind for s in r.steps] == [
        "set_weight",
        "analysis",
        "pause",
        "set_weight",
        "analysis",
        "pause",
        "set_weight",
    ]
    assert r.steps[0].set_weight == 10 and r.steps[5].pause is not None
    assert r.steps[5].pause.duration == 3600
    assert r.steps[1].analysis is not None and r.steps[1].analysis.min_runs == 50
    assert r.steps[4].analysis is not None and r.steps[4].analysis.confidence == 0.95
    assert parse_duration("90") == 90 and parse_duration("2d") == 172800


@pytest.mark.parametrize(
    ("steps", "path", "words"),
    [
        ([{"analysis": {}}, {"set_weight": 100}], "rollout.steps", "first step sets"),
        ([{"set_weight": 10}, {"analysis": {}}], "rollout.steps", "last step is set_weight: 100"),
        (
            [{"set_weight": 50}, {"set_weight": 20}, {"set_weight": 100}],
            "rollout.steps",
            "set_weight 20 is not above the previous 50",
        ),
        (
            [{"set_weight": 10, "analysis": {}}, {"set_weight": 100}],
            "rollout.steps[0]",
            "exactly one of set_weight, analysis, pause",
        ),
        ([{"set_weight": 0}, {"set_weight": 100}], "rollout.steps[0].set_weight", ""),
        (
            [{"set_weight": 10}, {"pause": {"duration": "soon"}}, {"set_weight": 100}],
            "rollout.steps[1].pause.duration",
            "not a duration",
        ),
        (
            [{"set_weight": 10}, {"analysis": {"confidence": 2}}, {"set_weight": 100}],
            "rollout.steps[1].analysis.confidence",
            "",
        ),
        (
            [{"set_weight": 10}, {"analysis": {"min_runs": 0}}, {"set_weight": 100}],
            "rollout.steps[1].analysis.min_runs",
            "",
        ),
        (
            [{"set_weight": 10}, {"wait": {}}, {"set_weight": 100}],
            "rollout.steps[1].wait",
            "",
        ),
    ],
)
def test_a_bad_rollout_names_the_field(
    tmp_path: Path, steps: list[dict[str, Any]], path: str, words: str
) -> None:
    import yaml

    text = yaml.safe_dump({"version": "v1", "rollout": {"steps": steps}})
    with pytest.raises(SpecError) as caught:
        load_environment_file(env_file(tmp_path, text))
    assert caught.value.code == ErrorCode.E_SCHEMA
    assert caught.value.details["path"] == path, caught.value
    assert words in str(caught.value)


def test_a_policy_file_with_a_rollout_loads(tmp_path: Path) -> None:
    text = """version: v1
rollout:
  steps:
    - setWeight: 20
    - analysis: {min_runs: 40, max_rejection_increase: 0.02}
    - set_weight: 100
  bundle_override: none
"""
    loaded = load_environment_file(env_file(tmp_path, text))
    assert loaded.rollout is not None and loaded.rollout.bundle_override == "none"
    assert loaded.rollout.steps[1].analysis is not None
    assert loaded.rollout.steps[1].analysis.max_rejection_increase == 0.02


def test_the_ratchet_classifies_the_rollout() -> None:
    assert unclassified() == []


def test_adding_a_rollout_tightens_and_removing_it_loosens() -> None:
    plain = EnvironmentPolicy(environment="prod")
    [added] = compare(plain, policy())
    assert added.direction == TIGHTENED and added.gate == "rollout"
    [removed] = loosened(policy(), plain)
    assert removed.gate == "rollout" and "rollout removed" in removed.summary


@pytest.mark.parametrize(
    ("new_steps", "words"),
    [
        ([s for s in STEPS if "pause" not in s], "was removed"),
        ([STEPS[0], STEPS[2], *STEPS[3:]], "was removed"),
        (
            [STEPS[0], {"analysis": {"min_runs": 10}}, *STEPS[2:]],
            "rollout.steps[1].analysis.min_runs 50 → 10",
        ),
        (
            [STEPS[0], {"analysis": {"min_runs": 50, "max_failure_increase": None}}, *STEPS[2:]],
            "max_failure_increase 0.05 → unjudged",
        ),
        (
            [STEPS[0], {"analysis": {"min_runs": 50, "confidence": 0.8}}, *STEPS[2:]],
            "confidence 0.95 → 0.8",
        ),
        ([{"set_weight": 30}, *STEPS[1:]], "reached at 30 % instead of 10 %"),
        ([*STEPS[:2], {"pause": {"approvers": []}}, *STEPS[3:]], "approvers release-managers"),
        ([*STEPS[:5], {"pause": {"duration": "5m"}}, STEPS[6]], "duration 3600s → 300s"),
    ],
)
def test_a_looser_rollout_is_a_loosening(new_steps: list[dict[str, Any]], words: str) -> None:
    changes = loosened(
        policy(),
        EnvironmentPolicy.model_validate({"environment": "prod", "rollout": {"steps": new_steps}}),
    )
    assert changes and all(c.gate == "rollout" for c in changes)
    assert words in " | ".join(c.summary for c in changes)


def test_more_steps_lower_shares_and_stricter_analysis_tighten() -> None:
    stricter = [
        {"set_weight": 5},
        {"analysis": {"min_runs": 80, "confidence": 0.99, "max_failure_increase": 0.01}},
        {"pause": {"approvers": ["release-managers"]}},
        {"set_weight": 25},
        {"analysis": {}},
        {"set_weight": 50},
        {"analysis": {}},
        {"pause": {"duration": "2h"}},
        {"set_weight": 100},
    ]
    new = EnvironmentPolicy.model_validate({"environment": "prod", "rollout": {"steps": stricter}})
    changes = compare(policy(), new)
    assert [c.direction for c in changes] == [TIGHTENED]
    assert loosened(policy(), new) == []
    assert compare(policy(), policy()) == []
    assert [c.direction for c in compare(policy(bundle_override="none"), policy())] == [LOOSENED]


def test_the_merge_keeps_the_stricter_rollout_and_refuses_two_that_cross() -> None:
    plain = EnvironmentPolicy(environment="prod")
    assert merge_stricter(plain, policy()).rollout == policy().rollout
    assert merge_stricter(policy(), plain).rollout == policy().rollout
    fewer = EnvironmentPolicy.model_validate(
        {"environment": "prod", "rollout": {"steps": [STEPS[0], STEPS[1], STEPS[6]]}}
    )
    assert merge_stricter(fewer, policy()).rollout == policy().rollout
    # one judges at a larger share, the other drops a pause: neither is the stricter
    crossed = EnvironmentPolicy.model_validate(
        {"environment": "prod", "rollout": {"steps": [{"set_weight": 1}, STEPS[1], STEPS[6]]}}
    )
    with pytest.raises(ConfigError) as caught:
        merge_stricter(crossed, policy())
    assert caught.value.code == ErrorCode.environment_policy_conflict
    assert caught.value.details["field"] == "rollout"


def test_a_bundle_brings_its_own_rollout_only_within_the_policy() -> None:
    env = rollout()
    stricter = rollout([{"set_weight": 1}, *STEPS[1:]])
    assert effective_rollout(env, None) is env
    assert effective_rollout(env, stricter) is stricter
    assert effective_rollout(None, stricter) is stricter
    with pytest.raises(ValueError, match="looser than the policy's"):
        effective_rollout(env, rollout([STEPS[0], STEPS[6]]))
    with pytest.raises(ValueError, match="lets no bundle"):
        effective_rollout(rollout(bundle_override="none"), stricter)
    assert looser_parts(None, env) == []
