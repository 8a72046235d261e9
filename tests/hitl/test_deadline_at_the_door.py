"""A human request's deadline holds where a decision comes in (issue 71, item 2).

Past ``expires_at`` a decision on a request whose ``on_timeout`` is ``fail``, ``continue`` or
``reject`` is ``409 human_task_expired``, before the timeout sweep ran (the platform then
applies the timeout itself) and after it (never ``404 not_found`` nor
``request_already_resolved``); ``escalate`` stays decidable. Each ``on_timeout`` here on the
platform (``resume``, ``decide``, an idempotent resume) and through the CLI; the service's
ways to decide are in ``tests/service/test_deadline_paths.py``. Time is a ManualClock that
starts in the past, so a CLI process on the real clock finds the request expired too.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kneo import Decision
from kneo.clock import ManualClock
from kneo.errors import HumanTaskExpired, KneoError
from kneo.store import AuditQuery
from tests.hitl.conftest import counter
from tests.hitl.test_timeouts_and_decisions import start

#: what the timeout leaves of the run, whoever applied it (the sweep or the late decision)
TIMEOUT_OUTCOME = {"fail": "expired", "continue": "succeeded", "reject": "failed"}

Decide = Callable[[Any, Any], Any]

WAYS: dict[str, Decide] = {
    "resume": lambda m, p: m.resume(p.continuation_id, Decision(p.request_id, "approved")),
    "decide": lambda m, p: m.decide(p.continuation_id, [Decision(p.request_id, "approved")]),
    "idempotent": lambda m, p: m.resume(
        p.continuation_id, Decision(p.request_id, "approved"), idempotency_key="late-1"
    ),
}


@pytest.fixture(autouse=True)
def _counter(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KNEO_HITL_COUNTER", str(project / "counter.txt"))


def _people(manager: Any, run_id: str) -> list[str]:
    """The actors of the run's ``human.decision`` audit events."""
    events = manager.store.audit.list_audit(
        AuditQuery(run_id=run_id, event_type="human.decision")
    ).items
    return [e.actor or "" for e in events]


@pytest.mark.parametrize("way", sorted(WAYS))
@pytest.mark.parametrize("swept", [False, True], ids=["before-sweep", "after-sweep"])
@pytest.mark.parametrize("on_timeout", sorted(TIMEOUT_OUTCOME))
def test_a_late_decision_is_refused_and_the_timeout_wins(
    manager: Any, project: Path, clock: ManualClock, on_timeout: str, swept: bool, way: str
) -> None:
    paused = start(manager, project, on_timeout)
    clock.advance(61)
    if swept:
        assert manager.prune_expired_human_tasks() == 1
    with pytest.raises(HumanTaskExpired) as refused:
        WAYS[way](manager, paused)
    error = refused.value
    assert error.code == "human_task_expired" and error.http_status == 409
    assert error.details["continuation_id"] == paused.continuation_id
    assert error.details["request_id"] == paused.request_id
    assert error.details["on_timeout"] == on_timeout and error.details["expires_at"]
    run = manager.store.runs.get_run(paused.run_id)
    assert run.status == TIMEOUT_OUTCOME[on_timeout]  # the timeout's path, taken once
    assert manager.prune_expired_human_tasks() == 0
    assert all(actor == "system:timeout" for actor in _people(manager, paused.run_id))
    assert counter(project) == (["publish"] if on_timeout == "continue" else [])
    with pytest.raises(HumanTaskExpired):  # and again: the answer does not change
        WAYS[way](manager, paused)


@pytest.mark.parametrize("swept", [False, True], ids=["before-sweep", "after-sweep"])
def test_escalate_stays_decidable(
    manager: Any, project: Path, clock: ManualClock, swept: bool
) -> None:
    paused = start(manager, project, "escalate")
    clock.advance(61)
    if swept:
        assert manager.prune_expired_human_tasks() == 1
    done = WAYS["resume"](manager, paused)
    assert done.status == "succeeded" and counter(project) == ["publish"]


def test_in_time_is_decided_and_an_unknown_task_is_still_not_found(
    manager: Any, project: Path, clock: ManualClock
) -> None:
    paused = start(manager, project, "fail")
    clock.advance(59)
    assert WAYS["resume"](manager, paused).status == "succeeded"
    with pytest.raises(Exception) as missing:
        manager.resume("cont_never_was", Decision(paused.request_id, "approved"))
    assert getattr(missing.value, "code", None) == "not_found"


@pytest.mark.parametrize("swept", [False, True], ids=["before-sweep", "after-sweep"])
@pytest.mark.parametrize("on_timeout", ["fail", "continue"])
def test_the_cli_says_expired(
    manager: Any,
    project: Path,
    cli: Callable[..., tuple[int, Any, str]],
    on_timeout: str,
    swept: bool,
    clock: ManualClock,
) -> None:
    """``kneo human resume`` in another process, on the real clock (past the manual one's
    deadline): the error and its exit code, not ``not_found``."""
    paused = start(manager, project, on_timeout)
    if swept:
        clock.advance(61)
        assert manager.prune_expired_human_tasks() == 1
    code, _, err = cli(
        "human", "resume", paused.continuation_id, "--request-id", paused.request_id, "--approve"
    )
    assert code != 0 and "error[human_task_expired]" in err, err
    assert "not_found" not in err
    run = manager.store.runs.get_run(paused.run_id)
    assert run.status == TIMEOUT_OUTCOME[on_timeout]


def test_another_projects_caller_learns_nothing_of_a_swept_task(
    manager: Any, project: Path, clock: ManualClock
) -> None:
    """The refusal after the sweep reads the task's audit events in the caller's project
    only: deciding another project's swept-away task is ``not_found`` there, as any task of
    another project is, never ``human_task_expired`` (which would say it existed)."""
    manager.store.projects.create_project("team-b")
    other = manager.for_project("team-b")
    paused = start(manager, project, "fail")
    clock.advance(61)
    assert manager.prune_expired_human_tasks() == 1
    with pytest.raises(KneoError) as refused:
        other.resume(paused.continuation_id, Decision(paused.request_id, "approved"))
    assert refused.value.code == "not_found"
    with pytest.raises(HumanTaskExpired):  # its own project's caller is told the truth
        WAYS["resume"](manager, paused)
