"""Project code, content-addressed: ``code_files`` (migration 0028).

One row per distinct file a code set pins (:mod:`kneo.kernel.code`), keyed by the sha256 of
its bytes: a run's modules and a promoted bundle's (and a run's code set manifest, under the
set's digest: a run records the digest alone), so a worker with no checkout runs exactly
the code that was judged, and a run paused for weeks resumes on the code it started with.
Rows never change once written and are shared by every project (a row is reachable only by
its digest, which only the holder of the content can name), like ``specs``.

The table is defined here, with its only reader and writer, on the store's metadata.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Mapping
from typing import Any

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

#: per database (its engine), the digests this process knows are stored there (rows are
#: never deleted): no INSERT for them again
_HELD: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()


def _held(engine: Any) -> set[str]:
    found = _HELD.get(engine)
    if found is None:
        found = _HELD[engine] = set()
    return found


def _one() -> sa.Select[Any]:
    c = code_files.c
    return sa.select(c.sha256, c.data).where(c.sha256 == sa.bindparam("sha256"))


class CodeFacet(Facet):
    """``store.code``: put and get project code files by sha256; each call commits."""

    def missing(self, digests: Iterable[str]) -> list[str]:
        """Which of ``digests`` this process does not know to be stored (no query: a run's
        files are hashed and written only the first time)."""
        held = _held(self.engine)
        return [d for d in digests if d not in held]

    def put(self, files: Mapping[str, bytes]) -> None:
        """Store ``files`` (sha256 -> bytes) not stored yet; the caller verified each digest.
        Concurrent writers of one file both succeed (insert-if-absent)."""
        held = _held(self.engine)
        new = {sha: data for sha, data in files.items() if sha not in held}
        if not new:
            return
        now = self.clock.now()
        stmt = self.dialect.insert(code_files).on_conflict_do_nothing(index_elements=["sha256"])
        with self._write() as conn:
            conn.execute(
                stmt,
                [{"sha256": sha, "data": data, "created_at": now} for sha, data in new.items()],
            )
        if len(held) > 65536:
            held.clear()
        held.update(new)

    def get(self, digests: Iterable[str]) -> dict[str, bytes]:
        """The stored files among ``digests`` (a missing one is left out). One digest (such
        as a code set's manifest: :meth:`kneo.kernel.code.CodeSet.from_record`'s ``fetch``)
        is one statement on the driver, compiled once: a resume in a fresh process reads its
        run's manifest so."""
        wanted = sorted(set(digests))
        if len(wanted) == 1:
            rows = self._read_alone(code_files, "code_files.one", _one, {"sha256": wanted[0]})
            found = {wanted[0]: bytes(rows[0]["data"])} if rows else {}
        elif not wanted:
            return {}
        else:
            c = code_files.c
            stmt = sa.select(c.sha256, c.data).where(c.sha256.in_(wanted))
            with self._read(snapshot=False) as conn:
                found = {str(sha): bytes(data) for sha, data in conn.execute(stmt)}
        _held(self.engine).update(found)
        return found


__all__ = ["CodeFacet", "code_files"]
