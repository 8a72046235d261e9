"""A paused ``kneo run`` prints a ``resume with:`` line that the pause accepts.

It once printed ``--approve`` for every pause, which question, input and route pauses refuse.
Here each shipped ``hitl_*`` example is run as a newcomer runs it; the printed command is then
run verbatim (``TEXT`` and ``JSON`` filled in), and the run must go on past the pause.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from kneo.cli.run_cmd import resume_hint
from tests.e2e.doc_walk import project_copy, reader_env

HINT = re.compile(r"^resume with: (kneo human resume \S+ --request-id \S+ .*)$", re.M)
#: example -> (the flag the hint must start with, the value that fills TEXT or JSON)
CASES = {
    "hitl_question.yaml": ("--provide TEXT", "Launch it on Monday."),
    "hitl_input.yaml": ("--provide JSON", None),
    "hitl_route.yaml": ("--select fast_track", None),
    "hitl_approval.yaml": ("--approve", None),
    "hitl_on_error.yaml": ("--select retry", None),
}


def _kneo(args: str, project: Path, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", args],
        cwd=project,
        env=reader_env(home),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return project_copy(tmp_path_factory.mktemp("hints"))


@pytest.mark.parametrize("example", sorted(CASES))
def test_the_printed_resume_command_is_accepted(
    example: str, project: Path, tmp_path: Path
) -> None:
    flag, text = CASES[example]
    paused = _kneo(f"kneo run examples/{example} --input 'the launch'", project, tmp_path)
    assert paused.returncode == 0, paused.stdout + paused.stderr
    found = HINT.search(paused.stdout)
    assert found, paused.stdout
    command = found.group(1).split("  (", 1)[0]  # the notes after two spaces are not flags
    assert command.split(" --request-id ", 1)[1].split(" ", 1)[1] == flag
    if flag == "--provide TEXT":
        command = command.replace("TEXT", shlex.quote(str(text)))
    if flag == "--provide JSON":
        schema = _pending_schema(project, tmp_path, command.split()[3])
        command = command.replace("JSON", shlex.quote(json.dumps(_instance(schema))))
    resumed = _kneo(command + " -o json", project, tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    after = json.loads(resumed.stdout)
    assert after["status"] in ("succeeded", "paused"), after
    if after["status"] == "paused":  # a later pause, not the same one refused
        assert after["continuation_id"] != command.split()[3]


def test_approve_is_refused_where_the_hint_no_longer_offers_it(
    project: Path, tmp_path: Path
) -> None:
    """Why the hint matters: the old one's ``--approve`` fails on a question pause."""
    paused = _kneo("kneo run examples/hitl_question.yaml --input x -o json", project, tmp_path)
    data = json.loads(paused.stdout)
    request = data["metadata"]["pending_human_request"]
    refused = _kneo(
        f"kneo human resume {data['continuation_id']} --request-id {request['request_id']} "
        "--approve",
        project,
        tmp_path,
    )
    assert refused.returncode != 0 and "provided" in refused.stdout + refused.stderr


def test_hint_of_each_request_shape() -> None:
    assert resume_hint({"decisions": ["provided"]}) == "--provide TEXT"
    assert resume_hint(
        {"decisions": ["provided", "rejected"], "input_schema": {"type": "object"}}
    ) == ("--provide JSON  (or --reject)")
    assert resume_hint({"decisions": ["selected"], "options": ["a", "b"]}) == (
        "--select a  (options: a, b)"
    )
    assert resume_hint({"decisions": ["rejected", "approved"]}) == "--approve  (or --reject)"
    assert resume_hint({}) == "--approve  (or --reject)"


def _pending_schema(project: Path, home: Path, continuation_id: str) -> dict[str, object]:
    task = _kneo(f"kneo human get {continuation_id} -o json", project, home)
    assert task.returncode == 0, task.stdout + task.stderr
    requests = json.loads(task.stdout)["requests"]
    schema = requests[0]["input_schema"]
    assert isinstance(schema, dict)
    return schema


def _instance(schema: dict[str, object]) -> dict[str, object]:
    """A value for each required property of a flat object schema (the examples' shape)."""
    properties = schema.get("properties") or {}
    assert isinstance(properties, dict)
    values: dict[str, object] = {}
    for name in schema.get("required") or []:  # type: ignore[attr-defined]
        kind = (properties.get(name) or {}).get("type", "string")
        enum = (properties.get(name) or {}).get("enum")
        values[name] = (
            enum[0] if enum else {"integer": 1, "number": 1, "boolean": True}.get(kind, "x")
        )
    return values
