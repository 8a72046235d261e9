"""The role map per project: ``role@project`` entries, ``platform-admin``, and the opt-in
``project:<name>`` / ``project:<name>:<role>`` group conventions (docs/identity.md)."""

from __future__ import annotations

from typing import Any

import pytest

from kneo.errors import ConfigError
from kneo.projects import DEFAULT_PROJECT
from kneo.service.auth import ALL_SCOPES, ROLE_SCOPES, Authenticator
from kneo.service.identity import parse_role_map, person_of
from kneo.settings import Settings

ISSUER = {"KNEO_SERV_OIDC_ISSUER": "https://idp.example", "KNEO_SERV_OIDC_AUDIENCE": "kneo"}
SETTINGS = Settings.from_env(ISSUER).oidc


def claims(*groups: str, email: str = "pat@example.com") -> dict[str, Any]:
    return {"sub": "p1", "email": email, "email_verified": True, "groups": list(groups)}


def person(roles: str, *groups: str) -> Any:
    return person_of(claims(*groups), SETTINGS, parse_role_map(roles, ROLE_SCOPES))


def principal(roles: str, *groups: str, email: str = "pat@example.com") -> Any:
    auth = Authenticator.from_settings(Settings.from_env({**ISSUER, "KNEO_SERV_OIDC_ROLES": roles}))
    person = auth.person_from_claims(claims(*groups, email=email))
    return auth.principal_of(person, method="oidc_token")


def test_role_at_project_in_the_role_map() -> None:
    pat = principal(
        "group:team-a-devs=operator@team-a,viewer@team-b; user:pat@example.com=reviewer@team-b",
        "team-a-devs",
    )
    assert pat.person.roles == ("operator@team-a", "viewer@team-b", "reviewer@team-b")
    assert pat.home == "team-a" and pat.scopes == frozenset()  # nothing in default
    assert pat.in_project("team-a").scopes == ROLE_SCOPES["operator"]
    assert pat.in_project("team-b").scopes == ROLE_SCOPES["viewer"] | ROLE_SCOPES["reviewer"]
    # a bare role is the default project, as before
    assert principal("*=viewer").scopes == ROLE_SCOPES["viewer"]


def test_platform_admin_from_a_group() -> None:
    root = principal("group:platform=platform-admin", "platform")
    assert root.platform_admin and root.in_project("any").has("projects:admin")
    assert root.in_project("any").scopes >= frozenset(ALL_SCOPES)


def test_project_groups_are_off_until_the_map_turns_them_on() -> None:
    """A group named ``project:...`` gives nothing by itself: many providers let people
    create groups, and a self-made ``project:default:admin`` must not make an admin."""
    from kneo.errors import Forbidden

    with pytest.raises(Forbidden) as info:
        principal("group:release=reviewer", "project:default:admin", "project:team-a")
    assert info.value.code == "no_role"


def test_membership_groups_give_the_entry_roles_in_their_project() -> None:
    pat = principal("group:project:*=viewer,reviewer", "project:team-a", "project:team-b", "x")
    assert pat.person.via == ("group:project:team-a", "group:project:team-b")
    assert pat.home == "team-a"
    assert pat.in_project("team-b").scopes == ROLE_SCOPES["viewer"] | ROLE_SCOPES["reviewer"]
    assert not pat.may_enter(DEFAULT_PROJECT)
    # a project:<name>:<role> group is not a membership group
    assert person("group:project:*=viewer", "project:team-a:operator").roles == ()


def test_role_groups_give_the_named_role_when_the_entry_lists_it() -> None:
    rules = "group:project:*:*=viewer,operator"
    pat = principal(
        rules, "project:team-a:operator", "project:team-b:admin", "project:team-c:viewer"
    )
    assert pat.person.roles == ("operator@team-a", "viewer@team-c")  # admin is not listed: ignored
    assert pat.person.via == ("group:project:team-a:operator", "group:project:team-c:viewer")
    assert pat.in_project("team-a").scopes == ROLE_SCOPES["operator"]
    assert not pat.may_enter("team-b")
    # a membership group is not a role group
    assert person(rules, "project:team-a").roles == ()


def test_groups_with_bad_project_names_or_roles_give_nothing() -> None:
    rules = "group:project:*=viewer;group:project:*:*=operator"
    found = person(
        rules, "project:", "project:a b", "project:../x", "project:ok:", "project:ok:x:y"
    )
    assert found.roles == () and found.via == ()


def test_conventions_join_the_rest_of_the_map_in_order() -> None:
    pat = principal(
        "*=viewer;group:project:*=reviewer;group:project:*:*=operator",
        "project:team-a",
        "project:team-a:operator",
    )
    assert pat.home == DEFAULT_PROJECT and pat.scopes == ROLE_SCOPES["viewer"]
    assert pat.in_project("team-a").scopes == ROLE_SCOPES["reviewer"] | ROLE_SCOPES["operator"]
    assert pat.identity().audit()["roles_from"] == [
        "*",
        "group:project:team-a",
        "group:project:team-a:operator",
    ]


def test_roles_are_recomputed_from_claims_each_time() -> None:
    """Console sessions keep claims: a person's grants follow the map in force now."""
    rules = parse_role_map("group:project:*=viewer", ROLE_SCOPES)
    before = person_of(claims("project:team-a"), SETTINGS, rules)
    after = person_of(claims("project:team-a"), SETTINGS, parse_role_map("*=viewer", ROLE_SCOPES))
    assert before.roles == ("viewer@team-a",) and after.roles == ("viewer",)


@pytest.mark.parametrize(
    ("roles", "fragment"),
    [
        ("group:ops=viewer@", "'viewer@': project '' is not a valid name"),
        ("group:ops=viewer@team a", "project 'team a' is not a valid name"),
        ("group:ops=superuser@team-a", "unknown role 'superuser'"),
        ("group:ops=runs:read@team-a", "unknown role 'runs:read'"),
        ("group:ops=platform-admin@team-a", "platform-admin holds in every project"),
        ("group:project:*=viewer@team-a", "list project roles without @project"),
        ("group:project:*:*=platform-admin", "list project roles without @project"),
    ],
)
def test_bad_project_roles_are_refused_at_start(roles: str, fragment: str) -> None:
    settings = Settings.from_env({**ISSUER, "KNEO_SERV_OIDC_ROLES": roles})
    with pytest.raises(ConfigError) as caught:
        Authenticator.from_settings(settings)
    assert fragment in str(caught.value), str(caught.value)
    assert caught.value.details["variable"] == "KNEO_SERV_OIDC_ROLES"


def test_a_decider_needs_human_write_in_the_tasks_project() -> None:
    """Decision links and Slack clicks decide in their task's project: a person whose
    directory group gives a reviewer role only in another project may not decide there."""
    from kneo.errors import Forbidden
    from kneo.people import Identity
    from kneo.platform.recipients import People
    from kneo.platform.recipients import Person as Member
    from kneo.service.deciders import check_decider

    roles = "group:project:*=reviewer;group:release=reviewer"
    auth = Authenticator.from_settings(Settings.from_env({**ISSUER, "KNEO_SERV_OIDC_ROLES": roles}))
    people = People(
        [
            Member("ann@example.com", groups=frozenset({"release"})),
            Member("ted@example.com", groups=frozenset({"project:team-a"})),
        ]
    )

    def recipient(name: str) -> Identity:
        return Identity(name, "decision_link", user=name, user_claim="assignee")

    ann = check_decider(auth, recipient("ann@example.com"), people, project="default")
    assert ann.name == "ann@example.com"
    with pytest.raises(Forbidden):
        check_decider(auth, recipient("ted@example.com"), people, project="default")
    ted = check_decider(auth, recipient("ted@example.com"), people, project="team-a")
    assert ted.name == "ted@example.com"
    with pytest.raises(Forbidden):
        check_decider(auth, recipient("ann@example.com"), people, project="team-a")
