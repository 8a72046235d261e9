"""Every protected route x every built-in role: 2xx when the role holds the scope, else 403
naming it; without a key, 401. Legacy aliases carry the same scopes as their /v1 routes."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest
from failing_steps import FAILING_SPEC
from svc_helpers import KEYS, auth_env, headers

from kneo.service.auth import PLATFORM_SCOPES, ROLE_SCOPES, SIGNED_IN, route_scopes

SMOKE = "examples/smoke_human_workflow.yaml"
ROLES = sorted(KEYS)


def _paused(client) -> dict[str, Any]:
    body = client.post(
        "/v1/runs", headers=headers("admin"), json={"input": "hello", "spec_path": SMOKE}
    ).json()
    assert body["status"] == "paused", body
    return body


def _failed(client) -> str:
    body = client.post(
        "/v1/runs", headers=headers("admin"), json={"input": "x", "spec": FAILING_SPEC}
    ).json()
    assert body["status"] == "failed", body
    return str(body["run_id"])


Request = tuple[str, str, dict[str, Any] | None]


#: (method, /v1 path) -> a builder of a request that succeeds when authorized.
def _requests(client) -> dict[tuple[str, str], Callable[[], Request]]:
    shared = _paused(client)
    rid = shared["run_id"]
    cid = shared["continuation_id"]
    event = client.get("/v1/audit-events", headers=headers("admin")).json()["events"][0]["id"]

    def resume() -> Request:
        fresh = _paused(client)
        req = fresh["metadata"]["pending_human_request"]["request_id"]
        return (
            "POST",
            f"/v1/human-tasks/{fresh['continuation_id']}/resume",
            {"request_id": req, "decision": "approved"},
        )

    def decide() -> Request:
        method, url, body = resume()
        return method, url.replace("/resume", "/decisions"), {"decisions": [body]}

    def session() -> Request:
        body = {"input": "s", "spec_path": SMOKE, "session_id": "matrix"}
        client.post("/v1/runs", json=body, headers=headers("admin"))
        return ("GET", "/v1/sessions/matrix", None)

    spec_body = {"spec_path": SMOKE}
    made = itertools.count()

    def project() -> str:
        name = f"matrix-{next(made)}"
        created = client.post("/v1/projects", headers=headers("admin"), json={"name": name})
        assert created.status_code == 201, created.text
        return name

    return {
        ("GET", "/v1/projects"): lambda: ("GET", "/v1/projects", None),
        ("GET", "/v1/projects/{project}"): lambda: ("GET", "/v1/projects/default", None),
        ("POST", "/v1/projects"): lambda: ("POST", "/v1/projects", {"name": f"new-{next(made)}"}),
        ("PUT", "/v1/projects/{project}"): lambda: (
            "PUT",
            f"/v1/projects/{project()}",
            {"definition": None},
        ),
        ("DELETE", "/v1/projects/{project}"): lambda: ("DELETE", f"/v1/projects/{project()}", None),
        ("POST", "/v1/runs"): lambda: ("POST", "/v1/runs", {"input": "m", "spec_path": SMOKE}),
        ("POST", "/v1/specs/run"): lambda: (
            "POST",
            "/v1/specs/run",
            {"input": "m", "spec_path": SMOKE},
        ),
        ("GET", "/v1/runs"): lambda: ("GET", "/v1/runs", None),
        ("GET", "/v1/runs/{run_id}"): lambda: ("GET", f"/v1/runs/{rid}", None),
        ("POST", "/v1/runs/{run_id}/cancel"): lambda: (
            "POST",
            f"/v1/runs/{_paused(client)['run_id']}/cancel",
            None,
        ),
        ("GET", "/v1/runs/{run_id}/policy-report"): lambda: (
            "GET",
            f"/v1/runs/{rid}/policy-report",
            None,
        ),
        ("GET", "/v1/runs/{run_id}/recovery"): lambda: ("GET", f"/v1/runs/{rid}/recovery", None),
        ("GET", "/v1/runs/{run_id}/replay"): lambda: ("GET", f"/v1/runs/{rid}/replay", None),
        ("POST", "/v1/runs/{run_id}/continue"): lambda: (
            "POST",
            f"/v1/runs/{_failed(client)}/continue",
            None,
        ),
        ("GET", "/v1/runs/{run_id}/checkpoints"): lambda: (
            "GET",
            f"/v1/runs/{rid}/checkpoints",
            None,
        ),
        ("GET", "/v1/runs/{run_id}/checkpoints/diff"): lambda: (
            "GET",
            f"/v1/runs/{rid}/checkpoints/diff",
            None,
        ),
        ("GET", "/v1/runs/{run_id}/trace"): lambda: ("GET", f"/v1/runs/{rid}/trace", None),
        ("GET", "/v1/runs/{run_id}/graph"): lambda: ("GET", f"/v1/runs/{rid}/graph", None),
        ("GET", "/v1/sessions/{session_id}"): session,
        ("GET", "/v1/version"): lambda: ("GET", "/v1/version", None),
        ("GET", "/v1/runs/{run_id}/events"): lambda: ("GET", f"/v1/runs/{rid}/events", None),
        ("GET", "/v1/human-tasks"): lambda: ("GET", "/v1/human-tasks", None),
        ("GET", "/v1/human-tasks/{continuation_id}"): lambda: (
            "GET",
            f"/v1/human-tasks/{cid}",
            None,
        ),
        ("POST", "/v1/human-tasks/{continuation_id}/resume"): resume,
        ("POST", "/v1/human-tasks/{continuation_id}/decisions"): decide,
        ("POST", "/v1/specs/validate"): lambda: ("POST", "/v1/specs/validate", spec_body),
        ("POST", "/v1/specs/compile"): lambda: ("POST", "/v1/specs/compile", spec_body),
        ("POST", "/v1/specs/explain"): lambda: ("POST", "/v1/specs/explain", spec_body),
        ("GET", "/v1/skills"): lambda: ("GET", "/v1/skills", None),
        ("POST", "/v1/specs/graph"): lambda: ("POST", "/v1/specs/graph", spec_body),
        ("POST", "/v1/specs/policy-report"): lambda: ("POST", "/v1/specs/policy-report", spec_body),
        ("GET", "/v1/audit-events"): lambda: ("GET", "/v1/audit-events", None),
        ("GET", "/v1/audit-events/{event_id}"): lambda: (
            "GET",
            f"/v1/audit-events/{event}",
            None,
        ),
        ("GET", "/v1/security/credentials"): lambda: ("GET", "/v1/security/credentials", None),
        ("GET", "/v1/policies/environment"): lambda: ("GET", "/v1/policies/environment", None),
        ("GET", "/v1/policies/environment/{environment}"): lambda: (
            "GET",
            "/v1/policies/environment/qa",
            None,
        ),
        ("PUT", "/v1/policies/environment/{environment}"): lambda: (
            "PUT",
            "/v1/policies/environment/qa",
            {"enabled": True},
        ),
        ("POST", "/v1/policies/environment/{environment}/preview"): lambda: (
            "POST",
            "/v1/policies/environment/qa/preview",
            {"enabled": True},
        ),
        ("GET", "/v1/controller/status"): lambda: ("GET", "/v1/controller/status", None),
        ("POST", "/v1/controller/reconcile"): lambda: ("POST", "/v1/controller/reconcile", None),
        ("POST", "/v1/controller/plan"): lambda: ("POST", "/v1/controller/plan", None),
        ("GET", "/v1/controller/requests/{request_id}"): lambda: (
            "GET",
            "/v1/controller/requests/1",
            None,
        ),
        ("GET", "/metrics"): lambda: ("GET", "/metrics", None),
        ("GET", "/v1/registry/bundles"): lambda: ("GET", "/v1/registry/bundles", None),
        ("GET", "/v1/registry/bundles/{bundle}/{environment}"): lambda: (
            "GET",
            "/v1/registry/bundles/demo/prod",
            None,
        ),
        ("GET", "/v1/registry/bundles/{bundle}/{environment}/graph"): lambda: (
            "GET",
            "/v1/registry/bundles/demo/prod/graph",
            None,
        ),
        ("GET", "/v1/registry/bundles/{bundle}/{environment}/diff"): lambda: (
            "GET",
            "/v1/registry/bundles/demo/prod/diff?from=1&to=1",
            None,
        ),
        ("POST", "/v1/registry/bundles/{bundle}/{environment}/rollback"): lambda: (
            "POST",
            "/v1/registry/bundles/demo/prod/rollback",
            {"to": 1},
        ),
        ("POST", "/v1/registry/bundles/{bundle}/{environment}/pin"): lambda: (
            "POST",
            "/v1/registry/bundles/demo/prod/pin",
            {"reason": "hold"},
        ),
        ("DELETE", "/v1/registry/bundles/{bundle}/{environment}/pin"): lambda: (
            "DELETE",
            "/v1/registry/bundles/demo/prod/pin",
            None,
        ),
        ("POST", "/v1/registry/bundles/{bundle}/{environment}/suspend"): lambda: (
            "POST",
            "/v1/registry/bundles/demo/prod/suspend",
            {"reason": "incident"},
        ),
        ("POST", "/v1/registry/bundles/{bundle}/{environment}/resume"): lambda: (
            "POST",
            "/v1/registry/bundles/demo/prod/resume",
            None,
        ),
        ("GET", "/v1/registry/blocked-digests"): lambda: (
            "GET",
            "/v1/registry/blocked-digests",
            None,
        ),
        ("POST", "/v1/registry/blocked-digests"): lambda: (
            "POST",
            "/v1/registry/blocked-digests",
            {"digest": BLOCKED, "reason": "bad"},
        ),
        ("DELETE", "/v1/registry/blocked-digests/{digest}"): lambda: (
            "DELETE",
            f"/v1/registry/blocked-digests/{BLOCKED}",
            None,
        ),
        ("GET", "/v1/schedules"): lambda: ("GET", "/v1/schedules", None),
        ("GET", "/v1/schedules/{bundle}/{environment}/{name}"): lambda: (
            "GET",
            "/v1/schedules/demo/prod/nightly",
            None,
        ),
        **{
            ("POST", f"/v1/schedules/{{bundle}}/{{environment}}/{{name}}/{verb}"): (
                lambda verb=verb: ("POST", f"/v1/schedules/demo/prod/nightly/{verb}", None)
            )
            for verb in ("pause", "resume", "trigger")
        },
        ("GET", "/v1/rollouts"): lambda: ("GET", "/v1/rollouts", None),
        ("GET", "/v1/rollouts/{rollout_id}"): lambda: (
            "GET",
            f"/v1/rollouts/{_rollout(client)}",
            None,
        ),
        ("POST", "/v1/rollouts/{rollout_id}/promote"): lambda: (
            "POST",
            f"/v1/rollouts/{_rollout(client)}/promote",
            {"full": True},
        ),
        ("POST", "/v1/rollouts/{rollout_id}/abort"): lambda: (
            "POST",
            f"/v1/rollouts/{_rollout(client)}/abort",
            {"reason": "matrix"},
        ),
        ("POST", "/v1/rollouts/{rollout_id}/retry"): lambda: (
            "POST",
            f"/v1/rollouts/{_rollout(client, aborted=True)}/retry",
            None,
        ),
        ("GET", "/v1/notifications"): lambda: ("GET", "/v1/notifications", None),
        ("POST", "/v1/notifications/retry"): lambda: (
            "POST",
            "/v1/notifications/retry",
            {"status": "dead"},
        ),
    }


BLOCKED = "sha256:" + "1" * 64
_ROLLOUTS = itertools.count(1)


def _rollout(client: Any, *, aborted: bool = False) -> str:
    """A fresh rollout of demo in prod in the default project (no approvers: any key that
    may change the registry decides it); ``aborted``: one to retry."""
    rollout_id = f"ro_matrix_{next(_ROLLOUTS)}"
    with client.app.state.manager.store.transaction() as tx:
        record = tx.begin_rollout(
            rollout_id,
            bundle_name="demo",
            environment="prod",
            stable_revision=1,
            canary_revision=2,
            canary_digest=None,
            commit=None,
            weight=10,
            step=1,
            policy={"rollout": {"steps": [{"set_weight": 10}, {"set_weight": 100}]}},
        )
        if aborted:
            tx.move_rollout(record, status="aborted")
    return rollout_id


#: Authorized but answering something other than 2xx by design in this fixture.
NOT_2XX_WHEN_ALLOWED = {
    # revision 1 is the active one: already_active (the route itself is reached)
    ("POST", "/v1/registry/bundles/{bundle}/{environment}/rollback"): 409,
    ("POST", "/v1/controller/reconcile"): 404,  # no controller configured here
    ("POST", "/v1/controller/plan"): 404,  # no controller configured here
    ("GET", "/v1/controller/requests/{request_id}"): 404,  # no such request
    # demo declares no schedule (the route itself is reached)
    ("GET", "/v1/schedules/{bundle}/{environment}/{name}"): 404,
    ("POST", "/v1/schedules/{bundle}/{environment}/{name}/pause"): 404,
    ("POST", "/v1/schedules/{bundle}/{environment}/{name}/resume"): 404,
    ("POST", "/v1/schedules/{bundle}/{environment}/{name}/trigger"): 404,
}


def _holds(role: str, scope: str) -> bool:
    """Whether a key of ``role`` (the admin key: the platform administrator) may call a
    route needing ``scope`` in the default project."""
    if scope == SIGNED_IN:
        return True
    if scope in PLATFORM_SCOPES:
        return role == "admin"
    return scope in ROLE_SCOPES[role]


def test_route_by_role_matrix(make_client) -> None:
    client = make_client(auth_env())
    client.put("/v1/policies/environment/qa", headers=headers("admin"), json={})
    with client.app.state.manager.store.transaction() as tx:
        tx.add_revision(
            "demo", "prod", digest="sha256:" + "0" * 64, status="active", spec=FAILING_SPEC
        )
    builders = _requests(client)
    protected = [
        (m, p, s)
        for m, p, s in route_scopes(client.app)
        if s and (p.startswith("/v1/") or p == "/metrics")
    ]
    assert {(m, p) for m, p, _ in protected} == set(builders), "matrix must cover every route"
    failures: list[str] = []
    for method, path, scope in protected:
        m, url, body = builders[(method, path)]()
        r = client.request(m, url, json=body)
        if r.status_code != 401 or r.json()["error"] != "unauthorized":
            failures.append(f"{method} {path} without key -> {r.status_code}")
        for role in ROLES:
            m, url, body = builders[(method, path)]()
            r = client.request(m, url, json=body, headers=headers(role))
            allowed = _holds(role, scope)
            expected = NOT_2XX_WHEN_ALLOWED.get((method, path))
            if allowed and expected is not None:
                if r.status_code != expected:
                    failures.append(f"{method} {path} as {role} -> {r.status_code}")
            elif allowed and not 200 <= r.status_code < 300:
                failures.append(f"{method} {path} as {role} -> {r.status_code} {r.text[:200]}")
            if not allowed and (r.status_code != 403 or r.json().get("required_scope") != scope):
                failures.append(f"{method} {path} as {role} -> {r.status_code}, expected 403")
    assert not failures, "\n".join(failures)


def test_legacy_aliases_have_v1_scopes_and_are_hidden(make_client) -> None:
    client = make_client()
    rows = route_scopes(client.app)
    v1 = {  # the project catalog is new: served under /v1 only
        (m, p[3:]): s
        for m, p, s in rows
        if p.startswith("/v1/") and not p.startswith("/v1/projects") and s
    }
    legacy = {(m, p): s for m, p, s in rows if not p.startswith("/v1/") and p != "/metrics" and s}
    assert legacy == v1
    documented = client.get("/openapi.json").json()["paths"]
    assert not [
        p
        for p in documented
        if not p.startswith("/v1/") and p not in ("/livez", "/healthz", "/readyz")
    ]


@pytest.mark.parametrize("path", ["/livez", "/healthz", "/readyz"])
def test_health_is_unauthenticated(make_client, path: str) -> None:
    assert make_client(auth_env()).get(path).status_code == 200
