"""Schedules' state and ticks: ``schedule_states`` and ``schedule_ticks`` (migration 0029).

``schedule_ticks`` has one row per (project, bundle, environment, schedule, tick instant):
its primary key is what makes a tick start at most one run across every replica and
restart (the first insert claims it; every other scheduler's insert finds it taken).
``schedule_states`` keeps, per schedule, the last tick considered (where the next pass
counts from) and whether a person paused it.

The tables are defined here, with their only reader and writer, on the store's metadata.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from kneo.store import tables as t
from kneo.store.base import Facet

#: a schedule's key: (bundle, environment, schedule name)
ScheduleKey = tuple[str, str, str]


def _key() -> list[sa.Column[str]]:
    return [
        sa.Column("bundle_name", sa.String(255), primary_key=True),
        sa.Column("environment", sa.String(128), primary_key=True),
        sa.Column("schedule", sa.String(128), primary_key=True),
    ]


schedule_states = sa.Table(
    "schedule_states",
    t.metadata,
    t.project_column(key=True),
    *_key(),
    sa.Column("last_tick", t.UTCDateTime),
    sa.Column("paused", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("paused_by", sa.String(255)),
    sa.Column("updated_at", t.UTCDateTime, nullable=False),
)

schedule_ticks = sa.Table(
    "schedule_ticks",
    t.metadata,
    t.project_column(key=True),
    *_key(),
    sa.Column("tick_at", t.UTCDateTime, primary_key=True),
    #: claimed, started, skipped (overlap), waiting (overlap: queue), failed, lost
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("run_id", sa.String(128)),
    sa.Column("detail", sa.String(500)),
    sa.Column("created_at", t.UTCDateTime, nullable=False),
    sa.Column("updated_at", t.UTCDateTime, nullable=False),
    sa.Index("ix_schedule_ticks_status", "project_id", "status"),
)

#: run statuses a schedule's run is still live in (its overlap policy applies)
LIVE = ("queued", "running", "paused")


@dataclass(frozen=True)
class ScheduleState:
    last_tick: datetime | None
    paused: bool
    paused_by: str | None


@dataclass(frozen=True)
class Tick:
    bundle: str
    environment: str
    schedule: str
    tick_at: datetime
    status: str
    run_id: str | None
    detail: str | None
    created_at: datetime

    @property
    def key(self) -> ScheduleKey:
        """Its schedule's key."""
        return (self.bundle, self.environment, self.schedule)


class SchedulesFacet(Facet):
    """``store.schedules``: a project's schedule states and ticks; each call commits."""

    def _key(self, key: ScheduleKey, table: sa.Table) -> list[sa.ColumnElement[bool]]:
        c = table.c
        return [
            c.project_id == self.project_id,
            c.bundle_name == key[0],
            c.environment == key[1],
            c.schedule == key[2],
        ]

    def states(self) -> dict[ScheduleKey, ScheduleState]:
        """Every schedule's state in the project."""
        c = schedule_states.c
        stmt = sa.select(
            c.bundle_name, c.environment, c.schedule, c.last_tick, c.paused, c.paused_by
        ).where(c.project_id == self.project_id)
        with self._read(snapshot=False) as conn:
            return {
                (r[0], r[1], r[2]): ScheduleState(r[3], bool(r[4]), r[5])
                for r in conn.execute(stmt)
            }

    def advance(self, key: ScheduleKey, tick: datetime) -> None:
        """Move the schedule's last tick considered forward to ``tick`` (never back)."""
        c = schedule_states.c
        now = self.clock.now()
        later = sa.or_(c.last_tick.is_(None), c.last_tick < tick)
        update = (
            sa.update(schedule_states)
            .where(*self._key(key, schedule_states), later)
            .values(last_tick=tick, updated_at=now)
        )
        with self._write() as conn:
            if conn.execute(update.returning(schedule_states.c.last_tick)).first() is None:
                conn.execute(self._insert_state(key, tick, now))

    def _insert_state(self, key: ScheduleKey, tick: datetime | None, now: datetime) -> Any:
        values = {
            "project_id": self.project_id,
            "bundle_name": key[0],
            "environment": key[1],
            "schedule": key[2],
            "last_tick": tick,
            "paused": False,
            "updated_at": now,
        }
        return (
            self.dialect.insert(schedule_states)
            .values(**values)
            .on_conflict_do_nothing(
                index_elements=["project_id", "bundle_name", "environment", "schedule"]
            )
        )

    def set_paused(self, key: ScheduleKey, paused: bool, actor: str | None) -> None:
        """Pause or resume a schedule. A resume counts from now: ticks held by a pause
        are not caught up (a freeze's or a suspension's are, by the catch-up policy)."""
        now = self.clock.now()
        values: dict[str, object] = {"paused": paused, "paused_by": actor if paused else None}
        if not paused:
            values["last_tick"] = now
        with self._write() as conn:
            conn.execute(self._insert_state(key, None, now))
            conn.execute(
                sa.update(schedule_states)
                .where(*self._key(key, schedule_states))
                .values(**values, updated_at=now)
            )

    def claim_tick(self, key: ScheduleKey, tick: datetime, status: str = "claimed") -> bool:
        """Take ``tick`` of the schedule: ``True`` for exactly one caller across replicas."""
        now = self.clock.now()
        stmt = (
            self.dialect.insert(schedule_ticks)
            .values(
                project_id=self.project_id,
                bundle_name=key[0],
                environment=key[1],
                schedule=key[2],
                tick_at=tick,
                status=status,
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing(
                index_elements=["project_id", "bundle_name", "environment", "schedule", "tick_at"]
            )
        )
        # RETURNING, not rowcount: the PostgreSQL driver counts a conflict's no-op as a row
        with self._write() as conn:
            return conn.execute(stmt.returning(schedule_ticks.c.tick_at)).first() is not None

    def record_tick(
        self,
        key: ScheduleKey,
        tick: datetime,
        status: str,
        *,
        run_id: str | None = None,
        detail: str | None = None,
        expected: str | None = None,
    ) -> bool:
        """Set a claimed tick's outcome; with ``expected``, only from that status (a
        compare-and-set: ``True`` when this caller changed it)."""
        where = [*self._key(key, schedule_ticks), schedule_ticks.c.tick_at == tick]
        if expected is not None:
            where.append(schedule_ticks.c.status == expected)
        stmt = (
            sa.update(schedule_ticks)
            .where(*where)
            .values(
                status=status,
                run_id=run_id,
                detail=None if detail is None else detail[:500],
                updated_at=self.clock.now(),
            )
        )
        with self._write() as conn:
            return conn.execute(stmt.returning(schedule_ticks.c.tick_at)).first() is not None

    def live_run(self, key: ScheduleKey) -> str | None:
        """A run one of the schedule's ticks started that has not ended, if any."""
        k, r = schedule_ticks.c, t.runs.c
        stmt = (
            sa.select(k.run_id)
            .join(t.runs, sa.and_(r.run_id == k.run_id))
            .where(*self._key(key, schedule_ticks), k.status == "started", r.status.in_(LIVE))
            .limit(1)
        )
        with self._read(snapshot=False) as conn:
            found = conn.execute(stmt).scalar()
        return None if found is None else str(found)

    def waiting(self) -> dict[ScheduleKey, datetime]:
        """The schedules with a tick waiting its turn (overlap ``queue``), each with its
        earliest such tick: one grouped read through the index on status, one row a
        schedule however many ticks wait (a run paused for days under a per-minute schedule
        queues thousands, and every scheduler pass reads this)."""
        k = schedule_ticks.c
        stmt = (
            sa.select(k.bundle_name, k.environment, k.schedule, sa.func.min(k.tick_at))
            .where(k.project_id == self.project_id, k.status == "waiting")
            .group_by(k.bundle_name, k.environment, k.schedule)
        )
        with self._read(snapshot=False) as conn:
            return {(r[0], r[1], r[2]): r[3] for r in conn.execute(stmt)}

    def ticks(
        self,
        key: ScheduleKey | None = None,
        *,
        status: str | None = None,
        before: datetime | None = None,
        limit: int | None = 20,
    ) -> list[Tick]:
        """The latest ticks, newest first (``limit``: at most that many; ``None``: all): of
        the schedule ``key`` (``None``: every schedule in the project), in ``status``,
        claimed before ``before``. A status read goes through the index on status: the
        claims whose run was never recorded (the claimer died between the claim and the
        run's creation)."""
        k = schedule_ticks.c
        where = [k.project_id == self.project_id] if key is None else self._key(key, schedule_ticks)
        if status is not None:
            where.append(k.status == status)
        if before is not None:
            where.append(k.created_at < before)
        stmt = (
            sa.select(
                k.bundle_name, k.environment, k.schedule, k.tick_at, k.status, k.run_id,
                k.detail, k.created_at,
            )
            .where(*where)
            .order_by(k.tick_at.desc())
            .limit(limit)
        )  # fmt: skip
        with self._read(snapshot=False) as conn:
            return [Tick(*row) for row in conn.execute(stmt)]


__all__ = ["LIVE", "ScheduleKey", "ScheduleState", "SchedulesFacet", "Tick", "schedule_states",
           "schedule_ticks"]  # fmt: skip
