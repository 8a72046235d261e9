"""Example tools: offline, deterministic, truthful capabilities, clean imports."""

from __future__ import annotations

import pytest

from kneo.errors import ValidationFailed
from kneo.spec.refs import import_roots, inspect_ref
from kneo.tools.defaults import EXAMPLE_TOOLS, create_tool_registry

from .conftest import REPO


def test_registry_contents_and_capabilities() -> None:
    registry = create_tool_registry()
    assert {
        "web_search",
        "webpage_reader",
        "compress_history",
        "summarize",
        "publish_report",
    } <= set(registry.names())
    assert registry.get("web_search").capabilities == frozenset({"network"})
    assert registry.get("webpage_reader").capabilities == frozenset({"network"})
    assert registry.get("summarize").capabilities == frozenset()
    assert registry.get("publish_report").requires_approval
    assert len(create_tool_registry(include_examples=False)) == 0


def test_handlers_are_deterministic() -> None:
    registry = create_tool_registry()
    search = registry.handler("web_search")
    first = search({"query": "Nvidia AI business"})
    assert first == search({"query": "Nvidia AI business"})
    assert first.count("https://example.com/") == 3
    assert "example.com" in registry.handler("webpage_reader")({"url": "https://example.com/a/b"})
    assert (
        registry.handler("summarize")({"text": "one two three", "max_words": 2})
        == "Summary: one two ..."
    )
    assert registry.handler("publish_report")({"report": "x"}).startswith("Published. https://")


def test_arguments_are_checked_against_the_schema() -> None:
    registry = create_tool_registry()
    registry.validate_arguments("web_search", {"query": "x"})
    with pytest.raises(ValidationFailed):
        registry.validate_arguments("web_search", {"q": "x"})


@pytest.mark.parametrize("definition", [d for d, _ in EXAMPLE_TOOLS], ids=lambda d: d.name)
def test_example_tool_modules_are_safe(definition: object) -> None:
    info = inspect_ref(definition.implementation, import_roots(REPO))  # type: ignore[attr-defined]
    assert info.defined and info.unsafe_imports == ()


@pytest.mark.parametrize(
    "ref",
    [
        "examples.app_functions:summarize",
        "examples.human_functions:draft_report",
        "examples.human_functions:publish_report",
    ],
)
def test_example_functions_are_safe_and_run(ref: str) -> None:
    from kneo.spec.refs import load_callable

    info = inspect_ref(ref, import_roots(REPO / "examples"))
    assert info.defined and info.unsafe_imports == ()
    fn = load_callable(ref, import_roots(REPO / "examples"))
    assert isinstance(fn("Launch the thing. It is good. Very good. Done."), str)
