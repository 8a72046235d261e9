"""A task assigned to an approver group, and a promotion (freeze override, rollback) whose
approvers name the group, is *Mine* in the inbox for each member the people directory
(``notifications.people``) puts in that group, and for nobody else."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from console_helpers import EXTRA_KEYS, Console, headers

from kneo.engine.human import Decision

ROOT = Path(__file__).resolve().parents[2]


def test_a_group_task_is_mine_for_its_members(service: Callable[..., Any], tmp_path: Path) -> None:
    people = [{"user": "alice", "groups": ["release-managers"]}, {"user": "bob"}]
    app, _api = service(KNEO_SERV_NOTIFICATIONS_PEOPLE=json.dumps(people))
    spec = tmp_path / "group.yaml"
    spec.write_text(
        (ROOT / "examples" / "hitl_approval.yaml")
        .read_text()
        .replace("assignee: reviewer", "assignee: group:release-managers")
    )
    paused = app.state.manager.run_from_spec(input_text="for the group", spec_path=str(spec))
    tasks = {}
    for who in ("alice", "bob"):
        person = Console(app)
        person.sign_in(who)
        mine = person.get("/ui/inbox?assignee=mine").text
        tasks[who] = re.findall(r'href="/ui/tasks/(cont_[0-9a-f]+)"', mine)
    assert tasks == {"alice": [paused.continuation_id], "bob": []}


def test_the_apis_assignee_mine_is_the_inboxs_mine(
    service: Callable[..., Any], tmp_path: Path
) -> None:
    """``GET /v1/human-tasks?assignee=mine`` lists what names the calling key: its own name
    and the groups the people directory puts it in, nothing assigned to others."""
    people = [{"user": "alice", "groups": ["release-managers"]}, {"user": "bob"}]
    app, api = service(KNEO_SERV_NOTIFICATIONS_PEOPLE=json.dumps(people))
    approval = (ROOT / "examples" / "hitl_approval.yaml").read_text()
    paused = {}
    for assignee in ("group:release-managers", "bob", "carol"):
        spec = tmp_path / f"{assignee.replace(':', '_')}.yaml"
        spec.write_text(approval.replace("assignee: reviewer", f"assignee: {assignee}"))
        run = app.state.manager.run_from_spec(input_text=assignee, spec_path=str(spec))
        paused[assignee] = run.continuation_id

    def mine(who: str) -> list[str]:
        answer = api.get(
            "/v1/human-tasks",
            params={"assignee": "mine", "include": "counts"},
            headers={"Authorization": f"Bearer {EXTRA_KEYS[who]}"},
        )
        assert answer.status_code == 200, answer.text
        return [t["continuation_id"] for t in answer.json()["tasks"]]

    assert mine("alice") == [paused["group:release-managers"]]
    assert mine("bob") == [paused["bob"]]
    # a name someone else chose is an ordinary filter: "mine" is the caller's alone
    listed = api.get("/v1/human-tasks", params={"assignee": "carol"}, headers=headers("admin"))
    assert [t["continuation_id"] for t in listed.json()["tasks"]] == [paused["carol"]]


def test_a_promotion_for_an_approver_group_is_mine_for_its_members(
    service: Callable[..., Any],
) -> None:
    """A promotion and a freeze override whose approvers name ``group:release-managers``
    (and a person) are *Mine* for the group's members the directory lists, not for others,
    and the API's assignee filter finds them by either approver; once decided, they leave."""
    from kneo.controller.promotion import PromotionGate

    people = [{"user": "alice", "groups": ["release-managers"]}, {"user": "bob"}]
    app, api = service(KNEO_SERV_NOTIFICATIONS_PEOPLE=json.dumps(people))
    store = app.state.manager.store
    approvers = ("group:release-managers", "user:cto@example.com")
    gate, digest = PromotionGate(), "sha256:" + "cd" * 32
    with store.transaction() as tx:
        promotion = gate.open(
            tx, name="mailer", environment="prod", digest=digest, revision=2,
            approvers=approvers, min_approvals=1, now=store.clock.now(),
        )  # fmt: skip
        override = gate.open_override(
            tx, name="mailer", environment="prod", digest=digest, approvers=approvers,
            min_approvals=1, frozen="release freeze", now=store.clock.now(),
        )  # fmt: skip
    mine = {}
    for who in ("alice", "bob"):
        person = Console(app)
        person.sign_in(who)
        page = person.get("/ui/inbox?assignee=mine").text
        mine[who] = set(re.findall(r'href="/ui/promotions/(cont_[0-9a-z_]+)"', page))
        if who == "alice":
            assert "group:release-managers, user:" in page  # the approvers, not "unassigned"
    assert mine == {"alice": {promotion, override}, "bob": set()}

    def listed(assignee: str) -> set[str]:
        answer = api.get("/v1/human-tasks", params={"assignee": assignee}, headers=headers("admin"))
        assert answer.status_code == 200, answer.text
        return {t["continuation_id"] for t in answer.json()["tasks"]}

    assert (
        listed("group:release-managers") == listed("user:cto@example.com") == {promotion, override}
    )
    assert listed("bob") == set()
    rid = store.tasks.get_continuation(promotion).requests[0]["request_id"]
    app.state.manager.resume(promotion, Decision(rid, "approved"), actor="cto@example.com")
    assert listed("group:release-managers") == {override}
