"""Network destinations: the allow-list entries a project writes and the URLs specs name.

A spec is code that reaches the network through a model's ``base_url`` and an MCP import's
``url``; each must match an entry of the environment's allow-list
(:mod:`kneo.policy.access`). An entry is one of:

* a host: ``api.example.com``, ``10.0.0.5``, ``[fd00::1]``, optionally with a port
  (``gw.internal:8443``); a leading label may be a glob (``*.example.com`` matches exactly
  one label in front of ``example.com``, ``*-aiplatform.googleapis.com`` a regional host);
  without a port any port matches;
* a network: ``10.0.0.0/8``, ``fd00::/8`` (IP literals only: a name is never resolved here,
  so a DNS answer cannot widen the list);
* a URL prefix: ``https://gw.example.com/v1`` (scheme, host and port equal, the path a
  prefix at a ``/`` boundary once dot-segments are resolved: ``/v1/../../x`` is ``/x``, and
  so are its percent-encoded spellings, as a server would read them);
* ``loopback``: ``localhost``, ``127.0.0.0/8``, ``::1`` and the unspecified addresses, which
  reach this host too.

A URL must be ``http`` or ``https`` with a host and no user information: credentials in a URL
end up in logs and traces (``E_URL_HAS_CREDENTIALS``). Pure functions, no I/O.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from kneo.errors import ErrorCode

#: The model providers' public endpoints, allowed in every environment unless its policy
#: file narrows the list (Azure OpenAI endpoints are per tenant: a project lists its own).
PROVIDER_ENDPOINTS: tuple[str, ...] = (
    "https://api.openai.com",
    "https://api.anthropic.com",
    "https://generativelanguage.googleapis.com",
    "https://aiplatform.googleapis.com",
    "https://*-aiplatform.googleapis.com",
)
#: Where a provider's SDK sends requests when a spec gives no ``base_url``.
#: (``azure-openai`` has none: each resource has its own endpoint, which a spec must give.)
DEFAULT_ENDPOINTS: dict[str, str] = {
    "openai": "https://api.openai.com/v1",
    "openai-compatible": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    "google": "https://generativelanguage.googleapis.com",
    "gemini": "https://generativelanguage.googleapis.com",
}
#: Where a provider's key may be sent unless the project binds it elsewhere
#: (``secrets.destinations``): its provider's own endpoints, by the provider names a project
#: declares keys under (``secrets.providers``) and the names specs use. Azure OpenAI's are
#: per tenant: the project allows its own resource under ``network.allow``.
_OPENAI = ("https://api.openai.com",)
_GOOGLE = PROVIDER_ENDPOINTS[2:]
PROVIDER_KEY_DESTINATIONS: dict[str, tuple[str, ...]] = {
    "openai": _OPENAI,
    "openai-compatible": _OPENAI,
    "openai-agents": _OPENAI,
    # a server the spec names: its key goes where the project binds it, nowhere by default
    "llama-cpp": (),
    "azure-openai": ("https://*.openai.azure.com", "https://*.cognitiveservices.azure.com"),
    "anthropic": ("https://api.anthropic.com",),
    "google": _GOOGLE,
    "gemini": _GOOGLE,
    "google-adk": _GOOGLE,
}
#: Providers whose server may take no key (a local llama.cpp server started without
#: ``--api-key``): with none declared for them, the call carries :data:`NO_KEY` and no
#: variable is read, rather than being refused or falling back to another provider's key.
KEYLESS_PROVIDERS = frozenset({"llama-cpp"})
NO_KEY = "no-key"
#: A spec's provider name -> the name its key is declared under when it has none of its own.
PROVIDER_KEY_NAMES: dict[str, str] = {"openai-compatible": "openai", "gemini": "google"}
LOOPBACK = "loopback"

_HOST_LABEL = re.compile(r"^[a-z0-9*]([a-z0-9*_-]{0,61}[a-z0-9*])?$")
_PORTS = {"http": 80, "https": 443}
_DOTS = re.compile("%2e", re.IGNORECASE)
_SLASHES = re.compile(r"%2f|%5c|\\", re.IGNORECASE)


class DestinationError(ValueError):
    """A URL or allow-list entry that is not a usable destination."""

    def __init__(self, message: str, code: str = "E_DESTINATION_NOT_ALLOWED") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Target:
    """Where a URL goes: scheme, host (lower case, IPv6 without brackets), port, path."""

    scheme: str
    host: str
    port: int
    path: str

    @property
    def ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        try:
            return ipaddress.ip_address(self.host)
        except ValueError:
            return None

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost" or self.host.endswith(".localhost"):
            return True
        ip = self.ip
        return ip is not None and (ip.is_loopback or ip.is_unspecified)


@dataclass(frozen=True)
class Destination:
    """One allow-list entry (see the module docstring)."""

    kind: Literal["host", "network", "prefix", "loopback"]
    text: str
    host: str = ""
    port: int | None = None
    scheme: str | None = None
    path: str = ""
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None

    def matches(self, target: Target) -> bool:
        if self.kind == "loopback":
            return target.is_loopback
        if self.kind == "network":
            ip = target.ip
            return ip is not None and self.network is not None and ip in self.network
        if self.port is not None and self.port != target.port:
            return False
        if not _host_matches(self.host, target.host):
            return False
        if self.kind == "host":
            return True
        if self.scheme != target.scheme:
            return False
        prefix = self.path.rstrip("/")
        return target.path == prefix or target.path.startswith(prefix + "/") or not prefix


def _host_matches(pattern: str, host: str) -> bool:
    if "*" not in pattern:
        return pattern == host
    first, _, rest = pattern.partition(".")
    label, _, host_rest = host.partition(".")
    return host_rest == rest and fnmatch.fnmatchcase(label, first)


def parse_url(url: str) -> Target:
    """The target of an ``http(s)`` URL; :class:`DestinationError` when it has none, or
    carries credentials (``E_URL_HAS_CREDENTIALS``)."""
    if not isinstance(url, str) or not url or len(url) > 2048 or any(c.isspace() for c in url):
        raise DestinationError("not a URL")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise DestinationError(f"not a valid URL ({exc})") from None
    if parts.scheme not in _PORTS:
        raise DestinationError(f"scheme {parts.scheme or '(none)'!r} is not http or https")
    if parts.username is not None or parts.password is not None:
        raise DestinationError(
            "a URL may not carry a user name or password (they end up in logs and traces); "
            "name a declared secret instead",
            code=ErrorCode.E_URL_HAS_CREDENTIALS,
        )
    host = (parts.hostname or "").lower()
    if not host:
        raise DestinationError("the URL has no host")
    return Target(parts.scheme, host, port or _PORTS[parts.scheme], normal_path(parts.path))


def normal_path(path: str) -> str:
    """``path`` as a server resolves it (RFC 3986's dot-segment removal), after reading the
    spellings some servers decode first as what they stand for: ``%2e`` is ``.``, ``%2f``,
    ``%5c`` and ``\\`` are ``/``, a segment's ``;parameters`` are dropped. A prefix is compared with this, never with the raw text,
    so ``/v1/../../x`` or ``/v1/%2e%2e/x`` is not under ``/v1``."""
    text = _SLASHES.sub("/", _DOTS.sub(".", path))
    out: list[str] = []
    segments = text.split("/")[1:] if text.startswith("/") else text.split("/")
    for segment in segments:
        name = segment.split(";", 1)[0]  # ``..;x`` is ``..`` to servers that drop parameters
        if name == "..":
            if out:
                out.pop()
        elif name != ".":
            out.append(segment)
    trailing = segments[-1].split(";", 1)[0] in (".", "..")
    return "/" + "/".join(out) + ("/" if trailing and out else "")


def parse_destination(entry: str) -> Destination:
    """One allow-list entry; ``ValueError`` naming it when it is not one."""
    text = entry.strip() if isinstance(entry, str) else ""
    if not text or len(text) > 2048:
        raise ValueError(f"{entry!r} is not a destination")
    if text == LOOPBACK:
        return Destination("loopback", text)
    if "://" in text:
        try:
            target = parse_url(text)
        except DestinationError as exc:
            raise ValueError(f"{entry!r}: {exc}") from None
        _check_host(target.host, entry)
        explicit_port = urlsplit(text).port
        return Destination(
            "prefix",
            text,
            host=target.host,
            port=explicit_port or target.port,
            scheme=target.scheme,
            path=target.path,
        )
    if "/" in text:
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise ValueError(
                f"{entry!r}: a network must be an IP range such as 10.0.0.0/8"
            ) from None
        return Destination("network", text, network=network)
    try:
        parts = urlsplit("//" + text)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{entry!r}: {exc}") from None
    host = (parts.hostname or "").lower()
    if parts.path or parts.username is not None or not host:
        raise ValueError(f"{entry!r} is not a host, host:port, network or URL prefix")
    _check_host(host, entry)
    return Destination("host", text, host=host, port=port)


def _check_host(host: str, entry: str) -> None:
    try:
        ipaddress.ip_address(host)
        return
    except ValueError:
        pass
    labels = host.split(".")
    if any(not _HOST_LABEL.match(label) for label in labels) or any(
        "*" in label for label in labels[1:]
    ):
        raise ValueError(f"{entry!r}: {host!r} is not a host name (a glob only in its first label)")


def allowed(target: Target, entries: tuple[Destination, ...]) -> bool:
    """Whether any entry lets ``target`` through."""
    return any(entry.matches(target) for entry in entries)
