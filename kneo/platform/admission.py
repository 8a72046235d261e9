"""RunAdmission: the one place that decides whether a run may start.

Every way a run starts asks it: the HTTP routes and the CLI through
``PlatformManager.run_from_spec`` / ``start_run_from_spec`` (:meth:`RunAdmission.admit`, before
the spec is loaded, then :meth:`RunAdmission.check` on the one loaded spec), a replay through
``replay_run`` (:meth:`RunAdmission.admit_replay`: a replay is a new run), and a worker through
``execute_run`` (:meth:`RunAdmission.readmit`, again before a queued run executes, since the
rules may have changed since it was accepted).

First, **which environment** (:meth:`RunAdmission.environment`): the one the run names, else
the project's default; one the project declares
(:func:`~kneo.spec.project.judge_environment`), or for a bundle run one the watched repository
declares, else 400 ``E_UNKNOWN_ENV``. The run is recorded under it and every rule below is
read for it, so an omitted environment is judged as exactly the one the run is recorded under.
Then two rules, both per environment:

* **approved bundles only** — ``runs.require_approved_bundle`` in the project's policy
  (``.kneo/config.yaml`` plus ``environments/<env>.yaml``) or in what the controller last read
  from the GitOps repository (:data:`~kneo.controller.runtime.POLICY_METADATA_KEY`); either
  side can only make it stricter. A spec path or inline spec is then 403
  ``bundle_not_approved``; a registry revision (:class:`~kneo.platform.bundles.BundleSpec`)
  passes, pinned to the environment it was resolved for. A replay of a bundle run passes
  while its revision is still the active one; a queued bundle run passes (it is pinned).
* **the environment's policy** — the spec (a request's ``overrides`` merged in) is checked
  (``kneo.policy.check``) against the policy stored with ``PUT /v1/policies/environment/{env}``
  (:func:`stored_policy`) where there is one, else against the project's for that
  environment, and refused with the check's first error (400 ``E_POLICY_*``). The stored
  policy replaces the project's rather than adding to it, the same for spec runs and bundle
  runs: signing and promotion checked a revision against the repository's policy, and the
  operator's stored policy is what the environment enforces now. A worker checks a queued
  run again only against a stored policy (the one rule that changes without a deployment).

What runs may reach and spend (``resources:``, ``budgets:``) comes from the project's
``environments/<env>.yaml`` and from what the controller published for the environment from
the GitOps repository's, stricter-wins (:meth:`RunAdmission.run_limits`): the grant every
run executes under and the spec check at admission read that one merge.

Both metadata keys of an environment are read in one query per decision
(``store.metadata.metadata_snapshot``; a worker's in the transaction that starts the run); the
project's environment files are read once per change of their stamps (:func:`file_stamp`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import time
from collections.abc import Collection, Mapping
from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from kneo.controller.runtime import POLICY_METADATA_KEY
from kneo.errors import BundleNotApproved, InvalidRequest
from kneo.jsontext import content_hash
from kneo.lrucache import LRUCache
from kneo.names import check_name
from kneo.platform.bundles import BundleSpec
from kneo.platform.limits import ProjectLimitsGate, limits_of
from kneo.policy.access import HostAccess, Origin
from kneo.policy.check import check_spec, host_access
from kneo.policy.environment import ENVIRONMENTS_DIR, resolve_for_context, with_run_limits
from kneo.spec.compiler import SpecCompiler, diagnostics_error
from kneo.spec.loader import load_spec_data
from kneo.spec.models import Spec
from kneo.spec.project import (
    IMPLICIT_ENVIRONMENT,
    ProjectContext,
    declared_environments,
    judge_environment,
)
from kneo.spec.project_blocks import PolicyEnforcement
from kneo.store import RunRecord

if TYPE_CHECKING:
    from kneo.policy.check import SpecReport
    from kneo.policy.environment import EnvironmentPolicy, ResourcesPolicy
    from kneo.store.api import Store
    from kneo.store.transaction import Transaction


#: metadata key prefix of the service-managed environment policies
POLICY_PREFIX = "policy.environment."
#: how long a run's grant may reuse the controller's published ``resources:``/``budgets:``
PUBLISHED_TTL_SECONDS = 1.0


def stored_policy(store: Store, environment: str | None) -> PolicyEnforcement | None:
    """The service-managed policy for ``environment`` as a model, or ``None``."""
    if not environment:
        return None
    value = store.metadata.get_metadata(POLICY_PREFIX + environment)
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


@functools.lru_cache(maxsize=64)
def environment_files(root: str | Path, env: str) -> tuple[str, str]:
    """The two names an environment policy file may have: ``environments/<env>.yaml|yml``
    (remembered: each run asks twice, at admission and when it executes)."""
    folder = os.path.join(root, ENVIRONMENTS_DIR)
    return os.path.join(folder, f"{env}.yaml"), os.path.join(folder, f"{env}.yml")


@dataclass(frozen=True)
class Admitted:
    """What a new run may be prepared from: a spec path or document, or the registry revision
    it is pinned to (``bundle``), in which environment; and the policy to check it against
    (``policy``: the stored one, ``None`` for the project's), with ``policy_key`` naming the
    stored one's content for a cache of checked specs (with what the GitOps controller
    published, ``published``)."""

    spec_path: str | Path | None
    spec: Spec | Mapping[str, Any] | None
    #: the environment the run is judged and recorded under (:meth:`RunAdmission.environment`)
    environment: str
    bundle: BundleSpec | None = None
    policy: PolicyEnforcement | None = None
    policy_key: str | None = None
    #: the GitOps repository's ``resources:``/``budgets:`` (:meth:`RunAdmission.run_limits`)
    published: Mapping[str, Any] | None = None


@dataclass(kw_only=True, eq=False, repr=False)
class RunAdmission:
    """Decides whether a run may start in an environment (see the module docstring)."""

    store: Store
    compiler: SpecCompiler
    project: ProjectContext | None
    cache_entries: InitVar[int]
    #: an eval's throwaway platform (``kneo.evals``): the spec under test is the one a bundle
    #: of it carries, so ``runs.require_approved_bundle`` takes no part there; every other
    #: rule of the environment does. Set in code only, never from a request.
    rehearsal: bool = False
    #: "approved bundles only?" per environment, by policy file stamps
    _bundle_rules: LRUCache[tuple[Any, ...], bool] = field(init=False)
    #: what runs may reach, per environment and origin, by policy file stamps
    _grants: LRUCache[tuple[Any, ...], HostAccess] = field(init=False)
    #: (when read, by ``time.monotonic``; the controller's published policies) for grants
    _recent: tuple[float, Mapping[str, Any]] = field(init=False, default=(-1e9, {}))
    #: the project's ``limits:`` (:mod:`kneo.platform.limits`); ``None``: it sets none
    limits: ProjectLimitsGate | None = field(init=False, default=None)

    def __post_init__(self, cache_entries: int) -> None:
        self._bundle_rules = LRUCache(cache_entries)
        self._grants = LRUCache(cache_entries)
        limits = limits_of(self.project.config if self.project is not None else None)
        if limits.enforced:
            self.limits = ProjectLimitsGate(self.store, limits)

    # ------------------------------------------------------------------ decisions

    def admit(
        self,
        *,
        spec_path: str | Path | None,
        spec: Spec | Mapping[str, Any] | None,
        environment: str | None,
    ) -> Admitted:
        """Whether a new run from this source may start, before the spec is loaded, and in
        which environment (:meth:`environment`: an omitted one is the project's default,
        judged as exactly that): raises 403 ``bundle_not_approved``, 400 ``E_UNKNOWN_ENV``;
        says which policy :meth:`check` applies to the spec."""
        bundle = spec if isinstance(spec, BundleSpec) and spec_path is None else None
        if bundle is not None and environment != bundle.environment:
            raise InvalidRequest(
                f"bundle {bundle.name!r} was resolved for {bundle.environment!r}, "
                f"not {environment!r}",
                field="environment",
            )
        env = self.default_environment(environment)
        with self._snapshot(env):
            if bundle is None:
                self.refuse_unapproved(env)  # 403 before touching the spec
            self._judge(environment, bundle=bundle is not None)
            value = self._stored(env)
            published = self._published_limits(env)
        if value is None and published is None:
            return Admitted(spec_path, spec, env, bundle)
        policy = PolicyEnforcement.model_validate(value) if value is not None else None
        key = content_hash([value, published])
        return Admitted(spec_path, spec, env, bundle, policy, key, published)

    def within_limits(self, *, queued: bool) -> None:
        """Whether the project's ``limits:`` let a new run start now (executing at once, or
        ``queued`` for a worker): ``429 project_limit_reached`` naming the limit otherwise.
        Nothing is read for a project without limits."""
        if self.limits is not None:
            self.limits.admit(queued=queued)

    def take_slot(self, tx: Transaction) -> None:
        """In the transaction that starts (or takes over) a run for a worker: ``429
        project_limit_reached`` when the project is at its ``max_running_runs``, counted
        under the project's row lock (:meth:`ProjectLimitsGate.take_slot
        <kneo.platform.limits.ProjectLimitsGate.take_slot>`)."""
        if self.limits is not None:
            self.limits.take_slot(tx)

    def default_environment(self, requested: str | None) -> str:
        """``requested``, else the project's default environment (not yet judged)."""
        default = self.project.env if self.project is not None else IMPLICIT_ENVIRONMENT
        return check_name(requested or default, kind="environment", field="environment")

    def environment(self, requested: str | None, *, bundle: bool = False) -> str:
        """The environment a run is judged and recorded under: ``requested``, else the
        project's default; one the project declares
        (:meth:`~kneo.spec.project.ProjectContext.declared_environments`) or, for a
        ``bundle`` run, one the watched repository declares (the controller activates
        signed revisions only there and publishes its rules), else 400 ``E_UNKNOWN_ENV``."""
        with self._snapshot(self.default_environment(requested)):
            return self._judge(requested, bundle=bundle)

    def _judge(self, requested: str | None, *, bundle: bool) -> str:
        """:meth:`environment` inside a snapshot of the environment's metadata."""
        project = self.project
        declared = (
            project.declared_environments()
            if project is not None
            else declared_environments(None, None)
        )
        default = project.env if project is not None else IMPLICIT_ENVIRONMENT
        also: Collection[str] = ()
        if bundle and (requested or default) not in declared:
            also = tuple(self.store.metadata.get_metadata(POLICY_METADATA_KEY, None) or ())
        return judge_environment(requested, default, declared, also=also)

    def check(
        self,
        model: Spec,
        *,
        environment: str | None,
        base_dir: Path | None,
        source: str,
        policy: PolicyEnforcement | None,
        origin: Origin = "spec",
        published: Mapping[str, Any] | None = None,
    ) -> SpecReport:
        """The spec's report against the environment's policy (``policy``, the stored one,
        else the project's) and what the project lets specs of ``origin`` reach (narrowed by
        the GitOps repository's ``resources:`` too, ``published``); raises the check's first
        error when it is not valid."""
        report = check_spec(
            model,
            env=environment,
            context=self.project,
            tool_registry=self.compiler.tool_registry,
            runtime_registry=self.compiler.runtime_registry,
            base_dir=base_dir,
            policy=policy,
            origin=origin,
            resources=self._resources(environment, published),
        )
        if not report.valid:
            raise diagnostics_error(report.diagnostics, source=source)
        return report

    def run_access(self, run: RunRecord) -> HostAccess:
        """What ``run`` may reach on the host: a bundle run as a signed bundle, any other
        as a spec, in its environment (the project's default when it has none)."""
        return self.host_access(run.environment, "bundle" if run.bundle_name else "spec")

    def host_access(self, environment: str | None, origin: Origin) -> HostAccess:
        """The project's grant for ``origin`` in ``environment``, narrowed and budgeted by
        :meth:`run_limits`; read again when the environment's file or published limits
        change."""
        project = self.project
        env = environment or (project.env if project is not None else None)
        stamps: tuple[Any, ...] = ()
        if project is not None and env:
            stamps = tuple(file_stamp(f) for f in environment_files(project.root, env))
        published = self._published_limits(env, recent=True)
        key = (env, origin, stamps, content_hash(published) if published else None)
        found = self._grants.get(key) if False not in stamps else None
        if found is not None:
            return found
        policy = self._merged_limits(env, published)
        grant = host_access(
            project,
            env,
            origin=origin,
            resources=policy.resources if policy else None,
            budgets=policy.budgets if policy else None,
        )
        daily = self.limits.budget if self.limits is not None else None
        if daily is not None:  # the project's daily budgets, read before each model call
            grant = dataclasses.replace(grant, project_budget=daily)
        if False not in stamps:
            self._grants.put(key, grant)
        return grant

    def run_limits(self, environment: str | None) -> EnvironmentPolicy | None:
        """Where ``resources:`` and ``budgets:`` of runs in ``environment`` come from: the
        project's ``environments/<env>.yaml`` and what the GitOps controller last read from
        the watched repository's (:data:`~kneo.controller.runtime.POLICY_METADATA_KEY`),
        stricter-wins (:func:`~kneo.policy.environment.with_run_limits`); ``None``: neither."""
        return self._merged_limits(environment, self._published_limits(environment))

    def _resources(
        self, environment: str | None, published: Mapping[str, Any] | None
    ) -> ResourcesPolicy | None:
        """The ``resources:`` a spec is checked against: ``None`` (the check reads the
        project's file) unless the GitOps repository published some for the environment."""
        if not published or "resources" not in published:
            return None  # budgets take no part in a spec's check
        merged = self._merged_limits(environment, published)
        return merged.resources if merged is not None else None

    def _published_limits(
        self, environment: str | None, *, recent: bool = False
    ) -> dict[str, Any] | None:
        """The GitOps repository's ``resources:``/``budgets:`` of ``environment``. With
        ``recent`` (a run's grant, built at each execution) a read at most
        :data:`PUBLISHED_TTL_SECONDS` old is reused: one query per run cost ~8 % of a short
        run (``bench/admission.py``), and the controller publishes only at a reconcile."""
        if not environment:
            return None
        if recent:
            read_at, recorded = self._recent
            if time.monotonic() - read_at > PUBLISHED_TTL_SECONDS:
                recorded = self.store.metadata.get_metadata(POLICY_METADATA_KEY, None) or {}
                self._recent = (time.monotonic(), recorded)
        else:
            recorded = self.store.metadata.get_metadata(POLICY_METADATA_KEY, None) or {}
        entry = recorded.get(environment) or {}
        limits = {k: entry[k] for k in ("resources", "budgets") if entry.get(k)}
        return limits or None

    def _merged_limits(
        self, environment: str | None, published: Mapping[str, Any] | None
    ) -> EnvironmentPolicy | None:
        project = self.project
        env = environment or (project.env if project is not None else None)
        local = resolve_for_context(project, env) if project is not None and env else None
        return with_run_limits(local, published)

    def readmit(self, run: RunRecord, tx: Transaction) -> None:
        """Whether a queued run may execute now: an environment that has since come to
        require approved bundles runs no ad-hoc spec (a bundle run is pinned to its revision),
        and a service-managed policy stored since (or ``resources:`` the GitOps repository
        published) is checked against the run's spec. The rules are read in ``tx``, the
        transaction that starts the run: the ones it starts under, at no extra read."""
        approved = run.bundle_name is not None
        rules = self._recorded_rules(run, approved=approved, tx=tx)
        if rules[0] is not None or "resources" in (rules[1] or {}):
            self._check_recorded(run, rules, approved=approved)

    def admit_replay(self, run: RunRecord) -> BundleSpec | None:
        """Whether a new run may start from ``run``'s recorded spec (a replay), under the
        rules a start meets now: a bundle run's revision passes as approved while it is the
        active one in its environment (returned: the replay is pinned to it), otherwise the
        recorded spec is an ad-hoc spec; the spec is checked against the environment's
        policy (the stored one, else the project's)."""
        pinned = self._active_revision(run)
        rules = self._recorded_rules(run, approved=pinned is not None)
        self._check_recorded(run, rules, approved=pinned is not None)
        return pinned

    def approved_bundle_required(self, environment: str | None) -> bool:
        """Whether runs in ``environment`` must come from the registry (project or GitOps policy)."""
        if not environment:
            return False
        recorded = self.store.metadata.get_metadata(POLICY_METADATA_KEY, None) or {}
        if bool((recorded.get(environment) or {}).get("require_approved_bundle")):
            return True
        if self.project is None:
            return False
        return self._project_requires_bundle(self.project, environment)

    def refuse_unapproved(self, environment: str | None) -> None:
        """403 ``bundle_not_approved`` for an ad-hoc spec where only approved bundles run
        (never in a :attr:`rehearsal`)."""
        if not self.rehearsal and self.approved_bundle_required(environment):
            raise BundleNotApproved(
                f"{environment} runs only approved bundles: start the run with "
                f'{{"bundle": NAME, "environment": "{environment}"}} (CLI: kneo run --bundle '
                f"NAME --env {environment}) instead of a spec",
                environment=environment,
            )

    # ------------------------------------------------------------------ internals

    def _snapshot(
        self, environment: str | None, tx: Transaction | None = None
    ) -> contextlib.AbstractContextManager[None]:
        """Both policy keys of ``environment`` in one query for the decision's reads."""
        if not environment:
            return contextlib.nullcontext()
        keys = (POLICY_PREFIX + environment, POLICY_METADATA_KEY)
        return self.store.metadata.metadata_snapshot(keys, tx)

    def _stored(self, environment: str | None) -> Any:
        """The stored policy document of ``environment`` (``None``: none is stored)."""
        return (
            self.store.metadata.get_metadata(POLICY_PREFIX + environment) if environment else None
        )

    def _recorded_rules(
        self, run: RunRecord, *, approved: bool, tx: Transaction | None = None
    ) -> tuple[PolicyEnforcement | None, dict[str, Any] | None]:
        """For a recorded run's spec: refuse it where only approved bundles run (unless
        ``approved``); the environment's stored policy and published limits (read in
        ``tx`` when given)."""
        with self._snapshot(run.environment, tx):
            if not approved:
                self.refuse_unapproved(run.environment)
            if run.environment:  # still one the project (or, for a bundle, the repo) declares
                self._judge(run.environment, bundle=approved)
            return (
                stored_policy(self.store, run.environment),
                self._published_limits(run.environment),
            )

    def _check_recorded(
        self,
        run: RunRecord,
        rules: tuple[PolicyEnforcement | None, dict[str, Any] | None],
        *,
        approved: bool,
    ) -> None:
        """:meth:`check` on a recorded run's spec, in its environment and directory; as a
        signed bundle only when it runs as its ``approved`` revision."""
        source = f"run {run.run_id}"
        base = (run.metadata or {}).get("base_dir")
        model = load_spec_data(dict(run.spec), source=source)
        self.check(
            model,
            environment=run.environment,
            base_dir=Path(base) if base else None,
            source=source,
            policy=rules[0],
            origin="bundle" if approved else "spec",
            published=rules[1],
        )

    def _active_revision(self, run: RunRecord) -> BundleSpec | None:
        """``run``'s registry revision when it is still the active one in its environment."""
        if run.bundle_name is None or not run.environment:
            return None
        active = self.store.registry.get_active(run.bundle_name, run.environment)
        if active is None or active.revision != run.bundle_revision:
            return None
        return BundleSpec(
            run.spec,
            name=run.bundle_name,
            environment=run.environment,
            revision=active.revision,
            digest=active.digest,
            commit=active.commit,
        )

    def _project_requires_bundle(self, project: ProjectContext, environment: str) -> bool:
        """The project config's or ``environments/<env>.yaml``'s rule, cached by the files'
        stamps, so a run does not re-read and re-validate the YAML file (the project config
        itself is read once, when the project is discovered)."""
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
