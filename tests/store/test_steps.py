"""Conformance: the step-boundary write path and in-transaction sequence allocation."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from kneo.errors import Conflict, NotFound
from kneo.store import Store
from kneo.store.runs import payloads
from kneo.store.runs.steps import StepCheckpoint, StepEvent, StepWritten, json_text

from .helpers import new_run


def _checkpoint(payload: dict[str, object], step_id: str = "s1") -> StepCheckpoint:
    raw = json_text(payload).encode()
    return StepCheckpoint(
        type="step_completed",
        step_id=step_id,
        status="completed",
        encoding=payloads.ENCODING_JSON,
        payload=raw,
        size_bytes=len(raw),
        truncated=False,
        metadata={"unit_key": step_id, "attempt": 1},
    )


def write_step(
    store: Store,
    run_id: str,
    *,
    expected_version: int,
    state_text: str,
    checkpoint: StepCheckpoint,
    events: Sequence[StepEvent],
) -> StepWritten:
    """One boundary in a transaction of its own, committed on return."""
    with store.transaction() as tx:
        return tx.write_step(
            run_id,
            expected_version=expected_version,
            state_text=state_text,
            checkpoints=[checkpoint],
            events=events,
        )


def test_write_step_matches_the_generic_writes(store: Store) -> None:
    """One boundary: CAS bumps the version, checkpoint and events get the next sequences and
    read back exactly as add_checkpoint/add_trace_events would have written them."""
    run_id = new_run(store)
    version = store.runs.get_run(run_id).version
    with store.transaction() as tx:
        tx.add_trace_events(run_id, [{"event_type": "run_started"}])
        tx.add_checkpoint(run_id, type="started", payload={"n": 0})
    state = {"units": {"s1": {"output": "ü-x"}}, "order": ["s1"]}
    written = write_step(
        store,
        run_id,
        expected_version=version,
        state_text=json_text(state),
        checkpoint=_checkpoint(state),
        events=[
            StepEvent("step_started", "s1", json_text({"at": "t0"})),
            StepEvent("step_completed", "s1", json_text({"at": "t1"})),
        ],
    )
    run = store.runs.get_run(run_id)
    assert (written.version, run.version, run.state) == (version + 1, version + 1, state)
    assert (written.checkpoint_seq, written.trace_seq) == (2, 3)
    cps = store.runs.list_checkpoints(run_id).items
    assert [(c.sequence, c.type, c.payload) for c in cps] == [
        (1, "started", {"n": 0}),
        (2, "step_completed", state),
    ]
    assert cps[1].metadata == {"unit_key": "s1", "attempt": 1}
    assert cps[1].created_at == run.updated_at
    events = store.runs.list_trace(run_id).items
    assert [(e.sequence, e.event_type, e.step_id, e.payload) for e in events] == [
        (1, "run_started", None, {}),
        (2, "step_started", "s1", {"at": "t0"}),
        (3, "step_completed", "s1", {"at": "t1"}),
    ]


def test_write_step_compare_and_set(store: Store) -> None:
    """A stale version (``stale_state``) or a missing run (``not_found``) writes nothing."""
    run_id = new_run(store)
    with store.transaction() as tx:
        tx.update_run(run_id, status="running")
    with pytest.raises(Conflict) as caught:
        write_step(
            store,
            run_id,
            expected_version=1,
            state_text="{}",
            checkpoint=_checkpoint({}),
            events=[StepEvent("x", None, "{}")],
        )
    assert caught.value.code == "stale_state"
    assert store.runs.list_checkpoints(run_id).total == 0
    assert store.runs.list_trace(run_id).total == 0
    assert store.runs.get_run(run_id).version == 2
    with pytest.raises(NotFound):
        write_step(
            store,
            "run_missing",
            expected_version=1,
            state_text="{}",
            checkpoint=_checkpoint({}),
            events=[],
        )


def test_sequences_counted_in_one_transaction_persist(store: Store) -> None:
    """Allocations after create/update in one transaction are contiguous and the counters
    are written before commit, so the next transaction continues the numbering."""
    with store.transaction() as tx:
        run = tx.create_run(target="workflow", input_text="x")
        tx.add_trace_events(run.run_id, [{"event_type": "a"}])
        tx.add_checkpoint(run.run_id, type="c", payload={})
        run = tx.update_run(run.run_id, expected_version=run.version, status="running")
        tx.add_trace_events(run.run_id, [{"event_type": "b"}, {"event_type": "c"}])
        tx.add_checkpoint(run.run_id, type="c", payload={})
    with store.transaction() as tx:
        tx.add_trace_events(run.run_id, [{"event_type": "d"}])
        tx.add_checkpoint(run.run_id, type="c", payload={})
        run = tx.update_run(run.run_id, expected_version=run.version, state={})
        tx.add_checkpoint(run.run_id, type="c", payload={})
        tx.add_trace_events(run.run_id, [{"event_type": "e"}])
        tx.add_trace_events(run.run_id, [{"event_type": "f"}])
    with store.transaction() as tx:
        tx.add_trace_events(run.run_id, [{"event_type": "g"}])
    trace = store.runs.list_trace(run.run_id).items
    assert [(e.sequence, e.event_type) for e in trace] == [
        (1, "a"),
        (2, "b"),
        (3, "c"),
        (4, "d"),
        (5, "e"),
        (6, "f"),
        (7, "g"),
    ]
    assert [c.sequence for c in store.runs.list_checkpoints(run.run_id).items] == [1, 2, 3, 4]


@pytest.mark.parametrize("count", [1, 8, 9, 45, 70])
def test_every_event_of_a_long_batch_lands_once_in_order(store: Store, count: int) -> None:
    """Trace rows go in multi-row inserts (chunked past eight; on PostgreSQL past 64 events
    a boundary is no longer one statement): a boundary's events written with it and
    events added in a transaction are each stored once, numbered in the order given."""
    run_id = new_run(store)
    batch = [StepEvent("tick", f"s{i}", json_text({"i": i})) for i in range(count)]
    for version in (1, 2):
        write_step(
            store,
            run_id,
            expected_version=version,
            state_text="{}",
            checkpoint=_checkpoint({}),
            events=batch,
        )
    with store.transaction() as tx:
        tx.add_trace_events(
            run_id, [{"event_type": "tock", "payload": {"i": i}} for i in range(count)]
        )
    got = store.runs.list_trace(run_id, limit=250).items
    expected = [("tick", f"s{i}", {"i": i}) for i in range(count)] * 2
    expected += [("tock", None, {"i": i}) for i in range(count)]
    assert [(e.event_type, e.step_id, e.payload) for e in got] == expected
    assert [e.sequence for e in got] == list(range(1, 3 * count + 1))
    assert store.runs.get_run(run_id).trace_seq == 3 * count
