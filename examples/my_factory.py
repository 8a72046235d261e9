"""Custom-tool tutorial, step 2: a platform whose tool registry includes ``lookup_user``."""

from __future__ import annotations

from examples.my_tools import lookup_user
from kneo.platform import PlatformManager, create_persistence_stores
from kneo.runtimes import create_runtime_registry
from kneo.spec.compiler import SpecCompiler
from kneo.tools import ToolDefinition
from kneo.tools.defaults import create_tool_registry


def build_platform() -> PlatformManager:
    runtime_registry = create_runtime_registry()
    tool_registry = create_tool_registry(include_examples=True)
    tool_registry.register(
        ToolDefinition(
            name="lookup_user",
            description="Return the email for a user id.",
            parameters={
                "type": "object",
                "properties": {"user_id": {"type": "string"}},
                "required": ["user_id"],
            },
            implementation="examples.my_tools:lookup_user",
        ),
        lookup_user,
    )
    compiler = SpecCompiler(runtime_registry=runtime_registry, tool_registry=tool_registry)
    run_state, continuation = create_persistence_stores()
    return PlatformManager(
        compiler=compiler,
        run_state_store=run_state,
        continuation_store=continuation,
    )
