"""The admission gate (kneo.platform.admission) decides for every way a run starts.

The HTTP route's behaviour is pinned in tests/service and tests/controller; here the same
decisions through the platform itself, which is what the CLI and the Python API call, and
again when a worker executes a queued run. Real store (SQLite and PostgreSQL), real specs.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kneo.controller.runtime import POLICY_METADATA_KEY
from kneo.errors import BundleNotApproved, SpecError
from kneo.jsontext import content_hash
from kneo.platform import PlatformManager, create_platform
from kneo.platform.admission import POLICY_PREFIX
from kneo.platform.bundles import run_bundle
from kneo.settings import Settings
from kneo.spec.project import ProjectContext
from kneo.store import AuditQuery, RunQuery, open_store

GUARDRAIL = {"name": "short-input", "stage": "input", "type": "length", "config": {"max_chars": 99}}


def flow() -> dict[str, Any]:
    """One agent step on the scripted dummy model, with no guardrails."""
    return {
        "version": "v1",
        "agent": {
            "name": "helper",
            "system_prompt": "Say hi.",
            "model": {"provider": "dummy", "name": "dummy", "script": [{"text": "hi"}]},
        },
        "workflow": {
            "type": "sequential",
            "name": "hello",
            "steps": [{"id": "say", "kind": "agent", "ref": "helper"}],
        },
    }


@pytest.fixture(params=["sqlite", "postgres"])
def manager(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[PlatformManager]:
    (tmp_path / ".kneo").mkdir()
    # the environments these tests name (a project that declares none has exactly dev)
    (tmp_path / ".kneo" / "config.yaml").write_text(
        "version: v1\nenvironments: {dev: {}, staging: {}, prod: {}}\n"
    )
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env({})
    store = None
    if request.param == "postgres":
        store = open_store(request.getfixturevalue("pg_database")(), settings=settings)
    project = ProjectContext.discover(cwd=tmp_path, settings=settings)
    platform = create_platform(settings, project, store=store)
    yield platform
    platform.store.close()


def require_guardrails(manager: PlatformManager, environment: str) -> None:
    """What ``PUT /v1/policies/environment/{environment}`` stores."""
    with manager.store.transaction() as tx:
        tx.set_metadata(POLICY_PREFIX + environment, {"require_guardrails": True})


def test_a_stored_policy_gates_runs_started_through_the_platform(
    manager: PlatformManager, tmp_path: Path
) -> None:
    """The CLI's and the Python API's path: the service-managed policy applies there too,
    to spec paths and inline specs, synchronous and queued, only in its own environment."""
    path = tmp_path / "hello.yaml"
    path.write_text(json.dumps(flow()))
    require_guardrails(manager, "staging")
    for start in (manager.run_from_spec, manager.start_run_from_spec):
        for source in ({"spec_path": str(path)}, {"spec": flow()}):
            with pytest.raises(SpecError) as refused:
                start(input_text="x", environment="staging", **source)
            assert refused.value.code == "E_POLICY_GUARDRAILS_REQUIRED"
            assert refused.value.http_status == 400
    assert (
        manager.store.runs.list_runs(RunQuery(count=True)).total == 0
    )  # refused before any run exists
    assert manager.run_from_spec(input_text="x", spec=flow(), environment="dev").status == (
        "succeeded"
    )


def test_overrides_are_merged_before_the_policy_check(manager: PlatformManager) -> None:
    """``overrides`` (the request field) are part of what is checked and what runs."""
    require_guardrails(manager, "staging")
    overrides = {"agent": {"guardrails": [GUARDRAIL]}}
    done = manager.run_from_spec(
        input_text="x", spec=flow(), environment="staging", overrides=overrides
    )
    assert done.status == "succeeded"
    run = manager.store.runs.get_run(done.run_id)
    assert run.spec["agent"]["guardrails"][0]["name"] == "short-input"
    with pytest.raises(SpecError):
        manager.run_from_spec(
            input_text="x",
            spec=flow(),
            environment="staging",
            overrides={"agent": {"name": "helper"}},
        )


def test_a_worker_admits_a_queued_run_again(manager: PlatformManager) -> None:
    """A run queued before its environment's policy tightened is refused when a worker
    would execute it, and stays queued untouched; one queued elsewhere still runs."""
    queued = manager.start_run_from_spec(input_text="x", spec=flow(), environment="staging")
    other = manager.start_run_from_spec(input_text="x", spec=flow(), environment="dev")
    require_guardrails(manager, "staging")
    before = manager.store.runs.get_run(queued.run_id)
    events = manager.store.runs.list_trace(queued.run_id, limit=10).total
    with pytest.raises(SpecError) as refused:
        manager.execute_run(queued.run_id)
    assert refused.value.code == "E_POLICY_GUARDRAILS_REQUIRED"
    after = manager.store.runs.get_run(queued.run_id)  # refused in the start's transaction
    assert (after.status, after.version) == ("queued", before.version)
    assert manager.store.runs.list_trace(queued.run_id, limit=10).total == events
    assert manager.store.queue.run_lease(queued.run_id) is None
    assert manager.execute_run(other.run_id).status == "succeeded"
    with manager.store.transaction() as tx:
        tx.set_metadata(POLICY_PREFIX + "staging", {})  # loosened again: it runs
    assert manager.execute_run(queued.run_id).status == "succeeded"


def test_approved_bundles_only_is_refused_before_the_policy_check(
    manager: PlatformManager,
) -> None:
    """Where both rules apply, the spec is not even loaded: 403 ``bundle_not_approved``."""
    require_guardrails(manager, "prod")
    with manager.store.transaction() as tx:
        tx.set_metadata(POLICY_METADATA_KEY, {"prod": {"require_approved_bundle": True}})
    with pytest.raises(BundleNotApproved):
        manager.run_from_spec(input_text="x", spec_path="missing.yaml", environment="prod")


# --------------------------------------------------------------------------- one load per run


@pytest.fixture()
def loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every call of the spec loader's two entry points from the platform, by name (a spy
    on ``kneo.spec.loader`` and on each platform module that bound a name from it)."""
    from kneo.spec import loader

    calls: list[str] = []
    for name in ("load_spec", "load_spec_data"):
        real = getattr(loader, name)

        def spy(*args: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> Any:
            calls.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(loader, name, spy)
        for module_name, module in list(sys.modules.items()):
            if module_name.startswith("kneo.platform") and getattr(module, name, None) is real:
                monkeypatch.setattr(module, name, spy)
    return calls


def test_a_stored_policy_costs_one_load_of_the_spec(
    manager: PlatformManager, tmp_path: Path, loads: list[str]
) -> None:
    """Checked against the stored policy and compiled from one load; an unchanged spec under
    an unchanged policy is not loaded again, a changed policy is checked again."""
    path = tmp_path / "hello.yaml"
    path.write_text(json.dumps(flow()))
    with manager.store.transaction() as tx:
        tx.set_metadata(POLICY_PREFIX + "staging", {"require_human_review": False})
    for source, loader_name in (({"spec_path": str(path)}, "load_spec"), ({"spec": flow()}, None)):
        loads.clear()
        done = manager.run_from_spec(input_text="x", environment="staging", **source)
        assert done.status == "succeeded"
        assert loads == [loader_name or "load_spec_data"]
        loads.clear()
        manager.run_from_spec(input_text="x", environment="staging", **source)
        assert loads == []
        require_guardrails(manager, "staging")
        with pytest.raises(SpecError):
            manager.run_from_spec(input_text="x", environment="staging", **source)
        with manager.store.transaction() as tx:
            tx.set_metadata(POLICY_PREFIX + "staging", {"require_human_review": False})


# --------------------------------------------------------------------------- one rule for bundles


def add_bundle(manager: PlatformManager, environment: str, spec: dict[str, Any]) -> int:
    """An active registry revision of ``hello`` in ``environment`` (what the controller writes)."""
    with manager.store.transaction() as tx:
        revision = tx.add_revision(
            "hello", environment, digest=content_hash(spec), spec=spec, status="active"
        )
    return revision.revision


def test_a_bundle_run_meets_the_stored_policy_like_a_spec_run(manager: PlatformManager) -> None:
    """A registry revision is checked against the service-managed policy of its environment
    when it starts and again when a worker executes it; one that satisfies it runs."""
    add_bundle(manager, "prod", flow())
    queued = run_bundle(
        manager, bundle="hello", environment="prod", input_text="x", async_mode=True
    )
    require_guardrails(manager, "prod")
    for async_mode in (False, True):
        with pytest.raises(SpecError) as refused:
            run_bundle(
                manager, bundle="hello", environment="prod", input_text="x", async_mode=async_mode
            )
        assert refused.value.code == "E_POLICY_GUARDRAILS_REQUIRED"
    with pytest.raises(SpecError) as refused:
        manager.execute_run(queued.run_id)
    assert refused.value.code == "E_POLICY_GUARDRAILS_REQUIRED"
    assert (
        manager.store.runs.list_runs(RunQuery(count=True)).total == 1
    )  # only the one queued before
    guarded = flow()
    guarded["agent"]["guardrails"] = [GUARDRAIL]
    add_bundle(manager, "prod", guarded)
    done = run_bundle(manager, bundle="hello", environment="prod", input_text="x")
    assert done.status == "succeeded"


def test_a_stored_policy_wins_over_the_project_policy_for_both_kinds_of_run(
    manager: PlatformManager, tmp_path: Path
) -> None:
    """``environments/<env>.yaml`` requires guardrails; the operator's stored policy for that
    environment does not: it is the one a spec run and a bundle run are checked against."""
    (tmp_path / "environments").mkdir()
    (tmp_path / "environments" / "qa.yaml").write_text(
        "version: v1\npolicy_enforcement: {require_guardrails: true}\n"
    )
    add_bundle(manager, "qa", flow())
    with pytest.raises(SpecError):
        manager.run_from_spec(input_text="x", spec=flow(), environment="qa")
    with pytest.raises(SpecError):
        run_bundle(manager, bundle="hello", environment="qa", input_text="x")
    with manager.store.transaction() as tx:
        tx.set_metadata(POLICY_PREFIX + "qa", {"require_human_review": False})
    assert manager.run_from_spec(input_text="x", spec=flow(), environment="qa").status == (
        "succeeded"
    )
    done = run_bundle(manager, bundle="hello", environment="qa", input_text="x")
    assert done.status == "succeeded"


# --------------------------------------------------------------------------- replays


def test_a_replay_meets_the_rules_of_a_start(manager: PlatformManager) -> None:
    """A replay starts a new run: where its environment has since come to run approved
    bundles only, or its policy forbids the spec, it is refused with a start's error code
    and no run is created."""
    first = manager.run_from_spec(input_text="x", spec=flow(), environment="prod")
    other = manager.run_from_spec(input_text="x", spec=flow(), environment="staging")
    require_guardrails(manager, "staging")
    with pytest.raises(SpecError) as refused:
        manager.replay_run(other.run_id)
    assert refused.value.code == "E_POLICY_GUARDRAILS_REQUIRED"
    assert manager.replay_run(first.run_id).status == "succeeded"
    with manager.store.transaction() as tx:
        tx.set_metadata(POLICY_METADATA_KEY, {"prod": {"require_approved_bundle": True}})
    with pytest.raises(BundleNotApproved) as denied:
        manager.replay_run(first.run_id)
    assert denied.value.code == "bundle_not_approved" and denied.value.http_status == 403
    assert manager.store.runs.list_runs(RunQuery(count=True)).total == 3


def test_a_replay_of_a_bundle_run_needs_its_revision_active(manager: PlatformManager) -> None:
    """Where only approved bundles run, a bundle run is replayed while its revision is the
    active one (the replay is pinned to it); once another revision is promoted, the recorded
    spec is no longer an approved bundle."""
    with manager.store.transaction() as tx:
        tx.set_metadata(POLICY_METADATA_KEY, {"prod": {"require_approved_bundle": True}})
    revision = add_bundle(manager, "prod", flow())
    first = run_bundle(manager, bundle="hello", environment="prod", input_text="x")
    replay = manager.replay_run(first.run_id)
    assert replay.status == "succeeded"
    pinned = manager.store.runs.get_run(replay.run_id)
    assert (pinned.bundle_name, pinned.bundle_revision) == ("hello", revision)
    newer = flow()
    newer["agent"]["system_prompt"] = "Say hello."
    add_bundle(manager, "prod", newer)
    with pytest.raises(BundleNotApproved):
        manager.replay_run(first.run_id)


def test_a_run_from_a_spec_model_is_stored_loadable(manager: PlatformManager) -> None:
    """A spec built in code (a ``Spec`` model, ``version`` left at its default) is stored as
    a document that loads again: another process executes it, and a replay is admitted."""
    from kneo.spec.models import Spec

    built = Spec.model_validate({k: v for k, v in flow().items() if k != "version"})
    queued = manager.start_run_from_spec(input_text="x", spec=built)
    fresh = create_platform(manager.settings, manager.project, store=manager.store)
    assert fresh.execute_run(queued.run_id).status == "succeeded"
    assert fresh.replay_run(queued.run_id).status == "succeeded"


def test_a_policy_stored_by_another_process_gates_the_next_run(manager: PlatformManager) -> None:
    """A policy another process (another store on the same database) stored after this
    process's last run refuses its next run, spec or queued, and nothing of it is written;
    loosened again there, the next run here is admitted."""
    done = manager.run_from_spec(input_text="x", spec=flow(), environment="staging")
    assert done.status == "succeeded"
    url = manager.store.engine.url.render_as_string(hide_password=False)
    other = open_store(url, settings=manager.store.settings)
    try:
        with other.transaction() as tx:
            tx.set_metadata(POLICY_PREFIX + "staging", {"require_guardrails": True})
        for start in (manager.run_from_spec, manager.start_run_from_spec):
            with pytest.raises(SpecError) as refused:
                start(input_text="x", spec=flow(), environment="staging")
            assert refused.value.code == "E_POLICY_GUARDRAILS_REQUIRED"
        assert manager.store.runs.list_runs(RunQuery(count=True)).total == 1
        assert manager.store.audit.list_audit(AuditQuery(event_type="run.created")).total == 1
        with other.transaction() as tx:
            tx.set_metadata(POLICY_PREFIX + "staging", {})
        done = manager.run_from_spec(input_text="x", spec=flow(), environment="staging")
        assert done.status == "succeeded"
    finally:
        other.close()
