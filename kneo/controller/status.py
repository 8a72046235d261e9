"""The controller status: what each pass records of itself, and the document people read.

:func:`record_status` writes it at the end of every pass (ok or not) with the reconcile
state the next pass continues from, auditing an error or problems when they change;
:func:`status_dict` shapes the stored row for the CLI and the service.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kneo.clock import utc_iso
from kneo.controller.config import ControllerConfig
from kneo.controller.model import ACTOR
from kneo.logs import get_logger
from kneo.redaction import redact_text, reduce_url

if TYPE_CHECKING:
    from kneo.controller import incremental
    from kneo.controller.controller import ReconcileResult
    from kneo.controller.policy_record import PolicyOutcome
    from kneo.store import ControllerStatus, LockRecord
    from kneo.store.api import Store

log = get_logger("kneo.controller")


def record_status(
    store: Store,
    config: ControllerConfig,
    *,
    source: str,
    leader: str,
    result: ReconcileResult,
    previous: ControllerStatus | None,
    state: incremental.ReconcileState | None,
    run_policy: PolicyOutcome | None = None,
) -> None:
    """Controller status every time, with the reconcile ``state`` to continue from (the
    last one kept when this pass failed); an audit event when the error or problems
    change. A database that is down is logged: the next pass records again."""
    error_text = f"{result.error['code']}: {result.error['message']}" if result.error else None
    try:
        previous = previous or store.registry.get_controller_status(config.name)
        kept = previous.details
        details = {
            "source": source,
            "leader": leader,
            # what any API replica needs to take webhooks for this controller, and its
            # timing (a variable's name, never a secret)
            "webhook_secret_env": config.webhook_secret_env,
            "interval": config.interval,
            "lease_seconds": config.lease_seconds,
            "poll_seconds": config.poll_seconds,
            "counts": result.counts(),
            "problems": result.problems if result.ok else kept.get("problems"),
            "stats": result.stats,
            "last_error_stage": result.error["stage"] if result.error else None,
            "last_success_at": utc_iso(result.started_at)
            if result.ok
            else kept.get("last_success_at"),
            "reconciled": state.to_dict() if state is not None else kept.get("reconciled"),
            "policy": run_policy.status() if run_policy is not None else kept.get("policy"),
            "prunes": result.prunes if result.ok else kept.get("prunes"),
        }
        with store.transaction() as tx:
            fields: dict[str, Any] = {
                "last_reconcile_started_at": result.started_at,
                "last_reconcile_duration_seconds": result.duration_seconds,
                "last_error": error_text,
                "details": details,
            }
            if result.commit:
                fields["last_fetched_commit"] = result.commit
            tx.set_controller_status(name=config.name, **fields)
            if error_text and error_text != previous.last_error:
                tx.add_audit(
                    "controller.reconcile_failed",
                    actor=ACTOR,
                    payload={"commit": result.commit, **(result.error or {})},
                )
            if result.ok and result.problems and result.problems != kept.get("problems"):
                tx.add_audit(
                    "controller.problems",
                    actor=ACTOR,
                    payload={"commit": result.commit, "problems": result.problems},
                )
    except Exception as exc:  # e.g. the database is down; the next pass retries
        log.warning("recording controller status failed: %s", exc)


def status_dict(
    stored: ControllerStatus,
    lock: LockRecord | None,
    source: str | None,
    *,
    self_owner: str | None = None,
) -> dict[str, Any]:
    """The controller status document shared by the CLI and the service."""
    shown = source or stored.details.get("source")
    return {
        # reduced again: a row written before sources were (a URL with its token)
        "source": reduce_url(shown) if isinstance(shown, str) else None,
        "last_fetched_commit": stored.last_fetched_commit,
        "last_reconcile_started_at": utc_iso(stored.last_reconcile_started_at),
        "last_reconcile_duration_seconds": stored.last_reconcile_duration_seconds,
        "last_error": redact_text(stored.last_error) if stored.last_error else None,
        "last_success_at": stored.details.get("last_success_at"),
        "counts": stored.details.get("counts", {}),
        "problems": stored.details.get("problems", []),
        "stats": stored.details.get("stats", {}),
        # each environment's policy in force and the change waiting, if any (issue 53)
        "policy": stored.details.get("policy") or {},
        "prunes": stored.details.get("prunes") or [],  # removals held (prune_gate)
        "timing": {
            key: stored.details.get(key) for key in ("interval", "lease_seconds", "poll_seconds")
        },
        "leader": lock.owner if lock is not None else None,
        "leader_expires_at": utc_iso(lock.expires_at) if lock is not None else None,
        "is_leader": bool(lock is not None and self_owner and lock.owner == self_owner),
    }
