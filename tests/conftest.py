"""Suite-wide guard: no test leaves process-global state changed.

A test that changes the environment, the working directory or a logger's wiring and does not
put it back makes later tests pass or fail by the order they run in (pytest-randomly shuffles
that order on every run). Tests change such state through ``monkeypatch`` or a fixture that
restores it; this guard fails the test that forgot.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable, Iterator

import pytest
from hypothesis import settings

# Property tests check results, never time: hypothesis's per-example deadline would make
# them fail on a loaded machine (CI shares two cores), so it is off for the whole suite.
settings.register_profile("kneo", deadline=None)
settings.load_profile("kneo")


def _logger_wiring() -> dict[str, tuple[bool, bool, int]]:
    loggers = {"": logging.getLogger()}
    loggers.update(
        (name, logger)
        for name, logger in logging.Logger.manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    )
    # the service installs its own handler once per process, by design (marked ``_kneo``)
    return {
        name: (
            logger.propagate,
            logger.disabled,
            sum(not getattr(h, "_kneo", False) for h in logger.handlers),
        )
        for name, logger in loggers.items()
    }


def _environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}  # pytest's own


@pytest.fixture(autouse=True)
def _global_state_is_restored() -> Iterator[None]:
    environ, cwd, wiring = _environ(), os.getcwd(), _logger_wiring()
    yield
    changed = []
    now = _environ()
    if now != environ:
        keys = set(environ) ^ set(now) | {
            k for k in environ.keys() & now.keys() if environ[k] != now[k]
        }
        changed.append(f"environment variables {sorted(keys)}")
    if os.getcwd() != cwd:
        changed.append(f"working directory {os.getcwd()!r} (was {cwd!r})")
    after = _logger_wiring()
    loggers = sorted(n for n in wiring if n in after and after[n] != wiring[n])
    if loggers:
        changed.append(f"loggers {loggers} (propagate, disabled, handler count)")
    if changed:
        pytest.fail("test left global state changed: " + "; ".join(changed), pytrace=False)


#: The slowest journeys (each a minute or more of a CI worker, or real processes under
#: faults): ``-m "not slow"`` leaves them and every browser test out of a quick loop.
SLOW_MODULES = frozenset(
    {
        "deploy/test_container_journey.py",
        "hitl/test_parallel_calls.py",
        "operations/test_controller_shape.py",
        "operations/test_database_faults.py",
        "operations/test_pgbouncer.py",
        "operations/test_restart_and_race.py",
        "operations/test_scale_out.py",
        "service/test_live_server.py",
        "service/test_openapi_fuzz.py",
        "service/test_typescript_client.py",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = os.path.dirname(__file__)
    for item in items:
        module = os.path.relpath(str(item.path), here).replace(os.sep, "/")
        if module in SLOW_MODULES or item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.slow)


PG_ENV = "KNEO_TEST_DATABASE_URL"


class PgDatabases:
    """Fresh PostgreSQL databases on the server ``KNEO_TEST_DATABASE_URL`` names, each dropped
    by ``drop_all`` (``WITH (FORCE)``: a test's leftover connections do not keep one alive)."""

    def __init__(self, base_url: str, prefix: str) -> None:
        import sqlalchemy as sa

        self._url = sa.make_url(base_url)
        self._admin = sa.create_engine(self._url, isolation_level="AUTOCOMMIT")
        self._prefix = prefix
        self._names: list[str] = []

    def new(self) -> str:
        import sqlalchemy as sa

        name = f"{self._prefix}_{secrets.token_hex(4)}"
        with self._admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        self._names.append(name)
        return self._url.set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        import sqlalchemy as sa

        with self._admin.connect() as conn:
            for name in self._names:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self._admin.dispose()


def pg_base_url() -> str:
    """The server for the PostgreSQL half of the suite.

    Unset: the test skips and says why, except in CI (``CI`` set), where it fails, so the
    PostgreSQL half can never be skipped silently there.
    """
    url = os.environ.get(PG_ENV)
    if not url:
        reason = f"{PG_ENV} not set (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {reason}", pytrace=False)
        pytest.skip(reason)
    return url


@pytest.fixture
def pg_database() -> Iterator[Callable[[], str]]:
    """``new()`` -> URL of a fresh, empty PostgreSQL database (dropped after the test)."""
    databases = PgDatabases(pg_base_url(), "kneo_t")
    yield databases.new
    databases.drop_all()


@pytest.fixture(scope="session")
def pg_session_databases() -> Iterator[PgDatabases]:
    """Fresh databases that live for the whole test session (dropped at its end)."""
    databases = PgDatabases(pg_base_url(), "kneo_s")
    yield databases
    databases.drop_all()
