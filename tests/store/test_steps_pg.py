"""StepWriter's one-statement boundary (PostgreSQL) against the stepwise writes it replaces:
the same rows, one round trip per step, the same compare-and-set and error mapping."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from kneo.errors import Conflict, NotReady
from kneo.store import Store, steps
from kneo.store.steps import Step, write_step

from .helpers import new_run


def _row(payload: bytes, step_id: str | None = "s", follows: int | None = None) -> Any:
    return steps.StepCheckpoint(
        "step_completed",
        step_id,
        "completed",
        "json",
        payload,
        len(payload),
        False,
        {"unit_key": step_id, "attempt": 1, "note": "ü"},
        follows=follows,
    )


_EVENTS = [
    [steps.StepEvent("step_started", "s", '{"at":"t0"}'), steps.StepEvent("n", None, "{}")],
    [],
    [steps.StepEvent("tool", None, '{"text":"ü\\n\\"q\\""}')],
]


def _stored(store: Store, run_id: str) -> tuple[list[Any], list[Any], tuple[Any, ...]]:
    """Every stored column of the run's checkpoints, trace events and counters."""
    with store.engine.connect() as conn:
        cps = conn.execute(
            sa.text("SELECT * FROM checkpoints WHERE run_id = :r ORDER BY sequence"),
            {"r": run_id},
        ).all()
        events = conn.execute(
            sa.text("SELECT * FROM trace_events WHERE run_id = :r ORDER BY sequence"),
            {"r": run_id},
        ).all()
        run = conn.execute(
            sa.text(
                "SELECT version, state, updated_at, checkpoint_seq, trace_seq FROM runs "
                "WHERE run_id = :r"
            ),
            {"r": run_id},
        ).one()
    strip = [tuple(r)[1:] for r in cps], [tuple(r)[1:] for r in events]
    return strip[0], strip[1], tuple(run)


def test_the_writer_stores_what_the_stepwise_writes_store(store: Store) -> None:
    """Keyframe, patch, no events, NULL step ids, non-ASCII: the writer's rows equal
    :func:`~kneo.store.steps.write_step`'s (the stepwise statements) column for column."""
    mine, theirs = new_run(store), new_run(store)
    now = store.clock.now()
    with store.transaction() as tx:
        for run_id in (mine, theirs):
            tx.add_trace_event(run_id, "run_started")
    writer = store.step_writer()
    version = {mine: store.get_run(mine).version, theirs: store.get_run(theirs).version}
    follows: int | None = None
    for index, events in enumerate(_EVENTS):
        row = _row(f'{{"n":{index}}}'.encode(), None if index == 2 else "s", follows)
        written = writer.commit(
            run_id=mine,
            expected_version=version[mine],
            now=now,
            state_text=f'{{"n":{index}}}',
            checkpoints=[row],
            events=events,
        )
        assert written is not None
        step = Step(theirs, version[theirs], now, f'{{"n":{index}}}', [row], events)
        raw = store.engine.raw_connection()
        try:
            reference = write_step(raw.cursor(), store.dialect, step)
            raw.commit()
        finally:
            raw.close()
        assert reference is not None and written == reference
        version = {mine: written.version, theirs: reference.version}
        follows = written.checkpoint_seq
    writer.close()
    assert _stored(store, mine) == _stored(store, theirs)
    assert _stored(store, mine)[2][3:] == (3, 4)


def _commit(store: Store, run_id: str, rows: list[Any], state: str = "{}") -> Any:
    with contextlib.closing(store.step_writer()) as writer:
        return writer.commit(
            run_id=run_id,
            expected_version=store.get_run(run_id).version,
            now=store.clock.now(),
            state_text=state,
            checkpoints=rows,
            events=_EVENTS[0],
        )


def test_boundaries_written_together_store_what_the_stepwise_writes_store(store: Store) -> None:
    """Two checkpoints in one write (a held replayable boundary and the next one): numbered
    in order, the second a patch on the first, the counters moved by two and the version by
    one; the rows equal :func:`~kneo.store.steps.write_step`'s column for column."""
    mine, theirs = new_run(store), new_run(store)
    assert _commit(store, mine, [_row(b"{}")]) == _commit(store, theirs, [_row(b"{}")])
    now, version = store.clock.now(), store.get_run(mine).version
    rows = [_row(b"[1]", follows=1), _row(b"[2]", "t", follows=2)]
    with contextlib.closing(store.step_writer()) as writer:
        written = writer.commit(
            run_id=mine,
            expected_version=version,
            now=now,
            state_text='{"n":2}',
            checkpoints=rows,
            events=_EVENTS[0],
        )
    raw = store.engine.raw_connection()
    try:
        step = Step(theirs, version, now, '{"n":2}', rows, _EVENTS[0])
        reference = write_step(raw.cursor(), store.dialect, step)
        raw.commit()
    finally:
        raw.close()
    assert written == reference == (version + 1, 3, 4)
    assert _stored(store, mine) == _stored(store, theirs)
    assert [(c[0], c[2], c[5]) for c in _stored(store, mine)[0]] == [
        (1, "s", b"{}"),
        (2, "s", b"[1]"),
        (3, "t", b"[2]"),
    ]


def test_a_patch_chain_whose_start_moved_is_stored_as_keyframes(store: Store) -> None:
    """Checkpoints written together after another checkpoint slipped in: the patches'
    chain no longer starts at the run's last checkpoint, so each row is stored as its
    keyframe, numbered after the newcomer."""
    run_id = new_run(store)
    _commit(store, run_id, [_row(b"{}")])
    with store.transaction() as tx:  # another writer's checkpoint: the chain start moves
        tx.add_checkpoint(run_id, type="x", payload={})

    def chained(payload: bytes, follows: int) -> Any:
        row = _row(payload, follows=follows)
        return dataclasses.replace(row, keyframe=lambda: _row(b"K" + payload))

    written = _commit(store, run_id, [chained(b"[1]", 1), chained(b"[2]", 2)])
    assert written is not None and written.checkpoint_seq == 4
    stored = [(c[0], c[5]) for c in _stored(store, run_id)[0]]
    assert stored[2:] == [(3, b"K[1]"), (4, b"K[2]")]


def test_a_lost_compare_and_set_of_a_patch_writes_nothing(store: Store) -> None:
    """A patch row on a stale version: None, no row, counters unchanged, writer usable."""
    run_id = new_run(store)
    writer = store.step_writer()
    now = store.clock.now()
    first = writer.commit(
        run_id=run_id,
        expected_version=store.get_run(run_id).version,
        now=now,
        state_text="{}",
        checkpoints=[_row(b"{}")],
        events=_EVENTS[0],
    )
    assert first is not None
    before = _stored(store, run_id)
    lost = writer.commit(
        run_id=run_id,
        expected_version=first.version - 1,
        now=now,
        state_text='{"lost":1}',
        checkpoints=[_row(b"[]", follows=first.checkpoint_seq)],
        events=_EVENTS[0],
    )
    assert lost is None
    assert _stored(store, run_id) == before
    again = writer.commit(
        run_id=run_id,
        expected_version=first.version,
        now=now,
        state_text="{}",
        checkpoints=[_row(b"[]", follows=first.checkpoint_seq)],
        events=[],
    )
    assert again == (first.version + 1, 2, 2)
    writer.close()


def test_a_constraint_violation_is_a_conflict_and_rolls_back(store: Store) -> None:
    """A clashing checkpoint row fails the whole boundary (conflict, nothing kept, the run
    unchanged); the writer then writes the next boundary normally."""
    run_id = new_run(store)
    version = store.get_run(run_id).version
    with store.engine.begin() as conn:  # a row at the next sequence, counters not moved
        conn.execute(
            sa.text(
                "INSERT INTO checkpoints (run_id, sequence, type, encoding, payload, size_bytes, "
                "truncated, metadata, created_at) "
                "SELECT run_id, 1, 'x', 'json', :p, 2, false, '{}', updated_at FROM runs "
                "WHERE run_id = :r"
            ),
            {"r": run_id, "p": b"{}"},
        )
    before = _stored(store, run_id)
    writer = store.step_writer()
    kwargs: dict[str, Any] = {
        "run_id": run_id,
        "expected_version": version,
        "now": store.clock.now(),
        "state_text": '{"n":1}',
        "checkpoints": [_row(b"{}")],
        "events": _EVENTS[0],
    }
    with pytest.raises(Conflict) as caught:
        writer.commit(**kwargs)
    assert caught.value.code == "conflict"
    assert _stored(store, run_id)[1:] == before[1:]  # no event, run row unchanged
    with store.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM checkpoints WHERE run_id = :r"), {"r": run_id})
    assert writer.commit(**kwargs) == (version + 1, 1, 2)
    writer.close()


# round trips and server errors exist on PostgreSQL only
ONLY_POSTGRESQL = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


@ONLY_POSTGRESQL
def test_a_step_is_one_round_trip(store: Store, tmp_path: Path) -> None:
    """The boundary is one statement in a transaction of its own: one ReadyForQuery per
    step (before: five), prepared statement or not."""
    run_id = new_run(store)
    writer = store.step_writer()
    version = store.get_run(run_id).version
    follows: int | None = None
    trace = tmp_path / "libpq.trace"
    fd = os.open(trace, os.O_WRONLY | os.O_CREAT)
    for index in range(8):
        written = writer.commit(
            run_id=run_id,
            expected_version=version,
            now=store.clock.now(),
            state_text="{}",
            checkpoints=[_row(b"{}", follows=follows)],
            events=_EVENTS[index % 3],
        )
        assert written is not None
        version, follows = written.version, written.checkpoint_seq
        if index == 0:  # the connection is held from here on: trace the next 7 steps
            pgconn = writer._raw.driver_connection.pgconn
            pgconn.trace(fd)
    pgconn.untrace()
    os.close(fd)
    writer.close()
    # every step takes at least one round trip, so 7 in all is one each
    assert trace.read_text().count("ReadyForQuery") == 7
    assert _stored(store, run_id)[2][3] == 8


@ONLY_POSTGRESQL
def test_a_lost_connection_is_database_unavailable(store: Store) -> None:
    """The held connection's server process is gone: database_unavailable; the next step
    takes a fresh connection."""
    run_id = new_run(store)
    writer = store.step_writer()
    kwargs: dict[str, Any] = {
        "run_id": run_id,
        "now": store.clock.now(),
        "state_text": "{}",
        "checkpoints": [_row(b"{}")],
        "events": [],
    }
    first = writer.commit(expected_version=store.get_run(run_id).version, **kwargs)
    assert first is not None
    pid = writer._raw.driver_connection.info.backend_pid
    with store.engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    with pytest.raises(NotReady) as caught:
        writer.commit(expected_version=first.version, **kwargs)
    assert caught.value.code == "database_unavailable"
    again = writer.commit(expected_version=first.version, **kwargs)
    assert again is not None and again.version == first.version + 1
    writer.close()
