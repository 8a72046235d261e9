"""Migrations: scripts match the tables, upgrade in place, concurrent opens, version guard."""

from __future__ import annotations

import multiprocessing
import re
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from kneo.errors import ConfigError, NotReady
from kneo.store import open_store
from kneo.store import tables as t
from kneo.store.migrate import HEAD_REVISION, VERSION_TABLE, current_revision, script_head, upgrade
from kneo.store.wire.dialects import dialect_for

from .helpers import process_context


def test_head_constant_matches_scripts() -> None:
    """The fast-path head revision is the scripts' head (bump both together)."""
    assert script_head() == HEAD_REVISION


def test_migrated_schema_matches_tables(db_url: str) -> None:
    """Alembic finds no difference between the migrated database and kneo.store.tables."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        diff = compare_metadata(ctx, t.metadata)
    engine.dispose()
    assert diff == []


def _predicates(engine: sa.Engine) -> dict[str, str | None]:
    """Each index's ``WHERE`` (Alembic's comparison does not look at it), normalised."""
    found: dict[str, str | None] = {}
    inspector = sa.inspect(engine)
    for table in t.metadata.sorted_tables:
        if not inspector.has_table(table.name):  # a table of a later revision
            continue
        for index in inspector.get_indexes(table.name):
            options = index.get("dialect_options", {})
            where = options.get("sqlite_where", options.get("postgresql_where"))
            found[str(index["name"])] = None if where is None else _clause(where)
    return found


def _clause(where: object) -> str:
    """A predicate without the parentheses and casts PostgreSQL adds to it."""
    return re.sub(r"::(character varying|\w+)|[()]", "", str(where).lower()).strip()


def test_migrated_partial_indexes_match_tables(db_url: str) -> None:
    """Every index of the tables is partial in the migrated database exactly where the tables
    say, with the same predicate."""
    engine = sa.create_engine(db_url)
    found = _predicates(engine)
    engine.dispose()
    t.use_postgresql_options()  # as a PostgreSQL store does when it opens
    declared = {
        index.name: index.dialect_options[engine.dialect.name].get("where")
        for table in t.metadata.sorted_tables
        for index in table.indexes
    }
    assert declared, "no index declared"
    for name, where in declared.items():
        assert found[str(name)] == (None if where is None else _clause(where)), name


@pytest.mark.parametrize(
    ("revision", "index", "predicate"),
    [
        ("0020", "ix_audit_events_continuation_id_id", "continuation_id is not null"),
        ("0021", "ix_runs_updated_at_run_id", "status <> 'running'"),
    ],
)
def test_partial_index_revisions_and_their_downgrades(
    fresh_url: str, revision: str, index: str, predicate: str
) -> None:
    """0020 leaves the audit events without a continuation out of ``(continuation_id,
    id)``, 0021 the running runs out of ``(updated_at, run_id)``; each downgrade puts the
    whole index back."""
    from alembic import command

    from kneo.store.migrate import _alembic_config

    before = f"{int(revision) - 1:04d}"
    _, dialect, engine = _at_revision(fresh_url, before)
    assert _predicates(engine)[index] is None
    assert upgrade(engine, dialect, target=revision) == revision
    assert _predicates(engine)[index] == predicate
    with dialect.connect_write(engine) as conn, conn.begin(), dialect.migration_lock(conn):
        command.downgrade(_alembic_config(conn), before)
    assert _predicates(engine)[index] is None
    engine.dispose()


def test_sqlite_upgrade_in_place_keeps_runs(tmp_path: Path) -> None:
    """A database created at the first revision upgrades to head with its runs intact."""
    url = sa.make_url(f"sqlite:///{tmp_path / 'old.sqlite'}")
    dialect = dialect_for(url)
    engine = dialect.create_engine(url)
    assert upgrade(engine, dialect, target="0001") == "0001"
    with engine.begin() as conn:
        conn.execute(
            sa.insert(t.runs).values(
                run_id="run_old",
                status="paused",
                target="workflow",
                input_text="kept",
                spec={"v": 1},
                state={"next": 2},
                version=3,
                cancel_requested=False,
                created_at=sa.func.current_timestamp(),
                updated_at=sa.func.current_timestamp(),
                metadata={},
                checkpoint_seq=0,
                trace_seq=0,
            )
        )
        assert not sa.inspect(conn).has_table("bundle_revisions")
    engine.dispose()
    store = open_store(str(url))
    run = store.runs.get_run("run_old")
    assert (run.status, run.input_text, run.state, run.version) == (
        "paused",
        "kept",
        {"next": 2},
        3,
    )
    with store.engine.connect() as conn:
        assert current_revision(conn) == HEAD_REVISION
    with store.transaction() as tx:
        revision = tx.add_revision("b", "dev", digest="d")
        tx.set_metadata("env_policy:dev", {"ok": True})
    assert revision.revision == 1
    store.close()
    reopened = open_store(str(url))
    assert reopened.metadata.get_metadata("env_policy:dev") == {"ok": True}
    reopened.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    """A database migrated by a newer Kneo is not touched by an older one."""
    store = open_store(None, state_dir=tmp_path)
    store.close()
    with sqlite3.connect(tmp_path / "kneo_runs.sqlite") as conn:
        conn.execute(f"UPDATE {VERSION_TABLE} SET version_num = '9999'")
    with pytest.raises(NotReady) as err:
        open_store(None, state_dir=tmp_path)
    assert err.value.code == "schema_too_new"


@pytest.mark.parametrize(
    "url",
    [
        "mysql://x/y",
        "not a url",
        "postgresql+psycopg://u:s3cr3t-pw@db:port/x",
        "postgresql+psycopg://u:s3cr3t-pw@db:99999/x",
    ],
    ids=["mysql", "garbage", "port-not-a-number", "port-out-of-range"],
)
def test_bad_database_url_is_config_error(url: str) -> None:
    """Unsupported or malformed URLs are a config_error naming the variable (never the
    password, never SQLAlchemy's ValueError as an internal error)."""
    with pytest.raises(ConfigError) as err:
        open_store(url)
    assert err.value.details["variable"] == "KNEO_SERV_DATABASE_URL"
    assert "s3cr3t-pw" not in str(err.value)


def _open_and_write(url: str, n: int, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    store = open_store(url)
    with store.transaction() as tx:
        tx.create_run(run_id=f"run_p{n}", target="workflow", input_text="x")
    store.close()
    out.put(n)


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database with no schema at all."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fresh' / 'kneo_runs.sqlite'}"
    new: Callable[[], str] = request.getfixturevalue("pg_empty_database")
    return new()


def test_concurrent_first_open_migrates_once(fresh_url: str) -> None:
    """Three processes opening an empty database at once all succeed on one schema."""
    ctx = process_context()
    out = ctx.Queue()
    procs = [ctx.Process(target=_open_and_write, args=(fresh_url, n, out)) for n in range(3)]
    for p in procs:
        p.start()
    done = sorted(out.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    assert done == [0, 1, 2]
    store = open_store(fresh_url)
    assert store.runs.list_runs().total == 3
    store.close()


def test_first_open_waits_out_a_writer_instead_of_failing(tmp_path: Path) -> None:
    """The WAL switch of a new file retries while another connection holds the write lock.

    SQLite answers that switch "database is locked" at once, without its busy handler, when
    another connection is mid-write: the race three processes opening one new file run into.
    """
    path = tmp_path / "new.sqlite"
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("CREATE TABLE t (x)")
    writer.execute("BEGIN")
    writer.execute("INSERT INTO t VALUES (1)")
    released = threading.Timer(0.3, lambda: writer.execute("COMMIT"))
    released.start()
    try:
        store = open_store(f"sqlite:///{path}")
        with store.transaction() as tx:
            tx.create_run(run_id="run_after_writer", target="workflow", input_text="x")
        assert store.runs.list_runs().total == 1
        store.close()
    finally:
        released.join()
        writer.close()
    with sqlite3.connect(path) as check:
        assert check.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_open_without_pending_migration_skips_alembic(tmp_path: Path) -> None:
    """Opening an up-to-date store does not import Alembic (short CLI processes stay fast)."""
    open_store(None, state_dir=tmp_path).close()
    code = (
        "import sys, pathlib; from kneo.store import open_store; "
        f"open_store(None, state_dir=pathlib.Path({str(tmp_path)!r})).close(); "
        "print('alembic' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_store_package_respects_layering() -> None:
    """kneo.store imports no higher layer and no web or CLI framework."""
    code = (
        "import sys, kneo.store; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('fastapi', 'typer', 'httpx') "
        "or m.startswith(('kneo.engine', 'kneo.platform', 'kneo.service', 'kneo.controller', "
        "'kneo.cli'))]; print(bad)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_specs_backfill_from_0002(tmp_path: Path) -> None:
    """0003 moves existing runs' specs into ``specs`` (once per content) and runs still read
    their spec; a row left inline is read as before."""
    url = sa.make_url(f"sqlite:///{tmp_path / 'old.sqlite'}")
    dialect = dialect_for(url)
    engine = dialect.create_engine(url)
    assert upgrade(engine, dialect, target="0002") == "0002"
    runs = sa.table("runs", *(sa.column(c.name) for c in t.runs.c if c.name != "spec_ref"))
    with engine.begin() as conn:
        for run_id, spec in (("run_a", '{"v":1}'), ("run_b", '{"v":1}'), ("run_c", '{"v":2}')):
            conn.execute(
                sa.insert(runs).values(
                    run_id=run_id,
                    status="paused",
                    target="workflow",
                    input_text="kept",
                    spec=spec,
                    state="{}",
                    version=1,
                    cancel_requested=False,
                    created_at="2026-01-01 00:00:00",
                    updated_at="2026-01-01 00:00:00",
                    metadata="{}",
                    checkpoint_seq=0,
                    trace_seq=0,
                )
            )
    engine.dispose()
    store = open_store(str(url))
    assert [store.runs.get_run(r).spec for r in ("run_a", "run_b", "run_c")] == [
        {"v": 1},
        {"v": 1},
        {"v": 2},
    ]
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM specs")).scalar() == 2
        assert conn.execute(sa.text("SELECT count(*) FROM runs WHERE spec = '{}'")).scalar() == 3
        conn.execute(
            sa.text("UPDATE runs SET spec = :spec, spec_ref = NULL WHERE run_id = 'run_c'"),
            {"spec": '{"v":3}'},
        )
        conn.commit()
    assert store.runs.get_run("run_c").spec == {"v": 3}
    assert {r.run_id: r.spec for r in store.runs.list_runs().items}["run_a"] == {"v": 1}
    store.close()


_KEPT_TABLES = ("runs", "checkpoints", "trace_events", "continuations", "continuation_requests")


def _columns(engine: sa.Engine) -> dict[str, set[str]]:
    inspector = sa.inspect(engine)
    return {name: {c["name"] for c in inspector.get_columns(name)} for name in _KEPT_TABLES}


def _all_rows(
    engine: sa.Engine, columns: dict[str, set[str]]
) -> dict[str, list[tuple[object, ...]]]:
    """Every row of the kept tables in ``columns`` (what the database had before a later
    migration added new ones)."""
    with engine.connect() as conn:
        found = {}
        for name in _KEPT_TABLES:
            table = t.metadata.tables[name]
            query = sa.select(*[c for c in table.c if c.name in columns[name]])
            query = query.order_by(*table.primary_key.columns)
            found[name] = [tuple(row) for row in conn.execute(query)]
        return found


def _at_revision(fresh_url: str, revision: str) -> tuple[sa.URL, Any, sa.Engine]:
    """A new database (either backend) migrated up to ``revision``."""
    url = sa.make_url(fresh_url)
    if url.database and url.get_backend_name() == "sqlite":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    dialect = dialect_for(url)
    engine = dialect.create_engine(url)
    assert upgrade(engine, dialect, target=revision) == revision
    return url, dialect, engine


def test_0004_rebuilds_tables_with_rows_intact(fresh_url: str) -> None:
    """Rows written at 0003 read back identically after 0004 (which rebuilds three tables
    WITHOUT ROWID on SQLite and drops two indexes on both backends)."""
    from kneo.setting_groups import CheckpointLimits
    from kneo.store.runs import payloads

    url, _, engine = _at_revision(fresh_url, "0003")
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    big = payloads.encode({"text": "abc" * 30_000}, CheckpointLimits())
    with engine.begin() as conn:
        conn.execute(
            sa.insert(t.runs).values(
                run_id="run_old",
                status="paused",
                target="workflow",
                input_text="kept",
                spec={},
                state={"next": 2},
                version=3,
                cancel_requested=False,
                created_at=now,
                updated_at=now,
                metadata={},
                checkpoint_seq=2,
                trace_seq=2,
            )
        )
        for sequence, encoded in ((1, payloads.encode({"a": None}, CheckpointLimits())), (2, big)):
            conn.execute(
                sa.insert(t.checkpoints).values(
                    run_id="run_old",
                    sequence=sequence,
                    type="step",
                    step_id="s",
                    status=None,
                    encoding=encoded.encoding,
                    payload=encoded.data,
                    size_bytes=encoded.size_bytes,
                    truncated=False,
                    metadata={"m": sequence},
                    created_at=now,
                )
            )
        conn.execute(
            sa.insert(t.trace_events),
            [
                {
                    "run_id": "run_old",
                    "sequence": n,
                    "event_type": f"e{n}",
                    "step_id": None,
                    "payload": {"n": n},
                    "created_at": now,
                }
                for n in (1, 2)
            ],
        )
        conn.execute(
            sa.insert(t.continuations).values(
                continuation_id="cont_old",
                run_id="run_old",
                status="pending",
                requests=[{"request_id": "req_1"}],
                context={},
                version=1,
                created_at=now,
                updated_at=now,
            )
        )
        conn.execute(
            sa.insert(t.continuation_requests).values(
                continuation_id="cont_old",
                request_id="req_1",
                kind="approval",
                assignee="ann",
                status="pending",
            )
        )
    columns = _columns(engine)
    before = _all_rows(engine, columns)
    engine.dispose()
    store = open_store(str(url))
    assert _all_rows(store.engine, columns) == before
    assert [c.payload for c in store.runs.list_checkpoints("run_old").items] == [
        {"a": None},
        {"text": "abc" * 30_000},
    ]
    old = store.tasks.get_continuation("cont_old")
    assert [r["request_id"] for r in old.requests] == ["req_1"]
    assert [e.payload for e in store.runs.list_trace("run_old").items] == [{"n": 1}, {"n": 2}]
    inspector = sa.inspect(store.engine)
    assert "ix_checkpoints_created_at" not in {
        i["name"] for i in inspector.get_indexes("checkpoints")
    }
    assert "ix_runs_updated_at" not in {i["name"] for i in inspector.get_indexes("runs")}
    if url.get_backend_name() == "sqlite":
        with store.engine.connect() as conn:
            names = set(conn.execute(sa.text("SELECT name FROM sqlite_master")).scalars())
            for table in ("checkpoints", "trace_events", "continuation_requests"):
                ddl = conn.execute(
                    sa.text("SELECT sql FROM sqlite_master WHERE name = :n"), {"n": table}
                ).scalar_one()
                assert "WITHOUT ROWID" in ddl
                assert not any(n.startswith(f"sqlite_autoindex_{table}") for n in names)
    store.close()


def test_0006_rebuilds_locks_without_rowid_and_back(tmp_path: Path) -> None:
    """SQLite: the ``locks`` rows survive the rebuild both ways; at 0006 the table has no
    rowid, so no ``sqlite_autoindex`` copy of its key."""
    from alembic import command

    from kneo.store.migrate import _alembic_config

    url = sa.make_url(f"sqlite:///{tmp_path / 'locks.sqlite'}")
    dialect = dialect_for(url)
    engine = dialect.create_engine(url)
    assert upgrade(engine, dialect, target="0005") == "0005"
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    rows = [
        {"name": f"run:run_{n}", "owner": "host:1:ab", "acquired_at": now, "expires_at": now}
        for n in range(3)
    ]
    with engine.begin() as conn:
        conn.execute(sa.insert(t.locks), rows)

    def state() -> tuple[list[tuple[object, ...]], str, list[str]]:
        with engine.connect() as conn:
            found = conn.execute(sa.select(t.locks).order_by(t.locks.c.name)).all()
            sql = conn.exec_driver_sql(
                "SELECT sql FROM sqlite_master WHERE name = 'locks'"
            ).scalar_one()
            indexes = [
                r[0]
                for r in conn.exec_driver_sql(
                    "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'locks'"
                )
            ]
        return [tuple(r) for r in found], sql, indexes

    before, sql, indexes = state()
    assert "WITHOUT ROWID" not in sql and indexes == ["sqlite_autoindex_locks_1"]
    assert upgrade(engine, dialect, target="0006") == "0006"
    after, sql, indexes = state()
    assert after == before and "WITHOUT ROWID" in sql and indexes == []
    with dialect.connect_write(engine) as conn, conn.begin(), dialect.migration_lock(conn):
        command.downgrade(_alembic_config(conn), "0005")
    back, sql, indexes = state()
    assert back == before and "WITHOUT ROWID" not in sql
    engine.dispose()


def test_0007_moves_run_locks_onto_run_rows_and_back(fresh_url: str) -> None:
    """Held ``run:<id>`` locks become the run rows' leases (other locks stay where they
    are); the downgrade puts them back as locks."""
    from alembic import command

    from kneo.store.migrate import _alembic_config

    _, dialect, engine = _at_revision(fresh_url, "0006")
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    run = {
        "status": "running",
        "target": "workflow",
        "input_text": "x",
        "spec": {},
        "state": {},
        "version": 3,
        "cancel_requested": False,
        "created_at": now,
        "updated_at": now,
        "metadata": {},
        "checkpoint_seq": 0,
        "trace_seq": 0,
    }
    locks = [
        {"name": "run:run_held", "owner": "host:1:ab", "acquired_at": now, "expires_at": now},
        {"name": "resume:cont_1", "owner": "host:2:cd", "acquired_at": now, "expires_at": now},
    ]
    with engine.begin() as conn:
        conn.execute(
            sa.insert(t.runs), [{**run, "run_id": "run_held"}, {**run, "run_id": "run_free"}]
        )
        conn.execute(sa.insert(t.locks), locks)

    def lock_rows() -> list[tuple[object, ...]]:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.select(t.locks).order_by(t.locks.c.name))]

    before = lock_rows()
    assert upgrade(engine, dialect) == HEAD_REVISION
    with engine.connect() as conn:
        leases = conn.execute(
            sa.select(t.runs.c.run_id, t.runs.c.lease_owner, t.runs.c.lease_expires_at).order_by(
                t.runs.c.run_id
            )
        ).all()
    assert [tuple(r) for r in leases] == [("run_free", None, None), ("run_held", "host:1:ab", now)]
    assert [r[0] for r in lock_rows()] == ["resume:cont_1"]
    with dialect.connect_write(engine) as conn, conn.begin(), dialect.migration_lock(conn):
        command.downgrade(_alembic_config(conn), "0006")
    assert lock_rows() == before
    columns = {c["name"] for c in sa.inspect(engine).get_columns("runs")}
    assert "lease_owner" not in columns and "run_id" in columns
    engine.dispose()


def test_0008_labels_existing_continuations(fresh_url: str) -> None:
    """Pending tasks written before 0008 get their run's workflow name and environment, and
    a promotion task its bundle and environment; the downgrade drops both columns."""
    from alembic import command

    from kneo.store.migrate import _alembic_config

    _, dialect, engine = _at_revision(fresh_url, "0007")
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    run = {
        "run_id": "run_1",
        "status": "paused",
        "target": "workflow",
        "workflow_name": "billing",
        "environment": "prod",
        "input_text": "x",
        "spec": {},
        "state": {},
        "version": 1,
        "cancel_requested": False,
        "created_at": now,
        "updated_at": now,
        "metadata": {},
        "checkpoint_seq": 0,
        "trace_seq": 0,
    }
    cont = {"status": "pending", "requests": [], "version": 1, "created_at": now, "updated_at": now}
    with engine.begin() as conn:
        conn.execute(sa.insert(t.runs), [run])
        conn.execute(
            sa.insert(t.continuations),
            [
                {
                    **cont,
                    "continuation_id": "cont_run",
                    "run_id": "run_1",
                    "workflow_kind": "sequential",
                    "context": {},
                },
                {
                    **cont,
                    "continuation_id": "cont_promo",
                    "run_id": None,
                    "workflow_kind": "promotion",
                    "context": {"bundle": "mailer", "environment": "staging"},
                },
                {
                    **cont,
                    "continuation_id": "cont_done",
                    "run_id": "run_1",
                    "workflow_kind": "sequential",
                    "context": {},
                    "status": "resolved",
                },
            ],
        )
        conn.execute(
            sa.insert(t.continuation_requests),
            [
                {"continuation_id": c, "request_id": f"req_{c}", "status": "pending"}
                for c in ("cont_run", "cont_done")
            ],
        )
    assert upgrade(engine, dialect) == HEAD_REVISION
    r = t.continuation_requests.c
    with engine.connect() as conn:
        statuses = dict(conn.execute(sa.select(r.continuation_id, r.status)).all())
    # a request row is pending only while its continuation is
    assert statuses == {"cont_run": "pending", "cont_done": "resolved"}
    c = t.continuations.c
    with engine.connect() as conn:
        labels = conn.execute(
            sa.select(c.continuation_id, c.workflow_name, c.environment).order_by(c.continuation_id)
        ).all()
    assert [tuple(row) for row in labels] == [
        ("cont_done", "billing", "prod"),
        ("cont_promo", "mailer", "staging"),
        ("cont_run", "billing", "prod"),
    ]
    with dialect.connect_write(engine) as conn, conn.begin(), dialect.migration_lock(conn):
        command.downgrade(_alembic_config(conn), "0007")
    columns = {col["name"] for col in sa.inspect(engine).get_columns("continuations")}
    assert "environment" not in columns and "workflow_name" not in columns
    engine.dispose()


def test_0004_downgrade_turns_patches_into_the_keyframes_they_stand_for(fresh_url: str) -> None:
    """A Kneo from before 0004 reads keyframes only: going down to 0003 stores every patch
    row as its folded payload (a broken chain as the preview readers show), and going up
    again reads the same payloads. On the way down no child row of a run is lost (SQLite
    used to rebuild ``runs`` to drop a column, and the old table's drop cascaded)."""
    from alembic import command

    from kneo.engine.journal import Boundary
    from kneo.platform.journal import StoreJournal
    from kneo.store.migrate import _alembic_config
    from kneo.store.runs import chains, payloads

    url, dialect, engine = _at_revision(fresh_url, HEAD_REVISION)
    engine.dispose()
    store = open_store(str(url))
    run_ids = []
    for _ in range(2):
        with store.transaction() as tx:
            run = tx.create_run(input_text="in", workflow_name="w", target="workflow")
            run = tx.update_run(run.run_id, status="running")
        journal = StoreJournal(store, run.run_id, run.version)
        for n in range(1, 5):
            state = {"units": {f"u{i}": {"output": "x" * 40} for i in range(n)}}
            journal.commit(Boundary(kind="step_completed", state=state, step_id=f"u{n - 1}"))
        run_ids.append(run.run_id)
    with store.transaction() as tx:
        tx.add_trace_events(run_ids[0], [{"event_type": "kept"}])
    with store.engine.begin() as conn:  # break the second run's chain: its keyframe is gone
        conn.execute(
            sa.delete(t.checkpoints).where(
                t.checkpoints.c.run_id == run_ids[1], t.checkpoints.c.sequence == 1
            )
        )
    before = {r: [c.payload for c in store.runs.list_checkpoints(r).items] for r in run_ids}
    with store.engine.connect() as conn:
        encodings = conn.execute(sa.select(t.checkpoints.c.encoding)).scalars().all()
    assert sum(payloads.is_patch(e) for e in encodings) >= 4  # the chains to fold
    store.close()

    engine = dialect.create_engine(url)
    with dialect.connect_write(engine) as conn, conn.begin(), dialect.migration_lock(conn):
        command.downgrade(_alembic_config(conn), "0003")
    with engine.connect() as conn:
        stored = {
            r: conn.execute(
                sa.text(
                    "SELECT encoding, payload, truncated FROM checkpoints WHERE run_id = :r "
                    "ORDER BY sequence"
                ),
                {"r": r},
            ).all()
            for r in run_ids
        }
        # the downgrades that drop run columns (0007, 0003) keep every child row
        kept = conn.execute(sa.text("SELECT count(*) FROM trace_events")).scalar_one()
    assert kept == 1
    assert all(e in payloads.KEYFRAME_ENCODINGS for rows in stored.values() for e, _, _ in rows)
    assert [payloads.decode(e, bytes(p)) for e, p, _ in stored[run_ids[0]]] == before[run_ids[0]]
    assert [payloads.decode(e, bytes(p)) for e, p, _ in stored[run_ids[1]]] == [
        chains.UNAVAILABLE
    ] * 3
    assert all(bool(truncated) for _, _, truncated in stored[run_ids[1]])
    assert upgrade(engine, dialect) == HEAD_REVISION
    engine.dispose()
    store = open_store(str(url))
    assert [c.payload for c in store.runs.list_checkpoints(run_ids[0]).items] == before[run_ids[0]]
    store.close()


def test_upgrade_reports_each_script_as_it_runs(tmp_path: Path) -> None:
    """``kneo db upgrade`` shows progress from this callback: every pending script, in order."""
    from kneo.store.migrate import pending_revisions

    url = sa.make_url(f"sqlite:///{tmp_path / 'progress.sqlite'}")
    dialect = dialect_for(url)
    engine = dialect.create_engine(url)
    assert upgrade(engine, dialect, target="0030") == "0030"
    engine.dispose()
    store = open_store(str(url), migrate=False)
    pending = pending_revisions("0030")
    seen: list[str] = []
    assert store.upgrade_schema(progress=seen.append) == HEAD_REVISION
    store.close()
    assert seen == [revision for revision, _ in pending] and seen[-1] == HEAD_REVISION
    assert all(doc and "\n" not in doc for _, doc in pending)
    assert pending_revisions(HEAD_REVISION) == []
