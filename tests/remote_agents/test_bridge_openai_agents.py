"""An OpenAI Agents SDK ``Agent`` as a bridged agent (``agent.implementation``), run by the
SDK's own ``Runner`` against the project's OpenAI-compatible test server: its model is the
spec's, its tool calls go through Kneo's tool guard (a denied tool never runs, an approval
pauses durably and the resume in another manager runs the tool once), its turns are
checkpointed and replayed (no model call is sent twice), its usage is recorded."""

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
from tests.fake_models.server import INPUT_PER_MESSAGE, OUTPUT_PER_REPLY, FakeModels, serve

pytest.importorskip("agents")

MODULE = '''
from pathlib import Path

from agents import Agent, function_tool

CALLS = Path({calls!r})


@function_tool
def word_count(text: str) -> str:
    """Count the words of a text."""
    with CALLS.open("a") as out:
        out.write("word_count\\n")
    return str(len(text.split()))


@function_tool
def send_report(to: str) -> str:
    """Send the report to someone."""
    with CALLS.open("a") as out:
        out.write("send_report\\n")
    return f"sent to {{to}}"


def build() -> Agent:
    return Agent(
        name="counter",
        instructions="Count words, then report.",
        tools=[word_count, send_report],
    )
'''
KEY = "sk-bridge-planted-key-5521"


@pytest.fixture()
def fake() -> Iterator[FakeModels]:
    with serve() as models:
        yield models


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    (tmp_path / ".kneo").mkdir()
    config = {"version": "v1", "secrets": {"extra": {"bridge_key": "BRIDGE_KEY"}}}
    (tmp_path / ".kneo" / "config.yaml").write_text(json.dumps(config))
    (tmp_path / "bridged_agent.py").write_text(MODULE.format(calls=str(tmp_path / "calls.txt")))
    return tmp_path


def _manager(project: Path) -> Any:
    settings = Settings.from_env({"BRIDGE_KEY": KEY})
    return create_platform(settings, ProjectContext.discover(cwd=project, settings=settings))


def _spec(project: Path, fake: FakeModels, **agent: Any) -> Path:
    spec = {
        "version": "v1",
        "agent": {
            "name": "counter",
            "implementation": "bridged_agent:build",
            "model": {
                "provider": "openai-compatible",
                "name": "bridge-model",
                "base_url": fake.url + "/v1",
                "api_key_env": "bridge_key",
            },
            **agent,
        },
    }
    path = project / "bridged.json"
    path.write_text(json.dumps(spec))
    return path


def _calls(project: Path) -> list[str]:
    path = project / "calls.txt"
    return path.read_text().split() if path.exists() else []


def test_the_sdk_agent_runs_with_the_specs_model_and_guarded_tools(
    project: Path, fake: FakeModels
) -> None:
    fake.script(
        "bridge-model",
        [
            {"tool_calls": [{"name": "word_count", "arguments": {"text": "a b c"}}]},
            {"text": "There are {last_tool_result} words."},
        ],
    )
    manager = _manager(project)
    result = manager.run_from_spec(input_text="count a b c", spec_path=_spec(project, fake))
    assert result.status == "succeeded", result.to_dict()
    assert result.output_text == "There are 3 words."
    assert _calls(project) == ["word_count"]
    seen = fake.requests("bridge-model")
    assert len(seen) == 2 and all(s.key == KEY for s in seen)
    assert seen[0].system == "Count words, then report."
    trace = manager.trace(result.run_id)["events"]
    kinds = [e["event_type"] for e in trace]
    assert kinds.count("model_turn_completed") == 2
    assert "tool_call_started" in kinds and "tool_call_completed" in kinds
    usage = manager.get_run(result.run_id)["usage"]
    assert usage["model_calls"] == 2 and usage["tool_calls"] == 1
    assert usage["output_tokens"] == 2 * OUTPUT_PER_REPLY
    assert usage["input_tokens"] >= 2 * INPUT_PER_MESSAGE
    assert KEY not in json.dumps([trace, manager.checkpoints(result.run_id)], default=str)
    manager.store.close()


def test_a_denied_tool_never_runs(project: Path, fake: FakeModels) -> None:
    fake.script(
        "bridge-model",
        [
            {"tool_calls": [{"name": "send_report", "arguments": {"to": "ops"}}]},
            {"text": "result: {last_tool_result}"},
        ],
    )
    manager = _manager(project)
    spec = _spec(project, fake, policies={"tool": {"deny": ["send_report"]}})
    result = manager.run_from_spec(input_text="report", spec_path=spec)
    assert result.status == "succeeded", result.to_dict()
    assert "denied by policy" in str(result.output_text)
    assert _calls(project) == []
    manager.store.close()


def test_an_approval_pauses_durably_and_the_resume_replays_without_calling_twice(
    project: Path, fake: FakeModels
) -> None:
    fake.script(
        "bridge-model",
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
    request = paused.metadata["pending_human_request"]
    assert request["kind"] == "tool_approval"
    assert request["context"]["tool_name"] == "send_report"
    assert request["context"]["arguments"] == {"to": "ops"}
    assert _calls(project) == ["word_count"]
    assert fake.hits("bridge-model") == 2
    manager.store.close()
    other = _manager(project)  # another process's manager: only the durable state carries
    done = other.resume(paused.continuation_id, Decision(paused.request_id, "approved"))
    assert done.status == "succeeded", done.to_dict()
    assert done.output_text == "done: sent to ops"
    assert _calls(project) == ["word_count", "send_report"]  # word_count replayed, not re-run
    assert fake.hits("bridge-model") == 3  # the two recorded turns were replayed
    other.store.close()


def test_a_rejected_call_is_reported_to_the_agent(project: Path, fake: FakeModels) -> None:
    fake.script(
        "bridge-model",
        [
            {"tool_calls": [{"name": "send_report", "arguments": {"to": "ops"}}]},
            {"text": "got: {last_tool_result}"},
        ],
    )
    spec = _spec(project, fake, approval_required=["send_report"])
    manager = _manager(project)
    paused = manager.run_from_spec(input_text="report", spec_path=spec)
    done = manager.resume(
        paused.continuation_id, Decision(paused.request_id, "rejected", "not today")
    )
    assert done.status == "succeeded", done.to_dict()
    assert "rejected by a reviewer: not today" in str(done.output_text)
    assert _calls(project) == []
    manager.store.close()
