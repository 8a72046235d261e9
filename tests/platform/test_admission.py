"""The admission gate (kneo.platform.admission) decides for every way a run starts.

The HTTP route's behaviour is pinned in tests/service and tests/controller; here the same
decisions through the platform itself, which is what the CLI and the Python API call, and
again when a worker executes a queued run. Real store (SQLite and PostgreSQL), real specs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kneo.controller.runtime import POLICY_METADATA_KEY
from kneo.errors import BundleNotApproved, SpecError
from kneo.platform import PlatformManager, create_platform
from kneo.platform.admission import POLICY_PREFIX
from kneo.settings import Settings
from kneo.spec.project import ProjectContext
from kneo.store import open_store

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
    manager.store.set_metadata(POLICY_PREFIX + environment, {"require_guardrails": True})


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
    assert manager.store.list_runs(count=True).total == 0  # refused before any run exists
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
    run = manager.store.get_run(done.run_id)
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
    with pytest.raises(SpecError) as refused:
        manager.execute_run(queued.run_id)
    assert refused.value.code == "E_POLICY_GUARDRAILS_REQUIRED"
    assert manager.store.get_run(queued.run_id).status == "queued"
    assert manager.execute_run(other.run_id).status == "succeeded"
    manager.store.set_metadata(POLICY_PREFIX + "staging", {})  # loosened again: it runs
    assert manager.execute_run(queued.run_id).status == "succeeded"


def test_approved_bundles_only_is_refused_before_the_policy_check(
    manager: PlatformManager,
) -> None:
    """Where both rules apply, the spec is not even loaded: 403 ``bundle_not_approved``."""
    require_guardrails(manager, "prod")
    manager.store.set_metadata(POLICY_METADATA_KEY, {"prod": {"require_approved_bundle": True}})
    with pytest.raises(BundleNotApproved):
        manager.run_from_spec(input_text="x", spec_path="missing.yaml", environment="prod")
