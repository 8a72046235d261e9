"""Logging that never carries a secret.

Two rules, applied in every Kneo process:

* **Kneo's own records are redacted** (:func:`get_logger`): the message (and a traceback)
  through the redaction policy, and every URL in it reduced to what identifies the
  destination: no user information, no query string, no token-like path segment (a Slack or
  webhook URL is itself the credential).
* **HTTP clients stay quiet** (:func:`quiet_http_clients`): ``httpx`` and its relatives log
  every request's full URL at INFO; their loggers are set to WARNING by every Kneo entry
  point (the CLI, the service app).

Base layer: no I/O but the logging module's own.
"""

from __future__ import annotations

import logging
import re

from kneo.redaction import REDACTED, redact_text

#: Libraries that log full request URLs (and sometimes headers) below WARNING.
HTTP_CLIENT_LOGGERS = (
    "httpx",
    "httpx2",
    "httpcore",
    "httpcore2",
    "urllib3",
    "openai",
    "anthropic",
    "google_genai",
    "mcp",
)

_URL = re.compile(
    r"\b([a-z][a-z0-9+.-]*://)(?:[^/\s@?#]*@)?([^/\s?#]+)([^\s?#\"'<>]*)(\?[^\s#\"'<>]*)?"
)
# A path segment that looks like a credential: long, and mixing letters and digits.
_TOKEN_SEGMENT = re.compile(r"(?=[^/]*[A-Za-z])(?=[^/]*\d)[A-Za-z0-9_-]{16,}")


def _url(match: re.Match[str]) -> str:
    scheme, host, path, query = match.groups()
    path = _TOKEN_SEGMENT.sub(REDACTED, path)
    return f"{scheme}{host}{path}{'?' + REDACTED if query else ''}"


def redact_log_text(text: str) -> str:
    """``text`` as a log line may carry it: redacted, and its URLs reduced."""
    text = redact_text(text)
    return _URL.sub(_url, text) if "://" in text else text


class RedactingFilter(logging.Filter):
    """Redacts a record before any handler sees it (message, arguments and traceback)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to the handler's own error path
            return True
        record.msg, record.args = redact_log_text(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact_log_text(logging.Formatter().formatException(record.exc_info))
        return True


_FILTER = RedactingFilter()


def get_logger(name: str) -> logging.Logger:
    """The logger ``name`` with Kneo's redaction attached (idempotent)."""
    logger = logging.getLogger(name)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    return logger


def quiet_http_clients() -> None:
    """HTTP client libraries log at WARNING and above only (idempotent; a level set lower
    on purpose elsewhere is raised too: their INFO lines carry full URLs)."""
    for name in HTTP_CLIENT_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level < logging.WARNING:
            logger.setLevel(logging.WARNING)
