"""Projects: the unit of tenancy, named here once for every layer.

A project owns its runs, human tasks, registry revisions, audit events, notifications,
controller status and idempotency records; the store scopes every read and write by it
(:meth:`kneo.store.Store.for_project`), and people and keys are granted roles per project.
An install that never names a project runs everything in :data:`DEFAULT_PROJECT`, the
project every record of a database from before projects belongs to.

Base layer: no I/O, imports only :mod:`kneo.names` and :mod:`kneo.errors`.
"""

from __future__ import annotations

from kneo.errors import ErrorCode, NotFound
from kneo.names import check_name, is_valid_name

__all__ = [
    "CONSOLE_PREFIX",
    "DEFAULT_PROJECT",
    "DEFAULT_PROJECT_ID",
    "PATH_PROJECT",
    "PROJECT_HEADER",
    "check_project_name",
    "is_valid_project_name",
    "project_not_found",
]

#: The project of a single-team install, and of every record written before projects.
DEFAULT_PROJECT = "default"
#: Its row id in ``projects`` (every scoped table's ``project_id`` defaults to it).
DEFAULT_PROJECT_ID = 1
#: The HTTP request header naming the project a request acts in (absent: the caller's home).
PROJECT_HEADER = "X-Kneo-Project"
#: Where the ASGI scope keeps the project a ``/v1/projects/<name>/...`` path named.
PATH_PROJECT = "kneo.project"
#: The console's path form of a project: ``/ui/p/<name>/...`` (kneo.console.paths); the links
#: notifications send to a project's pages use it too.
CONSOLE_PREFIX = "/p/"


def is_valid_project_name(value: object) -> bool:
    """A project name is a plain name (:mod:`kneo.names`): it becomes a path segment
    (``/v1/projects/<name>/...``), a header value, a metrics label and part of lock keys."""
    return is_valid_name(value)


def check_project_name(value: str, *, field: str = "project") -> str:
    """``value`` when it is a valid project name; otherwise ``400 invalid_name``."""
    return check_name(value, kind="project", field=field)


def project_not_found(project: str | int) -> NotFound:
    """The one answer for a project that does not exist, is archived, or is not the caller's
    (the store's views and the API's grants both raise it): the same code and message, so a
    caller never learns another project exists."""
    return NotFound(
        f"No project {str(project)!r} for this caller",
        code=ErrorCode.project_not_found,
        project=str(project),
    )
