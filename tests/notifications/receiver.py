"""A real local HTTP receiver for notification tests: records every POST (headers, body),
answers 200 (or what the test sets), and can hold a request to let a test kill the sender."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    """``start()`` binds ``port`` (0: any free port); ``stop()`` closes it (a down receiver)."""

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.status = 200
        self.fail_once: set[str] = set()  # event ids answered 500 the first time
        self.answers: list[int] = []  # what each request was answered, in arrival order
        self.in_flight = 0
        self.max_in_flight = 0  # the most requests it held at once
        self._lock = threading.Lock()
        self.hold_seconds = 0.0  # answer only after this long (the sender can be killed)
        self.got = threading.Event()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> Receiver:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with outer._lock:
                    outer.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    event_id = self.headers.get("X-Kneo-Event-Id", "")
                    status = outer.status
                    if event_id in outer.fail_once:
                        outer.fail_once.discard(event_id)
                        status = 500
                    outer.answers.append(status)
                    outer.in_flight += 1
                    outer.max_in_flight = max(outer.max_in_flight, outer.in_flight)
                outer.got.set()
                try:
                    if outer.hold_seconds:
                        time.sleep(outer.hold_seconds)
                finally:
                    with outer._lock:
                        outer.in_flight -= 1
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 128  # a dispatcher connects many at once
            daemon_threads = True

        self._server = Server(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.requests]

    def event_ids(self) -> list[str]:
        return [headers["x-kneo-event-id"] for headers, _ in self.requests]
