"""Decision links: a person decides a human request from the message that told them.

With ``KNEO_SERV_DECISION_LINKS=true``, a ``human.requested`` notification (webhook, Slack)
carries ``decision_link``: ``<KNEO_SERV_PUBLIC_URL>/ui/decide/<token>``, where the token signs
(with ``KNEO_SERV_CONSOLE_SECRET``, ``itsdangerous``) the continuation, the request, the
recipient and the project of the task (its id, as its rows carry it; a link signed before
projects, or for the default project, names none and means the default), and expires after
``KNEO_SERV_DECISION_LINK_SECONDS``. Only a request assigned to
one person or key gets a link (``user:alice@example.com``, ``reviewer``; never ``group:``):
the link decides *as* its recipient. Opening it shows a confirmation page (a GET decides
nothing); the decision is a POST, checked like any other (the recipient must hold
``human:write`` in the link's project) and applied in that project only: the project is
part of what is signed, so no edit of the token moves it to another. It is single use because a decided request cannot be decided again: a used
link says by whom and when.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kneo.errors import ConfigError, ErrorCode, KneoError, NotFound
from kneo.projects import DEFAULT_PROJECT_ID
from kneo.settings import Settings

SALT = "kneo.decision-link"


class LinkExpired(KneoError):
    code = ErrorCode.decision_link_expired
    http_status = 410


@dataclass(frozen=True)
class LinkClaim:
    """What a link's token says: which request of which project, and who decides through
    it."""

    continuation_id: str
    request_id: str
    recipient: str
    #: the id of the task's project (``projects.id``)
    project_id: int = DEFAULT_PROJECT_ID


def recipient_of(assignee: object) -> str | None:
    """The one person or key a request is assigned to (``None`` for a group or nobody)."""
    if not isinstance(assignee, str) or not assignee or assignee.startswith("group:"):
        return None
    return assignee.removeprefix("user:")


class DecisionLinks:
    """Makes and reads decision-link tokens with one secret and one lifetime."""

    def __init__(self, secret: str, lifetime_seconds: int, base_url: str) -> None:
        from itsdangerous import URLSafeTimedSerializer

        self._serializer = URLSafeTimedSerializer(secret, salt=SALT)
        self.lifetime = lifetime_seconds
        self.base_url = base_url

    @classmethod
    def from_settings(cls, settings: Settings) -> DecisionLinks | None:
        if not settings.decision_links:
            return None
        if not settings.console_secret or not settings.public_url:
            raise ConfigError(
                "KNEO_SERV_DECISION_LINKS needs KNEO_SERV_CONSOLE_SECRET (the same on every "
                "process: it signs the links) and KNEO_SERV_PUBLIC_URL (where they point)",
                variable="KNEO_SERV_DECISION_LINKS",
            )
        return cls(settings.console_secret, settings.decision_link_seconds, settings.public_url)

    def url(
        self,
        continuation_id: str,
        request_id: str,
        recipient: str,
        *,
        project_id: int = DEFAULT_PROJECT_ID,
    ) -> str:
        """The link deciding ``request_id`` of ``continuation_id`` (a task of project
        ``project_id``) as ``recipient``."""
        claim: dict[str, Any] = {"c": continuation_id, "r": request_id, "to": recipient}
        if project_id != DEFAULT_PROJECT_ID:
            claim["p"] = project_id
        return f"{self.base_url}/ui/decide/{self._serializer.dumps(claim)}"

    def read(self, token: str) -> LinkClaim:
        """The claim of a genuine, unexpired token: ``404 decision_link_invalid`` for a forged
        or altered one, ``410 decision_link_expired`` after its lifetime."""
        from itsdangerous import BadSignature, SignatureExpired

        try:
            data = self._serializer.loads(token, max_age=self.lifetime)
        except SignatureExpired:
            raise LinkExpired(
                "This decision link has expired: open the request in the console instead"
            ) from None
        except BadSignature:
            raise NotFound(
                "This is not a valid decision link", code=ErrorCode.decision_link_invalid
            ) from None
        project = data.get("p", DEFAULT_PROJECT_ID) if isinstance(data, dict) else None
        if (
            not isinstance(data, dict)
            or not all(isinstance(data.get(k), str) for k in "cr")
            or not isinstance(project, int)
            or isinstance(project, bool)
        ):
            raise NotFound(
                "This is not a valid decision link", code=ErrorCode.decision_link_invalid
            )
        return LinkClaim(data["c"], data["r"], str(data.get("to") or ""), project)


__all__ = ["DecisionLinks", "LinkClaim", "LinkExpired", "recipient_of"]
