"""``resume_human_task`` where the service continues runs on its worker: the tool answers the
run's outcome (the service's own wait, or ``wait_seconds``: the route's ``Prefer: wait``), or
with ``wait_seconds: 0`` the run as handed over (``running``) at once (``Prefer:
respond-async``), through the official SDK's client on a real socket."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.mcp_tests.test_mcp_server import (
    AUTH,
    KEYS,
    SMOKE,
    Served,
    payload,
    serve_mcp,
    session,
)


@pytest.fixture()
def served(tmp_path: Path) -> Iterator[Served]:
    """The service app with ``/mcp`` and its worker (decisions continue on it)."""
    yield from serve_mcp(tmp_path, {**AUTH, "KNEO_SERV_WORKER_POLL_SECONDS": "0.05"}, worker=True)


def test_resume_answers_the_handed_over_run_or_waits_for_its_end(served: Served) -> None:
    runs = [served.manager.run_from_spec(input_text=f"n{i}", spec_path=SMOKE) for i in (0, 1, 2)]
    waits: list[dict[str, int]] = [{"wait_seconds": 0}, {"wait_seconds": 30}, {}]
    calls = [
        (
            "resume_human_task",
            {
                "continuation_id": run.continuation_id,
                "request_id": run.request_id,
                "decision": "approved",
                **wait,
            },
        )
        for wait, run in zip(waits, runs, strict=True)
    ]
    at_once, waited, by_default = session(served.url, KEYS["reviewer"], calls)
    assert payload(at_once)["status"] == "running" and payload(at_once)["run_id"] == runs[0].run_id
    assert payload(waited)["status"] == "succeeded"
    assert payload(by_default)["status"] == "succeeded"  # the seed's answer, by default
    deadline = time.monotonic() + 30
    while served.manager.get_run(runs[0].run_id)["status"] != "succeeded":
        assert time.monotonic() < deadline, "the worker did not finish the first run"
        time.sleep(0.05)
