"""Workers serve every project, on SQLite and PostgreSQL: a decision in team-a handed to the
workers completes there, a queued run of team-b runs, team-b's expired tasks and missed
deadlines time out per their policies, each event goes to its own project's receivers only,
and an A2A push of team-b is swept and sent with team-b's config.

One worker and one sweeper of the service's root (``default``) manager do all of it, each
record through its project's manager (:mod:`kneo.platform.directory`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from runtime_helpers import DRAFT, ServiceFactory, human_after_draft
from teams_helpers import APPROVAL, headers, paused_run

from kneo.platform.a2a_push import push_sender, seal
from kneo.platform.directory import ProjectDirectory
from kneo.platform.notifications import start_dispatcher
from kneo.platform.sweeper import Sweeper
from kneo.platform.worker import Worker
from kneo.store import AuditQuery, NotificationEvent, NotificationQuery
from kneo.store.outbox.a2a_push import PushTarget
from tests.notifications.receiver import Receiver

PUSH_SECRET = "push-secret-0123456789-0123456789-abcd"


def _trace(manager: Any, project: str, run_id: str) -> list[str]:
    store = manager.for_project(project).store
    return [e.event_type for e in store.runs.list_trace(run_id, limit=500).items]


def test_a_decision_in_team_a_completes_on_a_worker(teams_service: ServiceFactory) -> None:
    service = teams_service()
    run = paused_run(service.client, "a-op")
    answered = service.decide("a-rev", run)
    assert answered.status_code == 202, answered.text
    assert answered.json()["status"] == "running"  # recorded, queued for a worker
    worker = Worker(service.manager, name="t")
    assert worker.run_once()
    assert service.run("a-op", run["run_id"])["status"] == "succeeded"
    assert "run_claimed" in _trace(service.manager, "team-a", run["run_id"])
    assert not worker.run_once()  # nothing else was queued


def test_a_queued_run_of_team_b_runs_on_a_worker(teams_service: ServiceFactory) -> None:
    service = teams_service()
    queued = service.start("b-op", DRAFT, queued=True)
    assert queued.status_code == 202, queued.text
    mine = service.start("dflt", DRAFT, queued=True).json()  # the root's own, beside it
    worker = Worker(service.manager, name="t")
    assert worker.run_until_empty() == 2
    team_b = service.run("b-op", queued.json()["run_id"])
    assert team_b["status"] == "succeeded" and team_b["output_text"] == "A short draft."
    assert service.run("dflt", mine["run_id"])["status"] == "succeeded"


def test_team_b_tasks_and_deadlines_time_out_per_their_policies(
    teams_service: ServiceFactory,
) -> None:
    service = teams_service()
    expires = service.start("b-op", human_after_draft("fail")).json()
    goes_on = service.start("b-op", human_after_draft("continue")).json()
    escalates = service.start("a-op", human_after_draft("escalate", 600)).json()
    late = service.start("a-op", DRAFT, queued=True, timeout_seconds=30).json()
    assert {expires["status"], goes_on["status"], escalates["status"]} == {"paused"}
    worker = Worker(service.manager, name="t")
    sweeper = Sweeper(service.manager.sweeps, None, directory=worker.directory)
    assert sweeper.sweep_once() == {"expired_human_tasks": 0, "timed_out_runs": 0, "child_runs": 0}
    service.clock.advance(61)
    assert sweeper.sweep_once() == {"expired_human_tasks": 2, "timed_out_runs": 1, "child_runs": 0}
    assert service.run("b-op", expires["run_id"])["status"] == "expired"
    assert service.run("a-op", late["run_id"])["status"] == "timed_out"
    assert service.run("b-op", goes_on["run_id"])["status"] == "running"  # for a worker
    assert worker.run_until_empty() == 2  # the late run's record settles: it timed out
    assert service.run("b-op", goes_on["run_id"])["status"] == "succeeded"
    assert service.run("a-op", escalates["run_id"])["status"] == "paused"  # not due yet
    audit = (
        service.manager.for_project("team-b").store.audit.list_audit(AuditQuery(limit=100)).items
    )
    assert {"human.expired", "human.continued"} <= {e.event_type for e in audit}


@pytest.fixture
def hooks() -> Iterator[Callable[[], Receiver]]:
    made: list[Receiver] = []

    def make() -> Receiver:
        made.append(Receiver().start())
        return made[-1]

    yield make
    for hook in made:
        hook.stop()


def _wait(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {check}")


def test_an_event_goes_to_its_own_projects_receivers_only(
    teams_service: ServiceFactory, hooks: Callable[[], Receiver]
) -> None:
    team_a, team_b, host, team_c = hooks(), hooks(), hooks(), hooks()
    # one receiver name in every project: each project's "hook" is its own
    service = teams_service(
        {
            "team-a": {"notifications": {"receivers": [{"name": "hook", "url": team_a.url}]}},
            "team-b": {"notifications": {"receivers": [{"name": "hook", "url": team_b.url}]}},
        },
        KNEO_SERV_NOTIFICATIONS_RECEIVERS=f'[{{"name": "hook", "url": "{host.url}"}}]',
        KNEO_SERV_NOTIFICATIONS_POLL_SECONDS="0.05",
        KNEO_SERV_PUBLIC_URL="https://kneo.example",
    )
    manager = service.manager
    dispatcher = start_dispatcher(manager, manager.settings, directory=ProjectDirectory(manager))
    assert dispatcher is not None
    try:
        run = paused_run(service.client, "a-op")
        [body] = _wait(team_a.bodies)
        assert body["type"] == "human.requested" and body["run_id"] == run["run_id"]
        task = f"/tasks/{run['continuation_id']}"
        assert body["link"] == "https://kneo.example/ui/p/team-a" + task  # its project's page
        other = paused_run(service.client, "b-op")
        [body_b] = _wait(team_b.bodies)
        assert body_b["run_id"] == other["run_id"]
        own = paused_run(service.client, "dflt")
        [body_host] = _wait(host.bodies)
        assert body_host["run_id"] == own["run_id"]
        assert body_host["link"].startswith("https://kneo.example/ui/tasks/")  # as before
        # a project made while the dispatcher runs: its first event is not lost
        hook_c = {"notifications": {"receivers": [{"name": "hook", "url": team_c.url}]}}
        made = service.client.post(
            "/v1/projects", headers=headers("plat"), json={"name": "team-c", "definition": hook_c}
        )
        assert made.status_code == 201, made.text
        newest = paused_run(service.client, "plat", "team-c")
        [body_c] = _wait(team_c.bodies)
        assert body_c["run_id"] == newest["run_id"]
        assert dispatcher.wait_idle(10)
    finally:
        dispatcher.stop()
    assert [len(h.requests) for h in (team_a, team_b, host, team_c)] == [1, 1, 1, 1]
    listed = manager.for_project("team-a").store.notifications.list_notifications().items
    assert [(n.receiver, n.status) for n in listed] == [("hook", "sent")]


def test_a_team_b_push_is_swept_and_sent_with_team_b_config(
    teams_service: ServiceFactory, hooks: Callable[[], Receiver]
) -> None:
    from kneo.service.a2a_push import PushSweep

    target = hooks()
    service = teams_service(
        KNEO_SERV_A2A_PUSH_DESTINATIONS=target.url.rsplit("/", 1)[0],
        KNEO_SERV_A2A_PUSH_SECRET=PUSH_SECRET,
    )
    run = service.start("b-op", APPROVAL).json()
    team_b = service.manager.for_project("team-b").store
    team_b.a2a_push.set_push_config(
        run["run_id"],
        "agent",
        "c1",
        PushTarget(
            push_id="p_b",
            origin=target.url.rsplit("/", 1)[0],
            auth_scheme=None,
            sealed=seal(PUSH_SECRET, "p_b", {"token": "tok-b", "url": target.url}),
            sees_requests=False,
        ),
    )
    assert PushSweep(lambda: service.manager, 1.0).run_once() == 1
    [delivery] = team_b.notifications.list_notifications(NotificationQuery(receiver="a2a")).items
    assert delivery.event.project_id == team_b.project_id
    sender = push_sender(service.manager.store, service.manager.settings)
    assert sender is not None
    try:
        assert sender.send(delivery.event, datetime.now(UTC)) == 200
    finally:
        sender.close()
    [(sent_headers, _)] = target.requests
    assert sent_headers["x-a2a-notification-token"] == "tok-b"
    stray = NotificationEvent(
        "e_x", "a2a.task_status", "info", None, None, None, run["run_id"], None,
        {"push_id": "p_b"}, datetime.now(UTC),
    )  # fmt: skip
    with pytest.raises(Exception, match="deleted or replaced"):  # default has no such config
        push_sender(service.manager.store, service.manager.settings).send(  # type: ignore[union-attr]
            stray, datetime.now(UTC)
        )
