"""The platform's side of the GitOps registry: bundle runs and promotion tasks resumed
through the human-task API.

* :func:`run_bundle` starts a run on the **active** revision of a bundle in an environment
  (:func:`kneo.controller.runtime.resolve_bundle_for_run`). The run records bundle name,
  revision, spec digest and commit, and stores the revision's spec, so it finishes on that
  revision even when a newer one is promoted while it waits for a person. Its
  :class:`BundleSpec` is what the admission gate (:mod:`kneo.platform.admission`) lets run
  where an environment requires approved bundles.
* :func:`split` picks the revision a new run starts on while a rollout is in force: the
  controller promotes a revision under a ``rollout:`` policy as the registry's active one
  (the canary) and records a rollout (:mod:`kneo.store.rollouts`) naming the one it replaces
  (the stable). While the rollout moves, a new run takes the canary or the stable revision
  by :func:`~kneo.controller.rollouts.track_of` over its session (else a key of its own) at
  the rollout's share; once it is aborted every new run takes the stable revision; once it
  is promoted, the active one. The choice is recorded on the run (``metadata.rollout``) and
  counted in the rollout's runs by the transaction that creates the run. A run keeps the
  revision it started on, so one paused on the canary resumes on the canary after an abort.
* :func:`resume_promotion` is what ``PlatformManager.resume`` does for a continuation whose
  ``workflow_kind`` is ``promotion``: record the approver's decision
  (:func:`kneo.controller.promotion.record_promotion_decision`) and wake an attached
  controller (:func:`attach_controller`); without one, a reconcile request queued for the
  leader (:mod:`kneo.platform.reconcile`) has it activate the revision at once.

Both act in the manager's project: its store view holds that project's registry only, so a
run resolves a bundle of its own project, and a decision wakes its own project's source.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeGuard

from kneo.controller.promotion import record_promotion_decision
from kneo.controller.rollouts import track_of
from kneo.controller.runtime import resolve_bundle_for_run
from kneo.errors import InvalidRequest, NotFound
from kneo.names import check_name
from kneo.platform.reconcile import DEFAULT_NAME, lock_name
from kneo.platform.results import RunResult
from kneo.projects import DEFAULT_PROJECT

if TYPE_CHECKING:
    from kneo.controller.projects import ProjectControllers
    from kneo.controller.runtime import ResolvedBundle
    from kneo.controller.watch import Triggerable
    from kneo.engine.human import Decision
    from kneo.platform.decisions import Decisions
    from kneo.platform.runs import Runs
    from kneo.store import BundleRevision, Store


PROMOTION_KIND = "promotion"


class BundleRunner(Protocol):
    """What :func:`run_bundle` needs of a platform (``PlatformManager`` is one): its store
    and its :class:`~kneo.platform.runs.Runs`."""

    @property
    def store(self) -> Store: ...

    @property
    def runs(self) -> Runs: ...


class DecidingPlatform(Protocol):
    """What :func:`attach_controller` needs of a platform (``PlatformManager`` is one)."""

    @property
    def decisions(self) -> Decisions: ...

    @property
    def store(self) -> Store: ...


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

    @classmethod
    def of(
        cls, record: ResolvedBundle | BundleRevision, *, name: str, environment: str
    ) -> BundleSpec:
        """``record``'s spec, tagged with its revision, digest and commit."""
        return cls(
            record.spec,
            name=name,
            environment=environment,
            revision=record.revision,
            digest=record.digest,
            commit=record.commit,
        )


# --------------------------------------------------------------------------- bundle runs


def _check_key(bundle: str, environment: str) -> None:
    """A bundle run names both a valid bundle and a valid environment."""
    if not bundle or not environment:
        raise InvalidRequest(
            "a bundle run needs both a bundle name and an environment",
            field="bundle" if not bundle else "environment",
        )
    check_name(bundle, kind="bundle name", field="bundle")
    check_name(environment, kind="environment")


def resolve(store: Store, bundle: str, environment: str) -> BundleSpec:
    """The active revision of ``bundle`` in ``environment`` as a :class:`BundleSpec`."""
    _check_key(bundle, environment)
    found = resolve_bundle_for_run(store, bundle, environment)
    return BundleSpec.of(found, name=bundle, environment=environment)


#: rollout statuses whose canary still takes a share of new runs
MOVING = ("progressing", "paused")


def split(
    store: Store, bundle: str, environment: str, session_id: str | None
) -> tuple[BundleSpec, dict[str, Any] | None]:
    """The revision a new run of ``bundle`` in ``environment`` starts on, and what to record
    of the choice (``None``: no rollout concerns it). One read of the active revision and
    the bundle's newest rollout; a run on the stable side reads that revision too."""
    _check_key(bundle, environment)
    record, rollout = store.rollouts.serving(bundle, environment)
    if record is None:
        resolve_bundle_for_run(store, bundle, environment)  # not_found, as without a rollout
        raise AssertionError("unreachable")  # pragma: no cover
    track = None
    if rollout is not None and rollout.canary_revision == record.revision:
        if rollout.status in MOVING:
            key = session_id or secrets.token_hex(8)
            track = track_of(key, rollout.rollout_id, rollout.weight)
        elif rollout.status == "aborted":
            track = "stable"
    if rollout is not None and track == "stable":
        record = store.registry.get_revision(bundle, environment, rollout.stable_revision)
    chosen = BundleSpec.of(record, name=bundle, environment=environment)
    if rollout is None or track is None:
        return chosen, None
    return chosen, {"id": rollout.rollout_id, "track": track, "revision": chosen.revision}


def run_bundle(
    manager: BundleRunner,
    *,
    bundle: str,
    environment: str,
    input_text: str,
    target: str = "workflow",
    async_mode: bool = False,
    timeout_seconds: float | None = None,
    metadata: Mapping[str, Any] | None = None,
    actor: str | None = None,
    session_id: str | None = None,
    run_id: str | None = None,
) -> RunResult:
    """Run (or, with ``async_mode``, queue) the active revision of ``bundle`` in
    ``environment``: one the project or the watched repository declares (400
    ``E_UNKNOWN_ENV`` before the registry is asked)."""
    from kneo.platform.preparation import (
        RunRequest,  # import cycle: preparation imports this module
    )

    if bundle and environment:
        check_name(bundle, kind="bundle name", field="bundle")
        manager.runs.admission.environment(environment, bundle=True)
    pinned, rollout = split(manager.store, bundle, environment, session_id)
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
    if rollout is not None:
        meta["rollout"] = rollout
    request = RunRequest(
        input_text=input_text,
        spec=pinned,
        target=target,
        environment=environment,
        metadata=meta,
        actor=actor,
        timeout_seconds=timeout_seconds,
        session_id=session_id,
        run_id=run_id,
    )
    return manager.runs.start_run(request) if async_mode else manager.runs.run(request)


# --------------------------------------------------------------------------- promotions


def attach_controller(manager: DecidingPlatform, controller: Triggerable) -> None:
    """Let promotion decisions taken through ``manager`` wake this in-process controller
    (every project's: the manager's project's source)."""
    if _every_project(controller):
        controller = _SourceWaker(controller, manager.store.project)
    manager.decisions.controller = controller


def _every_project(controller: Triggerable) -> TypeGuard[ProjectControllers]:
    """Whether ``controller`` leads every project's source (it finds one by project)."""
    return callable(getattr(controller, "controller_for", None))


class _SourceWaker:
    """Wakes one project's source of a :class:`~kneo.controller.projects.ProjectControllers`."""

    def __init__(self, controllers: ProjectControllers, project: str) -> None:
        self.controllers = controllers
        self.project = project

    def request_reconcile(self) -> None:
        self.controllers.request_reconcile(self.project)


def default_actor() -> str:
    """Who decides in local CLI mode without ``--actor``: the operating-system user."""
    import getpass  # here: only the local CLI asks, and every process imports this module

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return "unknown"


def _wake_controller(store: Store, controller: Triggerable | None, actor: str) -> None:
    """Have the promotion's outcome applied now: wake the controller in this process, else
    queue a request for the leader wherever it runs (when one leads; otherwise the next
    leader's first pass applies it)."""
    if controller is not None:
        controller.request_reconcile()
        return
    project = getattr(store, "project", DEFAULT_PROJECT)
    if project == DEFAULT_PROJECT:
        if store.locks.get_lock(lock_name(DEFAULT_NAME)) is not None:
            store.controller.queue_controller_request(DEFAULT_NAME, "promotion", actor=actor)
        return
    # another project's source is its definition's: queued for it, whoever leads now (the
    # next leader's first pass takes it otherwise)
    definition = store.projects.get_project(project).definition or {}
    block = definition.get("controller") or {}
    if block.get("repo"):
        name = block.get("name") or DEFAULT_NAME
        store.controller.queue_controller_request(name, "promotion", actor=actor)


def resume_promotion(
    store: Store,
    continuation_id: str,
    decision: Decision,
    *,
    actor: str | None = None,
    controller: Triggerable | None = None,
) -> RunResult:
    """Record one approver's decision on a promotion task (there is no run to continue).

    The approver is ``actor`` (the API key's name over HTTP, ``--actor`` or the OS user in the
    CLI); an outcome is applied at once by the controller, woken in this process or through a
    queued request.
    The answer is a run-shaped response with ``run_id`` null: ``status`` is
    ``pending_approval`` while more approvals are needed, then ``approved`` or ``rejected``.
    """
    request_id = decision.request_id
    task = store.tasks.get_continuation(continuation_id)
    if not any(r.get("request_id") == request_id for r in task.requests):
        raise NotFound(
            f"request {request_id!r} is not part of continuation {continuation_id}",
            resource="request",
            id=request_id,
        )
    approver = actor or default_actor()
    outcome = record_promotion_decision(
        store,
        continuation_id,
        approver=approver,
        decision=decision.decision,
        comment=decision.content,
    )
    if outcome.outcome is not None:
        _wake_controller(store, controller, approver)
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
