"""Lazy package exports: a package names what it re-exports and loads each on first use.

Importing one module of a package (as the CLI's start-up path does) then costs only that
module's imports, not everything the package's ``__init__`` re-exports.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from importlib import import_module
from typing import Any

from kneo import startup


def lazy_exports(
    package: str, namespace: MutableMapping[str, Any], exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The package's ``__getattr__`` and ``__dir__`` for ``exports`` (name -> module)."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        with startup.collecting_rarely():  # a first use imports a layer: see kneo.startup
            value = getattr(import_module(module), name)
        namespace[name] = value  # later lookups skip this function
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *exports})  # a loaded name is in both

    return __getattr__, __dir__
