"""``invoke_workflow`` and ``invoke_agent`` spans, checked with the OpenTelemetry SDK's
in-memory exporter against the GenAI semantic conventions' own attribute names and
operation names (``opentelemetry-semantic-conventions``), in this process: Kneo's tracer is
swapped for one on a private provider for the test (no global provider is touched).

The cross-process side (a pause in one process, its resume in another, one trace linked to
the pause) is ``test_tracing.py``'s.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes

from kneo import Decision, tracing
from kneo.platform import create_platform
from kneo.settings import Settings
from kneo.spec.project import ProjectContext

PLANTED = "sk-live-PLANTED0123456789abcdef"
#: Every ``gen_ai.*`` attribute name the conventions define, and their operation names.
GEN_AI_NAMES = {
    value
    for name, value in vars(gen_ai_attributes).items()
    if name.startswith("GEN_AI_") and isinstance(value, str)
}
OPERATIONS = {v.value for v in gen_ai_attributes.GenAiOperationNameValues}

TOOLS = """
def lookup(args):
    return "found " + str(args.get("q"))
"""
AGENT = {
    "name": "scout",
    "system_prompt": "Look it up.",
    "tools": ["lookup"],
    "model": {
        "provider": "dummy",
        "name": "scripted-2",
        "script": [
            {"tool_calls": [{"name": "lookup", "arguments": {"q": "{input}"}}]},
            {"text": "done: {last_tool_result}"},
        ],
    },
}
TOOL = {
    "lookup": {
        "description": "Look it up.",
        "implementation": "scouttools:lookup",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
    }
}
SPEC = {
    "version": "v1",
    "agent": AGENT,
    "workflow": {
        "type": "sequential",
        "name": "scouting",
        "steps": [
            {"id": "look", "kind": "agent", "ref": "scout"},
            {"id": "ok", "kind": "human", "ref": "checker"},
            {"id": "again", "kind": "agent", "ref": "scout"},
        ],
    },
    "components": {"humans": {"checker": {"prompt": "Fine?"}}, "tools": TOOL},
}


@pytest.fixture()
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "_tracer", provider.get_tracer("kneo"))
    yield exporter
    provider.shutdown()


@pytest.fixture()
def manager(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    (tmp_path / "scouttools.py").write_text(TOOLS)
    (tmp_path / "scouting.yaml").write_text(json.dumps(SPEC))
    (tmp_path / "scout.yaml").write_text(
        json.dumps({"version": "v1", "agent": AGENT, "components": {"tools": TOOL}})
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    settings = Settings.from_env({"KNEO_SERV_DATABASE_URL": f"sqlite:///{tmp_path / 'k.sqlite'}"})
    platform = create_platform(settings, ProjectContext.discover(cwd=tmp_path, settings=settings))
    yield platform
    platform.store.close()


def _named(finished: tuple[ReadableSpan, ...], prefix: str) -> list[ReadableSpan]:
    return [s for s in finished if s.name.startswith(prefix)]


def _only_convention_names(span: ReadableSpan) -> None:
    attrs = dict(span.attributes or {})
    unknown = {k for k in attrs if k.startswith("gen_ai.") and k not in GEN_AI_NAMES}
    assert unknown == set(), f"{span.name}: not in the conventions: {unknown}"
    assert attrs.get("gen_ai.operation.name") in OPERATIONS


def test_workflow_and_agent_spans_around_chat_and_tools_across_a_pause(
    spans: InMemorySpanExporter, manager: Any, tmp_path: Path
) -> None:
    paused = manager.run_from_spec(
        input_text=f"key {PLANTED}", spec_path=str(tmp_path / "scouting.yaml")
    )
    assert paused.status == "paused"
    done = manager.resume(
        paused.continuation_id, Decision(paused.request_id, "approved"), actor="reviewer"
    )
    assert done.status == "succeeded"
    finished = spans.get_finished_spans()

    first, resumed = _named(finished, "invoke_workflow ")
    assert first.name == resumed.name == "invoke_workflow scouting"
    for run in (first, resumed):
        _only_convention_names(run)
        assert run.attributes["gen_ai.operation.name"] == "invoke_workflow"
        assert run.attributes["gen_ai.workflow.name"] == "scouting"
        assert run.attributes["gen_ai.conversation.id"] == paused.run_id
    # one trace across the pause: the resumed run is a child of the pause, linked to it
    [pause] = _named(finished, "human pause")
    assert resumed.parent is not None and resumed.parent.span_id == pause.context.span_id
    assert resumed.context.trace_id == first.context.trace_id == pause.context.trace_id
    assert [link.context.span_id for link in resumed.links] == [pause.context.span_id]

    agents = _named(finished, "invoke_agent ")
    assert [a.name for a in agents] == ["invoke_agent scout", "invoke_agent scout"]
    steps = {s.context.span_id: s for s in _named(finished, "step ")}
    for agent in agents:
        _only_convention_names(agent)
        assert agent.attributes["gen_ai.operation.name"] == "invoke_agent"
        assert agent.attributes["gen_ai.agent.name"] == "scout"
        assert agent.attributes["gen_ai.provider.name"] == "dummy"
        assert agent.attributes["gen_ai.request.model"] == "scripted-2"
        assert (
            agent.parent is not None
            and steps[agent.parent.span_id].attributes["kneo.step.kind"] == "agent"
        )
        chats = [s for s in _named(finished, "chat ") if s.parent.span_id == agent.context.span_id]
        tools = [
            s
            for s in _named(finished, "execute_tool ")
            if s.parent.span_id == agent.context.span_id
        ]
        assert chats
        for child in (*chats, *tools):
            _only_convention_names(child)
        tokens = sum(int(c.attributes["gen_ai.usage.input_tokens"]) for c in chats)
        assert agent.attributes["gen_ai.usage.input_tokens"] == tokens > 0
        assert agent.start_time <= min(c.start_time for c in chats)
        assert agent.end_time >= max(c.end_time for c in (*chats, *tools))

    # every model and tool call is under its agent (the first made both)
    under = {a.context.span_id for a in agents}
    calls = _named(finished, "chat ") + _named(finished, "execute_tool ")
    assert {c.parent.span_id for c in calls} == under and _named(finished, "execute_tool ")

    everything = json.dumps([json.loads(s.to_json()) for s in finished])
    assert PLANTED not in everything  # redacted like every other attribute


def test_an_agent_run_is_one_invoke_agent_span(
    spans: InMemorySpanExporter, manager: Any, tmp_path: Path
) -> None:
    result = manager.run_from_spec(input_text="x", spec_path=str(tmp_path / "scout.yaml"))
    assert result.status == "succeeded"
    finished = spans.get_finished_spans()
    [root] = [s for s in finished if s.parent is None]
    assert root.name == "invoke_agent scout"
    _only_convention_names(root)
    assert root.attributes["gen_ai.agent.name"] == "scout"
    assert _named(finished, "invoke_workflow ") == []
    # the agent run's calls are not wrapped a second time
    assert [s.name for s in finished].count("invoke_agent scout") == 1
    assert _named(finished, "chat ") and _named(finished, "execute_tool ")
