"""Human promotion approval, on the same continuation machinery as workflow pauses.

When an environment has ``require_human_approval``, the controller opens one continuation
(no run; ``workflow_kind="promotion"``) holding one ``approval`` request with the prompt
"Promote <name>@<digest> to <env>?". It shows up in ``kneo human list`` and
``GET /v1/human-tasks`` like any pause. A rollback's approval task is one too (context
``type`` ``rollback``, see :mod:`kneo.controller.operations`). Each person who answers it is recorded as a
promotion approval (distinct approvers; M-of-N via ``min_approvals``); one rejection ends
it. The continuation stays pending until the outcome is known, so several approvers can
answer the same task; the controller activates the revision on its next reconcile.

:func:`record_promotion_decision` is what a resume of a promotion task must call (the
platform dispatches continuations whose ``workflow_kind`` is ``promotion`` here).

:func:`kneo.controller.operations.decide_rollback` is imported where a rollback is decided
(+39 ms with the bundle's cryptography): a platform loads this module to record decisions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from kneo import metrics
from kneo.engine.human import build_request
from kneo.errors import Conflict, ErrorCode, Forbidden, InvalidDecision, NotFound
from kneo.lifecycle import TaskStatus, request_status, transition
from kneo.people import caller_entry, counted, current
from kneo.projects import DEFAULT_PROJECT_ID
from kneo.redaction import redact_text
from kneo.store import TaskQuery

if TYPE_CHECKING:
    from kneo.store import ContinuationRecord
    from kneo.store.api import Store
    from kneo.store.registry.reads import ApprovalReads
    from kneo.store.transaction import Transaction

WORKFLOW_KIND = "promotion"
REQUEST_KIND = "approval"


def scoped_id(prefix: str, key: str, project_id: int = DEFAULT_PROJECT_ID) -> str:
    """``prefix`` and 20 hex digits of ``key``'s hash, scoped to the project: continuation
    ids are unique across projects, so the same signed bundle promoted in two projects must
    get two tasks. The ``default`` project's ids are those of a single-project install (its
    stored tasks keep their ids); another project's hash also covers its id."""
    scope = "" if project_id == DEFAULT_PROJECT_ID else f"\0project:{project_id}"
    return prefix + hashlib.sha256(f"{key}{scope}".encode()).hexdigest()[:20]


def task_id(name: str, environment: str, digest: str, project_id: int = DEFAULT_PROJECT_ID) -> str:
    """Deterministic continuation id: reopening the same promotion in the same project finds
    the same task (:func:`scoped_id`)."""
    return scoped_id("cont_promo_", f"{name}\0{environment}\0{digest}", project_id)


def prompt(name: str, environment: str, digest: str) -> str:
    return f"Promote {name}@{digest} to {environment}?"


#: Approvals of a freeze override are recorded under ``freeze:<digest>``, apart from the
#: digest's promotion approvals.
OVERRIDE_PREFIX = "freeze:"


def override_task_id(
    name: str, environment: str, digest: str, project_id: int = DEFAULT_PROJECT_ID
) -> str:
    return task_id(name, environment, OVERRIDE_PREFIX + digest, project_id)


class PromotionGate:
    """Where promotion tasks live: store continuations (the human-task inbox) of the
    project ``project_id`` (its controller's store view's)."""

    def __init__(self, project_id: int = DEFAULT_PROJECT_ID) -> None:
        self.project_id = project_id

    def task_id(self, name: str, environment: str, digest: str) -> str:
        """The id of this project's promotion task for ``digest`` (:func:`task_id`)."""
        return task_id(name, environment, digest, self.project_id)

    def open(
        self,
        tx: Transaction,
        *,
        name: str,
        environment: str,
        digest: str,
        revision: int,
        approvers: tuple[str, ...],
        min_approvals: int,
        now: datetime,
        upstream: str | None = None,
        evals: list[dict[str, Any]] | None = None,
    ) -> str:
        """Open the task inside the caller's transaction ``tx``; returns its id.
        ``upstream``: the environment the digest must be active in first, if any; ``evals``:
        the bundle's signed eval results against the environment's requirements."""
        cid = self.task_id(name, environment, digest)
        if self.project_id != DEFAULT_PROJECT_ID:  # one opened before ids were scoped
            close_task(tx, task_id(name, environment, digest), "superseded")
        context = {
            "type": "promotion",
            "bundle": name,
            "environment": environment,
            "digest": digest,
            "revision": revision,
            "approvers": list(approvers),
            "min_approvals": min_approvals,
        }
        if upstream:
            context["upstream"] = upstream
        if evals:  # what the approvers see next to Approve (kneo.policy.evals.eval_summary)
            context["evals"] = evals
        open_approval_task(
            tx,
            cid,
            wait_key=f"promotion:{environment}",
            step_id="promotion",
            question=prompt(name, environment, digest),
            context=context,
            name=name,
            environment=environment,
            now=now,
        )
        return cid

    def open_override(
        self,
        tx: Transaction,
        *,
        name: str,
        environment: str,
        digest: str,
        approvers: tuple[str, ...],
        min_approvals: int,
        frozen: str,
        now: datetime,
    ) -> str | None:
        """Open the freeze-override task for promoting ``digest`` (inside ``tx``); its id, or
        ``None`` when one is already pending."""
        cid = override_task_id(name, environment, digest, self.project_id)
        question = f"Promote {name}@{digest} to {environment} during the freeze? ({frozen})"
        context = {
            "type": "promotion",
            "override": "freeze",
            "bundle": name,
            "environment": environment,
            "digest": digest,
            "subject": OVERRIDE_PREFIX + digest,
            "approvers": list(approvers),
            "min_approvals": min_approvals,
        }
        opened = open_approval_task(
            tx,
            cid,
            wait_key=f"freeze:{environment}",
            step_id="freeze_override",
            question=question,
            context=context,
            name=name,
            environment=environment,
            now=now,
        )
        return cid if opened else None

    def open_prune(
        self,
        tx: Transaction,
        cid: str,
        *,
        name: str,
        environment: str,
        revision: int,
        digest: str,
        subject: str,
        question: str,
        approvers: tuple[str, ...],
        min_approvals: int,
        now: datetime,
    ) -> bool:
        """Open the task in which ``environment``'s approvers decide removing a serving
        revision (:mod:`kneo.controller.prune_gate`); whether it was opened (not pending)."""
        context = {
            "type": "promotion",
            "prune": True,
            "bundle": name,
            "environment": environment,
            "digest": digest,
            "revision": revision,
            "subject": subject,
            "approvers": list(approvers),
            "min_approvals": min_approvals,
        }
        return open_approval_task(
            tx,
            cid,
            wait_key=f"prune:{environment}",
            step_id="prune",
            question=question,
            context=context,
            name=name,
            environment=environment,
            now=now,
        )

    def close(
        self, tx: Transaction, *, name: str, environment: str, digest: str, outcome: str
    ) -> None:
        """Resolve the task (activated, rejected, superseded, pruned); no-op if absent."""
        close_task(tx, self.task_id(name, environment, digest), outcome)

    def open_tasks(self, store: Store, among: Collection[str] | None = None) -> set[str]:
        """Ids of the promotion tasks still pending (of ``among`` only, if given)."""
        if among is not None:  # a few keys of an incremental reconcile: one read each
            return {cid for cid in among if _pending(store, cid)}
        ids: set[str] = set()
        cursor = None
        while True:
            page = store.tasks.list_continuations(
                TaskQuery(
                    status=TaskStatus.PENDING,
                    workflow_kind=WORKFLOW_KIND,
                    limit=1000,
                    cursor=cursor,
                    count=False,
                )
            )
            ids.update(c.continuation_id for c in page.items)
            cursor = page.next_cursor
            if cursor is None:
                return ids


def open_approval_task(
    tx: Transaction,
    cid: str,
    *,
    wait_key: str,
    step_id: str,
    question: str,
    context: dict[str, Any],
    name: str,
    environment: str,
    now: datetime,
) -> bool:
    """Open (or open again) the approval task ``cid`` of a promotion, freeze override or
    rollback inside ``tx``, unless one is pending; whether it was opened. It is found in
    the inbox search by its question and its approvers (``context["approvers"]``), besides
    the bundle's name."""
    try:
        existing = tx.get_continuation(cid)
    except NotFound:
        existing = None
    if existing is not None and existing.status == TaskStatus.PENDING:
        return False
    request = build_request(
        request_id=f"req_{cid.removeprefix('cont_')}",
        kind=REQUEST_KIND,
        wait_key=wait_key,
        step_id=step_id,
        prompt=question,
        now=now,
        decisions=("approved", "rejected"),
        context=context,
    ).to_dict()
    request["status"] = status = TaskStatus.PENDING  # a new task's
    if existing is not None:  # a resolved one opened again
        status = transition(existing.status, status, action="open the task again")
    tx.put_continuation(
        cid,
        run_id=None,
        requests=[request],
        status=status,
        context=context,
        workflow_kind=WORKFLOW_KIND,
        workflow_name=name,
        environment=environment,
        expected_version=existing.version if existing is not None else None,
        search_text=[redact_text(question), *context["approvers"]],
    )
    return True


def close_task(tx: Transaction, cid: str, outcome: str) -> None:
    """Resolve the pending approval task ``cid`` with ``outcome``; a no-op if it is absent
    or already resolved."""
    try:
        existing = tx.get_continuation(cid)
    except NotFound:
        return
    if existing.status != TaskStatus.PENDING:
        return
    resolve_task(tx, cid, existing, outcome)


def resolve_task(tx: Transaction, cid: str, task: ContinuationRecord, outcome: str) -> None:
    """Resolve the pending approval task ``cid`` (as read: ``task``) with ``outcome``."""
    action, resolved = f"close the task as {outcome}", TaskStatus.RESOLVED
    tx.put_continuation(
        cid,
        run_id=None,
        requests=[
            {**r, "status": transition(request_status(r), resolved, action=action)}
            for r in task.requests
        ],
        context={**task.context, "outcome": outcome},
        status=transition(task.status, resolved, action=action),
        workflow_kind=WORKFLOW_KIND,
        expected_version=task.version,
    )


def _pending(store: Store, cid: str) -> bool:
    try:
        return bool(store.tasks.get_continuation(cid).status == TaskStatus.PENDING)
    except NotFound:
        return False


@dataclass(frozen=True)
class PromotionDecisionResult:
    """What one decision did: the tally so far and whether the promotion is decided."""

    continuation_id: str
    bundle: str
    environment: str
    digest: str
    decision: str
    approvals: int
    required: int
    outcome: str | None  # "approved" | "rejected" | None while more approvals are needed

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def check_decision(decision: str, what: str) -> None:
    """A decision on a ``what`` (promotion, rollback) task is ``approved`` or ``rejected``."""
    if decision not in ("approved", "rejected"):
        raise InvalidDecision(
            f"a {what} accepts 'approved' or 'rejected', got {decision!r}", decision=decision
        )


def take_task(
    tx: Transaction, continuation_id: str, *, kind: str, approver: str
) -> tuple[ContinuationRecord, str | None]:
    """The pending approval task ``continuation_id`` whose context ``type`` is ``kind``
    (``promotion``, ``rollback``), locked for the decision, and the entry of its
    ``approvers`` that lets ``approver`` decide it (``None`` when it lists none)."""
    task = tx.get_continuation(continuation_id, for_update=True)
    context = task.context
    if task.workflow_kind != WORKFLOW_KIND or context.get("type") != kind:
        raise InvalidDecision(f"{continuation_id} is not a {kind} task")
    if task.status != TaskStatus.PENDING:
        raise Conflict(
            f"{kind} task {continuation_id} is already {task.status}",
            code=ErrorCode.request_already_resolved,
        )
    approvers = list(context.get("approvers") or [])
    matched = caller_entry(approver, approvers)  # names or groups
    if approvers and matched is None:
        raise Forbidden(
            f"{approver!r} is not an approver for {context['environment']} "
            f"(approvers: {', '.join(approvers)})",
            code=ErrorCode.not_an_approver,
        )
    return task, matched


def outcome_of(decision: str, approvals: int, required: int) -> str | None:
    """A task's outcome once this decision counts: one rejection ends it, ``required``
    approvals resolve it; ``None`` while more are needed."""
    if decision == "rejected":
        return "rejected"
    return "approved" if approvals >= required else None


def record_promotion_decision(
    store: Store,
    continuation_id: str,
    *,
    approver: str,
    decision: str,
    comment: str | None = None,
) -> PromotionDecisionResult:
    """Record ``approver``'s decision on a promotion task (the resume of a promotion task).

    Only names in the environment's ``approvers`` may decide (when the list is set); each
    approver counts once (a second decision is ``already_decided``). The task resolves when
    ``min_approvals`` distinct approvers approved or anyone rejected. Every decision is an
    audit event (``promotion.approved`` / ``promotion.rejected``); the controller performs
    the activation on its next reconcile.
    """
    check_decision(decision, "promotion")
    if store.tasks.get_continuation(continuation_id).context.get("type") == "rollback":
        return _decide_rollback(store, continuation_id, approver, decision, comment)
    with store.transaction() as tx:
        task, matched = take_task(tx, continuation_id, kind="promotion", approver=approver)
        context = task.context
        name, env, digest = context["bundle"], context["environment"], context["digest"]
        subject = context.get("subject") or digest  # a freeze override's are its own
        tx.add_promotion_approval(
            name, env, subject, approver=approver, decision=decision, comment=comment
        )
        tally = count_approvals(tx, name, env, subject, list(context.get("approvers") or []))
        required = int(context.get("min_approvals") or 1)
        outcome = outcome_of(decision, tally, required)
        if outcome is not None:
            resolve_task(tx, continuation_id, task, outcome)
        tx.add_audit(
            f"{_decided_what(context)}.{decision}",  # policy.*, prune.* or promotion.*
            actor=approver,
            continuation_id=continuation_id,
            payload={
                "bundle": name,
                "environment": env,
                "digest": digest,
                "approvals": tally,
                "min_approvals": required,
                "outcome": outcome,
                **_decided_by(approver, matched),
            },
        )
    if outcome is not None and not context.get("prune"):  # a removal is no promotion
        metrics.record_promotion(env, outcome, project=store.project)
    return PromotionDecisionResult(
        continuation_id, name, env, digest, decision, tally, required, outcome
    )


def _decide_rollback(
    store: Store,
    continuation_id: str,
    approver: str,
    decision: str,
    comment: str | None,
) -> PromotionDecisionResult:
    """A rollback's approval task, decided through the promotion resume."""
    from kneo.controller.operations import decide_rollback

    done = decide_rollback(
        store, continuation_id, approver=approver, decision=decision, comment=comment
    )
    return PromotionDecisionResult(
        continuation_id,
        done["bundle"],
        done["environment"],
        done["digest"],
        decision,
        done["approvals"],
        done["required"],
        done["outcome"],
    )


def count_approvals(
    reader: ApprovalReads, name: str, env: str, digest: str, approvers: list[str]
) -> int:
    """Distinct people (or keys) whose approval of ``digest`` counts
    (:func:`kneo.people.counted`), as ``reader`` (a store or a transaction) sees them."""
    approved = [
        a.approver
        for a in reader.list_promotion_approvals(name, env, digest)
        if a.decision == "approved"
    ]
    return len(counted(approved, approvers))


def _decided_what(context: dict[str, Any]) -> str:
    """The audit family of a decision: a policy change's is the policy's
    (:mod:`kneo.controller.ratchet`), a removal's the prune's
    (:mod:`kneo.controller.prune_gate`), any other the promotion's."""
    return "policy" if context.get("policy") else "prune" if context.get("prune") else "promotion"


def _decided_by(approver: str, matched: str | None) -> dict[str, Any]:
    """The audit's ``decided_by``: the person (subject, e-mail, how they signed in) and the
    approvers entry that gave them the right, when the decision came from a request."""
    who = current(approver)
    if who is None:
        return {"decided_by": {"name": approver, **({"matched": matched} if matched else {})}}
    return {"decided_by": who.audit(matched)}
