"""Reconcile requests from any API replica to the leading controller, wherever it runs.

In the scale-out shape the controller runs in its own process (``kneo controller run``) and
the API replicas run ``--no-controller``. A verified webhook or ``POST
/v1/controller/reconcile`` therefore never calls a controller: it queues a request in the
database (:mod:`kneo.store.coordination.controller_requests`), which wakes the leader; the reconcile
route then waits for the pass that served it. Three answers, one per situation:

* no controller is configured for this deployment (none in this process's configuration,
  none has ever reported to the database): ``404 controller_not_configured``, permanent;
* a controller is configured but none holds a live leader lock (all stopped, or the lease
  of a dead one has not yet lapsed to a standby): ``503 not_ready`` with ``Retry-After``;
* otherwise the request is queued (and answered when served, or ``202`` while waiting).

Each project has its own source (:func:`project_controller`: the host's configuration is the
``default`` project's, another project's is the ``controller:`` block of its definition), so
each answers for its own: a request in project P is queued in P's store view for P's
source and wakes only it. Every source is led under the host controller's lock
(:mod:`kneo.controller.projects`), which is what ``503 not_ready`` looks at.

:func:`kneo.controller.status.status_dict` is imported where a status is shaped (+0.4 s
on a loaded host: the controller's model, policy and bundle formats; the controller itself,
with GitPython, +0.4 s more), which a platform without a controller never needs.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from kneo.clock import utc_iso
from kneo.controller.config import ControllerConfig, project_source
from kneo.errors import ErrorCode, NotFound, NotReady
from kneo.projects import DEFAULT_PROJECT
from kneo.store import ControllerRequest

if TYPE_CHECKING:
    from kneo.controller.controller import Controller
    from kneo.controller.projects import ProjectControllers
    from kneo.controller.watch import Triggerable
    from kneo.spec.project import ProjectContext
    from kneo.store.api import Store

DEFAULT_NAME = "default"


def lock_name(name: str) -> str:
    return f"controller:{name}"


def leader_lock(config: ControllerConfig | None) -> str:
    """The leader lock the controller of ``config`` runs under (a project's source: the
    host controller's)."""
    named = getattr(config, "lock_name", None)
    return str(named) if named else lock_name(getattr(config, "name", None) or DEFAULT_NAME)


def project_controller(
    project: str,
    context: ProjectContext | None,
    host: ControllerConfig | None,
    running: Controller | ProjectControllers | None,
) -> tuple[Any, Any]:
    """(project ``project``'s source configuration, its controller in this process or
    ``None``). ``host`` is this process's ``controller:`` configuration (the ``default``
    project's source); ``running`` what runs here: a
    :class:`~kneo.controller.projects.ProjectControllers`, a single controller (the
    ``default`` project's), or ``None``. Another project's source is its definition's
    ``controller:`` block (``context``: its project context), the same on every replica."""
    for_project = getattr(running, "controller_for", None)
    if callable(for_project):
        controller = for_project(project)
    else:
        controller = running if project == DEFAULT_PROJECT else None
    if project == DEFAULT_PROJECT:
        return host, controller
    block = context.config.controller if context is not None else None
    base = context.root if context is not None else None
    if block is None or base is None:
        return None, controller
    host_config = host if isinstance(host, ControllerConfig) else ControllerConfig()
    return project_source(block, base_dir=base, host=host_config), controller


def app_controller(state: object, project: str, context: ProjectContext | None) -> tuple[Any, Any]:
    """:func:`project_controller` for an app whose ``state`` holds this process's
    ``controller`` (a :class:`~kneo.controller.projects.ProjectControllers`, a single
    controller, or none) and ``controller_config``: every route and page that shows a
    project's controller reads it this way, never the app's ``controller`` itself."""
    running = getattr(state, "controller", None)
    host = getattr(state, "controller_config", None)
    if host is None:
        host = getattr(running, "config", None)
    return project_controller(project, context, host, running)


def webhook_secret_variable(store: Store, config: ControllerConfig | None) -> str | None:
    """The variable holding the webhook secret: this process's controller configuration's,
    else (the ``default`` project only) the one the controller published with its status,
    else ``None`` (``KNEO_SERV_WEBHOOK_SECRET`` then, for ``default``). Each replica reads
    the value from its own environment: the secret itself never passes through the
    database."""
    own = getattr(config, "webhook_secret_env", None)
    if own:
        return str(own)
    if _project(store) != DEFAULT_PROJECT:
        return None  # a project's is its definition's, or none
    stored = store.registry.get_controller_status(getattr(config, "name", None) or DEFAULT_NAME)
    published = stored.details.get("webhook_secret_env")
    return str(published) if published else None


def _project(store: object) -> str:
    return str(getattr(store, "project", DEFAULT_PROJECT))


def is_configured(store: Store, config: ControllerConfig | None, *, in_process: bool) -> bool:
    """Whether the store's project has a source: one runs here, the configuration names a
    repository, or (``default`` only, whose configuration is each replica's own) a
    controller has reported to the database."""
    if in_process or getattr(config, "repo", None):
        return True
    name = getattr(config, "name", None) or DEFAULT_NAME
    return _project(store) == DEFAULT_PROJECT and _has_reported(store, name)


def require_configured(store: Store, config: ControllerConfig | None, *, in_process: bool) -> str:
    """The controller name requests go to; ``404 controller_not_configured`` when this
    project has none (:func:`is_configured`)."""
    name = getattr(config, "name", None) or DEFAULT_NAME
    if not is_configured(store, config, in_process=in_process):
        project = _project(store)
        raise NotFound(
            "no GitOps controller is configured for this deployment: none runs in this "
            "process and none has reported to the database (start `kneo controller run`)"
            if project == DEFAULT_PROJECT
            else f"project {project} has no Git source: a platform administrator sets one "
            "in the controller: block of its definition",
            code=ErrorCode.controller_not_configured,
            resource="controller",
        )
    return name


def require_leader(store: Store, config: ControllerConfig | None, *, in_process: bool) -> str:
    """:func:`require_configured`, and ``503 not_ready`` while no controller holds a live
    leader lock (none runs, or a dead leader's lease has not lapsed to a standby yet)."""
    name = require_configured(store, config, in_process=in_process)
    if store.locks.get_lock(leader_lock(config)) is None:
        raise NotReady(
            f"no controller {name!r} leads right now (none runs, or a standby has not yet "
            "taken over a lapsed lease); retry shortly",
            check="controller",
        )
    return name


def _has_reported(store: Store, name: str) -> bool:
    return store.registry.get_controller_status(name).updated_at is not None


def queue_request(
    store: Store,
    name: str,
    kind: str,
    *,
    actor: str | None,
    detail: dict[str, Any] | None = None,
    controller: Triggerable | None = None,
) -> ControllerRequest:
    """Queue a reconcile for the leader (and wake a controller in this process at once)."""
    request = store.controller.queue_controller_request(name, kind, actor=actor, detail=detail)
    if controller is not None:
        controller.request_reconcile()
    return request


def wait_for(store: Store, request_id: int, timeout: float) -> ControllerRequest:
    """The request once a pass has served it, or as it stands after ``timeout`` seconds
    (polled: 20 ms at first, backing off to 200 ms)."""
    deadline = time.monotonic() + timeout
    pause = 0.02
    while True:
        request = store.controller.get_controller_request(request_id)
        if request.status == "done" or time.monotonic() >= deadline:
            return request
        time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
        pause = min(pause * 1.5, 0.2)


def request_view(request: ControllerRequest) -> dict[str, Any]:
    """``GET /v1/controller/requests/{id}`` and the reconcile route's answer."""
    return {
        "request_id": request.id,
        "kind": request.kind,
        "status": request.status,
        "requested_at": utc_iso(request.requested_at),
        "started_at": utc_iso(request.started_at),
        "finished_at": utc_iso(request.finished_at),
        "result": request.result,
    }


def controller_view(
    store: Store,
    config: ControllerConfig | None = None,
    controller: Controller | None = None,
) -> dict[str, Any]:
    """Who leads, its last pass and the queued requests, read from the database, so every
    replica answers the same (``GET /v1/controller/status``, the console)."""
    from kneo.controller.status import status_dict

    name = getattr(config, "name", None) or DEFAULT_NAME
    stored = store.registry.get_controller_status(name)
    configured = is_configured(store, config, in_process=controller is not None)
    data = status_dict(
        stored,
        store.locks.get_lock(leader_lock(config)) if configured else None,
        controller.source.describe() if controller is not None else None,
        self_owner=getattr(controller, "owner", None),
    )
    data["name"] = name
    data["configured"] = configured
    counts = store.controller.controller_request_counts(name)
    data["requests"] = {**counts, "oldest_queued_at": utc_iso(counts["oldest_queued_at"])}
    return data
