"""``kneo rollout``: where a progressive delivery stands, and deciding it by hand
(docs/gitops.md, "Progressive delivery: rollouts").

``status`` lists the project's rollouts (newest first, by bundle, environment, status) or,
given an id, shows one: its steps, where it stands, both sides' figures and the last
verdict. ``promote``, ``abort`` and ``retry`` decide, under the environment's approvers:
against a service the caller is the key's name (or the signed-in person), locally
``--actor`` (default: the OS user). Each goes through the same platform method as the
``/v1/rollouts`` routes, so both print one shape.
"""

from __future__ import annotations

from typing import Any

import typer

from kneo.cli.client import LocalClient
from kneo.cli.output import ClientOptions, cells, console, next_page, options, print_table
from kneo.cli.platform_client import PlatformClient

app = typer.Typer(no_args_is_help=True, help="Progressive delivery: rollouts")

ActorOpt = typer.Option(
    None,
    "--actor",
    help="Who decides, in local mode (default: the OS user); a service records its API key's name",
)
#: the figures a side shows, and their labels
FIGURES = (
    ("runs", "runs"),
    ("finished", "finished"),
    ("failure_rate", "failure"),
    ("rejection_rate", "rejection"),
    ("edit_rate", "edit rate"),
    ("p95_latency_ms", "p95 ms"),
    ("cost_per_run", "cost/run"),
    ("judge_score", "judge"),
)

#: the figures of each kind of human request, and their labels
KIND_FIGURES = (
    ("decided", "decided"),
    ("rejection_rate", "rejection"),
    ("edit_rate", "edit rate"),
    ("escalation_rate", "escalation"),
)

#: a listing's columns
COLUMNS = ("rollout_id", "bundle", "environment", "stable_revision", "canary_revision", "status",
           "weight", "standing")  # fmt: skip


def _number(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".") or "0"
    return str(value)


def _pair(sides: dict[str, Any], kind: str, name: str) -> str:
    """A kind's figure on both sides: ``stable / canary``."""
    shown = [
        _number(((sides.get(side) or {}).get("by_kind") or {}).get(kind, {}).get(name))
        for side in ("stable", "canary")
    ]
    return " / ".join(shown)


def show(data: dict[str, Any]) -> None:
    """One rollout as a person reads it."""
    out = console()
    out.print(
        f"rollout {data['rollout_id']}  {data['bundle']}@{data['environment']}  "
        f"revision {data['stable_revision']} -> {data['canary_revision']}"
    )
    out.print(data["standing"])
    if data.get("reason"):
        out.print(f"reason: {data['reason']}")
    print_table(
        "steps",
        ["#", "step", "state"],
        [[s["index"] + 1, s["describe"], s["state"]] for s in data["steps"]],
    )
    sides = data.get("figures") or {}
    print_table(
        "figures",
        ["side", *(label for _, label in FIGURES)],
        [
            [side, *(_number((sides.get(side) or {}).get(name)) for name, _ in FIGURES)]
            for side in ("stable", "canary")
        ],
    )
    kinds = sorted({k for side in sides.values() for k in (side or {}).get("by_kind") or {}})
    if kinds:
        print_table(
            "decisions by kind of request (stable / canary)",
            ["kind", *(label for _, label in KIND_FIGURES)],
            [[kind, *(_pair(sides, kind, name) for name, _ in KIND_FIGURES)] for kind in kinds],
        )
    verdict = data.get("verdict")
    if verdict:
        out.print(f"last verdict: {verdict.get('outcome')}: {verdict.get('reason')}")
    if data.get("approvers"):
        out.print(f"approvers: {', '.join(data['approvers'])}")


@app.command("status")
@options
def status(
    rollout_id: str | None = typer.Argument(None, help="One rollout (else: a listing)"),
    bundle: str | None = typer.Option(None, "--bundle"),
    environment: str | None = typer.Option(None, "--environment", "-e"),
    state: str | None = typer.Option(
        None, "--status", help="progressing, paused, promoted, aborted or superseded"
    ),
    limit: int = typer.Option(50, "--limit"),
    cursor: str | None = typer.Option(None, "--cursor", help="A listing's next_cursor"),
    counts: bool = typer.Option(
        False, "--counts", help="The matching total too (up to the service's count cap)"
    ),
    opts: ClientOptions = ClientOptions(),
) -> None:
    """The project's rollouts, newest first; or one rollout: its steps, where it stands,
    both sides' figures and the last verdict."""
    client = opts.client()
    if rollout_id is not None:
        data = client.get_rollout(rollout_id)
        if not opts.printed_json(data):
            show(data)
        return
    from kneo.platform import RolloutQuery

    query = RolloutQuery(
        bundle=bundle, environment=environment, status=state, limit=limit, cursor=cursor,
        count=counts,
    )  # fmt: skip
    data = client.list_rollouts(query)
    if opts.printed_json(data):
        return
    total = data.get("total")
    of = "" if total is None else f" of {total}{'+' if data.get('total_capped') else ''}"
    print_table(
        f"rollouts ({data['count']} shown{of}{next_page(data)})",
        ["rollout", "bundle", "environment", "stable", "canary", "status", "weight", "standing"],
        [cells(r, *COLUMNS) for r in data["rollouts"]],
    )


def _decide(
    opts: ClientOptions,
    rollout_id: str,
    decision: str,
    actor: str | None,
    *,
    full: bool = False,
    reason: str | None = None,
) -> None:
    client: PlatformClient = opts.client()
    if isinstance(client, LocalClient):
        client.decide_as(actor)
    data = client.decide_rollout(rollout_id, decision, full=full, reason=reason)
    if not opts.printed_json(data):
        show(data)


@app.command("promote")
@options
def promote(
    rollout_id: str,
    full: bool = typer.Option(False, "--full", help="To 100 % at once"),
    actor: str | None = ActorOpt,
    opts: ClientOptions = ClientOptions(),
) -> None:
    """Promote ROLLOUT_ID past the step it stands at (a pause, an analysis still waiting),
    or with --full to 100 % at once. The environment's approvers only."""
    _decide(opts, rollout_id, "promote", actor, full=full)


@app.command("abort")
@options
def abort(
    rollout_id: str,
    reason: str = typer.Option(..., "--reason", help="Why (recorded with the decision)"),
    actor: str | None = ActorOpt,
    opts: ClientOptions = ClientOptions(),
) -> None:
    """Abort ROLLOUT_ID: every new run takes the stable revision at once. The environment's
    approvers only."""
    _decide(opts, rollout_id, "abort", actor, reason=reason)


@app.command("retry")
@options
def retry(
    rollout_id: str, actor: str | None = ActorOpt, opts: ClientOptions = ClientOptions()
) -> None:
    """Start an aborted ROLLOUT_ID again from its first step. The environment's approvers
    only."""
    _decide(opts, rollout_id, "retry", actor)
