"""``kneo controller``: reconcile a Git repo of signed bundles, plan, status, suspend, resume.

Thin commands over :mod:`kneo.controller`: configuration comes from flags over the
``controller:`` block of ``.kneo/config.yaml``; the store is the project's (PostgreSQL when
``KNEO_SERV_DATABASE_URL`` is set, else ``.kneo/kneo_runs.sqlite``). With a service in effect
(a profile, ``--service-url``, the project's ``service.default_url``), ``status``,
``reconcile``, ``plan``, ``suspend`` and ``resume`` go to it instead and ask the controller
it runs (:mod:`kneo.cli.gitops_client`); ``run`` is the controller itself and always local.
Every command has ``--json``; errors are one line with a stable code.

Three imports wait for the commands that need them, as a command sent to a service needs
none: the project's store (:func:`~kneo.platform.factory.create_persistence_stores`, +0.33 s
with SQLAlchemy), the review renderer (:mod:`kneo.controller.review`, +78 ms, the bundle's
cryptography) and the default actor (:mod:`kneo.platform.bundles`, +0.30 s).
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
from kneo.cli.gitops_client import (
    GitOpsClient,
    RemoteGitOps,
    gitops_client,
    gitops_session,
    service_in_effect,
)
from kneo.cli.output import (
    ClientOptions,
    Output,
    TrustedHmacKeysOpt,
    console,
    options,
    progress_bar,
)
from kneo.cli.stop_signals import on_stop_signals
from kneo.clock import SystemClock
from kneo.controller.config import load_controller_config
from kneo.controller.runner import (
    build_controller,
    build_controllers,
    build_reviewer,
    parse_hmac_key_specs,
)
from kneo.errors import InvalidRequest
from kneo.metrics import start_process
from kneo.projects import DEFAULT_PROJECT
from kneo.settings import Settings
from kneo.spec.project import ProjectContext

if TYPE_CHECKING:
    from kneo.controller.config import ControllerConfig
    from kneo.controller.controller import ReconcileResult
    from kneo.controller.projects import ProjectControllers
    from kneo.store import Store

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
    settings = Settings.from_env()
    return settings, ProjectContext.discover(settings=settings)


def project_context() -> ProjectContext:
    """The project of the working directory."""
    project: ProjectContext = _context()[1]
    return project


def project_store() -> Store:
    """The project's store (``kneo registry`` reads the same one)."""
    from kneo.platform.factory import create_persistence_stores

    settings, project = _context()
    return create_persistence_stores(settings, project)[0]


def controller_config(project: ProjectContext, **flags: Any) -> ControllerConfig:
    """The project config's ``controller:`` block with the command line's ``flags`` over it
    (``--trusted-hmac-key-env`` as ``KEY_ID=VAR`` specs)."""
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
    with progress_bar() as bar:
        tasks: dict[str, Any] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield update


def _print_result(result: ReconcileResult, out: Output) -> None:
    _print_pass(result.to_dict(), out)


def _print_source_pass(result: ReconcileResult, out: Output) -> None:
    """A pass of ``run``: with the project whose source it reconciled."""
    _print_pass({**result.to_dict(), "project": result.project}, out)


def _print_pass(data: dict[str, Any], out: Output) -> None:
    """A pass or plan (``ReconcileResult.to_dict``, or the service's answer with the request
    it served) as JSON, or as lines: what it changed (or would), its problems and error."""
    if out.printed_json(data):
        return
    screen = console()
    if data.get("status") in ("queued", "running"):
        screen.print(
            f"request {data['request_id']} is {data['status']}: the leading controller has not "
            f"finished it yet (GET /v1/controller/requests/{data['request_id']})",
            markup=False,
        )
        return
    if not data["leader"]:
        screen.print(
            f"standing by: another controller holds the lock ({data['stats'].get('leader')})"
        )
        return
    head = "plan" if data["dry_run"] else "reconciled"
    if data.get("project") not in (None, DEFAULT_PROJECT):  # `run`: every project's source
        head = f"{data['project']}: {head}"
    screen.print(
        f"{head} {(data['commit'] or '-')[:12]} in {data['duration_seconds']:.2f}s "
        f"{json.dumps(data['counts'])}"
    )
    for line in action_lines(data["actions"]):
        screen.print("  " + line, markup=False)
    for problem in data["problems"]:
        screen.print(f"  problem {problem['code']}: {problem['message']}", markup=False)
    error = data["error"]
    if error:
        screen.print(
            f"error[{error['code']}] at {error['stage']}: {error['message']}", markup=False
        )


def action_lines(actions: list[dict[str, Any]]) -> list[str]:
    """One line per action that changes something (or would)."""
    lines = []
    for a in actions:
        if a["action"] == "noop" and not a.get("error"):
            continue
        rev = f" r{a['revision']}" if a.get("revision") else ""
        err = f"  [failed: {a['error']}]" if a.get("error") else ""
        lines.append(
            f"{a['action']:<18} {a['bundle']}@{a['environment']}{rev}  {a['message']}{err}"
        )
    return lines


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
    """Reconcile every project's source continuously (leader-elected).

    This directory's configuration is the default project's source; another project's is
    its definition's, those defined later included. A local repository is also watched."""
    with _controllers(
        source,
        interval=interval,
        webhook_secret_env=webhook_secret_env,
        lease_seconds=lease_seconds,
        poll_seconds=poll_seconds,
    ) as ctl:
        metrics_server = start_process(ctl.store, _context()[0])
        stop = threading.Event()

        def _stop() -> None:
            stop.set()
            ctl.request_reconcile()  # out of its wait now

        # SIGTERM (docker stop, a Kubernetes rollout) stops like Ctrl-C: the leader releases
        # its lock on the way out, so a standby takes over at once instead of after the lease.
        on_stop_signals(_stop, signal.SIGTERM)
        if not out.structured:
            _print_sources(ctl)
        startup.done()
        try:
            ctl.run(stop, on_result=lambda r: _print_source_pass(r, out))
        except KeyboardInterrupt:
            stop.set()
        finally:
            if metrics_server is not None:
                metrics_server.shutdown()


@contextmanager
def _controllers(source: Source, **overrides: Any) -> Iterator[Any]:
    """``with``: the controller of every project's source, this directory's configuration
    (flags over it) the ``default`` project's; refused when no source exists at all."""
    settings, project = _context()
    config = controller_config(project, **vars(source), **overrides)
    store = project_store()
    try:
        ctl = build_controllers(store, config, settings, host=project)
        if not ctl.sources():
            config.require_repo()  # the error that says where to name one
        try:
            yield ctl
        finally:
            ctl.close()
    finally:
        store.close()


def _print_sources(ctl: ProjectControllers) -> None:
    screen = console(stderr=True)
    for name, config in ctl.sources().items():
        built = ctl.controller_for(name)
        where = built.source.describe() if built is not None else "its source"
        label = "" if name == DEFAULT_PROJECT else f"project {name}: "
        screen.print(f"{label}watching {where} every {config.interval:g}s as {ctl.owner}")


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


#: How long ``reconcile`` and ``plan`` wait for the service's controller (the route's most).
SERVICE_WAIT_SECONDS = 120.0


def _service_pass(
    gitops: RemoteGitOps, source: Source, out: Output, ask: Callable[[], Any], **refused: Any
) -> None:
    """``reconcile`` or ``plan`` through the service: the controller it runs makes the pass
    with its own configuration, so flags that would configure one here are refused."""
    given = [f"--{name.replace('_', '-')}" for name, value in vars(source).items() if value]
    given += [flag for flag, value in refused.items() if value]
    if given:
        raise InvalidRequest(
            f"{', '.join(given)} configure a controller on this machine; the service "
            "reconciles with the controller it runs (drop the flags, or leave the service "
            "out: no --profile/--service-url and no active profile)",
            field=given[0],
        )
    try:
        data = ask()
    finally:
        gitops.close()
    _print_pass(data, out)
    if data.get("error"):
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
    opts: ClientOptions = ClientOptions(),
) -> None:
    """Reconcile once and print the actions taken; exit 1 when the reconcile failed.

    Incremental like the loop: only bundles whose files or registry entries changed since
    the last reconcile are planned (--full: all of them). With a service: its leading
    controller makes the pass."""
    gitops = gitops_client(opts)
    if isinstance(gitops, RemoteGitOps):
        _service_pass(
            gitops,
            source,
            opts,
            lambda: gitops.reconcile(wait=SERVICE_WAIT_SECONDS),
            **{"--full": full},
        )
        return
    _this_directory(opts)
    _one_pass(source, opts, lambda ctl, progress: ctl.reconcile_once(progress=progress, full=full))


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
    opts: ClientOptions = ClientOptions(),
) -> None:
    """Dry run: what a reconcile of the current commit would do; writes nothing. With --base
    and --head: per environment, what merging would change, the spec diffs, verdicts,
    blocks, freezes and approvals required; exit 1 when something would be refused. With a
    service: its leading controller makes the dry run (--base/--head: planned here, against
    the base commit)."""
    if base is not None or head is not None or format is not None:
        local = not service_in_effect(opts)
        if local:
            _this_directory(opts)
        _review(source, base, head, format, opts, local=local)
        return
    gitops = gitops_client(opts)
    if isinstance(gitops, RemoteGitOps):
        _service_pass(gitops, source, opts, lambda: gitops.plan(wait=SERVICE_WAIT_SECONDS))
        return
    _this_directory(opts)
    _one_pass(source, opts, lambda ctl, progress: ctl.plan(progress=progress))


def _this_directory(opts: ClientOptions) -> None:
    """Here, the controller is this directory's (its ``.kneo/config.yaml``'s ``controller:``
    block, into the default project); a project's controller runs in the service, so
    ``--project`` needs one (never silently ignored)."""
    if opts.project is not None:
        raise InvalidRequest(
            "--project names a project's controller on a service: add --service-url or "
            "--profile (here the controller is this directory's .kneo/config.yaml)",
            field="project",
        )


def _review(
    source: Source,
    base: str | None,
    head: str | None,
    format: str | None,
    out: Output,
    *,
    local: bool,
) -> None:
    """A pull request's plan: against the local store's registry when it holds one; with a
    service in effect, against the base commit (no local database is read)."""
    from kneo.controller.review import render_markdown, review

    if base is None or head is None:
        raise InvalidRequest("--base and --head go together", field="--base")
    chosen = format or ("json" if out.structured else "markdown")
    if chosen not in ("markdown", "json"):
        raise InvalidRequest(f"--format is markdown or json, got {chosen!r}", field="--format")
    if local:
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
                ratchet=ctl.ratchet,
                controller=ctl.config.name,
            )
    else:
        settings, project = _context()
        config = controller_config(project, **vars(source))
        loader, git = build_reviewer(config, settings, project=project)
        try:
            now = SystemClock().now()
            data = review(loader, git, None, base=base, head=head, now=now, prune=config.prune)
        finally:
            git.close()
    if chosen == "json":
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    else:
        sys.stdout.write(render_markdown(data))
    if data["refused"]:
        raise typer.Exit(1)


def _has_registry(store: Store) -> bool:
    """Whether the configured store holds a registry to plan against."""
    try:
        return bool(store.registry.list_revisions(heads=True))
    except Exception:  # no database reachable from CI: plan against the base commit
        return False


@controller_app.command("status")
@options
def status(opts: ClientOptions = ClientOptions()) -> None:
    """Last fetched commit, last reconcile start, duration and error, the leader and the
    reconcile requests waiting for it (the service's, with a service in effect)."""
    with gitops_session(opts) as gitops:
        data = gitops.status()
    if opts.printed_json(data):
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
    for env, policy in sorted((data.get("policy") or {}).items()):
        condition = policy.get("condition") or {}
        screen.print(
            f"policy {env}: {policy.get('state')}: {condition.get('message')}", markup=False
        )
    for held in data.get("prunes") or []:  # removals the policy in force holds back
        task = f" (task {held['task']})" if held.get("task") else ""
        screen.print(
            f"prune {held['bundle']} {held['environment']}: {held['state']}{task}", markup=False
        )
    for problem in data["problems"]:
        screen.print(f"problem {problem['code']}: {problem['message']}", markup=False)


ActorOpt = typer.Option(
    None,
    "--actor",
    help="Who is acting, for the audit log (default: the OS user; a service records the "
    "caller its key or sign-in names)",
)


def actor_name(actor: str | None) -> str:
    from kneo.platform.bundles import default_actor

    return actor or default_actor()


def acting(gitops: GitOpsClient, actor: str | None) -> str:
    """The actor a local change is audited under. A service audits the person its key or
    sign-in names, and no one else: ``--actor`` is refused there, not silently dropped."""
    if not gitops.remote:
        return actor_name(actor)
    if actor is not None:
        raise InvalidRequest(
            "--actor names who acts on a local store; the service records the caller its "
            "key or sign-in names",
            field="--actor",
        )
    return ""


@controller_app.command("suspend")
@options
def suspend(
    bundle: str,
    env: str = EnvOpt,
    reason: str | None = typer.Option(None, "--reason"),
    actor: str | None = ActorOpt,
    opts: ClientOptions = ClientOptions(),
) -> None:
    """Make the controller leave BUNDLE alone in ENV (no promotion, prune or drift revert)."""
    with gitops_session(opts) as gitops:
        data = gitops.suspend(bundle, env, actor=acting(gitops, actor), reason=reason)
    if not opts.printed_json(data):
        console().print(f"{bundle} suspended in {env}")


@controller_app.command("resume")
@options
def resume(
    bundle: str,
    env: str = EnvOpt,
    actor: str | None = ActorOpt,
    opts: ClientOptions = ClientOptions(),
) -> None:
    """Let the controller manage BUNDLE in ENV again (drift is reverted on the next pass)."""
    with gitops_session(opts) as gitops:
        data = gitops.resume(bundle, env, actor=acting(gitops, actor))
    if not opts.printed_json(data):
        console().print(
            f"{bundle} resumed in {env}"
            if data["changed"]
            else f"{bundle} was not suspended in {env}"
        )
