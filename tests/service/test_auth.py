"""Auth: key parsing, roles and scopes, constant-time matching, startup refusal, 401/403."""

from __future__ import annotations

import pytest
from svc_helpers import KEYS, auth_env, headers

from kneo.errors import ConfigError, Forbidden, Unauthorized
from kneo.service import create_app
from kneo.service.auth import ROLE_SCOPES, Authenticator, parse_api_keys
from kneo.settings import Settings

REFERENCE_ROLES = {
    "operator": {
        "runs:read",
        "runs:write",
        "specs:read",
        "human:read",
        "audit:read",
        "credentials:read",
        "policies:read",
        "policies:write",
    },
    "reviewer": {"runs:read", "human:read", "human:write", "audit:read"},
    "service": {
        "runs:read",
        "runs:write",
        "specs:read",
        "human:read",
        "human:write",
        "audit:read",
        "audit:write",
        "credentials:read",
        "policies:read",
    },
    "viewer": {"runs:read", "specs:read", "human:read", "audit:read"},
}


@pytest.mark.parametrize("role", sorted(REFERENCE_ROLES))
def test_builtin_roles_match_reference(role: str) -> None:
    """Each built-in role grants exactly the reference's scopes plus only Kneo's own (GitOps,
    metrics) scopes."""
    extra = ROLE_SCOPES[role] - REFERENCE_ROLES[role]
    assert REFERENCE_ROLES[role] <= ROLE_SCOPES[role]
    assert extra <= {"registry:read", "controller:write", "metrics:read"}


def test_parse_keys_with_roles_and_explicit_scopes() -> None:
    """Entries are name:key:roles; explicit scopes (which contain colons) can be listed."""
    keys = parse_api_keys("ci:abc:runs:read,human:write; rev:k2:reviewer,viewer", "adm")
    by_name = {k.name: k for k in keys}
    assert by_name["ci"].scopes == {"runs:read", "human:write"}
    assert by_name["rev"].scopes == ROLE_SCOPES["reviewer"] | ROLE_SCOPES["viewer"]
    assert by_name["admin"].scopes == ROLE_SCOPES["admin"]
    assert Authenticator(enabled=True, keys=keys).authenticate("abc").name == "ci"
    assert "abc" not in repr(keys)


@pytest.mark.parametrize(
    "raw",
    [
        "nosecretkey",
        "name:secretkey:",
        "name:secretkey:superuser",
        ":secretkey:viewer",
        "a:k:viewer;a:secretkey:viewer",
    ],
    ids=["no-colons", "no-role", "unknown-role", "no-name", "duplicate-name"],
)
def test_bad_key_entries_are_config_errors_without_the_key(raw: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_api_keys(raw)
    assert "secretkey" not in str(info.value)


def test_startup_fails_when_auth_enabled_without_keys() -> None:
    """A clear message, naming the variables to set."""
    with pytest.raises(ConfigError, match="KNEO_SERV_API_KEYS"):
        create_app(False, settings=Settings.from_env({"KNEO_SERV_AUTH_ENABLED": "true"}))


def test_authenticate_rejects_missing_and_wrong_keys() -> None:
    auth = Authenticator.from_settings(Settings.from_env(auth_env()))
    with pytest.raises(Unauthorized):
        auth.authenticate(None)
    with pytest.raises(Unauthorized):
        auth.authenticate(KEYS["viewer"] + "x")
    assert auth.authenticate(KEYS["viewer"]).name == "viewer"


def test_auth_disabled_is_anonymous_with_all_scopes() -> None:
    principal = Authenticator(enabled=False, keys=[]).authenticate(None)
    assert principal.name == "anonymous" and principal.has("policies:write")


def test_http_401_403_envelopes(make_client) -> None:
    """401 without a key; 403 names the missing scope, the roles that hold it and the setting
    that grants it; X-API-Key works too."""
    client = make_client(auth_env())
    r = client.get("/v1/audit-events")
    assert r.status_code == 401
    assert r.json()["error"] == "unauthorized" and r.headers["www-authenticate"] == "Bearer"
    r = client.put("/v1/policies/environment/prod", json={}, headers=headers("viewer"))
    assert r.status_code == 403
    assert r.json() == {
        "error": "forbidden",
        "message": "Missing required scope: policies:write. Roles that hold it: operator, "
        "admin. Call with a key whose KNEO_SERV_API_KEYS entry grants one (name:key:operator) "
        "or the scope itself (name:key:policies:write)",
        "required_scope": "policies:write",
        "roles": ["operator", "admin"],
        "setting": "KNEO_SERV_API_KEYS",
        "request_id": r.headers["x-request-id"],
    }
    r = client.get("/v1/audit-events", headers={"X-API-Key": KEYS["viewer"]})
    assert r.status_code == 200
    r = client.get("/v1/audit-events", headers={"Authorization": "Bearer wrong-token-value"})
    assert r.status_code == 401 and r.json()["message"] == "Invalid API key"


@pytest.mark.parametrize(
    ("scope", "roles"),
    [
        ("human:write", ["reviewer", "service", "admin"]),
        ("runs:write", ["operator", "service", "admin"]),
        ("notifications:admin", ["admin"]),
    ],
)
def test_a_missing_scope_names_the_roles_that_hold_it(scope: str, roles: list[str]) -> None:
    from kneo.service.auth import missing_scope

    error = missing_scope(scope)
    assert error.details["roles"] == roles  # the table's order, admin last
    assert set(roles) == {role for role, scopes in ROLE_SCOPES.items() if scope in scopes}
    assert f"(name:key:{roles[0]})" in error.message and "KNEO_SERV_API_KEYS" in error.message


def test_forbidden_class_is_envelope() -> None:
    err = Forbidden("Missing required scope: runs:write", required_scope="runs:write")
    assert err.to_dict()["required_scope"] == "runs:write"
