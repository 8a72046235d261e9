"""Who is acting, beyond a name: the person (or key) behind the current request, and how
``approvers``/``assignees`` entries (``user:EMAIL``, ``group:NAME``, a key's name) match them.

The service's authentication sets :func:`acting` for the request (API bearer tokens and keys,
console sessions); the layers below read :func:`current` where a decision is recorded, so a
promotion approver named by group is recognised and the audit says which person decided,
how they signed in and which group gave them the right, without threading the identity
through every call. Code that runs outside a request (the CLI, the controller) sees ``None``
and goes by the actor's name alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Identity:
    """The caller: ``name`` is the audit actor (an API key's name or the person's e-mail)."""

    name: str
    method: str = "api_key"  # api_key, oidc_token, oidc_session, decision_link
    subject: str | None = None
    email: str | None = None
    groups: frozenset[str] = field(default_factory=frozenset)
    #: the role-map entries that gave this person their roles (``group:release-managers``)
    via: tuple[str, ...] = ()

    @property
    def is_person(self) -> bool:
        return self.method != "api_key"

    def audit(self, matched: str | None = None) -> dict[str, Any]:
        """The audit's account of this caller (never a credential)."""
        found: dict[str, Any] = {"name": self.name, "method": self.method}
        if self.subject:
            found["subject"] = self.subject
        if self.email:
            found["email"] = self.email
        if self.via:
            found["roles_from"] = list(self.via)
        if matched:
            found["matched"] = matched
        return found


_CURRENT: ContextVar[Identity | None] = ContextVar("kneo_identity", default=None)


def acting(identity: Identity | None) -> None:
    """Set the caller of the current request (its task's context; threads it starts copy it)."""
    _CURRENT.set(identity)


def current(name: str | None = None) -> Identity | None:
    """The caller, if it is the one named ``name`` (when given)."""
    found = _CURRENT.get()
    if found is None or (name is not None and found.name != name):
        return None
    return found


def entry_for(name: str, groups: Iterable[str], allowed: Iterable[str]) -> str | None:
    """The first ``allowed`` entry naming this caller: its own name (a key's, or the
    person's as ``user:NAME`` or bare), or ``group:G`` for one of its groups; else ``None``."""
    mine = {name, f"user:{name}"} | {f"group:{g}" for g in groups}
    return next((entry for entry in allowed if entry in mine), None)


def caller_entry(name: str, allowed: Iterable[str]) -> str | None:
    """:func:`entry_for` the current request's caller when it is ``name``, else by name only."""
    who = current(name)
    return entry_for(name, who.groups if who else (), allowed)


def counted(approved_by: Iterable[str], approvers: Iterable[str]) -> frozenset[str]:
    """The approvals that count toward M-of-N: one per person or key. When ``approvers``
    names people only, an approval counts while its approver is still listed; a ``group:``
    entry cannot be re-checked later (groups live at the identity provider), so under a list
    that names a group every recorded approval counts: each was checked against the list
    (with the person's groups) when it was made."""
    allowed = list(approvers)
    people = frozenset(approved_by)
    if not allowed or any(entry.startswith("group:") for entry in allowed):
        return people
    return frozenset(a for a in people if entry_for(a, (), allowed) is not None)


__all__ = ["Identity", "acting", "caller_entry", "counted", "current", "entry_for"]
