"""Applying a person's decision to a paused run (one transaction, compare-and-set).

The decision is recorded in the execution state under the request's ``wait_key`` and the
request is marked resolved on the continuation; while other requests of the continuation are
still pending the run stays paused, otherwise it moves to running and the engine continues.
A writer holding a stale view loses the compare-and-set and gets
``request_already_resolved``; nothing it computed is written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kneo.engine.human import HumanDecision, HumanRequest
from kneo.engine.lifecycle import RunStatus, transition
from kneo.engine.state import ExecutionState
from kneo.errors import Conflict, RequestAlreadyResolved
from kneo.platform.results import RunResult
from kneo.store import RunRecord

if TYPE_CHECKING:
    from kneo.platform.manager import PlatformManager


def apply_decision(
    manager: PlatformManager,
    run: RunRecord,
    cont: Any,
    state: ExecutionState,
    request: HumanRequest,
    answer: HumanDecision,
) -> RunResult:
    with state.lock:
        state.decisions[request.wait_key] = answer.to_dict()
        state.pending = [r for r in state.pending if r.get("request_id") != request.request_id]
        remaining = list(state.pending)
    requests = [
        dict(r, status="resolved") if r.get("request_id") == request.request_id else dict(r)
        for r in cont.requests
    ]
    audit = {
        "request_id": request.request_id,
        "decision": answer.decision,
        "selected_option": answer.selected_option,
        "content_present": bool(answer.content),
    }
    snapshot = {**state.snapshot(), "continuation_id": cont.continuation_id}
    decided = {
        "event_type": "human_decision",
        "step_id": request.step_id,
        "payload": {
            "request_id": request.request_id,
            "decision": answer.decision,
            "kind": request.kind,
            "content_present": bool(answer.content),
        },
    }
    try:
        with manager.store.transaction() as tx:
            if remaining:
                updated = tx.update_run(run.run_id, expected_version=run.version, state=snapshot)
                tx.put_continuation(
                    cont.continuation_id,
                    run_id=run.run_id,
                    requests=requests,
                    context=cont.context,
                    expires_at=cont.expires_at,
                    expected_version=cont.version,
                )
                tx.add_trace_events(run.run_id, [decided])
                tx.add_audit(
                    "human.decision",
                    actor=answer.actor,
                    run_id=run.run_id,
                    continuation_id=cont.continuation_id,
                    payload={**audit, "result_status": "paused"},
                )
                updated = tx.current(updated)
            else:
                updated = tx.update_run(
                    run.run_id,
                    expected_version=run.version,
                    state=state.snapshot(),
                    status=transition(run.status, RunStatus.RUNNING, action="resume the run"),
                )
                # This process executes the run now; a paused run has no other executor.
                tx.take_lock(f"run:{run.run_id}", manager.owner, manager._lease, replace=True)
                tx.put_continuation(
                    cont.continuation_id,
                    run_id=run.run_id,
                    requests=requests,
                    context=cont.context,
                    status="resolved",
                    expires_at=cont.expires_at,
                    expected_version=cont.version,
                )
                tx.add_trace_events(
                    run.run_id,
                    [
                        decided,
                        {
                            "event_type": "run_resumed",
                            "payload": {"continuation_id": cont.continuation_id},
                        },
                    ],
                )
                updated = tx.current(updated)
    except Conflict as exc:
        if exc.code == "stale_state":
            raise RequestAlreadyResolved(
                f"request {request.request_id} was resolved by another process",
                request_id=request.request_id,
            ) from exc
        raise
    if remaining:
        return manager._result(updated)
    audits = [("human.decision", answer.actor, cont.continuation_id, audit)]
    return manager._drive(updated, manager._workflow_for(updated), locked=True, audits=audits)
