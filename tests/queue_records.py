"""What a project's work queue holds, read for the tests' assertions. Nothing in Kneo reads
the queue this way (a worker claims, completes or releases a record), so the store offers
no such read; the tests read its table here, scoped to the store's project."""

from __future__ import annotations

import sqlalchemy as sa

from kneo.store import Store, row_records
from kneo.store import tables as t
from kneo.store.records import QUEUE_STATUSES, QueueRecord


def queue_records(store: Store, run_id: str) -> list[QueueRecord]:
    """Every queue record of one of the store's project's runs, oldest first."""
    q = t.queue.c
    stmt = sa.select(t.queue).where(q.run_id == run_id, q.project_id == store.project_id)
    with store.engine.connect() as conn:
        return [row_records.queue(r) for r in conn.execute(stmt.order_by(q.id)).mappings()]


def queue_stats(store: Store) -> dict[str, int]:
    """The project's records per status (every status present, zeros included) plus
    ``expired_leases``."""
    q = t.queue.c
    mine = q.project_id == store.project_id
    stats = dict.fromkeys(QUEUE_STATUSES, 0)
    expired = mine, q.status == "leased", q.lease_expires_at <= store.clock.now()
    with store.engine.connect() as conn:
        counts = conn.execute(sa.select(q.status, sa.func.count()).where(mine).group_by(q.status))
        stats.update({status: int(n) for status, n in counts})
        count = sa.select(sa.func.count()).select_from(t.queue).where(*expired)
        stats["expired_leases"] = int(conn.execute(count).scalar_one())
    return stats
