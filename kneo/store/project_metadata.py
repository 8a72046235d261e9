"""Project metadata (``store.metadata``): the service-managed values of a project (its
environment policies), read one key at a time, as a per-request snapshot, or by prefix."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from kneo.store import tables as t
from kneo.store import transaction
from kneo.store.base import Facet, StoreBase

if TYPE_CHECKING:
    from kneo.store.transaction import Transaction

_UNSET: Any = object()  # a key a metadata snapshot read and found unset


class MetadataFacet(Facet):
    """Project metadata (``store.metadata``)."""

    def __init__(self, store: StoreBase) -> None:
        super().__init__(store)
        self._snapshots = threading.local()  # see :meth:`metadata_snapshot`

    def get_metadata(self, key: str, default: Any = None) -> Any:
        """One project metadata value, or ``default`` when unset."""
        snapshot: dict[str, Any] | None = getattr(self._snapshots, "values", None)
        if snapshot is not None and key in snapshot:
            value = snapshot[key]
            return default if value is _UNSET else value
        m = t.project_metadata.c
        with self._read() as conn:
            row = conn.execute(
                sa.select(m.value).where(m.project_id == self.project_id, m.key == key)
            ).first()
        return default if row is None else row[0]

    @contextlib.contextmanager
    def metadata_snapshot(
        self, keys: Sequence[str], tx: Transaction | None = None
    ) -> Iterator[None]:
        """Read ``keys`` in one query (``tx``: in that transaction); until exit,
        :meth:`get_metadata` answers them from that read in this thread. For one request that
        consults several keys (a run naming an environment checks two policy keys): a read
        per request, no cache to invalidate."""
        if tx is not None:
            found = tx.metadata(keys)
        else:
            key, build, params = transaction.metadata_read(keys)
            rows = self._read_alone(t.project_metadata, key, build, params)
            found = {row["key"]: row["value"] for row in rows}
        previous = getattr(self._snapshots, "values", None)
        self._snapshots.values = {**(previous or {}), **{k: found.get(k, _UNSET) for k in keys}}
        try:
            yield
        finally:
            self._snapshots.values = previous

    def list_metadata(self, prefix: str = "") -> dict[str, Any]:
        """All metadata whose key starts with ``prefix``."""
        m = t.project_metadata.c
        stmt = sa.select(m.key, m.value).where(m.project_id == self.project_id).order_by(m.key)
        if prefix:
            stmt = stmt.where(m.key.startswith(prefix, autoescape=True))
        with self._read() as conn:
            return {k: v for k, v in conn.execute(stmt)}


__all__ = ["MetadataFacet"]
