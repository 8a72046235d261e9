"""A promotion waiting for approvers reaches each of them: its ``promotion.awaiting_approval``
message, built as production builds it (the controller's audit, the outbox, a dispatcher
POSTing to a real local receiver), carries a decision link per approver, and a link records
that approver's approval, not anyone else's."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from console_helpers import promotion_setup
from starlette.testclient import TestClient

from kneo.platform.decision_links import DecisionLinks
from kneo.platform.notifications import Dispatcher, Receiver
from tests.notifications.receiver import Receiver as Hook


def test_each_approver_gets_a_link_that_approves_as_them(
    service: Callable[..., Any], tmp_path: Path
) -> None:
    store, controller, cid = promotion_setup(tmp_path)
    app, _ = service(
        controller=controller,
        store=store,
        KNEO_SERV_PUBLIC_URL="http://testserver",
        KNEO_SERV_DECISION_LINKS="true",
    )
    settings = app.state.settings
    links = DecisionLinks.from_settings(settings)
    hook = Hook().start()
    dispatcher = Dispatcher(
        store,
        [  # one person's private endpoint: it may carry the approvers' links
            Receiver(
                "hook",
                "webhook",
                hook.url,
                events=("promotion.awaiting_approval",),
                personal_links=True,
            )
        ],
        settings.notifications,
        owner="test",
        base_url="http://testserver",
        links=links,
    )
    try:
        deadline = time.monotonic() + 15
        while not any(b.get("continuation_id") == cid for b in hook.bodies()):
            dispatcher.run_once()
            dispatcher.wait_idle(5)
            assert time.monotonic() < deadline, "no promotion.awaiting_approval delivery"
    finally:
        dispatcher.stop()
        hook.stop()
    body = next(b for b in hook.bodies() if b.get("continuation_id") == cid)
    assert set(body["decision_links"]) == {"alice", "bob"}
    client = TestClient(app, raise_server_exceptions=False)
    path = body["decision_links"]["alice"].removeprefix("http://testserver")
    decided = client.post(path, data={"decision": "approved"})
    assert decided.status_code == 200, decided.text
    task = app.state.manager.get_human_task(cid)
    tally = task["promotion"]
    assert [d["approver"] for d in tally["decisions"]] == ["alice"] and tally["approved"] == 1
