"""Remote A2A agents, called with the official ``a2a-sdk`` client behind the trust kernel.

:class:`A2AAgents` is the platform's :class:`~kneo.engine.remote_agents.RemoteAgents`. Each
exchange resolves the remote through the run's grant first (the card URL on the
environment's allow-list, the declared secret bound to it), then talks through the kernel's
``httpx`` client (:func:`kneo.kernel.async_httpx_client`), which asks the grant before every
request, each redirect hop included, the card's RPC endpoint too: a remote that redirects (or
points its card) to a host the project does not allow is refused, nothing sent there.

The engine is synchronous and the SDK async: an exchange runs on an event loop of its own in
a helper thread, bounded by the remote's ``timeout_seconds``. The streamed events become
progress events; the task's state is then read back (``GetTask``) until it ends or asks, so a
remote that does not stream, or a stream that breaks, ends the same way.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from kneo.engine.remote_agents import (
    ASKING,
    COMPLETED,
    RemoteAgentError,
    RemoteTask,
    RemoteTurn,
)
from kneo.errors import AccessDenied, KneoError
from kneo.kernel import NetworkGrant, async_httpx_client, secret
from kneo.policy.access import HostAccess
from kneo.settings import Settings
from kneo.spec.models import RemoteAgentSpec

if TYPE_CHECKING:
    from a2a.client import Client
    from a2a.types import a2a_pb2 as pb_types

__all__ = ["CARD_PATH", "A2AAgents", "card_base"]

CARD_PATH = "/.well-known/agent-card.json"
#: States after which a task moves no more without the caller.
_STOPPED = frozenset({COMPLETED, ASKING, "failed", "canceled", "rejected", "auth-required"})
_POLL_SECONDS = 0.2
_MAX_EVENT_TEXT = 500


def card_base(card_url: str) -> tuple[str, str]:
    """``(base URL, card path)`` of a card URL: the base URL of an agent stands for its
    well-known card."""
    parts = urlsplit(card_url)
    base = f"{parts.scheme}://{parts.netloc}"
    path = parts.path or "/"
    if path.rstrip("/") == "" or not path.endswith(".json"):
        return base + path.rstrip("/"), CARD_PATH
    return base, path


def state_name(state: int) -> str:
    """A2A's state enum as the protocol spells it (``TASK_STATE_INPUT_REQUIRED`` ->
    ``input-required``)."""
    from a2a.types import a2a_pb2 as pb

    name = str(pb.TaskState.Name(state))
    return name.removeprefix("TASK_STATE_").lower().replace("_", "-")


class A2AAgents:
    """Exchanges with remote A2A agents, each through the run's grant."""

    def __init__(self, settings: Settings, default_access: Callable[[], HostAccess]) -> None:
        self._settings = settings
        self._default_access = default_access

    def exchange(
        self,
        remote: RemoteAgentSpec,
        *,
        access: HostAccess | None,
        task: RemoteTask | None,
        message: str | Mapping[str, Any] | None,
        on_event: Callable[[dict[str, Any]], None],
        path: str,
    ) -> RemoteTurn:
        try:
            import a2a.client  # noqa: F401
        except ImportError:
            raise RemoteAgentError(
                f"{path}: calling a remote A2A agent needs the a2a extra "
                "(pip install 'kneo-platform[a2a]')"
            ) from None
        grant = access or self._default_access()
        grant.destination(remote.card_url, path=f"{path}.card_url")
        variable = grant.secret(remote.secret, path=f"{path}.secret") if remote.secret else None
        reach = grant.reach(remote.secret, variable)
        reach.destination(remote.card_url, path=f"{path}.card_url")
        token = (
            secret(reach, self._settings.environ, remote.secret, path=f"{path}.secret")
            if remote.secret
            else None
        )
        call = _Exchange(remote, reach, token, f"{path}.card_url", on_event)
        with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="kneo-a2a") as pool:
            future = pool.submit(asyncio.run, call.run(task, message))
            try:
                turn: RemoteTurn = future.result()
                return turn
            except KneoError:
                raise
            except Exception as exc:
                refused = _refusal(exc)
                if refused is not None:
                    raise refused from None
                raise RemoteAgentError(
                    f"{path}: the remote agent could not be reached or answered badly: "
                    f"{type(exc).__name__}: {exc}"[:1000]
                ) from None


class _Exchange:
    """One exchange on its own event loop."""

    def __init__(
        self,
        remote: RemoteAgentSpec,
        reach: NetworkGrant,
        token: str | None,
        path: str,
        on_event: Callable[[dict[str, Any]], None],
    ) -> None:
        self.remote, self.reach, self.token, self.path = remote, reach, token, path
        self.on_event = on_event

    async def run(self, task: RemoteTask | None, message: str | Mapping[str, Any] | None) -> Any:
        return await asyncio.wait_for(self._run(task, message), self.remote.timeout_seconds)

    async def _run(self, task: RemoteTask | None, message: str | Mapping[str, Any] | None) -> Any:
        import httpx
        from a2a.client import ClientConfig, ClientFactory
        from a2a.types import a2a_pb2 as pb

        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        timeout = httpx.Timeout(30.0, read=self.remote.timeout_seconds)
        async with async_httpx_client(
            self.reach, path=self.path, headers=headers, timeout=timeout, follow_redirects=True
        ) as http:
            base, card_path = card_base(self.remote.card_url)
            client = await ClientFactory(
                ClientConfig(httpx_client=http, streaming=True)
            ).create_from_url(base, relative_card_path=card_path)
            if task is not None and message is not None:
                current = await client.get_task(pb.GetTaskRequest(id=task.task_id))
                if state_name(current.status.state) != ASKING:
                    message = None  # answered already (a process died before recording it)
            seen = task
            if message is not None:
                request = pb.SendMessageRequest(
                    message=_message(message, task, None if task else self.remote.skill)
                )
                async for event in client.send_message(request):
                    seen = self._report(event, seen) or seen
            if seen is None:
                raise RemoteAgentError(f"{self.path}: the remote agent named no task")
            if not seen.task_id:  # a plain message answered: no task to follow
                return self._message_turn
            return await self._settle(client, seen)

    _message_turn: RemoteTurn | None = None

    def _report(self, event: pb_types.StreamResponse, seen: RemoteTask | None) -> RemoteTask | None:
        """A streamed event as a progress event; the task it names."""
        kind = event.WhichOneof("payload")
        if kind == "message":
            text = _text(event.message.parts)
            self._message_turn = RemoteTurn(
                RemoteTask(event.message.task_id, event.message.context_id), COMPLETED, text
            )
            self.on_event({"kind": "message", "chars": len(text)})
            return RemoteTask(event.message.task_id, event.message.context_id)
        if kind == "task":
            found = RemoteTask(event.task.id, event.task.context_id)
            state = state_name(event.task.status.state)
            self.on_event(
                {"kind": "task", "task_id": found.task_id, "context_id": found.context_id}
                | {"state": state}
            )
            return found
        if kind == "status_update":
            update = event.status_update
            found = RemoteTask(update.task_id, update.context_id)
            data: dict[str, Any] = {
                "kind": "status",
                "task_id": found.task_id,
                "context_id": found.context_id,
                "state": state_name(update.status.state),
            }
            note = _text(update.status.message.parts)
            if note:
                data["message"] = note[:_MAX_EVENT_TEXT]
            self.on_event(data)
            return found
        if kind == "artifact_update":
            update = event.artifact_update
            self.on_event(
                {
                    "kind": "artifact",
                    "task_id": update.task_id,
                    "artifact": update.artifact.name or update.artifact.artifact_id,
                    "chars": len(_text(update.artifact.parts)),
                }
            )
            return RemoteTask(update.task_id, update.context_id) if update.task_id else seen
        return seen

    async def _settle(self, client: Client, task: RemoteTask) -> RemoteTurn:
        """Read the task back until it ends or asks (a stream may end earlier, or a
        restarted process follows a task it did not start)."""
        from a2a.types import a2a_pb2 as pb

        while True:
            current = await client.get_task(pb.GetTaskRequest(id=task.task_id))
            state = state_name(current.status.state)
            if state in _STOPPED:
                return _turn(current, state)
            await asyncio.sleep(_POLL_SECONDS)


def _message(message: str | Mapping[str, Any], task: RemoteTask | None, skill: str | None) -> Any:
    from a2a.types import a2a_pb2 as pb

    out = pb.Message(message_id=str(uuid.uuid4()), role=pb.ROLE_USER)
    if task is not None:
        out.task_id = task.task_id
        if task.context_id:
            out.context_id = task.context_id
    part = pb.Part()
    if isinstance(message, str):
        part.text = message
    else:
        part.data.struct_value.update(dict(message))
    out.parts.append(part)
    if skill is not None:
        out.metadata.update({"skill": skill})
    return out


def _text(parts: Iterable[pb_types.Part]) -> str:
    return "\n".join(p.text for p in parts if p.WhichOneof("content") == "text")


def _data(parts: Iterable[pb_types.Part]) -> dict[str, Any] | None:
    from google.protobuf.json_format import MessageToDict

    for part in parts:
        if part.WhichOneof("content") == "data":
            found = MessageToDict(part.data)
            return found if isinstance(found, dict) else {"value": found}
    return None


def _turn(task: pb_types.Task, state: str) -> RemoteTurn:
    found = RemoteTask(task.id, task.context_id)
    status_parts = task.status.message.parts
    usage = _usage(task)
    if state == COMPLETED:
        answer = "\n".join(t for t in (_text(a.parts) for a in task.artifacts) if t)
        return RemoteTurn(found, state, answer or _text(status_parts), usage=usage)
    return RemoteTurn(found, state, _text(status_parts), _data(status_parts), usage)


def _usage(task: pb_types.Task) -> dict[str, int]:
    """The tokens the remote reports having used for the task so far, where it does: its
    metadata's ``usage`` (``input_tokens``, ``output_tokens``; A2A has no field of its own)."""
    from google.protobuf.json_format import MessageToDict

    found = MessageToDict(task.metadata).get("usage") if task.HasField("metadata") else None
    if not isinstance(found, dict):
        return {}
    return {
        k: int(v)
        for k in ("input_tokens", "output_tokens")
        if isinstance(v := found.get(k), int | float) and v >= 0
    }


def _refusal(exc: BaseException | None) -> AccessDenied | None:
    """The kernel's refusal behind ``exc`` (the SDK wraps transport errors)."""
    seen = 0
    while exc is not None and seen < 20:
        if isinstance(exc, AccessDenied):
            return exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None
