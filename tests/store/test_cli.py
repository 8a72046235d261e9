"""`kneo db` and `kneo maintenance` commands against a real SQLite project directory."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from kneo.cli.main import app
from kneo.cli.output import run_cli
from kneo.clock import ManualClock
from kneo.store import open_store

from .helpers import new_run


def kneo(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["kneo", *args])
    code = run_cli(app)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in ("KNEO_SERV_DATABASE_URL", "KNEO_PROJECT_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_db_current_and_upgrade(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`db current` never creates the database; `db upgrade` brings it to head."""
    code, out, _ = kneo(monkeypatch, capsys, "db", "current", "--json")
    assert code == 0 and json.loads(out)["exists"] is False
    assert not (project / ".kneo" / "kneo_runs.sqlite").exists()
    code, out, _ = kneo(monkeypatch, capsys, "db", "upgrade", "--json")
    result = json.loads(out)
    assert code == 0 and result["from_revision"] is None and result["revision"] == result["head"]
    code, out, _ = kneo(monkeypatch, capsys, "db", "current")
    assert code == 0 and "up to date" in out


def test_maintenance_prune_uses_env_retention(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`maintenance prune` reads KNEO_SERV_RETENTION_* and honours --dry-run."""
    store = open_store(None, state_dir=project / ".kneo", clock=ManualClock())
    run_id = new_run(store)
    with store.transaction() as tx:
        tx.update_run(run_id, status="succeeded", finished_at=store.clock.now())
    store.close()
    monkeypatch.setenv("KNEO_SERV_RETENTION_RUNS_DAYS", "1")
    code, out, _ = kneo(monkeypatch, capsys, "maintenance", "prune", "--dry-run", "--json")
    assert code == 0 and json.loads(out)["counts"]["runs"] == 1
    code, out, _ = kneo(monkeypatch, capsys, "maintenance", "prune")
    assert code == 0 and "deleted" in out
    code, out, _ = kneo(monkeypatch, capsys, "maintenance", "prune", "--json")
    assert json.loads(out)["counts"]["runs"] == 0


def test_maintenance_backup_and_restore(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Backup then restore round-trips; restoring over a database needs --force."""
    store = open_store(None, state_dir=project / ".kneo")
    new_run(store, run_id="run_keep")
    store.close()
    code, out, _ = kneo(monkeypatch, capsys, "maintenance", "backup", "bk/kneo.sqlite", "--json")
    assert code == 0 and Path(json.loads(out)["backup"]).is_file()
    code, _, err = kneo(monkeypatch, capsys, "maintenance", "restore", "bk/kneo.sqlite")
    assert code == 1 and "error[would_overwrite]" in err
    code, _, _ = kneo(
        monkeypatch, capsys, "maintenance", "restore", "bk/kneo.sqlite", "--to", "restored.sqlite"
    )
    assert code == 0
    restored = open_store(f"sqlite:///{project / 'restored.sqlite'}")
    assert restored.runs.get_run("run_keep").run_id == "run_keep"
    restored.close()
    code, _, err = kneo(
        monkeypatch, capsys, "maintenance", "restore", "missing.sqlite", "--to", "x.sqlite"
    )
    assert code == 1 and "error[not_found]" in err


def test_bad_database_url_is_one_line_error(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unsupported URL gives error[config_error] and no traceback."""
    code, _, err = kneo(monkeypatch, capsys, "db", "upgrade", "--database-url", "mysql://h/db")
    assert code == 1 and err.startswith("error[config_error]") and "Traceback" not in err
