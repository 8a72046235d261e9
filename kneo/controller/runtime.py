"""Which spec a run may use: the registry's active revision, and the approved-bundle rule.

The platform and the service call these before starting a run:

* ``{"bundle": name, "environment": env}`` -> :func:`resolve_bundle_for_run` returns the
  active revision's spec, number, digest and commit; the run records all four, so a run
  started on revision N finishes on N even if N+1 is promoted meanwhile.
* a spec path or inline spec -> :func:`require_approved_bundle` refuses it with 403
  ``bundle_not_approved`` where the environment's policy has
  ``runs.require_approved_bundle``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kneo.errors import BundleNotApproved, NotFound

if TYPE_CHECKING:
    from collections.abc import Iterator

    from kneo.policy.environment import EnvironmentPolicy
    from kneo.store.api import Store

#: Store metadata key: the environment policies the controller last read from the GitOps
#: repository (``environments/<env>.yaml``), merged stricter-wins into the project's.
POLICY_METADATA_KEY = "registry.environment_policies"


@dataclass(frozen=True)
class ResolvedBundle:
    """The bundle revision a run uses: its spec, revision, digest and commit."""

    spec: dict[str, Any]
    revision: int
    digest: str
    commit: str | None

    def __iter__(self) -> Iterator[object]:  # (spec, revision, digest, commit) unpacking
        return iter((self.spec, self.revision, self.digest, self.commit))

    def run_fields(self, name: str) -> dict[str, Any]:
        """The run columns that pin a run to this revision."""
        return {
            "bundle_name": name,
            "bundle_revision": self.revision,
            "spec_digest": self.digest,
            "bundle_commit": self.commit,
        }


def resolve_bundle_for_run(store: Store, bundle: str, environment: str) -> ResolvedBundle:
    """The active revision of ``bundle`` in ``environment``; ``not_found`` when none is."""
    record = store.registry.get_active(bundle, environment)
    if record is None:
        raise NotFound(
            f"bundle {bundle!r} has no active revision in {environment!r}; "
            "check `kneo registry get` and the controller's status",
            resource="bundle",
            bundle=bundle,
            environment=environment,
        )
    return ResolvedBundle(dict(record.spec), record.revision, record.digest, record.commit)


def requires_approved_bundle(env_policy: EnvironmentPolicy | Mapping[str, Any] | None) -> bool:
    """Whether an :class:`~kneo.policy.environment.EnvironmentPolicy` (or its dict) demands it."""
    if env_policy is None:
        return False
    if isinstance(env_policy, Mapping):
        runs = env_policy.get("runs") or {}
        return bool(runs.get("require_approved_bundle"))
    runs = getattr(env_policy, "runs", None)
    return bool(getattr(runs, "require_approved_bundle", False))


def require_approved_bundle(
    env_policy: EnvironmentPolicy | Mapping[str, Any] | None, *, environment: str | None = None
) -> None:
    """Refuse an ad-hoc spec (path or inline) where the environment runs only approved bundles."""
    if requires_approved_bundle(env_policy):
        env = environment or getattr(env_policy, "environment", None) or "this environment"
        raise BundleNotApproved(
            f"{env} runs only approved bundles: start the run with "
            f'{{"bundle": NAME, "environment": "{env}"}} instead of a spec',
            environment=env,
        )
