"""The console's rollout page on SQLite and PostgreSQL: steps and where it stands, the two
sides' figures, the chart of their history, linked from the registry and the bundle page;
promote, abort and retry through its forms (CSRF as every console form), only for those who
may change the registry, and only the environment's approvers decide."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from starlette.testclient import TestClient

from kneo.controller.rollout_pass import step_rollouts
from kneo.store import AuditQuery
from tests.rollout.rollout_service import KEYS, Service, begin, count_runs
from tests.rollout.rollout_service import service as service

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class Person:
    def __init__(self, service: Service, who: str) -> None:
        self.client = TestClient(service.client.app, raise_server_exceptions=False)
        page = self.client.get("/ui/login")
        token = CSRF.search(page.text)
        assert token, page.text
        signed = self.client.post(
            "/ui/login",
            data={"api_key": KEYS[who], "csrf_token": token.group(1), "next": ""},
            follow_redirects=False,
        )
        assert signed.status_code == 303, signed.text
        found = CSRF.search(self.client.get("/ui/inbox").text)
        assert found
        self.csrf = found.group(1)

    def get(self, path: str) -> Any:
        return self.client.get(path, follow_redirects=False)

    def post(self, path: str, data: dict[str, str], csrf: str | None = None) -> Any:
        fields = {"csrf_token": self.csrf if csrf is None else csrf, **data}
        return self.client.post(path, data=fields, follow_redirects=False)


def seeded(service: Service) -> None:
    store = service.store
    with store.transaction() as tx:
        for n in (1, 2):
            tx.add_revision("helper", "dev", digest=f"sha256:{n:064x}", status="active",
                            spec={"version": "v1"})  # fmt: skip
    begin(store, "ro_ui")
    count_runs(store, "ro_ui")
    now = store.clock.now()
    for minutes in (0, 2, 4):  # the controller's passes keep the figures' history
        step_rollouts(store, now + timedelta(minutes=minutes))


def test_the_page_shows_where_it_stands_and_links_from_the_registry(service: Service) -> None:
    seeded(service)
    viewer = Person(service, "viewer")
    page = viewer.get("/ui/rollouts/ro_ui")
    assert page.status_code == 200, page.text
    text = page.text
    assert "step 2 of 4" in text and "analysis (min_runs 5)" in text
    assert "stable r1" in text and "canary r2" in text
    assert "60.0 %" in text and "33.3 %" in text  # rejection rates, canary and stable
    assert "p95 latency" in text and "cost per run" in text
    by_kind = text[text.index('id="by-kind"') :]
    assert re.search(r"<th>approval</th><td>3 · 5</td><td>33\.3 % · 60\.0 %</td>", by_kind)
    assert "<svg" in text and "<polyline" in text and "3 points" in text
    assert "Last analysis" in text and "not conclusive yet" in text
    assert 'id="decide"' not in text  # a viewer may not decide: no buttons
    registry = viewer.get("/ui/registry").text
    assert "/ui/rollouts/ro_ui" in registry and "rolling out r2" in registry
    bundle = viewer.get("/ui/registry/helper/dev").text
    assert "/ui/rollouts/ro_ui" in bundle
    assert (
        viewer.post("/ui/rollouts/ro_ui", {"decision": "abort", "reason": "x"}).status_code == 403
    )
    assert viewer.get("/ui/rollouts/ro_nothing").status_code == 404


def test_another_projects_rollout_is_not_found(service: Service) -> None:
    seeded(service)
    intruder = Person(service, "intruder")  # admin of team-b only
    assert intruder.get("/ui/p/team-b/rollouts/ro_ui").status_code == 404
    tried = intruder.post("/ui/p/team-b/rollouts/ro_ui", {"decision": "abort", "reason": "x"})
    assert tried.status_code == 404
    assert service.store.rollouts.get_rollout("ro_ui").status == "progressing"


def test_decisions_through_the_forms(service: Service) -> None:
    seeded(service)
    alice, mallory = Person(service, "alice"), Person(service, "mallory")
    assert 'id="promote-form"' in alice.get("/ui/rollouts/ro_ui").text
    forged = alice.post("/ui/rollouts/ro_ui", {"decision": "promote"}, csrf="x" * 43)
    assert forged.status_code == 403
    refused = mallory.post("/ui/rollouts/ro_ui", {"decision": "abort", "reason": "no"})
    assert refused.status_code == 403 and "not an approver" in refused.text
    assert service.store.rollouts.get_rollout("ro_ui").status == "progressing"

    promoted = alice.post("/ui/rollouts/ro_ui", {"decision": "promote"})
    assert promoted.status_code == 303, promoted.text
    assert service.store.rollouts.get_rollout("ro_ui").status == "paused"
    stopped = alice.post("/ui/rollouts/ro_ui", {"decision": "abort", "reason": "too slow"})
    assert stopped.status_code == 303
    record = service.store.rollouts.get_rollout("ro_ui")
    assert (record.status, record.reason) == ("aborted", "too slow")
    page = alice.get("/ui/rollouts/ro_ui").text
    assert 'id="retry-form"' in page and "too slow" in page
    assert alice.post("/ui/rollouts/ro_ui", {"decision": "retry"}).status_code == 303
    full = alice.post("/ui/rollouts/ro_ui", {"decision": "promote", "full": "true"})
    assert full.status_code == 303
    assert service.store.rollouts.get_rollout("ro_ui").status == "promoted"
    bad = alice.post("/ui/rollouts/ro_ui", {"decision": "explode"})
    assert bad.status_code == 400 and "choose promote, abort or retry" in bad.text
    [event] = service.store.audit.list_audit(
        AuditQuery(event_type="rollout.aborted", limit=5)
    ).items
    assert event.actor == "alice" and event.payload["reason"] == "too slow"
