"""Secrets in every shape they really take never reach a viewer, an admin, a log or a column.

Each shape below (an ``ENV_NAME_PASSWORD=`` line, JSON and dict forms, a URL's password, Slack
tokens and webhook URLs, a JWT, ``Authorization: Basic``, ``client_secret``, a passphrase,
vendor keys, and a declared secret's bare value) carries a unique planted token. One run
carries all of them in its input, in what its tool returns and in the error its last step
raises, and pauses for a person on the way. Every run and task route (viewer and admin),
every console page, every log record, the trace, the audit events and every stored column
are searched: only the run's own ``input_text`` and execution ``state`` may hold them.
"""

from __future__ import annotations

import logging
import secrets
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from kneo.service import create_app
from kneo.settings import Settings
from kneo.store import AuditQuery
from tests.console.console_helpers import Console, console_env
from tests.service.svc_helpers import ROOT, headers, project_declaring
from tests.service.test_planted_secrets_everywhere import _columns_holding


def _token(n: int = 20, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


def _shapes() -> dict[str, tuple[str, str]]:
    """shape -> (text carrying the secret, the secret part that must never leave)."""
    upper = string.ascii_uppercase + string.digits
    t = {name: _token() for name in ("a", "b", "c", "d", "e", "f", "g", "h", "i", "j")}
    jwt_body = "eyJ" + _token(24, string.ascii_letters)
    declared = "plain" + _token(16)
    return {
        "env_password": (f"DB_PASSWORD={t['a']}", t["a"]),
        "env_token": (f"GITHUB_TOKEN={t['b']}", t["b"]),
        "env_secret_key": (f"MY_SECRET_KEY={t['c']}", t["c"]),
        "json": (f'{{"password": "{t["d"]}"}}', t["d"]),
        "dict": (f"{{'api_key': '{t['e']}'}}", t["e"]),
        "url": (f"postgresql://svc:{t['f']}@db.internal:5432/app", t["f"]),
        "slack_token": (f"xoxb-123456789012-{t['g']}", t["g"]),
        "slack_webhook": (f"https://hooks.slack.com/services/T0/B0/{t['h']}", t["h"]),
        "jwt": (f"eyJhbGciOiJIUzI1NiJ9.{jwt_body}.sig", jwt_body),
        "basic": (f"Authorization: Basic {t['i']}==", t["i"]),
        "client_secret": (f"client_secret={t['j']}", t["j"]),
        "passphrase": (f"passphrase: open{t['a'][:8]}sesame", f"open{t['a'][:8]}sesame"),
        "google": ("AIza" + (g := _token(35)), g),
        "stripe": ("sk_live_" + (s := _token(24)), s),
        "gitlab": ("glpat-" + (gl := _token(20)), gl),
        "github": ("ghp_" + (gh := _token(36)), gh),
        "github_pat": ("github_pat_" + (ghp := _token(40)), ghp),
        "aws": ("AKIA" + (aws := _token(16, upper)), aws),
        "declared": (f"the search key is {declared}", declared),
    }


SHAPES = _shapes()
PLANTED = tuple(secret for _, secret in SHAPES.values())
DECLARED_VALUE = SHAPES["declared"][1]
TEXT = " | ".join(text for text, _ in SHAPES.values())
ALLOWED = {("runs", "input_text"), ("runs", "state")}

SPEC = {
    "version": "v1",
    "agent": {
        "name": "vaulter",
        "model": {
            "provider": "dummy",
            "script": [
                {"tool_calls": [{"name": "vault_read", "arguments": {"query": "{input}"}}]},
                {"text": "found {last_tool_result}"},
            ],
        },
        "tools": {"include": ["vault_read"]},
        "policies": {"tool": {"allow": ["vault_read"]}},
    },
    "components": {"humans": {"boss": {"prompt": "Publish what the vault said?"}}},
    "workflow": {
        "type": "sequential",
        "name": "leaky",
        "steps": [
            {"id": "read", "kind": "agent", "ref": "vaulter"},
            {"id": "ok", "kind": "human", "ref": "boss"},
            {"id": "fail", "kind": "function", "ref": "tests.security.leaky_steps:leak"},
        ],
    },
}


def vault_read(args: dict[str, Any]) -> str:
    return f"the vault holds {TEXT} for {args.get('query')}"


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from kneo.platform import create_platform
    from kneo.store import open_store
    from kneo.tools import ToolDefinition
    from kneo.tools.defaults import create_tool_registry

    monkeypatch.chdir(ROOT)  # the project's config declares SEARCH_API_KEY (secrets.extra)
    settings = Settings.from_env(
        {**console_env(), "SEARCH_API_KEY": DECLARED_VALUE, "KNEO_SERV_PROFILES_PATH": "-"}
    )
    store = open_store(None, settings=settings, state_dir=tmp_path / "state")
    tools = create_tool_registry()
    tools.register(
        ToolDefinition(
            name="vault_read",
            description="Read the vault.",
            parameters={"type": "object", "properties": {"query": {"type": "string"}}},
        ),
        vault_read,
    )
    project = project_declaring(settings, "tests.security.leaky_steps:leak")
    manager = create_platform(settings=settings, project=project, store=store, tool_registry=tools)
    application = create_app(False, settings=settings, manager=manager, start_worker=False)
    yield application
    store.close()


def test_every_shape_of_secret_stays_out_of_every_view(
    app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    outputs: list[str] = []
    with TestClient(app, raise_server_exceptions=False) as api:
        created = api.post(
            "/v1/runs", headers=headers("operator"), json={"input": TEXT, "spec": SPEC}
        )
        run = created.json()
        assert run["status"] == "paused", created.text
        rid, cont = run["run_id"], run["continuation_id"]
        store = app.state.manager.store
        assert all(secret in str(store.runs.get_run(rid).state) for secret in PLANTED)  # planted
        outputs.append(created.text)
        outputs += _routes(api, rid, cont)
        outputs += _console(app, rid, cont)
        done = api.post(
            f"/v1/human-tasks/{cont}/resume",
            headers=headers("reviewer"),
            json={"request_id": run["request_id"], "decision": "approved"},
        )
        assert done.json()["status"] == "failed", done.text
        assert "upstream said" in str(store.runs.get_run(rid).error)
        outputs.append(done.text)
        outputs += _routes(api, rid, None)
        outputs += _console(app, rid, None)
    outputs += [r.getMessage() for r in caplog.records]
    outputs += [str(e.payload) for e in store.runs.list_trace(rid, limit=1000).items]
    outputs += [str(e.payload) for e in store.audit.list_audit(AuditQuery(limit=1000)).items]
    blob = "\n".join(outputs)
    leaked = {shape for shape, (_, secret) in SHAPES.items() if secret in blob}
    assert not leaked, f"shapes that left the service: {sorted(leaked)}"
    found = _columns_holding(store.engine, PLANTED)
    assert found <= ALLOWED, f"stored unredacted in {sorted(found - ALLOWED)}"


def _routes(api: TestClient, rid: str, cont: str | None) -> list[str]:
    routes = [
        "/v1/runs",
        f"/v1/runs/{rid}",
        f"/v1/runs/{rid}/recovery",
        f"/v1/runs/{rid}/checkpoints?include_payload=true",
        f"/v1/runs/{rid}/trace",
        f"/v1/runs/{rid}/events",
        "/v1/audit-events",
        "/v1/human-tasks",
    ]
    if cont:
        routes.append(f"/v1/human-tasks/{cont}")
    out = []
    for role in ("viewer", "reviewer", "admin"):
        for route in routes:
            response = api.get(route, headers=headers(role))
            assert response.status_code == 200, (role, route, response.text)
            out.append(response.text)
    return out


def _console(app: Any, rid: str, cont: str | None) -> list[str]:
    out = []
    for role in ("viewer", "reviewer", "admin"):
        person = Console(app)
        assert person.sign_in(role).status_code == 303
        pages = ["/ui/inbox", f"/ui/runs/{rid}"] + ([f"/ui/tasks/{cont}"] if cont else [])
        for page in pages:
            response = person.get(page)
            assert response.status_code == 200, (role, page, response.status_code)
            out.append(response.text)
    return out
