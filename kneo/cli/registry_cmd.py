"""``kneo registry``: inspect the bundle registry the controller keeps (list, get, history,
diff) and its day-two operations (rollback, pin, unpin, block, unblock, blocks).

Over the same project store and actor as ``kneo controller`` (:mod:`kneo.cli.controller_cmd`).
"""

from __future__ import annotations

import sys
from typing import Any

import typer

from kneo.cli.controller_cmd import ActorOpt, EnvOpt, actor_name, project_store
from kneo.cli.output import Output, cells, console, options, print_table
from kneo.errors import NotFound

registry_app = typer.Typer(no_args_is_help=True, help="Inspect the bundle registry")


def revision_dict(r: Any, *, with_spec: bool = False) -> dict[str, Any]:
    from kneo.clock import utc_iso

    data = {
        "bundle": r.bundle_name,
        "environment": r.environment,
        "revision": r.revision,
        "status": r.status,
        "digest": r.digest,
        "commit": r.commit,
        "signer_key_ids": r.signer_key_ids,
        "approved_by": r.approved_by,
        "diagnostics": r.diagnostics,
        "created_at": utc_iso(r.created_at),
        "activated_at": utc_iso(r.activated_at),
        "deactivated_at": utc_iso(r.deactivated_at),
    }
    if with_spec:
        data["spec"] = r.spec
    return data


@registry_app.command("list")
@options
def registry_list(env: str | None = typer.Option(None, "--env"), out: Output = Output()) -> None:
    """Active revisions, with their Ready condition."""
    store = project_store()
    items = store.list_registry(env).items
    ready = {
        (c.bundle_name, c.environment): c
        for c in store.list_conditions(environment=env)
        if c.type == "Ready"
    }
    data = [
        {
            **revision_dict(r),
            "ready": ready[(r.bundle_name, r.environment)].status
            if (r.bundle_name, r.environment) in ready
            else None,
        }
        for r in items
    ]
    if out.printed_json({"items": data, "count": len(data)}):
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
def registry_get(bundle: str, env: str = EnvOpt, out: Output = Output()) -> None:
    """The active revision of BUNDLE in ENV, its pin and its status conditions."""
    from kneo.clock import utc_iso
    from kneo.controller.operations import pin_view

    store = project_store()
    active = store.get_active(bundle, env)
    conditions = [
        {
            "type": c.type,
            "status": c.status,
            "reason": c.reason,
            "message": c.message,
            "last_transition_time": utc_iso(c.last_transition_time),
        }
        for c in store.list_conditions(bundle, env)
    ]
    if active is None and not conditions:
        raise NotFound(f"bundle {bundle!r} is not in the registry for {env!r}", resource="bundle")
    data = {
        "bundle": bundle,
        "environment": env,
        "suspended": store.is_suspended(bundle, env),
        "pin": pin_view(store.get_pin(bundle, env)),
        "active": revision_dict(active) if active else None,
        "conditions": conditions,
    }
    if out.printed_json(data):
        return
    screen = console()
    if active:
        screen.print(
            f"{bundle}@{env}: revision {active.revision} {active.digest} "
            f"commit {(active.commit or '-')[:12]}",
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
def registry_history(bundle: str, env: str = EnvOpt, out: Output = Output()) -> None:
    """Every revision of BUNDLE in ENV, newest first."""
    items = [revision_dict(r) for r in project_store().list_revisions(bundle, env)]
    if not items:
        raise NotFound(f"bundle {bundle!r} has no revisions in {env!r}", resource="bundle")
    if out.printed_json({"items": items, "count": len(items)}):
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
    out: Output = Output(),
) -> None:
    """Unified diff of two revisions' specs (and their digest, commit and status)."""
    store = project_store()
    a, b = store.get_revision(bundle, env, from_rev), store.get_revision(bundle, env, to_rev)
    from kneo.platform.registry import spec_diff

    diff = spec_diff(a, b)
    changed = {
        k: {"from": getattr(a, k), "to": getattr(b, k)}
        for k in ("digest", "commit", "status")
        if getattr(a, k) != getattr(b, k)
    }
    if out.printed_json(
        {
            "bundle": bundle,
            "environment": env,
            "from": from_rev,
            "to": to_rev,
            "changed": changed,
            "spec_diff": diff,
        }
    ):
        return
    for key, values in changed.items():
        sys.stdout.write(f"{key}: {values['from']} -> {values['to']}\n")
    sys.stdout.write(diff or "specs are identical\n")


# --------------------------------------------------------------------------- day two


def _revision_number(text: str) -> int:
    """``3`` or ``r3``."""
    from kneo.errors import InvalidRequest

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
    out: Output = Output(),
) -> None:
    """Put an earlier revision of BUNDLE back in force in ENV now, and pin it there (the
    controller promotes nothing else until `kneo registry unpin`). Where ENV requires
    approval, opens the approval task instead."""
    from kneo.controller import operations

    data = operations.rollback(
        project_store(),
        bundle,
        env,
        to=_revision_number(to),
        actor=actor_name(actor),
        reason=reason,
    )
    if out.printed_json(data):
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
    out: Output = Output(),
) -> None:
    """Hold BUNDLE at its active revision in ENV: the controller promotes nothing else there
    until `kneo registry unpin`."""
    from kneo.controller import operations

    data = operations.pin(project_store(), bundle, env, actor=actor_name(actor), reason=reason)
    if not out.printed_json(data):
        console().print(f"{bundle}@{env} pinned to revision {data['pin']['revision']}")


@registry_app.command("unpin")
@options
def registry_unpin(
    bundle: str, env: str = EnvOpt, actor: str | None = ActorOpt, out: Output = Output()
) -> None:
    """Lift the pin: the controller promotes what Git asks for again on its next pass."""
    from kneo.controller import operations

    data = operations.unpin(project_store(), bundle, env, actor=actor_name(actor))
    if not out.printed_json(data):
        console().print(
            f"{bundle}@{env} unpinned" if data["changed"] else f"{bundle}@{env} was not pinned"
        )


@registry_app.command("block")
@options
def registry_block(
    digest: str,
    reason: str = typer.Option(..., "--reason", help="Why (shown wherever it is refused)"),
    actor: str | None = ActorOpt,
    out: Output = Output(),
) -> None:
    """Never promote DIGEST again, in any environment, until unblocked (what is active keeps
    serving: roll back to replace it)."""
    from kneo.controller import operations

    data = operations.block(project_store(), digest, actor=actor_name(actor), reason=reason)
    if not out.printed_json(data):
        console().print(f"{digest} blocked: {data['reason']}", markup=False)


@registry_app.command("unblock")
@options
def registry_unblock(digest: str, actor: str | None = ActorOpt, out: Output = Output()) -> None:
    """Let DIGEST be promoted again."""
    from kneo.controller import operations

    data = operations.unblock(project_store(), digest, actor=actor_name(actor))
    if not out.printed_json(data):
        console().print(
            f"{digest} unblocked" if data["changed"] else f"{digest} was not blocked", markup=False
        )


@registry_app.command("blocks")
@options
def registry_blocks(out: Output = Output()) -> None:
    """Blocked digests, with why and by whom."""
    from kneo.controller.operations import blocked_view

    items = [blocked_view(b) for b in project_store().list_blocked_digests()]
    if out.printed_json({"items": items, "count": len(items)}):
        return
    print_table(
        f"blocked digests ({len(items)})",
        ["digest", "reason", "by", "since"],
        [cells(b, "digest", "reason", "blocked_by", "since") for b in items],
        missing="-",
    )
