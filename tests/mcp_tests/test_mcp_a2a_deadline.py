"""The deadline at the door for agents (issue 71, item 2): MCP's ``resume_human_task`` (the
official SDK's client on a real socket) and an A2A ``message/send`` answering a task's
question (JSON-RPC), for a request past its ``expires_at`` with ``on_timeout: fail`` after
the sweep deleted the task (never ``not_found``), ``continue`` before the sweep (the decision
applies the timeout) and ``escalate`` (decided as ever). Requests time out after one real
second."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from kneo.platform import create_platform
from kneo.service import create_app
from kneo.settings import Settings
from kneo.spec.project import ProjectContext
from tests.hitl.deadline_cases import CASES, TIMED_OUT, spec
from tests.mcp_tests.test_mcp_server import (
    AUTH,
    KEYS,
    Served,
    error_text,
    payload,
    serve_mcp,
    session,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def served(tmp_path: Path) -> Iterator[Served]:
    yield from serve_mcp(tmp_path, AUTH, worker=False)


def _late_runs(manager: Any) -> dict[str, Any]:
    """One paused run per case, all past their deadline, the swept ones' timeout applied."""
    runs = {t: manager.run_from_spec(input_text="x", spec=spec(t)) for t, _, _ in CASES}
    time.sleep(1.2)
    for on_timeout, swept, _ in CASES:
        if swept:
            cid = runs[on_timeout].continuation_id
            assert manager.sweeps.expire_human_tasks([cid], manager.clock.now()) == 1
    return runs


def _check(manager: Any, run: Any, on_timeout: str, refused: bool, said: str) -> None:
    final = manager.store.runs.get_run(run.run_id).status
    if refused:
        assert "human_task_expired" in said and "not_found" not in said, said[:300]
        assert final == TIMED_OUT[on_timeout], (on_timeout, final)
    else:
        assert final == "succeeded", (on_timeout, final, said[:300])


def test_mcp_resume_holds_the_deadline(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    runs = _late_runs(served.manager)
    calls = [
        (
            "resume_human_task",
            {
                "continuation_id": runs[t].continuation_id,
                "request_id": runs[t].request_id,
                "decision": "approved",
            },
        )
        for t, _, _ in CASES
    ]
    results = session(served.url, KEYS["reviewer"], calls)
    for (on_timeout, _, refused), result in zip(CASES, results, strict=True):
        said = error_text(result) if refused else str(payload(result))
        _check(served.manager, runs[on_timeout], on_timeout, refused, said)


def test_a2a_answer_holds_the_deadline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    settings = Settings.from_env({**AUTH, "KNEO_SERV_PROFILES_PATH": str(tmp_path / "p.json")})
    manager = create_platform(settings, ProjectContext.discover(cwd=tmp_path, settings=settings))
    app = create_app(False, settings=settings, manager=manager, start_worker=False, a2a=True)
    try:
        with TestClient(app) as client:
            runs = _late_runs(manager)
            for on_timeout, _, refused in CASES:
                run = runs[on_timeout]
                message = {
                    "messageId": f"late-{on_timeout}",
                    "role": "user",
                    "taskId": run.run_id,
                    "parts": [
                        {
                            "kind": "data",
                            "data": {
                                "decision": "approved",
                                "continuation_id": run.continuation_id,
                                "request_id": run.request_id,
                            },
                        }
                    ],
                }
                answer = client.post(
                    "/a2a",
                    json={
                        "jsonrpc": "2.0",
                        "id": 1,
                        "method": "message/send",
                        "params": {"message": message},
                    },
                    headers={"Authorization": f"Bearer {KEYS['reviewer']}"},
                ).json()
                assert ("error" in answer) == refused, answer
                _check(manager, run, on_timeout, refused, str(answer))
    finally:
        manager.store.close()
