"""``kneo controller`` (reconcile a Git repo of signed bundles) and ``kneo registry`` (inspect it).

Thin commands over :mod:`kneo.controller`: configuration comes from flags over the
``controller:`` block of ``.kneo/config.yaml``; the store is the project's (PostgreSQL when
``KNEO_SERV_DATABASE_URL`` is set, else ``.kneo/kneo_runs.sqlite``). Every command has
``--json``; errors are one line with a stable code.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kneo import startup
from kneo.cli.output import Output, TrustedHmacKeysOpt, cells, console, options, print_table
from kneo.errors import NotFound

if TYPE_CHECKING:
    from kneo.controller.config import ControllerConfig
    from kneo.spec.project import ProjectContext
    from kneo.store.contracts import RegistryReads

controller_app = typer.Typer(no_args_is_help=True, help="GitOps controller")
registry_app = typer.Typer(no_args_is_help=True, help="Inspect the bundle registry")

EnvOpt = typer.Option(..., "--env", help="Environment")
RepoOpt = Annotated[str | None, typer.Option("--repo", help="Git URL or local repository path")]
BranchOpt = Annotated[
    str | None, typer.Option("--branch", help="Branch or tag (default: the remote's HEAD)")
]
KeysOpt = Annotated[
    Path | None, typer.Option("--trusted-keys", help="Keyring directory (*.pub [+ keyring.yaml])")
]
CacheOpt = Annotated[
    Path | None, typer.Option("--cache-dir", help="Where remote repositories are fetched")
]
PruneOpt = Annotated[
    bool | None, typer.Option("--prune/--no-prune", help="Deactivate bundles whose file is gone")
]


@dataclass(frozen=True)
class Source:
    """The options every reconciling command takes: which repository and branch, whose
    signatures it trusts, where it is fetched, and whether a removed file deactivates."""

    repo: RepoOpt = None
    branch: BranchOpt = None
    trusted_keys: KeysOpt = None
    cache_dir: CacheOpt = None
    prune: PruneOpt = None
    trusted_hmac_key_env: TrustedHmacKeysOpt = None


# --------------------------------------------------------------------------- wiring


def _context() -> tuple[Any, Any]:
    from kneo.settings import Settings
    from kneo.spec.project import ProjectContext

    settings = Settings.from_env()
    return settings, ProjectContext.discover(settings=settings)


def _store() -> Any:
    from kneo.platform.factory import create_persistence_stores

    settings, project = _context()
    return create_persistence_stores(settings, project)[0]


def controller_config(project: ProjectContext, **flags: Any) -> ControllerConfig:
    """The project config's ``controller:`` block with the command line's ``flags`` over it
    (``--trusted-hmac-key-env`` as ``KEY_ID=VAR`` specs)."""
    from kneo.controller.config import load_controller_config
    from kneo.controller.runner import parse_hmac_key_specs

    specs = flags.pop("trusted_hmac_key_env", None)
    if specs:
        flags["trusted_hmac_key_env"] = parse_hmac_key_specs(specs)
    return load_controller_config(project.config_path).with_overrides(**flags)


def _config(**overrides: Any) -> Any:
    return controller_config(_context()[1], **overrides)


def _controller(source: Source, **overrides: Any) -> Any:
    """The controller over ``source`` and ``overrides`` (flags over the project config)."""
    from kneo.controller.runner import build_controller

    settings, project = _context()
    config = controller_config(project, **vars(source), **overrides)
    return build_controller(_store(), config, settings, project=project)


@contextmanager
def _progress(enabled: bool) -> Iterator[Any]:
    """A progress bar on stderr for long reconciles (verify, then apply)."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console(stderr=True),
        transient=True,
    ) as bar:
        tasks: dict[str, Any] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield update


def _print_result(result: Any, out: Output) -> None:
    from kneo.controller.controller import summarize

    if out.printed_json(result.to_dict()):
        return
    screen = console()
    if not result.leader:
        screen.print(
            f"standing by: another controller holds the lock ({result.stats.get('leader')})"
        )
        return
    head = "plan" if result.dry_run else "reconciled"
    screen.print(
        f"{head} {(result.commit or '-')[:12]} in {result.duration_seconds:.2f}s "
        f"{json.dumps(result.counts())}"
    )
    for line in summarize(result):
        screen.print("  " + line, markup=False)
    for problem in result.problems:
        screen.print(f"  problem {problem['code']}: {problem['message']}", markup=False)
    if result.error:
        screen.print(
            f"error[{result.error['code']}] at {result.error['stage']}: {result.error['message']}",
            markup=False,
        )


# --------------------------------------------------------------------------- controller


@controller_app.command("run")
@options
def run(
    source: Source = Source(),
    interval: float | None = typer.Option(None, "--interval", help="Poll seconds (default 60)"),
    webhook_secret_env: str | None = typer.Option(
        None, "--webhook-secret-env", help="Variable holding the GitHub webhook secret"
    ),
    lease_seconds: float | None = typer.Option(
        None, "--lease-seconds", min=0.1, help="Leader lock lease (default 30)"
    ),
    poll_seconds: float | None = typer.Option(
        None,
        "--poll-seconds",
        min=0.05,
        help="How often a standby checks the leader lock (default 1)",
    ),
    out: Output = Output(),
) -> None:
    """Reconcile continuously (leader-elected); a local repository is also watched."""
    from kneo.metrics import start_process

    ctl = _controller(
        source,
        interval=interval,
        webhook_secret_env=webhook_secret_env,
        lease_seconds=lease_seconds,
        poll_seconds=poll_seconds,
    )
    metrics_server = start_process(ctl.store, _context()[0])
    stop = threading.Event()

    def _stop(_signum: int, _frame: object) -> None:
        stop.set()
        ctl.request_reconcile()  # out of its wait now

    # SIGTERM (docker stop, a Kubernetes rollout) stops like Ctrl-C: the leader releases its
    # lock on the way out, so a standby takes over at once instead of after the lease.
    signal.signal(signal.SIGTERM, _stop)
    if not out.structured:
        console(stderr=True).print(
            f"watching {ctl.source.describe()} every {ctl.config.interval:g}s as {ctl.owner}"
        )
    startup.done()
    try:
        ctl.run(stop, on_result=lambda r: _print_result(r, out))
    except KeyboardInterrupt:
        stop.set()
    finally:
        if metrics_server is not None:
            metrics_server.shutdown()
        ctl.source.close()


def _one_pass(source: Source, out: Output, call: Callable[[Any, Any], Any]) -> None:
    """One reconcile pass (or plan) ``call(controller, progress)`` with a progress bar; its
    result printed, exit 1 when it failed. A leader lock the pass took is released after."""
    ctl = _controller(source)
    try:
        with _progress(not out.structured) as progress:
            result = call(ctl, progress)
    finally:
        ctl.step_down()
        ctl.source.close()
    _print_result(result, out)
    if result.error:
        raise typer.Exit(1)


@controller_app.command("reconcile")
@options
def reconcile(
    once: bool = typer.Option(True, "--once/--no-once", help="One pass (the default)"),
    full: bool = typer.Option(
        False,
        "--full",
        help="Judge every bundle file and read the whole registry, not only what changed "
        "since the last reconcile",
    ),
    source: Source = Source(),
    out: Output = Output(),
) -> None:
    """Reconcile once and print the actions taken; exit 1 when the reconcile failed.

    Incremental like the loop: only bundles whose files or registry entries changed since
    the last reconcile are planned (--full: all of them)."""
    _one_pass(source, out, lambda ctl, progress: ctl.reconcile_once(progress=progress, full=full))


@controller_app.command("plan")
@options
def plan_command(
    source: Source = Source(),
    base: str | None = typer.Option(
        None, "--base", help="With --head: what merging HEAD onto BASE would do (a pull request)"
    ),
    head: str | None = typer.Option(None, "--head", help="The pull request's ref or commit"),
    format: str | None = typer.Option(
        None, "--format", help="With --base/--head: markdown (a PR comment) or json"
    ),
    out: Output = Output(),
) -> None:
    """Dry run: what a reconcile of the current commit would do; writes nothing. With --base
    and --head: per environment, what merging would change, the spec diffs, verdicts,
    blocks, freezes and approvals required; exit 1 when something would be refused."""
    if base is None and head is None and format is None:
        _one_pass(source, out, lambda ctl, progress: ctl.plan(progress=progress))
        return
    _review(source, base, head, format, out)


def _review(
    source: Source, base: str | None, head: str | None, format: str | None, out: Output
) -> None:
    from kneo.controller.review import render_markdown, review
    from kneo.errors import InvalidRequest

    if base is None or head is None:
        raise InvalidRequest("--base and --head go together", field="--base")
    chosen = format or ("json" if out.structured else "markdown")
    if chosen not in ("markdown", "json"):
        raise InvalidRequest(f"--format is markdown or json, got {chosen!r}", field="--format")
    ctl = _controller(source)
    try:
        store = ctl.store if _has_registry(ctl.store) else None
        data = review(
            ctl.loader,
            ctl.source,
            store,
            base=base,
            head=head,
            now=ctl.clock.now(),
            prune=ctl.config.prune,
        )
    finally:
        ctl.source.close()
    if chosen == "json":
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    else:
        sys.stdout.write(render_markdown(data))
    if data["refused"]:
        raise typer.Exit(1)


def _has_registry(store: RegistryReads) -> bool:
    """Whether the configured store holds a registry to plan against."""
    try:
        return bool(store.list_revision_heads())
    except Exception:  # no database reachable from CI: plan against the base commit
        return False


@controller_app.command("status")
@options
def status(out: Output = Output()) -> None:
    """Last fetched commit, last reconcile start, duration and error, the leader and the
    reconcile requests waiting for it."""
    from kneo.platform.reconcile import controller_view

    config = _config()
    data = controller_view(_store(), config)
    data["source"] = data["source"] or config.repo
    if out.printed_json(data):
        return
    screen = console()
    for key in (
        "source",
        "leader",
        "last_fetched_commit",
        "last_reconcile_started_at",
        "last_reconcile_duration_seconds",
        "last_success_at",
        "last_error",
    ):
        screen.print(f"{key:<32} {data[key] if data[key] is not None else '-'}", markup=False)
    screen.print(f"{'counts':<32} {json.dumps(data['counts'])}", markup=False)
    screen.print(f"{'requests':<32} {json.dumps(data['requests'])}", markup=False)
    for problem in data["problems"]:
        screen.print(f"problem {problem['code']}: {problem['message']}", markup=False)


ActorOpt = typer.Option(
    None, "--actor", help="Who is acting, for the audit log (default: the OS user)"
)


def _actor(actor: str | None) -> str:
    from kneo.platform.bundles import default_actor

    return actor or default_actor()


@controller_app.command("suspend")
@options
def suspend(
    bundle: str,
    env: str = EnvOpt,
    reason: str | None = typer.Option(None, "--reason"),
    actor: str | None = ActorOpt,
    out: Output = Output(),
) -> None:
    """Make the controller leave BUNDLE alone in ENV (no promotion, prune or drift revert)."""
    from kneo.controller import operations

    data = operations.suspend(_store(), bundle, env, actor=_actor(actor), reason=reason)
    if not out.printed_json(data):
        console().print(f"{bundle} suspended in {env}")


@controller_app.command("resume")
@options
def resume(
    bundle: str, env: str = EnvOpt, actor: str | None = ActorOpt, out: Output = Output()
) -> None:
    """Let the controller manage BUNDLE in ENV again (drift is reverted on the next pass)."""
    from kneo.controller import operations

    data = operations.resume(_store(), bundle, env, actor=_actor(actor))
    if not out.printed_json(data):
        console().print(
            f"{bundle} resumed in {env}"
            if data["changed"]
            else f"{bundle} was not suspended in {env}"
        )


# --------------------------------------------------------------------------- registry


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
    store = _store()
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

    store = _store()
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
    items = [revision_dict(r) for r in _store().list_revisions(bundle, env)]
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
    store = _store()
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
        _store(), bundle, env, to=_revision_number(to), actor=_actor(actor), reason=reason
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

    data = operations.pin(_store(), bundle, env, actor=_actor(actor), reason=reason)
    if not out.printed_json(data):
        console().print(f"{bundle}@{env} pinned to revision {data['pin']['revision']}")


@registry_app.command("unpin")
@options
def registry_unpin(
    bundle: str, env: str = EnvOpt, actor: str | None = ActorOpt, out: Output = Output()
) -> None:
    """Lift the pin: the controller promotes what Git asks for again on its next pass."""
    from kneo.controller import operations

    data = operations.unpin(_store(), bundle, env, actor=_actor(actor))
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

    data = operations.block(_store(), digest, actor=_actor(actor), reason=reason)
    if not out.printed_json(data):
        console().print(f"{digest} blocked: {data['reason']}", markup=False)


@registry_app.command("unblock")
@options
def registry_unblock(digest: str, actor: str | None = ActorOpt, out: Output = Output()) -> None:
    """Let DIGEST be promoted again."""
    from kneo.controller import operations

    data = operations.unblock(_store(), digest, actor=_actor(actor))
    if not out.printed_json(data):
        console().print(
            f"{digest} unblocked" if data["changed"] else f"{digest} was not blocked", markup=False
        )


@registry_app.command("blocks")
@options
def registry_blocks(out: Output = Output()) -> None:
    """Blocked digests, with why and by whom."""
    from kneo.controller.operations import blocked_view

    items = [blocked_view(b) for b in _store().list_blocked_digests()]
    if out.printed_json({"items": items, "count": len(items)}):
        return
    print_table(
        f"blocked digests ({len(items)})",
        ["digest", "reason", "by", "since"],
        [cells(b, "digest", "reason", "blocked_by", "since") for b in items],
        missing="-",
    )
