"""How a run ends (the :data:`Outcome` the engine returns) and how a failed step is told.

The engine returns one of :class:`Completed`, :class:`Paused` (with one or more pending
requests), :class:`Failed`, :class:`Cancelled` or :class:`Superseded`; writing it is the
caller's (``kneo.platform.outcomes``). A step's failure is recorded as :func:`error_info`:
a stable code and one redacted line, never a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kneo.engine.human import HumanRequest
from kneo.engine.state import StateParts
from kneo.errors import ErrorCode, KneoError
from kneo.redaction import redact_text


@dataclass(frozen=True)
class Completed:
    """The run finished."""

    output_text: str
    state: dict[str, Any]
    #: ``state``'s text and the texts it was joined from, when the engine made them (the
    #: outcome's journal writes the state from them instead of encoding it again)
    parts: StateParts | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Paused:
    """The run waits for the people its pending requests name."""

    requests: tuple[HumanRequest, ...]
    state: dict[str, Any]


@dataclass(frozen=True)
class Failed:
    """A step failed and the run ends."""

    error: dict[str, Any]
    state: dict[str, Any]


@dataclass(frozen=True)
class Cancelled:
    """The run was cancelled."""

    reason: str
    state: dict[str, Any]


@dataclass(frozen=True)
class Superseded:
    """The run was changed elsewhere mid-execution; nothing more was written."""

    reason: str
    status: str | None
    state: dict[str, Any]


Outcome = Completed | Paused | Failed | Cancelled | Superseded


class StepFailure(KneoError):
    code = ErrorCode.step_failed


class HumanRejected(KneoError):
    """A person rejected the step (a decision, not a fault: ``on_error: retry`` skips it)."""

    code = ErrorCode.human_rejected


def error_info(exc: BaseException, **where: Any) -> dict[str, Any]:
    """A JSON error summary (stable code, one redacted line), never a traceback."""
    code = exc.code if isinstance(exc, KneoError) else ErrorCode.step_error
    message = exc.message if isinstance(exc, KneoError) else f"{type(exc).__name__}: {exc}"
    line = " ".join(redact_text(str(message)).split())[:500]
    return {"code": code, "type": type(exc).__name__, "message": line, **where}
