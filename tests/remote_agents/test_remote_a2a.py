"""Remote A2A agents as workflow steps and as agent tools, against an agent served by the
``a2a-sdk``'s own server classes in a second process, called with the SDK's client through
the trust kernel: progress in the run's events, a remote ``input-required`` as a durable
question, the answer reaching the same remote task, a kill -9 while waiting, the secret sent
and never recorded, and refusals (a redirect or a card pointing off the allow-list, an
undeclared secret)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kneo import Decision
from tests import http_calls
from tests.remote_agents.conftest import TOKEN, manager_for, remote_log, step_spec

REPO = Path(__file__).resolve().parents[2]


def events(manager: Any, run_id: str, kind: str = "remote_agent_progress") -> list[Any]:
    return [e["payload"] for e in manager.trace(run_id)["events"] if e["event_type"] == kind]


def test_a_remote_step_answers_and_its_progress_is_in_the_run_events(
    project: Path, a2a_agent: Callable[..., str]
) -> None:
    url = a2a_agent("--token", TOKEN)
    manager = manager_for(project)
    result = manager.run_from_spec(input_text="hello there", spec=step_spec(url))
    assert result.status == "succeeded", result.to_dict()
    assert "echo: hello there" in str(result.output_text)  # the local agent echoes it on
    [[kind, task_id, text]] = remote_log(project)
    assert (kind, text) == ("new", "hello there")
    progress = events(manager, result.run_id)
    assert progress[0]["task_id"] == task_id
    states = [p.get("state") for p in progress]
    assert "working" in states and states[-1] == "completed"
    assert any(p.get("kind") == "artifact" for p in progress)
    streamed = [e.type for e in manager.events(result.run_id)]
    assert streamed.count("agent.remote") == len(progress)  # on the run's event stream
    dumped = json.dumps(
        [manager.trace(result.run_id), manager.checkpoints(result.run_id), result.to_dict()],
        default=str,
    )
    assert TOKEN not in dumped
    manager.store.close()


def test_input_required_pauses_and_the_answer_continues_the_same_remote_task(
    project: Path, a2a_agent: Callable[..., str]
) -> None:
    url = a2a_agent("--token", TOKEN)
    manager = manager_for(project)
    paused = manager.run_from_spec(input_text="ask for a colour", spec=step_spec(url))
    assert paused.status == "paused", paused.to_dict()
    request = paused.metadata["pending_human_request"]
    assert request["kind"] == "question"
    assert request["prompt"] == "Which colour should the report use?"
    [[_, task_id, _]] = remote_log(project)
    assert request["context"]["task_id"] == task_id and request["context"]["context_id"]
    again = manager.resume(paused.continuation_id, Decision(paused.request_id, "provided", "again"))
    assert again.status == "paused"
    second = again.metadata["pending_human_request"]
    assert second["prompt"] == "And which size?" and second["request_id"] != request["request_id"]
    done = manager.resume(again.continuation_id, Decision(again.request_id, "provided", "teal"))
    assert done.status == "succeeded", done.to_dict()
    assert "report in teal" in done.output_text
    assert remote_log(project) == [
        ["new", task_id, "ask for a colour"],
        ["answer", task_id, "again"],
        ["answer", task_id, "teal"],
    ]
    manager.store.close()


_PAUSE_THEN_HANG = """
import json, sys, time
sys.path.insert(0, {repo!r})
from tests.remote_agents.conftest import manager_for
from pathlib import Path
manager = manager_for(Path({project!r}))
result = manager.run_from_spec(input_text="ask for a colour", spec=json.loads({spec!r}))
print(json.dumps({{"status": result.status, "continuation_id": result.continuation_id,
                  "request_id": result.request_id}}), flush=True)
time.sleep(600)
"""


def test_a_kill_9_while_waiting_then_the_answer_continues_the_same_remote_task(
    project: Path, a2a_agent: Callable[..., str]
) -> None:
    url = a2a_agent("--token", TOKEN)
    code = _PAUSE_THEN_HANG.format(
        repo=str(REPO), project=str(project), spec=json.dumps(step_spec(url))
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        text=True,
        cwd=project,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.stdout is not None
    paused = json.loads(proc.stdout.readline())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert paused["status"] == "paused"
    [[_, task_id, _]] = remote_log(project)
    manager = manager_for(project)
    done = manager.resume(
        paused["continuation_id"], Decision(paused["request_id"], "provided", "amber")
    )
    assert done.status == "succeeded", done.to_dict()
    assert "report in amber" in done.output_text
    assert remote_log(project)[1] == ["answer", task_id, "amber"]
    manager.store.close()


_RUN_SLOW = """
import json, sys
sys.path.insert(0, {repo!r})
from tests.remote_agents.conftest import manager_for
from pathlib import Path
manager_for(Path({project!r})).run_from_spec(input_text="slow 4", spec=json.loads({spec!r}))
"""


def test_a_kill_9_mid_call_then_continue_follows_the_same_remote_task(
    project: Path, a2a_agent: Callable[..., str]
) -> None:
    url = a2a_agent("--token", TOKEN)
    code = _RUN_SLOW.format(repo=str(REPO), project=str(project), spec=json.dumps(step_spec(url)))
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=project, env={**os.environ, "PYTHONPATH": str(REPO)}
    )
    manager = manager_for(project)
    deadline = time.monotonic() + 30
    while True:  # the remote task is named in the run's trace: its id is checkpointed
        assert time.monotonic() < deadline, "the remote task never started"
        runs = manager.list_runs()["runs"]
        if runs and events(manager, runs[0]["run_id"]):
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    run_id = runs[0]["run_id"]
    assert manager.get_run(run_id)["status"] == "running"
    done = manager.continue_run(run_id, hand_off=False)
    assert done.status == "succeeded", done.to_dict()
    assert "slow done" in str(done.output_text)
    [[kind, task_id, _]] = remote_log(project)  # one remote task, never sent twice
    assert kind == "new" and events(manager, run_id)[-1]["task_id"] == task_id
    manager.store.close()


def test_a_remote_agent_as_a_tool_of_an_agent(project: Path, a2a_agent: Callable[..., str]) -> None:
    url = a2a_agent("--token", TOKEN)
    spec = {
        "version": "v1",
        "agent": {
            "name": "planner",
            "model": {
                "provider": "dummy",
                "script": [
                    {"tool_calls": [{"name": "colours", "arguments": {"input": "ask now"}}]},
                    {"text": "planner got: {last_tool_result}"},
                ],
            },
            "tools": ["colours"],
        },
        "components": {
            "agents": {
                "colour-agent": {
                    "name": "colour-agent",
                    "remote": {"card_url": url, "secret": "colour_token"},
                }
            },
            "tools": {"colours": {"description": "the colour agent", "agent": "colour-agent"}},
        },
    }
    manager = manager_for(project)
    paused = manager.run_from_spec(input_text="plan", spec=spec)
    assert paused.status == "paused", paused.to_dict()
    assert paused.metadata["pending_human_request"]["kind"] == "question"
    done = manager.resume(paused.continuation_id, Decision(paused.request_id, "provided", "green"))
    assert done.status == "succeeded", done.to_dict()
    assert done.output_text == "planner got: report in green"
    manager.store.close()


@pytest.mark.parametrize(
    "args",
    [
        ("--redirect-to", "http://blocked.example.com/.well-known/agent-card.json"),
        ("--rpc-url", "http://blocked.example.com/a2a"),
    ],
    ids=["card-redirects-off-the-list", "card-points-off-the-list"],
)
def test_a_remote_reaching_off_the_allow_list_is_refused(
    project: Path, a2a_agent: Callable[..., str], args: tuple[str, str]
) -> None:
    url = a2a_agent("--token", TOKEN, *args)
    manager = manager_for(project)
    result = manager.run_from_spec(input_text="hello", spec=step_spec(url))
    assert result.status == "failed"
    error = result.metadata["error"]
    assert error.get("code") == "E_DESTINATION_NOT_ALLOWED", error
    assert "blocked.example.com" in error.get("message", "")
    assert remote_log(project) == []  # nothing ran remotely
    manager.store.close()


def test_an_undeclared_secret_or_destination_is_refused_before_any_request(
    project: Path, a2a_agent: Callable[..., str]
) -> None:
    url = a2a_agent("--token", TOKEN)
    manager = manager_for(project)
    spec = step_spec(url)
    spec["components"]["agents"]["colours"]["remote"]["secret"] = "not_declared"
    result = manager.run_from_spec(input_text="hello", spec=spec)
    assert result.status == "failed"
    assert result.metadata["error"].get("code") == "E_SECRET_UNDECLARED"
    far = step_spec("http://blocked.example.com")
    refused = manager.run_from_spec(input_text="hello", spec=far)
    assert refused.metadata["error"].get("code") == "E_DESTINATION_NOT_ALLOWED"
    assert remote_log(project) == []
    manager.store.close()


def test_a_remote_that_refuses_the_token_fails_the_step(
    project: Path, a2a_agent: Callable[..., str]
) -> None:
    url = a2a_agent("--token", "another-token")
    manager = manager_for(project)
    started = time.monotonic()
    result = manager.run_from_spec(input_text="hello", spec=step_spec(url))
    assert result.status == "failed" and time.monotonic() - started < 30
    assert result.metadata["error"]["code"] == "remote_agent_failed"
    assert TOKEN not in json.dumps(result.to_dict(), default=str)
    manager.store.close()


KNEO_SERVER = Path(__file__).with_name("kneo_a2a_server.py")


def test_kneo_calls_kneos_own_a2a_server_in_another_process(project: Path, tmp_path: Path) -> None:
    root = tmp_path / "remote-kneo"
    root.mkdir()
    proc = subprocess.Popen(
        [sys.executable, str(KNEO_SERVER), "--root", str(root), "--key", TOKEN],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("PORT "), line
        url = f"http://127.0.0.1:{int(line.split()[1])}"
        _wait_for(url)
        manager = manager_for(project)
        paused = manager.run_from_spec(input_text="paint", spec=step_spec(url, skill="colour@dev"))
        assert paused.status == "paused", paused.to_dict()
        request = paused.metadata["pending_human_request"]
        assert request["prompt"] == "Which colour, Kneo asks?"
        assert request["context"]["remote_request"]["decisions"] == ["provided"]
        done = manager.resume(
            paused.continuation_id, Decision(paused.request_id, "provided", "plum")
        )
        assert done.status == "succeeded", done.to_dict()
        assert "plum" in str(done.output_text)
        steps = {s["step_id"]: s for s in manager.get_run(done.run_id)["usage"]["steps"]}
        assert steps["remote"]["input_tokens"] > 0  # the remote Kneo's writer, as it reported
        manager.store.close()
    finally:
        proc.kill()
        proc.wait(10)


def _wait_for(url: str) -> None:
    import httpx2

    deadline = time.monotonic() + 60
    while True:
        try:
            if http_calls.get(url + "/.well-known/agent-card.json", timeout=2).status_code == 200:
                return
        except httpx2.TransportError:
            pass
        assert time.monotonic() < deadline, "the Kneo A2A server did not start"
        time.sleep(0.1)


def test_remote_and_implementation_exclude_each_other(project: Path) -> None:
    from kneo.errors import SpecError

    spec = step_spec("http://127.0.0.1:9")
    spec["components"]["agents"]["colours"]["implementation"] = "mod:build"
    manager = manager_for(project)
    with pytest.raises(SpecError) as refused:
        manager.run_from_spec(input_text="x", spec=spec)
    assert "E_SCHEMA" in str(refused.value.to_dict())
    assert "components.agents.colours" in str(refused.value.to_dict())
    assert "exclude each other" in refused.value.message
    manager.store.close()
