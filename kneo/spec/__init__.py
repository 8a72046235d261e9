"""Spec v1: models, loading, overlays, project config, diagnostics, migration, compile.

Contract layer: imports only pydantic, yaml, jsonschema and ``kneo.tools``/``kneo.errors``;
never SQLAlchemy, FastAPI, Typer or httpx. ``from kneo.spec import SpecCompiler`` is the
documented entry point (the names below load on first use).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kneo.lazy import lazy_exports

if TYPE_CHECKING:
    from kneo.spec.compiler import SpecCompiler
    from kneo.spec.loader import load_spec
    from kneo.spec.models import Spec

__all__ = ["Spec", "SpecCompiler", "load_spec"]

_EXPORTS = {
    "Spec": "kneo.spec.models",
    "SpecCompiler": "kneo.spec.compiler",
    "load_spec": "kneo.spec.loader",
}

__getattr__, __dir__ = lazy_exports("kneo.spec", globals(), _EXPORTS)
