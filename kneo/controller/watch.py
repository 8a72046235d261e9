"""Triggers: watchdog on a local repository, and the GitHub push webhook's signature.

The poll interval lives in :mod:`kneo.controller.loop`; these only make a reconcile happen
sooner. A local repository is watched for ref changes under ``.git`` (a commit moves a ref),
debounced, so a commit reconciles within a second. The webhook route (any API replica)
checks :func:`verify_github_signature` on the raw body, then queues a request for the
leader (:mod:`kneo.platform.reconcile`).
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from pathlib import Path
from typing import Any, Protocol

from kneo.errors import ErrorCode, Unauthorized


class Triggerable(Protocol):
    def request_reconcile(self) -> None: ...


def verify_github_signature(secret: str | bytes, body: bytes, header: str | None) -> None:
    """Check ``X-Hub-Signature-256: sha256=<hex>`` over the raw body; 401 when it fails.

    Constant-time comparison; the secret never appears in the error.
    """
    if not secret:
        raise Unauthorized("the webhook secret is not configured", code=ErrorCode.unauthorized)
    if not header or not header.startswith("sha256="):
        raise Unauthorized("missing or malformed X-Hub-Signature-256 header")
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    expected = b"sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest().encode("ascii")
    # bytes on both sides: compare_digest refuses non-ASCII str, and a header may hold any
    if not hmac.compare_digest(expected, header.strip().encode("utf-8", "surrogateescape")):
        raise Unauthorized("webhook signature does not match")


#: What a new commit, branch or tag changes under ``.git`` (paths relative to it).
_REF_FILES = ("HEAD", "packed-refs")
#: The events that change a file: git's own reads (``opened``, ``closed_no_write``), which
#: every pass makes, are not changes (taking them for changes kept the loop busy).
_CHANGES = ("created", "modified", "moved", "deleted", "closed")


def _identity(path: Path) -> tuple[int, int] | None:
    """Which directory ``path`` is (device, inode), or ``None`` while it does not exist."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


class RepositoryWatcher:
    """Watchdog observer on a local repository's ``.git``: calls
    ``controller.request_reconcile`` (debounced) when a ref moves, and on nothing else.

    A repository deleted and created again is a new directory the observer no longer sees:
    :meth:`refresh` (the loop calls it between passes) watches the new one."""

    def __init__(
        self, path: Path, controller: Triggerable, *, debounce_seconds: float = 0.2
    ) -> None:
        self.path = path
        self.controller = controller
        self.debounce = debounce_seconds
        self._observer: Any = None
        self._watching: tuple[int, int] | None = None
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()

    def is_ref_change(self, event_type: str, src_path: str, dest_path: str = "") -> bool:
        """Whether a file event under the watched directory moves a ref."""
        if event_type not in _CHANGES:
            return False
        for raw in (dest_path, src_path) if event_type == "moved" else (src_path,):
            if not raw or raw.endswith(".lock"):
                continue
            try:
                relative = Path(raw).relative_to(self.path).as_posix()
            except ValueError:
                continue
            if relative in _REF_FILES or relative.startswith("refs/"):
                return True
        return False

    def _changed(self) -> None:
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

        def text(value: str | bytes) -> str:
            return value if isinstance(value, str) else value.decode("utf-8", "replace")

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                dest = text(getattr(event, "dest_path", "") or "")
                if watcher.is_ref_change(event.event_type, text(event.src_path), dest):
                    watcher._changed()

        self._watching = _identity(self.path)
        if self._watching is None:
            return  # not there (yet): refresh() starts watching once it is
        self._observer = Observer()
        self._observer.schedule(Handler(), str(self.path), recursive=True)
        self._observer.daemon = True
        self._observer.start()

    def refresh(self) -> None:
        """Watch the directory now at :attr:`path` if it is not the one being watched."""
        if _identity(self.path) != self._watching:
            self._stop_observer()
            self.start()
            if self._watching is not None:
                self.controller.request_reconcile()  # commits made while unwatched

    def _stop_observer(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None

    def stop(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
        self._stop_observer()
