"""The tool registry the CLI, service and controller use by default.

``create_tool_registry(include_examples=True)`` registers the offline example tools from
:mod:`kneo.tools.examples` with truthful capabilities (``web_search`` and ``webpage_reader``
claim ``network`` even though the stand-ins never touch it), so governance diagnostics
behave exactly as they would with the real tools.
"""

from __future__ import annotations

from typing import Any

from kneo.tools import examples
from kneo.tools.registry import ToolDefinition, ToolHandler, ToolRegistry

_TEXT = {"type": "string", "minLength": 1}


def _object(properties: dict[str, Any], *required: str) -> dict[str, Any]:
    """The JSON Schema of an object with exactly these ``properties``."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


def _example(
    handler: ToolHandler,
    description: str,
    parameters: dict[str, Any],
    *,
    capabilities: frozenset[str] = frozenset(),
    requires_approval: bool = False,
) -> tuple[ToolDefinition, ToolHandler]:
    """An example tool of :mod:`kneo.tools.examples`, named after its handler."""
    name = handler.__name__
    definition = ToolDefinition(
        name=name,
        description=description,
        parameters=parameters,
        capabilities=capabilities,
        requires_approval=requires_approval,
        implementation=f"kneo.tools.examples:{name}",
    )
    return definition, handler


EXAMPLE_TOOLS: tuple[tuple[ToolDefinition, ToolHandler], ...] = (
    _example(
        examples.web_search,
        "Search the web and return the top results with their URLs.",
        _object(
            {"query": _TEXT, "max_results": {"type": "integer", "minimum": 1, "maximum": 5}},
            "query",
        ),
        capabilities=frozenset({"network"}),
    ),
    _example(
        examples.webpage_reader,
        "Fetch a web page and return its readable text.",
        _object({"url": {"type": "string", "pattern": "^https?://"}}, "url"),
        capabilities=frozenset({"network"}),
    ),
    _example(
        examples.compress_history,
        "Compress a long conversation history into a short text.",
        _object({"text": {"type": "string"}}, "text"),
    ),
    _example(
        examples.summarize,
        "Summarize a text in at most max_words words.",
        _object(
            {"text": {"type": "string"}, "max_words": {"type": "integer", "minimum": 1}}, "text"
        ),
    ),
    _example(
        examples.publish_report,
        "Publish a finished report and return its URL.",
        _object({"report": _TEXT}, "report"),
        requires_approval=True,
    ),
    _example(
        examples.word_count,
        "Count the words in a text.",
        _object({"text": {"type": "string"}}, "text"),
    ),
)


def _ask_question(args: dict[str, object]) -> str:
    """Never called: the engine answers ``ask_question`` with a person's recorded answer."""
    raise RuntimeError("ask_question is answered by a person through the engine, not run")


#: The built-in ``ask_question`` tool: the agent asks a person; the run pauses durably and the
#: answer comes back as the tool result (see ``docs/human_in_the_loop.md``).
ASK_QUESTION = ToolDefinition(
    name="ask_question",
    description="Ask a person a question and wait for the answer (the run pauses until then).",
    parameters=_object({"question": _TEXT}, "question"),
)


def register_builtin_tools(registry: ToolRegistry) -> ToolRegistry:
    """Add the built-in tools (``ask_question``) unless the registry already has them."""
    if ASK_QUESTION.name not in registry:
        registry.register(ASK_QUESTION, _ask_question)
    return registry


def create_tool_registry(include_examples: bool = True) -> ToolRegistry:
    """A fresh registry (callers may register more); by default with the example tools and
    the built-in ``ask_question`` (:func:`register_builtin_tools` adds it to any registry)."""
    registry = ToolRegistry()
    if include_examples:
        register_builtin_tools(registry)
        for definition, handler in EXAMPLE_TOOLS:
            registry.register(definition, handler)
    return registry
