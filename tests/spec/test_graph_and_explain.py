"""The workflow graph (kneo.spec.graph), a run's position on it (kneo.platform.run_graph),
its drawing (kneo.console.graph_layout), the explanation (kneo.spec.explain), the policy
preview (kneo.policy.preview) and the two CLI commands, on the example specs compiled by the
real pipeline."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kneo.console.graph_layout import layout
from kneo.platform.run_graph import position_of
from kneo.policy.preview import preview
from kneo.spec.compiler import describe
from kneo.spec.explain import explain
from kneo.spec.graph import describe_condition, with_position, workflow_graph
from kneo.spec.models import EdgeCondition
from kneo.spec.project_blocks import PolicyEnforcement

from .conftest import EXAMPLES, REPO, CliResult, write_yaml

Kneo = Callable[..., CliResult]


def _compiled(name: str, target: str = "workflow") -> tuple[Any, dict[str, Any]]:
    from kneo.cli.spec_cmd import check

    loaded, report, compiler = check(EXAMPLES / name, None)
    compiled = compiler.compile(
        loaded.spec, target=target, base_dir=loaded.base_dir, diagnostics=report.diagnostics
    )  # type: ignore[arg-type]
    return compiled, report.report


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)


def _pairs(graph: Any) -> list[tuple[str, str, str]]:
    return [(e.source, e.target, e.kind) for e in graph.edges]


def test_every_family_has_a_graph() -> None:
    chat = workflow_graph(_compiled("group_chat_workflow.yaml")[0])
    assert chat.rounds == 2 and chat.start == "proponent"
    assert _pairs(chat) == [
        ("proponent", "skeptic", "next"),
        ("skeptic", "pragmatist", "next"),
        ("pragmatist", "proponent", "again"),
    ]
    fan = workflow_graph(_compiled("concurrent_review_workflow.yaml")[0])
    assert fan.node_ids() == ("security", "accessibility", "performance")
    assert fan.edges == () and fan.start is None
    research = _compiled("research_agent.yaml")
    assert _pairs(workflow_graph(research[0])) == [
        ("retrieve", "analyze", "next"),
        ("analyze", "summarize", "next"),
    ]
    agent = workflow_graph(_compiled("research_agent.yaml", target="agent")[0])
    assert (agent.target, len(agent.nodes), agent.edges) == ("agent", 1, ())


def test_conditions_read_as_people_say_them() -> None:
    assert describe_condition(EdgeCondition(contains="OK")) == 'contains "OK"'
    assert describe_condition(EdgeCondition(regex="^a", ignore_case=False)) == (
        "matches /^a/ (case-sensitive)"
    )
    assert describe_condition(EdgeCondition(not_contains="x")) == 'does not contain "x"'


def test_position_of_each_status() -> None:
    state = {
        "units": {
            "a": {"step_id": "a", "status": "completed"},
            "b": {"step_id": "b", "status": "completed"},
            "b#2": {"step_id": "b", "status": "completed"},
        },
        "order": ["a", "b", "b#2"],
        "routes": [{"from": "a", "to": "b"}, {"from": "b", "to": "b"}, {"from": "b", "to": None}],
        "position": {"unit_key": "c", "step_id": "c"},
    }
    running = position_of(state, "running")
    assert (running.visited, running.visits, running.current) == (
        ["a", "b"],
        {"a": 1, "b": 2},
        "c",
    )
    assert running.taken == {("a", "b"): 1, ("b", "b"): 1}
    assert position_of(state, "succeeded").current is None  # a finished run is nowhere
    failed = {**state, "failure": {"step_id": "c", "code": "boom"}}
    assert position_of(failed, "failed").current == "c" and position_of(failed, "failed").failed
    assert position_of(None, "queued").visited == []


def test_with_position_ignores_ids_the_graph_does_not_have() -> None:
    graph = workflow_graph(_compiled("research_agent.yaml")[0])
    placed = with_position(
        graph,
        visits={"retrieve": 1, "ghost": 3},
        visited=["retrieve", "ghost"],
        current="ghost",
        failed=False,
        taken={("retrieve", "analyze"): 1},
    )
    assert placed.visited == ("retrieve",) and placed.current is None
    assert [n.state for n in placed.nodes] == ["visited", "pending", "pending"]
    assert [e.taken for e in placed.edges] == [1, 0]


def test_the_drawing_puts_a_loop_back_under_the_nodes() -> None:
    graph = workflow_graph(_compiled("graph_review_workflow.yaml")[0]).to_dict()
    drawing = layout(graph)
    x = {n.id: n.x for n in drawing.nodes}
    assert x["retrieve"] < x["analyze"] < x["review"] < x["finalize"] == x["revise"]
    back = [e for e in drawing.edges if e.back]
    assert len(back) == 1 and back[0].label == "again"
    assert all(n.x + 168 <= drawing.width and n.y + 46 <= drawing.height for n in drawing.nodes)
    # no nodes overlap
    boxes = {(n.x, n.y) for n in drawing.nodes}
    assert len(boxes) == len(drawing.nodes)


def test_explain_names_pauses_tools_and_the_policy() -> None:
    compiled, report = _compiled("hitl_tool_approval.yaml")
    explained = explain(describe(compiled), report)
    assert explained["pauses"] == [
        {
            "step": "mail",
            "kind": "tool_approval",
            "why": "a call of tool send_email waits for approval",
            "decisions": [],
        }
    ]
    assert explained["tools"][0]["name"] == "send_email" and explained["tools"][0]["steps"] == [
        "mail"
    ]
    enforced = {**report, "environment": "prod", "policy": PolicyEnforcement(
        require_guardrails=True, blocked_diagnostic_codes=["E_X"]).model_dump()}  # fmt: skip
    policies = explain(describe(compiled), enforced)["policies"]
    assert [g["gate"] for g in policies["gates"]] == ["require_guardrails"]
    assert policies["blocked_diagnostic_codes"] == ["E_X"]
    off = {**enforced, "policy": {**enforced["policy"], "enabled": False}}
    assert explain(describe(compiled), off)["policies"]["gates"] == []


def test_preview_takes_the_stored_policy_over_the_projects() -> None:
    strict = PolicyEnforcement(require_guardrails=True)
    loose = PolicyEnforcement()
    stored = preview("qa", loose, stored=strict, project=loose)
    assert stored.source == "stored" and [c.gate for c in stored.loosened] == [
        "policy_enforcement.require_guardrails"
    ]
    project = preview("qa", loose, stored=None, project=strict)
    assert project.source == "project" and project.to_dict()["needs_policy_approval"] is True
    nothing = preview("qa", strict, stored=None, project=None)
    assert nothing.source == "none" and nothing.loosened == [] and nothing.tightened


def test_kneo_spec_explain(kneo: Kneo) -> None:
    text = kneo("spec", "explain", str(EXAMPLES / "hitl_route.yaml"), cwd=REPO)
    assert text.exit_code == 0, text.stderr
    assert "pauses at choose (human_step)" in text.stdout
    assert 'route choose → fast_track when equals "fast_track"' in text.stdout
    data = kneo("spec", "explain", str(EXAMPLES / "research_agent.yaml"), "--json", cwd=REPO)
    body = json.loads(data.stdout)
    assert body["explanation"]["workflow"]["order"] == "retrieve → analyze → summarize"


def test_kneo_spec_explain_refuses_an_invalid_spec(kneo: Kneo, tmp_path: Path) -> None:
    spec = write_yaml(
        tmp_path / "s.yaml",
        {"version": "v1", "workflow": {"steps": [{"id": "a", "kind": "function", "ref": "os:system"}]}},
    )  # fmt: skip
    result = kneo("spec", "explain", str(spec), cwd=tmp_path)
    assert result.exit_code == 1
    assert "E_FUNCTION_NOT_ALLOWED" in result.stdout + result.stderr


def test_kneo_policy_preview_locally(
    kneo: Kneo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KNEO_SERV_DATABASE_URL", f"sqlite:///{tmp_path / 'local.sqlite'}")
    proposed = write_yaml(tmp_path / "p.yaml", {"enabled": True, "require_human_review": True})
    result = kneo("policy", "preview", "prod", str(proposed), "--json", cwd=REPO)
    assert result.exit_code == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["current_source"] == "project" and body["needs_policy_approval"] is True
    typo = write_yaml(tmp_path / "t.yaml", {"require_guardrail": True})
    refused = kneo("policy", "preview", "prod", str(typo), cwd=REPO)
    assert refused.exit_code == 1 and "require_guardrail" in refused.stdout + refused.stderr
