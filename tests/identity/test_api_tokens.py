"""The API accepts the OpenID provider's JWTs: checked against its JWKS (issuer, audience,
expiry with clock skew, keys cached and rotated) and mapped to roles by KNEO_SERV_OIDC_ROLES;
every refusal is a 401 with its own code. Tokens come from a real ``oidc-provider``."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from oidc_helpers import (
    AUDIENCE,
    OTHER_AUDIENCE,
    SHORT_RESOURCE,
    OpenIdProvider,
    signing_key,
)
from starlette.testclient import TestClient

from kneo.errors import ConfigError, NotReady, Unauthorized
from kneo.service import create_app
from kneo.service.auth import ROLE_SCOPES, Authenticator
from kneo.service.identity import TokenVerifier
from kneo.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
KEYS = "ops:operator-key-0123456789:operator"


@pytest.fixture
def make_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., TestClient]]:
    from kneo.platform import create_platform
    from kneo.store import open_store

    monkeypatch.chdir(ROOT)
    opened: list[tuple[TestClient, Any]] = []

    def factory(env: dict[str, str]) -> TestClient:
        settings = Settings.from_env({"KNEO_SERV_API_KEYS": KEYS, **env})
        store = open_store(None, settings=settings, state_dir=tmp_path / f"state{len(opened)}")
        manager = create_platform(settings=settings, store=store)
        client = TestClient(
            create_app(False, settings=settings, manager=manager, start_worker=False)
        )
        client.__enter__()
        opened.append((client, store))
        return client

    yield factory
    for client, store in opened:
        client.__exit__(None, None, None)
        store.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def refused(client: TestClient, token: str, code: str) -> str:
    response = client.get("/v1/human-tasks", headers=bearer(token))
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["error"] == code, body
    assert token not in response.text
    return str(body["message"])


def test_a_provider_token_is_accepted_with_the_roles_its_groups_map_to(
    idp: OpenIdProvider, make_client: Callable[..., TestClient]
) -> None:
    client = make_client(idp.env())
    token = idp.client_credentials()
    listed = client.get("/v1/human-tasks", headers=bearer(token))
    assert listed.status_code == 200, listed.text
    # release-managers -> reviewer: reading tasks yes, starting runs no (403 names the scope)
    started = client.post("/v1/runs", headers=bearer(token), json={"input": "x"})
    assert started.status_code == 403, started.text
    assert started.json()["required_scope"] == "runs:write"
    # API keys keep working beside tokens
    ops = client.get("/v1/human-tasks", headers=bearer("operator-key-0123456789"))
    assert ops.status_code == 200


def test_a_token_for_another_audience_is_refused(
    idp: OpenIdProvider, make_client: Callable[..., TestClient]
) -> None:
    client = make_client(idp.env())
    message = refused(
        client, idp.client_credentials(resource=OTHER_AUDIENCE), "token_audience_mismatch"
    )
    assert AUDIENCE in message and OTHER_AUDIENCE in message


def test_an_expired_token_is_refused_after_the_clock_skew(
    idp: OpenIdProvider, make_client: Callable[..., TestClient]
) -> None:
    strict = make_client(idp.env(KNEO_SERV_OIDC_CLOCK_SKEW_SECONDS="0"))
    lenient = make_client(idp.env(KNEO_SERV_OIDC_CLOCK_SKEW_SECONDS="60"))
    token = idp.client_credentials(resource=SHORT_RESOURCE)  # lives one second
    time.sleep(2.2)
    assert "expired" in refused(strict, token, "token_expired")
    assert lenient.get("/v1/human-tasks", headers=bearer(token)).status_code == 200


def test_a_token_from_another_issuer_is_refused(
    idp: OpenIdProvider, make_client: Callable[..., TestClient], tmp_path: Path
) -> None:
    other = OpenIdProvider(tmp_path / "other-idp").start()
    try:
        client = make_client(idp.env())
        message = refused(client, other.client_credentials(), "token_issuer_mismatch")
        assert other.issuer in message and "KNEO_SERV_OIDC_ISSUER" in message
    finally:
        other.stop()


def test_a_token_signed_by_a_key_the_issuer_does_not_publish_is_refused(
    idp: OpenIdProvider, make_client: Callable[..., TestClient]
) -> None:
    from joserfc import jwt
    from joserfc.jwk import RSAKey

    client = make_client(idp.env())
    now = int(time.time())
    claims = {
        "iss": idp.issuer,
        "aud": AUDIENCE,
        "sub": "mallory",
        "exp": now + 600,
        "iat": now,
        "groups": ["release-managers"],
    }
    unknown = RSAKey.import_key(signing_key("not-published"))
    forged = jwt.encode({"alg": "RS256", "kid": "not-published"}, claims, unknown)
    refused(client, forged, "token_key_unknown")
    # the attacker's key under the provider's kid: the signature does not verify
    posing = RSAKey.import_key({**signing_key("key-1")})
    refused(
        client,
        jwt.encode({"alg": "RS256", "kid": "key-1"}, claims, posing),
        "token_signature_invalid",
    )
    # and no "none" or HMAC tokens
    refused(
        client, forged.split(".")[0][:-2] + "x." + forged.split(".")[1] + ".", "token_malformed"
    )
    hmac_token = jwt.encode({"alg": "HS256", "kid": "key-1"}, claims, _oct_key())
    refused(client, hmac_token, "token_malformed")


def _oct_key() -> Any:
    from joserfc.jwk import OctKey

    return OctKey.import_key("a-shared-secret-long-enough-for-hs256-0123456789")


def test_a_rotated_key_is_fetched_when_a_token_names_it(
    idp: OpenIdProvider, tmp_path: Path
) -> None:
    """Keys are cached; a token signed by a key the cache does not know triggers one early
    fetch (not more than one every ten seconds), so a rotation is picked up at once."""
    rotating = OpenIdProvider(tmp_path / "rotating")
    rotating.start()
    fetched: list[str] = []
    now = [1000.0]
    try:
        from kneo.service import identity

        def fetch(url: str) -> dict[str, Any]:
            fetched.append(url.rsplit("/", 1)[-1])
            return identity._fetch_json(url)

        settings = Settings.from_env(rotating.env()).oidc
        verifier = TokenVerifier(settings, fetch_json=fetch, monotonic=lambda: now[0])
        old = rotating.client_credentials()
        assert verifier.claims(old)["sub"] == "ci-bot"
        assert verifier.claims(old)["sub"] == "ci-bot"
        assert fetched == ["openid-configuration", "jwks"]  # cached after the first
        rotating.keys = [signing_key("key-2")]
        rotating.restart()
        new = rotating.client_credentials()
        with pytest.raises(Unauthorized) as early:  # no refetch within ten seconds
            verifier.claims(new)
        assert early.value.code == "token_key_unknown"
        now[0] += 11
        assert verifier.claims(new)["sub"] == "ci-bot"
        assert fetched == ["openid-configuration", "jwks", "jwks"]
        with pytest.raises(Unauthorized) as retired:
            verifier.claims(old)
        assert retired.value.code == "token_key_unknown"
        # the provider goes away: the keys already fetched keep serving past the cache period
        rotating.stop()
        now[0] += settings.jwks_cache_seconds + 1
        assert verifier.claims(new)["sub"] == "ci-bot"
    finally:
        rotating.stop()


def test_an_unreachable_provider_is_503_not_a_crash(tmp_path: Path) -> None:
    from oidc_helpers import free_port

    settings = Settings.from_env(
        {
            "KNEO_SERV_OIDC_ISSUER": f"http://127.0.0.1:{free_port()}",
            "KNEO_SERV_OIDC_AUDIENCE": AUDIENCE,
        }
    )
    token = _token_for(settings.oidc.issuer)
    with pytest.raises(NotReady) as caught:
        TokenVerifier(settings.oidc).claims(token)
    assert caught.value.code == "identity_provider_unavailable"


def _token_for(issuer: str) -> str:
    from joserfc import jwt
    from joserfc.jwk import RSAKey

    claims = {"iss": issuer, "aud": AUDIENCE, "sub": "x", "exp": int(time.time()) + 60}
    return jwt.encode({"alg": "RS256", "kid": "k"}, claims, RSAKey.import_key(signing_key("k")))


def test_a_person_whose_groups_map_to_no_role_is_403(
    idp: OpenIdProvider, make_client: Callable[..., TestClient]
) -> None:
    client = make_client(idp.env(KNEO_SERV_OIDC_ROLES="group:admins=admin"))
    response = client.get("/v1/human-tasks", headers=bearer(idp.client_credentials()))
    assert response.status_code == 403
    body = response.json()
    assert body["error"] == "no_role" and "release-managers" in body["message"]
    assert body["setting"] == "KNEO_SERV_OIDC_ROLES"


@pytest.mark.parametrize(
    ("roles", "fragment"),
    [
        ("group:ops", "must look like"),
        ("team:ops=operator", "group:NAME, user:EMAIL or *"),
        ("group:ops=superuser", "unknown role 'superuser'"),
    ],
)
def test_a_bad_role_map_is_refused_at_start(roles: str, fragment: str) -> None:
    settings = Settings.from_env(
        {
            "KNEO_SERV_OIDC_ISSUER": "https://idp.example",
            "KNEO_SERV_OIDC_AUDIENCE": AUDIENCE,
            "KNEO_SERV_OIDC_ROLES": roles,
        }
    )
    with pytest.raises(ConfigError) as caught:
        Authenticator.from_settings(settings)
    assert fragment in str(caught.value)
    assert caught.value.details["variable"] == "KNEO_SERV_OIDC_ROLES"


def test_the_role_map_names_users_groups_and_everyone() -> None:
    from kneo.service.identity import parse_role_map, person_of

    settings = Settings.from_env(
        {"KNEO_SERV_OIDC_ISSUER": "https://idp.example", "KNEO_SERV_OIDC_AUDIENCE": AUDIENCE}
    ).oidc
    rules = parse_role_map(
        "group:release-managers=reviewer; user:dana@example.com=admin; *=viewer", ROLE_SCOPES
    )
    alice = person_of(
        {
            "sub": "a1",
            "email": "alice@example.com",
            "email_verified": True,
            "groups": ["release-managers"],
        },
        settings,
        rules,
    )
    assert alice.name == "alice@example.com" and alice.roles == ("reviewer", "viewer")
    assert alice.via == ("group:release-managers", "*")
    dana = person_of(
        {"sub": "d1", "email": "dana@example.com", "email_verified": True}, settings, rules
    )
    assert dana.roles == ("admin", "viewer") and dana.groups == frozenset()
    nobody = person_of({"sub": "n1"}, settings, [])
    assert nobody.name == "n1" and nobody.roles == ()


def test_oidc_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="https://"):
        Settings.from_env({"KNEO_SERV_OIDC_ISSUER": "http://idp.example"})
    with pytest.raises(ConfigError, match="audience"):
        Settings.from_env({"KNEO_SERV_OIDC_ISSUER": "https://idp.example"})
    settings = Settings.from_env(
        {
            "KNEO_SERV_OIDC_ISSUER": "https://idp.example/",
            "KNEO_SERV_OIDC_CLIENT_ID": "kneo",
            "KNEO_SERV_OIDC_CLIENT_SECRET_ENV": "IDP_SECRET",
            "IDP_SECRET": "s3cret-value",
        }
    )
    assert settings.auth_enabled and settings.oidc.token_audience == "kneo"
    assert settings.oidc.issuer == "https://idp.example"
    assert "s3cret-value" in settings.secret_values()
    assert "s3cret-value" not in str(settings.as_public_dict())
