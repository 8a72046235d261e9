"""Writing a run's outcome: the final boundary of a driven run in the caller's transaction.

:func:`write_outcome` turns the engine's :class:`~kneo.engine.executor.Outcome` (completed,
paused, failed, cancelled) into the run's new status, output and error, the continuation and
``human.requested`` audits of a pause (the ``run.failed`` audit of a failure; both are
notified: :mod:`kneo.platform.notifications`), the final checkpoint and trace events, and the decision
audits that led here — all compare-and-set on the journal's version.

A pause stores each request's body once, compact, in the state's ``pending`` (what the run
resumes from); the continuation and the ``run_paused`` event name the requests by id
(:mod:`kneo.platform.tasks`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kneo.engine.executor import Cancelled, Completed, Failed, Outcome, Paused
from kneo.engine.human import compact_request
from kneo.engine.journal import Boundary
from kneo.engine.lifecycle import RunStatus, transition
from kneo.ids import new_continuation_id
from kneo.platform.journal import StoreJournal
from kneo.platform.tasks import pending_entry
from kneo.store import RunRecord, Transaction


def write_outcome(
    tx: Transaction,
    run: RunRecord,
    journal: StoreJournal,
    outcome: Outcome,
    audits: list[tuple[str, str | None, str | None, dict[str, Any]]],
    owner: str,
    *,
    trace_context: dict[str, str] | None = None,
) -> RunRecord:
    """The outcome's rows in ``tx``; ``owner``'s lease on the run ends with it.
    ``trace_context``: a pause's (``kneo.tracing.carrier``), kept in the continuation's
    context for the resume's span link."""
    run_id = run.run_id
    state = dict(outcome.state)
    changes: dict[str, Any]
    events: list[dict[str, Any]] = []
    extra_audits: list[tuple[str, dict[str, Any], str | None]] = []
    if isinstance(outcome, Completed):
        changes = {
            "status": transition(run.status, RunStatus.SUCCEEDED),
            "output_text": outcome.output_text,
            "error": None,
            "finished_at": tx.now,
        }
        kind, status = "run_completed", "succeeded"
    elif isinstance(outcome, Paused):
        cid = new_continuation_id()
        # Each body is stored once, in the state; the continuation and the event name it.
        state["pending"] = [compact_request(r.to_dict()) for r in outcome.requests]
        expiries = [r.expires_at for r in outcome.requests if r.expires_at]
        tx.put_continuation(
            cid,
            run_id=run_id,
            requests=[pending_entry(r) for r in outcome.requests],
            context={"trace": trace_context} if trace_context else {},
            expires_at=_parse_time(min(expiries)) if expiries else None,
            workflow_kind=run.workflow_kind,
            workflow_name=run.workflow_name,
            environment=run.environment,
        )
        state["continuation_id"] = cid
        changes = {"status": transition(run.status, RunStatus.PAUSED)}
        kind, status = "paused", "paused"
        named = [{"request_id": r.request_id, "kind": r.kind} for r in outcome.requests]
        events.append(
            {"event_type": "run_paused", "payload": {"continuation_id": cid, "requests": named}}
        )
        for r in outcome.requests:
            extra_audits.append(
                (
                    "human.requested",
                    {
                        "request_id": r.request_id,
                        "kind": r.kind,
                        "step_id": r.step_id,
                        "assignee": r.assignee,
                        "expires_at": r.expires_at,
                        "environment": run.environment,
                        "workflow": run.workflow_name,
                    },
                    cid,
                )
            )
    elif isinstance(outcome, Failed):
        changes = {
            "status": transition(run.status, RunStatus.FAILED),
            "error": outcome.error,
            "finished_at": tx.now,
        }
        kind, status = "run_failed", "failed"
        events.append(
            {
                "event_type": "run_failed",
                "step_id": outcome.error.get("step_id"),
                "payload": outcome.error,
            }
        )
        extra_audits.append(
            (
                "run.failed",
                {
                    "reason": outcome.error.get("type") or outcome.error.get("code"),
                    "step_id": outcome.error.get("step_id"),
                    "environment": run.environment,
                    "workflow": run.workflow_name,
                },
                None,
            )
        )
    else:
        assert isinstance(outcome, Cancelled)
        changes = {"status": transition(run.status, RunStatus.CANCELLED), "finished_at": tx.now}
        kind, status = "run_cancelled", "cancelled"
        events.append({"event_type": "run_cancelled", "payload": {}})
    first = outcome.requests[0] if isinstance(outcome, Paused) else None
    final = Boundary(
        kind=kind,
        state=state,
        # A completed run's state is the engine's last snapshot, unchanged: reuse its texts.
        parts=outcome.parts if isinstance(outcome, Completed) else None,
        status=status,
        step_id=first.step_id
        if first
        else (outcome.error.get("step_id") if isinstance(outcome, Failed) else None),
    )
    if isinstance(outcome, Completed):
        events.append(
            {
                "event_type": "run_completed",
                "payload": {"output_chars": len(outcome.output_text)},
            }
        )
    checkpoints, rows = journal.final_rows(
        final, [dict(e, payload=e.get("payload") or {}) for e in events]
    )
    audit_rows = [
        {"event_type": event_type, "run_id": run_id, "continuation_id": cid, "payload": payload}
        for event_type, payload, cid in extra_audits
    ]
    audit_rows += [
        {
            "event_type": event_type,
            "actor": actor,
            "run_id": run_id,
            "continuation_id": decision_cid,
            "payload": {**payload, "result_status": changes["status"]},
        }
        for event_type, actor, decision_cid, payload in audits
    ]
    return tx.finish_run(
        run,
        expected_version=journal.version,
        state=state,
        state_text=final.state_text,
        release_lease=owner,
        checkpoints=checkpoints,
        events=rows,
        audits=audit_rows,
        **changes,
    )


def _parse_time(value: str) -> Any:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
