"""Rollouts and their runs' figures: ``rollouts``, ``rollout_sums`` (migration 0030),
``rollout_judgements`` (0036).

``rollouts``: one row per rollout of a bundle in an environment (the controller's: a
promotion under a ``rollout:`` policy), where it stands (step, canary share, status) and
what it decided (reason, figures). The newest row of a bundle and environment is the one
admission reads for each new run of it (one indexed point read).

``rollout_sums``: what the runs of each side of a rollout add up to, kept as counters the
run's own transactions move: the one that creates a run counts it, the one that finishes it
its outcome, latency and cost, the ones that decide its human requests their decisions
(:class:`RolloutRunWrites`). Each write adds to one of :data:`SHARDS` rows per side and
latency bucket, picked at random, so concurrent runs of one rollout seldom wait on the same
row; the analysis (:meth:`RolloutFacet.figures`) adds up at most
``2 x SHARDS x (buckets + 1)`` rows, however many runs the rollout had. The p95 latency: a
settled run's latency is counted in a bucket of a log scale (:func:`latency_bucket`, 5 %
wide; bucket ``-1``: no latency), and the p95 is the bucket where the running count passes
95 % (nearest rank), reported at the bucket's geometric middle: within 2.5 % of the exact
value.

``rollout_judgements``: a model judge's verdict on a sampled finished run of a rollout
(:mod:`kneo.platform.rollout_judge`), one row per rollout and run (a run is judged once: a
second insert writes nothing), counted per side with the figures.

The tables are defined here, with their only readers and writers, on the store's metadata.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict, Unpack

import sqlalchemy as sa

from kneo.errors import Conflict, ErrorCode, NotFound
from kneo.store import row_records
from kneo.store import tables as t
from kneo.store.base import Facet, check_page, keyset_page
from kneo.store.records import BundleRevision, Page
from kneo.store.registry.statements import ACTIVE
from kneo.store.transaction_base import TransactionBase

__all__ = [
    "JUDGE_REASON_CHARS",
    "JudgeCandidate",
    "KindFigures",
    "RolloutFacet",
    "RolloutRecord",
    "RolloutRoute",
    "RolloutRunWrites",
    "SideFigures",
    "fold_sums",
    "moving_sums",
    "rollout_judgements",
    "rollout_sums",
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

#: rows per side and latency bucket the counters of a rollout are spread over
SHARDS = 16
#: the bucket of counters that are not a settled run's (starts, decisions)
NO_LATENCY = -1

rollout_sums = sa.Table(
    "rollout_sums",
    t.metadata,
    sa.Column("rollout_id", sa.String(64), primary_key=True),
    sa.Column("track", sa.String(8), primary_key=True),  # canary | stable
    sa.Column("bucket", sa.Integer, primary_key=True),
    # a human request's kind for its decisions' counters ('': starts and outcomes; 0035)
    sa.Column("kind", sa.String(32), primary_key=True, server_default=""),
    sa.Column("shard", sa.Integer, primary_key=True),
    sa.Column("runs", sa.BigInteger, nullable=False),
    sa.Column("finished", sa.BigInteger, nullable=False),
    sa.Column("failed", sa.BigInteger, nullable=False),
    sa.Column("decided", sa.BigInteger, nullable=False),
    sa.Column("rejected", sa.BigInteger, nullable=False),
    sa.Column("edited", sa.BigInteger, nullable=False),
    sa.Column("escalated", sa.BigInteger, nullable=False),
    sa.Column("cost", sa.Float, nullable=False),
    # finished runs whose cost is known (every model call priced; 0034): cost is their sum
    sa.Column("priced", sa.BigInteger, nullable=False, server_default="0"),
    sqlite_with_rowid=False,
)
#: the longest reason a judgement keeps
JUDGE_REASON_CHARS = 200

rollout_judgements = sa.Table(
    "rollout_judgements",
    t.metadata,
    sa.Column("rollout_id", sa.String(64), primary_key=True),
    sa.Column("run_id", sa.String(128), primary_key=True),
    sa.Column("project_id", sa.Integer, nullable=False),
    sa.Column("track", sa.String(8), nullable=False),  # canary | stable
    sa.Column("passed", sa.Boolean, nullable=False),
    # the judge's reply, redacted and cut to JUDGE_REASON_CHARS
    sa.Column("reason", sa.String(JUDGE_REASON_CHARS), nullable=False),
    sa.Column("judged_at", t.UTCDateTime, nullable=False),
)
_J = rollout_judgements.c

_COUNTERS = (
    "runs", "finished", "failed", "decided", "rejected", "edited", "escalated", "cost", "priced"
)  # fmt: skip
#: the counters a kind of human request has
_DECISION_COUNTERS = ("decided", "rejected", "edited", "escalated")

_R = rollouts.c
#: rollout statuses whose canary still takes a share of new runs
MOVING = ("progressing", "paused")
#: what :meth:`RolloutRunWrites.move_rollout` changes
_MOVABLE = ("status", "step", "weight", "reason", "figures", "step_started_at", "finished_at")
_S = rollout_sums.c


class RolloutChanges(TypedDict, total=False):
    """What moving a rollout may change (:meth:`RolloutRunWrites.move_rollout`)."""

    status: str
    step: int
    weight: int
    reason: str | None
    figures: Mapping[str, Any] | None
    step_started_at: datetime
    finished_at: datetime | None


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
class KindFigures:
    """The decisions on one kind of human request (``approval``, ``review`` ...)."""

    decided: int = 0
    rejected: int = 0
    edited: int = 0
    escalated: int = 0


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
    #: finished runs whose cost is known (``cost`` sums theirs)
    priced: int = 0
    #: the decision counters by kind of request (those counted before 0035 in none)
    kinds: Mapping[str, KindFigures] = dataclasses.field(default_factory=dict)
    #: runs a model judge judged, and how many it passed (``rollout_judgements``)
    judged: int = 0
    judge_passed: int = 0


@dataclass(frozen=True)
class JudgeCandidate:
    """A finished run of a rollout's bundle a judge may judge: which, on what revision, and
    when it settled (with ``run_id``, the keyset position of
    :meth:`RolloutFacet.unjudged_runs`)."""

    run_id: str
    bundle_revision: int
    settled_at: datetime


#: the ratio between a latency bucket's bounds
BUCKET_RATIO = 1.05


def latency_bucket(latency_ms: int | None) -> int | None:
    """The log-scale bucket of a latency (bucket ``b`` holds ``[1.05**b, 1.05**(b+1))``
    milliseconds, after one added so zero has one)."""
    if latency_ms is None:
        return None
    return int(math.log(max(0, latency_ms) + 1) / math.log(BUCKET_RATIO))


def _p95(buckets: Sequence[tuple[int, int]]) -> float | None:
    """The nearest-rank p95 of ``(bucket, count)`` in bucket order, at the bucket's
    geometric middle."""
    total = sum(count for _, count in buckets)
    if not total:
        return None
    rank = -(-95 * total // 100)
    seen = 0
    for bucket, count in buckets:
        seen += count
        if seen >= rank:
            return max(0.0, float(BUCKET_RATIO ** (bucket + 0.5)) - 1)
    return None  # pragma: no cover - the counts add up to total


def _record(row: Mapping[str, Any]) -> RolloutRecord:
    names = {f.name for f in dataclasses.fields(RolloutRecord)}
    return RolloutRecord(**{k: v for k, v in row.items() if k in names})


@dataclass(frozen=True)
class RolloutRoute:
    """What a new run's split needs of a bundle's newest rollout."""

    rollout_id: str
    status: str
    weight: int
    stable_revision: int
    canary_revision: int


def _serving() -> Any:
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

    def current_rollout(self, bundle_name: str, environment: str) -> RolloutRecord | None:
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
        return _record(dict(row)) if row is not None else None

    def serving(
        self, bundle_name: str, environment: str
    ) -> tuple[BundleRevision | None, RolloutRoute | None]:
        """The active revision of ``bundle_name`` in ``environment`` and the bundle's newest
        rollout, in the one read a new run's start makes anyway."""
        stmt = self.dialect.memo(("rollouts", "serving"), _serving)
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
        return _record(dict(row))

    def list_rollouts(
        self,
        *,
        bundle_name: str | None = None,
        environment: str | None = None,
        status: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        count: bool = False,
    ) -> Page[RolloutRecord]:
        """Rollouts newest first (``started_at``, then id), filtered by bundle, environment
        and status; paged by ``cursor`` (a page's ``next_cursor``); ``count``: the
        matching total too (up to the count cap)."""
        check_page(limit, 0)
        where = [_R.project_id == self.project_id]
        for column, value in (
            (_R.bundle_name, bundle_name), (_R.environment, environment), (_R.status, status),
        ):  # fmt: skip
            if value is not None:
                where.append(column == value)
        columns = (_R.started_at, _R.rollout_id)
        with self._read() as conn:
            found, total, capped, next_cursor = keyset_page(
                conn, rollouts, where, columns, "started_at desc", limit=min(limit, 1000),
                cursor=cursor, count=count, cap=self.settings.limits.max_list_count or None,
            )  # fmt: skip
        items = [_record(dict(r)) for r in found]
        return Page(items, total, limit, 0, "started_at", "desc", next_cursor, capped)

    def active(self) -> list[RolloutRecord]:
        """Rollouts still moving (progressing or paused), oldest first."""
        stmt = (
            sa.select(rollouts)
            .where(_R.project_id == self.project_id, _R.status.in_(MOVING))
            .order_by(_R.started_at)
        )
        with self._read() as conn:
            return [_record(dict(r)) for r in conn.execute(stmt).mappings()]

    def figures(self, rollout_id: str) -> dict[str, SideFigures]:
        """Each side's figures (``canary``, ``stable``) from the rollout's counters."""
        stmt = self.dialect.memo(
            ("rollouts", "figures"),
            lambda: _sums().where(_S.rollout_id == sa.bindparam("rollout_id")),
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


def _sums() -> sa.Select[Any]:
    """The counters of rollouts by ``(rollout_id, track, bucket, kind)``, in that order."""
    key = (_S.rollout_id, _S.track, _S.bucket, _S.kind)
    return sa.select(*key, *(sa.func.sum(_S[n]) for n in _COUNTERS)).group_by(*key).order_by(*key)


def moving_sums() -> sa.Select[Any]:
    """:func:`_sums` of every moving rollout of every project (``/metrics``' gauges)."""
    moving = sa.select(_R.rollout_id).where(_R.status.in_(MOVING))
    return _sums().where(_S.rollout_id.in_(moving))


def fold_sums(rows: Iterable[Sequence[Any]]) -> dict[str, SideFigures]:
    """Each side's figures from one rollout's :func:`_sums` rows (``rollout_id, track,
    bucket, kind, *counters``) in bucket order; a side without rows is all zero."""
    sums: dict[str, list[float]] = {}
    kinds: dict[str, dict[str, list[int]]] = {}
    buckets: dict[str, list[tuple[int, int]]] = {}
    at = {n: i for i, n in enumerate(_COUNTERS)}
    for _, track, bucket, kind, *counts in rows:
        into = sums.setdefault(str(track), [0.0] * len(_COUNTERS))
        for i, value in enumerate(counts):
            into[i] += float(value or 0)
        if kind:
            of_kind = kinds.setdefault(str(track), {}).setdefault(str(kind), [0] * 4)
            for i, name in enumerate(_DECISION_COUNTERS):
                of_kind[i] += int(counts[at[name]] or 0)
        if bucket != NO_LATENCY and counts[1]:
            buckets.setdefault(str(track), []).append((int(bucket), int(counts[1])))
    out: dict[str, SideFigures] = {"canary": SideFigures(), "stable": SideFigures()}
    for track, counts in sums.items():
        runs, done, bad, decided, rejected, edited, escalated, cost, priced = counts
        out[track] = SideFigures(
            runs=int(runs), finished=int(done), failed=int(bad), decided=int(decided),
            rejected=int(rejected), edited=int(edited), escalated=int(escalated),
            p95_latency_ms=_p95(buckets.get(track, [])), cost=cost, priced=int(priced),
            kinds={k: KindFigures(*v) for k, v in sorted(kinds.get(track, {}).items())},
        )  # fmt: skip
    return out


class RolloutRunWrites(TransactionBase):
    """A transaction's writes of rollouts and their counters (mixed into
    :class:`~kneo.store.transaction.Transaction`)."""

    def _add_to_sums(
        self, rollout: Mapping[str, Any], bucket: int, kind: str = "", **counts: float
    ) -> None:
        """Add ``counts`` to one shard of ``rollout``'s side (``rollout``: the run's
        ``metadata.rollout``) in latency ``bucket``, for requests of ``kind``."""
        values: dict[str, Any] = {
            "rollout_id": str(rollout["id"]),
            "track": str(rollout["track"]),
            "bucket": bucket,
            "kind": kind,
            "shard": random.randrange(SHARDS),
            **{n: counts.get(n, 0) for n in _COUNTERS},
        }

        def build() -> Any:
            stmt = self._d.insert(rollout_sums).values({n: sa.bindparam(n) for n in values})
            return stmt.on_conflict_do_update(
                index_elements=["rollout_id", "track", "bucket", "kind", "shard"],
                set_={n: rollout_sums.c[n] + stmt.excluded[n] for n in _COUNTERS},
            )

        # not batched: the executor would merge two adds into one multi-row upsert, which
        # PostgreSQL refuses when both hit one row
        self._exec(("rollout_sums", "add"), build, values)

    def note_rollout_run(self, rollout: Mapping[str, Any]) -> None:
        """Count a new run on its side of its rollout."""
        self._add_to_sums(rollout, NO_LATENCY, runs=1)

    def note_rollout_outcome(
        self, rollout: Mapping[str, Any], status: str, latency_ms: int | None,
        cost: float | None = None,
    ) -> None:  # fmt: skip
        """A rollout run's outcome: ``succeeded`` and ``failed`` count as finished (with
        their latency and, when known, cost: a run with ``cost`` ``None`` adds to neither
        ``cost`` nor ``priced``), any other status does not."""
        if status not in ("succeeded", "failed"):
            return
        bucket = latency_bucket(latency_ms)
        self._add_to_sums(
            rollout,
            NO_LATENCY if bucket is None else bucket,
            finished=1,
            failed=int(status == "failed"),
            cost=cost or 0.0,
            priced=int(cost is not None),
        )

    def note_rollout_decisions(
        self, rollout: Mapping[str, Any], decisions: Sequence[tuple[str, str]] = (),
        escalated: Sequence[str] = (),
    ) -> None:  # fmt: skip
        """Count human decisions (``(kind, decision)``: ``("approval", "rejected")`` ...)
        and escalations (the escalated requests' kinds) on a rollout run's side, by kind."""
        for kind in sorted({k for k, _ in decisions} | set(escalated)):
            made = [d for k, d in decisions if k == kind]
            self._add_to_sums(
                rollout,
                NO_LATENCY,
                kind,
                decided=len(made),
                rejected=made.count("rejected"),
                edited=made.count("edited"),
                escalated=list(escalated).count(kind),
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

    def move_rollout(
        self, record: RolloutRecord, **changes: Unpack[RolloutChanges]
    ) -> RolloutRecord:
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
