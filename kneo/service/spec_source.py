"""Turn a request's spec source (server path, inline document, overrides) into a checked spec.

The same resolution as the CLI: overlays for the environment, project defaults, then the
one validation pipeline (:func:`kneo.policy.check.check_spec`). A policy stored through
``PUT /v1/policies/environment/{env}`` (:func:`kneo.platform.admission.stored_policy`) wins
over the project config's policy for that environment, which is what makes it
operator-controlled. The spec routes (validate, compile, explain) check with it here; whether
a run may start is the platform's admission gate's call (:mod:`kneo.platform.admission`).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kneo.errors import ErrorCode, Forbidden, InvalidRequest, NotFound
from kneo.policy.check import check_spec
from kneo.service.schemas import SpecSource
from kneo.settings import Settings
from kneo.spec.loader import deep_merge, load_spec, load_spec_data
from kneo.spec.project import ProjectContext

if TYPE_CHECKING:
    from kneo.platform.manager import PlatformManager


@dataclass(frozen=True)
class ResolvedSpec:
    """A loaded spec and where it came from; ``data`` is the resolved JSON document."""

    spec: Any
    data: dict[str, Any]
    source: str
    base_dir: Path | None
    environment: str | None
    context: Any
    spec_path: Path | None


def confined_spec_path(spec_path: str, settings: Settings, root: Path) -> Path:
    """The file a request's ``spec_path`` names, if it lies under a spec root.

    Relative paths are taken from the project root (``root``). The real path (symlinks
    resolved) must be under one of ``KNEO_SERV_SPEC_ROOTS`` (default: the project root);
    otherwise ``403 spec_path_not_allowed``, decided before the file is looked at, so the
    answer says nothing about what exists elsewhere on the server. Inside the roots a
    missing file is ``404``."""
    real = os.path.realpath(os.path.join(root, spec_path))  # an absolute spec_path wins
    if not any(real.startswith(r) for r in _real_roots(tuple(settings.spec_roots), str(root))):
        raise Forbidden(
            "spec_path must name a file under the service's spec roots "
            "(KNEO_SERV_SPEC_ROOTS; default: the project root)",
            code=ErrorCode.spec_path_not_allowed,
            field="spec_path",
        )
    if not os.path.isfile(real):
        raise NotFound(f"spec file {spec_path!r} not found on the server", resource="spec")
    return Path(real)


@functools.lru_cache(maxsize=16)
def _real_roots(roots: tuple[Path, ...], root: str) -> tuple[str, ...]:
    """Each spec root's real path with a trailing separator (a prefix test then never
    takes ``/srv/specs-old`` for a file under ``/srv/specs``)."""
    return tuple(
        os.path.join(os.path.realpath(os.path.join(root, r)), "") for r in roots or (root,)
    )


def resolve_spec(body: SpecSource, settings: Settings) -> ResolvedSpec:
    """Load the spec a request names. Raises ``SpecError``/``NotFound``/``InvalidRequest``/
    ``Forbidden`` (a ``spec_path`` outside the spec roots)."""
    context = ProjectContext.discover(settings=settings, env=body.environment)
    env = body.environment
    if env is not None:  # a named environment is one the project declares
        context.run_environment(env)
    if body.spec_path is not None:
        path = confined_spec_path(body.spec_path, settings, context.root)
        loaded = load_spec(
            path, env=env, project=context.config, declared=context.declared_environments()
        )
        data = loaded.data
        spec = loaded.spec
        if body.overrides:
            data = deep_merge(data, body.overrides)
            spec = load_spec_data(data, source=str(path), project=None)
        return ResolvedSpec(spec, data, str(path), loaded.base_dir, env, context, path)
    if body.spec is None:
        raise InvalidRequest("give exactly one of spec_path or spec")
    data = deep_merge(body.spec, body.overrides) if body.overrides else dict(body.spec)
    spec = load_spec_data(data, source="<inline>", project=context.config)
    return ResolvedSpec(spec, data, "<inline>", None, env, context, None)


def registries(manager: PlatformManager) -> tuple[Any, Any]:
    """``(tool_registry, runtime_registry)`` of a platform manager."""
    compiler = getattr(manager, "compiler", None)
    tools = getattr(manager, "tool_registry", None) or getattr(compiler, "tool_registry", None)
    runtimes = getattr(manager, "runtime_registry", None) or getattr(
        compiler, "runtime_registry", None
    )
    return tools, runtimes


def check_resolved(resolved: ResolvedSpec, manager: PlatformManager) -> Any:
    """Validate + environment policy (the service-managed one when stored) + governance
    report (a ``SpecReport``)."""
    tools, runtimes = registries(manager)
    return check_spec(
        resolved.spec,
        env=resolved.environment,
        context=resolved.context,
        tool_registry=tools,
        runtime_registry=runtimes,
        base_dir=resolved.base_dir,
        policy=manager.stored_policy(resolved.environment),
    )
