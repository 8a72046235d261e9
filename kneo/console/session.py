"""Console sessions: a signed, expiring cookie that names a server-side session, and its
CSRF token.

The cookie holds no key. It holds a random session id (whose SHA-256 keys the session's row
in the store, :mod:`kneo.store.sessions`: signing out ends the row, so a copied cookie is
refused at once on every replica), the principal's *name*, for an API-key sign-in a proof
bound to the key (an HMAC of the key's stored digest under the cookie secret, so a removed or
rotated key ends every session made with it) and a random CSRF token, signed with a timestamp by ``itsdangerous`` (Pallets'
library behind Flask's sessions: HMAC-SHA1 over a derived key, constant-time verification,
expiry checked against the signed time). The session's principal, and so its scopes, are
looked up from the configured keys on every request: what a key may do is decided the same
way as for the API. The cookie is ``HttpOnly``, ``SameSite=Strict``, scoped to ``/ui`` and
``Secure`` when the request came over HTTPS.

Every state-changing form carries the session's CSRF token; a POST without it, or with
another session's, is refused with 403 before anything else is looked at. The sign-in form
has one too, from a pre-session cookie, and signing in issues a new token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer

COOKIE = "kneo_console"
CSRF_FIELD = "csrf_token"
_SALT = "kneo.console.session"
#: the OpenID sign-in's cookie (state, nonce, PKCE verifier) and how long it lasts
FLOW_COOKIE = "kneo_console_oidc"
FLOW_SECONDS = 600


@dataclass(frozen=True)
class Session:
    """What the cookie carries. ``name`` is ``None`` before sign-in (only a CSRF token)."""

    csrf: str
    name: str | None = None
    proof: str | None = None
    #: the server-side session's id (its SHA-256 keys the store's row)
    sid: str | None = None

    @property
    def key(self) -> str | None:
        """The store's key of this session: the id's SHA-256, never the id itself."""
        return session_key(self.sid) if self.sid else None

    @classmethod
    def anonymous(cls) -> Session:
        return cls(csrf=secrets.token_urlsafe(32))


class SessionCodec:
    """Signs and reads session cookies with one secret and one lifetime."""

    def __init__(self, secret: str, max_age_seconds: int) -> None:
        self._secret = secret.encode("utf-8")
        self._serializer = URLSafeTimedSerializer(secret, salt=_SALT)
        self._flow = URLSafeTimedSerializer(secret, salt=_SALT + ".oidc")
        self.max_age = max_age_seconds

    def dumps(self, session: Session) -> str:
        data = {"c": session.csrf}
        if session.name is not None:
            data |= {"n": session.name, "p": session.proof or "", "s": session.sid or ""}
        return str(self._serializer.dumps(data))

    def loads(self, cookie: str | None) -> Session | None:
        """The session in ``cookie``; ``None`` when absent, forged, tampered or expired."""
        if not cookie or len(cookie) > 4096:
            return None
        try:
            data = self._serializer.loads(cookie, max_age=self.max_age)
        except BadSignature:  # SignatureExpired is one
            return None
        if not isinstance(data, dict) or not isinstance(data.get("c"), str):
            return None
        name, sid = data.get("n"), data.get("s")
        return Session(
            csrf=data["c"],
            name=name if isinstance(name, str) else None,
            proof=data.get("p"),
            sid=sid if isinstance(sid, str) and sid else None,
        )

    def dumps_flow(self, flow: dict[str, str]) -> str:
        """The OpenID sign-in's state, nonce and PKCE verifier, signed for the round trip
        through the provider (:mod:`kneo.console.oidc`)."""
        return str(self._flow.dumps(flow))

    def loads_flow(self, cookie: str | None) -> dict[str, str] | None:
        if not cookie or len(cookie) > 4096:
            return None
        try:
            data = self._flow.loads(cookie, max_age=FLOW_SECONDS)
        except BadSignature:
            return None
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            return None
        return data

    def proof(self, key_digest: bytes) -> str:
        """What binds a session to one key: it changes when the key does."""
        return hmac.new(self._secret, b"key:" + key_digest, hashlib.sha256).hexdigest()[:32]

    def proves(self, session: Session, key_digest: bytes) -> bool:
        return hmac.compare_digest(session.proof or "", self.proof(key_digest))


def new_session_id() -> str:
    return secrets.token_urlsafe(32)


def session_key(sid: str) -> str:
    return hashlib.sha256(sid.encode("utf-8")).hexdigest()


def csrf_matches(session: Session | None, presented: str | None) -> bool:
    """Whether a form's token is this session's (constant time)."""
    if session is None or not presented:
        return False
    return hmac.compare_digest(session.csrf.encode("utf-8"), presented.encode("utf-8"))
