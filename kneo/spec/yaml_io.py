"""Reading YAML with errors people can act on: file, line and field path.

Parsing uses libyaml when present (fast path); the slower node walk that finds the line of a
field path only runs when there is an error to report.

:mod:`kneo.spec.suggest` is imported where a validation error is explained (+59 ms with
pydantic): reading YAML needs neither.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from kneo import documents
from kneo.errors import ErrorCode, SpecError
from kneo.spec.migrate_kneo_serv import is_kneo_serv_field

if TYPE_CHECKING:
    from pydantic import BaseModel, ValidationError
    from pydantic_core import ErrorDetails

    _Model = TypeVar("_Model", bound=BaseModel)

# PyYAML is imported on first use: processes that never parse YAML (``kneo human resume``,
# the service's run path) do not pay its ~15 ms import. Reading and parsing go through
# :mod:`kneo.documents`, the one bounded way in for untrusted documents.

Loc = tuple[str | int, ...]


def read_yaml_mapping(path: Path, *, what: str = "spec") -> tuple[dict[str, Any], str]:
    """Read a file that must hold one YAML mapping; returns the data and the raw text."""
    text = documents.read_text(path, what=f"{what} file")
    data = documents.parse_yaml(text, source=str(path))
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError(
            f"{path}:1: a {what} must be a YAML mapping, got {type(data).__name__}",
            code=ErrorCode.E_SCHEMA,
            file=str(path),
            line=1,
            path="<root>",
        )
    return data, text


def format_path(loc: Iterable[str | int]) -> str:
    """``("agent", "tools", 0)`` -> ``agent.tools[0]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "<root>"


def clean_loc(loc: Sequence[str | int], data: Any) -> Loc:
    """Drop pydantic's union-branch tags from ``loc`` by walking the real data.

    Keyed graph nodes (``nodes: {a: {...}}``) are lists to pydantic but mappings in the file;
    an index into such a mapping is turned back into its key.
    """
    out: list[str | int] = []
    current = data
    for part in loc:
        if isinstance(current, dict):
            if isinstance(part, str) and part in current:
                out.append(part)
                current = current[part]
            elif isinstance(part, int) and 0 <= part < len(current):
                key = list(current)[part]
                out.append(key)
                current = current[key]
            elif isinstance(part, str) and not _looks_like_tag(part):
                out.append(part)  # a missing or extra key: keep it, stop walking
                current = None
        elif isinstance(current, list):
            if isinstance(part, int) and 0 <= part < len(current):
                out.append(part)
                current = current[part]
        elif current is None and isinstance(part, str | int) and not _looks_like_tag(str(part)):
            out.append(part)
    return tuple(out)


def _looks_like_tag(part: str) -> bool:
    """Pydantic names union branches like ``list[str]``, ``literal['all','*']``, ``function-after[...]``."""
    return any(ch in part for ch in "[]'(") or part in {"str", "int", "float", "bool", "dict"}


def line_of(text: str, loc: Loc) -> int | None:
    """1-based line of the node at ``loc`` (or its nearest existing parent) in ``text``."""
    import yaml

    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    best = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = None
            for key_node, value_node in node.value:
                if getattr(key_node, "value", None) == part:
                    match = (key_node, value_node)
                    break
            if match is None:
                return best
            best = match[0].start_mark.line + 1
            node = match[1]
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            node = node.value[part]
            best = node.start_mark.line + 1
        else:
            return best
    return best


def validate_mapping(
    model: type[_Model],
    data: dict[str, Any],
    *,
    file: Path,
    text: str,
    kind: str,
    context: dict[str, Any] | None = None,
) -> _Model:
    """``data``, read from ``file`` (whose ``text`` locates lines), as ``model`` (with the
    validation ``context``); any bad field is one ``E_SCHEMA`` error naming file:line and the
    field (see below)."""
    from pydantic import ValidationError

    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        raise validation_error_to_spec_error(
            exc, data, file=str(file), texts=[(str(file), text)], kind=kind, model=model
        ) from None


def validation_error_to_spec_error(
    exc: ValidationError,
    data: Any,
    *,
    file: str | None,
    texts: Sequence[tuple[str, str]] = (),
    kind: str = "spec",
    model: type[BaseModel] | None = None,
) -> SpecError:
    """One ``E_SCHEMA`` error naming file:line, the first bad field path and what is wrong.

    All problems are attached as ``diagnostics`` so ``--json`` and HTTP callers see each one.
    ``texts`` are ``(file, text)`` pairs searched in order for the line (overlay before base).
    An unknown field or enum value says which one was probably meant (``model``: the model
    validated, to look the known field names up).
    """
    diagnostics: list[dict[str, Any]] = []
    seen: set[str] = set()
    first: tuple[str, str, str | None, int | None] | None = None
    for err in exc.errors(include_url=False):
        loc = clean_loc(err["loc"], data)
        path = format_path(loc)
        message = _message(err)
        hint = _hint(err, loc, path, model, kind)
        if hint:
            message = f"{message}; {hint}"
        key = f"{path}:{message}"
        if key in seen or (
            path in {d["path"] for d in diagnostics} and err["type"] != "extra_forbidden"
        ):
            continue
        seen.add(key)
        where_file, line = _located(loc, file, texts)
        diagnostics.append(
            {
                "code": ErrorCode.E_SCHEMA,
                "severity": "error",
                "path": path,
                "message": message,
                "suggestion": hint or _suggestion(err),
                "file": where_file,
                "line": line,
            }
        )
        if first is None:
            first = (path, message, where_file, line)
    if first is None:  # pragma: no cover - pydantic always reports at least one error
        first = ("<root>", str(exc), file, None)
    path, message, where_file, line = first
    prefix = (
        f"{where_file}:{line}: "
        if where_file and line
        else (f"{where_file}: " if where_file else "")
    )
    more = f" (+{len(diagnostics) - 1} more)" if len(diagnostics) > 1 else ""
    return SpecError(
        f"{prefix}{path}: {message}{more}",
        code=ErrorCode.E_SCHEMA,
        file=where_file,
        line=line,
        path=path,
        diagnostics=diagnostics,
        kind=kind,
    )


def _hint(
    err: ErrorDetails, loc: Loc, path: str, model: type[BaseModel] | None, kind: str
) -> str | None:
    """What the author probably meant: the known field or value nearest to a wrong one, or,
    for a field of the original platform's specs, how to convert the file."""
    if kind == "spec" and is_kneo_serv_field(path):
        return (
            "a field of the original platform's (kneo-serv) specs: "
            "`kneo spec migrate --from kneo-serv FILE` converts the file and reports what "
            "changed"
        )
    return _did_you_mean(err, loc, model)


def _located(
    loc: Loc, file: str | None, texts: Sequence[tuple[str, str]]
) -> tuple[str | None, int | None]:
    """The file and line of ``loc``: the first text holding all of it, else the first that
    holds a part of it (``file`` and no line when none does)."""
    where_file, line = file, None
    for source, text in texts:
        found = line_of(text, loc)
        if found is not None and _has_exact(text, loc):
            return source, found
        if line is None:
            where_file, line = source, found
    return where_file, line


def _has_exact(text: str, loc: Loc) -> bool:
    """Whether every part of ``loc`` exists in ``text`` (so its line is exact, not a parent's)."""
    import yaml

    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return False
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if getattr(k, "value", None) == part), None)
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            node = node.value[part]
        else:
            return False
        if node is None:
            return False
    return True


def _message(err: Any) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown field"
    if err["type"] == "missing":
        return "required field is missing"
    msg = str(err["msg"])
    return msg[len("Value error, ") :] if msg.startswith("Value error, ") else msg


def _did_you_mean(err: Any, loc: Sequence[Any], model: type[BaseModel] | None) -> str | None:
    from kneo.spec.suggest import enum_value_hint, unknown_field_hint

    if err["type"] == "extra_forbidden":
        return unknown_field_hint(model, loc)
    if err["type"] in ("literal_error", "enum"):
        field = next((p for p in reversed(loc) if isinstance(p, str)), None)
        return enum_value_hint(field, err.get("input"), str(err.get("ctx", {}).get("expected")))
    return None


def _suggestion(err: Any) -> str | None:
    if err["type"] == "extra_forbidden":
        return (
            "remove the field or fix its spelling; see spec.schema.json (in .kneo/schemas/ "
            "of a `kneo init` project; /schemas/ on the service)"
        )
    if err["type"] == "missing":
        return "add the field"
    return None


def dump_yaml(data: object) -> str:
    """Stable, human-friendly YAML (keys in document order, block style)."""
    import yaml

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(
        data, Dumper=dumper, sort_keys=False, default_flow_style=False, allow_unicode=True
    )
