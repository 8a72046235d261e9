"""Opt-in: tool calls against the real llama.cpp server (``llama-cpp-python[server]``, Gemma 3
270M), the OpenAI-compatible server whose strictness taught the always-on wire tests in
``test_local_model_servers.py``.

Runs with ``KNEO_TEST_LLAMACPP=1`` after ``python -m tests.llamacpp_server prepare`` (builds
once into a cached wheel directory; see that module); selected by ``-m llamacpp``.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from kneo import Decision
from kneo.engine.providers import ChatMessage, remote_provider
from kneo.engine.providers.remote import RemoteProvider
from kneo.errors import ProviderError
from kneo.platform import create_platform
from kneo.settings import Settings
from kneo.spec.models import ModelSpec
from kneo.spec.project import ProjectContext
from kneo.store import open_store
from kneo.tools import ToolDefinition, ToolRegistry
from tests import llamacpp_server

pytestmark = [
    pytest.mark.llamacpp,
    pytest.mark.skipif(
        os.environ.get("KNEO_TEST_LLAMACPP") != "1",
        reason="opt-in: KNEO_TEST_LLAMACPP=1 after python -m tests.llamacpp_server prepare",
    ),
]

WEATHER = ToolDefinition(
    name="get_temperature",
    description="The current temperature in a city, in degrees Celsius.",
    parameters={
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
)
CLOCK = ToolDefinition(
    name="get_time",
    description="The current local time in a city.",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}},
)
ASK = [
    ChatMessage("system", "You answer with the tools."),
    ChatMessage("user", "What is the temperature in Oslo?"),
]


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    if not llamacpp_server.prepared():
        pytest.fail(
            "KNEO_TEST_LLAMACPP=1 but the cache is not prepared: run "
            "python -m tests.llamacpp_server prepare"
        )
    with llamacpp_server.running() as url:
        yield url


def _model(url: str, **extra: Any) -> ModelSpec:
    fields: dict[str, Any] = {
        "provider": "llama-cpp",
        "name": "gemma-3-270m",
        "base_url": url,
        "max_tokens": 128,
        "temperature": 0.0,
        "timeout_seconds": 120,
    }
    return ModelSpec(**{**fields, **extra})


def _llm() -> RemoteProvider:
    return remote_provider("openai", Settings.from_env({"OPENAI_API_KEY": "sk-local"}))


def test_the_server_still_refuses_a_null_content(server: str) -> None:
    """The quirk Kneo works around: if this starts passing with 200, the quirk table may
    narrow (``QUIRKS["compatible"]``)."""
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_temperature", "arguments": '{"city": "Oslo"}'},
    }
    body = {
        "model": "gemma-3-270m",
        "max_tokens": 16,
        "messages": [
            {"role": "user", "content": "Temperature in Oslo?"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": "-3"},
        ],
    }
    request = urllib.request.Request(
        f"{server}/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=120)
    assert info.value.code == 500


def test_two_tool_calls_and_an_answer_from_their_results(server: str) -> None:
    """Two tools called one after the other (each named, so even a 270M model calls it),
    each assistant turn sent back with ``content: ""`` (``null`` is a 500 there), then an
    answer without tools."""
    llm = _llm()
    tools = [WEATHER, CLOCK]
    conversation = list(ASK)
    for tool, result in (("get_temperature", "-3 degrees"), ("get_time", "14:05")):
        reply = llm.complete(
            model=_model(server, tool_choice={"name": tool}), messages=conversation, tools=tools
        )
        assert [c.name for c in reply.tool_calls] == [tool], reply
        conversation += [
            reply.to_message(),
            *(
                ChatMessage("tool", result, tool_call_id=c.id, name=c.name)
                for c in reply.tool_calls
            ),
        ]
    final = llm.complete(
        model=_model(server, tool_choice="none"), messages=conversation, tools=tools
    )
    assert final.text and not final.tool_calls, final


def test_a_named_tool_is_the_one_called(server: str) -> None:
    reply = _llm().complete(
        model=_model(server, tool_choice={"name": "get_time"}),
        messages=ASK,
        tools=[WEATHER, CLOCK],
    )
    assert [c.name for c in reply.tool_calls] == ["get_time"], reply


def test_auto_offers_the_tools_in_the_prompt(server: str) -> None:
    """With ``auto`` (what Kneo now sends by default) the server builds the prompt with the
    tools; a reply is either a call of an offered tool or text, never a 500."""
    reply = _llm().complete(model=_model(server), messages=ASK, tools=[WEATHER, CLOCK])
    assert reply.text or {c.name for c in reply.tool_calls} <= {"get_temperature", "get_time"}


def test_a_tiny_timeout_is_a_provider_timeout(server: str) -> None:
    with pytest.raises(ProviderError) as info:
        _llm().complete(model=_model(server, timeout_seconds=0.001), messages=ASK, tools=[WEATHER])
    assert info.value.code == "provider_timeout"


def test_an_agent_calls_two_tools_and_one_needing_approval(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's journey through the platform against the real server: the agent calls
    ``get_temperature``, then ``get_time``, which needs approval (the run pauses durably);
    approved, the call runs once and the conversation goes back to the server, which
    accepts it. A 270M model may ask for the time again after that: each further request is
    rejected, and the run must then end without a provider error."""
    ran: list[str] = []
    registry = ToolRegistry()
    registry.register(WEATHER, lambda args: ran.append("get_temperature") or "-3 degrees")
    registry.register(
        replace(CLOCK, requires_approval=True),
        lambda args: ran.append("get_time") or "14:05. You have both answers now.",
    )
    (tmp_path / ".kneo").mkdir()
    config = {
        "version": "v1",
        "environments": {"dev": {}},
        "secrets": {"providers": {"llama-cpp": "LOCAL_LLM_KEY"}},
    }
    (tmp_path / ".kneo" / "config.yaml").write_text(json.dumps(config))
    agent = {
        "name": "weather",
        "instructions": "First call get_temperature, then get_time, then answer in one line.",
        "model": {
            "provider": "llama-cpp",
            "name": "gemma-3-270m",
            "base_url": server,
            "temperature": 0.0,
            "max_tokens": 128,  # tool_choice: auto, the default
        },
        "tools": ["get_temperature", "get_time"],
        "approval_required": ["get_time"],
        "strategy": {"max_iterations": 6},
    }
    spec = tmp_path / "agent.yaml"
    spec.write_text(json.dumps({"version": "v1", "agent": agent}))
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env({"LOCAL_LLM_KEY": "unused-by-the-server", "KNEO_ENV": "dev"})
    project = ProjectContext.discover(settings=settings, env="dev")
    store = open_store(None, settings=settings, state_dir=tmp_path / "state")
    manager = create_platform(settings, project, store=store, tool_registry=registry)
    try:
        run = manager.run_from_spec(input_text="Weather in Oslo?", spec_path=spec)
        assert str(run.status) == "paused", run
        assert ran == ["get_temperature"]  # the first tool ran; the second waits for a person
        decisions: list[str] = []
        while str(run.status) == "paused" and len(decisions) < 4:
            assert run.continuation_id and run.request_id
            decision = "rejected" if decisions else "approved"
            run = manager.resume(run.continuation_id, Decision(run.request_id, decision))
            decisions.append(decision)
        print(f"the run ended {run.status} after the decisions {decisions}: {run}")
    finally:
        manager.close()
    assert ran.count("get_time") == 1  # approved once, run once; later asks were rejected
    assert str(run.status) in {"succeeded", "failed"}, run
    if str(run.status) == "failed":  # the model's loop, never the wire
        error = run.metadata.get("error") or {}
        assert error.get("code") == "agent_max_iterations", run
