"""Binding assignments: who may decide a human request whose environment says its
assignee binds (``assignments.assignees: binding``, docs/human_in_the_loop.md).

The seed's contract stays the default: an assignee is who a request is *for* (the inbox's
*Mine*, its notifications), and anyone holding ``human:write`` decides. A project (or one of
its environments) may make the assignee binding instead, as a team does for a production
approval assigned to its release manager: then only the assignee, and the ``override``
entries, may decide it. The check is made where every decision is applied
(:meth:`kneo.platform.decisions.Decisions.resume`), so the API, the CLI, the console, a
decision link, a Slack click, MCP and A2A all answer the same ``403 not_the_assignee``
naming the assignee. A timeout's own decision (``on_timeout``) is the policy's, not a
person's, and is never refused.

Who the caller is comes from :func:`kneo.people.current` (their proven name, their groups),
with the groups the project's people directory lists them in, as a link or a Slack click
counts them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kneo.errors import ErrorCode, Forbidden
from kneo.people import Identity, current, names_of

if TYPE_CHECKING:
    from kneo.platform.recipients import People
    from kneo.spec.project import ProjectConfig


@dataclass(frozen=True)
class AssignmentRule:
    """Whether an environment's assignees bind, and who may decide any bound request."""

    binding: bool = False
    override: tuple[str, ...] = ()

    def deciders(self, assignee: object) -> tuple[str, ...]:
        """Who alone may decide a request assigned to ``assignee`` (none: anyone with the
        right may, the request names nobody or its assignment is advisory)."""
        if not self.binding or not isinstance(assignee, str) or not assignee:
            return ()
        return (assignee, *(e for e in self.override if e != assignee))


#: Where a run's environment's rule comes from (the project's config, read when asked).
Rules = Callable[[str | None], AssignmentRule]


def rules_of(config: ProjectConfig | None) -> Rules:
    """The rule of each environment of ``config`` (advisory everywhere without one)."""

    def rule(environment: str | None) -> AssignmentRule:
        if config is None:
            return AssignmentRule()
        policy = config.assignments_for(environment)
        return AssignmentRule(policy.assignees == "binding", tuple(policy.override))

    return rule


def caller_names(actor: str | None, people: People | None) -> frozenset[str]:
    """Every entry naming the deciding caller: :func:`kneo.people.names_of` the current
    request's identity (by name alone outside a request), and ``group:G`` for each group the
    people directory puts them in."""
    who = current(actor) or Identity(actor or "")
    names = set(names_of(who))
    if people is not None:
        person = who.user if who.is_person else who.name
        names |= {f"group:{g}" for g in people.groups_of(person or "")}
    return frozenset(names)


def _timeout(metadata: Mapping[str, Any] | None) -> bool:
    """Whether this is a timeout's own decision: the sweep's (``auto_continued``), made
    outside any caller's request; metadata a caller sends (the API's) never counts, for a
    caller's request always has an identity acting."""
    return bool((metadata or {}).get("auto_continued")) and current() is None


def check_assignee(
    rule: AssignmentRule,
    request: Mapping[str, Any] | Any,
    actor: str | None,
    people: People | None,
    metadata: Mapping[str, Any] | None = None,
) -> None:
    """Refuse (``403 not_the_assignee``) a decision on ``request`` by someone its binding
    assignment does not name; anyone may decide an advisory or unassigned request, and a
    timeout's own decision (:func:`_timeout`) is never refused."""
    assignee = getattr(request, "assignee", None)
    if isinstance(request, Mapping):
        assignee = request.get("assignee")
    allowed = rule.deciders(assignee)
    if not allowed or _timeout(metadata):
        return
    if caller_names(actor, people) & set(allowed):
        return
    raise Forbidden(
        f"only {', '.join(allowed)} may decide this request: its assignment is binding in "
        f"this environment, and {actor or 'an anonymous caller'} is not its assignee",
        code=ErrorCode.not_the_assignee,
    )


__all__ = ["AssignmentRule", "Rules", "caller_names", "check_assignee", "rules_of"]
