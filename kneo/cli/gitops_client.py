"""Where ``kneo registry`` and ``kneo controller`` read and change GitOps state.

With a service in effect (``--service-url``, ``--profile``, the project's
``service.default_url`` or the active profile: :func:`kneo.cli.profiles.resolve_connection`)
every read and write goes to its HTTP routes, with the key that profile holds, and the
service records the caller as the actor; no local database is opened. Otherwise the project's
own store (``KNEO_SERV_DATABASE_URL``, else ``.kneo/kneo_runs.sqlite``) answers through the
same :class:`~kneo.platform.gitops.GitOps` methods the routes call. Both answer in the
routes' JSON shapes, so a command renders one shape whichever way it went.

A service in effect opens no local store: :mod:`kneo.platform.gitops` (+0.25 s with
SQLAlchemy and the controller) is imported on the local side only.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

from kneo.cli.profiles import project_default_url, resolve_connection
from kneo.cli.service_client import connect
from kneo.projects import DEFAULT_PROJECT
from kneo.redaction import reduce_url
from kneo.settings import Settings

if TYPE_CHECKING:
    from kneo.cli.output import ClientOptions
    from kneo.cli.service_client import ServiceClient
    from kneo.platform.gitops import GitOps
    from kneo.store import Store

#: Registry pages a command reads at a time (a listing walks every page).
PAGE = 500


class GitOpsClient(Protocol):
    """The GitOps reads and writes the CLI makes; ``actor`` is used by the local store only
    (a service records the caller's identity)."""

    remote: bool

    def close(self) -> None: ...

    def bundles(self, environment: str | None, *, status: str, cursor: str | None) -> Any: ...

    def bundle(self, bundle: str, environment: str) -> Any: ...

    def diff(self, bundle: str, environment: str, from_revision: int, to_revision: int) -> Any: ...

    def blocked(self) -> Any: ...

    def rollback(
        self, bundle: str, environment: str, *, to: int, actor: str, reason: str | None
    ) -> Any: ...

    def pin(self, bundle: str, environment: str, *, actor: str, reason: str | None) -> Any: ...

    def unpin(self, bundle: str, environment: str, *, actor: str) -> Any: ...

    def suspend(self, bundle: str, environment: str, *, actor: str, reason: str | None) -> Any: ...

    def resume(self, bundle: str, environment: str, *, actor: str) -> Any: ...

    def block(self, digest: str, *, actor: str, reason: str) -> Any: ...

    def unblock(self, digest: str, *, actor: str) -> Any: ...

    def status(self) -> Any: ...


def _key(bundle: str, environment: str) -> str:
    return f"/v1/registry/bundles/{quote(bundle, safe='')}/{quote(environment, safe='')}"


class RemoteGitOps:
    """The service's GitOps routes (``registry:read`` to read, ``controller:write`` to
    change or to ask the leader for a pass or a plan)."""

    remote = True

    def __init__(self, client: ServiceClient) -> None:
        self.client = client

    def close(self) -> None:
        self.client.close()

    def bundles(self, environment: str | None, *, status: str, cursor: str | None) -> Any:
        params = {"environment": environment, "status": status, "limit": PAGE, "cursor": cursor}
        return self.client.request("GET", "/v1/registry/bundles", params=params)

    def bundle(self, bundle: str, environment: str) -> Any:
        return self.client.request("GET", _key(bundle, environment))

    def diff(self, bundle: str, environment: str, from_revision: int, to_revision: int) -> Any:
        params = {"from": from_revision, "to": to_revision}
        return self.client.request("GET", _key(bundle, environment) + "/diff", params=params)

    def blocked(self) -> Any:
        return self.client.request("GET", "/v1/registry/blocked-digests")

    def rollback(
        self, bundle: str, environment: str, *, to: int, actor: str, reason: str | None
    ) -> Any:
        body = {"to": to, "reason": reason}
        return self.client.request("POST", _key(bundle, environment) + "/rollback", json=body)

    def pin(self, bundle: str, environment: str, *, actor: str, reason: str | None) -> Any:
        body = {"reason": reason}
        return self.client.request("POST", _key(bundle, environment) + "/pin", json=body)

    def unpin(self, bundle: str, environment: str, *, actor: str) -> Any:
        return self.client.request("DELETE", _key(bundle, environment) + "/pin")

    def suspend(self, bundle: str, environment: str, *, actor: str, reason: str | None) -> Any:
        body = {"reason": reason}
        return self.client.request("POST", _key(bundle, environment) + "/suspend", json=body)

    def resume(self, bundle: str, environment: str, *, actor: str) -> Any:
        return self.client.request("POST", _key(bundle, environment) + "/resume")

    def block(self, digest: str, *, actor: str, reason: str) -> Any:
        body = {"digest": digest, "reason": reason}
        return self.client.request("POST", "/v1/registry/blocked-digests", json=body)

    def unblock(self, digest: str, *, actor: str) -> Any:
        return self.client.request(
            "DELETE", f"/v1/registry/blocked-digests/{quote(digest, safe='')}"
        )

    def status(self) -> Any:
        return self.client.request("GET", "/v1/controller/status")

    def reconcile(self, *, wait: float) -> Any:
        """Ask the leading controller for a pass now (``POST /v1/controller/reconcile``)."""
        return self.client.request("POST", "/v1/controller/reconcile", params={"wait": wait})

    def plan(self, *, wait: float) -> Any:
        """Ask the leading controller for a dry run (``POST /v1/controller/plan``)."""
        return self.client.request("POST", "/v1/controller/plan", params={"wait": wait})


class LocalGitOps:
    """The project's own store, through the platform's GitOps methods (opened on first
    use, closed with the command)."""

    remote = False

    def __init__(self, project: str | None = None) -> None:
        self._store: Store | None = None
        self._project = project

    @property
    def store(self) -> Store:
        if self._store is None:
            from kneo.cli.controller_cmd import (
                project_store,  # import cycle: controller_cmd imports this module
            )

            self._store = project_store()
        if self._project is not None:
            return self._store.for_project(self._project)
        return self._store

    @property
    def gitops(self) -> GitOps:
        from kneo.platform.gitops import GitOps

        return GitOps(store=self.store)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()

    def bundles(self, environment: str | None, *, status: str, cursor: str | None) -> Any:
        from kneo.platform import RegistryQuery

        chosen = None if status == "all" else status
        query = RegistryQuery(environment=environment, status=chosen, limit=PAGE, cursor=cursor)
        return self.gitops.registry_bundles(query)

    def bundle(self, bundle: str, environment: str) -> Any:
        return self.gitops.registry_bundle(bundle, environment)

    def diff(self, bundle: str, environment: str, from_revision: int, to_revision: int) -> Any:
        return self.gitops.registry_diff(
            bundle, environment, from_revision=from_revision, to_revision=to_revision
        )

    def blocked(self) -> Any:
        items = self.gitops.blocked_digests()
        return {"blocked": items, "count": len(items)}

    def rollback(
        self, bundle: str, environment: str, *, to: int, actor: str, reason: str | None
    ) -> Any:
        return self.gitops.rollback_bundle(bundle, environment, to=to, actor=actor, reason=reason)

    def pin(self, bundle: str, environment: str, *, actor: str, reason: str | None) -> Any:
        return self.gitops.pin_bundle(bundle, environment, actor=actor, reason=reason)

    def unpin(self, bundle: str, environment: str, *, actor: str) -> Any:
        return self.gitops.unpin_bundle(bundle, environment, actor=actor)

    def suspend(self, bundle: str, environment: str, *, actor: str, reason: str | None) -> Any:
        return self.gitops.suspend_bundle(bundle, environment, actor=actor, reason=reason)

    def resume(self, bundle: str, environment: str, *, actor: str) -> Any:
        return self.gitops.resume_bundle(bundle, environment, actor=actor)

    def block(self, digest: str, *, actor: str, reason: str) -> Any:
        return self.gitops.block_digest(digest, actor=actor, reason=reason)

    def unblock(self, digest: str, *, actor: str) -> Any:
        return self.gitops.unblock_digest(digest, actor=actor)

    def status(self) -> Any:
        """The status every replica shows, with this project's configured source when the
        controller has not reported one yet."""
        from kneo.cli.controller_cmd import (  # import cycle: controller_cmd imports this module
            controller_config,
            project_context,
        )
        from kneo.platform.reconcile import project_controller  # the store: local only

        host = project_context()
        config = controller_config(host)
        project = self.store.project
        if project != DEFAULT_PROJECT:  # its source is its definition's
            definition = self.store.projects.get_project(project).definition
            context = host.of_project(project, definition)
            config, _ = project_controller(project, context, config, None)
        data = self.gitops.controller_status(config)
        repo = getattr(config, "repo", None)
        data["source"] = data["source"] or (reduce_url(repo) if repo else None)
        return data


def gitops_client(opts: ClientOptions) -> GitOpsClient:
    """The service the options and the connection precedence choose, else the local store
    (in ``--project``'s project, when it names one)."""
    client = connect(opts.service_url, opts.profile, project=opts.project)
    return RemoteGitOps(client) if client is not None else LocalGitOps(opts.project)


@contextmanager
def gitops_session(opts: ClientOptions) -> Iterator[GitOpsClient]:
    """``with``: :func:`gitops_client`, closed after however the block ends (a command's
    one read or write, its service connection or local store released)."""
    gitops = gitops_client(opts)
    try:
        yield gitops
    finally:
        gitops.close()


def service_in_effect(opts: ClientOptions) -> bool:
    """Whether the connection precedence picks a service (nothing is announced or opened)."""
    settings = Settings.from_env()
    default_url = None if opts.remote else project_default_url(settings)
    connection = resolve_connection(
        service_url=opts.service_url,
        profile=opts.profile,
        settings=settings,
        project_default_url=default_url,
        project=opts.project,
    )
    return connection is not None


def walk(gitops: GitOpsClient, environment: str | None, status: str) -> list[dict[str, Any]]:
    """Every revision a listing holds, page after page."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = gitops.bundles(environment, status=status, cursor=cursor)
        items += page["revisions"]
        cursor = page.get("next_cursor")
        if not cursor:
            return items
