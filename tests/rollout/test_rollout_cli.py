"""``kneo rollout status|promote|abort|retry`` on SQLite and PostgreSQL, locally (the
project's own store, ``--actor`` naming the approver) and through the service (its routes,
the key's name the approver): the same shapes, the same refusals."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx2
import pytest
from typer.testing import CliRunner

from kneo.cli import rollout_cmd
from kneo.cli.client import LocalClient
from kneo.cli.output import ClientOptions
from kneo.cli.service_client import ServiceClient
from kneo.settings import Settings
from kneo.store import AuditQuery
from tests.rollout.rollout_service import KEYS, Service, begin, count_runs
from tests.rollout.rollout_service import service as service


def through(service: Service, who: str) -> ServiceClient:
    """A ServiceClient whose requests reach the service app in this process."""

    def forward(request: httpx2.Request) -> httpx2.Response:
        answer = service.client.request(
            request.method,
            request.url.raw_path.decode(),
            headers={k: v for k, v in request.headers.items() if k.lower() != "host"},
            content=request.content,
        )
        return httpx2.Response(answer.status_code, headers=answer.headers, content=answer.content)

    return ServiceClient(
        "http://kneo.test", api_key=KEYS[who], retries=0, transport=httpx2.MockTransport(forward)
    )


def local(service: Service) -> LocalClient:
    url = service.store.engine.url.render_as_string(hide_password=False)
    settings = Settings.from_env({"KNEO_SERV_DATABASE_URL": url})
    return LocalClient(settings=settings, project=service.manager.project)


def kneo(monkeypatch: pytest.MonkeyPatch, client: Any, *args: str, code: int = 0) -> Any:
    monkeypatch.setattr(ClientOptions, "client", lambda self, **_: client)
    result = CliRunner().invoke(rollout_cmd.app, [*args, "--json"])
    assert result.exit_code == code, result.output
    return json.loads(result.stdout) if code == 0 else result


@pytest.mark.parametrize("mode", ["local", "service"])
def test_status_and_decisions(service: Service, monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    begin(service.store, "ro_cli")
    count_runs(service.store, "ro_cli")
    approver = local(service) if mode == "local" else through(service, "alice")
    other = local(service) if mode == "local" else through(service, "mallory")
    actor = ["--actor", "alice"] if mode == "local" else []
    stranger = ["--actor", "mallory"] if mode == "local" else []

    listed = kneo(monkeypatch, approver, "status", "--environment", "dev")
    assert [r["rollout_id"] for r in listed["rollouts"]] == ["ro_cli"]
    one = kneo(monkeypatch, approver, "status", "ro_cli")
    assert one["figures"]["canary"]["finished"] == 6
    assert [s["state"] for s in one["steps"]][:2] == ["done", "current"]

    refused = kneo(monkeypatch, other, "abort", "ro_cli", "--reason", "x", *stranger, code=1)
    assert getattr(refused.exception, "code", None) == "not_an_approver", refused.exception
    promoted = kneo(monkeypatch, approver, "promote", "ro_cli", *actor)
    assert (promoted["status"], promoted["step"]) == ("paused", 2)
    stopped = kneo(monkeypatch, approver, "abort", "ro_cli", "--reason", "slow", *actor)
    assert (stopped["status"], stopped["reason"]) == ("aborted", "slow")
    retried = kneo(monkeypatch, approver, "retry", "ro_cli", *actor)
    assert retried["status"] == "progressing"
    full = kneo(monkeypatch, approver, "promote", "ro_cli", "--full", *actor)
    assert (full["status"], full["weight"]) == ("promoted", 100)
    events = service.store.audit.list_audit(
        AuditQuery(event_type="rollout.promoted", limit=5)
    ).items
    assert [e.actor for e in events] == ["alice"]


def test_the_table_output_reads(service: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    begin(service.store, "ro_cli")
    count_runs(service.store, "ro_cli")
    monkeypatch.setattr(ClientOptions, "client", lambda self, **_: through(service, "viewer"))
    shown = CliRunner().invoke(rollout_cmd.app, ["status", "ro_cli"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "helper@dev" in shown.output and "analysis" in shown.output
    assert "canary" in shown.output and "stable" in shown.output
    # the decisions by kind of request, stable / canary: rejected 1 of 3, 3 of 5
    assert "decisions by kind of request" in shown.output
    assert re.search(r"approval\s+3 / 5\s+0\.333 / 0\.6\s", shown.output), shown.output
    listed = CliRunner().invoke(rollout_cmd.app, ["status", "--counts"], env={"COLUMNS": "200"})
    assert listed.exit_code == 0 and "rollouts (1 shown of 1)" in listed.output, listed.output
