"""Writing a run's outcome: the final boundary of a driven run in the caller's transaction.

:func:`write_outcome` turns the engine's :data:`~kneo.engine.outcomes.Outcome` (completed,
paused, failed, cancelled) into the run's new status, output and error, the continuation and
``human.requested`` audits of a pause (the ``run.failed`` audit of a failure; both are
notified: :mod:`kneo.platform.notifications`), the final checkpoint and trace events, and the decision
audits that led here — all compare-and-set on the journal's version.

A pause stores each request's body once, compact, in the state's ``pending`` (what the run
resumes from); the continuation and the ``run_paused`` event name the requests by id
(:mod:`kneo.platform.tasks`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from kneo.engine.human import compact_request
from kneo.engine.journal import Boundary
from kneo.engine.outcomes import Cancelled, Completed, Failed, Outcome, Paused
from kneo.ids import new_continuation_id
from kneo.lifecycle import RunStatus, transition
from kneo.platform.journal import StoreJournal
from kneo.platform.tasks import pending_entry, search_text
from kneo.store import RunRecord, Transaction


class _Rows(NamedTuple):
    """What an outcome of one kind adds to the run: its changes (the status the lifecycle
    moved it to, which the final checkpoint records too), the final checkpoint's type and
    step, its trace events and its own audits ``(type, payload, continuation)``."""

    changes: dict[str, Any]
    kind: str
    step_id: str | None = None
    events: tuple[dict[str, Any], ...] = ()
    audits: Sequence[tuple[str, dict[str, Any], str | None]] = ()


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
    state = dict(outcome.state)
    rows = _outcome_rows(tx, run, outcome, state, trace_context)
    final = Boundary(
        kind=rows.kind,
        state=state,
        # A completed run's state is the engine's last snapshot, unchanged: reuse its texts.
        parts=outcome.parts if isinstance(outcome, Completed) else None,
        status=rows.changes["status"],
        step_id=rows.step_id,
    )
    checkpoints, events = journal.final_rows(
        final, [dict(e, payload=e.get("payload") or {}) for e in rows.events]
    )
    audit_rows = [
        {"event_type": event_type, "run_id": run.run_id, "continuation_id": cid, "payload": payload}
        for event_type, payload, cid in rows.audits
    ]
    audit_rows += [
        {
            "event_type": event_type,
            "actor": actor,
            "run_id": run.run_id,
            "continuation_id": decision_cid,
            "payload": {**payload, "result_status": rows.changes["status"]},
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
        events=events,
        audits=audit_rows,
        **rows.changes,
    )


def _outcome_rows(
    tx: Transaction,
    run: RunRecord,
    outcome: Outcome,
    state: dict[str, Any],
    trace_context: dict[str, str] | None,
) -> _Rows:
    """The rows of ``outcome``'s kind (a pause also writes its continuation and names it in
    ``state``)."""
    if isinstance(outcome, Completed):
        changes = {
            "status": transition(run.status, RunStatus.SUCCEEDED),
            "output_text": outcome.output_text,
            "error": None,
            "finished_at": tx.now,
        }
        done = {
            "event_type": "run_completed",
            "payload": {"output_chars": len(outcome.output_text)},
        }
        return _Rows(changes, "run_completed", events=(done,))
    if isinstance(outcome, Paused):
        return _paused(tx, run, outcome, state, trace_context)
    if isinstance(outcome, Failed):
        return _failed(tx, run, outcome)
    assert isinstance(outcome, Cancelled)
    changes = {"status": transition(run.status, RunStatus.CANCELLED), "finished_at": tx.now}
    cancelled = {"event_type": "run_cancelled", "payload": {}}
    return _Rows(changes, "run_cancelled", events=(cancelled,))


def _paused(
    tx: Transaction,
    run: RunRecord,
    outcome: Paused,
    state: dict[str, Any],
    trace_context: dict[str, str] | None,
) -> _Rows:
    """A pause: its continuation, the ``run_paused`` event and a ``human.requested`` audit
    per request."""
    cid = new_continuation_id()
    # Each body is stored once, in the state; the continuation and the event name it.
    full = [r.to_dict() for r in outcome.requests]
    state["pending"] = [compact_request(r) for r in full]
    expiries = [r.expires_at for r in outcome.requests if r.expires_at]
    tx.put_continuation(
        cid,
        run_id=run.run_id,
        requests=[pending_entry(r) for r in outcome.requests],
        context={"trace": trace_context} if trace_context else {},
        expires_at=_parse_time(min(expiries)) if expiries else None,
        workflow_kind=run.workflow_kind,
        workflow_name=run.workflow_name,
        environment=run.environment,
        search_text=search_text(run.input_text or "", outcome.requests),
        bodies=full,  # complete already: the list row need not complete them again
        input_text=run.input_text or "",
        with_outcome=True,
    )
    state["continuation_id"] = cid
    named = [{"request_id": r.request_id, "kind": r.kind} for r in outcome.requests]
    paused = {"event_type": "run_paused", "payload": {"continuation_id": cid, "requests": named}}
    audits = [
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
        for r in outcome.requests
    ]
    changes = {"status": transition(run.status, RunStatus.PAUSED)}
    step_id = outcome.requests[0].step_id if outcome.requests else None
    return _Rows(changes, "paused", step_id, (paused,), audits)


#: Provider failures that running offline avoids (a missing key, no route to the endpoint).
OFFLINE_FIXES = frozenset({"provider_secret_missing", "provider_unreachable", "provider_timeout"})


def with_offline_hint(error: dict[str, Any], metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """``error`` with a ``hint`` to run offline when the provider could not be reached or
    keyed and an overlay of the run's spec file uses the offline ``dummy`` provider."""
    offline = (metadata or {}).get("offline_environments") or []
    if error.get("code") not in OFFLINE_FIXES or not offline:
        return error
    spec = (metadata or {}).get("spec_path") or "the spec"
    return {
        **error,
        "hint": f'to run {spec} offline, add --env {offline[0]} (over HTTP: "environment": '
        f'"{offline[0]}"): that environment\'s overlay runs every agent on the in-process '
        "dummy provider (no key, no network)",
    }


def _failed(tx: Transaction, run: RunRecord, outcome: Failed) -> _Rows:
    """A failure: the ``run_failed`` event and the (notified) ``run.failed`` audit."""
    error = with_offline_hint(outcome.error, run.metadata)
    changes = {
        "status": transition(run.status, RunStatus.FAILED),
        "error": error,
        "finished_at": tx.now,
    }
    failed = {"event_type": "run_failed", "step_id": error.get("step_id"), "payload": error}
    audit = {
        "reason": error.get("type") or error.get("code"),
        "step_id": error.get("step_id"),
        "environment": run.environment,
        "workflow": run.workflow_name,
    }
    return _Rows(
        changes,
        "run_failed",
        error.get("step_id"),
        (failed,),
        [("run.failed", audit, None)],
    )


def _parse_time(value: str) -> Any:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
