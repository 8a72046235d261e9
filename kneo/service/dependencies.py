"""Where routes get the platform manager and the caller's identity.

A process has one platform manager, its default project's; a request acting in another
project gets that project's (:meth:`~kneo.platform.manager.PlatformManager.for_project`).
Embedders install their own with :func:`set_platform_manager` (before or after
:func:`kneo.service.app.create_app`); otherwise ``create_app(configure_default_manager=True)``
builds the default one at startup. Routes never construct anything: they receive it through
these dependencies. Nor do they reach the store: they ask the manager's facade methods
(``tests/service/test_route_facades.py``).
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import Request

from kneo.errors import NotReady
from kneo.service.auth import ANONYMOUS, Principal, require_scope

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from kneo.platform.manager import PlatformManager

_lock = threading.Lock()
_manager: PlatformManager | None = None


def set_platform_manager(manager: PlatformManager) -> None:
    """Install the platform manager every app in this process serves (custom tools etc.)."""
    global _manager
    with _lock:
        _manager = manager


def get_platform_manager() -> PlatformManager | None:
    """The process-wide manager installed with :func:`set_platform_manager`, or ``None``."""
    return _manager


def current_manager(app: Starlette) -> PlatformManager | None:
    """The app's manager: its own (tests, default) or else the process-wide one."""
    manager: PlatformManager | None = getattr(app.state, "manager", None)
    return manager if manager is not None else _manager


def _manager_of(request: Request) -> PlatformManager:
    """The manager of the project the request acts in (``require_scope`` set it; a route
    without one acts in the app manager's own project)."""
    manager = current_manager(request.app)
    if manager is None:
        raise NotReady(
            "No platform manager is configured: call set_platform_manager() or create the app "
            "with configure_default_manager=True",
            check="manager",
        )
    project: str | None = getattr(request.state, "project", None)
    if project is None or project == manager.store.project:
        return manager
    return manager.for_project(project)  # project_not_found when it is unknown or archived


# The dependencies are ``async`` because they only read app state: a sync dependency would
# cost a round trip through the threadpool on every request.


async def manager_dep(request: Request) -> PlatformManager:
    """FastAPI dependency: the platform manager, or ``503 not_ready`` when none is wired."""
    return _manager_of(request)


@dataclass(frozen=True)
class Caller:
    """The authorized principal and the platform manager of one request."""

    principal: Principal
    manager: PlatformManager


def caller_dep(scope: str) -> Callable[[Request], Awaitable[Caller]]:
    """One dependency for ``require_scope(scope)`` and :func:`manager_dep` together.

    For the busiest routes (``POST /v1/runs``): FastAPI spends ~8 µs of CPU solving each
    dependency of a request, and these routes need both. Authorization runs first, as with
    the two separate dependencies: a caller without the scope gets 401/403, never 503.
    """
    authorize = require_scope(scope)

    async def dependency(request: Request) -> Caller:
        principal = await authorize(request)
        return Caller(principal, _manager_of(request))

    dependency.required_scope = scope  # type: ignore[attr-defined]
    dependency.__name__ = f"caller_{scope.replace(':', '_')}"
    return dependency


def actor_of(request: Request) -> str:
    """The audit actor: the API key's *name* (never the key), or ``anonymous``."""
    return str(request.scope.get("state", {}).get("actor") or ANONYMOUS)
