"""The root Typer app: wires each command group; exit codes 0 ok, 1 findings, 2 usage.

Command modules load lazily (see :func:`kneo.cli.output.lazy_group`): ``kneo --help`` lists
the groups from the table below without importing them, and ``kneo spec lint`` imports only
the spec commands. To add a group, add a row to ``COMMANDS``.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from kneo import startup
from kneo.cli.output import LazyCommand, lazy_group, run_cli
from kneo.deferred_imports import defer_costly_imports
from kneo.logs import quiet_http_clients

#: name -> where it lives; listing order is the order here.
COMMANDS: dict[str, LazyCommand] = {
    "init": LazyCommand(
        "kneo.cli.init_cmd", "register", "Create a project from a template", register=True
    ),
    "config": LazyCommand("kneo.cli.config_cmd", "app", "Manage project config"),
    "spec": LazyCommand("kneo.cli.spec_cmd", "app", "Validate and compile specs"),
    "keys": LazyCommand("kneo.cli.bundle_cmd", "keys_app", "Generate and inspect signing keys"),
    "run": LazyCommand("kneo.cli.run_cmd", "register", "Run agent/workflow specs", register=True),
    "eval": LazyCommand("kneo.cli.eval_cmd", "app", "Evaluate specs against eval suites"),
    "runs": LazyCommand("kneo.cli.runs_cmd", "app", "Inspect runs"),
    "human": LazyCommand("kneo.cli.human_cmd", "app", "Manage human-in-the-loop tasks"),
    "audit": LazyCommand("kneo.cli.audit_cmd", "app", "Read the audit log"),
    "reset": LazyCommand(
        "kneo.cli.reset_cmd", "register", "Remove local run state, never config", register=True
    ),
    "service": LazyCommand("kneo.cli.service_cmd", "app", "Run or manage the Kneo service"),
    "worker": LazyCommand("kneo.cli.worker_cmd", "register", "Run a queue worker", register=True),
    "mcp": LazyCommand("kneo.cli.mcp_cmd", "app", "Serve Kneo to assistants over MCP"),
    "controller": LazyCommand("kneo.cli.controller_cmd", "controller_app", "GitOps controller"),
    "policy": LazyCommand("kneo.cli.policy_cmd", "app", "Sign policy changes for the controller"),
    "registry": LazyCommand("kneo.cli.registry_cmd", "registry_app", "Inspect the bundle registry"),
    "rollout": LazyCommand("kneo.cli.rollout_cmd", "app", "Progressive delivery: rollouts"),
    "schedules": LazyCommand(
        "kneo.cli.schedules_cmd", "app", "Schedules declared by active bundles"
    ),
    "projects": LazyCommand("kneo.cli.projects_cmd", "app", "List and manage projects (tenants)"),
    "notifications": LazyCommand(
        "kneo.cli.notifications_cmd", "app", "Notification deliveries and receivers"
    ),
    "db": LazyCommand("kneo.cli.db_cmd", "db_app", "Database schema migrations"),
    "version": LazyCommand(
        "kneo.cli.version_cmd", "register", "Show version, revision and schema", register=True
    ),
    "maintenance": LazyCommand(
        "kneo.cli.db_cmd", "maintenance_app", "Retention, backup and restore"
    ),
}

app = typer.Typer(
    name="kneo",
    help="Kneo Agent Platform CLI",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
    rich_markup_mode=None,  # plain, fast help; see lazy_group
    cls=lazy_group(COMMANDS),
)


def _print_version(value: bool) -> None:
    """``kneo --version``: the version line, exit 0 (``kneo version`` prints the whole record)."""
    if value:
        from kneo.version import package_version

        print(f"kneo {package_version()}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print the version and exit",
            callback=_print_version,
            is_eager=True,
            expose_value=True,
        ),
    ] = False,
) -> None:
    """Kneo Agent Platform CLI"""


def main() -> None:
    """Console entry point: run the app; Kneo errors become one line and an exit code."""
    startup.begin()
    defer_costly_imports()  # before anything imports jsonschema
    quiet_http_clients()  # their INFO lines carry full URLs (a Slack webhook URL is a secret)
    sys.exit(run_cli(app))


if __name__ == "__main__":
    main()
