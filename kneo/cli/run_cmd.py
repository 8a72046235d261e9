"""``kneo run SPEC --input TEXT``: run a spec locally (or through a service) to its end or pause."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer

from kneo.cli.output import ClientOptions, Output, console, options

#: How long a command may run silently before a spinner appears on stderr.
SPINNER_AFTER_SECONDS = 0.7


@contextmanager
def progress(message: str, *, enabled: bool = True) -> Iterator[None]:
    """A spinner on stderr once the work takes longer than a moment (TTYs only)."""
    if not enabled or not sys.stderr.isatty():
        yield
        return
    done = threading.Event()
    status_box: dict[str, Any] = {}

    def show() -> None:
        if not done.wait(SPINNER_AFTER_SECONDS):
            status = console(stderr=True).status(message)
            status.start()
            status_box["status"] = status

    timer = threading.Thread(target=show, daemon=True)
    timer.start()
    try:
        yield
    finally:
        done.set()
        timer.join()
        if "status" in status_box:
            status_box["status"].stop()


def render_run_response(data: dict[str, Any], out: Output) -> None:
    """Print a run response: JSON, or the output (stdout) and a status line (stderr)."""
    if out.printed_json(data):
        return
    from kneo.redaction import redact_text

    err = console(stderr=True)
    status = data.get("status")
    meta = data.get("metadata") or {}
    if status == "succeeded":
        shown = data.get("output_text") or ""
        output = redact_text(shown, show_personal=True)  # as --json prints it
        sys.stdout.write(output + "\n")
        err.print(f"[green]succeeded[/green] run_id={data['run_id']}")
    elif status == "paused":
        request = meta.get("pending_human_request") or {}
        err.print(f"[yellow]paused[/yellow] run_id={data['run_id']}")
        screen = console()
        screen.print(f"continuation_id: {data.get('continuation_id')}")
        screen.print(f"request_id:      {request.get('request_id')}")
        screen.print(f"prompt:          {request.get('prompt')}")
        screen.print(
            f"resume with: kneo human resume {data.get('continuation_id')} "
            f"--request-id {request.get('request_id')} --approve"
        )
    elif meta.get("workflow_kind") == "promotion":
        tally = meta.get("promotion") or {}
        err.print(
            f"promotion {status}: {tally.get('bundle')}@{tally.get('environment')} "
            f"{tally.get('approvals')}/{tally.get('required')} approval(s), "
            f"decided by {meta.get('approver')}",
            markup=False,
        )
    else:
        error = meta.get("error") or {}
        detail = f" [{error.get('code')}] {error.get('message')}" if error else ""
        from rich.markup import escape

        err.print(f"[red]{status}[/red] run_id={data['run_id']}{escape(detail)}")
        if error.get("hint"):
            err.print(f"hint: {error['hint']}", markup=False)


def exit_for(data: dict[str, Any]) -> None:
    """Non-zero exit for runs that ended badly, so scripts can branch on ``$?``."""
    if (data.get("metadata") or {}).get("workflow_kind") == "promotion":
        return  # a recorded promotion decision (approved, rejected or awaiting more)
    if data.get("status") not in ("succeeded", "paused", "running", "queued"):
        raise typer.Exit(1)


def _run_bundle(client: Any, bundle: str, env: str, input_text: str, target: str) -> dict[str, Any]:
    """``kneo run --bundle``: the service's ``POST /v1/runs`` or the local registry."""
    if hasattr(client, "create_run"):  # the HTTP client
        return dict(
            client.create_run(
                {"bundle": bundle, "environment": env, "input": input_text, "target": target}
            )
        )
    from kneo.platform.bundles import run_bundle

    result = run_bundle(
        client.manager,
        bundle=bundle,
        environment=env,
        input_text=input_text,
        target=target,
        actor=getattr(client, "_actor", None),
    )
    return dict(result.to_dict())


def register(app: typer.Typer) -> None:
    """Adds the ``run`` command to the root app."""

    @app.command("run", help="Run agent/workflow specs")
    @options
    def run(
        spec_path: str | None = typer.Argument(
            None, metavar="[SPEC_PATH]", help="Path to Kneo YAML spec"
        ),
        input_text: str = typer.Option(..., "--input", "-i", help="Input text"),
        target: str = typer.Option("workflow", "--target", help="agent or workflow"),
        env: str | None = typer.Option(None, "--env", help="Environment overlay and policy"),
        opts: ClientOptions = ClientOptions(),
        bundle: str | None = typer.Option(
            None, "--bundle", help="Run the active registry revision of this bundle (--env)"
        ),
    ) -> None:
        from kneo.errors import InvalidRequest

        if target not in ("agent", "workflow"):
            raise InvalidRequest(
                f"--target must be 'agent' or 'workflow', got {target!r}", field="target"
            )
        if (spec_path is None) == (bundle is None):
            raise InvalidRequest(
                "give exactly one of SPEC_PATH or --bundle NAME", field="spec_path"
            )
        if bundle is not None and not env:
            raise InvalidRequest("--bundle needs --env ENV", field="env")
        client = opts.client(environment=env)
        with progress(f"running {spec_path or bundle}", enabled=not opts.structured):
            if bundle is not None:
                data = _run_bundle(client, bundle, env or "", input_text, target)
            else:
                data = client.run(
                    spec_path=spec_path or "", input_text=input_text, target=target, environment=env
                )
        render_run_response(data, opts)
        exit_for(data)
