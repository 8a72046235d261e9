"""A2A push configs in the store (``kneo.store.outbox.a2a_push``), on SQLite and PostgreSQL: a
config is its owner's, a change of the run's status is one outbox event and one delivery
however many sweeps record it, and a config's deliveries go in order."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from kneo.clock import ManualClock
from kneo.errors import InvalidRequest
from kneo.setting_groups import RetentionDays
from kneo.store import NotificationQuery, Store
from kneo.store import tables as t
from kneo.store.outbox.a2a_push import PUSH_EVENT, PUSH_RECEIVER, PushConfig, PushTarget

from .helpers import new_run


def _put(store: Store, run_id: str, owner: str = "agent", config_id: str = "c1") -> PushConfig:
    target = PushTarget(
        push_id=f"a2ap_{owner}_{config_id}_{run_id[-6:]}",
        origin="https://hooks.example.com",
        auth_scheme="Bearer",
        sealed="v1.sealed",
        sees_requests=True,
    )
    config = store.a2a_push.set_push_config(run_id, owner, config_id, target, limit=2)
    assert config is not None
    return config


def test_a_config_is_its_owners(store: Store) -> None:
    run_id = new_run(store)
    mine = _put(store, run_id)
    assert [c.config_id for c in store.a2a_push.push_configs(run_id, "agent")] == ["c1"]
    assert store.a2a_push.push_configs(run_id, "other") == []  # another caller sees none of it
    assert store.a2a_push.set_push_config(run_id, "other", "c1", None) is None  # nor clears it
    assert store.a2a_push.push_configs(push_id=mine.push_id) == [mine]
    replaced = _put(store, run_id)  # the same id again replaces it
    assert store.a2a_push.push_configs(run_id, "agent") == [replaced]
    _put(store, run_id, config_id="c2")
    with pytest.raises(InvalidRequest, match="at most 2"):
        _put(store, run_id, config_id="c3")
    assert store.a2a_push.set_push_config(run_id, "agent", "c1", None) == replaced
    assert store.a2a_push.set_push_config(run_id, "agent", "c1", None) is None  # cleared once
    assert store.a2a_push.push_configs(push_id=replaced.push_id) == []
    assert [c.config_id for c in store.a2a_push.push_configs(run_id, "agent")] == ["c2"]


def test_each_status_change_is_one_event_however_many_sweeps(store: Store) -> None:
    run_id = new_run(store)
    config = _put(store, run_id)
    (due,) = store.a2a_push.due_pushes()
    assert due.config == config and due.status == "queued"
    payload = {"push_id": config.push_id, "state": "TASK_STATE_SUBMITTED", "body": {"task": {}}}
    assert store.a2a_push.record_push(due.config, status="queued", done=False, payload=payload)
    # a second sweep that read the same config before the first recorded it
    assert not store.a2a_push.record_push(due.config, status="queued", done=False, payload=payload)
    assert store.a2a_push.due_pushes() == []  # nothing changed since
    with store.transaction() as tx:
        tx.update_run(run_id, status="succeeded")
    (due,) = store.a2a_push.due_pushes()
    assert due.status == "succeeded" and due.config.pushed_status == "queued"
    assert store.a2a_push.record_push(due.config, status="succeeded", done=True, payload=payload)
    with store.transaction() as tx:
        tx.update_run(run_id, status="running")  # (never happens: a done config is left)
    assert store.a2a_push.due_pushes() == []
    deliveries = store.notifications.list_notifications(
        NotificationQuery(receiver=PUSH_RECEIVER)
    ).items
    assert [d.event.event_type for d in deliveries] == [PUSH_EVENT, PUSH_EVENT]
    assert {d.event.payload["push_id"] for d in deliveries} == {config.push_id}
    # a config's deliveries go in order: the second waits while the first is pending
    claimed = store.notifications.claim_notifications("me", 30, limit=10, receivers=[PUSH_RECEIVER])
    assert [c.event.event_id for c in claimed] == [f"a2ap_{config.push_id}_1"]


def test_a_config_of_a_run_that_is_gone_is_dropped(store: Store) -> None:
    run_id = new_run(store)
    _put(store, run_id)
    with store.engine.begin() as conn:  # (retention deletes a run's configs with the run)
        conn.execute(sa.delete(t.runs).where(t.runs.c.run_id == run_id))
    assert store.a2a_push.due_pushes() == []
    assert store.a2a_push.push_configs(run_id, "agent") == []


def test_retention_deletes_a_runs_configs_with_it(store: Store, clock: ManualClock) -> None:
    old, kept = new_run(store), new_run(store)
    with store.transaction() as tx:
        tx.update_run(old, status="succeeded", finished_at=clock.now())
    _put(store, old)
    _put(store, kept)
    clock.advance(days=40)
    assert store.maintenance.prune_retention(RetentionDays(runs_days=30))["runs"] == 1
    assert (
        store.a2a_push.push_configs(old, "agent") == []
        and len(store.a2a_push.push_configs(kept, "agent")) == 1
    )
