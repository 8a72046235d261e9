"""Promotion approvals and the registry in the console: a real Git repository, the real
controller and the real app over one store."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from console_helpers import Console, promotion_setup

from kneo.store import AuditQuery


def test_promotion_page_shows_what_to_judge_and_takes_two_approvals(
    service: Callable[..., Any], tmp_path: Path
) -> None:
    store, controller, cid = promotion_setup(tmp_path)
    app, _ = service(controller=controller, store=store)
    alice, bob, viewer, reviewer = Console(app), Console(app), Console(app), Console(app)
    for person, name in (
        (alice, "alice"),
        (bob, "bob"),
        (viewer, "viewer"),
        (reviewer, "reviewer"),
    ):
        person.sign_in(name)

    inbox = alice.get("/ui/inbox?kind=promotion").text
    assert f'href="/ui/promotions/{cid}"' in inbox and "mailer" in inbox
    assert alice.get(f"/ui/tasks/{cid}").headers["location"] == f"/ui/promotions/{cid}"
    page = html.unescape(alice.get(f"/ui/promotions/{cid}").text)
    digest = store.registry.get_active("mailer", "staging").digest
    assert digest in page and "ci" in page  # the digest and the signer key id
    assert (
        '-    "system_prompt": "Be brief."' in page and '+    "system_prompt": "Be kind."' in page
    )
    assert "Upstream: staging" in page and "same digest" in page
    assert "0 of 2 needed" in page and 'value="approved"' in page

    assert 'value="approved"' not in viewer.get(f"/ui/promotions/{cid}").text
    request_id = re.search(r'name="request_id" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    form = {"request_id": request_id, "decision": "approved"}
    assert viewer.post(f"/ui/promotions/{cid}", form).status_code == 403
    refused = reviewer.post(f"/ui/promotions/{cid}", form)  # not a listed approver
    assert refused.status_code == 403 and "not an approver" in html.unescape(refused.text)

    assert (
        alice.post(f"/ui/promotions/{cid}", {**form, "content": "looks right"}).status_code == 303
    )
    page = html.unescape(alice.get(f"/ui/promotions/{cid}").text)
    assert "1 of 2 needed" in page and "“looks right”" in page and "You approved" in page
    again = alice.post(f"/ui/promotions/{cid}", form)
    assert again.status_code == 409 and "already decided" in html.unescape(again.text)

    assert bob.post(f"/ui/promotions/{cid}", form).status_code == 303
    page = html.unescape(bob.get(f"/ui/promotions/{cid}").text)
    assert "Outcome: <strong>approved</strong>" in page
    assert controller.reconcile_once().ok
    registry = html.unescape(bob.get("/ui/registry").text)
    cell = registry.split("<th>mailer</th>")[1].split("</tr>")[0]
    assert cell.count("<strong>r2</strong>") == 2 and "awaits approval" not in cell
    history = html.unescape(bob.get("/ui/registry/mailer/prod").text)
    assert "alice" in history and "bob" in history and "Ready=True" in history


def test_bundle_page_rolls_back_suspends_and_unpins_as_the_signed_in_person(
    service: Callable[..., Any], tmp_path: Path
) -> None:
    store, controller, cid = promotion_setup(tmp_path)
    app, _ = service(controller=controller, store=store)
    operator, viewer, alice, bob = Console(app), Console(app), Console(app), Console(app)
    for person, name in (
        (operator, "operator"),
        (viewer, "viewer"),
        (alice, "alice"),
        (bob, "bob"),
    ):
        person.sign_in(name)
    page = html.unescape(viewer.get("/ui/registry/mailer/staging").text)
    assert 'id="rollback"' not in page and "Operations" not in page
    assert viewer.post("/ui/registry/mailer/staging", {"operation": "suspend"}).status_code == 403

    page = html.unescape(operator.get("/ui/registry/mailer/staging").text)
    assert 'id="rollback"' in page and '<option value="1">r1</option>' in page
    done = operator.post(
        "/ui/registry/mailer/staging", {"operation": "rollback", "revision": "1", "reason": "bad"}
    )
    assert done.status_code == 303
    assert store.registry.get_active("mailer", "staging").revision == 3
    page = html.unescape(operator.get("/ui/registry/mailer/staging").text)
    assert "pinned to r3" in page and "rollback to revision 1 by operator: bad" in page
    assert "pinned to r3 by operator" in html.unescape(operator.get("/ui/registry").text)
    [event] = store.audit.list_audit(AuditQuery(event_type="bundle.rolled_back", limit=5)).items
    assert event.actor == "operator"
    again = operator.post("/ui/registry/mailer/staging", {"operation": "rollback", "revision": "3"})
    assert again.status_code == 409 and "already active" in html.unescape(again.text)
    assert operator.post("/ui/registry/mailer/staging", {"operation": "unpin"}).status_code == 303
    assert store.registry.holds().pins.get(("mailer", "staging")) is None
    page = html.unescape(operator.get("/ui/registry/mailer/staging").text)
    assert 'id="pin-form"' in page and 'id="block-form"' in page
    pinned = operator.post("/ui/registry/mailer/staging", {"operation": "pin", "reason": "hold"})
    assert pinned.status_code == 303
    assert store.registry.holds().pins.get(("mailer", "staging")).pinned_by == "operator"
    no_reason = operator.post(
        "/ui/registry/mailer/staging", {"operation": "block", "digest": "sha256:" + "a" * 64}
    )
    assert no_reason.status_code == 400 and "a block needs a reason" in html.unescape(
        no_reason.text
    )
    active = store.registry.get_active("mailer", "staging").digest
    blocked = operator.post(
        "/ui/registry/mailer/staging", {"operation": "block", "digest": active, "reason": "pii"}
    )
    assert blocked.status_code == 303
    assert [(b.digest, b.blocked_by) for b in store.registry.holds().blocked.values()] == [
        (active, "operator")
    ]
    page = html.unescape(operator.get("/ui/registry/mailer/staging").text)
    assert "blocked by operator" in page and 'id="block-form"' not in page
    with store.transaction() as tx:  # prod is about to promote the same digest
        tx.set_blocked(active, False)
    assert operator.post("/ui/registry/mailer/staging", {"operation": "unpin"}).status_code == 303
    assert (
        operator.post(
            "/ui/registry/mailer/staging", {"operation": "suspend", "reason": "x"}
        ).status_code
        == 303
    )
    assert ("mailer", "staging") in store.registry.holds().suspensions
    assert (
        store.audit.list_audit(AuditQuery(event_type="bundle.suspended", limit=5)).items[0].actor
        == "operator"
    )
    assert operator.post("/ui/registry/mailer/staging", {"operation": "resume"}).status_code == 303

    # prod requires two approvals: the button opens a rollback task they decide
    request_id = store.tasks.get_continuation(cid).requests[0]["request_id"]
    for person in (alice, bob):
        person.post(f"/ui/promotions/{cid}", {"request_id": request_id, "decision": "approved"})
    controller.step_down()
    assert controller.reconcile_once().ok
    assert store.registry.get_active("mailer", "prod").revision == 2
    asked = operator.post("/ui/registry/mailer/prod", {"operation": "rollback", "revision": "1"})
    assert asked.status_code == 303 and "/ui/promotions/cont_rollback_" in asked.headers["location"]
    rollback_cid = asked.headers["location"].rsplit("/", 1)[1]
    page = html.unescape(alice.get(f"/ui/promotions/{rollback_cid}").text)
    assert "Roll mailer in prod back to revision 1" in page and "0 of 2 needed" in page
    rid = store.tasks.get_continuation(rollback_cid).requests[0]["request_id"]
    for person in (alice, bob):
        answer = person.post(
            f"/ui/promotions/{rollback_cid}", {"request_id": rid, "decision": "approved"}
        )
        assert answer.status_code == 303, answer.text
    active = store.registry.get_active("mailer", "prod")
    assert (
        active.revision == 3
        and active.digest == store.registry.get_revision("mailer", "prod", 1).digest
    )


def test_promotion_page_shows_the_eval_result_next_to_approve(
    service: Callable[..., Any], tmp_path: Path
) -> None:
    """prod gates on the support suite at 80 %: a result of 9/11 passes the gate, so the
    approvers see it (and the two failing cases) where they approve."""
    from console_helpers import mailer
    from gitops_fixtures import SIGNED_AT, Keys, Repo, make_controller

    from kneo.bundle import BundleSource, CaseOutcome, EvalAttestation, dump_bundle, sign_bundle
    from kneo.bundle.digest import spec_digest
    from kneo.clock import ManualClock
    from kneo.controller.promotion import task_id
    from kneo.settings import Settings
    from kneo.store import open_store

    store = open_store(None, settings=Settings.from_env({}), state_dir=tmp_path / "state")
    repo, keys = Repo(tmp_path / "git"), Keys(tmp_path / "keys")
    repo.write(
        "environments/prod.yaml",
        "version: v1\npromotion:\n  require_human_approval: true\n  approvers: [alice]\n"
        "  require_evals: [{suite: support-agent, min_pass_rate: 0.8}]\n",
    )
    body = mailer("Be kind.")
    outcomes = ["passed"] * 11
    outcomes[0] = outcomes[1] = "failed"
    attested = EvalAttestation(
        suite="support-agent",
        suite_digest="sha256:" + "c" * 64,
        digest=spec_digest(body),
        pass_rate=9 / 11,
        passed=9,
        total=11,
        cases=[
            CaseOutcome(
                id=["refund-window", "ticket-opened"][i] if i < 2 else f"case-{i}", outcome=o
            )  # type: ignore[arg-type]
            for i, o in enumerate(outcomes)
        ],
        kneo_version="0.1.0",
    )
    bundle = sign_bundle(
        body,
        keys.private["ci"],
        name="mailer",
        environment="prod",
        approved_by="ci",
        approved_at=SIGNED_AT,
        source=BundleSource(path="specs/mailer.yaml"),
        evals=[attested],
    )
    repo.write("bundles/mailer/prod.json", dump_bundle(bundle))
    repo.commit("mailer with its eval result")
    controller = make_controller(store, repo, keys, ManualClock(), tmp_path)
    assert controller.reconcile_once().ok
    cid = task_id("mailer", "prod", bundle.digest)
    app, _ = service(controller=controller, store=store)
    alice = Console(app)
    alice.sign_in("alice")
    page = html.unescape(alice.get(f"/ui/promotions/{cid}").text)
    results = page.split("<h3>Eval results</h3>")[1].split("</table>")[0]
    assert "support-agent" in results and "82%" in results and "requires 80%" in results
    assert "gate passed" in results
    assert "<code>refund-window</code>, <code>ticket-opened</code>" in results
    assert page.index("Eval results") < page.index('value="approved"')  # next to Approve
