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
