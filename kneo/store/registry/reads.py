"""The GitOps registry's reads: bundle revisions per (bundle, environment), conditions,
suspensions, pins, blocked digests, controller status and promotion approvals, as
:class:`RegistryFacet` methods of the Store.

The writes are :class:`~kneo.store.registry.writes.RegistryWritesMixin` methods on a
transaction, so the controller applies a whole decision (revision, activation, conditions,
audit) atomically; the Store has none (``with store.transaction() as tx``: one way to write).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any, Literal, Protocol, TypeVar, overload

import sqlalchemy as sa

from kneo.errors import NotFound
from kneo.store import row_records
from kneo.store import tables as t
from kneo.store.base import Facet, given, keyset_page
from kneo.store.queries import RegistryQuery
from kneo.store.records import (
    BundleRevision,
    Condition,
    ControllerStatus,
    Holds,
    Page,
    PromotionApproval,
    RevisionHead,
)
from kneo.store.registry import statements as q

_R = t.bundle_revisions.c
_C = t.bundle_conditions.c
_X = t.registry_changes.c

_Record = TypeVar("_Record")

#: A condition as a reconcile compares it: ``(bundle, environment, type, status, reason,
#: message)`` (:meth:`RegistryFacet.list_conditions` with ``heads``).
ConditionHead = tuple[str, str, str, str, str, str]

#: Names per ``IN (...)`` list when a reconcile reads some bundles only.
_IN_CHUNK = 500


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


class ApprovalReads(Protocol):
    """The one read a promotion's tally takes from either of its two implementations: the
    registry facet (committed approvals) and a transaction (with its own writes), which
    share no class; every other registry read is :class:`RegistryFacet`'s own."""

    def list_promotion_approvals(
        self, bundle_name: str, environment: str, digest: str | None = None
    ) -> list[PromotionApproval]: ...


class RegistryFacet(Facet):
    """Registry reads (``store.registry``); its writes are the transaction's."""

    def _registry_read(self, key: str, build: Callable[[], Any], params: Mapping[str, Any]) -> Any:
        """The rows of the registry read ``key`` (its statement built once per store by
        ``build``) with ``params``, in the view's project (``:project_id``), as mappings."""
        stmt = self.dialect.memo(("registry", key), build)
        with self._read() as conn:
            return conn.execute(stmt, {**params, "project_id": self.project_id}).mappings().all()

    def get_revision(self, bundle_name: str, environment: str, revision: int) -> BundleRevision:
        key = {"bundle_name": bundle_name, "environment": environment, "revision": revision}
        found = self._registry_read(
            "revision", lambda: q.select(t.bundle_revisions, q.REVISION_KEY), key
        )
        if not found:
            raise NotFound(
                f"revision {revision} of bundle {bundle_name!r} in {environment!r} not found",
                resource="bundle_revision",
            )
        return row_records.revision(found[0])

    def get_active(self, bundle_name: str, environment: str) -> BundleRevision | None:
        """The active revision of a bundle in an environment, if any."""
        key = {"bundle_name": bundle_name, "environment": environment}
        found = self._registry_read("active", q.active_revision, key)
        return row_records.revision(found[0]) if found else None

    def list_registry(self, query: RegistryQuery = RegistryQuery()) -> Page[BundleRevision]:
        """Revisions across bundles (:class:`~kneo.store.queries.RegistryQuery`) in the
        primary key's order (bundle, environment, revision), so a page walks the key from
        its ``cursor`` and stops after ``limit`` rows."""
        q = query
        where = [_R.project_id == self.project_id]
        if q.environment is not None:
            where.append(_R.environment == q.environment)
        if q.status is not None:
            where.append(_R.status == q.status)
        columns = (_R.bundle_name, _R.environment, _R.revision)
        with self._read() as conn:
            found, total, capped, next_cursor = keyset_page(
                conn, t.bundle_revisions, where, columns, "asc", limit=q.limit, cursor=q.cursor,
                count=q.count, cap=self.settings.limits.max_list_count or None,
            )  # fmt: skip
        items = [row_records.revision(r) for r in found]
        return Page(items, total, q.limit or len(items), 0, "bundle", "asc", next_cursor, capped)

    @overload
    def list_revisions(
        self,
        bundle_name: str | None = None,
        environment: str | None = None,
        *,
        names: Collection[str] | None = None,
        status: str | None = None,
        digest: str | None = None,
        heads: Literal[False] = False,
    ) -> list[BundleRevision]: ...

    @overload
    def list_revisions(
        self,
        bundle_name: str | None = None,
        environment: str | None = None,
        *,
        names: Collection[str] | None = None,
        status: str | None = None,
        digest: str | None = None,
        heads: Literal[True],
    ) -> list[RevisionHead]: ...

    def list_revisions(
        self,
        bundle_name: str | None = None,
        environment: str | None = None,
        *,
        names: Collection[str] | None = None,
        status: str | None = None,
        digest: str | None = None,
        heads: bool = False,
    ) -> list[BundleRevision] | list[RevisionHead]:
        """Revisions in key order (bundle, environment, revision: a key's history oldest
        first, its newest last): of one bundle, one environment, one status (``active``:
        what a scheduler declares, through the index on status) and one digest, each if
        given; ``names``: of those bundles only (an incremental reconcile).

        ``heads``: each without its spec (:class:`~kneo.store.records.RevisionHead`, the
        diagnostics of rejected revisions only): what reconciles read, so their cost does
        not grow with the size of the specs stored in the registry.
        """
        if heads:
            diag = sa.case((_R.status == "rejected", _R.diagnostics), else_=sa.null())
            stmt = sa.select(
                _R.bundle_name, _R.environment, _R.revision, _R.digest, _R.status, _R.commit, diag
            )
        else:
            stmt = sa.select(t.bundle_revisions)
        stmt = stmt.where(
            _R.project_id == self.project_id,
            *given((_R.bundle_name, bundle_name), (_R.environment, environment),
                   (_R.status, status), (_R.digest, digest)),
        ).order_by(_R.bundle_name, _R.environment, _R.revision)  # fmt: skip
        with self._read() as conn:
            rows_ = [r for s in _by_names(stmt, _R.bundle_name, names) for r in conn.execute(s)]
        if not heads:
            return [row_records.revision(r._mapping) for r in rows_]
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
        counter = self.dialect.memo(("registry", "change_number"), q.change_number)
        changed = self.dialect.memo(("registry", "changed_since"), q.changed_since)
        mine = {"project_id": self.project_id}
        with self._read() as conn:
            current = conn.execute(counter, mine).scalar()
            if seq is None:
                return int(current or 0), set()
            names = {r[0] for r in conn.execute(changed, {**mine, "seq": seq})}
        return int(current or 0), names

    @overload
    def list_conditions(
        self,
        bundle_name: str | None = None,
        environment: str | None = None,
        *,
        names: Collection[str] | None = None,
        heads: Literal[False] = False,
    ) -> list[Condition]: ...

    @overload
    def list_conditions(
        self,
        bundle_name: str | None = None,
        environment: str | None = None,
        *,
        names: Collection[str] | None = None,
        heads: Literal[True],
    ) -> list[ConditionHead]: ...

    def list_conditions(
        self,
        bundle_name: str | None = None,
        environment: str | None = None,
        *,
        names: Collection[str] | None = None,
        heads: bool = False,
    ) -> list[Condition] | list[ConditionHead]:
        """Conditions by (bundle, environment, type): of one bundle and one environment,
        each if given; ``names``: of those bundles only.

        ``heads``: each as ``(bundle, environment, type, status, reason, message)``, in no
        order: what a reconcile compares, without timestamps (converting them costs more
        than the query at registry scale: thousands of conditions read on every full pass).
        """
        if heads:
            stmt = sa.select(
                _C.bundle_name, _C.environment, _C.type, _C.status, _C.reason, _C.message
            )
        else:
            stmt = sa.select(t.bundle_conditions).order_by(_C.bundle_name, _C.environment, _C.type)
        stmt = stmt.where(
            _C.project_id == self.project_id,
            *given((_C.bundle_name, bundle_name), (_C.environment, environment)),
        )
        with self._read() as conn:
            if heads:
                return [
                    (r[0], r[1], r[2], r[3], r[4], r[5])
                    for s in _by_names(stmt, _C.bundle_name, names)
                    for r in conn.execute(s)
                ]
            return [
                row_records.condition(r)
                for s in _by_names(stmt, _C.bundle_name, names)
                for r in conn.execute(s).mappings()
            ]

    def _keyed(
        self,
        table: sa.Table,
        environment: str | None,
        names: Collection[str] | None,
        record: Callable[[Any], _Record],
    ) -> list[_Record]:
        """The rows of ``table`` (one per bundle and environment: suspensions, pins) by key,
        of one environment and of the bundles ``names`` only if given, as records."""
        c = table.c
        stmt = (
            sa.select(table)
            .where(c.project_id == self.project_id)
            .order_by(c.bundle_name, c.environment)
        )
        if environment is not None:
            stmt = stmt.where(c.environment == environment)
        with self._read() as conn:
            return [
                record(r)
                for part in _by_names(stmt, c.bundle_name, names)
                for r in conn.execute(part).mappings()
            ]

    def holds(
        self, environment: str | None = None, *, names: Collection[str] | None = None
    ) -> Holds:
        """The project's holds: suspensions and pins (of one environment and of the bundles
        ``names`` only, if given) and every blocked digest (a short list: people write it);
        ``names=()`` reads the blocked digests only."""
        return Holds(
            suspensions={
                (s.bundle_name, s.environment): s
                for s in self._keyed(
                    t.bundle_suspensions, environment, names, row_records.suspension
                )
            },
            pins={
                (p.bundle_name, p.environment): p
                for p in self._keyed(t.bundle_pins, environment, names, row_records.pin)
            },
            blocked={
                b.digest: b
                for b in map(
                    row_records.blocked, self._registry_read("blocked", q.blocked_digests, {})
                )
            },
        )

    def get_controller_status(self, name: str = "default") -> ControllerStatus:
        """The controller's last reported status (all ``None`` before its first reconcile)."""
        found = self._registry_read(
            "status",
            lambda: q.select(t.controller_status, (*q.PROJECT_KEY, "name")),
            {"name": name},
        )
        if not found:
            return ControllerStatus(None, None, None, None, {}, None)
        return row_records.controller_status(found[0])

    def list_promotion_approvals(
        self,
        bundle_name: str | None = None,
        environment: str | None = None,
        digest: str | None = None,
        *,
        prefix: str | None = None,
        names: Collection[str] | None = None,
    ) -> list[PromotionApproval]:
        """Promotion decisions, oldest first: of one bundle and environment and on one
        subject (``digest``: a revision's, or a subject of its own such as a freeze
        override's ``freeze:<digest>``), each if given; ``prefix``: under every subject
        starting with it; ``names``: of those bundles only.

        A key's decisions (the read a reconcile makes per pending revision) run one
        statement built once per store."""
        if prefix is None and names is None and bundle_name is not None and environment is not None:
            key = {"bundle_name": bundle_name, "environment": environment}
            if digest is not None:
                key["digest"] = digest
            by_digest = digest is not None
            found = self._registry_read(
                f"approvals_{by_digest}", lambda: q.approvals(by_digest), key
            )
            return [row_records.approval(r) for r in found]
        p = t.promotion_approvals.c
        stmt = sa.select(t.promotion_approvals).where(
            p.project_id == self.project_id,
            *given((p.bundle_name, bundle_name), (p.environment, environment), (p.digest, digest)),
        )
        if prefix is not None:
            stmt = stmt.where(p.digest.startswith(prefix, autoescape=True))
        stmt = stmt.order_by(p.id)
        with self._read() as conn:
            return [
                row_records.approval(r)
                for part in _by_names(stmt, p.bundle_name, names)
                for r in conn.execute(part).mappings()
            ]
