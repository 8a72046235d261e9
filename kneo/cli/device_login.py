"""``kneo config profile login``: a person signs the CLI in at the OpenID provider with the
device authorization grant (RFC 8628), and the profile keeps the refreshable token.

The CLI asks the provider's ``device_authorization_endpoint`` (from its discovery document)
for a code, prints where to enter it (stderr), and polls the ``token_endpoint`` at the
interval the provider sets (slower on ``slow_down``) until the person approves, declines or
the code expires. The access and refresh tokens go into the profiles file (mode 0600) like an
API key and are never printed; a command that finds the access token expiring refreshes it
with the refresh token and saves the new pair.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from kneo.documents import DocumentError, parse_json
from kneo.errors import ConfigError, ErrorCode, NotReady, Unauthorized
from kneo.kernel import Origins, http_client

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
#: refresh an access token this long before it expires
REFRESH_MARGIN_SECONDS = 30.0


def _post(url: str, data: dict[str, str]) -> tuple[int, dict[str, Any]]:
    import httpx2

    try:  # the kernel's client: that endpoint only, no redirect followed
        with http_client(Origins.of(url), path="the identity provider", timeout=15.0) as http:
            response = http.post(url, data=data)
    except httpx2.HTTPError as exc:
        raise NotReady(
            f"the identity provider could not be reached ({type(exc).__name__})",
            code=ErrorCode.identity_provider_unavailable,
        ) from None
    try:
        body = parse_json(response.content, source=url)
    except DocumentError:
        body = {}
    return response.status_code, body if isinstance(body, dict) else {}


def discover(issuer: str) -> dict[str, Any]:
    import httpx2

    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        with http_client(Origins.of(url), path="the identity provider", timeout=15.0) as http:
            found = parse_json(http.get(url).content, source=url)
    except (httpx2.HTTPError, DocumentError):
        raise NotReady(
            f"could not read {url}", code=ErrorCode.identity_provider_unavailable
        ) from None
    if not isinstance(found, dict) or not found.get("device_authorization_endpoint"):
        raise ConfigError(
            f"the identity provider {issuer} does not offer the device authorization grant"
        )
    return found


def device_sign_in(
    issuer: str,
    client_id: str,
    scope: str,
    *,
    resource: str | None = None,
    tell: Callable[[str], None] = lambda text: print(text, file=sys.stderr),
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Run the device grant; the token set to keep (``access_token``, ``refresh_token``,
    ``expires_at``, ``token_endpoint``)."""
    metadata = discover(issuer)
    asked = {"client_id": client_id, "scope": scope, **({"resource": resource} if resource else {})}
    status, grant = _post(str(metadata["device_authorization_endpoint"]), asked)
    if status != 200 or "device_code" not in grant:
        raise Unauthorized(
            f"the identity provider refused the device sign-in: {grant.get('error') or status}",
            code=ErrorCode.device_sign_in_refused,
        )
    where = grant.get("verification_uri_complete") or grant.get("verification_uri")
    tell(f"To sign in, open {where} and enter the code {grant.get('user_code')}")
    interval = float(grant.get("interval") or 5)
    deadline = time.monotonic() + float(grant.get("expires_in") or 600)
    token_endpoint = str(metadata["token_endpoint"])
    poll = {
        "grant_type": DEVICE_GRANT,
        "device_code": str(grant["device_code"]),
        "client_id": client_id,
    }
    while time.monotonic() < deadline:
        sleep(interval)
        status, answer = _post(
            token_endpoint, {**poll, **({"resource": resource} if resource else {})}
        )
        error = answer.get("error")
        if status == 200 and answer.get("access_token"):
            return _kept(answer, token_endpoint)
        if error == "authorization_pending":
            continue
        if error == "slow_down":
            interval += 5
            continue
        raise Unauthorized(
            f"the device sign-in ended: {error or status}"
            + (" (the person declined)" if error == "access_denied" else ""),
            code=ErrorCode.device_sign_in_refused,
        )
    raise Unauthorized(
        "the device code expired before the sign-in", code=ErrorCode.device_sign_in_refused
    )


def _kept(answer: dict[str, Any], token_endpoint: str) -> dict[str, Any]:
    kept: dict[str, Any] = {
        "access_token": str(answer["access_token"]),
        "expires_at": time.time() + float(answer.get("expires_in") or 300),
        "token_endpoint": token_endpoint,
    }
    if answer.get("refresh_token"):
        kept["refresh_token"] = str(answer["refresh_token"])
    return kept


def fresh(
    tokens: dict[str, Any], client_id: str, resource: str | None = None
) -> dict[str, Any] | None:
    """``tokens`` refreshed when the access token expires within the margin (``None``: still
    fresh). Without a refresh token, or when the provider refuses it: sign in again."""
    if float(tokens.get("expires_at") or 0) - REFRESH_MARGIN_SECONDS > time.time():
        return None
    refresh = tokens.get("refresh_token")
    if not refresh:
        raise Unauthorized(
            "the profile's sign-in expired: run 'kneo config profile login' again",
            code=ErrorCode.token_expired,
        )
    data = {"grant_type": "refresh_token", "refresh_token": str(refresh), "client_id": client_id}
    if resource:
        data["resource"] = resource
    status, answer = _post(str(tokens["token_endpoint"]), data)
    if status != 200 or not answer.get("access_token"):
        raise Unauthorized(
            "the profile's sign-in could not be renewed "
            f"({answer.get('error') or status}): run 'kneo config profile login' again",
            code=ErrorCode.token_expired,
        )
    renewed = _kept(answer, str(tokens["token_endpoint"]))
    renewed.setdefault("refresh_token", str(refresh))
    return renewed


__all__ = ["device_sign_in", "discover", "fresh"]
