"""The original platform's (kneo-serv) specs: ``kneo spec validate`` names the migration on
their fields (E_SCHEMA with the field's path), ``kneo spec migrate --from kneo-serv`` converts
one with a report, and the converted spec runs."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from kneo.platform import create_platform
from kneo.settings import Settings
from kneo.spec.migrate_kneo_serv import migrate_kneo_serv
from kneo.spec.project import ProjectContext
from tests.cli_zygote import KNEO

ORIGINAL = Path(__file__).with_name("kneo_serv") / "original_research.yaml"
REPO = Path(__file__).resolve().parents[2]


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*KNEO, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "HOME": str(cwd)},
        timeout=120,
    )


def test_validate_names_the_migration_on_the_originals_fields(tmp_path: Path) -> None:
    (tmp_path / ".kneo").mkdir()
    found = _cli("spec", "validate", str(ORIGINAL), "--json", cwd=tmp_path)
    assert found.returncode != 0
    text = found.stdout + found.stderr
    assert "E_SCHEMA" in text
    assert "kneo spec migrate --from kneo-serv" in text
    assert "tools" in text or "model.token_budget" in text


def test_migrate_reports_and_the_result_validates_and_runs(tmp_path: Path) -> None:
    data = yaml.safe_load(ORIGINAL.read_text())
    migrated, report = migrate_kneo_serv(data)
    assert migrated["components"]["tools"]["word_count"]["implementation"] == (
        "original_functions:word_count"
    )
    assert migrated["components"]["functions"]["tidy"] == {"ref": "original_functions:tidy"}
    assert migrated["agent"]["token_budget"] == {"per_run": 5000}
    assert "policies" not in migrated and "tools" not in migrated
    assert any("policies" in line for line in report)
    assert any("fallback_ref" in line for line in report)
    (tmp_path / ".kneo").mkdir()
    (tmp_path / "original_functions.py").write_text(
        (ORIGINAL.parent / "original_functions.py").read_text()
    )
    out = tmp_path / "migrated.yaml"
    done = _cli(
        "spec",
        "migrate",
        str(ORIGINAL),
        "--from",
        "kneo-serv",
        "-o",
        str(out),
        "--json",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["source_version"] == "kneo-serv" and shown["changes"] == report
    valid = _cli("spec", "validate", str(out), cwd=tmp_path)
    assert valid.returncode == 0, valid.stdout + valid.stderr
    settings = Settings.from_env({"KNEO_SERV_DATABASE_URL": f"sqlite:///{tmp_path / 'k.db'}"})
    manager = create_platform(settings, ProjectContext.discover(cwd=tmp_path, settings=settings))
    try:
        result = manager.run_from_spec(input_text="  some words here ", spec_path=out)
        assert result.status == "succeeded", result.to_dict()
        assert result.output_text == result.output_text.upper()
    finally:
        manager.store.close()


def test_an_unknown_dialect_is_refused_naming_the_option(tmp_path: Path) -> None:
    (tmp_path / ".kneo").mkdir()
    refused = _cli("spec", "migrate", str(ORIGINAL), "--from", "langflow", cwd=tmp_path)
    assert refused.returncode != 0
    assert "--from" in refused.stdout + refused.stderr
