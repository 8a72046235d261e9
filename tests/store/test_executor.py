"""The executors' connection state, against a fake DBAPI connection that records what it is
told: when a transaction begins and commits, what waits and what goes out as one statement,
and that every way out (a failed read, a failure in the commit itself, a broken connection)
leaves the connection idle, out of the pipeline and with autocommit off.

The same paths run against the real databases in the rest of ``tests/store`` (the wire
itself in ``test_transaction_pg.py``); here each failure can be placed exactly."""

from __future__ import annotations

from typing import Any

import pytest

from kneo.store.wire.executor import PostgresExecutor, SqliteExecutor, compound


class Broken(Exception):
    """What the fake driver raises where it is told to fail."""


class FakeDriver:
    """psycopg's connection as the executor uses it: autocommit, pipeline(), execute()."""

    def __init__(self, log: list[Any], fail: set[str]) -> None:
        self.log, self.fail = log, fail
        self._autocommit = False
        self.in_pipeline = False

    @property
    def autocommit(self) -> bool:
        return self._autocommit

    @autocommit.setter
    def autocommit(self, value: bool) -> None:
        self.log.append(("autocommit", value))
        if "autocommit" in self.fail and not value:
            raise Broken("autocommit")
        self._autocommit = value

    def pipeline(self) -> FakePipeline:
        return FakePipeline(self)

    def execute(self, sql: str) -> None:
        self.log.append(("driver", sql))
        if "rollback" in self.fail:
            raise Broken("rollback")


class FakePipeline:
    def __init__(self, driver: FakeDriver) -> None:
        self.driver = driver

    def __enter__(self) -> FakePipeline:
        self.driver.log.append("pipeline in")
        self.driver.in_pipeline = True
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        self.driver.log.append(("pipeline out", exc_type is None))
        self.driver.in_pipeline = False
        if "sync" in self.driver.fail and exc_type is None:  # a queued statement failed
            raise Broken("sync")


class FakeCursor:
    def __init__(self, raw: FakeRaw) -> None:
        self.raw = raw
        self.rows: list[Any] = []

    def execute(self, sql: str, args: Any = ()) -> None:
        self.raw.log.append((sql, tuple(args)))
        if sql in self.raw.fail:
            raise Broken(sql)

    def fetchall(self) -> list[Any]:
        rows, self.rows = self.rows, []
        return rows

    def close(self) -> None:
        self.raw.log.append("close")


class FakeRaw:
    """A pooled DBAPI connection: cursor(), commit(), driver_connection."""

    def __init__(self, *fail: str) -> None:
        self.log: list[Any] = []
        self.fail = set(fail)
        self.driver_connection = FakeDriver(self.log, self.fail)
        self.cur = FakeCursor(self)

    def cursor(self) -> FakeCursor:
        return self.cur

    def raw_cursor(self, driver: FakeDriver) -> FakeCursor:
        """psycopg's ``RawCursor(connection)``, as the executor makes its cursor."""
        assert driver is self.driver_connection
        return self.cur

    def commit(self) -> None:
        self.log.append("commit()")


def _restored(raw: FakeRaw) -> bool:
    driver = raw.driver_connection
    return not driver.autocommit and not driver.in_pipeline


def test_sqlite_takes_the_write_lock_first_and_commits_through_the_cursor() -> None:
    raw = FakeRaw()
    ex = SqliteExecutor(raw)
    ex.add("INSERT a", (1,))
    ex.execute("SELECT b", (2,))
    assert not ex.untouched and ex.alone("UPDATE c", ()) is None  # no such strategy
    ex.commit()
    assert raw.log == [
        ("BEGIN IMMEDIATE", ()),
        ("INSERT a", (1,)),
        ("SELECT b", (2,)),
        ("COMMIT", ()),
    ]
    with pytest.raises(RuntimeError, match="nothing may follow"):
        ex.execute("SELECT d", ())


def test_sqlite_closes_its_cursor_when_the_write_lock_does_not_come() -> None:
    raw = FakeRaw("BEGIN IMMEDIATE")
    with pytest.raises(Broken):
        SqliteExecutor(raw)
    assert raw.log[-1] == "close"


def test_postgres_inserts_wait_and_go_out_with_the_next_read_as_one_statement() -> None:
    raw = FakeRaw()
    ex = PostgresExecutor(raw, raw.raw_cursor, pipeline=True)
    ex.add("INSERT INTO a VALUES ($1, $2)", (1, 0))
    ex.add("INSERT INTO b VALUES ($1)", (2,))
    assert raw.log == [] and not ex.untouched
    ex.execute("SELECT c", (3,))
    ex.add("INSERT INTO d VALUES ($1)", (4,))
    ex.commit()
    assert raw.log == [
        ("autocommit", True),
        "pipeline in",
        ("BEGIN", ()),
        # each part's numbered parameters move past the parts before it
        ("WITH w0 AS (INSERT INTO a VALUES ($1, $2)) INSERT INTO b VALUES ($3)", (1, 0, 2)),
        ("SELECT c", (3,)),
        ("INSERT INTO d VALUES ($1)", (4,)),
        ("COMMIT", ()),
        ("pipeline out", True),
        ("autocommit", False),
    ]
    assert _restored(raw)


def test_postgres_writes_only_is_one_statement_in_autocommit() -> None:
    raw = FakeRaw()
    ex = PostgresExecutor(raw, raw.raw_cursor, pipeline=True)
    ex.add("INSERT INTO a VALUES ($1)", (1,))
    ex.add("INSERT INTO b VALUES ($1)", (2,))
    ex.commit()
    assert raw.log == [
        ("autocommit", True),
        ("WITH w0 AS (INSERT INTO a VALUES ($1)) INSERT INTO b VALUES ($2)", (1, 2)),
        ("autocommit", False),
    ]


def test_postgres_an_update_or_delete_waits_with_no_other_write_of_its_table() -> None:
    """The parts of one statement see one snapshot and none of each other's changes: a
    delete and the insert after it of one table go out in order, as two statements; writes
    of other tables still wait together."""
    raw = FakeRaw()
    ex = PostgresExecutor(raw, raw.raw_cursor, pipeline=True)
    ex.execute("SELECT 1", ())
    ex.add("UPDATE a SET x = $1", (1,))
    ex.add("DELETE FROM t WHERE k = $1", (2,))
    ex.add("INSERT INTO t VALUES ($1)", (3,))  # sends what waits first
    ex.add("INSERT INTO t VALUES ($1)", (4,))  # inserts of one table wait together
    ex.add("UPDATE t SET x = $1", (5,))  # sends what waits first
    with pytest.raises(ValueError, match="not a write"):
        ex.add("SELECT 2", ())
    ex.commit()
    assert raw.log == [
        ("autocommit", True),
        "pipeline in",
        ("BEGIN", ()),
        ("SELECT 1", ()),
        ("WITH w0 AS (UPDATE a SET x = $1) DELETE FROM t WHERE k = $2", (1, 2)),
        ("WITH w0 AS (INSERT INTO t VALUES ($1)) INSERT INTO t VALUES ($2)", (3, 4)),
        ("UPDATE t SET x = $1", (5,)),
        ("COMMIT", ()),
        ("pipeline out", True),
        ("autocommit", False),
    ]


def test_postgres_without_a_pipeline_begins_implicitly_and_commits_the_connection() -> None:
    raw = FakeRaw()
    ex = PostgresExecutor(raw, raw.raw_cursor, pipeline=False)
    ex.execute("SELECT a", ())
    ex.commit()
    assert raw.log == [("SELECT a", ()), "commit()"]


def test_a_failure_in_the_commit_rolls_back_and_leaves_the_pipeline_and_autocommit() -> None:
    """A queued statement that fails raises when leaving the pipeline syncs: the transaction
    is rolled back and autocommit switched off before the error reaches the caller."""
    raw = FakeRaw("sync")
    ex = PostgresExecutor(raw, raw.raw_cursor, pipeline=True)
    ex.execute("UPDATE a", ())
    with pytest.raises(Broken, match="sync"):
        ex.commit()
    ex.abort(Broken("sync"))  # what the transaction does next: nothing left to undo
    assert raw.log[-4:] == [
        ("COMMIT", ()),
        ("pipeline out", True),
        ("driver", "ROLLBACK"),
        ("autocommit", False),
    ]
    assert _restored(raw)


def test_a_failure_in_the_commit_is_what_raises_when_the_clean_up_fails_too() -> None:
    """The server went away: leaving the pipeline fails, and so do the rollback and
    switching autocommit off; the caller sees the first failure (a driver error it maps to
    ``database_unavailable``), not the clean-up's."""
    raw = FakeRaw("sync", "rollback", "autocommit")
    ex = PostgresExecutor(raw, raw.raw_cursor, pipeline=True)
    ex.execute("UPDATE a", ())
    with pytest.raises(Broken, match="sync"):
        ex.commit()
    assert raw.log[-2:] == [("driver", "ROLLBACK"), ("autocommit", False)]


def test_an_abort_leaves_the_pipeline_with_the_failure_and_rolls_back() -> None:
    raw = FakeRaw("SELECT a")
    ex = PostgresExecutor(raw, raw.raw_cursor, pipeline=True)
    with pytest.raises(Broken) as failed:
        ex.execute("SELECT a", ())
    ex.abort(failed.value)
    assert raw.log[-3:] == [("pipeline out", False), ("driver", "ROLLBACK"), ("autocommit", False)]
    assert _restored(raw)


def test_an_abort_on_a_broken_connection_still_tries_each_step_and_raises_nothing() -> None:
    raw = FakeRaw("SELECT a", "rollback")
    ex = PostgresExecutor(raw, raw.raw_cursor, pipeline=True)
    with pytest.raises(Broken) as failed:
        ex.execute("SELECT a", ())
    ex.abort(failed.value)  # the ROLLBACK fails: autocommit goes off all the same
    assert raw.log[-2:] == [("driver", "ROLLBACK"), ("autocommit", False)]
    assert _restored(raw)


def test_alone_is_the_whole_transaction_when_it_returns_rows() -> None:
    raw = FakeRaw()
    ex = PostgresExecutor(raw, raw.raw_cursor, pipeline=True)
    assert ex.untouched
    raw.cur.rows = [(2, 1, 1)]
    assert ex.alone("WITH cas AS (UPDATE runs) SELECT", (7,)) == [(2, 1, 1)]
    assert ex.ended and _restored(raw)
    assert raw.log == [
        ("autocommit", True),
        ("WITH cas AS (UPDATE runs) SELECT", (7,)),
        ("autocommit", False),
    ]
    ex.commit()  # nothing left to send
    assert len(raw.log) == 3


def test_alone_that_writes_nothing_leaves_the_transaction_to_go_stepwise() -> None:
    raw = FakeRaw()
    ex = PostgresExecutor(raw, raw.raw_cursor, pipeline=True)
    assert ex.alone("WITH cas AS (UPDATE runs) SELECT", ()) is None
    assert not ex.ended and ex.untouched and _restored(raw)


def test_alone_that_fails_switches_autocommit_back_off() -> None:
    raw = FakeRaw("UPDATE")
    ex = PostgresExecutor(raw, raw.raw_cursor, pipeline=True)
    with pytest.raises(Broken):
        ex.alone("UPDATE", ())
    assert raw.log[-1] == ("autocommit", False) and _restored(raw)


def test_alone_on_a_broken_connection_raises_the_statements_error() -> None:
    raw = FakeRaw("UPDATE", "autocommit")
    ex = PostgresExecutor(raw, raw.raw_cursor, pipeline=True)
    with pytest.raises(Broken, match="UPDATE"):
        ex.alone("UPDATE", ())


def test_compound_of_one_statement_is_that_statement() -> None:
    assert compound([("INSERT a", (1,))]) == ("INSERT a", (1,))
