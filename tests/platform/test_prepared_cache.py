"""The per-process caches of prepared specs and environment rules (kneo.platform.preparation).

A cached entry must be used only for exactly the files it was built from: an edited spec,
overlay or environment policy file, another working directory or another environment gets
its own; and nothing of one run (actor, metadata) reaches the next one that shares the entry.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from kneo.errors import BundleNotApproved
from kneo.platform import PlatformManager, create_platform
from kneo.platform.preparation import RunRequest
from kneo.settings import Settings
from kneo.spec.project import ProjectContext
from kneo.store import AuditQuery

STEPS = """
def one(text):
    return text + " one"

def two(text):
    return text + " two"

def six(text):
    return text + " six"
"""


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "cachesteps.py").write_text(STEPS)
    (tmp_path / ".kneo").mkdir()
    # the environments these tests name (a project that declares none has exactly dev)
    (tmp_path / ".kneo" / "config.yaml").write_text(
        "version: v1\nenvironments: {dev: {}, staging: {}, prod: {}}\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("cachesteps", None)
    return tmp_path


@pytest.fixture()
def manager(project: Path) -> Any:
    settings = Settings.from_env({})
    platform = create_platform(settings, ProjectContext.discover(cwd=project, settings=settings))
    yield platform
    platform.store.close()


def spec_text(func: str) -> str:
    step = {"id": "s", "kind": "function", "ref": f"cachesteps:{func}"}
    return json.dumps({"version": "v1", "workflow": {"type": "sequential", "steps": [step]}})


def run(manager: PlatformManager, path: str | Path, **kwargs: Any) -> str | None:
    result = manager.run_from_spec(input_text="in", spec_path=str(path), **kwargs)
    assert result.status == "succeeded", result
    return result.output_text


def test_an_unchanged_spec_is_prepared_once(manager: PlatformManager, project: Path) -> None:
    path = project / "flow.yaml"
    path.write_text(spec_text("one"))
    request = RunRequest(input_text="go", spec_path=str(path))
    first = manager.preparation.prepare(request)
    again = manager.preparation.prepare(request)
    assert again is first and again.workflow is first.workflow


def test_an_edited_spec_is_prepared_again(manager: PlatformManager, project: Path) -> None:
    path = project / "flow.yaml"
    path.write_text(spec_text("one"))
    assert run(manager, path) == "in one"
    path.write_text(spec_text("six") + "\n")  # another size
    assert run(manager, path) == "in six"
    path.write_text(spec_text("two") + "\n")  # same size: only the modification time differs
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert run(manager, path) == "in two"


def test_each_run_stores_the_spec_it_ran(manager: PlatformManager, project: Path) -> None:
    """The prepared entry carries the spec's stored text: runs of an unchanged spec share one
    ``specs`` row, and a run of the edited spec stores and reads back its own document."""
    path = project / "flow.yaml"
    path.write_text(spec_text("one"))
    first = manager.run_from_spec(input_text="in", spec_path=str(path)).run_id
    again = manager.run_from_spec(input_text="in", spec_path=str(path)).run_id
    path.write_text(spec_text("six") + "\n")
    edited = manager.run_from_spec(input_text="in", spec_path=str(path)).run_id
    refs = [
        manager.store.runs.get_run(r).spec["workflow"]["steps"][0]["ref"] for r in (first, again)
    ]
    assert refs == ["cachesteps:one", "cachesteps:one"]
    assert (
        manager.store.runs.get_run(edited).spec["workflow"]["steps"][0]["ref"] == "cachesteps:six"
    )
    assert len(manager.store.specs_held) == 2


def test_a_replaced_file_with_the_same_size_and_time_is_prepared_again(
    manager: PlatformManager, project: Path
) -> None:
    path = project / "flow.yaml"
    path.write_text(spec_text("one"))
    assert run(manager, path) == "in one"
    before = path.stat()
    replacement = project / "flow.new"
    replacement.write_text(spec_text("two"))  # same length as "one"
    os.utime(replacement, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(replacement, path)  # a new inode under the old name (how editors save)
    assert run(manager, path) == "in two"


def test_a_relative_path_means_the_file_in_the_working_directory(
    manager: PlatformManager, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, func in (("a", "one"), ("b", "two")):
        (project / name).mkdir()
        (project / name / "flow.yaml").write_text(spec_text(func))
    (project / "c").mkdir()
    os.link(project / "b" / "flow.yaml", project / "c" / "flow.yaml")  # same file, other dir
    seen = {}
    for name in ("a", "b", "c"):
        monkeypatch.chdir(project / name)
        result = manager.run_from_spec(input_text="in", spec_path="flow.yaml")
        base_dir = manager.store.runs.get_run(result.run_id).metadata["base_dir"]
        seen[name] = (result.output_text, Path(base_dir).name)
    assert seen == {"a": ("in one", "a"), "b": ("in two", "b"), "c": ("in two", "c")}


def test_environments_do_not_share_an_overlaid_spec(
    manager: PlatformManager, project: Path
) -> None:
    path = project / "flow.yaml"
    path.write_text(spec_text("one"))
    assert run(manager, path, environment="staging") == "in one"
    overlay = {"workflow": {"steps": [{"id": "s", "ref": "cachesteps:two"}]}}
    (project / "flow.staging.yaml").write_text(json.dumps(overlay))  # an overlay appears
    assert run(manager, path, environment="staging") == "in two"
    assert run(manager, path, environment="prod") == "in one"
    assert run(manager, path) == "in one"


def test_a_run_records_its_own_environment(manager: PlatformManager, project: Path) -> None:
    path = project / "flow.yaml"
    path.write_text(spec_text("one"))  # no overlay, no policy file: only the name differs
    for env in ("staging", "prod"):
        result = manager.run_from_spec(input_text="in", spec_path=str(path), environment=env)
        assert manager.store.runs.get_run(result.run_id).environment == env


def test_an_environment_policy_file_takes_effect_on_the_next_run(
    manager: PlatformManager, project: Path
) -> None:
    path = project / "flow.yaml"
    path.write_text(spec_text("one"))
    assert run(manager, path, environment="prod") == "in one"
    (project / "environments").mkdir()
    policy = project / "environments" / "prod.yaml"
    policy.write_text("version: v1\nruns: {require_approved_bundle: true}\n")
    with pytest.raises(BundleNotApproved):
        manager.run_from_spec(input_text="in", spec_path=str(path), environment="prod")
    assert run(manager, path, environment="staging") == "in one"  # only prod is gated
    policy.unlink()
    assert run(manager, path, environment="prod") == "in one"


def test_runs_sharing_a_prepared_spec_keep_their_own_actor_and_metadata(
    manager: PlatformManager, project: Path
) -> None:
    path = project / "flow.yaml"
    path.write_text(spec_text("one"))
    first = manager.run_from_spec(
        input_text="in", spec_path=str(path), metadata={"tenant": "acme"}, actor="alice"
    )
    second = manager.run_from_spec(input_text="in", spec_path=str(path), actor="bob")
    assert manager.store.runs.get_run(first.run_id).metadata.get("tenant") == "acme"
    assert "tenant" not in manager.store.runs.get_run(second.run_id).metadata
    actors = {
        event.run_id: event.actor
        for event in manager.store.audit.list_audit(AuditQuery(event_type="run.created")).items
    }
    assert actors == {first.run_id: "alice", second.run_id: "bob"}


def test_inline_specs_are_keyed_by_content(manager: PlatformManager) -> None:
    for func in ("one", "two", "one"):
        result = manager.run_from_spec(input_text="in", spec=json.loads(spec_text(func)))
        assert result.output_text == f"in {func}"
