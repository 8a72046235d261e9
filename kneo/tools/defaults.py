"""The tool registry the CLI, service and controller use by default.

``create_tool_registry(include_examples=True)`` registers the offline example tools from
:mod:`kneo.tools.examples` with truthful capabilities (``web_search`` and ``webpage_reader``
claim ``network`` even though the stand-ins never touch it), so governance diagnostics
behave exactly as they would with the real tools.
"""

from __future__ import annotations

from kneo.tools import examples
from kneo.tools.registry import ToolDefinition, ToolHandler, ToolRegistry

_TEXT = {"type": "string", "minLength": 1}

EXAMPLE_TOOLS: tuple[tuple[ToolDefinition, ToolHandler], ...] = (
    (
        ToolDefinition(
            name="web_search",
            description="Search the web and return the top results with their URLs.",
            parameters={
                "type": "object",
                "properties": {
                    "query": _TEXT,
                    "max_results": {"type": "integer", "minimum": 1, "maximum": 5},
                },
                "required": ["query"],
                "additionalProperties": False,
            },
            capabilities=frozenset({"network"}),
            implementation="kneo.tools.examples:web_search",
        ),
        examples.web_search,
    ),
    (
        ToolDefinition(
            name="webpage_reader",
            description="Fetch a web page and return its readable text.",
            parameters={
                "type": "object",
                "properties": {"url": {"type": "string", "pattern": "^https?://"}},
                "required": ["url"],
                "additionalProperties": False,
            },
            capabilities=frozenset({"network"}),
            implementation="kneo.tools.examples:webpage_reader",
        ),
        examples.webpage_reader,
    ),
    (
        ToolDefinition(
            name="compress_history",
            description="Compress a long conversation history into a short text.",
            parameters={
                "type": "object",
                "properties": {"text": {"type": "string"}},
                "required": ["text"],
                "additionalProperties": False,
            },
            implementation="kneo.tools.examples:compress_history",
        ),
        examples.compress_history,
    ),
    (
        ToolDefinition(
            name="summarize",
            description="Summarize a text in at most max_words words.",
            parameters={
                "type": "object",
                "properties": {
                    "text": {"type": "string"},
                    "max_words": {"type": "integer", "minimum": 1},
                },
                "required": ["text"],
                "additionalProperties": False,
            },
            implementation="kneo.tools.examples:summarize",
        ),
        examples.summarize,
    ),
    (
        ToolDefinition(
            name="publish_report",
            description="Publish a finished report and return its URL.",
            parameters={
                "type": "object",
                "properties": {"report": _TEXT},
                "required": ["report"],
                "additionalProperties": False,
            },
            requires_approval=True,
            implementation="kneo.tools.examples:publish_report",
        ),
        examples.publish_report,
    ),
    (
        ToolDefinition(
            name="word_count",
            description="Count the words in a text.",
            parameters={
                "type": "object",
                "properties": {"text": {"type": "string"}},
                "required": ["text"],
                "additionalProperties": False,
            },
            implementation="kneo.tools.examples:word_count",
        ),
        examples.word_count,
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
    parameters={
        "type": "object",
        "properties": {"question": {"type": "string", "minLength": 1}},
        "required": ["question"],
        "additionalProperties": False,
    },
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
