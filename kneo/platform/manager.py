"""PlatformManager: the public facade that composes the platform's collaborators.

The service, CLI, console, MCP server, worker and tests call it; it builds the engine and
hands each responsibility to one collaborator with explicit dependencies:

* :class:`~kneo.platform.admission.RunAdmission` — the one place that decides whether a run
  may start (approved bundles, the service-managed environment policy);
* :class:`~kneo.platform.preparation.SpecPreparation` — admit, load, check, compile and cache
  a spec for a new run;
* :class:`~kneo.platform.driver.RunDriver` — drive a run through the engine and write its
  outcome (engine, leases, compiled workflows, cancellation tokens);
* :class:`~kneo.platform.runs.Runs` — start, execute, cancel, continue and replay runs;
* :class:`~kneo.platform.decisions.Decisions` — resume: a decision on a human task;
* :class:`~kneo.platform.inbox.Inbox` — the inbox and one task;
* :class:`~kneo.platform.inspect.Inspection` — runs, traces, checkpoints, replay, recovery;
* :class:`~kneo.platform.sweeps.Sweeps` — timeouts and stranded runs (run on threads by
  :mod:`kneo.platform.sweeper`);
* :class:`~kneo.platform.admin.Administration` — the audit log, environment policies,
  notification deliveries and idempotency records;
* :class:`~kneo.platform.gitops.GitOps` — controller requests and the registry's reads and
  day-two writes;
* :class:`~kneo.platform.rollouts.RolloutOps` — rollouts, read and decided by people.

The facade's run, human-task, inspection, sweep, administration and GitOps methods are the
collaborators' own, forwarded by name (:class:`_Forward`: one signature and one docstring, in
the collaborator). The edges (the HTTP routes above all) call these and never ``store``.
Events (:mod:`.events`), retention (:mod:`.maintenance`) and bundle runs (:mod:`.bundles`) are
functions over the store or this facade. No collaborator imports this module.

Invariants kept by the collaborators:

* every status change goes through :func:`kneo.lifecycle.transition`;
* a step boundary is one store transaction (:class:`~kneo.platform.journal.StoreJournal`),
  and so is the outcome: status, output, continuation, checkpoint, trace and audit together;
* every write to a run is a compare-and-set on its version, so a process holding a stale
  view (a cancelled run, a continuation resumed elsewhere) can never overwrite newer state;
* resume validates the decision before anything changes and writes it with compare-and-set
  on the run and the continuation (a racing resume reads again: ``resource_locked`` while
  the winner executes the run, ``request_already_resolved`` after);
* with :attr:`PlatformManager.handoff` enabled, a decision or continue queues the rest of the
  run in that same transaction and a worker drives it (:mod:`kneo.platform.handoff`);
* an executing run holds the lock ``run:<id>``, so ``continue_run`` only takes over runs
  whose process is gone.

Two methods import their module where they run, which every platform would pay:
:func:`~kneo.platform.run_graph.registry_graph` (+5 ms) and :func:`kneo.policy.preview.preview`
(+42 ms with the bundle's cryptography).
"""

from __future__ import annotations

import functools
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, overload

from kneo.bridges import FrameworkBridges
from kneo.clock import Clock, SystemClock
from kneo.engine.executor import EngineOptions, WorkflowEngine
from kneo.engine.providers import create_provider_registry, require_spec_secrets
from kneo.engine.remote_tools import McpSessions
from kneo.errors import ConfigError
from kneo.mcp.client import McpClientSessions
from kneo.platform.admin import Administration
from kneo.platform.admission import RunAdmission
from kneo.platform.children import Children
from kneo.platform.decisions import Decisions
from kneo.platform.driver import RunDriver
from kneo.platform.events import answer_text, iter_events
from kneo.platform.gitops import GitOps
from kneo.platform.handoff import HandOff
from kneo.platform.inbox import Inbox
from kneo.platform.inspect import Inspection
from kneo.platform.maintenance import prune_retention
from kneo.platform.policy_preview import run_impact
from kneo.platform.preparation import SpecPreparation
from kneo.platform.projects import ProjectCatalog, ProjectManagers
from kneo.platform.results import RunResult
from kneo.platform.rollouts import RolloutOps
from kneo.platform.runs import Runs
from kneo.platform.sweeps import Sweeps
from kneo.platform.worker import DEFAULT_MAX_ATTEMPTS, Worker
from kneo.policy.access import HostAccess
from kneo.policy.check import resolve_environment_policy
from kneo.remote.a2a import A2AAgents
from kneo.settings import Settings
from kneo.spec.compiler import SpecCompiler
from kneo.spec.models import McpImport
from kneo.spec.project import ProjectContext
from kneo.spec.project_blocks import PolicyEnforcement
from kneo.store import Store

Providers = Callable[[str], Any]

_C = TypeVar("_C")
_P = ParamSpec("_P")
_R = TypeVar("_R")


class _Forward(Generic[_C, _P, _R]):
    """A facade method that is a collaborator's method of the same name: the manager's
    attribute ``collaborator``, asked at each call (so its signature, typing and docstring
    are written once, in the collaborator)."""

    def __init__(self, collaborator: str, method: Callable[Concatenate[_C, _P], _R]) -> None:
        self.collaborator = collaborator
        self.name = method.__name__
        self.__doc__ = method.__doc__
        self.__wrapped__ = method  # inspect.signature and help() show the collaborator's

    def __set_name__(self, owner: type, name: str) -> None:
        if name != self.name:
            raise TypeError(f"{owner.__name__}.{name} forwards to a method named {self.name}")

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> _Forward[_C, _P, _R]: ...

    @overload
    def __get__(self, obj: object, owner: type | None = None) -> Callable[_P, _R]: ...

    def __get__(self, obj: object | None, owner: type | None = None) -> Any:
        if obj is None:
            return self
        return getattr(getattr(obj, self.collaborator), self.name)

    def __call__(self, facade: object, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        """The unbound form, ``PlatformManager.method(manager, ...)``."""
        method: Callable[_P, _R] = self.__get__(facade)
        return method(*args, **kwargs)


def _default_providers(settings: Settings, project: ProjectContext | None) -> Providers:
    """The default providers, with the project's provider secrets."""
    secrets_map = project.config.secrets.providers if project is not None else None
    return create_provider_registry(settings, secrets=secrets_map).get


class PlatformManager:
    """Runs specs durably. Both stores may be (and for atomic pauses must be) one Store."""

    def __init__(
        self,
        *,
        compiler: SpecCompiler,
        run_state_store: Store,
        continuation_store: Store | None = None,
        settings: Settings | None = None,
        project: ProjectContext | None = None,
        providers: Providers | None = None,
        clock: Clock | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if continuation_store is not None and continuation_store is not run_state_store:
            raise ConfigError(
                "run_state_store and continuation_store must be the same Store: a pause writes "
                "the run and its continuation in one transaction"
            )
        self.compiler = compiler
        self.store = run_state_store
        self.settings = settings or run_state_store.settings
        self.project = project
        self.clock: Clock = clock or getattr(run_state_store, "clock", None) or SystemClock()
        providers = providers or _default_providers(self.settings, project)
        self.engine = self._engine(compiler, providers, sleep)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._compose_run_path(compiler, project, providers)
        self._compose_run_work(project)
        self._worker: Worker | None = None
        self._sleep = sleep

    def _compose_run_path(
        self, compiler: SpecCompiler, project: ProjectContext | None, providers: Providers
    ) -> None:
        """What a run goes through to start and execute: the admission gate, the driver,
        the spec preparation. Every input-keyed cache is bounded, so distinct specs cannot
        grow the process (``KNEO_SERV_SPEC_CACHE_ENTRIES``)."""
        entries = self.settings.spec_cache_entries
        self.admission = RunAdmission(
            store=self.store, compiler=compiler, project=project, cache_entries=entries
        )
        self.driver = RunDriver(
            engine=self.engine,
            compiler=compiler,
            store=self.store,
            owner=self.owner,
            lease_seconds=max(5.0, float(self.settings.worker_lease_seconds)),
            access=self.admission.run_access,
            cache_entries=entries,
        )
        self.preparation = SpecPreparation(
            compiler=compiler,
            project=project,
            admission=self.admission,
            driver=self.driver,
            cache_entries=entries,
            check_spec=functools.partial(require_spec_secrets, self.settings, providers),
        )

    def _compose_run_work(self, project: ProjectContext | None) -> None:
        """What acts on runs once they exist: runs, decisions and the inbox, inspection,
        sweeps and child runs (the driver calls the children after each outcome)."""
        #: decisions and continues go on in the caller, or on workers (kneo.platform.handoff)
        self.handoff = HandOff()
        self.runs = Runs(
            store=self.store,
            clock=self.clock,
            settings=self.settings,
            preparation=self.preparation,
            admission=self.admission,
            driver=self.driver,
            handoff=self.handoff,
        )
        self.decisions = Decisions(
            store=self.store, clock=self.clock, settings=self.settings, driver=self.driver
        )
        self.decisions.handoff = self.handoff
        self.decisions.limited = self.admission.limits is not None
        self.decisions.assign_by(project.config if project is not None else None)
        self.inbox = Inbox(
            store=self.store,
            clock=self.clock,
            settings=self.settings,
            driver=self.driver,
            assignment_rule=self.decisions.assignment_rule,
        )
        self.inspection = Inspection(store=self.store, driver=self.driver)
        self.sweeps = Sweeps(
            store=self.store, clock=self.clock, driver=self.driver, decisions=self.decisions
        )
        #: workflows that call workflows: child runs started, reported and cancelled
        self.children = Children(self)
        self.driver.after_outcome = self.children.after_outcome
        self.driver.after_cancel = self.children.after_cancel
        self.sweeps.children = self.children.sweep

    def _engine(
        self, compiler: SpecCompiler, providers: Providers, sleep: Callable[[float], None]
    ) -> WorkflowEngine:
        """The engine this process's runs execute on (its MCP sessions through the grant)."""
        return WorkflowEngine(
            providers=providers,
            tools=compiler.tool_registry,
            runtimes=compiler.runtime_registry,
            clock=self.clock,
            sleep=sleep,
            options=EngineOptions(
                record_tool_arguments=self.settings.otel_record_arguments,
                record_tool_results=self.settings.otel_record_results,
            ),
            mcp=self._mcp_sessions,
            remote_agents=A2AAgents(
                self.settings, lambda: self.admission.host_access(None, "spec")
            ),
            bridges=FrameworkBridges(
                self.settings, lambda: self.admission.host_access(None, "spec")
            ),
        )

    def _mcp_sessions(self, imports: Sequence[McpImport], access: HostAccess | None) -> McpSessions:
        """A run's MCP sessions (the SDK loads only when a spec imports a server), each
        import as the run's grant allows (the driver gives every run one; without one, the
        strictest: a spec in the project's default environment)."""
        grant = access or self.admission.host_access(None, "spec")
        return McpClientSessions(imports, settings=self.settings, access=grant)

    @functools.cached_property
    def admin(self) -> Administration:
        """The audit log, environment policies, notification deliveries and idempotency
        records (built on first use: most processes never ask)."""
        return Administration(store=self.store)

    @functools.cached_property
    def projects(self) -> ProjectManagers[PlatformManager]:
        """The managers of the other projects on this manager's database (built on first
        use: a single-team install never asks), each of this manager's class."""
        return ProjectManagers(self, self._project_manager)

    def _project_manager(self, **parts: Any) -> PlatformManager:
        """A project's manager: this one's class, sharing this one's hand-off, so a project's
        decisions and continues go to the workers exactly when this manager's do."""
        built = type(self)(**parts)
        built.handoff = built.runs.handoff = built.decisions.handoff = self.handoff
        return built

    @functools.cached_property
    def catalog(self) -> ProjectCatalog:
        """The project catalog: every project's name and status, an administrator's writes."""
        host = self.project or ProjectContext.discover(settings=self.settings)
        return ProjectCatalog(self.store, host, self.projects.forget)

    def for_project(self, name: str) -> PlatformManager:
        """The manager of project (tenant) ``name``: this one for its own project, else one on
        the store's view of ``name`` with that project's definition
        (:mod:`kneo.platform.projects`); ``project_not_found`` when it is unknown or
        archived."""
        return self.projects.get(name)

    @functools.cached_property
    def gitops(self) -> GitOps:
        """Controller requests and the registry's reads and day-two writes."""
        return GitOps(store=self.store)

    @functools.cached_property
    def rollout_ops(self) -> RolloutOps:
        """The project's rollouts as people read and decide them."""
        return RolloutOps(store=self.store, clock=self.clock)

    @property
    def lease_seconds(self) -> float:
        """How long a run's execution lease lasts unless renewed (``KNEO_SERV_WORKER_LEASE_SECONDS``,
        at least 5 s)."""
        return self.driver.lease_seconds

    # ================================================================== runs

    run = _Forward("runs", Runs.run)
    start_run = _Forward("runs", Runs.start_run)
    run_from_spec = _Forward("runs", Runs.run_from_spec)
    start_run_from_spec = _Forward("runs", Runs.start_run_from_spec)
    execute_run = _Forward("runs", Runs.execute_run)
    cancel = _Forward("runs", Runs.cancel)
    continue_run = _Forward("runs", Runs.continue_run)
    replay_run = _Forward("runs", Runs.replay_run)

    # ================================================================== human tasks

    resume = _Forward("decisions", Decisions.resume)
    decide = _Forward("decisions", Decisions.decide)
    list_human_tasks = _Forward("inbox", Inbox.list_human_tasks)
    get_human_task = _Forward("inbox", Inbox.get_human_task)

    # ================================================================== inspection

    get_run = _Forward("inspection", Inspection.get_run)
    get_run_result = _Forward("inspection", Inspection.get_run_result)
    get_run_record = _Forward("inspection", Inspection.get_run_record)
    read_events = _Forward("inspection", Inspection.read_events)
    list_runs = _Forward("inspection", Inspection.list_runs)
    trace = _Forward("inspection", Inspection.trace)
    checkpoints = _Forward("inspection", Inspection.checkpoints)
    replay = _Forward("inspection", Inspection.replay)
    checkpoint_diff = _Forward("inspection", Inspection.checkpoint_diff)
    recovery = _Forward("inspection", Inspection.recovery)
    run_graph = _Forward("inspection", Inspection.run_graph)

    def events(
        self,
        run_id: str,
        *,
        after: int = 0,
        follow: bool = False,
        through_pauses: bool = False,
        poll_seconds: float = 0.25,
        timeout_seconds: float | None = None,
        include: Sequence[str] = (),
    ) -> Iterator[Any]:
        """The run's events (``RunEvent``) after sequence ``after``; see ``events``.
        ``include``: the opt-in event types to add (``answer.delta``)."""
        return iter_events(
            self.store,
            run_id,
            after=after,
            follow=follow,
            through_pauses=through_pauses,
            poll_seconds=poll_seconds,
            timeout_seconds=timeout_seconds,
            sleep=self._sleep,
            include=frozenset(include),
        )

    def stream(
        self, run_id: str, *, follow: bool = True, poll_seconds: float = 0.1
    ) -> Iterator[str]:
        """The run's answer text as its agents generate it (``model.stream: true``), redacted
        as the final answer, until the run pauses or ends (docs/agents.md)."""
        events = self.events(
            run_id, follow=follow, poll_seconds=poll_seconds, include=("answer.delta",)
        )
        return answer_text(events)

    # ================================================================== projects

    list_projects = _Forward("catalog", ProjectCatalog.list_projects)
    get_project = _Forward("catalog", ProjectCatalog.get_project)
    create_project = _Forward("catalog", ProjectCatalog.create_project)
    update_project = _Forward("catalog", ProjectCatalog.update_project)
    archive_project = _Forward("catalog", ProjectCatalog.archive_project)

    # ================================================================== administration

    add_audit = _Forward("admin", Administration.add_audit)
    list_audit_events = _Forward("admin", Administration.list_audit_events)
    get_audit_event = _Forward("admin", Administration.get_audit_event)
    environment_policies = _Forward("admin", Administration.environment_policies)
    environment_policy = _Forward("admin", Administration.environment_policy)
    stored_policy = _Forward("admin", Administration.stored_policy)
    put_environment_policy = _Forward("admin", Administration.put_environment_policy)

    def registry_graph(self, bundle: str, environment: str) -> dict[str, Any]:
        """The workflow graph of ``bundle``'s active revision in ``environment``
        (:func:`kneo.platform.run_graph.registry_graph`)."""
        from kneo.platform.run_graph import registry_graph  # cost: module docstring

        return registry_graph(self.store, self.compiler, bundle, environment)

    def preview_environment_policy(
        self, environment: str, policy: Mapping[str, Any]
    ) -> dict[str, Any]:
        """What storing ``policy`` (a ``PolicyEnforcement`` as ``PUT`` takes it) for
        ``environment`` would change against the policy in
        force (stored, else the project's): the gates that move
        (:class:`kneo.policy.preview.PolicyPreview`) and the recent runs there whose
        admission it changes (:func:`kneo.platform.policy_preview.run_impact`). Writes
        nothing."""
        from kneo.policy.preview import preview

        project, proposed = self.project, PolicyEnforcement.model_validate(dict(policy))
        found = preview(
            environment,
            proposed,
            stored=self.stored_policy(environment),
            project=resolve_environment_policy(project, environment) if project else None,
        )
        impact = run_impact(
            self.store, self.compiler, project, environment, found.current, proposed
        )
        return {**found.to_dict(), **impact}

    list_notifications = _Forward("admin", Administration.list_notifications)
    retry_notifications = _Forward("admin", Administration.retry_notifications)
    idempotent = _Forward("admin", Administration.idempotent)

    # ================================================================== GitOps

    controller_status = _Forward("gitops", GitOps.controller_status)
    request_reconcile = _Forward("gitops", GitOps.request_reconcile)
    request_plan = _Forward("gitops", GitOps.request_plan)
    controller_request = _Forward("gitops", GitOps.controller_request)
    webhook_controller = _Forward("gitops", GitOps.webhook_controller)
    webhook_secret_variable = _Forward("gitops", GitOps.webhook_secret_variable)
    queue_webhook = _Forward("gitops", GitOps.queue_webhook)
    registry_bundles = _Forward("gitops", GitOps.registry_bundles)
    registry_bundle = _Forward("gitops", GitOps.registry_bundle)
    registry_diff = _Forward("gitops", GitOps.registry_diff)
    blocked_digests = _Forward("gitops", GitOps.blocked_digests)
    rollback_bundle = _Forward("gitops", GitOps.rollback_bundle)
    pin_bundle = _Forward("gitops", GitOps.pin_bundle)
    unpin_bundle = _Forward("gitops", GitOps.unpin_bundle)
    suspend_bundle = _Forward("gitops", GitOps.suspend_bundle)
    resume_bundle = _Forward("gitops", GitOps.resume_bundle)
    block_digest = _Forward("gitops", GitOps.block_digest)
    unblock_digest = _Forward("gitops", GitOps.unblock_digest)

    list_rollouts = _Forward("rollout_ops", RolloutOps.list_rollouts)
    get_rollout = _Forward("rollout_ops", RolloutOps.get_rollout)
    decide_rollout = _Forward("rollout_ops", RolloutOps.decide_rollout)

    # ================================================================== sweeps, maintenance

    prune_expired_human_tasks = _Forward("sweeps", Sweeps.prune_expired_human_tasks)
    prune_timed_out_runs = _Forward("sweeps", Sweeps.prune_timed_out_runs)
    recover_stranded_runs = _Forward("sweeps", Sweeps.recover_stranded_runs)

    def prune_retention(
        self, policy: Any = None, *, now: Any = None, dry_run: bool = False
    ) -> dict[str, int]:
        """Delete runs, checkpoints, queue records, continuations, artifacts and logs older
        than their windows (``policy``, else project ``retention:`` under
        ``KNEO_SERV_RETENTION_*``); counts per category. See :mod:`kneo.platform.maintenance`."""
        return prune_retention(
            self.store,
            settings=self.settings,
            project=self.project,
            policy=policy,
            now=now,
            dry_run=dry_run,
        )

    # ================================================================== worker

    def start_worker(
        self, *, poll_seconds: float | None = None, max_attempts: int | None = None
    ) -> None:
        """Execute queued runs on a background thread until :meth:`stop_worker`: the queue
        loop of ``kneo worker`` (:class:`~kneo.platform.worker.Worker`), with its backoff,
        attempt limit (``max_attempts``, default 5 as ``--max-attempts``) and
        database-outage handling, and its sweeps."""
        if self._worker is not None and self._worker.is_alive():
            return

        self._worker = Worker(
            self,
            name="library",
            poll_seconds=poll_seconds,
            max_attempts=max_attempts or DEFAULT_MAX_ATTEMPTS,
        )
        self._worker.start()

    def stop_worker(self, timeout: float | None = 10.0) -> None:
        """Stop claiming; wait up to ``timeout`` seconds for runs in flight, then hand them
        over (:meth:`Worker.stop <kneo.platform.worker.Worker.stop>`)."""
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.stop(timeout=30.0 if timeout is None else timeout)

    def close(self) -> None:
        """Stop the worker :meth:`start_worker` started and release the store's connections.

        A process's last SQLite connection to close checkpoints the WAL into the database file
        and removes it; a process that exits with one still open leaves the WAL (thousands of pages)
        for the next process to read back and verify, all of it, before its first query."""
        self.stop_worker()
        if "projects" in self.__dict__:
            self.projects.close()
        self.store.close()


__all__ = ["PlatformManager", "RunResult"]
