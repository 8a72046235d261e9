"""The spec check a bundle passes once its signatures verify: the same check ``kneo spec
bundle sign`` and ``kneo spec lint`` ran, with what depends on the environment only computed
once per policy (:func:`default_spec_checker`); the loader's judge
(:mod:`kneo.controller.verdicts`) calls it for each verified bundle file."""

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


class _Grants:
    """Each policy's grant (:class:`~kneo.policy.access.HostAccess`) and the import roots,
    computed once and renewed every :data:`GRANT_SECONDS` with the import caches (so a
    module added since is seen). Shared by the threads that check specs."""

    def __init__(self, context: ProjectContext | None) -> None:
        self.context = context
        self.base_dir = context.root if context is not None else None
        self.renewed_at = -GRANT_SECONDS
        self.roots: list[Path] = []
        #: id(policy) -> (policy, its grant); the policy is kept so its id is not reused
        self.grants: dict[int, tuple[EnvironmentPolicy, HostAccess]] = {}
        self.lock = threading.Lock()

    def of(self, policy: EnvironmentPolicy) -> tuple[HostAccess, list[Path]]:
        """``policy``'s grant and the import roots, as they are now."""
        with self.lock:
            if time.monotonic() - self.renewed_at > GRANT_SECONDS:
                refresh_import_caches()
                self.roots = import_roots(self.base_dir)
                self.grants.clear()
                self.renewed_at = time.monotonic()
            found = self.grants.get(id(policy))
            if found is None or found[0] is not policy:
                env = policy.environment
                if env is None and self.context is not None:
                    env = self.context.env
                access = host_access(self.context, env, origin="bundle", resources=policy.resources)
                found = self.grants[id(policy)] = (policy, access)
            return found[1], self.roots


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
    grants = _Grants(context)

    def check(
        spec: Mapping[str, Any], policy: EnvironmentPolicy
    ) -> tuple[list[dict[str, Any]], list[Problem]]:
        try:
            model = load_spec_data(dict(spec), source="bundle spec")
        except KneoError as exc:
            return [exc.to_dict()], [Problem(ErrorCode.spec_invalid, exc.message)]
        access, spec_roots = grants.of(policy)
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
