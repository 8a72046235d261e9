"""``/registry``: bundles by environment and the controller; one bundle in one environment at
``/registry/{bundle}/{environment}``, with its operations (roll back, suspend, resume, pin,
unpin, block a digest) as the signed-in person.

The registry views and :mod:`kneo.controller.operations` are imported by the pages that
show them (+38 ms each with the bundle's cryptography): every service creates the console,
few open its registry pages.
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from kneo.console.auth import ConsoleAuth, Posted, Viewer
from kneo.console.schedules import schedule_rows
from kneo.console.view import PageView, Render
from kneo.errors import Conflict, InvalidRequest, NotFound
from kneo.platform.reconcile import app_controller, controller_view
from kneo.platform.schedule_ops import bundle_schedules
from kneo.store.queries import RolloutQuery


def add_registry_routes(router: APIRouter, auth: ConsoleAuth, render: Render) -> None:
    """``/registry``: bundles by environment and the controller; one bundle in one
    environment at ``/registry/{bundle}/{environment}``."""

    @router.get("/registry", name="registry")
    def registry(request: Request, viewer: Viewer = Depends(auth.page("registry"))) -> Response:
        from kneo.platform.registry import registry_overview

        view = PageView(request, viewer, render)
        store = view.manager.store
        overview = registry_overview(store)
        config, controller = app_controller(
            request.app.state.parent.state, view.viewer.project, view.manager.project
        )
        return view.show(
            "registry.html",
            {
                "overview": overview,
                "cells": {(c["bundle"], c["environment"]): c for c in overview["cells"]},
                "controller": controller_view(store, config, controller),
                "rollouts": {(r.bundle_name, r.environment): r for r in store.rollouts.active()},
            },
        )

    @router.get("/registry/{bundle}/{environment}", name="bundle")
    def bundle(
        request: Request,
        bundle: str,
        environment: str,
        viewer: Viewer = Depends(auth.page("bundle")),
    ) -> Response:

        return _bundle_page(PageView(request, viewer, render), bundle, environment)

    @router.post("/registry/{bundle}/{environment}", name="bundle_operation")
    def bundle_operation(
        request: Request,
        bundle: str,
        environment: str,
        form: Posted = Depends(auth.form("bundle_ops")),
    ) -> Response:
        """Roll back (to ``revision``), suspend, resume, pin, unpin or block a revision's
        digest, as the signed-in person."""
        view, posted = PageView(request, form[0], render), form[1]
        auth.check(view.viewer, "bundle")
        try:
            asked = _bundle_operation(view, bundle, environment, posted)
        except (InvalidRequest, Conflict, NotFound) as exc:
            return _bundle_page(
                view, bundle, environment, notice=exc.message, status_code=exc.http_status
            )
        if asked is not None:  # a rollback waiting for approvers: its task
            return view.redirect("promotion", continuation_id=asked)
        return view.redirect("bundle", bundle=bundle, environment=environment)


def _bundle_operation(
    view: PageView, bundle: str, environment: str, posted: Mapping[str, str]
) -> str | None:
    """Perform the posted operation; the approval task's id when a rollback must wait."""
    from kneo.controller import operations

    store, actor = view.manager.store, view.viewer.name
    action = posted.get("operation") or ""
    reason = (posted.get("reason") or "").strip() or None
    if action == "rollback":
        to = posted.get("revision") or ""
        if not to.isdigit():
            raise InvalidRequest("choose the revision to roll back to", field="revision")
        done = operations.rollback(
            store, bundle, environment, to=int(to), actor=actor, reason=reason
        )
        return str(done["continuation_id"]) if done["status"] == "awaiting_approval" else None
    if action == "suspend":
        operations.suspend(store, bundle, environment, actor=actor, reason=reason)
    elif action == "resume":
        operations.resume(store, bundle, environment, actor=actor)
    elif action == "unpin":
        operations.unpin(store, bundle, environment, actor=actor)
    elif action == "pin":
        operations.pin(store, bundle, environment, actor=actor, reason=reason)
    elif action == "block":
        if reason is None:
            raise InvalidRequest("a block needs a reason", field="reason")
        operations.block(store, posted.get("digest") or "", actor=actor, reason=reason)
    else:
        raise InvalidRequest(f"unknown operation {action[:40]!r}", field="operation")
    return None


def _bundle_page(
    view: PageView,
    bundle: str,
    environment: str,
    *,
    notice: str | None = None,
    status_code: int = 200,
) -> Response:
    """One bundle in one environment: pin, schedules, conditions, history and its
    operations."""
    from kneo.controller import operations
    from kneo.platform.registry import CONDITION_TYPES, bundle_view

    shown = bundle_view(view.manager.store, bundle, environment)
    active = shown["active"]
    targets = [
        r["revision"]
        for r in shown["revisions"]
        if r["status"] in ("inactive", "pruned")
        and (active is None or r["digest"] != active["digest"])
    ]
    blocked = view.manager.store.registry.holds(names=()).blocked
    newest = RolloutQuery(bundle=bundle, environment=environment, limit=1)
    return view.show(
        "bundle.html",
        {
            "b": shown,
            "blocked": {d: operations.blocked_view(b) for d, b in blocked.items()},
            "condition_types": CONDITION_TYPES,
            "rollback_targets": targets,
            "rollout": next(iter(view.manager.store.rollouts.list_rollouts(newest).items), None),
            "schedules": schedule_rows(
                view.manager, bundle_schedules(view.manager, bundle, environment)
            ),
            "notice": notice,
        },
        status_code=status_code,
    )
