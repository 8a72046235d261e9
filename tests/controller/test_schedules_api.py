"""``/v1/schedules`` and ``kneo schedules``: who may read, pause and trigger a schedule.

The real app with API keys of three roles over one store (SQLite and PostgreSQL): a
reviewer reads, only an operator pauses and triggers, and a key of another project sees
nothing of this one's.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gitops_fixtures import Keys, Repo, documented
from starlette.testclient import TestClient
from test_schedules import _platform, _promote

from kneo.clock import ManualClock
from kneo.settings import Settings
from kneo.store import AuditQuery

TOKENS = {
    "ops": "ops-secret-token-0123456789",
    "viewer": "viewer-secret-token-0123456789",
    "outsider": "outsider-secret-token-0123456789",
}
ROLES = {"ops": "operator", "viewer": "reviewer", "outsider": "operator@other"}
PATH = "/v1/schedules/nightly/dev/tick"


def _as(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[name]}"}


@pytest.fixture
def client(
    store: Any, repo: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> Iterator[TestClient]:
    from kneo.platform import create_platform
    from kneo.service import create_app

    _promote(store, repo, keys, clock, tmp_path, cron="0 3 * * *", timezone="Europe/Paris")
    settings = Settings.from_env(
        {
            "KNEO_SERV_AUTH_ENABLED": "true",
            "KNEO_SERV_API_KEYS": ";".join(f"{n}:{t}:{ROLES[n]}" for n, t in TOKENS.items()),
        }
    )
    base = _platform(store, clock, tmp_path)
    manager = create_platform(settings=settings, project=base.project, store=store, clock=clock)
    app = create_app(False, settings=settings, manager=manager, start_worker=False)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def test_a_reviewer_reads_only_an_operator_changes(client: TestClient, store: Any) -> None:
    listed = client.get("/v1/schedules", headers=_as("viewer"))
    assert listed.status_code == 200, listed.text
    (item,) = documented("schedules-list", listed)["schedules"]
    assert (item["bundle"], item["environment"], item["name"]) == ("nightly", "dev", "tick")
    # 03:00 in Paris on 2026-03-01 (UTC+1) is 02:00 UTC; the clock is at midnight UTC
    assert item["next_tick"] == "2026-03-01T02:00:00+00:00" and item["paused"] is False

    for verb in ("pause", "resume", "trigger"):
        refused = client.post(f"{PATH}/{verb}", headers=_as("viewer"))
        assert refused.status_code == 403, (verb, refused.text)
    assert store.schedules.ticks(("nightly", "dev", "tick")) == []

    paused = client.post(f"{PATH}/pause", headers=_as("ops"))
    assert paused.status_code == 200 and documented("schedules-pause", paused)["paused"] is True
    assert paused.json()["paused_by"] == "ops"
    events = store.audit.list_audit(AuditQuery(event_type="schedule.paused")).items
    assert [e.actor for e in events] == ["ops"]

    started = client.post(f"{PATH}/trigger", headers=_as("ops"))
    assert started.status_code == 202, started.text
    documented("schedules-trigger", started)
    resumed = client.post(f"{PATH}/resume", headers=_as("ops"))
    assert documented("schedules-resume", resumed)["paused"] is False
    run = store.runs.get_run(started.json()["run_id"])
    assert run.status == "queued" and run.bundle_name == "nightly"
    assert run.metadata["schedule"]["name"] == "tick"
    got = documented("schedules-get", client.get(PATH, headers=_as("viewer")))
    assert [t["status"] for t in got["ticks"]] == ["started"]


def test_another_project_and_bad_names(client: TestClient) -> None:
    for method, path in (("GET", "/v1/schedules"), ("GET", PATH), ("POST", PATH + "/trigger")):
        refused = client.request(method, path, headers=_as("outsider"))
        assert refused.status_code in (403, 404), (path, refused.text)
    missing = client.get("/v1/schedules/nightly/dev/nope", headers=_as("viewer"))
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    bad = client.post("/v1/schedules/nightly/dev/Bad%20Name/trigger", headers=_as("ops"))
    assert bad.status_code == 400, bad.text


def test_the_cli_over_the_project_store(
    store: Any,
    repo: Repo,
    keys: Keys,
    clock: ManualClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``kneo schedules`` without a service: the project's own store, as ``--actor``."""
    import json

    from typer.testing import CliRunner

    from kneo.cli.main import app

    _promote(store, repo, keys, clock, tmp_path, every_seconds=3600)
    _platform(store, clock, tmp_path)  # writes the project's config
    monkeypatch.chdir(tmp_path)
    for name in [k for k in __import__("os").environ if k.startswith("KNEO_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("KNEO_SERV_DATABASE_URL", store.engine.url.render_as_string(False))
    runner = CliRunner()

    def kneo(*args: str) -> Any:
        result = runner.invoke(app, [*args, "--json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    listed = kneo("schedules", "list")
    assert [s["name"] for s in listed["schedules"]] == ["tick"]
    paused = kneo("schedules", "pause", "nightly", "tick", "--env", "dev", "--actor", "ops")
    assert paused["paused"] is True and paused["paused_by"] == "ops"
    assert kneo("schedules", "resume", "nightly", "tick", "--env", "dev")["paused"] is False
    started = kneo("schedules", "trigger", "nightly", "tick", "--env", "dev", "--actor", "ops")
    assert started["status"] == "started" and store.runs.get_run(started["run_id"])
    got = kneo("schedules", "get", "nightly", "tick", "--env", "dev")
    assert [t["run_id"] for t in got["ticks"]] == [started["run_id"]]
    missing = runner.invoke(app, ["schedules", "get", "nightly", "nope", "--env", "dev"])
    # (the entry point prints a KneoError as its code and message, exit 1)
    assert getattr(missing.exception, "code", None) == "not_found"
    assert "nope" in str(missing.exception)
