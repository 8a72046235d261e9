"""Controller and registry routes: webhooks and reconciles reach the leader wherever it
runs (queued in the database), the status every replica shows, registry reads.

The controller here is a real one on the app's store, running its loop on a thread as if in
another process: the routes never call it, they queue requests it serves.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from svc_helpers import auth_env, headers

from kneo.store import AuditQuery

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "controller"))

from gitops_fixtures import Keys, Repo, spec

from kneo.clock import SystemClock
from kneo.controller.config import ControllerConfig
from kneo.controller.controller import Controller
from kneo.controller.source import GitSource

SECRET = "webhook-secret-value-0123"
SECRET_ENV = "KNEO_TEST_WEBHOOK_SECRET"
PUSH = json.dumps({"ref": "refs/heads/main"}).encode()


def _signed(body: bytes = PUSH, event: str = "push", secret: str = SECRET) -> dict[str, str]:
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": signature, "X-GitHub-Event": event}


class Elsewhere:
    """A controller over the app's store, its loop on a thread: "another process"."""

    def __init__(self, store: Any, repo: Repo, keys: Keys, tmp_path: Path) -> None:
        config = ControllerConfig(
            repo=repo.url,
            cache_dir=tmp_path / "cache",
            interval=3600,  # only requests make it reconcile
            poll_seconds=0.05,
            webhook_secret_env=SECRET_ENV,
        )
        source = GitSource(repo.url, ref="main", cache_dir=config.cache_dir)
        self.ctl = Controller(store, source, keys.keyring(), config=config, clock=SystemClock())
        self.stop = threading.Event()
        self.results: list[Any] = []
        self.thread = threading.Thread(
            target=self.ctl.run, args=(self.stop,), kwargs={"on_result": self.results.append}
        )

    def start(self) -> Elsewhere:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.results and time.monotonic() < deadline:
            time.sleep(0.02)
        assert self.results and self.results[0].leader
        return self

    def halt(self) -> None:
        self.stop.set()
        self.ctl.request_reconcile()
        self.thread.join(timeout=10)
        self.ctl.source.close()


@pytest.fixture
def elsewhere(make_client: Any, tmp_path: Path) -> Iterator[tuple[Any, Elsewhere, Repo, Keys]]:
    client = make_client({**auth_env(), SECRET_ENV: SECRET})
    repo = Repo(tmp_path / "git")
    repo.write("environments/dev.yaml", "version: v1\n")
    repo.commit("environments")
    keys = Keys(tmp_path / "keys")
    controller = Elsewhere(client.app.state.manager.store, repo, keys, tmp_path)
    yield client, controller, repo, keys
    if controller.thread.is_alive():
        controller.halt()


def test_without_any_controller_the_routes_say_so(make_client: Any) -> None:
    """No controller configured here and none ever reported: a 404 with a code that says so
    (permanent), not the 503 of a temporary outage."""
    client = make_client({**auth_env(), SECRET_ENV: SECRET})
    for r in (
        client.post("/v1/controller/webhook", content=PUSH, headers=_signed()),
        client.post("/v1/controller/reconcile", headers=headers("operator")),
    ):
        assert r.status_code == 404 and r.json()["error"] == "controller_not_configured", r.text
    status = client.get("/v1/controller/status", headers=headers("viewer")).json()
    assert status["configured"] is False and status["leader"] is None
    assert status["requests"] == {"queued": 0, "running": 0, "oldest_queued_at": None}


def test_webhook_and_reconcile_reach_a_leader_in_another_process(
    elsewhere: tuple[Any, Elsewhere, Repo, Keys],
) -> None:
    client, controller, repo, keys = elsewhere
    # the API-only replica's configuration names nothing: the controller publishes its
    # webhook secret's variable with its status, the replica reads the value from its own env
    client.app.state.controller_config = None
    controller.start()
    repo.write("bundles/helper/dev.json", keys.bundle("helper", "dev"))
    repo.commit("helper")
    bad = client.post("/v1/controller/webhook", content=PUSH, headers=_signed(secret="wrong"))
    assert bad.status_code == 401 and SECRET not in bad.text
    ping = client.post("/v1/controller/webhook", content=b"{}", headers=_signed(b"{}", "ping"))
    assert ping.status_code == 202 and ping.json()["accepted"] is False
    sent = time.monotonic()
    r = client.post("/v1/controller/webhook", content=PUSH, headers=_signed())
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["accepted"] is True and body["ref"] == "refs/heads/main"
    store = client.app.state.manager.store
    while store.registry.get_active("helper", "dev") is None and time.monotonic() - sent < 5:
        time.sleep(0.01)
    assert store.registry.get_active("helper", "dev") is not None
    assert time.monotonic() - sent < 1.0
    served = client.get(
        f"/v1/controller/requests/{body['request_id']}", headers=headers("viewer")
    ).json()
    deadline = time.monotonic() + 5
    while served["status"] != "done" and time.monotonic() < deadline:
        time.sleep(0.02)
        served = client.get(
            f"/v1/controller/requests/{body['request_id']}", headers=headers("viewer")
        ).json()
    assert served["kind"] == "webhook" and served["result"]["ok"] is True
    assert served["result"]["counts"] == {"activate": 1}

    done = client.post("/v1/controller/reconcile", headers=headers("operator"))
    assert done.status_code == 200, done.text
    assert done.json()["ok"] is True and done.json()["status"] == "done"
    assert done.json()["commit"] == repo.git("rev-parse", "HEAD")
    status = client.get("/v1/controller/status", headers=headers("viewer")).json()
    assert status["leader"] == controller.ctl.owner and status["configured"] is True
    assert status["requests"]["queued"] == 0 and status["is_leader"] is False

    controller.halt()  # stopped: the lock is released, nobody leads
    for r in (
        client.post("/v1/controller/webhook", content=PUSH, headers=_signed()),
        client.post("/v1/controller/reconcile", headers=headers("operator")),
    ):
        assert r.status_code == 503 and r.json()["error"] == "not_ready", r.text
        assert "Retry-After" in r.headers
    events = [
        e["event_type"]
        for e in client.get("/v1/audit-events", headers=headers("admin")).json()["events"]
    ]
    assert "controller.reconcile_requested" in events


def test_reconcile_answers_202_while_the_pass_has_not_ended(
    elsewhere: tuple[Any, Elsewhere, Repo, Keys],
) -> None:
    client, controller, _, _ = elsewhere
    controller.start()
    controller.halt()
    # a live lock, but nobody serving it (a leader that just died): the request waits
    store = client.app.state.manager.store
    assert store.locks.acquire_lock("controller:default", "gone:1", 30)
    r = client.post("/v1/controller/reconcile", headers=headers("operator"), params={"wait": 0.2})
    assert r.status_code == 202 and r.json()["status"] == "queued" and r.json()["result"] is None
    status = client.get("/v1/controller/status", headers=headers("viewer")).json()
    assert status["requests"]["queued"] == 1 and status["requests"]["oldest_queued_at"]
    too_long = client.post(
        "/v1/controller/reconcile", headers=headers("operator"), params={"wait": 1000}
    )
    assert too_long.status_code == 422


def test_registry_reads(make_client) -> None:
    client = make_client(auth_env())
    store = client.app.state.manager.store
    with store.transaction() as tx:
        tx.add_revision(
            "demo", "prod", digest="sha256:" + "1" * 64, status="active", spec={"version": "v1"}
        )
    listed = client.get("/v1/registry/bundles", headers=headers("viewer")).json()
    assert listed["count"] == 1 and "spec" not in listed["revisions"][0]
    one = client.get(
        "/v1/registry/bundles/demo/prod", headers=headers("reviewer"), params={"include_spec": True}
    ).json()
    assert one["active"]["revision"] == 1 and one["active"]["spec"] == {"version": "v1"}
    assert (
        client.get("/v1/registry/bundles/nope/prod", headers=headers("viewer")).status_code == 404
    )
    assert (
        client.post("/v1/controller/reconcile", headers=headers("reviewer")).json()[
            "required_scope"
        ]
        == "controller:write"
    )


def test_registry_list_pages_by_cursor(make_client) -> None:
    client = make_client(auth_env())
    store = client.app.state.manager.store
    for name in ("alpha", "beta", "gamma"):
        for env in ("dev", "prod"):
            with store.transaction() as tx:
                tx.add_revision(name, env, digest="sha256:" + "1" * 64, status="active", spec={})
    whole = client.get("/v1/registry/bundles", headers=headers("viewer")).json()
    assert whole["count"] == 6 and whole["next_cursor"] is None and whole["total"] == 6
    assert whole["total_capped"] is False
    seen, cursor = [], None
    while True:
        params = {"limit": 4, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/registry/bundles", headers=headers("viewer"), params=params).json()
        seen += [(r["bundle_name"], r["environment"]) for r in page["revisions"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [(r["bundle_name"], r["environment"]) for r in whole["revisions"]]
    assert len(seen) == 6 and seen == sorted(seen)
    prod = client.get(
        "/v1/registry/bundles",
        headers=headers("viewer"),
        params={"environment": "prod", "limit": 2, "include": "counts"},
    ).json()
    assert [r["bundle_name"] for r in prod["revisions"]] == ["alpha", "beta"] and prod["total"] == 3
    bad = client.get(
        "/v1/registry/bundles", headers=headers("viewer"), params={"cursor": "not-a-cursor"}
    )
    assert bad.status_code == 400 and bad.json()["field"] == "cursor"


def test_kneo_serv_webhook_secret_verifies_when_no_variable_is_named(make_client: Any) -> None:
    """A controller configured without ``webhook_secret_env`` reported to the database: the
    replicas verify with ``KNEO_SERV_WEBHOOK_SECRET`` from their own environment."""
    client = make_client({**auth_env(), "KNEO_SERV_WEBHOOK_SECRET": SECRET})
    store = client.app.state.manager.store
    with store.transaction() as tx:
        tx.set_controller_status(name="default", details={"webhook_secret_env": None})
    assert store.locks.acquire_lock("controller:default", "elsewhere:1:ctl", 30)
    bad = client.post("/v1/controller/webhook", content=PUSH, headers=_signed(secret="nope"))
    assert bad.status_code == 401 and SECRET not in bad.text
    good = client.post("/v1/controller/webhook", content=PUSH, headers=_signed())
    assert good.status_code == 202 and good.json()["accepted"] is True, good.text
    assert store.controller.controller_request_counts("default")["queued"] == 1


def test_day_two_routes_roll_back_pin_block_and_suspend_as_the_keys_person(
    elsewhere: tuple[Any, Elsewhere, Repo, Keys],
) -> None:
    client, controller, repo, keys = elsewhere
    controller.start()
    store = client.app.state.manager.store
    for prompt in ("good", "bad"):
        repo.write("bundles/helper/dev.json", keys.bundle("helper", "dev", spec(prompt)))
        repo.commit(prompt)
        r = client.post("/v1/controller/reconcile", headers=headers("operator"))
        assert r.status_code == 200, r.text
    key = "/v1/registry/bundles/helper/dev"
    op, viewer = headers("operator"), headers("viewer")

    assert client.post(key + "/suspend", json={"reason": "x"}, headers=viewer).status_code == 403
    r = client.post(key + "/suspend", json={"reason": "incident 42"}, headers=op)
    assert r.status_code == 200 and r.json()["suspended_by"] == "operator"
    [event] = store.audit.list_audit(AuditQuery(event_type="bundle.suspended", limit=10)).items
    assert (event.actor, event.payload["reason"]) == ("operator", "incident 42")
    assert client.get(key, headers=viewer).json()["suspended"] is True
    r = client.post(key + "/resume", headers=op)
    assert r.status_code == 200 and r.json()["changed"] is True
    [event] = store.audit.list_audit(AuditQuery(event_type="bundle.resumed", limit=10)).items
    assert event.actor == "operator"

    r = client.post(key + "/rollback", json={"to": 1, "reason": "5xx"}, headers=op)
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["revision"]) == ("rolled_back", 3)
    got = client.get(key, headers=viewer).json()
    assert got["active"]["revision"] == 3 and got["pin"]["pinned_by"] == "operator"
    assert client.post(key + "/rollback", json={"to": 0}, headers=op).status_code == 422
    r = client.post(key + "/rollback", json={"to": 1}, headers=op)
    assert r.status_code == 409 and r.json()["error"] == "already_active"
    r = client.post("/v1/registry/bundles/nope/dev/rollback", json={"to": 1}, headers=op)
    assert r.status_code == 404

    bad = got["revisions"][1]["digest"]  # revision 2
    r = client.post(
        "/v1/registry/blocked-digests", json={"digest": bad, "reason": "leaks"}, headers=op
    )
    assert r.status_code == 200 and r.json()["blocked_by"] == "operator"
    listed = client.get("/v1/registry/blocked-digests", headers=viewer).json()
    assert [b["digest"] for b in listed["blocked"]] == [bad]
    r = client.post(
        "/v1/registry/blocked-digests", json={"digest": "sha256:x", "reason": "y"}, headers=op
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    # unpinned, Git still asks for the bad digest: blocked, so revision 3 keeps serving
    assert client.delete(key + "/pin", headers=op).json()["changed"] is True
    client.post("/v1/controller/reconcile", headers=op)
    got = client.get(key, headers=viewer).json()
    assert got["active"]["revision"] == 3 and got["pin"] is None
    promoted = {c["type"]: c for c in got["conditions"]}["Promoted"]
    assert promoted["reason"] == "Blocked" and "blocked by operator: leaks" in promoted["message"]
    r = client.delete(f"/v1/registry/blocked-digests/{bad}", headers=op)
    assert r.json()["changed"] is True
