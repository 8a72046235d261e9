"""A2A push notification configs on the :class:`~kneo.store.api.Store` (``a2a_push_configs``,
migration 0025), and the outbox rows their pushes are.

A config belongs to its owner (the caller who set it): reads and clears name the owner,
so another caller finds nothing. The push sweep (:mod:`kneo.service.a2a_push`) reads the
configs whose run changed status since their last push (:meth:`A2aPushFacet.due_pushes`)
and records each push (:meth:`A2aPushFacet.record_push`): a compare-and-set on the config's
``pushed_seq``, the ``a2a.task_status`` event and its one delivery row (receiver ``a2a``,
ordered per config), in one transaction. Two sweeps that see the same change write it
once: the second's compare-and-set finds the sequence moved.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from kneo.errors import InvalidRequest
from kneo.projects import DEFAULT_PROJECT_ID
from kneo.store import tables as t
from kneo.store.base import Facet, given, not_found_error
from kneo.store.row_records import from_row

#: why the push sweep's statements see every project (each config says its project)
PUSHERS = "the push sweep reads and records the push configs of every project"

#: The outbox receiver of push deliveries (``kneo.platform.a2a_push.RECEIVER``).
PUSH_RECEIVER = "a2a"
#: The outbox event type of a push.
PUSH_EVENT = "a2a.task_status"


@dataclass(frozen=True)
class PushConfig:
    """One push config (``sealed``: the URL, the token and the credentials, never in
    clear; ``origin``: the URL's scheme, host and port)."""

    push_id: str
    run_id: str
    config_id: str
    owner: str
    origin: str
    auth_scheme: str | None
    sealed: str
    sees_requests: bool
    pushed_status: str | None
    pushed_seq: int
    done: bool
    created_at: datetime
    updated_at: datetime
    #: its run's project (the push sweep is global)
    project_id: int = DEFAULT_PROJECT_ID


@dataclass(frozen=True)
class PushTarget:
    """Where and how a config pushes, as :meth:`A2aPushFacet.set_push_config` sets it (its
    row id, ``origin`` in clear, the URL, token and credentials ``sealed``)."""

    push_id: str
    origin: str
    auth_scheme: str | None
    sealed: str
    sees_requests: bool


@dataclass(frozen=True)
class DuePush:
    """A config whose run is in another status than the one pushed last."""

    config: PushConfig
    status: str


def _config(row: Any) -> PushConfig:
    return from_row(PushConfig, row)


class A2aPushFacet(Facet):
    """Push configs and their pushes; every method commits on its own."""

    def set_push_config(
        self,
        run_id: str,
        owner: str,
        config_id: str,
        target: PushTarget | None,
        *,
        limit: int | None = None,
    ) -> PushConfig | None:
        """Set ``owner``'s config ``config_id`` on the project's run ``run_id`` to push to
        ``target``: a new row (a config of that id is replaced: its pushes not yet sent are
        dropped), pushed from the run's current status on; returns it. More than ``limit``
        configs of one owner on one run is ``invalid_request``; a run of another project is
        ``not_found``. ``None`` clears the config (its pushes not yet sent are dropped when
        their turn comes): returns the config cleared, ``None`` when there was none."""
        c, r = t.a2a_push_configs.c, t.runs.c
        mine = (c.run_id == run_id, c.owner == owner, c.project_id == self.project_id)
        this = sa.delete(t.a2a_push_configs).where(*mine, c.config_id == config_id)
        if target is None:
            with self._write(one_statement=True) as conn:
                row = conn.execute(this.returning(*t.a2a_push_configs.c)).mappings().first()
            return None if row is None else _config(row)
        now = self.clock.now()
        run = sa.select(r.run_id).where(r.run_id == run_id, r.project_id == self.project_id)
        with self._write() as conn:
            if conn.execute(run).first() is None:
                raise not_found_error("run", run_id)
            conn.execute(this)
            held = conn.execute(
                sa.select(sa.func.count()).select_from(t.a2a_push_configs).where(*mine)
            ).scalar_one()
            if limit is not None and held >= limit:
                raise InvalidRequest(
                    f"task {run_id} has {held} push configs of yours already (at most {limit}): "
                    "delete one first",
                    field="id",
                )
            config = PushConfig(
                **vars(target),
                run_id=run_id,
                config_id=config_id,
                owner=owner,
                pushed_status=None,
                pushed_seq=0,
                done=False,
                created_at=now,
                updated_at=now,
                project_id=self.project_id,
            )
            conn.execute(sa.insert(t.a2a_push_configs).values(**vars(config)))
        return config

    def push_configs(
        self, run_id: str | None = None, owner: str | None = None, *, push_id: str | None = None
    ) -> list[PushConfig]:
        """The project's configs, oldest first: ``owner``'s on run ``run_id``, or the one of
        row id ``push_id`` (a delivery's), whoever owns it (each filter given applies)."""
        c = t.a2a_push_configs.c
        where = given((c.run_id, run_id), (c.owner, owner), (c.push_id, push_id))
        with self._read() as conn:
            found = conn.execute(
                sa.select(t.a2a_push_configs)
                .where(*where, c.project_id == self.project_id)
                .order_by(c.created_at, c.push_id)
            ).mappings()
            return [_config(row) for row in found]

    def due_pushes(self, limit: int = 100) -> list[DuePush]:
        """Configs of every project not done whose run's status differs from the one pushed
        last (never pushed: due at once), oldest change first; a config whose run is gone is
        deleted. Each config says its project (``project_id``)."""
        c, r = t.a2a_push_configs.c, t.runs.c
        with self._read(everywhere=PUSHERS) as conn:
            found = conn.execute(
                sa.select(t.a2a_push_configs, r.status.label("run_status"))
                .join_from(t.a2a_push_configs, t.runs, r.run_id == c.run_id, isouter=True)
                .where(
                    c.done == sa.false(),
                    sa.or_(
                        c.pushed_status.is_(None),
                        r.status.is_(None),
                        c.pushed_status != r.status,
                    ),
                )
                .order_by(c.updated_at, c.push_id)
                .limit(limit)
            ).mappings()
            rows = list(found)
        orphans = [row["push_id"] for row in rows if row["run_status"] is None]
        if orphans:
            with self._write(one_statement=True, everywhere=PUSHERS) as conn:
                conn.execute(sa.delete(t.a2a_push_configs).where(c.push_id.in_(orphans)))
        return [
            DuePush(_config(row), str(row["run_status"]))
            for row in rows
            if row["run_status"] is not None
        ]

    def record_push(
        self,
        config: PushConfig,
        *,
        status: str,
        done: bool,
        payload: dict[str, Any],
    ) -> bool:
        """Record that ``config`` pushes its run's ``status``: ``pushed_status`` moves there
        if the config is still at ``config.pushed_seq`` (no other sweep recorded it), and
        the event (``payload``: ``push_id``, ``state``, ``body``, stored as given) and its
        delivery row are written with it. ``False``: another sweep did, or the config is
        gone."""
        c = t.a2a_push_configs.c
        now = self.clock.now()
        seq = config.pushed_seq + 1
        event_id = f"a2ap_{config.push_id}_{seq}"
        with self._write(everywhere=PUSHERS) as conn:
            moved = conn.execute(
                sa.update(t.a2a_push_configs)
                .where(c.push_id == config.push_id, c.pushed_seq == config.pushed_seq)
                .values(pushed_status=status, pushed_seq=seq, done=done, updated_at=now)
            ).rowcount
            if not moved:
                return False
            conn.execute(
                sa.insert(t.notification_events).values(
                    event_id=event_id,
                    event_type=PUSH_EVENT,
                    severity="info",
                    environment=None,
                    assignee=None,
                    actor=config.owner,
                    run_id=config.run_id,
                    continuation_id=None,
                    payload=payload,
                    routed=True,  # its one delivery is written here, to its config
                    created_at=now,
                    project_id=config.project_id,
                )
            )
            conn.execute(
                sa.insert(t.notifications).values(
                    event_id=event_id,
                    receiver=PUSH_RECEIVER,
                    task=config.push_id,  # a config's pushes go in order
                    status="pending",
                    attempts=0,
                    available_at=now,
                    created_at=now,
                    updated_at=now,
                    project_id=config.project_id,
                )
            )
        return True


__all__ = ["PUSH_EVENT", "PUSH_RECEIVER", "A2aPushFacet", "DuePush", "PushConfig", "PushTarget"]
