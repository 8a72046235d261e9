"""Skills the project declares (``skills:`` in ``.kneo/config.yaml``): any spec's agents
switch them on by name as if the spec declared them, and a run's overlay may add them; their
instructions are written in the config or kept in a file of the project, read through the
trust kernel's file door (:func:`kneo.kernel.read_project_file`), which refuses every path
that leaves the project. A spec itself never names a file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from kneo.errors import KneoError, SpecError
from kneo.kernel import read_project_file
from kneo.runtimes import create_runtime_registry
from kneo.spec.compiler import SpecCompiler
from kneo.spec.loader import load_spec, load_spec_data
from kneo.spec.project import ProjectConfig, load_project_config
from kneo.spec.skills import apply_skills_overlay, project_catalog
from kneo.tools.defaults import create_tool_registry

RELEASE_NOTES = "Start with what changed for the reader.\nOne line per change.\n"
COMPILER = SpecCompiler(
    runtime_registry=create_runtime_registry(), tool_registry=create_tool_registry()
)


def _project(root: Path, skills: dict[str, Any]) -> Path:
    config = root / ".kneo" / "config.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(yaml.safe_dump({"version": "v1", "skills": skills}))
    return config


def _spec(root: Path, agent_skills: list[str], own: dict[str, Any] | None = None) -> Path:
    doc: dict[str, Any] = {
        "version": "v1",
        "agent": {
            "name": "editor",
            "system_prompt": "You edit notes.",
            "skills": agent_skills,
            "model": {"provider": "dummy", "script": [{"text": "ok"}]},
        },
    }
    if own:
        doc["skills"] = own
    path = root / "spec.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture
def project(tmp_path: Path) -> ProjectConfig:
    (tmp_path / "skills" / "release-notes").mkdir(parents=True)
    (tmp_path / "skills" / "release-notes" / "SKILL.md").write_text(RELEASE_NOTES)
    config = _project(
        tmp_path,
        {
            "plain-english": {"description": "Everyday words.", "instructions": "Be plain."},
            "release-notes": {
                "instructions_file": "skills/release-notes/SKILL.md",
                "tools": ["word_count"],
            },
        },
    )
    return load_project_config(config)


def test_an_agent_names_a_project_skill_as_if_the_spec_declared_it(
    tmp_path: Path, project: ProjectConfig
) -> None:
    loaded = load_spec(_spec(tmp_path, ["plain-english", "release-notes"]), project=project)
    assert loaded.data["skills"] == {  # the stored (and signed) document holds them
        "plain-english": {"description": "Everyday words.", "instructions": "Be plain."},
        "release-notes": {"instructions": RELEASE_NOTES, "tools": ["word_count"]},
    }
    step = COMPILER.compile(loaded.spec).steps[0]
    assert step.agent is not None
    assert step.agent.system_prompt.endswith(f"## Skill: release-notes\n{RELEASE_NOTES.strip()}")
    assert [t.name for t in step.tools] == ["word_count"]  # the skill's tool joins
    # a spec that names none of them gets none (its document is untouched)
    assert "skills" not in load_spec(_spec(tmp_path, []), project=project).data


def test_the_specs_own_skill_of_a_name_wins(tmp_path: Path, project: ProjectConfig) -> None:
    own = {"plain-english": {"instructions": "The spec's own words."}}
    loaded = load_spec(_spec(tmp_path, ["plain-english"], own), project=project)
    assert loaded.spec.skills["plain-english"].instructions == "The spec's own words."


def test_an_inline_spec_gets_them_by_name_and_unknown_ones_are_refused(
    project: ProjectConfig,
) -> None:
    doc = yaml.safe_load(_spec_text(["release-notes"]))
    assert load_spec_data(doc, project=project).skills["release-notes"].tools == ["word_count"]
    unknown = load_spec_data(yaml.safe_load(_spec_text(["nope"])), project=project)
    found = {(d.code, d.path): d.message for d in COMPILER.validate(unknown)}
    why = found[("E_UNKNOWN_SKILL", "agent.skills[0]")]
    assert "neither by the spec nor by the project" in why


def _spec_text(skills: list[str]) -> str:
    return yaml.safe_dump(
        {
            "version": "v1",
            "agent": {
                "name": "editor",
                "skills": skills,
                "model": {"provider": "dummy", "script": [{"text": "ok"}]},
            },
        }
    )


def test_a_runs_overlay_adds_a_project_skill(tmp_path: Path, project: ProjectConfig) -> None:
    data = load_spec(_spec(tmp_path, []), project=project).data
    added = apply_skills_overlay(data, {"add": ["release-notes"]}, project)
    assert added["agent"]["skills"] == ["release-notes"]
    assert added["skills"]["release-notes"]["instructions"] == RELEASE_NOTES
    assert "skills" not in data  # the caller's document is left as it was
    with pytest.raises(SpecError) as info:
        apply_skills_overlay(data, {"add": ["nope"]}, project)
    assert info.value.code == "E_UNKNOWN_SKILL" and info.value.details["path"] == "skills.add[0]"
    assert "plain-english, release-notes" in info.value.message
    with pytest.raises(SpecError):  # without the project, only the spec's own count
        apply_skills_overlay(data, {"add": ["release-notes"]})


def test_the_catalog_lists_them_by_name(project: ProjectConfig) -> None:
    assert project_catalog(project) == [
        {
            "name": "plain-english",
            "description": "Everyday words.",
            "instructions": "Be plain.",
            "tools": [],
            "path": None,
            "source": "project",
        },
        {
            "name": "release-notes",
            "description": "",
            "instructions": RELEASE_NOTES,
            "tools": ["word_count"],
            "path": "skills/release-notes/SKILL.md",
            "source": "project",
        },
    ]


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/etc/hostname", "E_FILE_NOT_ALLOWED"),
        ("../outside.md", "E_FILE_NOT_ALLOWED"),
        ("skills/../../outside.md", "E_FILE_NOT_ALLOWED"),
        ("skills\\..\\..\\outside.md", "E_FILE_NOT_ALLOWED"),
        ("link-out.md", "E_FILE_NOT_ALLOWED"),  # a symlink to the file outside
        ("dir-link/outside.md", "E_FILE_NOT_ALLOWED"),  # through a linked directory
        ("missing.md", "E_FILE_NOT_FOUND"),
        ("skills", "E_NOT_A_FILE"),
        ("fifo", "E_NOT_A_FILE"),
        ("huge.md", "E_SCHEMA"),
        ("latin1.md", "E_SCHEMA"),
    ],
)
def test_the_file_door_refuses_what_leaves_the_project(
    tmp_path: Path, path: str, code: str
) -> None:
    """Each way a config could name a file outside the project, or not a text file, is
    refused naming the field, before anything is read; the file outside is never read."""
    root = tmp_path / "project"
    (root / "skills").mkdir(parents=True)
    outside = tmp_path / "outside.md"
    outside.write_text("SECRET outside the project")
    (root / "link-out.md").symlink_to(outside)
    (root / "dir-link").symlink_to(tmp_path, target_is_directory=True)
    os.mkfifo(root / "fifo")  # reading it would block: refused before it is opened
    (root / "huge.md").write_text("x" * 20_001)
    (root / "latin1.md").write_bytes("caf\xe9".encode("latin-1"))
    config = _project(root, {"s": {"instructions_file": path}})
    with pytest.raises(KneoError) as info:
        load_project_config(config)
    assert info.value.code == code
    assert info.value.details["field"] == "skills.s.instructions_file"
    assert "SECRET" not in info.value.message


def test_the_door_reads_a_file_inside_through_a_symlink_inside(tmp_path: Path) -> None:
    (tmp_path / "real.md").write_text("inside")
    (tmp_path / "alias.md").symlink_to(tmp_path / "real.md")
    assert read_project_file(tmp_path, "alias.md", field="f", max_chars=10) == "inside"
    with pytest.raises(KneoError) as info:
        read_project_file(tmp_path, "real.md", field="f", max_chars=3)
    assert info.value.code == "E_SCHEMA"


def test_a_spec_never_names_a_file(tmp_path: Path) -> None:
    """Only the project config reads files: a spec's own skill takes no instructions_file
    (an inline spec sent to the API is the caller's document)."""
    outside = tmp_path / "secret.md"
    outside.write_text("SECRET")
    doc = yaml.safe_load(_spec_text(["s"]))
    doc["skills"] = {"s": {"instructions_file": str(outside)}}
    with pytest.raises(SpecError) as info:
        load_spec_data(doc)
    assert info.value.code == "E_SCHEMA" and "SECRET" not in info.value.message


@pytest.mark.parametrize(
    ("skills", "words"),
    [
        ({"bad name!": {"instructions": "x"}}, "not a valid name"),
        ({"s": {}}, "exactly one of instructions and instructions_file"),
        ({"s": {"instructions": "x", "instructions_file": "a.md"}}, "exactly one"),
        ({"s": {"instructions": "x", "prompt": "y"}}, "prompt"),
    ],
)
def test_a_malformed_skill_is_refused_naming_it(
    tmp_path: Path, skills: dict[str, Any], words: str
) -> None:
    with pytest.raises(KneoError) as info:
        load_project_config(_project(tmp_path, skills))
    assert info.value.code == "E_SCHEMA" and words in info.value.message
