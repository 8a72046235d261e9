"""Opt-in: bridged agents (an OpenAI Agents SDK ``Agent``, a LangGraph graph) against the real
llama.cpp server (Gemma 3 270M), their model calls through Kneo's model client: the answer
comes back, its usage as the server reported it is the run's, and a ``token_budget`` is
enforced on it.

Runs with ``KNEO_TEST_LLAMACPP=1`` after ``python -m tests.llamacpp_server prepare`` (see
that module; the tests download nothing), as ``test_llamacpp.py``; selected by ``-m llamacpp``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kneo.platform import create_platform
from kneo.settings import Settings
from kneo.spec.project import ProjectContext
from kneo.store import open_store
from tests import llamacpp_server

pytestmark = [
    pytest.mark.llamacpp,
    pytest.mark.skipif(
        os.environ.get("KNEO_TEST_LLAMACPP") != "1",
        reason="opt-in: KNEO_TEST_LLAMACPP=1 after python -m tests.llamacpp_server prepare",
    ),
]

#: A bridged agent per framework, without tools (a 270M model answers; tools are the native
#: agent's test's subject).
MODULES = {
    "openai-agents": """
from agents import Agent


def build():
    return Agent(name="greeter", instructions="Answer in one short sentence.")
""",
    "langgraph": """
from langgraph.graph import START, MessagesState, StateGraph


def build(model):
    def agent(state):
        return {"messages": [model.invoke([("system", "Answer in one short sentence."),
                                           *state["messages"]])]}

    graph = StateGraph(MessagesState)
    graph.add_node("agent", agent)
    graph.add_edge(START, "agent")
    return graph.compile()
""",
}


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    if not llamacpp_server.prepared():
        pytest.fail(
            "KNEO_TEST_LLAMACPP=1 but the cache is not prepared: run "
            "python -m tests.llamacpp_server prepare"
        )
    with llamacpp_server.running() as url:
        yield url


@pytest.fixture(params=sorted(MODULES))
def run_bridged(
    request: pytest.FixtureRequest, server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    """``run_bridged(**agent)`` -> the run of the framework's agent on the real server."""
    pytest.importorskip("agents" if request.param == "openai-agents" else "langgraph")
    (tmp_path / ".kneo").mkdir()
    config = {
        "version": "v1",
        "environments": {"dev": {}},
        "secrets": {"providers": {"llama-cpp": "LOCAL_LLM_KEY"}},
    }
    (tmp_path / ".kneo" / "config.yaml").write_text(json.dumps(config))
    (tmp_path / "bridged_agent.py").write_text(MODULES[request.param])
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    settings = Settings.from_env({"LOCAL_LLM_KEY": "unused-by-the-server", "KNEO_ENV": "dev"})
    project = ProjectContext.discover(settings=settings, env="dev")
    store = open_store(None, settings=settings, state_dir=tmp_path / "state")
    manager = create_platform(settings, project, store=store)

    def run(**agent: Any) -> Any:
        spec = {
            "version": "v1",
            "agent": {
                "name": "greeter",
                "implementation": "bridged_agent:build",
                "model": {
                    "provider": "llama-cpp",
                    "name": "gemma-3-270m",
                    "base_url": server,
                    "temperature": 0.0,
                    "max_tokens": 48,
                    "timeout_seconds": 120,
                },
                **agent,
            },
        }
        path = tmp_path / "bridged.json"
        path.write_text(json.dumps(spec))
        result = manager.run_from_spec(input_text="Say hello to Oslo.", spec_path=path)
        return result, manager.get_run(result.run_id)

    yield run
    manager.close()


def test_a_bridged_agent_answers_with_the_servers_usage(run_bridged: Any) -> None:
    result, run = run_bridged()
    assert result.status == "succeeded", result.to_dict()
    assert str(result.output_text).strip()
    usage = run["usage"]
    assert usage["model_calls"] == 1
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0  # as the server counted


def test_a_bridged_agents_reply_over_its_per_call_budget_fails_the_step(run_bridged: Any) -> None:
    result, _ = run_bridged(token_budget={"per_call": 1})
    assert result.status == "failed", result.to_dict()
    error = result.metadata["error"]
    assert error["code"] == "budget_exceeded" and "token_budget.per_call" in error["message"]
