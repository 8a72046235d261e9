"""YAML documents: a pass over libyaml's event stream (a flat sequence: start and end of
collections, scalars, aliases) counts depth, nodes with every alias expanded, aliases and
plain numbers' digits before the recursive composer sees the text; then every mapping is read
one way (a key given twice is ``E_DUPLICATE_KEY``; a merge is the one way to override).
"""

from __future__ import annotations

import functools
import math
import os
from typing import Any

from kneo.documents.limits import (
    LIMITS,
    DocumentError,
    DocumentLimits,
    duplicate_key,
    not_finite,
    over_limit,
    read_text,
)
from kneo.errors import ErrorCode, SpecError


def _yaml_loader() -> Any:
    """libyaml's loader when present (an order of magnitude faster), else pure Python."""
    import yaml

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_VALUE_TAG = "tag:yaml.org,2002:value"


class _DuplicateKey(Exception):
    """Raised while constructing: ``mapping`` names one key twice (first, then again)."""

    def __init__(self, key: Any, mapping: Any, first: Any, again: Any) -> None:
        super().__init__(key)
        self.key, self.mapping, self.first, self.again = key, mapping, first, again


@functools.cache
def _one_reading_loader() -> Any:
    """:func:`_yaml_loader` whose constructor refuses a mapping that names a key twice.

    The check runs in ``flatten_mapping``, which every mapping passes through before it is
    built (and a merged one before it is merged), on the keys as written: once a mapping is
    flattened its merged keys sit beside its own, which is how a merge overrides."""
    base = _yaml_loader()

    class OneReadingLoader(base):  # type: ignore[misc, valid-type]
        def __init__(self, stream: str) -> None:
            super().__init__(stream)
            self._checked: set[int] = set()

        def flatten_mapping(self, node: Any) -> None:
            if id(node) not in self._checked:
                self._checked.add(id(node))
                self._refuse_duplicates(node)
            super().flatten_mapping(node)

        def _refuse_duplicates(self, node: Any) -> None:
            seen: dict[Any, Any] = {}
            for key_node, _value in node.value:
                tag = key_node.tag
                if tag == _STR_TAG:
                    key: Any = key_node.value
                elif tag == _MERGE_TAG:
                    key = "<<"
                elif tag == _VALUE_TAG:
                    key = "="
                else:  # ``16`` and ``0x10``, ``true`` and ``yes``: one key as read
                    key = self.construct_object(key_node, deep=True)
                    try:
                        hash(key)
                    except TypeError:
                        continue  # an unhashable key: the constructor's own error
                first = seen.get(key)
                if first is not None:
                    raise _DuplicateKey(key, node, first, key_node)
                seen[key] = key_node

    return OneReadingLoader


def _yaml_path(root: Any, target: Any) -> str:
    """``a.b[2]`` of the node ``target`` under ``root`` (a flat walk; error path only)."""
    import yaml

    stack: list[tuple[Any, tuple[str | int, ...]]] = [(root, ())]
    seen: set[int] = set()
    while stack:
        node, path = stack.pop()
        if node is target:
            return _format_path(path)
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                stack.append((value_node, (*path, str(getattr(key_node, "value", "?")))))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, (*path, i)) for i, item in enumerate(node.value))
    return "<root>"


def _format_path(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "<root>"


def _load_yaml(text: str, source: str) -> Any:
    """The one document of ``text``, every mapping read one way (``E_DUPLICATE_KEY``)."""
    loader = _one_reading_loader()(text)
    node = None
    try:
        node = loader.get_single_node()
        return None if node is None else loader.construct_document(node)
    except _DuplicateKey as dup:
        mapping_path = _yaml_path(node, dup.mapping)
        key_text = str(dup.key)
        path = key_text if mapping_path == "<root>" else f"{mapping_path}.{key_text}"
        first, again = dup.first.start_mark, dup.again.start_mark
        raise duplicate_key(
            source,
            dup.key,
            path,
            (first.line + 1, first.column + 1),
            (again.line + 1, again.column + 1),
        ) from None
    finally:
        loader.dispose()


#: libyaml's message for its own nesting bound
_LIBYAML_TOO_DEEP = "exceeded maximum nesting depth"
_NUMBER_CHARS = frozenset("0123456789+-._:eExXoObBabcdefABCDEF")
_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"


def _number_tag(event: Any) -> str | None:
    """The int or float tag YAML gives a scalar event (plain, or tagged ``!!int "..."``)."""
    value: str = event.value
    if event.tag in (_INT_TAG, _FLOAT_TAG):
        return str(event.tag)
    if event.style or event.tag is not None or not value:
        return None
    numeric = (value[0].isdigit() or value[0] in "+-.") and _NUMBER_CHARS.issuperset(value)
    if not numeric and value.lower().lstrip("+-") not in (".inf", ".nan"):
        return None
    import yaml

    resolve: Any = yaml.resolver.Resolver().resolve
    tag = resolve(yaml.ScalarNode, value, (True, False))
    return str(tag) if tag in (_INT_TAG, _FLOAT_TAG) else None


def _number_problem(event: Any, digits: int) -> str | None:
    """Why a numeric scalar cannot be read safely: more than ``digits`` digits however they
    are written (``1_000``, ``0xFF``, ``1:30:00``: grouping characters bypass a count of
    digits in a row), or a float that is not finite (``1.0e999``, ``.inf``), which JSON has
    no value for."""
    tag = _number_tag(event)
    if tag is None:
        return None
    value: str = event.value
    if sum(c.isalnum() for c in value) > digits:
        return "too_long"
    if tag == _FLOAT_TAG:
        try:
            number = float(value.replace("_", "").replace(".inf", "inf").replace(".Inf", "inf"))
        except ValueError:
            return "not_finite" if "inf" in value.lower() or "nan" in value.lower() else None
        if not math.isfinite(number):
            return "not_finite"
    return None


def check_yaml(text: str, *, source: str, limits: DocumentLimits = LIMITS) -> None:
    """Refuse YAML over any limit by walking libyaml's event stream (never recursive).

    An alias counts as the nodes and levels it stands for, so an alias bomb is refused
    before anything expands it; an alias of a node that contains it (a recursive document)
    is refused. Syntax errors are left to the parser proper, which reports their line."""
    import yaml

    if len(text) > limits.max_bytes:
        raise over_limit(limits, "max_bytes", source, f"{len(text)} characters")
    walk = _YamlWalk(source, limits)
    try:
        event: Any
        for event in yaml.parse(text, Loader=_yaml_loader()):
            kind = type(event)
            if kind is yaml.ScalarEvent:
                walk.scalar(event)
            elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
                walk.open(event)
            elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
                walk.close()
            elif kind is yaml.AliasEvent:
                walk.alias(event)
    except yaml.MarkedYAMLError as exc:
        if exc.problem == _LIBYAML_TOO_DEEP:
            # libyaml's own bound (1,000 levels since PyYAML 6.0.4's bundled libyaml), far
            # above ``max_depth``: its scanner reads a line ahead and meets it first
            mark = exc.problem_mark
            line = mark.line + 1 if mark is not None else None
            raise over_limit(limits, "max_depth", source, "nested too deeply", line) from None
        return  # a syntax error: parse_yaml reports it with file and line
    except yaml.YAMLError:
        return


class _YamlWalk:
    """The running counts of :func:`check_yaml`: nodes, aliases, open collections, and what
    each anchor stands for."""

    def __init__(self, source: str, limits: DocumentLimits) -> None:
        self.source = source
        self.limits = limits
        self.nodes = 0
        self.aliases = 0
        #: one frame per open collection: [anchor, nodes before it, its level, deepest inside]
        self.open_: list[list[Any]] = []
        self.anchored: dict[str, tuple[int, int]] = {}  # anchor -> (nodes, levels)

    def add(self, event: Any, count: int, levels: int) -> None:
        """``count`` nodes spanning ``levels`` levels below the innermost open collection."""
        line = event.start_mark.line + 1
        self.nodes += count
        if self.nodes > self.limits.max_nodes:
            raise over_limit(
                self.limits, "max_nodes", self.source, "too many nodes (aliases expanded)", line
            )
        deepest = len(self.open_) + levels
        if deepest > self.limits.max_depth:
            raise over_limit(self.limits, "max_depth", self.source, "nested too deeply", line)
        if self.open_ and deepest > self.open_[-1][3]:
            self.open_[-1][3] = deepest

    def scalar(self, event: Any) -> None:
        problem = _number_problem(event, self.limits.max_number_digits)
        line = event.start_mark.line + 1
        if problem == "too_long":
            raise over_limit(
                self.limits, "max_number_digits", self.source, "a number has too many digits", line
            )
        if problem == "not_finite":
            raise not_finite(self.source, event.value, line)
        self.add(event, 1, 0)
        if event.anchor:
            self.anchored[event.anchor] = (1, 0)

    def open(self, event: Any) -> None:
        self.add(event, 1, 1)
        level = len(self.open_) + 1
        self.open_.append([event.anchor, self.nodes - 1, level, level])

    def close(self) -> None:
        anchor, before, level, deepest = self.open_.pop()
        if anchor:
            self.anchored[anchor] = (self.nodes - before, deepest - level + 1)
        if self.open_ and deepest > self.open_[-1][3]:
            self.open_[-1][3] = deepest

    def alias(self, event: Any) -> None:
        self.aliases += 1
        line = event.start_mark.line + 1
        if self.aliases > self.limits.max_aliases:
            raise over_limit(self.limits, "max_aliases", self.source, "too many aliases", line)
        if event.anchor in self.anchored:
            self.add(event, *self.anchored[event.anchor])
        elif any(frame[0] == event.anchor for frame in self.open_):
            raise DocumentError(
                f"{self.source}:{line}: alias *{event.anchor} refers to a node containing it",
                code=ErrorCode.E_DOCUMENT_TOO_COMPLEX,
                file=self.source,
                line=line,
            )
        # else: an undefined alias, which the parser proper reports with its line


def parse_yaml(text: str, *, source: str, limits: DocumentLimits = LIMITS) -> Any:
    """Parse one YAML document within ``limits``; a syntax error is ``E_YAML`` with
    ``source:line``."""
    import yaml

    check_yaml(text, source=source, limits=limits)
    try:
        return _load_yaml(text, source)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        column = mark.column + 1 if mark is not None else None
        problem = exc.problem or exc.context or "invalid YAML"
        where = f"{source}:{line}" if line else source
        raise SpecError(
            f"{where}: invalid YAML: {problem}",
            code=ErrorCode.E_YAML,
            file=source,
            line=line,
            column=column,
        ) from None
    except yaml.YAMLError as exc:
        raise SpecError(
            f"{source}: invalid YAML: {exc}", code=ErrorCode.E_YAML, file=source
        ) from None


def load_yaml_file(
    path: str | os.PathLike[str], *, what: str = "file", limits: DocumentLimits = LIMITS
) -> Any:
    """Read and parse a YAML file within ``limits``."""
    return parse_yaml(read_text(path, what=what, limits=limits), source=str(path), limits=limits)
