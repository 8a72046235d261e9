"""Per-agent limits: ``token_budget`` (per call, per run) failing or pausing as the spec says
(a person raises the limit or stops the run), and ``rate_limit`` (calls per minute, per
agent or provider) failing the step at the limit."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from kneo import Decision
from kneo.platform import create_platform
from kneo.settings import Settings
from kneo.spec.project import ProjectContext

TOOL = {
    "implementation": "tests.remote_agents.stream_tools:word_count",
    "parameters": {
        "type": "object",
        "properties": {"text": {"type": "string"}},
        "required": ["text"],
    },
}


@pytest.fixture()
def manager(tmp_path: Path) -> Any:
    (tmp_path / ".kneo").mkdir()
    settings = Settings.from_env({"KNEO_SERV_DATABASE_URL": f"sqlite:///{tmp_path / 'k.db'}"})
    found = create_platform(settings, ProjectContext.discover(cwd=tmp_path, settings=settings))
    yield found
    found.store.close()


def _spec(**limits: Any) -> dict[str, Any]:
    return {
        "version": "v1",
        "agent": {
            "name": f"limited-{uuid.uuid4().hex[:8]}",  # rate windows are per process
            "tools": ["word_count"],
            "model": {
                "provider": "dummy",
                "script": [
                    {"tool_calls": [{"name": "word_count", "arguments": {"text": "a b c"}}]},
                    {"text": "{last_tool_result} words"},
                ],
            },
            **limits,
        },
        "components": {"tools": {"word_count": TOOL}},
    }


def test_per_run_budget_fails_the_step(manager: Any) -> None:
    result = manager.run_from_spec(input_text="go", spec=_spec(token_budget={"per_run": 1}))
    assert result.status == "failed"
    error = result.metadata["error"]
    assert error["code"] == "budget_exceeded" and "token_budget.per_run" in error["message"]
    assert manager.get_run(result.run_id)["usage"]["model_calls"] == 1  # refused before #2


def test_per_run_budget_pauses_and_an_approval_raises_it(manager: Any) -> None:
    spec = _spec(token_budget={"per_run": 1, "on_exceeded": "pause"})
    paused = manager.run_from_spec(input_text="go", spec=spec)
    assert paused.status == "paused", paused.to_dict()
    request = paused.metadata["pending_human_request"]
    assert request["kind"] == "budget" and request["context"]["scope"] == "agent"
    done = manager.resume(paused.continuation_id, Decision(paused.request_id, "approved"))
    assert done.status == "succeeded" and done.output_text == "3 words"


def test_per_run_budget_pause_then_reject_stops(manager: Any) -> None:
    spec = _spec(token_budget={"per_run": 1, "on_exceeded": "pause"})
    paused = manager.run_from_spec(input_text="go", spec=spec)
    done = manager.resume(paused.continuation_id, Decision(paused.request_id, "rejected", "no"))
    assert done.status == "failed"
    assert done.metadata["error"]["code"] == "budget_exceeded"


def test_per_call_budget_fails_or_pauses(manager: Any) -> None:
    failed = manager.run_from_spec(input_text="go", spec=_spec(token_budget={"per_call": 1}))
    assert failed.status == "failed"
    assert "token_budget.per_call" in failed.metadata["error"]["message"]
    spec = _spec(token_budget={"per_call": 2, "on_exceeded": "pause"})
    paused = manager.run_from_spec(input_text="count the words of this text", spec=spec)
    assert paused.status == "paused"
    assert paused.metadata["pending_human_request"]["context"]["scope"] == "call"
    done = manager.resume(paused.continuation_id, Decision(paused.request_id, "approved"))
    assert done.status == "succeeded" and done.output_text == "3 words"


def test_rate_limit_fails_at_the_limit(manager: Any) -> None:
    spec = _spec(rate_limit={"calls_per_minute": 1, "on_exceeded": "fail"})
    result = manager.run_from_spec(input_text="go", spec=spec)
    assert result.status == "failed"
    assert result.metadata["error"]["code"] == "agent_rate_limited"
    roomy = _spec(rate_limit={"calls_per_minute": 5, "scope": "provider"})
    assert manager.run_from_spec(input_text="go", spec=roomy).status == "succeeded"


def test_a_budget_without_a_limit_is_a_schema_error(manager: Any) -> None:
    from kneo.errors import SpecError

    with pytest.raises(SpecError) as refused:
        manager.run_from_spec(input_text="go", spec=_spec(token_budget={}))
    assert "token_budget" in str(refused.value.to_dict())
