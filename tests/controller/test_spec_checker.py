"""The controller's spec checker computes each environment's grant once, and never lends one
environment's grant to another: the verdicts are :func:`check_spec`'s own."""

from __future__ import annotations

from typing import Any

import pytest

from kneo.controller import spec_checks
from kneo.controller.spec_checks import default_spec_checker
from kneo.policy.check import check_spec
from kneo.policy.environment import EnvironmentPolicy
from kneo.runtimes import create_runtime_registry
from kneo.spec.loader import load_spec_data
from kneo.tools.factory import load_tool_registry

#: loopback is allowed in ``dev`` without being listed, nowhere else
SPEC: dict[str, Any] = {
    "version": "v1",
    "agent": {
        "name": "a",
        "system_prompt": "x",
        "model": {"provider": "openai", "name": "gpt-4o", "base_url": "http://127.0.0.1:9/v1"},
    },
}


def codes(problems: list[Any]) -> list[str]:
    return [p.message.split(" ", 1)[0] for p in problems]


@pytest.mark.parametrize("grant_seconds", [spec_checks.GRANT_SECONDS, 0.0])
def test_each_environment_is_judged_under_its_own_grant(
    monkeypatch: pytest.MonkeyPatch, grant_seconds: float
) -> None:
    monkeypatch.setattr(spec_checks, "GRANT_SECONDS", grant_seconds)  # kept, or renewed each time
    check = default_spec_checker()
    dev = EnvironmentPolicy(environment="dev")
    prod = EnvironmentPolicy(environment="prod")
    narrowed = EnvironmentPolicy.model_validate(
        {"environment": "dev", "resources": {"network": ["https://api.openai.com"]}}
    )
    expected = {"dev": [], "prod": ["E_DESTINATION_NOT_ALLOWED"]}
    for policy in (dev, prod, dev, narrowed, prod, dev):
        _, problems = check(SPEC, policy)
        want = (
            ["E_DESTINATION_NOT_ALLOWED"]
            if policy is narrowed
            else expected[str(policy.environment)]
        )
        assert codes(problems) == want, policy
        report = check_spec(  # the same verdict as a check of this spec alone
            load_spec_data(dict(SPEC), source="bundle spec"),
            env=policy.environment,
            tool_registry=load_tool_registry(None),
            runtime_registry=create_runtime_registry(),
            policy=policy.policy_enforcement,
            origin="bundle",
            resources=policy.resources,
        )
        assert [d.code for d in report.errors] == want
