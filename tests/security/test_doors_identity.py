"""The identity door (issue 52, item 5): a claim names a person only when it proves who they
are. ``user:`` role rules, approvers, assignees and the inbox's "mine" match the configured
user claim alone, and ``email`` only with ``email_verified: true``
(:func:`kneo.people.proven_claim`, :func:`kneo.people.names_of`).

The attack, against a real OpenID provider (node's ``oidc-provider``, the identity suite's
fixture): mallory and eve are other subjects whose profiles carry alice's address, unverified
(``email_verified: false``, or no such claim). With ``user:alice@example.com`` as prod's only
approver and as a role rule, their tokens and console sessions must approve nothing and gain
nothing, and the audit of alice's own approval names her subject and the claim that matched.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from kneo.errors import ConfigError
from kneo.people import Identity, caller_entry, names_of, proven_claim
from kneo.service.auth import ROLE_SCOPES
from kneo.service.identity import parse_role_map, person_of
from kneo.settings import Settings
from kneo.store import AuditQuery
from tests import http_calls
from tests.console.console_helpers import CSRF
from tests.controller.gitops_fixtures import promotion_waiting
from tests.identity.oidc_helpers import ADMIN, Live, console_over_http, person_token

ROOT = Path(__file__).resolve().parents[2]
ALICE = "alice@example.com"
ROLES = (
    "group:release-managers=reviewer;group:contractors=reviewer;group:interns=viewer;"
    f"user:{ALICE}=operator"
)
PROD = (
    "version: v1\npromotion:\n  require_approved_in: staging\n  require_human_approval: true\n"
    f'  approvers: ["user:{ALICE}"]\n  min_approvals: 1\n'
)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Live, str]]:
    """Kneo on uvicorn with its controller: mailer r1 active in staging, its promotion to
    prod waiting for alice; the provider knows alice, mallory and eve."""
    root = tmp_path_factory.mktemp("identity-door")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)
        store, controller, task = promotion_waiting(root, PROD)
        server = Live(root, store=store, controller=controller, KNEO_SERV_OIDC_ROLES=ROLES)
        yield server, task
        server.stop()


def _admin(server: Live, path: str, **params: str) -> Any:
    answer = http_calls.get(
        server.url + path, params=params, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def _approve(server: Live, cid: str, token: str) -> httpx2.Response:
    request_id = _admin(server, f"/v1/human-tasks/{cid}")["requests"][0]["request_id"]
    return http_calls.post(
        server.url + f"/v1/human-tasks/{cid}/resume",
        headers={"Authorization": f"Bearer {token}"},
        json={"request_id": request_id, "decision": "approved"},
        timeout=10,
    )


def test_an_unverified_address_approves_no_promotion(live: tuple[Live, str]) -> None:
    """mallory's and eve's tokens (alice's address, not verified) are refused as prod's
    approver over the API and in the console; alice's own approval is audited with her
    subject and the claim that made ``user:alice@example.com`` hers."""
    server, cid = live
    callback = server.url + "/ui/oidc/callback"
    for login in ("mallory", "eve"):
        refused = _approve(server, cid, person_token(server.idp, login, callback))
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"] == "not_an_approver"
        assert login in refused.json()["message"]  # refused under their subject, not alice's

        console = console_over_http(server, login)
        page = console.get(f"/ui/promotions/{cid}")
        assert page.status_code == 200 and "not among this environment's approvers" in page.text
        request_id = _admin(server, f"/v1/human-tasks/{cid}")["requests"][0]["request_id"]
        forged = console.post(
            f"/ui/promotions/{cid}",
            data={
                "csrf_token": CSRF.search(page.text).group(1),
                "decision": "approved",  # type: ignore[union-attr]
                "request_id": request_id,
            },
            headers={"Origin": server.url},
        )
        assert forged.status_code == 403 and "not an approver" in forged.text
    assert server.store.tasks.get_continuation(cid).status == "pending"
    assert server.store.registry.list_promotion_approvals("mailer", "prod", _digest(server)) == []
    assert _admin(server, "/v1/audit-events", event_type="promotion.approved")["events"] == []

    # alice, verified, in the console (her session keeps email_verified) and then decides
    console = console_over_http(server, "alice")
    page = console.get(f"/ui/promotions/{cid}")
    assert "not among this environment's approvers" not in page.text
    assert 'name="decision"' in page.text
    approved = _approve(server, cid, person_token(server.idp, "alice", callback))
    assert approved.status_code == 200, approved.text
    [event] = _admin(server, "/v1/audit-events", event_type="promotion.approved")["events"]
    assert event["actor"] == ALICE
    [stored] = server.store.audit.list_audit(AuditQuery(event_type="promotion.approved")).items
    decided = stored.payload["decided_by"]  # e-mails in a payload are redacted on write
    assert decided["subject"] == "alice" and decided["method"] == "oidc_token"
    assert decided["matched"] == "user:[REDACTED_EMAIL]" and decided["matched_claim"] == "email"
    assert decided["user_claim"] == "email"


def _digest(server: Live) -> str:
    return str(server.store.registry.get_active("mailer", "staging").digest)


def test_an_unverified_address_gains_no_role(live: tuple[Live, str]) -> None:
    """``user:alice@example.com=operator`` gives mallory and eve nothing (their group gives
    them reviewer, which cannot read policies); alice's verified token is an operator."""
    server, _ = live
    callback = server.url + "/ui/oidc/callback"
    for login, status in (("mallory", 403), ("eve", 403), ("alice", 200)):
        token = person_token(server.idp, login, callback)
        answer = http_calls.get(
            server.url + "/v1/policies/environment",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert answer.status_code == status, (login, answer.text)
        if status == 403:
            assert answer.json()["required_scope"] == "policies:read"


def test_mine_is_not_someone_elses(live: tuple[Live, str]) -> None:
    """A task assigned to ``user:alice@example.com`` is in alice's *Mine*, not in the inbox
    *Mine* of mallory, whose provider profile merely claims her address."""
    import yaml

    server, _ = live
    spec = yaml.safe_load((ROOT / "examples" / "hitl_approval.yaml").read_text())
    spec["components"]["humans"]["reviewer"]["assignee"] = f"user:{ALICE}"
    spec["components"]["humans"]["reviewer"]["prompt"] = "Alice-assigned draft?"
    started = http_calls.post(
        server.url + "/v1/runs",
        headers={"Authorization": f"Bearer {ADMIN}"},
        json={"input": "for alice", "spec": spec},
        timeout=30,
    ).json()
    assert started["status"] == "paused", started
    for login, sees in (("mallory", False), ("alice", True)):
        mine = console_over_http(server, login).get("/ui/inbox", params={"assignee": "mine"})
        assert mine.status_code == 200
        assert ("Alice-assigned draft?" in mine.text) is sees, login


# -- the door itself, claim by claim ------------------------------------------------------


@pytest.mark.parametrize(
    ("claims", "trusted", "expected"),
    [
        ({"email": ALICE, "email_verified": True}, False, ALICE),
        ({"email": ALICE, "email_verified": False}, False, None),
        ({"email": ALICE}, False, None),  # no email_verified claim at all
        ({"email": ALICE, "email_verified": "true"}, False, None),  # a string is not true
        ({"email": ALICE, "email_verified": 1}, False, None),
        ({"email": ALICE, "email_verified": False}, True, ALICE),  # the operator's opt-in
        ({"email": ALICE}, True, ALICE),
        ({"email": "", "email_verified": True}, False, None),
        ({"email": ["a@x"], "email_verified": True}, False, None),
        ({}, True, None),
    ],
)
def test_email_proves_who_only_when_verified(
    claims: dict[str, Any], trusted: bool, expected: str | None
) -> None:
    assert proven_claim(claims, "email", trust_unverified_email=trusted) == expected


def _settings(**env: str) -> Any:
    base = {"KNEO_SERV_OIDC_ISSUER": "https://idp.example", "KNEO_SERV_OIDC_AUDIENCE": "api"}
    return Settings.from_env({**base, **env}).oidc


def test_user_entries_match_only_the_configured_claim() -> None:
    """With the default claim (email), ``user:`` names the verified address and never the
    subject; with ``KNEO_SERV_OIDC_USER_CLAIM=sub`` it names the subject and never the
    address. An unverified address names nobody: the person is audited under ``sub``."""
    rules = parse_role_map(
        f"user:{ALICE}=operator;user:alice=admin;user:mallory=admin;group:contractors=reviewer",
        ROLE_SCOPES,
    )
    verified = {"sub": "alice", "email": ALICE, "email_verified": True}
    unverified = {
        "sub": "mallory",
        "email": ALICE,
        "email_verified": False,
        "groups": ["contractors"],
    }

    alice = person_of(verified, _settings(), rules)
    assert (alice.name, alice.user, alice.roles) == (ALICE, ALICE, ("operator",))
    mallory = person_of(unverified, _settings(), rules)
    assert (mallory.name, mallory.user, mallory.email) == ("mallory", None, None)
    assert mallory.via == ("group:contractors",) and mallory.roles == ("reviewer",)
    assert names_of(mallory.identity("oidc_token")) == {"group:contractors"}

    by_subject = _settings(KNEO_SERV_OIDC_USER_CLAIM="sub")
    assert person_of(verified, by_subject, rules).roles == ("admin",)  # user:alice only
    assert person_of(unverified, by_subject, rules).roles == ("admin", "reviewer")

    by_username = _settings(KNEO_SERV_OIDC_USER_CLAIM="preferred_username")
    nobody = person_of(verified, by_username, rules)  # the token has no such claim
    assert (nobody.name, nobody.user, nobody.roles) == ("alice", None, ())

    opted_in = _settings(KNEO_SERV_OIDC_TRUST_UNVERIFIED_EMAIL="true")
    assert person_of(unverified, opted_in, rules).roles == ("operator", "reviewer")


def test_an_approver_is_matched_through_the_door() -> None:
    """The approver check asks the request's identity, not the actor's name: a person whose
    name is alice's address but whose claim proves nothing is not ``user:alice``; a key or a
    CLI actor (no request) is known by its name."""
    from kneo.people import acting

    approvers = [f"user:{ALICE}"]
    unproven = Identity(ALICE, "oidc_token", "mallory", None, frozenset(), user=None)
    acting(unproven)
    try:
        assert caller_entry(ALICE, approvers) is None
    finally:
        acting(None)
    assert caller_entry(ALICE, approvers) == f"user:{ALICE}"  # outside a request: by name


def test_the_setting_is_checked() -> None:
    assert _settings().trust_unverified_email is False
    assert _settings(KNEO_SERV_OIDC_TRUST_UNVERIFIED_EMAIL="").trust_unverified_email is False
    with pytest.raises(ConfigError) as caught:
        _settings(KNEO_SERV_OIDC_TRUST_UNVERIFIED_EMAIL="maybe")
    assert caught.value.details["variable"] == "KNEO_SERV_OIDC_TRUST_UNVERIFIED_EMAIL"
