"""Skills, agent middleware, agents answering as tools and agents backed by workflows, run by
the engine against an in-memory journal with the offline ``dummy`` provider."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kneo.engine import Completed, ExecutionState, Failed, MemoryJournal, Paused, WorkflowEngine
from kneo.engine.providers import create_provider_registry
from kneo.errors import SpecError
from kneo.policy.access import HostAccess
from kneo.runtimes import create_runtime_registry
from kneo.settings import Settings
from kneo.spec.compiled import CompiledWorkflow
from kneo.spec.compiler import SpecCompiler
from kneo.spec.loader import load_spec_data
from kneo.spec.project import ProjectConfig
from kneo.tools import ToolDefinition, ToolRegistry
from kneo.tools.defaults import create_tool_registry

MODULE = "kneo_ext_layers"
LAYERS = """
CALLS = []

def no_otters(text):
    CALLS.append(("guard", text))
    return "otters are off topic" if "otter" in text.lower() else None

def shout(text):
    return text.upper()

def only_short(tool, arguments):
    CALLS.append(("policy", tool))
    return "too long" if len(str(arguments)) > 30 else None

def record(text):
    CALLS.append(("step", text))
    return text + "+"
"""


@pytest.fixture(scope="module")
def layers_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("ext_layers")
    (root / f"{MODULE}.py").write_text(LAYERS)
    sys.path.insert(0, str(root))
    yield root
    sys.path.remove(str(root))
    sys.modules.pop(MODULE, None)


@pytest.fixture
def calls(layers_dir: Path) -> list[Any]:
    module = __import__(MODULE)
    module.CALLS.clear()
    return module.CALLS  # type: ignore[no-any-return]


def _registry(seen: list[dict[str, Any]]) -> ToolRegistry:
    registry = create_tool_registry(include_examples=False)
    registry.register(
        ToolDefinition(
            name="lookup",
            parameters={"type": "object", "properties": {"q": {"type": "string"}}},
        ),
        lambda args: seen.append(args) or f"found {args.get('q')} key=sk-live-abcdefghijklmnop1234",
    )
    return registry


def compile_spec(data: dict[str, Any], registry: ToolRegistry) -> CompiledWorkflow:
    compiler = SpecCompiler(runtime_registry=create_runtime_registry(), tool_registry=registry)
    return compiler.compile(load_spec_data({"version": "v1", **data}))


class Harness:
    """One engine and its dummy provider (which records what each model call was sent)."""

    def __init__(self, registry: ToolRegistry, access: HostAccess | None = None) -> None:
        providers = create_provider_registry(Settings())
        self.dummy = providers.get("dummy")
        self.registry = registry
        self.access = access
        self.engine = WorkflowEngine(providers=providers.get, tools=registry)

    def run(self, wf: CompiledWorkflow, state: ExecutionState) -> Any:
        return self.engine.run(wf, state, MemoryJournal(), access=self.access)


def _agent(script: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    return {"name": "lead", "model": {"provider": "dummy", "script": script}, **fields}


# --------------------------------------------------------------------------- skills


def test_a_skill_brings_its_instructions_and_tools_to_the_agent() -> None:
    seen: list[dict[str, Any]] = []
    registry = _registry(seen)
    wf = compile_spec(
        {
            "skills": {"search": {"instructions": "Search before answering.", "tools": ["lookup"]}},
            "agent": _agent(
                [{"tool_calls": [{"name": "lookup", "arguments": {"q": "x"}}]}, {"text": "ok"}],
                system_prompt="Be brief.",
                skills=["search"],
            ),
        },
        registry,
    )
    step = wf.steps[0]
    assert step.agent is not None
    assert step.agent.system_prompt == "Be brief.\n\n## Skill: search\nSearch before answering."
    assert [t.name for t in step.tools] == ["lookup"]
    harness = Harness(registry)
    out = harness.run(wf, ExecutionState.new("q"))
    assert isinstance(out, Completed) and seen == [{"q": "x"}]
    assert harness.dummy.calls[0][0].content.endswith("Search before answering.")


# --------------------------------------------------------------------------- middleware


def _middleware_spec(middleware: list[dict[str, Any]], script: list[dict[str, Any]]) -> Any:
    return {
        "agent": _agent(script, tools={"include": ["lookup"]}, middleware=middleware),
    }


def test_input_guardrail_blocks_before_any_model_call(calls: list[Any]) -> None:
    registry = _registry([])
    wf = compile_spec(
        _middleware_spec(
            [{"type": "guardrail", "stage": "input", "function": f"{MODULE}:no_otters"}],
            [{"text": "never"}],
        ),
        registry,
    )
    harness = Harness(registry)
    out = harness.run(wf, ExecutionState.new("Tell me about otters"))
    assert isinstance(out, Failed) and out.error["code"] == "guardrail_blocked"
    assert "otters are off topic" in out.error["message"] and harness.dummy.calls == []
    clean = harness.run(wf, ExecutionState.new("Tell me about seals"))
    assert isinstance(clean, Completed) and clean.output_text == "never"


def test_layers_apply_in_the_order_written(calls: list[Any]) -> None:
    """Redaction then guardrail: the guardrail sees the redacted answer and lets it pass;
    guardrail then redaction: it sees the secret and blocks."""
    registry = _registry([])
    answer = [{"text": "the key is sk-live-abcdefghijklmnop1234 ok"}]
    redact = {"type": "redaction", "stages": ["output"], "patterns": ["sk-live-\\w+"]}
    guard = {"type": "guardrail", "stage": "output", "pattern": "sk-live"}
    first = Harness(registry).run(
        compile_spec(_middleware_spec([redact, guard], answer), registry), ExecutionState.new("q")
    )
    assert isinstance(first, Completed) and first.output_text == "the key is [REDACTED] ok"
    messages = next(iter(first.state["agents"].values()))["messages"]
    assert "sk-live" not in str(messages)  # the transcript records the redacted answer
    second = Harness(registry).run(
        compile_spec(_middleware_spec([guard, redact], answer), registry), ExecutionState.new("q")
    )
    assert isinstance(second, Failed) and second.error["code"] == "guardrail_blocked"


def test_tool_policy_and_result_layers(calls: list[Any]) -> None:
    seen: list[dict[str, Any]] = []
    registry = _registry(seen)
    script = [
        {
            "tool_calls": [
                {"name": "lookup", "arguments": {"q": "a fairly long question text here"}},
                {"name": "lookup", "arguments": {"q": "short"}},
            ]
        },
        {"text": "done"},
    ]
    middleware = [
        {"type": "tool_policy", "function": f"{MODULE}:only_short"},
        {"type": "redaction", "stages": ["tool_result"], "function": f"{MODULE}:shout"},
    ]
    out = Harness(registry).run(
        compile_spec(_middleware_spec(middleware, script), registry), ExecutionState.new("q")
    )
    assert isinstance(out, Completed)
    assert seen == [{"q": "short"}]  # the refused call never reached the tool
    results = [
        m["content"]
        for m in next(iter(out.state["agents"].values()))["messages"]
        if m["role"] == "tool"
    ]
    assert results[0].startswith("Tool call refused by middleware: tool 'lookup' refused: too long")
    # built-in redaction first (the key), then the function
    assert results[1] == "FOUND SHORT KEY=[REDACTED]"
    withheld = Harness(registry).run(
        compile_spec(
            _middleware_spec(
                [{"type": "guardrail", "stage": "tool_result", "pattern": "found"}], script
            ),
            registry,
        ),
        ExecutionState.new("q"),
    )
    tool_messages = [
        m for m in next(iter(withheld.state["agents"].values()))["messages"] if m["role"] == "tool"
    ]
    assert all("was withheld" in m["content"] for m in tool_messages)


def test_memory_sends_a_window_and_keeps_the_whole_transcript() -> None:
    seen: list[dict[str, Any]] = []
    registry = _registry(seen)
    script = [{"tool_calls": [{"name": "lookup", "arguments": {"q": "x"}}]}, {"text": "done"}]
    data = _middleware_spec([{"type": "memory", "max_messages": 2}], script)
    data["agent"]["system_prompt"] = "sys"
    harness = Harness(registry)
    out = harness.run(compile_spec(data, registry), ExecutionState.new("q"))
    assert isinstance(out, Completed)
    first, last = harness.dummy.calls[0], harness.dummy.calls[-1]
    assert [m.role for m in first] == ["system", "user"]
    # the system prompt and the newest two others (the user's message is out of the window)
    assert [m.role for m in last] == ["system", "assistant", "tool"]
    kept = next(iter(out.state["agents"].values()))["messages"]
    assert [m["role"] for m in kept] == ["system", "user", "assistant", "tool", "assistant"]


def test_a_middleware_function_outside_the_project_is_refused_at_run(layers_dir: Path) -> None:
    """The kernel's callable door with the run's grant: ``json:dumps`` is no project code."""
    registry = _registry([])
    wf = compile_spec(
        _middleware_spec(
            [{"type": "redaction", "stages": ["input"], "function": "json:dumps"}],
            [{"text": "x"}],
        ),
        registry,
    )
    access = HostAccess.for_environment(ProjectConfig(), "dev", origin="spec")
    out = Harness(registry, access).run(wf, ExecutionState.new("q"))
    assert isinstance(out, Failed) and out.error["code"] == "E_FUNCTION_NOT_ALLOWED"
    assert "middleware[0].function" in out.error["message"]


@pytest.mark.parametrize(
    ("layer", "field"),
    [
        ({"type": "guardrail", "pattern": "("}, "agent.middleware[0].guardrail.pattern"),
        ({"type": "guardrail", "pattern": "a", "function": "m:f"}, "agent.middleware[0].guardrail"),
        ({"type": "memory", "max_messages": 0}, "agent.middleware[0].memory.max_messages"),
        ({"type": "firewall"}, "agent.middleware[0]"),
        ({"type": "redaction", "patterns": ["["]}, "agent.middleware[0].redaction.patterns"),
    ],
)
def test_a_bad_layer_is_a_schema_error_naming_its_field(layer: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as caught:
        load_spec_data({"version": "v1", "agent": {"name": "a", "middleware": [layer]}})
    assert caught.value.code == "E_SCHEMA"
    assert field in str(caught.value), str(caught.value)


# --------------------------------------------------------------------------- delegation


def _delegation(nested_agent: dict[str, Any], **components: Any) -> dict[str, Any]:
    return {
        "agent": _agent(
            [
                {"tool_calls": [{"name": "ask", "arguments": {"input": "dig"}}]},
                {"text": "lead: {last_tool_result}"},
            ],
            tools={"include": ["ask"]},
        ),
        "components": {
            "agents": {"helper": nested_agent},
            "tools": {"ask": {"agent": "helper"}},
            **components,
        },
    }


def test_an_agent_answers_as_a_tool_and_resumes_inside_without_rerunning() -> None:
    seen: list[dict[str, Any]] = []
    registry = _registry(seen)
    helper = {
        "name": "helper",
        "model": {
            "provider": "dummy",
            "script": [
                {"tool_calls": [{"name": "lookup", "arguments": {"q": "{input}"}}]},
                {"text": "helper found it"},
            ],
        },
        "tools": {"include": ["lookup"]},
        "approval_required": ["lookup"],
    }
    wf = compile_spec(_delegation(helper), registry)
    harness = Harness(registry)
    paused = harness.run(wf, ExecutionState.new("go"))
    assert isinstance(paused, Paused) and paused.requests[0].kind == "tool_approval"
    assert set(paused.state["agents"]) == {"lead", "lead/ask#1"}
    model_calls = len(harness.dummy.calls)
    assert model_calls == 2  # the lead's first turn, the helper's first turn
    decided = {**paused.state, "decisions": {paused.requests[0].wait_key: {"decision": "approved"}}}
    done = harness.run(wf, ExecutionState(decided))
    assert isinstance(done, Completed) and done.output_text == "lead: helper found it"
    assert seen == [{"q": "dig"}]
    # after the resume: the helper's second turn and the lead's second, nothing again
    assert len(harness.dummy.calls) == model_calls + 2


def test_a_workflow_backs_an_agent_and_resumes_without_rerunning(calls: list[Any]) -> None:
    registry = _registry([])
    data = {
        "workflow": {"steps": [{"id": "main", "kind": "agent", "ref": "reviewer"}]},
        "components": {
            "agents": {"reviewer": {"name": "reviewer", "workflow": "review"}},
            "functions": {"record": f"{MODULE}:record"},
            "humans": {"ok": {"prompt": "ok?"}},
            "workflows": {
                "review": {
                    "steps": [
                        {"id": "draft", "kind": "function", "ref": "record"},
                        {"id": "check", "kind": "human", "ref": "ok"},
                        {"id": "final", "kind": "function", "ref": "record"},
                    ]
                }
            },
        },
    }
    wf = compile_spec(data, registry)
    harness = Harness(registry)
    paused = harness.run(wf, ExecutionState.new("in"))
    assert isinstance(paused, Paused) and paused.requests[0].wait_key == "main/check"
    assert calls == [("step", "in")]
    decided = {**paused.state, "decisions": {"main/check": {"decision": "approved"}}}
    done = harness.run(wf, ExecutionState(decided))
    assert isinstance(done, Completed) and done.output_text == "in++"
    assert calls == [("step", "in"), ("step", "in+")]  # the draft ran once
    assert [k for k in done.state["order"]] == ["main/draft", "main/check", "main/final", "main"]


@pytest.mark.parametrize(
    ("data", "code", "path"),
    [
        (
            {"agent": _agent([], skills=["nope"])},
            "E_UNKNOWN_SKILL",
            "agent.skills[0]",
        ),
        (
            {"skills": {"s": {"instructions": "x", "tools": ["nope"]}}, "agent": _agent([])},
            "E_UNKNOWN_TOOL",
            "skills.s.tools[0]",
        ),
        (
            {"agent": _agent([]), "components": {"tools": {"t": {"agent": "ghost"}}}},
            "E_UNKNOWN_REF",
            "components.tools.t.agent",
        ),
        ({"agent": _agent([], workflow="ghost")}, "E_UNKNOWN_REF", "agent.workflow"),
        (
            {
                "agent": _agent([], tools=["me"]),
                "components": {"tools": {"me": {"agent": "lead"}}},
            },
            "E_AGENT_CYCLE",
            "agent",
        ),
        (
            {
                "agent": _agent([], workflow="loop"),
                "components": {
                    "workflows": {"loop": {"steps": [{"id": "x", "kind": "agent", "ref": "lead"}]}}
                },
            },
            "E_AGENT_CYCLE",
            "agent",
        ),
        (
            {
                "agent": _agent([], workflow="w"),
                "components": {
                    "workflows": {"w": {"steps": [{"id": "x", "kind": "human", "ref": "nobody"}]}}
                },
            },
            "E_UNKNOWN_REF",
            "components.workflows.w.steps[0].ref",
        ),
    ],
)
def test_delegation_and_skill_names_are_checked(data: dict[str, Any], code: str, path: str) -> None:
    compiler = SpecCompiler(
        runtime_registry=create_runtime_registry(), tool_registry=create_tool_registry()
    )
    found = compiler.validate(load_spec_data({"version": "v1", **data}))
    assert (code, path) in {(d.code, d.path) for d in found}, found
