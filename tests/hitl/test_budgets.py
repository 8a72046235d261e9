"""Run budgets (issue 33): ``budgets:`` in ``environments/<env>.yaml`` caps what one run spends.

Every journey runs ``kneo`` in its own processes against one project, as a user would: the
run, then its human task decided from another process. The ``dummy`` provider reports tokens
(its usage is the words in and out), so token limits are real counts too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from kneo.errors import SpecError
from kneo.policy.environment import (
    BudgetsPolicy,
    EnvironmentPolicy,
    load_environment_file,
    merge_stricter,
)
from tests.hitl.conftest import counter, finish, start_cli

TOOLS = """
from examples.hitl_counter import count


def send(args):
    count("send:" + str(args.get("to")))
    return "sent to " + str(args.get("to"))
"""
SEND = {
    "description": "Send a message.",
    "implementation": "budtools:send",
    "parameters": {
        "type": "object",
        "properties": {"to": {"type": "string"}},
        "required": ["to"],
        "additionalProperties": False,
    },
}
TWO_SENDS = {
    "tool_calls": [
        {"name": "send", "arguments": {"to": "ann"}},
        {"name": "send", "arguments": {"to": "bob"}},
    ]
}


def _project(project: Path, budgets: dict[str, Any], script: list[dict[str, Any]]) -> str:
    (project / "budtools.py").write_text(TOOLS)
    (project / "environments").mkdir(exist_ok=True)
    (project / "environments" / "dev.yaml").write_text(
        yaml.safe_dump({"version": "v1", "budgets": budgets})
    )
    spec = {
        "version": "v1",
        "agent": {
            "name": "worker",
            "system_prompt": "Do the work with the tools.",
            "tools": ["send"],
            "policies": {"tool": {"allow": ["send"]}},
            "model": {"provider": "dummy", "name": "budget", "script": script},
        },
        "workflow": {
            "type": "sequential",
            "name": "budgeted",
            "steps": [{"id": "work", "kind": "agent", "ref": "worker"}],
        },
        "components": {"tools": {"send": SEND}},
    }
    (project / "budget.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return "budget.yaml"


def _kneo(project: Path, *args: str) -> tuple[int, Any, str]:
    return finish(start_cli(project, *args))


def _task(project: Path, continuation: str) -> dict[str, Any]:
    code, task, err = _kneo(project, "human", "get", continuation, "--json")
    assert code == 0, err
    [request] = task["requests"]
    assert request["kind"] == "budget"
    return dict(request)


def _events(project: Path, run_id: str, kind: str) -> list[dict[str, Any]]:
    code, trace, err = _kneo(project, "runs", "trace", run_id, "--json")
    assert code == 0, err
    return [e["payload"] for e in trace["events"] if e["event_type"] == kind]


def test_a_run_at_its_model_call_limit_fails_with_budget_exceeded(project: Path) -> None:
    spec = _project(
        project,
        {"max_model_calls": 1, "on_exceeded": "fail"},
        [TWO_SENDS, {"text": "done: {last_tool_result}"}],
    )
    code, out, err = _kneo(project, "run", spec, "-i", "go", "--json")
    assert out["status"] == "failed", (code, out, err)
    error = out["metadata"]["error"] if "error" not in out else out["error"]
    assert error["code"] == "budget_exceeded"
    assert "1 of the 1 model calls" in error["message"] and "dev" in error["message"]
    assert counter(project) == ["send:ann", "send:bob"]  # the turn the budget paid for ran
    _, view, _ = _kneo(project, "runs", "get", out["run_id"], "--json")
    assert view["usage"]["model_calls"] == 1 and view["usage"]["tool_calls"] == 2
    [reached] = _events(project, out["run_id"], "budget_reached")
    reached.pop("at")
    assert reached == {"budget": "model_calls", "used": 1, "limit": 1, "on_exceeded": "fail"}


def test_a_pause_at_the_limit_continues_with_the_limit_raised(project: Path) -> None:
    spec = _project(
        project,
        {"max_model_calls": 1},  # on_exceeded: pause is the default
        [TWO_SENDS, {"text": "done: {last_tool_result}"}],
    )
    code, paused, err = _kneo(project, "run", spec, "-i", "go", "--json")
    assert code == 0 and paused["status"] == "paused", err
    request = _task(project, paused["continuation_id"])
    assert request["context"] == {
        "budget": "model_calls",
        "used": 1,
        "limit": 1,
        "raise_to": 2,
        "environment": "dev",
    }
    assert request["decisions"] == ["approved", "provided", "rejected"]
    code, out, err = _kneo(
        project,
        "human",
        "resume",
        paused["continuation_id"],
        "--request-id",
        request["request_id"],
        "--approve",
        "--json",
    )
    assert code == 0 and out["status"] == "succeeded", err
    assert out["output_text"] == "done: sent to bob"
    assert counter(project) == ["send:ann", "send:bob"]  # nothing ran twice


def test_a_person_sets_the_new_limit_or_stops_the_run(project: Path) -> None:
    spec = _project(
        project,
        {"max_tool_calls": 1},
        [TWO_SENDS, TWO_SENDS, {"text": "done: {last_tool_result}"}],
    )
    code, paused, err = _kneo(project, "run", spec, "-i", "go", "--json")
    assert code == 0 and paused["status"] == "paused", err
    assert counter(project) == ["send:ann"]  # the turn's second call waits for the answer
    cont = paused["continuation_id"]
    request = _task(project, cont)
    assert request["context"]["budget"] == "tool_calls" and request["context"]["used"] == 1
    rid = request["request_id"]

    # a limit that is no raise is refused, naming the field; the task stays pending
    code, refused, _ = _kneo(
        project, "human", "resume", cont, "--request-id", rid, "--provide", '{"limit": 1}', "--json"
    )
    assert code != 0 and refused["error"] == "invalid_human_input"
    assert refused["path"] == "limit"

    code, out, err = _kneo(
        project, "human", "resume", cont, "--request-id", rid, "--provide", '{"limit": 3}', "--json"
    )
    assert code == 0 and out["status"] == "paused", err
    assert counter(project) == ["send:ann", "send:bob", "send:ann"]  # up to the new limit
    again = _task(project, out["continuation_id"])
    assert again["context"]["limit"] == 3 and again["context"]["raise_to"] == 4
    code, out, err = _kneo(
        project,
        "human",
        "resume",
        out["continuation_id"],
        "--request-id",
        again["request_id"],
        "--reject",
        "--comment",
        "enough",
        "--json",
    )
    assert out["status"] == "failed", (code, out, err)
    error = out["metadata"]["error"] if "error" not in out else out["error"]
    assert error["code"] == "budget_exceeded" and "enough" in error["message"]
    assert counter(project) == ["send:ann", "send:bob", "send:ann"]


def test_a_token_limit_counts_what_the_provider_reported(project: Path) -> None:
    spec = _project(
        project,
        {"max_tokens": 1, "on_exceeded": "fail"},
        [TWO_SENDS, {"text": "done"}],
    )
    _, out, err = _kneo(project, "run", spec, "-i", "go", "--json")
    assert out["status"] == "failed", err
    _, view, _ = _kneo(project, "runs", "get", out["run_id"], "--json")
    spent = view["usage"]["input_tokens"] + view["usage"]["output_tokens"]
    assert spent >= 1
    error = out["metadata"]["error"] if "error" not in out else out["error"]
    assert error["code"] == "budget_exceeded" and f"{spent} of the 1 tokens" in error["message"]


def test_without_budgets_nothing_is_limited_and_usage_is_counted(project: Path) -> None:
    spec = _project(project, {}, [TWO_SENDS, TWO_SENDS, {"text": "done"}])
    code, out, err = _kneo(project, "run", spec, "-i", "go", "--json")
    assert code == 0 and out["status"] == "succeeded", err
    _, view, _ = _kneo(project, "runs", "get", out["run_id"], "--json")
    usage = view["usage"]
    assert (usage["model_calls"], usage["tool_calls"]) == (3, 4)
    assert usage["steps"] == [
        {"step_id": "work", **{k: v for k, v in usage.items() if k != "steps"}}
    ]
    table, _ = start_cli(project, "runs", "get", out["run_id"]).communicate(timeout=60)
    assert "3 model calls, 4 tool calls" in table  # the table view says it in words


# --------------------------------------------------------------------------- the policy


def test_the_stricter_budget_wins_when_policies_merge() -> None:
    a = EnvironmentPolicy(
        budgets=BudgetsPolicy(max_model_calls=10, max_tokens=5000, on_exceeded="pause")
    )
    b = EnvironmentPolicy(budgets=BudgetsPolicy(max_model_calls=20, max_tool_calls=7))
    for merged in (merge_stricter(a, b), merge_stricter(b, a)):
        assert merged.budgets.limits == {"model_calls": 10, "tool_calls": 7, "tokens": 5000}
        assert merged.budgets.on_exceeded == "pause"
    failing = EnvironmentPolicy(budgets=BudgetsPolicy(on_exceeded="fail"))
    assert merge_stricter(a, failing).budgets.on_exceeded == "fail"
    assert merge_stricter(failing, a).budgets.on_exceeded == "fail"


@pytest.mark.parametrize(
    ("budgets", "field"),
    [
        ({"max_tokens": 0}, "budgets.max_tokens"),
        ({"max_model_calls": "lots"}, "budgets.max_model_calls"),
        ({"on_exceeded": "shrug"}, "budgets.on_exceeded"),
        ({"max_calls": 3}, "budgets.max_calls"),
    ],
)
def test_a_bad_budget_names_its_field(tmp_path: Path, budgets: dict[str, Any], field: str) -> None:
    path = tmp_path / "prod.yaml"
    path.write_text(yaml.safe_dump({"version": "v1", "budgets": budgets}))
    with pytest.raises(SpecError) as caught:
        load_environment_file(path)
    assert caught.value.code == "E_SCHEMA"
    assert f"prod.yaml:2: {field}" in str(caught.value)
