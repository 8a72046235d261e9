# examples/my_factory.py
# ruff: noqa: I001 -- the imports stay in the order the tutorial prints them
"""Custom-tool tutorial, step 2: a platform whose tool registry includes ``lookup_user``.

The code below is docs/tutorial_custom_tool.md's, as printed; a test runs it. The ``kneo``
CLI and the service use the project config's ``tool_registry``
(``examples.project_tools:create_registry``) instead, which opens no store.
"""

from kneo.platform import PlatformManager
from kneo.spec import SpecCompiler
from kneo.service.factory import (
    create_runtime_registry,
    create_tool_registry,
    create_persistence_stores,
)
from kneo.tools import ToolDefinition

from examples.my_tools import lookup_user


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
        ),
        lookup_user,
    )

    compiler = SpecCompiler(
        runtime_registry=runtime_registry,
        tool_registry=tool_registry,
    )
    run_state, continuation = create_persistence_stores()
    manager = PlatformManager(
        compiler=compiler,
        run_state_store=run_state,
        continuation_store=continuation,
    )
    manager.start_worker()
    return manager
