"""The path form of a project: ``/v1/projects/<name>/<route>`` is ``/v1/<route>`` acting in
``<name>``, for callers that cannot set the ``X-Kneo-Project`` header (a Git host's webhook,
a chat platform's callback, a link in a browser).

The request middleware (:mod:`kneo.service.middleware`) applies :func:`project_path` before
routing: it moves the name into the scope (:data:`kneo.projects.PATH_PROJECT`), where
:func:`kneo.service.auth.requested_project` reads it, and the route is matched as if it had
been called without it. The catalog's own routes (``/v1/projects`` and
``/v1/projects/<name>``) pass unchanged. A header naming another project than the path is
``400 project_mismatch``.
"""

from __future__ import annotations

from starlette.types import Scope

from kneo.errors import ErrorCode, InvalidRequest
from kneo.projects import PATH_PROJECT, PROJECT_HEADER, check_project_name

_PREFIX = "/v1/projects/"
_HEADER = PROJECT_HEADER.lower().encode()


def project_path(scope: Scope) -> Scope:
    """``scope`` with a ``/v1/projects/<name>/<rest>`` path as ``/v1/<rest>`` and the
    project in :data:`~kneo.projects.PATH_PROJECT`; any other scope as it is."""
    path: str = scope.get("path", "")
    if not path.startswith(_PREFIX):
        return scope
    name, slash, rest = path[len(_PREFIX) :].partition("/")
    if not (slash and rest):
        return scope  # the catalog: /v1/projects/<name>
    check_project_name(name)
    header = next((v for k, v in scope.get("headers", ()) if k == _HEADER), None)
    if header is not None and header.decode("latin-1") != name:
        raise InvalidRequest(
            f"the path names project {name!r} and the {PROJECT_HEADER} header another",
            code=ErrorCode.project_mismatch,
            field=PROJECT_HEADER,
        )
    path = "/v1/" + rest
    return {**scope, "path": path, "raw_path": path.encode(), PATH_PROJECT: name}
