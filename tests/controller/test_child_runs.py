"""Workflows that call workflows (issue 77, item 3): a ``kind: workflow`` step starts another
bundle of the project as a child run and waits for it durably.

Real signed bundles promoted by the real controller from a real Git repository, on SQLite
and PostgreSQL (the ``store`` fixture). A parent paused in its child's human step survives a
restart (a new store and platform: another process), the child approved there, and the
parent completes with the child's output; a child's failure fails the step; cancelling the
parent cancels the child; a bundle of another project, one not approved for the
environment, or a person deciding the wait, is refused.
"""

from __future__ import annotations

import html
import re
import secrets
from pathlib import Path
from typing import Any

import pytest
from gitops_fixtures import Keys, Repo, documented, make_controller
from starlette.testclient import TestClient

from kneo.clock import ManualClock
from kneo.engine.human import Decision
from kneo.errors import InvalidDecision
from kneo.platform import create_platform
from kneo.platform.bundles import run_bundle
from kneo.platform.child_links import child_run_id
from kneo.service import create_app
from kneo.settings import Settings
from kneo.spec.project import ProjectContext
from kneo.store import AuditQuery, RunQuery, open_store


def agent(text: str) -> dict[str, Any]:
    return {
        "name": "a",
        "model": {"provider": "dummy", "name": "dummy", "script": [{"text": text}]},
    }


def caller(child: str) -> dict[str, Any]:
    """Drafts, then runs bundle ``child`` as a child run: its output is the run's."""
    return {
        "version": "v1",
        "agent": agent("drafted"),
        "workflow": {
            "type": "sequential",
            "steps": [
                {"id": "draft", "kind": "agent", "ref": "a"},
                {"id": "call", "kind": "workflow", "ref": child},
            ],
        },
    }


CHILD = {
    "version": "v1",
    "agent": agent("the child's answer"),
    "workflow": {
        "type": "sequential",
        "steps": [
            {"id": "answer", "kind": "agent", "ref": "a"},
            {"id": "approve", "kind": "human", "ref": "reviewer"},
        ],
    },
    "components": {"humans": {"reviewer": {"prompt": "ok?"}}},
}


@pytest.fixture
def promoted(store: Any, repo: Repo, keys: Keys, clock: ManualClock, tmp_path: Path) -> Any:
    """caller (dev) calls child; stranger (dev) calls elsewhere, another project's bundle;
    caller (staging) calls unapproved, which dev never approved (staging requires it)."""
    for env in ("dev", "staging"):
        repo.write(f"bundles/child/{env}.json", keys.bundle("child", env, CHILD))
    repo.write("bundles/caller/dev.json", keys.bundle("caller", "dev", caller("child")))
    repo.write("bundles/stranger/dev.json", keys.bundle("stranger", "dev", caller("elsewhere")))
    repo.write("bundles/picky/dev.json", keys.bundle("picky", "dev", caller("unapproved")))
    repo.write("bundles/picky/staging.json", keys.bundle("picky", "staging", caller("unapproved")))
    repo.write("bundles/unapproved/staging.json", keys.bundle("unapproved", "staging", CHILD))
    repo.commit("bundles")
    make_controller(store, repo, keys, clock, tmp_path / "ctl").reconcile_once()  # one held
    # another project's bundle named ``elsewhere``, active in its own registry
    name = f"team-{secrets.token_hex(4)}"  # (a PostgreSQL database keeps earlier tests')
    store.projects.create_project(name)
    team_b = store.for_project(name)
    with team_b.transaction() as tx:
        tx.add_revision("elsewhere", "dev", digest="sha256:" + "e" * 64, spec=CHILD)
    with team_b.transaction() as tx:
        tx.set_revision_status("elsewhere", "dev", 1, "active")
    assert team_b.registry.get_active("elsewhere", "dev") is not None
    assert store.registry.get_active("unapproved", "staging") is None
    return store


def platform(store: Any, clock: ManualClock, root: Path) -> Any:
    settings = Settings.from_env({})
    (root / ".kneo").mkdir(parents=True, exist_ok=True)
    (root / ".kneo" / "config.yaml").write_text(
        "version: v1\nenvironments: {dev: {}, staging: {}}\n"
    )
    project = ProjectContext.discover(cwd=root, settings=settings)
    return create_platform(settings=settings, project=project, store=store, clock=clock)


def _pending(manager: Any, run_id: str) -> tuple[str, str]:
    run = manager.store.runs.get_run(run_id)
    assert run.status == "paused", (run.status, run.error)
    return run.state["continuation_id"], run.state["pending"][0]["request_id"]


def _started(manager: Any, bundle: str = "caller", env: str = "dev") -> tuple[str, str]:
    """The parent run, paused on its child; the child, queued (the parent's id fixed it)."""
    parent = run_bundle(manager, bundle=bundle, environment=env, input_text="go")
    assert parent.status == "paused"
    _cid, request_id = _pending(manager, parent.run_id)
    child = manager.store.runs.get_run(child_run_id(parent.run_id, request_id))
    assert child.status == "queued" and child.bundle_name == "child"
    assert child.input_text == "drafted" and child.metadata["parent"]["run_id"] == parent.run_id
    return parent.run_id, child.run_id


def test_a_parent_waits_across_a_restart_and_takes_the_childs_output(
    promoted: Any, clock: ManualClock, tmp_path: Path
) -> None:
    first = platform(promoted, clock, tmp_path / "one")
    parent_id, child_id = _started(first)
    assert first.runs.execute_run(child_id).status == "paused"  # in the child's human step
    view = first.get_run(parent_id)
    assert view["children"] == [{"run_id": child_id, "step_id": "call", "status": "paused"}]
    # a person cannot answer the parent's wait: the child's outcome does
    cid, request_id = _pending(first, parent_id)
    with pytest.raises(InvalidDecision, match="child run"):
        first.decisions.resume(cid, Decision(request_id, "provided", "forged"), actor="mallory")
    # no second child however often the wait is looked at again
    assert first.children.sweep() == 0
    first.children.after_outcome(first.store.runs.get_run(parent_id))
    children = [r for r in first.store.runs.list_runs(RunQuery(limit=1000)).items
                if (r.metadata.get("parent") or {}).get("run_id") == parent_id]  # fmt: skip
    assert [r.run_id for r in children] == [child_id]

    # the service restarts: another store, another platform (another process's)
    url = promoted.engine.url.render_as_string(hide_password=False)
    again = open_store(url, settings=Settings.from_env({}), clock=clock)
    try:
        second = platform(again, clock, tmp_path / "two")
        child_cid, child_request = _pending(second, child_id)
        done = second.decisions.resume(
            child_cid, Decision(child_request, "approved"), actor="alice"
        )
        assert done.status == "succeeded" and done.output_text == "the child's answer"
        parent = again.runs.get_run(parent_id)
        assert parent.status == "succeeded", parent.error
        assert parent.output_text == "the child's answer"
        view = second.get_run(parent_id)
        assert view["children"] == [{"run_id": child_id, "step_id": "call", "status": "succeeded"}]
        assert view["parent_run_id"] is None
        assert second.get_run(child_id)["parent_run_id"] == parent_id
        audit = [
            e.actor for e in again.audit.list_audit(AuditQuery(event_type="human.decision")).items
        ]
        assert "system:child-run" in audit and "alice" in audit
    finally:
        again.close()


def test_a_childs_failure_is_the_steps_failure(
    promoted: Any, clock: ManualClock, tmp_path: Path
) -> None:
    manager = platform(promoted, clock, tmp_path)
    parent_id, child_id = _started(manager)
    manager.runs.execute_run(child_id)
    cid, request_id = _pending(manager, child_id)
    manager.decisions.resume(cid, Decision(request_id, "rejected", "not good"), actor="alice")
    assert promoted.runs.get_run(child_id).status == "failed"
    parent = promoted.runs.get_run(parent_id)
    assert parent.status == "failed"
    assert parent.error["step_id"] == "call" and "did not succeed" in parent.error["message"]
    assert manager.get_run(parent_id)["children"][0]["status"] == "failed"


def test_cancelling_the_parent_cancels_the_child(
    promoted: Any, clock: ManualClock, tmp_path: Path
) -> None:
    manager = platform(promoted, clock, tmp_path)
    parent_id, child_id = _started(manager)
    manager.runs.execute_run(child_id)
    assert manager.runs.cancel(parent_id, actor="ops").status == "cancelled"
    assert promoted.runs.get_run(child_id).status == "cancelled"
    assert promoted.runs.get_run(parent_id).status == "cancelled"


@pytest.mark.parametrize(
    ("bundle", "env", "reason"),
    [
        ("stranger", "dev", "elsewhere"),  # another project's bundle: not in this registry
        ("picky", "staging", "unapproved"),  # staging requires approval in dev: never given
    ],
)
def test_a_child_outside_the_gates_is_refused(
    promoted: Any, clock: ManualClock, tmp_path: Path, bundle: str, env: str, reason: str
) -> None:
    manager = platform(promoted, clock, tmp_path)
    parent = run_bundle(manager, bundle=bundle, environment=env, input_text="go")
    run = promoted.runs.get_run(parent.run_id)
    assert run.status == "failed", run.status
    assert run.error["step_id"] == "call" and reason in run.error["message"]
    assert "not_found" in run.error["message"]
    assert manager.get_run(parent.run_id)["children"] == [
        {"run_id": None, "step_id": "call", "status": "not_started"}
    ]
    names = {r.bundle_name for r in promoted.runs.list_runs(RunQuery(limit=100)).items}
    assert not names & {"elsewhere", "unapproved"}


def test_a_process_that_died_midway_is_finished_by_the_sweep(
    promoted: Any, clock: ManualClock, tmp_path: Path
) -> None:
    """Between the pause and the child's start, and between the child's end and its report,
    the process died (no hook ran): another process's sweep starts the child once and
    reports its end once."""
    dying = platform(promoted, clock, tmp_path / "one")
    dying.driver.after_outcome = None  # it dies right after each commit
    parent = run_bundle(dying, bundle="caller", environment="dev", input_text="go")
    _cid, request_id = _pending(dying, parent.run_id)
    child_id = child_run_id(parent.run_id, request_id)
    assert dying.get_run(parent.run_id)["children"][0]["status"] == "starting"

    other = platform(promoted, clock, tmp_path / "two")
    assert other.sweeps.sweep_children() == 1
    assert other.sweeps.sweep_children() == 0  # started once: the id is taken
    assert promoted.runs.get_run(child_id).status == "queued"
    dying.runs.execute_run(child_id)
    cid, child_request = _pending(dying, child_id)
    dying.decisions.resume(cid, Decision(child_request, "approved"), actor="alice")
    assert promoted.runs.get_run(child_id).status == "succeeded"
    assert promoted.runs.get_run(parent.run_id).status == "paused"  # not reported yet
    assert other.sweeps.sweep_children() == 1
    done = promoted.runs.get_run(parent.run_id)
    assert done.status == "succeeded" and done.output_text == "the child's answer"
    assert other.sweeps.sweep_children() == 0


REVIEWER = "rev-secret-token-0123456789"


def test_the_api_cli_and_console_link_parent_and_children(
    promoted: Any, clock: ManualClock, tmp_path: Path
) -> None:
    """``GET /v1/runs/{id}`` names the parent and the children; the console's run page
    draws the tree (the parent's children, each linking to its page) and its parent."""
    token = "ops-secret-token-0123456789"
    settings = Settings.from_env(
        {
            "KNEO_SERV_AUTH_ENABLED": "true",
            "KNEO_SERV_API_KEYS": f"ops:{token}:operator;rev:{REVIEWER}:reviewer",
        }
    )
    base = platform(promoted, clock, tmp_path)
    manager = create_platform(settings=settings, project=base.project, store=promoted, clock=clock)
    parent_id, child_id = _started(manager)
    manager.runs.execute_run(child_id)
    app = create_app(False, settings=settings, manager=manager, start_worker=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        got = client.get(f"/v1/runs/{parent_id}", headers={"Authorization": f"Bearer {token}"})
        assert documented("runs-get", got)["children"] == [
            {"run_id": child_id, "step_id": "call", "status": "paused"}
        ]
        child = client.get(f"/v1/runs/{child_id}", headers={"Authorization": f"Bearer {token}"})
        assert documented("runs-get", child)["parent_run_id"] == parent_id
        login = client.get("/ui/login")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', login.text)
        assert csrf is not None
        login_form = {"api_key": REVIEWER, "csrf_token": csrf.group(1), "next": ""}
        client.post("/ui/login", data=login_form)  # a reviewer: one who decides
        page = html.unescape(client.get(f"/ui/runs/{parent_id}").text)
        assert 'id="run-tree"' in page and 'id="waiting-for-child"' in page
        assert f"/ui/runs/{child_id}" in page and "step <code>call</code>" in page
        cid, _request = _pending(manager, parent_id)
        task = client.get(f"/ui/tasks/{cid}")  # the wait is shown, with nothing to decide
        assert task.status_code == 200
        assert 'name="decision"' not in task.text and "child run" in task.text
        child_cid, _request = _pending(manager, child_id)  # a person's task: decided there
        assert 'name="decision"' in client.get(f"/ui/tasks/{child_cid}").text
        below = html.unescape(client.get(f"/ui/runs/{child_id}").text)
        assert 'id="parent-run"' in below and f"/ui/runs/{parent_id}" in below
