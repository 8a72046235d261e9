"""Placeholder: ``kneo db`` and ``kneo maintenance`` (persistence issues)."""

import typer

db_app = typer.Typer(no_args_is_help=True)
maintenance_app = typer.Typer(no_args_is_help=True)
