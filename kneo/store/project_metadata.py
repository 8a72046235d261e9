"""Project metadata (``store.metadata``): the service-managed values of a project (its
environment policies), read one key at a time, as a per-request snapshot, or by prefix.

A run start consults the same two keys every time, and they change only when an operator
or the controller writes a policy. So a snapshot may reuse this process's last read of its
keys (``reuse``: no round trip) on one condition: the write it allows commits only while the
keys still hold what was read (:meth:`Transaction.create_run
<kneo.store.transaction.Transaction.create_run>`'s ``expect``). When they changed, nothing is
written, the reused read is forgotten and :class:`~kneo.errors.MetadataChanged` tells the caller
to decide again from a fresh one; a policy written before the request began is never missed."""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from kneo.store import tables as t
from kneo.store import transaction
from kneo.store.base import Facet, StoreBase
from kneo.store.records import MetadataSeen

if TYPE_CHECKING:
    from kneo.store.transaction import Transaction

_UNSET: Any = object()  # a key a metadata snapshot read and found unset


class MetadataFacet(Facet):
    """Project metadata (``store.metadata``)."""

    def __init__(self, store: StoreBase) -> None:
        super().__init__(store)
        self._snapshots = threading.local()  # see :meth:`metadata_snapshot`
        #: this process's last read of each key set a snapshot may reuse (module docstring)
        self._seen: dict[tuple[str, ...], MetadataSeen] = {}

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
        self, keys: Sequence[str], tx: Transaction | None = None, *, reuse: bool = False
    ) -> Iterator[MetadataSeen]:
        """Read ``keys`` in one query (``tx``: in that transaction); until exit,
        :meth:`get_metadata` answers them from that read in this thread. For one request that
        consults several keys (a run naming an environment checks two policy keys).
        ``reuse``: this process's last read of the same keys, when it has one, instead of a
        new one; the write the request makes must then expect what it yields (the module
        docstring)."""
        keys = tuple(keys)
        seen = self._seen.get(keys) if reuse and tx is None else None
        if seen is None:
            seen = self._read_seen(keys, tx)
            if reuse and tx is None:
                self._seen[keys] = dataclasses.replace(seen, reused=True)
        found = seen.values()
        previous = getattr(self._snapshots, "values", None)
        self._snapshots.values = {**(previous or {}), **{k: found.get(k, _UNSET) for k in keys}}
        try:
            yield seen
        finally:
            self._snapshots.values = previous

    def _read_seen(self, keys: tuple[str, ...], tx: Transaction | None) -> MetadataSeen:
        """``keys``' stored texts, read now (in ``tx`` when given)."""
        if tx is not None:
            texts = tx.metadata_texts(keys)
        else:
            texts = dict(self._read_alone(None, *transaction.metadata_read(keys)))
        cache = self._seen

        def forget() -> None:
            cache.pop(keys, None)

        return MetadataSeen(tuple((k, texts.get(k)) for k in keys), forget)

    def list_metadata(self, prefix: str = "") -> dict[str, Any]:
        """All metadata whose key starts with ``prefix``."""
        m = t.project_metadata.c
        stmt = sa.select(m.key, m.value).where(m.project_id == self.project_id).order_by(m.key)
        if prefix:
            stmt = stmt.where(m.key.startswith(prefix, autoescape=True))
        with self._read() as conn:
            return {k: v for k, v in conn.execute(stmt)}


__all__ = ["MetadataFacet"]
