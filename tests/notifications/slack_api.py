"""A local server speaking the Slack Web API methods Kneo calls (``chat.postMessage``,
``chat.update``, ``chat.postEphemeral``, ``views.open``, ``users.info``,
``conversations.open``, ``conversations.history``): it records each call with its bearer
token and answers as Slack does (``{"ok": true, ...}``, or ``{"ok": false, "error": ...}``
for a bad token, an unknown user or a method ``refuse`` names). It takes JSON bodies and form
fields, as Slack does (read methods: form fields). A message posted to a person (``U...``)
goes to their direct-message conversation (``D`` and their id), whose id the answer gives;
each conversation keeps its messages, with their metadata, for ``conversations.history``."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs


class SlackApi:
    def __init__(self, token: str, users: dict[str, dict[str, Any]]) -> None:
        self.token = token
        self.users = users  # user id -> users.info's "user"
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.history: dict[str, list[dict[str, Any]]] = {}  # conversation id -> messages
        self.refuse: dict[str, str] = {}  # method -> the error Slack answers it with
        self._last = 0.0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.port = 0
        self.holding = threading.Event()  # set: users.info waits for ``release`` (a test
        self.release = threading.Event()  # kills the caller meanwhile); ``held``: it waits
        self.held = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @staticmethod
    def conversation(channel: str) -> str:
        """Where a message to ``channel`` goes: a person's (``U...``) is their DM."""
        return f"D{channel}" if channel[:1] in ("U", "W") else channel

    def answer(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        if method in self.refuse:
            return {"ok": False, "error": self.refuse[method]}
        if method == "chat.postMessage":
            channel = self.conversation(str(args["channel"]))
            self._last = max(time.time(), self._last + 1e-6)  # Slack's: the time, unique
            ts = f"{self._last:.6f}"
            message = {"ts": ts, "text": args.get("text"), "blocks": args.get("blocks")}
            if args.get("metadata"):
                message["metadata"] = args["metadata"]
            self.history.setdefault(channel, []).append(message)
            return {"ok": True, "channel": channel, "ts": ts}
        if method == "chat.update":
            found = [m for m in self.history.get(args["channel"], []) if m["ts"] == args["ts"]]
            if not found:
                return {"ok": False, "error": "message_not_found"}
            found[0].update(text=args.get("text"), blocks=args.get("blocks"))
            return {"ok": True, "channel": args["channel"], "ts": args["ts"]}
        if method == "users.info":
            user = self.users.get(str(args.get("user")))
            return {"ok": True, "user": user} if user else {"ok": False, "error": "user_not_found"}
        if method == "conversations.open":
            return {"ok": True, "channel": {"id": self.conversation(str(args.get("users")))}}
        if method == "conversations.history":
            return self._history(args)
        if method in ("chat.postEphemeral", "views.open"):
            return {"ok": True}
        return {"ok": False, "error": "unknown_method"}

    def _history(self, args: dict[str, Any]) -> dict[str, Any]:
        """Newest first, after ``oldest``, ``limit`` a page, paged by ``cursor``; metadata
        only with ``include_all_metadata``."""
        messages = [
            m
            for m in reversed(self.history.get(str(args["channel"]), []))
            if float(m["ts"]) > float(args.get("oldest") or 0)
        ]
        start, limit = int(args.get("cursor") or 0), int(args.get("limit") or 100)
        page = messages[start : start + limit]
        if args.get("include_all_metadata") != "true":
            page = [{k: v for k, v in m.items() if k != "metadata"} for m in page]
        more = start + limit < len(messages)
        return {
            "ok": True,
            "messages": page,
            "has_more": more,
            "response_metadata": {"next_cursor": str(start + limit) if more else ""},
        }

    def start(self) -> SlackApi:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                method = self.path.rsplit("/", 1)[-1]
                if method == "users.info" and outer.holding.is_set():
                    outer.held.set()
                    outer.release.wait(30)
                if self.headers.get("Content-Type", "").startswith("application/json"):
                    args = json.loads(body or b"{}")
                else:
                    args = {k: v[0] for k, v in parse_qs(body.decode()).items()}
                if self.headers.get("Authorization") != f"Bearer {outer.token}":
                    answer: dict[str, Any] = {"ok": False, "error": "invalid_auth"}
                else:
                    with outer._lock:  # a posted message with the ts Slack gave it
                        answer = outer.answer(method, args)
                        outer.calls.append(
                            (method, {**args, "ts": answer.get("ts"), "in": answer.get("channel")})
                        )
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self._server = server
        self.port = server.server_address[1]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def of(self, method: str) -> list[dict[str, Any]]:
        with self._lock:
            return [args for m, args in self.calls if m == method]
