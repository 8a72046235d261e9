"""``kneo runs``: inspect, cancel and continue runs (Rich tables, or ``--json``)."""

from __future__ import annotations

import json
from typing import Any

import typer

from kneo.cli.output import (
    JsonOpt,
    ProfileOpt,
    ServiceUrlOpt,
    console,
    open_client,
    print_json,
    print_table,
)

app = typer.Typer(no_args_is_help=True, help="Inspect runs")


def _short(value: Any, limit: int = 80) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@app.command("get")
def get(
    run_id: str,
    as_json: JsonOpt = False,
    service_url: ServiceUrlOpt = None,
    profile: ProfileOpt = None,
) -> None:
    """Show a run's status, position and outcome."""
    data = open_client(as_json, service_url, profile).get_run(run_id)
    if as_json:
        print_json(data)
        return
    keys = [
        "run_id",
        "status",
        "workflow_name",
        "workflow_kind",
        "current_step_index",
        "current_node_id",
        "visited_steps",
        "trace_event_count",
        "continuation_id",
        "created_at",
        "finished_at",
        "output_text",
        "error",
    ]
    print_table(
        f"run {run_id}",
        ["field", "value"],
        [[k, _short(data.get(k), 200)] for k in keys if data.get(k) not in (None, [], "")],
    )


@app.command("list")
def list_runs(
    status: str | None = typer.Option(None, "--status"),
    limit: int = typer.Option(20, "--limit"),
    as_json: JsonOpt = False,
    service_url: ServiceUrlOpt = None,
    profile: ProfileOpt = None,
) -> None:
    """List recent runs, newest first."""
    data = open_client(as_json, service_url, profile).list_runs(status=status, limit=limit)
    if as_json:
        print_json(data)
        return
    print_table(
        f"runs ({data['count']} of {data['total']})",
        ["run_id", "status", "workflow", "kind", "created_at"],
        [
            [r["run_id"], r["status"], r["workflow_name"], r["workflow_kind"], r["created_at"]]
            for r in data["runs"]
        ],
    )


@app.command("trace")
def trace(
    run_id: str,
    as_json: JsonOpt = False,
    service_url: ServiceUrlOpt = None,
    profile: ProfileOpt = None,
) -> None:
    """A run's trace events in order (tool arguments and results redacted)."""
    data = open_client(as_json, service_url, profile).trace(run_id)
    if as_json:
        print_json(data)
        return
    print_table(
        f"trace {run_id} ({data['total']} events)",
        ["#", "event", "step", "details"],
        [
            [
                e["sequence"],
                e["event_type"],
                e.get("step_id"),
                _short({k: v for k, v in (e.get("payload") or {}).items() if k != "at"}),
            ]
            for e in data["events"]
        ],
    )


@app.command("checkpoints")
def checkpoints(
    run_id: str,
    as_json: JsonOpt = False,
    service_url: ServiceUrlOpt = None,
    profile: ProfileOpt = None,
) -> None:
    """A run's checkpoints (one per step boundary)."""
    data = open_client(as_json, service_url, profile).checkpoints(run_id)
    if as_json:
        print_json(data)
        return
    print_table(
        f"checkpoints {run_id} ({data['total']})",
        ["#", "type", "step", "status", "bytes", "created_at"],
        [
            [
                c["sequence"],
                c["type"],
                c.get("step_id"),
                c.get("status"),
                c.get("size_bytes"),
                c["created_at"],
            ]
            for c in data["checkpoints"]
        ],
    )


@app.command("replay")
def replay(
    run_id: str,
    as_json: JsonOpt = False,
    service_url: ServiceUrlOpt = None,
    profile: ProfileOpt = None,
) -> None:
    """The run's timeline and replay context (completed, failed and next steps)."""
    data = open_client(as_json, service_url, profile).replay(run_id)
    if as_json:
        print_json(data)
        return
    print_table(
        f"replay {run_id} ({data['status']})",
        ["#", "type", "step", "status", "note"],
        [
            [
                t["sequence"],
                t["type"],
                t.get("step_id"),
                t.get("status"),
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
def checkpoint_diff(
    run_id: str,
    from_sequence: int | None = typer.Option(None, "--from-sequence"),
    to_sequence: int | None = typer.Option(None, "--to-sequence"),
    as_json: JsonOpt = False,
    service_url: ServiceUrlOpt = None,
    profile: ProfileOpt = None,
) -> None:
    """Added, removed and changed paths between two checkpoints (default: the latest two)."""
    data = open_client(as_json, service_url, profile).checkpoint_diff(
        run_id, from_sequence=from_sequence, to_sequence=to_sequence
    )
    if as_json:
        print_json(data)
        return
    rows: list[list[Any]] = []
    rows += [["+", path, "", _short(v)] for path, v in data["added"].items()]
    rows += [["-", path, _short(v), ""] for path, v in data["removed"].items()]
    rows += [["~", path, _short(v["from"]), _short(v["to"])] for path, v in data["changed"].items()]
    print_table(
        f"checkpoint diff {run_id} #{data['from_sequence']} → #{data['to_sequence']}",
        ["", "path", "from", "to"],
        rows,
    )


@app.command("cancel")
def cancel(
    run_id: str,
    as_json: JsonOpt = False,
    service_url: ServiceUrlOpt = None,
    profile: ProfileOpt = None,
) -> None:
    """Cancel a queued, running or paused run (cooperative: a step in flight finishes)."""
    data = open_client(as_json, service_url, profile).cancel(run_id)
    if as_json:
        print_json(data)
        return
    console(stderr=True).print(f"[yellow]{data['status']}[/yellow] run_id={data['run_id']}")


@app.command("recovery")
def recovery(
    run_id: str,
    as_json: JsonOpt = False,
    service_url: ServiceUrlOpt = None,
    profile: ProfileOpt = None,
) -> None:
    """Whether an interrupted run can continue, and from where."""
    data = open_client(as_json, service_url, profile).recovery(run_id)
    if as_json:
        print_json(data)
        return
    _print_context(data)


@app.command("continue")
def continue_run(
    run_id: str,
    as_json: JsonOpt = False,
    service_url: ServiceUrlOpt = None,
    profile: ProfileOpt = None,
) -> None:
    """Continue an interrupted (or failed) run from its last completed step boundary."""
    from kneo.cli.run_cmd import exit_for, progress, render_run_response

    client = open_client(as_json, service_url, profile)
    with progress(f"continuing {run_id}", enabled=not as_json):
        data = client.continue_run(run_id)
    render_run_response(data, as_json=as_json)
    exit_for(data)
