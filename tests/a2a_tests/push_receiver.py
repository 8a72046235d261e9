"""A real HTTP receiver of A2A push notifications on a loopback port, for the live tests:
every request is kept (path, headers, body); ``/hook`` answers ``200``, ``/flaky`` answers
``500`` to the first delivery of each ``webhook-id`` and ``200`` to its retry, and
``/redirect`` answers ``307`` to the cloud metadata address (which Kneo must not follow)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from a2a.types import a2a_pb2 as pb
from google.protobuf.json_format import Parse

METADATA_URL = "http://169.254.169.254/latest/meta-data/"


@dataclass(frozen=True)
class Push:
    """One request the receiver got, and what it answered."""

    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    status: int

    def stream(self) -> pb.StreamResponse:
        """The body as the A2A ``StreamResponse`` it must be (a parse error fails)."""
        return Parse(self.body.decode(), pb.StreamResponse())

    @property
    def task(self) -> pb.Task:
        return self.stream().task


class Receiver:
    """The receiver (``url`` + a path); ``wait_for`` waits on a condition of what came."""

    def __init__(self) -> None:
        self.pushes: list[Push] = []
        self._seen: set[str] = set()
        self._changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, extra = receiver.answer(self.path, headers)
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()
                with receiver._changed:
                    receiver.pushes.append(Push(self.path, headers, body, status))
                    receiver._changed.notify_all()

            def log_message(self, *args: Any) -> None:  # quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def answer(self, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
        if path.startswith("/redirect"):
            return 307, {"Location": METADATA_URL}
        if path.startswith("/flaky"):
            event = headers.get("webhook-id", "")
            with self._changed:
                first = event not in self._seen
                self._seen.add(event)
            return (500 if first else 200), {}
        return 200, {}

    def wait_for(self, found: Callable[[list[Push]], Any], timeout: float = 30.0) -> Any:
        """``found(pushes)`` once it is truthy (else the test fails after ``timeout``)."""
        with self._changed:
            result = self._changed.wait_for(lambda: found(list(self.pushes)), timeout)
            assert result, f"not received in {timeout}s: {self.pushes}"
            return result

    def of(self, task_id: str) -> list[Push]:
        """The pushes about task ``task_id`` that parse, in arrival order."""
        out = []
        for push in list(self.pushes):
            try:
                if push.task.id == task_id:
                    out.append(push)
            except Exception:  # not a StreamResponse: another test's or a bad one
                continue
        return out

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
