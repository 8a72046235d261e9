"""The shared state ``/metrics`` reports, read in one snapshot at scrape time.

Pending human tasks, the queue and the registry describe the whole installation (every
project), not one process, so every API replica reads them from the database when scraped (``kneo.metrics``)
instead of each process keeping a copy that would disagree with the others'. Each read is one
grouped query over an indexed column (a few milliseconds on a large database).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa

from kneo.store import tables as t
from kneo.store.base import StoreBase


@dataclass(frozen=True)
class Gauges:
    """One scrape's view of the shared state."""

    #: pending requests of pending continuations by ``(kind, environment)``
    pending_tasks: dict[tuple[str, str], int] = field(default_factory=dict)
    #: seconds since the oldest of them was asked for, by ``(kind, environment)``
    oldest_pending_seconds: dict[tuple[str, str], float] = field(default_factory=dict)
    #: runs waiting in the queue (``queued``, due or not)
    queue_depth: int = 0
    #: seconds the oldest due ``queued`` record has waited past its ``available_at``
    queue_lag_seconds: float = 0.0
    #: bundles (by the latest revision of each bundle and environment) by
    #: ``(environment, status, ready, in_git)``; ``ready`` is the Ready condition's status,
    #: ``in_git`` is ``"false"`` when the controller last found no bundle file for it in Git
    #: (removed: pruned, or kept by ``prune: false``), so alerts can leave it out
    bundles: dict[tuple[str, str, str, str], int] = field(default_factory=dict)
    #: pinned bundles (``kneo registry pin|rollback``) by environment
    pinned: dict[str, int] = field(default_factory=dict)
    #: digests blocked from promotion everywhere
    blocked_digests: int = 0


_Q = t.queue.c
_CR = t.continuation_requests.c
_CO = t.continuations.c
_R = t.bundle_revisions.c
_C = t.bundle_conditions.c
#: The Verified condition's reason when the watched commit has no file for the bundle
#: (``kneo.controller.planner.R_NOT_IN_GIT``; the store sits below the controller).
NOT_IN_GIT = "NotInGit"


class GaugeReadsMixin(StoreBase):
    """:meth:`gauges` of ``store.maintenance``."""

    def gauges(self, now: datetime | None = None) -> Gauges:
        """The shared-state gauges, read in one transaction (one snapshot)."""
        moment = now or self.clock.now()
        every_project = sa.select(t.projects.c.id)  # (the indexes lead with the project)
        pending = (
            sa.select(_CR.kind, _CO.environment, sa.func.count(), sa.func.min(_CO.created_at))
            .select_from(t.continuation_requests.join(t.continuations))
            .where(_CR.project_id.in_(every_project), _CR.status == "pending")
            .where(_CO.status == "pending")
            .group_by(_CR.kind, _CO.environment)
        )
        depth = sa.select(sa.func.count()).where(_Q.status == "queued")
        oldest_due = sa.select(sa.func.min(_Q.available_at)).where(
            _Q.status == "queued", _Q.available_at <= moment
        )
        key = (_R.project_id, _R.bundle_name, _R.environment)
        latest = (
            sa.select(*key, sa.func.max(_R.revision).label("revision")).group_by(*key).subquery()
        )
        ready = t.bundle_conditions.alias("ready")
        verified = t.bundle_conditions.alias("verified")
        removed = sa.func.coalesce(verified.c.reason == NOT_IN_GIT, sa.false())
        bundles = (
            sa.select(_R.environment, _R.status, ready.c.status, removed, sa.func.count())
            .select_from(
                t.bundle_revisions.join(
                    latest,
                    sa.and_(
                        _R.project_id == latest.c.project_id,
                        _R.bundle_name == latest.c.bundle_name,
                        _R.environment == latest.c.environment,
                        _R.revision == latest.c.revision,
                    ),
                )
                .outerjoin(
                    ready,
                    sa.and_(
                        ready.c.project_id == _R.project_id,
                        ready.c.bundle_name == _R.bundle_name,
                        ready.c.environment == _R.environment,
                        ready.c.type == "Ready",
                    ),
                )
                .outerjoin(
                    verified,
                    sa.and_(
                        verified.c.project_id == _R.project_id,
                        verified.c.bundle_name == _R.bundle_name,
                        verified.c.environment == _R.environment,
                        verified.c.type == "Verified",
                    ),
                )
            )
            .group_by(_R.environment, _R.status, ready.c.status, removed)
        )
        pins = sa.select(t.bundle_pins.c.environment, sa.func.count()).group_by(
            t.bundle_pins.c.environment
        )
        with self._read() as conn:
            pinned = {str(env): int(n) for env, n in conn.execute(pins).all()}
            blocked = conn.execute(sa.select(sa.func.count()).select_from(t.blocked_digests))
            blocked_count = int(blocked.scalar() or 0)
            waiting = conn.execute(pending).all()
            count = conn.execute(depth).scalar()
            due = conn.execute(oldest_due).scalar()
            registry = {
                (env, status, ready_status or "Unknown", "false" if gone else "true"): int(n)
                for env, status, ready_status, gone, n in conn.execute(bundles).all()
            }
        lag = max(0.0, (moment - due).total_seconds()) if due is not None else 0.0
        tasks = {(kind or "", env or ""): int(n) for kind, env, n, _ in waiting}
        oldest = {
            (kind or "", env or ""): max(0.0, (moment - first).total_seconds())
            for kind, env, _, first in waiting
        }
        return Gauges(tasks, oldest, int(count or 0), lag, registry, pinned, blocked_count)


__all__ = ["GaugeReadsMixin", "Gauges"]
