"""The shared state ``/metrics`` reports, read in one snapshot at scrape time.

Pending human tasks, the queue and the registry describe the whole installation, not one
process, so every API replica reads them from the database when scraped (``kneo.metrics``)
instead of each process keeping a copy that would disagree with the others'. Each read is one
grouped query over an indexed column (a few milliseconds on a large database), grouped by
project: a global read on every store view, each value keyed by its project's name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from kneo.store import tables as t
from kneo.store.base import StoreBase
from kneo.store.rollouts import MOVING, SideFigures, fold_sums, moving_sums, rollouts


@dataclass(frozen=True)
class Gauges:
    """One scrape's view of the shared state, every project's; each key leads with the
    project's name."""

    #: pending requests of pending continuations by ``(project, kind, environment)``
    pending_tasks: dict[tuple[str, str, str], int] = field(default_factory=dict)
    #: seconds since the oldest of them was asked for, by ``(project, kind, environment)``
    oldest_pending_seconds: dict[tuple[str, str, str], float] = field(default_factory=dict)
    #: runs waiting in the queue (``queued``, due or not), by project (each active one, 0
    #: included: a series that is absent while the queue is empty would hide its first rise)
    queue_depth: dict[str, int] = field(default_factory=dict)
    #: seconds the oldest due ``queued`` record has waited past its ``available_at``, by
    #: project (each active one, 0 included)
    queue_lag_seconds: dict[str, float] = field(default_factory=dict)
    #: bundles (by the latest revision of each bundle and environment) by
    #: ``(project, environment, status, ready, in_git)``; ``ready`` is the Ready condition's
    #: status, ``in_git`` is ``"false"`` when the controller last found no bundle file for it
    #: in Git (removed: pruned, or kept by ``prune: false``), so alerts can leave it out
    bundles: dict[tuple[str, str, str, str, str], int] = field(default_factory=dict)
    #: pinned bundles (``kneo registry pin|rollback``) by ``(project, environment)``
    pinned: dict[tuple[str, str], int] = field(default_factory=dict)
    #: digests blocked from promotion everywhere in the project, by project (each active one)
    blocked_digests: dict[str, int] = field(default_factory=dict)
    #: each side of every moving rollout, by ``(project, bundle, environment, track,
    #: revision)``: what its runs add up to since the rollout began
    rollout_sides: dict[tuple[str, str, str, str, str], SideFigures] = field(default_factory=dict)
    #: the canary's share of new runs (percent) of every moving rollout, by ``(project,
    #: bundle, environment)``
    rollout_weight: dict[tuple[str, str, str], int] = field(default_factory=dict)


_Q = t.queue.c
_CR = t.continuation_requests.c
_CO = t.continuations.c
_R = t.bundle_revisions.c
_C = t.bundle_conditions.c
#: The Verified condition's reason when the watched commit has no file for the bundle
#: (``kneo.controller.conditions.R_NOT_IN_GIT``; the store sits below the controller).
NOT_IN_GIT = "NotInGit"


class GaugeReadsMixin(StoreBase):
    """:meth:`gauges` of ``store.maintenance``."""

    def gauges(self, now: datetime | None = None) -> Gauges:
        """The shared-state gauges of every project, read in one transaction (one
        snapshot); global on every view, as a scrape reports the installation."""
        moment = now or self.clock.now()
        pending, depth, oldest_due, bundles, pins, blocked = _statements(moment)
        p = t.projects.c
        with self._read(everywhere="the gauges count every project's records, by project") as conn:
            names: dict[int, str] = {}
            active: list[str] = []
            for project_id, name, status in conn.execute(sa.select(p.id, p.name, p.status)):
                names[int(project_id)] = str(name)
                if status == "active":
                    active.append(str(name))

            def named(project_id: Any) -> str:
                return names.get(int(project_id), str(project_id))

            pinned = {(named(i), str(env)): int(n) for i, env, n in conn.execute(pins).all()}
            blocked_by = {named(i): int(n) for i, n in conn.execute(blocked).all()}
            waiting = conn.execute(pending).all()
            queued = {named(i): int(n) for i, n in conn.execute(depth).all()}
            due = {named(i): first for i, first in conn.execute(oldest_due).all()}
            registry = {
                (named(i), env, status, ready or "Unknown", "false" if gone else "true"): int(n)
                for i, env, status, ready, gone, n in conn.execute(bundles).all()
            }
            sides, weights = _rollouts(conn, named)
        tasks = {(named(i), kind or "", env or ""): int(n) for i, kind, env, n, _ in waiting}
        oldest = {
            (named(i), kind or "", env or ""): max(0.0, (moment - first).total_seconds())
            for i, kind, env, _, first in waiting
        }
        lag = {name: max(0.0, (moment - first).total_seconds()) for name, first in due.items()}
        every = dict.fromkeys(active, 0)
        return Gauges(
            tasks,
            oldest,
            every | queued,
            dict.fromkeys(active, 0.0) | lag,
            registry,
            pinned,
            every | blocked_by,
            sides,
            weights,
        )


def _rollouts(
    conn: sa.Connection, named: Callable[[Any], str]
) -> tuple[dict[tuple[str, str, str, str, str], SideFigures], dict[tuple[str, str, str], int]]:
    """Each side's figures and the canary's share of every moving rollout: the rollouts'
    rows, then their counters (a few thousand rows per rollout, whatever its runs)."""
    ro = rollouts.c
    moving = sa.select(
        ro.rollout_id, ro.project_id, ro.bundle_name, ro.environment,
        ro.stable_revision, ro.canary_revision, ro.weight,
    ).where(ro.status.in_(MOVING))  # fmt: skip
    keys: dict[str, tuple[str, str, str]] = {}
    revisions: dict[str, dict[str, str]] = {}
    weights: dict[tuple[str, str, str], int] = {}
    for rollout_id, project_id, bundle, env, stable, canary, weight in conn.execute(moving):
        key = keys[rollout_id] = (named(project_id), str(bundle), str(env))
        revisions[rollout_id] = {"stable": str(stable), "canary": str(canary)}
        weights[key] = int(weight)
    rows: dict[str, list[Sequence[Any]]] = {}
    for row in conn.execute(moving_sums()):
        rows.setdefault(row[0], []).append(row)
    sides = {
        (*key, track, revisions[rollout_id][track]): figures
        for rollout_id, key in keys.items()
        for track, figures in fold_sums(rows.get(rollout_id, [])).items()
    }
    return sides, weights


def _statements(moment: datetime) -> tuple[sa.Select[Any], ...]:
    """The gauges' grouped reads, each led by ``project_id``: pending requests, queue depth,
    the oldest due queued record, bundles by their latest revision, pins, blocked digests."""
    every_project = sa.select(t.projects.c.id)  # (the indexes lead with the project)
    pending = (
        sa.select(
            _CR.project_id,
            _CR.kind,
            _CO.environment,
            sa.func.count(),
            sa.func.min(_CO.created_at),
        )
        .select_from(t.continuation_requests.join(t.continuations))
        .where(_CR.project_id.in_(every_project), _CR.status == "pending")
        .where(_CO.status == "pending")
        .group_by(_CR.project_id, _CR.kind, _CO.environment)
    )
    depth = (
        sa.select(_Q.project_id, sa.func.count())
        .where(_Q.status == "queued")
        .group_by(_Q.project_id)
    )
    oldest_due = (
        sa.select(_Q.project_id, sa.func.min(_Q.available_at))
        .where(_Q.status == "queued", _Q.available_at <= moment)
        .group_by(_Q.project_id)
    )
    pins = sa.select(
        t.bundle_pins.c.project_id, t.bundle_pins.c.environment, sa.func.count()
    ).group_by(t.bundle_pins.c.project_id, t.bundle_pins.c.environment)
    blocked = sa.select(t.blocked_digests.c.project_id, sa.func.count()).group_by(
        t.blocked_digests.c.project_id
    )
    return pending, depth, oldest_due, _bundles(), pins, blocked


def _bundles() -> sa.Select[Any]:
    """Bundles by the latest revision of each (project, bundle, environment), with its Ready
    condition and whether Git still has its file."""
    key = (_R.project_id, _R.bundle_name, _R.environment)
    latest = sa.select(*key, sa.func.max(_R.revision).label("revision")).group_by(*key).subquery()
    ready = t.bundle_conditions.alias("ready")
    verified = t.bundle_conditions.alias("verified")
    removed = sa.func.coalesce(verified.c.reason == NOT_IN_GIT, sa.false())

    def same(other: Any, kind: str) -> Any:
        return sa.and_(
            other.c.project_id == _R.project_id,
            other.c.bundle_name == _R.bundle_name,
            other.c.environment == _R.environment,
            other.c.type == kind,
        )

    revisions = t.bundle_revisions.join(
        latest,
        sa.and_(
            _R.project_id == latest.c.project_id,
            _R.bundle_name == latest.c.bundle_name,
            _R.environment == latest.c.environment,
            _R.revision == latest.c.revision,
        ),
    )
    joined = revisions.outerjoin(ready, same(ready, "Ready")).outerjoin(
        verified, same(verified, "Verified")
    )
    group = (_R.project_id, _R.environment, _R.status, ready.c.status, removed)
    return sa.select(*group, sa.func.count()).select_from(joined).group_by(*group)


__all__ = ["GaugeReadsMixin", "Gauges"]
