"""Every route, called by a caller of another project: the default project's runs, tasks,
audit events and bundles are never found (404) and never shown, and naming the default project
is ``404 project_not_found``, the answer for a project that does not exist.

The objects and requests are the role matrix's (``tests/service/test_role_matrix.py``: one
builder per route, so a new route joins both matrices); the intruder is ``admin@team-b``,
every scope of its own project."""

from __future__ import annotations

import re
from typing import Any

from starlette.testclient import TestClient

from kneo.service.auth import ROLE_SCOPES, SIGNED_IN, route_scopes
from kneo.store import RolloutQuery, RunQuery, TaskQuery
from tests.service.svc_helpers import auth_env, headers
from tests.service.test_role_matrix import FAILING_SPEC, _requests

INTRUDER = {"Authorization": "Bearer intruder-key-9"}
#: Routes that name no project object: the catalog (each caller's own), the platform's metrics.
PLATFORM_WIDE = {"/metrics", "/v1/projects", "/v1/projects/{project}"}
#: A path parameter that names an object of the project (404 when it is another's). A bundle
#: or a digest is a name: suspending, pinning or blocking it acts on the caller's own project's
#: registry (checked below: the default project's is untouched).
OBJECT = re.compile(r"\{(run_id|continuation_id|event_id|session_id|request_id|rollout_id)\}")


ROLES = sorted(ROLE_SCOPES)


def _client(make_client: Any) -> TestClient:
    env = auth_env()
    env["KNEO_SERV_API_KEYS"] += ";intruder:intruder-key-9:admin@team-b"
    for role in ROLES:  # one key of each role, in team-b only
        env["KNEO_SERV_API_KEYS"] += f";b-{role}:b-{role}-key:{role}@team-b"
    client: TestClient = make_client(env)
    made = client.post("/v1/projects", headers=headers("admin"), json={"name": "team-b"})
    assert made.status_code == 201, made.text
    with client.app.state.manager.store.transaction() as tx:
        tx.add_revision(
            "demo", "prod", digest="sha256:" + "0" * 64, status="active", spec=FAILING_SPEC
        )
    return client


def _defaults(client: TestClient) -> set[str]:
    """The default project's identifiers a leak would show: runs, tasks, requests, rollouts,
    bundles."""
    store = client.app.state.manager.store
    runs = store.runs.list_runs(RunQuery(limit=500)).items
    tasks = store.tasks.list_continuations(TaskQuery(limit=500, status=None)).items
    ids = {r.run_id for r in runs} | {c.continuation_id for c in tasks}
    ids |= {str(q.get("request_id")) for c in tasks for q in c.requests}
    ids |= {r.rollout_id for r in store.rollouts.list_rollouts(RolloutQuery(limit=500)).items}
    return ids | {"sha256:" + "0" * 64}


def test_another_projects_objects_are_never_found_or_shown(make_client: Any) -> None:
    client = _client(make_client)
    builders = _requests(client)
    failures: list[str] = []
    checked = 0
    for method, path, scope in route_scopes(client.app):
        if not scope or path in PLATFORM_WIDE or not path.startswith("/v1/"):
            continue
        checked += 1
        m, url, body = builders[(method, path)]()
        answer = client.request(m, url, json=body, headers=INTRUDER)
        asked = url + repr(body)  # an error may echo what the caller sent: that is no leak
        shown = [i for i in _defaults(client) if i in answer.text and i not in asked]
        if shown:
            failures.append(f"{method} {path} showed {shown[:3]}")
        if OBJECT.search(path) and answer.status_code != 404:
            failures.append(f"{method} {path} -> {answer.status_code}, expected 404")
        if answer.status_code == 403:
            failures.append(f"{method} {path} -> 403 (every scope is the intruder's here)")
    assert not failures, "\n".join(failures)
    assert checked > 50
    registry = client.app.state.manager.store.registry  # the default project's
    holds = registry.holds()
    assert ("demo", "prod") not in holds.suspensions and ("demo", "prod") not in holds.pins
    assert registry.get_active("demo", "prod") is not None


def test_naming_another_project_is_not_found_on_every_route(make_client: Any) -> None:
    client = _client(make_client)
    builders = _requests(client)
    naming = {**INTRUDER, "X-Kneo-Project": "default"}
    failures = []
    checked = 0
    for method, path, scope in route_scopes(client.app):
        if not scope or scope == SIGNED_IN or path in PLATFORM_WIDE or not path.startswith("/v1/"):
            continue
        checked += 1
        m, url, body = builders[(method, path)]()
        answer = client.request(m, url, json=body, headers=naming)
        if answer.status_code != 404 or answer.json().get("error") != "project_not_found":
            failures.append(f"{method} {path} -> {answer.status_code} {answer.text[:120]}")
    assert not failures, "\n".join(failures)
    assert checked > 50


def test_every_role_of_another_project_gets_403_or_404_as_documented(make_client: Any) -> None:
    """Each role of ``team-b``, on every route with the default project's objects: ``403``
    naming the scope where its role lacks it (checked first, as in its own project), else
    ``404`` for an object of another project; and ``404 project_not_found`` for naming it."""
    client = _client(make_client)
    builders = _requests(client)
    failures = []
    for method, path, scope in route_scopes(client.app):
        if not scope or scope == SIGNED_IN or path in PLATFORM_WIDE or not path.startswith("/v1/"):
            continue
        for role in ROLES:
            key = {"Authorization": f"Bearer b-{role}-key"}
            m, url, body = builders[(method, path)]()
            answer = client.request(m, url, json=body, headers=key)
            if scope not in ROLE_SCOPES[role]:
                if answer.status_code != 403 or answer.json().get("required_scope") != scope:
                    failures.append(f"{role} {method} {path} -> {answer.status_code}, not 403")
            elif OBJECT.search(path) and answer.status_code != 404:
                failures.append(f"{role} {method} {path} -> {answer.status_code}, not 404")
            named = client.request(m, url, json=body, headers={**key, "X-Kneo-Project": "default"})
            if named.status_code != 404 or named.json().get("error") != "project_not_found":
                failures.append(f"{role} {method} {path} naming default -> {named.status_code}")
    assert not failures, "\n".join(failures)
