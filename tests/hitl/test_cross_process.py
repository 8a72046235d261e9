"""Every pause kind's example: pause in one process, listed and resumed from others.

The loop-iteration, tool-argument-input and external-execution levels are in ``KINDS`` too.

Also: eight processes resuming one continuation at once (exactly one decision applies and
the step after the pause runs once) on SQLite and PostgreSQL, a stale view that cannot
resume again, tool-call approval exactly once without re-sent model turns, and
``ask_question`` answered then replayed without pausing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kneo import Decision
from kneo.engine.providers.dummy import read_call_log
from kneo.errors import RequestAlreadyResolved
from kneo.store import AuditQuery
from tests.hitl.conftest import counter, finish, make_manager, start_cli

#: spec, resume flags, documented end status, a snippet of the output, the request kind
KINDS = [
    ("hitl_approval.yaml", ["--approve"], "succeeded", "Published.", "approval"),
    ("hitl_confirmation.yaml", ["--reject"], "succeeded", "DRAFT: launch", "confirmation"),
    (
        "hitl_input.yaml",
        ["--provide", '{"threshold": 0.8, "mode": "strict"}'],
        "succeeded",
        '"threshold": 0.8',
        "input",
    ),
    (
        "hitl_review.yaml",
        ["--edit", "A reviewed summary"],
        "succeeded",
        "A reviewed summary",
        "review",
    ),
    (
        "hitl_route.yaml",
        ["--select", "full_review"],
        "succeeded",
        "SUMMARY of 'DRAFT: launch'",
        "route",
    ),
    ("hitl_tool_approval.yaml", ["--approve"], "succeeded", "Done: sent to", "tool_approval"),
    (
        "hitl_question.yaml",
        ["--provide", "Verified by ops"],
        "succeeded",
        "Verified by ops",
        "question",
    ),
    ("hitl_on_error.yaml", ["--select", "retry"], "succeeded", "Published.", "error"),
    ("hitl_iteration.yaml", ["--reject"], "succeeded", "Published.", "iteration"),
    (
        "hitl_tool_input.yaml",
        ["--provide", '{"to": "ops-team"}'],
        "succeeded",
        "Done: sent to ops-team: launch",
        "tool_input",
    ),
    (
        "hitl_external.yaml",
        ["--provide", '{"ticket": "OPS-42"}'],
        "succeeded",
        'Filed: {"ticket": "OPS-42"}',
        "external_tool",
    ),
]


def test_every_pause_kind_pauses_lists_and_resumes_across_processes(project: Path) -> None:
    """Each example pauses (process A), is listed (process B), resumes (process C)."""
    runs = [
        start_cli(project, "run", f"examples/{spec}", "-i", "launch", "--json")
        for spec, *_ in KINDS
    ]
    paused: dict[str, dict[str, Any]] = {}
    for (spec, *_), proc in zip(KINDS, runs, strict=True):
        code, data, err = finish(proc)
        assert data is not None and data["status"] == "paused", (spec, code, err)
        paused[spec] = data
    code, listed, err = finish(start_cli(project, "human", "list", "--json"))
    assert code == 0, err
    by_cont = {t["continuation_id"]: t for t in listed["tasks"]}
    for spec, _, _, _, kind in KINDS:
        task = by_cont[paused[spec]["continuation_id"]]
        assert task["request"]["kind"] == kind, spec
        assert (
            task["request"]["request_id"]
            == paused[spec]["metadata"]["pending_human_request"]["request_id"]
        )
    resumes = [
        start_cli(
            project,
            "human",
            "resume",
            paused[spec]["continuation_id"],
            "--request-id",
            paused[spec]["metadata"]["pending_human_request"]["request_id"],
            *flags,
            "--json",
        )
        for spec, flags, *_ in KINDS
    ]
    for (spec, _, status, snippet, _), proc in zip(KINDS, resumes, strict=True):
        code, data, err = finish(proc)
        assert data is not None and data["status"] == status, (spec, data, err)
        assert snippet in (data["output_text"] or ""), (spec, data["output_text"])
    # confirmation rejected: publish skipped; approval, on_error, the stopped loop and each
    # tool (approved, completed by a person): counted once; external tools run elsewhere
    assert sorted(counter(project)) == [
        "publish",
        "publish",
        "publish",
        "send_email",
        "send_email",
    ]
    code, listed, _ = finish(start_cli(project, "human", "list", "--json"))
    assert listed["tasks"] == [] and listed["next_cursor"] is None


def test_tool_approval_runs_once_and_model_turns_are_not_resent(project: Path) -> None:
    _, paused, err = finish(
        start_cli(
            project, "run", "examples/hitl_tool_approval.yaml", "-i", "status report", "--json"
        )
    )
    assert paused["status"] == "paused", err
    request = paused["metadata"]["pending_human_request"]
    assert request["kind"] == "tool_approval" and request["context"]["tool_name"] == "send_email"
    assert counter(project) == []  # not run before the approval
    _code, done, err = finish(
        start_cli(
            project,
            "human",
            "resume",
            paused["continuation_id"],
            "--request-id",
            request["request_id"],
            "--approve",
            "--json",
        )
    )
    assert done["status"] == "succeeded", err
    assert counter(project) == ["send_email"]
    calls = read_call_log(project / "calls.jsonl")
    # turn 0 before the pause, turn 1 after: the first turn was never sent again
    assert [c["turn"] for c in calls] == [0, 1]
    assert calls[1]["messages"][-1]["role"] == "tool"


def test_ask_question_answer_then_replay_without_pausing(project: Path) -> None:
    _, paused, _err = finish(
        start_cli(
            project, "run", "examples/hitl_question.yaml", "-i", "Durability summary.", "--json"
        )
    )
    request = paused["metadata"]["pending_human_request"]
    question = "What suffix should I add before publishing?"
    import hashlib

    wait = f"ask_question:1:{hashlib.sha1(question.encode()).hexdigest()[:8]}"
    assert request["kind"] == "question" and request["prompt"] == question
    assert request["wait_key"] == wait
    _, done, err = finish(
        start_cli(
            project,
            "human",
            "resume",
            paused["continuation_id"],
            "--request-id",
            request["request_id"],
            "--provide",
            "Verified by ops on call",
            "--json",
        )
    )
    assert done["output_text"] == "Published: Durability summary. Verified by ops on call", err
    _code, replayed, err = finish(start_cli(project, "human", "replay", paused["run_id"], "--json"))
    assert replayed["status"] == "succeeded", err
    assert replayed["run_id"] != paused["run_id"]
    assert replayed["output_text"] == done["output_text"]


@pytest.mark.usefixtures("backend")
def test_eight_processes_resume_one_continuation(project: Path, backend: str | None) -> None:
    """Exactly one decision applies and the step after the pause runs exactly once."""
    manager = make_manager(project, backend)
    try:
        paused = manager.run_from_spec(
            input_text="launch", spec_path=project / "examples" / "hitl_approval.yaml"
        )
        stale = manager.store.runs.get_run(paused.run_id)  # a view taken before anyone resumed
        procs = [
            start_cli(
                project,
                "human",
                "resume",
                paused.continuation_id,
                "--request-id",
                paused.request_id,
                "--approve",
                "--json",
                database_url=backend,
            )
            for _ in range(8)
        ]
        results = [finish(p) for p in procs]
        succeeded = [d for _, d, _ in results if d and d.get("status") == "succeeded"]
        refused = [d.get("error") for _, d, _ in results if d and "error" in d]
        assert len(succeeded) == 1, results
        assert len(refused) == 7 and set(refused) <= {
            "resource_locked",
            "request_already_resolved",
            "not_found",
        }
        assert counter(project) == ["publish"]
        decisions = manager.store.audit.list_audit(
            AuditQuery(run_id=paused.run_id, event_type="human.decision")
        )
        assert decisions.total == 1
        # A process holding the stale view cannot resume it again.
        assert stale.status == "paused"
        with pytest.raises(RequestAlreadyResolved):
            manager.resume(paused.continuation_id, Decision(paused.request_id, "approved"))
        assert counter(project) == ["publish"]
    finally:
        manager.store.close()


def test_json_list_filters_and_counts(project: Path) -> None:
    for spec in ("hitl_approval.yaml", "hitl_confirmation.yaml"):
        finish(start_cli(project, "run", f"examples/{spec}", "-i", "x", "--json"))
    code, data, err = finish(
        start_cli(
            project, "human", "list", "--assignee", "editor", "--newest", "--counts", "--json"
        )
    )
    assert code == 0, err
    assert [t["request"]["kind"] for t in data["tasks"]] == ["confirmation"]
    assert data["counts_by_assignee"] == {"editor": 1, "reviewer": 1}
    assert json.dumps(data)  # plain JSON
