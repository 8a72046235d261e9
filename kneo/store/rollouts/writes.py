"""A transaction's writes of rollouts and their counters (:class:`RolloutRunWrites`, mixed
into :class:`~kneo.store.transaction.Transaction`): a rollout begun with the promotion that
starts it, moved under a compare-and-set, and the counters of its runs moved by the run's
own transactions, each add on one of :data:`~kneo.store.rollouts.tables.SHARDS` rows.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping, Sequence
from typing import Any, Unpack

import sqlalchemy as sa

from kneo.errors import Conflict, ErrorCode
from kneo.store.rollouts.figures import latency_bucket
from kneo.store.rollouts.records import RolloutChanges, RolloutRecord, rollout_record
from kneo.store.rollouts.tables import COUNTERS, MOVING, NO_LATENCY, SHARDS, rollout_sums, rollouts
from kneo.store.transaction_base import TransactionBase

_R = rollouts.c
#: what :meth:`RolloutRunWrites.move_rollout` changes
_MOVABLE = ("status", "step", "weight", "reason", "figures", "step_started_at", "finished_at")


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
            **{n: counts.get(n, 0) for n in COUNTERS},
        }

        def build() -> Any:
            stmt = self._d.insert(rollout_sums).values({n: sa.bindparam(n) for n in values})
            return stmt.on_conflict_do_update(
                index_elements=["rollout_id", "track", "bucket", "kind", "shard"],
                set_={n: rollout_sums.c[n] + stmt.excluded[n] for n in COUNTERS},
            )

        # not batched: the executor would merge two adds into one multi-row upsert, which
        # PostgreSQL refuses when both hit one row
        self._exec(("rollout_sums", "add"), build, values)

    def note_rollout(
        self, rollout: Mapping[str, Any], *, started: bool = False, status: str | None = None,
        latency_ms: int | None = None, cost: float | None = None,
        decisions: Sequence[tuple[str, str]] = (), escalated: Sequence[str] = (),
    ) -> None:  # fmt: skip
        """Count what a run did on its side of its rollout (``rollout``: the run's
        ``metadata.rollout``): ``started``, a new run; ``status``, its outcome (``succeeded``
        and ``failed`` count as finished, with ``latency_ms`` and, when known, ``cost``: a run
        with ``cost`` ``None`` adds to neither ``cost`` nor ``priced``; any other status
        counts nothing); ``decisions`` (``(kind, decision)``: ``("approval", "rejected")``
        ...) and ``escalated`` (the escalated requests' kinds), human decisions and
        escalations by kind."""
        if started:
            self._add_to_sums(rollout, NO_LATENCY, runs=1)
        if status in ("succeeded", "failed"):
            bucket = latency_bucket(latency_ms)
            self._add_to_sums(
                rollout,
                NO_LATENCY if bucket is None else bucket,
                finished=1,
                failed=int(status == "failed"),
                cost=cost or 0.0,
                priced=int(cost is not None),
            )
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
        self._supersede_moving(bundle_name, environment, canary_revision)
        names = tuple(values)
        self._exec(
            ("rollouts", "insert"),
            lambda: sa.insert(rollouts).values({n: sa.bindparam(n) for n in names}),
            self._d.bind(rollouts, values),
        )
        return rollout_record(values)

    def _supersede_moving(self, bundle_name: str, environment: str, canary_revision: int) -> None:
        """Finish the key's rollout still moving (progressing or paused), if any, as
        superseded by the rollout of ``canary_revision``."""
        self._exec(
            ("rollouts", "supersede"),
            _supersede_statement,
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


def _supersede_statement() -> Any:
    """The update that finishes a key's moving rollout as superseded (bound: the key, the
    moving statuses, the reason and the time)."""
    return (
        sa.update(rollouts)
        .where(
            _R.project_id == sa.bindparam("k_project"),
            _R.bundle_name == sa.bindparam("k_bundle"),
            _R.environment == sa.bindparam("k_env"),
            sa.or_(_R.status == sa.bindparam("k_moving"), _R.status == sa.bindparam("k_paused")),
        )
        .values(
            status=sa.bindparam("superseded"),
            reason=sa.bindparam("reason"),
            finished_at=sa.bindparam("now"),
            updated_at=sa.bindparam("now"),
            version=_R.version + sa.bindparam("one"),
        )
    )
