"""The root Typer app: wires each command group; exit codes 0 ok, 1 findings, 2 usage."""

from __future__ import annotations

import sys

import typer

from kneo.cli import (
    bundle_cmd,
    config_cmd,
    controller_cmd,
    db_cmd,
    human_cmd,
    run_cmd,
    runs_cmd,
    service_cmd,
    spec_cmd,
)

app = typer.Typer(
    name="kneo",
    help="Kneo Agent Platform CLI",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
)

app.add_typer(config_cmd.app, name="config", help="Manage project config")
spec_cmd.app.add_typer(bundle_cmd.bundle_app, name="bundle", help="Sign and verify approved spec bundles")
app.add_typer(spec_cmd.app, name="spec", help="Validate and compile specs")
app.add_typer(bundle_cmd.keys_app, name="keys", help="Generate and inspect signing keys")
run_cmd.register(app)
app.add_typer(runs_cmd.app, name="runs", help="Inspect runs")
app.add_typer(human_cmd.app, name="human", help="Manage human-in-the-loop tasks")
app.add_typer(service_cmd.app, name="service", help="Run or manage the Kneo service")
service_cmd.register_worker(app)
app.add_typer(controller_cmd.controller_app, name="controller", help="GitOps controller")
app.add_typer(controller_cmd.registry_app, name="registry", help="Inspect the bundle registry")
app.add_typer(db_cmd.db_app, name="db", help="Database schema migrations")
app.add_typer(db_cmd.maintenance_app, name="maintenance", help="Retention, backup and restore")


def main() -> None:
    """Console entry point: run the app; Kneo errors become one line and an exit code."""
    from kneo.cli.output import run_cli

    sys.exit(run_cli(app))


if __name__ == "__main__":
    main()
