"""The dummy provider: scripted, deterministic across instances and processes; the registry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kneo.engine.providers import (
    ChatMessage,
    DummyProvider,
    ModelReply,
    ProviderRegistry,
    ToolCall,
    create_provider_registry,
    read_call_log,
)
from kneo.errors import KneoError
from kneo.settings import Settings
from kneo.spec.models import ModelSpec

LOOKUP_SCRIPT: list[dict[str, Any]] = [
    {"tool_calls": [{"name": "lookup_user", "arguments": {"user_id": "{input}"}}]},
    {"text": 'The email for {input} is {last_tool_result}. {"json": true}'},
]


def _model(script: list[dict[str, Any]]) -> ModelSpec:
    return ModelSpec.model_validate({"provider": "dummy", "name": "scripted", "script": script})


def _run_conversation(provider: DummyProvider, model: ModelSpec) -> list[ModelReply]:
    """Drive the script like the agent loop does: reply, tool result, reply."""
    messages = [ChatMessage("system", "sys"), ChatMessage("user", "u-002")]
    replies = []
    for _ in range(3):
        reply = provider.complete(model=model, messages=messages, tools=[])
        replies.append(reply)
        messages.append(reply.to_message())
        for call in reply.tool_calls:
            messages.append(ChatMessage("tool", "bob@example.com", tool_call_id=call.id))
    return replies


def test_tool_call_turn_then_text_with_templates() -> None:
    """Turn 0 calls the tool (arguments templated, id call_0_0); turn 1 answers with its result;
    the last turn repeats; only the two placeholders are interpreted."""
    replies = _run_conversation(DummyProvider(), _model(LOOKUP_SCRIPT))
    assert replies[0].text is None
    assert replies[0].tool_calls == (ToolCall("call_0_0", "lookup_user", {"user_id": "u-002"}),)
    expected = 'The email for u-002 is bob@example.com. {"json": true}'
    for reply in replies[1:]:
        assert reply.text == expected and reply.tool_calls == ()


def test_same_messages_same_reply_across_instances() -> None:
    """Determinism: two providers (as in two processes) give identical replies."""
    model = _model(LOOKUP_SCRIPT)
    assert _run_conversation(DummyProvider(), model) == _run_conversation(DummyProvider(), model)


def test_resumed_conversation_gets_the_reply_a_fresh_one_would() -> None:
    """The turn is a function of the messages only: replaying a prefix on a new instance
    yields the same next reply as the original instance did at that point."""
    model = _model(LOOKUP_SCRIPT)
    original = DummyProvider()
    replies = _run_conversation(original, model)
    resumed = DummyProvider()
    prefix = original.calls[1]
    assert resumed.complete(model=model, messages=prefix, tools=[]) == replies[1]


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        pytest.param([], "echo: hello there", id="empty-script-echoes"),
        pytest.param([{"echo": True}], "echo: hello there", id="echo-turn"),
        pytest.param([{"text": "fixed"}], "fixed", id="fixed-text"),
        pytest.param([{"text": "you said {input}"}], "you said hello there", id="input-template"),
    ],
)
def test_text_turns(script: list[dict[str, Any]], expected: str) -> None:
    messages = [ChatMessage("user", "first"), ChatMessage("user", "hello there")]
    reply = DummyProvider().complete(model=_model(script), messages=messages, tools=[])
    assert reply.text == expected and reply.tool_calls == ()


def test_several_tool_calls_in_one_turn_have_distinct_ids() -> None:
    script = [{"tool_calls": [{"name": "a"}, {"name": "b", "arguments": {"n": 1}}]}]
    reply = DummyProvider().complete(
        model=_model(script), messages=[ChatMessage("user", "x")], tools=[]
    )
    assert [(c.id, c.name, c.arguments) for c in reply.tool_calls] == [
        ("call_0_0", "a", {}),
        ("call_0_1", "b", {"n": 1}),
    ]


def test_calls_are_recorded_in_memory_and_in_the_log_file(tmp_path: Path) -> None:
    """Every call is kept in ``calls`` and appended as one JSON line to the call log."""
    log = tmp_path / "logs" / "dummy.jsonl"
    provider = DummyProvider(call_log=log)
    _run_conversation(provider, _model(LOOKUP_SCRIPT))
    entries = read_call_log(log)
    assert [e["turn"] for e in entries] == [0, 1, 2]
    assert entries[0] == {
        "model": "scripted",
        "turn": 0,
        "messages": [m.to_dict() for m in provider.calls[0]],
        "pid": os.getpid(),  # which process made the call (a worker's, after a decision)
    }
    assert len(provider.calls) == 3
    assert read_call_log(tmp_path / "absent.jsonl") == []


def test_call_log_from_another_process(tmp_path: Path) -> None:
    """KNEO_DUMMY_CALL_LOG reaches the registry's dummy provider; a child process's calls
    land in the same file as this process's (appended, not overwritten)."""
    log = tmp_path / "calls.jsonl"
    code = (
        "import sys\n"
        "from kneo.settings import Settings\n"
        "from kneo.engine.providers import ChatMessage, create_provider_registry\n"
        "from kneo.spec.models import ModelSpec\n"
        "p = create_provider_registry(Settings.from_env()).get('dummy')\n"
        "p.complete(model=ModelSpec(), messages=[ChatMessage('user', sys.argv[1])], tools=[])\n"
    )
    env = {"KNEO_DUMMY_CALL_LOG": str(log), "PATH": "/usr/bin:/bin"}
    env["PYTHONPATH"] = ":".join(p for p in sys.path if p)
    for text in ("one", "two"):
        subprocess.run([sys.executable, "-c", code, text], env=env, check=True, timeout=30)
    registry = create_provider_registry(Settings.from_env({"KNEO_DUMMY_CALL_LOG": str(log)}))
    registry.get("dummy").complete(
        model=ModelSpec(), messages=[ChatMessage("user", "three")], tools=[]
    )
    sent = [e["messages"][-1]["content"] for e in read_call_log(log)]
    assert sent == ["one", "two", "three"]
    assert all(json.loads(line) for line in log.read_text().splitlines())
    pids = [e["pid"] for e in read_call_log(log)]  # each line names the process that called
    assert pids[2] == os.getpid() and os.getpid() not in pids[:2] and pids[0] != pids[1]


def test_registry_names_and_unknown_provider() -> None:
    registry = create_provider_registry(Settings.from_env({}))
    assert registry.names() == [
        "anthropic",
        "azure-openai",
        "dummy",
        "gemini",
        "google",
        "llama-cpp",
        "openai",
        "openai-compatible",
    ]
    assert isinstance(registry.get("dummy"), DummyProvider)
    with pytest.raises(KneoError) as info:
        registry.get("bedrock")
    assert info.value.code == "unknown_provider"
    assert info.value.details == {"provider": "bedrock"}
    assert "dummy" in info.value.message


def test_register_a_custom_provider() -> None:
    registry = ProviderRegistry()
    custom = DummyProvider()
    registry.register(custom, aliases=("fake",))
    assert registry.get("fake") is custom and "dummy" in registry
