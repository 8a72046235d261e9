"""``kneo audit``: the audit log — who started, cancelled, decided or changed what, when."""

from __future__ import annotations

from typing import Any

import typer

from kneo.cli.output import ClientOptions, cells, console, next_page, options, print_table

app = typer.Typer(no_args_is_help=True, help="Read the audit log")


def _summary(payload: dict[str, Any]) -> str:
    """The payload's fields as ``key=value`` words, for a table cell."""
    return " ".join(f"{k}={v}" for k, v in payload.items() if v not in (None, "", [], {}))


@app.command("list")
@options
def list_events(
    event_type: str | None = typer.Option(
        None, "--event-type", help="Only this type, e.g. human.decision or run.created"
    ),
    run_id: str | None = typer.Option(None, "--run-id", help="Only this run's events"),
    continuation_id: str | None = typer.Option(None, "--continuation-id"),
    limit: int = typer.Option(50, "--limit"),
    cursor: str | None = typer.Option(
        None, "--cursor", help="The page after this one: a listing's next_cursor"
    ),
    opts: ClientOptions = ClientOptions(),
) -> None:
    """Audit events, newest first (redacted when written: never a secret or tool arguments)."""
    data = opts.client().list_audit(
        event_type=event_type,
        run_id=run_id,
        continuation_id=continuation_id,
        limit=limit,
        cursor=cursor,
    )
    if opts.printed_json(data):
        return
    print_table(
        f"audit events ({data['count']} shown{next_page(data)})",
        ["id", "event", "actor", "run", "created_at", "details"],
        [
            [
                *cells(e, "id", "event_type", "actor", "run_id", "created_at"),
                _summary(e.get("payload") or {}),
            ]
            for e in data["events"]
        ],
        optional=("created_at", "run"),
    )


@app.command("get")
@options
def get(event_id: str, opts: ClientOptions = ClientOptions()) -> None:
    """One audit event with its whole (redacted) payload."""
    data = opts.client().get_audit(event_id)
    if opts.printed_json(data):
        return
    screen = console()
    for key in ("id", "event_type", "actor", "run_id", "continuation_id", "created_at"):
        if data.get(key):
            screen.print(f"{key + ':':<17} {data[key]}", markup=False, highlight=False)
    for key, value in (data.get("payload") or {}).items():
        if value is None:
            continue
        screen.print(f"  {key + ':':<15} {value}", markup=False, highlight=False)
