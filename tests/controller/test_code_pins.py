"""A signed bundle pins its code: the controller reads the pinned files at the commit over
Git (a real ``git http-backend``), stores them with the promoted revision, and a platform
with no checkout at all runs exactly those bytes; a file changed after signing is refused.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gitops_fixtures import Keys, Repo, make_controller

from kneo.clock import ManualClock
from kneo.controller.config import ControllerConfig
from kneo.controller.controller import Controller
from kneo.controller.source import GitSource
from kneo.platform import create_platform
from kneo.platform.bundles import run_bundle
from kneo.settings import Settings
from kneo.spec.loader import load_spec_data
from kneo.spec.pinning import pin_code
from kneo.spec.project import ProjectContext
from tests.security.git_http import PrivateGitHost, have_git_http_backend

STEPS_V1 = "from fmt import loud\n\n\ndef answer(text):\n    return loud('v1 ' + text)\n"
FMT = "def loud(text):\n    return text.upper()\n"
FLOW = {
    "version": "v1",
    "workflow": {
        "type": "sequential",
        "steps": [{"id": "f", "kind": "function", "ref": "teamsteps:answer"}],
    },
}


def _signed(repo: Repo, keys: Keys) -> str:
    """The bundle ``kneo spec bundle sign`` writes in the repository's checkout."""
    repo.write("teamsteps.py", STEPS_V1)
    repo.write("fmt.py", FMT)
    (repo.work / ".kneo").mkdir(exist_ok=True)
    data = pin_code(load_spec_data(dict(FLOW)), FLOW, repo.work)
    return keys.bundle("flow", "dev", data)


@pytest.fixture
def host(repo: Repo, tmp_path: Path) -> Iterator[PrivateGitHost]:
    if not have_git_http_backend():
        pytest.skip("git http-backend is not installed")
    served = PrivateGitHost(repo.remote_path.parent, "reader", "read-token")
    yield served
    served.stop()


def _controller(store: Any, url: str, keys: Keys, clock: ManualClock, tmp: Path) -> Controller:
    config = ControllerConfig(repo=url, cache_dir=tmp / "cache")
    source = GitSource(url, ref="main", cache_dir=config.cache_dir)
    return Controller(store, source, keys.keyring(), config=config, clock=clock)


def _elsewhere(store: Any, clock: ManualClock, tmp_path: Path) -> Any:
    """A platform in a directory with no checkout and no project code at all."""
    where = tmp_path / "replica"
    (where / ".kneo").mkdir(parents=True)
    (where / ".kneo" / "config.yaml").write_text("version: v1\nenvironments: {dev: {}}\n")
    settings = Settings.from_env({})
    project = ProjectContext.discover(cwd=where, settings=settings)
    return create_platform(settings=settings, project=project, store=store, clock=clock)


def test_a_replica_with_no_checkout_runs_the_signed_code(
    store: Any,
    repo: Repo,
    keys: Keys,
    clock: ManualClock,
    tmp_path: Path,
    host: PrivateGitHost,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo.write("bundles/flow/dev.json", _signed(repo, keys))
    repo.commit("flow r1 with its code")
    url = host.url("remote.git").replace("://", "://reader:read-token@", 1)
    result = _controller(store, url, keys, clock, tmp_path).reconcile_once()
    assert result.ok, result.error
    active = store.registry.get_active("flow", "dev")
    assert active is not None
    pins = {f["path"]: f["sha256"] for f in active.spec["code"]}
    assert pins == {
        "teamsteps.py": hashlib.sha256(STEPS_V1.encode()).hexdigest(),
        "fmt.py": hashlib.sha256(FMT.encode()).hexdigest(),
    }
    assert store.code.get(pins.values()) == {
        pins["teamsteps.py"]: STEPS_V1.encode(),
        pins["fmt.py"]: FMT.encode(),
    }
    _forget_code()
    monkeypatch.chdir(tmp_path)  # nowhere near the repository
    manager = _elsewhere(store, clock, tmp_path)
    done = run_bundle(manager, bundle="flow", environment="dev", input_text="hi")
    assert done.status == "succeeded" and done.output_text == "V1 HI", done


def test_a_file_changed_after_signing_is_refused(
    store: Any, repo: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    repo.write("bundles/flow/dev.json", _signed(repo, keys))
    repo.write("teamsteps.py", STEPS_V1.replace("v1", "v2"))  # pushed without signing again
    repo.commit("flow r1, then its code edited")
    controller = make_controller(store, repo, keys, clock, tmp_path)
    controller.reconcile_once()
    assert store.registry.get_active("flow", "dev") is None
    (rejected,) = store.registry.list_revisions("flow", "dev")
    assert rejected.status == "rejected"
    assert any("E_CODE_DIGEST_MISMATCH" in str(d) for d in rejected.diagnostics)
    assert store.code.get([hashlib.sha256(STEPS_V1.encode()).hexdigest()]) == {}


def _forget_code() -> None:
    from kneo.kernel import code

    code._BLOBS.clear()
    code._LOADED.clear()
    code._MATERIALIZED.clear()
    for name in [n for n in sys.modules if n.startswith(code.CODE_PREFIX)]:
        del sys.modules[name]


def test_a_paused_bundle_run_keeps_its_code_until_moved_to_the_active_revision(
    store: Any,
    repo: Repo,
    keys: Keys,
    clock: ManualClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kneo import Decision

    flow = {
        **FLOW,
        "workflow": {
            "type": "sequential",
            "steps": [
                {"id": "ok", "kind": "human", "ref": "approve"},
                {"id": "f", "kind": "function", "ref": "teamsteps:answer"},
            ],
        },
        "components": {"humans": {"approve": {"prompt": "go?"}}},
    }
    (repo.work / ".kneo").mkdir(exist_ok=True)
    repo.write("fmt.py", FMT)
    controller = make_controller(store, repo, keys, clock, tmp_path)
    for version in ("v1", "v2"):
        repo.write("teamsteps.py", STEPS_V1.replace("v1", version))
        data = pin_code(load_spec_data(dict(flow)), flow, repo.work)
        repo.write("bundles/flow/dev.json", keys.bundle("flow", "dev", data))
        repo.commit(f"flow {version}")
        assert controller.reconcile_once().ok
        if version == "v1":
            _forget_code()
            monkeypatch.chdir(tmp_path)
            manager = _elsewhere(store, clock, tmp_path)
            kept = run_bundle(manager, bundle="flow", environment="dev", input_text="a")
            moved = run_bundle(manager, bundle="flow", environment="dev", input_text="b")
    assert store.registry.get_active("flow", "dev").revision == 2  # type: ignore[union-attr]
    again = manager.continue_run(moved.run_id, to_revision="active", actor="ops")
    assert again.status == "paused"
    assert store.runs.get_run(moved.run_id).bundle_revision == 2
    outputs = [
        manager.resume(r.continuation_id, Decision(r.request_id, "approved")).output_text
        for r in (kept, moved)
        if r.continuation_id and r.request_id
    ]
    assert outputs == ["V1 A", "V2 B"]
