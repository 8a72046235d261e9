"""``kneo human``: list, inspect and resume human-in-the-loop tasks.

A local decision is recorded under ``--actor`` or the OS user
(:meth:`kneo.cli.client.LocalClient.decide_as`); a service records its caller.
"""

from __future__ import annotations

from typing import Any

import typer

from kneo.cli.client import LocalClient, get_client
from kneo.cli.interactive import Terminal, answer_pauses
from kneo.cli.output import (
    ClientOptions,
    Output,
    cells,
    console,
    next_page,
    options,
    print_table,
)
from kneo.cli.platform_client import PlatformClient
from kneo.cli.run_cmd import exit_for, progress, render_run_response
from kneo.engine.human import Decision
from kneo.errors import ErrorCode, InvalidDecision, InvalidRequest, RequestAlreadyResolved

app = typer.Typer(no_args_is_help=True, help="Manage human-in-the-loop tasks")


@app.command("list")
@options
def list_tasks(
    run_id: str | None = typer.Option(None, "--run-id", help="Only this run's tasks"),
    workflow_kind: str | None = typer.Option(None, "--workflow-kind"),
    assignee: str | None = typer.Option(None, "--assignee"),
    kind: str | None = typer.Option(
        None,
        "--kind",
        help="approval, confirmation, input, review, route, tool_approval, question or error",
    ),
    escalated: bool | None = typer.Option(None, "--escalated/--not-escalated"),
    older_than: float | None = typer.Option(None, "--older-than", help="Seconds since created"),
    newest: bool = typer.Option(False, "--newest", help="Newest first (default oldest)"),
    counts: bool = typer.Option(
        False, "--counts", help="Pending requests per assignee (and the total)"
    ),
    limit: int = typer.Option(100, "--limit"),
    cursor: str | None = typer.Option(
        None, "--cursor", help="The page after this one: a listing's next_cursor"
    ),
    opts: ClientOptions = ClientOptions(),
) -> None:
    """Pending human tasks, oldest first, filtered by run, kind, assignee, escalation, age."""

    filters = {
        "workflow_kind": workflow_kind,
        "assignee": assignee,
        "kind": kind,
        "escalated": escalated,
        "older_than_seconds": older_than,
        "sort_order": "desc" if newest else "asc",
        "cursor": cursor,
        "include": "counts" if counts else None,
    }
    data = opts.client().list_human_tasks(
        run_id=run_id, limit=limit, **{k: v for k, v in filters.items() if v is not None}
    )
    if opts.printed_json(data):
        return
    if counts:
        capped = set(data.get("counts_capped") or ())  # counted up to the cap, then "N+"
        print_table(
            "pending requests per assignee",
            ["assignee", "pending"],
            [
                [a, f"{n}+" if a in capped else n]
                for a, n in sorted((data.get("counts_by_assignee") or {}).items())
            ],
        )
        return
    rows = []
    for task in data["tasks"]:
        for request in task["requests"]:
            rows.append(
                [
                    task["continuation_id"],
                    *cells(request, "request_id", "kind", "assignee", "prompt", "expires_at"),
                    "yes" if request.get("escalated_at") else "",
                ]
            )
    print_table(
        f"human tasks ({data['count']} shown{next_page(data)})",
        ["continuation", "request", "kind", "assignee", "prompt", "expires_at", "escalated"],
        rows,
        optional=("assignee", "expires_at", "escalated"),
    )


@app.command("replay")
@options
def replay(
    run_id: str,
    reuse: str = typer.Option("questions", "--reuse", help="questions | all"),
    out: Output = Output(),
) -> None:
    """Run RUN_ID again as a new run, reusing its recorded answers (local mode)."""
    client = get_client()
    if not isinstance(client, LocalClient):
        raise InvalidRequest(
            "kneo human replay runs locally; unset the service profile",
            code=ErrorCode.service_mode_unavailable,
        )
    data = client.replay_run(run_id, reuse=reuse)
    render_run_response(data, out)
    exit_for(data)


@app.command("get")
@options
def get(continuation_id: str, opts: ClientOptions = ClientOptions()) -> None:
    """One task with all its requests and their status."""

    data = opts.client().get_human_task(continuation_id)
    if opts.printed_json(data):
        return
    console().print(
        f"continuation {data['continuation_id']}  run {data['run_id']}  status {data['status']}"
    )
    print_table(
        "requests",
        ["request", "status", "kind", "prompt", "assignee", "accepts", "options"],
        [
            [
                *cells(r, "request_id", "status", "kind", "prompt", "assignee"),
                ", ".join(r.get("decisions") or []),
                ", ".join(r.get("options") or []),
            ]
            for r in data["requests"]
        ],
    )


def _chosen(
    approve: bool, reject: bool, edit: str | None, provide: str | None, select: str | None
) -> list[str]:
    """The decisions whose flags are set, named as they are recorded."""
    flags = (
        ("approved", approve),
        ("rejected", reject),
        ("edited", edit is not None),
        ("provided", provide is not None),
        ("selected", select is not None),
    )
    return [name for name, on in flags if on]


def _one_decision(
    chosen: list[str], request_ids: list[str] | None, *, interactive: bool
) -> str | None:
    """The one decision the flags give (``None``: answered interactively instead); an error
    for none or several, or for a decision without the requests it decides."""
    if len(chosen) > 1 or (not chosen and not interactive):
        raise InvalidDecision(
            "give exactly one of --approve, --reject, --edit TEXT, --provide TEXT, --select "
            "OPTION (or --interactive)"
        )
    if chosen and not request_ids:
        raise InvalidDecision("a decision needs --request-id REQUEST_ID", field="request_id")
    return chosen[0] if chosen else None


def _pending(client: PlatformClient, continuation_id: str) -> dict[str, Any]:
    """A paused run's response for a continuation, to answer interactively from; an error
    when nothing in it is pending."""
    task = client.get_human_task(continuation_id)
    pending = [r for r in task.get("requests") or [] if r.get("status") == "pending"]
    if not pending:
        raise RequestAlreadyResolved(
            f"continuation {continuation_id} has no pending request (status {task.get('status')})"
        )
    return {
        "run_id": task.get("run_id"),
        "status": "paused",
        "continuation_id": continuation_id,
        "metadata": {"pending_human_request": pending[0]},
    }


@app.command("resume")
@options
def resume(
    continuation_id: str,
    request_id: list[str] | None = typer.Option(
        None,
        "--request-id",
        help="The request to decide; repeat it to decide several requests of the task "
        "together with the same decision (all or none are recorded); optional with "
        "--interactive",
    ),
    approve: bool = typer.Option(False, "--approve"),
    reject: bool = typer.Option(False, "--reject"),
    edit: str | None = typer.Option(None, "--edit"),
    provide: str | None = typer.Option(None, "--provide"),
    select: str | None = typer.Option(None, "--select"),
    comment: str | None = typer.Option(
        None, "--comment", help="Note for --approve/--reject (reject feedback)"
    ),
    idempotency_key: str | None = typer.Option(
        None, "--idempotency-key", help="Same key + same decision replays"
    ),
    actor: str | None = typer.Option(
        None,
        "--actor",
        help="Who decides, in local mode (default: the OS user); a service "
        "records its API key's name",
    ),
    interactive: bool = typer.Option(
        False,
        "--interactive",
        help="Answer the pending requests here in the terminal (and every later pause of "
        "the run); a decision flag answers the first one",
    ),
    opts: ClientOptions = ClientOptions(),
) -> None:
    """Resume a paused run, or decide a promotion task, with exactly one decision (for
    every request given), or, with --interactive, the answers you type."""
    decision = _one_decision(
        _chosen(approve, reject, edit, provide, select), request_id, interactive=interactive
    )
    client = opts.client()
    if isinstance(client, LocalClient):
        client.decide_as(actor)
    if decision is not None:
        content = {"edited": edit, "provided": provide}.get(decision, comment)
        with progress(f"resuming {continuation_id}", enabled=not opts.structured):
            data = _decide(
                client,
                continuation_id,
                request_id or [],
                decision,
                content,
                select,
                idempotency_key,
            )
    else:
        data = _pending(client, continuation_id)
    if interactive:
        data = answer_pauses(client, data, Terminal())
    render_run_response(data, opts)
    exit_for(data)


def _decide(
    client: PlatformClient,
    continuation_id: str,
    request_ids: list[str],
    decision: str,
    content: str | None,
    selected_option: str | None,
    idempotency_key: str | None,
) -> dict[str, Any]:
    """One request: ``resume``; several: ``decide``, all recorded together or none."""
    decisions = [Decision(rid, decision, content, selected_option) for rid in request_ids]
    if len(decisions) == 1:
        return dict(client.resume(continuation_id, decisions[0], idempotency_key=idempotency_key))
    return dict(client.decide(continuation_id, decisions, idempotency_key=idempotency_key))
