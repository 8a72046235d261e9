"""The network door: every HTTP client and SMTP connection Kneo opens, asking a grant at
every hop. Imports no HTTP library until a client is asked for."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from kneo.errors import AccessDenied, ConfigError, ErrorCode

if TYPE_CHECKING:
    import smtplib

    import httpx
    import httpx2


class NetworkGrant(Protocol):
    """What the network door asks before each request a client sends, every redirect hop
    included: a run's model call or MCP session (:class:`~kneo.policy.access.Reach`: the
    environment's allow-list and the secret's bound destinations), or :class:`Origins`."""

    def destination(self, url: str, *, path: str) -> None:
        """Raise :class:`~kneo.errors.AccessDenied` when ``url`` may not be reached."""
        ...


def _origin(url: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    default = {"http": 80, "https": 443, "smtp": 25}.get(parts.scheme)
    if default is None or not parts.hostname:
        return None
    return parts.scheme, parts.hostname.lower(), port or default


@dataclass(frozen=True)
class Origins:
    """The grant of a client whose one destination the operator configured (a notification
    receiver, the identity provider, the Kneo service the CLI talks to): the origins
    (scheme, host, port) of those URLs and nothing else, wherever a server redirects."""

    origins: frozenset[tuple[str, str, int]]

    @classmethod
    def of(cls, *urls: str) -> Origins:
        return cls(frozenset(o for o in map(_origin, urls) if o is not None))

    def destination(self, url: str, *, path: str) -> None:
        origin = _origin(url)
        if origin in self.origins:
            return
        where = f"{origin[0]}://{origin[1]}:{origin[2]}" if origin else "a URL that is not http(s)"
        raise AccessDenied(
            f"{path}: a request to {where} leaves the configured endpoint",
            code=ErrorCode.E_DESTINATION_NOT_ALLOWED,
            path=path,
        )


@dataclass(frozen=True)
class AllowList:
    """The grant of destinations a *caller* names rather than the operator (an A2A client's
    push URL): the operator's list of origins, nothing else, at every hop. An entry is an
    origin, ``https://hooks.example.com`` or ``http://127.0.0.1:8080`` (scheme, host, port:
    the scheme's default when none is given); a host ``*.example.com`` stands for every
    subdomain of ``example.com`` (never ``example.com`` itself). A name is trusted as a name:
    list names whose addresses you control. A URL with credentials in it (``user:pw@``) is
    refused, whatever its host."""

    entries: tuple[tuple[str, str, int], ...]

    @classmethod
    def parse(cls, items: Iterable[str], *, variable: str) -> AllowList:
        """The list of ``items``; an entry that is not an http(s) origin (a path, a query,
        credentials, a wildcard anywhere but the first label) is a ``config_error`` naming
        ``variable``."""
        entries = []
        for item in (i.strip() for i in items):
            if not item:
                continue
            wild = "://*." in item
            probe = item.replace("://*.", "://wildcard.", 1) if wild else item
            try:
                parts = urlsplit(probe)
                origin = _origin(probe)
            except ValueError:
                origin = None
            if (
                origin is None
                or origin[0] not in ("http", "https")
                or parts.path not in ("", "/")
                or parts.query
                or parts.fragment
                or parts.username is not None
                or "*" in probe
                or (wild and "." not in origin[1].removeprefix("wildcard."))
            ):
                raise ConfigError(
                    f"{variable}: {item!r} is not an http(s) origin (scheme://host[:port]; "
                    "a host may start with '*.' followed by a domain of two labels or more)",
                    variable=variable,
                )
            host = "*." + origin[1].removeprefix("wildcard.") if wild else origin[1]
            entries.append((origin[0], host, origin[2]))
        return cls(tuple(dict.fromkeys(entries)))

    def __bool__(self) -> bool:
        return bool(self.entries)

    def allows(self, url: str) -> bool:
        """Whether ``url`` is on the list (and carries no credentials)."""
        try:
            if urlsplit(url).username is not None:
                return False
        except ValueError:
            return False
        origin = _origin(url)
        if origin is None:
            return False
        scheme, host, port = origin
        for want_scheme, want_host, want_port in self.entries:
            if (want_scheme, want_port) != (scheme, port):
                continue
            if host == want_host or (
                want_host.startswith("*.") and host.endswith(want_host[1:]) and host != want_host
            ):
                return True
        return False

    def destination(self, url: str, *, path: str) -> None:
        if self.allows(url):
            return
        origin = _origin(url)
        where = f"{origin[0]}://{origin[1]}:{origin[2]}" if origin else "a URL that is not http(s)"
        raise AccessDenied(
            f"{path}: {where} is not on the operator's allow-list",
            code=ErrorCode.E_DESTINATION_NOT_ALLOWED,
            path=path,
        )


def _hooks(options: dict[str, Any], check: Any) -> dict[str, list[Any]]:
    given = options.pop("event_hooks", None) or {}
    return {"request": [check, *given.get("request", ())], "response": [*given.get("response", ())]}


def http_client(grant: NetworkGrant, *, path: str, **options: Any) -> httpx2.Client:
    """The one way Kneo builds an HTTP client: an ``httpx2.Client`` (``options`` are its
    own) that asks ``grant`` before every request it sends, each redirect hop included,
    and sends nothing ``grant`` refuses (the :class:`~kneo.errors.AccessDenied` propagates,
    ``path`` names what configured the destination). Redirects are followed only when
    ``follow_redirects=True`` is given. Pool it: one client serves many requests."""
    import httpx2

    def check(request: httpx2.Request) -> None:
        grant.destination(str(request.url), path=path)

    return httpx2.Client(event_hooks=_hooks(options, check), **options)


def smtp_connection(
    grant: NetworkGrant, url: str, *, path: str, tls: str, timeout: float
) -> smtplib.SMTP:
    """The one way Kneo opens an SMTP connection: to ``url`` (``smtp://host:port``) when
    ``grant`` allows it (else :class:`~kneo.errors.AccessDenied`, nothing connected), secured
    as ``tls`` says: ``tls`` (implicit TLS), ``starttls`` (refused if the server does not
    offer it: a password never goes in clear), or ``none``. Certificates are verified."""
    import smtplib
    import ssl

    grant.destination(url, path=path)
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 25
    context = ssl.create_default_context()
    if tls == "tls":
        return smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
    connection = smtplib.SMTP(host, port, timeout=timeout)
    if tls == "starttls":
        connection.starttls(context=context)  # SMTPNotSupportedError when not offered
    return connection


def async_http_client(grant: NetworkGrant, *, path: str, **options: Any) -> httpx2.AsyncClient:
    """:func:`http_client` for asyncio: an ``httpx2.AsyncClient`` asking ``grant`` at every
    hop."""
    import httpx2

    async def check(request: httpx2.Request) -> None:
        grant.destination(str(request.url), path=path)

    return httpx2.AsyncClient(event_hooks=_hooks(options, check), **options)


def async_httpx_client(grant: NetworkGrant, *, path: str, **options: Any) -> httpx.AsyncClient:
    """:func:`async_http_client` for an SDK built on ``httpx`` rather than ``httpx2`` (the
    ``a2a-sdk`` client): an ``httpx.AsyncClient`` asking ``grant`` before every request it
    sends, each redirect hop included (``httpx`` runs request hooks per hop)."""
    import httpx

    async def check(request: httpx.Request) -> None:
        grant.destination(str(request.url), path=path)

    return httpx.AsyncClient(event_hooks=_hooks(options, check), **options)
