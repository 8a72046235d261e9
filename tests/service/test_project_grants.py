"""Grants per project: ``role@project`` tokens in API keys, the platform-admin role, a
principal narrowed to a project, and the one 404 for a project that is not the caller's."""

from __future__ import annotations

import pytest
from svc_helpers import KEYS, auth_env, headers

from kneo.errors import ConfigError, InvalidRequest, NotFound
from kneo.projects import DEFAULT_PROJECT
from kneo.service.auth import (
    ALL_SCOPES,
    ROLE_SCOPES,
    Authenticator,
    missing_scope,
    parse_api_keys,
    project_principal,
    require_scope,
)
from kneo.service.grants import EVERYWHERE, Grants, parse_grants, role_grants
from kneo.settings import Settings

EVERY_SCOPE = frozenset(ALL_SCOPES) | {"projects:admin"}


def authenticator(keys: str, admin: str = "") -> Authenticator:
    return Authenticator(enabled=True, keys=parse_api_keys(keys, admin))


def test_role_at_project_grants_there_and_the_first_project_is_home() -> None:
    auth = authenticator("ci-a:KEY-a:service@team-a,viewer@team-b,runs:read@team-b")
    (key,) = parse_api_keys("ci-a:KEY-a:service@team-a,viewer@team-b,runs:read@team-b")
    assert key.grants.names == ("team-a", "team-b") and key.scopes == frozenset()
    ci = auth.authenticate("KEY-a")
    assert ci.home == "team-a" and not ci.platform_admin
    # a request acts in the default project until it names one: nothing granted there
    assert ci.project == DEFAULT_PROJECT and ci.scopes == frozenset()
    assert ci.in_project("team-a").scopes == ROLE_SCOPES["service"]
    assert ci.in_project("team-b").scopes == ROLE_SCOPES["viewer"] | {"runs:read"}
    assert ci.in_project("team-c").scopes == frozenset()
    assert ci.in_project("team-a").in_project(DEFAULT_PROJECT) == ci
    assert ci.visible_projects(["default", "team-b", "team-c", "team-a"]) == ["team-b", "team-a"]


def test_bare_tokens_mean_the_default_project_as_before() -> None:
    """Every configuration from before projects grants exactly what it did, in ``default``."""
    keys = parse_api_keys("ci:abc:runs:read,human:write; rev:k2:reviewer,viewer", "adm")
    by_name = {k.name: k for k in keys}
    assert by_name["ci"].grants == Grants.of({"default": {"runs:read", "human:write"}})
    assert by_name["rev"].grants.home == DEFAULT_PROJECT
    rev = Authenticator(enabled=True, keys=keys).authenticate("k2")
    assert rev.scopes == ROLE_SCOPES["reviewer"] | ROLE_SCOPES["viewer"]
    assert rev.visible_projects(["default", "team-a"]) == ["default"]
    mixed = parse_api_keys("m:k3:viewer,operator@team-a")[0].grants
    assert (
        mixed.home == DEFAULT_PROJECT and mixed.project_scopes("team-a") == ROLE_SCOPES["operator"]
    )


def test_the_admin_key_is_a_platform_admin() -> None:
    admin = authenticator("", "the-admin-key").authenticate("the-admin-key")
    assert admin.name == "admin" and admin.platform_admin and admin.home == DEFAULT_PROJECT
    assert admin.scopes == EVERY_SCOPE  # every scope, projects:admin included
    assert admin.in_project("anything-at-all").scopes == EVERY_SCOPE
    assert admin.visible_projects(["team-b", "default"]) == ["team-b", "default"]
    assert project_principal(admin, "team-z").project == "team-z"


def test_platform_admin_in_a_key_and_projects_admin_alone() -> None:
    auth = authenticator("root:K1:platform-admin; provisioner:K2:projects:admin")
    root = auth.authenticate("K1")
    assert root.platform_admin and root.in_project("team-a").scopes == EVERY_SCOPE
    # projects:admin manages the catalog (sees every project) but reads no project's data
    prov = auth.authenticate("K2")
    assert not prov.platform_admin and prov.scopes == {"projects:admin"}
    assert prov.in_project("team-a").scopes == {"projects:admin"}
    assert prov.visible_projects(["a", "b"]) == ["a", "b"] and not prov.may_enter("a")


def test_auth_off_is_a_platform_admin_named_anonymous() -> None:
    auth = Authenticator(enabled=False, keys=[])
    anonymous = auth.authenticate(None)
    assert anonymous.name == "anonymous" and not anonymous.authenticated
    assert anonymous.platform_admin and anonymous.scopes >= frozenset(ALL_SCOPES)
    found = auth.named("anonymous")
    assert found is not None and found[0] == anonymous


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("ci:secretkey:viewer@", "'viewer@': project '' is not a valid name"),
        ("ci:secretkey:viewer@team a", "project 'team a' is not a valid name"),
        ("ci:secretkey:viewer@a@b", "project 'a@b' is not a valid name"),
        ("ci:secretkey:viewer@../etc", "is not a valid name"),
        ("ci:secretkey:superuser@team-a", "unknown role or scope 'superuser'"),
        ("ci:secretkey:platform-admin@team-a", "platform-admin holds in every project"),
        ("ci:secretkey:projects:admin@team-a", "projects:admin holds in every project"),
        ("ci:secretkey:@team-a", "unknown role or scope ''"),
    ],
)
def test_bad_project_grants_name_the_entry_never_the_key(raw: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_api_keys(raw)
    message = str(info.value)
    assert "'ci'" in message and fragment in message, message
    assert "secretkey" not in message and "secretkey" not in repr(info.value.details)
    assert info.value.details["variable"] == "KNEO_SERV_API_KEYS"


def test_key_reprs_and_grants_never_show_the_key() -> None:
    keys = parse_api_keys("ci:s3cr3t-value:service@team-a", "adm1n-value")
    assert "s3cr3t-value" not in repr(keys) and "adm1n-value" not in repr(keys)


def test_grants_are_frozen_values() -> None:
    grants = parse_grants(["viewer@b", "reviewer@a"], entry="e", variable="V")
    assert grants == Grants.of({"b": ROLE_SCOPES["viewer"], "a": ROLE_SCOPES["reviewer"]})
    assert hash(grants) == hash(
        Grants.of({"b": ROLE_SCOPES["viewer"], "a": ROLE_SCOPES["reviewer"]})
    )
    with pytest.raises(AttributeError):
        grants.platform_admin = True  # type: ignore[misc]
    assert role_grants(("viewer", "operator@a")).home == DEFAULT_PROJECT
    assert EVERYWHERE.project_scopes("x") == ROLE_SCOPES["admin"]


def test_project_principal_narrows_or_answers_one_404() -> None:
    ci = authenticator("ci-a:KEY-a:service@team-a,viewer@team-b").authenticate("KEY-a")
    assert project_principal(ci, None).project == "team-a"  # no project named: home
    assert project_principal(ci, "team-b").scopes == ROLE_SCOPES["viewer"]
    answers = []
    # 'default' exists on every install, 'no-such' nowhere: the caller cannot tell
    for name in ("default", "no-such"):
        with pytest.raises(NotFound) as info:
            project_principal(ci, name)
        answers.append((info.value.code, info.value.http_status, info.value.to_dict()))
    assert answers[0][:2] == ("project_not_found", 404)
    assert answers[0][2] == {
        "error": "project_not_found",
        "message": "No project 'default' for this caller",
        "project": "default",
    }
    assert answers[1][2]["message"] == answers[0][2]["message"].replace("default", "no-such")
    with pytest.raises(InvalidRequest) as bad:
        project_principal(ci, "../x", field="X-Kneo-Project")
    assert bad.value.code == "invalid_name" and bad.value.details["field"] == "X-Kneo-Project"


def test_a_principal_without_a_default_grant_has_home_elsewhere() -> None:
    provisioner = authenticator("p:K:projects:admin").authenticate("K")
    assert provisioner.home == DEFAULT_PROJECT
    with pytest.raises(NotFound):
        project_principal(provisioner, None)


def test_missing_scope_names_the_project_and_the_platform_role() -> None:
    assert "(name:key:operator@team-a)" in missing_scope("policies:write", "team-a").message
    assert "(name:key:operator)" in missing_scope("policies:write").message
    error = missing_scope("projects:admin", "team-a")
    assert error.details["roles"] == ["platform-admin"]
    assert "(name:key:platform-admin)" in error.message
    assert require_scope("projects:admin").required_scope == "projects:admin"  # type: ignore[attr-defined]


def test_a_key_granted_elsewhere_does_not_reach_the_default_project(make_client) -> None:
    """A key granted only in another project acts there by default (its home), and naming
    ``default`` is ``404 project_not_found``, as a project that does not exist; the others
    as before."""
    env = auth_env()
    env["KNEO_SERV_API_KEYS"] += ";team-a-ops:team-a-ops-key-6:operator@team-a"
    client = make_client(env)
    key = {"Authorization": "Bearer team-a-ops-key-6"}
    r = client.get("/v1/runs", headers={**key, "X-Kneo-Project": "default"})
    assert r.status_code == 404 and r.json()["error"] == "project_not_found"
    home = client.get("/v1/runs", headers=key)  # team-a: not created here
    assert home.status_code == 404 and home.json()["error"] == "project_not_found"
    assert client.get("/v1/runs", headers=headers("viewer")).status_code == 200
    assert client.get("/v1/notifications", headers=headers("admin")).status_code == 200
    assert KEYS["admin"] == Settings.from_env(env).admin_api_key
