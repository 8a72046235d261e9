"""Who a human request's message is for: the real assignee, read from the durable task, and
the members of an approver group.

A notification event carries the audit event's payload, redacted when it was written: a
task assigned to ``user:someone@example.com`` shows ``user:[REDACTED_EMAIL]`` there, as any
viewer of the audit sees it. A decision link or a Slack button is for its recipient, who
needs the real name, so recipients are never read from the event: :func:`request_entry`
reads the request from its continuation (the pending record the decision will be checked
against), and :class:`People` (``notifications.people``, ``KNEO_SERV_NOTIFICATIONS_PEOPLE``)
names a group's members and a Slack user's Kneo person.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kneo.documents import DocumentError, parse_json
from kneo.errors import ConfigError, KneoError
from kneo.notification_events import APPROVAL_EVENTS
from kneo.platform.tasks import with_bodies
from kneo.spec.project import NotificationsConfig

if TYPE_CHECKING:
    from kneo.settings import Settings
    from kneo.spec.project import PersonConfig, ProjectConfig
    from kneo.store.api import Store


PEOPLE_VARIABLE = "KNEO_SERV_NOTIFICATIONS_PEOPLE"
#: The events whose message carries decision links and buttons: a human request's, and a
#: promotion's, freeze override's or rollback's for its approvers.
DECIDABLE = ("human.requested", *APPROVAL_EVENTS)


@dataclass(frozen=True)
class Person:
    """One entry of the people directory."""

    user: str
    slack: str | None = None
    groups: frozenset[str] = field(default_factory=frozenset)


class People:
    """The configured people: by Kneo name, by Slack user id, by group."""

    def __init__(self, people: Iterable[Person] = ()) -> None:
        self.by_user = {p.user: p for p in people}
        self.by_slack = {p.slack: p for p in self.by_user.values() if p.slack}

    def members(self, group: str) -> list[str]:
        """The people in ``group``, by name, sorted (a group nobody is in: none)."""
        return sorted(p.user for p in self.by_user.values() if group in p.groups)

    def recipients(self, assignee: object) -> list[str]:
        """Who a request assigned to ``assignee`` reaches: ``user:NAME`` and a bare key name
        themselves, ``group:NAME`` each member the directory lists."""
        if not isinstance(assignee, str) or not assignee:
            return []
        if assignee.startswith("group:"):
            return self.members(assignee.removeprefix("group:"))
        return [assignee.removeprefix("user:")]

    def deciders(self, event_type: str, entry: dict[str, Any] | None) -> list[str]:
        """Everyone a message about ``entry`` (a request as its task stores it) is for: the
        assignee (or its group's members) of a human request, each approver (or approver
        group's members) of a promotion, freeze override or rollback; in order, once each."""
        if entry is None:
            return []
        if event_type in APPROVAL_EVENTS:
            named = list((entry.get("context") or {}).get("approvers") or [])
        else:
            named = [entry.get("assignee")]
        out: list[str] = []
        for assignee in named:
            out += [r for r in self.recipients(assignee) if r not in out]
        return out

    def groups_of(self, user: str) -> frozenset[str]:
        person = self.by_user.get(user)
        return person.groups if person is not None else frozenset()


def load_people(settings: Settings, project_config: ProjectConfig | None = None) -> People:
    """The project config's ``notifications.people`` and ``KNEO_SERV_NOTIFICATIONS_PEOPLE``
    (a JSON list, same schema); a bad entry is a ``config_error`` naming the variable."""
    from pydantic import ValidationError

    configured: list[PersonConfig] = list(
        getattr(getattr(project_config, "notifications", None), "people", [])
    )
    raw = settings.notifications.people.strip()
    if raw:
        try:
            data = parse_json(raw, source=PEOPLE_VARIABLE)
            configured += NotificationsConfig.model_validate({"people": data}).people
        except (ValueError, DocumentError) as exc:
            detail = str(exc)
            if isinstance(exc, ValidationError):
                detail = "; ".join(
                    f"people.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
                )
            raise ConfigError(
                f"{PEOPLE_VARIABLE} is not a valid people list: {detail}",
                variable=PEOPLE_VARIABLE,
            ) from None
    return People(Person(p.user, p.slack, frozenset(p.groups)) for p in configured)


def request_entry(
    store: Store, continuation_id: str | None, request_id: object
) -> dict[str, Any] | None:
    """The request as its task stores it (the real ``assignee``, its kind, prompt, accepted
    decisions and options; ``request_id`` ``None``: the task's first, a promotion's one), or
    ``None`` when the task or the request is gone."""
    if not continuation_id or not isinstance(request_id, str | None):
        return None
    try:
        cont = with_bodies(store, store.tasks.get_continuation(continuation_id))
    except KneoError:  # gone (NotFound), or its run is: the message goes without links
        return None
    return next((dict(r) for r in cont.requests if request_id in (None, r.get("request_id"))), None)


__all__ = ["DECIDABLE", "PEOPLE_VARIABLE", "People", "Person", "load_people", "request_entry"]
