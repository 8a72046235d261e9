"""Grants: which scopes a key or a person holds in which project.

A role or scope token is ``role``, ``scope``, ``role@project`` or ``scope@project``; a bare
token holds in :data:`~kneo.projects.DEFAULT_PROJECT`, so every configuration written before
projects means what it meant. ``platform-admin`` (every scope in every project, plus
``projects:admin``) and ``projects:admin`` alone (managing the project catalog, no project's
data) are platform-wide and take no ``@project``. The first project a list of tokens names is
the holder's *home*: where a request that names no project acts.

This module holds the scope and role tables too (:mod:`kneo.service.auth` re-exports them):
parsing a grant needs them, and they must not import the authenticator.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from kneo.errors import ConfigError, InvalidRequest
from kneo.projects import DEFAULT_PROJECT, check_project_name

#: Every scope a project grants, in documentation order.
ALL_SCOPES: tuple[str, ...] = (
    "runs:read",
    "runs:write",
    "specs:read",
    "human:read",
    "human:write",
    "audit:read",
    "audit:write",
    "credentials:read",
    "policies:read",
    "policies:write",
    "registry:read",
    "controller:write",
    "metrics:read",
    "notifications:admin",
)

#: Scopes that hold across projects: managing the projects themselves.
PLATFORM_SCOPES: tuple[str, ...] = ("projects:admin",)
#: Every scope a route may require.
KNOWN_SCOPES: tuple[str, ...] = ALL_SCOPES + PLATFORM_SCOPES

#: Built-in roles, each held in one project. The first eight scopes of each follow the
#: reference exactly; the GitOps scopes are ours: everyone who may read runs may read the
#: registry, and only operators (and admins) may trigger a reconcile or read ``/metrics``
#: (give a Prometheus its own key with just ``metrics:read``). ``notifications:admin``
#: (delivery rows, retry) is the admin role's alone.
ROLE_SCOPES: dict[str, frozenset[str]] = {
    "admin": frozenset(ALL_SCOPES),
    "operator": frozenset(
        {
            "runs:read",
            "runs:write",
            "specs:read",
            "human:read",
            "audit:read",
            "credentials:read",
            "policies:read",
            "policies:write",
            "registry:read",
            "controller:write",
            "metrics:read",
        }
    ),
    "reviewer": frozenset(
        {"runs:read", "human:read", "human:write", "audit:read", "registry:read"}
    ),
    "service": frozenset(
        {
            "runs:read",
            "runs:write",
            "specs:read",
            "human:read",
            "human:write",
            "audit:read",
            "audit:write",
            "credentials:read",
            "policies:read",
            "registry:read",
        }
    ),
    "viewer": frozenset({"runs:read", "specs:read", "human:read", "audit:read", "registry:read"}),
}

#: The platform-wide role: every scope in every project, and :data:`PLATFORM_SCOPES`.
PLATFORM_ADMIN = "platform-admin"
#: Tokens that hold everywhere and so take no ``@project``.
PLATFORM_TOKENS: frozenset[str] = frozenset({PLATFORM_ADMIN, *PLATFORM_SCOPES})


@dataclass(frozen=True)
class Grants:
    """Scopes per project (in the order the tokens named them: the first is the home), the
    platform-wide scopes, and whether this is a platform admin. Frozen and hashable; a
    project's scopes are one dict lookup, however many projects there are."""

    projects: tuple[tuple[str, frozenset[str]], ...] = ()
    platform: frozenset[str] = frozenset()
    platform_admin: bool = False
    _by: dict[str, frozenset[str]] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by", dict(self.projects))

    @classmethod
    def of(
        cls,
        projects: Mapping[str, Iterable[str]],
        *,
        platform: Iterable[str] = (),
        platform_admin: bool = False,
    ) -> Grants:
        """Grants from a mapping (its order kept; projects granted nothing dropped)."""
        pairs = tuple((p, frozenset(s)) for p, s in projects.items() if s)
        return cls(pairs, frozenset(platform), platform_admin)

    @property
    def home(self) -> str:
        """The first project granted, else the default project."""
        return self.projects[0][0] if self.projects else DEFAULT_PROJECT

    @property
    def names(self) -> tuple[str, ...]:
        """The projects granted by name (a platform admin's "every project" is not listed)."""
        return tuple(name for name, _ in self.projects)

    @property
    def platform_scopes(self) -> frozenset[str]:
        return frozenset(PLATFORM_SCOPES) if self.platform_admin else self.platform

    @property
    def sees_every_project(self) -> bool:
        """A platform admin, or a holder of ``projects:admin`` (who manages the catalog)."""
        return bool(self.platform_scopes)

    @property
    def empty(self) -> bool:
        return not (self.projects or self.platform or self.platform_admin)

    def holds(self, project: str) -> bool:
        """Whether these grants reach into ``project`` (its data, not just the catalog)."""
        return self.platform_admin or project in self._by

    def project_scopes(self, project: str) -> frozenset[str]:
        """The project scopes held in ``project`` (platform admin: every one)."""
        if self.platform_admin:
            return ROLE_SCOPES["admin"]
        return self._by.get(project, frozenset())

    def scopes_in(self, project: str) -> frozenset[str]:
        """Every scope a request acting in ``project`` holds: its own and the platform's."""
        return self.project_scopes(project) | self.platform_scopes


#: The grants of the platform-admin role (``KNEO_SERV_ADMIN_API_KEY``, auth switched off).
EVERYWHERE = Grants(platform_admin=True)


def split_grant(token: str, *, entry: str, variable: str) -> tuple[str, str]:
    """``role@project`` -> ``(role, project)``; a bare token's project is the default one, a
    platform-wide token's is ``""``. ConfigError naming the entry for a bad project name, or
    a project after a platform-wide token."""
    what, at, project = token.partition("@")
    what, project = what.strip(), project.strip()
    if what in PLATFORM_TOKENS:
        if at:
            raise ConfigError(
                f"{variable} entry {entry!r}: {what} holds in every project; write it "
                f"without @{project}",
                variable=variable,
            )
        return what, ""
    if not at:
        return what, DEFAULT_PROJECT
    try:
        check_project_name(project, field=variable)
    except InvalidRequest as exc:
        raise ConfigError(
            f"{variable} entry {entry!r}: {token.strip()!r}: {exc.message}", variable=variable
        ) from None
    return what, project


def unknown_grant(what: str, *, entry: str, variable: str) -> ConfigError:
    return ConfigError(
        f"{variable} entry {entry!r}: unknown role or scope {what!r} "
        f"(roles: {', '.join([*ROLE_SCOPES, PLATFORM_ADMIN])}; "
        f"scopes: {', '.join(KNOWN_SCOPES)})",
        variable=variable,
    )


def parse_grants(items: Iterable[str], *, entry: str, variable: str) -> Grants:
    """Role and scope tokens (:func:`split_grant`) -> :class:`Grants`; anything unknown is a
    ConfigError naming ``entry`` (never a key: the caller passes the entry's name)."""
    projects: dict[str, set[str]] = {}
    platform: set[str] = set()
    admin = False
    for raw in items:
        if not raw.strip():
            continue
        what, project = split_grant(raw, entry=entry, variable=variable)
        if what == PLATFORM_ADMIN:
            admin = True
        elif what in PLATFORM_SCOPES:
            platform.add(what)
        elif what in ROLE_SCOPES:
            projects.setdefault(project, set()).update(ROLE_SCOPES[what])
        elif what in ALL_SCOPES:
            projects.setdefault(project, set()).add(what)
        else:
            raise unknown_grant(what, entry=entry, variable=variable)
    return Grants.of(projects, platform=platform, platform_admin=admin)


@lru_cache(maxsize=1024)
def role_grants(roles: tuple[str, ...]) -> Grants:
    """The grants of a person's role tokens (checked when the role map was read). Computed
    on every request a person makes, from few distinct role lists: cached."""
    return parse_grants(roles, entry="roles", variable="KNEO_SERV_OIDC_ROLES")


__all__ = [
    "ALL_SCOPES",
    "EVERYWHERE",
    "KNOWN_SCOPES",
    "PLATFORM_ADMIN",
    "PLATFORM_SCOPES",
    "PLATFORM_TOKENS",
    "ROLE_SCOPES",
    "Grants",
    "parse_grants",
    "role_grants",
    "split_grant",
    "unknown_grant",
]
