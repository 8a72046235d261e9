"""Placeholder: filled in by the owning issue."""

import typer

app = typer.Typer(no_args_is_help=True)
