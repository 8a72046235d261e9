"""The GitOps registry: bundle revisions per (bundle, environment), conditions, suspensions,
controller status and promotion approvals.

Writes are :class:`RegistryWritesMixin` methods on a transaction, so the controller applies a
whole decision (revision, activation, conditions, audit) atomically; the store offers the same
writes as one-transaction shorthands. The database enforces at most one ``active`` revision per
(bundle, environment) with a partial unique index; activation deactivates the previous one in
the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from kneo.errors import Conflict, ErrorCode, IllegalTransition, InvalidRequest, NotFound
from kneo.names import check_name
from kneo.store import dialects as d
from kneo.store import rows
from kneo.store import tables as t
from kneo.store.base import StoreBase, check_page, keyset_page
from kneo.store.dialects import StoreDialect
from kneo.store.records import (
    REVISION_STATUSES,
    BlockedDigest,
    BundleRevision,
    Condition,
    ControllerStatus,
    Page,
    Pin,
    PromotionApproval,
    RevisionHead,
    Suspension,
)

_R = t.bundle_revisions.c
_C = t.bundle_conditions.c
_X = t.registry_changes.c

#: Names per ``IN (...)`` list when a reconcile reads some bundles only.
_IN_CHUNK = 500

_REV = "bundle_name = :bundle_name AND environment = :environment"
_REV_KEY = _REV + " AND revision = :revision"
_HEAD_SQL = (
    "SELECT max(revision), max(CASE WHEN status = 'active' THEN revision END) "
    f"FROM bundle_revisions WHERE {_REV}"
)
_DEACTIVATE_SQL = (
    "UPDATE bundle_revisions SET status = 'inactive', deactivated_at = :deactivated_at "
    f"WHERE {_REV} AND status = 'active'"
)


def _check_key(bundle_name: str, environment: str) -> None:
    """A registry key is a valid bundle name and environment (:mod:`kneo.names`)."""
    check_name(bundle_name, kind="bundle name", field="bundle")
    check_name(environment, kind="environment")


def _rev_key(bundle_name: str, environment: str, revision: int) -> list[Any]:
    return [_R.bundle_name == bundle_name, _R.environment == environment, _R.revision == revision]


class RegistryWritesMixin:
    """Registry writes inside a :class:`~kneo.store.transaction.Transaction`.

    Each write stamps its (bundle, environment) in ``registry_changes`` with the
    transaction's change number, so an incremental reconcile finds what people changed
    (drift, suspensions, promotion decisions). The controller's own transactions set
    :attr:`marks_registry_changes` to ``False``: its saved reconcile state accounts for them.
    Statements run on the transaction's connection like its other writes (SQL built once per
    dialect from the tables); a write whose constraint decides the outcome reads its result
    back, so a violation surfaces there and not at commit.
    """

    now: datetime
    _d: StoreDialect
    #: ``False`` in the controller's own transactions (see the class docstring).
    marks_registry_changes: bool = True
    _registry_seq: int | None = None

    if TYPE_CHECKING:

        def _exec(self, key: Any, build: Callable[[], str], params: Mapping[str, Any]) -> Any: ...

        def _first(
            self, key: Any, build: Callable[[], str], params: Mapping[str, Any]
        ) -> Sequence[Any] | None: ...

        def _select_one(
            self, table: sa.Table, key: Any, build: Callable[[], str], params: Mapping[str, Any]
        ) -> dict[str, Any] | None: ...

        def _insert_rows(
            self, table: sa.Table, names: tuple[str, ...], values: list[dict[str, Any]]
        ) -> None: ...

    def _write(
        self, key: Any, table: sa.Table, build: Callable[[], str], values: Mapping[str, Any]
    ) -> Sequence[Any] | None:
        """A write of ``table``'s ``values`` (bound), its first returned row (read back now)."""
        return self._first(("registry", key), build, self._d.bind(table, values))

    def _mark_changed(self, bundle_name: str, environment: str) -> None:
        """Stamp the key with this transaction's change number (taken on first use)."""
        if not self.marks_registry_changes:
            return
        if self._registry_seq is None:
            found = self._first(
                "registry_seq",
                lambda: (
                    "INSERT INTO registry_change_counter (id, seq) VALUES (1, 1) ON CONFLICT (id) "
                    "DO UPDATE SET seq = registry_change_counter.seq + 1 RETURNING seq"
                ),
                {},
            )
            self._registry_seq = int(found[0]) if found else None
        self._write(  # read back, not left waiting: two stamps of one key must not share a statement
            "changed",
            t.registry_changes,
            lambda: d.insert_sql(
                t.registry_changes,
                ("bundle_name", "environment", "seq"),
                " ON CONFLICT (bundle_name, environment) DO UPDATE SET seq = excluded.seq "
                "RETURNING seq",
            ),
            {"bundle_name": bundle_name, "environment": environment, "seq": self._registry_seq},
        )

    def _revision(self, bundle_name: str, environment: str, revision: int) -> BundleRevision:
        row = self._select_one(
            t.bundle_revisions,
            "revision",
            lambda: d.select_sql(t.bundle_revisions, _REV_KEY),
            {"bundle_name": bundle_name, "environment": environment, "revision": revision},
        )
        if row is None:
            raise NotFound(
                f"revision {revision} of bundle {bundle_name!r} in {environment!r} not found",
                resource="bundle_revision",
            )
        return rows.revision(row)

    def _deactivate(self, bundle_name: str, environment: str) -> None:
        """The key's active revision (if any) becomes inactive."""
        values = {
            "bundle_name": bundle_name,
            "environment": environment,
            "deactivated_at": self.now,
        }
        self._exec(
            ("registry", "deactivate"),
            lambda: _DEACTIVATE_SQL,
            self._d.bind(t.bundle_revisions, values),
        )

    def _update_revision(
        self, bundle_name: str, environment: str, revision: int, **values: Any
    ) -> Sequence[Any] | None:
        """Set ``values`` on one revision; its key back, or ``None`` when it is missing."""
        keys = tuple(sorted(values))

        def build() -> str:
            sets = ", ".join(f'"{k}" = :{k}' for k in keys)
            return f"UPDATE bundle_revisions SET {sets} WHERE {_REV_KEY} RETURNING revision"

        key = {"bundle_name": bundle_name, "environment": environment, "revision": revision}
        return self._write(("revision", keys), t.bundle_revisions, build, {**values, **key})

    def active_digest(self, bundle_name: str, environment: str) -> str | None:
        """The digest of the key's active revision as this transaction sees it (its own
        writes included), or ``None``: the controller's upstream check at promotion."""
        found = self._first(
            ("registry", "active_digest"),
            lambda: f"SELECT digest FROM bundle_revisions WHERE {_REV} AND status = 'active'",
            {"bundle_name": bundle_name, "environment": environment},
        )
        return None if found is None else str(found[0])

    def add_revision(
        self,
        bundle_name: str,
        environment: str,
        *,
        digest: str,
        commit: str | None = None,
        signer_key_ids: Sequence[str] = (),
        approved_by: Sequence[str] = (),
        status: str = "inactive",
        diagnostics: Sequence[Mapping[str, Any]] = (),
        spec: Mapping[str, Any] | None = None,
    ) -> BundleRevision:
        """Record the next revision number for (bundle, environment); ``active`` activates it.

        One read (next number and the current active revision) and one insert; an ``active``
        revision is inserted active, after the previous active one (if any) is deactivated.
        A concurrent writer losing the one-active index or the number is ``stale_state``.
        """
        if status not in REVISION_STATUSES:
            raise InvalidRequest(f"unknown revision status {status!r}", field="status")
        _check_key(bundle_name, environment)
        key = {"bundle_name": bundle_name, "environment": environment}
        last, active = self._first(("registry", "head"), lambda: _HEAD_SQL, key) or (None, None)
        activate = status == "active"
        values: dict[str, Any] = {
            **key,
            "revision": int(last or 0) + 1,
            "digest": digest,
            "commit": commit,
            "signer_key_ids": list(signer_key_ids),
            "approved_by": list(approved_by),
            "status": status,
            "diagnostics": [dict(d) for d in diagnostics],
            "spec": dict(spec or {}),
            "created_at": self.now,
            "activated_at": self.now if activate else None,
            "deactivated_at": None,
        }
        if activate and active is not None:
            self._deactivate(bundle_name, environment)
        inserted = self._write(
            "add",
            t.bundle_revisions,
            lambda: d.insert_sql(
                t.bundle_revisions,
                d.columns(t.bundle_revisions),
                " ON CONFLICT DO NOTHING RETURNING revision",
            ),
            values,
        )
        if inserted is None:  # a concurrent writer took the number or activated
            raise Conflict(
                f"bundle {bundle_name!r} in {environment!r} changed concurrently",
                code=ErrorCode.stale_state,
            )
        self._mark_changed(bundle_name, environment)
        return rows.revision(values)

    def activate_revision(
        self, bundle_name: str, environment: str, revision: int
    ) -> BundleRevision:
        """Make ``revision`` the active one, deactivating the previous active revision.

        A ``rejected`` revision can never become active (``illegal_transition``).
        """
        target = self._revision(bundle_name, environment, revision)
        if target.status == "active":
            return target
        if target.status == "rejected":
            raise IllegalTransition(
                f"revision {revision} of {bundle_name!r} in {environment!r} was rejected "
                "and cannot be activated"
            )
        self._deactivate(bundle_name, environment)
        try:
            self._update_revision(
                bundle_name,
                environment,
                revision,
                status="active",
                activated_at=self.now,
                deactivated_at=None,
            )
        except self._d.db.loaded_dbapi.IntegrityError as exc:  # another activation won
            raise Conflict(
                f"another revision of {bundle_name!r} became active in {environment!r}",
                code=ErrorCode.stale_state,
            ) from exc
        self._mark_changed(bundle_name, environment)
        return replace(target, status="active", activated_at=self.now, deactivated_at=None)

    def set_revision_status(
        self,
        bundle_name: str,
        environment: str,
        revision: int,
        status: str,
        *,
        diagnostics: Sequence[Mapping[str, Any]] | None = None,
        approved_by: Sequence[str] | None = None,
    ) -> BundleRevision:
        """Move a revision to ``status`` (``active`` goes through :meth:`activate_revision`).

        Leaving ``active`` stamps ``deactivated_at``. Optionally replaces diagnostics and the
        approver list.
        """
        if status not in REVISION_STATUSES:
            raise InvalidRequest(f"unknown revision status {status!r}", field="status")
        current = self._revision(bundle_name, environment, revision)
        extra: dict[str, Any] = {}
        if diagnostics is not None:
            extra["diagnostics"] = [dict(d) for d in diagnostics]
        if approved_by is not None:
            extra["approved_by"] = list(approved_by)
        if status == "active":
            if extra:
                self._update_revision(bundle_name, environment, revision, **extra)
            return self.activate_revision(bundle_name, environment, revision)
        extra["status"] = status
        if current.status == "active":
            extra["deactivated_at"] = self.now
        self._update_revision(bundle_name, environment, revision, **extra)
        self._mark_changed(bundle_name, environment)
        return self._revision(bundle_name, environment, revision)

    def reject_revision(
        self,
        bundle_name: str,
        environment: str,
        revision: int,
        diagnostics: Sequence[Mapping[str, Any]],
    ) -> BundleRevision:
        """Mark a revision rejected with the reasons; an active one stays untouched elsewhere."""
        return self.set_revision_status(
            bundle_name, environment, revision, "rejected", diagnostics=diagnostics
        )

    def prune_revision(self, bundle_name: str, environment: str, revision: int) -> BundleRevision:
        """Mark a revision pruned (its bundle file left the repository)."""
        return self.set_revision_status(bundle_name, environment, revision, "pruned")

    def set_condition(
        self,
        bundle_name: str,
        environment: str,
        type: str,
        *,
        status: str,
        reason: str,
        message: str = "",
    ) -> Condition:
        """Upsert a condition. ``last_transition_time`` moves only when status, reason or
        message actually change; ``updated_at`` records every observation."""
        return self.set_conditions(bundle_name, environment, [(type, status, reason, message)])[0]

    def set_conditions(
        self,
        bundle_name: str,
        environment: str,
        conditions: Sequence[tuple[str, str, str, str]],
    ) -> list[Condition]:
        """Upsert several ``(type, status, reason, message)`` conditions of one key at once.

        One locked read of the key's conditions, one insert for the new types and one update
        per existing type; transition times follow :meth:`set_condition`'s rule.
        """
        key = {"bundle_name": bundle_name, "environment": environment}
        cur = self._exec(
            ("registry", "conditions"),
            lambda: d.select_sql(t.bundle_conditions, _REV) + self._d.row_lock,
            key,
        )
        existing = {
            row["type"]: row
            for row in (
                self._d.result(t.bundle_conditions, cur.description, r) for r in cur.fetchall()
            )
        }
        inserts: list[dict[str, Any]] = []
        out: list[Condition] = []
        for type_, status, reason, message in conditions:
            values = {
                **key,
                "type": type_,
                "status": status,
                "reason": reason,
                "message": message,
                "updated_at": self.now,
            }
            before = existing.get(type_)
            if before is None:
                values["last_transition_time"] = self.now
                inserts.append(values)
            else:
                changed = (before["status"], before["reason"], before["message"]) != (
                    status,
                    reason,
                    message,
                )
                values["last_transition_time"] = (
                    self.now if changed else before["last_transition_time"]
                )
                self._exec(
                    ("registry", "condition"),
                    lambda: (
                        "UPDATE bundle_conditions SET status = :status, reason = :reason, "
                        "message = :message, last_transition_time = :last_transition_time, "
                        f"updated_at = :updated_at WHERE {_REV} AND type = :type"
                    ),
                    self._d.bind(t.bundle_conditions, values),
                )
            out.append(rows.condition(values))
        if inserts:
            self._insert_rows(t.bundle_conditions, d.columns(t.bundle_conditions), inserts)
        return out

    def suspend_bundle(
        self,
        bundle_name: str,
        environment: str,
        *,
        reason: str | None = None,
        suspended_by: str | None = None,
    ) -> Suspension:
        """Tell the controller to leave (bundle, environment) alone; idempotent."""
        _check_key(bundle_name, environment)
        key = {"bundle_name": bundle_name, "environment": environment}
        existing = self._select_one(
            t.bundle_suspensions,
            ("registry", "suspension"),
            lambda: d.select_sql(t.bundle_suspensions, _REV),
            key,
        )
        if existing is not None:
            return rows.suspension(existing)
        values = {**key, "reason": reason, "suspended_by": suspended_by, "created_at": self.now}
        self._write(
            "suspend",
            t.bundle_suspensions,
            lambda: d.insert_sql(
                t.bundle_suspensions, d.columns(t.bundle_suspensions), " RETURNING bundle_name"
            ),
            values,
        )
        self._mark_changed(bundle_name, environment)
        return rows.suspension(values)

    def resume_bundle(self, bundle_name: str, environment: str) -> bool:
        """Lift a suspension; ``False`` if there was none."""
        deleted = self._first(
            ("registry", "resume"),
            lambda: f"DELETE FROM bundle_suspensions WHERE {_REV} RETURNING bundle_name",
            {"bundle_name": bundle_name, "environment": environment},
        )
        if deleted is None:
            return False
        self._mark_changed(bundle_name, environment)
        return True

    def get_revision(self, bundle_name: str, environment: str, revision: int) -> BundleRevision:
        """One revision as this transaction sees it (``not_found`` when absent)."""
        return self._revision(bundle_name, environment, revision)

    def active_revision_number(self, bundle_name: str, environment: str) -> int | None:
        """The active revision's number as this transaction sees it, if any."""
        key = {"bundle_name": bundle_name, "environment": environment}
        found = self._first(("registry", "head"), lambda: _HEAD_SQL, key)
        return None if found is None or found[1] is None else int(found[1])

    def pin_bundle(
        self,
        bundle_name: str,
        environment: str,
        revision: int,
        *,
        reason: str | None = None,
        pinned_by: str | None = None,
    ) -> Pin:
        """Hold (bundle, environment) at ``revision`` (replacing any earlier pin); the
        controller promotes nothing else there until :meth:`unpin_bundle`."""
        record = self._revision(bundle_name, environment, revision)
        values = {
            "bundle_name": bundle_name,
            "environment": environment,
            "revision": revision,
            "digest": record.digest,
            "reason": reason,
            "pinned_by": pinned_by,
            "created_at": self.now,
        }
        names = d.columns(t.bundle_pins)
        self._write(
            "pin",
            t.bundle_pins,
            lambda: d.insert_sql(
                t.bundle_pins,
                names,
                " ON CONFLICT (bundle_name, environment) DO UPDATE SET "
                + ", ".join(f"{n} = excluded.{n}" for n in names[2:])
                + " RETURNING bundle_name",
            ),
            values,
        )
        self._mark_changed(bundle_name, environment)
        return rows.pin(values)

    def unpin_bundle(self, bundle_name: str, environment: str) -> Pin | None:
        """Lift the pin; the lifted pin, or ``None`` if there was none."""
        found = self._select_one(
            t.bundle_pins,
            ("registry", "pin_row"),
            lambda: d.select_sql(t.bundle_pins, _REV),
            {"bundle_name": bundle_name, "environment": environment},
        )
        if found is None:
            return None
        self._first(
            ("registry", "unpin"),
            lambda: f"DELETE FROM bundle_pins WHERE {_REV} RETURNING bundle_name",
            {"bundle_name": bundle_name, "environment": environment},
        )
        self._mark_changed(bundle_name, environment)
        return rows.pin(found)

    def block_digest(
        self, digest: str, *, reason: str, blocked_by: str | None = None
    ) -> BlockedDigest:
        """Never promote ``digest`` again, anywhere, until unblocked; a second block of the
        same digest keeps the first one's reason."""
        if not reason.strip():
            raise InvalidRequest("a block needs a reason", field="reason")
        existing = self._select_one(
            t.blocked_digests,
            ("registry", "blocked"),
            lambda: d.select_sql(t.blocked_digests, "digest = :digest"),
            {"digest": digest},
        )
        if existing is not None:
            return rows.blocked(existing)
        values = {
            "digest": digest,
            "reason": reason,
            "blocked_by": blocked_by,
            "created_at": self.now,
        }
        self._write(
            "block",
            t.blocked_digests,
            lambda: d.insert_sql(
                t.blocked_digests, d.columns(t.blocked_digests), " RETURNING digest"
            ),
            values,
        )
        return rows.blocked(values)

    def unblock_digest(self, digest: str) -> bool:
        """Lift a block; ``False`` if the digest was not blocked."""
        return (
            self._first(
                ("registry", "unblock"),
                lambda: "DELETE FROM blocked_digests WHERE digest = :digest RETURNING digest",
                {"digest": digest},
            )
            is not None
        )

    def set_controller_status(self, *, name: str = "default", **fields: Any) -> ControllerStatus:
        """Update the named controller's status fields (others keep their values)."""
        allowed = {
            "last_fetched_commit",
            "last_reconcile_started_at",
            "last_reconcile_duration_seconds",
            "last_error",
            "details",
        }
        unknown = set(fields) - allowed
        if unknown:
            raise InvalidRequest(f"unknown controller status fields: {sorted(unknown)}")
        row = self._select_one(
            t.controller_status,
            ("registry", "status"),
            lambda: d.select_sql(t.controller_status, "name = :name") + self._d.row_lock,
            {"name": name},
        )
        values = {
            "name": name,
            "last_fetched_commit": None,
            "last_reconcile_started_at": None,
            "last_reconcile_duration_seconds": None,
            "last_error": None,
            "details": {},
            **(row or {}),
            **fields,
            "updated_at": self.now,
        }
        values["details"] = values["details"] or {}  # a NULL stored by an older version
        names = d.columns(t.controller_status)
        self._write(
            "controller_status",
            t.controller_status,
            lambda: d.insert_sql(
                t.controller_status,
                names,
                " ON CONFLICT (name) DO UPDATE SET "
                + ", ".join(f"{n} = excluded.{n}" for n in names if n != "name")
                + " RETURNING name",
            ),
            values,
        )
        return _controller_status(values)

    def add_promotion_approval(
        self,
        bundle_name: str,
        environment: str,
        digest: str,
        *,
        approver: str,
        decision: str,
        comment: str | None = None,
    ) -> PromotionApproval:
        """Record one approver's decision; the same approver deciding twice is a conflict."""
        if decision not in ("approved", "rejected"):
            raise InvalidRequest(
                f"decision must be approved or rejected, got {decision!r}", field="decision"
            )
        values = {
            "bundle_name": bundle_name,
            "environment": environment,
            "digest": digest,
            "approver": approver,
            "decision": decision,
            "comment": comment,
            "created_at": self.now,
        }
        inserted = self._write(
            "approval",
            t.promotion_approvals,
            lambda: d.insert_sql(
                t.promotion_approvals, tuple(values), " ON CONFLICT DO NOTHING RETURNING id"
            ),
            values,
        )
        if inserted is None:
            raise Conflict(
                f"{approver} already decided on this promotion", code=ErrorCode.already_decided
            )
        self._mark_changed(bundle_name, environment)
        return rows.approval(values)

    def list_promotion_approvals(
        self, bundle_name: str, environment: str, digest: str | None = None
    ) -> list[PromotionApproval]:
        """Decisions on a promotion as this transaction sees them (its own writes included)."""
        where = _REV + (" AND digest = :digest" if digest is not None else "")
        cur = self._exec(
            ("registry", "approvals", digest is not None),
            lambda: d.select_sql(t.promotion_approvals, where) + " ORDER BY id",
            {"bundle_name": bundle_name, "environment": environment, "digest": digest},
        )
        return [
            rows.approval(self._d.result(t.promotion_approvals, cur.description, r))
            for r in cur.fetchall()
        ]


def _by_names(
    stmt: sa.Select[Any], column: sa.ColumnElement[Any], names: Collection[str] | None
) -> list[sa.Select[Any]]:
    """``stmt`` as is (``names`` None), or narrowed to ``names`` in bounded ``IN`` lists."""
    if names is None:
        return [stmt]
    ordered = sorted(names)
    return [
        stmt.where(column.in_(ordered[i : i + _IN_CHUNK]))
        for i in range(0, len(ordered), _IN_CHUNK)
    ]


def _controller_status(r: Mapping[Any, Any]) -> ControllerStatus:
    return ControllerStatus(
        last_fetched_commit=r["last_fetched_commit"],
        last_reconcile_started_at=r["last_reconcile_started_at"],
        last_reconcile_duration_seconds=r["last_reconcile_duration_seconds"],
        last_error=r["last_error"],
        details=r["details"] or {},
        updated_at=r["updated_at"],
    )


class RegistryReadsMixin(StoreBase):
    """Registry reads (and one-transaction write shorthands) on the Store."""

    def get_revision(self, bundle_name: str, environment: str, revision: int) -> BundleRevision:
        with self._read() as conn:
            row = (
                conn.execute(
                    sa.select(t.bundle_revisions).where(
                        *_rev_key(bundle_name, environment, revision)
                    )
                )
                .mappings()
                .first()
            )
        if row is None:
            raise NotFound(
                f"revision {revision} of bundle {bundle_name!r} in {environment!r} not found",
                resource="bundle_revision",
            )
        return rows.revision(row)

    def get_active(self, bundle_name: str, environment: str) -> BundleRevision | None:
        """The active revision of a bundle in an environment, if any."""
        with self._read() as conn:
            row = (
                conn.execute(
                    sa.select(t.bundle_revisions).where(
                        _R.bundle_name == bundle_name,
                        _R.environment == environment,
                        _R.status == "active",
                    )
                )
                .mappings()
                .first()
            )
        return None if row is None else rows.revision(row)

    def list_revisions(self, bundle_name: str, environment: str) -> list[BundleRevision]:
        """A bundle's history in one environment, newest revision first."""
        with self._read() as conn:
            result = conn.execute(
                sa.select(t.bundle_revisions)
                .where(_R.bundle_name == bundle_name, _R.environment == environment)
                .order_by(_R.revision.desc())
            ).mappings()
            return [rows.revision(r) for r in result]

    def list_registry(
        self,
        environment: str | None = None,
        *,
        status: str | None = "active",
        limit: int | None = None,
        cursor: str | None = None,
        count: bool = False,
    ) -> Page[BundleRevision]:
        """Revisions across bundles (active ones by default; ``status=None`` for all) in the
        primary key's order (bundle, environment, revision), so a page walks the key from
        ``cursor`` and stops after ``limit`` rows (every row when ``limit`` is ``None``)."""
        if limit is not None:
            check_page(limit, 0)
        where = []
        if environment is not None:
            where.append(_R.environment == environment)
        if status is not None:
            where.append(_R.status == status)
        columns = (_R.bundle_name, _R.environment, _R.revision)
        with self._read() as conn:
            found, total, capped, next_cursor = keyset_page(
                conn, t.bundle_revisions, where, columns, "asc", limit=limit, cursor=cursor,
                count=count, cap=self.settings.limits.max_list_count,
            )  # fmt: skip
        items = [rows.revision(r) for r in found]
        return Page(items, total, limit or len(items), 0, "bundle", "asc", next_cursor, capped)

    def list_revision_heads(
        self, environment: str | None = None, *, names: Collection[str] | None = None
    ) -> list[RevisionHead]:
        """Every revision without its spec, by (bundle, environment, revision); ``names``:
        of those bundles only (an incremental reconcile).

        Reconciles read this instead of full revisions so their cost does not grow with the
        size of the specs stored in the registry.
        """
        diag = sa.case((_R.status == "rejected", _R.diagnostics), else_=sa.null())
        stmt = sa.select(
            _R.bundle_name, _R.environment, _R.revision, _R.digest, _R.status, _R.commit, diag
        ).order_by(_R.bundle_name, _R.environment, _R.revision)
        if environment is not None:
            stmt = stmt.where(_R.environment == environment)
        with self._read() as conn:
            rows_ = [r for s in _by_names(stmt, _R.bundle_name, names) for r in conn.execute(s)]
        return [
            RevisionHead(r[0], r[1], r[2], r[3], r[4], r[5], None if r[6] is None else list(r[6]))
            for r in rows_
        ]

    def registry_changes_since(self, seq: int | None) -> tuple[int, set[str]]:
        """``(current change number, bundles changed outside the controller after seq)``;
        ``seq`` None: the number only.

        The current number is read first: every change numbered up to it is committed, and
        any later one shows up in the next call given that number.
        """
        with self._read() as conn:
            current = conn.execute(
                sa.select(t.registry_change_counter.c.seq).where(
                    t.registry_change_counter.c.id == 1
                )
            ).scalar()
            if seq is None:
                return int(current or 0), set()
            stmt = sa.select(_X.bundle_name).where(_X.seq > seq)
            names = {r[0] for r in conn.execute(stmt)}
        return int(current or 0), names

    def pending_promotion_names(self) -> set[str]:
        """Bundles with a revision waiting for promotion approval (index on status)."""
        with self._read() as conn:
            return {
                r[0]
                for r in conn.execute(
                    sa.select(_R.bundle_name).where(_R.status == "pending_approval")
                )
            }

    def find_revision(
        self, bundle_name: str, environment: str, digest: str
    ) -> BundleRevision | None:
        """The newest revision of (bundle, environment) with ``digest``, if any."""
        with self._read() as conn:
            row = (
                conn.execute(
                    sa.select(t.bundle_revisions)
                    .where(
                        _R.bundle_name == bundle_name,
                        _R.environment == environment,
                        _R.digest == digest,
                    )
                    .order_by(_R.revision.desc())
                    .limit(1)
                )
                .mappings()
                .first()
            )
        return None if row is None else rows.revision(row)

    def list_conditions(
        self, bundle_name: str | None = None, environment: str | None = None
    ) -> list[Condition]:
        c = t.bundle_conditions.c
        where = []
        if bundle_name is not None:
            where.append(c.bundle_name == bundle_name)
        if environment is not None:
            where.append(c.environment == environment)
        with self._read() as conn:
            result = conn.execute(
                sa.select(t.bundle_conditions)
                .where(*where)
                .order_by(c.bundle_name, c.environment, c.type)
            ).mappings()
            return [rows.condition(r) for r in result]

    def list_condition_heads(
        self, *, names: Collection[str] | None = None
    ) -> list[tuple[str, str, str, str, str, str]]:
        """Every condition (of ``names`` only, if given) as ``(bundle, environment, type,
        status, reason, message)``.

        What a reconcile compares, without timestamps: converting them costs more than the
        query at registry scale (thousands of conditions read on every full pass).
        """
        stmt = sa.select(_C.bundle_name, _C.environment, _C.type, _C.status, _C.reason, _C.message)
        with self._read() as conn:
            return [
                (r[0], r[1], r[2], r[3], r[4], r[5])
                for s in _by_names(stmt, _C.bundle_name, names)
                for r in conn.execute(s)
            ]

    def is_suspended(self, bundle_name: str, environment: str) -> bool:
        s = t.bundle_suspensions.c
        with self._read() as conn:
            return (
                conn.execute(
                    sa.select(s.bundle_name).where(
                        s.bundle_name == bundle_name, s.environment == environment
                    )
                ).first()
                is not None
            )

    def list_suspensions(
        self, environment: str | None = None, *, names: Collection[str] | None = None
    ) -> list[Suspension]:
        s = t.bundle_suspensions.c
        stmt = sa.select(t.bundle_suspensions).order_by(s.bundle_name, s.environment)
        if environment is not None:
            stmt = stmt.where(s.environment == environment)
        with self._read() as conn:
            return [
                rows.suspension(r)
                for part in _by_names(stmt, s.bundle_name, names)
                for r in conn.execute(part).mappings()
            ]

    def get_pin(self, bundle_name: str, environment: str) -> Pin | None:
        p = t.bundle_pins.c
        with self._read() as conn:
            row = (
                conn.execute(
                    sa.select(t.bundle_pins).where(
                        p.bundle_name == bundle_name, p.environment == environment
                    )
                )
                .mappings()
                .first()
            )
        return None if row is None else rows.pin(row)

    def list_pins(
        self, environment: str | None = None, *, names: Collection[str] | None = None
    ) -> list[Pin]:
        p = t.bundle_pins.c
        stmt = sa.select(t.bundle_pins).order_by(p.bundle_name, p.environment)
        if environment is not None:
            stmt = stmt.where(p.environment == environment)
        with self._read() as conn:
            return [
                rows.pin(r)
                for part in _by_names(stmt, p.bundle_name, names)
                for r in conn.execute(part).mappings()
            ]

    def list_blocked_digests(self) -> list[BlockedDigest]:
        """Every blocked digest, oldest block first (a short list: people write it)."""
        b = t.blocked_digests.c
        with self._read() as conn:
            result = conn.execute(
                sa.select(t.blocked_digests).order_by(b.created_at, b.digest)
            ).mappings()
            return [rows.blocked(r) for r in result]

    def get_controller_status(self, name: str = "default") -> ControllerStatus:
        """The controller's last reported status (all ``None`` before its first reconcile)."""
        with self._read() as conn:
            row = (
                conn.execute(
                    sa.select(t.controller_status).where(t.controller_status.c.name == name)
                )
                .mappings()
                .first()
            )
        if row is None:
            return ControllerStatus(None, None, None, None, {}, None)
        return _controller_status(row)

    def list_promotion_approvals(
        self, bundle_name: str, environment: str, digest: str | None = None
    ) -> list[PromotionApproval]:
        p = t.promotion_approvals.c
        where = [p.bundle_name == bundle_name, p.environment == environment]
        if digest is not None:
            where.append(p.digest == digest)
        with self._read() as conn:
            result = conn.execute(
                sa.select(t.promotion_approvals).where(*where).order_by(p.id)
            ).mappings()
            return [rows.approval(r) for r in result]

    def list_subject_approvals(
        self, prefix: str, names: Collection[str] | None = None
    ) -> list[PromotionApproval]:
        """Decisions recorded under a subject starting with ``prefix`` (freeze overrides are
        ``freeze:<digest>``), of the bundles ``names`` only if given."""
        p = t.promotion_approvals.c
        stmt = (
            sa.select(t.promotion_approvals)
            .where(p.digest.startswith(prefix, autoescape=True))
            .order_by(p.id)
        )
        with self._read() as conn:
            return [
                rows.approval(r)
                for part in _by_names(stmt, p.bundle_name, names)
                for r in conn.execute(part).mappings()
            ]

    # -- one-transaction shorthands -----------------------------------------------------
    def add_revision(self, bundle_name: str, environment: str, **fields: Any) -> BundleRevision:
        with self.transaction() as tx:
            return tx.add_revision(bundle_name, environment, **fields)

    def activate_revision(
        self, bundle_name: str, environment: str, revision: int
    ) -> BundleRevision:
        with self.transaction() as tx:
            return tx.activate_revision(bundle_name, environment, revision)

    def set_revision_status(
        self, bundle_name: str, environment: str, revision: int, status: str, **fields: Any
    ) -> BundleRevision:
        with self.transaction() as tx:
            return tx.set_revision_status(bundle_name, environment, revision, status, **fields)

    def set_condition(
        self, bundle_name: str, environment: str, type: str, **fields: Any
    ) -> Condition:
        with self.transaction() as tx:
            return tx.set_condition(bundle_name, environment, type, **fields)

    def suspend_bundle(self, bundle_name: str, environment: str, **fields: Any) -> Suspension:
        with self.transaction() as tx:
            return tx.suspend_bundle(bundle_name, environment, **fields)

    def resume_bundle(self, bundle_name: str, environment: str) -> bool:
        with self.transaction() as tx:
            return tx.resume_bundle(bundle_name, environment)

    def set_controller_status(self, *, name: str = "default", **fields: Any) -> ControllerStatus:
        with self.transaction() as tx:
            return tx.set_controller_status(name=name, **fields)

    def add_promotion_approval(
        self, bundle_name: str, environment: str, digest: str, **fields: Any
    ) -> PromotionApproval:
        with self.transaction() as tx:
            return tx.add_promotion_approval(bundle_name, environment, digest, **fields)
