"""Every error code Kneo's CLI and HTTP API can emit, read from the source (``ast``, no imports).

The codes are where the code puts them, so the list cannot drift from it. Each is spelled
``ErrorCode.<code>`` (the rows of ``kneo/errors.py``); a code still written as a bare string
is read too, and its place kept in ``literals`` so ``tests/core/test_error_codes.py`` can
refuse it:

* a ``code = "..."`` class attribute (``kneo/errors.py`` and every ``KneoError`` subclass);
* a ``code="..."`` keyword at a raise site, and any string assigned to a variable ``code``;
* ``CODES`` in ``kneo/spec/diagnostics.py`` (spec diagnostics, with severity and meaning) and
  the values of any other ``*_CODES`` table;
* ``{"code": ...}`` run-error records and ``{"error": ..., "message": ...}`` envelopes built
  by hand, and the first argument of the controller's ``Problem(code, message)`` (see
  :data:`POSITIONAL_CODE`).

A code's HTTP status comes from the class that raises it (``http_status``, inherited), or the
status passed beside a hand-built envelope. Codes built at run time from a pattern
(``http_<status>``, ``promotion_<why>``) cannot be seen here; the page documents them by hand.
Used by ``generate_troubleshooting.py`` and ``tests/core/test_troubleshooting.py``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

#: Strings that sit where codes sit but are not error codes a user can meet.
NOT_CODES = {
    "source": "a status condition's provenance record (kneo/controller/apply.py)",
    "error": "the console's fallback page label for an unexpected HTTP status",
}


#: ``*_CODES`` tables whose integer keys are the HTTP status Kneo answers with (elsewhere,
#: such keys are an upstream's status, e.g. a provider's, translated into a code).
STATUS_TABLES = frozenset({"_HTTP_CODES"})

#: Records whose first positional argument is a code, and the status it is answered with: the
#: controller's ``Problem`` (why a bundle file was rejected: ``kneo controller plan|status``,
#: the registry's conditions) and a signature verification's ``_Rejection`` (raised as a
#: ``BundleError`` when no signature counts).
POSITIONAL_CODE: dict[str, int | None] = {"Problem": None, "_Rejection": 400}
#: Helpers that raise the error class named here with the ``code=`` they are given.
RAISED_BY: dict[str, str] = {"parse_kinded": "BundleError"}


@dataclass
class ErrorCode:
    """One code: the HTTP statuses it is answered with (none: it only ever ends a run or a
    CLI command), and, for spec diagnostics, its severity and one-line meaning."""

    code: str
    statuses: set[int] = field(default_factory=set)
    severity: str | None = None
    meaning: str | None = None
    files: set[str] = field(default_factory=set)
    #: where the code is written as a bare string rather than ``ErrorCode.<code>``
    literals: list[str] = field(default_factory=list)
    #: the ``KneoError`` subclasses that raise it (or define it as their ``code``)
    classes: set[str] = field(default_factory=set)


@dataclass
class _Class:
    bases: list[str]
    status: int | str | None  # an int, the name of a class to copy it from, or unset


def _modules(root: Path) -> Iterator[tuple[str, ast.Module]]:
    for path in sorted((root / "kneo").rglob("*.py")):
        yield str(path.relative_to(root)), ast.parse(path.read_text(), str(path))


def _code_attribute(node: ast.AST) -> str | None:
    """``x`` of ``ErrorCode.x`` (the table's spelling of a code), else ``None``."""
    if (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "ErrorCode"
    ):
        return node.attr
    return None


#: A code read from the source, and where it is written as a bare string (``None``: it is
#: spelled ``ErrorCode.<code>``).
Found = tuple[str, str | None]


def _constants(trees: list[tuple[str, ast.Module]]) -> dict[str, Found]:
    """Module-level ``NAME = "text"`` (or ``NAME = ErrorCode.x``) constants of every module
    (codes are named this way)."""
    found: dict[str, Found] = {}
    for where, tree in trees:
        for node in tree.body:
            if not (
                isinstance(node, ast.Assign)
                and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
            ):
                continue
            if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                found[node.targets[0].id] = (node.value.value, _at(where, node.value))
            elif (code := _code_attribute(node.value)) is not None:
                found[node.targets[0].id] = (code, None)
    return found


def _at(where: str, node: ast.AST) -> str:
    return f"{where}:{getattr(node, 'lineno', 0)}"


def _classes(trees: list[tuple[str, ast.Module]]) -> dict[str, _Class]:
    classes: dict[str, _Class] = {}
    for _, tree in trees:
        for node in ast.walk(tree):
            if not isinstance(node, ast.ClassDef):
                continue
            status: int | str | None = None
            for stmt in node.body:
                value = _assigned(stmt, "http_status")
                if isinstance(value, ast.Constant) and isinstance(value.value, int):
                    status = value.value
                elif isinstance(value, ast.Attribute) and isinstance(value.value, ast.Name):
                    status = value.value.id  # ``http_status = PayloadTooLarge.http_status``
            bases = [_name(b) for b in node.bases]
            classes[node.name] = _Class([b for b in bases if b], status)
    return classes


def _status_of(
    name: str, classes: dict[str, _Class], seen: frozenset[str] = frozenset()
) -> int | None:
    """The ``http_status`` class ``name`` has or inherits (``None``: not a KneoError)."""
    cls = classes.get(name)
    if cls is None or name in seen:
        return None
    if isinstance(cls.status, int):
        return cls.status
    for ref in ([cls.status] if isinstance(cls.status, str) else []) + cls.bases:
        found = _status_of(ref, classes, seen | {name})
        if found is not None:
            return found
    return None


def _mentions(node: ast.expr, name: str) -> bool:
    """Whether the variable ``name`` is read anywhere in ``node`` (``code or "default"``)."""
    return any(isinstance(n, ast.Name) and n.id == name for n in ast.walk(node))


def _name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _assigned(stmt: ast.stmt, target: str) -> ast.expr | None:
    """The value ``stmt`` assigns to the name ``target``, if it does."""
    if isinstance(stmt, ast.Assign):
        names = [t.id for t in stmt.targets if isinstance(t, ast.Name)]
        return stmt.value if target in names else None
    if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
        return stmt.value if stmt.target.id == target else None
    return None


def _strings(node: ast.AST, constants: dict[str, Found], where: str) -> list[Found]:
    """The literal strings, ``ErrorCode.<code>`` and named string constants anywhere in
    ``node``."""
    found: list[Found] = []
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            found.append((sub.value, _at(where, sub)))
        elif isinstance(sub, ast.Name) and sub.id in constants:
            found.append(constants[sub.id])
        elif (code := _code_attribute(sub)) is not None:
            found.append((code, None))
    return found


def _values(node: ast.expr, constants: dict[str, Found], where: str) -> list[Found]:
    """The code(s) an expression evaluates to: a literal, ``ErrorCode.<code>``, a named
    constant, or either branch of a conditional expression (``a if c else b``, ``a or b``)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [(node.value, _at(where, node))]
    if isinstance(node, ast.Name) and node.id in constants:
        return [constants[node.id]]
    if (code := _code_attribute(node)) is not None:
        return [(code, None)]
    if isinstance(node, ast.IfExp):
        return _values(node.body, constants, where) + _values(node.orelse, constants, where)
    if isinstance(node, ast.BoolOp):
        return [found for value in node.values for found in _values(value, constants, where)]
    return []


class _Collector:
    def __init__(self, root: Path) -> None:
        trees = list(_modules(root))
        self.trees = trees
        self.constants = _constants(trees)
        self.classes = _classes(trees)
        self.codes: dict[str, ErrorCode] = {}

    def add(
        self, codes: list[Found], where: str, status: int | None = None, by: str | None = None
    ) -> None:
        for code, literal in codes:
            if code in NOT_CODES:
                continue
            entry = self.codes.setdefault(code, ErrorCode(code))
            entry.files.add(where)
            if by is not None and status is not None:
                entry.classes.add(by)
            if status is not None:
                entry.statuses.add(status)
            if literal is not None and literal not in entry.literals:
                entry.literals.append(literal)

    def run(self) -> dict[str, ErrorCode]:
        for where, tree in self.trees:
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef):
                    self._class(node, where)
                elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    self._function(node, where)
                elif isinstance(node, ast.Call):
                    self._call(node, where)
                elif isinstance(node, ast.Dict):
                    self._record(node, where, None)
                elif isinstance(node, ast.Assign | ast.AnnAssign):
                    self._table(node, where)
                elif (code := _code_attribute(node)) is not None and where != "kneo/errors.py":
                    self.add([(code, None)], where)  # named anywhere else: in use
        return self.codes

    def _class(self, node: ast.ClassDef, where: str) -> None:
        for stmt in node.body:
            value = _assigned(stmt, "code")
            if value is not None:
                status = _status_of(node.name, self.classes)
                self.add(_values(value, self.constants, where), where, status, node.name)

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef, where: str) -> None:
        """``code = ...`` in a function: every string it may hold, with the status of the
        error the function raises with ``code=code``."""
        raised = [
            (_status_of(_name(call.func) or "", self.classes), _name(call.func))
            for call in ast.walk(node)
            if isinstance(call, ast.Call)
            and any(k.arg == "code" and _mentions(k.value, "code") for k in call.keywords)
        ]
        for stmt in ast.walk(node):
            value = _assigned(stmt, "code") if isinstance(stmt, ast.stmt) else None
            if value is None:
                continue
            for status, by in raised or [(None, None)]:
                self.add(_strings(value, self.constants, where), where, status, by)

    def _call(self, node: ast.Call, where: str) -> None:
        raiser = RAISED_BY.get(_name(node.func) or "", _name(node.func))
        status = _status_of(raiser or "", self.classes)
        for keyword in node.keywords:
            if keyword.arg == "code":
                self.add(_values(keyword.value, self.constants, where), where, status, raiser)
        record = _name(node.func)
        if record in POSITIONAL_CODE and node.args:
            by = "BundleError" if record == "_Rejection" else None  # raised as one
            self.add(
                _values(node.args[0], self.constants, where), where, POSITIONAL_CODE[record], by
            )
        given = [
            a.value
            for a in node.args
            if isinstance(a, ast.Constant) and isinstance(a.value, int) and 100 <= a.value < 600
        ]
        for arg in node.args:
            if isinstance(arg, ast.Dict):
                self._record(arg, where, given[0] if given else None)

    def _record(self, node: ast.Dict, where: str, status: int | None) -> None:
        keys = [k.value for k in node.keys if isinstance(k, ast.Constant)]
        for key, value in zip(node.keys, node.values, strict=True):
            if not isinstance(key, ast.Constant):
                continue
            if key.value == "code" or (key.value == "error" and "message" in keys):
                self.add(_values(value, self.constants, where), where, status)

    def _table(self, node: ast.Assign | ast.AnnAssign, where: str) -> None:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        for target in targets:
            if not isinstance(target, ast.Name) or node.value is None:
                continue
            if target.id.endswith("_CODES") and isinstance(node.value, ast.Dict):
                for key, value in zip(node.value.keys, node.value.values, strict=True):
                    status = (  # only the service's own table maps its statuses to codes
                        key.value
                        if target.id in STATUS_TABLES
                        and isinstance(key, ast.Constant)
                        and isinstance(key.value, int)
                        else None
                    )
                    self.add(_values(value, self.constants, where), where, status)


def _diagnostics(root: Path) -> dict[str, tuple[str, str]]:
    """``CODES`` of ``kneo/spec/diagnostics.py``: code -> (severity, meaning), a literal."""
    tree = ast.parse((root / "kneo" / "spec" / "diagnostics.py").read_text())
    for node in tree.body:
        value = _assigned(node, "CODES")
        if value is not None:
            catalogue: dict[str, tuple[str, str]] = ast.literal_eval(value)
            return catalogue
    raise LookupError("kneo/spec/diagnostics.py has no CODES")


def collect(root: Path = REPO) -> dict[str, ErrorCode]:
    """Every code, sorted: the spec diagnostics' catalogue merged with what the code raises."""
    codes = _Collector(root).run()
    for code, (severity, meaning) in _diagnostics(root).items():
        entry = codes.setdefault(code, ErrorCode(code))
        entry.severity, entry.meaning = severity, meaning
        entry.files.add("kneo/spec/diagnostics.py")
    return dict(sorted(codes.items(), key=lambda item: item[0].lower()))
