"""``kneo reset``: remove the project's local run state and nothing else.

``.kneo/`` holds the tracked project config (``config.yaml``) next to local state, so
``rm -rf .kneo`` is not a reset: it deletes the config. This command removes exactly the
state the project's paths name — the SQLite database and its WAL/SHM/journal files, the
artifacts and logs directories — and never a config file, a backup or anything else it does
not know. A PostgreSQL database is refused: dropping it is a decision for its owner.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Annotated

import typer

from kneo.cli.output import Output, options
from kneo.cli.spec_cmd import UsageError
from kneo.errors import ErrorCode, InvalidRequest
from kneo.platform.factory import state_dir
from kneo.settings import Settings
from kneo.spec.project import ProjectContext
from kneo.store import resolve_url

#: Files beside a SQLite database that belong to it.
_SQLITE_SIDECARS = ("-wal", "-shm", "-journal")


def state_paths(root: Path, state_dir: Path, artifacts: Path, logs: Path, db: Path) -> list[Path]:
    """The existing paths a reset removes: the database and its sidecars, the artifacts and
    logs directories. Nothing outside them; never ``.kneo/config.yaml``."""
    candidates = [db, *(db.with_name(db.name + s) for s in _SQLITE_SIDECARS), artifacts, logs]
    config = (root / ".kneo" / "config.yaml").resolve()
    found = []
    for path in candidates:
        resolved = path.resolve()
        if resolved == config or config.is_relative_to(resolved) or not path.exists():
            continue  # the config, or a directory holding it, is never state
        found.append(path)
    return found


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _confirmed(paths: list[Path], yes: bool) -> bool:
    if yes:
        return True
    if not sys.stdin.isatty():
        raise UsageError(
            "kneo reset deletes local run state; pass --yes to confirm (or --dry-run to list)"
        )
    return typer.confirm(f"Remove {len(paths)} path(s) of local run state?", default=False)


def register(app: typer.Typer) -> None:
    """Adds the ``reset`` command to the root app."""

    @app.command("reset", help="Remove local run state (database, artifacts, logs), never config")
    @options
    def reset(
        yes: Annotated[bool, typer.Option("--yes", "-y", help="Don't ask")] = False,
        dry_run: Annotated[
            bool, typer.Option("--dry-run", help="List what would be removed")
        ] = False,
        out: Output = Output(),
    ) -> None:
        """Remove the project's local run state: every run, paused task, audit event and
        registry entry in its SQLite database, and its artifacts and logs. The project config
        (``.kneo/config.yaml``) and backups stay."""
        settings = Settings.from_env()
        project = ProjectContext.discover(settings=settings)
        url = resolve_url(settings.database_url or None, state_dir=state_dir(project))
        if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
            raise InvalidRequest(
                "kneo reset removes local SQLite state only; this project's runs are in "
                f"{url.render_as_string(hide_password=True)}: drop or truncate that database "
                "yourself (and back it up first)",
                code=ErrorCode.unsupported_backend,
            )
        paths = project.config.paths
        found = state_paths(
            project.root,
            state_dir(project),
            project.resolve_path(paths.artifacts_dir),
            project.resolve_path(paths.logs_dir),
            Path(url.database),
        )
        listed = [{"path": str(p), "bytes": _size(p)} for p in found]
        removed = not dry_run and bool(found) and _confirmed(found, yes)
        if found and not dry_run and not removed:
            print("aborted: nothing removed", file=sys.stderr)
            raise typer.Exit(1)
        for path in found if removed else ():
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        if out.printed_json({"removed": removed, "dry_run": dry_run, "paths": listed}):
            return
        if not found:
            print("nothing to remove: no local run state")
            return
        verb = "removed" if removed else "would remove"
        for entry in listed:
            print(f"{verb} {entry['path']} ({entry['bytes']} bytes)")
        if removed:
            print(f"kept the project config ({project.config_path or 'none'}) and any backups")
