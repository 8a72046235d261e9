"""``ToolDefinition`` and ``ToolRegistry``: what a tool is and where its handler lives."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kneo.errors import ErrorCode, KneoError, ValidationFailed
from kneo.kernel import resolve_callable

ToolHandler = Callable[[dict[str, Any]], str]

#: Capabilities a tool may claim; the spec's ``policies.tool`` gates them at call time.
CAPABILITIES = frozenset({"network", "filesystem_read", "filesystem_write", "shell"})


@dataclass(frozen=True)
class ToolDefinition:
    """A tool as the model sees it (name, description, JSON Schema ``parameters``) plus the
    capabilities it needs, whether a person must approve each call, and the dotted
    ``implementation`` it comes from (checked by the unsafe-import diagnostics), or the MCP
    server that serves it."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )
    capabilities: frozenset[str] = frozenset()
    requires_approval: bool = False
    implementation: str | None = None
    #: The ``mcp.imports`` server that runs this tool (``None``: a local handler).
    mcp_server: str | None = None
    #: Run by the caller: the run pauses with the call until the caller provides the result,
    #: which must match ``result_schema`` when one is given.
    external: bool = False
    result_schema: Mapping[str, Any] | None = None
    #: An agent of the spec answers the call (``components.tools.<name>.agent``).
    agent: str | None = None

    def __post_init__(self) -> None:
        unknown = set(self.capabilities) - CAPABILITIES
        if unknown:
            raise ValueError(f"tool {self.name!r}: unknown capabilities {sorted(unknown)}")

    def openai_schema(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": dict(self.parameters),
            },
        }


class ToolRegistry:
    """Registered tools by name. Registration order is kept (it is the listing order)."""

    def __init__(self) -> None:
        self._definitions: dict[str, ToolDefinition] = {}
        self._handlers: dict[str, ToolHandler] = {}
        self._validators: dict[str, Any] = {}

    def register(self, definition: ToolDefinition, handler: ToolHandler | None = None) -> None:
        if handler is None and definition.implementation:
            handler = _import_handler(definition.implementation)
        if handler is None:
            raise ValueError(f"Tool '{definition.name}' has no implementation")
        self._definitions[definition.name] = definition
        self._handlers[definition.name] = handler
        self._validators.pop(definition.name, None)

    def __contains__(self, name: object) -> bool:
        return name in self._definitions

    def __len__(self) -> int:
        return len(self._definitions)

    def names(self) -> list[str]:
        return list(self._definitions)

    def definitions(self, names: Iterable[str] | None = None) -> list[ToolDefinition]:
        if names is None:
            return list(self._definitions.values())
        return [self.get(n) for n in names]

    def get(self, name: str) -> ToolDefinition:
        try:
            return self._definitions[name]
        except KeyError:
            raise KneoError(
                f"Tool '{name}' is not registered.", code=ErrorCode.E_UNKNOWN_TOOL
            ) from None

    def handler(self, name: str) -> ToolHandler:
        self.get(name)
        return self._handlers[name]

    def validate_arguments(self, name: str, arguments: Mapping[str, Any]) -> None:
        """Check ``arguments`` against the tool's JSON Schema before its handler may run."""
        validator = self._validators.get(name)
        if validator is None:
            from jsonschema import Draft202012Validator

            validator = Draft202012Validator(dict(self.get(name).parameters))
            self._validators[name] = validator
        errors = sorted(validator.iter_errors(dict(arguments)), key=lambda e: list(e.path))
        if errors:
            first = errors[0]
            where = ".".join(str(p) for p in first.path) or "<arguments>"
            raise ValidationFailed(
                f"Tool '{name}' arguments invalid at {where}: {first.message}",
                code=ErrorCode.tool_arguments_invalid,
                path=where,
            )


def _import_handler(ref: str) -> ToolHandler:
    """A tool's ``implementation``, through the trust kernel (a function defined in its
    module, nothing reached through another object)."""
    try:
        return resolve_callable(ref, path="implementation")
    except KneoError as exc:
        if exc.code != ErrorCode.E_UNKNOWN_FUNCTION_REF:
            raise
        raise KneoError(
            f"Tool implementation '{ref}' cannot be imported: {exc.message}",
            code=ErrorCode.E_UNKNOWN_REF,
        ) from exc
