"""Operator jobs on the database: retention pruning, SQLite online backup and restore.

Retention never touches work in flight: only runs in a terminal status, checkpoints of such
runs, finished queue records and continuations that no longer wait for anyone are deleted.
Artifacts and logs are files the platform owns; their counts are reported as 0 here and
filled in by the platform. Audit events are kept: they are the record of what happened.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, closing, nullcontext
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from kneo.errors import ErrorCode, InvalidRequest, NotFound
from kneo.setting_groups import RetentionDays
from kneo.store import tables as t
from kneo.store.base import Facet
from kneo.store.maintenance.gauges import GaugeReadsMixin
from kneo.store.migrate import VERSION_TABLE
from kneo.store.records import TERMINAL_RUN_STATUSES
from kneo.store.runs import payloads

RETENTION_CATEGORIES: tuple[str, ...] = (
    "runs",
    "checkpoints",
    "queue",
    "continuations",
    "artifacts",
    "logs",
)


class _DryRun(Exception):
    """Raised inside the prune transaction to roll it back after counting."""


def _cutoff(now: datetime, days: int | None) -> datetime | None:
    return None if days is None else now - timedelta(days=days)


#: a transaction's statements: the prune's own, one after the other, or the dry run's one
Batch = Callable[[], AbstractContextManager[Connection]]
#: rows per transaction: on PostgreSQL each deleted run and continuation updates its list
#: counter (0037), and every update of a row walks the versions its transaction left before
#: it, so one transaction for a whole prune costs the square of its rows
CHUNK = 500


def _prune(batch: Batch, retention: RetentionDays, now: datetime) -> dict[str, int]:
    counts = dict.fromkeys(RETENTION_CATEGORIES, 0)
    r, c, q, k = t.runs.c, t.checkpoints.c, t.queue.c, t.continuations.c
    terminal = list(TERMINAL_RUN_STATUSES)

    if (cut := _cutoff(now, retention.checkpoints_days)) is not None:
        finished_runs = sa.select(r.run_id).where(r.status.in_(terminal))
        with batch() as conn:
            counts["checkpoints"] = conn.execute(
                sa.delete(t.checkpoints).where(
                    c.run_id.in_(finished_runs), c.created_at < cut, ~_needed_by_kept(cut)
                )
            ).rowcount

    if (cut := _cutoff(now, retention.queue_days)) is not None:
        with batch() as conn:
            counts["queue"] = conn.execute(
                sa.delete(t.queue).where(q.status.in_(["completed", "failed"]), q.updated_at < cut)
            ).rowcount
            counts["queue"] += _prune_notifications(conn, cut)

    if (cut := _cutoff(now, retention.continuations_days)) is not None:
        # Settled continuations, or pending ones whose run already ended (nothing to resume).
        ended = sa.select(r.run_id).where(r.status.in_(terminal))
        old = sa.and_(k.updated_at < cut, sa.or_(k.status != "pending", k.run_id.in_(ended)))
        for chunk in _chunked(batch, sa.select(k.continuation_id).where(old)):
            with batch() as conn:  # each chunk judged again: a task may have opened since
                ids = _ids(
                    conn, sa.select(k.continuation_id).where(k.continuation_id.in_(chunk), old)
                )
                counts["continuations"] += _delete_continuations(conn, ids)

    if (cut := _cutoff(now, retention.runs_days)) is not None:
        stamp = sa.func.coalesce(r.finished_at, r.updated_at)
        old_run = sa.and_(r.status.in_(terminal), stamp < cut)
        for chunk in _chunked(batch, sa.select(r.run_id).where(old_run)):
            with batch() as conn:  # judged again: a failed run may have been continued since
                ids = _ids(conn, sa.select(r.run_id).where(r.run_id.in_(chunk), old_run))
                counts["runs"] += _delete_runs(conn, ids)
    return counts


def _delete_runs(conn: Connection, ids: list[str]) -> int:
    """Runs ``ids`` with everything kept for them."""
    r, c, q, k = t.runs.c, t.checkpoints.c, t.queue.c, t.continuations.c
    _delete_continuations(conn, _ids(conn, sa.select(k.continuation_id).where(k.run_id.in_(ids))))
    conn.execute(sa.delete(t.trace_events).where(t.trace_events.c.run_id.in_(ids)))
    conn.execute(sa.delete(t.run_terms).where(t.run_terms.c.run_id.in_(ids)))
    conn.execute(sa.delete(t.checkpoints).where(c.run_id.in_(ids)))
    conn.execute(sa.delete(t.queue).where(q.run_id.in_(ids)))
    conn.execute(sa.delete(t.a2a_push_configs).where(t.a2a_push_configs.c.run_id.in_(ids)))
    deleted: int = conn.execute(sa.delete(t.runs).where(r.run_id.in_(ids))).rowcount
    return deleted


def _ids(conn: Connection, query: sa.Select[Any]) -> list[str]:
    return [row[0] for row in conn.execute(query)]


def _chunked(batch: Batch, query: sa.Select[Any]) -> Iterator[list[str]]:
    with batch() as conn:
        ids = _ids(conn, query)
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


def _prune_notifications(conn: Connection, cut: datetime) -> int:
    """The other delivery queue: notifications ``sent`` or ``dead`` before ``cut``, then
    the events every receiver is done with (routed, and no delivery left to make)."""
    n, e = t.notifications.c, t.notification_events.c
    deleted: int = conn.execute(
        sa.delete(t.notifications).where(n.status.in_(["sent", "dead"]), n.updated_at < cut)
    ).rowcount
    open_delivery = sa.select(n.id).where(n.event_id == e.event_id)
    conn.execute(
        sa.delete(t.notification_events).where(
            e.routed.is_(True), e.created_at < cut, ~sa.exists(open_delivery)
        )
    )
    return deleted


def _needed_by_kept(cut: datetime) -> Any:
    """Whether a checkpoint row is part of the chain of one that is kept (created at or after
    ``cut``): a kept patch needs every row back to its keyframe, so no keyframe may lie
    between the row and the kept one."""
    c = t.checkpoints.c
    kept, key = t.checkpoints.alias("kept"), t.checkpoints.alias("key")
    keyframe_between = (
        sa.exists()
        .where(
            key.c.run_id == c.run_id,
            key.c.sequence > c.sequence,
            key.c.sequence <= kept.c.sequence,
            key.c.encoding.in_(payloads.KEYFRAME_ENCODINGS),
        )
        .correlate_except(key)
    )
    return (
        sa.exists()
        .where(
            kept.c.run_id == c.run_id,
            kept.c.sequence > c.sequence,
            kept.c.created_at >= cut,
            ~keyframe_between,
        )
        .correlate_except(kept)
    )


def _delete_continuations(conn: Connection, ids: list[str]) -> int:
    if not ids:
        return 0
    for index in (t.continuation_requests, t.continuation_terms):
        conn.execute(sa.delete(index).where(index.c.continuation_id.in_(ids)))
    deleted: int = conn.execute(
        sa.delete(t.continuations).where(t.continuations.c.continuation_id.in_(ids))
    ).rowcount
    return deleted


class MaintenanceFacet(GaugeReadsMixin, Facet):
    """Retention, backup and gauges (``store.maintenance``)."""

    def prune_retention(
        self, retention: RetentionDays, now: datetime | None = None, *, dry_run: bool = False
    ) -> dict[str, int]:
        """Delete what is older than each window; returns counts per category.

        ``dry_run`` performs the same deletes and rolls them back, so the counts are exact.
        A window of ``None`` leaves that category alone.
        """
        moment = now or self.clock.now()
        why = "retention prunes every project's old records"
        if not dry_run:  # a transaction per chunk: no writer waits out a whole prune
            return _prune(lambda: self._write(everywhere=why), retention, moment)
        counts: dict[str, int] = {}
        try:
            with self._write(everywhere=why) as conn:
                counts = _prune(lambda: nullcontext(conn), retention, moment)
                raise _DryRun
        except _DryRun:
            pass
        return counts

    def _sqlite_path(self) -> Path:
        """The database file of a SQLite store (``unsupported_backend`` on PostgreSQL)."""
        database = self.engine.url.database
        if self.dialect.name != "sqlite" or not database or database == ":memory:":
            raise InvalidRequest(
                "online backup is for file-backed SQLite stores; back up PostgreSQL with "
                "pg_dump (see docs/persistence.md)",
                code=ErrorCode.unsupported_backend,
            )
        return Path(database)

    def backup_sqlite(self, dest: str | Path) -> Path:
        """Copy the live database to ``dest`` with SQLite's online backup API."""
        return backup_sqlite_database(self._sqlite_path(), dest)


def backup_sqlite_database(src: str | Path, dest: str | Path) -> Path:
    """Online, consistent copy of ``src`` to ``dest`` (written atomically: temp file + rename).

    Writers may keep working during the copy; the backup is a snapshot of one moment.
    """
    source = Path(src)
    if not source.is_file():
        raise NotFound(f"database file {str(source)!r} does not exist", resource="database")
    target = Path(dest)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(fd)
    try:
        with (
            closing(sqlite3.connect(source)) as src_conn,
            closing(sqlite3.connect(tmp_name)) as dst,
        ):
            src_conn.backup(dst)
            # A self-contained file: no WAL sidecar needed to read the copy.
            dst.execute("PRAGMA journal_mode = DELETE")
        os.replace(tmp_name, target)
    except sqlite3.Error as exc:
        raise InvalidRequest(f"backup failed: {exc}", code=ErrorCode.backup_failed) from exc
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return target


def restore_sqlite_database(src: str | Path, dest: str | Path) -> Path:
    """Restore a backup ``src`` into ``dest`` (created or overwritten) after checking it.

    The backup must be an intact Kneo database (``quick_check`` passes and it has a
    ``schema_migrations`` table); an older schema is upgraded when the store next opens.
    Stop processes using ``dest`` before restoring into it.
    """
    source = Path(src)
    if not source.is_file():
        raise NotFound(f"backup file {str(source)!r} does not exist", resource="backup")
    _check_backup(source)
    target = Path(dest)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with (
            closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True)) as src_conn,
            closing(sqlite3.connect(target)) as dst,
        ):
            dst.execute("PRAGMA busy_timeout = 30000")
            src_conn.backup(dst)
    except sqlite3.Error as exc:
        raise InvalidRequest(f"restore failed: {exc}", code=ErrorCode.restore_failed) from exc
    return target


def _check_backup(path: Path) -> None:
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            ok = conn.execute("PRAGMA quick_check").fetchone()
            has_versions = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (VERSION_TABLE,)
            ).fetchone()
    except sqlite3.Error as exc:
        raise InvalidRequest(
            f"{path} is not a SQLite database: {exc}", code=ErrorCode.invalid_backup
        ) from exc
    if not ok or ok[0] != "ok":
        raise InvalidRequest(
            f"{path} failed its integrity check: {ok}", code=ErrorCode.invalid_backup
        )
    if not has_versions:
        raise InvalidRequest(
            f"{path} is not a Kneo database (no {VERSION_TABLE} table)",
            code=ErrorCode.invalid_backup,
        )
