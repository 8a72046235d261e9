"""Approvers by identity-provider group, in real Chromium against a real ``oidc-provider``:
prod's promotion needs 2 of ``group:release-managers``; alice and bob (in the group) complete
it, carol (a reviewer through another group, not an approver) sees no controls and her forged
POST is 403; the audit names each person and the group that gave the right."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from oidc_helpers import ADMIN, CHROMIUM, Live, sign_in_at_provider

from tests import http_calls

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "tests" / "controller") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests" / "controller"))

from gitops_fixtures import promotion_waiting  # noqa: E402

from kneo.controller.promotion import count_approvals  # noqa: E402
from kneo.people import Identity, entry_for  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

PROD = (
    "version: v1\npromotion:\n  require_approved_in: staging\n  require_human_approval: true\n"
    '  approvers: ["group:release-managers"]\n  min_approvals: 2\n'
)


def group_promotion(root: Path) -> tuple[Any, Any, str]:
    """mailer r1 active in staging; prod's promotion waits for two release managers."""
    return promotion_waiting(root, PROD)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Live, str]]:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("playwright is not installed")
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    root = tmp_path_factory.mktemp("groups")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)
        store, controller, cid = group_promotion(root)
        server = Live(
            root,
            store=store,
            controller=controller,
            KNEO_SERV_OIDC_ROLES="group:release-managers=reviewer;group:interns=reviewer",
        )
        yield server, cid
        server.stop()


@pytest.fixture(scope="module")
def browser(live: tuple[Live, str]) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        launched.close()


def test_two_release_managers_complete_a_two_of_two_promotion(
    browser: Any, live: tuple[Live, str]
) -> None:
    server, cid = live
    page_path = f"/ui/promotions/{cid}"
    carol = sign_in_at_provider(browser, server, "carol", start=page_path)
    assert carol.locator("button[name=decision]").count() == 0  # no controls offered
    assert "not among this environment's approvers" in carol.inner_text("main")
    csrf = carol.locator("input[name=csrf_token]").first.get_attribute("value")
    task = http_calls.get(
        server.url + f"/v1/human-tasks/{cid}",
        headers={"Authorization": f"Bearer {ADMIN}"},
        timeout=10,
    ).json()
    request_id = task["requests"][0]["request_id"]
    forged = carol.request.post(
        server.url + page_path,
        form={"csrf_token": csrf, "decision": "approved", "request_id": request_id},
        headers={"Origin": server.url},
    )
    assert forged.status == 403, forged.text()
    assert "not an approver" in forged.text()

    for person, after in (("alice", "1 of 2 needed"), ("bob", "Outcome: approved")):
        page = sign_in_at_provider(browser, server, person, start=page_path)
        page.click("button[name=decision][value=approved]")
        page.get_by_text(after).wait_for()
    assert (
        count_approvals(server.store.registry, "mailer", "prod", _digest(server), ["group:x"]) == 2
    )
    deadline = time.monotonic() + 20
    while (server.store.registry.get_active("mailer", "prod") or None) is None:
        assert time.monotonic() < deadline, http_calls.get(
            server.url + "/v1/registry/bundles/mailer/prod",
            headers={"Authorization": f"Bearer {ADMIN}"},
            timeout=10,
        ).text
        time.sleep(0.2)
    events = http_calls.get(
        server.url + "/v1/audit-events",
        params={"event_type": "promotion.approved"},
        headers={"Authorization": f"Bearer {ADMIN}"},
        timeout=10,
    ).json()["events"]
    # the actor is the person; the payload says how they signed in and which entry let them
    # (its e-mail is redacted on the way out, as every e-mail in an audit payload is)
    decided = sorted((e["actor"], e["payload"]["decided_by"]["matched"]) for e in events)
    assert decided == [
        ("alice@example.com", "group:release-managers"),
        ("bob@example.com", "group:release-managers"),
    ]
    assert {e["payload"]["decided_by"]["method"] for e in events} == {"oidc_session"}
    assert all(e["payload"]["decided_by"]["subject"] in ("alice", "bob") for e in events)


def _digest(server: Live) -> str:
    return str(server.store.registry.get_active("mailer", "staging").digest)


def test_the_same_person_counts_once_and_names_match_by_kind() -> None:
    """M-of-N counts people: a second approval by the same person is refused, and
    ``user:``/``group:`` entries match only what they name."""
    approvers = ["user:dana@example.com", "group:release-managers", "deploy-key"]

    def person(user: str, groups: tuple[str, ...] = ()) -> Identity:
        return Identity(
            user, "oidc_token", "s1", user, frozenset(groups), user=user, user_claim="email"
        )

    assert entry_for(person("dana@example.com"), approvers) == "user:dana@example.com"
    erin = person("erin@example.com", ("release-managers",))
    assert entry_for(erin, approvers) == "group:release-managers"
    assert entry_for(Identity("deploy-key"), approvers) == "deploy-key"
    assert entry_for(person("erin@example.com", ("interns",)), approvers) is None
    assert entry_for(Identity("release-managers"), approvers) is None  # a name is not a group
    erin = Identity(
        "erin@example.com", "oidc_token", "e1", "erin@example.com", user="erin@example.com",
        user_claim="email", groups_claim="groups",
    )  # fmt: skip
    assert erin.audit("group:x") == {
        "name": "erin@example.com",
        "method": "oidc_token",
        "subject": "e1",
        "email": "erin@example.com",
        "user_claim": "email",
        "matched": "group:x",
        "matched_claim": "groups",
    }
