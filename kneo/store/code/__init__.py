"""Project code, content-addressed: ``code_files`` (migration 0028).

One row per distinct file a code set pins (:mod:`kneo.kernel.code`), keyed by the sha256 of
its bytes: a run's modules and a promoted bundle's, so a worker with no checkout runs exactly
the code that was judged, and a run paused for weeks resumes on the code it started with.
Rows never change once written and are shared by every project (a row is reachable only by
its digest, which only the holder of the content can name), like ``specs``.

The table is defined here, with its only reader and writer, on the store's metadata.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import sqlalchemy as sa

from kneo.store import tables as t
from kneo.store.base import Facet

code_files = sa.Table(
    "code_files",
    t.metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("created_at", t.UTCDateTime, nullable=False),
)

#: digests this process knows are stored (rows are never deleted): no INSERT for them again
_HELD: set[str] = set()


class CodeFacet(Facet):
    """``store.code``: put and get project code files by sha256; each call commits."""

    def missing(self, digests: Iterable[str]) -> list[str]:
        """Which of ``digests`` this process does not know to be stored (no query: a run's
        files are hashed and written only the first time)."""
        return [d for d in digests if d not in _HELD]

    def put(self, files: Mapping[str, bytes]) -> None:
        """Store ``files`` (sha256 -> bytes) not stored yet; the caller verified each digest.
        Concurrent writers of one file both succeed (insert-if-absent)."""
        new = {sha: data for sha, data in files.items() if sha not in _HELD}
        if not new:
            return
        now = self.clock.now()
        stmt = self.dialect.insert(code_files).on_conflict_do_nothing(index_elements=["sha256"])
        with self._write() as conn:
            conn.execute(
                stmt,
                [{"sha256": sha, "data": data, "created_at": now} for sha, data in new.items()],
            )
        if len(_HELD) > 65536:
            _HELD.clear()
        _HELD.update(new)

    def get(self, digests: Iterable[str]) -> dict[str, bytes]:
        """The stored files among ``digests`` (a missing one is left out)."""
        wanted = sorted(set(digests))
        if not wanted:
            return {}
        c = code_files.c
        stmt = sa.select(c.sha256, c.data).where(c.sha256.in_(wanted))
        with self._read(snapshot=False) as conn:
            found = {str(sha): bytes(data) for sha, data in conn.execute(stmt)}
        _HELD.update(found)
        return found


__all__ = ["CodeFacet", "code_files"]
