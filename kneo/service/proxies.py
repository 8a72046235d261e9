"""Who the client is behind a reverse proxy: the forwarded address, believed only from the
proxies ``KNEO_SERV_FORWARDED_ALLOW_IPS`` (``kneo service serve --forwarded-allow-ips``) names.

Every request's ``scope["client"]`` (what the sign-in throttle keys on and the request log
records) is the TCP peer unless that peer is a trusted proxy. Then the one header
``KNEO_SERV_FORWARDED_HEADER`` names is read — ``X-Forwarded-For`` (and
``X-Forwarded-Proto``), or RFC 7239's ``Forwarded`` — from the right, the way proxies append
to it: each hop that is itself a trusted proxy is skipped, and the first that is not is the
client. What a client writes into the header itself sits to the left of what its first proxy
added, so it is never reached; the header a proxy does not write is never read, so a client
cannot slip an address past a proxy that only manages the other one. The scheme of that hop
(``https`` at a TLS-terminating proxy) becomes the request's, for cookies' ``Secure`` and
redirect URIs.

uvicorn's own proxy handling (which trusts ``127.0.0.1`` unless told otherwise) is switched
off wherever Kneo starts uvicorn, so this is the one reading of the headers.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from kneo.settings import Settings

if TYPE_CHECKING:
    from starlette.applications import Starlette

#: Hops read from the right at most; a longer chain is cut (its leftmost hops are a client's,
#: or a chain of more proxies than anyone runs).
MAX_HOPS = 32
_SCHEMES = frozenset({"http", "https"})
_PAIR = re.compile(r'\s*([!#$%&\'*+.^_`|~0-9A-Za-z-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;,\s]*)\s*')

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
#: Addresses whose trust and normal form are remembered; longer texts are no address at all.
_CACHED = 4096
_LONGEST = 64


class TrustedProxies:
    """The peers whose forwarded headers are believed (``*``: any peer)."""

    def __init__(self, entries: Iterable[str], header: str = "x-forwarded-for") -> None:
        items = tuple(entries)
        self.any = "*" in items
        self.networks: tuple[Network, ...] = tuple(
            ipaddress.ip_network(item, strict=False) for item in items if item != "*"
        )
        self.header = header
        #: decisions by the host's text (bounded: the texts come from requests)
        self._trusted = functools.lru_cache(maxsize=_CACHED)(self._judge)

    def __bool__(self) -> bool:
        return self.any or bool(self.networks)

    def trusts(self, host: str | None) -> bool:
        """Whether ``host`` (an address as a peer or a hop states it) is a trusted proxy."""
        if self.any:
            return True
        if not host or len(host) > _LONGEST:
            return False
        return self._trusted(host)

    def _judge(self, host: str) -> bool:
        address = _address(host)
        return address is not None and any(address in net for net in self.networks)

    def client(
        self, peer: str | None, headers: Iterable[tuple[bytes, bytes]]
    ) -> tuple[str, str | None] | None:
        """``(address, scheme or None)`` of the client behind ``peer``, or ``None`` to keep the
        peer (not a trusted proxy, or it forwarded nothing)."""
        if not self.trusts(peer):
            return None
        hops = _forwarded(headers) if self.header == "forwarded" else _x_forwarded(headers)
        if not hops:
            return None
        for host, scheme in reversed(hops):
            if not self.trusts(host):
                return host, scheme
        return hops[0]  # every hop a trusted proxy: the first one's word is all there is


def _address(host: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not host:
        return None
    try:
        found = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(found, ipaddress.IPv6Address) and found.ipv4_mapped is not None:
        return found.ipv4_mapped
    return found


@functools.lru_cache(maxsize=_CACHED)
def _host(value: str) -> str:
    """A hop's address without its port or brackets, normalised when it is an IP address
    (``unknown`` and obfuscated identifiers stay as they are)."""
    value = value.strip().strip('"')
    if value.startswith("["):
        value = value[1 : value.find("]")] if "]" in value else value[1:]
    elif value.count(":") == 1:
        value = value.split(":", 1)[0]
    address = _address(value)
    return str(address) if address is not None else value


def _values(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> list[str]:
    """Every comma-separated element of every ``name`` header, in order."""
    return [
        part.strip()
        for key, value in headers
        if key.lower() == name
        for part in value.decode("latin-1").split(",")
        if part.strip()
    ]


def _x_forwarded(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[str, str | None]]:
    """``X-Forwarded-For`` hops, each with the ``X-Forwarded-Proto`` entry at the same place
    from the right (a single ``X-Forwarded-Proto`` value goes with every hop)."""
    headers = list(headers)
    hosts = _values(headers, b"x-forwarded-for")[-MAX_HOPS:]
    protos = [p.lower() for p in _values(headers, b"x-forwarded-proto")]
    found: list[tuple[str, str | None]] = []
    for index, host in enumerate(hosts):
        back = len(hosts) - index
        proto = protos[0] if len(protos) == 1 else protos[-back] if back <= len(protos) else None
        found.append((_host(host[:_LONGEST]), proto if proto in _SCHEMES else None))
    return found


def _forwarded(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[str, str | None]]:
    """RFC 7239 ``Forwarded`` elements' ``for`` and ``proto``, in order (an element without
    ``for`` is a hop nobody can be sure of: it ends the chain there)."""
    found: list[tuple[str, str | None]] = []
    for element in _values(headers, b"forwarded")[-MAX_HOPS:]:
        pairs = {k.lower(): v for k, v in _PAIR.findall(element.replace(";", " ; "))}
        proto = pairs.get("proto", "").strip('"').lower()
        found.append(
            (
                _host(pairs.get("for", "")[:_LONGEST]) or "unknown",
                proto if proto in _SCHEMES else None,
            )
        )
    return found


class ForwardedMiddleware:
    """ASGI: the client (and scheme) of each request, per :class:`TrustedProxies`."""

    def __init__(self, app: Any, proxies: TrustedProxies) -> None:
        self.app = app
        self.proxies = proxies

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self.proxies and scope["type"] in ("http", "websocket"):
            peer = scope.get("client")
            found = self.proxies.client(peer[0] if peer else None, scope.get("headers") or ())
            if found is not None:
                host, scheme = found
                scope = dict(scope)
                scope["client"] = (host, 0)
                if scheme is not None:
                    secure = scheme == "https"
                    if scope["type"] == "websocket":
                        scope["scheme"] = "wss" if secure else "ws"
                    else:
                        scope["scheme"] = scheme
        await self.app(scope, receive, send)


def add_forwarded(app: Starlette, settings: Settings) -> None:
    """Wrap ``app`` (outermost) in :class:`ForwardedMiddleware` when proxies are trusted."""
    proxies = TrustedProxies(settings.forwarded_allow_ips, settings.forwarded_header)
    if proxies:
        app.add_middleware(ForwardedMiddleware, proxies=proxies)


__all__ = ["MAX_HOPS", "ForwardedMiddleware", "TrustedProxies", "add_forwarded"]
