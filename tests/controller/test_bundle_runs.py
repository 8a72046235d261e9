"""Runtime enforcement and promotion approvals through the human-task machinery.

Real Git repositories, the real controller, the real platform manager and the real HTTP
app over one SQLite (or PostgreSQL) store.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from gitops_fixtures import Keys, Repo, make_controller, sign_policy
from starlette.testclient import TestClient

from kneo import Decision
from kneo.clock import ManualClock
from kneo.controller.runtime import POLICY_METADATA_KEY
from kneo.errors import BundleNotApproved, NotFound
from kneo.platform import create_platform
from kneo.platform.admission import PUBLISHED_TTL_SECONDS
from kneo.platform.bundles import run_bundle
from kneo.settings import Settings
from kneo.spec.project import ProjectContext
from kneo.store import AuditQuery, RunQuery

TOKENS = {name: f"{name}-secret-token-{i}" for i, name in enumerate(("alice", "bob", "carol"))}
ADMIN = "admin-secret-token-0"
TWO_OF_THREE = (
    "version: v1\npromotion:\n  require_human_approval: true\n"
    "  approvers: [alice, bob, carol]\n  min_approvals: 2\nruns: {require_approved_bundle: true}\n"
)


def flow(draft: str) -> dict[str, Any]:
    """A signed workflow that drafts (scripted dummy model) and then waits for a person."""
    return {
        "version": "v1",
        "agent": {
            "name": "helper",
            "system_prompt": "Draft a note.",
            "model": {"provider": "dummy", "name": "dummy", "script": [{"text": draft}]},
        },
        "workflow": {
            "type": "sequential",
            "name": "helper-flow",
            "steps": [
                {"id": "draft", "kind": "agent", "ref": "helper"},
                {"id": "approve", "kind": "human", "ref": "reviewer"},
            ],
        },
        "components": {"humans": {"reviewer": {"prompt": "Publish this draft?"}}},
    }


def _settings(extra: dict[str, str] | None = None) -> Settings:
    return Settings.from_env(dict(extra or {}))


def _manager(
    store: Any, clock: ManualClock, tmp_path: Path, settings: Settings | None = None
) -> Any:
    settings = settings or _settings()
    # the service's project declares the environments spec runs name here (the watched
    # repository's declare where bundles run; docs/security.md, "Environments")
    (tmp_path / ".kneo").mkdir(exist_ok=True)
    (tmp_path / ".kneo" / "config.yaml").write_text(
        "version: v1\nenvironments: {dev: {}, staging: {}, prod: {}, qa: {}, uat: {}}\n"
    )
    project = ProjectContext.discover(cwd=tmp_path, settings=settings)
    return create_platform(settings=settings, project=project, store=store, clock=clock)


def test_bundle_run_pins_its_revision_until_it_finishes(
    store: Any, repo: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    repo.write("bundles/helper/dev.json", keys.bundle("helper", "dev", flow("draft one")))
    first_commit = repo.commit("helper r1")
    ctl = make_controller(store, repo, keys, clock, tmp_path)
    assert ctl.reconcile_once().ok
    manager = _manager(store, clock, tmp_path)

    paused = run_bundle(manager, bundle="helper", environment="dev", input_text="hi")
    assert paused.status == "paused"
    run = store.runs.get_run(paused.run_id)
    r1 = store.registry.get_active("helper", "dev")
    assert (run.bundle_name, run.bundle_revision, run.bundle_commit, run.spec_digest) == (
        "helper",
        1,
        first_commit,
        r1.digest,
    )

    repo.write("bundles/helper/dev.json", keys.bundle("helper", "dev", flow("draft two")))
    repo.commit("helper r2")
    assert ctl.reconcile_once().ok
    assert store.registry.get_active("helper", "dev").revision == 2

    done = manager.resume(
        paused.continuation_id, Decision(paused.request_id, "approved"), actor="alice"
    )
    assert done.status == "succeeded"
    finished = store.runs.get_run(paused.run_id)
    assert finished.bundle_revision == 1 and finished.spec_digest == r1.digest
    assert "draft one" in (done.output_text or "")

    newer = run_bundle(manager, bundle="helper", environment="dev", input_text="hi")
    assert store.runs.get_run(newer.run_id).bundle_revision == 2


def test_spec_runs_are_refused_where_only_approved_bundles_run(
    store: Any, repo: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    ctl = make_controller(store, repo, keys, clock, tmp_path)
    assert ctl.reconcile_once().ok  # records prod's runs.require_approved_bundle
    assert store.metadata.get_metadata(POLICY_METADATA_KEY)["prod"] == {
        "require_approved_bundle": True
    }
    manager = _manager(store, clock, tmp_path)
    spec_file = tmp_path / "helper.yaml"
    spec_file.write_text("version: v1\nagent: {name: helper, system_prompt: hi}\n")

    with pytest.raises(BundleNotApproved) as refused:
        manager.run_from_spec(input_text="hi", spec=flow("x"), environment="prod")
    assert refused.value.code == "bundle_not_approved" and refused.value.http_status == 403
    with pytest.raises(BundleNotApproved):
        manager.start_run_from_spec(input_text="hi", spec_path=spec_file, environment="prod")
    with pytest.raises(NotFound):  # nothing active in prod yet
        run_bundle(manager, bundle="helper", environment="prod", input_text="hi")
    # dev has no such rule: an ad-hoc spec still runs there
    assert (
        manager.run_from_spec(input_text="hi", spec=flow("x"), environment="dev").status == "paused"
    )

    # a broken prod file never opens prod to ad-hoc specs
    repo.write("environments/prod.yaml", "version: [unclosed\n")
    repo.commit("break prod")
    ctl.reconcile_once()
    with pytest.raises(BundleNotApproved):
        manager.run_from_spec(input_text="hi", spec=flow("x"), environment="prod")


# --------------------------------------------------------------------------- HTTP approvals


def test_a_queued_spec_run_is_refused_when_its_environment_tightens(
    store: Any, clock: ManualClock, tmp_path: Path
) -> None:
    """Accepted while qa allowed ad-hoc specs, executed after it came to require approved
    bundles: the worker applies the same gate and the run fails as ``bundle_not_approved``."""
    from kneo.worker import Worker

    manager = _manager(store, clock, tmp_path)
    queued = manager.start_run_from_spec(input_text="hi", spec=flow("x"), environment="qa")
    rules = store.metadata.get_metadata(POLICY_METADATA_KEY, None) or {}  # the store may be shared
    with store.transaction() as tx:
        tx.set_metadata(POLICY_METADATA_KEY, {**rules, "qa": {"require_approved_bundle": True}})
    Worker(manager, settings=manager.settings, name="t").run_once()
    run = store.runs.get_run(queued.run_id)
    assert run.status == "failed" and run.error is not None
    assert run.error["type"] == "bundle_not_approved"
    running = store.runs.list_runs(
        RunQuery(status="running", count=False)
    ).items  # the store may be shared
    assert [r.run_id for r in running if r.environment == "qa"] == []


@pytest.fixture
def approval_app(
    store: Any, repo: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> Iterator[Callable[[], TestClient]]:
    """The real app with API keys alice/bob/carol and the controller loop running in it."""
    from kneo.service import create_app

    repo.write("environments/prod.yaml", TWO_OF_THREE)
    repo.write("bundles/helper/prod.json", keys.bundle("helper", "prod", flow("p1")))
    repo.commit("helper for prod")
    settings = _settings(
        {
            "KNEO_SERV_AUTH_ENABLED": "true",
            "KNEO_SERV_API_KEYS": ";".join(f"{n}:{t}:reviewer" for n, t in TOKENS.items()),
            "KNEO_SERV_ADMIN_API_KEY": ADMIN,
        }
    )
    manager = _manager(store, clock, tmp_path, settings)
    ctl = make_controller(store, repo, keys, clock, tmp_path)
    app = create_app(
        False,
        settings=settings,
        manager=manager,
        start_worker=False,
        controller=ctl,
        run_controller=True,
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        yield lambda: client


def _as(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[name]}"}


def _wait(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def _promotion_task(client: TestClient) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        listed = client.get("/v1/human-tasks?workflow_kind=promotion", headers=_as("alice"))
        assert listed.status_code == 200, listed.text
        return listed.json()["tasks"][0] if listed.json()["tasks"] else None

    return _wait(find)  # type: ignore[no-any-return]


def _resume(client: TestClient, task: dict[str, Any], who: str, decision: str) -> Any:
    return client.post(
        f"/v1/human-tasks/{task['continuation_id']}/resume",
        headers=_as(who),
        json={"request_id": task["requests"][0]["request_id"], "decision": decision},
    )


def test_two_approvers_over_http_activate_a_promotion(
    approval_app: Callable[[], TestClient], store: Any
) -> None:
    client = approval_app()
    task = _promotion_task(client)
    assert task["requests"][0]["prompt"].startswith("Promote helper@sha256:")
    assert task["run_id"] is None

    first = _resume(client, task, "alice", "approved")
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "pending_approval" and first.json()["run_id"] is None
    assert first.json()["metadata"]["promotion"]["approvals"] == 1
    again = _resume(client, task, "alice", "approved")
    assert again.status_code == 409 and again.json()["error"] == "already_decided"
    assert store.registry.get_active("helper", "prod") is None

    second = _resume(client, task, "bob", "approved")
    assert second.status_code == 200 and second.json()["status"] == "approved"
    active = _wait(lambda: store.registry.get_active("helper", "prod"))
    assert sorted(active.approved_by) == ["alice", "bob", "ci-pipeline"]
    decided = [
        (e.actor, e.event_type)
        for e in store.audit.list_audit(AuditQuery(limit=100)).items
        if e.event_type.startswith("promotion.")
    ]
    assert ("alice", "promotion.approved") in decided and ("bob", "promotion.approved") in decided

    run = client.post(
        "/v1/runs",
        headers={"Authorization": f"Bearer {ADMIN}"},
        json={"bundle": "helper", "environment": "prod", "input": "go"},
    )
    assert run.status_code == 200 and run.json()["status"] == "paused"
    refused = client.post(
        "/v1/runs",
        headers={"Authorization": f"Bearer {ADMIN}"},
        json={"spec": flow("x"), "environment": "prod", "input": "go"},
    )
    assert refused.status_code == 403 and refused.json()["error"] == "bundle_not_approved"


def test_one_rejection_over_http_stops_the_promotion(
    approval_app: Callable[[], TestClient], store: Any
) -> None:
    client = approval_app()
    task = _promotion_task(client)
    assert _resume(client, task, "alice", "approved").json()["status"] == "pending_approval"
    rejected = _resume(client, task, "carol", "rejected")
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    revision = _wait(
        lambda: next(
            (r for r in store.registry.list_revisions("helper", "prod") if r.status == "rejected"),
            None,
        )
    )
    assert revision.diagnostics[0]["code"] == "promotion_rejected"
    assert store.registry.get_active("helper", "prod") is None
    late = _resume(client, task, "bob", "approved")
    assert late.status_code == 409


# --------------------------------------------------------------------------- run limits


def two_drafts() -> dict[str, Any]:
    """A signed workflow of two agent steps: one model call each (scripted dummy model)."""
    body = flow("draft")
    body["workflow"]["steps"] = [
        {"id": "first", "kind": "agent", "ref": "helper"},
        {"id": "second", "kind": "agent", "ref": "helper"},
    ]
    body.pop("components")
    return body


def _prod_with_limits(repo: Repo, keys: Keys, limits: str) -> None:
    """A GitOps repository whose prod file sets ``limits`` and whose bundle is active there."""
    repo.write("environments/prod.yaml", "version: v1\n" + limits)
    repo.write("bundles/helper/prod.json", keys.bundle("helper", "prod", two_drafts()))
    repo.commit("prod limits")


def test_gitops_budgets_fail_a_bundle_run_and_the_stricter_file_wins(
    store: Any, repo: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    """prod's budget lives only in the watched repository; the project's own prod file is
    looser (5 calls, pause): the controller's copy applies, stricter-wins, to the run."""
    _prod_with_limits(repo, keys, "budgets: {max_model_calls: 1, on_exceeded: fail}\n")
    ctl = make_controller(store, repo, keys, clock, tmp_path)
    assert ctl.reconcile_once().ok
    assert store.metadata.get_metadata(POLICY_METADATA_KEY)["prod"] == {
        "require_approved_bundle": False,
        "budgets": {"max_model_calls": 1, "on_exceeded": "fail"},
    }
    (tmp_path / "environments").mkdir()
    (tmp_path / "environments" / "prod.yaml").write_text(
        "version: v1\nbudgets: {max_model_calls: 5}\n"
    )
    manager = _manager(store, clock, tmp_path)

    failed = run_bundle(manager, bundle="helper", environment="prod", input_text="hi")
    run = store.runs.get_run(failed.run_id)
    assert run.status == "failed" and run.error is not None, run
    assert run.error["code"] == "budget_exceeded", run.error
    assert "1 of the 1 model calls" in run.error["message"]
    assert manager.get_run(failed.run_id)["usage"]["model_calls"] == 1

    # dev has no budget in either place: the same workflow runs both steps
    repo.write("bundles/helper/dev.json", keys.bundle("helper", "dev", two_drafts()))
    repo.commit("dev")
    assert ctl.reconcile_once().ok
    done = run_bundle(manager, bundle="helper", environment="dev", input_text="hi")
    assert done.status == "succeeded", done

    # the repository loosens prod to 2 calls, signed as prod demands (a loosening takes
    # effect only so): a run once the grant's read of the published limits has expired
    # (PUBLISHED_TTL_SECONDS) pays for both steps
    repo.write("environments/prod.yaml", "version: v1\nbudgets: {max_model_calls: 2}\n")
    sign_policy(repo, keys, "prod", "ci")
    repo.commit("loosen prod")
    assert ctl.reconcile_once().ok
    time.sleep(PUBLISHED_TTL_SECONDS)
    assert run_bundle(manager, bundle="helper", environment="prod", input_text="hi").status == (
        "succeeded"
    )


def test_gitops_budgets_pause_a_bundle_run_for_a_person_over_http(
    store: Any, repo: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    """The service with the controller loop in it: the budget it reads from the watched
    repository pauses a prod bundle run with a ``budget`` request, decided over HTTP."""
    from kneo.service import create_app

    _prod_with_limits(repo, keys, "budgets: {max_model_calls: 1}\n")
    settings = _settings({"KNEO_SERV_ADMIN_API_KEY": ADMIN, "KNEO_SERV_AUTH_ENABLED": "true"})
    manager = _manager(store, clock, tmp_path, settings)
    ctl = make_controller(store, repo, keys, clock, tmp_path)
    app = create_app(
        False,
        settings=settings,
        manager=manager,
        start_worker=False,
        controller=ctl,
        run_controller=True,
    )
    admin = {"Authorization": f"Bearer {ADMIN}"}
    with TestClient(app, raise_server_exceptions=False) as client:
        _wait(lambda: store.registry.get_active("helper", "prod"))
        started = client.post(
            "/v1/runs",
            headers=admin,
            json={"bundle": "helper", "environment": "prod", "input": "go"},
        )
        assert started.status_code == 200, started.text
        paused = started.json()
        assert paused["status"] == "paused", paused
        task = client.get(f"/v1/human-tasks/{paused['continuation_id']}", headers=admin).json()
        [request] = task["requests"]
        assert request["kind"] == "budget"
        assert (request["context"]["used"], request["context"]["limit"]) == (1, 1)
        resumed = client.post(
            f"/v1/human-tasks/{paused['continuation_id']}/resume",
            headers=admin,
            json={"request_id": request["request_id"], "decision": "approved"},
        )
        assert resumed.status_code == 200, resumed.text
        assert resumed.json()["status"] == "succeeded", resumed.json()


def test_gitops_resources_confine_runs_at_admission_and_at_run_time(
    store: Any, repo: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    """prod's ``resources:`` live only in the watched repository: a spec run there is refused
    a destination outside them, and a bundle run's grant (what it executes under) is narrowed."""
    from kneo.errors import AccessDenied, KneoError

    _prod_with_limits(repo, keys, "resources: {network: [gateway.example.com], secrets: []}\n")
    assert make_controller(store, repo, keys, clock, tmp_path).reconcile_once().ok
    assert store.metadata.get_metadata(POLICY_METADATA_KEY)["prod"]["resources"] == {
        "network": ["gateway.example.com"],
        "secrets": [],
    }
    manager = _manager(store, clock, tmp_path)
    remote = flow("x")
    remote["agent"]["model"] = {"provider": "openai", "name": "gpt-4o-mini"}

    with pytest.raises(KneoError) as refused:
        manager.run_from_spec(input_text="hi", spec=remote, environment="prod")
    assert refused.value.code == "E_DESTINATION_NOT_ALLOWED", refused.value
    # dev: no narrowing, so the run is admitted (and fails later: no key, no network here)
    elsewhere = manager.run_from_spec(input_text="hi", spec=remote, environment="dev")
    assert "E_DESTINATION_NOT_ALLOWED" not in str(store.runs.get_run(elsewhere.run_id).error)

    ran = run_bundle(manager, bundle="helper", environment="prod", input_text="hi")
    grant = manager.admission.run_access(store.runs.get_run(ran.run_id))
    with pytest.raises(AccessDenied) as outside:
        grant.destination("https://api.openai.com/v1", path="x")
    assert outside.value.code == "E_DESTINATION_NOT_ALLOWED"
    assert dict(grant.secrets) == {}
    manager.admission.host_access("dev", "bundle").destination(
        "https://api.openai.com/v1", path="x"
    )


def test_a_queued_run_meets_resources_published_since(
    store: Any, clock: ManualClock, tmp_path: Path
) -> None:
    """Accepted in uat, executed after the controller published ``resources:`` for uat that
    leave out the run's model endpoint: the worker's check refuses it."""
    from kneo.worker import Worker

    manager = _manager(store, clock, tmp_path)
    remote = flow("x")
    remote["agent"]["model"] = {"provider": "openai", "name": "gpt-4o-mini"}
    queued = manager.start_run_from_spec(input_text="hi", spec=remote, environment="uat")
    rules = store.metadata.get_metadata(POLICY_METADATA_KEY, None) or {}  # the store may be shared
    narrowed = {"require_approved_bundle": False, "resources": {"network": ["gw.example.com"]}}
    with store.transaction() as tx:
        tx.set_metadata(POLICY_METADATA_KEY, {**rules, "uat": narrowed})
    Worker(manager, settings=manager.settings, name="t").run_once()
    run = store.runs.get_run(queued.run_id)
    assert run.status == "failed" and run.error is not None
    assert "E_DESTINATION_NOT_ALLOWED" in str(run.error), run.error
