"""The policy step of a reconcile pass: which policy judges each environment, stored, and
what the environments in force decide beyond the pass.

:class:`PolicyStep` reads the policy in force as stored, lets the ratchet
(:mod:`kneo.controller.ratchet`) decide from the loader's hook which environments the
commit's bundles are judged by, and, once the pass applied, stores that decision with its
audit events and approval tasks. :func:`publish_run_policies` records for the runtime and
for rollbacks what the usable environments now say.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from kneo.bundle.keys import Keyring
from kneo.bundle.policy_approval import approval_path
from kneo.clock import Clock
from kneo.controller import operations
from kneo.controller.model import ACTOR, Approvals, DesiredEnvironment, DesiredState
from kneo.controller.policy_record import PolicyOutcome, PolicyRecord, record_key
from kneo.controller.promotion import close_task
from kneo.controller.ratchet import POLICY_NAME, PolicyRatchet, open_policy_task
from kneo.controller.runtime import POLICY_METADATA_KEY
from kneo.controller.source import Source, TreeFile

if TYPE_CHECKING:
    from kneo.controller.loader import PolicyHook
    from kneo.store.api import Store


class PolicyStep:
    """One pass's policy in force: the stored record it starts from (:attr:`record`) and
    the ratchet's decision (:attr:`outcome`, once the loader called :meth:`hook`)."""

    def __init__(
        self,
        store: Store,
        ratchet: PolicyRatchet,
        source: Source,
        clock: Clock,
        controller: str,
    ) -> None:
        self.store, self.ratchet, self.source, self.clock = store, ratchet, source, clock
        self.key = record_key(controller)
        self.record = PolicyRecord.from_dict(store.metadata.get_metadata(self.key))
        self.outcome: PolicyOutcome | None = None

    def hook(self, commit: str) -> PolicyHook:
        """The loader's step from the commit's environments to those in force."""

        def in_force(
            candidates: dict[str, DesiredEnvironment], files: Mapping[str, TreeFile]
        ) -> tuple[dict[str, DesiredEnvironment], bool]:
            def read_approval(environment: str) -> bytes | None:
                found = files.get(approval_path(environment))
                return None if found is None else self.source.read_blob(found.blob_sha)

            self.outcome = self.ratchet.decide(
                self.record,
                candidates,
                commit=commit,
                now=self.clock.now(),
                read_approval=read_approval,
                decisions=self.decisions,
            )
            return self.outcome.environments, self.outcome.changed

        return in_force

    def decisions(self, environment: str, subject: str) -> Approvals:
        """People's decisions on one policy change of ``environment``."""
        decided = self.store.registry.list_promotion_approvals(POLICY_NAME, environment, subject)
        return Approvals(
            frozenset(a.approver for a in decided if a.decision == "approved"),
            frozenset(a.approver for a in decided if a.decision == "rejected"),
        )

    def store_decision(self, now: datetime) -> None:
        """Store the policy in force when it changed, with its audit events, and open (or
        close) the approval tasks of changes waiting for people, in one transaction."""
        outcome = self.outcome
        if outcome is None:
            return
        record = outcome.record.to_dict()
        changed = self.record is None or self.record.to_dict() != record
        tasks = [p for p in outcome.record.pending.values() if p.task]
        if not (changed or outcome.events or tasks or outcome.closed_tasks):
            return
        with self.store.transaction() as tx:
            if changed:
                tx.set_metadata(self.key, record)
            for event, payload in outcome.events:
                tx.add_audit(event, actor=ACTOR, payload=payload)
            for pending in tasks:
                open_policy_task(tx, pending, now=now)
            for cid in outcome.closed_tasks:
                close_task(tx, cid, "superseded")


def publish_run_policies(store: Store, keyring: Keyring, desired: DesiredState) -> None:
    """Record each environment's ``runs.require_approved_bundle``, ``resources:`` and
    ``budgets:`` (:func:`kneo.policy.environment.run_limits`) for the runtime, and
    today's trust for rollbacks (:func:`kneo.controller.operations.publish_trust`).

    Written only when it changes (a repeated commit writes nothing). An environment whose
    file is now missing or invalid keeps its last known rule, so breaking or deleting a
    file never opens an environment to ad-hoc specs.
    """
    usable = {name: env for name, env in desired.environments.items() if not env.problems}
    stored = store.metadata.get_metadata(POLICY_METADATA_KEY, None) or {}
    current = {**stored, **{name: env.run_rules() for name, env in usable.items()}}
    if current != stored:
        with store.transaction() as tx:
            tx.set_metadata(POLICY_METADATA_KEY, current)
    trust = {name: env.trust() for name, env in usable.items()}
    operations.publish_trust(store, keyring, trust)
