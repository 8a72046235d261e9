"""Triggers: watchdog on a local repository, and the GitHub push webhook.

The poll interval lives in :meth:`Controller.run`; these only make a reconcile happen
sooner. A local repository is watched for ref changes under ``.git`` (a commit moves a ref),
debounced, so a commit reconciles within a second. The webhook route (added by the service)
calls :func:`verify_github_signature` on the raw body and, when it holds, :func:`trigger`.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from pathlib import Path
from typing import Any, Protocol

from kneo.errors import Unauthorized


class Triggerable(Protocol):
    def request_reconcile(self) -> None: ...


def verify_github_signature(secret: str | bytes, body: bytes, header: str | None) -> None:
    """Check ``X-Hub-Signature-256: sha256=<hex>`` over the raw body; 401 when it fails.

    Constant-time comparison; the secret never appears in the error.
    """
    if not secret:
        raise Unauthorized("the webhook secret is not configured", code="unauthorized")
    if not header or not header.startswith("sha256="):
        raise Unauthorized("missing or malformed X-Hub-Signature-256 header")
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    expected = b"sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest().encode("ascii")
    # bytes on both sides: compare_digest refuses non-ASCII str, and a header may hold any
    if not hmac.compare_digest(expected, header.strip().encode("utf-8", "surrogateescape")):
        raise Unauthorized("webhook signature does not match")


def trigger(
    controller: Triggerable, event: str | None = None, payload: Any = None
) -> dict[str, Any]:
    """Ask for an immediate reconcile; returns the response body for the webhook route.

    ``ping`` events are acknowledged without a reconcile; every other event (``push``,
    tag creation) wakes the controller, which fetches and reconciles what the branch holds.
    """
    if event == "ping":
        return {"accepted": False, "event": "ping"}
    ref = payload.get("ref") if isinstance(payload, dict) else None
    controller.request_reconcile()
    return {"accepted": True, "event": event or "push", "ref": ref}


class RepositoryWatcher:
    """Watchdog observer on a local repository's ``.git``; calls ``on_change`` debounced."""

    def __init__(
        self, path: Path, controller: Triggerable, *, debounce_seconds: float = 0.2
    ) -> None:
        self.path = path
        self.controller = controller
        self.debounce = debounce_seconds
        self._observer: Any = None
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()

    def _changed(self, src_path: str) -> None:
        if src_path.endswith(".lock") or "/objects/" in src_path:
            return
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(self.debounce, self.controller.request_reconcile)
            self._timer.daemon = True
            self._timer.start()

    def start(self) -> None:
        from watchdog.events import FileSystemEvent, FileSystemEventHandler
        from watchdog.observers import Observer

        watcher = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                src = event.src_path if isinstance(event.src_path, str) else event.src_path.decode()
                watcher._changed(src)

        self._observer = Observer()
        self._observer.schedule(Handler(), str(self.path), recursive=True)
        self._observer.daemon = True
        self._observer.start()

    def stop(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None
