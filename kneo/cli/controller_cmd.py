"""Placeholder: ``kneo controller`` and ``kneo registry`` (controller issue)."""

import typer

controller_app = typer.Typer(no_args_is_help=True)
registry_app = typer.Typer(no_args_is_help=True)
