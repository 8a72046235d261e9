"""Console sessions: a signed, expiring cookie that names an API key, and its CSRF token.

The cookie holds no key. It holds the key's *name*, a proof bound to the key (an HMAC of the
key's stored digest under the cookie secret, so a removed or rotated key ends every session
made with it) and a random CSRF token, signed with a timestamp by ``itsdangerous`` (Pallets'
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


@dataclass(frozen=True)
class Session:
    """What the cookie carries. ``name`` is ``None`` before sign-in (only a CSRF token)."""

    csrf: str
    name: str | None = None
    proof: str | None = None

    @classmethod
    def anonymous(cls) -> Session:
        return cls(csrf=secrets.token_urlsafe(32))


class SessionCodec:
    """Signs and reads session cookies with one secret and one lifetime."""

    def __init__(self, secret: str, max_age_seconds: int) -> None:
        self._secret = secret.encode("utf-8")
        self._serializer = URLSafeTimedSerializer(secret, salt=_SALT)
        self.max_age = max_age_seconds

    def dumps(self, session: Session) -> str:
        data = {"c": session.csrf}
        if session.name is not None:
            data |= {"n": session.name, "p": session.proof or ""}
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
        name = data.get("n")
        return Session(
            csrf=data["c"], name=name if isinstance(name, str) else None, proof=data.get("p")
        )

    def proof(self, key_digest: bytes) -> str:
        """What binds a session to one key: it changes when the key does."""
        return hmac.new(self._secret, b"key:" + key_digest, hashlib.sha256).hexdigest()[:32]

    def proves(self, session: Session, key_digest: bytes) -> bool:
        return hmac.compare_digest(session.proof or "", self.proof(key_digest))


def csrf_matches(session: Session | None, presented: str | None) -> bool:
    """Whether a form's token is this session's (constant time)."""
    if session is None or not presented:
        return False
    return hmac.compare_digest(session.csrf.encode("utf-8"), presented.encode("utf-8"))
