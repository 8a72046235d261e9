"""RunAdmission: the one place that decides whether a run may start.

Every way a run starts asks it: the HTTP routes and the CLI through
``PlatformManager.run_from_spec`` / ``start_run_from_spec`` (:meth:`RunAdmission.admit`, before
the spec is prepared), and a worker through ``execute_run`` (:meth:`RunAdmission.readmit`,
again before a queued run executes, since the rules may have changed since it was accepted).
Two rules, both per environment:

* **approved bundles only** — ``runs.require_approved_bundle`` in the project's policy
  (``.kneo/config.yaml`` plus ``environments/<env>.yaml``) or in what the controller last read
  from the GitOps repository (:data:`~kneo.controller.runtime.POLICY_METADATA_KEY`); either
  side can only make it stricter. A spec path or inline spec is then 403
  ``bundle_not_approved``; a registry revision (:class:`~kneo.platform.bundles.BundleSpec`)
  passes, pinned to the environment it was resolved for.
* **the service-managed policy** — a policy stored with ``PUT /v1/policies/environment/{env}``
  (:func:`stored_policy`) wins over the project's for that environment: the spec, with a
  request's ``overrides`` merged in, is checked against it (``kneo.policy.check``) and refused
  with the check's first error (400 ``E_POLICY_*``). Bundle runs are not checked against it:
  they run the approved revision as signed.

Both metadata keys of an environment are read in one query per decision
(``Store.metadata_snapshot``); the project's environment files are read once per change of
their stamps (:func:`file_stamp`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from kneo.controller.runtime import POLICY_METADATA_KEY
from kneo.errors import BundleNotApproved, InvalidRequest
from kneo.lrucache import LRUCache
from kneo.platform.bundles import BundleSpec
from kneo.spec.compiler import SpecCompiler
from kneo.spec.models import Spec
from kneo.spec.project import PolicyEnforcement, ProjectContext
from kneo.store import RunRecord, Store

#: metadata key prefix of the service-managed environment policies
POLICY_PREFIX = "policy.environment."


def stored_policy(store: Store, environment: str | None) -> PolicyEnforcement | None:
    """The service-managed policy for ``environment`` as a model, or ``None``."""
    if not environment:
        return None
    value = store.get_metadata(POLICY_PREFIX + environment)
    return PolicyEnforcement.model_validate(value) if value is not None else None


def file_stamp(path: str | Path) -> tuple[int, int, int, int] | Literal[False] | None:
    """``(device, inode, mtime_ns, size)`` of a file, ``None`` when it does not exist,
    ``False`` when it cannot be read (never cache on that)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError:
        return False
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)


def environment_files(root: str | Path, env: str) -> list[str]:
    """The two names an environment policy file may have: ``environments/<env>.yaml|yml``."""
    from kneo.policy.environment import ENVIRONMENTS_DIR

    folder = os.path.join(root, ENVIRONMENTS_DIR)
    return [os.path.join(folder, f"{env}.yaml"), os.path.join(folder, f"{env}.yml")]


@dataclass(frozen=True)
class Admitted:
    """What a new run may be prepared from: a spec path or document (a request's overrides
    already merged in), or the registry revision it is pinned to (``bundle``)."""

    spec_path: str | Path | None
    spec: Spec | Mapping[str, Any] | None
    bundle: BundleSpec | None = None


class RunAdmission:
    """Decides whether a run may start in an environment (see the module docstring)."""

    def __init__(
        self,
        *,
        store: Store,
        compiler: SpecCompiler,
        project: ProjectContext | None,
        cache_entries: int,
    ) -> None:
        self.store = store
        self.compiler = compiler
        self.project = project
        #: "approved bundles only?" per environment, by policy file stamps
        self._bundle_rules: LRUCache[tuple[Any, ...], bool] = LRUCache(cache_entries)

    # ------------------------------------------------------------------ decisions

    def admit(
        self,
        *,
        spec_path: str | Path | None,
        spec: Spec | Mapping[str, Any] | None,
        environment: str | None,
        overrides: Mapping[str, Any] | None = None,
    ) -> Admitted:
        """Whether a new run from this source may start; raises 403 ``bundle_not_approved``
        or the policy check's error, before the spec is prepared."""
        if isinstance(spec, BundleSpec) and spec_path is None:
            if environment != spec.environment:
                raise InvalidRequest(
                    f"bundle {spec.name!r} was resolved for {spec.environment!r}, "
                    f"not {environment!r}",
                    field="environment",
                )
            return Admitted(None, spec, bundle=spec)
        env = environment
        if env is None and self.project is not None:
            env = self.project.env if self.project.env_explicit else None
        with self._snapshot(environment):
            self.refuse_unapproved(env)  # 403 before touching the spec
            policy = stored_policy(self.store, environment)
        if not overrides and policy is None:
            return Admitted(spec_path, spec)
        data = self._check_source(spec_path, spec, environment, overrides or {}, policy)
        return Admitted(None, data) if overrides else Admitted(spec_path, spec)

    def readmit(self, run: RunRecord) -> None:
        """Whether a queued run may execute now: an environment that has since come to
        require approved bundles runs no ad-hoc spec, and a service-managed policy stored
        since is checked against the run's spec. A bundle run passes."""
        if run.bundle_name is not None:
            return
        with self._snapshot(run.environment):
            self.refuse_unapproved(run.environment)
            policy = stored_policy(self.store, run.environment)
        if policy is None:
            return
        from kneo.spec.loader import load_spec_data

        source = f"run {run.run_id}"
        base = (run.metadata or {}).get("base_dir")
        model = load_spec_data(dict(run.spec), source=source)
        self._check(model, run.environment, Path(base) if base else None, source, policy)

    def approved_bundle_required(self, environment: str | None) -> bool:
        """Whether runs in ``environment`` must come from the registry (project or GitOps policy)."""
        if not environment:
            return False
        recorded = self.store.get_metadata(POLICY_METADATA_KEY, None) or {}
        if bool((recorded.get(environment) or {}).get("require_approved_bundle")):
            return True
        if self.project is None:
            return False
        return self._project_requires_bundle(self.project, environment)

    def refuse_unapproved(self, environment: str | None) -> None:
        """403 ``bundle_not_approved`` for an ad-hoc spec where only approved bundles run."""
        if self.approved_bundle_required(environment):
            raise BundleNotApproved(
                f"{environment} runs only approved bundles: start the run with "
                f'{{"bundle": NAME, "environment": "{environment}"}} (CLI: kneo run --bundle '
                f"NAME --env {environment}) instead of a spec",
                environment=environment,
            )

    # ------------------------------------------------------------------ internals

    def _snapshot(self, environment: str | None) -> contextlib.AbstractContextManager[None]:
        """Both policy keys of ``environment`` in one query for the decision's reads."""
        if not environment:
            return contextlib.nullcontext()
        return self.store.metadata_snapshot((POLICY_PREFIX + environment, POLICY_METADATA_KEY))

    def _project_requires_bundle(self, project: ProjectContext, environment: str) -> bool:
        """The project config's or ``environments/<env>.yaml``'s rule, cached by the files'
        stamps, so a run does not re-read and re-validate the YAML file (the project config
        itself is read once, when the project is discovered)."""
        from kneo.policy.environment import resolve_for_context

        stamps = tuple(file_stamp(f) for f in environment_files(project.root, environment))
        key = (id(project), environment, stamps)
        cacheable = False not in stamps
        if cacheable:
            found = self._bundle_rules.get(key)
            if found is not None:
                return found
        required = bool(resolve_for_context(project, environment).runs.require_approved_bundle)
        if cacheable:
            self._bundle_rules.put(key, required)
        return required

    def _check_source(
        self,
        spec_path: str | Path | None,
        spec: Spec | Mapping[str, Any] | None,
        environment: str | None,
        overrides: Mapping[str, Any],
        policy: PolicyEnforcement | None,
    ) -> dict[str, Any]:
        """Load the source with ``overrides`` merged in and check it; the resolved document."""
        from kneo.spec.loader import deep_merge, load_spec, load_spec_data

        config = self.project.config if self.project is not None else None
        if spec_path is not None:
            loaded = load_spec(spec_path, env=environment, project=config)
            source, data, model = str(spec_path), loaded.data, loaded.spec
            if overrides:
                data = deep_merge(data, overrides)
                model = load_spec_data(data, source=source, project=None)
            self._check(model, environment, loaded.base_dir, source, policy)
            return data
        if spec is None:
            raise InvalidRequest("give exactly one of spec_path or spec", field="spec_path")
        document = (
            spec.model_dump(mode="json", by_alias=True, exclude_unset=True)
            if isinstance(spec, Spec)
            else dict(spec)
        )
        data = deep_merge(document, overrides) if overrides else document
        model = load_spec_data(data, source="<inline>", project=config)
        self._check(model, environment, None, "<inline>", policy)
        return data

    def _check(
        self,
        model: Spec,
        environment: str | None,
        base_dir: Path | None,
        source: str,
        policy: PolicyEnforcement | None,
    ) -> None:
        from kneo.policy.check import check_spec
        from kneo.spec.compiler import diagnostics_error

        report = check_spec(
            model,
            env=environment,
            context=self.project,
            tool_registry=self.compiler.tool_registry,
            runtime_registry=self.compiler.runtime_registry,
            base_dir=base_dir,
            policy=policy,
        )
        if not report.valid:
            raise diagnostics_error(report.diagnostics, source=source)
