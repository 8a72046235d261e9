"""Placeholder: ``kneo service`` and ``kneo worker`` (service issue)."""

import typer

app = typer.Typer(no_args_is_help=True)


def register_worker(root: typer.Typer) -> None:
    """Adds the ``worker`` command to the root app."""
