"""The network door: every request a model call, an MCP session, a notification, the OpenID
client or the CLI sends goes through the kernel's client, which asks the grant before each
request, every redirect hop included; a secret goes only where it is bound.

Real HTTP listeners stand on both sides: an allowed endpoint that redirects (307) and an
attacker's listener that records whatever reaches it. Each door is tried by a caller who
should not pass (a spec or an eval suite from a pull request, a server that redirects), and
the listener proves nothing arrived: no prompt, no key, no code. Each has its control: the
same request where the project allows it does arrive, so a test cannot pass by sending
nothing at all.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from kneo.destinations import allowed, parse_destination, parse_url
from kneo.engine.providers import remote_provider
from kneo.engine.providers.base import ChatMessage
from kneo.errors import AccessDenied, KneoError
from kneo.kernel import Origins, http_client
from kneo.policy.access import HostAccess
from kneo.settings import Settings
from kneo.spec.models import McpImport, ModelSpec
from kneo.spec.project import ProjectConfig
from tests.cli_zygote import KNEO

ROOT = Path(__file__).resolve().parents[2]
PROMPT = "the whole confidential prompt 5c1f"
KEY = "sk-planted-gateway-key-7d2e0c41"
OPENAI_KEY = "sk-planted-openai-key-93ab11f0"
ADMIN_KEY = "planted-admin-key-4e8a"
ENVIRONMENT = "test"  # not dev: loopback is allowed only where the project lists it

_REPLIES: dict[str, dict[str, Any]] = {
    "/chat/completions": {
        "id": "c1",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": "PASS"},
            }
        ],
    },
    "/messages": {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "m",
        "content": [{"type": "text", "text": "PASS"}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 1, "output_tokens": 1},
    },
    ":generateContent": {
        "candidates": [
            {"content": {"role": "model", "parts": [{"text": "PASS"}]}, "finishReason": "STOP"}
        ]
    },
}


class Listener:
    """A real HTTP server on loopback recording every request. Paths under ``/redirect``
    answer ``307`` to :attr:`target` (plus the rest of the path); the model APIs' paths
    answer like the provider; :attr:`documents` answers GETs of the paths it holds."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.target = ""
        self.documents: dict[str, dict[str, Any]] = {}
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                listener.requests.append(
                    {
                        "method": self.command,
                        "path": self.path,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "body": body.decode(errors="replace"),
                    }
                )
                path = urlsplit(self.path).path
                if path.startswith("/redirect"):
                    self.send_response(307)
                    self.send_header("Location", listener.target + path.removeprefix("/redirect"))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                reply = listener.documents.get(path)
                reply = reply or next((r for k, r in _REPLIES.items() if path.endswith(k)), {})
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def paths(self) -> list[str]:
        return [r["path"] for r in self.requests]

    def everything(self) -> str:
        return json.dumps(self.requests)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gateway() -> Iterator[Listener]:
    """An endpoint the project allows (and binds its key to)."""
    listener = Listener()
    yield listener
    listener.close()


@pytest.fixture
def attacker() -> Iterator[Listener]:
    """A listener the project does not allow: nothing may reach it."""
    listener = Listener()
    yield listener
    listener.close()


def grant(config: dict[str, Any], environment: str = ENVIRONMENT) -> HostAccess:
    project = ProjectConfig.model_validate(
        {"version": "v1", "environments": {environment: {}}, **config}
    )
    return HostAccess.for_environment(project, environment, origin="spec")


def gateway_config(gateway: Listener, *also_allowed: str) -> dict[str, Any]:
    return {
        "secrets": {"extra": {"gw": "GW_KEY"}, "destinations": {"gw": [gateway.url]}},
        "network": {"allow": [gateway.url, *also_allowed]},
    }


SETTINGS = Settings.from_env(
    {"GW_KEY": KEY, "OPENAI_API_KEY": OPENAI_KEY, "KNEO_SERV_ADMIN_API_KEY": ADMIN_KEY}
)
PROVIDERS = {"openai": "/v1", "anthropic": "", "google": ""}


def call(provider: str, access: HostAccess, base_url: str, key: str = "gw") -> Any:
    """One model call of ``provider`` under ``access``, as an agent's turn makes it."""
    model, reach = access.model_call(
        ModelSpec(provider=provider, name="m", base_url=base_url, api_key_env=key), path="m"
    )
    return remote_provider(provider, SETTINGS).complete(
        model=model, messages=[ChatMessage("user", PROMPT)], tools=[], reach=reach
    )


# ---------------------------------------------------------------------- model calls


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_a_model_endpoint_that_redirects_off_the_list_sends_the_prompt_nowhere(
    provider: str, gateway: Listener, attacker: Listener
) -> None:
    """Each SDK (openai, anthropic, google-genai) sends through the kernel's client: the
    allowed endpoint's 307 to a listener the project does not allow is refused at that hop."""
    gateway.target = attacker.url
    base_url = f"{gateway.url}/redirect{PROVIDERS[provider]}"
    with pytest.raises(AccessDenied) as refused:
        call(provider, grant(gateway_config(gateway)), base_url)
    assert refused.value.code == "E_DESTINATION_NOT_ALLOWED"
    assert any(p.startswith("/redirect") for p in gateway.paths())  # it did redirect
    assert attacker.requests == []
    assert KEY not in str(refused.value) and PROMPT not in str(refused.value)


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_a_redirect_the_grant_allows_is_followed(
    provider: str, gateway: Listener, attacker: Listener
) -> None:
    """The control: where the project allows the target and binds the key to it, the
    redirect is followed and the prompt arrives (hops are re-checked, not all refused)."""
    gateway.target = attacker.url
    config = gateway_config(gateway, attacker.url)
    config["secrets"]["destinations"]["gw"].append(attacker.url)
    reply = call(provider, grant(config), f"{gateway.url}/redirect{PROVIDERS[provider]}")
    assert reply.text == "PASS"
    assert PROMPT in attacker.everything()


def test_a_run_whose_model_redirects_fails_with_the_code_and_sends_nothing(
    tmp_path: Path, gateway: Listener, attacker: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A spec file run through the platform: the step fails with the code, the attacker's
    listener receives neither the prompt nor the key."""
    from kneo.platform import create_platform
    from kneo.spec.project import ProjectContext
    from kneo.store import open_store

    gateway.target = attacker.url
    (tmp_path / ".kneo").mkdir()
    config = {"version": "v1", "environments": {ENVIRONMENT: {}}, **gateway_config(gateway)}
    (tmp_path / ".kneo" / "config.yaml").write_text(json.dumps(config))
    model = {"provider": "openai", "name": "m", "base_url": f"{gateway.url}/redirect/v1"}
    spec = {"version": "v1", "agent": {"name": "a", "model": {**model, "api_key_env": "gw"}}}
    (tmp_path / "agent.yaml").write_text(json.dumps(spec))
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env({"GW_KEY": KEY, "KNEO_ENV": ENVIRONMENT})
    project = ProjectContext.discover(settings=settings, env=ENVIRONMENT)
    store = open_store(None, settings=settings, state_dir=tmp_path / "state")
    manager = create_platform(settings, project, store=store)
    try:
        result = manager.run_from_spec(input_text=PROMPT, spec_path=tmp_path / "agent.yaml")
    finally:
        manager.close()
    assert str(result.status) == "failed"
    assert result.metadata["error"]["code"] == "E_DESTINATION_NOT_ALLOWED"
    assert gateway.paths() == ["/redirect/v1/chat/completions"]
    assert attacker.requests == []


# ---------------------------------------------------------------------- secrets bound


def test_a_secret_goes_only_to_the_destination_it_is_bound_to(
    gateway: Listener, attacker: Listener
) -> None:
    """Both listeners are allowed; the key is bound to the gateway. Naming the other one
    is refused at the check (lint, admission) and at the call; nothing reaches it."""
    access = grant(gateway_config(gateway, attacker.url))
    spec_model = ModelSpec(provider="openai", name="m", base_url=f"{attacker.url}/v1")
    with pytest.raises(AccessDenied) as refused:
        access.model_call(spec_model.model_copy(update={"api_key_env": "gw"}), path="m")
    assert refused.value.code == "E_SECRET_NOT_BOUND"
    assert refused.value.details["path"] == "m.base_url"
    with pytest.raises(AccessDenied) as at_call:
        call("openai", access, f"{attacker.url}/v1")
    assert at_call.value.code == "E_SECRET_NOT_BOUND"
    assert attacker.requests == []
    call("openai", access, f"{gateway.url}/v1")  # the control: where it is bound
    assert gateway.requests[0]["headers"]["authorization"] == f"Bearer {KEY}"


def test_a_bound_endpoint_cannot_redirect_the_key_to_another_allowed_one(
    gateway: Listener, attacker: Listener
) -> None:
    gateway.target = attacker.url
    with pytest.raises(AccessDenied) as refused:
        call("anthropic", grant(gateway_config(gateway, attacker.url)), f"{gateway.url}/redirect")
    assert refused.value.code == "E_SECRET_NOT_BOUND"
    assert attacker.requests == []  # anthropic's x-api-key would have gone with it


def test_a_provider_key_goes_only_to_its_provider_unless_the_project_says_otherwise(
    gateway: Listener,
) -> None:
    """OPENAI_API_KEY (declared under secrets.providers) is bound to api.openai.com: an
    allowed gateway gets it only once ``secrets.destinations`` lists the gateway."""
    config: dict[str, Any] = {"network": {"allow": [gateway.url]}}
    with pytest.raises(AccessDenied) as refused:
        call("openai", grant(config), f"{gateway.url}/v1", key="openai")
    assert refused.value.code == "E_SECRET_NOT_BOUND"
    assert "https://api.openai.com" in refused.value.message
    # no api_key_env: the provider's declared key, under the same binding
    model = ModelSpec(provider="openai", name="m", base_url=f"{gateway.url}/v1")
    with pytest.raises(AccessDenied):
        grant(config).model_call(model, path="m")
    assert gateway.requests == []
    config["secrets"] = {"destinations": {"openai": [gateway.url]}}
    resolved, _ = grant(config).model_call(model, path="m")
    assert resolved.api_key_env == "OPENAI_API_KEY"
    call("openai", grant(config), f"{gateway.url}/v1", key="openai")
    assert gateway.requests[0]["headers"]["authorization"] == f"Bearer {OPENAI_KEY}"


def test_bindings_the_project_declares_elsewhere_count() -> None:
    """An MCP server's secret goes to that server; the project's default model's key to
    its base_url; in dev, any declared secret to loopback too."""
    config = {
        "secrets": {"extra": {"token": "TOKEN", "gw": "GW_KEY"}},
        "model": {"provider": "openai", "base_url": "https://gw.example.com/v1"},
        "mcp_servers": {
            "remote": {"transport": "http", "url": "https://mcp.example.com/mcp", "secret": "token"}
        },
        "network": {"allow": ["gw.example.com", "other.example.com"]},
    }
    access = grant(config)
    assert [d.text for d in access.bindings["TOKEN"]] == ["https://mcp.example.com/mcp"]
    assert "https://gw.example.com/v1" in [d.text for d in access.bindings["OPENAI_API_KEY"]]
    assert access.bindings.get("GW_KEY", ()) == ()  # declared, used nowhere: sent nowhere
    imp = McpImport(name="x", transport="http", url="https://other.example.com/mcp")
    with pytest.raises(AccessDenied) as refused:
        access.server(imp.model_copy(update={"secret_env": "token"}), path="mcp.imports[0]")
    assert refused.value.code == "E_SECRET_NOT_BOUND"
    assert access.server(imp, path="mcp.imports[0]").reach is not None  # no secret: allowed
    dev = grant(config, "dev")
    assert "loopback" in [d.text for d in dev.bindings["GW_KEY"]]


@pytest.mark.parametrize(
    ("destinations", "field"),
    [
        ({"nope": ["gw.example.com"]}, "secrets.destinations.nope"),
        ({"gw": ["gw.example.com", "ftp://x"]}, "secrets.destinations.gw[1]"),
        ({"gw": ["*.*.example.com"]}, "secrets.destinations.gw[0]"),
    ],
)
def test_secrets_destinations_are_validated_naming_the_field(
    destinations: dict[str, list[str]], field: str, tmp_path: Path
) -> None:
    from kneo.spec.project import load_project_config

    path = tmp_path / "config.yaml"
    config = {"version": "v1", "secrets": {"extra": {"gw": "GW_KEY"}, "destinations": destinations}}
    path.write_text(json.dumps(config))
    with pytest.raises(KneoError) as refused:
        load_project_config(path)
    assert refused.value.code == "E_SCHEMA"
    assert field in refused.value.message and "config.yaml" in refused.value.message


# ---------------------------------------------------------------------- URL prefixes


@pytest.mark.parametrize(
    "escape",
    ["/v1/../../evil/v1", "/v1/%2e%2e/%2E%2E/evil", "/v1/..%2f..%2fevil", "/v1/..;/..;/evil"],
)
def test_a_prefix_entry_admits_no_path_that_resolves_outside_it(
    escape: str, gateway: Listener, attacker: Listener
) -> None:
    """``https://h/allowed/v1`` admits ``/allowed/v1/...`` only as a server resolves it:
    dot-segments (and their encoded spellings) are resolved before the prefix is compared."""
    entry = parse_destination(f"{gateway.url}/allowed/v1")
    assert allowed(parse_url(f"{gateway.url}/allowed/v1/chat/completions"), (entry,))
    assert not allowed(parse_url(f"{gateway.url}/allowed{escape}"), (entry,))
    config = {
        "secrets": {"extra": {"gw": "GW_KEY"}, "destinations": {"gw": [gateway.url]}},
        "network": {"allow": [f"{gateway.url}/allowed/v1"]},
    }
    with pytest.raises(AccessDenied) as refused:
        call("openai", grant(config), f"{gateway.url}/allowed{escape}")
    assert refused.value.code == "E_DESTINATION_NOT_ALLOWED"
    assert gateway.requests == []


def test_the_kernels_client_checks_every_hop_against_what_the_server_resolves(
    gateway: Listener, attacker: Listener
) -> None:
    """:func:`kneo.kernel.http_client` with :class:`Origins`: a redirect to another origin is
    refused at its hop, one within the origin followed."""
    gateway.target = attacker.url
    with http_client(Origins.of(gateway.url), path="t", follow_redirects=True) as http:
        with pytest.raises(AccessDenied) as refused:
            http.post(f"{gateway.url}/redirect/x", content=PROMPT)
        assert refused.value.code == "E_DESTINATION_NOT_ALLOWED"
        assert attacker.requests == []
        gateway.target = gateway.url + "/landed"
        assert http.post(f"{gateway.url}/redirect/x", content=PROMPT).status_code == 200
    assert gateway.paths() == ["/redirect/x", "/redirect/x", "/landed/x"]


# ---------------------------------------------------------------------- MCP


@pytest.mark.parametrize(("transport", "endpoint"), [("http", "/mcp"), ("sse", "/sse")])
def test_an_mcp_server_that_redirects_off_the_list_reaches_nothing(
    transport: str, endpoint: str, gateway: Listener
) -> None:
    """The SDK follows redirects within the endpoint's origin; the kernel's client checks
    each against the allow-list entry (a URL prefix here), so ``/evil`` is never asked."""
    from dataclasses import replace

    from kneo.mcp.client import McpClientSessions

    gateway.target = gateway.url + "/evil"
    config = {
        "secrets": {"extra": {"token": "GW_KEY"}},
        "network": {"allow": [f"{gateway.url}/redirect"]},
        "mcp_servers": {
            "remote": {
                "transport": transport,
                "url": f"{gateway.url}/redirect{endpoint}",
                "secret": "token",
            }
        },
    }
    imports = [McpImport(name="remote", server="remote")]
    settings = replace(SETTINGS, mcp_retries=0)
    sessions = McpClientSessions(imports, settings=settings, access=grant(config))
    try:
        with pytest.raises(AccessDenied) as refused:
            sessions.list_tools("remote")
    finally:
        sessions.close()
    assert refused.value.code == "E_DESTINATION_NOT_ALLOWED"
    assert f"/redirect{endpoint}" in gateway.paths()
    assert not any(p.startswith("/evil") for p in gateway.paths())
    # the control: with the whole origin allowed (and no secret bound to the endpoint),
    # the SDK does follow to /evil
    config["network"] = {"allow": [gateway.url]}
    del config["mcp_servers"]["remote"]["secret"]
    sessions = McpClientSessions(imports, settings=settings, access=grant(config))
    try:
        with pytest.raises(KneoError):
            sessions.list_tools("remote")
    finally:
        sessions.close()
    assert any(p.startswith("/evil") for p in gateway.paths())


# ---------------------------------------------------------------------- notifications


def test_a_receiver_that_redirects_gets_the_notification_nowhere_else(
    gateway: Listener, attacker: Listener
) -> None:
    from kneo.platform.notifications import Dispatcher, Receiver, send_test

    gateway.target = attacker.url
    settings = Settings.from_env({})
    receiver = Receiver(name="hook", type="webhook", url=f"{gateway.url}/redirect/hook")
    with pytest.raises(KneoError) as failed:
        send_test(receiver, settings)
    assert failed.value.code == "notification_failed" and "HTTP 307" in failed.value.message
    assert gateway.paths() == ["/redirect/hook"] and attacker.requests == []
    # the dispatcher's pooled client reaches the receivers' endpoints and nothing else
    dispatcher = Dispatcher(None, [receiver], settings.notifications, owner="t")  # type: ignore[arg-type]
    client = dispatcher._http()
    with pytest.raises(AccessDenied):
        client.post(f"{attacker.url}/hook", content=b"{}")
    assert client.post(f"{gateway.url}/hook", content=b"{}").status_code == 200
    assert attacker.requests == [] and "/hook" in gateway.paths()
    dispatcher._pool.shutdown()
    client.close()


# ---------------------------------------------------------------------- OpenID


def test_an_issuer_that_redirects_its_documents_elsewhere_is_not_followed(
    gateway: Listener, attacker: Listener
) -> None:
    from kneo.errors import NotReady
    from kneo.service.identity import TokenVerifier

    gateway.target = attacker.url
    settings = Settings.from_env(
        {"KNEO_SERV_OIDC_ISSUER": f"{gateway.url}/redirect", "KNEO_SERV_OIDC_AUDIENCE": "api"}
    )
    with pytest.raises(NotReady):
        TokenVerifier(settings.oidc).refresh()
    assert gateway.paths() == ["/redirect/.well-known/openid-configuration"]
    assert attacker.requests == []


def test_the_console_token_exchange_sends_the_code_and_client_secret_nowhere_else(
    gateway: Listener, attacker: Listener, tmp_path: Path
) -> None:
    """The discovery document's token endpoint answers 307 to another host: the code, the
    PKCE verifier and the client secret reach the token endpoint and nothing else."""
    from starlette.testclient import TestClient

    from kneo.platform import create_platform
    from kneo.service import create_app
    from kneo.store import open_store

    gateway.target = attacker.url
    gateway.documents["/.well-known/openid-configuration"] = {
        "issuer": gateway.url,
        "authorization_endpoint": f"{gateway.url}/authorize",
        "token_endpoint": f"{gateway.url}/redirect/token",
        "jwks_uri": f"{gateway.url}/jwks",
    }
    secret = "planted-console-client-secret-31f0"
    settings = Settings.from_env(
        {
            "KNEO_SERV_ADMIN_API_KEY": ADMIN_KEY,
            "KNEO_SERV_CONSOLE_SECRET": "console-test-secret",
            "KNEO_SERV_OIDC_ISSUER": gateway.url,
            "KNEO_SERV_OIDC_AUDIENCE": "api",
            "KNEO_SERV_OIDC_CLIENT_ID": "kneo-console",
            "KNEO_SERV_OIDC_CLIENT_SECRET_ENV": "KNEO_TEST_CLIENT_SECRET",
            "KNEO_TEST_CLIENT_SECRET": secret,
            "KNEO_SERV_PROFILES_PATH": "-",
        }
    )
    store = open_store(None, settings=settings, state_dir=tmp_path / "state")
    manager = create_platform(settings=settings, store=store)
    app = create_app(False, settings=settings, manager=manager, start_worker=False)
    with TestClient(app, raise_server_exceptions=False) as browser:
        login = browser.get("/ui/oidc/login", follow_redirects=False)
        assert login.status_code == 303, login.text
        state = parse_qs(urlsplit(login.headers["location"]).query)["state"][0]
        answer = browser.get(f"/ui/oidc/callback?code=the-code-8812&state={state}")
    store.close()
    assert answer.status_code == 401
    [exchange] = [r for r in gateway.requests if r["path"] == "/redirect/token"]
    assert "the-code-8812" in exchange["body"]  # the exchange was made, at the endpoint
    assert attacker.requests == []


def test_the_cli_device_sign_in_posts_to_the_endpoint_only(
    gateway: Listener, attacker: Listener
) -> None:
    from kneo.cli.device_login import _post

    gateway.target = attacker.url
    status, _ = _post(f"{gateway.url}/redirect/device", {"client_id": "kneo-cli"})
    assert status == 307 and attacker.requests == []


def test_the_cli_service_client_sends_its_key_to_the_service_only(
    gateway: Listener, attacker: Listener
) -> None:
    from kneo.cli.service_client import ServiceClient

    gateway.target = attacker.url
    client = ServiceClient(f"{gateway.url}/redirect", api_key=ADMIN_KEY, retries=0)
    with client, pytest.raises(KneoError):
        client.request("GET", "/v1/runs")
    assert gateway.paths() == ["/redirect/v1/runs"]
    assert attacker.requests == []


# ---------------------------------------------------------------------- the eval judge

SUITE_CASE = {"id": "polite", "input": "hello", "expect": {"judge": "The reply is polite"}}


@pytest.fixture
def eval_project(tmp_path: Path, gateway: Listener) -> Path:
    """The support example in a Git repository whose project declares a judge key bound to
    the gateway, and a ``ci`` environment (not dev: loopback is not allowed there)."""
    from tests.evals.conftest import FILES, git

    for name in FILES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    config = {
        "version": "v1",
        "name": "support",
        "tool_registry": "examples.project_tools:create_registry",
        "environments": {"dev": {}, "ci": {}},
        **gateway_config(gateway),
    }
    (tmp_path / ".kneo").mkdir()
    (tmp_path / ".kneo" / "config.yaml").write_text(json.dumps(config))
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "add", "-A")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "one")
    return tmp_path


def eval_run(project: Path, judge: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """``kneo eval run`` of a pull request's suite, as the spec-repo workflow runs it."""
    suite = {"version": "v1", "suite": "pr", "judge": judge, "cases": [SUITE_CASE]}
    (project / "pr.eval.yaml").write_text(json.dumps(suite))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KNEO_")},
        "KNEO_SERV_ADMIN_API_KEY": ADMIN_KEY,
        "KNEO_SERV_SPEC_SIGNING_KEY": "planted-signing-key-5a",
        "GW_KEY": KEY,
        "OPENAI_API_KEY": OPENAI_KEY,
        "PYTHONPATH": str(ROOT),
    }
    argv = ["eval", "run", "examples/support_agent.yaml", "--suite", "pr.eval.yaml"]
    return subprocess.run(
        [*KNEO, *argv, "--env", "ci"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


JUDGES: list[tuple[str, Callable[[Listener, Listener], dict[str, Any]], str]] = [
    (
        "kneo-key",
        lambda gw, evil: {"base_url": f"{gw.url}/v1", "api_key_env": "KNEO_SERV_ADMIN_API_KEY"},
        "E_SECRET_UNDECLARED",
    ),
    (
        "declared-key-to-a-listener",
        lambda gw, evil: {"base_url": f"{evil.url}/v1", "api_key_env": "gw"},
        "E_DESTINATION_NOT_ALLOWED",
    ),
    (
        "provider-key-to-an-allowed-gateway",
        lambda gw, evil: {"base_url": f"{gw.url}/v1", "api_key_env": "openai"},
        "E_SECRET_NOT_BOUND",
    ),
    (
        "redirected-off-the-list",
        lambda gw, evil: {"base_url": f"{gw.url}/redirect/v1", "api_key_env": "gw"},
        "E_DESTINATION_NOT_ALLOWED",
    ),
]


@pytest.mark.parametrize(("name", "judge", "code"), JUDGES, ids=[j[0] for j in JUDGES])
def test_an_eval_suites_judge_takes_the_grant(
    name: str,
    judge: Callable[[Listener, Listener], dict[str, Any]],
    code: str,
    eval_project: Path,
    gateway: Listener,
    attacker: Listener,
) -> None:
    """A pull request's suite names its judge's key and endpoint: ``kneo eval run`` refuses
    what the project does not grant, with the code, and nothing reaches the listener."""
    gateway.target = attacker.url
    done = eval_run(eval_project, {"provider": "openai", "name": "j", **judge(gateway, attacker)})
    assert done.returncode != 0, done.stdout
    assert f"error[{code}]" in done.stderr or f"[{code}]" in done.stdout, done.stderr
    assert attacker.requests == []
    for planted in (ADMIN_KEY, KEY, OPENAI_KEY, "planted-signing-key-5a"):
        assert planted not in done.stdout + done.stderr
        assert planted == KEY or planted not in gateway.everything()  # KEY is bound there


def test_a_judge_the_project_grants_grades_through_its_gateway(
    eval_project: Path, gateway: Listener
) -> None:
    """The control: the declared key, bound to the allowed gateway, is sent there."""
    judge = {"provider": "openai", "name": "j", "base_url": f"{gateway.url}/v1"}
    done = eval_run(eval_project, {**judge, "api_key_env": "gw"})
    assert done.returncode == 0, done.stdout + done.stderr
    [graded] = [r for r in gateway.requests if r["path"] == "/v1/chat/completions"]
    assert graded["headers"]["authorization"] == f"Bearer {KEY}"
    assert "The reply is polite" in graded["body"]


def test_the_documented_binding_example_means_what_it_says() -> None:
    """docs/security.md's ``secrets.destinations`` example: the gateway key goes to the
    gateway only, the OpenAI key to OpenAI and the gateway, nothing else anywhere."""
    import yaml

    page = (ROOT / "docs" / "security.md").read_text()
    section = page.split("### Secrets go where they are bound", 1)[1]
    document = yaml.safe_load(section.split("```yaml\n", 1)[1].split("```", 1)[0])
    access = grant(document, "prod")
    gateway = "https://llm-gateway.internal.example/v1"
    for key in ("gateway_key", "openai"):
        model, _ = access.model_call(
            ModelSpec(provider="openai", name="m", base_url=gateway, api_key_env=key), path="m"
        )
        assert model.api_key_env in ("GATEWAY_KEY", "OPENAI_API_KEY")
    access.model_call(ModelSpec(provider="openai", name="m", api_key_env="openai"), path="m")
    with pytest.raises(AccessDenied) as refused:
        access.model_call(
            ModelSpec(provider="openai", name="m", api_key_env="gateway_key"), path="m"
        )
    assert refused.value.code == "E_SECRET_NOT_BOUND"


# ---------------------------------------------------------------------- A2A push


PUSH_SECRET = "a-push-sealing-secret-of-32-chars-or-more"


def test_a2a_push_destinations_are_the_operators_list_only() -> None:
    from kneo.errors import ConfigError
    from kneo.kernel import AllowList

    grant = AllowList.parse(
        ["https://*.agents.example.com", "http://127.0.0.1:8080", ""], variable="V"
    )
    for url, expected in (
        ("https://a.agents.example.com/push", True),
        ("https://a.b.agents.example.com/push", True),
        ("https://agents.example.com/push", False),  # the wildcard is for subdomains
        ("https://a.agents.example.com:8443/push", False),  # another port
        ("http://a.agents.example.com/push", False),  # another scheme
        ("https://a.agents.example.com.evil.test/push", False),
        ("https://evil.test/#.agents.example.com", False),
        ("http://127.0.0.1:8080/hook", True),
        ("http://127.0.0.1:8081/hook", False),
        ("http://localhost:8080/hook", False),  # names are compared, not resolved
        ("http://169.254.169.254/latest/meta-data/", False),
        ("http://user:pw@127.0.0.1:8080/hook", False),  # credentials in the URL
        ("file:///etc/passwd", False),
    ):
        assert grant.allows(url) is expected, url
    with pytest.raises(AccessDenied) as refused:
        grant.destination("http://169.254.169.254/", path="push")
    assert refused.value.code == "E_DESTINATION_NOT_ALLOWED"
    for entry in (
        "https://x.test/path",
        "x.test",
        "https://*.test",
        "https://a.*.x.test",
        "ftp://x.test",
    ):
        with pytest.raises(ConfigError) as bad:
            AllowList.parse([entry], variable="KNEO_SERV_A2A_PUSH_DESTINATIONS")
        assert bad.value.details["variable"] == "KNEO_SERV_A2A_PUSH_DESTINATIONS", entry


def test_a2a_push_credentials_are_sealed_to_their_config() -> None:
    from kneo.errors import ConfigError
    from kneo.platform.a2a_push import PushFailed, PushGrant, seal, unseal

    sealed = seal(PUSH_SECRET, "a2ap_1", {"token": "tok-plain-1", "credentials": "cred-plain-2"})
    assert sealed is not None and "plain" not in sealed
    assert unseal(PUSH_SECRET, "a2ap_1", sealed) == {
        "token": "tok-plain-1",
        "credentials": "cred-plain-2",
    }
    with pytest.raises(PushFailed, match="KNEO_SERV_A2A_PUSH_SECRET"):
        unseal(PUSH_SECRET + "x", "a2ap_1", sealed)  # another secret
    with pytest.raises(PushFailed):
        unseal(PUSH_SECRET, "a2ap_2", sealed)  # another config's row
    assert PushGrant.from_settings(Settings.from_env({})) is None
    with pytest.raises(ConfigError) as missing:
        PushGrant.from_settings(
            Settings.from_env({"KNEO_SERV_A2A_PUSH_DESTINATIONS": "https://hooks.example.com"})
        )
    assert missing.value.details["variable"] == "KNEO_SERV_A2A_PUSH_SECRET"
    grant = PushGrant.from_settings(
        Settings.from_env(
            {
                "KNEO_SERV_A2A_PUSH_DESTINATIONS": "https://hooks.example.com",
                "KNEO_SERV_A2A_PUSH_SECRET": PUSH_SECRET,
            }
        )
    )
    assert grant is not None and PUSH_SECRET not in repr(grant)


def test_an_a2a_push_reaches_its_listed_receiver_and_nothing_else(
    gateway: Listener, attacker: Listener, tmp_path: Path
) -> None:
    """A push to a listed receiver that redirects: the hop is not taken. A config whose URL
    the operator has since taken off the list: refused by the kernel's client before any
    request. The control: the listed receiver gets the push, with its token."""
    from datetime import UTC, datetime

    from kneo.kernel import AllowList
    from kneo.platform.a2a_push import PushFailed, PushGone, PushGrant, PushSender, seal
    from kneo.store import open_store
    from kneo.store.outbox.a2a_push import PushTarget
    from kneo.store.outbox.notifications import NotificationEvent

    gateway.target = attacker.url
    store = open_store(f"sqlite:///{tmp_path / 'push.sqlite'}")
    with store.transaction() as tx:
        run_id = tx.create_run(target="workflow", input_text="x").run_id
    grant = PushGrant(AllowList.parse([gateway.url], variable="V"), PUSH_SECRET)
    sender = PushSender(store.a2a_push, grant, timeout=5)

    def config(push_id: str, url: str) -> NotificationEvent:
        store.a2a_push.set_push_config(
            run_id,
            "agent",
            push_id,
            PushTarget(
                push_id=push_id,
                origin=url.rpartition("/")[0],
                auth_scheme=None,
                sealed=seal(PUSH_SECRET, push_id, {"token": "tok-1", "url": url}),
                sees_requests=False,
            ),
        )
        payload = {"push_id": push_id, "body": {"task": {"id": run_id}}}
        return NotificationEvent(
            f"e_{push_id}", "a2a.task_status", "info", None, None, None, run_id, None,
            payload, datetime.now(UTC),
        )  # fmt: skip

    try:
        with pytest.raises(PushFailed, match="HTTP 307"):
            sender.send(config("p_redirect", f"{gateway.url}/redirect/hook"), datetime.now(UTC))
        listed = config("p_ok", f"{gateway.url}/hook")
        assert sender.send(listed, datetime.now(UTC)) == 200
        assert gateway.requests[-1]["headers"]["x-a2a-notification-token"] == "tok-1"
        off_list = config("p_off", f"{attacker.url}/hook")  # set when the list had it
        with pytest.raises(PushFailed, match="refused"):
            sender.send(off_list, datetime.now(UTC))
        store.a2a_push.set_push_config(run_id, "agent", "p_ok", None)
        with pytest.raises(PushGone):  # deleted since: dropped, sent nowhere
            sender.send(listed, datetime.now(UTC))
        assert attacker.requests == []
        assert gateway.paths() == ["/redirect/hook", "/hook"]
    finally:
        sender.close()
        store.close()
