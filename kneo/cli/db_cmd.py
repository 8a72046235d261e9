"""``kneo db`` (schema migrations) and ``kneo maintenance`` (retention, backup, restore).

The database is ``--database-url``, else ``KNEO_SERV_DATABASE_URL``, else SQLite at
``<project>/.kneo/kneo_runs.sqlite`` (the project config's ``paths.state_dir``). Thin
commands over :mod:`kneo.store`; every one has ``--json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kneo.cli.output import Output, console, options
from kneo.errors import ErrorCode, InvalidRequest, KneoError
from kneo.platform.maintenance import prune_retention, retention_policy
from kneo.setting_groups import RetentionDays
from kneo.settings import ROLE_POOL_SIZES, Settings
from kneo.spec.project import ProjectContext
from kneo.store import open_store, resolve_url, restore_sqlite_database
from kneo.store.maintenance.doctor import as_dict, diagnose
from kneo.store.migrate import HEAD_REVISION, pending_revisions

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

db_app = typer.Typer(no_args_is_help=True)
maintenance_app = typer.Typer(no_args_is_help=True)

UrlOpt = Annotated[
    str | None,
    typer.Option("--database-url", help="Database URL (default: KNEO_SERV_DATABASE_URL or SQLite)"),
]


def _settings() -> Settings:
    return Settings.from_env()


def _project(settings: Settings) -> Any:
    """The project around the working directory, or ``None`` outside one / if unreadable."""
    try:
        return ProjectContext.discover(settings=settings)
    except KneoError:
        raise
    except Exception:  # no project: the defaults below apply
        return None


def _state_dir(settings: Settings) -> Path:
    project = _project(settings)
    if project is None:
        return Path(".kneo")
    return Path(project.resolve_path(project.config.paths.state_dir))


def _target(database_url: str | None, settings: Settings) -> tuple[str | None, Path]:
    return database_url or settings.database_url, _state_dir(settings)


def _shown(url: URL) -> str:
    return str(url.render_as_string(hide_password=True))


class _MigrationProgress:
    """On a terminal, which migration script runs now (``n/total``); silent otherwise."""

    def __init__(self, current: str | None, *, shown: bool) -> None:
        self._console = console(stderr=True)
        self._pending = pending_revisions(current) if shown else []
        self._done = 0
        self._status: Any = None
        if shown and self._console.is_terminal and self._pending:
            self._status = self._console.status(self._message())

    def _message(self) -> str:
        revision, doc = self._pending[self._done]
        return f"migration {revision} ({self._done + 1}/{len(self._pending)}): {doc}"

    def __call__(self, revision: str) -> None:
        self._done += 1
        if self._status is not None:
            doc = dict(self._pending).get(revision, "")
            self._console.print(f"applied {revision}: {doc}", markup=False, highlight=False)
            if self._done < len(self._pending):
                self._status.update(self._message())

    def __enter__(self) -> _MigrationProgress:
        if self._status is not None:
            self._status.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._status is not None:
            self._status.stop()


@db_app.command("upgrade")
@options
def upgrade_command(
    database_url: UrlOpt = None,
    out: Output = Output(),
    wait_seconds: Annotated[
        float,
        typer.Option(
            "--wait-seconds",
            min=0,
            help="Retry while the database is unreachable, up to this long (a migration "
            "job started beside its database)",
        ),
    ] = 0.0,
) -> None:
    """Apply pending schema migrations (safe while other processes start)."""
    settings = _settings()
    url, state_dir = _target(database_url, settings)
    store, before = _open_waiting(url, settings, state_dir, wait_seconds)
    try:
        after: str | None = before
        if before != HEAD_REVISION:
            with _MigrationProgress(before, shown=not out.structured) as progress:
                after = store.upgrade_schema(progress=progress)
    finally:
        store.close()
    result = {
        "database": _shown(store.engine.url),
        "backend": store.backend,
        "from_revision": before,
        "revision": after,
        "head": HEAD_REVISION,
    }
    if out.printed_json(result):
        return
    if before == after:
        typer.echo(f"{result['database']}: already at revision {after} (head)")
    else:
        typer.echo(f"{result['database']}: upgraded {before or 'empty'} -> {after}")


def _open_waiting(
    url: str | None, settings: Settings, state_dir: Path, wait_seconds: float
) -> tuple[Any, str | None]:
    """The store and its schema revision, retried every second while the server cannot take
    connections yet (refused, unknown host, starting up); any other error (credentials, a
    missing database) fails at once."""
    import time

    deadline = time.monotonic() + wait_seconds
    waiting = False
    while True:
        store = open_store(url, settings=settings, state_dir=state_dir, migrate=False)
        try:
            return store, store.schema_revision()
        except KneoError as exc:
            store.close()
            if not _not_up_yet(exc) or time.monotonic() >= deadline:
                raise
            if not waiting:
                typer.echo(f"waiting up to {wait_seconds:g}s for the database", err=True)
                waiting = True
            time.sleep(1.0)


def _not_up_yet(exc: KneoError) -> bool:
    """No server answered (refused, unknown host, timeout) or it is still starting up.
    psycopg reports both without a SQLSTATE, so the server's own ``FATAL:`` line tells a
    refusal by a running server (credentials, a missing database) apart."""
    text = str(exc)
    return exc.code == "database_unavailable" and ("FATAL:" not in text or "starting up" in text)


def database_revision(database_url: str | None = None) -> dict[str, Any]:
    """The configured database's schema revision, read-only (a missing SQLite file is not
    created): ``database`` (no password), ``exists``, ``revision``, ``head``, ``up_to_date``."""
    settings = _settings()
    url, state_dir = _target(database_url, settings)
    parsed = resolve_url(url, state_dir=state_dir)
    revision: str | None = None
    exists = True
    if parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").is_file():
        exists = False
    else:
        store = open_store(url, settings=settings, state_dir=state_dir, migrate=False)
        try:
            revision = store.schema_revision()
        finally:
            store.close()
    return {
        "database": _shown(parsed),
        "exists": exists,
        "revision": revision,
        "head": HEAD_REVISION,
        "up_to_date": revision == HEAD_REVISION,
    }


@db_app.command("current")
@options
def current_command(database_url: UrlOpt = None, out: Output = Output()) -> None:
    """Show the schema revision of the database (read-only; never migrates)."""
    result = database_revision(database_url)
    if out.printed_json(result):
        return
    if not result["exists"]:
        typer.echo(f"{result['database']}: no database yet (created at head on first use)")
    else:
        state = "up to date" if result["up_to_date"] else f"behind head {HEAD_REVISION}"
        typer.echo(f"{result['database']}: revision {result['revision'] or 'none'} ({state})")


@db_app.command("doctor")
@options
def doctor_command(database_url: UrlOpt = None, out: Output = Output()) -> None:
    """Check what makes the database slow or unsafe for Kneo (pending migrations,
    autovacuum, stale statistics, missing indexes, connection headroom) and say what to do.
    Read-only; exits 1 when a check warns or fails."""
    settings = _settings()
    url, state_dir = _target(database_url, settings)
    store = open_store(url, settings=settings, state_dir=state_dir, migrate=False)
    try:
        findings = diagnose(store, settings.database_pool_size or ROLE_POOL_SIZES["worker"])
    finally:
        store.close()
    healthy = all(f.status == "ok" for f in findings)
    result = {
        "database": _shown(store.engine.url),
        "backend": store.backend,
        "healthy": healthy,
        "checks": [as_dict(f) for f in findings],
    }
    if not out.printed_json(result):
        typer.echo(f"{result['database']} ({store.backend})")
        for finding in findings:
            typer.echo(f"{finding.status.upper():<4}  {finding.check}: {finding.detail}")
            for line in finding.fix.splitlines():
                typer.echo(f"      fix: {line}")
    if not healthy:
        raise typer.Exit(1)


def effective_retention(settings: Settings) -> RetentionDays:
    """Environment variables win per field over the project config's ``retention:`` block."""
    return retention_policy(settings, _project(settings))


@maintenance_app.command("prune")
@options
def prune_command(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count without deleting")] = False,
    database_url: UrlOpt = None,
    out: Output = Output(),
) -> None:
    """Delete runs, checkpoints, queue records, continuations, artifacts and logs older than
    the retention windows; prints counts per category."""
    settings = _settings()
    project = _project(settings)
    url, state_dir = _target(database_url, settings)
    retention = retention_policy(settings, project)
    with open_store(url, settings=settings, state_dir=state_dir) as store:
        counts = prune_retention(
            store, settings=settings, project=project, policy=retention, dry_run=dry_run
        )
    if out.printed_json({"dry_run": dry_run, "retention": vars(retention), "counts": counts}):
        return
    verb = "would delete" if dry_run else "deleted"
    for category, count in counts.items():
        window = getattr(retention, f"{category}_days")
        note = "no retention window" if window is None else f"older than {window} days"
        typer.echo(f"{category:<14} {verb} {count:>6}  ({note})")


@maintenance_app.command("backup")
@options
def backup_command(
    path: Annotated[Path, typer.Argument(help="Backup file to write")],
    database_url: UrlOpt = None,
    out: Output = Output(),
) -> None:
    """Online backup of the SQLite database (PostgreSQL: use pg_dump)."""
    settings = _settings()
    url, state_dir = _target(database_url, settings)
    with open_store(url, settings=settings, state_dir=state_dir) as store:
        written = store.maintenance.backup_sqlite(path)
    if not out.printed_json({"backup": str(written), "bytes": written.stat().st_size}):
        typer.echo(f"backup written to {written} ({written.stat().st_size} bytes)")


@maintenance_app.command("restore")
@options
def restore_command(
    path: Annotated[Path, typer.Argument(help="Backup file to restore")],
    to: Annotated[Path | None, typer.Option("--to", help="Database file to restore into")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing database")] = False,
    database_url: UrlOpt = None,
    out: Output = Output(),
) -> None:
    """Restore a SQLite backup (stop services using the database first)."""
    settings = _settings()
    url, state_dir = _target(database_url, settings)
    if to is None:
        parsed = resolve_url(url, state_dir=state_dir)
        if parsed.get_backend_name() != "sqlite" or not parsed.database:
            raise InvalidRequest(
                "restore is for SQLite; restore PostgreSQL with psql or pg_restore",
                code=ErrorCode.unsupported_backend,
            )
        to = Path(parsed.database)
    if to.exists() and not force:
        raise InvalidRequest(
            f"{to} exists; pass --force to overwrite it", code=ErrorCode.would_overwrite
        )
    restored = restore_sqlite_database(path, to)
    if not out.printed_json({"restored": str(restored), "from": str(path)}):
        typer.echo(f"restored {path} into {restored}")
