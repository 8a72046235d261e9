"""Tools an agent may call: definitions with a JSON Schema and a handler registry.

Bottom layer (imported by ``kneo.spec`` for validation and by ``kneo.engine`` for execution);
it must not import anything from Kneo above ``kneo.errors``.
"""

from kneo.tools.registry import ToolDefinition, ToolHandler, ToolRegistry

__all__ = ["ToolDefinition", "ToolHandler", "ToolRegistry"]
