"""Binding assignments (``assignments.assignees: binding``): only a request's assignee and
the ``override`` entries decide it, on every path that decides (the API's resume and batch
decisions, a decision link, a local resume as the CLI makes it); another reviewer holding
``human:write`` gets the same ``403 not_the_assignee`` naming the assignee. The default
stays the seed's: an advisory assignee, anyone with the right decides. A timeout's own
decision is never refused; metadata a caller sends cannot pose as one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from kneo.engine.human import Decision
from kneo.errors import KneoError
from kneo.people import Identity, acting
from kneo.platform import create_platform
from kneo.platform.assignments import AssignmentRule, check_assignee
from kneo.platform.decision_links import DecisionLinks
from kneo.service import create_app
from kneo.settings import Settings
from kneo.spec.project import ProjectContext
from kneo.store import AuditQuery

ROOT = Path(__file__).resolve().parents[2]
SPEC = str(ROOT / "examples" / "hitl_approval.yaml")  # assigned to "reviewer"
KEYS = {"reviewer": "reviewer", "other": "reviewer", "ops": "reviewer"}


def key(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {name}-key-0123456789"}


def make_world(tmp: Path, assignments: str) -> tuple[Any, TestClient, Settings]:
    config = tmp / ".kneo" / "config.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(f"version: v1\nname: binding\n{assignments}")
    settings = Settings.from_env(
        {
            "KNEO_SERV_DATABASE_URL": f"sqlite:///{tmp / 'kneo.sqlite'}",
            "KNEO_SERV_PROFILES_PATH": str(tmp / "profiles.json"),
            "KNEO_PROJECT_CONFIG": str(config),
            "KNEO_SERV_AUTH_ENABLED": "true",
            "KNEO_SERV_API_KEYS": ";".join(f"{n}:{n}-key-0123456789:{r}" for n, r in KEYS.items()),
            "KNEO_SERV_CONSOLE_SECRET": "console-secret-for-links-0123456789",
            "KNEO_SERV_PUBLIC_URL": "http://testserver",
            "KNEO_SERV_DECISION_LINKS": "true",
        }
    )
    manager = create_platform(settings, ProjectContext.discover(cwd=ROOT, settings=settings))
    app = create_app(False, settings=settings, manager=manager, start_worker=False)
    client = TestClient(app, raise_server_exceptions=False)
    client.__enter__()
    return manager, client, settings


@pytest.fixture
def binding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    monkeypatch.chdir(ROOT)
    manager, client, settings = make_world(
        tmp_path, "assignments:\n  assignees: binding\n  override: [ops]\n"
    )
    yield {"manager": manager, "client": client, "settings": settings}
    client.__exit__(None, None, None)
    manager.store.close()


def paused(manager: Any) -> tuple[str, str]:
    run = manager.run_from_spec(input_text="binding", spec_path=SPEC)
    cont = manager.store.tasks.get_continuation(run.continuation_id)
    return run.continuation_id, str(cont.requests[0]["request_id"])


def test_another_reviewer_is_refused_on_every_path_the_assignee_decides(
    binding: dict[str, Any],
) -> None:
    manager, client = binding["manager"], binding["client"]
    cid, rid = paused(manager)
    body = {"request_id": rid, "decision": "approved"}
    refused = client.post(f"/v1/human-tasks/{cid}/resume", json=body, headers=key("other"))
    assert refused.status_code == 403, refused.text
    error = refused.json()
    assert error["error"] == "not_the_assignee" and "only reviewer" in error["message"]
    batch = client.post(
        f"/v1/human-tasks/{cid}/decisions", json={"decisions": [body]}, headers=key("other")
    )
    assert batch.status_code == 403 and batch.json()["error"] == "not_the_assignee"
    links = DecisionLinks.from_settings(binding["settings"])
    assert links is not None
    other_link = links.url(cid, rid, "other").removeprefix("http://testserver")
    page = client.post(other_link, data={"decision": "approved"})
    assert page.status_code == 403 and "only reviewer" in page.text
    with pytest.raises(KneoError) as local:  # the CLI's local resume: the actor by name
        manager.resume(cid, Decision(rid, "approved"), actor="other")
    assert local.value.code == "not_the_assignee"
    forged = client.post(  # a caller's metadata never poses as the timeout's decision
        f"/v1/human-tasks/{cid}/resume",
        json={**body, "metadata": {"auto_continued": True}},
        headers=key("other"),
    )
    assert forged.status_code == 403
    assert manager.store.tasks.get_continuation(cid).status == "pending"
    task = client.get(f"/v1/human-tasks/{cid}", headers=key("other")).json()
    assert task["requests"][0]["deciders"] == ["reviewer", "ops"]  # the console shows it
    mine = links.url(cid, rid, "reviewer").removeprefix("http://testserver")
    decided = client.post(mine, data={"decision": "approved"})
    assert decided.status_code == 200 and "Decided: approved" in decided.text


def test_the_override_decides_a_bound_request(binding: dict[str, Any]) -> None:
    manager, client = binding["manager"], binding["client"]
    cid, rid = paused(manager)
    body = {"request_id": rid, "decision": "rejected", "content": "not now"}
    done = client.post(f"/v1/human-tasks/{cid}/resume", json=body, headers=key("ops"))
    assert done.status_code == 200, done.text
    events = manager.store.audit.list_audit(AuditQuery(event_type="human.decision")).items
    assert [e.actor for e in events] == ["ops"]


def test_the_default_stays_advisory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    manager, client, _ = make_world(tmp_path, "")
    try:
        cid, rid = paused(manager)
        body = {"request_id": rid, "decision": "approved"}
        done = client.post(f"/v1/human-tasks/{cid}/resume", json=body, headers=key("other"))
        assert done.status_code == 200, done.text
    finally:
        client.__exit__(None, None, None)
        manager.store.close()


def test_a_group_assignment_binds_to_its_members_and_a_timeout_is_never_refused() -> None:
    rule = AssignmentRule(binding=True, override=("group:release-admins",))
    request = {"assignee": "group:release"}
    acting(Identity("alice", "oidc_token", user="alice", groups=frozenset({"release"})))
    try:
        check_assignee(rule, request, "alice", None)  # a member decides
        acting(Identity("bob", "oidc_token", user="bob", groups=frozenset({"qa"})))
        with pytest.raises(KneoError, match="only group:release, group:release-admins"):
            check_assignee(rule, request, "bob", None)
        with pytest.raises(KneoError):  # inside a request, metadata proves nothing
            check_assignee(rule, request, "bob", None, {"auto_continued": True})
    finally:
        acting(None)
    check_assignee(rule, request, "system:timeout", None, {"auto_continued": True})
    check_assignee(AssignmentRule(), request, "bob", None)  # advisory: anyone
    check_assignee(rule, {"assignee": None}, "bob", None)  # nobody named: anyone


def test_a_bound_requests_message_says_who_may_decide(binding: dict[str, Any]) -> None:
    """The dispatcher, with the project's rules, adds ``deciders`` to the message: a Slack
    incoming webhook shows "only reviewer, ops may decide"."""
    import time

    from kneo.platform.assignments import rules_of
    from kneo.platform.notifications import Dispatcher, Receiver
    from tests.notifications.receiver import Receiver as Hook

    manager, settings = binding["manager"], binding["settings"]
    hooks = Hook().start(), Hook().start()
    receivers = [
        Receiver("json", "webhook", hooks[0].url, events=("human.requested",)),
        Receiver("chat", "slack", hooks[1].url, events=("human.requested",)),
    ]
    dispatcher = Dispatcher(
        manager.store, receivers, settings.notifications, owner="t",
        rules=rules_of(manager.project.config),
    )  # fmt: skip
    try:
        paused(manager)
        deadline = time.monotonic() + 15
        while not all(h.requests for h in hooks):
            dispatcher.run_once()
            dispatcher.wait_idle(5)
            assert time.monotonic() < deadline, "no delivery"
    finally:
        dispatcher.stop()
        for hook in hooks:
            hook.stop()
    assert hooks[0].bodies()[0]["deciders"] == ["reviewer", "ops"]
    slack = json.dumps(hooks[1].bodies()[0])
    assert "only reviewer, ops may decide" in slack
