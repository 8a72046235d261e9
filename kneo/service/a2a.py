"""The A2A server (official ``a2a-sdk``): Kneo's approved bundles as an agent's skills, a run
as an A2A task, a pause for a person as ``input-required`` (docs/a2a.md).

:class:`KneoRequestHandler` is the SDK's request handler for every transport the SDK
dispatches (JSON-RPC here, the 1.0 method names and the 0.3 ones, ``message/send`` and
``message/stream``). It keeps no task store of its own: a task is its run, read from the
store through the API at every request, so a task outlives the process that started it and
any replica answers for it. Each operation is the API's (:mod:`kneo.service.a2a_bridge`):

* a message without ``taskId`` starts the skill named in ``metadata.skill``
  (``bundle@environment``) with the message's text as input: ``POST /v1/runs``;
* a message on an ``input-required`` task is a decision on its pending request:
  ``POST /v1/human-tasks/{continuation_id}/resume``, scopes, idempotency and audit as a
  person's answer over HTTP;
* ``tasks/get`` is ``GET /v1/runs/{id}`` (and the pending request; with history, the run's
  pauses from its trace and each one's human task), ``tasks/cancel`` is
  ``POST /v1/runs/{id}/cancel``, ``tasks/list`` is ``GET /v1/runs`` (newest change first,
  ``contextId`` the run's session);
* push notification configs are the caller's own, kept by :mod:`kneo.service.a2a_push`,
  delivered through the notifications outbox (:mod:`kneo.platform.a2a_push`).

Every call is made as the request's :class:`~kneo.service.a2a_bridge.Caller`: its API key,
in the project it named (``X-Kneo-Project``) or the key's home project, so the tasks one
agent sees, starts and answers are that project's only.

``message/send`` answers once the run pauses or ends (at most ``KNEO_SERV_MAX_WAIT_SECONDS``,
then as it is; ``returnImmediately`` at once); ``message/stream`` follows it, one status
event per change, the output as an artifact before ``completed``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

from a2a.server.context import ServerCallContext
from a2a.server.request_handlers import RequestHandler
from a2a.types import a2a_pb2 as pb
from a2a.utils.errors import (
    A2AError,
    InvalidParamsError,
    InvalidRequestError,
    PushNotificationNotSupportedError,
    TaskNotCancelableError,
    TaskNotFoundError,
    UnsupportedOperationError,
)
from google.protobuf.json_format import MessageToDict

from kneo.errors import ErrorCode
from kneo.service.a2a_bridge import ApiCalls, Caller, caller_of
from kneo.service.a2a_push import PushConfigs
from kneo.service.a2a_tasks import (
    CONTEXT_PATTERN,
    FINAL_STATES,
    MAX_HISTORY,
    MESSAGE_KEY,
    SKILL_KEY,
    context_for,
    decision_body,
    history,
    input_text,
    parse_skill,
    pending_of,
    run_statuses,
    task_of,
)

#: how often a waiting request or a stream reads the run: every 50 ms at first, doubling
MAX_POLL_SECONDS = 0.5
#: ``Idempotency-Key`` of an A2A message: its ``messageId``, marked as A2A's
IDEMPOTENCY_PREFIX = "a2a:"
#: ``ListTasks``: the page size without one, and the largest (the protocol's bounds)
LIST_PAGE_SIZE = 50
MAX_LIST_PAGE_SIZE = 100

CardBuilder = Callable[[ServerCallContext], Awaitable[pb.AgentCard]]


def _settles(task: pb.Task) -> bool:
    return task.status.state in FINAL_STATES or task.status.state == pb.TASK_STATE_INPUT_REQUIRED


def _history_limit(config: Any, default: int) -> int:
    """How many history messages a request asks for (``default`` when it does not say);
    a negative ``historyLength`` is refused naming it."""
    if not config.HasField("history_length"):
        return default
    if config.history_length < 0:
        raise InvalidParamsError("historyLength must be 0 or more", data={"field": "historyLength"})
    return min(int(config.history_length), MAX_HISTORY)


class KneoRequestHandler(RequestHandler):
    """Runs as A2A tasks, through the API (see the module docstring)."""

    def __init__(
        self,
        api: ApiCalls,
        card: CardBuilder,
        *,
        max_wait_seconds: float,
        push: PushConfigs | None = None,
    ) -> None:
        self._api = api
        self._card = card
        self._max_wait = max_wait_seconds
        self.push = push

    # ------------------------------------------------------------------ reading tasks

    async def _pending(self, caller: Caller, run: dict[str, Any]) -> dict[str, Any] | None:
        """The pending request of a paused run (with its continuation id), or ``None`` where
        the run is not paused or the key may not read human tasks."""
        continuation_id = run.get("continuation_id")
        if run.get("status") != "paused" or not continuation_id:
            return None
        try:
            task = await self._api.human_task(caller, str(continuation_id))
        except InvalidRequestError:  # no human:read: the state says input-required anyway
            return None
        return pending_of(run, task)

    async def task(self, caller: Caller, run_id: str, history_limit: int = 0) -> pb.Task:
        """The A2A task of run ``run_id`` as the caller may see it, with its last
        ``history_limit`` messages."""
        return await self._task_of(caller, await self._api.run(caller, run_id), history_limit)

    async def _task_of(self, caller: Caller, run: dict[str, Any], history_limit: int) -> pb.Task:
        task = task_of(run, await self._pending(caller, run))
        if history_limit > 0:
            task.history.extend(await self._history(caller, run, history_limit))
        return task

    async def _history(self, caller: Caller, run: dict[str, Any], limit: int) -> list[pb.Message]:
        """The task's messages: its input, and each question its pauses asked with the
        answer it got (the human tasks of the run's pauses; a key without ``human:read``
        sees the input alone)."""
        asked: list[dict[str, Any]] = []
        try:
            for continuation_id in await self._api.pauses(caller, str(run["run_id"])):
                asked.append(await self._api.human_task(caller, continuation_id))
        except (InvalidRequestError, TaskNotFoundError):  # no human:read; a task pruned
            asked = []
        return history(run, asked, limit)

    async def _settled(self, caller: Caller, run_id: str) -> pb.Task:
        """The task once it asks for input or ends, else as it is after the longest wait."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._max_wait
        interval = 0.05
        while True:
            task = await self.task(caller, run_id)
            if _settles(task) or loop.time() >= deadline:
                return task
            await asyncio.sleep(interval)
            interval = min(MAX_POLL_SECONDS, interval * 2)

    async def _follow(self, caller: Caller, run_id: str) -> AsyncGenerator[Any]:
        """The task, then one status event per change until it asks for input or ends (the
        output artifact just before ``completed``)."""
        task = await self.task(caller, run_id)
        yield task
        seen = (task.status.state, task.metadata["kneo_status"])
        interval = 0.05
        while not _settles(task):
            await asyncio.sleep(interval)
            interval = min(MAX_POLL_SECONDS, interval * 2)
            task = await self.task(caller, run_id)
            now = (task.status.state, task.metadata["kneo_status"])
            if now == seen:
                continue
            seen, interval = now, 0.05
            for artifact in task.artifacts:
                yield pb.TaskArtifactUpdateEvent(
                    task_id=task.id, context_id=task.context_id, artifact=artifact, last_chunk=True
                )
            yield pb.TaskStatusUpdateEvent(
                task_id=task.id, context_id=task.context_id, status=task.status
            )

    # ------------------------------------------------------------------ messages

    async def _start(self, caller: Caller, message: pb.Message, owner: str | None) -> str:
        """Start the skill the message names: ``POST /v1/runs`` (asynchronous: the workers
        run it), keyed by the message id."""
        metadata = MessageToDict(message.metadata) if message.HasField("metadata") else {}
        bundle, environment = parse_skill(metadata.get(SKILL_KEY))
        body = {
            "bundle": bundle,
            "environment": environment,
            "input": input_text(message),
            "async_mode": True,
            "session_id": context_for(message, owner or ""),
            "metadata": {MESSAGE_KEY: message.message_id},
        }
        started = await self._api.start(caller, body, IDEMPOTENCY_PREFIX + message.message_id)
        return str(started["run_id"])

    async def _answer(
        self, caller: Caller, message: pb.Message, owner: str | None, at_once: bool = False
    ) -> str:
        """Decide the pending request of the message's task: the human resume route (its
        outcome awaited there unless ``at_once``: a stream or ``return_immediately``)."""
        run_id = message.task_id
        answer = decision_body(message, None) if _has_data(message) else None
        continuation_id = (answer or {}).pop("continuation_id", None)
        if continuation_id is None:  # else a retry may follow the run past its pause
            run = await self._api.run(caller, run_id)
            if run.get("status") != "paused" or not run.get("continuation_id"):
                raise _not_waiting(run)
            continuation_id = run["continuation_id"]
        try:
            human = await self._api.human_task(caller, str(continuation_id))
        except TaskNotFoundError:  # gone with its run's end (a timeout's): say that instead
            run = await self._api.run(caller, run_id)
            if run.get("status") != "paused":
                raise _not_waiting(run) from None
            raise
        if human.get("run_id") != run_id:
            raise InvalidParamsError(
                f"continuation {continuation_id} is not task {run_id}'s",
                data={"field": "message.parts.data.continuation_id"},
            )
        pending = [r for r in human.get("requests") or [] if r.get("status") == "pending"]
        body = decision_body(message, pending[0] if len(pending) == 1 else None)
        body.pop("continuation_id", None)
        if not body.get("request_id"):
            raise InvalidParamsError(
                f"task {run_id} waits on {len(pending)} requests: name one as request_id",
                data={"field": "message.parts.data.request_id"},
            )
        await self._api.resume(
            caller,
            str(continuation_id),
            body,
            IDEMPOTENCY_PREFIX + message.message_id,
            at_once=at_once,
        )
        return run_id

    async def _send(
        self, params: pb.SendMessageRequest, context: ServerCallContext, at_once: bool = False
    ) -> str:
        message = params.message
        if not message.message_id:
            raise InvalidParamsError(
                "message.messageId is required", data={"field": "message.messageId"}
            )
        caller = caller_of(context)
        config = params.configuration
        _history_limit(config, 0)  # refused before the run starts
        if config.HasField("task_push_notification_config"):
            # refused before the run starts, never dropped silently
            self._pushes().check(config.task_push_notification_config)
        principal = context.state.get("kneo_principal")
        owner = getattr(principal, "name", None)
        if message.task_id:
            run_id = await self._answer(caller, message, owner, at_once)
        else:
            run_id = await self._start(caller, message, owner)
        if config.HasField("task_push_notification_config"):
            push = pb.TaskPushNotificationConfig()
            push.CopyFrom(config.task_push_notification_config)
            push.task_id = run_id
            await self._pushes().create(context, push)
        return run_id

    async def on_message_send(
        self, params: pb.SendMessageRequest, context: ServerCallContext
    ) -> pb.Task | pb.Message:
        at_once = params.configuration.return_immediately
        run_id = await self._send(params, context, at_once)
        caller, limit = caller_of(context), _history_limit(params.configuration, 0)
        if params.configuration.return_immediately:
            return await self.task(caller, run_id, limit)
        task = await self._settled(caller, run_id)
        if limit > 0:
            task.history.extend(
                await self._history(caller, await self._api.run(caller, run_id), limit)
            )
        return task

    async def on_message_send_stream(
        self, params: pb.SendMessageRequest, context: ServerCallContext
    ) -> AsyncGenerator[Any]:
        run_id = await self._send(params, context, at_once=True)  # the stream follows it
        async for event in self._follow(caller_of(context), run_id):
            yield event

    async def on_subscribe_to_task(
        self, params: pb.SubscribeToTaskRequest, context: ServerCallContext
    ) -> AsyncGenerator[Any]:
        caller = caller_of(context)
        task = await self.task(caller, params.id)
        if task.status.state in FINAL_STATES:
            raise UnsupportedOperationError(f"task {params.id} has ended: nothing to follow")
        async for event in self._follow(caller, params.id):
            yield event

    # ------------------------------------------------------------------ tasks

    async def on_get_task(
        self, params: pb.GetTaskRequest, context: ServerCallContext
    ) -> pb.Task | None:
        limit = _history_limit(params, MAX_HISTORY)
        return await self.task(caller_of(context), params.id, limit)

    async def on_cancel_task(
        self, params: pb.CancelTaskRequest, context: ServerCallContext
    ) -> pb.Task | None:
        caller = caller_of(context)
        task = await self.task(caller, params.id)
        if task.status.state in FINAL_STATES:
            raise TaskNotCancelableError(
                f"task {params.id} has ended ({task.metadata['kneo_status']})"
            )
        await self._api.cancel(caller, params.id)
        return await self.task(caller, params.id)

    async def on_list_tasks(
        self, params: pb.ListTasksRequest, context: ServerCallContext
    ) -> pb.ListTasksResponse:
        """``GET /v1/runs`` with the caller's key in its project (what it may read), newest
        change first."""
        caller = caller_of(context)
        limit = _history_limit(params, 0)
        size = params.page_size if params.HasField("page_size") else LIST_PAGE_SIZE
        if not 1 <= size <= MAX_LIST_PAGE_SIZE:
            raise InvalidParamsError(
                f"pageSize must be 1 to {MAX_LIST_PAGE_SIZE}", data={"field": "pageSize"}
            )
        if params.HasField("status_timestamp_after"):
            raise InvalidParamsError(
                "statusTimestampAfter is not supported by Kneo's A2A server: filter by "
                "contextId or status, or page through the newest first",
                data={"field": "statusTimestampAfter"},
            )
        query: dict[str, Any] = {"limit": size, "sort_by": "updated_at", "sort_order": "desc"}
        if params.status:
            query["status"] = ",".join(run_statuses(params.status))
        if params.context_id:
            if not CONTEXT_PATTERN.match(params.context_id):
                raise InvalidParamsError(
                    "contextId is not a context id Kneo gives", data={"field": "contextId"}
                )
            query["session_id"] = params.context_id
        if params.page_token:
            query["cursor"] = params.page_token
        try:
            page = await self._api.list_runs(caller, query)
        except InvalidParamsError as exc:  # a page token that is not one of ours
            if (exc.data or {}).get("field") == "cursor":
                raise InvalidParamsError(
                    "pageToken is not a page token of this listing", data={"field": "pageToken"}
                ) from None
            raise
        full = params.include_artifacts or limit > 0  # what a run's summary does not carry
        tasks = []
        for summary in page.get("runs") or []:
            if full:
                task = await self.task(caller, str(summary["run_id"]), limit)
                if not params.include_artifacts:
                    task.ClearField("artifacts")
            else:
                task = task_of(summary, None)
            tasks.append(task)
        return pb.ListTasksResponse(
            tasks=tasks,
            next_page_token=str(page.get("next_cursor") or ""),
            page_size=size,
            total_size=int(page.get("total") or 0),
        )

    async def on_get_extended_agent_card(
        self, params: pb.GetExtendedAgentCardRequest, context: ServerCallContext
    ) -> pb.AgentCard:
        return await self._card(context)

    # ------------------------------------------------------------------ push configs

    def _pushes(self) -> PushConfigs:
        if self.push is None:
            raise PushNotificationNotSupportedError(
                "push notifications are off on this Kneo (no KNEO_SERV_A2A_PUSH_DESTINATIONS): "
                "poll tasks/get or follow message/stream"
            )
        return self.push

    async def on_create_task_push_notification_config(
        self, params: pb.TaskPushNotificationConfig, context: ServerCallContext
    ) -> pb.TaskPushNotificationConfig:
        return await self._pushes().create(context, params)

    async def on_get_task_push_notification_config(
        self, params: pb.GetTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> pb.TaskPushNotificationConfig:
        return await self._pushes().get(context, params.task_id, params.id)

    async def on_list_task_push_notification_configs(
        self, params: pb.ListTaskPushNotificationConfigsRequest, context: ServerCallContext
    ) -> pb.ListTaskPushNotificationConfigsResponse:
        configs = await self._pushes().list(context, params.task_id)
        return pb.ListTaskPushNotificationConfigsResponse(configs=configs)

    async def on_delete_task_push_notification_config(
        self, params: pb.DeleteTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> None:
        await self._pushes().delete(context, params.task_id, params.id)


def _has_data(message: pb.Message) -> bool:
    return any(p.WhichOneof("content") == "data" for p in message.parts)


def _not_waiting(run: dict[str, Any]) -> A2AError:
    """The error of a message on a task that asks for nothing."""
    status = run.get("status")
    task = run.get("run_id")
    if status == "expired":  # its question's deadline passed: too late, as the route says
        return InvalidRequestError(
            f"{ErrorCode.human_task_expired}: task {task}'s question expired unanswered: "
            "start a new task",
            data={"error": ErrorCode.human_task_expired, "status": "409"},
        )
    if status in ("succeeded", "failed", "cancelled", "timed_out"):
        return UnsupportedOperationError(f"task {task} has ended ({status}): start a new task")
    return InvalidRequestError(
        f"task {task} is {status}: it asks for no input now", data={"status": str(status)}
    )


__all__ = ["KneoRequestHandler"]
