"""``PlatformClient``: what the CLI's commands call, whether they run locally or on a service.

:class:`~kneo.cli.client.LocalClient` (an in-process platform over the project's store) and
:class:`~kneo.cli.service_client.ServiceClient` (HTTP) both implement it; every method
returns the JSON shape of the matching HTTP route. A method that only one side can do is
still here when a command calls it through this type, and the other side refuses it with a
clear error: ``replay_run`` runs locally only (``service_mode_unavailable``), ``request``
(a raw API call) needs a service (``usage_error``). What only one side has and no command
reaches through this type stays off it: the local platform (``manager``, ``reader``), the
HTTP extras (``create_run``, ``stream_events``, ``spec_operation`` ...).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from kneo.engine.human import Decision
    from kneo.platform import RolloutQuery
    from kneo.spec.project_blocks import PolicyEnforcement

__all__ = ["PlatformClient"]


class PlatformClient(Protocol):
    """The platform as the CLI's commands see it (local or remote alike)."""

    def close(self) -> None: ...

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
        """One API request, the decoded JSON body back (a service only)."""
        ...

    def run(
        self,
        *,
        spec_path: str,
        input_text: str,
        target: str,
        environment: str | None,
        skills: dict[str, Any] | None = None,
    ) -> dict[str, Any]: ...

    def get_run(self, run_id: str) -> dict[str, Any]: ...

    def trace(self, run_id: str) -> dict[str, Any]: ...

    def checkpoints(self, run_id: str) -> dict[str, Any]: ...

    def replay(self, run_id: str) -> dict[str, Any]: ...

    def replay_run(self, run_id: str, *, reuse: str) -> dict[str, Any]:
        """Run ``run_id`` again as a new run reusing its recorded answers (local only)."""
        ...

    def checkpoint_diff(
        self, run_id: str, *, from_sequence: int | None, to_sequence: int | None
    ) -> dict[str, Any]: ...

    def cancel(self, run_id: str) -> dict[str, Any]: ...

    def recovery(self, run_id: str) -> dict[str, Any]: ...

    def continue_run(
        self, run_id: str, *, to_revision: int | str | None = None
    ) -> dict[str, Any]: ...

    def list_runs(
        self, *, status: str | None, limit: int, cursor: str | None = None, **filters: object
    ) -> dict[str, Any]: ...

    def list_human_tasks(
        self, *, run_id: str | None, limit: int, **filters: object
    ) -> dict[str, Any]: ...

    def get_human_task(self, continuation_id: str) -> dict[str, Any]: ...

    def list_audit(
        self,
        *,
        event_type: str | None,
        run_id: str | None,
        continuation_id: str | None,
        limit: int,
        cursor: str | None,
    ) -> dict[str, Any]: ...

    def get_audit(self, event_id: str) -> dict[str, Any]: ...

    def list_projects(self) -> dict[str, Any]: ...

    def get_project(self, name: str) -> dict[str, Any]: ...

    def create_project(self, name: str, definition: dict[str, Any] | None) -> dict[str, Any]: ...

    def update_project(self, name: str, definition: dict[str, Any] | None) -> dict[str, Any]: ...

    def archive_project(self, name: str) -> dict[str, Any]: ...

    def preview_environment_policy(
        self, environment: str, policy: PolicyEnforcement
    ) -> dict[str, Any]: ...

    def resume(
        self, continuation_id: str, decision: Decision, *, idempotency_key: str | None = None
    ) -> dict[str, Any]: ...

    def decide(
        self,
        continuation_id: str,
        decisions: Sequence[Decision],
        *,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Several requests of one task decided together."""
        ...

    def list_rollouts(self, query: RolloutQuery) -> dict[str, Any]:
        """``GET /v1/rollouts``: one page of rollouts, newest first (the query's ``count``:
        with ``total``)."""
        ...

    def get_rollout(self, rollout_id: str) -> dict[str, Any]:
        """``GET /v1/rollouts/{rollout_id}``."""
        ...

    def decide_rollout(
        self,
        rollout_id: str,
        decision: str,
        *,
        full: bool = False,
        reason: str | None = None,
    ) -> dict[str, Any]:
        """``POST /v1/rollouts/{rollout_id}/{decision}`` (promote, abort or retry)."""
        ...
