"""The one client interface every ``run``/``runs``/``human`` command goes through.

:class:`LocalClient` drives an in-process :class:`~kneo.platform.PlatformManager` over the
project's store (``.kneo/kneo_runs.sqlite`` by default); :class:`~kneo.cli.service_client.ServiceClient`
talks to a service (``--service-url``, ``--profile``, the project's ``service.default_url``, the
active profile). Every method returns the JSON shape of the matching HTTP route, so commands
render local and remote results alike.

A command talking to a service loads no platform: :mod:`kneo.platform` and its results
(+0.47 s with SQLAlchemy), :mod:`kneo.spec.project` (+0.13 s with pydantic) and
:mod:`kneo.cli.profiles` (+8 ms) are imported where the local side needs them, and the HTTP
side (:mod:`kneo.cli.service_client`, httpx2) only when a service is chosen.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from kneo import startup, tracing
from kneo.cli.platform_client import PlatformClient
from kneo.errors import ConfigError, ErrorCode, InvalidRequest, KneoError
from kneo.projects import DEFAULT_PROJECT, check_project_name
from kneo.settings import Settings
from kneo.tools.defaults import create_tool_registry

#: a person's decision on a rollout
RolloutDecision = Literal["promote", "abort", "retry"]

if TYPE_CHECKING:
    from kneo.engine.human import Decision
    from kneo.platform import RolloutQuery
    from kneo.platform.manager import PlatformManager
    from kneo.platform.projects import ProjectCatalog
    from kneo.spec.project import ProjectContext
    from kneo.spec.project_blocks import PolicyEnforcement
    from kneo.tools import ToolRegistry


class LocalClient:
    """In-process platform over the local project's store; built on first use.

    ``settings`` and ``project`` are the ones :func:`get_client` already read while choosing
    between local and HTTP, so a command discovers its project once. Whoever opens the store
    holds every scope, so its views show personal data like a decider's (``kneo.redaction``).
    """

    def __init__(
        self,
        *,
        environment: str | None = None,
        cwd: Path | None = None,
        actor: str = "cli",
        settings: Settings | None = None,
        project: ProjectContext | None = None,
        tenant: str | None = None,
    ) -> None:
        self._tenant = check_project_name(tenant) if tenant is not None else None
        self._environment = environment
        self._cwd = cwd
        self._actor = actor
        self._settings = settings
        self._project = project
        self._manager: PlatformManager | None = None
        self._root: PlatformManager | None = None
        self._tools_error: KneoError | None = None

    @property
    def manager(self) -> PlatformManager:
        """The platform with the project's tools: what runs or resumes a spec. A tool
        registry factory that cannot be loaded is an error here (``E_TOOL_FACTORY``)."""
        manager = self._platform(tools_required=True)
        if self._tools_error is not None:
            raise self._tools_error
        return manager

    @property
    def reader(self) -> PlatformManager:
        """The platform for commands that only read or settle stored state (``runs get``,
        ``human list``, ``runs cancel`` ...): they need no tools, so a broken tool registry
        factory is a warning on stderr, not a failure."""
        return self._platform(tools_required=False)

    def _platform(self, *, tools_required: bool) -> PlatformManager:
        if self._manager is None:
            from kneo.platform.factory import create_platform
            from kneo.spec.project import ProjectContext

            settings = self._settings or Settings.from_env()
            project = self._project or ProjectContext.discover(
                cwd=self._cwd, settings=settings, env=self._environment
            )
            tools = self._project_tools(project, required=tools_required)
            # ``kneo run``, ``human resume`` and ``runs continue`` run steps here: traced like
            # the service and workers when KNEO_SERV_OTEL_ENABLED=true (a no-op otherwise)
            tracing.configure(settings)
            self._root = create_platform(settings, project, tool_registry=tools)
            # the project (tenant) --project names, on this store: project_not_found if none
            tenant = self._tenant
            self._manager = self._root if tenant is None else self._root.for_project(tenant)
            startup.done()  # what follows is the command's own work
        return self._manager

    def _project_tools(self, project: ProjectContext, *, required: bool) -> ToolRegistry:
        """The project's tool registry; when not ``required``, a factory that fails to load
        leaves the example tools and a warning (the error is kept for :attr:`manager`)."""
        try:
            return project.tool_registry()
        except ConfigError as exc:
            if required or exc.code != "E_TOOL_FACTORY":
                raise
            import sys

            self._tools_error = exc
            sys.stderr.write(
                f"warning: {exc.message} (tool_registry in .kneo/config.yaml); this command "
                "needs no tools, but validating and running specs fail until it is fixed\n"
            )
            return create_tool_registry(include_examples=True)

    @property
    def actor(self) -> str:
        """Who this client's runs and decisions are recorded under."""
        return self._actor

    def decide_as(self, actor: str | None) -> None:
        """Record the decisions this client makes under ``actor``, or the OS user when none
        is given (a service records its API key's name instead)."""
        from kneo.platform.bundles import default_actor

        self._actor = actor or default_actor()

    def close(self) -> None:
        if self._root is not None:
            self._root.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: object = None,
        params: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        wait: bool = False,
    ) -> Any:
        """A raw API request needs a service: refused locally (``usage_error``)."""
        raise KneoError(
            f"{method} {path} is a request to a Kneo service: pass --service-url or --profile",
            code=ErrorCode.usage_error,
        )

    def run(
        self,
        *,
        spec_path: str,
        input_text: str,
        target: str,
        environment: str | None,
        on_created: Callable[[str], None] | None = None,
        skills: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        result = self.manager.run_from_spec(
            input_text=input_text,
            spec_path=spec_path,
            target=target,
            environment=environment,
            actor=self._actor,
            on_created=on_created,
            skills=skills,
        )
        return dict(result.to_dict(show_personal=True))

    def get_run(self, run_id: str) -> dict[str, Any]:
        return dict(self.reader.get_run(run_id, show_personal=True))

    def trace(self, run_id: str) -> dict[str, Any]:
        return dict(self.reader.trace(run_id))

    def checkpoints(self, run_id: str) -> dict[str, Any]:
        return dict(self.reader.checkpoints(run_id))

    def replay(self, run_id: str) -> dict[str, Any]:
        return dict(self.reader.replay(run_id))

    def checkpoint_diff(
        self, run_id: str, *, from_sequence: int | None, to_sequence: int | None
    ) -> dict[str, Any]:
        return dict(
            self.reader.checkpoint_diff(
                run_id, from_sequence=from_sequence, to_sequence=to_sequence
            )
        )

    def cancel(self, run_id: str) -> dict[str, Any]:
        return dict(self.reader.cancel(run_id, actor=self._actor).to_dict(show_personal=True))

    def recovery(self, run_id: str) -> dict[str, Any]:
        return dict(self.reader.recovery(run_id))

    def continue_run(self, run_id: str, *, to_revision: int | str | None = None) -> dict[str, Any]:
        result = self.manager.continue_run(run_id, actor=self._actor, to_revision=to_revision)
        return dict(result.to_dict(show_personal=True))

    def list_runs(
        self, *, status: str | None, limit: int, cursor: str | None = None, **filters: Any
    ) -> dict[str, Any]:
        """``filters``: the fields of :class:`~kneo.platform.RunQuery` the command line
        gives (times as ISO 8601 text, as the service takes them)."""
        from datetime import datetime

        from kneo.platform import RunQuery

        for name in ("created_after", "created_before"):
            if isinstance(filters.get(name), str):
                filters[name] = datetime.fromisoformat(filters[name])
        query = RunQuery(status=status, limit=limit, cursor=cursor, count=False, **filters)
        return dict(self.reader.list_runs(query))

    def list_human_tasks(self, *, run_id: str | None, limit: int, **filters: Any) -> dict[str, Any]:
        """``filters``: the fields of :class:`~kneo.platform.TaskQuery` the command line
        gives, its ``sort_order``, ``include`` and ``older_than_seconds``."""
        from kneo.platform import TaskQuery

        order = filters.pop("sort_order", "asc")
        counts = filters.pop("include", None) == "counts"
        older = filters.pop("older_than_seconds", None)
        query = TaskQuery(
            run_id=run_id,
            limit=limit,
            sort="oldest" if order == "asc" else "newest",
            count=counts,
            **filters,
        )
        return dict(
            self.reader.list_human_tasks(
                query, older_than_seconds=older, by_assignee=counts, show_personal=True
            )
        )

    def replay_run(self, run_id: str, *, reuse: str) -> dict[str, Any]:
        result = self.manager.replay_run(run_id, reuse=reuse, actor=self._actor)
        return dict(result.to_dict(show_personal=True))

    def get_human_task(self, continuation_id: str) -> dict[str, Any]:
        return dict(self.reader.get_human_task(continuation_id, show_personal=True))

    def list_audit(
        self,
        *,
        event_type: str | None,
        run_id: str | None,
        continuation_id: str | None,
        limit: int,
        cursor: str | None,
    ) -> dict[str, Any]:
        from kneo.platform import AuditQuery
        from kneo.platform.results import audit_listing

        page = self.reader.store.audit.list_audit(
            AuditQuery(
                event_type=event_type, run_id=run_id, continuation_id=continuation_id,
                limit=limit, cursor=cursor, count=False,
            )
        )  # fmt: skip
        return audit_listing(page)

    def preview_environment_policy(
        self, environment: str, policy: PolicyEnforcement
    ) -> dict[str, Any]:
        """What storing ``policy`` would change (the local store's stored policy counts)."""
        proposed = policy.model_dump(mode="json")
        return dict(self.reader.preview_environment_policy(environment, proposed))

    def get_audit(self, event_id: str) -> dict[str, Any]:
        from kneo.platform.results import audit_to_dict

        return audit_to_dict(self.reader.store.audit.get_audit(event_id))

    # The directory's own store: whoever opens it holds every power (see the class docstring).

    def list_projects(self) -> dict[str, Any]:
        projects = self._catalog().list_projects(lambda names: names)
        return {"projects": projects, "home": self._tenant or DEFAULT_PROJECT}

    def get_project(self, name: str) -> dict[str, Any]:
        return dict(self._catalog().get_project(name, definition=True))

    def create_project(self, name: str, definition: dict[str, Any] | None) -> dict[str, Any]:
        return dict(self._catalog().create_project(name, definition, actor=self._actor))

    def update_project(self, name: str, definition: dict[str, Any] | None) -> dict[str, Any]:
        return dict(self._catalog().update_project(name, definition, actor=self._actor))

    def archive_project(self, name: str) -> dict[str, Any]:
        return dict(self._catalog().archive_project(name, actor=self._actor))

    def _catalog(self) -> ProjectCatalog:
        self._platform(tools_required=False)  # checks --project names an active project
        assert self._root is not None
        return self._root.catalog

    def resume(
        self, continuation_id: str, decision: Decision, *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        result = self.manager.resume(
            continuation_id, decision, actor=self._actor, idempotency_key=idempotency_key
        )
        return dict(result.to_dict(show_personal=True))

    def decide(
        self,
        continuation_id: str,
        decisions: Sequence[Decision],
        *,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        result = self.manager.decide(
            continuation_id,
            decisions,
            actor=self._actor,
            idempotency_key=idempotency_key,
        )
        return dict(result.to_dict(show_personal=True))

    def list_rollouts(self, query: RolloutQuery) -> dict[str, Any]:
        return self.reader.list_rollouts(query)

    def get_rollout(self, rollout_id: str) -> dict[str, Any]:
        return self.reader.get_rollout(rollout_id)

    def decide_rollout(
        self,
        rollout_id: str,
        decision: str,
        *,
        full: bool = False,
        reason: str | None = None,
    ) -> dict[str, Any]:
        """Decided under this client's actor (``--actor``, else the OS user): the
        environment's approvers name it."""
        chosen = {"promote": "promote", "abort": "abort", "retry": "retry"}.get(decision)
        if chosen is None:
            raise InvalidRequest(f"not a rollout decision: {decision!r}", field="decision")
        return self.reader.decide_rollout(
            rollout_id, cast("RolloutDecision", chosen), actor=self._actor, full=full, reason=reason
        )


def get_client(
    *,
    service_url: str | None = None,
    profile: str | None = None,
    environment: str | None = None,
    project: str | None = None,
) -> PlatformClient:
    """The local client, or the HTTP one when a service URL or profile is in effect.

    Precedence (:func:`kneo.cli.profiles.resolve_connection`): ``--service-url``,
    ``--profile``, ``service.default_url`` in the project config, the active profile, else
    local. The HTTP stack (:mod:`kneo.cli.service_client`, httpx2) is imported only when a
    service is chosen: a local command never pays for it. ``project``: the project (tenant)
    to act in, ``--project``; else ``KNEO_SERV_PROJECT``, else the profile's.
    """
    from kneo.cli.profiles import resolve_connection

    settings = Settings.from_env()
    context = None
    if not service_url and not profile:  # only then can the project config pick a service
        from kneo.spec.project import ProjectContext

        context = ProjectContext.discover(settings=settings, env=environment)
    connection = resolve_connection(
        service_url=service_url,
        profile=profile,
        settings=settings,
        project_default_url=context.config.service.default_url if context else None,
        project=project,
    )
    if connection is None:
        return LocalClient(
            environment=environment,
            settings=settings,
            project=context,
            tenant=project or settings.client_project or None,
        )
    from kneo.cli.service_client import ServiceClient

    return ServiceClient.connected(connection, settings)
