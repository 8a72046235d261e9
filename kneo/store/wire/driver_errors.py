"""Database driver failures as Kneo errors, in one place for every path to the database.

SQLAlchemy's wrappers (``Store.transaction``, reads, coordination) and the bare DBAPI errors
of the hot paths' raw connections (run creation, step boundaries, outcomes) map alike, so
no path answers a database outage with anything but ``503 database_unavailable``.
"""

from __future__ import annotations

from types import TracebackType

from sqlalchemy import exc as sa_exc

from kneo.errors import Conflict, DatabaseUnavailable, ErrorCode, InvalidRequest, KneoError


class _DbErrors:
    """``with``: driver failures become Kneo errors (:func:`database_error`); the rest pass
    through. A class, not a generator context manager: every read and write transaction
    enters one, and a generator's set-up cost more than the check."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc is None or isinstance(exc, KneoError) or not isinstance(exc, Exception):
            return
        mapped = database_error(exc)
        if mapped is not None:
            raise mapped from exc


_DB_ERRORS = _DbErrors()


def db_errors() -> _DbErrors:
    """Driver failures in the ``with`` block become Kneo errors; the rest pass through."""
    return _DB_ERRORS


def database_error(exc: BaseException) -> KneoError | None:
    """The Kneo error a database driver failure stands for, or ``None`` for anything else.

    SQLAlchemy's wrappers and the bare DBAPI errors of the hot paths' raw connections alike:
    a constraint is ``conflict``, a value the column cannot hold ``invalid_request``; a
    connection refused, dropped or terminated, a pool exhausted, a database locked past its
    busy timeout are ``database_unavailable`` (transient). Bare DBAPI classes are recognised
    by their PEP 249 names, which every driver (sqlite3, psycopg) uses."""
    cause = exc.orig if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None else exc
    names = {cls.__name__ for cls in type(cause).__mro__}
    if "IntegrityError" in names:
        return Conflict(f"database constraint violated: {cause}", code=ErrorCode.conflict)
    if "DataError" in names:  # a value the column cannot hold (PostgreSQL: a NUL in text)
        return InvalidRequest(f"the database refused a value: {cause}".splitlines()[0][:300])
    if (
        names & {"OperationalError", "InterfaceError"}
        or isinstance(exc, sa_exc.TimeoutError | sa_exc.DisconnectionError)
        or (isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated)
    ):
        first_line = (str(cause).strip().splitlines() or [""])[0][:300]
        return DatabaseUnavailable(f"database unavailable: {type(cause).__name__}: {first_line}")
    return None


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` is (or maps to) ``database_unavailable``: the connection it came
    from is broken and must not go back to the pool."""
    return isinstance(exc, DatabaseUnavailable) or isinstance(
        database_error(exc), DatabaseUnavailable
    )
