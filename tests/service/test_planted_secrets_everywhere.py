"""Secrets planted in a run's input, tool arguments, tool results and errors never leave.

One run carries a secret in each place: its input (which the agent also passes as a tool's
arguments), what the tool returns, and the error its last step raises. Every route that
returns run data is read with a viewer key and with an admin key, the SSE stream included,
and searched, with every log record, the stored trace and audit events, and every column of
every table. The only place a secret may remain is what the run itself needs to continue:
the run's ``input_text`` and its execution ``state`` (docs/design.md, "Redaction").
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient
from svc_helpers import ROOT, auth_env, headers, project_declaring

from kneo.service import create_app
from kneo.settings import Settings
from kneo.store import AuditQuery

INPUT_SECRET = "in-PLANTED-1111"  # in the input, and so in the tool call's arguments
RESULT_SECRET = "result-PLANTED-3333"  # what the tool returns
ERROR_SECRET = "err-PLANTED-4444"  # in the failing step's error (failing_steps.leak)
SECRETS = (INPUT_SECRET, RESULT_SECRET, ERROR_SECRET)
#: (table, column) that may hold them: what the run continues from
#: ``code_files``: the project's own source files a run is pinned to, byte for byte (the
#: test's step module spells the planted value in its source)
ALLOWED = {("runs", "input_text"), ("runs", "state"), ("code_files", "data")}

SPEC = {
    "version": "v1",
    "agent": {
        "name": "vaulter",
        "system_prompt": "Read the vault.",
        "model": {
            "provider": "dummy",
            "name": "dummy",
            "script": [
                {"tool_calls": [{"name": "vault_read", "arguments": {"query": "{input}"}}]},
                {"text": "found {last_tool_result}"},
            ],
        },
        "tools": {"include": ["vault_read"]},
        "policies": {
            "tool": {
                "allow": ["vault_read"],
                "deny": [],
                "network": False,
                "filesystem": False,
                "shell": False,
            }
        },
    },
    "workflow": {
        "type": "sequential",
        "name": "leaky",
        "steps": [
            {"id": "read", "kind": "agent", "ref": "vaulter"},
            {"id": "fail", "kind": "function", "ref": "tests.service.failing_steps:leak"},
        ],
    },
}


def vault_read(args: dict[str, Any]) -> str:
    return f"the vault says password={RESULT_SECRET} for {args.get('query')}"


@pytest.fixture(params=["sqlite", "postgres"])
def client(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    from kneo.platform import create_platform
    from kneo.store import open_store
    from kneo.tools import ToolDefinition
    from kneo.tools.defaults import create_tool_registry

    monkeypatch.chdir(ROOT)
    url = request.getfixturevalue("pg_database")() if request.param == "postgres" else None
    settings = Settings.from_env({**auth_env(), "KNEO_SERV_PROFILES_PATH": str(tmp_path / "p")})
    store = open_store(url, settings=settings, state_dir=tmp_path / "state")
    tools = create_tool_registry()
    tools.register(
        ToolDefinition(
            name="vault_read",
            description="Read a secret from the vault.",
            parameters={"type": "object", "properties": {"query": {"type": "string"}}},
        ),
        vault_read,
    )
    project = project_declaring(settings, "tests.service.failing_steps:leak")
    manager = create_platform(settings=settings, project=project, store=store, tool_registry=tools)
    app = create_app(False, settings=settings, manager=manager, start_worker=False)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client
    store.close()


def test_secrets_in_input_tool_calls_results_and_errors_never_leave(
    client: TestClient, caplog: pytest.LogCaptureFixture, request_log: list[logging.LogRecord]
) -> None:
    caplog.set_level(logging.DEBUG)
    created = client.post(
        "/v1/runs",
        headers=headers("operator"),
        json={"input": f"use password={INPUT_SECRET} please", "spec": SPEC},
    )
    run = created.json()
    assert run["status"] == "failed", created.text
    rid = run["run_id"]
    store = client.app.state.manager.store  # type: ignore[attr-defined]
    stored = store.runs.get_run(rid)
    # planted for real: the tool saw the input as its arguments and returned its secret,
    # and the failing step's error is the one carrying the third (redacted where it is kept)
    assert INPUT_SECRET in str(stored.state) and RESULT_SECRET in str(stored.state)
    assert "vault refused: secret=" in str(stored.error)

    outputs = [created.text]
    routes = [
        "/v1/runs",
        f"/v1/runs/{rid}",
        f"/v1/runs/{rid}?include=conversation",
        f"/v1/runs/{rid}/recovery",
        f"/v1/runs/{rid}/replay",
        f"/v1/runs/{rid}/checkpoints?include_payload=true",
        f"/v1/runs/{rid}/checkpoints/diff",
        f"/v1/runs/{rid}/trace",
        f"/v1/runs/{rid}/events",
        f"/v1/runs/{rid}/policy-report",
        "/v1/audit-events",
        "/v1/human-tasks",
    ]
    for role in ("viewer", "admin"):
        for route in routes:
            response = client.get(route, headers=headers(role))
            assert response.status_code == 200, (role, route, response.text)
            outputs.append(response.text)
    continued = client.post(f"/v1/runs/{rid}/continue", headers=headers("operator"))
    assert continued.json()["status"] == "failed"  # fails again, with the same error
    outputs.append(continued.text)
    outputs += [r.getMessage() for r in [*caplog.records, *request_log]]
    outputs += [str(e.payload) for e in store.runs.list_trace(rid, limit=1000).items]
    outputs += [str(e.payload) for e in store.audit.list_audit(AuditQuery(limit=1000)).items]
    blob = "\n".join(outputs)
    for secret in SECRETS:
        assert secret not in blob, f"{secret} left the service"

    found = _columns_holding(store.engine, SECRETS)
    assert found <= ALLOWED, f"stored unredacted in {sorted(found - ALLOWED)}"
    assert ("runs", "state") in found  # the scan does see what is there


def _columns_holding(engine: Any, needles: tuple[str, ...]) -> set[tuple[str, str]]:
    """Every (table, column) of the database whose stored value holds one of ``needles``
    (raw driver values: text, or bytes for compressed or binary columns)."""
    found: set[tuple[str, str]] = set()
    with engine.connect() as conn:
        for table in sa.inspect(conn).get_table_names():
            result = conn.exec_driver_sql(f'SELECT * FROM "{table}"')
            columns = list(result.keys())
            for row in result:
                for column, value in zip(columns, row, strict=True):
                    text = (
                        bytes(value).decode("latin-1")
                        if isinstance(value, bytes | memoryview)
                        else str(value)
                    )
                    if any(n in text for n in needles):
                        found.add((table, column))
    return found
