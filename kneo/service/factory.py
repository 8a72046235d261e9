"""The service's default platform manager, and the names the custom-tool tutorial imports.

``create_default_platform_manager()`` is what ``kneo service serve``, ``kneo worker`` and
``create_app(configure_default_manager=True)`` build their manager with: the project's
store and its tools (``tool_registry`` in ``.kneo/config.yaml``, else the example tools).

Two ways to serve a custom platform (``docs/extending.md``):

* **Override hook** — :func:`set_platform_factory` (``kneo service serve --factory
  module:function`` calls it) replaces what ``create_default_platform_manager()`` builds.
* **Custom server** — build your manager and call
  :func:`kneo.service.dependencies.set_platform_manager` before ``create_app()``.

``create_runtime_registry``, ``create_tool_registry`` and ``create_persistence_stores`` are
re-exported here because the tutorial's factory imports them from this module; each is the
one implementation in its own layer.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from kneo.errors import ConfigError, KneoError
from kneo.kernel import resolve_attribute
from kneo.platform.factory import create_persistence_stores, create_platform
from kneo.runtimes import create_runtime_registry
from kneo.tools.defaults import create_tool_registry

if TYPE_CHECKING:
    from kneo.platform.manager import PlatformManager
    from kneo.settings import Settings

__all__ = [
    "create_default_platform_manager",
    "create_persistence_stores",
    "create_runtime_registry",
    "create_tool_registry",
    "load_platform_factory",
    "set_platform_factory",
]

PlatformFactory = Callable[[], "PlatformManager"]

_lock = threading.Lock()
_factory: PlatformFactory | None = None


def set_platform_factory(factory: PlatformFactory | None) -> None:
    """Make :func:`create_default_platform_manager` return ``factory()`` (``None`` resets)."""
    global _factory
    with _lock:
        _factory = factory


def create_default_platform_manager(settings: Settings | None = None) -> PlatformManager:
    """The installed factory's manager, else the default platform from ``settings``."""
    factory = _factory
    if factory is not None:
        return factory()
    return create_platform(settings=settings)


def load_platform_factory(ref: str) -> PlatformFactory:
    """Import ``module:function`` (the ``--factory`` option) as a platform factory."""
    try:
        target = resolve_attribute(ref, what="--factory", roots=(Path.cwd(),))
    except KneoError as exc:  # a project module such as examples.my_factory
        raise ConfigError(exc.message, field="factory") from None
    if not callable(target):
        raise ConfigError(f"--factory {ref!r} is not callable", field="factory")
    return target  # type: ignore[no-any-return]
