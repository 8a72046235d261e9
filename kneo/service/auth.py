"""API-key authentication and scope authorization for the HTTP service.

Keys come from ``KNEO_SERV_API_KEYS`` (``name:key:role_or_scope[,role_or_scope]`` entries,
semicolon-separated; a token may be ``role@project``, :mod:`kneo.service.grants`) and
``KNEO_SERV_ADMIN_API_KEY`` (named ``admin``, a platform admin). A key is compared in
constant time against *every* configured key, so timing reveals neither which key matched
nor how much of a guess was right. Routes declare what they need with
``Depends(require_scope("runs:write"))``; the resolved :class:`Principal` carries the key's
*name*, which is the only identity that ever reaches audit events and logs, and its grants in
every project, narrowed to the project the request acts in (:func:`project_principal`).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from kneo.errors import ConfigError, Forbidden, Unauthorized
from kneo.people import Identity, acting
from kneo.projects import (
    DEFAULT_PROJECT,
    PATH_PROJECT,
    PROJECT_HEADER,
    check_project_name,
    project_not_found,
)
from kneo.service.grants import (
    ALL_SCOPES,
    EVERYWHERE,
    KNOWN_SCOPES,
    PLATFORM_ADMIN,
    PLATFORM_SCOPES,
    ROLE_SCOPES,
    Grants,
    parse_grants,
    role_grants,
)
from kneo.service.identity import (
    Person,
    RoleRule,
    TokenVerifier,
    looks_like_jwt,
    no_role,
    parse_role_map,
    person_of,
)
from kneo.service.throttle import SignInThrottle
from kneo.settings import Settings

if TYPE_CHECKING:
    from starlette.applications import Starlette

#: The actor recorded when authentication is disabled (local development): a platform
#: admin, as every caller held every scope before there were projects.
ANONYMOUS = "anonymous"
KEYS_VARIABLE = "KNEO_SERV_API_KEYS"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's name or the person's (audit actor), their grants in every
    project, and ``scopes``: what they hold in ``project``, the project this request acts
    in (the default one until :meth:`in_project` narrows it), so ``has``/``scopes`` read
    the same everywhere.

    For a person signed in through the OpenID provider, ``person`` says who (subject,
    e-mail, groups, the role-map entries that gave the right); ``method`` says how the
    caller signed in (``api_key``, ``oidc_token``, ``oidc_session``)."""

    name: str
    grants: Grants
    authenticated: bool = True
    method: str = "api_key"
    person: Person | None = None
    project: str = DEFAULT_PROJECT
    scopes: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "scopes", self.grants.scopes_in(self.project))

    def has(self, scope: str) -> bool:
        return scope in self.scopes

    @property
    def platform_admin(self) -> bool:
        return self.grants.platform_admin

    @property
    def home(self) -> str:
        """Where a request that names no project acts: the first project granted."""
        return self.grants.home

    def may_enter(self, project: str) -> bool:
        """Whether any grant reaches ``project`` (a platform admin's reaches every one)."""
        return self.grants.holds(project)

    def in_project(self, project: str) -> Principal:
        """This principal acting in ``project``: ``scopes`` become the grants there (every
        scope for a platform admin; none where nothing is granted)."""
        return self if project == self.project else replace(self, project=project)

    def visible_projects(self, catalog: Iterable[str]) -> list[str]:
        """The names of ``catalog`` this principal may see, in its order: every one for a
        platform admin or a holder of ``projects:admin``, else those it is granted."""
        if self.grants.sees_every_project:
            return list(catalog)
        return [name for name in catalog if self.grants.holds(name)]

    def identity(self) -> Identity:
        """Who this is for the layers below (:mod:`kneo.people`): approvers by group, and
        the audit's account of the person."""
        person = self.person
        if person is None:
            return Identity(self.name, self.method)
        return person.identity(self.method)


def project_principal(
    principal: Principal, requested: str | None, *, field: str = "project"
) -> Principal:
    """``principal`` narrowed to ``requested`` (``None``: its home project). ``400
    invalid_name`` for a malformed name, :func:`project_not_found` when no grant reaches it.
    Whether the project exists is the caller's to check, with the same error."""
    name = principal.home if requested is None else check_project_name(requested, field=field)
    if not principal.may_enter(name):
        raise project_not_found(name)
    return principal.in_project(name)


@dataclass(frozen=True)
class ApiKey:
    name: str
    digest: bytes  # sha256 of the key; comparisons never touch the raw value
    grants: Grants

    @property
    def scopes(self) -> frozenset[str]:
        """Its project scopes in the default project."""
        return self.grants.project_scopes(DEFAULT_PROJECT)

    def __repr__(self) -> str:  # never print key material, even hashed
        return f"ApiKey(name={self.name!r}, grants={self.grants!r})"


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def expand_grants(items: Iterable[str], *, entry: str) -> Grants:
    """Role and scope tokens -> their grants; anything unknown, or nothing, is a config
    error naming ``entry``."""
    grants = parse_grants(items, entry=entry, variable=KEYS_VARIABLE)
    if grants.empty:
        raise ConfigError(
            f"KNEO_SERV_API_KEYS entry {entry!r} grants no role or scope", variable=KEYS_VARIABLE
        )
    return grants


def parse_api_keys(raw: str, admin_key: str = "") -> list[ApiKey]:
    """Parse ``name:key:roles`` entries. Error messages name the entry, never the key."""
    keys: list[ApiKey] = []
    names: set[str] = set()
    for index, chunk in enumerate(part.strip() for part in raw.split(";")):
        if not chunk:
            continue
        # Scopes contain colons (``runs:read``), so the key is the second field and ends at
        # the next colon; everything after it is the role/scope list.
        parts = chunk.split(":", 2)
        name, key, roles = [*parts, "", ""][:3]
        label = name.strip() if len(parts) == 3 and name.strip() else f"#{index + 1}"
        if len(parts) < 3 or not name.strip() or not key:
            raise ConfigError(
                f"KNEO_SERV_API_KEYS entry {label!r} must look like name:key:role_or_scope",
                variable=KEYS_VARIABLE,
            )
        if name.strip() in names:
            raise ConfigError(
                f"KNEO_SERV_API_KEYS names {name.strip()!r} twice", variable=KEYS_VARIABLE
            )
        names.add(name.strip())
        keys.append(
            ApiKey(name.strip(), _digest(key), expand_grants(roles.split(","), entry=label))
        )
    if admin_key.strip():
        keys.append(ApiKey("admin", _digest(admin_key.strip()), EVERYWHERE))
    return keys


class Authenticator:
    """Resolves request credentials to a :class:`Principal` (or none when auth is off)."""

    def __init__(
        self,
        *,
        enabled: bool,
        keys: list[ApiKey],
        tokens: TokenVerifier | None = None,
        roles: list[RoleRule] | None = None,
    ) -> None:
        if enabled and not keys and tokens is None:
            raise ConfigError(
                "Kneo service auth is enabled but no API keys are configured: set "
                "KNEO_SERV_API_KEYS and/or KNEO_SERV_ADMIN_API_KEY (or KNEO_SERV_OIDC_ISSUER "
                "for people from an OpenID provider), or set KNEO_SERV_AUTH_ENABLED=false "
                "for local development",
                variable="KNEO_SERV_AUTH_ENABLED",
            )
        self.enabled = enabled
        self._keys = list(keys)
        #: verifies the OpenID provider's JWTs; ``None``: API keys only
        self.tokens = tokens if enabled else None
        self.roles = list(roles or [])

    @classmethod
    def from_settings(cls, settings: Settings) -> Authenticator:
        oidc = settings.oidc
        return cls(
            enabled=bool(settings.auth_enabled),
            keys=parse_api_keys(settings.api_keys, settings.admin_api_key),
            tokens=TokenVerifier(oidc) if oidc.enabled else None,
            roles=parse_role_map(oidc.roles, ROLE_SCOPES) if oidc.enabled else [],
        )

    def principal_of(self, person: Person, *, method: str) -> Principal:
        """``person`` with the grants of the roles the role map gives them, in each project
        (403 ``no_role`` when it gives none anywhere)."""
        if not person.roles:
            raise no_role(person)
        return Principal(person.name, role_grants(person.roles), method=method, person=person)

    def person_from_claims(self, claims: dict[str, Any]) -> Person:
        """The person verified ``claims`` name, with the roles the map gives them now."""
        if self.tokens is None:
            raise Unauthorized("OpenID sign-in is not configured")
        return person_of(claims, self.tokens.settings, self.roles)

    def person(
        self, token: str, *, audience: str | None = None, nonce: str | None = None
    ) -> Person:
        """The person a provider-signed JWT names (401 with a precise code otherwise)."""
        if self.tokens is None:
            raise Unauthorized("Invalid API key")
        claims = self.tokens.claims(token, audience=audience, nonce=nonce)
        return person_of(claims, self.tokens.settings, self.roles)

    def named(self, name: str) -> tuple[Principal, bytes] | None:
        """The principal of the key named ``name`` and the key's digest, or ``None`` when no
        key has that name any more: a console session names its key and is bound to this
        digest, so removing or rotating the key ends it. With auth off: ``anonymous``."""
        if not self.enabled:
            if name != ANONYMOUS:
                return None
            return Principal(ANONYMOUS, EVERYWHERE, authenticated=False), b""
        for key in self._keys:
            if key.name == name:
                return Principal(key.name, key.grants), key.digest
        return None

    def authenticate(self, presented: str | None) -> Principal:
        """Constant-time match of ``presented`` against every key; 401 when none matches."""
        if not self.enabled:
            return Principal(ANONYMOUS, EVERYWHERE, authenticated=False)
        if not presented:
            raise Unauthorized(
                "Missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
            )
        if self.tokens is not None and looks_like_jwt(presented):
            return self.principal_of(self.person(presented), method="oidc_token")
        candidate = _digest(presented)
        found: ApiKey | None = None
        for key in self._keys:  # no early exit: every key is compared
            if hmac.compare_digest(candidate, key.digest) and found is None:
                found = key
        if found is None:
            raise Unauthorized("Invalid API key")
        return Principal(found.name, found.grants)


def sign_in(
    authenticator: Authenticator,
    throttle: SignInThrottle,
    request: Request,
    presented: str | None,
    *,
    surface: str,
) -> Principal:
    """The principal of ``presented``, through the sign-in throttle
    (:mod:`kneo.service.throttle`): a throttled client gets ``429`` before its key is even
    compared, and a wrong key counts against it."""
    client = request.client.host if request.client is not None else "unknown"
    return throttled(authenticator, throttle, client, presented, surface=surface)


def throttled(
    authenticator: Authenticator,
    throttle: SignInThrottle,
    client: str,
    presented: str | None,
    *,
    surface: str,
) -> Principal:
    """:func:`sign_in` for ``client`` (the real address behind a trusted proxy): every door
    that takes a key (the API, the console's form, ``/mcp``) goes through here."""
    if not authenticator.enabled:
        return authenticator.authenticate(presented)
    throttle.check(client, presented, surface=surface)
    if authenticator.tokens is not None and looks_like_jwt(presented):
        # A token's signature cannot be guessed, and every JWT starts alike: a throttled
        # client is refused, a bad token is not counted.
        principal = authenticator.authenticate(presented)
    else:
        try:
            principal = authenticator.authenticate(presented)
        except Unauthorized:
            if presented:  # a wrong key, not a missing one
                throttle.failed(client, presented, surface=surface)
            raise
    throttle.succeeded(client, presented)
    return principal


#: Headers carrying an API key besides ``Authorization: Bearer``: Kneo's own, then the one
#: the original platform's clients send (``kneo-client``'s ``kneo_api_key`` scheme).
KEY_HEADERS = ("x-api-key", "x-kneo-api-key")


def key_in_headers(get: Callable[[str], str | None]) -> str | None:
    """The key of a request whose (lower-case) headers ``get`` reads: ``Authorization:
    Bearer`` wins, then :data:`KEY_HEADERS` in order. The one reading of a key, for the API
    and ``/mcp`` alike."""
    header = get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    for name in KEY_HEADERS:
        api_key = get(name)
        if api_key and api_key.strip():
            return api_key.strip()
    return None


def presented_key(request: Request) -> str | None:
    """The key from ``Authorization: Bearer``, ``X-API-Key`` or ``X-Kneo-Api-Key``."""
    return key_in_headers(request.headers.get)


def roles_holding(scope: str) -> list[str]:
    """The built-in roles that grant ``scope``, in table order with ``admin`` last; for a
    platform scope (``projects:admin``), ``platform-admin``."""
    holders = [role for role, scopes in ROLE_SCOPES.items() if scope in scopes]
    return sorted(holders, key=lambda role: role == "admin") or [PLATFORM_ADMIN]


def missing_scope(scope: str, project: str = DEFAULT_PROJECT) -> Forbidden:
    """The 403 for a caller whose key lacks ``scope`` (in ``project``): it names the roles
    that hold the scope and the setting that grants it, so the caller knows which key to use
    or ask for."""
    roles = roles_holding(scope)
    where = "" if project == DEFAULT_PROJECT or scope in PLATFORM_SCOPES else f"@{project}"
    return Forbidden(
        f"Missing required scope: {scope}. Roles that hold it: {', '.join(roles)}. Call with a "
        f"key whose KNEO_SERV_API_KEYS entry grants one (name:key:{roles[0]}{where}) or the "
        f"scope itself (name:key:{scope}{where})",
        required_scope=scope,
        roles=roles,
        setting=KEYS_VARIABLE,
    )


def requested_project(request: Request) -> str | None:
    """The project a request names: its ``X-Kneo-Project`` header, or the ``/v1/projects/
    <name>/...`` form of its path (:mod:`kneo.service.project_paths`); ``None``: the caller's
    home project."""
    named: str | None = request.headers.get(PROJECT_HEADER) or request.scope.get(PATH_PROJECT)
    return named


def require_scope(scope: str) -> Callable[[Request], Awaitable[Principal]]:
    """A FastAPI dependency: authenticate the caller, narrow it to the project the request
    names (:func:`requested_project`; 404 ``project_not_found`` where it holds no grant) and
    demand ``scope`` there (403 otherwise). A platform scope (``projects:admin``) holds in no
    one project: its routes act on the catalog."""
    if scope not in KNOWN_SCOPES:
        raise ValueError(f"unknown scope {scope!r}")
    platform = scope in PLATFORM_SCOPES

    # ``async`` on purpose: hashing and comparing a key is microseconds of CPU, and a sync
    # dependency would cost a round trip through the threadpool on every request.
    async def dependency(request: Request) -> Principal:
        principal = await _signed_in(request)
        if not platform:
            principal = project_principal(principal, requested_project(request))
        request.state.project = principal.project
        if not principal.has(scope):
            raise missing_scope(scope, principal.project)
        return principal

    dependency.required_scope = scope  # type: ignore[attr-defined]
    dependency.__name__ = f"require_{scope.replace(':', '_')}"
    return dependency


#: What :func:`route_scopes` names a route that any signed-in caller may call.
SIGNED_IN = "signed-in"


def require_signed_in() -> Callable[[Request], Awaitable[Principal]]:
    """A FastAPI dependency: authenticate the caller, no scope and no project asked (the
    project catalog's listing answers each caller with its own projects)."""

    dependency = _signed_in
    dependency.required_scope = SIGNED_IN  # type: ignore[attr-defined]
    return dependency


async def _signed_in(request: Request) -> Principal:
    """The caller, authenticated (401 otherwise), as the actor of what the request does."""
    state = request.app.state
    presented = presented_key(request)
    tokens = state.authenticator.tokens
    if tokens is not None and looks_like_jwt(presented) and tokens.needs_fetch(presented):
        # fetch the provider's keys off the event loop (once per cache period)
        await run_in_threadpool(tokens.refresh)
    principal = sign_in(
        state.authenticator, state.sign_in_throttle, request, presented, surface="api"
    )
    request.state.actor = principal.name
    acting(principal.identity())
    return principal


def route_scopes(app: Starlette) -> list[tuple[str, str, str | None]]:
    """``(method, path, scope)`` for every API route; ``None`` means unauthenticated."""
    rows: list[tuple[str, str, str | None]] = []
    for path, methods, dependant in _api_routes(app):
        scope = _find_scope(dependant)
        for method in sorted(methods):
            rows.append((method, path, scope))
    return rows


def _api_routes(app: Any) -> list[tuple[str, set[str], Any]]:
    """``(path, methods, dependant)`` of every API route, whichever router nests it."""
    try:  # FastAPI >= 0.130: included routers are resolved lazily
        from fastapi.routing import iter_route_contexts

        contexts = list(iter_route_contexts(app.routes))
    except ImportError:  # pragma: no cover - older FastAPI flattens routes at include time
        contexts = list(app.routes)
    out = []
    for ctx in contexts:
        dependant = getattr(ctx, "dependant", None)
        if dependant is None or not getattr(ctx, "path", None):
            continue
        out.append((str(ctx.path), set(ctx.methods or ()), dependant))
    return out


def _find_scope(dependant: Any) -> str | None:
    for dep in dependant.dependencies:
        scope = getattr(dep.call, "required_scope", None)
        if scope:
            return str(scope)
        nested = _find_scope(dep)
        if nested:
            return nested
    return None


__all__ = [
    "ALL_SCOPES",
    "ANONYMOUS",
    "KEYS_VARIABLE",
    "KEY_HEADERS",
    "KNOWN_SCOPES",
    "PLATFORM_ADMIN",
    "ROLE_SCOPES",
    "ApiKey",
    "Authenticator",
    "Grants",
    "Principal",
    "expand_grants",
    "key_in_headers",
    "missing_scope",
    "parse_api_keys",
    "presented_key",
    "project_not_found",
    "project_principal",
    "require_scope",
    "roles_holding",
    "route_scopes",
    "sign_in",
    "throttled",
]
