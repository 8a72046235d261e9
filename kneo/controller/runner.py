"""Build a :class:`Controller` from configuration, and run its loop in a background thread.

Shared by ``kneo controller run`` and ``kneo service serve`` (which embeds the controller
next to the HTTP API). Several replicas may each run one: leader election inside
:meth:`Controller.reconcile_once` lets exactly one reconcile, the others stand by.

The controller's parts are imported where one is built (:mod:`kneo.controller.controller`
+0.17 s, :mod:`kneo.controller.source` and the loader +0.10 s with GitPython, the keyring
and floors +40 ms with cryptography): ``kneo controller`` loads this module for its
configuration helpers in every command, also the ones a service answers.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from kneo.clock import SystemClock
from kneo.controller.config import ControllerConfig
from kneo.controller.credentials import CredentialSource
from kneo.errors import ConfigError
from kneo.logs import get_logger
from kneo.spec.project import ProjectContext

if TYPE_CHECKING:
    from kneo.bundle.keys import Keyring
    from kneo.controller.controller import Controller, ReconcileResult
    from kneo.controller.leadership import Leadership
    from kneo.controller.loader import DesiredStateLoader
    from kneo.controller.projects import ProjectControllers
    from kneo.controller.source import GitSource
    from kneo.controller.spec_checks import SpecChecker
    from kneo.policy.floors import Floors
    from kneo.settings import Settings
    from kneo.store import Store
    from kneo.tools import ToolRegistry

log = get_logger("kneo.controller")


def parse_hmac_key_specs(specs: list[str] | tuple[str, ...] | None) -> dict[str, str]:
    """``KEY_ID=VARIABLE`` pairs (``--trusted-hmac-key-env``) -> ``{key_id: variable}``."""
    out: dict[str, str] = {}
    for spec in specs or ():
        key_id, sep, variable = spec.partition("=")
        if not sep or not key_id.strip() or not variable.strip():
            raise ConfigError(
                f"--trusted-hmac-key-env expects KEY_ID=VARIABLE, got {spec!r}",
                field="trusted_hmac_key_env",
            )
        out[key_id.strip()] = variable.strip()
    return out


def hmac_secrets(settings: Settings, key_envs: Mapping[str, str]) -> dict[str, bytes]:
    """Read each HMAC key's secret by variable name through Settings; never echoed."""
    secrets: dict[str, bytes] = {}
    for key_id, variable in key_envs.items():
        value = settings.secret(variable)
        if not value:
            raise ConfigError(
                f"{variable} is not set (HMAC secret for trusted key {key_id!r})",
                variable=variable,
            )
        secrets[key_id] = value.encode("utf-8")
    return secrets


def build_controller(
    store: Store,
    config: ControllerConfig,
    settings: Settings,
    *,
    owner: str | None = None,
    tools: ToolRegistry | None = None,
    project: ProjectContext | None = None,
    leadership: Leadership | None = None,
    on_wake: Callable[[], None] | None = None,
) -> Controller:
    """A controller over ``store`` for ``config``; raises ``config_error`` when incomplete.

    ``project`` (a ``ProjectContext``; default: the one discovered from the working
    directory) is where the promoted bundles will run: what it declares is what a bundle may
    reach. Specs are checked against ``tools`` (default: the project's registry, as ``kneo
    spec lint`` loads it: built-in tools plus the project config's ``tool_registry``), so a
    bundle the project's CI lints and signs also reconciles. ``leadership`` and ``on_wake``:
    a project's controller under :class:`~kneo.controller.projects.ProjectControllers`."""
    from kneo.controller.controller import Controller

    parts = _parts(config, settings, tools=tools, project=project)
    return Controller(
        store,
        parts.source,
        parts.keyring,
        config=config,
        owner=owner,
        tools=parts.tools,
        spec_checker=parts.checker,
        floors=parts.floors,
        leadership=leadership,
        on_wake=on_wake,
    )


def build_controllers(
    store: Store,
    config: ControllerConfig,
    settings: Settings,
    *,
    host: ProjectContext,
    tools: ToolRegistry | None = None,
) -> ProjectControllers:
    """The controller of every project's source (``config``, the host's block, is the
    ``default`` project's; :mod:`kneo.controller.projects`); raises ``config_error`` when
    the host's own source is incomplete."""
    from kneo.controller.projects import ProjectControllers

    return ProjectControllers(store, config, settings, host=host, tools=tools)


def build_reviewer(
    config: ControllerConfig, settings: Settings, *, project: ProjectContext | None = None
) -> tuple[DesiredStateLoader, GitSource]:
    """What a pull request's plan needs, and no store: the loader that judges a commit as a
    controller for ``config`` would, and the Git source (closed by the caller)."""
    from kneo.controller.loader import DesiredStateLoader

    parts = _parts(config, settings, tools=None, project=project)
    loader = DesiredStateLoader(parts.keyring, clock=SystemClock(), spec_checker=parts.checker)
    return loader, parts.source


@dataclass(frozen=True)
class _Parts:
    source: GitSource
    keyring: Keyring
    tools: ToolRegistry
    checker: SpecChecker
    floors: Floors


def _parts(
    config: ControllerConfig,
    settings: Settings,
    *,
    tools: ToolRegistry | None,
    project: ProjectContext | None,
) -> _Parts:
    """The source, keyring, tools and spec checker a controller for ``config`` judges with."""
    from kneo.bundle.keys import Keyring, TrustedKey, load_keyring
    from kneo.controller.source import GitSource
    from kneo.controller.spec_checks import default_spec_checker
    from kneo.policy.floors import load_floors

    repo = config.require_repo()
    secrets = hmac_secrets(settings, config.trusted_hmac_key_env)
    if config.trusted_keys is None and not secrets:
        raise ConfigError(
            "no trusted keys: pass --trusted-keys DIR (or --trusted-hmac-key-env KEY_ID=VAR) "
            "or set controller.trusted_keys; the controller never trusts keys from the "
            "repository it watches",
            field="controller.trusted_keys",
        )
    if config.webhook_secret_env and settings.secret(config.webhook_secret_env) is None:
        raise ConfigError(
            f"{config.webhook_secret_env} is not set (webhook secret)",
            variable=config.webhook_secret_env,
        )
    if config.trusted_keys is not None:
        keyring = load_keyring(config.trusted_keys, hmac_secrets=secrets or None)
    else:
        keyring = Keyring(TrustedKey.hmac(key_id, secret) for key_id, secret in secrets.items())
    if project is None:
        project = ProjectContext.discover(settings=settings)
    if tools is None:
        tools = project.tool_registry()
    floors = load_floors(settings.policy_floors or config.policy_floors)
    source = GitSource(
        repo,
        ref=config.branch,
        cache_dir=config.cache_dir,
        credentials=CredentialSource.from_settings(settings),
        subdir=config.path,
    )
    return _Parts(source, keyring, tools, default_spec_checker(tools, project), floors)


class Runnable(Protocol):
    """What :class:`ControllerRunner` runs: a :class:`~kneo.controller.controller.Controller`
    or :class:`~kneo.controller.projects.ProjectControllers`."""

    def run(
        self,
        stop: threading.Event,
        *,
        on_result: Callable[[ReconcileResult], None] | None = None,
        watch: bool = True,
    ) -> None: ...
    def request_reconcile(self) -> None: ...
    def close(self) -> None: ...


class ControllerRunner:
    """The controller loop (which also watches a local repository) on a thread."""

    def __init__(self, controller: Runnable) -> None:
        self.controller = controller
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="kneo-controller", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.controller.run(self._stop)
        except Exception:  # never take the service down with it
            log.exception("the controller loop stopped")

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self.controller.request_reconcile()  # wake it from its wait
        if self._thread is not None:
            self._thread.join(timeout)
        self.controller.close()

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()
