"""The engine against an in-memory journal: families, memoized units, errors, pauses, agents."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kneo.engine import (
    CancellationToken,
    Cancelled,
    Completed,
    ExecutionState,
    Failed,
    MemoryJournal,
    Paused,
    Superseded,
    WorkflowEngine,
    register_predicate,
)
from kneo.engine.providers import create_provider_registry
from kneo.errors import KneoError
from kneo.kernel.code import collect_code, load_code
from kneo.runtimes import create_runtime_registry
from kneo.settings import Settings
from kneo.spec.compiled import CompiledWorkflow
from kneo.spec.compiler import SpecCompiler
from kneo.spec.loader import load_spec_data
from kneo.tools import ToolDefinition
from kneo.tools.defaults import create_tool_registry

STEPS_MODULE = """
CALLS = []
FLAKY = {"left": 0}

def record(text):
    CALLS.append(text)
    return text + "+"

def flaky(text):
    CALLS.append("flaky")
    if FLAKY["left"] > 0:
        FLAKY["left"] -= 1
        raise RuntimeError("transient")
    return "recovered"

def boom(text):
    raise ValueError("always broken")

def away(text):
    from kneo.errors import DatabaseUnavailable, ErrorCode, NotReady, ProviderError

    raise {
        "outage": DatabaseUnavailable("database unavailable: server closed"),
        "not_ready": NotReady("newer schema", code=ErrorCode.schema_too_new),
        "provider": ProviderError("timed out", code=ErrorCode.provider_timeout),
    }[text]
"""


class _Steps:
    CALLS: list[str]
    FLAKY: dict[str, int]


steps = _Steps()


@pytest.fixture(scope="module")
def steps_dir(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("engine_steps")
    (root / "kneo_engine_steps.py").write_text(STEPS_MODULE)
    return root


@pytest.fixture(autouse=True)
def _steps(steps_dir: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(steps_dir)
    # the module as runs load it: from its file, under its code set's namespace (the same
    # bytes, the same namespace, the same module object)
    root = Path(steps_dir).resolve()  # the code root of a spec compiled from here
    module = load_code(collect_code(["kneo_engine_steps"], [root])[0], origin=root).module(
        "kneo_engine_steps"
    )
    module.CALLS.clear()
    module.FLAKY["left"] = 0
    steps.CALLS = module.CALLS
    steps.FLAKY = module.FLAKY


def compile_spec(data: dict[str, Any], tools: Any = None) -> tuple[CompiledWorkflow, Any]:
    registry = tools or create_tool_registry()
    compiler = SpecCompiler(runtime_registry=create_runtime_registry(), tool_registry=registry)
    return compiler.compile(load_spec_data({"version": "v1", **data})), registry


def engine(registry: Any, **kw: Any) -> WorkflowEngine:
    providers = create_provider_registry(Settings())
    return WorkflowEngine(
        providers=providers.get, tools=registry, sleep=kw.pop("sleep", lambda s: None), **kw
    )


def fn_step(step_id: str, ref: str = "kneo_engine_steps:record", **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "kind": "function", "ref": ref, **extra}


def run(
    data: dict[str, Any], state: ExecutionState | None = None, **kw: Any
) -> tuple[Any, MemoryJournal]:
    wf, reg = compile_spec(data)
    journal = MemoryJournal()
    out = engine(reg, **kw).run(wf, state or ExecutionState.new("in"), journal)
    return out, journal


def test_sequential_chains_outputs_and_commits_each_step() -> None:
    out, journal = run({"workflow": {"steps": [fn_step("a"), fn_step("b"), fn_step("c")]}})
    assert isinstance(out, Completed) and out.output_text == "in+++"
    assert [b.kind for b in journal.boundaries] == ["step_completed"] * 3
    assert out.state["order"] == ["a", "b", "c"]


def test_completed_units_are_never_executed_again() -> None:
    out, _ = run({"workflow": {"steps": [fn_step("a"), fn_step("b")]}})
    steps.CALLS.clear()
    again, journal = run(
        {"workflow": {"steps": [fn_step("a"), fn_step("b")]}}, ExecutionState(out.state)
    )
    assert isinstance(again, Completed) and again.output_text == "in++"
    assert steps.CALLS == [] and journal.boundaries == []


def test_a_state_stored_with_every_key_continues_and_is_stored_compact() -> None:
    """States written before the compact form (every key, empty ones too) still continue."""
    old = {
        "format": 1,
        "input_text": "in",
        "units": {"a": {"step_id": "a", "status": "completed", "output": "in+", "attempts": 1}},
        "order": ["a"],
        "agents": {},
        "decisions": {},
        "pending": [],
        "visits": {},
        "routes": [],
        "position": {"unit_key": "b", "step_id": "b"},  # it died while running b
        "output": None,
        "failure": None,
    }
    seen: list[dict[str, str]] = []

    def spy(text: str, context: Any) -> str:
        seen.append(dict(context.outputs))
        return text + "!"

    wf, reg = compile_spec({"workflow": {"steps": [fn_step("a"), fn_step("b")]}})
    journal = MemoryJournal()
    out = engine(reg, functions={"b": spy}).run(wf, ExecutionState(old), journal)
    assert isinstance(out, Completed) and out.output_text == "in+!"
    assert steps.CALLS == [] and seen == [{"a": "in+"}]
    stored = json.loads(journal.boundaries[0].state_text or "")
    assert stored == journal.boundaries[0].state
    assert set(stored) == {"format", "input_text", "units", "order"}
    assert stored["order"] == ["a", "b"] and stored["units"]["a"] == old["units"]["a"]


def test_call_function_passes_a_context_only_to_two_argument_functions() -> None:
    from kneo.engine.functions import call_function

    assert call_function(lambda text: text + "1", 1, "x", None) == "x1"
    with pytest.raises(TypeError):
        call_function(lambda text, ctx: f"{text}{ctx is None}", 2, "x", None)


def test_retry_backs_off_exponentially_and_only_reruns_the_failing_step() -> None:
    steps.FLAKY["left"] = 2
    delays: list[float] = []
    out, journal = run(
        {
            "workflow": {
                "steps": [
                    fn_step("a"),
                    fn_step(
                        "b",
                        "kneo_engine_steps:flaky",
                        on_error="retry",
                        max_retries=3,
                        retry_backoff_seconds=0.5,
                    ),
                ]
            }
        },
        sleep=delays.append,
    )
    assert isinstance(out, Completed) and out.output_text == "recovered"
    assert steps.CALLS == ["in", "flaky", "flaky", "flaky"]
    assert delays == [0.5, 1.0]
    assert out.state["units"]["b"]["attempts"] == 3
    assert [b.kind for b in journal.boundaries].count("step_retry") == 2


@pytest.mark.parametrize(("on_error", "expected"), [("fail", Failed), ("continue", Completed)])
def test_on_error_fail_and_continue(on_error: str, expected: type) -> None:
    out, _ = run(
        {
            "workflow": {
                "steps": [
                    fn_step("a"),
                    fn_step("b", "kneo_engine_steps:boom", on_error=on_error),
                    fn_step("c"),
                ]
            }
        }
    )
    assert isinstance(out, expected)
    if isinstance(out, Failed):
        assert out.error["code"] == "step_error" and out.error["step_id"] == "b"
        assert "always broken" in out.error["message"] and steps.CALLS == ["in"]
    else:
        assert out.output_text == "in++" and out.state["units"]["b"]["status"] == "continued"


@pytest.mark.parametrize(
    ("raised", "passes_through"), [("outage", True), ("not_ready", True), ("provider", False)]
)
def test_a_retryable_error_leaves_the_engine_and_any_other_fails_the_step(
    raised: str, passes_through: bool
) -> None:
    """The engine reads ``retryable`` (the code's row), not the class: a retryable error means
    the run did not fail (its process retries it), even under ``on_error: continue``."""
    spec = {"workflow": {"steps": [fn_step("a", "kneo_engine_steps:away", on_error="continue")]}}
    wf, reg = compile_spec(spec)
    if passes_through:
        with pytest.raises(KneoError) as caught:
            engine(reg).run(wf, ExecutionState.new(raised), MemoryJournal())
        assert caught.value.retryable
    else:
        out = engine(reg).run(wf, ExecutionState.new(raised), MemoryJournal())
        assert isinstance(out, Completed) and out.state["units"]["a"]["status"] == "continued"


def test_unimportable_function_ref_fails_with_stable_code() -> None:
    wf, reg = compile_spec({"workflow": {"steps": [fn_step("a")]}})
    broken = CompiledWorkflow(
        family="sequential",
        name="x",
        spec=wf.spec,
        steps=(
            wf.steps[0].__class__(
                id="a", kind="function", ref="nope.mod:fn", function_ref="nope.mod:fn"
            ),
        ),
    )
    out = engine(reg).run(broken, ExecutionState.new("x"), MemoryJournal())
    assert isinstance(out, Failed) and out.error["code"] == "E_UNKNOWN_FUNCTION_REF"


def test_step_timeout_fails_the_step() -> None:
    import time

    def slow(text: str) -> str:
        time.sleep(0.5)
        return text

    wf, reg = compile_spec({"workflow": {"steps": [fn_step("a", timeout_seconds=0.05)]}})
    out = engine(reg, functions={"kneo_engine_steps:record": slow}).run(
        wf, ExecutionState.new("x"), MemoryJournal()
    )
    assert isinstance(out, Failed) and out.error["code"] == "step_timeout"


GRAPH = {
    "workflow": {
        "type": "graph",
        "start": "a",
        "max_visits": 3,
        "nodes": [fn_step("a"), fn_step("b"), fn_step("done")],
        "edges": [
            {"from": "a", "to": "b"},
            {"from": "b", "to": "done", "condition": {"contains": "+++"}},
            {"from": "b", "to": "a", "default": True},
        ],
    }
}


def test_graph_loops_until_the_condition_matches() -> None:
    out, _ = run(GRAPH)
    assert isinstance(out, Completed) and out.output_text == "in+++++"
    assert out.state["order"] == ["a", "b", "a#2", "b#2", "done"]
    assert out.state["visits"] == {"a": 2, "b": 2, "done": 1}


def test_graph_max_visits_guard() -> None:
    looping = {
        "workflow": {
            **GRAPH["workflow"],
            "nodes": [fn_step("a"), fn_step("b")],
            "edges": [{"from": "a", "to": "b"}, {"from": "b", "to": "a", "default": True}],
        }
    }
    out, _ = run(looping)
    assert isinstance(out, Failed) and out.error["code"] == "graph_max_visits"


def test_graph_registered_predicate_routes() -> None:
    register_predicate("short", lambda text: len(text) < 4)
    data = {
        "workflow": {
            **GRAPH["workflow"],
            "edges": [
                {"from": "a", "to": "done", "condition": {"predicate": "short"}},
                {"from": "a", "to": "b", "default": True},
            ],
        }
    }
    out, _ = run(data)
    assert isinstance(out, Completed) and out.state["order"] == ["a", "done"]


def test_graph_resumes_mid_loop_without_rerunning_nodes() -> None:
    out, _ = run(GRAPH)
    state = out.state
    # Forget everything after the first two units, as if the process died there.
    keep = state["order"][:3]
    partial = {**state, "order": keep, "units": {k: state["units"][k] for k in keep}}
    steps.CALLS.clear()
    again, _ = run(GRAPH, ExecutionState(partial))
    assert isinstance(again, Completed) and again.output_text == "in+++++"
    assert steps.CALLS == ["in+++", "in++++"]  # b#2 and done only


def test_concurrent_fans_out_and_joins_in_declaration_order() -> None:
    out, _ = run({"workflow": {"type": "concurrent", "participants": [fn_step("x"), fn_step("y")]}})
    assert isinstance(out, Completed)
    assert out.output_text == "## x\nin+\n\n## y\nin+"


def test_concurrent_branches_pause_together_and_continue_when_all_answered() -> None:
    humans = {"humans": {"h1": {"prompt": "one?"}, "h2": {"prompt": "two?"}}}
    data = {
        "workflow": {
            "type": "concurrent",
            "participants": [
                fn_step("x"),
                {"id": "p1", "kind": "human", "ref": "h1"},
                {"id": "p2", "kind": "human", "ref": "h2"},
            ],
        },
        "components": humans,
    }
    out, _ = run(data)
    assert isinstance(out, Paused) and [r.step_id for r in out.requests] == ["p1", "p2"]
    state = dict(out.state)
    state["decisions"] = {
        "branch:p1": {"decision": "approved"},
        "branch:p2": {"decision": "edited", "content": "changed"},
    }
    steps.CALLS.clear()
    done, _ = run(data, ExecutionState(state))
    assert isinstance(done, Completed) and steps.CALLS == []
    assert done.output_text == "## x\nin+\n\n## p1\nin\n\n## p2\nchanged"


def test_handoff_round_robin_and_group_chat_rounds() -> None:
    out, _ = run(
        {
            "workflow": {
                "type": "handoff",
                "participants": [fn_step("p"), fn_step("q")],
                "selector": {"type": "round_robin", "max_turns": 3},
            }
        }
    )
    assert isinstance(out, Completed) and out.state["order"] == ["turn1:p", "turn2:q", "turn3:p"]
    chat, _ = run(
        {
            "workflow": {
                "type": "group-chat",
                "rounds": 2,
                "participants": [fn_step("p"), fn_step("q")],
            }
        }
    )
    assert isinstance(chat, Completed) and chat.state["order"] == ["r1:p", "r1:q", "r2:p", "r2:q"]
    assert chat.output_text.startswith("[p] in+\n\n[q] Topic: in")


def test_human_step_pauses_then_decisions_shape_the_output() -> None:
    data = {
        "workflow": {
            "steps": [fn_step("a"), {"id": "h", "kind": "human", "ref": "rev"}, fn_step("b")]
        },
        "components": {
            "humans": {"rev": {"prompt": "ok?", "assignee": "ann", "timeout_seconds": 60}}
        },
    }
    out, _ = run(data)
    assert isinstance(out, Paused)
    request = out.requests[0]
    assert (request.kind, request.prompt, request.assignee) == ("approval", "ok?", "ann")
    assert request.expires_at is not None and request.request_id.startswith("req_")
    for decision, expected in [
        ({"decision": "approved"}, "in++"),
        ({"decision": "edited", "content": "E"}, "E+"),
    ]:
        state = {**out.state, "decisions": {"h": decision}}
        done, _ = run(data, ExecutionState(state))
        assert isinstance(done, Completed) and done.output_text == expected
    rejected, _ = run(
        data, ExecutionState({**out.state, "decisions": {"h": {"decision": "rejected"}}})
    )
    assert isinstance(rejected, Failed) and rejected.error["code"] == "human_rejected"


def test_cancellation_before_a_step_and_superseded_journal() -> None:
    wf, reg = compile_spec({"workflow": {"steps": [fn_step("a"), fn_step("b")]}})
    token = CancellationToken()
    token.cancel()
    out = engine(reg).run(wf, ExecutionState.new("x"), MemoryJournal(), cancellation=token)
    assert isinstance(out, Cancelled) and steps.CALLS == []
    journal = MemoryJournal()
    journal.supersede_with = "cancelled"
    out2 = engine(reg).run(wf, ExecutionState.new("x"), journal)
    assert isinstance(out2, Superseded) and out2.status == "cancelled" and steps.CALLS == ["x"]


def _agent_spec(script: list[dict[str, Any]], **agent: Any) -> dict[str, Any]:
    return {
        "agent": {
            "name": "ag",
            "system_prompt": "be brief",
            "model": {"provider": "dummy", "script": script},
            "tools": {"include": ["lookup"]},
            **agent,
        }
    }


def _lookup_registry(counter: list[dict[str, Any]]) -> Any:
    registry = create_tool_registry(include_examples=False)
    registry.register(
        ToolDefinition(
            name="lookup",
            description="look up",
            parameters={
                "type": "object",
                "properties": {"user_id": {"type": "string"}},
                "required": ["user_id"],
            },
        ),
        lambda args: counter.append(args) or "bob@x",
    )
    return registry


def test_agent_react_calls_tools_and_checkpoints_every_turn() -> None:
    calls: list[dict[str, Any]] = []
    registry = _lookup_registry(calls)
    wf, _ = compile_spec(
        _agent_spec(
            [
                {"tool_calls": [{"name": "lookup", "arguments": {"user_id": "u2"}}]},
                {"text": "found {last_tool_result}"},
            ]
        ),
        registry,
    )
    journal = MemoryJournal()
    out = engine(registry).run(wf, ExecutionState.new("who?"), journal)
    assert isinstance(out, Completed) and out.output_text == "found bob@x"
    assert calls == [{"user_id": "u2"}]
    assert [b.kind for b in journal.boundaries] == [
        "agent_turn",
        "tool_result",
        "agent_turn",
        "step_completed",
    ]
    events = {e.event_type: e.data for e in journal.events}
    assert events["tool_call_started"]["arguments"] == "[REDACTED]"
    assert events["tool_call_completed"]["result"] == "[REDACTED]"


def test_agent_continues_from_its_last_completed_turn() -> None:
    calls: list[dict[str, Any]] = []
    registry = _lookup_registry(calls)
    wf, _ = compile_spec(
        _agent_spec(
            [{"tool_calls": [{"name": "lookup", "arguments": {"user_id": "u2"}}]}, {"text": "done"}]
        ),
        registry,
    )
    journal = MemoryJournal()
    engine(registry).run(wf, ExecutionState.new("who?"), journal)
    after_tool = journal.boundaries[1].state  # the tool result is recorded, nothing after it
    calls.clear()
    providers = create_provider_registry(Settings())
    dummy = providers.get("dummy")
    again = WorkflowEngine(providers=providers.get, tools=registry).run(
        wf, ExecutionState(after_tool), MemoryJournal()
    )
    assert isinstance(again, Completed) and again.output_text == "done"
    assert calls == [] and len(dummy.calls) == 1  # one model turn, no tool re-run


def test_plan_act_keeps_the_plan_in_the_transcript() -> None:
    registry = create_tool_registry(include_examples=False)
    wf, _ = compile_spec(
        {
            "agent": {
                "name": "ag",
                "strategy": {"type": "plan-act"},
                "model": {
                    "provider": "dummy",
                    "script": [{"text": "1. think"}, {"text": "answer"}],
                },
            }
        },
        registry,
    )
    out = engine(registry).run(wf, ExecutionState.new("q"), MemoryJournal())
    assert isinstance(out, Completed) and out.output_text == "answer"
    messages = next(iter(out.state["agents"].values()))["messages"]
    assert [m["role"] for m in messages] == ["user", "system", "assistant", "assistant"]
    assert messages[2]["content"] == "1. think"


def test_denied_tool_never_reaches_the_handler_and_invalid_args_are_refused() -> None:
    calls: list[dict[str, Any]] = []
    registry = _lookup_registry(calls)
    spec = _agent_spec(
        [
            {"tool_calls": [{"name": "lookup", "arguments": {"user_id": 7}}]},
            {"tool_calls": [{"name": "lookup", "arguments": {"user_id": "u"}}]},
            {"text": "gave up"},
        ],
        policies={"tool": {"allow": ["lookup"], "deny": []}},
    )
    wf, _ = compile_spec(spec, registry)
    journal = MemoryJournal()
    out = engine(registry).run(wf, ExecutionState.new("q"), journal)
    assert isinstance(out, Completed) and calls == [{"user_id": "u"}]
    assert "tool_call_invalid" in [e.event_type for e in journal.events]
    denied = {**spec, "agent": {**spec["agent"], "policies": {"tool": {"deny": ["lookup"]}}}}
    wf2, _ = compile_spec(denied, registry)
    journal2 = MemoryJournal()
    calls.clear()
    engine(registry).run(wf2, ExecutionState.new("q"), journal2)
    assert calls == [] and "tool_policy_denied" in [e.event_type for e in journal2.events]


def test_agent_max_iterations() -> None:
    registry = _lookup_registry([])
    wf, _ = compile_spec(
        _agent_spec(
            [{"tool_calls": [{"name": "lookup", "arguments": {"user_id": "u"}}]}],
            strategy={"max_iterations": 2},
        ),
        registry,
    )
    out = engine(registry).run(wf, ExecutionState.new("q"), MemoryJournal())
    assert isinstance(out, Failed) and out.error["code"] == "agent_max_iterations"


def test_next_units_probe_has_no_side_effects() -> None:
    wf, reg = compile_spec({"workflow": {"steps": [fn_step("a"), fn_step("b")]}})
    eng = engine(reg)
    state = ExecutionState.new("x")
    assert [u["step_id"] for u in eng.next_units(wf, state)] == ["a"]
    assert steps.CALLS == [] and state.units == {}
