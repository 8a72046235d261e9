"""docs/identity.md's worked example is a configuration Kneo starts with."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from kneo.service.auth import ROLE_SCOPES, Authenticator
from kneo.settings import Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "identity.md"


def test_the_worked_example_configures_kneo() -> None:
    block = re.search(r"```sh\n(.*?)```", DOC.read_text(), re.S)
    assert block is not None
    env = dict(line.split("=", 1) for line in shlex.split(block.group(1)))
    settings = Settings.from_env(env)
    assert settings.auth_enabled
    assert settings.oidc.issuer == "https://idp.example.com/realms/acme"
    assert settings.secret(settings.oidc.client_secret_env) == "change-me"
    auth = Authenticator.from_settings(settings)
    assert auth.tokens is not None and auth.tokens.audience == "https://kneo.example.com/api"
    assert {r.match: r.roles for r in auth.roles} == {
        "group:release-managers": ("reviewer",),
        "group:platform": ("operator",),
        "user:ceo@example.com": ("viewer",),
    }
    assert all(role in ROLE_SCOPES for r in auth.roles for role in r.roles)


def test_the_projects_example_configures_kneo() -> None:
    """docs/identity.md's grants-per-project block: keys and role map as the doc says."""
    from kneo.service.auth import parse_api_keys
    from kneo.service.identity import person_of

    section = DOC.read_text().split("## Projects: grants per project", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None
    env = dict(line.split("=", 1) for line in shlex.split(block.group(1)))
    env |= {"KNEO_SERV_OIDC_ISSUER": "https://idp.example.com", "KNEO_SERV_OIDC_AUDIENCE": "k"}
    settings = Settings.from_env(env)
    auth = Authenticator(enabled=True, keys=parse_api_keys(settings.api_keys))
    ci_a = auth.authenticate("KEY-A")
    assert ci_a.home == "team-a" and ci_a.in_project("team-a").has("human:write")
    assert ci_a.in_project("team-b").scopes == ROLE_SCOPES["viewer"]
    assert auth.authenticate("KEY-R").scopes == ROLE_SCOPES["viewer"]
    assert auth.authenticate("KEY-P").platform_admin
    people = Authenticator.from_settings(settings)
    assert people.tokens is not None
    dev = person_of({"sub": "d", "groups": ["team-a-devs"]}, people.tokens.settings, people.roles)
    principal = people.principal_of(dev, method="oidc_token")
    assert principal.home == "team-a" and principal.scopes == ROLE_SCOPES["viewer"]
    assert principal.in_project("team-a").scopes == ROLE_SCOPES["operator"]
