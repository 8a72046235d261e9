"""Behind a reverse proxy (issue 52, item 8): ``kneo service serve --forwarded-allow-ips``
decides whose forwarded address is believed, and the sign-in throttle keys on the real client
and on the key tried, so one client's wrong keys never lock another user out.

Real HTTP against ``kneo service serve`` in its own process: the "proxy" is a client whose
socket is bound to 127.0.0.2 (trusted), a direct client one bound to 127.0.0.3 or 127.0.0.4
(not trusted); Linux routes all of 127.0.0.0/8 to the loopback interface. The request log the
server writes says which address each request was counted against.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from kneo.errors import ConfigError
from kneo.service.proxies import MAX_HOPS, TrustedProxies
from kneo.settings import Settings
from tests.cli_zygote import KNEO
from tests.service.svc_helpers import KEYS, ROOT, LiveServer, auth_env

PROXY, DIRECT, OTHER = "127.0.0.2", "127.0.0.3", "127.0.0.4"
MAX_FAILURES = 3


def _serve(tmp: Path, name: str, *args: str) -> LiveServer:
    env = {
        **auth_env(),
        "KNEO_SERV_DATABASE_URL": f"sqlite:///{tmp / f'{name}.sqlite'}",
        "KNEO_SERV_PROFILES_PATH": str(tmp / "profiles.json"),
        "KNEO_SERV_AUTH_MAX_FAILURES": str(MAX_FAILURES),
    }
    args = ("--no-worker", "--no-controller", *args)
    return LiveServer(env, ROOT, tmp / f"{name}.log", args).start()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """Trusts 127.0.0.2 to write ``X-Forwarded-For``; serves ``/mcp`` too."""
    live = _serve(
        tmp_path_factory.mktemp("proxies"), "xff", "--forwarded-allow-ips", PROXY, "--mcp"
    )
    yield live
    live.stop()


def _from(address: str) -> httpx2.Client:
    """A client whose connections come from ``address``."""
    return httpx2.Client(transport=httpx2.HTTPTransport(local_address=address), timeout=10)


def _get(client: httpx2.Client, server: LiveServer, key: str, **headers: str) -> int:
    answer = client.get(
        server.url + "/v1/runs",
        headers={
            "Authorization": f"Bearer {key}",
            **{k.replace("_", "-"): v for k, v in headers.items()},
        },
    )
    return answer.status_code


def _logged_clients(
    server: LiveServer, marker: str, *, expect: frozenset[str] | set[str] = frozenset()
) -> set[str]:
    """The ``client`` of every request-log line the server wrote for requests to ``marker``
    (waiting a little for ``expect``: a line is written once its response has gone)."""
    deadline = time.monotonic() + 5
    while True:
        found = set()
        for line in server.log_path.read_text().splitlines():
            if line.startswith("{") and marker in line:
                record = json.loads(line)
                if record.get("event") == "http_request":
                    found.add(record["client"])
        if expect <= found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_one_users_wrong_keys_do_not_lock_out_another_behind_the_proxy(
    server: LiveServer,
) -> None:
    """Two people behind the trusted proxy: one presents wrong keys until throttled; the
    other (another address per ``X-Forwarded-For``) signs in, and a wrong key of theirs is a
    plain 401. Without the flag both would be the proxy, and both locked out."""
    with _from(PROXY) as proxy:
        for i in range(MAX_FAILURES):
            assert _get(proxy, server, f"guess-{i}", X_Forwarded_For="203.0.113.7") == 401
        assert _get(proxy, server, "guess-x", X_Forwarded_For="203.0.113.7") == 429
        assert _get(proxy, server, KEYS["viewer"], X_Forwarded_For="203.0.113.7") == 429
        assert _get(proxy, server, KEYS["viewer"], X_Forwarded_For="203.0.113.8") == 200
        assert _get(proxy, server, "typo", X_Forwarded_For="203.0.113.8") == 401
        # the proxy's own address holds no failures: requests without the header pass
        assert _get(proxy, server, KEYS["viewer"]) == 200
    expected = {"203.0.113.7", "203.0.113.8", PROXY}
    assert expected <= _logged_clients(server, "/v1/runs", expect=expected)


def test_an_untrusted_peer_cannot_choose_its_address(server: LiveServer) -> None:
    """A client that is not a trusted proxy sends a new ``X-Forwarded-For`` with every guess:
    the header is ignored, its guesses count against its own address, and it is throttled."""
    with _from(DIRECT) as direct:
        for i in range(MAX_FAILURES):
            assert _get(direct, server, f"spoof-{i}", X_Forwarded_For=f"198.51.100.{i}") == 401
        assert _get(direct, server, "spoof-x", X_Forwarded_For="198.51.100.99") == 429
    logged = _logged_clients(server, "/v1/runs", expect={DIRECT})
    assert DIRECT in logged and not {f"198.51.100.{i}" for i in range(MAX_FAILURES)} & logged


def test_a_client_behind_the_proxy_cannot_choose_its_address_either(
    server: LiveServer,
) -> None:
    """The proxy appends the address it saw to what the client sent: the client's own
    entries sit to the left and are never read, however it rotates them."""
    with _from(PROXY) as proxy:
        for i in range(MAX_FAILURES):
            forged = f"192.0.2.{i}, 203.0.113.20"  # the client's guess, then the proxy's hop
            assert _get(proxy, server, f"hop-{i}", X_Forwarded_For=forged) == 401
        assert _get(proxy, server, "hop-x", X_Forwarded_For="192.0.2.99, 203.0.113.20") == 429


def test_a_key_that_signed_in_passes_its_clients_full_bucket(server: LiveServer) -> None:
    """Several people behind one address (an office NAT): the reviewer's key has signed in
    from it; a colleague's script then fills the address's bucket. The reviewer goes on; a
    key new to the address waits (guessing from there cannot go on)."""
    office = {"X_Forwarded_For": "203.0.113.30"}
    with _from(PROXY) as proxy:
        assert _get(proxy, server, KEYS["reviewer"], **office) == 200
        for i in range(MAX_FAILURES):
            assert _get(proxy, server, f"script-{i}", **office) == 401
        assert _get(proxy, server, KEYS["reviewer"], **office) == 200
        assert _get(proxy, server, "script-x", **office) == 429
        assert _get(proxy, server, KEYS["operator"], **office) == 429


def test_one_wrong_key_from_many_addresses_is_throttled_but_its_neighbours_are_not(
    server: LiveServer,
) -> None:
    """The key bucket is the key tried (its SHA-256), not its first characters: a stale key
    replayed from many addresses stops, and keys that merely share its prefix do not."""
    stale = "service-secret-token-OLD"
    with _from(PROXY) as proxy:
        for i in range(MAX_FAILURES):
            assert _get(proxy, server, stale, X_Forwarded_For=f"203.0.113.{40 + i}") == 401
        assert _get(proxy, server, stale, X_Forwarded_For="203.0.113.49") == 429
        assert _get(proxy, server, KEYS["service"], X_Forwarded_For="203.0.113.49") == 200
        assert (
            _get(proxy, server, "service-secret-token-new", X_Forwarded_For="203.0.113.49") == 401
        )


def test_the_proxys_scheme_makes_cookies_secure(server: LiveServer) -> None:
    """``X-Forwarded-Proto: https`` from the trusted proxy is the request's scheme (the
    console's cookies get ``Secure``); from anyone else it is ignored."""
    for address, secure in ((PROXY, True), (DIRECT, False)):
        with _from(address) as client:
            page = client.get(
                server.url + "/ui/login",
                headers={"X-Forwarded-For": "203.0.113.60", "X-Forwarded-Proto": "https"},
            )
        assert page.status_code == 200
        cookies = page.headers.get_list("set-cookie")
        assert cookies and all(("; secure" in c.lower()) is secure for c in cookies), cookies


def test_wrong_keys_on_mcp_are_throttled_per_real_client(server: LiveServer) -> None:
    """``/mcp`` checks keys through the same throttle: a guesser there is refused with 429
    and ``Retry-After``, counted against the address behind the proxy."""
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    headers = {"Accept": "application/json, text/event-stream", "X-Forwarded-For": "203.0.113.70"}
    with _from(PROXY) as proxy:
        for i in range(MAX_FAILURES):
            wrong = {**headers, "Authorization": f"Bearer mcp-guess-{i}"}
            assert proxy.post(server.url + "/mcp", json=body, headers=wrong).status_code == 401
        refused = proxy.post(
            server.url + "/mcp", json=body, headers={**headers, "Authorization": "Bearer x"}
        )
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
        assert refused.json()["error"] == "too_many_requests"
        # another person behind the proxy still reaches the API
        assert _get(proxy, server, KEYS["viewer"], X_Forwarded_For="203.0.113.71") == 200
    assert "203.0.113.70" in _logged_clients(server, "/mcp", expect={"203.0.113.70"})


def test_the_forwarded_header_and_only_it(tmp_path: Path) -> None:
    """``--forwarded-header forwarded``: RFC 7239's ``for=`` is read and ``X-Forwarded-For``
    (which this proxy does not manage, so a client could write it) is not."""
    live = _serve(
        tmp_path, "fwd", "--forwarded-allow-ips", f"{PROXY}/32", "--forwarded-header", "forwarded"
    )
    try:
        with _from(PROXY) as proxy:
            for i in range(MAX_FAILURES):
                spoofed = {
                    "X_Forwarded_For": f"198.51.100.{i}",
                    "Forwarded": 'for="[2001:db8::1]:4711";proto=https',
                }
                assert _get(proxy, live, f"g-{i}", **spoofed) == 401
            assert _get(proxy, live, "g-x", Forwarded="for=2001:db8::1") == 429
            assert (
                _get(proxy, live, KEYS["viewer"], Forwarded="for=192.0.2.5, for=127.0.0.2") == 200
            )
        expected = {"2001:db8::1", "192.0.2.5"}
        assert expected <= _logged_clients(live, "/v1/runs", expect=expected)
    finally:
        live.stop()


def test_loopback_is_not_trusted_unless_named(server: LiveServer) -> None:
    """Only the named proxies are believed, loopback included: uvicorn's own reading of the
    headers (which trusts 127.0.0.1 by default) is off, so a local process that is not the
    proxy cannot choose its address either."""
    with _from("127.0.0.1") as local:
        for i in range(MAX_FAILURES):
            assert _get(local, server, f"n-{i}", X_Forwarded_For=f"198.51.100.{60 + i}") == 401
        assert _get(local, server, "n-x", X_Forwarded_For="198.51.100.69") == 429
    logged = _logged_clients(server, "/v1/runs", expect={"127.0.0.1"})
    assert "127.0.0.1" in logged and not {f"198.51.100.{60 + i}" for i in range(3)} & logged


def _kneo(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("KNEO_")}
    return subprocess.run(
        [*KNEO, *args],
        cwd=ROOT,
        env={**environ, "PYTHONPATH": str(ROOT), **auth_env(), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        (("--forwarded-allow-ips", "10.0.0.0/33"), {}, "--forwarded-allow-ips"),
        (("--forwarded-allow-ips", "proxy.internal"), {}, "--forwarded-allow-ips"),
        (("--forwarded-header", "x-real-ip"), {}, "--forwarded-header"),
        ((), {"KNEO_SERV_FORWARDED_ALLOW_IPS": "10.0.0.1,nope"}, "KNEO_SERV_FORWARDED_ALLOW_IPS"),
    ],
)
def test_a_bad_proxy_setting_is_one_error_line(
    args: tuple[str, ...], env: dict[str, str], named: str
) -> None:
    done = _kneo("service", "serve", "--port", "1", *args, **env)
    assert done.returncode != 0
    assert "config_error" in done.stderr and named in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


# -- the pieces, without a server -----------------------------------------------------------


def _client(proxies: TrustedProxies, peer: str, *headers: tuple[str, str]) -> Any:
    return proxies.client(peer, [(k.encode(), v.encode()) for k, v in headers])


def test_the_chain_is_read_from_the_right() -> None:
    proxies = TrustedProxies(["10.0.0.0/8", "127.0.0.2"])
    xff = "x-forwarded-for"
    assert _client(proxies, "192.0.2.1", (xff, "203.0.113.1")) is None  # not a proxy
    assert _client(proxies, "10.1.1.1", (xff, "203.0.113.1")) == ("203.0.113.1", None)
    # client-written, then the outer proxy's, then the inner proxy's hop
    chain = (xff, "1.1.1.1, 203.0.113.1, 10.2.2.2")
    assert _client(proxies, "10.1.1.1", chain) == ("203.0.113.1", None)
    assert _client(proxies, "10.1.1.1", (xff, "1.1.1.1"), (xff, "203.0.113.9:5123")) == (
        "203.0.113.9",
        None,
    )
    assert _client(proxies, "10.1.1.1", (xff, "10.3.3.3, 10.4.4.4")) == ("10.3.3.3", None)
    assert _client(proxies, "::ffff:10.1.1.1", (xff, "[2001:db8::7]:80")) == ("2001:db8::7", None)
    protos = ("x-forwarded-proto", "https, http")
    assert _client(proxies, "10.1.1.1", (xff, "203.0.113.1, 10.2.2.2"), protos) == (
        "203.0.113.1",
        "https",
    )
    assert _client(proxies, "10.1.1.1", ("forwarded", "for=203.0.113.1")) is None  # not read
    long = ", ".join(["198.51.100.1"] * 100 + ["203.0.113.5"])
    assert _client(proxies, "10.1.1.1", (xff, long)) == ("203.0.113.5", None)
    assert MAX_HOPS < 100


def test_rfc_7239_elements() -> None:
    proxies = TrustedProxies(["10.0.0.0/8"], "forwarded")
    fwd = "forwarded"
    assert _client(proxies, "10.1.1.1", (fwd, 'for="[2001:db8:cafe::17]:4711"')) == (
        "2001:db8:cafe::17",
        None,
    )
    assert _client(
        proxies, "10.1.1.1", (fwd, "for=192.0.2.60;proto=https;by=203.0.113.43, for=10.9.9.9")
    ) == ("192.0.2.60", "https")
    assert _client(proxies, "10.1.1.1", (fwd, "for=unknown")) == ("unknown", None)
    assert _client(proxies, "10.1.1.1", (fwd, "by=10.0.0.1")) == ("unknown", None)
    assert _client(proxies, "10.1.1.1", ("x-forwarded-for", "203.0.113.1")) is None


def test_settings_and_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.forwarded_allow_ips == () and settings.forwarded_header == "x-forwarded-for"
    assert not TrustedProxies(settings.forwarded_allow_ips)
    parsed = Settings.from_env(
        {
            "KNEO_SERV_FORWARDED_ALLOW_IPS": "10.0.0.0/8, 192.168.1.7 fd00::/8",
            "KNEO_SERV_FORWARDED_HEADER": "Forwarded",
        }
    )
    assert parsed.forwarded_allow_ips == ("10.0.0.0/8", "192.168.1.7/32", "fd00::/8")
    assert parsed.forwarded_header == "forwarded"
    assert TrustedProxies(["*"]).trusts("anything")
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"KNEO_SERV_FORWARDED_HEADER": "x-real-ip"})
    assert caught.value.details["variable"] == "KNEO_SERV_FORWARDED_HEADER"
