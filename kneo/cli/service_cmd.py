"""``kneo service serve`` (the HTTP API plus an in-process queue worker) and ``kneo worker``.

Configuration errors (auth enabled without keys, a malformed variable) are raised before
uvicorn starts, so they reach the user as one ``error[config_error]: ...`` line.
"""

from __future__ import annotations

import threading
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True)


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8000,
    reload: Annotated[bool, typer.Option("--reload", help="Restart on code changes (dev)")] = False,
) -> None:
    """Run the Kneo FastAPI service."""
    import uvicorn

    from kneo.service.app import create_app
    from kneo.settings import Settings

    settings = Settings.from_env()
    log_level = settings.log_level.lower()
    if reload:
        from kneo.service.auth import Authenticator

        Authenticator.from_settings(settings)  # fail fast, before the reloader forks
        uvicorn.run(
            "kneo.service.app:create_app",
            factory=True,
            host=host,
            port=port,
            reload=True,
            access_log=False,
            log_level=log_level,
        )
        return
    application = create_app(configure_default_manager=True, settings=settings)
    uvicorn.run(application, host=host, port=port, access_log=False, log_level=log_level)


def worker(
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, max=64)] = 1,
    once: Annotated[bool, typer.Option("--once", help="Drain due records, then exit")] = False,
    grace_seconds: Annotated[float, typer.Option(
        "--grace-seconds", min=0,
        help="On SIGTERM, wait this long for runs in flight, then hand them over")] = 30.0,
    max_attempts: Annotated[int, typer.Option(
        "--max-attempts", min=1, help="Fail a run whose record was claimed more often")] = 5,
) -> None:
    """Run a standalone queue worker against the configured database.

    SIGTERM/SIGINT stop claiming; runs in flight get ``--grace-seconds`` to finish, then
    their leases are released so another worker continues them at once."""
    import signal

    from kneo.platform import create_platform
    from kneo.settings import Settings
    from kneo.worker import Worker

    settings = Settings.from_env()
    manager = create_platform(settings=settings)
    runner = Worker(manager, settings=settings, name="worker", concurrency=concurrency,
                    max_attempts=max_attempts)
    try:
        if once:
            count = runner.run_until_empty()
            typer.echo(f"processed {count} queued run(s)")
            return
        stopped = threading.Event()

        def _stop(signum: int, _frame: object) -> None:
            stopped.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        runner.start()
        typer.echo(f"worker {runner.owner} running with concurrency {concurrency}", err=True)
        while not stopped.wait(1.0):
            if not runner.is_alive():
                break
        handed = runner.stop(timeout=grace_seconds)
        note = f"; handed over {len(handed)} run(s) in flight" if handed else ""
        typer.echo(f"worker stopped after {runner.processed} run(s){note}", err=True)
    finally:
        close = getattr(manager, "close", None)
        if callable(close):
            close()


def register_worker(root: typer.Typer) -> None:
    """Adds the ``worker`` command to the root app."""
    root.command("worker")(worker)
