"""A2A push notifications, the A2A server's half: the configs a client sets on its tasks,
and the sweep that turns each change of a task's state into one outbox event
(docs/a2a.md#push-notifications; delivery is :mod:`kneo.platform.a2a_push`).

**Who may set a config.** A caller whose key holds ``runs:write`` (push makes Kneo send
requests on its behalf) on a task its key may read (``GET /v1/runs/{id}`` with that key),
to a URL on the operator's allow-list (``KNEO_SERV_A2A_PUSH_DESTINATIONS``). A config is
its owner's: another caller gets, lists and deletes none of it (``TaskNotFound``), though
it may set its own on the same task. A key holds at most :data:`MAX_CONFIGS` configs per
task. Setting and deleting one is audited (``a2a.push_config.set``/``.deleted``, the URL's
origin only).

**Projects.** A config is kept in the caller's project (``project_id``, the project of the
run it watches): another project's caller finds none of it. The sweep is global (every
project's due configs, in one pass) and reads each run in its config's project.

**What is pushed.** Each change of the run's status the sweep sees (every
``KNEO_SERV_NOTIFICATIONS_POLL_SECONDS`` in each ``--a2a`` process), and the status at
the moment the config is set: the task as ``GetTask`` shows it (the pending request's
question where the owner could read human tasks), without history, as an A2A
``StreamResponse`` (``{"task": ...}``). States a run passes within one sweep are not each
pushed; the last one is, and a final state always is (then the config is done).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from a2a.server.context import ServerCallContext
from a2a.types import a2a_pb2 as pb
from a2a.utils.errors import (
    InternalError,
    InvalidParamsError,
    InvalidRequestError,
    TaskNotFoundError,
)
from google.protobuf.json_format import MessageToDict

from kneo.errors import InvalidRequest, NotFound
from kneo.ids import new_id
from kneo.logs import get_logger
from kneo.periodic import PeriodicTask
from kneo.platform.a2a_push import PushFailed, PushGrant, seal, unseal
from kneo.platform.webhooks import signing_key
from kneo.redaction import redact_mapping
from kneo.service.a2a_bridge import ApiCalls, caller_of
from kneo.service.a2a_tasks import FINAL_STATES, pending_of, task_of, task_state
from kneo.service.auth import Principal
from kneo.store import Store
from kneo.store.outbox.a2a_push import PushConfig, PushTarget

if TYPE_CHECKING:
    from kneo.platform.manager import PlatformManager

log = get_logger("kneo_serv.a2a")

#: What setting a push config takes (besides reading the task).
PUSH_SCOPE = "runs:write"
#: The most configs one key holds on one task.
MAX_CONFIGS = 10
MAX_URL_CHARS = 2048
MAX_TOKEN_CHARS = 512
MAX_CREDENTIAL_CHARS = 4096
MAX_ID_CHARS = 128
#: An HTTP authentication scheme's name (RFC 9110 token).
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]{0,63}$")
#: A header value Kneo sends as given: printable ASCII, no line break.
_VISIBLE = re.compile(r"^[\x21-\x7e]+$")
_PRINTABLE = re.compile(r"^[\x20-\x7e]+$")


def _audit(
    store: Store, event_type: str, *, actor: str, run_id: str, payload: dict[str, Any]
) -> None:
    """One audit event in a transaction of its own (in a worker thread: it blocks)."""
    with store.transaction() as tx:
        tx.add_audit(event_type, actor=actor, run_id=run_id, payload=payload)


def _refused(message: str, field: str, **data: str) -> InvalidParamsError:
    return InvalidParamsError(message, data={"field": field, **data})


def _principal(context: ServerCallContext) -> Principal:
    principal = context.state.get("kneo_principal")
    if not isinstance(principal, Principal):  # signed in before dispatch: never here
        raise InvalidRequestError("not signed in", data={"error": "unauthorized", "status": "401"})
    return principal


def _origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url`` (what is stored and audited in clear)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "a URL that does not parse"
    return f"{parts.scheme}://{parts.hostname}" + (f":{port}" if port else "")


class PushConfigs:
    """The push config methods of :class:`~kneo.service.a2a.KneoRequestHandler`."""

    def __init__(self, api: ApiCalls, store: Callable[[str], Store], grant: PushGrant) -> None:
        """``store`` gives a project's store by its name: a config is kept in its task's
        project (the caller's), as the run it watches is."""
        self._api = api
        self._store = store
        self.grant = grant

    async def _task(self, context: ServerCallContext, task_id: str) -> Principal:
        """The caller, once it may set pushes and read the task."""
        principal = _principal(context)
        if not principal.has(PUSH_SCOPE):
            raise InvalidRequestError(
                f"forbidden: push notifications need the {PUSH_SCOPE} scope",
                data={"error": "forbidden", "status": "403", "scope": PUSH_SCOPE},
            )
        if not task_id:
            raise _refused("taskId is required", "taskId")
        await self._api.run(caller_of(context), task_id)  # TaskNotFound, or the key's refusal
        return principal

    def check(self, params: pb.TaskPushNotificationConfig) -> None:
        """Refuse a config before anything is done with it (a message's, before its run
        starts)."""
        self._checked(params)

    def _checked(self, params: pb.TaskPushNotificationConfig) -> tuple[str, dict[str, str]]:
        """The URL and the values to seal, checked; the refusal names the field."""
        url = params.url.strip()
        if not url:
            raise _refused("url is required", "url")
        if len(url) > MAX_URL_CHARS:
            raise _refused(f"url is longer than {MAX_URL_CHARS} characters", "url")
        if not self.grant.destinations.allows(url):
            raise _refused(
                f"url {_origin(url)!r} is not a push destination "
                "this Kneo allows (KNEO_SERV_A2A_PUSH_DESTINATIONS); credentials go in "
                "authentication, never in the URL",
                "url",
                error="E_DESTINATION_NOT_ALLOWED",
            )
        secrets: dict[str, str] = {"url": url}  # its path may be a capability: sealed too
        if params.token:
            if len(params.token) > MAX_TOKEN_CHARS or not _VISIBLE.match(params.token):
                raise _refused(
                    f"token must be 1-{MAX_TOKEN_CHARS} printable ASCII characters, no spaces",
                    "token",
                )
            try:
                signing_key(params.token)
            except ValueError as exc:
                raise _refused(f"token: {exc}", "token") from None
            secrets["token"] = params.token
        if params.HasField("authentication"):
            scheme, credentials = params.authentication.scheme, params.authentication.credentials
            if not _SCHEME.match(scheme):
                raise _refused(
                    "authentication.scheme must be an HTTP authentication scheme (Bearer, "
                    "Basic, ...)",
                    "authentication.scheme",
                )
            if not credentials or len(credentials) > MAX_CREDENTIAL_CHARS:
                raise _refused(
                    f"authentication.credentials is required with a scheme (at most "
                    f"{MAX_CREDENTIAL_CHARS} characters)",
                    "authentication.credentials",
                )
            if not _PRINTABLE.match(credentials):
                raise _refused(
                    "authentication.credentials must be printable ASCII",
                    "authentication.credentials",
                )
            secrets["credentials"] = credentials
        if len(params.id) > MAX_ID_CHARS or (params.id and not _PRINTABLE.match(params.id)):
            raise _refused(f"id must be 1-{MAX_ID_CHARS} printable characters", "id")
        return url, secrets

    def _shown(self, config: PushConfig) -> pb.TaskPushNotificationConfig:
        """A config as its owner reads it back: its URL, never its token or credentials."""
        try:
            url = unseal(self.grant.secret, config.push_id, config.sealed).get("url", "")
        except PushFailed as exc:  # KNEO_SERV_A2A_PUSH_SECRET changed since it was set
            raise InternalError(str(exc)) from None
        shown = pb.TaskPushNotificationConfig(id=config.config_id, task_id=config.run_id, url=url)
        if config.auth_scheme:
            shown.authentication.scheme = config.auth_scheme
        return shown

    async def create(
        self, context: ServerCallContext, params: pb.TaskPushNotificationConfig
    ) -> pb.TaskPushNotificationConfig:
        principal = await self._task(context, params.task_id)
        url, secrets = self._checked(params)
        push_id = new_id("a2ap")
        store = self._store(principal.project)
        try:
            config = await asyncio.to_thread(
                store.a2a_push.set_push_config,
                params.task_id,
                principal.name,
                params.id or params.task_id,  # the a2a-sdk's default id
                PushTarget(
                    push_id=push_id,
                    origin=_origin(url),
                    auth_scheme=params.authentication.scheme if "credentials" in secrets else None,
                    sealed=seal(self.grant.secret, push_id, secrets),
                    sees_requests=principal.has("human:read"),
                ),
                limit=MAX_CONFIGS,
            )
        except InvalidRequest as exc:  # the key holds as many as it may
            raise InvalidRequestError(
                exc.message, data={"error": str(exc.code), "status": str(exc.http_status)}
            ) from None
        assert config is not None  # a set returns the config it set
        await asyncio.to_thread(
            _audit,
            store,
            "a2a.push_config.set",
            actor=principal.name,
            run_id=params.task_id,
            payload={"config_id": config.config_id, "origin": _origin(url)},
        )
        return self._shown(config)

    async def _mine(self, context: ServerCallContext, task_id: str) -> tuple[Principal, list[Any]]:
        principal = await self._task(context, task_id)
        found = await asyncio.to_thread(
            self._store(principal.project).a2a_push.push_configs, task_id, principal.name
        )
        return principal, found

    async def get(
        self, context: ServerCallContext, task_id: str, config_id: str
    ) -> pb.TaskPushNotificationConfig:
        _, found = await self._mine(context, task_id)
        for config in found:
            if config.config_id == config_id:
                return self._shown(config)
        raise TaskNotFoundError(f"task {task_id} has no push config {config_id!r} of yours")

    async def list(
        self, context: ServerCallContext, task_id: str
    ) -> list[pb.TaskPushNotificationConfig]:
        _, found = await self._mine(context, task_id)
        return [self._shown(c) for c in found]

    async def delete(self, context: ServerCallContext, task_id: str, config_id: str) -> None:
        principal = await self._task(context, task_id)
        store = self._store(principal.project)
        cleared = await asyncio.to_thread(
            store.a2a_push.set_push_config, task_id, principal.name, config_id, None
        )
        if cleared is None:
            raise TaskNotFoundError(f"task {task_id} has no push config {config_id!r} of yours")
        await asyncio.to_thread(
            _audit,
            store,
            "a2a.push_config.deleted",
            actor=principal.name,
            run_id=task_id,
            payload={"config_id": config_id},
        )


class PushSweep:
    """Writes one outbox event per change of a pushed task's state (module docstring); one
    per ``--a2a`` process, every ``interval`` seconds."""

    def __init__(self, manager: Callable[[], Any], interval: float) -> None:
        self._manager = manager
        self.interval = interval

    def body(
        self, manager: PlatformManager, config: PushConfig
    ) -> tuple[dict[str, Any], str] | None:
        """The pushed ``StreamResponse`` and the run's status, read now in the config's
        project; ``None`` when the run (or its project) is gone."""
        try:
            if config.project_id != manager.store.project_id:
                project = manager.store.for_project(config.project_id).project
                manager = manager.for_project(project)
            run = manager.get_run(config.run_id)
            pending = None
            if (
                config.sees_requests
                and run.get("status") == "paused"
                and run.get("continuation_id")
            ):
                pending = pending_of(run, manager.get_human_task(str(run["continuation_id"])))
        except NotFound:
            return None
        task = task_of(run, pending)
        # redacted as every outbox payload is (the run view is already, for a non-decider)
        return redact_mapping(MessageToDict(pb.StreamResponse(task=task))), str(run.get("status"))

    def run_once(self) -> int:
        """Record each due push; how many were written."""
        manager = self._manager()
        if manager is None:
            return 0
        store = manager.store
        written = 0
        for due in store.a2a_push.due_pushes():  # every project's: read in the config's
            try:
                owner = store.for_project(due.config.project_id).project
                made = self.body(manager.for_project(owner), due.config)
            except NotFound:  # its project was archived
                made = None
            if made is None:
                continue
            body, status = made  # the status read with the body: what the push says
            if status == due.config.pushed_status:
                continue
            state = task_state(status)
            payload = {
                "push_id": due.config.push_id,
                "state": pb.TaskState.Name(state),
                "body": body,
            }
            done = state in FINAL_STATES
            written += store.a2a_push.record_push(
                due.config, status=status, done=done, payload=payload
            )
        return written

    @contextmanager
    def running(self) -> Iterator[PushSweep]:
        task = PeriodicTask(
            "kneo-a2a-push",
            self.interval,
            self.run_once,
            logger=log,
            failure="the A2A push sweep failed",
            keep_going=True,
        )
        try:
            yield self
        finally:
            task.stop(timeout=5.0)


__all__ = ["MAX_CONFIGS", "PUSH_SCOPE", "PushConfigs", "PushSweep"]
