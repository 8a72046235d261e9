"""``store.rollouts``: a project's rollouts read (the newest of a bundle, the one a new run's
split reads with the active revision, a page), their runs' figures, and a judge's verdicts
kept (each write commits on its own).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from kneo.errors import NotFound
from kneo.store import row_records
from kneo.store import tables as t
from kneo.store.base import Facet, given, keyset_page
from kneo.store.queries import RolloutQuery
from kneo.store.records import BundleRevision, Page
from kneo.store.registry.statements import ACTIVE
from kneo.store.rollouts.figures import SideFigures, counter_sums, fold_sums
from kneo.store.rollouts.records import JudgeCandidate, RolloutRecord, RolloutRoute, rollout_record
from kneo.store.rollouts.tables import (
    JUDGE_REASON_CHARS,
    MOVING,
    rollout_judgements,
    rollout_sums,
    rollouts,
)

_R = rollouts.c
_J = rollout_judgements.c
_S = rollout_sums.c


def serving_statement() -> Any:
    """The key's active revision and, joined, its newest rollout (if any): one read."""
    br = t.bundle_revisions.c
    r2 = rollouts.alias("newest").c
    newest = (
        sa.select(sa.func.max(r2.started_at))
        .where(
            r2.project_id == br.project_id,
            r2.bundle_name == br.bundle_name,
            r2.environment == br.environment,
        )
        .correlate(t.bundle_revisions)
        .scalar_subquery()
    )
    joined = t.bundle_revisions.outerjoin(
        rollouts,
        sa.and_(
            _R.project_id == br.project_id,
            _R.bundle_name == br.bundle_name,
            _R.environment == br.environment,
            _R.started_at == newest,
        ),
    )
    return (
        sa.select(
            t.bundle_revisions,
            _R.rollout_id.label("ro_id"),
            _R.status.label("ro_status"),
            _R.weight.label("ro_weight"),
            _R.stable_revision.label("ro_stable"),
            _R.canary_revision.label("ro_canary"),
        )
        .select_from(joined)
        .where(
            br.project_id == sa.bindparam("project_id"),
            br.bundle_name == sa.bindparam("bundle_name"),
            br.environment == sa.bindparam("environment"),
            br.status == ACTIVE,  # a literal: SQLite re-prepares a bound one every time
        )
    )


class RolloutFacet(Facet):
    """``store.rollouts``: a project's rollouts (each write commits on its own) and the
    figures of their runs."""

    def serving(
        self, bundle_name: str, environment: str
    ) -> tuple[BundleRevision | None, RolloutRoute | None]:
        """The active revision of ``bundle_name`` in ``environment`` and the bundle's newest
        rollout, in the one read a new run's start makes anyway."""
        stmt = self.dialect.memo(("rollouts", "serving"), serving_statement)
        params = {
            "project_id": self.project_id,
            "bundle_name": bundle_name,
            "environment": environment,
        }
        with self._read() as conn:
            row = conn.execute(stmt, params).mappings().first()
        if row is None:
            return None, None
        route = None
        if row["ro_id"] is not None:
            route = RolloutRoute(
                str(row["ro_id"]), str(row["ro_status"]), int(row["ro_weight"]),
                int(row["ro_stable"]), int(row["ro_canary"]),
            )  # fmt: skip
        return row_records.revision(row), route

    def get_rollout(self, rollout_id: str) -> RolloutRecord:
        stmt = sa.select(rollouts).where(
            _R.project_id == self.project_id, _R.rollout_id == rollout_id
        )
        with self._read() as conn:
            row = conn.execute(stmt).mappings().first()
        if row is None:
            raise NotFound(f"rollout {rollout_id!r} not found", resource="rollout")
        return rollout_record(dict(row))

    def list_rollouts(self, query: RolloutQuery = RolloutQuery()) -> Page[RolloutRecord]:
        """Rollouts newest first (``started_at``, then id), filtered by bundle, environment
        and status; paged by ``cursor`` (a page's ``next_cursor``); ``count``: the
        matching total too (up to the count cap)."""
        q = query
        where = [
            _R.project_id == self.project_id,
            *given(
                (_R.bundle_name, q.bundle), (_R.environment, q.environment), (_R.status, q.status)
            ),
        ]
        columns = (_R.started_at, _R.rollout_id)
        with self._read() as conn:
            found, total, capped, next_cursor = keyset_page(
                conn, rollouts, where, columns, "started_at desc", limit=min(q.limit, 1000),
                cursor=q.cursor, count=q.count, cap=self.settings.limits.max_list_count or None,
            )  # fmt: skip
        items = [rollout_record(dict(r)) for r in found]
        return Page(items, total, q.limit, 0, "started_at", "desc", next_cursor, capped)

    def active(self) -> list[RolloutRecord]:
        """Rollouts still moving (progressing or paused), oldest first."""
        stmt = (
            sa.select(rollouts)
            .where(_R.project_id == self.project_id, _R.status.in_(MOVING))
            .order_by(_R.started_at)
        )
        with self._read() as conn:
            return [rollout_record(dict(r)) for r in conn.execute(stmt).mappings()]

    def figures(self, rollout_id: str) -> dict[str, SideFigures]:
        """Each side's figures (``canary``, ``stable``) from the rollout's counters."""
        stmt = self.dialect.memo(
            ("rollouts", "figures"),
            lambda: counter_sums().where(_S.rollout_id == sa.bindparam("rollout_id")),
        )
        judged = self.dialect.memo(
            ("rollouts", "judged"),
            lambda: (
                sa.select(
                    _J.track,
                    sa.func.count(),
                    sa.func.sum(sa.case((_J.passed, 1), else_=0)),
                )
                .where(
                    _J.project_id == sa.bindparam("project_id"),
                    _J.rollout_id == sa.bindparam("rollout_id"),
                )
                .group_by(_J.track)
            ),
        )
        params = {"rollout_id": rollout_id, "project_id": self.project_id}
        with self._read() as conn:
            rows = conn.execute(stmt, {"rollout_id": rollout_id}).all()
            counts = conn.execute(judged, params).all()
        out = fold_sums(rows)
        for track, total, passed in counts:
            if str(track) in out:
                out[str(track)] = dataclasses.replace(
                    out[str(track)], judged=int(total), judge_passed=int(passed or 0)
                )
        return out

    def unjudged_runs(
        self,
        record: RolloutRecord,
        *,
        after: tuple[datetime, str] | None = None,
        limit: int = 200,
    ) -> list[JudgeCandidate]:
        """Succeeded runs of ``record``'s bundle and environment on its stable or canary
        revision, started since it began, not judged for it yet, in the order they settled
        (``updated_at``, then id: a run that settles later comes later), after the keyset
        position ``after`` (``(settled_at, run_id)``); at most ``limit``."""
        r = t.runs.c
        judged = sa.exists().where(
            _J.project_id == self.project_id,
            _J.rollout_id == record.rollout_id,
            _J.run_id == r.run_id,
        )
        where = [
            r.project_id == self.project_id,
            r.status == "succeeded",
            r.created_at >= record.started_at,
            r.bundle_name == record.bundle_name,
            r.environment == record.environment,
            r.bundle_revision.in_((record.stable_revision, record.canary_revision)),
            ~judged,
        ]
        if after is not None:
            at, run_id = after
            where.append(sa.or_(r.updated_at > at, sa.and_(r.updated_at == at, r.run_id > run_id)))
        stmt = (
            sa.select(r.run_id, r.bundle_revision, r.updated_at)
            .where(*where)
            .order_by(r.updated_at, r.run_id)
            .limit(max(1, min(limit, 1000)))
        )
        with self._read(snapshot=False) as conn:
            return [JudgeCandidate(str(a), int(b), c) for a, b, c in conn.execute(stmt)]

    def record_judgement(
        self, rollout_id: str, run_id: str, *, track: str, passed: bool, reason: str
    ) -> bool:
        """Keep a judge's verdict on a run of a rollout (``reason`` already redacted; cut
        to :data:`JUDGE_REASON_CHARS`); ``False`` when the run was judged before (nothing
        written: a run is judged once). Commits on its own; another project's rollout is
        ``not_found``."""
        if track not in ("canary", "stable"):
            raise ValueError(f"track must be canary or stable; got {track!r}")
        values = {
            "rollout_id": rollout_id,
            "run_id": run_id,
            "project_id": self.project_id,
            "track": track,
            "passed": passed,
            "reason": reason[:JUDGE_REASON_CHARS],
            "judged_at": self.clock.now(),
        }
        stmt = (
            self.dialect.insert(rollout_judgements)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["rollout_id", "run_id"])
            .returning(_J.run_id)
        )
        ours = sa.select(_R.rollout_id).where(
            _R.project_id == self.project_id, _R.rollout_id == rollout_id
        )
        with self._write() as conn:
            if conn.execute(ours).first() is None:
                raise NotFound(f"rollout {rollout_id!r} not found", resource="rollout")
            return conn.execute(stmt).first() is not None
