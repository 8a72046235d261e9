"""Placeholder: ``kneo spec bundle`` and ``kneo keys`` (bundles issue)."""

import typer

bundle_app = typer.Typer(no_args_is_help=True)
keys_app = typer.Typer(no_args_is_help=True)
