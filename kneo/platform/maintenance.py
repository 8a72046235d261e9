"""Retention across everything the platform owns: database rows and files on disk.

The store prunes its rows (runs in a terminal status, checkpoints of such runs, finished queue
records, settled continuations; audit events are never pruned). Artifacts and logs are files
under the project's ``paths.artifacts_dir`` and ``paths.logs_dir``; this module prunes those
by modification time. Windows come from the project config's ``retention:`` block with
``KNEO_SERV_RETENTION_*`` winning per field, unless a policy is passed explicitly.

Call :func:`prune_retention` (or ``PlatformManager.prune_retention`` / ``kneo maintenance
prune``) from cron or a timer. Finished queue records alone are pruned without one: every
service and worker process deletes them hourly (:meth:`kneo.platform.sweeper.Sweeper.prune_queue`),
kept :data:`QUEUE_DAYS_DEFAULT` days unless a window is set.
"""

from __future__ import annotations

import contextlib
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from kneo.errors import ConfigError
from kneo.setting_groups import RetentionDays
from kneo.settings import Settings

if TYPE_CHECKING:
    from kneo.spec.project import ProjectContext
    from kneo.store.api import Store

#: SQLite files a misconfigured artifacts/logs path must never lose.
_DATABASE_SUFFIXES = (".sqlite", ".sqlite-wal", ".sqlite-shm", ".sqlite-journal", ".db")


#: Finished queue records (and sent or dead notifications) are kept this many days unless a
#: window is set: a busy queue otherwise grows forever, and every claim walks its index.
QUEUE_DAYS_DEFAULT = 7


def retention_policy(settings: Settings, project: ProjectContext | None = None) -> RetentionDays:
    """The effective windows: the environment wins per field over the project config; the
    queue's is :data:`QUEUE_DAYS_DEFAULT` when neither sets it."""
    config = getattr(getattr(project, "config", None), "retention", None)
    policy = settings.retention
    if config is not None:
        policy = policy.overlay(RetentionDays(**config.model_dump()))
    return policy.overlay(RetentionDays(queue_days=QUEUE_DAYS_DEFAULT))


def file_roots(project: ProjectContext | None) -> dict[str, Path | None]:
    """``{"artifacts": dir, "logs": dir}`` from the project's paths (``None`` without one)."""
    if project is None:
        return {"artifacts": None, "logs": None}
    paths = project.config.paths
    return {
        "artifacts": Path(project.resolve_path(paths.artifacts_dir)),
        "logs": Path(project.resolve_path(paths.logs_dir)),
    }


def prune_files(
    root: Path | None, cutoff: datetime, *, dry_run: bool = False, protected: tuple[Path, ...] = ()
) -> int:
    """Delete regular files under ``root`` last modified before ``cutoff``; returns the count.

    Symlinks are never followed (a link is removed as a file, its target is untouched), empty
    sub-directories left behind are removed, ``root`` itself is kept. A root that is, or
    contains, one of ``protected`` (the project root, the state directory) is refused:
    pruning it would reach far more than artifacts or logs.
    """
    if root is None or not root.is_dir():
        return 0
    resolved = root.resolve()
    for guard in protected:
        guard = guard.resolve()
        if resolved == guard or guard.is_relative_to(resolved):
            raise ConfigError(
                f"refusing to prune {resolved}: it contains {guard}; point "
                "paths.artifacts_dir and paths.logs_dir at their own directories"
            )
    limit = cutoff.timestamp()
    count = 0
    for dirpath, dirnames, filenames in os.walk(resolved, topdown=False, followlinks=False):
        directory = Path(dirpath)
        for name in filenames:
            path = directory / name
            if name.endswith(_DATABASE_SUFFIXES):
                continue
            try:
                if path.lstat().st_mtime >= limit:
                    continue
                if not dry_run:
                    path.unlink()
            except FileNotFoundError:  # removed concurrently
                continue
            count += 1
        if not dry_run:  # children only: the root itself stays
            for name in dirnames:
                sub = directory / name
                if not sub.is_symlink():
                    with contextlib.suppress(OSError):  # only an empty directory goes
                        sub.rmdir()
    return count


def prune_retention(
    store: Store,
    *,
    settings: Settings,
    project: ProjectContext | None = None,
    policy: RetentionDays | None = None,
    now: datetime | None = None,
    dry_run: bool = False,
) -> dict[str, int]:
    """Prune rows and files older than each window; returns counts per category.

    Categories: ``runs``, ``checkpoints``, ``queue``, ``continuations`` (database, one
    transaction; ``dry_run`` rolls it back so the counts are exact), ``artifacts`` and
    ``logs`` (files). A window of ``None`` leaves its category alone. ``now`` defaults to
    the store's clock, so tests inject time through the clock or this argument.
    """
    windows = policy if policy is not None else retention_policy(settings, project)
    moment = now or store.maintenance.clock.now()
    counts: dict[str, int] = dict(
        store.maintenance.prune_retention(windows, moment, dry_run=dry_run)
    )
    roots = file_roots(project)
    protected: tuple[Path, ...] = ()
    if project is not None:
        protected = (Path(project.root), Path(project.resolve_path(project.config.paths.state_dir)))
    for category, days in (("artifacts", windows.artifacts_days), ("logs", windows.logs_days)):
        counts[category] = (
            0
            if days is None
            else prune_files(
                roots[category], moment - timedelta(days=days), dry_run=dry_run, protected=protected
            )
        )
    return counts


__all__ = ["QUEUE_DAYS_DEFAULT", "file_roots", "prune_files", "prune_retention", "retention_policy"]
