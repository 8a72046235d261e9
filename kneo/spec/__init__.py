"""Spec v1: models, loading, overlays, project config, diagnostics, migration, compile.

Contract layer: imports only pydantic, yaml, jsonschema and ``kneo.tools``/``kneo.errors``;
never SQLAlchemy, FastAPI, Typer or httpx.
"""
