"""Application layer: :class:`PlatformManager` composes the engine with the store.

Start, execute, resume, cancel and continue runs; inspect traces, checkpoints, replay and
recovery; list human tasks. The only package that imports both :mod:`kneo.engine` and
:mod:`kneo.store`; it must not import FastAPI, Typer or httpx.
"""

from kneo.platform.factory import create_persistence_stores, create_platform
from kneo.platform.manager import PlatformManager
from kneo.platform.results import RunResult

__all__ = ["PlatformManager", "RunResult", "create_persistence_stores", "create_platform"]
