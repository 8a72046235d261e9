"""State apart from configuration: ``kneo reset`` removes local run state and only that;
``kneo config init`` writes what docs/project_config.md prints and never overwrites unasked."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import jsonschema
import yaml

from tests.e2e.doc_walk import ROOT, project_copy, reader_env


def kneo(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kneo", *args],
        cwd=cwd,
        env=reader_env(cwd, **env),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )


def test_reset_removes_state_and_keeps_config_and_backups(tmp_path: Path) -> None:
    project = project_copy(tmp_path / "project")
    config = (project / ".kneo" / "config.yaml").read_bytes()
    paused = kneo(project, "run", "examples/smoke_human_workflow.yaml", "-i", "x", "--json")
    assert json.loads(paused.stdout)["status"] == "paused", paused.stderr
    backup = project / ".kneo" / "backups" / "before.sqlite"
    assert kneo(project, "maintenance", "backup", str(backup)).returncode == 0
    (project / ".kneo" / "logs").mkdir(exist_ok=True)
    (project / ".kneo" / "logs" / "service.log").write_text("a log line\n")

    listed = kneo(project, "reset", "--dry-run")
    assert listed.returncode == 0
    assert "would remove" in listed.stdout and "kneo_runs.sqlite" in listed.stdout
    assert (project / ".kneo" / "kneo_runs.sqlite").exists()

    unasked = kneo(project, "reset")  # no terminal to ask on, no --yes
    assert unasked.returncode == 2 and unasked.stderr.startswith("error[usage_error]")
    assert (project / ".kneo" / "kneo_runs.sqlite").exists()

    done = kneo(project, "reset", "--yes", "-o", "json")
    report = json.loads(done.stdout)
    removed = {Path(p["path"]).name for p in report["paths"]}
    assert report["removed"] and {"kneo_runs.sqlite", "logs"} <= removed
    left = sorted(
        p.relative_to(project / ".kneo").as_posix() for p in (project / ".kneo").rglob("*")
    )
    assert left == ["backups", "backups/before.sqlite", "config.yaml"]
    assert (project / ".kneo" / "config.yaml").read_bytes() == config
    assert kneo(project, "reset", "--yes").stdout.startswith("nothing to remove")
    runs = kneo(project, "runs", "list", "--json")  # a fresh, empty database
    assert json.loads(runs.stdout)["runs"] == []


def test_reset_refuses_a_postgresql_database(tmp_path: Path) -> None:
    project = project_copy(tmp_path / "project")
    url = "postgresql+psycopg://kneo:planted-pg-password@db.invalid:5432/kneo"
    refused = kneo(project, "reset", "--yes", KNEO_SERV_DATABASE_URL=url)
    assert refused.returncode == 1
    assert refused.stderr.startswith("error[unsupported_backend]: kneo reset removes local")
    assert "planted-pg-password" not in refused.stderr


def test_config_init_writes_the_documented_config(tmp_path: Path) -> None:
    page = (ROOT / "docs" / "project_config.md").read_text()
    section = page.split("## What `kneo config init` writes", 1)[1]
    printed = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert printed is not None
    created = kneo(tmp_path, "config", "init", "--name", "my-project")
    assert created.returncode == 0, created.stderr
    written = (tmp_path / ".kneo" / "config.yaml").read_text()
    assert written == printed.group(1)
    # the schema the modeline names is beside it, and the config validates against it
    modeline = written.splitlines()[0].split("$schema=", 1)[1]
    schema = json.loads((tmp_path / ".kneo" / modeline).read_text())
    jsonschema.Draft202012Validator(schema).validate(yaml.safe_load(written))
    again = kneo(tmp_path, "config", "init", "--name", "other")
    assert again.returncode == 1 and again.stderr.startswith("error[config_exists]")
    assert "--force" in again.stderr
    assert (tmp_path / ".kneo" / "config.yaml").read_text() == written
    forced = kneo(tmp_path, "config", "init", "--name", "other", "--force")
    assert forced.returncode == 0
    assert "name: other" in (tmp_path / ".kneo" / "config.yaml").read_text()
    shown = kneo(tmp_path, "config", "show", "--json")
    assert json.loads(shown.stdout)["config"]["name"] == "other"
