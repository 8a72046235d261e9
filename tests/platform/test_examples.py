"""Every example spec runs to its documented end with the dummy provider (in-process)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from kneo import Decision
from kneo.errors import KneoError
from kneo.platform import create_platform
from kneo.settings import Settings
from kneo.spec.project import ProjectContext

REPO = Path(__file__).resolve().parents[2]

EXAMPLES = [
    ("research_agent.yaml", "dev", "succeeded", "Summary:"),
    ("graph_review_workflow.yaml", None, "succeeded", "APPROVED"),
    ("concurrent_review_workflow.yaml", None, "succeeded", "## performance"),
    ("group_chat_workflow.yaml", None, "succeeded", "[pragmatist]"),
    ("human_approval_workflow.yaml", None, "paused", None),
    ("smoke_human_workflow.yaml", None, "paused", None),
    ("lookup_agent.yaml", None, "failed", None),  # lookup_user is only in the tutorial's registry
]


@pytest.fixture(scope="module")
def manager(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("examples")
    shutil.copytree(
        REPO / "examples", root / "examples", ignore=shutil.ignore_patterns("__pycache__")
    )
    settings = Settings.from_env({})
    platform = create_platform(settings, ProjectContext.discover(cwd=root, settings=settings))
    platform.root = root
    yield platform
    platform.store.close()


@pytest.mark.parametrize(
    ("spec", "env", "status", "snippet"), EXAMPLES, ids=[e[0] for e in EXAMPLES]
)
def test_example_runs_to_its_documented_end(
    manager: Any, spec: str, env: str | None, status: str, snippet: str | None
) -> None:
    path = manager.root / "examples" / spec
    if status == "failed":
        with pytest.raises(KneoError) as info:
            manager.run_from_spec(input_text="hello", spec_path=path, environment=env)
        assert info.value.code == "E_UNKNOWN_TOOL"
        return
    result = manager.run_from_spec(input_text="hello", spec_path=path, environment=env)
    assert result.status == status, result
    if snippet:
        assert snippet in (result.output_text or "")
    if status == "paused":
        done = manager.resume(result.continuation_id, Decision(result.request_id, "approved"))
        assert done.status == "succeeded" and done.output_text.startswith("Published.")


def test_research_agent_trace_shows_plan_act_turns(manager: Any) -> None:
    result = manager.run_from_spec(
        input_text="Analyze Nvidia AI business",
        spec_path=manager.root / "examples" / "research_agent.yaml",
        environment="dev",
    )
    turns = [
        e["payload"]["phase"]
        for e in manager.trace(result.run_id)["events"]
        if e["event_type"] == "model_turn_completed"
    ]
    assert turns and turns[0] == "plan"
