"""What runs is what was judged: a spec's project code is loaded by path, pinned per run.

A ref's module is never looked up by its bare name on the process-wide ``sys.path``: a project
``profile.py`` runs the project's file, not the standard library's ``profile`` (whose ``run``
executes its argument); two specs (or two projects) with a ``helpers.py`` each run their own;
a run paused on one version of a file resumes on that version, on any process, after the file
changed or went away (the store keeps the bytes by digest); a file that differs from the
digest its code set pins never runs.
"""

from __future__ import annotations

import importlib.metadata
import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kneo.engine.human import Decision
from kneo.errors import KneoError
from kneo.kernel import UNSAFE_MODULES, resolve_callable
from kneo.kernel.code import CodeSet, collect_code, load_code
from kneo.platform import PlatformManager, create_platform
from kneo.policy.access import HostAccess
from kneo.settings import Settings
from kneo.spec.project import ProjectConfig, ProjectContext
from kneo.store import AuditQuery
from kneo.store import code as code_module

PROJECT_MODULE = "def {fn}(text):\n    return 'project {name}: ' + str(text)\n"


def _names() -> list[str]:
    """Standard-library and installed top-level module names a project file could shadow."""
    installed = {
        top
        for tops in importlib.metadata.packages_distributions()
        for top in [tops]
        if top.isidentifier()
    }
    names = {n for n in sys.stdlib_module_names if n.isidentifier()} | installed
    return sorted(n for n in names if n not in UNSAFE_MODULES and n not in ("kneo", "__future__"))


NAMES = _names()


@pytest.fixture(scope="module")
def shadow_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shadow")
    (root / ".kneo").mkdir()
    return root


def _shadowed_callable(name: str) -> str:
    """A function name the real module defines (``run`` for ``profile``), else ``run``."""
    try:
        real = importlib.import_module(name)
    except BaseException:  # some modules refuse to import here (a platform's, a GUI's)
        return "run"
    for candidate in ("run", "main", "system", "load", "loads", name):
        if callable(vars(real).get(candidate)):
            return candidate
    return "run"


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(name=st.sampled_from(NAMES))
def test_a_project_module_named_like_an_installed_one_runs_the_projects_file(
    name: str, shadow_root: Path
) -> None:
    """Whatever standard-library or installed module a project file is named after, the ref
    resolves to the project's function (proven by its output), never the other module's."""
    fn = _shadowed_callable(name)
    (shadow_root / f"{name}.py").write_text(PROJECT_MODULE.format(fn=fn, name=name))
    grant = HostAccess.for_environment(ProjectConfig(), "dev", origin="spec")
    ref = f"{name}:{fn}"
    grant.function(ref, path="ref", roots=[shadow_root])  # judged as the project's file
    code, _ = collect_code([name], [shadow_root], project_root=shadow_root)
    assert code.get(name) is not None and code.get(name).path == f"{name}.py"  # type: ignore[union-attr]
    function = resolve_callable(ref, grant=grant, code=load_code(code, origin=shadow_root))
    assert function("x") == f"project {name}: x"
    assert function.__module__.startswith("_kneo_code_")


def test_the_host_primitives_stay_refused_even_as_project_files(shadow_root: Path) -> None:
    (shadow_root / "subprocess.py").write_text(PROJECT_MODULE.format(fn="run", name="x"))
    code, _ = collect_code(["subprocess"], [shadow_root])
    with pytest.raises(KneoError) as caught:
        resolve_callable("subprocess:run", code=load_code(code))
    assert caught.value.code == "E_FUNCTION_NOT_ALLOWED"


def test_a_file_that_differs_from_its_pin_never_runs(tmp_path: Path) -> None:
    (tmp_path / "pinned_mod.py").write_text("def f(text):\n    return 'judged'\n")
    code, _ = collect_code(["pinned_mod"], [tmp_path], project_root=tmp_path)
    forged = CodeSet.from_manifest(
        [{**code.manifest()[0], "sha256": "0" * 64}], field="bundle.code"
    )
    with pytest.raises(KneoError) as caught:
        resolve_callable("pinned_mod:f", code=load_code(forged, origin=tmp_path))
    assert caught.value.code == "E_CODE_DIGEST_MISMATCH"


# ---------------------------------------------------------------------- through a platform


def _project(root: Path) -> Path:
    (root / ".kneo").mkdir(parents=True)
    (root / ".kneo" / "config.yaml").write_text("version: v1\n")
    return root


def _spec(folder: Path, ref: str, *, human: bool = False) -> Path:
    steps: list[dict[str, Any]] = [{"id": "f", "kind": "function", "ref": ref}]
    if human:
        steps.insert(0, {"id": "ok", "kind": "human", "ref": "approve"})
    data: dict[str, Any] = {"version": "v1", "workflow": {"type": "sequential", "steps": steps}}
    if human:
        data["components"] = {"humans": {"approve": {"prompt": "go?"}}}
    path = folder / "flow.yaml"
    path.write_text(json.dumps(data))
    return path


def _platform(project: Path, database: str) -> PlatformManager:
    settings = Settings.from_env({"KNEO_SERV_DATABASE_URL": database})
    return create_platform(settings, ProjectContext.discover(cwd=project, settings=settings))


def test_two_specs_with_a_helpers_module_each_run_their_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = _project(tmp_path / "p")
    flows = []
    for team in ("alpha", "beta"):
        folder = project / team
        folder.mkdir()
        (folder / "helpers.py").write_text(
            f"from util import tag\n\ndef say(text):\n    return tag('{team}') + text\n"
        )
        (folder / "util.py").write_text("def tag(name):\n    return '[' + name + '] '\n")
        flows.append(_spec(folder, "helpers:say"))
    monkeypatch.chdir(project)
    platform = _platform(project, f"sqlite:///{tmp_path / 'runs.sqlite'}")
    try:
        outputs = [
            platform.run_from_spec(input_text="hi", spec_path=str(f)).output_text for f in flows
        ]
        again = platform.run_from_spec(input_text="hi", spec_path=str(flows[0])).output_text
    finally:
        platform.store.close()
    assert outputs == ["[alpha] hi", "[beta] hi"] and again == "[alpha] hi"
    assert "helpers" not in sys.modules and "util" not in sys.modules


def test_a_paused_run_resumes_on_the_code_it_started_with_on_another_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file changes, then goes away, while the run waits; a second platform (another
    worker, no cached copy) resumes it on the bytes the run was pinned to, from the store."""
    project = _project(tmp_path / "p")
    (project / "steps_v.py").write_text("def f(text):\n    return 'v1 ' + text\n")
    flow = _spec(project, "steps_v:f", human=True)
    monkeypatch.chdir(project)
    database = f"sqlite:///{tmp_path / 'runs.sqlite'}"
    first = _platform(project, database)
    try:
        paused = first.run_from_spec(input_text="go", spec_path=str(flow))
        record = first.store.runs.get_run(paused.run_id).metadata["code"]
        shown = first.get_run(paused.run_id)["metadata"]["code"]
    finally:
        first.store.close()
    assert paused.status == "paused", paused
    # the run's row records the code set's digest; its manifest is in the store by digest
    assert record == {"digest": shown["digest"]}
    assert [f["path"] for f in shown["files"]] == ["steps_v.py"]
    (project / "steps_v.py").write_text("def f(text):\n    return 'v2 ' + text\n")
    _forget_loaded_code()
    second = _platform(project, database)
    try:
        (project / "steps_v.py").unlink()  # not even on disk: only the store has v1
        assert paused.continuation_id and paused.request_id
        done = second.resume(paused.continuation_id, Decision(paused.request_id, "approved"))
        after = second.store.runs.get_run(paused.run_id).metadata["code"]
    finally:
        second.store.close()
    assert done.status == "succeeded" and done.output_text == "v1 go", done
    assert after == record


def test_a_module_edited_between_runs_of_one_prepared_spec_is_pinned_anew(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The prepared spec is cached; each run asks whether its files are still the ones
    pinned (by their stat, then their bytes): an edit, even one keeping the size, pins the
    next run to the new code, and each run's view names its own digest."""
    project = _project(tmp_path / "p")
    (project / "steps_e.py").write_text("def f(text):\n    return 'e1 ' + text\n")
    flow = _spec(project, "steps_e:f")
    monkeypatch.chdir(project)
    platform = _platform(project, f"sqlite:///{tmp_path / 'runs.sqlite'}")
    try:
        first = platform.run_from_spec(input_text="go", spec_path=str(flow))
        again = platform.run_from_spec(input_text="go", spec_path=str(flow))
        (project / "steps_e.py").write_text("def f(text):\n    return 'e2 ' + text\n")
        edited = platform.run_from_spec(input_text="go", spec_path=str(flow))
        codes = [platform.get_run(r.run_id)["metadata"]["code"] for r in (first, again, edited)]
    finally:
        platform.store.close()
    assert [r.output_text for r in (first, again, edited)] == ["e1 go", "e1 go", "e2 go"]
    assert codes[0] == codes[1] and codes[2]["digest"] != codes[0]["digest"]
    assert [f["path"] for f in codes[2]["files"]] == ["steps_e.py"]


def test_a_run_whose_code_manifest_is_not_stored_does_not_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run records its code set's digest; a process that has not seen the set reads the
    manifest from the store by that digest. Gone (or altered), nothing runs:
    ``E_CODE_DIGEST_MISMATCH``."""
    project = _project(tmp_path / "p")
    (project / "steps_m.py").write_text("def f(text):\n    return 'm ' + text\n")
    flow = _spec(project, "steps_m:f", human=True)
    monkeypatch.chdir(project)
    database = f"sqlite:///{tmp_path / 'runs.sqlite'}"
    first = _platform(project, database)
    try:
        paused = first.run_from_spec(input_text="go", spec_path=str(flow))
        digest = first.store.runs.get_run(paused.run_id).metadata["code"]["digest"]
    finally:
        first.store.close()
    db = sqlite3.connect(tmp_path / "runs.sqlite")
    with db:
        db.execute("UPDATE code_files SET data = ? WHERE sha256 = ?", (b"[]", digest))
    db.close()
    _forget_loaded_code()
    code_module._HELD.clear()
    second = _platform(project, database)
    try:
        assert second.get_run(paused.run_id)["metadata"]["code"] == {"digest": digest}
        assert paused.continuation_id and paused.request_id
        with pytest.raises(KneoError) as refused:
            second.resume(paused.continuation_id, Decision(paused.request_id, "approved"))
    finally:
        second.store.close()
    assert refused.value.code == "E_CODE_DIGEST_MISMATCH"


def _forget_loaded_code() -> None:
    """This process's copies of code files and loaded namespaces, as a new worker has none."""
    from kneo.kernel import code

    code._BLOBS.clear()
    code._LOADED.clear()
    code._RECORDS.clear()  # a run's manifest too: read from the store by its digest
    for name in [n for n in sys.modules if n.startswith(code.CODE_PREFIX)]:
        del sys.modules[name]


# ---------------------------------------------------------------------- two projects


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_database")())
    return f"sqlite:///{tmp_path / 'runs.sqlite'}"


def test_each_project_runs_its_own_functions_in_one_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database: str
) -> None:
    """Two teams, each with a ``steps.py`` of its own in its project's directory and an inline
    spec naming ``steps:who`` (declared in its definition): each run executes its own team's
    file, on both databases, whichever ran first; the host's same-named module neither."""
    host = _project(tmp_path / "host")
    (host / "steps.py").write_text("def who(text):\n    return 'the host'\n")
    monkeypatch.chdir(host)
    platform = _platform(host, database)
    try:
        spec = {
            "version": "v1",
            "workflow": {
                "type": "sequential",
                "steps": [{"id": "f", "kind": "function", "ref": "steps:who"}],
            },
        }
        outputs = {}
        for team in ("team-a", "team-b", "team-a"):
            if team not in outputs:
                definition = {"functions": {"declared": ["steps:who"]}}
                platform.store.projects.create_project(team, definition=definition)
                root = host / ".kneo" / "projects" / team
                root.mkdir(parents=True, exist_ok=True)
                (root / "steps.py").write_text(f"def who(text):\n    return {team!r}\n")
            manager = platform.for_project(team)
            result = manager.run_from_spec(input_text="x", spec=spec)
            assert result.status == "succeeded", result
            outputs.setdefault(team, []).append(result.output_text)
    finally:
        platform.close()
    assert outputs == {"team-a": ["team-a", "team-a"], "team-b": ["team-b"]}


def test_a_paused_run_moves_to_current_code_only_on_purpose_and_audited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = _project(tmp_path / "p")
    (project / "steps_m.py").write_text("def f(text):\n    return 'v1 ' + text\n")
    flow = _spec(project, "steps_m:f", human=True)
    monkeypatch.chdir(project)
    platform = _platform(project, f"sqlite:///{tmp_path / 'runs.sqlite'}")
    try:
        first = platform.run_from_spec(input_text="a", spec_path=str(flow))
        second = platform.run_from_spec(input_text="b", spec_path=str(flow))
        (project / "steps_m.py").write_text("def f(text):\n    return 'v2 ' + text\n")
        with pytest.raises(KneoError) as refused:  # a spec run has no revision numbers
            platform.continue_run(first.run_id, to_revision=3)
        assert refused.value.code == "invalid_request"
        moved = platform.continue_run(first.run_id, to_revision="current", actor="ops")
        assert moved.status == "paused"
        outputs = [
            platform.resume(r.continuation_id, Decision(r.request_id, "approved")).output_text
            for r in (first, second)
            if r.continuation_id and r.request_id
        ]
        audit = [
            e
            for e in platform.store.audit.list_audit(AuditQuery(run_id=first.run_id)).items
            if e.event_type == "run.code_moved"
        ]
    finally:
        platform.close()
    assert outputs == ["v2 a", "v1 b"]  # the moved run runs today's file; the other its own
    assert len(audit) == 1 and audit[0].actor == "ops"
    assert audit[0].payload["from_code"] != audit[0].payload["to_code"]


def test_installed_code_runs_only_from_where_the_grant_found_it(tmp_path: Path) -> None:
    """A module reached through ``functions.modules`` must import from the file the grant
    judged: anything else (another file answering to the name by then) is refused."""
    config = ProjectConfig.model_validate({"functions": {"modules": ["json"]}})
    grant = HostAccess.for_environment(config, "dev", origin="spec")
    assert resolve_callable("json:dumps", grant=grant)([1]) == "[1]"
    grant._installed_at["json"] = str(tmp_path / "json.py")  # judged somewhere else
    with pytest.raises(KneoError) as refused:
        resolve_callable("json:loads", grant=grant)
    assert refused.value.code == "E_FUNCTION_NOT_ALLOWED"
    assert str(tmp_path / "json.py") in refused.value.message
