"""The HTTP service (edge layer): FastAPI app, routers, auth, limits, request logging.

Routes are thin: parse a strict request model, call the platform manager or the store,
shape the response. Nothing below this package imports it.

The names below load on first use: a process that needs only :mod:`kneo.service.factory`
(``kneo worker``) does not import FastAPI, and one that needs :mod:`kneo.service.auth` not
the app, its routers and the console (together 0.5 of the 1.4-1.7 CPU-s a ``kneo worker
--once`` spent on a slow two-core machine, ``bench/cli_startup.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kneo.lazy import lazy_exports

if TYPE_CHECKING:
    from kneo.service.app import create_app
    from kneo.service.dependencies import get_platform_manager, set_platform_manager

__all__ = ["create_app", "get_platform_manager", "set_platform_manager"]

_EXPORTS = {
    "create_app": "kneo.service.app",
    "get_platform_manager": "kneo.service.dependencies",
    "set_platform_manager": "kneo.service.dependencies",
}

__getattr__, __dir__ = lazy_exports("kneo.service", globals(), _EXPORTS)
