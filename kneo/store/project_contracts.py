"""The store's contract for projects (the unit of tenancy), the code files a project's
runs pin, and the console's sign-in sessions: each the same on every project's view or
keyed by content. Part of :mod:`kneo.store.contracts`, which re-exports them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from kneo.store.projects import ProjectRecord
    from kneo.store.sessions import ConsoleSession


class CodeFiles(Protocol):
    """Project code files by sha256 (``code_files``): content-addressed, never changed."""

    def missing(self, digests: Iterable[str]) -> list[str]: ...
    def put(self, files: Mapping[str, bytes]) -> None: ...
    def get(self, digests: Iterable[str]) -> dict[str, bytes]: ...
    def one(self, digest: str) -> bytes | None: ...


class ConsoleSessions(Protocol):
    """Console sign-in sessions, keyed by a hash of the cookie (never the cookie itself)."""

    def open_console_session(
        self,
        session_hash: str,
        *,
        principal: str,
        method: str,
        lifetime_seconds: float,
        person: dict[str, Any] | None = None,
    ) -> None: ...
    def console_session(self, session_hash: str) -> ConsoleSession | None: ...
    def end_console_session(self, session_hash: str) -> bool: ...
    def set_console_project(self, session_hash: str, project_id: int | None) -> bool: ...


class Projects(Protocol):
    """The projects (the unit of tenancy): created, read, defined and archived by a platform
    administrator; the same on every project's view."""

    def create_project(
        self, name: str, *, definition: dict[str, Any] | None = None
    ) -> ProjectRecord: ...
    def get_project(self, project: str | int) -> ProjectRecord: ...
    def list_projects(self, *, status: str | None = None) -> list[ProjectRecord]: ...
    def update_project_definition(
        self, name: str, definition: dict[str, Any] | None
    ) -> ProjectRecord: ...
    def archive_project(self, name: str) -> ProjectRecord: ...
