"""Per-agent limits on bridged agents: ``token_budget`` and ``rate_limit`` guard the model
calls an OpenAI Agents SDK ``Agent`` or a LangGraph graph makes, as they guard a native
agent's (the same checks, :mod:`kneo.engine.agent_limits`): a budget failing the step or
pausing for a person (whose approval lets the framework go on, replaying what it did), a
rate limit failing the step at the limit. Against the project's OpenAI-compatible test
server: the calls not made are counted there."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kneo import Decision
from tests.fake_models.server import FakeModels, serve

pytest.importorskip("agents")
pytest.importorskip("langgraph")

from tests.remote_agents import test_bridge_langgraph as graphs
from tests.remote_agents import test_bridge_openai_agents as sdk

TOOL_THEN_ANSWER = [
    {"tool_calls": [{"name": "word_count", "arguments": {"text": "a b c"}}]},
    {"text": "{last_tool_result} words"},
]


@pytest.fixture()
def fake() -> Iterator[FakeModels]:
    with serve() as models:
        yield models


#: per million tokens: what the bridged models' calls cost (``prices:`` of the project)
PRICES = {"input": "2", "output": "8"}


def _project(root: Path, openai_agents: bool) -> Path:
    """The project the framework's own tests use: its secret declared, its agent's module, a
    price table for both frameworks' models."""
    key, module = ("bridge_key", "bridged_agent") if openai_agents else ("graph_key", "graph_agent")
    source = (sdk if openai_agents else graphs).MODULE
    (root / ".kneo").mkdir()
    models = {"bridge-model": PRICES, "graph-model": PRICES}
    config = {
        "version": "v1",
        "secrets": {"extra": {key: key.upper()}},
        "prices": {"currency": "USD", "providers": {"openai-compatible": models}},
    }
    (root / ".kneo" / "config.yaml").write_text(json.dumps(config))
    (root / f"{module}.py").write_text(source.format(calls=str(root / "calls.txt")))
    return root


@pytest.fixture(params=["openai-agents", "langgraph"])
def bridge(request: pytest.FixtureRequest, tmp_path: Path, fake: FakeModels) -> Any:
    """One framework's bridged agent: its module written into a project, its ``run(**agent)``
    (a fresh agent name each time: rate windows are per process) and its model's name."""
    framework = sdk if request.param == "openai-agents" else graphs
    project = _project(tmp_path, framework is sdk)
    model = "bridge-model" if framework is sdk else "graph-model"
    fake.script(model, TOOL_THEN_ANSWER)
    manager = framework._manager(project)

    class Bridge:
        def __init__(self) -> None:
            self.manager = manager
            self.model = model

        def run(self, **agent: Any) -> Any:
            path = framework._spec(project, fake, **agent)
            text = path.read_text().replace(
                '"name": "counter"' if framework is sdk else '"name": "grapher"',
                f'"name": "limited-{uuid.uuid4().hex[:8]}"',
            )
            path.write_text(text)
            return manager.run_from_spec(input_text="count a b c", spec_path=path)

    yield Bridge()
    manager.store.close()


def test_a_bridged_agents_calls_cost_what_the_price_table_says(bridge: Any) -> None:
    """Each model call the framework makes is priced like a native agent's: the run's cost is
    the table's price of the usage the server reported, call by call."""
    result = bridge.run()
    assert result.status == "succeeded", result
    usage = bridge.manager.get_run(result.run_id)["usage"]
    events = bridge.manager.store.runs.list_trace(result.run_id).items
    turns = [e.payload for e in events if e.event_type == "model_turn_completed"]
    assert len(turns) == 2 and all(t["bridge"] for t in turns)
    expected = [
        (t["usage"]["input_tokens"] * 2 + t["usage"]["output_tokens"] * 8) / 1e6 for t in turns
    ]
    assert [t["cost"] for t in turns] == pytest.approx(expected)
    assert usage["cost"] == pytest.approx(sum(expected))
    assert (usage["currency"], usage["unpriced_calls"]) == ("USD", 0)


def test_per_run_budget_fails_the_step_before_the_next_model_call(
    bridge: Any, fake: FakeModels
) -> None:
    result = bridge.run(token_budget={"per_run": 1})
    assert result.status == "failed", result.to_dict()
    error = result.metadata["error"]
    assert error["code"] == "budget_exceeded" and "token_budget.per_run" in error["message"]
    assert fake.hits(bridge.model) == 1  # the second call was never sent


def test_per_run_budget_pauses_and_an_approval_goes_on(bridge: Any, fake: FakeModels) -> None:
    paused = bridge.run(token_budget={"per_run": 1, "on_exceeded": "pause"})
    assert paused.status == "paused", paused.to_dict()
    request = paused.metadata["pending_human_request"]
    assert request["kind"] == "budget" and request["context"]["scope"] == "agent"
    assert fake.hits(bridge.model) == 1
    done = bridge.manager.resume(
        paused.continuation_id,
        Decision(paused.request_id, "provided", json.dumps({"limit": 100000})),
    )
    assert done.status == "succeeded", done.to_dict()
    assert done.output_text == "3 words"
    assert fake.hits(bridge.model) == 2  # the first turn was replayed, not sent again


def test_per_call_budget_fails_on_a_reply_over_it(bridge: Any, fake: FakeModels) -> None:
    result = bridge.run(token_budget={"per_call": 1})
    assert result.status == "failed", result.to_dict()
    assert "token_budget.per_call" in result.metadata["error"]["message"]
    assert fake.hits(bridge.model) == 1


def test_a_rejected_budget_stops_the_run(bridge: Any) -> None:
    paused = bridge.run(token_budget={"per_call": 1, "on_exceeded": "pause"})
    assert paused.status == "paused", paused.to_dict()
    assert paused.metadata["pending_human_request"]["context"]["scope"] == "call"
    done = bridge.manager.resume(
        paused.continuation_id, Decision(paused.request_id, "rejected", "too costly")
    )
    assert done.status == "failed" and "too costly" in done.metadata["error"]["message"]


def test_rate_limit_fails_the_call_over_it(bridge: Any, fake: FakeModels) -> None:
    result = bridge.run(rate_limit={"calls_per_minute": 1, "on_exceeded": "fail"})
    assert result.status == "failed", result.to_dict()
    error = result.metadata["error"]
    assert error["code"] == "agent_rate_limited" and "1 model calls per minute" in error["message"]
    assert fake.hits(bridge.model) == 1
