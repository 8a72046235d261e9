"""The trust kernel: the one module through which a spec, a suite, a bundle or a caller
reaches the host.

A spec is code, and so are an eval suite, a signed bundle and an inline spec sent to the API
by a key that may start runs. Each reaches the host only through a door of this module, and
each door asks the grant it is handed (:class:`~kneo.policy.access.HostAccess`, what the
project declared, narrowed by the environment) before it acts — Deno's permissions container,
one descriptor per door:

====================  ===================================  ===================================
door                  here                                 refused as
====================  ===================================  ===================================
a callable            :func:`resolve_callable` (a spec's   ``E_FUNCTION_NOT_ALLOWED``: the
                      ``module:function``),                module is not the project's, or
                      :func:`resolve_attribute` (an        the name is not a function
                      operator's ``module:name``)          *defined in* it (no traversal)
a secret              :func:`secret`                       ``E_SECRET_UNDECLARED`` (asked of
                                                           the grant first)
a network destination :func:`http_client`,                 ``E_DESTINATION_NOT_ALLOWED``,
                      :func:`async_http_client`,           ``E_SECRET_NOT_BOUND`` (the grant),
                      :func:`smtp_connection`              at every hop, redirects included;
                                                           a destination a *caller* names (an
                                                           A2A push URL) only on the operator's
                                                           :class:`AllowList`
a process             :func:`start_process`                ``E_PROCESS_UNDECLARED`` (the grant)
a project file        :func:`read_project_file` (a         ``E_FILE_NOT_ALLOWED``: not inside
                      project skill's                      the project root (absolute, ``..``,
                      ``instructions_file``)               or a symlink out of it)
an identity claim     :func:`kneo.people.proven_claim`,    no ``user:`` match: the person is
                      :func:`kneo.people.names_of`         named by ``sub`` and their groups
====================  ===================================  ===================================

An environment's name is a door too (it picks the rules and the grant): the one answer to
which environments a project declares and which one a run is in is
:func:`kneo.spec.project.judge_environment`, in the contract layer because the spec loader
asks it before reading an overlay; admission asks it for every run
(``RunAdmission.environment``), refusing ``E_UNKNOWN_ENV``.

``tests/core/test_trust_kernel.py`` walks the package's syntax trees and fails on an import by
name (``importlib``, ``__import__``), a process start, an HTTP client built, or an environment
read of a non-``KNEO_*`` name anywhere else, but for the few exceptions it lists with a reason.

Pure but for the doors themselves: importing a module the grant allows, reading the
environment snapshot :class:`~kneo.settings.Settings` took, starting a process, building an
HTTP client. It imports no HTTP library until a client is asked for.
"""

from __future__ import annotations

import importlib
import inspect
import os
import stat
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from kneo.documents import DocumentError
from kneo.errors import AccessDenied, ConfigError, ErrorCode, KneoError

if TYPE_CHECKING:
    import smtplib

    import httpx2

__all__ = [
    "UNSAFE_MODULES",
    "AllowList",
    "CallableGrant",
    "NetworkGrant",
    "Origins",
    "async_http_client",
    "http_client",
    "read_project_file",
    "ref_of",
    "resolve_attribute",
    "resolve_callable",
    "run_process",
    "secret",
    "smtp_connection",
    "split_ref",
    "start_process",
]

#: Modules whose functions are the host's primitives: never a spec's function, whatever a
#: grant lists.
UNSAFE_MODULES = frozenset(
    {"os", "posix", "nt", "subprocess", "shutil", "socket", "importlib", "builtins", "sys"}
)


class CallableGrant(Protocol):
    """What :func:`resolve_callable` asks: may a spec name ``ref``'s module here?"""

    def function(self, ref: str, *, path: str, roots: Sequence[Path]) -> None:
        """Raise :class:`~kneo.errors.AccessDenied` when the module is not allowed."""
        ...


def split_ref(ref: str) -> tuple[str, str] | None:
    """``(module, attribute)`` of ``module:attribute`` (dotted identifiers), else ``None``."""
    module, sep, attr = ref.partition(":")
    if not sep or not module or not attr or not all(p.isidentifier() for p in module.split(".")):
        return None
    if not all(p.isidentifier() for p in attr.split(".")):
        return None
    return module, attr


def _refuse(ref: str, why: str, *, path: str) -> AccessDenied:
    return AccessDenied(
        f"{path}: {ref!r} {why}; a function ref names a function defined in its module (or a "
        "method of a class defined there), never a name reached through another object",
        code=ErrorCode.E_FUNCTION_NOT_ALLOWED,
        path=path,
        ref=ref,
        suggestion="define the function in the project's module and name it there",
    )


def _import(module_name: str, ref: str, roots: Iterable[Path]) -> Any:
    """The module, imported (its body runs: callers asked the grant first)."""
    for root in roots:
        text = str(root)
        if text not in sys.path:
            sys.path.append(text)
    try:
        return importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or the module's own error
        raise KneoError(
            f"function ref {ref!r} cannot be imported: {type(exc).__name__}: {exc}",
            code=ErrorCode.E_UNKNOWN_FUNCTION_REF,
            ref=ref,
        ) from exc


def _member(module: Any, module_name: str, attr: str, ref: str, *, path: str) -> Any:
    """The function ``attr`` names in ``module``'s own namespace: a top-level function, or a
    method of a top-level class (two parts). Never ``getattr`` on the module (a module's
    ``__getattr__`` could answer anything) and never a third part."""
    parts = attr.split(".")
    if len(parts) > 2:
        raise _refuse(ref, "reaches through more than a class", path=path)
    namespace: Mapping[str, Any] = vars(module)
    if parts[0] not in namespace:
        raise KneoError(
            f"function ref {ref!r} cannot be imported: {parts[0]!r} is not defined in "
            f"module {module_name!r}",
            code=ErrorCode.E_UNKNOWN_FUNCTION_REF,
            ref=ref,
        )
    target = namespace[parts[0]]
    if len(parts) == 1:
        return target
    if not (
        isinstance(target, type)
        and target.__module__ == module_name
        and target.__qualname__ == parts[0]
    ):
        raise _refuse(ref, f"names {parts[0]!r}, which is not a class defined there", path=path)
    raw = vars(target).get(parts[1])
    if isinstance(raw, staticmethod | classmethod):
        return getattr(target, parts[1])
    if raw is None:
        raise _refuse(ref, f"names a method {target.__qualname__} does not define", path=path)
    return raw


def resolve_callable(
    ref: str,
    *,
    grant: CallableGrant | None = None,
    roots: Sequence[Path] = (),
    path: str = "ref",
) -> Callable[..., Any]:
    """The function ``ref`` names, once ``grant`` allows its module (no grant: code the
    caller itself registered, such as an SDK workflow in-process) and the object is a plain
    Python function *defined in* that module (or a decorator's wrapper around one):
    ``__module__`` is the module, ``__qualname__`` is the ref's name. Builtins, classes,
    partials, lambdas, aliases, re-exports and whatever an attribute chain reaches are
    :data:`~kneo.errors.ErrorCode.E_FUNCTION_NOT_ALLOWED`."""
    parsed = split_ref(ref)
    if parsed is None:
        raise KneoError(
            f"function ref {ref!r} must look like 'module:function'",
            code=ErrorCode.E_UNKNOWN_FUNCTION_REF,
            ref=ref,
        )
    module_name, attr = parsed
    if module_name.split(".")[0] in UNSAFE_MODULES:
        raise _refuse(ref, f"names the host primitive module {module_name!r}", path=path)
    if grant is not None:
        grant.function(ref, path=path, roots=roots)
    module = _import(module_name, ref, roots)
    target = _member(module, module_name, attr, ref, path=path)
    # a classmethod bound to its class; a decorator's wrapper (``functools.wraps``,
    # ``lru_cache``) around the function the module defined under that name
    function = inspect.unwrap(getattr(target, "__func__", target))
    if not callable(target) or not inspect.isfunction(function):
        kind = type(function).__name__
        raise _refuse(ref, f"is a {kind}, not a function", path=path)
    if function.__module__ != module_name or function.__qualname__ != attr:
        where = f"{function.__module__}:{function.__qualname__}"
        raise _refuse(ref, f"is {where}, defined elsewhere or under another name", path=path)
    return target  # type: ignore[no-any-return]


def ref_of(function: Callable[..., Any]) -> str | None:
    """``module:qualname`` of ``function`` when :func:`resolve_callable` gives back this very
    object (another process can then find it by that ref), else ``None``: lambdas, nested
    functions, ``__main__``, wrappers that are not the registered object."""
    module = getattr(function, "__module__", None)
    qualname = getattr(function, "__qualname__", None)
    if not module or not qualname or module == "__main__" or "<" in qualname:
        return None
    ref = f"{module}:{qualname}"
    try:
        found = resolve_callable(ref)
    except KneoError:
        return None
    return ref if found is function or getattr(found, "__func__", None) is function else None


def resolve_attribute(ref: str, *, what: str, roots: Sequence[Path] = ()) -> Any:
    """A top-level name of a module, for references the *operator* configures (a tool
    registry factory, a platform factory): one name in the module's own namespace, never an
    attribute chain. Raises :class:`~kneo.errors.KneoError` (``E_UNKNOWN_REF``)."""
    parsed = split_ref(ref)
    if parsed is None or "." in parsed[1]:
        raise KneoError(
            f"{what} {ref!r} must look like module:name", code=ErrorCode.E_UNKNOWN_REF, ref=ref
        )
    module = _import(parsed[0], ref, roots)
    namespace: Mapping[str, Any] = vars(module)
    if parsed[1] not in namespace:
        raise KneoError(
            f"{what} {ref!r} cannot be imported: {parsed[1]!r} is not defined in module "
            f"{parsed[0]!r}",
            code=ErrorCode.E_UNKNOWN_REF,
            ref=ref,
        )
    return namespace[parsed[1]]


def secret(environ: Mapping[str, str], variable: str) -> str | None:
    """The value of the environment variable ``variable`` from the snapshot ``environ``
    (:attr:`~kneo.settings.Settings.environ`), ``None`` when unset or empty. Callers asked
    the grant which variable a spec's reference names; the value is never logged."""
    value = environ.get(variable)
    return value or None


def run_process(argv: Sequence[str], **options: Any) -> subprocess.CompletedProcess[Any]:
    """:func:`start_process` to its end (``subprocess.run``'s options)."""
    if options.get("shell"):
        raise ValueError("the kernel never starts a process through a shell")
    return subprocess.run(list(argv), **options)


def start_process(argv: Sequence[str], **options: Any) -> subprocess.Popen[Any]:
    """Start ``argv`` (callers asked the grant: a declared server, the tool bridge's own
    interpreter). Never through a shell."""
    if options.get("shell"):
        raise ValueError("the kernel never starts a process through a shell")
    return subprocess.Popen(list(argv), **options)


# ---------------------------------------------------------------------- the file door


def read_project_file(root: Path, relative: str, *, field: str, max_chars: int) -> str:
    """The text of the file ``relative`` names inside the project ``root``: a path relative
    to the root, without ``..``, whose real path (symlinks followed) is still inside it, a
    regular file of UTF-8 text of at most ``max_chars`` characters. Anything else is refused
    naming ``field``: ``E_FILE_NOT_ALLOWED`` (outside the root), ``E_FILE_NOT_FOUND``,
    ``E_NOT_A_FILE`` (a directory, device or pipe), ``E_SCHEMA`` (too long, not UTF-8)."""
    if os.path.isabs(relative) or ".." in Path(relative).parts or "\\" in relative:
        raise AccessDenied(
            f"{field}: {relative!r} must be a path inside the project, relative to its root "
            "(no absolute path, no '..')",
            code=ErrorCode.E_FILE_NOT_ALLOWED,
            field=field,
        )
    real_root = os.path.realpath(root)
    real = os.path.realpath(os.path.join(real_root, relative))
    if os.path.commonpath([real_root, real]) != real_root:
        raise AccessDenied(
            f"{field}: {relative!r} leads out of the project (a symlink to a file outside it)",
            code=ErrorCode.E_FILE_NOT_ALLOWED,
            field=field,
        )
    try:
        st = os.stat(real)
    except OSError:
        raise ConfigError(
            f"{field}: {relative!r} does not exist in the project",
            code=ErrorCode.E_FILE_NOT_FOUND,
            field=field,
        ) from None
    if not stat.S_ISREG(st.st_mode):
        raise DocumentError(
            f"{field}: {relative!r} is not a regular file",
            code=ErrorCode.E_NOT_A_FILE,
            field=field,
        )
    with open(real, "rb") as handle:  # a bounded read: never more than the limit allows
        raw = handle.read(max_chars * 4 + 1)
    text = None
    if len(raw) <= max_chars * 4:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError(
                f"{field}: {relative!r} is not UTF-8 text", code=ErrorCode.E_SCHEMA, field=field
            ) from None
    if text is None or len(text) > max_chars:
        raise ConfigError(
            f"{field}: {relative!r} is over {max_chars:,} characters",
            code=ErrorCode.E_SCHEMA,
            field=field,
        )
    return text


# ---------------------------------------------------------------------- the network door


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
