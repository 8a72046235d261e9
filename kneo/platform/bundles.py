"""The platform's side of the GitOps registry: bundle runs, the approved-bundle rule, and
promotion tasks resumed through the human-task API.

* :func:`run_bundle` starts a run on the **active** revision of a bundle in an environment
  (:func:`kneo.controller.runtime.resolve_bundle_for_run`). The run records bundle name,
  revision, spec digest and commit, and stores the revision's spec, so it finishes on that
  revision even when a newer one is promoted while it waits for a person.
* :func:`pin_spec_source` is the manager's hook before it loads a spec: a spec path or an
  inline spec is refused with 403 ``bundle_not_approved`` where the environment's policy has
  ``runs.require_approved_bundle``. That policy is the project's (``.kneo/config.yaml`` plus
  ``environments/<env>.yaml``) made stricter by what the controller last read from the
  GitOps repository (:data:`POLICY_METADATA_KEY`), so neither side can loosen the other.
* :func:`resume_promotion` is what ``PlatformManager.resume`` does for a continuation whose
  ``workflow_kind`` is ``promotion``: record the approver's decision
  (:func:`kneo.controller.promotion.record_promotion_decision`) and wake an attached
  controller; without one, the next reconcile activates the revision.
"""

from __future__ import annotations

import getpass
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kneo.controller.runtime import POLICY_METADATA_KEY
from kneo.errors import BundleNotApproved, InvalidRequest
from kneo.names import check_name
from kneo.platform.results import RunResult

if TYPE_CHECKING:
    from kneo.platform.manager import PlatformManager

PROMOTION_KIND = "promotion"
_CONTROLLER_ATTR = "_kneo_controller"


class BundleSpec(dict[str, Any]):
    """A registry revision's spec document, tagged with what pins a run to it.

    Only :func:`run_bundle` builds one (from the store), so a request body can never pose as
    an approved bundle: JSON decodes to plain dicts.
    """

    def __init__(
        self,
        data: Mapping[str, Any],
        *,
        name: str,
        environment: str,
        revision: int,
        digest: str,
        commit: str | None,
    ) -> None:
        super().__init__(data)
        self.name = name
        self.environment = environment
        self.revision = revision
        self.digest = digest
        self.commit = commit

    def run_fields(self) -> dict[str, Any]:
        """The run columns that pin a run to this revision."""
        return {
            "bundle_name": self.name,
            "bundle_revision": self.revision,
            "bundle_commit": self.commit,
        }


# --------------------------------------------------------------------------- policy


def approved_bundle_required(manager: PlatformManager, environment: str | None) -> bool:
    """Whether runs in ``environment`` must come from the registry (project or GitOps policy)."""
    if not environment:
        return False
    recorded = manager.store.get_metadata(POLICY_METADATA_KEY, None) or {}
    if bool((recorded.get(environment) or {}).get("require_approved_bundle")):
        return True
    project = getattr(manager, "project", None)
    if project is None:
        return False
    from kneo.platform.preparation import environment_requires_bundle

    return environment_requires_bundle(manager, project, environment)


def refuse_unapproved(manager: PlatformManager, environment: str | None) -> None:
    """403 ``bundle_not_approved`` for an ad-hoc spec where only approved bundles run."""
    if approved_bundle_required(manager, environment):
        raise BundleNotApproved(
            f"{environment} runs only approved bundles: start the run with "
            f'{{"bundle": NAME, "environment": "{environment}"}} (CLI: kneo run --bundle NAME '
            f"--env {environment}) instead of a spec",
            environment=environment,
        )


def pin_spec_source(
    manager: PlatformManager, *, spec_path: Any, spec: Any, environment: str | None
) -> BundleSpec | None:
    """The manager's hook before loading a spec: the pinned bundle, or ``None`` for a spec
    path / inline spec (refused where the environment requires approved bundles)."""
    if isinstance(spec, BundleSpec) and spec_path is None:
        if environment != spec.environment:
            raise InvalidRequest(
                f"bundle {spec.name!r} was resolved for {spec.environment!r}, not {environment!r}",
                field="environment",
            )
        return spec
    env = environment
    project = manager.project
    if env is None and project is not None:
        env = project.env if project.env_explicit else None
    refuse_unapproved(manager, env)
    return None


# --------------------------------------------------------------------------- bundle runs


def resolve(manager: PlatformManager, bundle: str, environment: str) -> BundleSpec:
    """The active revision of ``bundle`` in ``environment`` as a :class:`BundleSpec`."""
    from kneo.controller.runtime import resolve_bundle_for_run

    if not bundle or not environment:
        raise InvalidRequest(
            "a bundle run needs both a bundle name and an environment",
            field="bundle" if not bundle else "environment",
        )
    check_name(bundle, kind="bundle name", field="bundle")
    check_name(environment, kind="environment")
    found = resolve_bundle_for_run(manager.store, bundle, environment)
    return BundleSpec(
        found.spec,
        name=bundle,
        environment=environment,
        revision=found.revision,
        digest=found.digest,
        commit=found.commit,
    )


def run_bundle(
    manager: PlatformManager,
    *,
    bundle: str,
    environment: str,
    input_text: str,
    target: str = "workflow",
    async_mode: bool = False,
    timeout_seconds: float | None = None,
    metadata: Mapping[str, Any] | None = None,
    actor: str | None = None,
) -> RunResult:
    """Run (or, with ``async_mode``, queue) the active revision of ``bundle``."""
    pinned = resolve(manager, bundle, environment)
    meta = {
        "bundle": {
            "name": bundle,
            "environment": environment,
            "revision": pinned.revision,
            "digest": pinned.digest,
            "commit": pinned.commit,
        },
        **dict(metadata or {}),
    }
    kwargs: dict[str, Any] = {
        "input_text": input_text,
        "spec": pinned,
        "target": target,
        "environment": environment,
        "metadata": meta,
        "actor": actor,
    }
    if async_mode:
        result: RunResult = manager.start_run_from_spec(timeout_seconds=timeout_seconds, **kwargs)
        return result
    if timeout_seconds is not None:
        raise InvalidRequest("timeout_seconds applies to async_mode runs", field="timeout_seconds")
    done: RunResult = manager.run_from_spec(**kwargs)
    return done


# --------------------------------------------------------------------------- promotions


def attach_controller(manager: PlatformManager, controller: Any) -> None:
    """Let promotion decisions taken through ``manager`` wake this in-process controller."""
    setattr(manager, _CONTROLLER_ATTR, controller)


def attached_controller(manager: PlatformManager) -> Any:
    return getattr(manager, _CONTROLLER_ATTR, None)


def default_actor() -> str:
    """Who decides in local CLI mode without ``--actor``: the operating-system user."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return "unknown"


def resume_promotion(
    manager: PlatformManager,
    continuation_id: str,
    *,
    request_id: str,
    decision: str,
    content: str | None = None,
    actor: str | None = None,
) -> RunResult:
    """Record one approver's decision on a promotion task (there is no run to continue).

    The approver is ``actor`` (the API key's name over HTTP, ``--actor`` or the OS user in the
    CLI). The answer is a run-shaped response with ``run_id`` null: ``status`` is
    ``pending_approval`` while more approvals are needed, then ``approved`` or ``rejected``.
    """
    from kneo.controller.promotion import record_promotion_decision
    from kneo.errors import NotFound

    task = manager.store.get_continuation(continuation_id)
    if not any(r.get("request_id") == request_id for r in task.requests):
        raise NotFound(
            f"request {request_id!r} is not part of continuation {continuation_id}",
            resource="request",
            id=request_id,
        )
    approver = actor or default_actor()
    outcome = record_promotion_decision(
        manager.store, continuation_id, approver=approver, decision=decision, comment=content
    )
    controller = attached_controller(manager)
    if outcome.outcome is not None and controller is not None:
        controller.request_reconcile()
    status = outcome.outcome or "pending_approval"
    return PromotionResult(
        run_id="",
        status=status,
        continuation_id=continuation_id,
        human_intervention_required=outcome.outcome is None,
        metadata={
            "workflow_kind": PROMOTION_KIND,
            "promotion": outcome.to_dict(),
            "approver": approver,
        },
    )


class PromotionResult(RunResult):
    """The resume response of a promotion task: a run response whose ``run_id`` is null."""

    def to_dict(self, *, show_personal: bool = False) -> dict[str, Any]:
        data = super().to_dict(show_personal=show_personal)
        data["run_id"] = None
        return data
