"""The grant a project gives specs (kneo.policy.access) and the destinations it is made of."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from kneo.destinations import parse_destination, parse_url
from kneo.errors import AccessDenied
from kneo.policy.access import HostAccess, Origin
from kneo.policy.environment import EnvironmentPolicy, ResourcesPolicy, merge_stricter
from kneo.spec.models import McpImport, ModelSpec
from kneo.spec.project import ProjectConfig

CONFIG = ProjectConfig.model_validate(
    {
        "secrets": {
            "extra": {"search": "SEARCH_KEY"},
            "destinations": {"search": ["https://gateway.example.com/v1"]},
        },
        "environments": {
            "prod": {
                "secrets": {"prod_only": "PROD_KEY"},
                "network": {"allow": ["gw.prod.example"]},
            }
        },
        "network": {"allow": ["https://gateway.example.com/v1", "*.models.example"]},
        "mcp_servers": {
            "files": {"command": ["files-server"], "secret": "search"},
            "remote": {"transport": "http", "url": "https://mcp.example.org/mcp"},
        },
        "functions": {"modules": ["json"]},
    }
)


def grant(env: str = "dev", origin: Origin = "spec", **resources: Any) -> HostAccess:
    policy = ResourcesPolicy.model_validate(resources) if resources else None
    return HostAccess.for_environment(CONFIG, env, origin=origin, resources=policy)


@pytest.mark.parametrize(
    ("reference", "env", "variable"),
    [
        ("search", "dev", "SEARCH_KEY"),  # a declared name
        ("SEARCH_KEY", "dev", "SEARCH_KEY"),  # its variable
        ("openai", "dev", "OPENAI_API_KEY"),  # the provider defaults are declared
        ("prod_only", "prod", "PROD_KEY"),
        ("prod_only", "dev", None),  # another environment's secret
        ("KNEO_SERV_ADMIN_API_KEY", "dev", None),
        ("HOME", "dev", None),
    ],
)
def test_a_secret_is_a_declared_one(reference: str, env: str, variable: str | None) -> None:
    if variable is None:
        with pytest.raises(AccessDenied) as refused:
            grant(env).secret(reference, path="x")
        assert refused.value.code == "E_SECRET_UNDECLARED"
        assert "search" in refused.value.message  # says what is declared
    else:
        assert grant(env).secret(reference, path="x") == variable


@pytest.mark.parametrize(
    "secrets",
    [
        {"extra": {"admin": "KNEO_SERV_ADMIN_API_KEY"}},
        {"extra": {"db": "kneo_serv_database_url"}},
        {"providers": {"openai": "KNEO_SERV_CONSOLE_SECRET"}},
    ],
)
def test_kneo_variables_can_never_be_declared(secrets: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="Kneo's own secrets"):
        ProjectConfig.model_validate({"secrets": secrets})


def test_the_controller_and_receiver_variables_can_never_be_declared() -> None:
    with pytest.raises(ValidationError, match="WEBHOOK_SECRET"):
        ProjectConfig.model_validate(
            {
                "controller": {"webhook_secret_env": "WEBHOOK_SECRET"},
                "secrets": {"extra": {"hook": "WEBHOOK_SECRET"}},
            }
        )
    receiver = {"name": "r", "url": "https://h.example", "secret_env": "HOOK_KEY"}
    with pytest.raises(ValidationError, match="HOOK_KEY"):
        ProjectConfig.model_validate(
            {
                "notifications": {"receivers": [receiver]},
                "environments": {"dev": {"secrets": {"x": "HOOK_KEY"}}},
            }
        )


def test_a_declared_server_names_a_declared_secret() -> None:
    with pytest.raises(ValidationError, match="not a declared secret"):
        ProjectConfig.model_validate(
            {"mcp_servers": {"s": {"command": ["x"], "secret": "UNDECLARED"}}}
        )


@pytest.mark.parametrize(
    ("url", "env", "ok"),
    [
        ("https://api.openai.com/v1", "prod", True),
        ("https://api.anthropic.com", "prod", True),
        ("https://europe-west4-aiplatform.googleapis.com/v1", "prod", True),
        ("https://storage.googleapis.com/bucket", "prod", False),
        ("http://api.openai.com/v1", "prod", False),  # the endpoints are https
        ("http://127.0.0.1:8080/v1", "dev", True),  # loopback in dev
        ("http://localhost:11434/v1", "dev", True),
        ("http://127.0.0.1:8080/v1", "prod", False),  # ... only in dev
        ("http://0.0.0.0:8080/", "prod", False),
        ("https://gateway.example.com/v1/chat", "prod", True),  # a URL prefix
        ("https://gateway.example.com/v10", "prod", False),  # ... at a / boundary
        ("https://gateway.example.com:8443/v1", "prod", False),  # ... and its port
        ("https://eu.models.example/x", "prod", True),  # a one-label glob
        ("https://a.eu.models.example/x", "prod", False),
        ("https://gw.prod.example/x", "prod", True),  # prod's own list
        ("https://gw.prod.example/x", "dev", False),
        ("https://mcp.example.org/mcp", "prod", True),  # a declared server's url
        ("https://attacker.example/v1", "dev", False),
        ("http://2130706433/", "prod", False),  # 127.0.0.1 spelled as a number
        ("file:///etc/passwd", "dev", False),
        ("https://user:pw@api.openai.com/v1", "dev", False),
    ],
)
def test_destinations(url: str, env: str, ok: bool) -> None:
    if ok:
        grant(env).destination(url, path="x")
        return
    with pytest.raises(AccessDenied) as refused:
        grant(env).destination(url, path="x")
    expected = "E_URL_HAS_CREDENTIALS" if "@" in url else "E_DESTINATION_NOT_ALLOWED"
    assert refused.value.code == expected
    assert "pw" not in refused.value.message


def test_an_environment_file_only_narrows() -> None:
    narrowed = grant(
        "prod", network=["api.openai.com", "https://attacker.example"], secrets=["search"]
    )
    narrowed.destination("https://api.openai.com/v1", path="x")
    for url in ("https://api.anthropic.com", "https://attacker.example/"):  # not in both
        with pytest.raises(AccessDenied):
            narrowed.destination(url, path="x")
    assert narrowed.secret("search", path="x") == "SEARCH_KEY"
    with pytest.raises(AccessDenied):
        narrowed.secret("openai", path="x")


def test_merging_resources_intersects_and_never_widens() -> None:
    a = EnvironmentPolicy.model_validate(
        {"resources": {"secrets": ["a", "b"], "bundle_processes": True}}
    )
    b = EnvironmentPolicy.model_validate(
        {"resources": {"secrets": ["b", "c"], "network": ["x.example"]}}
    )
    merged = merge_stricter(a, b).resources
    assert (merged.secrets, merged.network, merged.bundle_processes) == (
        ["b"],
        ["x.example"],
        True,
    )
    off = EnvironmentPolicy.model_validate({"resources": {"bundle_processes": False}})
    assert merge_stricter(merge_stricter(a, b), off).resources.bundle_processes is False


def test_a_model_call_uses_the_declared_variable() -> None:
    gateway = "https://gateway.example.com/v1"
    model = grant().model(
        ModelSpec(provider="openai", api_key_env="search", base_url=gateway), path="m"
    )
    assert model.api_key_env == "SEARCH_KEY"
    with pytest.raises(AccessDenied) as refused:
        grant("prod", network=["gateway.example.com"]).model(ModelSpec(provider="openai"), path="m")
    assert refused.value.details["path"] == "m.base_url"  # the SDK's default endpoint


@pytest.mark.parametrize(
    ("imp", "env", "origin", "resources", "outcome"),
    [
        ({"name": "files"}, "dev", "spec", {}, ("stdio", ("files-server",), "SEARCH_KEY")),
        ({"name": "x", "server": "remote"}, "dev", "spec", {}, ("http", (), None)),
        ({"name": "nope"}, "dev", "spec", {}, "E_MCP_SERVER_UNDECLARED"),
        ({"name": "files"}, "dev", "spec", {"mcp_servers": []}, "E_MCP_SERVER_UNDECLARED"),
        ({"name": "own", "command": ["sh", "-c", "id"]}, "dev", "spec", {}, "E_PROCESS_UNDECLARED"),
        ({"name": "own", "command": ["sh"]}, "dev", "bundle", {}, "E_PROCESS_UNDECLARED"),
        (
            {"name": "own", "command": ["sh"]},
            "dev",
            "spec",
            {"bundle_processes": True},
            "E_PROCESS_UNDECLARED",
        ),
        (
            {"name": "own", "command": ["srv"]},
            "dev",
            "bundle",
            {"bundle_processes": True},
            ("stdio", ("srv",), None),
        ),
        (
            {"name": "own", "transport": "http", "url": "https://evil.example/mcp"},
            "dev",
            "spec",
            {},
            "E_DESTINATION_NOT_ALLOWED",
        ),
        (
            {
                "name": "own",
                "transport": "sse",
                "url": "http://127.0.0.1:9/sse",
                "secret_env": "KNEO_SERV_DATABASE_URL",
            },
            "dev",
            "spec",
            {},
            "E_SECRET_UNDECLARED",
        ),
    ],
)
def test_mcp_imports(
    imp: dict[str, Any], env: str, origin: Origin, resources: dict[str, Any], outcome: Any
) -> None:
    access = grant(env, origin, **resources)
    if isinstance(outcome, str):
        with pytest.raises(AccessDenied) as refused:
            access.server(McpImport.model_validate(imp), path="mcp.imports[0]")
        assert refused.value.code == outcome
        return
    server = access.server(McpImport.model_validate(imp), path="mcp.imports[0]")
    assert (server.transport, server.command, server.secret_variable) == outcome


def test_an_import_of_a_declared_server_cannot_override_it() -> None:
    with pytest.raises(ValidationError, match="drop command"):
        McpImport.model_validate({"name": "x", "server": "files", "command": ["sh"]})


@pytest.mark.parametrize(
    ("ref", "ok"),
    [
        ("examples.hitl_functions:draft", True),  # the project's own code
        ("tests.service.failing_steps:boom", True),
        ("json:loads", True),  # listed under functions.modules
        ("posix:system", False),  # built in
        ("pty:spawn", False),  # the standard library
        ("yaml:safe_load", False),  # site-packages
        ("kneo.documents:read_text", False),  # Kneo itself
        ("os:system", False),
    ],
)
def test_function_refs(ref: str, ok: bool) -> None:
    roots = [Path(__file__).resolve().parents[2]]
    if ok:
        grant().function(ref, path="f", roots=roots)
        return
    with pytest.raises(AccessDenied) as refused:
        grant().function(ref, path="f", roots=roots)
    assert refused.value.code == "E_FUNCTION_NOT_ALLOWED"


def test_listing_an_unsafe_module_does_not_allow_it() -> None:
    config = ProjectConfig.model_validate({"functions": {"modules": ["os"]}})
    access = HostAccess.for_environment(config, "dev", origin="spec")
    with pytest.raises(AccessDenied):
        access.function("os:system", path="f", roots=[Path(sys.prefix)])


@pytest.mark.parametrize(
    "entry",
    ["", "http://", "*.*.example", "a b", "10.0.0.0/33", "https://u:p@h.example", "ex ample.com"],
)
def test_bad_allow_list_entries_are_refused_by_name(entry: str) -> None:
    with pytest.raises(ValueError):
        parse_destination(entry)
    with pytest.raises(ValidationError):
        ProjectConfig.model_validate({"network": {"allow": [entry]}})


def test_ip_networks_and_loopback_entries() -> None:
    access = HostAccess.for_environment(
        ProjectConfig.model_validate({"network": {"allow": ["10.0.0.0/8", "loopback"]}}),
        "prod",
        origin="spec",
    )
    access.destination("http://10.20.30.40:9000/v1", path="x")
    access.destination("http://[::1]:8000/", path="x")
    with pytest.raises(AccessDenied):
        access.destination("http://11.0.0.1/", path="x")
    assert parse_url("https://API.OpenAI.com/v1").host == "api.openai.com"
