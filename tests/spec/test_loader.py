"""Loading: YAML errors with lines, schema errors with paths, overlays, defaults, versions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kneo.errors import SpecError
from kneo.spec.loader import deep_merge, load_spec, load_spec_data, load_spec_text
from kneo.spec.project import ProjectConfig

from .conftest import write_yaml

BASE = {
    "version": "v1",
    "agent": {"name": "a", "model": {"provider": "dummy", "name": "small", "temperature": 0.5}},
    "workflow": {
        "type": "sequential",
        "steps": [
            {"id": "one", "kind": "agent", "ref": "a"},
            {"id": "two", "kind": "agent", "ref": "a"},
        ],
    },
}


@pytest.mark.parametrize(
    ("base", "overlay", "expected"),
    [
        ({"a": 1, "b": {"c": 1, "d": 2}}, {"b": {"d": 3}}, {"a": 1, "b": {"c": 1, "d": 3}}),
        ({"tools": ["x", "y"]}, {"tools": ["z"]}, {"tools": ["z"]}),
        ({"a": {"b": 1}}, {"a": "scalar"}, {"a": "scalar"}),
        ({"a": 1}, {"b": {"c": [1]}}, {"a": 1, "b": {"c": [1]}}),
        (
            {"steps": [{"id": "s1", "x": 1}, {"id": "s2", "x": 2}]},
            {"steps": [{"id": "s2", "x": 9, "y": 1}, {"id": "s3"}]},
            {"steps": [{"id": "s1", "x": 1}, {"id": "s2", "x": 9, "y": 1}, {"id": "s3"}]},
        ),
    ],
    ids=[
        "nested-mapping",
        "list-replaced",
        "scalar-replaces-mapping",
        "new-keys",
        "steps-merge-by-id",
    ],
)
def test_deep_merge(
    base: dict[str, Any], overlay: dict[str, Any], expected: dict[str, Any]
) -> None:
    before = repr(base)
    assert deep_merge(base, overlay) == expected
    assert repr(base) == before  # the base is never modified


def test_overlay_is_merged_for_the_selected_env(tmp_path: Path) -> None:
    spec = write_yaml(tmp_path / "agent.yaml", BASE)
    overlay = write_yaml(
        tmp_path / "agent.prod.yaml", {"agent": {"model": {"name": "large"}}, "version": "v1"}
    )
    loaded = load_spec(spec, env="prod", declared=("dev", "prod"))
    assert loaded.overlays == [overlay]
    assert loaded.spec.agent is not None
    assert loaded.spec.agent.model.name == "large"
    assert loaded.spec.agent.model.temperature == 0.5  # kept from the base
    assert load_spec(spec).spec.agent.model.name == "small"  # type: ignore[union-attr]
    assert load_spec(spec, env="dev").overlays == []  # no overlay file: base only


def test_project_defaults_fill_only_gaps(tmp_path: Path) -> None:
    data = {**BASE, "components": {"agents": {"b": {"name": "b"}}}}
    spec = write_yaml(tmp_path / "s.yaml", data)
    project = ProjectConfig.model_validate(
        {
            "model": {"provider": "openai", "name": "gpt-4o-mini", "temperature": 0.1},
            "runtime": {"preferred_mode": "bridge", "allowed_modes": ["bridge"]},
        }
    )
    loaded = load_spec(spec, project=project)
    a, b = loaded.spec.all_agents()["a"], loaded.spec.all_agents()["b"]
    assert (a.model.provider, a.model.name, a.model.temperature) == ("dummy", "small", 0.5)
    assert (b.model.provider, b.model.name, b.model.temperature) == ("openai", "gpt-4o-mini", 0.1)
    assert b.runtime_preferences.preferred_mode == "bridge"
    assert loaded.data["components"]["agents"]["b"]["model"]["provider"] == "openai"


def test_missing_file() -> None:
    with pytest.raises(SpecError) as err:
        load_spec("does/not/exist.yaml")
    assert err.value.code == "E_FILE_NOT_FOUND"
    assert "does/not/exist.yaml" in str(err.value)


def test_broken_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "bad.yaml", "version: v1\nagent:\n  name: a\n   tools: [x\n")
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert err.value.code == "E_YAML"
    assert f"{path}:4:" in str(err.value)
    assert err.value.details["line"] == 4


@pytest.mark.parametrize(
    ("text", "path", "line"),
    [
        ("version: v1\nagent:\n  name: a\n  colour: red\n", "agent.colour", 4),
        (
            "version: v1\nagent:\n  name: a\n  strategy:\n    max_iterations: lots\n",
            "agent.strategy.max_iterations",
            5,
        ),
        ("version: v1\nagent:\n  name: a\n  tools: [1, {x: 1}]\n", "agent.tools", 4),
        ("version: v1\nagent:\n  system_prompt: hi\n", "agent.name", 2),
        (
            "version: v1\nworkflow:\n  steps:\n    - id: s\n      kind: robot\n      ref: a\n",
            "workflow.steps[0].kind",
            5,
        ),
        (
            "version: v1\nworkflow:\n  type: graph\n  nodes:\n    n1: {kind: agent}\n",
            "workflow.nodes.n1.ref",
            5,
        ),
    ],
    ids=[
        "unknown-field",
        "wrong-type",
        "bad-union",
        "missing-required",
        "bad-literal",
        "keyed-node",
    ],
)
def test_schema_errors_name_path_and_line(tmp_path: Path, text: str, path: str, line: int) -> None:
    spec = write_yaml(tmp_path / "s.yaml", text)
    with pytest.raises(SpecError) as err:
        load_spec(spec)
    assert err.value.code == "E_SCHEMA"
    assert err.value.details["path"].startswith(path)
    assert err.value.details["line"] == line
    assert str(err.value).startswith(f"{spec}:{line}: {err.value.details['path']}")
    assert all(d["code"] == "E_SCHEMA" for d in err.value.details["diagnostics"])


def test_schema_error_in_overlay_points_at_the_overlay(tmp_path: Path) -> None:
    spec = write_yaml(tmp_path / "s.yaml", BASE)
    overlay = write_yaml(tmp_path / "s.staging.yaml", "agent:\n  model:\n    temprature: 0.1\n")
    with pytest.raises(SpecError) as err:
        load_spec(spec, env="staging", declared=("staging",))
    assert err.value.details["file"] == str(overlay)
    assert err.value.details["line"] == 3
    assert err.value.details["path"] == "agent.model.temprature"


def test_unknown_env(tmp_path: Path) -> None:
    spec = write_yaml(tmp_path / "s.yaml", BASE)
    with pytest.raises(SpecError) as err:
        load_spec(spec, env="qa")
    assert err.value.code == "E_UNKNOWN_ENV"
    assert err.value.details["file"] == str(spec)
    for guessed in ("staging", "prod"):  # a project that declares none has exactly dev
        with pytest.raises(SpecError):
            load_spec(spec, env=guessed)
    assert load_spec(spec, env="dev").env == "dev"
    project = ProjectConfig.model_validate({"environments": {"qa": {}}})
    assert load_spec(spec, env="qa", project=project).env == "qa"
    with pytest.raises(SpecError):
        load_spec(spec, env="prod", project=project)  # the project's list is authoritative


def test_an_overlay_file_declares_no_environment(tmp_path: Path) -> None:
    """Environments are declared, never guessed: ``s.perf.yaml`` next to the spec does not
    make ``perf`` one; declared, its overlay applies."""
    spec = write_yaml(tmp_path / "s.yaml", BASE)
    write_yaml(tmp_path / "s.perf.yaml", {"agent": {"strategy": {"max_iterations": 2}}})
    with pytest.raises(SpecError) as err:
        load_spec(spec, env="perf")
    assert err.value.code == "E_UNKNOWN_ENV"
    loaded = load_spec(spec, env="perf", declared=("perf",))
    assert loaded.spec.agent.strategy.max_iterations == 2  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("version", "needle"),
    [(None, "no 'version'"), ("v0", "kneo spec migrate"), ("v2", "unsupported spec version")],
    ids=["unversioned", "v0", "future"],
)
def test_versions_other_than_v1_are_refused(
    tmp_path: Path, version: str | None, needle: str
) -> None:
    data = {k: v for k, v in BASE.items() if k != "version"}
    if version is not None:
        data["version"] = version
    with pytest.raises(SpecError) as err:
        load_spec(write_yaml(tmp_path / "s.yaml", data))
    assert err.value.code == "E_UNSUPPORTED_VERSION"
    assert needle in str(err.value)


def test_inline_specs_report_paths() -> None:
    assert load_spec_data(BASE).agent.name == "a"  # type: ignore[union-attr]
    with pytest.raises(SpecError) as err:
        load_spec_data(
            {"version": "v1", "agent": {"name": "a", "tools": "some"}}, source="request.spec"
        )
    assert err.value.code == "E_SCHEMA"
    assert err.value.details["path"] == "agent.tools"
    assert str(err.value).startswith("request.spec: agent.tools")
    with pytest.raises(SpecError) as err2:
        load_spec_text("version: v1\nagent:\n  name: a\n  nope: 1\n", source="body")
    assert err2.value.details["line"] == 4


def test_a_spec_must_be_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as err:
        load_spec(write_yaml(tmp_path / "s.yaml", "- just\n- a list\n"))
    assert err.value.code == "E_SCHEMA"
