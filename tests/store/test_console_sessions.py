"""Console sessions on the store: found by the id's hash, ended by sign-out, gone at expiry
(and deleted by the next sign-in after that)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from kneo.clock import ManualClock
from kneo.settings import Settings
from kneo.store import open_store
from kneo.store import tables as t


def test_a_session_lives_until_signed_out_or_expired(tmp_path: Path) -> None:
    clock = ManualClock(datetime(2026, 11, 24, 8, 0, tzinfo=UTC))
    store = open_store(None, settings=Settings(), state_dir=tmp_path, clock=clock)
    try:
        person = {"sub": "a1", "email": "alice@example.com", "groups": ["release-managers"]}
        store.sessions.open_console_session(
            "h1",
            principal="alice@example.com",
            method="oidc_session",
            lifetime_seconds=60,
            person=person,
        )
        store.sessions.open_console_session(
            "h2", principal="reviewer", method="api_key", lifetime_seconds=60
        )
        found = store.sessions.console_session("h1")
        assert found is not None and found.person == person and found.method == "oidc_session"
        assert store.sessions.update_console_session(
            "h1", ended=True
        ) and not store.sessions.update_console_session("h1", ended=True)
        assert (
            store.sessions.console_session("h1") is None
            and store.sessions.console_session("nope") is None
        )
        clock.advance(61)
        assert store.sessions.console_session("h2") is None  # expired
        store.sessions.open_console_session(
            "h3", principal="reviewer", method="api_key", lifetime_seconds=60
        )
        with store.engine.connect() as conn:
            left = {r[0] for r in conn.execute(sa.select(t.console_sessions.c.session_hash))}
        assert left == {"h3"}  # the expired rows went with the next sign-in
    finally:
        store.close()
