"""A step boundary as one statement (PostgreSQL's path when nothing came before it in its
transaction) against the same boundary's statements one by one (the path after a read, and
SQLite's): the same rows, one round trip per step, the same compare-and-set and errors."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from kneo.errors import Conflict, NotReady
from kneo.store import Store
from kneo.store.runs import steps
from kneo.store.runs.steps import StepWritten
from kneo.store.wire import pg_hooks

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


def _write(
    store: Store,
    run_id: str,
    rows: Sequence[Any],
    events: Sequence[steps.StepEvent] = (),
    state: str = "{}",
    *,
    version: int | None = None,
    stepwise: bool = False,
) -> StepWritten:
    """One boundary in a transaction of its own; ``stepwise``: after a read, so as the
    statements one by one (the reference the one-statement path must match)."""
    expected = store.runs.get_run(run_id).version if version is None else version
    with store.transaction() as tx:
        if stepwise:
            tx.get_run(run_id)
        return tx.write_step(
            run_id, expected_version=expected, state_text=state, checkpoints=rows, events=events
        )


def test_one_statement_stores_what_the_stepwise_writes_store(store: Store) -> None:
    """Keyframe, patch, no events, NULL step ids, non-ASCII: the one-statement boundary's
    rows equal the stepwise statements' column for column."""
    mine, theirs = new_run(store), new_run(store)
    with store.transaction() as tx:
        for run_id in (mine, theirs):
            tx.add_trace_events(run_id, [{"event_type": "run_started"}])
    follows: int | None = None
    for index, events in enumerate(_EVENTS):
        row = _row(f'{{"n":{index}}}'.encode(), None if index == 2 else "s", follows)
        state = f'{{"n":{index}}}'
        written = _write(store, mine, [row], events, state)
        reference = _write(store, theirs, [row], events, state, stepwise=True)
        assert written == reference
        follows = written.checkpoint_seq
    assert _stored(store, mine) == _stored(store, theirs)
    assert _stored(store, mine)[2][3:] == (3, 4)


def test_boundaries_written_together_store_what_the_stepwise_writes_store(store: Store) -> None:
    """Two checkpoints in one write (a held replayable boundary and the next one): numbered
    in order, the second a patch on the first, the counters moved by two and the version by
    one; the rows equal the stepwise statements' column for column."""
    mine, theirs = new_run(store), new_run(store)
    assert _write(store, mine, [_row(b"{}")], _EVENTS[0]) == _write(
        store, theirs, [_row(b"{}")], _EVENTS[0], stepwise=True
    )
    version = store.runs.get_run(mine).version
    rows = [_row(b"[1]", follows=1), _row(b"[2]", "t", follows=2)]
    written = _write(store, mine, rows, _EVENTS[0], '{"n":2}')
    reference = _write(store, theirs, rows, _EVENTS[0], '{"n":2}', stepwise=True)
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
    _write(store, run_id, [_row(b"{}")], _EVENTS[0])
    with store.transaction() as tx:  # another writer's checkpoint: the chain start moves
        tx.add_checkpoint(run_id, type="x", payload={})

    def chained(payload: bytes, follows: int) -> Any:
        row = _row(payload, follows=follows)
        return row._replace(keyframe=lambda: _row(b"K" + payload))

    written = _write(store, run_id, [chained(b"[1]", 1), chained(b"[2]", 2)], _EVENTS[0])
    assert written.checkpoint_seq == 4
    stored = [(c[0], c[5]) for c in _stored(store, run_id)[0]]
    assert stored[2:] == [(3, b"K[1]"), (4, b"K[2]")]


def test_a_lost_compare_and_set_of_a_patch_writes_nothing(store: Store) -> None:
    """A patch row on a stale version: stale_state, no row, counters unchanged; the next
    boundary goes through."""
    run_id = new_run(store)
    first = _write(store, run_id, [_row(b"{}")], _EVENTS[0])
    before = _stored(store, run_id)
    patch = [_row(b"[]", follows=first.checkpoint_seq)]
    with pytest.raises(Conflict) as caught:
        _write(store, run_id, patch, _EVENTS[0], '{"lost":1}', version=first.version - 1)
    assert caught.value.code == "stale_state"
    assert _stored(store, run_id) == before
    assert _write(store, run_id, patch) == (first.version + 1, 2, 2)


def test_a_constraint_violation_is_a_conflict_and_rolls_back(store: Store) -> None:
    """A clashing checkpoint row fails the whole boundary (conflict, nothing kept, the run
    unchanged); the next boundary is written normally."""
    run_id = new_run(store)
    version = store.runs.get_run(run_id).version
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
    with pytest.raises(Conflict) as caught:
        _write(store, run_id, [_row(b"{}")], _EVENTS[0], '{"n":1}')
    assert caught.value.code == "conflict"
    assert _stored(store, run_id)[1:] == before[1:]  # no event, run row unchanged
    with store.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM checkpoints WHERE run_id = :r"), {"r": run_id})
    assert _write(store, run_id, [_row(b"{}")], _EVENTS[0], '{"n":1}') == (version + 1, 1, 2)


# round trips and server errors exist on PostgreSQL only
ONLY_POSTGRESQL = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


@ONLY_POSTGRESQL
def test_a_step_is_one_round_trip(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The boundary is one statement in a transaction of its own: one ReadyForQuery per
    step (stepwise: five), prepared statement or not. The pool holds one connection here,
    so every step takes the one traced (and is not pinged, however slow the machine)."""
    monkeypatch.setattr(pg_hooks, "PING_IDLE_SECONDS", 3600.0)
    run_id = new_run(store)
    version = store.runs.get_run(run_id).version
    with store.engine.connect() as conn:  # the pool's one idle connection, traced
        pgconn = conn.connection.driver_connection.pgconn  # type: ignore[union-attr]
    trace = tmp_path / "libpq.trace"
    fd = os.open(trace, os.O_WRONLY | os.O_CREAT)
    pgconn.trace(fd)
    follows: int | None = None
    for index in range(7):
        written = _write(
            store, run_id, [_row(b"{}", follows=follows)], _EVENTS[index % 3], version=version
        )
        version, follows = written.version, written.checkpoint_seq
    pgconn.untrace()
    os.close(fd)
    # every step takes at least one round trip, so 7 in all is one each
    assert trace.read_text().count("ReadyForQuery") == 7
    assert _stored(store, run_id)[2][3] == 7


@ONLY_POSTGRESQL
def test_a_lost_connection_is_database_unavailable(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pooled connection's server process is gone (and it sat idle too briefly to be
    pinged): database_unavailable; the next step takes a fresh connection."""
    monkeypatch.setattr(pg_hooks, "PING_IDLE_SECONDS", 3600.0)
    run_id = new_run(store)
    first = _write(store, run_id, [_row(b"{}")])
    with store.engine.connect() as conn:  # the pool's one connection: the next step's
        pid = conn.connection.driver_connection.info.backend_pid  # type: ignore[union-attr]
    killer = sa.create_engine(store.engine.url)  # not from the store's pool
    with killer.begin() as conn:
        conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    killer.dispose()
    with pytest.raises(NotReady) as caught:
        _write(store, run_id, [_row(b"{}")], version=first.version)
    assert caught.value.code == "database_unavailable"
    again = _write(store, run_id, [_row(b"{}")], version=first.version)
    assert again.version == first.version + 1
