"""Stable OpenAPI operation ids: ``runs-list``, ``human-tasks-resume``, one per route.

A generated client names its methods after them (``runsList()`` in TypeScript), so they are a
contract like the paths: renaming one breaks every client generated from the document.
FastAPI's default ids repeat the path and method (``list_runs_v1_runs_get``); this table
names each route once, keyed by method and path (the ``/v1`` prefix stripped, so the legacy
unversioned alias resolves to the same entry). A route missing from the table falls back to
FastAPI's default, and ``tests/service/test_operation_ids.py`` fails naming it: add a line.

Convention: ``<resource>-<verb>``, lower-case words joined by ``-``; ``list``, ``get``,
``create`` and ``replace`` for the plain reads and writes, the action's own name otherwise.
"""

from __future__ import annotations

from typing import Any

VERSION_PREFIX = "/v1"

#: (method, path without ``/v1``) -> operation id.
OPERATION_IDS: dict[tuple[str, str], str] = {
    ("GET", "/healthz"): "health-check",
    ("GET", "/livez"): "health-live",
    ("GET", "/readyz"): "health-ready",
    ("GET", "/audit-events"): "audit-events-list",
    ("GET", "/audit-events/{event_id}"): "audit-events-get",
    ("GET", "/controller/status"): "controller-status",
    ("POST", "/controller/reconcile"): "controller-reconcile",
    ("POST", "/controller/plan"): "controller-plan",
    ("GET", "/controller/requests/{request_id}"): "controller-requests-get",
    ("POST", "/controller/webhook"): "controller-webhook",
    ("GET", "/human-tasks"): "human-tasks-list",
    ("GET", "/human-tasks/{continuation_id}"): "human-tasks-get",
    ("POST", "/human-tasks/{continuation_id}/resume"): "human-tasks-resume",
    ("POST", "/human-tasks/{continuation_id}/decisions"): "human-tasks-decide",
    ("GET", "/notifications"): "notifications-list",
    ("POST", "/notifications/retry"): "notifications-retry",
    ("GET", "/policies/environment"): "environment-policies-list",
    ("GET", "/policies/environment/{environment}"): "environment-policies-get",
    ("PUT", "/policies/environment/{environment}"): "environment-policies-replace",
    ("POST", "/policies/environment/{environment}/preview"): "environment-policies-preview",
    ("GET", "/registry/bundles"): "registry-bundles-list",
    ("GET", "/registry/bundles/{bundle}/{environment}"): "registry-bundles-get",
    ("GET", "/registry/bundles/{bundle}/{environment}/diff"): "registry-bundles-diff",
    ("GET", "/registry/bundles/{bundle}/{environment}/graph"): "registry-bundles-graph",
    ("POST", "/registry/bundles/{bundle}/{environment}/rollback"): "registry-bundles-rollback",
    ("GET", "/rollouts"): "rollouts-list",
    ("GET", "/rollouts/{rollout_id}"): "rollouts-get",
    ("POST", "/rollouts/{rollout_id}/promote"): "rollouts-promote",
    ("POST", "/rollouts/{rollout_id}/abort"): "rollouts-abort",
    ("POST", "/rollouts/{rollout_id}/retry"): "rollouts-retry",
    ("POST", "/registry/bundles/{bundle}/{environment}/pin"): "registry-bundles-pin",
    ("DELETE", "/registry/bundles/{bundle}/{environment}/pin"): "registry-bundles-unpin",
    ("POST", "/registry/bundles/{bundle}/{environment}/suspend"): "registry-bundles-suspend",
    ("POST", "/registry/bundles/{bundle}/{environment}/resume"): "registry-bundles-resume",
    ("GET", "/registry/blocked-digests"): "registry-blocked-digests-list",
    ("POST", "/registry/blocked-digests"): "registry-blocked-digests-block",
    ("DELETE", "/registry/blocked-digests/{digest}"): "registry-blocked-digests-unblock",
    ("GET", "/schedules"): "schedules-list",
    ("GET", "/schedules/{bundle}/{environment}/{name}"): "schedules-get",
    ("POST", "/schedules/{bundle}/{environment}/{name}/pause"): "schedules-pause",
    ("POST", "/schedules/{bundle}/{environment}/{name}/resume"): "schedules-resume",
    ("POST", "/schedules/{bundle}/{environment}/{name}/trigger"): "schedules-trigger",
    ("POST", "/triggers/{bundle}/{environment}/{name}"): "triggers-deliver",
    ("GET", "/runs"): "runs-list",
    ("POST", "/runs"): "runs-create",
    ("GET", "/runs/{run_id}"): "runs-get",
    ("POST", "/runs/{run_id}/cancel"): "runs-cancel",
    ("POST", "/runs/{run_id}/continue"): "runs-continue",
    ("GET", "/runs/{run_id}/checkpoints"): "runs-checkpoints-list",
    ("GET", "/runs/{run_id}/checkpoints/diff"): "runs-checkpoints-diff",
    ("GET", "/runs/{run_id}/events"): "runs-events-stream",
    ("GET", "/runs/{run_id}/graph"): "runs-graph",
    ("GET", "/runs/{run_id}/policy-report"): "runs-policy-report",
    ("GET", "/runs/{run_id}/recovery"): "runs-recovery",
    ("GET", "/runs/{run_id}/replay"): "runs-replay",
    ("GET", "/runs/{run_id}/trace"): "runs-trace",
    ("GET", "/security/credentials"): "security-credentials-get",
    ("GET", "/projects"): "projects-list",
    ("GET", "/projects/{project}"): "projects-get",
    ("POST", "/projects"): "projects-create",
    ("PUT", "/projects/{project}"): "projects-replace",
    ("DELETE", "/projects/{project}"): "projects-archive",
    ("GET", "/sessions/{session_id}"): "sessions-get",
    ("GET", "/skills"): "skills-list",
    ("GET", "/version"): "service-version",
    ("POST", "/specs/compile"): "specs-compile",
    ("POST", "/specs/explain"): "specs-explain",
    ("POST", "/specs/graph"): "specs-graph",
    ("POST", "/specs/policy-report"): "specs-policy-report",
    ("POST", "/specs/run"): "specs-run",
    ("POST", "/specs/validate"): "specs-validate",
}


def route_key(route: Any) -> tuple[str, str] | None:
    """The table key of an API route, or of FastAPI's per-inclusion view of one (``None``
    for what has no methods: mounts)."""
    methods, path = getattr(route, "methods", None), getattr(route, "path", None)
    if not methods or not isinstance(path, str):
        return None
    if path == VERSION_PREFIX or path.startswith(VERSION_PREFIX + "/"):
        path = path[len(VERSION_PREFIX) :]
    return min(methods), path


def operation_id(route: Any) -> str:
    """FastAPI's ``generate_unique_id_function``: the table's id, else FastAPI's default."""
    from fastapi.utils import generate_unique_id

    key = route_key(route)
    known = OPERATION_IDS.get(key) if key is not None else None
    return known or generate_unique_id(route)


__all__ = ["OPERATION_IDS", "operation_id", "route_key"]
