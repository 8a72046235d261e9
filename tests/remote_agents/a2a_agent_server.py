"""An A2A agent served with the ``a2a-sdk``'s own server classes (``DefaultRequestHandler``,
``InMemoryTaskStore``, the SDK's Starlette routes), run as a second process by the tests.

It prints ``PORT <n>`` once it listens. What it does with a message's text:

* ``ask ...``: asks ``Which colour should the report use?`` (``input-required``); the answer
  completes the task with the artifact ``report in <answer>``; an answer ``again`` asks once
  more (``And which size?``);
* ``slow <seconds> ...``: works that long (a ``working`` status first), then answers;
* anything else: answers ``echo: <text>``.

A task whose first text has ``costly`` in it reports its usage, as a total so far, in its
metadata (``usage``: 30 input and 10 output tokens more at each exchange).

Every execution is appended to ``--log`` (``new <task> <text>`` / ``answer <task> <text>``),
so the tests see which remote task an answer reached. ``--token`` makes it refuse a request
without that bearer token; ``--redirect-to`` makes its card a redirect to that URL.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
from pathlib import Path
from typing import Any

import uvicorn
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import a2a_pb2 as pb
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route


class ColourAgent(AgentExecutor):
    def __init__(self, log: Path) -> None:
        self.log = log
        self.costly: dict[str, int] = {}  # task -> exchanges so far (tasks reporting usage)

    def _metadata(self, task_id: str) -> dict[str, Any] | None:
        if task_id not in self.costly:
            return None
        self.costly[task_id] += 1
        n = self.costly[task_id]
        return {"usage": {"input_tokens": 30 * n, "output_tokens": 10 * n}}

    def _note(self, line: str) -> None:
        with self.log.open("a", encoding="utf-8") as out:
            out.write(line + "\n")

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        text = context.get_user_input()
        task = context.current_task
        assert context.task_id is not None and context.context_id is not None
        updater = TaskUpdater(event_queue, context.task_id, context.context_id)
        if task is None:
            assert context.message is not None
            await event_queue.enqueue_event(
                pb.Task(
                    id=context.task_id,
                    context_id=context.context_id,
                    status=pb.TaskStatus(state=pb.TASK_STATE_SUBMITTED),
                    history=[context.message],
                )
            )
            self._note(f"new {context.task_id} {text}")
            if "costly" in text:
                self.costly[context.task_id] = 0
            await updater.start_work(updater.new_agent_message([pb.Part(text="thinking")]))
            if text.startswith("ask"):
                await updater.update_status(
                    pb.TASK_STATE_INPUT_REQUIRED,
                    updater.new_agent_message(
                        [pb.Part(text="Which colour should the report use?")]
                    ),
                    metadata=self._metadata(context.task_id),
                )
                return
            if text.startswith("slow"):
                await asyncio.sleep(float(text.split()[1]))
                answer = "slow done"
            else:
                answer = f"echo: {text}"
        else:
            self._note(f"answer {context.task_id} {text}")
            await updater.start_work()
            if text == "again":
                await updater.requires_input(
                    updater.new_agent_message([pb.Part(text="And which size?")])
                )
                return
            answer = f"report in {text}"
        await updater.add_artifact([pb.Part(text=answer)], name="answer")
        await updater.update_status(
            pb.TASK_STATE_COMPLETED, metadata=self._metadata(context.task_id)
        )

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        raise NotImplementedError


def card(url: str) -> pb.AgentCard:
    return pb.AgentCard(
        name="colour-agent",
        description="Asks for a colour, then writes the report.",
        version="1.0.0",
        supported_interfaces=[
            pb.AgentInterface(url=url, protocol_binding="JSONRPC", protocol_version="1.0")
        ],
        capabilities=pb.AgentCapabilities(streaming=True),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[pb.AgentSkill(id="report", name="report", description="writes reports")],
    )


def app(args: argparse.Namespace, port: int) -> Any:
    rpc = args.rpc_url or f"http://127.0.0.1:{port}/a2a"
    handler = DefaultRequestHandler(
        agent_executor=ColourAgent(Path(args.log)),
        task_store=InMemoryTaskStore(),
        agent_card=card(rpc),
    )
    routes = [*create_jsonrpc_routes(handler, "/a2a")]
    if args.redirect_to:

        async def redirect(request: Request) -> Response:
            return RedirectResponse(args.redirect_to, status_code=302)

        routes.insert(0, Route("/.well-known/agent-card.json", redirect))
    else:
        routes = [*create_agent_card_routes(card(rpc)), *routes]
    application = Starlette(routes=routes)
    if args.token:
        inner = application

        async def guarded(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http" and scope["path"] == "/a2a":
                headers = dict(scope["headers"])
                if headers.get(b"authorization") != f"Bearer {args.token}".encode():
                    await JSONResponse({"error": "unauthorized"}, 401)(scope, receive, send)
                    return
            await inner(scope, receive, send)

        return guarded
    return application


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--log", required=True)
    parser.add_argument("--token")
    parser.add_argument("--redirect-to")
    parser.add_argument("--rpc-url")
    args = parser.parse_args()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    print(f"PORT {port}", flush=True)
    config = uvicorn.Config(app(args, port), log_level="warning")
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
