"""``kneo service serve`` says in one line what it serves (database, auth, console, roles)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from kneo.cli.service_cmd import startup_line
from kneo.settings import Settings


def _store(url: str) -> SimpleNamespace:
    return SimpleNamespace(engine=SimpleNamespace(url=sa.make_url(url)))


@pytest.mark.parametrize(
    ("env", "worker", "ctl", "on_workers", "expected"),
    [
        (
            {},
            True,
            None,
            True,
            "kneo service on http://127.0.0.1:8000: database "
            "postgresql+psycopg://kneo:***@db:5432/kneo; auth off (every caller holds every "
            "scope; set KNEO_SERV_API_KEYS to require keys); console http://127.0.0.1:8000/ui; "
            "worker on; controller off; decisions continue on workers",
        ),
        (
            {
                "KNEO_SERV_API_KEYS": "operator:op-planted-key:operator;reviewer:rv-planted:reviewer",
                "KNEO_SERV_CONSOLE_ENABLED": "false",
            },
            False,
            object(),
            False,
            "kneo service on http://127.0.0.1:8000: database "
            "postgresql+psycopg://kneo:***@db:5432/kneo; auth API keys (operator, reviewer); "
            "console off; worker off; controller on; decisions continue in the request",
        ),
    ],
    ids=["open", "keys"],
)
def test_startup_line(
    env: dict[str, str], worker: bool, ctl: object, on_workers: bool, expected: str
) -> None:
    store = _store("postgresql+psycopg://kneo:planted-db-password@db:5432/kneo")
    line = startup_line(
        Settings.from_env(env),
        store,
        host="127.0.0.1",
        port=8000,
        worker=worker,
        ctl=ctl,
        on_workers=on_workers,
    )
    assert line == expected
    assert "planted" not in line
