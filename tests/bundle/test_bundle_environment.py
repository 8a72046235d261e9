"""Environment policy files and the stricter-wins merge with the project config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kneo.errors import KneoError
from kneo.policy.environment import (
    EnvironmentPolicy,
    load_environment_file,
    load_environments,
    merge_stricter,
    resolve_environment,
)
from kneo.spec.project_blocks import PolicyEnforcement

REPO = Path(__file__).resolve().parents[2]


def env(**data: Any) -> EnvironmentPolicy:
    return EnvironmentPolicy.model_validate(data)


MERGE_CASES = [
    pytest.param(
        env(policy_enforcement={"require_guardrails": True}),
        env(policy_enforcement={"require_human_review": True}),
        {"require_guardrails": True, "require_human_review": True, "enabled": True},
        id="booleans-or",
    ),
    pytest.param(
        env(policy_enforcement={"enabled": False}),
        env(policy_enforcement={"deny_unrestricted_tools": True}),
        {"enabled": True, "deny_unrestricted_tools": True},
        id="one-file-cannot-disable-the-other",
    ),
    pytest.param(
        env(policy_enforcement={"enabled": False}),
        env(),
        {"enabled": False},
        id="absent-block-takes-no-part",
    ),
    pytest.param(
        env(policy_enforcement={"blocked_diagnostic_codes": ["E_A", "E_B"]}),
        env(policy_enforcement={"blocked_diagnostic_codes": ["E_B", "E_C"]}),
        {"blocked_diagnostic_codes": ["E_A", "E_B", "E_C"]},
        id="blocked-codes-united",
    ),
]


@pytest.mark.parametrize(("a", "b", "expected"), MERGE_CASES)
def test_policy_enforcement_merges_stricter(
    a: EnvironmentPolicy, b: EnvironmentPolicy, expected: dict[str, Any]
) -> None:
    for merged in (merge_stricter(a, b), merge_stricter(b, a)):
        assert merged.policy_enforcement is not None
        got = merged.policy_enforcement.model_dump()
        for field, value in expected.items():
            assert sorted(got[field]) == value if isinstance(value, list) else got[field] == value


def test_neither_enforcement_block_gives_none() -> None:
    assert merge_stricter(env(), env()).policy_enforcement is None


@pytest.mark.parametrize(
    ("a", "b", "field", "expected"),
    [
        (env(required_signatures=2), env(required_signatures=1), "required_signatures", 2),
        (env(runs={"require_approved_bundle": True}), env(), "runs.require_approved_bundle", True),
        (
            env(accepted_key_ids=["ci", "ops"]),
            env(accepted_key_ids=["ci"]),
            "accepted_key_ids",
            ["ci"],
        ),
        (env(accepted_key_ids=["ci"]), env(), "accepted_key_ids", ["ci"]),
        (env(), env(), "accepted_key_ids", None),
        (env(accepted_key_ids=["a"]), env(accepted_key_ids=["b"]), "accepted_key_ids", []),
        (
            env(promotion={"approvers": ["x", "y"]}),
            env(promotion={"approvers": ["y"]}),
            "promotion.approvers",
            ["y"],
        ),
        (env(promotion={"approvers": ["x"]}), env(), "promotion.approvers", ["x"]),
        (env(promotion={"min_approvals": 3}), env(), "promotion.min_approvals", 3),
        (
            env(promotion={"require_human_approval": True}),
            env(),
            "promotion.require_human_approval",
            True,
        ),
        (
            env(promotion={"require_approved_in": "staging"}),
            env(),
            "promotion.require_approved_in",
            "staging",
        ),
    ],
)
def test_other_fields_merge_stricter(
    a: EnvironmentPolicy, b: EnvironmentPolicy, field: str, expected: Any
) -> None:
    for merged in (merge_stricter(a, b), merge_stricter(b, a)):
        value: Any = merged
        for part in field.split("."):
            value = getattr(value, part)
        assert value == expected


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (
            env(promotion={"require_approved_in": "staging"}),
            env(promotion={"require_approved_in": "qa"}),
        ),
        (env(promotion={"approvers": ["x"]}), env(promotion={"approvers": ["y"]})),
    ],
    ids=["two-source-environments", "no-common-approver"],
)
def test_unmergeable_settings_are_a_conflict(a: EnvironmentPolicy, b: EnvironmentPolicy) -> None:
    with pytest.raises(KneoError) as info:
        merge_stricter(a, b)
    assert info.value.code == "environment_policy_conflict"


def test_shipped_environment_files_load_and_prod_is_strictest() -> None:
    envs = load_environments(REPO / "environments")
    assert set(envs) >= {"dev", "staging", "prod"}
    prod = envs["prod"]
    assert prod.runs.require_approved_bundle and prod.promotion.require_human_approval
    assert prod.promotion.require_approved_in == "staging"
    assert prod.policy_enforcement is not None and prod.policy_enforcement.require_human_review
    assert not envs["dev"].runs.require_approved_bundle


def test_file_named_for_another_environment_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "prod.yaml"
    path.write_text("version: v1\nenvironment: dev\n")
    with pytest.raises(KneoError) as info:
        load_environment_file(path)
    assert info.value.code == "config_error" and "prod" in info.value.message


def test_environment_name_defaults_to_the_file_name(tmp_path: Path) -> None:
    path = tmp_path / "qa.yaml"
    path.write_text("required_signatures: 2\n")
    assert load_environment_file(path).environment == "qa"


def test_unknown_field_is_reported_with_file_line_and_path(tmp_path: Path) -> None:
    path = tmp_path / "prod.yaml"
    path.write_text("version: v1\nruns:\n  require_aproved_bundle: true\n")
    with pytest.raises(KneoError) as info:
        load_environment_file(path)
    assert info.value.code == "E_SCHEMA"
    assert f"{path}:3" in info.value.message and "runs.require_aproved_bundle" in info.value.message


@pytest.mark.parametrize(
    "text",
    [
        "required_signatures: 0\n",
        "accepted_key_ids: ['bad id']\n",
        "promotion: {require_approved_in: prod}\n",
        "a: [\n",
    ],
    ids=["zero-signatures", "bad-key-id", "approved-in-itself", "bad-yaml"],
)
def test_invalid_environment_files_are_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "prod.yaml"
    path.write_text(text)
    with pytest.raises(KneoError) as info:
        load_environment_file(path)
    assert info.value.code in {"E_SCHEMA", "E_YAML"}


def test_resolve_merges_project_policy_with_the_file(tmp_path: Path) -> None:
    (tmp_path / "prod.yaml").write_text(
        "policy_enforcement: {require_guardrails: true}\naccepted_key_ids: [ci]\n"
    )
    project = PolicyEnforcement(require_tool_permissions=True, blocked_diagnostic_codes=["E_X"])
    merged = resolve_environment("prod", project_policy=project, environments_dir=tmp_path)
    assert merged.policy_enforcement is not None
    assert merged.policy_enforcement.require_guardrails
    assert merged.policy_enforcement.require_tool_permissions
    assert merged.policy_enforcement.blocked_diagnostic_codes == ["E_X"]
    assert merged.accepted_key_ids == ["ci"]
    alone = resolve_environment("dev", project_policy=project, environments_dir=tmp_path)
    assert alone.policy_enforcement == project and alone.accepted_key_ids is None
