"""The spec check a bundle passes once its signatures verify: the same check ``kneo spec
bundle sign`` and ``kneo spec lint`` ran, with what depends on the environment only computed
once per policy (:func:`default_spec_checker`); the loader (:mod:`kneo.controller.loader`)
calls it for each verified bundle file."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kneo.controller.model import Problem
from kneo.errors import ErrorCode, KneoError
from kneo.policy.access import HostAccess
from kneo.policy.check import check_spec, host_access
from kneo.policy.environment import EnvironmentPolicy
from kneo.runtimes import create_runtime_registry
from kneo.spec.loader import load_spec_data
from kneo.spec.project import ProjectContext
from kneo.spec.refs import import_roots, refresh_import_caches
from kneo.tools.factory import load_tool_registry

if TYPE_CHECKING:
    from kneo.tools import ToolRegistry

#: Checks a resolved spec under an environment policy; returns (diagnostics, problems).
SpecChecker = Callable[
    [Mapping[str, Any], EnvironmentPolicy], tuple[list[dict[str, Any]], list[Problem]]
]

#: How long :func:`default_spec_checker` keeps an environment's grant and the import roots
#: (and how often it refreshes the import caches, so a module added since is seen).
GRANT_SECONDS = 1.0


def default_spec_checker(
    tools: ToolRegistry | None = None, context: ProjectContext | None = None
) -> SpecChecker:
    """The same check ``kneo spec bundle sign`` and ``kneo spec lint`` ran: validation, what
    the project (of ``context``, where the runs will execute) lets a signed bundle reach,
    and environment policy, against ``tools`` (the project's registry: built-in tools plus
    its ``tool_registry``; the example tools when ``None``, as the CLI with no project
    config).

    What depends on the environment only (its grant, :class:`~kneo.policy.access.HostAccess`)
    and the import roots are computed once per policy and renewed every
    :data:`GRANT_SECONDS` with the import caches: a cold pass checks thousands of specs
    under one policy, and these were most of each check's cost."""
    if tools is None:
        tools = load_tool_registry(None)
    runtimes = create_runtime_registry()
    base_dir = context.root if context is not None else None
    renewed_at = -GRANT_SECONDS
    roots: list[Path] = []
    #: id(policy) -> (policy, its grant); the policy is kept so its id is not reused
    grants: dict[int, tuple[EnvironmentPolicy, HostAccess]] = {}
    lock = threading.Lock()

    def grant(policy: EnvironmentPolicy) -> tuple[HostAccess, list[Path]]:
        nonlocal renewed_at, roots
        with lock:
            if time.monotonic() - renewed_at > GRANT_SECONDS:
                refresh_import_caches()
                roots = import_roots(base_dir)
                grants.clear()
                renewed_at = time.monotonic()
            found = grants.get(id(policy))
            if found is None or found[0] is not policy:
                env = policy.environment
                if env is None and context is not None:
                    env = context.env
                access = host_access(context, env, origin="bundle", resources=policy.resources)
                found = grants[id(policy)] = (policy, access)
            return found[1], roots

    def check(
        spec: Mapping[str, Any], policy: EnvironmentPolicy
    ) -> tuple[list[dict[str, Any]], list[Problem]]:
        try:
            model = load_spec_data(dict(spec), source="bundle spec")
        except KneoError as exc:
            return [exc.to_dict()], [Problem(ErrorCode.spec_invalid, exc.message)]
        access, spec_roots = grant(policy)
        report = check_spec(
            model,
            env=policy.environment,
            context=context,
            tool_registry=tools,
            runtime_registry=runtimes,
            policy=policy.policy_enforcement,
            origin="bundle",
            resources=policy.resources,
            access=access,
            roots=spec_roots,
        )
        diagnostics = [d.to_dict() for d in report.diagnostics if d.severity != "info"]
        invalid, violation = ErrorCode.spec_invalid, ErrorCode.policy_violation
        problems = [
            Problem(
                violation if d.code.startswith("E_POLICY") else invalid,
                f"{d.code} at {d.path}: {d.message}",
            )
            for d in report.errors
        ]
        return diagnostics, problems

    return check
