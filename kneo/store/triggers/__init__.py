"""Events a trigger received: ``trigger_events`` (migration 0029).

One row per (project, bundle, environment, trigger, event key): its primary key is what
makes a retried delivery of one event start one run, whichever replica receives it. The
table is defined here, with its only reader and writer, on the store's metadata.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from kneo.store import tables as t
from kneo.store.base import Facet

#: (bundle, environment, trigger name)
TriggerKey = tuple[str, str, str]

trigger_events = sa.Table(
    "trigger_events",
    t.metadata,
    t.project_column(key=True),
    sa.Column("bundle_name", sa.String(255), primary_key=True),
    sa.Column("environment", sa.String(128), primary_key=True),
    sa.Column("trigger", sa.String(128), primary_key=True),
    #: the sha256 of the event's id (a CloudEvent's source and id; a delivery's message id)
    sa.Column("event_key", sa.String(64), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("run_id", sa.String(128)),
    sa.Column("detail", sa.String(500)),
    sa.Column("created_at", t.UTCDateTime, nullable=False),
)


class TriggersFacet(Facet):
    """``store.triggers``: claim an event once, record what it started; each call commits."""

    def _where(self, key: TriggerKey, event_key: str) -> list[sa.ColumnElement[bool]]:
        c = trigger_events.c
        return [
            c.project_id == self.project_id,
            c.bundle_name == key[0],
            c.environment == key[1],
            c.trigger == key[2],
            c.event_key == event_key,
        ]

    def claim_event(self, key: TriggerKey, event_key: str) -> dict[str, Any] | None:
        """Take the event: ``None`` for exactly one delivery of it across replicas; every
        other finds the outcome recorded so far (``status``, ``run_id``, ``detail``)."""
        c = trigger_events.c
        claim = (
            self.dialect.insert(trigger_events)
            .values(
                project_id=self.project_id, bundle_name=key[0], environment=key[1],
                trigger=key[2], event_key=event_key, status="claimed",
                created_at=self.clock.now(),
            )
            .on_conflict_do_nothing()
            .returning(trigger_events.c.event_key)
        )  # fmt: skip
        earlier = sa.select(c.status, c.run_id, c.detail).where(*self._where(key, event_key))
        with self._write() as conn:
            if conn.execute(claim).first() is not None:
                return None
            row = conn.execute(earlier).one()  # (what the insert found: no row is deleted)
        return {"status": row[0], "run_id": row[1], "detail": row[2]}

    def record_event(
        self, key: TriggerKey, event_key: str, status: str, *, run_id: str | None = None,
        detail: str | None = None,
    ) -> None:  # fmt: skip
        stmt = (
            sa.update(trigger_events)
            .where(*self._where(key, event_key))
            .values(status=status, run_id=run_id, detail=None if detail is None else detail[:500])
        )
        with self._write() as conn:
            conn.execute(stmt)


__all__ = ["TriggerKey", "TriggersFacet", "trigger_events"]
