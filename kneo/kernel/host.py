"""The secret and process doors: a variable's value from the settings' snapshot, a process
started without a shell. Each asks the grant it is handed before it acts: a run's
(:class:`~kneo.policy.access.HostAccess`, what the project declared), or :class:`Operator`
(what the operator configured: the Git binary, the tool bridge's own interpreter, Kneo's
own variables)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from kneo.errors import AccessDenied, ErrorCode


@runtime_checkable
class SecretGrant(Protocol):
    """What the secret door asks: the variable a secret ``reference`` names."""

    def secret(self, reference: str, *, path: str) -> str:
        """The variable; raise :class:`~kneo.errors.AccessDenied`
        (``E_SECRET_UNDECLARED``) when ``reference`` is not granted."""
        ...


class ProcessGrant(Protocol):
    """What the process door asks before it starts ``argv``."""

    def process(self, argv: Sequence[str], *, path: str) -> None:
        """Raise :class:`~kneo.errors.AccessDenied` (``E_PROCESS_UNDECLARED``) when
        ``argv`` may not be started."""
        ...


@dataclass(frozen=True)
class Operator:
    """The grant of what the operator configured, never a spec: the variables Kneo's own
    settings name (``KNEO_*``, the variables they point at) and the programs Kneo runs
    itself (``git``, its own interpreter). Anything else is refused."""

    variables: frozenset[str] = frozenset()
    programs: frozenset[str] = frozenset()

    @classmethod
    def of(cls, *, variables: Iterable[str] = (), programs: Iterable[str] = ()) -> Operator:
        return cls(frozenset(v for v in variables if v), frozenset(p for p in programs if p))

    def secret(self, reference: str, *, path: str) -> str:
        if reference in self.variables:
            return reference
        raise AccessDenied(
            f"{path}: {reference!r} is not a variable the operator configured",
            code=ErrorCode.E_SECRET_UNDECLARED,
            path=path,
        )

    def process(self, argv: Sequence[str], *, path: str) -> None:
        if argv and argv[0] in self.programs:
            return
        program = argv[0] if argv else ""
        raise AccessDenied(
            f"{path}: {program!r} is not a program the operator configured",
            code=ErrorCode.E_PROCESS_UNDECLARED,
            path=path,
        )


def secret(
    grant: SecretGrant, environ: Mapping[str, str], reference: str, *, path: str
) -> str | None:
    """The value of the variable the secret ``reference`` names, once ``grant`` allows it,
    from the snapshot ``environ`` (:attr:`~kneo.settings.Settings.environ`); ``None`` when
    unset or empty. The value is never logged."""
    variable = grant.secret(reference, path=path)
    return environ.get(variable) or None


def run_process(
    grant: ProcessGrant, argv: Sequence[str], *, path: str, **options: Any
) -> subprocess.CompletedProcess[Any]:
    """:func:`start_process` to its end (``subprocess.run``'s options)."""
    return subprocess.run(_allowed(grant, argv, path, options), **options)


def start_process(
    grant: ProcessGrant, argv: Sequence[str], *, path: str, **options: Any
) -> subprocess.Popen[Any]:
    """Start ``argv`` once ``grant`` allows it; never through a shell."""
    return subprocess.Popen(_allowed(grant, argv, path, options), **options)


def stdio_server(
    grant: ProcessGrant, argv: Sequence[str], *, env: Mapping[str, str] | None, path: str
) -> AbstractAsyncContextManager[Any]:
    """The MCP SDK's stdio transport to the server ``argv`` starts, once ``grant`` allows
    it (:meth:`~kneo.policy.access.HostAccess.process`: a declared server's command, or a
    signed bundle's own where the environment allows it). The server's stderr goes
    nowhere: its log lines are not the run's output."""
    return _stdio(_allowed(grant, argv, path, {}), dict(env) if env else None)


@asynccontextmanager
async def _stdio(argv: list[str], env: dict[str, str] | None) -> AsyncIterator[Any]:
    from mcp import StdioServerParameters
    from mcp.client.stdio import stdio_client

    params = StdioServerParameters(command=argv[0], args=argv[1:], env=env)
    with open(os.devnull, "w", encoding="utf-8") as devnull:
        async with stdio_client(params, errlog=devnull) as streams:
            yield streams


def _allowed(
    grant: ProcessGrant, argv: Sequence[str], path: str, options: Mapping[str, Any]
) -> list[str]:
    if options.get("shell"):
        raise ValueError("the kernel never starts a process through a shell")
    args = [str(part) for part in argv]
    grant.process(args, path=path)
    return args
