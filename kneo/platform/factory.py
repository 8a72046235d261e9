"""Building a PlatformManager from settings and the project, the way the CLI and service do."""

from __future__ import annotations

from pathlib import Path

from kneo import startup
from kneo.clock import Clock
from kneo.platform.manager import PlatformManager
from kneo.redaction import remember_secrets
from kneo.runtimes import create_runtime_registry
from kneo.settings import Settings
from kneo.spec.compiler import SpecCompiler
from kneo.spec.project import ProjectContext
from kneo.store import Store, open_store
from kneo.tools import ToolRegistry
from kneo.tools.defaults import register_builtin_tools


def state_dir(project: ProjectContext) -> Path:
    """Where local state lives: ``<project root>/<paths.state_dir>`` (``.kneo`` by default)."""
    return project.resolve_path(project.config.paths.state_dir)


def create_persistence_stores(
    settings: Settings | None = None, project: ProjectContext | None = None
) -> tuple[Store, Store]:
    """``(run_state_store, continuation_store)`` — one Store twice: PostgreSQL when
    ``KNEO_SERV_DATABASE_URL`` is set, else SQLite at ``.kneo/kneo_runs.sqlite``."""
    settings = settings or Settings.from_env()
    project = project or ProjectContext.discover(settings=settings)
    store = open_store(settings.database_url, settings=settings, state_dir=state_dir(project))
    return store, store


def secret_values(settings: Settings, project: ProjectContext) -> list[str]:
    """The values of every secret this process may hold: Kneo's own, the variables the
    project names for the controller and notifications, and the secrets it declares to
    specs (each redacted by value wherever it appears)."""
    config = project.config
    names = {*config.declared_secrets().values(), *config.kneo_variables()}
    return [*settings.secret_values(), *(v for n in names if (v := settings.secret(n)))]


def create_platform(
    settings: Settings | None = None,
    project: ProjectContext | None = None,
    store: Store | None = None,
    tool_registry: ToolRegistry | None = None,
    *,
    clock: Clock | None = None,
) -> PlatformManager:
    """A manager with the default runtimes, the project's tools (``tool_registry`` given
    here, else the project config's ``tool_registry`` factory, else the example tools) and
    the project's store."""
    with startup.collecting_rarely():  # imports and schema building: see kneo.startup
        settings = settings or Settings.from_env()
        project = project or ProjectContext.discover(settings=settings)
        remember_secrets(secret_values(settings, project))
        if store is None:
            store = open_store(
                settings.database_url, settings=settings, clock=clock, state_dir=state_dir(project)
            )
        compiler = SpecCompiler(
            runtime_registry=create_runtime_registry(),
            tool_registry=register_builtin_tools(
                tool_registry if tool_registry is not None else project.tool_registry()
            ),
        )
        return PlatformManager(
            compiler=compiler,
            run_state_store=store,
            settings=settings,
            project=project,
            clock=clock,
        )
