"""Console sessions on the :class:`~kneo.store.api.Store` (``console_sessions``, 0015).

A session is found by the SHA-256 of the id its cookie carries; it is valid until it expires
or is ended (signed out), on every replica at once. Each sign-in deletes the rows that have
expired (the ``expires_at`` index), so the table holds about one lifetime of sign-ins.
Sessions are global (a session is the person's, not a project's): it remembers the project
the person last viewed (``project_id``, 0026).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from kneo.store import tables as t
from kneo.store.base import Facet

#: why console sessions are read and written in every project
SESSIONS = "a console session is the service's, found by its hash; it says its project"


@dataclass(frozen=True)
class ConsoleSession:
    """One sign-in: who, how, and (for a person) the claims it was made from."""

    principal: str
    method: str
    person: dict[str, Any] | None
    created_at: datetime
    expires_at: datetime
    ended_at: datetime | None
    #: the project the person last viewed (``None``: none yet)
    project_id: int | None = None


class SessionsFacet(Facet):
    """Open, read and end console sessions; every method commits on its own."""

    def open_console_session(
        self,
        session_hash: str,
        *,
        principal: str,
        method: str,
        lifetime_seconds: float,
        person: dict[str, Any] | None = None,
    ) -> None:
        now = self.clock.now()
        with self._write(everywhere=SESSIONS) as conn:
            conn.execute(
                sa.delete(t.console_sessions).where(t.console_sessions.c.expires_at <= now)
            )
            conn.execute(
                sa.insert(t.console_sessions).values(
                    session_hash=session_hash,
                    principal=principal,
                    method=method,
                    person=person,
                    created_at=now,
                    expires_at=now + timedelta(seconds=lifetime_seconds),
                    ended_at=None,
                )
            )

    def console_session(self, session_hash: str) -> ConsoleSession | None:
        """The session if it exists, is not ended and has not expired; else ``None``."""
        c = t.console_sessions.c
        with self._read(snapshot=False, everywhere=SESSIONS) as conn:
            row = conn.execute(
                sa.select(
                    c.principal,
                    c.method,
                    c.person,
                    c.created_at,
                    c.expires_at,
                    c.ended_at,
                    c.project_id,
                ).where(c.session_hash == session_hash)
            ).first()
        if row is None or row.ended_at is not None or row.expires_at <= self.clock.now():
            return None
        return ConsoleSession(*row)

    def update_console_session(
        self, session_hash: str, *, project_id: int | None = None, ended: bool = False
    ) -> bool:
        """Remember the project a live session last viewed (``project_id``) or end it (sign
        out: ``ended``); ``True`` when the session was live."""
        c = t.console_sessions.c
        values: dict[str, Any] = {"project_id": project_id} if project_id is not None else {}
        if ended:
            values["ended_at"] = self.clock.now()
        if not values:
            raise ValueError("update_console_session: nothing to change")
        with self._write(one_statement=True, everywhere=SESSIONS) as conn:
            changed = conn.execute(
                sa.update(t.console_sessions)
                .where(c.session_hash == session_hash, c.ended_at.is_(None))
                .values(**values)
            ).rowcount
        return bool(changed)


__all__ = ["ConsoleSession", "SessionsFacet"]
