"""``kneo notifications``: the delivery rows (pending, sent, dead), retrying them, and a test
message to a configured receiver (docs/notifications.md).

Local commands import :mod:`kneo.platform.notifications` where they use it (+0.25 s with
SQLAlchemy): one sent to a service never does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from kneo.cli.client import LocalClient
from kneo.cli.output import ClientOptions, Output, cells, console, options, print_table
from kneo.errors import NotFound
from kneo.settings import Settings
from kneo.spec.project import ProjectContext

if TYPE_CHECKING:
    from kneo.cli.platform_client import PlatformClient
    from kneo.store import Store

app = typer.Typer(no_args_is_help=True, help="Notification deliveries and receivers")


def _local(client: PlatformClient) -> Store | None:
    """The local store, or ``None`` when ``client`` talks to a service."""
    return client.reader.store if isinstance(client, LocalClient) else None


@app.command("list")
@options
def list_notifications(
    status: str | None = typer.Option(None, "--status", help="pending, sending, sent or dead"),
    receiver: str | None = typer.Option(None, "--receiver"),
    event_type: str | None = typer.Option(None, "--event-type", help="e.g. human.requested"),
    limit: int = typer.Option(50, "--limit", min=1, max=1000),
    opts: ClientOptions = ClientOptions(),
) -> None:
    """Deliveries newest first, with counts per status (a service needs notifications:admin)."""
    from kneo.platform import NotificationQuery
    from kneo.platform.notifications import list_view

    client = opts.client()
    filters = {"status": status, "receiver": receiver, "event_type": event_type}
    store = _local(client)
    if store is not None:
        query = NotificationQuery(
            status=status, receiver=receiver, event_type=event_type, limit=limit
        )
        data = list_view(store, query)
    else:
        params = {k: v for k, v in filters.items() if v is not None}
        data = client.request("GET", "/v1/notifications", params={**params, "limit": limit})
    if opts.printed_json(data):
        return
    counts = ", ".join(f"{n} {state}" for state, n in data["counts"].items())
    print_table(
        f"notifications ({counts}; {data['unrouted_events']} events not yet routed)",
        ["id", "event", "receiver", "status", "attempts", "last_error", "created_at", "run"],
        [
            [
                *cells(
                    n,
                    "id",
                    "event_type",
                    "receiver",
                    "status",
                    "attempts",
                    "last_error",
                    "created_at",
                ),
                n["run_id"] or n["continuation_id"],
            ]
            for n in data["notifications"]
        ],
    )


@app.command("retry")
@options
def retry(
    ids: list[int] = typer.Argument(None, help="Delivery ids (default: every dead one)"),
    opts: ClientOptions = ClientOptions(),
) -> None:
    """Make deliveries due now with a fresh attempt budget: IDS, or every dead one."""
    client = opts.client()
    store = _local(client)
    chosen = list(ids) if ids else None
    if store is not None:
        retried = store.notifications.retry_notifications(chosen)
        with store.transaction() as tx:
            tx.add_audit(
                "notifications.retried",
                actor="cli",
                payload={"ids": chosen, "status": None if chosen else "dead", "count": retried},
            )
        data = {"retried": retried}
    else:
        body = {"ids": chosen} if chosen else {"status": "dead"}
        data = client.request("POST", "/v1/notifications/retry", json=body)
    if opts.printed_json(data):
        return
    console().print(f"{data['retried']} deliveries due again")


@app.command("check")
@options
def check(out: Output = Output()) -> None:
    """Check this machine's receivers against its keys and role map: each person a receiver
    sends a personal link or Slack buttons to (the people directory) must be able to decide
    with them; exit 1 naming each one who cannot, and why."""
    from kneo.platform.notifications import load_receivers
    from kneo.platform.recipients import load_people
    from kneo.service.auth import Authenticator
    from kneo.service.deciders import reached, undecided

    settings = Settings.from_env()
    project = ProjectContext.discover(settings=settings)
    receivers = load_receivers(settings, project.config)  # a variable unset: config_error
    people = load_people(settings, project.config)
    found = undecided(Authenticator.from_settings(settings), receivers, people)
    rows = [
        {"receiver": r.name, "type": r.type, "links": "personal" if r.personal else "channel",
         "people": len(reached(r, people))}
        for r in receivers
    ]  # fmt: skip
    if not out.printed_json({"receivers": rows, "undecided": found}):
        print_table(
            "Notification receivers",
            ["receiver", "type", "links", "people"],
            [[r["receiver"], r["type"], r["links"], r["people"]] for r in rows],
        )
        for row in found:
            console().print(f"{row['receiver']}: {row['person']} cannot decide: {row['reason']}")
        if not found:
            console().print("every person a receiver reaches can decide")
    if found:
        raise typer.Exit(1)


@app.command("test")
@options
def send_test(
    receiver: str = typer.Argument(..., help="A configured receiver's name"),
    out: Output = Output(),
) -> None:
    """POST a ``notification.test`` message to RECEIVER now, from this machine (its
    configuration and secrets: project config and environment)."""
    from kneo.platform.notifications import load_receivers
    from kneo.platform.notifications import send_test as post_test

    settings = Settings.from_env()
    project = ProjectContext.discover(settings=settings)
    receivers = {r.name: r for r in load_receivers(settings, project.config)}
    if receiver not in receivers:
        raise NotFound(
            f"no notification receiver named {receiver!r} "
            f"(configured: {', '.join(receivers) or 'none'})",
            resource="receiver",
            id=receiver,
        )
    status = post_test(receivers[receiver], settings)
    if out.printed_json({"receiver": receiver, "status_code": status}):
        return
    console().print(f"test notification delivered to {receiver} (HTTP {status})")
