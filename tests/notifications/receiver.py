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
                outer.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                outer.got.set()
                if outer.hold_seconds:
                    time.sleep(outer.hold_seconds)
                self.send_response(outer.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
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
