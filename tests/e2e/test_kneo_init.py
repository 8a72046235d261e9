"""``kneo init``: the templates, what it refuses, and ``kneo version``.

The journey through a project it makes (validate, run, pause, resume, sign) is the README
quickstart, run from the installed wheel by tests/release/test_wheel_journey.py.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import jsonschema
import yaml

from kneo.store.migrate import HEAD_REVISION as SCHEMA_REVISION
from kneo.version import package_version, schema_revision
from tests.e2e.doc_walk import ROOT
from tests.e2e.test_reset_and_init import kneo

MODELINE = re.compile(r"^# yaml-language-server: \$schema=(\S+)$", re.M)


def test_a_gitops_project_its_schemas_resolve_and_its_files_validate(tmp_path: Path) -> None:
    made = kneo(tmp_path, "init", "repo", "--template", "gitops")
    assert made.returncode == 0, made.stderr
    repo = tmp_path / "repo"
    for path in (".kneo/config.yaml", "specs/approval.yaml", "environments/prod.yaml",
                 "evals/assistant.eval.yaml", "project_functions.py", "bundles/.gitkeep",
                 ".github/workflows/kneo-specs.yml", "README.md"):  # fmt: skip
        assert (repo / path).is_file(), path
    assert "name: repo" in (repo / ".kneo" / "config.yaml").read_text()
    # the spec repository workflow is the checkout's, installing this distribution
    shipped = (ROOT / ".github" / "workflows" / "spec-repo.yml").read_text()
    written = (repo / ".github" / "workflows" / "kneo-specs.yml").read_text()
    pin = re.compile(r'KNEO_PACKAGE: "kneo-platform==[^"]+"')
    # the version that ran `kneo init`, never a guessed release
    assert f'KNEO_PACKAGE: "kneo-platform=={package_version()}"' in written
    assert pin.search(written) and pin.sub("", written) == pin.sub("", shipped)
    # every YAML names a schema that exists beside it, and (overlays apart) validates
    checked = 0
    for path in sorted(repo.rglob("*.yaml")):
        found = MODELINE.search(path.read_text())
        if found is None:
            continue
        schema_path = (path.parent / found.group(1)).resolve()
        assert schema_path.is_file() and schema_path.is_relative_to(repo), path
        if path.name.count(".") > 1 and "eval" not in path.name:
            continue  # an overlay is a partial spec
        schema = json.loads(schema_path.read_text())
        jsonschema.Draft202012Validator(schema).validate(yaml.safe_load(path.read_text()))
        checked += 1
    assert checked >= 6


def test_init_never_overwrites_and_names_what_it_refuses(tmp_path: Path) -> None:
    assert kneo(tmp_path, "init").returncode == 0
    config = tmp_path / ".kneo" / "config.yaml"
    config.write_text(config.read_text() + "# mine\n")
    again = kneo(tmp_path, "init")
    assert again.returncode != 0
    assert "already holds" in again.stderr and "--force" in again.stderr
    assert config.read_text().endswith("# mine\n")
    bad = kneo(tmp_path, "init", "other", "--template", "helm")
    assert bad.returncode != 0 and "template" in bad.stderr and "gitops" in bad.stderr
    assert not (tmp_path / "other").exists()
    (tmp_path / "afile").write_text("x")
    onto_file = kneo(tmp_path, "init", "afile")
    assert onto_file.returncode != 0 and "not a directory" in onto_file.stderr
    assert "Traceback" not in onto_file.stderr


def test_version_names_the_build_and_both_schema_revisions(tmp_path: Path) -> None:
    before = kneo(tmp_path, "version", "-o", "json")
    assert before.returncode == 0, before.stderr
    info = json.loads(before.stdout)
    assert set(info) == {"version", "revision", "python", "schema_revision", "database"}
    assert info["schema_revision"] == SCHEMA_REVISION == schema_revision()  # files = code
    assert info["database"]["exists"] is False and info["database"]["revision"] is None
    assert not (tmp_path / ".kneo").exists()  # asking created no database
    assert kneo(tmp_path, "db", "upgrade").returncode == 0
    after = json.loads(kneo(tmp_path, "version", "-o", "json").stdout)
    assert after["database"]["revision"] == SCHEMA_REVISION
    table = kneo(tmp_path, "version").stdout
    assert f"schema {SCHEMA_REVISION} (database: {SCHEMA_REVISION})" in table
    down = kneo(tmp_path, "version", KNEO_SERV_DATABASE_URL="postgresql+psycopg://u@127.0.0.1:1/x")
    assert down.returncode == 0 and "database: -" in down.stdout  # the version still prints
    short = kneo(tmp_path, "--version")
    assert short.returncode == 0, short.stderr
    assert short.stdout.strip() == f"kneo {info['version']}"
    # run from this checkout (an editable install): the commit checked out, not the one an
    # install long ago recorded
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert head.startswith(info["revision"]) and len(info["revision"]) >= 7
