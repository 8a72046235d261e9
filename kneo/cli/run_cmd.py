"""``kneo run SPEC --input TEXT``: run a spec locally (or through a service) to its end or pause.

``kneo run --bundle`` imports the local registry where it runs (:mod:`kneo.platform.bundles`,
+0.30 s with SQLAlchemy): through a service it never does.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import typer

from kneo.cli.client import LocalClient
from kneo.cli.interactive import Terminal, answer_pauses
from kneo.cli.output import ClientOptions, Output, console, options
from kneo.cli.platform_client import PlatformClient
from kneo.errors import InvalidRequest
from kneo.redaction import redact_text
from kneo.spec.suggest import one_of

if TYPE_CHECKING:
    from kneo.platform.events import RunEvent

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


#: ``kneo human resume``'s flag for each decision, in the order a hint prefers them.
_DECISION_FLAGS = {
    "approved": "--approve",
    "selected": "--select OPTION",
    "provided": "--provide TEXT",
    "edited": "--edit TEXT",
    "rejected": "--reject",
}


def resume_hint(request: Mapping[str, Any]) -> str:
    """The decision flags a paused request accepts, the likeliest first: a question, input or
    route pause refuses ``--approve``, so the hint names what it takes (``--provide TEXT``,
    ``--provide JSON`` under an input schema, ``--select`` with the options)."""
    accepted = [str(d) for d in request.get("decisions") or ("approved", "rejected")]
    options = [str(o) for o in request.get("options") or ()]
    flags = [_DECISION_FLAGS[d] for d in _DECISION_FLAGS if d in accepted]
    flags += [f"(decision {d})" for d in accepted if d not in _DECISION_FLAGS]
    flags = [
        "--provide JSON"
        if flag == "--provide TEXT" and request.get("input_schema")
        else f"--select {options[0]}"
        if flag == "--select OPTION" and options
        else flag
        for flag in flags
    ]
    notes = [f"or {', '.join(flags[1:])}"] if len(flags) > 1 else []
    if "selected" in accepted and options:
        notes.append(f"options: {', '.join(options)}")
    return flags[0] + (f"  ({'; '.join(notes)})" if notes else "")


def render_run_response(data: dict[str, Any], out: Output) -> None:
    """Print a run response: JSON, or the output (stdout) and a status line (stderr)."""
    if out.printed_json(data):
        return

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
        if request.get("kind") == "child_run":  # its child's outcome decides it
            screen.print(f"follow with: kneo runs get {data['run_id']}", markup=False)
        else:
            screen.print(
                f"resume with: kneo human resume {data.get('continuation_id')} "
                f"--request-id {request.get('request_id')} {resume_hint(request)}",
                markup=False,
            )
    elif status in ("running", "queued"):
        err.print(f"[yellow]{status}[/yellow] run_id={data['run_id']}")
        err.print(f"follow with: kneo runs get {data['run_id']}", markup=False)
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


def _run_bundle(
    client: PlatformClient, bundle: str, env: str, input_text: str, target: str
) -> dict[str, Any]:
    """``kneo run --bundle``: the service's ``POST /v1/runs`` or the local registry."""
    if not isinstance(client, LocalClient):  # the HTTP client
        body = {"bundle": bundle, "environment": env, "input": input_text, "target": target}
        return dict(client.request("POST", "/v1/runs", json=body))
    from kneo.platform.bundles import run_bundle

    result = run_bundle(
        client.manager,
        bundle=bundle,
        environment=env,
        input_text=input_text,
        target=target,
        actor=client.actor,
    )
    return dict(result.to_dict())


def _step_line(event: RunEvent) -> str | None:
    """One progress line for a run event (``None``: not worth a line)."""
    data, step = event.data, event.step_id
    if event.type == "run.paused" and not step:
        step = next(
            (r.get("step_id") for r in data.get("requests") or [] if r.get("step_id")), None
        )
    lines = {
        "step.started": f"  step {step} ({data.get('kind')}) ...",
        "step.completed": f"  step {step} done",
        "step.failed": f"  step {step} failed",
        "step.skipped": f"  step {step} skipped",
        "step.retry": f"  step {step} retrying",
        "tool.completed": f"    tool {data.get('tool_name')}: {data.get('status')}",
        "run.paused": f"  paused at {step or 'a human request'}",
    }
    return lines.get(event.type)


def run_following(client: LocalClient, **kwargs: Any) -> dict[str, Any]:
    """A local run with its steps shown on stderr as they happen: the run executes on a
    worker thread while this one follows its durable events (the same trace ``kneo runs
    trace`` reads), until it finishes or pauses."""
    import queue

    created: queue.Queue[str | None] = queue.Queue()
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["data"] = client.run(**kwargs, on_created=created.put)
        except BaseException as exc:  # handed to the calling thread below
            outcome["error"] = exc
        finally:
            created.put(None)

    worker = threading.Thread(target=work, name="kneo-run", daemon=True)
    worker.start()
    run_id = created.get()
    if run_id is not None:
        err = console(stderr=True)
        err.print(f"run {run_id}", style="dim", markup=False, highlight=False)
        for event in client.reader.events(run_id, follow=True, poll_seconds=0.1):
            line = _step_line(event)
            if line:
                err.print(line, style="dim", markup=False, highlight=False)
    worker.join()
    if "error" in outcome:
        raise outcome["error"]
    return dict(outcome["data"])


def _run_spec(client: PlatformClient, opts: ClientOptions, **kwargs: Any) -> dict[str, Any]:
    """The run, with step progress on a terminal (local runs) or a spinner (a service)."""
    if isinstance(client, LocalClient) and not opts.structured and sys.stderr.isatty():
        return run_following(client, **kwargs)
    with progress(f"running {kwargs['spec_path']}", enabled=not opts.structured):
        return dict(client.run(**kwargs))


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
        interactive: bool = typer.Option(
            False,
            "--interactive",
            help="Answer each pause here in the terminal and go on; the pause stays durable "
            "(stop answering and resume it later from anywhere)",
        ),
        skill: list[str] = typer.Option(
            [], "--skill", help="Switch a declared skill on for the run's agents (repeatable)"
        ),
        without_skill: list[str] = typer.Option(
            [], "--without-skill", help="Switch a skill off for the run's agents (repeatable)"
        ),
    ) -> None:
        one_of(target, ("agent", "workflow"), "target")
        if (spec_path is None) == (bundle is None):
            raise InvalidRequest(
                "give exactly one of SPEC_PATH or --bundle NAME", field="spec_path"
            )
        if bundle is not None and not env:
            raise InvalidRequest("--bundle needs --env ENV", field="env")
        skills = {"add": skill, "remove": without_skill} if skill or without_skill else None
        if bundle is not None and skills is not None:
            raise InvalidRequest(
                "a bundle runs as signed: --skill and --without-skill need a SPEC_PATH",
                field="skills",
            )
        client = opts.client(environment=env)
        if bundle is not None:
            with progress(f"running {bundle}", enabled=not opts.structured):
                data = _run_bundle(client, bundle, env or "", input_text, target)
        else:
            data = _run_spec(
                client,
                opts,
                spec_path=spec_path or "",
                input_text=input_text,
                target=target,
                environment=env,
                skills=skills,
            )
        if interactive:
            data = answer_pauses(client, data, Terminal())
        render_run_response(data, opts)
        exit_for(data)
