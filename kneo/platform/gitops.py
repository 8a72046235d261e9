"""GitOps: the controller's status and reconcile requests, registry reads and the day-two
registry writes people make (rollback, pin, suspend, block).

Every replica serves these through the database (:mod:`kneo.platform.reconcile`,
:mod:`kneo.controller.operations`); :class:`~kneo.platform.manager.PlatformManager` forwards
each method by name, so the HTTP routes ask the platform and never the store. ``config`` and
``controller`` are this process's controller configuration and running controller, either
``None`` (an API replica without one). The registry modules load on first use: they bring
the bundle's cryptography (+39 ms), which a process that only runs runs never needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kneo.platform import reconcile
from kneo.store import ControllerRequest
from kneo.store.coordination.controller_requests import PLAN

if TYPE_CHECKING:
    from kneo.controller.config import ControllerConfig
    from kneo.controller.controller import Controller
    from kneo.store.api import Store
    from kneo.store.queries import RegistryQuery


@dataclass(kw_only=True, eq=False, repr=False)
class GitOps:
    """Controller requests and the registry's reads and day-two writes."""

    store: Store

    # ------------------------------------------------------------------ the controller

    def controller_status(
        self, config: ControllerConfig | None = None, controller: Controller | None = None
    ) -> dict[str, Any]:
        """Who leads, its last pass and the queued requests, the same on every replica."""
        return reconcile.controller_view(self.store, config, controller)

    def request_reconcile(
        self,
        config: ControllerConfig | None,
        controller: Controller | None,
        *,
        actor: str | None,
        wait: float,
    ) -> ControllerRequest:
        """Queue a pass for the leading controller (audited), and wait up to ``wait``
        seconds for it: the request as it then stands (``done`` with its result, or not)."""
        name = reconcile.require_leader(self.store, config, in_process=controller is not None)
        queued = reconcile.queue_request(
            self.store, name, "reconcile", actor=actor, controller=controller
        )
        with self.store.transaction() as tx:
            tx.add_audit(
                "controller.reconcile_requested", actor=actor, payload={"request_id": queued.id}
            )
        return reconcile.wait_for(self.store, queued.id, wait)

    def request_plan(
        self,
        config: ControllerConfig | None,
        controller: Controller | None,
        *,
        actor: str | None,
        wait: float,
    ) -> ControllerRequest:
        """Queue a dry run for the leading controller, and wait up to ``wait`` seconds for it:
        what a pass of the current commit would do, written nowhere. The leader answers every
        queued plan with one dry run at the start of its next pass."""
        name = reconcile.require_leader(self.store, config, in_process=controller is not None)
        queued = reconcile.queue_request(self.store, name, PLAN, actor=actor, controller=controller)
        return reconcile.wait_for(self.store, queued.id, wait)

    def controller_request(self, request_id: int) -> dict[str, Any]:
        """A queued reconcile request: ``queued``, ``running`` or ``done`` with its result."""
        return reconcile.request_view(self.store.controller.get_controller_request(request_id))

    def webhook_controller(
        self, config: ControllerConfig | None, controller: Controller | None
    ) -> str:
        """The controller a webhook goes to (``404 controller_not_configured`` when there is
        none)."""
        return reconcile.require_configured(self.store, config, in_process=controller is not None)

    def webhook_secret_variable(self, config: ControllerConfig | None) -> str | None:
        """The variable holding the webhook secret, or ``None``
        (:func:`kneo.platform.reconcile.webhook_secret_variable`)."""
        return reconcile.webhook_secret_variable(self.store, config)

    def queue_webhook(
        self,
        config: ControllerConfig | None,
        controller: Controller | None,
        name: str,
        detail: dict[str, Any],
    ) -> ControllerRequest:
        """Queue a verified webhook's pass for the leader (``503 not_ready`` while none
        leads)."""
        reconcile.require_leader(self.store, config, in_process=controller is not None)
        return reconcile.queue_request(
            self.store, name, "webhook", actor="webhook", detail=detail, controller=controller
        )

    # ------------------------------------------------------------------ registry reads

    def registry_bundles(self, query: RegistryQuery) -> dict[str, Any]:
        """One page of bundle revisions (:func:`kneo.platform.registry.registry_revisions`)."""
        from kneo.platform.registry import registry_revisions

        return registry_revisions(self.store, query)

    def registry_bundle(
        self, bundle: str, environment: str, *, include_spec: bool = False
    ) -> dict[str, Any]:
        """One bundle in one environment (:func:`kneo.platform.registry.bundle_view`)."""
        from kneo.platform.registry import bundle_view

        return bundle_view(self.store, bundle, environment, include_spec=include_spec)

    def registry_diff(
        self, bundle: str, environment: str, *, from_revision: int, to_revision: int
    ) -> dict[str, Any]:
        """Two revisions' specs as a unified diff, and their digest, commit and status where
        they differ (:func:`kneo.platform.registry.revision_diff`)."""
        from kneo.platform.registry import revision_diff

        return revision_diff(self.store, bundle, environment, from_revision, to_revision)

    def blocked_digests(self) -> list[dict[str, Any]]:
        """Digests never promoted again until unblocked, with why and by whom."""
        from kneo.controller import operations

        return [
            operations.blocked_view(b) for b in self.store.registry.holds(names=()).blocked.values()
        ]

    # ------------------------------------------------------------------ day two

    def rollback_bundle(
        self, bundle: str, environment: str, *, to: int, actor: str, reason: str | None
    ) -> dict[str, Any]:
        """Put revision ``to`` back in force (:func:`kneo.controller.operations.rollback`)."""
        from kneo.controller import operations

        return operations.rollback(
            self.store, bundle, environment, to=to, actor=actor, reason=reason
        )

    def pin_bundle(
        self, bundle: str, environment: str, *, actor: str, reason: str | None
    ) -> dict[str, Any]:
        """Hold the bundle at its active revision (:func:`kneo.controller.operations.pin`)."""
        from kneo.controller import operations

        return operations.pin(self.store, bundle, environment, actor=actor, reason=reason)

    def unpin_bundle(self, bundle: str, environment: str, *, actor: str) -> dict[str, Any]:
        """Lift the pin (:func:`kneo.controller.operations.unpin`)."""
        from kneo.controller import operations

        return operations.unpin(self.store, bundle, environment, actor=actor)

    def suspend_bundle(
        self, bundle: str, environment: str, *, actor: str, reason: str | None
    ) -> dict[str, Any]:
        """Make the controller leave the bundle alone here
        (:func:`kneo.controller.operations.suspend`)."""
        from kneo.controller import operations

        return operations.suspend(self.store, bundle, environment, actor=actor, reason=reason)

    def resume_bundle(self, bundle: str, environment: str, *, actor: str) -> dict[str, Any]:
        """Let the controller manage the bundle here again
        (:func:`kneo.controller.operations.resume`)."""
        from kneo.controller import operations

        return operations.resume(self.store, bundle, environment, actor=actor)

    def block_digest(self, digest: str, *, actor: str, reason: str) -> dict[str, Any]:
        """Never promote ``digest`` again until unblocked
        (:func:`kneo.controller.operations.block`)."""
        from kneo.controller import operations

        return operations.block(self.store, digest, actor=actor, reason=reason)

    def unblock_digest(self, digest: str, *, actor: str) -> dict[str, Any]:
        """Let ``digest`` be promoted again (:func:`kneo.controller.operations.unblock`)."""
        from kneo.controller import operations

        return operations.unblock(self.store, digest, actor=actor)
