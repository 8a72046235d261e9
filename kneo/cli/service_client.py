"""``ServiceClient``: the CLI's HTTP implementation of the platform client, over ``httpx2``.

Retry rules (``KNEO_SERV_CLIENT_RETRIES`` / ``_RETRY_BACKOFF_SECONDS`` / ``_TIMEOUT``):
408, 429, 5xx and network errors are retried with exponential backoff (``Retry-After`` is
honoured when the server sends it); every other failure — 401, 403, 404, 409, 422 ... —
fails at once with the server's own message and code. POSTs that create or decide
something carry an ``Idempotency-Key`` (``KNEO_SERV_IDEMPOTENCY_KEY``, else one generated
per call and reused across that call's retries), so a retry can never run work twice.

Two imports wait for their use: :mod:`kneo.cli.profiles` (+2.5 ms of ``kneo spec lint``,
which loads this module without a service in effect) and the spec loader with the project
context for :func:`spec_payload` (+0.16 s with pydantic).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from kneo.cli.output import talking_to
from kneo.errors import ErrorCode, KneoError
from kneo.kernel import Origins, http_client
from kneo.projects import PROJECT_HEADER, check_project_name
from kneo.redaction import redact_text
from kneo.settings import Settings

if TYPE_CHECKING:  # imported where used: a local-mode CLI never loads the HTTP stack
    import httpx2

    from kneo.cli.profiles import Connection
    from kneo.engine.human import Decision
    from kneo.platform import RolloutQuery
    from kneo.spec.project_blocks import PolicyEnforcement

RETRY_STATUSES = frozenset({408, 429})
#: Routes whose POSTs the service de-duplicates by ``Idempotency-Key``.
_IDEMPOTENT_POSTS = ("/v1/runs", "/v1/specs/run")


class ServiceError(KneoError):
    """A failure reported by (or reaching) the service; ``code`` is the server's code."""

    code = ErrorCode.service_error


def _body(decision: Decision) -> dict[str, Any]:
    """A decision as the API takes it: the fields given (``None`` ones left out)."""
    return {k: v for k, v in decision.to_dict().items() if v is not None}


def _is_idempotent_post(path: str) -> bool:
    return path in _IDEMPOTENT_POSTS or (
        path.startswith("/v1/human-tasks/") and path.endswith(("/resume", "/decisions"))
    )


class ServiceClient:
    """Talks to a Kneo service. Thread-compatible (one ``httpx2.Client`` per instance)."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float = 120.0,
        retries: int = 2,
        backoff_seconds: float = 0.25,
        idempotency_key: str | None = None,
        transport: httpx2.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        project: str | None = None,
    ) -> None:
        """``project``: the project (tenant) every request acts in, sent as
        ``X-Kneo-Project``; ``None``: the key's home project."""
        self.base_url = base_url.rstrip("/")
        #: ``Prefer: wait`` of a decision or continue: the outcome of a run the service
        #: hands to its workers, if it comes within the timeout (less a margin for the answer)
        self.wait_seconds = max(0, int(timeout) - 5)
        self.retries = max(0, retries)
        self.backoff_seconds = backoff_seconds
        self.idempotency_key = idempotency_key or None
        self._sleep = sleep
        self._secrets = (api_key,) if api_key else ()
        headers = {"Accept": "application/json", "User-Agent": "kneo-cli"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.project = check_project_name(project) if project is not None else None
        if self.project is not None:
            headers[PROJECT_HEADER] = self.project
        self._http = http_client(  # the service's origin only: the key goes nowhere else
            Origins.of(self.base_url),
            path="the Kneo service",
            base_url=self.base_url,
            headers=headers,
            timeout=timeout,
            transport=transport,
        )

    @classmethod
    def from_settings(
        cls, base_url: str, settings: Settings, *, api_key: str | None = None, **kwargs: Any
    ) -> ServiceClient:
        return cls(
            base_url,
            api_key=api_key if api_key is not None else (settings.client_api_key or None),
            timeout=settings.client_timeout,
            retries=settings.client_retries,
            backoff_seconds=settings.client_retry_backoff_seconds,
            idempotency_key=settings.idempotency_key or None,
            **kwargs,
        )

    @classmethod
    def connected(cls, connection: Connection, settings: Settings) -> ServiceClient:
        """The client of ``connection`` (its key and project), said aloud first
        (:func:`~kneo.cli.output.talking_to`): a command never talks to a service unseen."""
        talking_to(
            connection.url,
            chosen_by=connection.source,
            profile=connection.profile,
            project=connection.project,
        )
        return cls.from_settings(
            connection.url, settings, api_key=connection.api_key, project=connection.project
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ServiceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ServiceClient({self.base_url!r})"

    # ------------------------------------------------------------------ transport

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
        """Send one logical request (with retries) and return the decoded JSON body.
        ``wait``: a decision or continue, which waits for the run's pause or end (``Prefer:
        wait``) where the service continues runs on its workers."""
        import httpx2

        headers: dict[str, str] = {}
        if wait and self.wait_seconds:
            headers["Prefer"] = f"wait={self.wait_seconds}"
        if method == "POST" and _is_idempotent_post(path):
            headers["Idempotency-Key"] = (
                idempotency_key or self.idempotency_key or f"cli-{uuid.uuid4().hex}"
            )
        query = {k: v for k, v in (params or {}).items() if v is not None}
        attempt = 0
        while True:
            try:
                response = self._http.request(
                    method, path, json=json, params=query, headers=headers
                )
            except httpx2.TransportError as exc:
                if attempt < self.retries:
                    self._backoff(attempt, None)
                    attempt += 1
                    continue
                raise ServiceError(
                    f"cannot reach the Kneo service at {self.base_url}: "
                    f"{redact_text(str(exc) or type(exc).__name__, self._secrets)}",
                    code=ErrorCode.service_unavailable,
                ) from exc
            if self._retryable(response.status_code) and attempt < self.retries:
                self._backoff(attempt, response.headers.get("retry-after"))
                attempt += 1
                continue
            return self._decode(response)

    @staticmethod
    def _retryable(status: int) -> bool:
        return status in RETRY_STATUSES or status >= 500

    def _backoff(self, attempt: int, retry_after: str | None) -> None:
        delay = self.backoff_seconds * (2**attempt)
        if retry_after and retry_after.isdigit():
            delay = max(delay, min(float(retry_after), 30.0))
        if delay > 0:
            self._sleep(delay)

    def _decode(self, response: httpx2.Response) -> Any:
        try:
            body: Any = response.json() if response.content else None
        except ValueError:
            body = None
        if response.is_success:
            return body
        if isinstance(body, dict) and "error" in body:
            message = str(body.get("message") or body["error"])
            details = {k: v for k, v in body.items() if k not in ("error", "message")}
            error = ServiceError(message, code=str(body["error"]), **details)
        else:
            text = redact_text(response.text[:200], self._secrets) if response.content else ""
            error = ServiceError(
                f"service answered HTTP {response.status_code}" + (f": {text}" if text else ""),
                code=f"http_{response.status_code}",
            )
        error.http_status = response.status_code
        raise error

    # ------------------------------------------------------------------ runs

    def run(
        self,
        *,
        spec_path: str,
        input_text: str,
        target: str,
        environment: str | None,
        skills: dict[str, Any] | None = None,
    ) -> Any:
        """``kneo run --service-url``: the spec is resolved locally and sent inline."""
        body = {**spec_payload(spec_path, environment), "input": input_text, "target": target}
        if skills:
            body["skills"] = skills
        return self.create_run(body)

    def cancel(self, run_id: str) -> Any:
        return self.cancel_run(run_id)

    def create_run(self, body: dict[str, Any], *, idempotency_key: str | None = None) -> Any:
        return self.request("POST", "/v1/runs", json=body, idempotency_key=idempotency_key)

    def get_run(self, run_id: str) -> Any:
        return self.request("GET", f"/v1/runs/{run_id}")

    def list_runs(
        self, *, status: str | None, limit: int, cursor: str | None = None, **filters: object
    ) -> Any:
        params = {"status": status, "limit": limit, "cursor": cursor, **filters}
        return self.request("GET", "/v1/runs", params=params)

    def cancel_run(self, run_id: str) -> Any:
        return self.request("POST", f"/v1/runs/{run_id}/cancel")

    def trace(self, run_id: str, **params: object) -> Any:
        return self.request("GET", f"/v1/runs/{run_id}/trace", params=params)

    def checkpoints(self, run_id: str, **params: object) -> Any:
        return self.request("GET", f"/v1/runs/{run_id}/checkpoints", params=params)

    def replay(self, run_id: str) -> Any:
        return self.request("GET", f"/v1/runs/{run_id}/replay")

    def checkpoint_diff(
        self, run_id: str, *, from_sequence: int | None = None, to_sequence: int | None = None
    ) -> Any:
        return self.request(
            "GET",
            f"/v1/runs/{run_id}/checkpoints/diff",
            params={"from_sequence": from_sequence, "to_sequence": to_sequence},
        )

    def recovery(self, run_id: str) -> Any:
        return self.request("GET", f"/v1/runs/{run_id}/recovery")

    def replay_run(self, run_id: str, *, reuse: str) -> Any:
        """Refused: replaying a run with its recorded answers runs locally only."""
        raise KneoError(
            f"replaying run {run_id} (reuse {reuse}) runs locally only; unset the service "
            "profile or --service-url",
            code=ErrorCode.service_mode_unavailable,
        )

    def continue_run(self, run_id: str, *, to_revision: int | str | None = None) -> Any:
        body = {} if to_revision is None else {"to_revision": to_revision}
        return self.request("POST", f"/v1/runs/{run_id}/continue", json=body, wait=True)

    def run_policy_report(self, run_id: str) -> Any:
        return self.request("GET", f"/v1/runs/{run_id}/policy-report")

    def stream_events(self, run_id: str) -> Iterator[dict[str, Any]]:
        """Yield the run's server-sent events (decoded ``data``) until the stream ends."""
        import json as _json

        with self._http.stream("GET", f"/v1/runs/{run_id}/events", timeout=None) as response:
            if not response.is_success:
                response.read()
                self._decode(response)
            event = "message"
            for line in response.iter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    yield {"event": event, "data": _json.loads(line[5:].strip())}
                elif not line:
                    event = "message"

    # ------------------------------------------------------------------ human tasks

    def list_human_tasks(
        self, *, run_id: str | None = None, limit: int | None = None, **filters: object
    ) -> Any:
        """``GET /v1/human-tasks`` (a filter left ``None`` is not sent: the service's default)."""
        query = {"run_id": run_id, "limit": limit, **filters}
        params = {k: v for k, v in query.items() if v is not None}
        return self.request("GET", "/v1/human-tasks", params=params)

    def get_human_task(self, continuation_id: str) -> Any:
        return self.request("GET", f"/v1/human-tasks/{continuation_id}")

    def resume(
        self, continuation_id: str, decision: Decision, *, idempotency_key: str | None = None
    ) -> Any:
        """Decide one request of a task (``POST /v1/human-tasks/{id}/resume``)."""
        return self.request(
            "POST",
            f"/v1/human-tasks/{continuation_id}/resume",
            json=_body(decision),
            idempotency_key=idempotency_key,
            wait=True,
        )

    def decide(
        self,
        continuation_id: str,
        decisions: Sequence[Decision],
        *,
        idempotency_key: str | None = None,
    ) -> Any:
        """Decide several requests of one task together, all or none."""
        items = [_body(d) for d in decisions]
        return self.request(
            "POST",
            f"/v1/human-tasks/{continuation_id}/decisions",
            json={"decisions": items},
            idempotency_key=idempotency_key,
            wait=True,
        )

    # ------------------------------------------------------------------ audit

    # ------------------------------------------------------------------ projects

    def list_projects(self) -> Any:
        return self.request("GET", "/v1/projects")

    def get_project(self, name: str) -> Any:
        return self.request("GET", f"/v1/projects/{check_project_name(name)}")

    def create_project(self, name: str, definition: dict[str, Any] | None) -> Any:
        return self.request("POST", "/v1/projects", json={"name": name, "definition": definition})

    def update_project(self, name: str, definition: dict[str, Any] | None) -> Any:
        body = {"definition": definition}
        return self.request("PUT", f"/v1/projects/{check_project_name(name)}", json=body)

    def archive_project(self, name: str) -> Any:
        return self.request("DELETE", f"/v1/projects/{check_project_name(name)}")

    def list_audit(
        self,
        *,
        event_type: str | None,
        run_id: str | None,
        continuation_id: str | None,
        limit: int,
        cursor: str | None,
    ) -> Any:
        params = {
            "event_type": event_type,
            "run_id": run_id,
            "continuation_id": continuation_id,
            "limit": limit,
            "cursor": cursor,
        }
        return self.request("GET", "/v1/audit-events", params=params)

    def get_audit(self, event_id: str) -> Any:
        return self.request("GET", f"/v1/audit-events/{event_id}")

    # ------------------------------------------------------------------ rollouts

    def list_rollouts(self, query: RolloutQuery) -> Any:
        """``GET /v1/rollouts`` (a filter left ``None`` is not sent)."""
        q = query
        params = {"bundle": q.bundle, "environment": q.environment, "status": q.status,
                  "limit": q.limit, "cursor": q.cursor,
                  "include": "counts" if q.count else None}  # fmt: skip
        return self.request(
            "GET", "/v1/rollouts", params={k: v for k, v in params.items() if v is not None}
        )

    def get_rollout(self, rollout_id: str) -> Any:
        return self.request("GET", f"/v1/rollouts/{quote(rollout_id, safe='')}")

    def decide_rollout(
        self, rollout_id: str, decision: str, *, full: bool = False, reason: str | None = None
    ) -> Any:
        """``POST /v1/rollouts/{id}/promote|abort|retry``: the service checks the caller
        (its key's name, a person's groups) against the environment's approvers."""
        body: dict[str, Any] | None = None
        if decision == "promote":
            body = {"full": full}
        elif decision == "abort":
            body = {"reason": reason}
        path = f"/v1/rollouts/{quote(rollout_id, safe='')}/{quote(decision, safe='')}"
        return self.request("POST", path, json=body)

    # ------------------------------------------------------------------ policies

    def preview_environment_policy(self, environment: str, policy: PolicyEnforcement) -> Any:
        """``POST /v1/policies/environment/{env}/preview``: what a PUT would change."""
        body = policy.model_dump(mode="json") if hasattr(policy, "model_dump") else policy
        return self.request("POST", f"/v1/policies/environment/{environment}/preview", json=body)

    # ------------------------------------------------------------------ specs

    def spec_operation(self, operation: str, body: dict[str, Any]) -> Any:
        """``validate``, ``compile``, ``explain`` or ``policy-report`` on a spec."""
        return self.request("POST", f"/v1/specs/{operation}", json=body)

    def run_spec(self, body: dict[str, Any], *, idempotency_key: str | None = None) -> Any:
        return self.request("POST", "/v1/specs/run", json=body, idempotency_key=idempotency_key)


# ---------------------------------------------------------------------- CLI seams


def connect(
    service_url: str | None,
    profile: str | None,
    *,
    settings: Settings | None = None,
    use_defaults: bool = True,
    project: str | None = None,
) -> ServiceClient | None:
    """The ServiceClient the documented precedence picks, or ``None`` for local execution.

    ``use_defaults=False`` considers only the explicit ``--service-url``/``--profile``
    (commands that are local unless asked, such as ``spec validate``). ``project``: the
    project (tenant) its requests act in (``--project``; see ``resolve_connection``).
    """
    from kneo.cli.profiles import project_default_url, resolve_connection  # cost: module docstring

    settings = settings or Settings.from_env()
    default_url = None
    if use_defaults and not service_url and not profile:
        default_url = project_default_url(settings)
    connection = resolve_connection(
        service_url=service_url,
        profile=profile,
        settings=settings,
        project_default_url=default_url,
        project=project,
    )
    if connection is None or (
        not use_defaults and connection.source not in ("service_url", "profile")
    ):
        return None

    return ServiceClient.connected(connection, settings)


def spec_payload(spec_path: str | None, environment: str | None) -> dict[str, Any]:
    """Resolve a local spec (overlays, project defaults) and send it inline.

    The service then needs no access to the caller's files. A path that does not exist
    locally is passed through as ``spec_path``: it names a file on the server.
    """
    from pathlib import Path

    from kneo.spec.loader import load_spec
    from kneo.spec.project import ProjectContext

    context = ProjectContext.discover(env=environment)
    path = Path(spec_path) if spec_path else context.default_spec_path()
    if path is None:
        raise KneoError(
            "no SPEC_PATH given and the project config has no default_spec",
            code=ErrorCode.usage_error,
        )
    if not path.is_file():
        return {"spec_path": str(path), "environment": environment}
    loaded = load_spec(
        path, env=environment, project=context.config, declared=context.declared_environments()
    )
    return {"spec": loaded.data, "environment": environment}


def remote_spec_operation(
    command: str,
    *,
    service_url: str | None,
    profile: str | None,
    payload: dict[str, Any],
    project: str | None = None,
) -> dict[str, Any]:
    """``kneo spec validate|compile|policy-report --service-url/--profile [--project]``."""
    client = connect(service_url, profile, use_defaults=False, project=project)
    if client is None:  # pragma: no cover - callers only come here with a flag set
        raise KneoError("no service selected", code=ErrorCode.usage_error)
    body = spec_payload(payload.get("spec_path"), payload.get("environment"))
    with client:
        result = client.spec_operation(command, body)
    return result if isinstance(result, dict) else {"result": result}
