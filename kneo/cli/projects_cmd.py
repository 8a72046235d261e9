"""``kneo projects``: the project catalog (docs/projects.md).

Anyone lists the projects they may act in; a platform administrator (``projects:admin``)
creates a project from a definition file (a project config document, the schema of
``.kneo/config.yaml``), replaces its definition and archives it. Against a service these are
``/v1/projects`` calls; locally, the directory's own store's catalog.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from kneo.cli.output import ClientOptions, cells, options, print_table
from kneo.spec.yaml_io import read_yaml_mapping

app = typer.Typer(no_args_is_help=True, help="List and manage projects (tenants)")

DefinitionOpt = typer.Option(
    None,
    "--definition",
    help="A project config document (YAML or JSON, the schema of .kneo/config.yaml)",
    exists=True,
    dir_okay=False,
)


def _definition(path: Path | None) -> dict[str, Any] | None:
    """The definition file's mapping (errors name the file, line and field)."""
    if path is None:
        return None
    data, _ = read_yaml_mapping(path, what="project definition")
    return data


def _show(opts: ClientOptions, data: dict[str, Any]) -> None:
    if opts.printed_json(data):
        return
    print_table(
        f"project {data['name']}",
        ["name", "status", "created_at", "updated_at"],
        [cells(data, "name", "status", "created_at", "updated_at")],
    )


@app.command("list")
@options
def list_projects(opts: ClientOptions = ClientOptions()) -> None:
    """The projects you may act in (every one for a platform administrator)."""
    data = opts.client().list_projects()
    if opts.printed_json(data):
        return
    home = data.get("home")
    print_table(
        f"projects ({len(data['projects'])}; home {home})",
        ["name", "status", "created_at"],
        [cells(p, "name", "status", "created_at") for p in data["projects"]],
    )


@app.command("get")
@options
def get_project(name: str, opts: ClientOptions = ClientOptions()) -> None:
    """One project (its definition for a platform administrator, with -o json|yaml)."""
    _show(opts, opts.client().get_project(name))


@app.command("create")
@options
def create_project(
    name: str, definition: Path | None = DefinitionOpt, opts: ClientOptions = ClientOptions()
) -> None:
    """Create a project (platform administrators)."""
    _show(opts, opts.client().create_project(name, _definition(definition)))


@app.command("update")
@options
def update_project(
    name: str,
    definition: Path | None = DefinitionOpt,
    clear: bool = typer.Option(False, "--clear", help="Remove the definition instead"),
    opts: ClientOptions = ClientOptions(),
) -> None:
    """Replace a project's definition (platform administrators): ``--definition FILE``, or
    ``--clear`` for none."""
    if (definition is None) == (not clear):
        raise typer.BadParameter("give --definition FILE or --clear", param_hint="--definition")
    _show(opts, opts.client().update_project(name, _definition(definition)))


@app.command("archive")
@options
def archive_project(name: str, opts: ClientOptions = ClientOptions()) -> None:
    """Archive a project (platform administrators): nothing reaches it any more; its records
    stay until retention removes them."""
    _show(opts, opts.client().archive_project(name))
