"""``kneo controller``: reconcile a Git repo of signed bundles, plan, status, suspend, resume.

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
from kneo.cli.output import Output, TrustedHmacKeysOpt, console, options

if TYPE_CHECKING:
    from kneo.controller.config import ControllerConfig
    from kneo.spec.project import ProjectContext
    from kneo.store.contracts import RegistryReads

controller_app = typer.Typer(no_args_is_help=True, help="GitOps controller")

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


def project_store() -> Any:
    """The project's store (``kneo registry`` reads the same one)."""
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


@contextmanager
def _controller(source: Source, **overrides: Any) -> Iterator[Any]:
    """``with``: the controller over ``source`` and ``overrides`` (flags over the project
    config); its source and its store closed after (a store left open would leave its
    SQLite WAL behind the process)."""
    from kneo.controller.runner import build_controller

    settings, project = _context()
    config = controller_config(project, **vars(source), **overrides)
    ctl: Any = build_controller(project_store(), config, settings, project=project)
    try:
        yield ctl
    finally:
        ctl.source.close()
        ctl.store.close()


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

    with _controller(
        source,
        interval=interval,
        webhook_secret_env=webhook_secret_env,
        lease_seconds=lease_seconds,
        poll_seconds=poll_seconds,
    ) as ctl:
        metrics_server = start_process(ctl.store, _context()[0])
        stop = threading.Event()

        def _stop(_signum: int, _frame: object) -> None:
            stop.set()
            ctl.request_reconcile()  # out of its wait now

        # SIGTERM (docker stop, a Kubernetes rollout) stops like Ctrl-C: the leader releases
        # its lock on the way out, so a standby takes over at once instead of after the lease.
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


def _one_pass(source: Source, out: Output, call: Callable[[Any, Any], Any]) -> None:
    """One reconcile pass (or plan) ``call(controller, progress)`` with a progress bar; its
    result printed, exit 1 when it failed. A leader lock the pass took is released after."""
    with _controller(source) as ctl:
        try:
            with _progress(not out.structured) as progress:
                result = call(ctl, progress)
        finally:
            ctl.step_down()
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
    with _controller(source) as ctl:
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
    data = controller_view(project_store(), config)
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


def actor_name(actor: str | None) -> str:
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

    data = operations.suspend(project_store(), bundle, env, actor=actor_name(actor), reason=reason)
    if not out.printed_json(data):
        console().print(f"{bundle} suspended in {env}")


@controller_app.command("resume")
@options
def resume(
    bundle: str, env: str = EnvOpt, actor: str | None = ActorOpt, out: Output = Output()
) -> None:
    """Let the controller manage BUNDLE in ENV again (drift is reverted on the next pass)."""
    from kneo.controller import operations

    data = operations.resume(project_store(), bundle, env, actor=actor_name(actor))
    if not out.printed_json(data):
        console().print(
            f"{bundle} resumed in {env}"
            if data["changed"]
            else f"{bundle} was not suspended in {env}"
        )
