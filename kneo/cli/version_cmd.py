"""``kneo version``: which Kneo this is, and which schema revision its database is at.

The first four fields are :func:`kneo.version_info` (what ``GET /v1/version`` answers too);
``database`` is the configured database's own revision, read without migrating or creating
anything, so a bug report names both sides of a schema mismatch. A database that cannot be
read leaves the rest standing: ``database.error`` names why.
"""

from __future__ import annotations

from typing import Any

import typer

from kneo.cli.db_cmd import database_revision
from kneo.cli.output import Output, options
from kneo.errors import KneoError
from kneo.version import version_info


def _database() -> dict[str, Any]:
    try:
        return database_revision()
    except KneoError as exc:  # unreachable server, bad URL: the version still prints
        return {"revision": None, "error": exc.code}


def register(app: typer.Typer) -> None:
    """Adds the ``version`` command to the root app."""

    @app.command("version")
    @options
    def version_command(out: Output = Output()) -> None:
        """Show Kneo's version, source revision, Python and database schema revision."""
        data: dict[str, Any] = {**version_info().as_dict(), "database": _database()}
        if out.printed_json(data):
            return
        database = data["database"]
        shown = database.get("revision") or ("none yet" if "error" not in database else "-")
        if "error" in database:
            shown += f" ({database['error']})"
        print(f"kneo {data['version']} (revision {data['revision']})")
        print(f"python {data['python']}")
        print(f"schema {data['schema_revision']} (database: {shown})")
