"""Rollouts and their runs: ``rollouts``, ``rollout_runs`` (migration 0030).

``rollouts``: one row per rollout of a bundle in an environment (the controller's: a
promotion under a ``rollout:`` policy), where it stands (step, canary share, status) and
what it decided (reason, figures). The newest row of a bundle and environment is the one
admission reads for each new run of it (one indexed point read).

``rollout_runs``: one row per run that started while a rollout was in force, written by the
transaction that creates the run (:meth:`RolloutRunWrites.note_rollout_run`), its outcome
and latency by the one that finishes it, its human decisions counted by the ones that decide
them. The analysis of a rollout (:meth:`RolloutFacet.figures`) aggregates these rows, one
``GROUP BY`` over the rollout's contiguous key range and one index seek per side for the
p95 latency, whatever else the runs table holds.

The tables are defined here, with their only readers and writers, on the store's metadata.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from kneo.errors import Conflict, ErrorCode, NotFound
from kneo.store import tables as t
from kneo.store.base import Facet
from kneo.store.transaction_base import TransactionBase

__all__ = [
    "RolloutFacet",
    "RolloutRecord",
    "RolloutRunWrites",
    "SideFigures",
    "rollout_runs",
    "rollouts",
]

rollouts = sa.Table(
    "rollouts",
    t.metadata,
    sa.Column("rollout_id", sa.String(64), primary_key=True),
    sa.Column("project_id", sa.Integer, nullable=False),
    sa.Column("bundle_name", sa.String(255), nullable=False),
    sa.Column("environment", sa.String(128), nullable=False),
    sa.Column("stable_revision", sa.Integer, nullable=False),
    sa.Column("canary_revision", sa.Integer, nullable=False),
    sa.Column("canary_digest", sa.String(128)),
    sa.Column("commit", sa.String(128)),
    # progressing | paused | promoted | aborted | superseded
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("step", sa.Integer, nullable=False),
    sa.Column("weight", sa.Integer, nullable=False),
    # the rollout policy it follows and the freeze windows of the policy it began under
    sa.Column("policy", t.JSONText, nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("figures", t.JSONText),
    sa.Column("started_at", t.UTCDateTime, nullable=False),
    sa.Column("step_started_at", t.UTCDateTime, nullable=False),
    sa.Column("updated_at", t.UTCDateTime, nullable=False),
    sa.Column("finished_at", t.UTCDateTime),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Index(
        "ix_rollouts_project_id_bundle_name_environment_started_at",
        "project_id",
        "bundle_name",
        "environment",
        "started_at",
    ),
)

rollout_runs = sa.Table(
    "rollout_runs",
    t.metadata,
    sa.Column("rollout_id", sa.String(64), primary_key=True),
    sa.Column("run_id", sa.String(128), primary_key=True),
    sa.Column("track", sa.String(8), nullable=False),  # canary | stable
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("created_at", t.UTCDateTime, nullable=False),
    sa.Column("outcome", sa.String(16)),  # succeeded | failed | cancelled, NULL: not settled
    sa.Column("latency_ms", sa.BigInteger),
    sa.Column("decided", sa.Integer, nullable=False),
    sa.Column("rejected", sa.Integer, nullable=False),
    sa.Column("edited", sa.Integer, nullable=False),
    sa.Column("escalated", sa.Integer, nullable=False),
    sa.Column("cost", sa.Float),
    # the p95 of a side: a seek to its position in this order, no sort
    sa.Index("ix_rollout_runs_rollout_id_track_latency_ms", "rollout_id", "track", "latency_ms"),
    sqlite_with_rowid=False,
)

_R = rollouts.c
#: rollout statuses whose canary still takes a share of new runs
MOVING = ("progressing", "paused")
#: what :meth:`RolloutRunWrites.move_rollout` changes
_MOVABLE = ("status", "step", "weight", "reason", "figures", "step_started_at", "finished_at")
_RR = rollout_runs.c
#: run statuses an outcome counts (a cancelled run is neither a success nor a failure)
SETTLED = ("succeeded", "failed", "cancelled")


@dataclass(frozen=True)
class RolloutRecord:
    rollout_id: str
    bundle_name: str
    environment: str
    stable_revision: int
    canary_revision: int
    canary_digest: str | None
    commit: str | None
    status: str
    step: int
    weight: int
    policy: Mapping[str, Any]
    reason: str | None
    figures: Mapping[str, Any] | None
    started_at: datetime
    step_started_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    version: int

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for name in ("started_at", "step_started_at", "updated_at", "finished_at"):
            value = out[name]
            out[name] = value.isoformat() if value is not None else None
        return out


@dataclass(frozen=True)
class SideFigures:
    """What the rows of one side (``canary``/``stable``) of a rollout add up to."""

    runs: int = 0
    finished: int = 0
    failed: int = 0
    decided: int = 0
    rejected: int = 0
    edited: int = 0
    escalated: int = 0
    p95_latency_ms: float | None = None
    cost: float = 0.0


def _record(row: Any) -> RolloutRecord:
    names = {f.name for f in dataclasses.fields(RolloutRecord)}
    return RolloutRecord(**{k: v for k, v in row.items() if k in names})


class RolloutFacet(Facet):
    """``store.rollouts``: a project's rollouts (each write commits on its own) and the
    figures of their runs."""

    def current(self, bundle_name: str, environment: str) -> RolloutRecord | None:
        """The newest rollout of ``bundle_name`` in ``environment`` (any status)."""
        stmt = self.dialect.memo(
            ("rollouts", "current"),
            lambda: (
                sa.select(rollouts)
                .where(
                    _R.project_id == sa.bindparam("project_id"),
                    _R.bundle_name == sa.bindparam("bundle_name"),
                    _R.environment == sa.bindparam("environment"),
                )
                .order_by(_R.started_at.desc())
                .limit(1)
            ),
        )
        params = {
            "project_id": self.project_id,
            "bundle_name": bundle_name,
            "environment": environment,
        }
        with self._read() as conn:
            row = conn.execute(stmt, params).mappings().first()
        return _record(row) if row is not None else None

    def get(self, rollout_id: str) -> RolloutRecord:
        stmt = sa.select(rollouts).where(
            _R.project_id == self.project_id, _R.rollout_id == rollout_id
        )
        with self._read() as conn:
            row = conn.execute(stmt).mappings().first()
        if row is None:
            raise NotFound(f"rollout {rollout_id!r} not found", resource="rollout")
        return _record(row)

    def list_rollouts(
        self, *, bundle_name: str | None = None, environment: str | None = None, limit: int = 50
    ) -> list[RolloutRecord]:
        stmt = sa.select(rollouts).where(_R.project_id == self.project_id)
        if bundle_name is not None:
            stmt = stmt.where(_R.bundle_name == bundle_name)
        if environment is not None:
            stmt = stmt.where(_R.environment == environment)
        stmt = stmt.order_by(_R.started_at.desc()).limit(max(1, min(limit, 1000)))
        with self._read() as conn:
            return [_record(r) for r in conn.execute(stmt).mappings()]

    def active(self) -> list[RolloutRecord]:
        """Rollouts still moving (progressing or paused), oldest first."""
        stmt = (
            sa.select(rollouts)
            .where(_R.project_id == self.project_id, _R.status.in_(MOVING))
            .order_by(_R.started_at)
        )
        with self._read() as conn:
            return [_record(r) for r in conn.execute(stmt).mappings()]

    def figures(self, rollout_id: str) -> dict[str, SideFigures]:
        """Each side's figures (``canary``, ``stable``) from the rollout's runs."""
        finished = sa.case((_RR.outcome.in_(("succeeded", "failed")), 1), else_=0)
        failed = sa.case((_RR.outcome == "failed", 1), else_=0)
        totals = self.dialect.memo(
            ("rollouts", "totals"),
            lambda: (
                sa.select(
                    _RR.track,
                    sa.func.count(),
                    sa.func.sum(finished),
                    sa.func.sum(failed),
                    sa.func.sum(_RR.decided),
                    sa.func.sum(_RR.rejected),
                    sa.func.sum(_RR.edited),
                    sa.func.sum(_RR.escalated),
                    sa.func.sum(_RR.cost),
                )
                .where(_RR.rollout_id == sa.bindparam("rollout_id"))
                .group_by(_RR.track)
            ),
        )
        nth = self.dialect.memo(
            ("rollouts", "nth_latency"),
            lambda: (
                sa.select(_RR.latency_ms)
                .where(
                    _RR.rollout_id == sa.bindparam("rollout_id"),
                    _RR.track == sa.bindparam("track"),
                    _RR.latency_ms.is_not(None),
                )
                .order_by(_RR.latency_ms)
                .limit(1)
                .offset(sa.bindparam("position"))
            ),
        )
        out: dict[str, SideFigures] = {"canary": SideFigures(), "stable": SideFigures()}
        with self._read() as conn:
            for row in conn.execute(totals, {"rollout_id": rollout_id}):
                track, runs, done, bad, decided, rejected, edited, escalated, cost = row
                p95 = None
                if done:
                    position = max(0, -(-95 * int(done) // 100) - 1)  # nearest rank
                    p95 = conn.execute(
                        nth, {"rollout_id": rollout_id, "track": track, "position": position}
                    ).scalar()
                out[str(track)] = SideFigures(
                    runs=int(runs), finished=int(done or 0), failed=int(bad or 0),
                    decided=int(decided or 0), rejected=int(rejected or 0),
                    edited=int(edited or 0), escalated=int(escalated or 0),
                    p95_latency_ms=float(p95) if p95 is not None else None,
                    cost=float(cost or 0.0),
                )  # fmt: skip
        return out

    def track_of_run(self, run_id: str) -> tuple[str, str] | None:
        """``(rollout_id, track)`` of a run that started in a rollout."""
        stmt = sa.select(_RR.rollout_id, _RR.track).where(_RR.run_id == run_id)
        with self._read() as conn:
            row = conn.execute(stmt).first()
        return (str(row[0]), str(row[1])) if row is not None else None


class RolloutRunWrites(TransactionBase):
    """A transaction's writes of ``rollout_runs`` (mixed into
    :class:`~kneo.store.transaction.Transaction`)."""

    def note_rollout_run(
        self, run_id: str, rollout: Mapping[str, Any], revision: int | None
    ) -> None:
        """Count a new run in its rollout (``rollout``: the run's ``metadata.rollout``)."""
        values = {
            "rollout_id": str(rollout["id"]),
            "run_id": run_id,
            "track": str(rollout["track"]),
            "revision": int(revision or 0),
            "created_at": self.now,
            "decided": 0,
            "rejected": 0,
            "edited": 0,
            "escalated": 0,
        }
        names = tuple(values)
        self._batched(
            ("rollout_runs", "insert"),
            lambda: sa.insert(rollout_runs).values({n: sa.bindparam(n) for n in names}),
            self._d.bind(rollout_runs, values),
        )

    def note_rollout_outcome(
        self, run_id: str, rollout: Mapping[str, Any], status: str, latency_ms: int | None,
        cost: float | None = None,
    ) -> None:  # fmt: skip
        """A rollout run's outcome (``succeeded``, ``failed``, ``cancelled``)."""
        if status not in SETTLED:
            return
        self._batched(
            ("rollout_runs", "outcome"),
            lambda: (
                sa.update(rollout_runs)
                .where(
                    _RR.rollout_id == sa.bindparam("k_rollout"), _RR.run_id == sa.bindparam("k_run")
                )
                .values(
                    outcome=sa.bindparam("outcome"),
                    latency_ms=sa.bindparam("latency_ms"),
                    cost=sa.bindparam("cost"),
                )
            ),
            {
                "k_rollout": str(rollout["id"]),
                "k_run": run_id,
                "outcome": status,
                "latency_ms": latency_ms,
                "cost": cost,
            },
        )

    def note_rollout_decisions(
        self, run_id: str, rollout: Mapping[str, Any], decisions: Sequence[str],
        escalated: int = 0,
    ) -> None:  # fmt: skip
        """Count human decisions (``approved``, ``rejected``, ``edited`` ...) and
        escalations on a rollout run."""
        self._batched(
            ("rollout_runs", "decisions"),
            lambda: (
                sa.update(rollout_runs)
                .where(
                    _RR.rollout_id == sa.bindparam("k_rollout"), _RR.run_id == sa.bindparam("k_run")
                )
                .values(
                    decided=_RR.decided + sa.bindparam("d_decided"),
                    rejected=_RR.rejected + sa.bindparam("d_rejected"),
                    edited=_RR.edited + sa.bindparam("d_edited"),
                    escalated=_RR.escalated + sa.bindparam("d_escalated"),
                )
            ),
            {
                "k_rollout": str(rollout["id"]),
                "k_run": run_id,
                "d_decided": len(decisions),
                "d_rejected": sum(d == "rejected" for d in decisions),
                "d_edited": sum(d == "edited" for d in decisions),
                "d_escalated": escalated,
            },
        )

    def begin_rollout(
        self,
        rollout_id: str,
        *,
        bundle_name: str,
        environment: str,
        stable_revision: int,
        canary_revision: int,
        canary_digest: str | None,
        commit: str | None,
        weight: int,
        step: int,
        policy: Mapping[str, Any],
    ) -> RolloutRecord:
        """A new rollout of ``canary_revision`` over ``stable_revision``; one still moving
        for the key is superseded by it (in this transaction: with the promotion)."""
        values = {
            "rollout_id": rollout_id,
            "project_id": self._pid,
            "bundle_name": bundle_name,
            "environment": environment,
            "stable_revision": stable_revision,
            "canary_revision": canary_revision,
            "canary_digest": canary_digest,
            "commit": commit,
            "status": "progressing",
            "step": step,
            "weight": weight,
            "policy": dict(policy),
            "reason": None,
            "figures": None,
            "started_at": self.now,
            "step_started_at": self.now,
            "updated_at": self.now,
            "finished_at": None,
            "version": 1,
        }
        self._exec(
            ("rollouts", "supersede"),
            lambda: (
                sa.update(rollouts)
                .where(
                    _R.project_id == sa.bindparam("k_project"),
                    _R.bundle_name == sa.bindparam("k_bundle"),
                    _R.environment == sa.bindparam("k_env"),
                    sa.or_(
                        _R.status == sa.bindparam("k_moving"), _R.status == sa.bindparam("k_paused")
                    ),
                )
                .values(
                    status=sa.bindparam("superseded"),
                    reason=sa.bindparam("reason"),
                    finished_at=sa.bindparam("now"),
                    updated_at=sa.bindparam("now"),
                    version=_R.version + sa.bindparam("one"),
                )
            ),
            {
                "k_moving": MOVING[0],
                "k_paused": MOVING[1],
                "superseded": "superseded",
                "one": 1,
                "k_project": self._pid,
                "k_bundle": bundle_name,
                "k_env": environment,
                "reason": f"superseded by revision {canary_revision}",
                "now": self._now_bound(),
            },
        )
        names = tuple(values)
        self._exec(
            ("rollouts", "insert"),
            lambda: sa.insert(rollouts).values({n: sa.bindparam(n) for n in names}),
            self._d.bind(rollouts, values),
        )
        return _record(values)

    def move_rollout(self, record: RolloutRecord, **changes: Any) -> RolloutRecord:
        """Compare-and-set a rollout's place (``status``, ``step``, ``weight``, ``reason``,
        ``figures``, ``step_started_at``, ``finished_at``) at ``record``'s version;
        ``stale_state`` when someone else moved it first."""
        unknown = set(changes) - set(_MOVABLE)
        if unknown:
            raise ValueError(f"not a rollout's place: {sorted(unknown)}")
        moved = dataclasses.replace(
            record, **changes, updated_at=self.now, version=record.version + 1
        )
        values = {n: getattr(moved, n) for n in (*_MOVABLE, "updated_at", "version")}
        params = {
            **self._d.bind(rollouts, values),
            "k_id": record.rollout_id,
            "k_version": record.version,
            "k_project": self._pid,
        }
        done = self._first(
            ("rollouts", "move"),
            lambda: (
                sa.update(rollouts)
                .where(
                    _R.project_id == sa.bindparam("k_project"),
                    _R.rollout_id == sa.bindparam("k_id"),
                    _R.version == sa.bindparam("k_version"),
                )
                .values({n: sa.bindparam(n) for n in values})
                .returning(_R.rollout_id)
            ),  # not rowcount: psycopg's pipeline knows it only later
            params,
        )
        if done is None:
            raise Conflict(
                f"rollout {record.rollout_id} changed concurrently", code=ErrorCode.stale_state
            )
        return moved
