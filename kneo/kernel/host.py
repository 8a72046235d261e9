"""The secret and process doors: a variable's value from the settings' snapshot, a process
started without a shell."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from typing import Any


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
