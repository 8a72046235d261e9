"""Who is acting, beyond a name: the person (or key) behind the current request, and how
``approvers``/``assignees``/role-map entries (``user:EMAIL``, ``group:NAME``, a key's name)
match them.

This module is the kernel's identity door (:mod:`kneo.kernel`): :func:`proven_claim` decides
which of a token's claims say who a person is, and :func:`names_of` which entries name a
caller. Role rules, approvers, decision links and the inbox's "mine" all ask them, so a claim
that proves nothing (an ``email`` the provider has not verified) can never put a person in
someone else's place: ``user:`` entries match only the configured user claim, and ``email``
only with ``email_verified: true`` (unless the operator says the provider's addresses are
trusted as they are).

The service's authentication sets :func:`acting` for the request (API bearer tokens and keys,
console sessions); the layers below read :func:`current` where a decision is recorded, so a
promotion approver named by group is recognised and the audit says which person decided,
how they signed in, which claim named them and which entry gave them the right, without
threading the identity through every call. Code that runs outside a request (the CLI, the
controller) sees ``None`` and goes by the actor's name alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

#: The claim that says the provider checked the person's ``email`` (OpenID Connect Core 5.1).
EMAIL_VERIFIED = "email_verified"


def proven_claim(
    claims: Mapping[str, Any], claim: str, *, trust_unverified_email: bool = False
) -> str | None:
    """The value of ``claim`` when it says who the person is, else ``None``.

    A non-empty string is needed. ``email`` proves something only with ``email_verified``
    exactly ``true``: many providers let a person type any address into their profile, and
    an address nobody checked names whoever typed it. ``trust_unverified_email``
    (``KNEO_SERV_OIDC_TRUST_UNVERIFIED_EMAIL``) is for providers that issue only addresses
    they own and omit the flag."""
    value = claims.get(claim)
    if not isinstance(value, str) or not value.strip():
        return None
    if claim == "email" and claims.get(EMAIL_VERIFIED) is not True and not trust_unverified_email:
        return None
    return value


@dataclass(frozen=True)
class Identity:
    """The caller: ``name`` is the audit actor (an API key's name or the person's name).

    ``user`` is what ``user:`` entries match: the value of the configured user claim
    (``user_claim``) when it proves who the person is (:func:`proven_claim`), else ``None``
    (the person is then named by their groups only, and audited under their subject)."""

    name: str
    method: str = "api_key"  # api_key, oidc_token, oidc_session, decision_link
    subject: str | None = None
    email: str | None = None  # a verified address only (shown in the audit)
    groups: frozenset[str] = field(default_factory=frozenset)
    #: the role-map entries that gave this person their roles (``group:release-managers``)
    via: tuple[str, ...] = ()
    user: str | None = None
    #: the claim ``user`` came from (``email``), and the claim that lists ``groups``
    user_claim: str | None = None
    groups_claim: str | None = None

    @property
    def is_person(self) -> bool:
        return self.method != "api_key"

    def audit(self, matched: str | None = None) -> dict[str, Any]:
        """The audit's account of this caller (never a credential): who (name, subject), how
        they signed in, and which claim made ``matched`` (the entry that gave the right)
        theirs."""
        found: dict[str, Any] = {"name": self.name, "method": self.method}
        if self.subject:
            found["subject"] = self.subject
        if self.email:
            found["email"] = self.email
        if self.user_claim and self.user:
            found["user_claim"] = self.user_claim
        if self.via:
            found["roles_from"] = list(self.via)
        if matched:
            found["matched"] = matched
            claim = self.claim_of(matched)
            if claim:
                found["matched_claim"] = claim
        return found

    def claim_of(self, entry: str) -> str | None:
        """The claim that makes ``entry`` name this person (``None`` for a key's name)."""
        if not self.is_person:
            return None
        if entry.startswith("group:"):
            return self.groups_claim
        return self.user_claim if self.user is not None else None


def names_of(who: Identity) -> frozenset[str]:
    """Every entry that names ``who``: a key (or an actor known by name alone, outside a
    request) by its name, bare or as ``user:NAME``; a person by their proven user claim, bare
    or as ``user:VALUE``, and by ``group:G`` for each of their groups. Never by an address the
    provider did not verify, and never by a subject the configured claim is not."""
    if not who.is_person:
        return frozenset({who.name, f"user:{who.name}"})
    mine = {f"group:{g}" for g in who.groups}
    if who.user is not None:
        mine |= {who.user, f"user:{who.user}"}
    return frozenset(mine)


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


def entry_for(who: Identity, allowed: Iterable[str]) -> str | None:
    """The first ``allowed`` entry naming ``who`` (:func:`names_of`), else ``None``."""
    mine = names_of(who)
    return next((entry for entry in allowed if entry in mine), None)


def caller_entry(name: str, allowed: Iterable[str]) -> str | None:
    """:func:`entry_for` the current request's caller when it is ``name``, else by name only."""
    return entry_for(current(name) or Identity(name), allowed)


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
    return frozenset(a for a in people if entry_for(Identity(a), allowed) is not None)


__all__ = [
    "EMAIL_VERIFIED",
    "Identity",
    "acting",
    "caller_entry",
    "counted",
    "current",
    "entry_for",
    "names_of",
    "proven_claim",
]
