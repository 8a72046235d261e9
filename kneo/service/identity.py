"""People from an OpenID provider: bearer JWTs checked against the issuer's keys, and the
claims -> roles mapping that turns a person into scopes.

A token is verified by joserfc (the JOSE library of Authlib's author): the signature with
the key its ``kid`` names in the issuer's JWKS, then ``iss``, ``aud``, ``exp``/``nbf``/``iat``
with ``KNEO_SERV_OIDC_CLOCK_SKEW_SECONDS`` of leeway. The JWKS is found through the issuer's
discovery document and cached for ``KNEO_SERV_OIDC_JWKS_CACHE_SECONDS``; a token signed by a
key the cache does not know makes one early fetch (at most one every
:data:`MIN_REFETCH_SECONDS`, so a stream of made-up ``kid`` values cannot hammer the
provider), which is how a rotated key is picked up before the cache expires. When the
provider cannot be reached the keys already fetched keep serving.

A verified token is remembered (by its SHA-256, :data:`VERIFIED_TOKENS` of them): the next
request with it re-checks only the times and that its key is still published, ~3 µs instead
of ~140 µs of parsing and RSA verification (bench/service.py ``--identity``).

Every refusal is a 401 with its own code (``token_expired``, ``token_audience_mismatch``,
``token_issuer_mismatch``, ``token_key_unknown``, ``token_signature_invalid``,
``token_malformed``, ``token_claims_invalid``), so a caller knows what to fix.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from kneo.documents import DocumentError, parse_json
from kneo.errors import ConfigError, ErrorCode, Forbidden, NotReady, Unauthorized
from kneo.kernel import Origins, http_client
from kneo.logs import get_logger
from kneo.lrucache import LRUCache
from kneo.people import Identity, names_of, proven_claim
from kneo.projects import is_valid_project_name
from kneo.service.grants import PLATFORM_ADMIN, split_grant
from kneo.setting_groups import OidcSettings

log = get_logger("kneo_serv.auth")

#: The least time between two fetches of the JWKS (an unknown ``kid`` triggers one).
MIN_REFETCH_SECONDS = 10.0
#: Signature algorithms a provider's token may use (never ``none`` or an HMAC).
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA")
ROLES_VARIABLE = "KNEO_SERV_OIDC_ROLES"
#: Verified tokens remembered per process (least recently used dropped).
VERIFIED_TOKENS = 10_000


def looks_like_jwt(value: str | None) -> bool:
    """Three base64url segments starting with a JSON header: a token, not an API key."""
    return bool(value) and value.startswith("eyJ") and value.count(".") == 2  # type: ignore[union-attr]


@dataclass(frozen=True)
class Person:
    """Who a verified token (or an ID token at console sign-in) names."""

    subject: str
    email: str | None  # a verified address only (:func:`kneo.people.proven_claim`)
    name: str  # the proven user claim (``email``), else ``sub``: the audit actor
    groups: frozenset[str]
    #: the role-map entries that matched (``group:release-managers``), for the audit
    via: tuple[str, ...]
    roles: tuple[str, ...]
    expires_at: float | None = None
    #: what ``user:`` entries match: the user claim when it proves who this is, else ``None``
    user: str | None = None
    user_claim: str = "email"
    groups_claim: str = "groups"

    def identity(self, method: str) -> Identity:
        """This person for :mod:`kneo.people` (approvers, assignees, the audit)."""
        return Identity(
            self.name,
            method,
            self.subject,
            self.email,
            self.groups,
            self.via,
            user=self.user,
            user_claim=self.user_claim,
            groups_claim=self.groups_claim,
        )


@dataclass(frozen=True)
class RoleRule:
    """One ``KNEO_SERV_OIDC_ROLES`` entry: ``group:NAME``, ``user:EMAIL``, ``*``, or one of
    the project-group conventions (:data:`PROJECT_GROUPS`, :data:`PROJECT_ROLE_GROUPS`).
    Its roles are tokens: ``role``, ``role@project`` or ``platform-admin``."""

    match: str
    roles: tuple[str, ...]


#: A person in a group ``project:<name>`` gets this entry's roles in project ``<name>``.
PROJECT_GROUPS = "group:project:*"
#: A person in a group ``project:<name>:<role>`` gets ``<role>`` in project ``<name>`` when
#: the entry lists ``<role>`` (the most any such group may give).
PROJECT_ROLE_GROUPS = "group:project:*:*"
#: How a group names a project, as :func:`kneo.people.names_of` writes it.
PROJECT_GROUP_PREFIX = "group:project:"


def parse_role_map(raw: str, known_roles: Iterable[str]) -> list[RoleRule]:
    """``group:NAME=role[,role];user:EMAIL=role;*=role``, a role possibly ``role@project``;
    errors name the entry."""
    known = {*known_roles, PLATFORM_ADMIN}
    rules: list[RoleRule] = []
    for chunk in (part.strip() for part in raw.split(";")):
        if not chunk:
            continue
        match, sep, roles_text = chunk.rpartition("=")
        match = match.strip()
        roles = tuple(r.strip() for r in roles_text.split(",") if r.strip())
        if not sep or not match or not roles:
            raise ConfigError(
                f"{ROLES_VARIABLE} entry {chunk!r} must look like group:NAME=role[,role], "
                f"user:EMAIL=role or *=role",
                variable=ROLES_VARIABLE,
            )
        if match != "*" and not match.startswith(("group:", "user:")):
            raise ConfigError(
                f"{ROLES_VARIABLE} entry {chunk!r}: match group:NAME, user:EMAIL or *",
                variable=ROLES_VARIABLE,
            )
        _check_roles(chunk, match, roles, known)
        rules.append(RoleRule(match, roles))
    return rules


def _check_roles(chunk: str, match: str, roles: tuple[str, ...], known: set[str]) -> None:
    """Each role is known and its project a valid name; a project-group entry's roles are
    plain project roles (the group names the project; it never makes a platform admin)."""
    for token in roles:
        role, _ = split_grant(token, entry=chunk, variable=ROLES_VARIABLE)
        if role not in known:
            raise ConfigError(
                f"{ROLES_VARIABLE} entry {chunk!r}: unknown role {role!r} "
                f"(roles: {', '.join(sorted(known))})",
                variable=ROLES_VARIABLE,
            )
        if match in (PROJECT_GROUPS, PROJECT_ROLE_GROUPS) and (
            "@" in token or role == PLATFORM_ADMIN
        ):
            raise ConfigError(
                f"{ROLES_VARIABLE} entry {chunk!r}: {match} gives roles in the project its "
                f"group names: list project roles without @project (not {token!r})",
                variable=ROLES_VARIABLE,
            )


def person_of(claims: Mapping[str, Any], settings: OidcSettings, rules: list[RoleRule]) -> Person:
    """The person ``claims`` name, their groups and the roles the map gives them. Who they are
    is decided by the identity door (:func:`kneo.people.proven_claim`): an ``email`` the
    provider did not verify names nobody, and the person is then known by ``sub``."""
    subject = str(claims.get("sub") or "")
    trusted = settings.trust_unverified_email
    user = proven_claim(claims, settings.user_claim, trust_unverified_email=trusted)
    raw_groups = claims.get(settings.groups_claim) or []
    if isinstance(raw_groups, str):
        raw_groups = [raw_groups]
    groups = (
        frozenset(g for g in raw_groups if isinstance(g, str))
        if isinstance(raw_groups, list)
        else frozenset()
    )
    exp = claims.get("exp")
    found = Person(
        subject=subject,
        email=proven_claim(claims, "email", trust_unverified_email=trusted),
        name=user or subject,
        groups=groups,
        via=(),
        roles=(),
        expires_at=float(exp) if isinstance(exp, int | float) else None,
        user=user,
        user_claim=settings.user_claim,
        groups_claim=settings.groups_claim,
    )
    via, roles = roles_of(found.identity("oidc_token"), rules)
    return replace(found, via=via, roles=roles)


def roles_of(who: Identity, rules: list[RoleRule]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The role-map entries naming ``who`` (:func:`kneo.people.names_of`; ``*``: any person;
    for the project-group conventions, each ``group:project:...`` group of theirs that
    gives a role) and the role tokens they give, in map order."""
    names = names_of(who)
    via: list[str] = []
    roles: list[str] = []
    for rule in rules:
        if rule.match in (PROJECT_GROUPS, PROJECT_ROLE_GROUPS):
            found = project_group_roles(names, rule)
        elif rule.match == "*" or rule.match in names:
            found = [(rule.match, rule.roles)]
        else:
            continue
        for entry, given in found:
            via.append(entry)
            roles.extend(r for r in given if r not in roles)
    return tuple(via), tuple(roles)


def project_group_roles(names: Iterable[str], rule: RoleRule) -> list[tuple[str, tuple[str, ...]]]:
    """``(group entry, role tokens)`` for each ``group:project:<name>[:<role>]`` among
    ``names`` that ``rule`` (a project-group convention) turns into roles, in name order.
    A group whose project is not a valid name, or whose role the rule does not list, gives
    nothing: group names are the provider's data, not configuration."""
    found: list[tuple[str, tuple[str, ...]]] = []
    for entry in sorted(n for n in names if n.startswith(PROJECT_GROUP_PREFIX)):
        project, has_role, role = entry[len(PROJECT_GROUP_PREFIX) :].partition(":")
        if not is_valid_project_name(project):
            continue
        if rule.match == PROJECT_GROUPS and not has_role:
            found.append((entry, tuple(f"{r}@{project}" for r in rule.roles)))
        elif rule.match == PROJECT_ROLE_GROUPS and has_role and role in rule.roles:
            found.append((entry, (f"{role}@{project}",)))
    return found


def no_role(person: Person) -> Forbidden:
    """403 for a verified person the role map gives nothing."""
    groups = ", ".join(sorted(person.groups)) or "none"
    return Forbidden(
        f"{person.name} signed in, but {ROLES_VARIABLE} gives no role to them or their groups "
        f"({groups})",
        code=ErrorCode.no_role,
        setting=ROLES_VARIABLE,
    )


def _segment(text: str) -> dict[str, Any]:
    """A JWT segment's JSON object, read once: a claim given twice is malformed (the
    verifying library would take the last, a reader the first)."""
    padded = text + "=" * (-len(text) % 4)
    try:
        value = parse_json(base64.urlsafe_b64decode(padded.encode("ascii")), source="token")
    except DocumentError as exc:
        raise ValueError(exc.message) from None
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


class TokenVerifier:
    """Verifies the provider's JWTs with its cached JWKS."""

    def __init__(
        self,
        settings: OidcSettings,
        *,
        fetch_json: Callable[[str], dict[str, Any]] | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.issuer = settings.issuer
        self.audience = settings.token_audience
        self._fetch_json = fetch_json or _fetch_json
        self._clock = clock
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._keys: Any = None  # joserfc KeySet
        self._kids: frozenset[str] = frozenset()
        self._fetched_at = float("-inf")
        self._jwks_uri: str | None = None
        self._discovery: dict[str, Any] | None = None
        #: sha256(token), audience -> (kid, claims) of tokens already verified
        self._verified: LRUCache[tuple[bytes, str], tuple[str, dict[str, Any]]] = LRUCache(
            VERIFIED_TOKENS
        )

    # -- keys -------------------------------------------------------------------------
    def _fresh(self) -> bool:
        return self._monotonic() - self._fetched_at < self.settings.jwks_cache_seconds

    def needs_fetch(self, token: str) -> bool:
        """Whether verifying ``token`` would fetch the JWKS first (the async caller does that
        fetch in a thread, so the event loop never waits on the provider)."""
        if self._keys is None or not self._fresh():
            return True
        try:
            kid = _segment(token.split(".", 1)[0]).get("kid")
        except (ValueError, binascii.Error, UnicodeError):
            return False
        return kid not in self._kids and self._may_refetch()

    def _may_refetch(self) -> bool:
        return self._monotonic() - self._fetched_at >= MIN_REFETCH_SECONDS

    def refresh(self) -> None:
        """Fetch the JWKS (through discovery the first time); on failure keep the old keys."""
        from joserfc.jwk import KeySet

        with self._lock:
            try:
                if self._jwks_uri is None:
                    uri = self._discover().get("jwks_uri")
                    if not isinstance(uri, str) or not uri:
                        raise ValueError("the discovery document has no jwks_uri")
                    self._jwks_uri = uri
                document = self._fetch_json(self._jwks_uri)
                keys = KeySet.import_key_set(
                    {"keys": [k for k in document.get("keys", []) if k.get("use", "sig") == "sig"]}
                )
            except Exception as exc:  # network, JSON, key parameters: the provider's problem
                self._fetched_at = self._monotonic()  # do not retry on every request
                log.warning("could not fetch the OIDC signing keys of %s: %s", self.issuer, exc)
                if self._keys is None:
                    raise NotReady(
                        f"the identity provider {self.issuer} could not be reached for its "
                        "signing keys; try again shortly",
                        code=ErrorCode.identity_provider_unavailable,
                    ) from None
                return
            self._keys = keys
            self._kids = frozenset(str(k.kid) for k in keys.keys if k.kid)
            self._fetched_at = self._monotonic()

    def _discover(self) -> dict[str, Any]:
        if self._discovery is None:
            found = self._fetch_json(f"{self.issuer}/.well-known/openid-configuration")
            if found.get("issuer") not in (None, self.issuer):
                raise ValueError(f"the discovery document names issuer {found.get('issuer')!r}")
            self._discovery = found
        return self._discovery

    def endpoint(self, name: str) -> str:
        """An endpoint from the issuer's discovery document (``authorization_endpoint``,
        ``token_endpoint``, ``device_authorization_endpoint``, ...); 503 when the provider
        cannot be reached, ``config_error`` when it does not offer ``name``."""
        try:
            value = self._discover().get(name)
        except Exception as exc:
            log.warning("could not read the discovery document of %s: %s", self.issuer, exc)
            raise NotReady(
                f"the identity provider {self.issuer} could not be reached; try again shortly",
                code=ErrorCode.identity_provider_unavailable,
            ) from None
        if not isinstance(value, str) or not value:
            raise ConfigError(
                f"the identity provider {self.issuer} does not offer {name}",
                variable="KNEO_SERV_OIDC_ISSUER",
            )
        return value

    # -- tokens -----------------------------------------------------------------------
    def claims(
        self, token: str, *, audience: str | None = None, nonce: str | None = None
    ) -> dict[str, Any]:
        """The verified claims of ``token`` (401 with a precise code otherwise)."""
        wanted = audience or self.audience
        remembered = (hashlib.sha256(token.encode("utf-8")).digest(), wanted)
        if nonce is None and self._keys is not None and self._fresh():
            hit = self._verified.get(remembered)
            if hit is not None and hit[0] in self._kids:
                self._check_times(hit[1])
                return hit[1]
        header = self._accepted_header(token)
        if self.needs_fetch(token):
            self.refresh()
        kid = self._signing_kid(header)
        claims = self._decoded(token, kid, header["alg"])
        self._check_claims(claims, wanted, nonce)
        if nonce is None:
            self._verified.put(remembered, (kid, claims))
        return claims

    def _accepted_header(self, token: str) -> dict[str, Any]:
        """The header of a well-formed JWT whose algorithm is accepted and whose (still
        unverified) issuer is the configured one: worth fetching keys for."""
        try:
            header_text, payload_text, _ = token.split(".")
            header = _segment(header_text)
            unverified = _segment(payload_text)
        except (ValueError, binascii.Error, UnicodeError):
            raise Unauthorized(
                "The bearer token is not a well-formed JWT", code=ErrorCode.token_malformed
            ) from None
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise Unauthorized(
                f"The bearer token's algorithm {str(alg)[:20]!r} is not accepted "
                f"(accepted: {', '.join(ALGORITHMS)})",
                code=ErrorCode.token_malformed,
            )
        if unverified.get("iss") != self.issuer:
            raise Unauthorized(
                f"The bearer token was issued by {str(unverified.get('iss'))[:200]!r}, not by "
                f"the configured issuer {self.issuer!r} (KNEO_SERV_OIDC_ISSUER)",
                code=ErrorCode.token_issuer_mismatch,
            )
        return header

    def _signing_kid(self, header: dict[str, Any]) -> str:
        """The issuer's key the token names (or its only key, when the token names none)."""
        kid = header.get("kid")
        if kid is None and len(self._kids) == 1:
            kid = next(iter(self._kids))
        if kid not in self._kids:
            raise Unauthorized(
                f"The bearer token is signed with key {str(kid)[:80]!r}, which the issuer's "
                "JWKS does not list",
                code=ErrorCode.token_key_unknown,
            )
        return str(kid)

    def _decoded(self, token: str, kid: str, alg: str) -> dict[str, Any]:
        """The claims of ``token`` once its signature verifies with key ``kid``."""
        from joserfc import jwt
        from joserfc.errors import BadSignatureError, JoseError

        try:
            verified = jwt.decode(token, self._keys.get_by_kid(kid), algorithms=[alg])
        except BadSignatureError:
            raise Unauthorized(
                "The bearer token's signature does not verify",
                code=ErrorCode.token_signature_invalid,
            ) from None
        except (JoseError, ValueError):
            raise Unauthorized(
                "The bearer token is not a well-formed JWT", code=ErrorCode.token_malformed
            ) from None
        return dict(verified.claims)

    def _check_claims(self, claims: dict[str, Any], audience: str, nonce: str | None) -> None:
        """The signed claims are current, for ``audience``, of the sign-in's ``nonce`` (an
        ID token) and name a subject."""
        self._check_times(claims)
        aud = claims.get("aud")
        auds = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if audience not in auds:
            raise Unauthorized(
                f"The bearer token is for audience {aud!r}, not {audience!r} "
                "(KNEO_SERV_OIDC_AUDIENCE)",
                code=ErrorCode.token_audience_mismatch,
            )
        if nonce is not None and claims.get("nonce") != nonce:
            raise Unauthorized(
                "The ID token's nonce does not match", code=ErrorCode.token_claims_invalid
            )
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise Unauthorized(
                "The bearer token names no subject", code=ErrorCode.token_claims_invalid
            )

    def _check_times(self, claims: dict[str, Any]) -> None:
        now = self._clock()
        skew = self.settings.clock_skew_seconds
        exp, nbf, iat = claims.get("exp"), claims.get("nbf"), claims.get("iat")
        for name, value in (("exp", exp), ("nbf", nbf), ("iat", iat)):
            if value is not None and not isinstance(value, int | float):
                raise Unauthorized(
                    f"The bearer token's {name} is not a number",
                    code=ErrorCode.token_claims_invalid,
                )
        if exp is None:
            raise Unauthorized("The bearer token has no exp", code=ErrorCode.token_claims_invalid)
        if now > exp + skew:
            raise Unauthorized(
                f"The bearer token expired {int(now - exp)} seconds ago: get a new one",
                code=ErrorCode.token_expired,
            )
        if (nbf is not None and now + skew < nbf) or (iat is not None and now + skew < iat):
            raise Unauthorized(
                "The bearer token is not valid yet (check the clocks)",
                code=ErrorCode.token_not_yet_valid,
            )


def _fetch_json(url: str) -> dict[str, Any]:
    """The JSON object at ``url`` (the discovery document, the keys): through the kernel's
    client, that origin only, no redirect followed."""
    with http_client(Origins.of(url), path="oidc.issuer", timeout=5.0) as http:
        response = http.get(url)
    response.raise_for_status()
    try:
        value = parse_json(response.content, source=url)
    except DocumentError as exc:
        raise ValueError(exc.message) from None
    if not isinstance(value, dict):
        raise ValueError(f"{url} did not return a JSON object")
    return value


__all__ = [
    "ALGORITHMS",
    "PROJECT_GROUPS",
    "PROJECT_GROUP_PREFIX",
    "PROJECT_ROLE_GROUPS",
    "Person",
    "RoleRule",
    "TokenVerifier",
    "looks_like_jwt",
    "no_role",
    "parse_role_map",
    "person_of",
    "project_group_roles",
    "roles_of",
]
