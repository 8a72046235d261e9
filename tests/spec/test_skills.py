"""The skills catalog and a run's skills overlay: the spec function, ``kneo spec skills``,
``kneo run --skill/--without-skill`` and a hostile middleware function at validate."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kneo.errors import SpecError
from kneo.spec.loader import load_spec_data
from kneo.spec.skills import apply_skills_overlay, skills_catalog

from .conftest import REPO, CliResult, write_yaml

DOCUMENT: dict[str, Any] = {
    "version": "v1",
    "skills": {
        "style": {"description": "tone", "instructions": "Be plain."},
        "count": {"instructions": "Count words.", "tools": ["word_count"]},
    },
    "agent": {"name": "lead", "skills": ["style"]},
    "components": {"agents": {"helper": {"name": "helper"}}},
}


def test_the_catalog_lists_each_skill_with_its_users() -> None:
    spec = load_spec_data(DOCUMENT)
    assert skills_catalog(spec) == [
        {"name": "count", "description": "", "tools": ["word_count"], "agents": []},
        {"name": "style", "description": "tone", "tools": [], "agents": ["lead"]},
    ]


def test_an_overlay_adds_and_removes_declared_skills_without_editing_its_input() -> None:
    both = apply_skills_overlay(DOCUMENT, {"add": ["count"], "remove": ["style"]})
    assert both["agent"]["skills"] == ["count"]
    assert both["components"]["agents"]["helper"]["skills"] == ["count"]
    assert (
        DOCUMENT["agent"]["skills"] == ["style"]
        and "skills" not in DOCUMENT["components"]["agents"]["helper"]
    )
    # the original platform's clients send ``disable``: the same as ``remove``
    assert apply_skills_overlay(DOCUMENT, {"disable": ["style"]})["agent"]["skills"] == []
    only = apply_skills_overlay(DOCUMENT, {"add": ["count"], "agents": ["helper"]})
    assert only["agent"]["skills"] == ["style"]
    assert only["components"]["agents"]["helper"]["skills"] == ["count"]
    spec = load_spec_data(both)
    assert spec.all_agents()["lead"].skills == ["count"]


@pytest.mark.parametrize(
    ("overlay", "code", "path"),
    [
        ({"add": ["ghost"]}, "E_UNKNOWN_SKILL", "skills.add[0]"),
        ({"remove": ["style", "ghost"]}, "E_UNKNOWN_SKILL", "skills.remove[1]"),
        ({"add": ["count"], "agents": ["nobody"]}, "E_UNKNOWN_REF", "skills.agents[0]"),
    ],
)
def test_an_overlay_never_declares_a_skill(overlay: dict[str, Any], code: str, path: str) -> None:
    with pytest.raises(SpecError) as caught:
        apply_skills_overlay(DOCUMENT, overlay)
    assert (caught.value.code, caught.value.details["path"]) == (code, path)


def test_spec_skills_and_run_with_an_overlay(kneo: Callable[..., CliResult]) -> None:
    listed = kneo("spec", "skills", "examples/agent_skills.yaml", "-o", "json", cwd=REPO)
    assert listed.exit_code == 0, listed
    names = {s["name"]: s for s in json.loads(listed.stdout)["skills"]}
    assert names["house-style"]["agents"] == ["editor"]
    assert names["word-budget"] == {
        "name": "word-budget",
        "description": "Count words before answering.",
        "tools": ["word_count"],
        "agents": [],
    }
    refused = kneo(
        "run", "examples/agent_skills.yaml", "-i", "x", "--skill", "nope", "-o", "json", cwd=REPO
    )
    assert refused.exit_code != 0
    error = json.loads(refused.stdout or refused.stderr)
    assert error["error"] == "E_UNKNOWN_SKILL" and error["path"] == "skills.add[0]"


def test_a_middleware_function_outside_the_project_is_refused_at_validate(
    kneo: Callable[..., CliResult], project: Path
) -> None:
    spec = write_yaml(
        project / "hostile.yaml",
        {
            "version": "v1",
            "agent": {
                "name": "a",
                "middleware": [{"type": "guardrail", "stage": "input", "function": "json:dumps"}],
            },
        },
    )
    result = kneo("spec", "validate", str(spec), "--json", cwd=project)
    assert result.exit_code == 1
    found = {(d["code"], d["path"]) for d in json.loads(result.stdout)["diagnostics"]}
    assert ("E_FUNCTION_NOT_ALLOWED", "agent.middleware[0].function") in found


def test_the_commands_spec_md_shows_for_skills_work(kneo: Callable[..., CliResult]) -> None:
    """docs/spec.md, "Skills": each ``kneo`` line of its command block, run as written."""
    import re
    import shlex

    section = (REPO / "docs" / "spec.md").read_text().split("### Skills", 1)[1]
    block = re.search(r"```\n(kneo .*?)```", section, re.S)
    assert block is not None
    lines = [line for line in block.group(1).splitlines() if line.startswith("kneo ")]
    assert len(lines) == 2, lines
    for line in lines:
        result = kneo(*shlex.split(line)[1:], "-o", "json", cwd=REPO)
        assert result.exit_code == 0, (line, result)
    ran = json.loads(result.stdout)
    assert ran["status"] == "succeeded" and "Sea otters" in ran["output_text"]
