"""CLI journeys in separate processes: quickstart pause/resume, kill -9 recovery, the
custom-tool tutorial, and bad input with stable error codes. (Every example spec is run
in-process by ``tests/platform/test_examples.py``.)"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.cli_zygote import KNEO

REPO = Path(__file__).resolve().parents[2]

SLOW_STEPS = """
from pathlib import Path

HERE = Path(__file__).parent

def _count(name):
    with open(HERE / "counter.txt", "a") as fh:
        fh.write(name + "\\n")

def first(text):
    _count("first")
    return text + " first"

def slow(text):
    _count("slow")
    marker = HERE / "slept"
    if not marker.exists():
        marker.write_text("1")
        import time
        time.sleep(60)
    return text + " slow"

def last(text):
    _count("last")
    return text + " last"
"""


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    shutil.copytree(
        REPO / "examples", tmp_path / "examples", ignore=shutil.ignore_patterns("__pycache__")
    )
    (tmp_path / ".kneo").mkdir()
    return tmp_path


def env_for(project: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KNEO")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["COLUMNS"] = "200"
    return env


def kneo(
    project: Path, *args: str, check: int | None = 0, columns: int = 200
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [*KNEO, *args],
        cwd=project,
        env={**env_for(project), "COLUMNS": str(columns)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    if check is not None:
        assert proc.returncode == check, proc.stderr + proc.stdout
    return proc


def kneo_json(project: Path, *args: str, check: int | None = 0) -> Any:
    return json.loads(kneo(project, *args, "--json", check=check).stdout)


def test_ids_in_tables_never_wrap_at_80_columns(project: Path) -> None:
    """An id is copied from a table into the next command: it stays whole on one line."""
    args = ["run", "examples/smoke_human_workflow.yaml", "--input", "x", "--target", "workflow"]
    paused = kneo_json(project, *args)
    ids = [paused["run_id"], paused["continuation_id"]]
    ids.append(paused["metadata"]["pending_human_request"]["request_id"])
    human = kneo(project, "human", "list", columns=80).stdout
    runs = kneo(project, "runs", "list", columns=80).stdout
    assert max(len(line) for line in (human + runs).splitlines()) <= 80
    assert ids[1] in human and ids[2] in human and ids[0] in runs


def test_quickstart_pause_and_resume_in_separate_processes(project: Path) -> None:
    paused = kneo_json(
        project,
        "run",
        "examples/smoke_human_workflow.yaml",
        "--input",
        "smoke",
        "--target",
        "workflow",
    )
    assert paused["status"] == "paused" and paused["human_intervention_required"] is True
    cont = paused["continuation_id"]
    request = paused["metadata"]["pending_human_request"]["request_id"]
    assert cont.startswith("cont_") and request.startswith("req_")
    assert (project / ".kneo" / "kneo_runs.sqlite").exists()
    tasks = kneo_json(project, "human", "list")
    assert [t["continuation_id"] for t in tasks["tasks"]] == [cont]
    assert kneo_json(project, "human", "get", cont)["requests"][0]["request_id"] == request
    done = kneo_json(project, "human", "resume", cont, "--request-id", request, "--approve")
    assert done["status"] == "succeeded" and done["output_text"].startswith("Published.")
    run_id = paused["run_id"]
    events = [e["event_type"] for e in kneo_json(project, "runs", "trace", run_id)["events"]]
    assert {"run_paused", "human_decision", "run_resumed", "run_completed"} <= set(events)
    checkpoints = kneo_json(project, "runs", "checkpoints", run_id)["checkpoints"]
    assert [c["type"] for c in checkpoints][-2:] == ["step_completed", "run_completed"]
    replay = kneo_json(project, "runs", "replay", run_id)
    assert replay["replay_context"]["completed_steps"] == ["draft", "approve", "publish"]
    diff = kneo_json(
        project, "runs", "checkpoint-diff", run_id, "--from-sequence", "1", "--to-sequence", "3"
    )
    assert diff["added"] and diff["from_sequence"] == 1
    table = kneo(project, "runs", "get", run_id).stdout
    assert "succeeded" in table and "publish" in table
    again = kneo_json(
        project, "human", "resume", cont, "--request-id", request, "--approve", check=1
    )
    assert again["error"] == "request_already_resolved"


def test_kill_9_mid_workflow_then_continue_in_another_process(project: Path) -> None:
    (project / "slowsteps.py").write_text(SLOW_STEPS)
    spec = {
        "version": "v1",
        "workflow": {
            "type": "sequential",
            "name": "slow",
            "steps": [
                {"id": "a", "kind": "function", "ref": "slowsteps:first"},
                {"id": "s", "kind": "function", "ref": "slowsteps:slow"},
                {"id": "b", "kind": "function", "ref": "slowsteps:last"},
            ],
        },
    }
    (project / "slow.yaml").write_text(json.dumps(spec))
    proc = subprocess.Popen(
        [*KNEO, "run", "slow.yaml", "-i", "go", "--json"],
        cwd=project,
        env=env_for(project),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not (project / "slept").exists():
        assert time.monotonic() < deadline, "the slow step never started"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    run_id = kneo_json(project, "runs", "list")["runs"][0]["run_id"]
    assert kneo_json(project, "runs", "get", run_id)["status"] == "running"
    ctx = kneo_json(project, "runs", "recovery", run_id)
    assert ctx["completed_steps"] == ["a"] and ctx["next_step"] == "s" and ctx["can_continue"]
    done = kneo_json(project, "runs", "continue", run_id)
    assert done["status"] == "succeeded" and done["output_text"] == "go first slow last"
    assert (project / "counter.txt").read_text().split() == ["first", "slow", "slow", "last"]


def test_custom_tool_tutorial_end_to_end(project: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "examples.run_lookup"],
        cwd=project,
        env=env_for(project),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "The email for u-002 is bob@example.com." in proc.stdout
    run_id = proc.stdout.split("run_id=")[1].split()[0]
    events = kneo_json(project, "runs", "trace", run_id)["events"]
    tool_events = [e for e in events if e["event_type"].startswith("tool_call")]
    assert [e["event_type"] for e in tool_events] == ["tool_call_started", "tool_call_completed"]
    assert all(e["payload"]["tool_name"] == "lookup_user" for e in tool_events)
    assert tool_events[1]["payload"]["result"] == "[REDACTED]"


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["runs", "get", "run_missing"], "not_found"),
        (["human", "resume", "cont_missing", "--request-id", "req_x", "--approve"], "not_found"),
        (["run", "examples/legacy_agent.yaml", "--input", "x"], "E_"),
        (["run", "examples/nope.yaml", "--input", "x"], None),
    ],
    ids=["run", "resume", "invalid-spec", "missing-spec"],
)
def test_bad_input_gives_stable_codes(project: Path, args: list[str], code: str | None) -> None:
    proc = kneo(project, *args, "--json", check=None)
    assert proc.returncode != 0
    error = json.loads(proc.stdout)
    assert error["error"].startswith(code) if code else error["error"]
    assert "Traceback" not in proc.stderr


def test_wrong_decision_and_resuming_a_finished_run(project: Path) -> None:
    paused = kneo_json(project, "run", "examples/human_approval_workflow.yaml", "-i", "x")
    cont = paused["continuation_id"]
    request = paused["metadata"]["pending_human_request"]["request_id"]
    wrong = kneo_json(
        project, "human", "resume", cont, "--request-id", request, "--select", "a", check=1
    )
    assert wrong["error"] == "invalid_decision"
    cancelled = kneo_json(project, "runs", "cancel", paused["run_id"])
    assert cancelled["status"] == "cancelled"
    gone = kneo_json(
        project, "human", "resume", cont, "--request-id", request, "--approve", check=1
    )
    assert gone["error"] == "not_found"
