"""Patches from the engine's state texts (``delta.diff_texts``) and the held step connection.

The journal diffs :meth:`ExecutionState.snapshot_parts` texts instead of walking the state;
these tests check that folding such patches gives exactly ``redact(state)`` (same JSON text,
key order included) through every kind of change the engine makes, that the store reads
them back so, and that a run's step commits hold one pooled connection.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
import sqlalchemy as sa

from kneo.engine.journal import Boundary, TraceEvent
from kneo.engine.state import ExecutionState, StateParts
from kneo.errors import Conflict
from kneo.platform.journal import StoreJournal
from kneo.redaction import redact
from kneo.store import Store
from kneo.store import tables as t
from kneo.store.runs import delta, payloads, steps
from kneo.store.wire import executor

from .helpers import new_run

SECRETS = ("sk-live-0123456789abcdef", "password=hunter2hunter2", "me@example.org")


def _text(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _fold_text(old: StateParts, new: StateParts) -> str | None:
    patch = delta.diff_texts(old.fields, new.fields, old_units=old.units, new_units=new.units)
    if patch is None:
        return None
    return _text(delta.apply(redact(json.loads(old.text)), json.loads(patch)))


def _mutate(rng: random.Random, state: ExecutionState, step: int) -> None:
    """One engine-like change (or a few): what units, agents, routes and the rest go through."""
    units = state.units
    choice = rng.randrange(11)
    key = rng.choice([f"u{step}", "api_key", f"u{rng.randrange(max(step, 1))}"])
    if choice == 0 and units:  # a unit disappears (a decision reset it)
        del units[rng.choice(list(units))]
    elif choice == 1:  # a secret in an output
        units[key] = {"step_id": key, "status": "completed", "output": rng.choice(SECRETS)}
        state.order.append(key)
    elif choice == 2:  # an agent transcript grows
        agent = state.agents.setdefault(key, {"messages": [], "turns": 0})
        agent["messages"] = [*agent["messages"], {"role": "assistant", "content": f"m{step}"}]
        agent["turns"] = agent["turns"] + 1
    elif choice == 3:
        state.position = {} if state.position else {"unit_key": key, "step_id": key}
    elif choice == 4:
        state.output = rng.choice([None, "done", "password: hunter2hunter2"])
    elif choice == 5:
        state.decisions[f"d{step}"] = {"decision": "approve", "token": "sk-abcdefghijklmnop"}
    elif choice == 6:  # a retrying unit finishes in place
        units[key] = {"step_id": key, "status": "retrying", "attempts": 1}
    elif choice == 7 and units:  # a unit moves to the end: the patch must not reorder
        moved = rng.choice(list(units))
        units[moved] = units.pop(moved)
    elif choice == 8:
        state.order = state.order[: rng.randrange(len(state.order) + 1)]
    elif choice == 9:
        state.input_text = rng.choice(["in", "in", "key=sk-live-0123456789abcdef"])
    else:
        units[f"u{step}"] = {"step_id": "s", "status": "completed", "output": 1.0 * step}
        state.order.append(f"u{step}")


def test_text_patches_fold_to_the_redacted_state() -> None:
    """Random engine-like runs: every patch folds onto the redacted previous state to exactly
    the redacted new state's JSON text; ``None`` (a keyframe) only when keys moved."""
    rng = random.Random(4)
    patched = 0
    for _ in range(60):
        state = ExecutionState.new("in")
        last = state.snapshot_parts()
        for step in range(25):
            _mutate(rng, state, step)
            parts = state.snapshot_parts()
            assert parts.text == state.snapshot_text() == _text(json.loads(parts.text))
            folded = _fold_text(last, parts)
            if folded is not None:
                patched += 1
                assert folded == _text(redact(json.loads(parts.text)))
            last = parts
    assert patched > 1000


def test_appended_items_and_changed_units_are_all_that_is_sent() -> None:
    state = ExecutionState.new("a long input " * 50)
    state.units["u1"] = {"step_id": "s1", "status": "completed", "output": "x"}
    state.order.append("u1")
    old = state.snapshot_parts()
    state.units["u2"] = {"step_id": "s2", "status": "completed", "output": "y"}
    state.order.append("u2")
    new = state.snapshot_parts()
    patch = delta.diff_texts(old.fields, new.fields, old_units=old.units, new_units=new.units)
    assert patch is not None
    assert json.loads(patch) == [
        ["s", ["units", "u2"], {"step_id": "s2", "status": "completed", "output": "y"}],
        ["a", ["order"], ["u2"]],
    ]


def test_secrets_never_reach_a_text_patch() -> None:
    state = ExecutionState.new("in")
    old = state.snapshot_parts()
    state.units["api_key"] = {
        "step_id": "k",
        "status": "completed",
        "output": "sk-live-0123456789abcdef",
    }
    state.units["u1"] = {"step_id": "s", "status": "completed", "output": "mail me@example.org"}
    state.order.extend(["api_key", "u1"])
    new = state.snapshot_parts()
    patch = delta.diff_texts(old.fields, new.fields, old_units=old.units, new_units=new.units)
    assert patch is not None
    for secret in ("sk-live", "me@example.org"):
        assert secret not in patch


def _journal(store: Store) -> StoreJournal:
    run_id = new_run(store)
    with store.transaction() as tx:
        run = tx.update_run(run_id, status="running")
    return StoreJournal(store, run_id, run.version)


def test_engine_snapshots_are_stored_as_patches_and_read_whole(store: Store) -> None:
    """The journal's text path on a real store: patches after the keyframe, every checkpoint
    reads back as the redacted state of its step, and no secret is stored."""
    journal = _journal(store)
    state = ExecutionState.new("in")
    expected = []
    for step in range(20):
        key = "api_key" if step == 3 else f"u{step}"
        output = SECRETS[step % len(SECRETS)] if step % 4 == 1 else f"out {step}"
        state.units[key] = {"step_id": key, "status": "completed", "output": output}
        state.order.append(key)
        state.position = {"unit_key": key} if step % 5 == 2 else {}
        parts = state.snapshot_parts()
        journal.commit(Boundary(kind="step_completed", step_id=key, parts=parts))
        expected.append(redact(json.loads(parts.text)))
    c = t.checkpoints.c
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(c.encoding, c.payload).where(c.run_id == journal.run_id).order_by(c.sequence)
        ).all()
    assert [payloads.is_patch(r[0]) for r in rows].count(True) >= 15
    stored = b"".join(bytes(r[1]) for r in rows)
    for secret in (b"sk-live", b"hunter2", b"me@example.org"):
        assert secret not in stored
    page = store.runs.list_checkpoints(journal.run_id, limit=100)
    assert [_text(p.payload) for p in page.items] == [_text(e) for e in expected]


def _count_checkouts(store: Store) -> list[int]:
    count = [0]

    @sa.event.listens_for(store.engine, "checkout")
    def _checkout(*_args: Any) -> None:
        count[0] += 1

    return count


def test_a_run_commits_its_steps_on_one_connection(store: Store) -> None:
    """Back-to-back step transactions reuse one connection: on PostgreSQL a pooled one the
    journal holds until discard gives it back; on SQLite the process's writer connection,
    which the pool never sees again once it made it."""
    journal = _journal(store)
    checkouts = _count_checkouts(store)
    state = ExecutionState.new("in")
    for step in range(5):
        state.units[f"u{step}"] = {"step_id": "s", "status": "completed"}
        journal.commit(Boundary(kind="step_completed", parts=state.snapshot_parts()))
    held = 0 if store.backend == "sqlite" else 1
    assert checkouts[0] <= 1 and store.engine.pool.checkedout() == held  # type: ignore[attr-defined]
    journal.discard()
    assert store.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    assert store.runs.list_checkpoints(journal.run_id, limit=10).total == 5


def _step(store: Store, run_id: str, version: int, held: Any = None, state: str = "{}") -> Any:
    row = steps.StepCheckpoint("step_completed", "s", "completed", "json", b"{}", 2, False, {})
    event = steps.StepEvent("step_completed", "s", "{}")
    with store.transaction(held) as tx:
        return tx.write_step(
            run_id, expected_version=version, state_text=state, checkpoints=[row], events=[event]
        )


def test_an_idle_held_connection_goes_back_to_the_pool(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A held connection unused for HOLD_IDLE_SECONDS is checked out again (so the pool's
    checkout checks it); a lost compare-and-set gives it back and the next step takes one."""
    monkeypatch.setattr(executor, "HOLD_IDLE_SECONDS", 0.0)
    run_id = new_run(store)
    version = store.runs.get_run(run_id).version
    checkouts = _count_checkouts(store)
    held = store.hold_connection()
    for _ in range(3):
        version = _step(store, run_id, version, held).version
    if store.backend == "sqlite":  # the process's writer connection, made at most once
        assert checkouts[0] <= 1
    else:
        assert checkouts[0] == 3
    with pytest.raises(Conflict):
        _step(store, run_id, version - 1, held, '{"lost":1}')
    assert store.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    run = store.runs.get_run(run_id)
    assert (run.version, run.trace_seq, run.state) == (version, 3, {})
    assert _step(store, run_id, version, held).version == version + 1
    held.close()
    assert store.engine.pool.checkedout() == 0  # type: ignore[attr-defined]


def test_a_crowded_pool_gets_the_connection_back_after_each_step(store: Store) -> None:
    """With the pool's steady connections all in use elsewhere, a run does not keep an
    overflow connection between steps."""
    run_id = new_run(store)
    version = store.runs.get_run(run_id).version
    pool: Any = store.engine.pool
    others = [store.engine.connect() for _ in range(pool.size())]
    try:
        held = store.hold_connection()
        assert _step(store, run_id, version, held).version == version + 1
        assert pool.checkedout() == len(others)
    finally:
        for conn in others:
            conn.close()


def test_a_stale_step_writes_nothing(store: Store) -> None:
    """A lost compare-and-set raises ``stale_state`` and commits nothing; the next write
    goes through."""
    run_id = new_run(store)
    version = store.runs.get_run(run_id).version
    row = steps.StepCheckpoint("step_completed", "s", "completed", "json", b"{}", 2, False, {})
    event = steps.StepEvent("step_completed", "s", "{}")
    with store.transaction() as tx:
        version = tx.write_step(
            run_id, expected_version=version, state_text="{}", checkpoints=[row], events=[event]
        ).version
    with pytest.raises(Conflict) as caught, store.transaction() as tx:
        tx.write_step(
            run_id,
            expected_version=version - 1,
            state_text='{"lost":1}',
            checkpoints=[row],
            events=[event],
        )
    assert caught.value.code == "stale_state"
    run = store.runs.get_run(run_id)
    assert (run.version, run.trace_seq, run.state) == (version, 1, {})
    assert store.runs.list_checkpoints(run_id, limit=10).total == 1
    with store.transaction() as tx:
        written = tx.write_step(
            run_id, expected_version=version, state_text="{}", checkpoints=[row], events=[event]
        )
    assert (written.version, written.checkpoint_seq, written.trace_seq) == (version + 1, 2, 2)
    assert store.engine.pool.checkedout() == 0  # type: ignore[attr-defined]


def test_a_step_s_events_are_redacted_one_by_one(store: Store) -> None:
    """A boundary's events share one redaction prefilter: a secret in one event is redacted,
    the clean events next to it are stored as they are."""
    journal = _journal(store)
    at = "2026-01-01T00:00:00Z"
    journal.emit(TraceEvent("step_started", at, "s", "s", {"kind": "function", "attempt": 1}))
    journal.emit(TraceEvent("note", at, "s", "u1", {"text": "call me@example.org"}))
    journal.emit(TraceEvent("tool", at, "s", None, {"api_key": "sk-live-0123456789abcdef"}))
    journal.emit(TraceEvent("step_completed", at, "s", "s", {"output_chars": 3}))
    state = ExecutionState.new("in")
    journal.commit(Boundary(kind="step_completed", parts=state.snapshot_parts()))
    payloads_ = [e.payload for e in store.runs.list_trace(journal.run_id).items]
    assert payloads_ == [
        {"kind": "function", "attempt": 1, "at": at},
        {"text": "call [REDACTED_EMAIL]", "unit_key": "u1", "at": at},
        {"api_key": "[REDACTED]", "at": at},
        {"output_chars": 3, "at": at},
    ]


def test_a_list_field_is_appended_to_only_when_its_old_items_are_kept() -> None:
    cases = [
        ([1], [1, 2]),
        ([1], [12]),
        ([[1]], [[1, 2]]),
        ([[1]], [[1], [2]]),
        (["a"], ["a", "b"]),
        (["a"], ['a", "b']),
        ([{"k": 1}], [{"k": 1}, {"token": "sk-live-0123456789abcdef"}]),
        ([1, 2], [1]),
    ]
    for before, after in cases:
        old, new = {"order": _text(before)}, {"order": _text(after)}
        patch = delta.diff_texts(old, new)
        assert patch is not None
        ops = json.loads(patch)
        assert _text(delta.apply({"order": before}, ops)) == _text(redact({"order": after}))
        grew = len(after) > len(before) and after[: len(before)] == before
        assert [op[0] for op in ops] == (["a"] if grew else ["s"])
