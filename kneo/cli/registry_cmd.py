"""``kneo registry``: inspect the bundle registry the controller keeps (list, get, history,
diff) and its day-two operations (rollback, pin, unpin, block, unblock, blocks).

Through the service when one is in effect (a profile, ``--service-url``, the project's
``service.default_url``), else over the project's own store, like ``kneo controller``
(:mod:`kneo.cli.gitops_client`); the output is the same either way.
"""

from __future__ import annotations

import sys
from typing import Any

import typer

from kneo.cli.controller_cmd import ActorOpt, EnvOpt, acting
from kneo.cli.gitops_client import gitops_session, walk
from kneo.cli.output import ClientOptions, cells, console, options, print_table
from kneo.errors import InvalidRequest

registry_app = typer.Typer(no_args_is_help=True, help="Inspect the bundle registry")

#: A revision's fields as the CLI prints them (``bundle``: the routes' ``bundle_name``).
_REVISION_FIELDS = (
    "environment",
    "revision",
    "status",
    "digest",
    "commit",
    "signer_key_ids",
    "approved_by",
    "diagnostics",
    "created_at",
    "activated_at",
    "deactivated_at",
)


def revision_dict(view: dict[str, Any]) -> dict[str, Any]:
    """A revision as the routes give it, in the CLI's shape."""
    return {"bundle": view["bundle_name"], **{k: view.get(k) for k in _REVISION_FIELDS}}


@registry_app.command("list")
@options
def registry_list(
    env: str | None = typer.Option(None, "--env"), opts: ClientOptions = ClientOptions()
) -> None:
    """Active revisions, with their Ready condition."""
    with gitops_session(opts) as gitops:
        views = walk(gitops, env, "active")
    data = [{**revision_dict(v), "ready": v.get("ready")} for v in views]
    if opts.printed_json({"items": data, "count": len(data)}):
        return
    print_table(
        f"registry ({len(data)} active)",
        ["bundle", "env", "rev", "digest", "commit", "ready"],
        [
            [*cells(d, "bundle", "environment", "revision"), *_digest_commit(d), d["ready"]]
            for d in data
        ],
        missing="-",
    )


def _digest_commit(revision: dict[str, Any]) -> list[str]:
    """A revision's digest and commit, shortened for a table."""
    return [revision["digest"][:19], (revision["commit"] or "")[:12]]


@registry_app.command("get")
@options
def registry_get(bundle: str, env: str = EnvOpt, opts: ClientOptions = ClientOptions()) -> None:
    """The active revision of BUNDLE in ENV, its pin and its status conditions."""
    with gitops_session(opts) as gitops:
        view = gitops.bundle(bundle, env)
    conditions = [
        {k: c.get(k) for k in ("type", "status", "reason", "message", "last_transition_time")}
        for c in view["conditions"]
    ]
    active = view["active"]
    data = {
        "bundle": bundle,
        "environment": env,
        "suspended": view["suspended"],
        "pin": view["pin"],
        "active": revision_dict(active) if active else None,
        "conditions": conditions,
    }
    if opts.printed_json(data):
        return
    screen = console()
    if active:
        screen.print(
            f"{bundle}@{env}: revision {active['revision']} {active['digest']} "
            f"commit {(active['commit'] or '-')[:12]}",
            markup=False,
        )
    else:
        screen.print(f"{bundle}@{env}: no active revision", markup=False)
    if data["pin"]:
        pinned = data["pin"]
        screen.print(
            f"pinned to revision {pinned['revision']} by {pinned['pinned_by'] or '-'}"
            + (f": {pinned['reason']}" if pinned["reason"] else ""),
            markup=False,
        )
    print_table(
        "conditions",
        ["type", "status", "reason", "message", "since"],
        [
            cells(c, "type", "status", "reason", "message", "last_transition_time")
            for c in conditions
        ],
        missing="-",
    )


@registry_app.command("history")
@options
def registry_history(bundle: str, env: str = EnvOpt, opts: ClientOptions = ClientOptions()) -> None:
    """Every revision of BUNDLE in ENV, newest first."""
    with gitops_session(opts) as gitops:
        items = [revision_dict(r) for r in gitops.bundle(bundle, env)["revisions"]]
    if opts.printed_json({"items": items, "count": len(items)}):
        return
    print_table(
        f"{bundle}@{env}",
        ["rev", "status", "digest", "commit", "approved_by", "reason"],
        [
            [
                *cells(d, "revision", "status"),
                *_digest_commit(d),
                ", ".join(d["approved_by"]),
                next(
                    (
                        x.get("code")
                        for x in d["diagnostics"]
                        if x.get("code") not in (None, "source")
                    ),
                    None,
                ),
            ]
            for d in items
        ],
        missing="-",
    )


@registry_app.command("diff")
@options
def registry_diff(
    bundle: str,
    env: str = EnvOpt,
    from_rev: int = typer.Option(..., "--from", help="Older revision number"),
    to_rev: int = typer.Option(..., "--to", help="Newer revision number"),
    opts: ClientOptions = ClientOptions(),
) -> None:
    """Unified diff of two revisions' specs (and their digest, commit and status)."""
    with gitops_session(opts) as gitops:
        data = gitops.diff(bundle, env, from_rev, to_rev)
    if opts.printed_json(data):
        return
    for key, values in data["changed"].items():
        sys.stdout.write(f"{key}: {values['from']} -> {values['to']}\n")
    sys.stdout.write(data["spec_diff"] or "specs are identical\n")


# --------------------------------------------------------------------------- day two


def _revision_number(text: str) -> int:
    """``3`` or ``r3``."""
    digits = text[1:] if text[:1] in ("r", "R") else text
    if not digits.isdigit() or int(digits) < 1:
        raise InvalidRequest(
            f"--to must be a revision number (3 or r3), got {text!r}", field="--to"
        )
    return int(digits)


@registry_app.command("rollback")
@options
def registry_rollback(
    bundle: str,
    env: str = EnvOpt,
    to: str = typer.Option(..., "--to", help="The earlier revision (3 or r3)"),
    reason: str | None = typer.Option(None, "--reason"),
    actor: str | None = ActorOpt,
    opts: ClientOptions = ClientOptions(),
) -> None:
    """Put an earlier revision of BUNDLE back in force in ENV now, and pin it there (the
    controller promotes nothing else until `kneo registry unpin`). Where ENV requires
    approval, opens the approval task instead."""
    number = _revision_number(to)
    with gitops_session(opts) as gitops:
        data = gitops.rollback(bundle, env, to=number, actor=acting(gitops, actor), reason=reason)
    if opts.printed_json(data):
        return
    if data["status"] == "awaiting_approval":
        console().print(
            f"rollback of {bundle} in {env} to revision {data['rollback_of']} waits for "
            f"{data['min_approvals']} approval(s): kneo human resume {data['continuation_id']}",
            markup=False,
        )
    else:
        console().print(
            f"{bundle}@{env}: revision {data['revision']} ({data['digest'][:19]}, a copy of "
            f"revision {data['rollback_of']}) is active and pinned",
            markup=False,
        )


@registry_app.command("pin")
@options
def registry_pin(
    bundle: str,
    env: str = EnvOpt,
    reason: str | None = typer.Option(None, "--reason"),
    actor: str | None = ActorOpt,
    opts: ClientOptions = ClientOptions(),
) -> None:
    """Hold BUNDLE at its active revision in ENV: the controller promotes nothing else there
    until `kneo registry unpin`."""
    with gitops_session(opts) as gitops:
        data = gitops.pin(bundle, env, actor=acting(gitops, actor), reason=reason)
    if not opts.printed_json(data):
        console().print(f"{bundle}@{env} pinned to revision {data['pin']['revision']}")


@registry_app.command("unpin")
@options
def registry_unpin(
    bundle: str,
    env: str = EnvOpt,
    actor: str | None = ActorOpt,
    opts: ClientOptions = ClientOptions(),
) -> None:
    """Lift the pin: the controller promotes what Git asks for again on its next pass."""
    with gitops_session(opts) as gitops:
        data = gitops.unpin(bundle, env, actor=acting(gitops, actor))
    if not opts.printed_json(data):
        console().print(
            f"{bundle}@{env} unpinned" if data["changed"] else f"{bundle}@{env} was not pinned"
        )


@registry_app.command("block")
@options
def registry_block(
    digest: str,
    reason: str = typer.Option(..., "--reason", help="Why (shown wherever it is refused)"),
    actor: str | None = ActorOpt,
    opts: ClientOptions = ClientOptions(),
) -> None:
    """Never promote DIGEST again, in any environment, until unblocked (what is active keeps
    serving: roll back to replace it)."""
    with gitops_session(opts) as gitops:
        data = gitops.block(digest, actor=acting(gitops, actor), reason=reason)
    if not opts.printed_json(data):
        console().print(f"{digest} blocked: {data['reason']}", markup=False)


@registry_app.command("unblock")
@options
def registry_unblock(
    digest: str, actor: str | None = ActorOpt, opts: ClientOptions = ClientOptions()
) -> None:
    """Let DIGEST be promoted again."""
    with gitops_session(opts) as gitops:
        data = gitops.unblock(digest, actor=acting(gitops, actor))
    if not opts.printed_json(data):
        console().print(
            f"{digest} unblocked" if data["changed"] else f"{digest} was not blocked", markup=False
        )


@registry_app.command("blocks")
@options
def registry_blocks(opts: ClientOptions = ClientOptions()) -> None:
    """Blocked digests, with why and by whom."""
    with gitops_session(opts) as gitops:
        items = gitops.blocked()["blocked"]
    if opts.printed_json({"items": items, "count": len(items)}):
        return
    print_table(
        f"blocked digests ({len(items)})",
        ["digest", "reason", "by", "since"],
        [cells(b, "digest", "reason", "blocked_by", "since") for b in items],
        missing="-",
    )
