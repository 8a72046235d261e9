"""Signing in to the console at the company's OpenID provider: authorization code + PKCE.

``/oidc/login`` sends the browser to the provider's authorization endpoint with a fresh
``state``, ``nonce`` and PKCE ``S256`` challenge (built by Authlib), keeping them in a short
signed cookie (``SameSite=Lax``: the provider's redirect back is a cross-site navigation).
``/oidc/callback`` checks ``state`` (Authlib), trades the code and verifier for tokens at the
token endpoint (the client authenticates with its secret), verifies the ID token like an API
bearer token plus its ``nonce`` and the client id as audience, maps the person's groups to
roles and opens a server-side session. The browser then follows a same-site link to the page
it came for: a ``SameSite=Strict`` session cookie set during a cross-site redirect chain would
not be sent on the next hop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from kneo.console.auth import ConsoleAuth
from kneo.console.paths import console_path, cookie_path, safe_next, set_session
from kneo.console.session import FLOW_COOKIE, FLOW_SECONDS, Session
from kneo.documents import DocumentError, parse_json
from kneo.errors import ErrorCode, Forbidden, KneoError, NotFound, Unauthorized
from kneo.kernel import Origins, http_client
from kneo.logs import get_logger
from kneo.people import EMAIL_VERIFIED
from kneo.service.identity import TokenVerifier

if TYPE_CHECKING:
    import httpx2

    from kneo.console.view import Render

log = get_logger("kneo_serv.auth")


def add_oidc_routes(router: APIRouter, auth: ConsoleAuth, render: Render) -> None:
    """``/oidc/login`` and ``/oidc/callback`` (404 when no OpenID client is configured)."""

    @router.get("/oidc/login", name="oidc_login")
    def oidc_login(request: Request, next: str = "") -> Response:
        verifier = _configured_verifier(auth)
        flow = _new_flow(request, next)
        target = _authorization_url(verifier, flow, _redirect_uri(auth, request))
        response = RedirectResponse(target, status_code=303)
        _set_flow(request, response, auth.codec.dumps_flow(flow))
        return response

    @router.get("/oidc/callback", name="oidc_callback")
    def oidc_callback(request: Request) -> Response:
        verifier = _configured_verifier(auth)
        flow = auth.codec.loads_flow(request.cookies.get(FLOW_COOKIE))
        try:
            if flow is None:
                raise Unauthorized(
                    "The sign-in took too long or started elsewhere; start it again",
                    code=ErrorCode.oidc_flow_expired,
                )
            redirect_uri = _redirect_uri(auth, request)
            claims = _finish(request, verifier, flow, redirect_uri, auth.client_secret)
            person = auth.authenticator.person_from_claims(claims)
            principal = auth.authenticator.principal_of(person, method="oidc_session")
        except (Unauthorized, Forbidden) as exc:
            log.warning("console OpenID sign-in refused: %s", exc.code)
            return _refused_page(request, render, exc)
        kept = {k: claims[k] for k in _kept_claims(verifier) if k in claims}
        session = auth.open_session(principal, claims=kept)
        target = (flow or {}).get("next") or console_path(request, "inbox")
        page = render(request, "signed_in.html", {"target": target, "name": principal.name})
        page.headers["Refresh"] = f"0; url={target}"
        set_session(request, page, auth, session)
        page.delete_cookie(FLOW_COOKIE, path=cookie_path(request))
        return page


def _configured_verifier(auth: ConsoleAuth) -> TokenVerifier:
    """The token verifier of the configured OpenID client (404 when there is none)."""
    verifier = auth.authenticator.tokens
    if verifier is None or not verifier.settings.client_id:
        raise NotFound("OpenID sign-in is not configured (KNEO_SERV_OIDC_CLIENT_ID)")
    return verifier


def _redirect_uri(auth: ConsoleAuth, request: Request) -> str:
    """Where the provider sends the browser back: the callback under the public URL."""
    public = auth.public_url or f"{request.url.scheme}://{request.url.netloc}"
    return public + console_path(request, "oidc_callback")


def _new_flow(request: Request, next: str) -> dict[str, str]:
    """A sign-in's fresh secrets (``state``, ``nonce``, PKCE verifier) and the page to
    return to, kept in the flow cookie until the provider answers."""
    from authlib.common.security import generate_token

    return {
        "state": generate_token(32),
        "nonce": generate_token(32),
        "verifier": generate_token(64),
        "next": safe_next(request, next),
    }


def _authorization_url(verifier: TokenVerifier, flow: dict[str, str], redirect_uri: str) -> str:
    """The provider's authorization endpoint asking for a code for ``flow`` (PKCE ``S256``)."""
    from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
    from authlib.oauth2.rfc7636 import create_s256_code_challenge

    return str(
        prepare_grant_uri(
            verifier.endpoint("authorization_endpoint"),
            client_id=verifier.settings.client_id,
            response_type="code",
            redirect_uri=redirect_uri,
            scope=" ".join(verifier.settings.scopes),
            state=flow["state"],
            nonce=flow["nonce"],
            code_challenge=create_s256_code_challenge(flow["verifier"]),
            code_challenge_method="S256",
        )
    )


def _refused_page(request: Request, render: Render, exc: Unauthorized | Forbidden) -> Response:
    """The sign-in page again with why the provider's answer was refused, under a fresh
    anonymous session and without the spent flow cookie."""
    fresh = Session.anonymous()
    page = render(
        request,
        "login.html",
        {"next": "", "csrf": fresh.csrf, "error": exc.message},
        status_code=exc.http_status,
        session=fresh,
    )
    page.delete_cookie(FLOW_COOKIE, path=cookie_path(request))
    return page


def _set_flow(request: Request, response: Response, value: str) -> None:
    """The sign-in's cookie: ``Lax``, so the provider's redirect back carries it."""
    response.set_cookie(
        FLOW_COOKIE,
        value,
        max_age=FLOW_SECONDS,
        path=cookie_path(request),
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


def _kept_claims(verifier: TokenVerifier) -> tuple[str, ...]:
    """The claims a session keeps: who, whether the provider verified their address, and
    what the role map reads."""
    settings = verifier.settings
    return ("sub", "email", EMAIL_VERIFIED, "name", settings.user_claim, settings.groups_claim)


def _finish(
    request: Request,
    verifier: TokenVerifier,
    flow: dict[str, str],
    redirect_uri: str,
    client_secret: str,
) -> dict[str, Any]:
    """The verified ID token's claims of the provider's answer to ``flow``."""
    code = _authorization_code(request, flow)
    id_token = _exchange_code(verifier, code, flow, redirect_uri, client_secret)
    try:
        return verifier.claims(id_token, audience=verifier.settings.client_id, nonce=flow["nonce"])
    except KneoError:
        raise
    except Exception:  # pragma: no cover - the verifier translates its own errors
        raise Unauthorized(
            "The ID token could not be verified", code=ErrorCode.token_malformed
        ) from None


def _authorization_code(request: Request, flow: dict[str, str]) -> str:
    """The code in the provider's redirect back, once it is no refusal and its ``state`` is
    the flow's."""
    from authlib.oauth2.rfc6749.errors import OAuth2Error
    from authlib.oauth2.rfc6749.parameters import parse_authorization_code_response

    if "error" in request.query_params:
        raise Unauthorized(
            f"The identity provider refused the sign-in: "
            f"{request.query_params.get('error_description') or request.query_params['error']}",
            code=ErrorCode.oidc_sign_in_refused,
        )
    try:
        params = parse_authorization_code_response(str(request.url), state=flow["state"])
    except OAuth2Error:
        raise Unauthorized(
            "The sign-in's state does not match (a replayed or forged answer); start again",
            code=ErrorCode.oidc_state_mismatch,
        ) from None
    return str(params["code"])


def _exchange_code(
    verifier: TokenVerifier,
    code: str,
    flow: dict[str, str],
    redirect_uri: str,
    client_secret: str,
) -> str:
    """The ID token the token endpoint issues for ``code`` and the flow's PKCE verifier
    (the client authenticates with its secret when it has one)."""
    import httpx2

    settings = verifier.settings
    token_endpoint = verifier.endpoint("token_endpoint")
    try:
        # the kernel's client: the token endpoint only, no redirect followed (the code, the
        # verifier and the client secret go nowhere else)
        with http_client(
            Origins.of(token_endpoint),
            path="oidc.token_endpoint",
            timeout=10.0,
            auth=(settings.client_id, client_secret) if client_secret else None,
        ) as http:
            answer = http.post(
                token_endpoint,
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": redirect_uri,
                    "code_verifier": flow["verifier"],
                    **({} if client_secret else {"client_id": settings.client_id}),
                },
            )
    except httpx2.HTTPError as exc:
        log.warning("the OpenID token endpoint failed: %s", type(exc).__name__)
        raise Unauthorized(
            "The identity provider could not be reached to finish the sign-in",
            code=ErrorCode.oidc_token_exchange_failed,
        ) from None
    body = _json_object(answer)
    if answer.status_code != 200 or not isinstance(body.get("id_token"), str):
        raise Unauthorized(
            f"The identity provider did not issue an ID token "
            f"({body.get('error') or answer.status_code})",
            code=ErrorCode.oidc_token_exchange_failed,
        )
    return str(body["id_token"])


__all__ = ["add_oidc_routes"]


def _json_object(answer: httpx2.Response) -> dict[str, Any]:
    """The token endpoint's JSON object, read once (a member given twice is no answer)."""
    if not answer.headers.get("content-type", "").startswith("application/json"):
        return {}
    try:
        body = parse_json(answer.content, source="token endpoint")
    except DocumentError:
        return {}
    return body if isinstance(body, dict) else {}
