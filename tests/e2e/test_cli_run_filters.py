"""``kneo runs list`` filters runs by words, error, creation time, workflow and session, on
this machine's store and through a service (``--service-url``), with ``-o json``.

The runs are made once, in one SQLite file: the local command reads it, and so does a real
service (uvicorn in a thread over the same file), asked by the same command with
``--service-url`` and a viewer's key. Both must answer the same runs for the same options.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kneo.cli.main import app
from kneo.cli.output import run_cli
from kneo.clock import ManualClock
from kneo.platform import create_platform
from kneo.service import create_app
from kneo.settings import Settings
from kneo.store import open_store
from tests.service.svc_helpers import serving_app

VIEWER_KEY = "viewer-secret-key-for-cli-filters"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Four runs a minute apart from 09:00 UTC, and a service over the same database."""
    from datetime import UTC, datetime

    root = tmp_path_factory.mktemp("cli-filters")
    url = f"sqlite:///{root / 'runs.sqlite'}"
    clock = ManualClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    store = open_store(url, clock=clock)
    made: dict[str, str] = {}
    for name, fields, outcome in (
        ("a", {"session_id": "s1", "workflow_name": "triage"}, {"output_text": "Refund sent"}),
        ("b", {"session_id": "s1", "workflow_kind": "graph"}, {"output_text": "Refund denied"}),
        ("c", {"workflow_name": "triage"}, {"error": {"code": "x", "message": "Ledger down"}}),
        ("d", {}, {"output_text": "All quiet"}),
    ):
        base = {"workflow_name": "wf", "workflow_kind": "sequential"}
        with store.transaction() as tx:
            run = tx.create_run(target="workflow", input_text="go", **(base | fields))
            tx.update_run(run.run_id, status="succeeded", **outcome)
        made[name] = run.run_id
        clock.advance(60)
    store.close()
    settings = Settings.from_env(
        {
            "KNEO_SERV_DATABASE_URL": url,
            "KNEO_SERV_AUTH_ENABLED": "true",
            "KNEO_SERV_API_KEYS": f"viewer:{VIEWER_KEY}:viewer",
        }
    )
    served_store = open_store(url, settings=settings)
    manager = create_platform(settings=settings, store=served_store)
    service = create_app(False, settings=settings, manager=manager, start_worker=False)
    with serving_app(service) as service_url:
        yield {"root": root, "url": url, "runs": made, "service_url": service_url}
    manager.close()


@pytest.fixture
def listed(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Any:
    """``listed(where, *options)`` -> the run ids ``kneo runs list -o json`` prints, asked of
    this machine (``where="local"``) or of the service."""
    import os

    for name in [k for k in os.environ if k.startswith("KNEO_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("KNEO_SERV_DATABASE_URL", world["url"])
    monkeypatch.setenv("KNEO_SERV_PROFILES_PATH", str(world["root"] / "profiles.json"))
    monkeypatch.setenv("KNEO_SERV_API_KEY", VIEWER_KEY)
    monkeypatch.chdir(world["root"])
    names = {run_id: name for name, run_id in world["runs"].items()}

    def run(where: str, *options: str, code: int = 0) -> Any:
        remote = ["--service-url", world["service_url"]] if where == "service" else []
        capsys.readouterr()
        monkeypatch.setattr(sys, "argv", ["kneo", "runs", "list", *remote, *options, "-o", "json"])
        assert run_cli(app) == code
        out = json.loads(capsys.readouterr().out)
        if code:
            return out
        if where == "service":
            assert out["meta"]["service"]["url"] == world["service_url"]
        return "".join(names[r["run_id"]] for r in out["runs"])

    return run


@pytest.mark.parametrize("where", ["local", "service"])
def test_each_filter_locally_and_through_the_service(listed: Any, where: str) -> None:
    assert listed(where) == "dcba"  # newest first
    assert listed(where, "-q", "refund") == "ba"
    assert listed(where, "--q", "refund denied") == "b"
    assert listed(where, "-q", "nowhere") == ""
    assert listed(where, "--has-error") == "c"
    assert listed(where, "--no-error") == "dba"
    assert listed(where, "--created-after", "2026-03-02T09:01:00Z") == "dc"
    assert listed(where, "--created-before", "2026-03-02T09:02:00") == "ba"  # UTC
    assert listed(where, "--created-after", "2026-03-02T10:01:00+01:00") == "dc"
    assert listed(where, "--workflow-name", "triage") == "ca"
    assert listed(where, "--workflow-kind", "graph") == "b"
    assert listed(where, "--session", "s1") == "ba"
    assert listed(where, "--session", "s1", "--no-error", "-q", "sent") == "a"
    assert listed(where, "-q", "refund", "--sort-by", "updated_at", "--limit", "1") == "b"


@pytest.mark.parametrize("where", ["local", "service"])
def test_a_bad_time_or_order_is_refused_naming_it(listed: Any, where: str) -> None:
    bad_time = listed(where, "--created-after", "yesterday", code=1)
    assert (bad_time["error"], bad_time["field"]) == ("invalid_request", "--created-after")
    bad_order = listed(where, "--sort-by", "colour", code=1)
    assert bad_order["field"] == "sort_by"
    empty_q = listed(where, "-q", "...", code=1)
    assert empty_q["field"] == "q"


_ = Path
