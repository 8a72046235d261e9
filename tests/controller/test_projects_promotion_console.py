"""Projects under one controller, seen from people: the same signed bundle promoted in two
projects gets an approval task in each (continuation ids are unique across projects), and
the console's registry page shows each project's source for every role and every project
URL, with the service's real :class:`~kneo.controller.projects.ProjectControllers` (SQLite
and PostgreSQL)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from gitops_fixtures import documented
from starlette.testclient import TestClient
from test_projects_controller import (
    KEYS,
    PUSH,
    Service,
    Team,
    agent,
    eventually,
    headers,
    signed,
    teams,  # noqa: F401  (the fixture)
)

from kneo.controller.operations import rollback_task_id
from kneo.controller.promotion import (
    PromotionGate,
    open_approval_task,
    override_task_id,
    task_id,
)
from kneo.controller.ratchet import policy_task_id
from kneo.projects import DEFAULT_PROJECT_ID

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
LEADER = re.compile(r"<th>leader</th><td>([^<]*)</td>")
COMMIT = re.compile(r"<th>last fetched commit</th><td><code>([^<]*)</code>")


def promotion_tasks(service: Service, project: str) -> list[dict[str, Any]]:
    answer = service.client.get(
        "/v1/human-tasks", params={"kind": "promotion"}, headers=headers("alice", project)
    )
    assert answer.status_code == 200, answer.text
    return list(answer.json()["tasks"])


def test_one_signed_bundle_promoted_in_two_projects_gets_a_task_in_each(
    teams: tuple[Service, Team, Team],  # noqa: F811
    tmp_path: Path,
) -> None:
    """team-b watches team-a's repository (the same signed bytes, the same digest): each
    project's prod waits for its own approval task; approving each promotes each."""
    service, a, _ = teams
    for env in ("staging", "prod"):
        a.repo.write(f"bundles/mailer/{env}.json", a.keys.bundle("mailer", env, agent("mail")))
    a.repo.commit("mailer")
    service.define("team-b", a.definition(tmp_path / "cache"), new=False)
    assert eventually(
        lambda: service.store.for_project("team-b").registry.get_active("alpha", "dev")
    )
    for project, who in (("team-a", "a-op"), ("team-b", "b-op")):
        done = service.client.post("/v1/controller/reconcile", headers=headers(who, project))
        assert done.status_code == 200 and done.json()["ok"], done.text
    [task_a] = promotion_tasks(service, "team-a")
    [task_b] = promotion_tasks(service, "team-b")
    assert task_a["continuation_id"] != task_b["continuation_id"]
    digest = service.store.for_project("team-a").registry.get_active("mailer", "staging").digest
    assert (
        service.store.for_project("team-b").registry.get_active("mailer", "staging").digest
        == digest
    )  # one signed bundle
    for project in ("team-a", "team-b"):  # no pass failed on the other's task
        status = service.status(project)
        assert status["last_error"] is None, status
        assert not status.get("problems"), status
    # a task is its project's: team-a's id is not found in team-b
    other = service.client.get(
        f"/v1/human-tasks/{task_a['continuation_id']}", headers=headers("alice", "team-b")
    )
    assert other.status_code == 404
    for project, task in (("team-b", task_b), ("team-a", task_a)):
        decided = service.client.post(
            f"/v1/human-tasks/{task['continuation_id']}/resume",
            headers=headers("alice", project),
            json={"request_id": task["requests"][0]["request_id"], "decision": "approved"},
        )
        assert decided.status_code == 200 and decided.json()["status"] == "approved", decided.text
    for project in ("team-a", "team-b"):
        registry = service.store.for_project(project).registry
        active = eventually(lambda r=registry: r.get_active("mailer", "prod"), timeout=10)
        assert active is not None and active.digest == digest, project


def test_a_task_opened_before_ids_were_scoped_is_superseded_by_its_projects_own(
    teams: tuple[Service, Team, Team],  # noqa: F811
) -> None:
    """A non-default project's task stored under the single-project id (before ids were
    scoped) is closed as superseded when its scoped task opens; the default project's ids
    are those of a single-project install."""
    service, _, _ = teams
    store = service.store.for_project("team-b")
    legacy = task_id("old", "prod", "sha256:" + "1" * 64)
    now = store.clock.now()
    with store.transaction() as tx:
        open_approval_task(
            tx,
            legacy,
            wait_key="promotion:prod",
            step_id="promotion",
            question="Promote old?",
            context={"type": "promotion", "approvers": ["alice"]},
            name="old",
            environment="prod",
            now=now,
        )
    gate = PromotionGate(store.project_id)
    with store.transaction() as tx:
        scoped = gate.open(
            tx,
            name="old",
            environment="prod",
            digest="sha256:" + "1" * 64,
            revision=1,
            approvers=("alice",),
            min_approvals=1,
            now=now,
        )
    assert scoped != legacy and scoped.startswith("cont_promo_")
    assert store.tasks.get_continuation(legacy).status == "resolved"
    assert store.tasks.get_continuation(legacy).context["outcome"] == "superseded"
    assert store.tasks.get_continuation(scoped).status == "pending"
    assert PromotionGate(DEFAULT_PROJECT_ID).task_id("old", "prod", "d") == task_id(
        "old", "prod", "d"
    )


class Browser:
    """One person signed in to the console with their key."""

    def __init__(self, app: Any, who: str) -> None:
        self.client = TestClient(app, base_url="http://testserver", raise_server_exceptions=False)
        page = self.client.get("/ui/login")
        token = CSRF.search(page.text)
        assert token, page.text[:500]
        signed = self.client.post(
            "/ui/login",
            data={"api_key": KEYS[who][0], "csrf_token": token.group(1), "next": ""},
            follow_redirects=False,
        )
        assert signed.status_code == 303, signed.text

    def get(self, path: str) -> Any:
        return self.client.get(path, follow_redirects=False)


#: Who holds a grant where: every role, in team-a, team-b or default.
HOLDS = {
    "a-op": {"team-a"},
    "b-op": {"team-b"},
    "a-adm": {"team-a"},
    "a-svc": {"team-a"},
    "a-view": {"team-a"},
    "alice": {"team-a", "team-b"},
    "dflt": {"default"},
    "d-view": {"default"},
    "plat": {"default", "team-a", "team-b"},
}


def test_the_registry_page_shows_each_projects_controller_for_every_role(
    teams: tuple[Service, Team, Team],  # noqa: F811
) -> None:
    service, a, b = teams
    commits = {"team-a": a.repo.git("rev-parse", "HEAD"), "team-b": b.repo.git("rev-parse", "HEAD")}
    for who, holds in HOLDS.items():
        person = Browser(service.client.app, who)
        bare = person.get("/ui/registry")
        assert bare.status_code in (200, 303), (who, bare.status_code, bare.text[:500])
        for project in ("default", "team-a", "team-b", "nobody"):
            page = person.get(f"/ui/p/{project}/registry")
            if project not in holds:
                assert page.status_code == 404, (who, project, page.status_code)
                continue
            assert page.status_code == 200, (who, project, page.text[:1000])
            leader = LEADER.search(page.text)
            commit = COMMIT.search(page.text)
            assert leader and commit, page.text[:2000]
            if project == "default":  # the host has no source here
                assert (leader.group(1), commit.group(1)) == ("none", "—")
            else:
                assert leader.group(1) == service.controllers.owner
                assert commit.group(1) == commits[project]
                assert "alpha" in page.text if project == "team-a" else "beta" in page.text


def test_the_registry_and_controller_answers_are_the_documented_ones(
    teams: tuple[Service, Team, Team],  # noqa: F811
) -> None:
    """The operations only a controller's registry answers, each validated against
    docs/openapi.json (tests/service/test_response_schemas.py checks the others)."""
    service, a, _ = teams
    a.publish("alpha", "A two")
    adm, op = headers("a-adm", "team-a"), headers("a-op", "team-a")
    client = service.client
    key = "/v1/registry/bundles/alpha/dev"
    done = documented("controller-reconcile", client.post("/v1/controller/reconcile", headers=op))
    documented(
        "controller-requests-get",
        client.get(f"/v1/controller/requests/{done['request_id']}", headers=op),
    )
    documented("controller-plan", client.post("/v1/controller/plan", headers=op))
    hook = client.post(
        "/v1/projects/team-a/controller/webhook", content=PUSH, headers=signed("team-a")
    )
    assert documented("controller-webhook", hook)["accepted"] is True
    assert (
        documented("registry-bundles-get", client.get(key, headers=op))["active"]["revision"] == 2
    )
    diff = client.get(key + "/diff", params={"from": 1, "to": 2}, headers=op)
    assert documented("registry-bundles-diff", diff)["from"] == 1
    documented("registry-bundles-graph", client.get(key + "/graph", headers=op))
    documented("registry-bundles-suspend", client.post(key + "/suspend", headers=adm, json={}))
    documented("registry-bundles-resume", client.post(key + "/resume", headers=adm, json={}))
    documented("registry-bundles-pin", client.post(key + "/pin", headers=adm, json={}))
    documented("registry-bundles-unpin", client.delete(key + "/pin", headers=adm))
    back = client.post(key + "/rollback", headers=adm, json={"to": 1})
    assert documented("registry-bundles-rollback", back)["status"] == "rolled_back"


def test_every_approval_task_id_is_scoped_to_its_project() -> None:
    """Promotion, freeze override, policy change and rollback: another project's id differs,
    the default project's is the single-project id it always was (stored tasks keep it)."""
    makers = {
        "promotion": lambda p: task_id("b", "prod", "sha256:1", p),
        "override": lambda p: override_task_id("b", "prod", "sha256:1", p),
        "policy": lambda p: policy_task_id("prod", "policy:sha256:2", p),
        "rollback": lambda p: rollback_task_id("b", "prod", 1, 2, p),
    }
    for kind, make in makers.items():
        assert len({make(DEFAULT_PROJECT_ID), make(2), make(3)}) == 3, kind
    legacy = hashlib.sha256(b"b\0prod\0sha256:1").hexdigest()[:20]
    assert task_id("b", "prod", "sha256:1") == f"cont_promo_{legacy}"
    rolled = hashlib.sha256(b"b\0prod\x001\x002").hexdigest()[:20]
    assert rollback_task_id("b", "prod", 1, 2) == f"cont_rollback_{rolled}"
