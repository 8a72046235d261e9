"""``loosened(old, new)``: every trust-bearing field of an environment policy and of a project
config, each direction, combinations; and that a field nobody classified fails."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from kneo.policy.environment import EnvironmentPolicy
from kneo.policy.ratchet import (
    ENVIRONMENT_GATE,
    ENVIRONMENT_RULES,
    LOOSENED,
    PROJECT_RULES,
    TIGHTENED,
    compare,
    compare_environments,
    compare_project,
    field_paths,
    loosened,
    summary,
    unclassified,
)
from kneo.spec.project import ProjectConfig
from kneo.spec.project_blocks import SecretsConfig

WINDOW = {"reason": "holidays", "from": "2026-12-20T00:00:00Z", "until": "2027-01-05T00:00:00Z"}
WEEKLY = {"reason": "weekend", "days": ["sat", "sun"], "start": "00:00", "end": "23:59"}

#: gate -> (a stricter value, a looser value), as nested file fields.
STRICT_LOOSE: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "required_signatures": ({"required_signatures": 2}, {"required_signatures": 1}),
    "accepted_key_ids": ({"accepted_key_ids": ["ci"]}, {"accepted_key_ids": ["ci", "release"]}),
    "policy_enforcement": (
        {"policy_enforcement": {"enabled": True}},
        {"policy_enforcement": {"enabled": False}},
    ),
    "runs.require_approved_bundle": (
        {"runs": {"require_approved_bundle": True}},
        {"runs": {"require_approved_bundle": False}},
    ),
    "promotion.require_approved_in": (
        {"promotion": {"require_approved_in": "staging"}},
        {"promotion": {}},
    ),
    "promotion.require_human_approval": (
        {"promotion": {"require_human_approval": True}},
        {"promotion": {"require_human_approval": False}},
    ),
    "promotion.approvers": (
        {"promotion": {"approvers": ["alice"]}},
        {"promotion": {"approvers": ["alice", "mallory"]}},
    ),
    "promotion.min_approvals": ({"promotion": {"min_approvals": 2}}, {"promotion": {}}),
    "promotion.refuse_downgrade": ({"promotion": {"refuse_downgrade": True}}, {"promotion": {}}),
    "promotion.freeze": ({"promotion": {"freeze": [WINDOW]}}, {"promotion": {"freeze": []}}),
    "promotion.require_evals": (
        {"promotion": {"require_evals": [{"suite": "smoke"}]}},
        {"promotion": {"require_evals": []}},
    ),
    "resources.secrets": ({"resources": {"secrets": ["A"]}}, {"resources": {}}),
    "resources.mcp_servers": ({"resources": {"mcp_servers": []}}, {"resources": {}}),
    "resources.network": (
        {"resources": {"network": ["api.example.com"]}},
        {"resources": {"network": ["api.example.com", "evil.example"]}},
    ),
    "resources.bundle_processes": (
        {"resources": {"bundle_processes": False}},
        {"resources": {"bundle_processes": True}},
    ),
    "budgets.max_model_calls": ({"budgets": {"max_model_calls": 5}}, {"budgets": {}}),
    "budgets.max_tool_calls": (
        {"budgets": {"max_tool_calls": 5}},
        {"budgets": {"max_tool_calls": 50}},
    ),
    "budgets.max_tokens": ({"budgets": {"max_tokens": 100}}, {"budgets": {"max_tokens": 101}}),
    "budgets.max_cost": ({"budgets": {"max_cost": "0.50"}}, {"budgets": {"max_cost": "0.75"}}),
    "budgets.on_exceeded": ({"budgets": {"on_exceeded": "fail"}}, {"budgets": {}}),
    "rollout": (
        {"rollout": {"steps": [{"set_weight": 10}, {"analysis": {}}, {"set_weight": 100}]}},
        {"rollout": None},
    ),
}


def policy(*parts: dict[str, Any]) -> EnvironmentPolicy:
    merged: dict[str, Any] = {"environment": "prod"}
    for part in parts:
        for key, value in part.items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value
    return EnvironmentPolicy.model_validate(merged)


def gate_of(path: str) -> str:
    """A change's field (a required suite's changes name the suite below it)."""
    return "promotion.require_evals" if path.startswith("promotion.require_evals") else path


def test_every_field_of_every_model_is_classified() -> None:
    assert unclassified() == []


def test_every_rule_of_an_environment_is_exercised_here() -> None:
    """The table above covers each rule (the neutral fields apart)."""
    rules = {p for p, rule in ENVIRONMENT_RULES.items() if not isinstance(rule, str)}
    assert rules == set(STRICT_LOOSE)


def test_a_field_added_without_a_classification_is_found() -> None:
    """The coverage check would pass vacuously if it did not walk the models."""

    class Inner(BaseModel):
        limit: int = 1

    class Policy(BaseModel):
        required_signatures: int = 1
        inner: Inner = Inner()
        new_gate: bool = False

    table = {"required_signatures": "x", "inner.limit": "y", "gone": "z"}
    assert field_paths(Policy, table) == ["required_signatures", "inner.limit", "new_gate"]
    assert unclassified([(Policy, table)]) == [
        "Policy.new_gate: no rule",
        "Policy.gone: no such field",
    ]


@pytest.mark.parametrize("gate", sorted(STRICT_LOOSE))
def test_each_field_in_each_direction(gate: str) -> None:
    strict, loose = (policy(p) for p in STRICT_LOOSE[gate])
    down = compare(strict, loose)
    assert [(gate_of(c.gate), c.direction) for c in down] == [(gate, LOOSENED)]
    assert loosened(strict, loose) == down
    up = compare(loose, strict)
    assert [c.direction for c in up] == [TIGHTENED]
    assert loosened(loose, strict) == []
    assert compare(strict, strict) == compare(loose, loose) == []


def test_the_attack_reads_as_its_gates() -> None:
    """The commit of the issue: 2 signatures to 1, approval, freeze and downgrade removed."""
    before = policy(
        {"required_signatures": 2},
        {
            "promotion": {
                "require_human_approval": True,
                "approvers": ["alice", "bob"],
                "min_approvals": 2,
                "refuse_downgrade": True,
                "freeze": [WINDOW],
            }
        },
    )
    after = policy({"promotion": {"approvers": ["alice", "bob"], "min_approvals": 2}})
    gates = [c.gate for c in loosened(before, after)]
    assert gates == [
        "required_signatures",
        "promotion.require_human_approval",
        "promotion.refuse_downgrade",
        "promotion.freeze",
    ]
    text = summary(loosened(before, after))
    assert text.startswith("required_signatures 2 → 1, require_human_approval removed")
    assert "freeze removed: holidays" in text


@given(st.dictionaries(st.sampled_from(sorted(STRICT_LOOSE)), st.booleans()), st.data())
def test_combinations_loosen_exactly_the_fields_that_went_loose(
    old_choice: dict[str, bool], data: st.DataObject
) -> None:
    """Any mix of fields, each strict or loose on either side: the loosened gates are
    exactly those strict before and loose after; swapping the sides swaps the directions."""
    new_choice = data.draw(st.dictionaries(st.sampled_from(sorted(STRICT_LOOSE)), st.booleans()))
    # a field left out takes the "loose" side's value where it is the default, so pick
    # explicitly for every field: True = strict
    old_pick = {g: old_choice.get(g, False) for g in STRICT_LOOSE}
    new_pick = {g: new_choice.get(g, False) for g in STRICT_LOOSE}
    old = policy(*(STRICT_LOOSE[g][0 if s else 1] for g, s in old_pick.items()))
    new = policy(*(STRICT_LOOSE[g][0 if s else 1] for g, s in new_pick.items()))

    expected = {g for g in STRICT_LOOSE if old_pick[g] and not new_pick[g]}
    assert {gate_of(c.gate) for c in loosened(old, new)} == expected
    assert {gate_of(c.gate) for c in compare(new, old) if c.direction == TIGHTENED} == expected


def test_allow_lists_report_both_what_is_added_and_what_is_removed() -> None:
    old = policy({"accepted_key_ids": ["ci", "release"]})
    new = policy({"accepted_key_ids": ["ci", "intern"]})
    assert [(c.direction, c.summary) for c in compare(old, new)] == [
        (LOOSENED, "accepted_key_ids adds intern"),
        (TIGHTENED, "accepted_key_ids drops release"),
    ]
    anyone = policy({"accepted_key_ids": None})
    assert loosened(old, anyone)[0].summary == "accepted_key_ids removed (was ci, release): any"
    # approvers: an empty list means anyone may approve
    assert loosened(policy({"promotion": {"approvers": ["alice"]}}), policy({}))[0].gate == (
        "promotion.approvers"
    )


def test_freeze_windows_compare_whole() -> None:
    """A window moved or shortened is the old one removed: a loosening."""
    old = policy({"promotion": {"freeze": [WINDOW, WEEKLY]}})
    shorter = {**WINDOW, "until": "2026-12-21T00:00:00Z"}
    new = policy({"promotion": {"freeze": [WEEKLY, shorter]}})
    changes = compare(old, new)
    assert [(c.direction, c.summary.split(":")[0]) for c in changes] == [
        (LOOSENED, "freeze removed"),
        (TIGHTENED, "freeze added"),
    ]
    # order alone is no change
    assert compare(old, policy({"promotion": {"freeze": [WEEKLY, WINDOW]}})) == []


def test_eval_requirements_by_suite_and_rate() -> None:
    old = policy({"promotion": {"require_evals": [{"suite": "smoke", "min_pass_rate": 0.9}]}})
    lower = policy({"promotion": {"require_evals": [{"suite": "smoke", "min_pass_rate": 0.5}]}})
    other = policy({"promotion": {"require_evals": [{"suite": "other"}]}})
    assert [c.summary for c in loosened(old, lower)] == [
        "require_evals.smoke.min_pass_rate 0.9 → 0.5"
    ]
    assert [(c.direction, c.summary) for c in compare(old, other)] == [
        (LOOSENED, "require_evals: suite smoke removed"),
        (TIGHTENED, "require_evals: suite other added"),
    ]


def test_upstream_to_another_environment_is_a_loosening() -> None:
    old = policy({"promotion": {"require_approved_in": "staging"}})
    new = policy({"promotion": {"require_approved_in": "qa"}})
    assert [c.summary for c in loosened(old, new)] == ["require_approved_in staging → qa"]


def test_policy_enforcement_switches_while_enabled_and_the_block_as_a_whole() -> None:
    on = {"enabled": True}
    for name in (
        "fail_on_warnings",
        "require_human_review",
        "require_tool_permissions",
        "deny_unrestricted_tools",
        "require_guardrails",
    ):
        strict = policy({"policy_enforcement": {**on, name: True}})
        loose = policy({"policy_enforcement": on})
        assert [c.gate for c in loosened(strict, loose)] == [f"policy_enforcement.{name}"]
        assert loosened(loose, strict) == []
    codes = policy({"policy_enforcement": {"blocked_diagnostic_codes": ["E_X", "E_Y"]}})
    fewer = policy({"policy_enforcement": {"blocked_diagnostic_codes": ["E_X"]}})
    assert [c.summary for c in loosened(codes, fewer)] == [
        "policy_enforcement.blocked_diagnostic_codes drops E_Y"
    ]
    # no block enforces nothing, like a disabled one; between the two nothing moves
    assert [c.summary for c in loosened(codes, policy({}))] == ["policy_enforcement disabled"]
    off = policy({"policy_enforcement": {"enabled": False, "require_guardrails": True}})
    assert compare(policy({}), off) == []


def test_environment_added_removed_and_renamed() -> None:
    prod = policy({"required_signatures": 2})
    assert [(c.gate, c.direction) for c in compare(None, prod)] == [(ENVIRONMENT_GATE, LOOSENED)]
    assert [c.summary for c in compare(prod, None)] == ["environment removed"]
    assert compare(None, None) == []
    weak = EnvironmentPolicy(environment="prod-eu")
    renamed = EnvironmentPolicy.model_validate(
        {"environment": "production", "required_signatures": 2}
    )
    changes = compare_environments(
        {"prod": prod, "dev": policy({})},
        {"production": renamed, "prod-eu": weak, "dev": policy({})},
    )
    assert {n: [c.summary for c in cs] for n, cs in changes.items()} == {
        "prod": ["environment removed"],
        "prod-eu": ["environment added"],
        "production": ["environment added (renamed from prod)"],
    }


#: project-config path -> (stricter config, looser config).
PROJECT_STRICT_LOOSE: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "paths.state_dir": ({}, {"paths": {"state_dir": "/etc"}}),
    "paths.artifacts_dir": ({}, {"paths": {"artifacts_dir": "/etc"}}),
    "paths.logs_dir": ({}, {"paths": {"logs_dir": "/etc"}}),
    "default_environment": ({"default_environment": "prod"}, {"default_environment": "dev"}),
    "environments": (
        {"environments": {"prod": {}}},
        {"environments": {"prod": {"secrets": {"token": "PROD_TOKEN"}}}},
    ),
    "runtime.allowed_modes": (
        {"runtime": {"allowed_modes": ["inline"]}},
        {"runtime": {"allowed_modes": ["inline", "subprocess"]}},
    ),
    "model.base_url": ({}, {"model": {"base_url": "https://evil.example/v1"}}),
    "model.api_key_env": ({}, {"model": {"api_key_env": "OTHER_KEY"}}),
    "secrets.providers": (
        {},
        {"secrets": {"providers": {**SecretsConfig().providers, "other": "OTHER_API_KEY"}}},
    ),
    "secrets.extra": ({}, {"secrets": {"extra": {"db": "DB_PASSWORD"}}}),
    "secrets.destinations": (
        {"secrets": {"extra": {"db": "DB_PASSWORD"}}},
        {
            "secrets": {
                "extra": {"db": "DB_PASSWORD"},
                "destinations": {"db": ["https://evil.example"]},
            }
        },
    ),
    "notifications.receivers": (
        {},
        {"notifications": {"receivers": [{"name": "r", "url": "https://hooks.example/x"}]}},
    ),
    "notifications.people": (
        {},
        {"notifications": {"people": [{"user": "mallory", "groups": ["release-managers"]}]}},
    ),
    "controller": ({}, {"controller": {"trusted_keys": "/tmp/keys"}}),
    "tool_registry": ({}, {"tool_registry": "evil.tools:registry"}),
    "mcp_servers": ({}, {"mcp_servers": {"shell": {"command": ["sh"]}}}),
    "network.allow": ({}, {"network": {"allow": ["evil.example"]}}),
    "functions.modules": ({}, {"functions": {"modules": ["os"]}}),
    "functions.declared": ({}, {"functions": {"declared": ["os:system"]}}),
    "skills": ({}, {"skills": {"shell": {"instructions": "run it", "tools": ["shell"]}}}),
    "limits.max_running_runs": ({"limits": {"max_running_runs": 2}}, {"limits": {}}),
    "limits.max_queued_runs": (
        {"limits": {"max_queued_runs": 5}},
        {"limits": {"max_queued_runs": 50}},
    ),
    "limits.max_model_calls_per_day": ({"limits": {"max_model_calls_per_day": 9}}, {}),
    "limits.max_tokens_per_day": (
        {"limits": {"max_tokens_per_day": 100}},
        {"limits": {"max_tokens_per_day": 101}},
    ),
    "limits.max_cost_per_day": ({"limits": {"max_cost_per_day": 5}}, {"limits": {}}),
    "limits.on_exceeded": ({"limits": {"on_exceeded": "fail"}}, {"limits": {}}),
    # a price lowered lets a money budget through more calls
    "prices": (
        {"prices": {"providers": {"openai": {"m": {"input": 2, "output": 8}}}}},
        {"prices": {"providers": {"openai": {"m": {"input": 1, "output": 8}}}}},
    ),
    "assignments.assignees": (
        {"assignments": {"assignees": "binding"}},
        {"assignments": {"assignees": "advisory"}},
    ),
    "assignments.override": (
        {"assignments": {"override": ["group:release"]}},
        {"assignments": {"override": ["group:release", "user:mallory"]}},
    ),
}


def test_every_project_grant_is_exercised_here() -> None:
    rules = {p for p, rule in PROJECT_RULES.items() if not isinstance(rule, str)}
    assert rules == set(PROJECT_STRICT_LOOSE)


@pytest.mark.parametrize("path", sorted(PROJECT_STRICT_LOOSE))
def test_each_project_grant_in_each_direction(path: str) -> None:
    strict, loose = (ProjectConfig.model_validate(p) for p in PROJECT_STRICT_LOOSE[path])
    down = compare_project(strict, loose)
    assert down and {c.direction for c in down} == {LOOSENED}
    assert all(c.gate == f"project.{path}" or c.gate.startswith(f"project.{path}.") for c in down)
    back = {c.direction for c in compare_project(loose, strict)}
    # a value with no stricter direction (a module, a URL) loosens whichever way it moves
    assert back == (
        {LOOSENED} if getattr(PROJECT_RULES[path], "__name__", "") == "_changed" else {TIGHTENED}
    )
    assert compare_project(strict, strict) == []


def test_project_neutral_fields_move_no_gate() -> None:
    old = ProjectConfig.model_validate({"name": "a", "retention": {"runs_days": 30}})
    new = ProjectConfig.model_validate({"name": "b", "description": "x", "model": {"name": "m"}})
    assert compare_project(old, new) == []
    assert compare_project(None, None) == []
