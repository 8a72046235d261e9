"""The callable door: a ``module:function`` ref names a function *defined in* its module.

Generated refs walk every dotted path hypothesis can build from a module's namespace (the
standard-library modules the examples import, re-exports, a module ``__getattr__``,
decorators, partials, classes, lambdas, aliases) and assert that the kernel resolves none that
escapes its module, and that the static check (which runs no code) admits none either.
"""

from __future__ import annotations

import ast
import inspect
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kneo.errors import KneoError
from kneo.kernel import UNSAFE_MODULES, ref_of, resolve_attribute, resolve_callable
from kneo.spec.refs import inspect_ref, load_callable
from tests.cli_zygote import KNEO

REPO = Path(__file__).resolve().parents[2]

#: A project module with one of every shape a ref might try.
SHAPES = """
import functools
import json
import logging
import os
from functools import partial

from {other} import exported

__all__ = ["plain"]


def plain(text):
    return text


async def coroutine(text):
    return text


def _wraps(fn):
    @functools.wraps(fn)
    def wrapper(*args):
        return fn(*args)
    return wrapper


@_wraps
def decorated(text):
    return text


@functools.lru_cache(maxsize=None)
def cached(text):
    return text


class Klass:
    attribute = os

    def method(self, text):
        return text

    @staticmethod
    def static(text):
        return text

    @classmethod
    def klass(cls, text):
        return text


def outer():
    def inner(text):
        return text
    return inner


alias = plain
lam = lambda text: text  # noqa: E731
half = partial(plain)
nested = outer()
system = os.system
loads = json.loads
instance = Klass()
log = logging.getLogger("x")
"""
OTHER = "def exported(text):\n    return text\n"
LAZY = "def __getattr__(name):\n    import os\n    return os.system\n"
#: What a ref into SHAPES may name: the functions defined there, and nothing else.
DEFINED = {
    "plain",
    "coroutine",
    "decorated",
    "cached",
    "_wraps",
    "outer",
    "Klass.method",
    "Klass.static",
    "Klass.klass",
}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    root = tmp_path_factory.mktemp("callable_door")
    tag = f"door_{id(root) & 0xFFFFFF:x}"
    shapes, other, lazy = f"{tag}_shapes", f"{tag}_other", f"{tag}_lazy"
    (root / f"{other}.py").write_text(OTHER)
    (root / f"{lazy}.py").write_text(LAZY)
    (root / f"{shapes}.py").write_text(textwrap.dedent(SHAPES).format(other=other))
    sys.path.insert(0, str(root))
    try:
        yield shapes, lazy, root
    finally:
        sys.path.remove(str(root))


def _escapes(ref: str, module: str) -> bool:
    """Whether ``ref`` names anything but a function defined in ``module``."""
    return ref.partition(":")[2] not in DEFINED or ref.partition(":")[0] != module


def _walk(data: st.DataObject, start: Any, first: list[str]) -> str:
    """A dotted path: a name of ``first``, then attributes of whatever each step reaches."""
    parts = [data.draw(st.sampled_from(first))]
    target = getattr(start, parts[0], None)
    for _ in range(data.draw(st.integers(0, 3))):
        names = sorted(n for n in dir(target) if n.isidentifier())
        if not names:
            break
        parts.append(data.draw(st.sampled_from(names)))
        target = getattr(target, parts[-1], None)
    return ".".join(parts)


def _resolves(ref: str, roots: tuple[Path, ...] = ()) -> Any:
    try:
        return load_callable(ref, roots) if roots else resolve_callable(ref)
    except KneoError:
        return None


@settings(max_examples=400, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_no_generated_ref_escapes_its_module(data: st.DataObject, project: Any) -> None:
    """Whatever path a ref takes through a module's namespace, the kernel gives back only a
    function defined there, under its own name, and the static check agrees."""
    shapes, _lazy, root = project
    module = sys.modules.get(shapes) or __import__(shapes)
    path = _walk(data, module, sorted(n for n in vars(module) if n.isidentifier()))
    ref = f"{shapes}:{path}"
    found = _resolves(ref)
    if _escapes(ref, shapes):
        assert found is None, f"{ref} resolved to {found!r}"
    else:
        assert found is not None
        function = inspect.unwrap(getattr(found, "__func__", found))
        assert inspect.isfunction(function)
        assert (function.__module__, function.__qualname__) == (shapes, path)
    info = inspect_ref(ref, [root])
    statically_admitted = info.defined and info.not_a_function is None
    assert statically_admitted == (path in DEFINED), (ref, info)


@pytest.mark.parametrize("path", sorted(DEFINED))
def test_every_defined_function_resolves(project: Any, path: str) -> None:
    shapes, _lazy, root = project
    assert _resolves(f"{shapes}:{path}") is not None
    assert inspect_ref(f"{shapes}:{path}", [root]).not_a_function is None


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("alias", "under another name"),
        ("lam", "under another name"),
        ("half", "partial"),
        ("nested", "under another name"),
        ("system", "builtin_function_or_method"),
        ("loads", "defined elsewhere"),
        ("exported", "defined elsewhere"),
        ("Klass", "type"),
        ("instance", "Klass"),
        ("os.system", "which is not a class defined there"),
        ("logging.os.system", "more than a class"),
        ("Klass.attribute", "is a module, not a function"),
        ("Klass.missing", "a method Klass does not define"),
        ("json.loads", "not a class defined there"),
    ],
)
def test_what_a_ref_may_not_reach_is_named_in_the_refusal(
    project: Any, path: str, why: str
) -> None:
    shapes, _lazy, _root = project
    with pytest.raises(KneoError) as caught:
        resolve_callable(f"{shapes}:{path}")
    assert caught.value.code in ("E_FUNCTION_NOT_ALLOWED", "E_UNKNOWN_FUNCTION_REF")
    assert why in caught.value.message


def test_a_module_getattr_answers_nothing(project: Any) -> None:
    """A module's ``__getattr__`` could hand out anything: the kernel reads the module's own
    namespace only."""
    _shapes, lazy, _root = project
    with pytest.raises(KneoError) as caught:
        resolve_callable(f"{lazy}:system")
    assert caught.value.code == "E_UNKNOWN_FUNCTION_REF"
    with pytest.raises(KneoError):
        resolve_attribute(f"{lazy}:system", what="factory")


@pytest.mark.parametrize("module", sorted(UNSAFE_MODULES))
def test_host_primitive_modules_are_never_a_functions_home(module: str) -> None:
    with pytest.raises(KneoError) as caught:
        resolve_callable(f"{module}:system")
    assert caught.value.code == "E_FUNCTION_NOT_ALLOWED"


def _example_modules() -> list[tuple[str, list[str]]]:
    """Each example module with the top-level modules it imports."""
    out: list[tuple[str, list[str]]] = []
    for path in sorted((REPO / "examples").glob("*.py")):
        tree = ast.parse(path.read_text())
        imported = sorted(
            {
                (a.asname or a.name).split(".")[0]
                for node in tree.body
                if isinstance(node, ast.Import)
                for a in node.names
            }
        )
        if imported:
            out.append((f"examples.{path.stem}", imported))
    return out


@pytest.mark.parametrize(("module", "imported"), _example_modules())
@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_no_path_through_what_an_example_imports_resolves(
    data: st.DataObject, module: str, imported: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every dotted path from an example module through a standard-library module it imports
    (``examples.app_functions:json.decoder.scanstring``...) is refused."""
    monkeypatch.syspath_prepend(str(REPO))
    loaded = __import__(module, fromlist=["_"])
    path = _walk(data, loaded, imported)
    assert _resolves(f"{module}:{path}") is None
    info = inspect_ref(f"{module}:{path}", [REPO])
    assert not (info.defined and info.not_a_function is None)


def test_ref_of_gives_back_only_what_resolves(project: Any) -> None:
    shapes, _lazy, _root = project
    module = sys.modules.get(shapes) or __import__(shapes)  # not only after another test
    assert ref_of(module.plain) == f"{shapes}:plain"
    assert ref_of(module.Klass.static) == f"{shapes}:Klass.static"
    assert ref_of(module.lam) is None
    assert ref_of(module.nested) is None
    assert ref_of(module.half) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "command",
    [
        ["spec", "validate", "spec.yaml"],
        ["spec", "lint", "spec.yaml"],
        ["spec", "bundle", "sign", "spec.yaml", "--output", "b.json", "--approved-by", "me"],
    ],
    ids=["validate", "lint", "sign"],
)
def test_validate_lint_and_sign_refuse_a_path_through_an_import(
    tmp_path: Path, command: list[str]
) -> None:
    """The exploit's spec (``clean:logging.os.system``, ``clean.py`` holding two imports) is
    invalid before anything runs: no bundle is written."""
    (tmp_path / ".kneo").mkdir()
    (tmp_path / ".kneo" / "config.yaml").write_text("version: v1\n")
    (tmp_path / "clean.py").write_text("import json\nimport logging\n")
    steps = [{"id": "s", "kind": "function", "ref": "clean:logging.os.system"}]
    spec = {"version": "v1", "workflow": {"type": "sequential", "steps": steps}}
    (tmp_path / "spec.yaml").write_text(json.dumps(spec))
    env = {k: v for k, v in os.environ.items() if not k.startswith("KNEO_")}
    env.update(PYTHONPATH=str(REPO), KNEO_SERV_SPEC_SIGNING_KEY="k" * 32)
    proc = subprocess.run(
        [*KNEO, *command],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0, proc.stdout
    assert "E_FUNCTION_NOT_ALLOWED" in proc.stdout + proc.stderr
    assert not (tmp_path / "b.json").exists()
