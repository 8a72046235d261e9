"""Controller and registry routes: webhook signatures, reconcile, registry reads."""

from __future__ import annotations

import hashlib
import hmac
import json
from types import SimpleNamespace
from typing import Any

from svc_helpers import auth_env, headers


class FakeController:
    """Implements the seam the routes use (status, reconcile_once, request_reconcile)."""

    def __init__(self) -> None:
        self.config = SimpleNamespace(webhook_secret_env="KNEO_TEST_WEBHOOK_SECRET")
        self.woken = 0

    def request_reconcile(self) -> None:
        self.woken += 1

    def status(self) -> dict[str, Any]:
        return {"leader": "me", "last_error": None}

    def reconcile_once(self) -> Any:
        return SimpleNamespace(ok=True, to_dict=lambda: {"ok": True, "actions": []})


def test_webhook_needs_a_valid_signature(make_client) -> None:
    secret = "webhook-secret-value"
    client = make_client({**auth_env(), "KNEO_TEST_WEBHOOK_SECRET": secret})
    controller = FakeController()
    client.app.state.controller = controller
    body = json.dumps({"ref": "refs/heads/main"}).encode()
    good = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    r = client.post(
        "/v1/controller/webhook",
        content=body,
        headers={"X-Hub-Signature-256": "sha256=" + "0" * 64, "X-GitHub-Event": "push"},
    )
    assert r.status_code == 401 and controller.woken == 0
    assert secret not in r.text
    r = client.post(
        "/v1/controller/webhook",
        content=body,
        headers={"X-Hub-Signature-256": good, "X-GitHub-Event": "push"},
    )
    assert r.status_code == 202 and r.json()["accepted"] is True and controller.woken == 1
    r = client.post("/v1/controller/reconcile", headers=headers("operator"))
    assert r.status_code == 200 and r.json()["ok"] is True
    assert client.get("/v1/controller/status", headers=headers("viewer")).json()["leader"] == "me"


def test_registry_reads(make_client) -> None:
    client = make_client(auth_env())
    store = client.app.state.manager.store
    store.add_revision(
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
            store.add_revision(name, env, digest="sha256:" + "1" * 64, status="active", spec={})
    whole = client.get("/v1/registry/bundles", headers=headers("viewer")).json()
    assert whole["count"] == 6 and whole["next_cursor"] is None and whole["total"] is None
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
