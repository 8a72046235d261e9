"""Application layer: :class:`PlatformManager` composes the engine with the store.

It is the facade over collaborators by responsibility (admission gate, spec preparation,
run driver, runs, decisions, inspection, sweeps; see ``kneo.platform.manager``).

Start, execute, resume, cancel and continue runs; inspect traces, checkpoints, replay and
recovery; list human tasks. The only package that imports both :mod:`kneo.engine` and
:mod:`kneo.store`; it must not import FastAPI, Typer or httpx.

The names below load on first use (module ``__getattr__``), so importing a light module
such as :mod:`kneo.platform.bundles` does not pull in the store and SQLAlchemy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kneo.lazy import lazy_exports

if TYPE_CHECKING:
    from kneo.platform.factory import create_persistence_stores, create_platform
    from kneo.platform.manager import PlatformManager
    from kneo.platform.results import RunResult
    from kneo.store import (
        AuditQuery,
        ControllerRequest,
        NotificationQuery,
        RegistryQuery,
        RolloutQuery,
        RunQuery,
        TaskQuery,
    )

#: ``RunQuery``, ``TaskQuery``, ``AuditQuery``, ``NotificationQuery``, ``RegistryQuery``,
#: ``RolloutQuery`` and ``ControllerRequest`` are the store's values the manager's methods
#: take and answer; routes name them from here, never from the store.
__all__ = [
    "AuditQuery",
    "ControllerRequest",
    "NotificationQuery",
    "PlatformManager",
    "RegistryQuery",
    "RolloutQuery",
    "RunQuery",
    "RunResult",
    "TaskQuery",
    "create_persistence_stores",
    "create_platform",
]

_EXPORTS = {
    "AuditQuery": "kneo.store",
    "ControllerRequest": "kneo.store",
    "NotificationQuery": "kneo.store",
    "RegistryQuery": "kneo.store",
    "RolloutQuery": "kneo.store",
    "RunQuery": "kneo.store",
    "TaskQuery": "kneo.store",
    "PlatformManager": "kneo.platform.manager",
    "RunResult": "kneo.platform.results",
    "create_persistence_stores": "kneo.platform.factory",
    "create_platform": "kneo.platform.factory",
}


__getattr__, __dir__ = lazy_exports("kneo.platform", globals(), _EXPORTS)
