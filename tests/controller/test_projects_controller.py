"""Every project's Git source under one leader, on one service (SQLite and PostgreSQL).

Two teams, two repositories, two keyrings: each project's definition names its source
(``controller:``), the service's controller (:class:`~kneo.controller.projects.
ProjectControllers`, the app's ``controller``) reconciles both into each project's own
registry, and every route answers for the request's project.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from gitops_fixtures import Keys, Repo
from starlette.testclient import TestClient

from kneo.controller.config import ControllerConfig
from kneo.controller.projects import ProjectControllers
from kneo.controller.runner import ControllerRunner
from kneo.controller.source import GitSource
from kneo.errors import KneoError
from kneo.platform import create_platform
from kneo.service import create_app
from kneo.settings import Settings
from kneo.spec.project import ProjectContext
from kneo.store import Store, open_store

SECRETS = {"team-a": "hook-secret-of-team-a-0123", "team-b": "hook-secret-of-team-b-4567"}
HOOK_ENV = {"team-a": "KNEO_TEST_HOOK_A", "team-b": "KNEO_TEST_HOOK_B"}
KEYS = {
    "a-op": ("key-a-operator-1", "operator@team-a"),
    "b-op": ("key-b-operator-3", "operator@team-b"),
    "plat": ("key-platform-6", "platform-admin"),
    "alice": ("key-alice-8", "reviewer@team-a,reviewer@team-b"),
    "dflt": ("key-default-7", "operator"),
    # one of every other role (the console's registry page is every role's)
    "a-adm": ("key-a-admin-9", "admin@team-a"),
    "a-svc": ("key-a-service-10", "service@team-a"),
    "a-view": ("key-a-viewer-11", "viewer@team-a"),
    "d-view": ("key-default-viewer-12", "viewer"),
}
#: The console's session secret (its pages are served beside the API).
CONSOLE_SECRET = "projects-controller-console-secret"
#: A team's environments: prod's promotions wait for alice (the policy in force from the
#: first commit: a later change would need signed policy approvals).
ENVIRONMENTS = {
    "dev": "version: v1\n",
    "staging": "version: v1\n",
    "prod": "version: v1\npromotion:\n  require_approved_in: staging\n"
    "  require_human_approval: true\n  approvers: [alice]\n",
}
PUSH = json.dumps({"ref": "refs/heads/main"}).encode()


def agent(prompt: str) -> dict[str, Any]:
    """An agent a run can execute without a model provider (the scripted dummy)."""
    return {
        "version": "v1",
        "agent": {
            "name": "helper",
            "system_prompt": prompt,
            "model": {"provider": "dummy", "name": "dummy", "script": [{"text": prompt}]},
            "tools": {"include": []},
        },
    }


def headers(who: str, project: str | None = None) -> dict[str, str]:
    out = {"Authorization": f"Bearer {KEYS[who][0]}"}
    if project is not None:
        out["X-Kneo-Project"] = project
    return out


def signed(project: str, body: bytes = PUSH, secret: str | None = None) -> dict[str, str]:
    key = (secret or SECRETS[project]).encode()
    signature = "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": signature, "X-GitHub-Event": "push"}


def eventually(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


class Team:
    """One team's repository and keyring."""

    def __init__(self, root: Path, name: str) -> None:
        self.name = name
        self.repo = Repo(root / name / "git")
        self.keys = Keys(root / name / "keys")
        for env, text in ENVIRONMENTS.items():
            self.repo.write(f"environments/{env}.yaml", text)

    def publish(self, bundle: str, prompt: str, *, key: Any = "ci") -> str:
        self.repo.write(
            f"bundles/{bundle}/dev.json", self.keys.bundle(bundle, "dev", agent(prompt), key=key)
        )
        return self.repo.commit(f"{bundle}: {prompt}")

    def definition(self, cache: Path, **extra: Any) -> dict[str, Any]:
        return {
            "controller": {
                "repo": self.repo.url,
                "branch": "main",
                "interval": 3600,  # only the first pass and wake-ups reconcile
                "trusted_keys": str(self.keys.trusted_dir),
                "webhook_secret_env": HOOK_ENV.get(self.name),
                "cache_dir": str(cache),
                **extra,
            }
        }


class Service:
    """The app over one store, its controller reconciling every project's source."""

    def __init__(self, client: TestClient, store: Store, controllers: ProjectControllers) -> None:
        self.client = client
        self.store = store
        self.controllers = controllers
        #: the controller's loop, as ``kneo service serve`` runs it
        self.runner = ControllerRunner(controllers)

    def status(self, project: str | None) -> dict[str, Any]:
        who = {"team-a": "a-op", "team-b": "b-op"}.get(project or "", "dflt")
        r = self.client.get("/v1/controller/status", headers=headers(who, project))
        assert r.status_code == 200, r.text
        return dict(r.json())

    def active(self, project: str, bundle: str) -> Any:
        return self.store.for_project(project).registry.get_active(bundle, "dev")

    def define(self, name: str, definition: dict[str, Any], *, new: bool = True) -> None:
        if new:
            r = self.client.post(
                "/v1/projects",
                headers=headers("plat"),
                json={"name": name, "definition": definition},
            )
        else:
            r = self.client.put(
                f"/v1/projects/{name}", headers=headers("plat"), json={"definition": definition}
            )
        assert r.status_code in (200, 201), r.text


def _database(request: pytest.FixtureRequest) -> str | None:
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_database")())
    return None


@pytest.fixture(params=["sqlite", "postgres"])
def teams(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Service, Team, Team]]:
    """A started service (its host project has no source) with team-a and team-b, each
    watching its own repository, both reconciled once."""
    host = tmp_path / "host"
    (host / ".kneo").mkdir(parents=True)
    (host / ".kneo" / "config.yaml").write_text("version: v1\n")
    monkeypatch.chdir(host)
    env = {
        "KNEO_SERV_AUTH_ENABLED": "true",
        "KNEO_SERV_API_KEYS": ";".join(f"{n}:{k}:{r}" for n, (k, r) in KEYS.items()),
        "KNEO_SERV_PROFILES_PATH": str(tmp_path / "profiles.json"),
        "KNEO_SERV_CONSOLE_SECRET": CONSOLE_SECRET,
        **{HOOK_ENV[t]: SECRETS[t] for t in SECRETS},
    }
    settings = Settings.from_env(env)
    store = open_store(_database(request), settings=settings, state_dir=tmp_path / "state")
    context = ProjectContext.discover(settings=settings)
    manager = create_platform(settings, context, store=store)
    config = ControllerConfig(lease_seconds=3.0, poll_seconds=0.05)
    controllers = ProjectControllers(store, config, settings, host=context, catalog_seconds=0.2)
    app = create_app(
        False, settings=settings, manager=manager, start_worker=False, controller=controllers
    )
    client = TestClient(app, raise_server_exceptions=False)
    client.__enter__()
    service = Service(client, store, controllers)
    service.runner.start()
    a, b = Team(tmp_path, "team-a"), Team(tmp_path, "team-b")
    a.publish("alpha", "A one")
    b.publish("beta", "B one")
    for team in (a, b):
        service.define(team.name, team.definition(tmp_path / "cache"))
    assert eventually(
        lambda: service.active("team-a", "alpha") and service.active("team-b", "beta")
    )
    # and each pass recorded (its status is written after its registry writes)
    assert eventually(
        lambda: all(service.status(t)["last_fetched_commit"] for t in ("team-a", "team-b"))
    )
    yield service, a, b
    service.runner.stop()
    client.__exit__(None, None, None)
    manager.close()


def test_each_project_promotes_its_own_bundles_and_reports_its_own_status(
    teams: tuple[Service, Team, Team],
) -> None:
    service, a, b = teams
    assert service.active("team-a", "beta") is None and service.active("team-b", "alpha") is None
    assert service.active("default", "alpha") is None and service.active("default", "beta") is None
    status_a, status_b = service.status("team-a"), service.status("team-b")
    assert status_a["configured"] and status_b["configured"]
    assert status_a["last_fetched_commit"] == a.repo.git("rev-parse", "HEAD")
    assert status_b["last_fetched_commit"] == b.repo.git("rev-parse", "HEAD")
    assert status_a["counts"] == {"activate": 1} and status_b["counts"] == {"activate": 1}
    assert status_a["leader"] == status_b["leader"] == service.controllers.owner
    assert status_a["is_leader"] and status_a["last_error"] is None
    # the host has no source: the default project answers as a deployment without one
    default = service.status(None)
    assert default["configured"] is False and default["leader"] is None
    r = service.client.post("/v1/controller/reconcile", headers=headers("dflt"))
    assert r.status_code == 404 and r.json()["error"] == "controller_not_configured"
    # the registry routes read the request's project's registry
    listed = service.client.get("/v1/registry/bundles", headers=headers("a-op", "team-a"))
    assert [i["bundle_name"] for i in listed.json()["revisions"]] == ["alpha"], listed.text
    other = service.client.get("/v1/registry/bundles/alpha/dev", headers=headers("b-op", "team-b"))
    assert other.status_code == 404
    # a bundle run resolves in the run's own project only
    ran = service.client.post(
        "/v1/runs",
        headers=headers("a-op", "team-a"),
        json={"bundle": "alpha", "environment": "dev", "input": "hi"},
    )
    assert ran.status_code in (200, 201) and ran.json()["status"] == "succeeded", ran.text
    assert ran.json()["output_text"] == "A one"  # team-a's revision of its own bundle
    refused = service.client.post(
        "/v1/runs",
        headers=headers("b-op", "team-b"),
        json={"bundle": "alpha", "environment": "dev", "input": "hi"},
    )
    assert refused.status_code == 404, refused.text


def test_a_webhook_for_a_reconciles_a_and_leaves_b_untouched(
    teams: tuple[Service, Team, Team],
) -> None:
    service, a, b = teams
    before_b = service.status("team-b")
    a.publish("alpha", "A two")
    b.publish("beta", "B two")
    wrong = service.client.post(
        "/v1/projects/team-a/controller/webhook", content=PUSH, headers=signed("team-b")
    )
    assert wrong.status_code == 401  # B's secret does not sign A's webhook
    sent = service.client.post(
        "/v1/projects/team-a/controller/webhook", content=PUSH, headers=signed("team-a")
    )
    assert sent.status_code == 202 and sent.json()["accepted"] is True, sent.text
    assert eventually(lambda: service.active("team-a", "alpha").revision == 2)
    served = eventually(
        lambda: (
            (
                r := service.client.get(
                    f"/v1/controller/requests/{sent.json()['request_id']}",
                    headers=headers("a-op", "team-a"),
                ).json()
            )["status"]
            == "done"
            and r
        )
    )
    assert served["result"]["ok"] and served["result"]["counts"] == {"activate": 1}
    # B's request ids are its own: A's request is not found there
    hidden = service.client.get(
        f"/v1/controller/requests/{sent.json()['request_id']}", headers=headers("b-op", "team-b")
    )
    assert hidden.status_code == 404
    time.sleep(0.3)  # B would have had time to run, had it been woken
    assert service.active("team-b", "beta").revision == 1
    after_b = service.status("team-b")
    assert after_b["last_reconcile_started_at"] == before_b["last_reconcile_started_at"]
    assert after_b["last_fetched_commit"] == before_b["last_fetched_commit"]
    # the host's webhook path: the default project has no source here
    host = service.client.post("/v1/controller/webhook", content=PUSH, headers=signed("team-a"))
    assert host.status_code == 404 and host.json()["error"] == "controller_not_configured"
    for path in ("/v1/projects/nobody/controller/webhook",):
        unknown = service.client.post(path, content=PUSH, headers=signed("team-a"))
        assert unknown.status_code == 404 and unknown.json()["error"] == "project_not_found"
    # an API reconcile in B reconciles B
    done = service.client.post("/v1/controller/reconcile", headers=headers("b-op", "team-b"))
    assert done.status_code == 200 and done.json()["ok"], done.text
    assert done.json()["commit"] == b.repo.git("rev-parse", "HEAD")
    assert service.active("team-b", "beta").revision == 2


def test_a_bad_signature_in_b_does_not_affect_a(teams: tuple[Service, Team, Team]) -> None:
    service, a, b = teams
    b.publish("beta", "forged", key=b.keys.forged)  # the repository's, not the keyring's
    b.repo.write("bundles/gamma/dev.json", a.keys.bundle("gamma", "dev", agent("A's key")))
    b.repo.commit("signed with team-a's key, which team-b does not trust")
    a.publish("alpha", "A two")
    for team, who in ((b, "b-op"), (a, "a-op")):
        r = service.client.post("/v1/controller/reconcile", headers=headers(who, team.name))
        assert r.status_code == 200, r.text
    assert service.active("team-a", "alpha").revision == 2
    assert service.status("team-a")["last_error"] is None
    assert service.active("team-b", "beta").revision == 1  # the earlier revision serves
    assert service.active("team-b", "gamma") is None
    view = service.client.get("/v1/registry/bundles/beta/dev", headers=headers("b-op", "team-b"))
    conditions = {c["type"]: c for c in view.json()["conditions"]}
    assert conditions["Verified"]["status"] == "False", view.text
    assert conditions["Ready"]["reason"] == "ServingPrevious"
    a_view = service.client.get("/v1/registry/bundles/alpha/dev", headers=headers("a-op", "team-a"))
    assert {c["type"]: c["status"] for c in a_view.json()["conditions"]}["Verified"] == "True"


def test_a_source_that_cannot_be_built_fails_alone(
    teams: tuple[Service, Team, Team], tmp_path: Path
) -> None:
    """B's definition names a keyring that is not there: B's status says so (stage
    ``config``), A keeps reconciling."""
    service, a, b = teams
    broken = b.definition(tmp_path / "cache")
    broken["controller"]["trusted_keys"] = str(tmp_path / "no-such-keyring")
    service.define("team-b", broken, new=False)
    status = eventually(lambda: (s := service.status("team-b"))["last_error"] and s)
    assert "trusted" in status["last_error"] or "keyring" in status["last_error"], status
    a.publish("alpha", "A two")
    r = service.client.post("/v1/controller/reconcile", headers=headers("a-op", "team-a"))
    assert r.status_code == 200 and r.json()["ok"], r.text
    assert service.status("team-a")["last_error"] is None


def test_a_project_defined_at_run_time_starts_reconciling(
    teams: tuple[Service, Team, Team], tmp_path: Path
) -> None:
    service, a, _ = teams
    c = Team(tmp_path, "team-c")
    c.publish("gamma", "C one")
    service.define("team-c", c.definition(tmp_path / "cache", webhook_secret_env=None))
    assert eventually(lambda: service.active("team-c", "gamma"))
    # redefined: now it watches team-a's repository, with team-a's keys
    service.define("team-c", a.definition(tmp_path / "cache"), new=False)
    assert eventually(lambda: service.active("team-c", "alpha"))
    assert service.active("team-c", "gamma") is None  # pruned: no longer in its source
    # a project without a source is none to an anonymous caller
    service.define("team-d", {})
    nothing = service.client.post(
        "/v1/projects/team-d/controller/webhook", content=PUSH, headers=signed("team-a")
    )
    assert nothing.status_code == 404 and nothing.json()["error"] == "project_not_found"
    assert "team-d" not in service.controllers.sources()


def test_only_due_or_woken_sources_run(teams: tuple[Service, Team, Team]) -> None:
    """A pass runs the sources that are due or woken, nothing of the others."""
    service, _, _ = teams
    controllers = ProjectControllers(
        service.store,
        ControllerConfig(lease_seconds=3.0, poll_seconds=0.05, name="other"),
        service.controllers.settings,
        host=service.controllers.host,
        catalog_seconds=10_000,
    )
    try:
        assert sorted(controllers.sources()) == ["team-a", "team-b"]
        first = controllers.reconcile_due()
        assert sorted(r.project for r in first) == ["team-a", "team-b"]  # both due at once
        assert controllers.reconcile_due() == []  # neither due for an hour
        controllers.request_reconcile("team-b")
        assert [r.project for r in controllers.reconcile_due()] == ["team-b"]
        assert 3500 < controllers.idle_seconds() <= 3600
    finally:
        controllers.step_down()
        controllers.close()


def test_the_standby_takes_over_every_project(teams: tuple[Service, Team, Team]) -> None:
    """A second process's controller stands by; when the leader's lease lapses (it died
    without releasing its lock), the standby reconciles every project's source."""
    service, a, b = teams
    leader = service.controllers
    standby = ProjectControllers(
        service.store, leader.config, leader.settings, host=leader.host, catalog_seconds=0.2
    )
    stop = threading.Event()
    results: list[Any] = []
    thread = threading.Thread(
        target=standby.run, args=(stop,), kwargs={"on_result": results.append}
    )
    thread.start()
    try:
        assert eventually(lambda: results)
        assert results[0].leader is False and results[0].stats["leader"] == leader.owner
        leader.leadership.step_down = lambda: None  # type: ignore[method-assign]
        # it dies: its loop ends (a pass in progress first), its lock stays until the lease lapses
        service.runner.stop(timeout=60)
        assert not service.runner.is_alive()
        a.publish("alpha", "A two")
        b.publish("beta", "B two")
        assert eventually(
            lambda: (
                service.active("team-a", "alpha").revision == 2
                and service.active("team-b", "beta").revision == 2
            ),
            timeout=20,
        )
        # the pass commits each source's revision before the loop reports the pass's results
        assert eventually(lambda: {r.project for r in results if r.leader} >= {"team-a", "team-b"})
        lock = service.store.locks.get_lock(leader.config.lock_name)
        assert lock is not None and lock.owner == standby.owner
    finally:
        stop.set()
        standby.request_reconcile()
        thread.join(timeout=10)
        standby.close()


def test_a_promotion_approved_in_a_wakes_a_source(
    teams: tuple[Service, Team, Team], tmp_path: Path
) -> None:
    """prod of team-a waits for alice; her decision (in team-a) has team-a's source apply
    it at once, though its interval is an hour."""
    service, a, _ = teams
    for env in ("staging", "prod"):
        a.repo.write(f"bundles/mailer/{env}.json", a.keys.bundle("mailer", env, agent("mail")))
    a.repo.commit("mailer")
    r = service.client.post("/v1/controller/reconcile", headers=headers("a-op", "team-a"))
    assert r.status_code == 200 and r.json()["ok"], r.text
    tasks = service.client.get(
        "/v1/human-tasks", params={"kind": "promotion"}, headers=headers("alice", "team-a")
    ).json()
    [task] = tasks["tasks"]
    decided = service.client.post(
        f"/v1/human-tasks/{task['continuation_id']}/resume",
        headers=headers("alice", "team-a"),
        json={"request_id": task["requests"][0]["request_id"], "decision": "approved"},
    )
    assert decided.status_code == 200 and decided.json()["status"] == "approved", decided.text
    prod = service.store.for_project("team-a").registry
    assert eventually(lambda: prod.get_active("mailer", "prod"), timeout=10)


def test_two_projects_share_one_repository_through_its_subdirectories(
    teams: tuple[Service, Team, Team], tmp_path: Path
) -> None:
    """One monorepo, ``teams/c`` for team-c and ``teams/d`` for team-d: each reads its own
    subdirectory, its paths relative to it, and the other's files are not its own."""
    service, a, _ = teams
    mono = Repo(tmp_path / "mono")
    for team, bundle in (("c", "gamma"), ("d", "delta")):
        mono.write(f"teams/{team}/environments/dev.yaml", "version: v1\n")
        mono.write(
            f"teams/{team}/bundles/{bundle}/dev.json", a.keys.bundle(bundle, "dev", agent(team))
        )
    mono.write("bundles/root/dev.json", a.keys.bundle("root", "dev", agent("root")))
    mono.commit("two teams")
    for team in ("c", "d"):
        definition = a.definition(tmp_path / "cache", path=f"teams/{team}")
        definition["controller"].update(repo=mono.url, webhook_secret_env=None)
        service.define(f"team-{team}", definition)
    assert eventually(
        lambda: service.active("team-c", "gamma") and service.active("team-d", "delta")
    )
    c, d = service.store.for_project("team-c"), service.store.for_project("team-d")
    assert [r.bundle_name for r in c.registry.list_registry().items] == ["gamma"]
    assert [r.bundle_name for r in d.registry.list_registry().items] == ["delta"]
    status = c.registry.get_controller_status("default")
    assert status.details["source"].endswith("@main:teams/c")
    # a change under teams/d is team-d's only
    mono.write("teams/d/bundles/delta/dev.json", a.keys.bundle("delta", "dev", agent("d2")))
    mono.commit("d2")
    for team in ("team-c", "team-d"):
        service.controllers.request_reconcile(team)
    assert eventually(lambda: service.active("team-d", "delta").revision == 2)
    assert service.active("team-c", "gamma").revision == 1


def test_a_source_reads_one_subdirectory_with_paths_relative_to_it(tmp_path: Path) -> None:
    """``controller.path``: the files under it, named as if it were the root; nothing
    outside it is listed or compared."""
    repo = Repo(tmp_path / "git")
    repo.write("teams/a/bundles/x/dev.json", "{}")
    repo.write("teams/a/environments/dev.yaml", "version: v1\n")
    repo.write("teams/ab/bundles/y/dev.json", "{}")  # a sibling whose name starts alike
    repo.write("bundles/z/dev.json", "{}")
    first = repo.commit("files")
    source = GitSource(repo.url, ref="main", cache_dir=tmp_path / "cache", subdir="teams/a/")
    try:
        assert source.fetch() == first
        assert sorted(source.list_files(first)) == [
            "bundles/x/dev.json",
            "environments/dev.yaml",
        ]
        assert sorted(source.list_files(first, ["x", "y", "z"])) == [
            "bundles/x/dev.json",
            "environments/dev.yaml",
        ]
        repo.write("teams/a/bundles/x/dev.json", '{"v": 2}')
        repo.write("teams/ab/bundles/y/dev.json", '{"v": 2}')
        repo.write("bundles/z/dev.json", '{"v": 2}')
        second = repo.commit("changes")
        assert source.fetch() == second
        assert source.changed_paths(first, second) == [("M", "bundles/x/dev.json")]
        assert source.describe().endswith("@main:teams/a")
    finally:
        source.close()


@pytest.mark.parametrize(
    "path", ["../up", "teams/../../x", ".git", "a/.hidden", "/abs", "a/", ":!x"]
)
def test_a_source_path_stays_inside_the_repository(path: str, tmp_path: Path) -> None:
    """``controller.path`` is refused, naming the field, when it could leave the repository
    or read as a pathspec's magic."""
    host = ProjectContext.discover(cwd=tmp_path, settings=Settings.from_env({}))
    with pytest.raises(KneoError) as refused:
        host.of_project("team-x", {"controller": {"repo": "file:///r.git", "path": path}})
    assert "controller.path" in str(refused.value.to_dict())


def test_an_api_replica_without_the_controller_queues_for_the_project(
    teams: tuple[Service, Team, Team],
) -> None:
    """The controller runs in another process: the replica takes each project's source
    from its definition, and a request queued in B wakes B's source through the database."""
    service, _, b = teams
    service.client.app.state.controller = None  # type: ignore[attr-defined]
    status = service.status("team-b")
    assert status["configured"] and status["leader"] == service.controllers.owner
    assert status["is_leader"] is False  # not this replica's
    b.publish("beta", "B two")
    sent = service.client.post(
        "/v1/projects/team-b/controller/webhook", content=PUSH, headers=signed("team-b")
    )
    assert sent.status_code == 202, sent.text
    assert eventually(lambda: service.active("team-b", "beta").revision == 2)
    done = service.client.post("/v1/controller/reconcile", headers=headers("b-op", "team-b"))
    assert done.status_code == 200 and done.json()["ok"], done.text
