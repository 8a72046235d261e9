"""The create and outcome transactions on PostgreSQL: as few statements and round trips as
their reads allow (see :mod:`kneo.store.transaction`), counted in libpq's protocol trace."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from kneo.errors import Conflict
from kneo.store import AuditQuery, Store, Transaction

SPEC = {"version": "v1", "workflow": {"name": "w", "steps": [{"id": "a"}]}}


# statements and round trips on the wire exist on PostgreSQL only
ONLY_POSTGRESQL = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


@contextmanager
def traced(store: Store, path: Path) -> Iterator[tuple[Transaction, Callable[[], str]]]:
    """A raw transaction whose connection's protocol messages go to ``path``; the second
    value reads them once the transaction is over."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    pgconn: Any = None
    try:
        with store.transaction() as tx:
            pgconn = tx._ex.raw.driver_connection.pgconn  # nothing is sent before a read
            pgconn.trace(fd)
            yield tx, path.read_text
    finally:
        if pgconn is not None:
            pgconn.untrace()
        os.close(fd)


def _round_trips(trace: str) -> int:
    """How many times the client sent and then waited for the server: the client's runs of
    messages each followed by the server's (in pipeline mode a read flushes, no Sync)."""
    directions = [line.split("\t")[1] for line in trace.splitlines() if line.count("\t") >= 2]
    return sum(1 for a, b in itertools.pairwise(directions) if (a, b) == ("F", "B"))


def _sent(trace: str) -> list[str]:
    """The statements the client sent: a simple Query, or the Bind of an extended-protocol
    one (each execution binds once, prepared or not)."""
    return [
        line
        for line in trace.splitlines()
        if "\tF\t" in line and ("Bind" in line or "Query" in line)
    ]


@ONLY_POSTGRESQL
def test_a_new_run_is_one_statement_in_one_round_trip(store: Store, tmp_path: Path) -> None:
    """The run, its spec, first events and audit: inserts nobody reads back, sent as one
    statement in autocommit (no BEGIN, no COMMIT)."""
    with traced(store, tmp_path / "create.trace") as (tx, read):
        run = tx.create_run(
            target="workflow",
            input_text="x",
            spec=SPEC,
            events=[{"event_type": "run_created"}, {"event_type": "run_started"}],
            lease=("me", 30),
        )
        tx.add_audit("run.created", run_id=run.run_id, payload={"a": 1})
    trace = read()
    assert _round_trips(trace) == 1 and len(_sent(trace)) == 1
    assert "BEGIN" not in trace and "COMMIT" not in trace
    stored = store.runs.get_run(run.run_id)
    assert stored.spec == SPEC and stored.trace_seq == 2
    assert store.queue.run_lease(run.run_id) is not None
    assert [e.event_type for e in store.runs.list_trace(run.run_id, limit=5).items] == [
        "run_created",
        "run_started",
    ]
    assert store.audit.list_audit(AuditQuery(run_id=run.run_id)).items[0].payload == {"a": 1}


@ONLY_POSTGRESQL
def test_an_outcome_alone_is_one_round_trip(store: Store, tmp_path: Path) -> None:
    with store.transaction() as tx:
        run = tx.create_run(target="workflow", input_text="x", status="running")
    with traced(store, tmp_path / "outcome.trace") as (tx, read):
        tx.finish_run(
            run,
            expected_version=run.version,
            status="succeeded",
            events=[{"event_type": "run_completed"}],
            audits=[{"event_type": "human.decision", "run_id": run.run_id}],
        )
    trace = read()
    assert _round_trips(trace) == 1 and len(_sent(trace)) == 1
    assert "BEGIN" not in trace
    assert store.runs.get_run(run.run_id).status == "succeeded"
    [audit] = store.audit.list_audit(AuditQuery(run_id=run.run_id)).items
    # the notifiable audit's outbox row is in that same statement
    routed = []
    assert store.notifications.route_notifications(lambda event: routed.append(event) or []) == 1
    assert [(e.event_id, e.event_type, e.run_id) for e in routed] == [
        (audit.event_id, "human.decision", run.run_id)
    ]


@ONLY_POSTGRESQL
def test_a_read_opens_a_pipelined_transaction(store: Store, tmp_path: Path) -> None:
    """Inserts queued before a read go out with it, as one statement; what follows the read
    goes with the COMMIT: two round trips in all, everything in one transaction."""
    with store.transaction() as tx:
        run = tx.create_run(target="workflow", input_text="x", status="running")
    with traced(store, tmp_path / "mixed.trace") as (tx, read):
        tx.add_audit("one", run_id=run.run_id)
        tx.add_audit("two", run_id=run.run_id)
        tx.add_trace_events(run.run_id, [{"event_type": "e"}])  # reads the run's counters
        tx.add_audit("three", run_id=run.run_id)
    trace = read()
    assert _round_trips(trace) == 2
    # BEGIN, the two audits as one statement, the counters' read, the event and the last
    # audit as one statement, COMMIT
    assert len(_sent(trace)) == 5 and "BEGIN" in trace and "COMMIT" in trace
    assert store.audit.list_audit(AuditQuery(run_id=run.run_id)).total == 3
    assert store.runs.get_run(run.run_id).trace_seq == 1


@ONLY_POSTGRESQL
def test_inserts_sent_as_one_statement_fail_together(store: Store) -> None:
    """A child row that breaks a constraint (here a key written twice) fails the whole
    statement: the audit that went with it is not stored either."""
    row = {
        "run_id": "run_x",
        "sequence": 1,
        "event_type": "e",
        "step_id": None,
        "payload": {},
    }
    with pytest.raises(Conflict), store.transaction() as tx:
        tx.add_audit("orphan.audit", run_id="run_x")
        tx._insert_trace_rows([row | {"created_at": tx.now}, row | {"created_at": tx.now}])
    assert store.audit.list_audit().total == 0
