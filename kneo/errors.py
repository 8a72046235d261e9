"""One exception hierarchy for the whole of Kneo.

Every error a user can meet is a :class:`KneoError` with a stable ``code``, an HTTP status
and a CLI exit code. The service maps it to the envelope ``{"error": code, "message": ...,
**details}``; the CLI prints one line ``error[code]: message`` and exits ``exit_code``.
Third-party errors are translated at the boundary (``raise KneoError(...) from exc``).

    KneoError
    ├── InvalidRequest            400 invalid_request
    │   ├── SpecError             400 E_* (spec diagnostics: file, line, path)
    │   ├── InvalidDecision       400 invalid_decision
    │   └── ConfigError           400 config_error
    ├── Unauthorized              401 unauthorized
    ├── Forbidden                 403 forbidden
    │   ├── BundleNotApproved     403 bundle_not_approved
    │   └── AccessDenied          403 E_SECRET_UNDECLARED, E_DESTINATION_NOT_ALLOWED, ...
    ├── NotFound                  404 not_found
    ├── Conflict                  409 conflict
    │   ├── IdempotencyConflict   409 idempotency_key_conflict
    │   ├── ResourceLocked        409 resource_locked
    │   ├── RequestAlreadyResolved 409 request_already_resolved
    │   └── IllegalTransition     409 illegal_transition
    ├── PayloadTooLarge           413 payload_too_large
    ├── ValidationFailed          422 validation_error
    ├── TooManyRequests           429 too_many_requests (``retry_after`` seconds)
    ├── BundleError               400 bundle_* (signature / digest / key problems)
    ├── ProviderError             502 provider_error
    └── NotReady                  503 not_ready
        └── DatabaseUnavailable   503 database_unavailable (transient: retry after a pause)
"""

from __future__ import annotations

from typing import Any


class KneoError(Exception):
    """Base of all user-facing errors: stable ``code``, ``http_status`` and ``exit_code``."""

    code: str = "kneo_error"
    http_status: int = 400
    exit_code: int = 1

    def __init__(self, message: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details: dict[str, Any] = {k: v for k, v in details.items() if v is not None}

    def to_dict(self) -> dict[str, Any]:
        """The HTTP error envelope (and the CLI's ``--json`` error shape)."""
        return {"error": self.code, "message": self.message, **self.details}

    def __str__(self) -> str:
        return self.message


class InvalidRequest(KneoError):
    code = "invalid_request"
    http_status = 400


class SpecError(InvalidRequest):
    """A spec or config file cannot be read: the message names file and line or field path."""

    code = "E_SCHEMA"


class ConfigError(InvalidRequest):
    code = "config_error"


class InvalidDecision(InvalidRequest):
    code = "invalid_decision"


class Unauthorized(KneoError):
    code = "unauthorized"
    http_status = 401


class Forbidden(KneoError):
    code = "forbidden"
    http_status = 403


class BundleNotApproved(Forbidden):
    code = "bundle_not_approved"


class AccessDenied(Forbidden):
    """A spec names a secret, process, destination or module the project does not allow
    (its code says which: ``E_SECRET_UNDECLARED``, ``E_DESTINATION_NOT_ALLOWED``, ...)."""

    code = "access_denied"


class NotFound(KneoError):
    code = "not_found"
    http_status = 404


class Conflict(KneoError):
    code = "conflict"
    http_status = 409


class IdempotencyConflict(Conflict):
    code = "idempotency_key_conflict"


class ResourceLocked(Conflict):
    code = "resource_locked"


class RequestAlreadyResolved(Conflict):
    code = "request_already_resolved"


class IllegalTransition(Conflict):
    code = "illegal_transition"


class PayloadTooLarge(KneoError):
    code = "payload_too_large"
    http_status = 413


class ValidationFailed(KneoError):
    code = "validation_error"
    http_status = 422


class TooManyRequests(KneoError):
    """Too many failed attempts from this client: wait ``retry_after`` seconds."""

    code = "too_many_requests"
    http_status = 429

    def __init__(self, message: str, *, retry_after: int, **details: Any) -> None:
        super().__init__(message, retry_after=retry_after, **details)
        self.retry_after = retry_after


class BundleError(KneoError):
    """Bundle verification or signing failed; ``code`` says exactly why (``bundle_*``)."""

    code = "bundle_invalid"
    http_status = 400


class ProviderError(KneoError):
    code = "provider_error"
    http_status = 502


class NotReady(KneoError):
    code = "not_ready"
    http_status = 503


class DatabaseUnavailable(NotReady):
    """The database could not be reached or dropped the connection: transient. The service
    answers 503 with ``Retry-After``; workers retry the run with backoff."""

    code = "database_unavailable"
