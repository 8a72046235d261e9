"""Environment policy enforcement: each gate, disabled policies, and the pipeline around it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kneo.policy.check import check_spec
from kneo.policy.enforcement import PolicyEnforcement, enforce
from kneo.runtimes import RuntimeRegistry
from kneo.spec.loader import load_spec, load_spec_data
from kneo.spec.project import ProjectConfig, ProjectContext
from kneo.spec.validation import validate_spec
from kneo.tools import ToolRegistry

from .conftest import EXAMPLES

BARE = {"version": "v1", "agent": {"name": "a", "tools": ["summarize"]}}
GUARDED = {
    "version": "v1",
    "agent": {
        "name": "a",
        "tools": {"include": ["summarize"]},
        "policies": {"tool": {"allow": ["summarize"]}},
        "guardrails": [{"name": "g"}],
        "approval_required": ["summarize"],
    },
}


def codes(
    data: dict[str, Any], policy: PolicyEnforcement, tools: ToolRegistry, runtimes: RuntimeRegistry
) -> set[str]:
    spec = load_spec_data(data)
    return {
        d.code
        for d in enforce(
            spec, validate_spec(spec, tool_registry=tools, runtime_registry=runtimes), policy
        )
    }


@pytest.mark.parametrize(
    ("policy", "code"),
    [
        (PolicyEnforcement(require_human_review=True), "E_POLICY_HUMAN_REVIEW_REQUIRED"),
        (PolicyEnforcement(require_tool_permissions=True), "E_POLICY_TOOL_PERMISSIONS_REQUIRED"),
        (PolicyEnforcement(deny_unrestricted_tools=True), "E_POLICY_UNRESTRICTED_TOOLS"),
        (PolicyEnforcement(require_guardrails=True), "E_POLICY_GUARDRAILS_REQUIRED"),
        (PolicyEnforcement(fail_on_warnings=True), "E_POLICY_WARNING"),
        (
            PolicyEnforcement(blocked_diagnostic_codes=["W_TOOL_POLICY_UNRESTRICTED"]),
            "E_POLICY_BLOCKED_CODE",
        ),
    ],
    ids=[
        "human-review",
        "tool-permissions",
        "unrestricted",
        "guardrails",
        "warnings",
        "blocked-code",
    ],
)
def test_each_gate_fails_a_bare_spec_and_passes_a_guarded_one(
    policy: PolicyEnforcement, code: str, tools: ToolRegistry, runtimes: RuntimeRegistry
) -> None:
    assert code in codes(BARE, policy, tools, runtimes)
    assert codes(GUARDED, policy, tools, runtimes) == set()


def test_disabled_or_missing_policy_adds_nothing(
    tools: ToolRegistry, runtimes: RuntimeRegistry
) -> None:
    strict = PolicyEnforcement(enabled=False, require_human_review=True, fail_on_warnings=True)
    assert codes(BARE, strict, tools, runtimes) == set()
    spec = load_spec_data(BARE)
    assert enforce(spec, [], None) == []


def test_blocked_code_keeps_the_original_path(
    tools: ToolRegistry, runtimes: RuntimeRegistry
) -> None:
    spec = load_spec_data(BARE)
    found = enforce(
        spec,
        validate_spec(spec, tool_registry=tools, runtime_registry=runtimes),
        PolicyEnforcement(blocked_diagnostic_codes=["W_TOOL_POLICY_UNRESTRICTED"]),
    )
    assert [(d.code, d.path, d.severity) for d in found] == [
        ("E_POLICY_BLOCKED_CODE", "agent.tools", "error")
    ]


def test_pipeline_applies_the_environment_policy(
    tmp_path: Path, tools: ToolRegistry, runtimes: RuntimeRegistry
) -> None:
    config = ProjectConfig.model_validate(
        {
            "environments": {
                "dev": {"policy_enforcement": {"enabled": False}},
                "prod": {"policy_enforcement": {"require_guardrails": True}},
            }
        }
    )
    context = ProjectContext(root=tmp_path, config_path=None, config=config)
    spec = load_spec_data(BARE)
    dev = check_spec(
        spec, env="dev", context=context, tool_registry=tools, runtime_registry=runtimes
    )
    prod = check_spec(
        spec, env="prod", context=context, tool_registry=tools, runtime_registry=runtimes
    )
    assert dev.valid and not prod.valid
    assert prod.errors[0].code == "E_POLICY_GUARDRAILS_REQUIRED"
    assert prod.report["environment"] == "prod"
    assert prod.report["policy"]["require_guardrails"] is True
    assert set(prod.to_dict()) == {"valid", "diagnostics", "report"}


def test_research_agent_passes_prod_only_with_its_overlay(
    tools: ToolRegistry, runtimes: RuntimeRegistry
) -> None:
    config = ProjectConfig.model_validate(
        {
            "environments": {
                "prod": {
                    "policy_enforcement": {
                        "require_tool_permissions": True,
                        "deny_unrestricted_tools": True,
                        "require_human_review": True,
                        "require_guardrails": True,
                    }
                }
            }
        }
    )
    context = ProjectContext(root=EXAMPLES, config_path=None, config=config)
    spec = EXAMPLES / "research_agent.yaml"
    with_overlay = check_spec(
        load_spec(spec, env="prod", project=config),
        context=context,
        tool_registry=tools,
        runtime_registry=runtimes,
    )
    base_only = check_spec(
        load_spec(spec, project=config),
        env="prod",
        context=context,
        tool_registry=tools,
        runtime_registry=runtimes,
    )
    assert with_overlay.valid, with_overlay.diagnostics
    assert {d.code for d in base_only.errors} == {
        "E_POLICY_HUMAN_REVIEW_REQUIRED",
        "E_POLICY_GUARDRAILS_REQUIRED",
    }


def test_policy_report_shape(tools: ToolRegistry, runtimes: RuntimeRegistry) -> None:
    loaded = load_spec(
        EXAMPLES / "research_agent.yaml", env="prod", declared=("dev", "staging", "prod")
    )
    report = check_spec(loaded, tool_registry=tools, runtime_registry=runtimes).report
    assert report["agent_name"] == "research-copilot"
    assert report["workflow_name"] == "research-pipeline"
    assert report["memory"]["type"] == "summary"
    assert report["guardrail_stages"] == ["input", "output"]
    assert report["human_approval"]["review_gates"][0]["step"] == "summarize"
    tools_seen = {t["name"]: t for t in report["agents"][0]["tools"]}
    assert tools_seen["web_search"]["capabilities"] == ["network"]
    assert report["tool_permissions"]["research-copilot"]["allowed_domains"] == ["example.com"]
    assert report["mcp_imports"] == []
