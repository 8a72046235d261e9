"""A LangGraph compiled graph as a bridged agent (``agent.implementation``), run by LangGraph
against the project's OpenAI-compatible test server: the graph's model is the spec's (the
factory's ``model`` argument), the tools of its ``ToolNode`` go through Kneo's tool guard
(an approval pauses durably; the resume replays the recorded turns and results), its usage
is recorded."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kneo import Decision
from kneo.platform import create_platform
from kneo.settings import Settings
from kneo.spec.project import ProjectContext
from tests.fake_models.server import OUTPUT_PER_REPLY, FakeModels, serve

pytest.importorskip("langgraph")

MODULE = '''
from pathlib import Path

from langchain_core.tools import tool
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

CALLS = Path({calls!r})


@tool
def word_count(text: str) -> str:
    """Count the words of a text."""
    with CALLS.open("a") as out:
        out.write("word_count\\n")
    return str(len(text.split()))


@tool
def send_report(to: str) -> str:
    """Send the report to someone."""
    with CALLS.open("a") as out:
        out.write("send_report\\n")
    return f"sent to {{to}}"


def build(model):
    tools = [word_count, send_report]
    bound = model.bind_tools(tools)

    def agent(state):
        return {{"messages": [bound.invoke([("system", "Count words."), *state["messages"]])]}}

    graph = StateGraph(MessagesState)
    graph.add_node("agent", agent)
    graph.add_node("tools", ToolNode(tools))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition)
    graph.add_edge("tools", "agent")
    return graph.compile()
'''
KEY = "sk-graph-planted-key-7731"


@pytest.fixture()
def fake() -> Iterator[FakeModels]:
    with serve() as models:
        yield models


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    (tmp_path / ".kneo").mkdir()
    config = {"version": "v1", "secrets": {"extra": {"graph_key": "GRAPH_KEY"}}}
    (tmp_path / ".kneo" / "config.yaml").write_text(json.dumps(config))
    (tmp_path / "graph_agent.py").write_text(MODULE.format(calls=str(tmp_path / "calls.txt")))
    return tmp_path


def _manager(project: Path) -> Any:
    settings = Settings.from_env({"GRAPH_KEY": KEY})
    return create_platform(settings, ProjectContext.discover(cwd=project, settings=settings))


def _spec(project: Path, fake: FakeModels, **agent: Any) -> Path:
    spec = {
        "version": "v1",
        "agent": {
            "name": "grapher",
            "implementation": "graph_agent:build",
            "model": {
                "provider": "openai-compatible",
                "name": "graph-model",
                "base_url": fake.url + "/v1",
                "api_key_env": "graph_key",
            },
            **agent,
        },
    }
    path = project / "graph.json"
    path.write_text(json.dumps(spec))
    return path


def _calls(project: Path) -> list[str]:
    path = project / "calls.txt"
    return path.read_text().split() if path.exists() else []


def test_the_graph_runs_with_the_specs_model_and_guarded_tools(
    project: Path, fake: FakeModels
) -> None:
    fake.script(
        "graph-model",
        [
            {"tool_calls": [{"name": "word_count", "arguments": {"text": "a b c d"}}]},
            {"text": "{last_tool_result} words"},
        ],
    )
    manager = _manager(project)
    result = manager.run_from_spec(input_text="count a b c d", spec_path=_spec(project, fake))
    assert result.status == "succeeded", result.to_dict()
    assert result.output_text == "4 words"
    assert _calls(project) == ["word_count"]
    seen = fake.requests("graph-model")
    assert len(seen) == 2 and all(s.key == KEY for s in seen)
    usage = manager.get_run(result.run_id)["usage"]
    assert usage["model_calls"] == 2 and usage["tool_calls"] == 1
    assert usage["output_tokens"] == 2 * OUTPUT_PER_REPLY
    manager.store.close()


def test_an_approval_pauses_durably_and_the_resume_replays(project: Path, fake: FakeModels) -> None:
    fake.script(
        "graph-model",
        [
            {"tool_calls": [{"name": "word_count", "arguments": {"text": "x y"}}]},
            {"tool_calls": [{"name": "send_report", "arguments": {"to": "ops"}}]},
            {"text": "done: {last_tool_result}"},
        ],
    )
    spec = _spec(project, fake, approval_required=["send_report"])
    manager = _manager(project)
    paused = manager.run_from_spec(input_text="count and report", spec_path=spec)
    assert paused.status == "paused", paused.to_dict()
    assert paused.metadata["pending_human_request"]["context"]["tool_name"] == "send_report"
    assert _calls(project) == ["word_count"] and fake.hits("graph-model") == 2
    manager.store.close()
    other = _manager(project)
    done = other.resume(paused.continuation_id, Decision(paused.request_id, "approved"))
    assert done.status == "succeeded", done.to_dict()
    assert done.output_text == "done: sent to ops"
    assert _calls(project) == ["word_count", "send_report"]
    assert fake.hits("graph-model") == 3
    other.store.close()
