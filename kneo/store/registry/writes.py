"""The registry's writes: :class:`RegistryWritesMixin`, methods of a
:class:`~kneo.store.transaction.Transaction`.

The controller applies a whole decision (revision, activation, conditions, audit) in one
transaction; a single write is a transaction of one (the Store has no shorthands). The
database enforces at most one ``active`` revision per (bundle, environment) with a partial
unique index; activation deactivates the previous one in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Unpack

import sqlalchemy as sa
from sqlalchemy.sql.expression import ClauseElement

from kneo.errors import Conflict, ErrorCode, IllegalTransition, InvalidRequest, NotFound
from kneo.names import check_name
from kneo.store import row_records
from kneo.store import tables as t
from kneo.store.code import code_files
from kneo.store.records import (
    REVISION_STATUSES,
    BlockedDigest,
    BundleRevision,
    Condition,
    ControllerStatus,
    ControllerStatusFields,
    Pin,
    PromotionApproval,
    Suspension,
)
from kneo.store.registry import statements as q
from kneo.store.transaction_base import TransactionBase
from kneo.store.wire import statements as st
from kneo.store.wire.dialects import StoreDialect

#: the controller status fields :meth:`RegistryWritesMixin.set_controller_status` sets
_STATUS_FIELDS = frozenset(ControllerStatusFields.__annotations__)


#: a controller's status row's key
_STATUS_KEY = ("project_id", "name")


def _check_key(bundle_name: str, environment: str) -> None:
    """A registry key is a valid bundle name and environment (:mod:`kneo.names`)."""
    check_name(bundle_name, kind="bundle name", field="bundle")
    check_name(environment, kind="environment")


class RegistryWritesMixin(TransactionBase):
    """Registry writes inside a :class:`~kneo.store.transaction.Transaction`.

    Each write stamps its (bundle, environment) in ``registry_changes`` with the
    transaction's change number, so an incremental reconcile finds what people changed
    (drift, suspensions, promotion decisions). The controller's own transactions do not
    (``store.transaction(marks_registry_changes=False)``): its saved reconcile state accounts
    for them.
    Statements (:mod:`~kneo.store.registry.statements`) run on the transaction's connection like
    its other writes; a write whose constraint decides the outcome reads its result back,
    so a violation surfaces there and not at commit.
    """

    #: ``False`` in the controller's own transactions (see the class docstring).
    _marks_registry_changes: bool = True
    _registry_seq: int | None = None

    # -- running the statements --------------------------------------------------------
    def _registry_sql(
        self, build: Callable[[StoreDialect], ClauseElement]
    ) -> Callable[[], ClauseElement]:
        """What builds ``build``'s statement for the dialect's cache (on its first use)."""
        return lambda: build(self._d)

    def _registry_exec(
        self, key: Any, build: Callable[[StoreDialect], ClauseElement], params: Mapping[str, Any]
    ) -> Any:
        """Run the registry statement ``key`` (built by ``build``) in the transaction's
        project (every registry key starts with ``project_id``); the cursor."""
        params = {**params, "project_id": self._pid}
        return self._exec(("registry", key), self._registry_sql(build), params)

    def _registry_first(
        self, key: Any, build: Callable[[StoreDialect], ClauseElement], params: Mapping[str, Any]
    ) -> Sequence[Any] | None:
        """The first row the registry statement ``key`` returns (in the transaction's
        project), or ``None``."""
        params = {**params, "project_id": self._pid}
        return self._first(("registry", key), self._registry_sql(build), params)

    def _registry_row(
        self, table: sa.Table, key: Any, params: Mapping[str, Any], *, lock: bool = False
    ) -> dict[str, Any] | None:
        """The project's row of ``table`` whose columns are ``params`` (result-processed),
        or ``None``; ``lock``: row-locked where the database has row locks."""
        params = {"project_id": self._pid, **params}
        names = tuple(params)
        return self._select_one(
            table,
            ("registry", key),
            self._registry_sql(lambda _: q.select(table, names, lock=lock)),
            params,
        )

    def _registry_write(
        self, key: Any, table: sa.Table, build: Callable[[StoreDialect], ClauseElement],
        values: Mapping[str, Any],
    ) -> Sequence[Any] | None:  # fmt: skip
        """A write of ``table``'s ``values`` (bound), its first returned row (read back now)."""
        return self._registry_first(key, build, self._d.bind(table, values))

    def _mark_changed(self, bundle_name: str, environment: str) -> None:
        """Stamp the key with this transaction's change number (taken on first use)."""
        if not self._marks_registry_changes:
            return
        if self._registry_seq is None:
            found = self._registry_first("next_change", q.next_change_number, {})
            self._registry_seq = int(found[0]) if found else None
        self._registry_write(  # read back, not left waiting: two stamps of one key must not share a statement
            "changed",
            t.registry_changes,
            lambda dialect: q.insert(
                dialect, t.registry_changes, "seq", conflict=q.KEY, update=("seq",)
            ),
            {"bundle_name": bundle_name, "environment": environment, "seq": self._registry_seq},
        )

    # -- revisions ---------------------------------------------------------------------
    def _revision(self, bundle_name: str, environment: str, revision: int) -> BundleRevision:
        key = {"bundle_name": bundle_name, "environment": environment, "revision": revision}
        row = self._registry_row(t.bundle_revisions, "revision", key)
        if row is None:
            raise NotFound(
                f"revision {revision} of bundle {bundle_name!r} in {environment!r} not found",
                resource="bundle_revision",
            )
        return row_records.revision(row)

    def _deactivate(self, bundle_name: str, environment: str) -> None:
        """The key's active revision (if any) becomes inactive."""
        values = {
            "bundle_name": bundle_name,
            "environment": environment,
            "deactivated_at": self.now,
        }
        self._registry_exec(
            "deactivate", lambda _: q.deactivate(), self._d.bind(t.bundle_revisions, values)
        )

    def _update_revision(
        self, bundle_name: str, environment: str, revision: int, **values: Any
    ) -> Sequence[Any] | None:
        """Set ``values`` on one revision; its key back, or ``None`` when it is missing."""
        names = tuple(sorted(values))
        key = {"bundle_name": bundle_name, "environment": environment, "revision": revision}
        return self._registry_write(
            ("update_revision", names),
            t.bundle_revisions,
            lambda _: q.update_revision(names),
            {**values, **key},
        )

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
        code: Mapping[str, bytes] | None = None,
    ) -> BundleRevision:
        """Record the next revision number for (bundle, environment); ``active`` activates it.
        ``code``: the project files (sha256 -> bytes) its spec pins, stored with it
        (content-addressed, :mod:`kneo.store.code`) so any worker runs them.

        One read (next number and the current active revision) and one insert; an ``active``
        revision is inserted active, after the previous active one (if any) is deactivated.
        A concurrent writer losing the one-active index or the number is ``stale_state``.
        """
        if status not in REVISION_STATUSES:
            raise InvalidRequest(f"unknown revision status {status!r}", field="status")
        _check_key(bundle_name, environment)
        key = {"bundle_name": bundle_name, "environment": environment}
        last, active = self._registry_first("head", lambda _: q.head(), key) or (None, None)
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
        for sha, data in (code or {}).items():
            self._batched(
                "code_file",
                lambda: st.insert_new(
                    self._d.insert, code_files, ("sha256", "data", "created_at"), "sha256"
                ),
                self._d.bind(code_files, {"sha256": sha, "data": data, "created_at": self.now}),
            )
        inserted = self._registry_write(
            "add",
            t.bundle_revisions,
            lambda dialect: q.insert(dialect, t.bundle_revisions, "revision", conflict=()),
            values,
        )
        if inserted is None:  # a concurrent writer took the number or activated
            raise Conflict(
                f"bundle {bundle_name!r} in {environment!r} changed concurrently",
                code=ErrorCode.stale_state,
            )
        self._mark_changed(bundle_name, environment)
        return row_records.revision(values)

    def _activate_revision(
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
        """Move a revision to ``status``: ``active`` deactivates the key's active revision
        (a ``rejected`` revision is never activated: ``illegal_transition``), leaving
        ``active`` stamps ``deactivated_at``. Optionally replaces diagnostics and the
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
            return self._activate_revision(bundle_name, environment, revision)
        extra["status"] = status
        if current.status == "active":
            extra["deactivated_at"] = self.now
        self._update_revision(bundle_name, environment, revision, **extra)
        self._mark_changed(bundle_name, environment)
        return self._revision(bundle_name, environment, revision)

    def get_revision(self, bundle_name: str, environment: str, revision: int) -> BundleRevision:
        """One revision as this transaction sees it (``not_found`` when absent)."""
        return self._revision(bundle_name, environment, revision)

    def get_active(self, bundle_name: str, environment: str) -> BundleRevision | None:
        """The key's active revision as this transaction sees it (its own writes included),
        or ``None``: the controller's upstream check at promotion, a rollback's base."""
        key = {"bundle_name": bundle_name, "environment": environment, "status": "active"}
        row = self._registry_row(t.bundle_revisions, "active", key)
        return None if row is None else row_records.revision(row)

    # -- conditions --------------------------------------------------------------------
    def set_conditions(
        self,
        bundle_name: str,
        environment: str,
        conditions: Sequence[tuple[str, str, str, str]],
    ) -> list[Condition]:
        """Upsert ``(type, status, reason, message)`` conditions of one key at once (one,
        or several). A condition's ``last_transition_time`` moves only when its status,
        reason or message actually change; ``updated_at`` records every observation.

        One locked read of the key's conditions, one insert for the new types and one update
        per existing type.
        """
        key = {"project_id": self._pid, "bundle_name": bundle_name, "environment": environment}
        cur = self._registry_exec(
            "conditions", lambda _: q.select(t.bundle_conditions, q.KEY, lock=True), key
        )
        existing = {
            row["type"]: row for row in self._d.rows(t.bundle_conditions, self._ex, cur.fetchall())
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
                self._registry_exec(
                    "condition",
                    lambda _: q.update_condition(),
                    self._d.bind(t.bundle_conditions, values),
                )
            out.append(row_records.condition(values))
        if inserts:
            self._insert_rows(t.bundle_conditions, st.columns(t.bundle_conditions), inserts)
        return out

    # -- holds: suspensions, pins, blocked digests -------------------------------------
    # Each is set and lifted by one method: the record in force after a set (an existing
    # one kept as it is), the record lifted by a lift, ``None`` when there was none to lift.
    def set_suspended(
        self,
        bundle_name: str,
        environment: str,
        suspended: bool,
        *,
        reason: str | None = None,
        suspended_by: str | None = None,
    ) -> Suspension | None:
        """Tell the controller to leave (bundle, environment) alone, or let it manage them
        again; idempotent (a second suspension keeps the first one's reason)."""
        _check_key(bundle_name, environment)
        key = {"bundle_name": bundle_name, "environment": environment}
        existing = self._registry_row(t.bundle_suspensions, "suspension", key)
        if suspended and existing is None:
            existing = {
                **key,
                "reason": reason,
                "suspended_by": suspended_by,
                "created_at": self.now,
            }
            self._registry_write(
                "suspend",
                t.bundle_suspensions,
                lambda dialect: q.insert(dialect, t.bundle_suspensions, "bundle_name"),
                existing,
            )
        elif not suspended and existing is not None:
            self._registry_first("resume", lambda _: q.delete(t.bundle_suspensions), key)
        else:  # nothing to change
            return row_records.suspension(existing) if existing is not None else None
        self._mark_changed(bundle_name, environment)
        return row_records.suspension(existing)

    def set_pin(
        self,
        bundle_name: str,
        environment: str,
        revision: int | None,
        *,
        reason: str | None = None,
        pinned_by: str | None = None,
    ) -> Pin | None:
        """Hold (bundle, environment) at ``revision`` (replacing any earlier pin): the
        controller promotes nothing else there until the pin is lifted (``revision=None``)."""
        key = {"bundle_name": bundle_name, "environment": environment}
        if revision is None:
            found = self._registry_row(t.bundle_pins, "pin_row", key)
            if found is None:
                return None
            self._registry_first("unpin", lambda _: q.delete(t.bundle_pins), key)
            self._mark_changed(bundle_name, environment)
            return row_records.pin(found)
        record = self._revision(bundle_name, environment, revision)
        values = {
            **key,
            "revision": revision,
            "digest": record.digest,
            "reason": reason,
            "pinned_by": pinned_by,
            "created_at": self.now,
        }
        self._registry_write(
            "pin",
            t.bundle_pins,
            lambda dialect: q.insert(
                dialect,
                t.bundle_pins,
                "bundle_name",
                conflict=q.KEY,
                update=[c for c in st.columns(t.bundle_pins) if c not in q.KEY],
            ),
            values,
        )
        self._mark_changed(bundle_name, environment)
        return row_records.pin(values)

    def set_blocked(
        self,
        digest: str,
        blocked: bool,
        *,
        reason: str | None = None,
        blocked_by: str | None = None,
    ) -> BlockedDigest | None:
        """Never promote ``digest`` again, anywhere, until unblocked (``blocked=False``); a
        second block of the same digest keeps the first one's reason."""
        if blocked and not (reason or "").strip():
            raise InvalidRequest("a block needs a reason", field="reason")
        existing = self._registry_row(t.blocked_digests, "blocked", {"digest": digest})
        if blocked and existing is None:
            existing = {
                "digest": digest,
                "reason": reason,
                "blocked_by": blocked_by,
                "created_at": self.now,
            }
            self._registry_write(
                "block",
                t.blocked_digests,
                lambda dialect: q.insert(dialect, t.blocked_digests, "digest"),
                existing,
            )
        elif not blocked and existing is not None:
            self._registry_first(
                "unblock",
                lambda _: q.delete(t.blocked_digests, (*q.PROJECT_KEY, "digest")),
                {"digest": digest},
            )
        return row_records.blocked(existing) if existing is not None else None

    # -- controller status and promotion approvals -------------------------------------
    def set_controller_status(
        self, *, name: str = "default", **fields: Unpack[ControllerStatusFields]
    ) -> ControllerStatus:
        """Update the named controller's status fields (others keep their values)."""
        unknown = set(fields) - _STATUS_FIELDS
        if unknown:
            raise InvalidRequest(f"unknown controller status fields: {sorted(unknown)}")
        row = self._registry_row(t.controller_status, "status", {"name": name}, lock=True)
        values = {
            "project_id": self._pid,
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
        self._registry_write(
            "controller_status",
            t.controller_status,
            lambda dialect: q.insert(
                dialect,
                t.controller_status,
                "name",
                conflict=_STATUS_KEY,
                update=[c for c in st.columns(t.controller_status) if c not in _STATUS_KEY],
            ),
            values,
        )
        return row_records.controller_status(values)

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
        inserted = self._registry_write(
            "approval",
            t.promotion_approvals,
            lambda dialect: q.insert(dialect, t.promotion_approvals, "id", conflict=()),
            values,
        )
        if inserted is None:
            raise Conflict(
                f"{approver} already decided on this promotion", code=ErrorCode.already_decided
            )
        self._mark_changed(bundle_name, environment)
        return row_records.approval(values)

    def list_promotion_approvals(
        self, bundle_name: str, environment: str, digest: str | None = None
    ) -> list[PromotionApproval]:
        """Decisions on a promotion as this transaction sees them (its own writes included)."""
        key = {"bundle_name": bundle_name, "environment": environment}
        if digest is not None:
            key["digest"] = digest
        by_digest = digest is not None
        cur = self._registry_exec(("approvals", by_digest), lambda _: q.approvals(by_digest), key)
        rows = self._d.rows(t.promotion_approvals, self._ex, cur.fetchall())
        return [row_records.approval(row) for row in rows]
