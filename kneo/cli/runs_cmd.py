"""``kneo runs``: inspect, cancel and continue runs (Rich tables, or ``--json``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import typer

from kneo.cli.output import ClientOptions, cells, console, next_page, options, print_table
from kneo.cli.run_cmd import exit_for, progress, render_run_response
from kneo.errors import InvalidRequest

app = typer.Typer(no_args_is_help=True, help="Inspect runs")


def _short(value: object, limit: int = 80) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@app.command("get")
@options
def get(run_id: str, opts: ClientOptions = ClientOptions()) -> None:
    """Show a run's status, position and outcome."""
    data = opts.client().get_run(run_id)
    if opts.printed_json(data):
        return
    keys = [
        "run_id",
        "status",
        "workflow_name",
        "workflow_kind",
        "current_step_index",
        "current_node_id",
        "parent_run_id",
        "visited_steps",
        "trace_event_count",
        "continuation_id",
        "created_at",
        "finished_at",
        "output_text",
        "error",
    ]
    rows = [[k, _short(data.get(k), 200)] for k in keys if data.get(k) not in (None, [], "")]
    pinned = (data.get("metadata") or {}).get("code") or {}
    rows += [
        [f"code {f['module']}", f"{f['path']} sha256:{f['sha256'][:12]}"]
        for f in pinned.get("files") or []
    ]
    rows += [
        [f"child {c.get('step_id')}", f"{c.get('run_id') or '(not started)'} {c.get('status')}"]
        for c in data.get("children") or []
    ]
    print_table(f"run {run_id}", ["field", "value"], rows + _usage_rows(data.get("usage")))


def _usage_rows(usage: dict[str, Any] | None) -> list[list[Any]]:
    """``usage`` in words: the run's total, then each step's when several steps spent."""
    if not usage or not usage.get("model_calls"):
        return []
    steps = usage.get("steps") or []
    rows = [["usage", _spent(usage)]]
    if len(steps) > 1:
        rows += [[f"usage {s['step_id']}", _spent(s)] for s in steps]
    if usage.get("currency") or usage.get("cost"):  # a price table priced some call
        rows.append(["cost", _cost(usage)])
    return rows


def _spent(usage: dict[str, Any]) -> str:
    return (
        f"{usage['model_calls']} model calls, {usage['tool_calls']} tool calls, "
        f"{usage['input_tokens']} input + {usage['output_tokens']} output tokens"
    )


def _cost(usage: dict[str, Any]) -> str:
    """The run's cost in its currency, or why it is unknown (never 0 for unknown)."""
    cost = usage.get("cost")
    if cost is None:
        return f"unknown ({usage.get('unpriced_calls') or 0} model calls not priced)"
    return f"{cost:.9f}".rstrip("0").rstrip(".") + f" {usage.get('currency') or ''}".rstrip()


@app.command("list")
@options
def list_runs(
    status: str | None = typer.Option(None, "--status"),
    q: str | None = typer.Option(
        None, "--q", "-q", help="Words of the run's output or error message (whole, every one)"
    ),
    has_error: bool | None = typer.Option(
        None, "--has-error/--no-error", help="Only runs that recorded an error, or none"
    ),
    created_after: str | None = typer.Option(
        None, "--created-after", help="ISO 8601 time (UTC when it has no offset)"
    ),
    created_before: str | None = typer.Option(
        None, "--created-before", help="ISO 8601 time (UTC when it has no offset)"
    ),
    workflow_name: str | None = typer.Option(None, "--workflow-name"),
    workflow_kind: str | None = typer.Option(
        None, "--workflow-kind", help="sequential, graph, ..."
    ),
    session_id: str | None = typer.Option(
        None, "--session", help="Runs of this session (POST /v1/runs session_id)"
    ),
    sort_by: str | None = typer.Option(
        None, "--sort-by", help="created_at (default), updated_at or status"
    ),
    limit: int = typer.Option(20, "--limit"),
    cursor: str | None = typer.Option(
        None, "--cursor", help="The page after this one: a listing's next_cursor"
    ),
    opts: ClientOptions = ClientOptions(),
) -> None:
    """List runs, newest first: by status, words, error, creation time, workflow and
    session (``--cursor``: the next page)."""
    filters = {
        "q": q,
        "has_error": has_error,
        "created_after": _time(created_after, "--created-after"),
        "created_before": _time(created_before, "--created-before"),
        "workflow_name": workflow_name,
        "workflow_kind": workflow_kind,
        "session_id": session_id,
        "sort_by": sort_by,
    }
    client = opts.client()
    data = client.list_runs(
        status=status,
        limit=limit,
        cursor=cursor,
        **{k: v for k, v in filters.items() if v is not None},
    )
    if opts.printed_json(data):
        return
    print_table(
        f"runs ({data['count']} shown{next_page(data)})",
        ["run_id", "status", "workflow", "kind", "session", "created_at"],
        [
            cells(
                r, "run_id", "status", "workflow_name", "workflow_kind", "session_id", "created_at"
            )
            for r in data["runs"]
        ],
        optional=("kind", "session", "created_at"),
    )


def _time(value: str | None, option: str) -> str | None:
    """An ISO 8601 time as the service takes it (a time without an offset is UTC); a
    malformed one is refused naming the option."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(
            f"{option}: {value!r} is not an ISO 8601 time (e.g. 2026-11-25T09:30:00Z)",
            field=option,
        ) from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).isoformat()


#: Trace payload fields with columns of their own (what people look for first); the rest of
#: the payload follows as ``key=value`` details.
_TRACE_LEADS = {"tool": ("tool_name",), "status": ("status", "decision", "outcome")}
#: Payload fields never worth a table cell (``-o json`` keeps them).
_TRACE_QUIET = frozenset({"at", "tool_call_id", "usage.prompt_tokens", "usage.completion_tokens"})


def _details(payload: dict[str, Any], shown: set[str], limit: int = 160) -> str:
    """The payload fields not shown elsewhere as ``key=value`` words (nested ones dotted)."""
    words: list[str] = []
    for key, value in payload.items():
        if key in shown or key in _TRACE_QUIET or value in (None, [], {}, ""):
            continue
        if isinstance(value, dict):
            nested = ((f"{key}.{k}", v) for k, v in value.items() if v is not None)
            words += [f"{k}={_short(v, 40)}" for k, v in nested if k not in _TRACE_QUIET]
        elif isinstance(value, list):
            words.append(f"{key}={','.join(_short(v, 40) for v in value)}")
        else:
            words.append(f"{key}={_short(value, 60)}")
    return _short(" ".join(words), limit)


def _trace_row(event: dict[str, Any]) -> list[Any]:
    payload = event.get("payload") or {}
    leads = {
        column: next((payload[k] for k in keys if payload.get(k) not in (None, "")), None)
        for column, keys in _TRACE_LEADS.items()
    }
    shown = {k for keys in _TRACE_LEADS.values() for k in keys if payload.get(k) in leads.values()}
    return [
        *cells(event, "sequence", "event_type", "step_id"),
        *leads.values(),
        _details(payload, shown),
    ]


@app.command("trace")
@options
def trace(run_id: str, opts: ClientOptions = ClientOptions()) -> None:
    """A run's trace events in order: tool, status, then the other details (tool arguments
    and results redacted)."""
    data = opts.client().trace(run_id)
    if opts.printed_json(data):
        return
    print_table(
        f"trace {run_id} ({data['total']} events)",
        ["#", "event", "step", *_TRACE_LEADS, "details"],
        [_trace_row(e) for e in data["events"]],
    )


@app.command("checkpoints")
@options
def checkpoints(run_id: str, opts: ClientOptions = ClientOptions()) -> None:
    """A run's checkpoints (one per step boundary)."""
    data = opts.client().checkpoints(run_id)
    if opts.printed_json(data):
        return
    print_table(
        f"checkpoints {run_id} ({data['total']})",
        ["#", "type", "step", "status", "bytes", "created_at"],
        [
            cells(c, "sequence", "type", "step_id", "status", "size_bytes", "created_at")
            for c in data["checkpoints"]
        ],
    )


@app.command("replay")
@options
def replay(run_id: str, opts: ClientOptions = ClientOptions()) -> None:
    """The run's timeline and replay context (completed, failed and next steps)."""
    data = opts.client().replay(run_id)
    if opts.printed_json(data):
        return
    print_table(
        f"replay {run_id} ({data['status']})",
        ["#", "type", "step", "status", "note"],
        [
            [
                *cells(t, "sequence", "type", "step_id", "status"),
                t.get("pending_human_request_id")
                or _short((t.get("error") or {}).get("message") or ""),
            ]
            for t in data["timeline"]
        ],
    )
    _print_context(data["replay_context"])


def _print_context(ctx: dict[str, Any]) -> None:
    out = console()
    out.print(f"completed steps: {', '.join(ctx['completed_steps']) or '-'}")
    out.print(f"failed step:     {ctx.get('failed_step') or '-'}")
    out.print(f"next step:       {ctx.get('next_step') or '-'}")
    out.print(
        f"can continue:    {ctx['can_continue']}"
        + (f" ({ctx['reason']})" if ctx.get("reason") else "")
    )


@app.command("checkpoint-diff")
@options
def checkpoint_diff(
    run_id: str,
    from_sequence: int | None = typer.Option(None, "--from-sequence"),
    to_sequence: int | None = typer.Option(None, "--to-sequence"),
    opts: ClientOptions = ClientOptions(),
) -> None:
    """Added, removed and changed paths between two checkpoints (default: the latest two)."""
    data = opts.client().checkpoint_diff(
        run_id, from_sequence=from_sequence, to_sequence=to_sequence
    )
    if opts.printed_json(data):
        return
    rows: list[list[Any]] = []
    rows += [["+", c["path"], "", _short(c["value"])] for c in data["added"]]
    rows += [["-", c["path"], _short(c["value"]), ""] for c in data["removed"]]
    rows += [["~", c["path"], _short(c["from"]), _short(c["to"])] for c in data["changed"]]
    print_table(
        f"checkpoint diff {run_id} #{data['from_sequence']} → #{data['to_sequence']}",
        ["", "path", "from", "to"],
        rows,
    )


@app.command("cancel")
@options
def cancel(run_id: str, opts: ClientOptions = ClientOptions()) -> None:
    """Cancel a queued, running or paused run (cooperative: a step in flight finishes)."""
    data = opts.client().cancel(run_id)
    if opts.printed_json(data):
        return
    console(stderr=True).print(f"[yellow]{data['status']}[/yellow] run_id={data['run_id']}")


@app.command("recovery")
@options
def recovery(run_id: str, opts: ClientOptions = ClientOptions()) -> None:
    """Whether an interrupted run can continue, and from where."""
    data = opts.client().recovery(run_id)
    if opts.printed_json(data):
        return
    _print_context(data)


@app.command("continue")
@options
def continue_run(
    run_id: str,
    to_revision: str | None = typer.Option(
        None,
        "--to-revision",
        help="Move the run to other code first (audited): a revision number of its bundle, "
        "'active', or 'current' (a spec run's files as they are now); a paused run stays "
        "paused on it",
    ),
    opts: ClientOptions = ClientOptions(),
) -> None:
    """Continue an interrupted (or failed) run from its last completed step boundary."""
    client = opts.client()
    target: int | str | None = to_revision
    if to_revision is not None and to_revision.isdigit():
        target = int(to_revision)
    elif to_revision not in (None, "active", "current"):
        raise typer.BadParameter(
            "a revision number, 'active' or 'current'", param_hint="--to-revision"
        )
    with progress(f"continuing {run_id}", enabled=not opts.structured):
        data = client.continue_run(run_id, to_revision=target)
    render_run_response(data, opts)
    exit_for(data)
