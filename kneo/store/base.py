"""What every part of the Store shares: the engine, the dialect, time, and error translation.

The store is assembled from a few mixins (runs and continuations in ``api``, queue/locks/
idempotency in ``coordination``, the registry, maintenance); they all build on this base so
each module stays small and none imports another's internals.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine

from kneo.clock import Clock
from kneo.errors import Conflict, KneoError, NotReady
from kneo.settings import Settings
from kneo.store.dialects import StoreDialect

if TYPE_CHECKING:
    from kneo.store.api import Transaction


class StoreBase:
    """Engine, dialect, settings and clock, plus read and write connection helpers."""

    engine: Engine
    dialect: StoreDialect
    settings: Settings
    clock: Clock

    def transaction(self) -> contextlib.AbstractContextManager[Transaction]:
        raise NotImplementedError

    @contextlib.contextmanager
    def _read(self) -> Iterator[Connection]:
        """A read-only snapshot (one transaction) on a pooled connection."""
        with self._db_errors(), self.engine.connect() as conn, conn.begin():
            yield conn

    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        """A bare write transaction for primitives that commit on their own (claims, locks)."""
        with self._db_errors(), self.dialect.connect_write(self.engine) as conn, conn.begin():
            yield conn

    @contextlib.contextmanager
    def _db_errors(self) -> Iterator[None]:
        """Translate driver failures at the boundary; Kneo errors pass through untouched."""
        try:
            yield
        except KneoError:
            raise
        except sa_exc.IntegrityError as exc:
            raise Conflict(f"database constraint violated: {exc.orig}", code="conflict") from exc
        except (sa_exc.OperationalError, sa_exc.InterfaceError) as exc:
            raise NotReady(
                f"database unavailable: {type(exc.orig).__name__}: {exc.orig}",
                code="database_unavailable",
            ) from exc

