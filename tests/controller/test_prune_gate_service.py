"""An unsigned prune of prod, end to end: the real app, its controller loop fetching from a
real ``git http-backend`` (smart HTTP behind basic auth, as a private GitHub repository),
approvers deciding over HTTP, and bundle runs before, during and after (SQLite and
PostgreSQL). Issue 70, item 5.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gitops_fixtures import Keys, Repo
from starlette.testclient import TestClient
from test_bundle_runs import ADMIN, TOKENS, _manager, _settings, flow

from kneo.clock import ManualClock
from kneo.controller.config import ControllerConfig
from kneo.controller.controller import Controller
from kneo.controller.credentials import CredentialSource
from kneo.controller.source import GitSource
from kneo.store import AuditQuery
from tests.security.git_http import PrivateGitHost, have_git_http_backend

pytestmark = pytest.mark.skipif(
    not have_git_http_backend(), reason="git http-backend is not installed with git"
)

USER, TOKEN = "reader", "git-host-token-for-the-prune-test"
#: a reviewer's key whose name prod's approvers do not list
MALLORY = "mallory-secret-token-9"
PROD = (
    "version: v1\npromotion:\n  require_human_approval: true\n"
    "  approvers: [alice, bob, carol]\n  min_approvals: 2\nruns: {require_approved_bundle: true}\n"
)


def _as(name: str) -> dict[str, str]:
    token = {"admin": ADMIN, "mallory": MALLORY}.get(name) or TOKENS[name]
    return {"Authorization": f"Bearer {token}"}


def _wait(predicate: Any, timeout: float = 15.0) -> Any:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


@pytest.fixture
def service(
    store: Any, repo: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> Iterator[tuple[TestClient, PrivateGitHost]]:
    """The app with API keys alice/bob/carol and its controller loop reading the repository
    through ``git http-backend``."""
    from kneo.service import create_app

    repo.write("environments/prod.yaml", PROD)
    repo.write("bundles/helper/prod.json", keys.bundle("helper", "prod", flow("p1")))
    repo.write("bundles/helper/dev.json", keys.bundle("helper", "dev", flow("p1")))
    repo.commit("helper for dev and prod")
    host = PrivateGitHost(repo.remote_path.parent, USER, TOKEN)
    url = host.url(repo.remote_path.name)
    settings = _settings(
        {
            "KNEO_SERV_AUTH_ENABLED": "true",
            "KNEO_SERV_API_KEYS": ";".join(
                f"{n}:{t}:reviewer" for n, t in {**TOKENS, "mallory": MALLORY}.items()
            ),
            "KNEO_SERV_ADMIN_API_KEY": ADMIN,
        }
    )
    config = ControllerConfig(repo=url, cache_dir=tmp_path / "cache")
    source = GitSource(
        url,
        ref="main",
        cache_dir=config.cache_dir,
        credentials=CredentialSource(token=TOKEN, username=USER),
    )
    ctl = Controller(store, source, keys.keyring(), config=config, clock=clock)
    app = create_app(
        False,
        settings=settings,
        manager=_manager(store, clock, tmp_path, settings),
        start_worker=False,
        controller=ctl,
        run_controller=True,
    )
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            yield client, host
    finally:
        ctl.close()
        host.stop()


def _task(client: TestClient, prefix: str) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        listed = client.get("/v1/human-tasks?workflow_kind=promotion", headers=_as("alice"))
        assert listed.status_code == 200, listed.text
        return next(
            (t for t in listed.json()["tasks"] if t["requests"][0]["prompt"].startswith(prefix)),
            None,
        )

    return _wait(find)  # type: ignore[no-any-return]


def _answer(client: TestClient, task: dict[str, Any], who: str, decision: str) -> Any:
    return client.post(
        f"/v1/human-tasks/{task['continuation_id']}/resume",
        headers=_as(who),
        json={"request_id": task["requests"][0]["request_id"], "decision": decision},
    )


def _decide(client: TestClient, task: dict[str, Any], who: str, decision: str) -> Any:
    answer = _answer(client, task, who, decision)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _run(client: TestClient) -> Any:
    return client.post(
        "/v1/runs",
        headers=_as("admin"),
        json={"bundle": "helper", "environment": "prod", "input": "go"},
    )


def test_an_unsigned_prune_of_prod_waits_for_its_approvers_over_http(
    service: tuple[TestClient, PrivateGitHost], store: Any, repo: Repo
) -> None:
    client, host = service
    promotion = _task(client, "Promote helper@")
    _decide(client, promotion, "alice", "approved")
    _decide(client, promotion, "bob", "approved")
    serving = _wait(lambda: store.registry.get_active("helper", "prod"))
    assert host.requests and set(host.authorizations()) == {host.expected}

    repo.remove("bundles/helper/prod.json")
    repo.commit("take helper out of prod")  # no signature, no approval
    fetched = len(host.requests)
    woken = client.post("/v1/controller/reconcile", headers=_as("admin"))
    assert woken.status_code == 200, woken.text
    removal = _task(client, "Remove helper@")
    assert len(host.requests) > fetched  # the commit came through git http-backend
    assert removal["requests"][0]["prompt"] == (
        f"Remove helper@{serving.digest} (revision {serving.revision}) from prod?"
    )

    # held: prod keeps serving, and runs of its bundle still start there
    assert store.registry.get_active("helper", "prod").revision == serving.revision
    run = _run(client)
    assert run.status_code == 200 and run.json()["status"] == "paused", run.text
    status = _wait(
        lambda: (
            (got := client.get("/v1/controller/status", headers=_as("admin")).json())
            and got["prunes"]
            and got
        )
    )
    assert [(h["bundle"], h["environment"], h["state"]) for h in status["prunes"]] == [
        ("helper", "prod", "held")
    ]
    assert "prune_held" in {p["code"] for p in status["problems"]}
    view = client.get("/v1/registry/bundles/helper/prod", headers=_as("admin")).json()
    promoted = next(c for c in view["conditions"] if c["type"] == "Promoted")
    assert promoted["reason"] == "PruneHeld" and "0 of 2 approvals" in promoted["message"]

    # a reviewer who is no approver of prod cannot take it out; two approvers do
    refused = _answer(client, removal, "mallory", "approved")
    assert refused.status_code == 403 and refused.json()["error"] == "not_an_approver"
    first = _decide(client, removal, "alice", "approved")
    assert first["status"] == "pending_approval"
    assert store.registry.get_active("helper", "prod") is not None
    _decide(client, removal, "carol", "approved")
    _wait(lambda: store.registry.get_active("helper", "prod") is None)
    after = _run(client)
    assert after.status_code >= 400 and after.status_code < 500, after.text
    # the status is recorded as the pass ends, just after the registry write
    _wait(lambda: client.get("/v1/controller/status", headers=_as("admin")).json()["prunes"] == [])
    pruned = [
        e
        for e in store.audit.list_audit(AuditQuery(limit=200)).items
        if e.event_type == "bundle.pruned"
    ]
    assert pruned[0].payload["approved_by"] == ["alice", "carol"]
    decided = {
        (e.actor, e.event_type)
        for e in store.audit.list_audit(AuditQuery(limit=200)).items
        if e.event_type.startswith("prune.")
    }
    assert {("alice", "prune.approved"), ("carol", "prune.approved")} <= decided
