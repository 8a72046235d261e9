"""The project's tool registry: the example tools plus ``lookup_user`` (a directory lookup).

``.kneo/config.yaml`` names it (``tool_registry: examples.project_tools:create_registry``),
so ``kneo spec lint examples/lookup_agent.yaml``, ``kneo run`` and the service know
``lookup_user`` without a flag. It is deliberately not one of the files the custom-tool
tutorial (docs/tutorial_custom_tool.md) asks you to create: editing or replacing
``examples/my_tools.py`` can never break the project's other commands.
"""

from __future__ import annotations

from typing import Any

from kneo import ToolDefinition, ToolRegistry, create_tool_registry

USERS = {
    "u-001": "alice@example.com",
    "u-002": "bob@example.com",
    "u-003": "carol@example.com",
}


def lookup_user(args: dict[str, Any]) -> str:
    """Return the email for a user id, or 'unknown' if not present."""
    user_id = args.get("user_id")
    if not user_id:
        return "unknown: user_id is required"
    return USERS.get(user_id, f"unknown: {user_id}")


LOOKUP_USER = ToolDefinition(
    name="lookup_user",
    description="Return the email for a user id.",
    parameters={
        "type": "object",
        "properties": {"user_id": {"type": "string"}},
        "required": ["user_id"],
    },
    implementation="examples.project_tools:lookup_user",
)


def create_registry() -> ToolRegistry:
    """The example tools plus ``lookup_user``."""
    registry = create_tool_registry(include_examples=True)
    registry.register(LOOKUP_USER, lookup_user)
    return registry
