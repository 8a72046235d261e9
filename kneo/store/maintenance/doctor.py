"""``kneo db doctor``: what makes a database slow or unsafe for Kneo, and what to do.

Each check reads the server's own catalogs and statistics (nothing is changed) and returns a
:class:`Finding`: ``ok``, ``warn`` (slow now or soon) or ``fail`` (wrong: Kneo misbehaves or
will), with the command that fixes it. On PostgreSQL: pending migrations, autovacuum (the
server's setting and Kneo tables that turn it off), stale planner statistics (a table that
changed a lot since its last ``ANALYZE``, or was never analyzed, as after a restore: the
planner then picks scans that turn a 14 ms write into 90 ms), missing or invalid indexes
(what Kneo's schema declares against what the database has), and connection headroom
(``max_connections`` against what is open and what one Kneo process may open); the tables'
checks wait for the migrations to be applied. On SQLite: the migrations and the journal
mode.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from kneo.store.migrate import HEAD_REVISION, current_revision, pending_revisions
from kneo.store.tables import metadata, use_postgresql_options

if TYPE_CHECKING:
    from kneo.store.api import Store

#: A table is stale once this many rows changed since its last ANALYZE, plus this share of
#: its rows: twice autovacuum's default analyze threshold (50 + 10 %), so a table autovacuum
#: is about to analyze is not reported, one it never gets to is.
STALE_ROWS = 1000
STALE_SHARE = 0.2
#: below this share of free connections, headroom is a warning
HEADROOM_SHARE = 0.2


@dataclass(frozen=True)
class Finding:
    """One check's verdict: ``status`` is ``ok``, ``warn`` or ``fail``; ``fix`` says what to
    do (empty when ``ok``)."""

    check: str
    status: str
    detail: str
    fix: str = ""


def diagnose(store: Store, per_worker: int = 3) -> list[Finding]:
    """Every check for ``store``'s backend, in a fixed order (read-only); an unreachable
    database is ``database_unavailable``, as for any other store call. ``per_worker``: the
    connections one more worker would open (the headroom is counted in workers)."""
    with store._db_errors(), store.engine.connect() as conn:
        migrations = _migrations(conn)
        if store.backend != "postgresql":
            return [migrations, _journal_mode(conn)]
        schema = [_statistics(conn), _indexes(conn)] if migrations.status == "ok" else []
        return [migrations, *_autovacuum(conn), *schema, _headroom(conn, per_worker)]


def _migrations(conn: sa.Connection) -> Finding:
    current = current_revision(conn)
    if current == HEAD_REVISION:
        return Finding("migrations", "ok", f"at revision {current} (head)")
    pending = [revision for revision, _ in pending_revisions(current)]
    return Finding(
        "migrations",
        "fail",
        f"at revision {current or 'none'}; pending: {', '.join(pending)}",
        "kneo db upgrade (before starting this version's services)",
    )


def _journal_mode(conn: sa.Connection) -> Finding:
    mode = str(conn.exec_driver_sql("PRAGMA journal_mode").scalar())
    if mode.lower() == "wal":
        return Finding("journal mode", "ok", "WAL")
    return Finding(
        "journal mode",
        "warn",
        f"journal_mode is {mode}: readers wait for writers",
        "open the database with Kneo once (it sets WAL), or PRAGMA journal_mode=WAL",
    )


def _kneo_tables() -> list[str]:
    return sorted(metadata.tables)


def _autovacuum(conn: sa.Connection) -> list[Finding]:
    on = str(conn.exec_driver_sql("SHOW autovacuum").scalar()) == "on"
    server = Finding("autovacuum", "ok", "on")
    if not on:
        server = Finding(
            "autovacuum",
            "fail",
            "autovacuum is off: dead rows pile up and statistics go stale as Kneo writes",
            "ALTER SYSTEM SET autovacuum = on; SELECT pg_reload_conf();",
        )
    rows = conn.execute(
        sa.text(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = current_schema() AND c.relname = ANY(:tables)"
            " AND 'autovacuum_enabled=false' = ANY(c.reloptions) ORDER BY c.relname"
        ),
        {"tables": _kneo_tables()},
    )
    off = [str(r[0]) for r in rows]
    if not off:
        return [server]
    table = Finding(
        "autovacuum (tables)",
        "fail",
        f"turned off for {', '.join(off)}",
        "; ".join(f"ALTER TABLE {name} RESET (autovacuum_enabled)" for name in off) + ";",
    )
    return [server, table]


def _statistics(conn: sa.Connection) -> Finding:
    rows = conn.execute(
        sa.text(
            "SELECT s.relname, GREATEST(s.n_live_tup, c.reltuples::bigint, 0),"
            " s.n_mod_since_analyze, COALESCE(s.last_analyze, s.last_autoanalyze) IS NULL"
            " FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid"
            " WHERE s.schemaname = current_schema() AND s.relname = ANY(:tables)"
            " ORDER BY s.relname"
        ),
        {"tables": _kneo_tables()},
    )
    stale = []
    for name, live, changed, never in rows:
        if int(changed) >= STALE_ROWS + STALE_SHARE * int(live):
            why = "never analyzed" if never else "analyzed before most of its rows changed"
            stale.append(f"{name} ({int(changed):,} rows changed, {why})")
    if not stale:
        return Finding("statistics", "ok", "every Kneo table analyzed since it last changed much")
    names = [entry.split(" ", 1)[0] for entry in stale]
    return Finding(
        "statistics",
        "warn",
        f"stale planner statistics (after a restore, every table is): {'; '.join(stale)}",
        f"ANALYZE {', '.join(names)};",
    )


def _indexes(conn: sa.Connection) -> Finding:
    use_postgresql_options()
    present = {
        str(name): bool(valid)
        for name, valid in conn.exec_driver_sql(
            "SELECT c.relname, i.indisvalid FROM pg_index i"
            " JOIN pg_class c ON c.oid = i.indexrelid"
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema()"
        )
    }
    missing: list[sa.Index] = []
    for table in metadata.sorted_tables:
        missing += [ix for ix in table.indexes if str(ix.name) not in present]
    invalid = sorted(name for name, valid in present.items() if not valid)
    if not missing and not invalid:
        return Finding("indexes", "ok", "every index Kneo's schema declares is there and valid")
    detail: list[str] = []
    fixes: list[str] = []
    if missing:
        pg = conn.dialect  # the server's own dialect compiles each index as created
        detail.append(f"missing: {', '.join(str(ix.name) for ix in missing)}")
        fixes += [str(sa.schema.CreateIndex(ix).compile(dialect=pg)) for ix in missing]
    if invalid:
        detail.append(f"invalid (a failed CREATE INDEX CONCURRENTLY): {', '.join(invalid)}")
        fixes += [f"REINDEX INDEX {name}" for name in invalid]
    return Finding("indexes", "fail", "; ".join(detail), ";\n".join(fixes) + ";")


def headroom(max_connections: int, reserved: int, used: int, per_process: int) -> Finding:
    """The connection check from the numbers: what is left for more Kneo workers."""
    available = max_connections - reserved
    free = available - used
    fits = max(0, free // per_process) if per_process > 0 else 0
    detail = (
        f"{used} of {available} connections in use (max_connections {max_connections}, "
        f"{reserved} reserved); a worker opens up to {per_process}: {fits} more fit"
    )
    if free <= 0:
        status = "fail"
    elif free < HEADROOM_SHARE * available or fits < 1:
        status = "warn"
    else:
        return Finding("connections", "ok", detail)
    return Finding(
        "connections",
        status,
        detail,
        "lower KNEO_SERV_DATABASE_POOL_SIZE, put PgBouncer in front (transaction mode, "
        "KNEO_SERV_DATABASE_POOLER=transaction), or raise max_connections "
        "(docs/deployment.md, connection budget)",
    )


def _headroom(conn: sa.Connection, per_process: int) -> Finding:
    max_connections = int(str(conn.exec_driver_sql("SHOW max_connections").scalar()))
    reserved = int(str(conn.exec_driver_sql("SHOW superuser_reserved_connections").scalar()))
    used = int(
        conn.exec_driver_sql(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
        ).scalar_one()
    )
    return headroom(max_connections, reserved, used, per_process)


def as_dict(finding: Finding) -> dict[str, Any]:
    return {
        "check": finding.check,
        "status": finding.status,
        "detail": finding.detail,
        "fix": finding.fix,
    }


__all__ = ["Finding", "as_dict", "diagnose", "headroom"]
