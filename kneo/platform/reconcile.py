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

:func:`kneo.controller.controller.status_dict` is imported where a status is shaped
(+0.12 s: the controller with GitPython), which a platform without a controller never needs.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from kneo.clock import utc_iso
from kneo.errors import ErrorCode, NotFound, NotReady
from kneo.store import ControllerRequest

if TYPE_CHECKING:
    from kneo.store.contracts import ControllerStateReads, HasController, HasRegistry

DEFAULT_NAME = "default"


def lock_name(name: str) -> str:
    return f"controller:{name}"


def webhook_secret_variable(store: HasRegistry, config: Any) -> str | None:
    """The variable holding the webhook secret: this process's controller configuration's,
    else the one the controller published with its status, else ``None``
    (``KNEO_SERV_WEBHOOK_SECRET`` then). Each replica reads the value from its own
    environment: the secret itself never passes through the database."""
    own = getattr(config, "webhook_secret_env", None)
    if own:
        return str(own)
    stored = store.registry.get_controller_status(getattr(config, "name", None) or DEFAULT_NAME)
    published = stored.details.get("webhook_secret_env")
    return str(published) if published else None


def require_configured(store: HasRegistry, config: Any, *, in_process: bool) -> str:
    """The controller name requests go to; ``404 controller_not_configured`` when this
    deployment has none (none in this process's configuration, none ever reported)."""
    name = getattr(config, "name", None) or DEFAULT_NAME
    if not (in_process or getattr(config, "repo", None)) and not _has_reported(store, name):
        raise NotFound(
            "no GitOps controller is configured for this deployment: none runs in this "
            "process and none has reported to the database (start `kneo controller run`)",
            code=ErrorCode.controller_not_configured,
            resource="controller",
        )
    return name


def require_leader(store: ControllerStateReads, config: Any, *, in_process: bool) -> str:
    """:func:`require_configured`, and ``503 not_ready`` while no controller holds a live
    leader lock (none runs, or a dead leader's lease has not lapsed to a standby yet)."""
    name = require_configured(store, config, in_process=in_process)
    if store.locks.get_lock(lock_name(name)) is None:
        raise NotReady(
            f"no controller {name!r} leads right now (none runs, or a standby has not yet "
            "taken over a lapsed lease); retry shortly",
            check="controller",
        )
    return name


def _has_reported(store: HasRegistry, name: str) -> bool:
    return store.registry.get_controller_status(name).updated_at is not None


def queue_request(
    store: HasController,
    name: str,
    kind: str,
    *,
    actor: str | None,
    detail: dict[str, Any] | None = None,
    controller: Any = None,
) -> ControllerRequest:
    """Queue a reconcile for the leader (and wake a controller in this process at once)."""
    request = store.controller.queue_controller_request(name, kind, actor=actor, detail=detail)
    if controller is not None:
        controller.request_reconcile()
    return request


def wait_for(store: HasController, request_id: int, timeout: float) -> ControllerRequest:
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
    store: ControllerStateReads, config: Any = None, controller: Any = None
) -> dict[str, Any]:
    """Who leads, its last pass and the queued requests, read from the database, so every
    replica answers the same (``GET /v1/controller/status``, the console)."""
    from kneo.controller.controller import status_dict

    name = getattr(config, "name", None) or DEFAULT_NAME
    stored = store.registry.get_controller_status(name)
    data = status_dict(
        stored,
        store.locks.get_lock(lock_name(name)),
        controller.source.describe() if controller is not None else None,
        self_owner=getattr(controller, "owner", None),
    )
    data["name"] = name
    data["configured"] = (
        controller is not None
        or bool(getattr(config, "repo", None))
        or stored.updated_at is not None
    )
    counts = store.controller.controller_request_counts(name)
    data["requests"] = {**counts, "oldest_queued_at": utc_iso(counts["oldest_queued_at"])}
    return data
