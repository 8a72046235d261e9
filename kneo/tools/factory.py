"""The project's tool registry from a ``module:factory`` reference.

One loader for every place that needs the project's tools: ``kneo spec validate|lint|compile|
policy-report`` and ``kneo spec bundle sign`` (``--tools`` or the project config's
``tool_registry``), ``kneo run`` and the service's default platform. Unlike the spec
checks, which only *locate* user modules, this imports and calls the factory: naming it is
the user's explicit choice to run their registration code.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from kneo.errors import ConfigError, ErrorCode, KneoError
from kneo.kernel import resolve_attribute
from kneo.tools.defaults import create_tool_registry, register_builtin_tools
from kneo.tools.registry import ToolRegistry


def load_tool_registry(ref: str | None, *, import_roots: Sequence[Path] = ()) -> ToolRegistry:
    """``ref`` (``module:attr``) names a zero-argument callable returning a
    :class:`ToolRegistry`, or a registry itself; ``None`` gives the example tools. The
    built-in ``ask_question`` is added either way. ``import_roots`` (the project root) are
    appended to ``sys.path`` so a project module such as ``examples.project_tools`` imports."""
    if ref is None:
        return create_tool_registry(include_examples=True)
    try:
        target = resolve_attribute(ref, what="tool registry factory", roots=import_roots)
    except KneoError as exc:
        raise ConfigError(exc.message, code=ErrorCode.E_TOOL_FACTORY, ref=ref) from None
    registry = target
    if not isinstance(registry, ToolRegistry):
        if not callable(registry):
            raise ConfigError(
                f"tool registry factory {ref!r} is neither a ToolRegistry nor callable",
                code=ErrorCode.E_TOOL_FACTORY,
                ref=ref,
            )
        try:
            registry = registry()
        except Exception as exc:  # user code: report it, never a traceback
            raise ConfigError(
                f"tool registry factory {ref!r} failed: {type(exc).__name__}: {exc}",
                code=ErrorCode.E_TOOL_FACTORY,
                ref=ref,
            ) from None
    if not isinstance(registry, ToolRegistry):
        raise ConfigError(
            f"tool registry factory {ref!r} returned {type(registry).__name__}, not a ToolRegistry",
            code=ErrorCode.E_TOOL_FACTORY,
            ref=ref,
        )
    return register_builtin_tools(registry)
