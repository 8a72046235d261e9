"""Every tool call of a model turn, on every provider (issue 33).

The same journeys run against each provider: ``dummy`` in-process, and each real provider's
official SDK pointed at a local server speaking that provider's wire format
(``tests/fake_models``). A journey is a spec whose model turn asks for two calls at once:

* both run, in the model's order, each answered under its own id before the next request;
* two approvals of one turn are one human task, decided one by one or together, in other
  processes; nothing of the turn runs before both are decided, then each call runs once;
* ``kill -9`` after the first call's result is committed and before the second call does its
  work: continued in another process, each call has run exactly once;
* two ``ask_question`` calls in one turn are both asked, in one task.

Where a provider's wire format shows (a turn of two calls and its results; the history a
crashed run is continued from) every kit runs. The human journeys differ from those only in
Kneo's own pause between the calls, so they run on ``dummy`` and one served kit whose turn is
content blocks (``anthropic``): the other formats' history after a pause is what the crash
journey already sends them.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.hitl.conftest import counter, finish, start_cli
from tests.hitl.model_kits import KITS, ModelKit

TOOLS_MODULE = """
from examples.hitl_counter import count
from parhooks import kill_this_process_once


def send(args):
    count("send:" + str(args.get("to")))
    return "sent to " + str(args.get("to"))


def first(args):
    count("first")
    return "first done"


def crash_once(args):
    kill_this_process_once()
    count("second")
    return "second done"
"""
#: kept out of the tools' module, as ``examples.hitl_counter`` is: the linter refuses a tool
#: module that imports ``os`` itself
HOOKS_MODULE = '''
import os, signal
from pathlib import Path


def kill_this_process_once():
    """SIGKILL the process the first time (before the caller does anything), never again."""
    marker = Path(os.environ["KNEO_HITL_COUNTER"]).with_suffix(".crashed")
    if not marker.exists():
        marker.write_text("crashed")
        os.kill(os.getpid(), signal.SIGKILL)
'''

SEND = {
    "description": "Send a message.",
    "implementation": "partools:send",
    "parameters": {
        "type": "object",
        "properties": {"to": {"type": "string"}},
        "required": ["to"],
        "additionalProperties": False,
    },
}
NO_ARGS = {"type": "object", "properties": {}, "additionalProperties": False}


def _spec(
    project: Path,
    kit: ModelKit,
    name: str,
    script: list[dict[str, Any]],
    tools: dict[str, Any],
    **agent: Any,
) -> str:
    (project / "partools.py").write_text(TOOLS_MODULE)
    (project / "parhooks.py").write_text(HOOKS_MODULE)
    spec = {
        "version": "v1",
        "agent": {
            "name": "worker",
            "system_prompt": "Do the work with the tools.",
            "tools": list(tools) or ["ask_question"],
            "policies": {"tool": {"allow": [*tools, "ask_question"]}},
            "runtime_preferences": {"preferred_mode": "native", "allowed_modes": ["native"]},
            "model": kit.model(name, script),
            **agent,
        },
        "workflow": {
            "type": "sequential",
            "name": name,
            "steps": [{"id": "work", "kind": "agent", "ref": "worker"}],
        },
        "components": {"tools": tools},
    }
    path = project / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path.name


def _calls(name: str, *arguments: dict[str, Any]) -> dict[str, Any]:
    return {"tool_calls": [{"name": name, "arguments": a} for a in arguments]}


def _both(*turns: dict[str, Any]) -> dict[str, Any]:
    """One turn holding the calls of ``turns``, in order."""
    return {"tool_calls": [c for t in turns for c in t["tool_calls"]]}


#: the kits of the human journeys (see the module's docstring)
PAUSE_KITS = [k for k in KITS if k.name in ("dummy", "anthropic")]


@pytest.fixture(params=KITS, ids=lambda k: k.name)
def kit(request: pytest.FixtureRequest, project: Path) -> Any:
    kit: ModelKit = request.param
    with kit.started(project) as ready:
        yield ready


def _run(project: Path, kit: ModelKit, spec: str, *args: str) -> tuple[int, Any, str]:
    return finish(start_cli(project, *args, env=kit.env()))


def test_two_calls_in_one_turn_both_run_and_are_answered(project: Path, kit: ModelKit) -> None:
    spec = _spec(
        project,
        kit,
        "two_calls",
        [_calls("send", {"to": "ann"}, {"to": "bob"}), {"text": "done: {last_tool_result}"}],
        {"send": SEND},
    )
    code, out, err = _run(project, kit, spec, "run", spec, "-i", "go", "--json")
    assert code == 0, err
    assert out["status"] == "succeeded" and out["output_text"] == "done: sent to bob"
    assert counter(project) == ["send:ann", "send:bob"]  # in the model's order, once each
    second = kit.requests(project)[1]  # what the model was sent after the tool calls
    assert second.results == [
        ("sent to ann", second.call_ids[0]),
        ("sent to bob", second.call_ids[1]),
    ]


@pytest.mark.parametrize("kit", PAUSE_KITS, ids=lambda k: k.name, indirect=True)
def test_two_approvals_in_one_turn_are_one_task_decided_elsewhere(
    project: Path, kit: ModelKit
) -> None:
    spec = _spec(
        project,
        kit,
        "two_approvals",
        [_calls("send", {"to": "ann"}, {"to": "bob"}), {"text": "done: {last_tool_result}"}],
        {"send": SEND},
        approval_required=["send"],
    )
    code, paused, err = _run(project, kit, spec, "run", spec, "-i", "go", "--json")
    assert code == 0 and paused["status"] == "paused", err
    cont = paused["continuation_id"]
    code, task, err = _run(project, kit, spec, "human", "get", cont, "--json")
    assert code == 0, err
    requests = task["requests"]
    assert [r["kind"] for r in requests] == ["tool_approval", "tool_approval"]
    assert [r["context"]["arguments"]["to"] for r in requests] == ["ann", "bob"]
    first, second = (r["request_id"] for r in requests)

    # one by one, each in its own process: the run waits for both, nothing runs before
    code, out, err = _run(
        project, kit, spec, "human", "resume", cont, "--request-id", first, "--approve", "--json"
    )
    assert code == 0 and out["status"] == "paused", err
    assert counter(project) == []
    code, out, err = _run(
        project,
        kit,
        spec,
        "human",
        "resume",
        cont,
        "--request-id",
        second,
        "--edit",
        json.dumps({"to": "carol"}),
        "--json",
    )
    assert code == 0 and out["status"] == "succeeded", err
    assert out["output_text"] == "done: sent to carol"
    assert counter(project) == ["send:ann", "send:carol"]
    assert len(kit.requests(project)) == 2  # the first turn was never sent again


def test_two_approvals_decided_together(project: Path) -> None:
    """The CLI's several ``--request-id`` (the provider plays no part: ``dummy`` only)."""
    kit = ModelKit()
    spec = _spec(
        project,
        kit,
        "together",
        [_calls("send", {"to": "ann"}, {"to": "bob"}), {"text": "done: {last_tool_result}"}],
        {"send": SEND},
        approval_required=["send"],
    )
    code, paused, err = _run(project, kit, spec, "run", spec, "-i", "go", "--json")
    assert code == 0, err
    cont = paused["continuation_id"]
    _, task, _ = _run(project, kit, spec, "human", "get", cont, "--json")
    ids = [r["request_id"] for r in task["requests"]]
    flags = [arg for rid in ids for arg in ("--request-id", rid)]
    code, out, err = _run(
        project, kit, spec, "human", "resume", cont, *flags, "--approve", "--json"
    )
    assert code == 0 and out["status"] == "succeeded", err
    assert counter(project) == ["send:ann", "send:bob"]


def test_kill_between_the_first_and_second_call_runs_each_once(
    project: Path, kit: ModelKit
) -> None:
    tools = {
        "first": {
            "description": "First.",
            "implementation": "partools:first",
            "parameters": NO_ARGS,
        },
        "second": {
            "description": "Second.",
            "implementation": "partools:crash_once",
            "parameters": NO_ARGS,
        },
    }
    spec = _spec(
        project,
        kit,
        "crash",
        [_both(_calls("first", {}), _calls("second", {})), {"text": "both: {last_tool_result}"}],
        tools,
    )
    code, _, err = _run(project, kit, spec, "run", spec, "-i", "go", "--json")
    assert code == -signal.SIGKILL, err
    assert counter(project) == ["first"]  # the first call's result was committed
    code, listed, err = _run(project, kit, spec, "runs", "list", "--json")
    [run] = listed["runs"]
    assert run["status"] == "running"  # its process is gone
    code, out, err = _run(project, kit, spec, "runs", "continue", run["run_id"], "--json")
    assert code == 0 and out["status"] == "succeeded", err
    assert out["output_text"] == "both: second done"
    assert counter(project) == ["first", "second"]  # each exactly once
    requests = kit.requests(project)
    assert len(requests) == 2 and [r for r, _ in requests[1].results] == [
        "first done",
        "second done",
    ]


@pytest.mark.parametrize("kit", PAUSE_KITS, ids=lambda k: k.name, indirect=True)
def test_two_questions_in_one_turn_are_both_asked(project: Path, kit: ModelKit) -> None:
    spec = _spec(
        project,
        kit,
        "questions",
        [
            _calls("ask_question", {"question": "Which region?"}, {"question": "Which day?"}),
            {"text": "answers: {last_tool_result}"},
        ],
        {},
    )
    code, paused, err = _run(project, kit, spec, "run", spec, "-i", "go", "--json")
    assert code == 0, err
    cont = paused["continuation_id"]
    _, task, _ = _run(project, kit, spec, "human", "get", cont, "--json")
    asked = {r["prompt"]: r["request_id"] for r in task["requests"]}
    assert list(asked) == ["Which region?", "Which day?"]
    code, out, err = _run(
        project,
        kit,
        spec,
        "human",
        "resume",
        cont,
        "--request-id",
        asked["Which day?"],
        "--provide",
        "Tuesday",
        "--json",
    )
    assert code == 0, err
    code, out, err = _run(
        project,
        kit,
        spec,
        "human",
        "resume",
        cont,
        "--request-id",
        asked["Which region?"],
        "--provide",
        "eu-west",
        "--json",
    )
    assert code == 0 and out["status"] == "succeeded", err
    assert out["output_text"] == "answers: Tuesday"
    second = kit.requests(project)[1]
    assert [r for r, _ in second.results] == ["eu-west", "Tuesday"]
