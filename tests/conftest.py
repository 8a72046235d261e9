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
from typing import Any

import pytest
from hypothesis import settings

from kneo.deferred_imports import defer_costly_imports
from tests import cli_zygote, leftovers

# The test processes defer jsonschema's IRI grammar as Kneo's own processes do
# (kneo.deferred_imports): each worker that imported jsonschema compiled it, ~1 CPU-s.
defer_costly_imports()

# Every ``kneo`` process a test starts imports the package from this checkout: with bytecode
# writing off (some shells and CI images set this), each of those hundreds of processes
# compiled every module again, about a quarter of a CLI start.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

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
def _test_resources_closed() -> Iterator[None]:
    yield
    leftovers.close_test_resources()


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
        "a2a_tests/test_a2a_live.py",
        "deploy/test_container_journey.py",
        "e2e/test_quickstart_doc.py",
        "hitl/test_budgets.py",
        "hitl/test_cross_process.py",
        "hitl/test_parallel_calls.py",
        "operations/test_continuations_on_workers.py",
        "operations/test_controller_shape.py",
        "operations/test_database_faults.py",
        "operations/test_pgbouncer.py",
        "operations/test_restart_and_race.py",
        "operations/test_scale_out.py",
        "release/test_wheel_journey.py",
        "release/test_init_templates.py",
        "service/test_cli_through_service.py",
        "service/test_live_server.py",
        "service/test_openapi_fuzz.py",
        "service/test_typescript_client.py",
    }
)


def pytest_configure(config: pytest.Config) -> None:
    """The run's mark, set before any worker or test process starts (workers inherit it);
    then, in each process that runs tests, the zygote its ``kneo`` processes fork from."""
    if not hasattr(config, "workerinput"):
        config.stash[_RUN_MARK] = leftovers.mark_run()
    if hasattr(config, "workerinput") or not config.getoption("numprocesses", None):
        config.stash[_ZYGOTE] = cli_zygote.start()


def pytest_unconfigure(config: pytest.Config) -> None:
    zygote = config.stash.get(_ZYGOTE, None)
    if zygote is not None:
        cli_zygote.stop(zygote)


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> Iterator[None]:
    """A run that leaves a process behind fails, naming it (after xdist stopped its
    workers: this wraps every other end-of-session hook)."""
    yield
    zygote = session.config.stash.get(_ZYGOTE, None)
    if zygote is not None:  # it carries the mark too: stopped before the count, not after
        del session.config.stash[_ZYGOTE]
        cli_zygote.stop(zygote)
    token = session.config.stash.get(_RUN_MARK, None)
    left = leftovers.reap(token) if token else {}
    if left:
        listed = "; ".join(f"{pid}: {command}" for pid, command in sorted(left.items()))
        writer = session.config.get_terminal_writer()
        writer.line()
        writer.line(
            f"processes the tests started were still running at the end (killed): {listed}",
            red=True,
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_RUN_MARK = pytest.StashKey[str]()
_ZYGOTE = pytest.StashKey["subprocess.Popen[bytes]"]()


def _module(item: pytest.Item) -> str:
    return os.path.relpath(str(item.path), os.path.dirname(__file__)).replace(os.sep, "/")


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto`` starts two workers more than the machine has cores: each worker spends part
    of its time waiting on the processes and servers its tests start, and the slow journeys
    (sleeping through a controller's intervals, a schedule's seconds, an outage) start first,
    together. With one worker more, two cores were 80 % busy and 12 % idle (573 s); with two
    more, 89 % and 3 %, the same CPU in 509 s (back to back on one machine)."""
    return len(os.sched_getaffinity(0)) + 2


def pytest_itemcollected(item: pytest.Item) -> None:
    """A module is one unit of work for ``pytest -n`` (``--dist=loadgroup``): its
    module-scoped fixtures (live services, filled databases, built wheels) start once, on one
    worker, instead of once on each. Tests that share a named group across modules (the
    browser) keep it."""
    if item.get_closest_marker("xdist_group") is None:
        item.add_marker(pytest.mark.xdist_group(_module(item)))
    if _module(item) in SLOW_MODULES or item.get_closest_marker("browser"):
        item.add_marker(pytest.mark.slow)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow journeys first, the rest in pytest-randomly's order: workers take units in
    this order (``--no-loadscope-reorder``), so no minute-long journey starts last."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def pytest_xdist_node_collection_finished(node: Any, ids: list[str]) -> None:
    """Every test a worker collected must carry its group (``@group``, which xdist's own
    hook appends): when a pytest release stops that from taking effect, the scheduler
    silently spreads a module over the workers, each starting its module fixtures again."""
    if node.config.getvalue("dist") != "loadgroup":
        return
    ungrouped = [i for i in ids if "@" not in i.rsplit("]", 1)[-1]]
    if ungrouped:
        pytest.exit(
            f"--dist=loadgroup is not grouping ({ungrouped[0]} has no @group suffix): this "
            "pytest and pytest-xdist do not work together (see pyproject.toml)",
            returncode=pytest.ExitCode.USAGE_ERROR,
        )


PG_ENV = "KNEO_TEST_DATABASE_URL"


class PgDatabases:
    """Fresh PostgreSQL databases on the server ``KNEO_TEST_DATABASE_URL`` names, each dropped
    by ``drop_all`` (``WITH (FORCE)``: a test's leftover connections do not keep one alive).

    With a ``template`` (:func:`pg_template`, the schema at head), ``new()`` is a copy of it:
    a tenth of a second where migrating an empty database takes one to two, and a suite that
    made ~300 fresh databases spent minutes of both cores on migrations no test was about.
    ``new(empty=True)`` is an empty database, for the tests of migrating one."""

    def __init__(self, base_url: str, prefix: str, template: str | None = None) -> None:
        import sqlalchemy as sa

        self._url = sa.make_url(base_url)
        self._admin = sa.create_engine(self._url, isolation_level="AUTOCOMMIT")
        self._prefix = prefix
        self._template = template
        self._names: list[str] = []

    def new(self, *, empty: bool = False) -> str:
        """A copy of the template (the schema at head), or an empty database."""
        import sqlalchemy as sa

        name = f"{self._prefix}_{secrets.token_hex(4)}"
        copy = f' TEMPLATE "{self._template}"' if self._template and not empty else ""
        with self._admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"{copy}'))
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


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A database migrated to head once per session (per xdist worker), never connected to
    again: the template of every fresh database below (``CREATE DATABASE ... TEMPLATE``
    needs one no one is connected to)."""
    from kneo.store import open_store

    databases = PgDatabases(pg_base_url(), "kneo_h")
    url = databases.new()
    open_store(url).close()
    yield url.rsplit("/", 1)[1]
    databases.drop_all()


@pytest.fixture
def pg_database(pg_template: str) -> Iterator[Callable[[], str]]:
    """``new()`` -> URL of a fresh PostgreSQL database at the schema's head (a copy of
    :func:`pg_template`; dropped after the test), for tests about what runs on a database."""
    databases = PgDatabases(pg_base_url(), "kneo_t", template=pg_template)
    yield databases.new
    databases.drop_all()


@pytest.fixture
def pg_empty_database() -> Iterator[Callable[[], str]]:
    """``new()`` -> URL of a fresh, empty PostgreSQL database, for the tests of migrating one
    (dropped after the test)."""
    databases = PgDatabases(pg_base_url(), "kneo_e")
    yield lambda: databases.new(empty=True)
    databases.drop_all()


@pytest.fixture(scope="session")
def pg_session_databases(pg_template: str) -> Iterator[PgDatabases]:
    """Fresh databases at head that live for the whole test session (dropped at its end)."""
    databases = PgDatabases(pg_base_url(), "kneo_s", template=pg_template)
    yield databases
    databases.drop_all()
