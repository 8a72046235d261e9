"""Whether a person reached outside a session may decide human requests: the one check a
decision link (:mod:`kneo.console.links`) and a Slack click (:mod:`kneo.service.slack`)
make before they decide as that person, through the same ``resume`` as the console and API.

Such a person has no sign-in token and so no groups from an identity provider: the groups
they are in are the people directory's (``notifications.people``), the list that sent them
the link or the button. :func:`check_decider` gives them those groups before anything is
checked, so a group counts the same way for the right to decide (a ``group:`` rule of the
role map), for a promotion's ``approvers`` (``group:release``) and in the audit, which says
that ``notifications.people`` made the group theirs.

Everything here is in one project, the task's: the directory is that project's (its
definition's ``notifications.people``), and the right to decide is ``human:write`` held
there.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from kneo.errors import ErrorCode, Forbidden
from kneo.logs import get_logger
from kneo.people import Identity, names_of
from kneo.platform.recipients import load_people
from kneo.projects import DEFAULT_PROJECT
from kneo.service.dependencies import current_manager
from kneo.service.grants import role_grants
from kneo.service.identity import roles_of

if TYPE_CHECKING:
    from collections.abc import Iterable

    from starlette.applications import Starlette

    from kneo.platform.manager import PlatformManager
    from kneo.platform.receivers import Receiver
    from kneo.platform.recipients import People
    from kneo.service.auth import Authenticator

log = get_logger("kneo_serv.notifications")

DECIDE_SCOPE = "human:write"
#: What the audit names as the claim that put a person in a directory group.
DIRECTORY = "notifications.people"


def people_of(app: Starlette, project: str = DEFAULT_PROJECT) -> People:
    """``project``'s people directory (its config's ``notifications.people`` and
    ``KNEO_SERV_NOTIFICATIONS_PEOPLE``): the app's own project's read once per app, another
    project's once per build of its manager (a new definition, a new directory);
    ``project_not_found`` when it is unknown or archived."""
    state = app.state
    manager = current_manager(app)
    if manager is not None and project != manager.store.project:
        return _project_people(state, manager.for_project(project))
    found: People | None = getattr(state, "people", None)
    if found is None:
        context = manager.project if manager is not None else None
        found = load_people(state.settings, context.config if context is not None else None)
        state.people = found
    return found


def _project_people(state: Any, manager: PlatformManager) -> People:
    """A tenant's directory, kept with the manager it was read for."""
    cache: dict[str, tuple[Any, People]] | None = getattr(state, "project_people", None)
    if cache is None:
        cache = state.project_people = {}
    name = str(manager.store.project)
    kept = cache.get(name)
    if kept is not None and kept[0] is manager:
        return kept[1]
    context = manager.project
    found = load_people(state.settings, context.config if context is not None else None)
    cache[name] = (manager, found)
    return found


def with_directory_groups(who: Identity, people: People) -> Identity:
    """``who`` in the groups the directory lists them in (by their proven name), besides
    their own."""
    groups = people.groups_of(who.user or who.name) - who.groups
    if not groups:
        return who
    return dataclasses.replace(
        who, groups=who.groups | groups, groups_claim=who.groups_claim or DIRECTORY
    )


def assignee_names(
    app: Starlette, who: Identity, project: str = DEFAULT_PROJECT
) -> tuple[str, ...]:
    """The assignee entries that name ``who`` in ``project`` (the inbox's *Mine*, the API's
    ``assignee=mine``): their names as a key and by proven claim, their groups, and the groups
    the project's people directory puts them in (a group task or a promotion whose approvers
    name the group is theirs there as in their notifications)."""
    names = names_of(who)
    people = people_of(app, project)
    groups = {f"group:{g}" for name in names if ":" not in name for g in people.groups_of(name)}
    return tuple(sorted(names | groups))


def check_decider(
    authenticator: Authenticator, who: Identity, people: People, *, project: str
) -> Identity:
    """``who`` with their directory groups (:func:`with_directory_groups`, ``people``: the
    project's directory), once they may decide human requests today in ``project`` (the
    task's): an API key of that name with ``human:write`` there, or a person the role map
    gives it there (by ``user:``, a group, their directory's included, ``*``, or a
    ``project:`` group convention); otherwise 403, the same for a grant in another project
    only as for none. With authentication off, anyone may (as in the console). The caller
    decides as the identity returned, so a promotion's ``group:`` approvers see the same
    groups."""
    who = with_directory_groups(who, people)
    if not authenticator.enabled:
        return who
    found = authenticator.named(who.name)
    if found is not None:
        if found[0].in_project(project).has(DECIDE_SCOPE):
            return who
    elif authenticator.tokens is not None:
        roles = roles_of(who, authenticator.roles)[1]
        if DECIDE_SCOPE in role_grants(roles).scopes_in(project):
            return who
    raise Forbidden(
        f"{who.name} may not decide human requests in project {project!r} "
        f"(no {DECIDE_SCOPE} there)",
        code=ErrorCode.forbidden,
    )


def reached(receiver: Receiver, people: People) -> list[str]:
    """The directory's people a receiver hands a personal link or button to: a Slack app's,
    each with a Slack id (its direct messages); an e-mail's, each named by an address; a
    receiver with ``personal_links``, everyone (a group's members, approvers). A channel
    reaches nobody personally."""
    everyone = sorted(people.by_user)
    if receiver.type == "slack_app":
        return [u for u in everyone if people.by_user[u].slack]
    if receiver.type == "email":
        return [u for u in everyone if "@" in u]
    return everyone if receiver.personal_links else []


def undecided(
    authenticator: Authenticator,
    receivers: Iterable[Receiver],
    people: People,
    *,
    project: str = DEFAULT_PROJECT,
) -> list[dict[str, str]]:
    """Each ``(receiver, person)`` whose link or button cannot decide in ``project`` as it
    stands (no ``human:write`` by key, role map or the directory's groups), with why: their
    right may come from their identity provider's groups alone (they must sign in to the
    console to use a link), or they have none. Reported at start and by
    ``kneo notifications check``."""
    found: list[dict[str, str]] = []
    refused: dict[str, str] = {}
    for receiver in receivers:
        for user in reached(receiver, people):
            if user not in refused:
                link = Identity(user, "decision_link", user=user, user_claim="assignee")
                try:
                    check_decider(authenticator, link, people, project=project)
                    refused[user] = ""
                except Forbidden as exc:
                    refused[user] = exc.message
            if refused[user]:
                found.append({"receiver": receiver.name, "person": user, "reason": refused[user]})
    return found


def warn_undecided(
    authenticator: Authenticator,
    receivers: Iterable[Receiver],
    people: People,
    project: str = DEFAULT_PROJECT,
) -> list[dict[str, str]]:
    """:func:`undecided`, each logged as a warning (at a service's start)."""
    found = undecided(authenticator, receivers, people, project=project)
    for row in found:
        log.warning(
            "notification receiver %s reaches %s, whose link or button cannot decide: %s",
            row["receiver"],
            row["person"],
            row["reason"],
        )
    return found


__all__ = [
    "DECIDE_SCOPE",
    "DIRECTORY",
    "assignee_names",
    "check_decider",
    "people_of",
    "reached",
    "undecided",
    "warn_undecided",
    "with_directory_groups",
]
