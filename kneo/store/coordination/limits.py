"""What a project's ``limits:`` are checked against (``store.limits``): its runs executing
and queued, counted up to the limit, and its usage per UTC day (``project_usage``, 0027).

The counts walk the runs' ``(project_id, status, ...)`` index and stop at the limit, so their
cost is bounded by the limit, not by the project's runs. A run *executes* while it is
``running`` under a live lease: a run handed to the workers (running, no lease yet) or
stranded (its lease lapsed) holds no slot, so a project at its limit never waits on runs
nobody executes. ``project_usage`` gets a row per project and day only where the project
has a daily budget; each model call adds to it in one upsert (an increment on the database,
so every process's calls add up), and a person's raise of the day's limit is an upsert too.

The table is defined here, with its only reader and writer, on the store's metadata.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from kneo.errors import InvalidRequest
from kneo.store import tables as t
from kneo.store.base import Facet, count_rows

project_usage = sa.Table(
    "project_usage",
    t.metadata,
    sa.Column("project_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("day", sa.String(10), primary_key=True),
    sa.Column("model_calls", sa.BigInteger, nullable=False),
    sa.Column("tokens", sa.BigInteger, nullable=False),
    # the day's limits as a person raised them at a budget pause (NULL: the definition's)
    sa.Column("model_calls_limit", sa.BigInteger),
    sa.Column("tokens_limit", sa.BigInteger),
    # what the day's priced model calls cost, in nanos of the price table's currency (0034)
    sa.Column("cost", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("cost_limit", sa.BigInteger),
    sa.Column("updated_at", t.UTCDateTime, nullable=False),
)

#: what a daily budget counts, and its ``project_usage`` columns (used, raised limit)
DAILY_COUNTERS: dict[str, tuple[str, str]] = {
    "model_calls": ("model_calls", "model_calls_limit"),
    "tokens": ("tokens", "tokens_limit"),
    "cost": ("cost", "cost_limit"),
}


@dataclass(frozen=True)
class DayUsage:
    """A project's usage on one UTC day (``day``: ``YYYY-MM-DD``), and the limits a person
    raised that day (``None``: the definition's)."""

    day: str
    model_calls: int = 0
    tokens: int = 0
    model_calls_limit: int | None = None
    tokens_limit: int | None = None
    #: in nanos of the price table's currency (:mod:`kneo.spec.prices`)
    cost: int = 0
    cost_limit: int | None = None

    def used(self, counter: str) -> int:
        return int(getattr(self, DAILY_COUNTERS[counter][0]))

    def raised(self, counter: str) -> int | None:
        value = getattr(self, DAILY_COUNTERS[counter][1])
        return None if value is None else int(value)


def _usage(row: Any) -> DayUsage:
    return DayUsage(**{name: row[name] for name in DayUsage.__dataclass_fields__})


def executing(now: Any) -> list[sa.ColumnElement[bool]]:
    """A run executes: ``running`` under a lease that has not lapsed."""
    r = t.runs.c
    return [r.status == "running", r.lease_expires_at > now]


class LimitsFacet(Facet):
    """Counts and daily usage for a project's ``limits:`` (``store.limits``); every method
    commits on its own."""

    def count_runs(self, status: str, cap: int, *, executing_only: bool = False) -> int:
        """The project's runs in ``status`` (``executing_only``: running under a live lease),
        counted up to ``cap``: the count stops there."""
        if cap < 1:
            raise InvalidRequest(f"cap must be at least 1, got {cap}", field="cap")
        r = t.runs.c
        where: list[Any] = [r.project_id == self.project_id, r.status == status]
        if executing_only:
            where = [r.project_id == self.project_id, *executing(self.clock.now())]
        with self._read(snapshot=False) as conn:
            return count_rows(conn, t.runs, where, cap)[0]

    def executing_runs(self, project_ids: Sequence[int]) -> dict[int, int]:
        """How many runs execute in each of ``project_ids`` (every project's: a worker's view
        of the projects it limits), one grouped query; a project with none is left out."""
        if not project_ids:
            return {}
        r = t.runs.c
        stmt = (
            sa.select(r.project_id, sa.func.count())
            .where(r.project_id.in_(list(project_ids)), *executing(self.clock.now()))
            .group_by(r.project_id)
        )
        with self._read(snapshot=False) as conn:
            return {int(pid): int(count) for pid, count in conn.execute(stmt)}

    def day_usage(self, day: str) -> DayUsage:
        """The project's usage on ``day`` (zeros when nothing was recorded)."""
        u = project_usage.c
        stmt = sa.select(project_usage).where(u.project_id == self.project_id, u.day == day)
        with self._read(snapshot=False) as conn:
            row = conn.execute(stmt).mappings().first()
        return DayUsage(day) if row is None else _usage(row)

    def add_usage(self, day: str, *, model_calls: int, tokens: int, cost: int = 0) -> None:
        """Add ``model_calls``, ``tokens`` and ``cost`` (nanos) to the project's usage on
        ``day`` (one upsert; concurrent adders add up)."""
        u = project_usage.c
        values = {"project_id": self.project_id, "day": day, "model_calls": model_calls}
        values |= {"tokens": tokens, "cost": cost, "updated_at": self.clock.now()}
        stmt = self.dialect.insert(project_usage).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[u.project_id, u.day],
            set_={
                "model_calls": u.model_calls + stmt.excluded.model_calls,
                "tokens": u.tokens + stmt.excluded.tokens,
                "cost": u.cost + stmt.excluded.cost,
                "updated_at": stmt.excluded.updated_at,
            },
        )
        with self._write(one_statement=True) as conn:
            conn.execute(stmt)

    def raise_day_limit(self, day: str, counter: str, limit: int) -> DayUsage:
        """Raise the project's limit on ``counter`` (``model_calls``, ``tokens``, ``cost``) for ``day``
        to ``limit``, unless it was raised higher already (a decision replayed, or two people
        raising at once: the higher stands); the day's usage after it."""
        if counter not in DAILY_COUNTERS:
            raise InvalidRequest(f"unknown daily budget {counter!r}", field="counter")
        column = DAILY_COUNTERS[counter][1]
        u = project_usage.c
        values = {"project_id": self.project_id, "day": day, "model_calls": 0, "tokens": 0}
        values["cost"] = 0
        values |= {column: limit, "updated_at": self.clock.now()}
        stmt = self.dialect.insert(project_usage).values(**values)
        current, proposed = u[column], stmt.excluded[column]
        higher = sa.case((sa.or_(current.is_(None), current < proposed), proposed), else_=current)
        stmt = stmt.on_conflict_do_update(
            index_elements=[u.project_id, u.day],
            set_={column: higher, "updated_at": stmt.excluded.updated_at},
        ).returning(*project_usage.c)
        with self._write(one_statement=True) as conn:
            return _usage(conn.execute(stmt).mappings().one())


__all__ = ["DAILY_COUNTERS", "DayUsage", "LimitsFacet", "executing", "project_usage"]
