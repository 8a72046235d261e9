"""Promotion approvals and the registry in the console: a real Git repository, the real
controller and the real app over one store."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from console_helpers import Console, promotion_setup


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
    digest = store.get_active("mailer", "staging").digest
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
