"""Compiling: every example, every family, refs resolved, errors refuse to compile."""

from __future__ import annotations

from pathlib import Path

import pytest

from kneo.errors import SpecError
from kneo.runtimes import RuntimeRegistry
from kneo.spec.compiler import SpecCompiler, describe
from kneo.spec.loader import load_spec, load_spec_data
from kneo.spec.project import load_project_config
from kneo.tools import ToolRegistry

from .conftest import EXAMPLE_SPECS, EXAMPLES


@pytest.fixture
def compiler(tools: ToolRegistry, runtimes: RuntimeRegistry) -> SpecCompiler:
    return SpecCompiler(runtime_registry=runtimes, tool_registry=tools)


def _envs(path: Path) -> list[str | None]:
    return [
        None,
        *(
            e
            for e in ("dev", "staging", "prod")
            if path.with_name(f"{path.stem}.{e}.yaml").exists()
        ),
    ]


CASES = [(p, env) for p in EXAMPLE_SPECS for env in _envs(p)]


@pytest.mark.parametrize(("path", "env"), CASES, ids=[f"{p.stem}-{e or 'base'}" for p, e in CASES])
def test_every_example_validates_and_compiles(
    path: Path, env: str | None, compiler: SpecCompiler
) -> None:
    project = load_project_config(EXAMPLES / "project_config.yaml")
    loaded = load_spec(path, env=env, project=project)
    errors = [
        d for d in compiler.validate(loaded.spec, base_dir=loaded.base_dir) if d.severity == "error"
    ]
    assert errors == []
    compiled = compiler.compile(loaded.spec, base_dir=loaded.base_dir)
    assert compiled.steps
    for step in compiled.steps:
        if step.kind == "agent":
            assert step.agent is not None
        elif step.kind == "function":
            assert step.function_ref and ":" in step.function_ref
        else:
            assert step.human is not None


def test_examples_cover_every_family() -> None:
    families = {load_spec(p).spec.workflow.family for p in EXAMPLE_SPECS}  # type: ignore[union-attr]
    assert {"sequential", "graph", "concurrent", "group-chat"} <= families


def test_research_dev_overlay_runs_offline() -> None:
    loaded = load_spec(EXAMPLES / "research_agent.yaml", env="dev")
    assert loaded.spec.agent is not None and loaded.spec.agent.model.provider == "dummy"
    smoke = load_spec(EXAMPLES / "smoke_human_workflow.yaml").spec
    assert smoke.agent is not None and smoke.agent.model.provider == "dummy"


def test_compiled_research_agent(compiler: SpecCompiler) -> None:
    loaded = load_spec(
        EXAMPLES / "research_agent.yaml", env="prod", declared=("dev", "staging", "prod")
    )
    compiled = compiler.compile(loaded.spec, base_dir=loaded.base_dir)
    assert compiled.family == "sequential" and compiled.name == "research-pipeline"
    assert compiled.step_ids == ("retrieve", "analyze", "summarize")
    retrieve = compiled.step("retrieve")
    assert [t.name for t in retrieve.tools] == ["web_search", "webpage_reader"]
    assert retrieve.agent is not None and retrieve.agent.model.name == "gpt-4o"
    summarize = compiled.step("summarize")
    assert summarize.function_ref == "examples.app_functions:summarize"
    assert summarize.human_review is not None and summarize.human_review.review_output
    # the refs' modules, found by path from the spec's directory up to the project root
    assert compiled.code_root == EXAMPLES.parent
    app = compiled.code.get("examples.app_functions")
    assert app is not None and app.path == "examples/app_functions.py"


def test_target_agent_is_a_one_step_workflow(compiler: SpecCompiler) -> None:
    spec = load_spec(EXAMPLES / "research_agent.yaml").spec
    compiled = compiler.compile(spec, target="agent")
    assert (compiled.target, compiled.family, compiled.step_ids) == (
        "agent",
        "sequential",
        ("research-copilot",),
    )
    agent_only = load_spec_data({"version": "v1", "agent": {"name": "solo"}})
    assert compiler.compile(agent_only).target == "agent"  # no workflow: run the agent
    with pytest.raises(SpecError) as err:
        compiler.compile(load_spec(EXAMPLES / "human_approval_workflow.yaml").spec, target="agent")
    assert err.value.code == "E_UNKNOWN_REF"


def test_errors_refuse_to_compile_with_all_diagnostics(compiler: SpecCompiler) -> None:
    spec = load_spec_data({"version": "v1", "agent": {"name": "a", "tools": ["nope", "gone"]}})
    with pytest.raises(SpecError) as err:
        compiler.compile(spec, source="x.yaml")
    assert err.value.code == "E_UNKNOWN_TOOL"
    assert str(err.value).startswith(
        "x.yaml: agent.tools[0]: Tool 'nope' is not registered. (+1 more errors)"
    )
    assert len([d for d in err.value.details["diagnostics"] if d["severity"] == "error"]) == 2


def test_handoff_gets_a_default_selector_and_approval_flags(compiler: SpecCompiler) -> None:
    spec = load_spec_data(
        {
            "version": "v1",
            "agent": {
                "name": "a",
                "tools": {"include": ["summarize"]},
                "approval_required": ["summarize"],
                "instructions": "old prompt",
                "max_iterations": 2,
            },
            "workflow": {
                "type": "handoff",
                "participants": [{"id": "p1", "ref": "a"}, {"id": "p2", "ref": "a"}],
            },
        }
    )
    compiled = compiler.compile(spec)
    assert compiled.selector is not None and compiled.selector.sequence == ["p1", "p2"]
    step = compiled.step("p1")
    assert step.tools[0].requires_approval
    assert step.agent is not None
    assert step.agent.system_prompt == "old prompt"  # deprecated fields folded in
    assert step.agent.strategy.max_iterations == 2
    summary = describe(compiled)
    assert summary["steps"][0]["tools"][0] == {
        "name": "summarize",
        "capabilities": [],
        "requires_approval": True,
        "mcp_server": None,
    }


def test_graph_compiles_edges_and_start(compiler: SpecCompiler) -> None:
    loaded = load_spec(EXAMPLES / "graph_review_workflow.yaml")
    compiled = compiler.compile(loaded.spec, base_dir=loaded.base_dir)
    assert compiled.start == "retrieve"
    assert compiled.max_visits == 3
    review_edges = [e for e in compiled.edges if e.source == "review"]
    assert {e.target for e in review_edges} == {"finalize", "revise"}
    assert any(e.default for e in review_edges)
