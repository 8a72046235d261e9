"""Coordination between processes: the run queue with leases, named locks, idempotency keys,
the interaction callbacks already accepted (a replay refused by every process).

Each primitive commits on its own, short transaction. Correctness rests on the database, not
on timing: a queue claim selects with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL and runs under
``BEGIN IMMEDIATE`` on SQLite; locks and idempotency keys rely on primary keys and
``INSERT ... ON CONFLICT DO NOTHING``, then a conditional update, so whichever writer wins the
row wins the lock. Expiry compares against the store's injected clock.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from kneo.errors import IdempotencyConflict, InvalidRequest, NotFound
from kneo.store import row_records
from kneo.store import tables as t
from kneo.store.base import Facet
from kneo.store.records import (
    IdempotencyOutcome,
    LockRecord,
    QueueRecord,
    RunLease,
    StrandedRun,
)
from kneo.store.wire.dialects import StoreDialect


def _positive(name: str, value: float) -> None:
    if value <= 0:
        raise InvalidRequest(f"{name} must be greater than zero, got {value}", field=name)


#: why the queue's and the run leases' statements see every project (each record says its own)
WORKERS = "a worker claims and leases the queue and runs of every project, by id"


# The queue's hot statements are built once per store (StoreDialect.memo): SQLAlchemy
# builds and cache-keys a statement made per call at every call, which cost a worker more
# than the statements' round trips.
def _claim_statement(dialect: StoreDialect, *, excluding: bool = False) -> Any:
    """One statement: the subquery picks and locks the oldest due record (skipping those
    other claims hold; ``excluding``: and those of the projects ``excluded``), the update
    leases it to ``owner`` until ``expires``."""

    def build() -> Any:
        q = t.queue.c
        now = sa.bindparam("now", type_=q.updated_at.type)
        due = sa.or_(
            sa.and_(q.status == "queued", q.available_at <= now),
            sa.and_(q.status == "leased", q.lease_expires_at <= now),
        )
        if excluding:
            due = sa.and_(due, q.project_id.not_in(sa.bindparam("excluded", expanding=True)))
        pick = dialect.for_claim(sa.select(q.id).where(due).order_by(q.id).limit(1))
        return (
            sa.update(t.queue)
            .where(q.id == pick.scalar_subquery())
            .values(
                status="leased",
                attempts=q.attempts + 1,
                lease_owner=sa.bindparam("owner"),
                lease_expires_at=sa.bindparam("expires"),
                updated_at=now,
            )
            .returning(*t.queue.c)
        )

    return dialect.memo("claim_excluding" if excluding else "claim", build)


def _lease_update(dialect: StoreDialect, names: tuple[str, ...]) -> Any:
    """Set ``names`` (and ``updated_at``) on a record ``k_owner`` still holds at ``k_now``."""

    def build() -> Any:
        q = t.queue.c
        return (
            sa.update(t.queue)
            .where(
                q.id == sa.bindparam("k_id"),
                q.lease_owner == sa.bindparam("k_owner"),
                q.status == "leased",
                q.lease_expires_at > sa.bindparam("k_now", type_=q.lease_expires_at.type),
            )
            .values({name: sa.bindparam(f"v_{name}") for name in ("updated_at", *names)})
        )

    return dialect.memo(("lease_update", names), build)


class QueueFacet(Facet):
    """The run queue and the per-run leases (``store.queue``)."""

    # -- queue ------------------------------------------------------------------------
    def claim(
        self, owner: str, lease_seconds: float, *, excluded_projects: Collection[int] = ()
    ) -> QueueRecord | None:
        """Lease the oldest claimable record to ``owner``, or ``None`` when nothing is due.

        Claimable: ``queued`` and available now, or ``leased`` with an expired lease (its
        worker died), of every project but ``excluded_projects`` (ids: those at their
        ``max_running_runs``; none excluded, the statement is the one it always was). Each
        claim increments ``attempts``; a record is never held by two owners at once.
        """
        _positive("lease_seconds", lease_seconds)
        now = self.clock.now()
        params: dict[str, Any] = {"now": now, "owner": owner}
        params["expires"] = now + timedelta(seconds=lease_seconds)
        if excluded_projects:
            params["excluded"] = sorted(excluded_projects)
        statement = _claim_statement(self.dialect, excluding=bool(excluded_projects))
        with self._write(one_statement=True, everywhere=WORKERS) as conn:
            row = conn.execute(statement, params).mappings().first()
        return None if row is None else row_records.queue(row)

    def _update_lease(self, queue_id: int, owner: str, **values: Any) -> bool:
        now = self.clock.now()
        params = {f"v_{name}": value for name, value in values.items()}
        params |= {"k_id": queue_id, "k_owner": owner, "k_now": now, "v_updated_at": now}
        with self._write(one_statement=True, everywhere=WORKERS) as conn:
            result = conn.execute(_lease_update(self.dialect, tuple(sorted(values))), params)
            return result.rowcount == 1

    def renew_lease(self, queue_id: int, owner: str, lease_seconds: float) -> bool:
        """Extend a lease ``owner`` still holds; ``False`` means it expired or was taken over."""
        _positive("lease_seconds", lease_seconds)
        expires = self.clock.now() + timedelta(seconds=lease_seconds)
        return self._update_lease(queue_id, owner, lease_expires_at=expires)

    def finish(self, queue_id: int, owner: str, error: Mapping[str, Any] | None = None) -> bool:
        """Mark a leased record ``completed``, or ``failed`` with ``error`` details (not
        retried automatically); ``False`` if ``owner`` no longer holds the lease."""
        values: dict[str, Any] = {"status": "completed"}
        if error is not None:
            values = {"status": "failed", "error": dict(error)}
        return self._update_lease(
            queue_id, owner, **values, finished_at=self.clock.now(), lease_expires_at=None
        )

    def release(self, queue_id: int, owner: str, *, delay_seconds: float = 0.0) -> bool:
        """Give a lease back unfinished (graceful shutdown, a transient error): the record is
        queued again, due now or after ``delay_seconds``."""
        values: dict[str, Any] = {"status": "queued", "lease_owner": None, "lease_expires_at": None}
        if delay_seconds > 0:
            values["available_at"] = self.clock.now() + timedelta(seconds=delay_seconds)
        return self._update_lease(queue_id, owner, **values)

    # -- run leases -------------------------------------------------------------------
    # The process executing a run holds a lease on its row (``lease_owner``, renewed before
    # ``lease_expires_at``): a run is created, started or continued with it and its outcome
    # clears it in the same statements (see RowWriter.create_run, Transaction.take_run_lease
    # and finish_run), so the compare-and-set on the run's version decides who takes it;
    # these are the standalone changes of a lease held. None of them bumps the run's
    # version: the lease is about who executes the run, not about its content.
    def renew_run_leases(self, run_ids: Sequence[str], owner: str, ttl_seconds: float) -> int:
        """Extend the leases ``owner`` still holds on ``run_ids``, in one statement; how many
        it still held (a lapsed lease someone else took is not renewed)."""
        _positive("ttl_seconds", ttl_seconds)
        now = self.clock.now()
        r = t.runs.c
        with self._write(one_statement=True, everywhere=WORKERS) as conn:
            renewed = conn.execute(
                sa.update(t.runs)
                .where(
                    r.run_id.in_(list(run_ids)), r.lease_owner == owner, r.lease_expires_at > now
                )
                .values(lease_expires_at=now + timedelta(seconds=ttl_seconds))
            )
            return int(renewed.rowcount)

    def stranded_runs(self, idle_seconds: float, limit: int = 100) -> list[StrandedRun]:
        """Runs ``running`` that nobody executes, in every project (each with its project's
        id): no unexpired lease, no queue record waiting or leased, and not written for
        ``idle_seconds``. Oldest first. The running runs are found project by project on
        ``(project_id, status, ...)``: a seek each, not a scan of every run."""
        now = self.clock.now()
        r, q = t.runs.c, t.queue.c
        open_record = (
            sa.select(q.id).where(q.run_id == r.run_id, q.status.in_(("queued", "leased"))).exists()
        )
        stmt = (
            sa.select(r.run_id, r.project_id)
            .where(
                r.project_id.in_(sa.select(t.projects.c.id)),
                r.status == "running",
                sa.or_(r.lease_owner.is_(None), r.lease_expires_at <= now),
                r.updated_at <= now - timedelta(seconds=idle_seconds),
                ~open_record,
            )
            .order_by(r.updated_at)
            .limit(limit)
        )
        with self._read(
            snapshot=False, everywhere="the sweeper finds stranded runs of every project"
        ) as conn:
            return [StrandedRun(row[0], row[1]) for row in conn.execute(stmt)]

    def release_run_lease(self, run_id: str, owner: str) -> bool:
        """Give up the lease ``owner`` holds on ``run_id``; ``False`` if it was not theirs."""
        r = t.runs.c
        with self._write(everywhere=WORKERS) as conn:
            released = conn.execute(
                sa.update(t.runs)
                .where(r.run_id == run_id, r.lease_owner == owner)
                .values(lease_owner=None, lease_expires_at=None)
            )
            return released.rowcount == 1

    def run_lease(self, run_id: str) -> RunLease | None:
        """Who executes ``run_id`` under an unexpired lease, or ``None``."""
        r = t.runs.c
        with self._read(everywhere=WORKERS) as conn:
            row = conn.execute(
                sa.select(r.lease_owner, r.lease_expires_at).where(
                    r.run_id == run_id,
                    r.lease_owner.is_not(None),
                    r.lease_expires_at > self.clock.now(),
                )
            ).first()
        return None if row is None else RunLease(row[0], row[1])


class LocksFacet(Facet):
    """Named locks (``store.locks``)."""

    # -- named locks ------------------------------------------------------------------
    def acquire_lock(self, name: str, owner: str, ttl_seconds: float) -> bool:
        """Take (or re-take, for the same owner) the lock ``name`` for ``ttl_seconds``.

        ``False`` when someone else holds it and it has not expired. A holder that dies
        simply stops renewing; its lock lapses after the ttl.
        """
        _positive("ttl_seconds", ttl_seconds)
        now = self.clock.now()
        expires = now + timedelta(seconds=ttl_seconds)
        lk = t.locks.c
        with self._write() as conn:
            inserted = conn.execute(
                self.dialect.insert(t.locks)
                .values(name=name, owner=owner, acquired_at=now, expires_at=expires)
                .on_conflict_do_nothing(index_elements=["name"])
                .returning(t.locks.c.name)
            ).first()
            if inserted is not None:
                return True
            taken = conn.execute(
                sa.update(t.locks)
                .where(lk.name == name, sa.or_(lk.expires_at <= now, lk.owner == owner))
                .values(owner=owner, acquired_at=now, expires_at=expires)
            )
            return taken.rowcount == 1

    def renew_lock(self, name: str, owner: str, ttl_seconds: float) -> bool:
        """Extend a lock ``owner`` still holds; ``False`` if it lapsed and someone took it."""
        _positive("ttl_seconds", ttl_seconds)
        now = self.clock.now()
        lk = t.locks.c
        with self._write() as conn:
            result = conn.execute(
                sa.update(t.locks)
                .where(lk.name == name, lk.owner == owner, lk.expires_at > now)
                .values(expires_at=now + timedelta(seconds=ttl_seconds))
            )
            return result.rowcount == 1

    def release_lock(self, name: str, owner: str) -> bool:
        """Release a lock held by ``owner``; ``False`` if it was not theirs (anymore)."""
        lk = t.locks.c
        with self._write() as conn:
            result = conn.execute(sa.delete(t.locks).where(lk.name == name, lk.owner == owner))
            return result.rowcount == 1

    def get_lock(self, name: str) -> LockRecord | None:
        """The current, unexpired holder of ``name``, or ``None``."""
        lk = t.locks.c
        with self._read() as conn:
            row = (
                conn.execute(
                    sa.select(t.locks).where(lk.name == name, lk.expires_at > self.clock.now())
                )
                .mappings()
                .first()
            )
        return None if row is None else row_records.lock(row)


class IdempotencyFacet(Facet):
    """Idempotency keys and the callbacks already accepted (``store.idempotency``)."""

    # -- idempotency ------------------------------------------------------------------
    def begin_idempotent(
        self, scope: str, key: str, request_hash: str, *, stale_after_seconds: float = 300.0
    ) -> IdempotencyOutcome:
        """Claim ``key`` in ``scope`` for a request whose body hashes to ``request_hash``.

        ``new``: the caller owns the key and must :meth:`finish_idempotent` it (with a
        response, or ``None`` to forget the claim). ``replay``: the same request finished before; return its
        stored response. ``in_progress``: another caller holds it right now (an unfinished
        claim older than ``stale_after_seconds`` is taken over). A different body under the
        same key raises ``IdempotencyConflict``. Concurrent first use is decided by the
        primary key: exactly one caller gets ``new``.
        """
        now = self.clock.now()
        i = t.idempotency_records.c
        mine = (i.project_id == self.project_id, i.scope == scope, i.key == key)
        with self._write() as conn:
            while True:
                inserted = conn.execute(
                    self.dialect.insert(t.idempotency_records)
                    .values(
                        project_id=self.project_id,
                        scope=scope,
                        key=key,
                        request_hash=request_hash,
                        status="in_progress",
                        status_code=None,
                        response=None,
                        created_at=now,
                        updated_at=now,
                    )
                    .on_conflict_do_nothing(index_elements=["project_id", "scope", "key"])
                    .returning(i.key)
                ).first()
                if inserted is not None:
                    return IdempotencyOutcome("new")
                row = (
                    conn.execute(sa.select(t.idempotency_records).where(*mine).with_for_update())
                    .mappings()
                    .first()
                )
                if row is not None:
                    break
                # PostgreSQL: the holder released its claim between our INSERT (which waited
                # for it) and this SELECT; the key is free again, so claim it anew.
            if row["request_hash"] != request_hash:
                raise IdempotencyConflict(
                    "this Idempotency-Key was already used with a different request body",
                    scope=scope,
                )
            if row["status"] == "completed":
                return IdempotencyOutcome("replay", row["status_code"], row["response"])
            if row["updated_at"] <= now - timedelta(seconds=stale_after_seconds):
                conn.execute(sa.update(t.idempotency_records).where(*mine).values(updated_at=now))
                return IdempotencyOutcome("new")
            return IdempotencyOutcome("in_progress")

    def finish_idempotent(self, scope: str, key: str, response: tuple[int, Any] | None) -> None:
        """Store ``(status code, body)``, the response later identical requests replay; or
        (``None``) forget an unfinished claim: the request failed before producing a
        replayable result, so the key is free for its retry."""
        i = t.idempotency_records.c
        mine = (i.project_id == self.project_id, i.scope == scope, i.key == key)
        with self._write() as conn:
            if response is None:
                conn.execute(
                    sa.delete(t.idempotency_records).where(*mine, i.status == "in_progress")
                )
                return
            result = conn.execute(
                sa.update(t.idempotency_records)
                .where(*mine)
                .values(
                    status="completed",
                    status_code=response[0],
                    response=response[1],
                    updated_at=self.clock.now(),
                )
            )
        if result.rowcount != 1:
            raise NotFound(f"idempotency key {key!r} was never begun", resource="idempotency_key")

    # -- callbacks seen ---------------------------------------------------------------
    def first_callback(self, key: str, expires_at: datetime) -> bool:
        """``True`` the first time ``key`` (a digest of a signed callback) is offered, then
        ``False`` until ``expires_at`` (the end of its window) has passed, in every process
        that shares this database: the primary key decides between two at once. Keys whose
        window has passed are deleted first, so the table holds one window's callbacks."""
        now = self.clock.now()
        seen = t.seen_callbacks
        with self._write() as conn:
            conn.execute(sa.delete(seen).where(seen.c.expires_at <= now))
            inserted = conn.execute(
                self.dialect.insert(seen)
                .values(key=key, expires_at=expires_at)
                .on_conflict_do_nothing(index_elements=["key"])
                .returning(seen.c.key)
            ).first()
        return inserted is not None
