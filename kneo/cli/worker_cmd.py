"""``kneo worker``: a standalone queue worker.

Its own module, apart from ``kneo service serve``, so that a worker process imports what it
runs and not the HTTP service (FastAPI, the routers, the console): a ``kneo worker --once``
took 1.4-1.7 CPU-s with them and 0.9-1.3 without on a slow two-core machine
(``bench/cli_startup.py``). The ``--factory`` option and the shutdown limit are shared with
``kneo service serve``.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Annotated

import typer

from kneo import startup
from kneo.cli.stop_signals import on_stop_signals
from kneo.metrics import start_process
from kneo.service.factory import (
    create_default_platform_manager,
    load_platform_factory,
    set_platform_factory,
)
from kneo.settings import Settings
from kneo.worker import Worker

FactoryOpt = Annotated[
    str | None,
    typer.Option(
        "--factory",
        metavar="MODULE:FUNCTION",
        help="Build the platform manager with this function (custom tools, stores)",
    ),
]


def install_factory(ref: str | None) -> None:
    """``--factory module:function``: the platform every manager of this process comes from."""
    if ref is not None:
        set_platform_factory(load_platform_factory(ref))


def exit_after(stopping: Callable[[], bool], limit: float) -> None:
    """Once ``stopping()`` turns true, give the process ``limit`` seconds, then end it."""
    while not stopping():
        time.sleep(0.2)
    time.sleep(limit)
    sys.stderr.write(f"kneo: shutdown still not done {limit:g}s after the signal; exiting\n")
    sys.stderr.flush()
    os._exit(1)


def worker(
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, max=64)] = 1,
    once: Annotated[bool, typer.Option("--once", help="Drain due records, then exit")] = False,
    grace_seconds: Annotated[
        float,
        typer.Option(
            "--grace-seconds",
            min=0,
            help="On SIGTERM, wait this long for runs in flight, then hand them over "
            "(the process is gone 10 s later whatever hangs)",
        ),
    ] = 20.0,
    max_attempts: Annotated[
        int,
        typer.Option(
            "--max-attempts", min=1, help="Fail a run whose record was claimed more often"
        ),
    ] = 5,
    factory: FactoryOpt = None,
) -> None:
    """Run a standalone queue worker against the configured database.

    SIGTERM/SIGINT stop claiming; runs in flight get ``--grace-seconds`` to finish, then
    their leases are released so another worker continues them at once."""
    install_factory(factory)
    settings = Settings.from_env()
    # its runs, plus its lease, sweep and notification threads
    pool = settings.database_pool_size or concurrency + 2
    settings = replace(settings, process_role="worker", database_pool_size=pool)
    manager = create_default_platform_manager(settings)
    runner = Worker(
        manager,
        settings=settings,
        name="worker",
        concurrency=concurrency,
        max_attempts=max_attempts,
    )
    metrics_server = start_process(manager.store, settings, alive=runner.is_alive)
    startup.done()
    try:
        if once:
            count = runner.run_until_empty()
            typer.echo(f"processed {count} queued run(s)")
            return
        _work_until_stopped(runner, concurrency=concurrency, grace_seconds=grace_seconds)
    finally:
        if metrics_server is not None:
            metrics_server.shutdown()
        manager.close()


def _work_until_stopped(runner: Worker, *, concurrency: int, grace_seconds: float) -> None:
    """Run the worker until SIGTERM/SIGINT (or until its threads die), then hand the runs
    still in flight after ``grace_seconds`` over; the process ends 10 s after that whatever
    hangs."""
    stopped = threading.Event()

    def stop() -> None:
        if not stopped.is_set():
            stopped.set()
            threading.Thread(
                target=exit_after,
                args=(lambda: True, grace_seconds + 10.0),
                name="kneo-shutdown-limit",
                daemon=True,
            ).start()

    on_stop_signals(stop, signal.SIGTERM, signal.SIGINT)
    runner.start()
    typer.echo(f"worker {runner.owner} running with concurrency {concurrency}", err=True)
    while not stopped.wait(1.0):
        if not runner.is_alive():
            break
    handed = runner.stop(timeout=grace_seconds)
    note = f"; handed over {len(handed)} run(s) in flight" if handed else ""
    typer.echo(f"worker stopped after {runner.processed} run(s){note}", err=True)


def register(root: typer.Typer) -> None:
    """Adds the ``worker`` command to the root app."""
    root.command("worker")(worker)
