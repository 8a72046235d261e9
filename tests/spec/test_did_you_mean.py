"""An unknown field or enum value says what was probably meant: by spelling, or by the
vocabulary of the HITL documents readers bring along (``on_timeout: approve``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kneo.errors import SpecError
from kneo.spec.loader import load_spec
from kneo.spec.project import load_project_config

SPEC = """\
version: v1
workflow:
  type: {type}
  name: x
  steps:
    - id: approve
      kind: human
      ref: reviewer
      human_review: {{{review}: yes}}
components:
  humans:
    reviewer: {{prompt: ok?, {field}: 100, on_timeout: {on_timeout}}}
"""
GOOD = {"type": "sequential", "review": "requires_confirmation", "field": "timeout_seconds"}


def _messages(tmp_path: Path, **changes: str) -> dict[str, str]:
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC.format(**{**GOOD, "on_timeout": "fail", **changes}))
    with pytest.raises(SpecError) as info:
        load_spec(path)
    return {d["path"]: d["message"] for d in info.value.details["diagnostics"]}


@pytest.mark.parametrize(
    ("changes", "path", "hint"),
    [
        (
            {"on_timeout": "approve"},
            "components.humans.reviewer.on_timeout",
            "did you mean 'continue'? (here, 'continue' approves the request when it times out",
        ),
        (
            {"on_timeout": "cancel"},
            "components.humans.reviewer.on_timeout",
            "did you mean 'fail'? (here, 'fail' ends the run as expired",
        ),
        ({"on_timeout": "escalte"}, "components.humans.reviewer.on_timeout", "'escalate'?"),
        ({"type": "sequental"}, "workflow.type", "did you mean 'sequential'?"),
        (
            {"field": "timeout"},
            "components.humans.reviewer.timeout",
            "unknown field; did you mean 'timeout_seconds'?",
        ),
        (
            {"review": "confirmation_message"},
            "workflow.steps[0].human_review.confirmation_message",
            "unknown field; did you mean 'message'? (Kneo's name for confirmation_message)",
        ),
        (
            {"review": "requires_output_review"},
            "workflow.steps[0].human_review.requires_output_review",
            "did you mean 'review_output'? (Kneo's name for requires_output_review)",
        ),
        (
            {"review": "requires_confirmaton"},
            "workflow.steps[0].human_review.requires_confirmaton",
            "did you mean 'requires_confirmation'?",
        ),
    ],
    ids=[
        "approve",
        "cancel",
        "typo-value",
        "family",
        "timeout",
        "synonym-field",
        "output-review",
        "typo-field",
    ],
)
def test_the_hint(tmp_path: Path, changes: dict[str, str], path: str, hint: str) -> None:
    assert hint in _messages(tmp_path, **changes)[path]


def test_no_guess_without_a_likely_one(tmp_path: Path) -> None:
    messages = _messages(tmp_path, field="zzzz")
    assert messages["components.humans.reviewer.zzzz"] == "unknown field"


def test_project_config_fields(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("version: v1\nenvironments:\n  dev:\n    polcy_enforcement: {}\n")
    with pytest.raises(SpecError) as info:
        load_project_config(path)
    assert "environments.dev.polcy_enforcement: unknown field; did you mean " in str(info.value)
    assert "'policy_enforcement'?" in str(info.value)


def test_an_unknown_environment_names_the_one_meant(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC.format(**GOOD, on_timeout="fail"))
    with pytest.raises(SpecError) as info:
        load_spec(path, env="stagin", declared=("dev", "staging", "prod"))
    assert info.value.code == "E_UNKNOWN_ENV"
    assert "the project declares dev, prod, staging" in str(info.value)
    assert str(info.value).endswith("; did you mean 'staging'?")
