"""Per-agent limits on remote A2A agents: ``rate_limit`` counts each message sent to the remote
task as a call; ``token_budget`` counts the tokens the remote reports for its task (its
metadata's ``usage``), checked before the next message as for a native agent's next model
call. Against the ``a2a-sdk``-served agent in a second process: a message the limit stops is
never in its log."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kneo import Decision
from tests.remote_agents.conftest import TOKEN, manager_for, remote_log, step_spec


def _spec(url: str, **limits: Any) -> dict[str, Any]:
    spec = step_spec(url)
    remote = spec["components"]["agents"]["colours"]
    remote["name"] = f"colours-{uuid.uuid4().hex[:8]}"  # rate windows are per process
    remote.update(limits)
    return spec


def test_rate_limit_fails_the_message_over_it(project: Path, a2a_agent: Callable[..., str]) -> None:
    url = a2a_agent("--token", TOKEN)
    manager = manager_for(project)
    spec = _spec(url, rate_limit={"calls_per_minute": 1, "on_exceeded": "fail"})
    paused = manager.run_from_spec(input_text="ask for a colour", spec=spec)
    assert paused.status == "paused", paused.to_dict()
    done = manager.resume(paused.continuation_id, Decision(paused.request_id, "provided", "teal"))
    assert done.status == "failed", done.to_dict()
    error = done.metadata["error"]
    assert error["code"] == "agent_rate_limited" and "1 model calls per minute" in error["message"]
    assert [kind for kind, _, _ in remote_log(project)] == ["new"]  # the answer was not sent
    manager.store.close()


def test_reported_tokens_over_per_run_fail_before_the_next_message(
    project: Path, a2a_agent: Callable[..., str]
) -> None:
    url = a2a_agent("--token", TOKEN)
    manager = manager_for(project)
    spec = _spec(url, token_budget={"per_run": 10})
    paused = manager.run_from_spec(input_text="ask costly", spec=spec)
    assert paused.status == "paused", paused.to_dict()
    usage = manager.get_run(paused.run_id)["usage"]
    assert (usage["input_tokens"], usage["output_tokens"]) == (30, 10)  # as the remote said
    done = manager.resume(paused.continuation_id, Decision(paused.request_id, "provided", "teal"))
    assert done.status == "failed", done.to_dict()
    error = done.metadata["error"]
    assert error["code"] == "budget_exceeded" and "token_budget.per_run" in error["message"]
    assert [kind for kind, _, _ in remote_log(project)] == ["new"]
    manager.store.close()


def test_a_budget_pause_lets_a_person_raise_it_and_the_task_goes_on(
    project: Path, a2a_agent: Callable[..., str]
) -> None:
    url = a2a_agent("--token", TOKEN)
    manager = manager_for(project)
    spec = _spec(url, token_budget={"per_run": 10, "on_exceeded": "pause"})
    asked = manager.run_from_spec(input_text="ask costly", spec=spec)
    budget = manager.resume(asked.continuation_id, Decision(asked.request_id, "provided", "teal"))
    assert budget.status == "paused", budget.to_dict()
    request = budget.metadata["pending_human_request"]
    assert request["kind"] == "budget" and request["context"]["used"] == 40
    raised = json.dumps({"limit": 1000})
    done = manager.resume(budget.continuation_id, Decision(budget.request_id, "provided", raised))
    assert done.status == "succeeded", done.to_dict()
    assert "report in teal" in str(done.output_text)
    assert [kind for kind, _, _ in remote_log(project)] == ["new", "answer"]
    usage = manager.get_run(done.run_id)["usage"]
    assert (usage["input_tokens"], usage["output_tokens"]) >= (60, 20)  # the task's total
    manager.store.close()
