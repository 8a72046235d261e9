"""Placeholder: ``kneo run`` (engine issue)."""

import typer


def register(app: typer.Typer) -> None:
    """Adds the ``run`` command to the root app."""
