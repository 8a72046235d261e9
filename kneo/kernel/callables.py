"""The callable door: a spec's ``module:function`` and an operator's ``module:name``."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from kneo.errors import AccessDenied, ErrorCode, KneoError
from kneo.kernel.code import CODE_PREFIX, CodeSet, LoadedCode, collect_code, load_code

UNSAFE_MODULES = frozenset(
    {"os", "posix", "nt", "subprocess", "shutil", "socket", "importlib", "builtins", "sys"}
)


class CallableGrant(Protocol):
    """What :func:`resolve_callable` asks: may a spec name ``ref``'s module here?"""

    def function(
        self, ref: str, *, path: str, roots: Sequence[Path] = (), code: CodeSet | None = None
    ) -> None:
        """Raise :class:`~kneo.errors.AccessDenied` when the module is neither the project's
        (found in ``roots``, or a module of ``code``) nor listed under ``functions.modules``."""
        ...

    def installed_origin(self, module: str) -> str | None:
        """Where the installed module ``module`` was found when it was judged (``None``:
        not found)."""
        ...


def split_ref(ref: str) -> tuple[str, str] | None:
    """``(module, attribute)`` of ``module:attribute`` (dotted identifiers), else ``None``."""
    module, sep, attr = ref.partition(":")
    if not sep or not module or not attr or not all(p.isidentifier() for p in module.split(".")):
        return None
    if not all(p.isidentifier() for p in attr.split(".")):
        return None
    return module, attr


def _refuse(ref: str, why: str, *, path: str) -> AccessDenied:
    return AccessDenied(
        f"{path}: {ref!r} {why}; a function ref names a function defined in its module (or a "
        "method of a class defined there), never a name reached through another object",
        code=ErrorCode.E_FUNCTION_NOT_ALLOWED,
        path=path,
        ref=ref,
        suggestion="define the function in the project's module and name it there",
    )


def _import(
    module_name: str, ref: str, code: LoadedCode | None, grant: CallableGrant | None, path: str
) -> tuple[Any, str]:
    """The module and its name as loaded: a module of ``code`` from its pinned bytes under
    the code set's namespace; anything else is installed code, imported by name from the
    Python installation (never a project root: those are not on ``sys.path``), whose file
    must be where the grant found it when it judged it. Its body runs: callers asked the
    grant first."""
    if code is not None and code.has(module_name):
        try:
            return code.module(module_name), code.qualified(module_name)
        except KneoError:
            raise
        except Exception as exc:  # the module's own error, with its file and line
            raise _unimportable(ref, exc) from exc
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or the module's own error
        raise _unimportable(ref, exc) from exc
    if grant is not None:
        judged = grant.installed_origin(module_name)
        found = getattr(module, "__file__", None)
        if judged is not None and (found is None or Path(found).resolve() != Path(judged)):
            raise _refuse(
                ref,
                f"imports {module_name!r} from {found}, not from {judged} where it was judged",
                path=path,
            )
    return module, module_name


def _unimportable(ref: str, exc: Exception) -> KneoError:
    return KneoError(
        f"function ref {ref!r} cannot be imported: {type(exc).__name__}: {exc}",
        code=ErrorCode.E_UNKNOWN_FUNCTION_REF,
        ref=ref,
    )


def _member(module: Any, module_name: str, attr: str, ref: str, *, path: str) -> Any:
    """The function ``attr`` names in ``module``'s own namespace: a top-level function, or a
    method of a top-level class (two parts). Never ``getattr`` on the module (a module's
    ``__getattr__`` could answer anything) and never a third part."""
    parts = attr.split(".")
    if len(parts) > 2:
        raise _refuse(ref, "reaches through more than a class", path=path)
    target = _defined(
        module,
        module_name,
        parts[0],
        ref,
        what="function ref",
        code=ErrorCode.E_UNKNOWN_FUNCTION_REF,
    )
    if len(parts) == 1:
        return target
    if not (
        isinstance(target, type)
        and target.__module__ == module_name
        and target.__qualname__ == parts[0]
    ):
        raise _refuse(ref, f"names {parts[0]!r}, which is not a class defined there", path=path)
    raw = vars(target).get(parts[1])
    if isinstance(raw, staticmethod | classmethod):
        return getattr(target, parts[1])
    if raw is None:
        raise _refuse(ref, f"names a method {target.__qualname__} does not define", path=path)
    return raw


def resolve_callable(
    ref: str,
    *,
    grant: CallableGrant | None = None,
    code: LoadedCode | None = None,
    path: str = "ref",
) -> Callable[..., Any]:
    """The function ``ref`` names, once ``grant`` allows its module (no grant: code the
    caller itself registered, such as an SDK workflow in-process) and the object is a plain
    Python function *defined in* that module (or a decorator's wrapper around one):
    ``__module__`` is the module, ``__qualname__`` is the ref's name. Builtins, classes,
    partials, lambdas, aliases, re-exports and whatever an attribute chain reaches are
    :data:`~kneo.errors.ErrorCode.E_FUNCTION_NOT_ALLOWED`. A module of ``code`` (the run's
    code set) runs from the bytes the set pins, never a same-named module found by name."""
    parsed = split_ref(ref)
    if parsed is None:
        raise KneoError(
            f"function ref {ref!r} must look like 'module:function'",
            code=ErrorCode.E_UNKNOWN_FUNCTION_REF,
            ref=ref,
        )
    module_name, attr = parsed
    if module_name.split(".")[0] in UNSAFE_MODULES:
        raise _refuse(ref, f"names the host primitive module {module_name!r}", path=path)
    if grant is not None:
        grant.function(ref, path=path, code=code.code if code is not None else None)
    module, loaded_as = _import(module_name, ref, code, grant, path)
    target = _member(module, loaded_as, attr, ref, path=path)
    # a classmethod bound to its class; a decorator's wrapper (``functools.wraps``,
    # ``lru_cache``) around the function the module defined under that name
    function = inspect.unwrap(getattr(target, "__func__", target))
    if not callable(target) or not inspect.isfunction(function):
        kind = type(function).__name__
        raise _refuse(ref, f"is a {kind}, not a function", path=path)
    if function.__module__ != loaded_as or function.__qualname__ != attr:
        where = f"{function.__module__}:{function.__qualname__}"
        raise _refuse(ref, f"is {where}, defined elsewhere or under another name", path=path)
    return target  # type: ignore[no-any-return]


def ref_of(function: Callable[..., Any]) -> str | None:
    """``module:qualname`` of ``function`` when :func:`resolve_callable` gives back this very
    object (another process can then find it by that ref), else ``None``: lambdas, nested
    functions, ``__main__``, wrappers that are not the registered object."""
    module = getattr(function, "__module__", None)
    qualname = getattr(function, "__qualname__", None)
    if not module or not qualname or module == "__main__" or "<" in qualname:
        return None
    if module.startswith(CODE_PREFIX):  # a project module: its code set, not a name, finds it
        return None
    ref = f"{module}:{qualname}"
    try:
        found = resolve_callable(ref)
    except KneoError:
        return None
    return ref if found is function or getattr(found, "__func__", None) is function else None


def resolve_attribute(ref: str, *, what: str, roots: Sequence[Path] = ()) -> Any:
    """A top-level name of a module, for references the *operator* configures (a tool
    registry factory, a platform factory): one name in the module's own namespace, never an
    attribute chain. Raises :class:`~kneo.errors.KneoError` (``E_UNKNOWN_REF``)."""
    parsed = split_ref(ref)
    if parsed is None or "." in parsed[1]:
        raise KneoError(
            f"{what} {ref!r} must look like module:name", code=ErrorCode.E_UNKNOWN_REF, ref=ref
        )
    code, _ = collect_code([parsed[0]], roots)
    loaded = load_code(code) if code else None
    module, _ = _import(parsed[0], ref, loaded, None, what)
    return _defined(module, parsed[0], parsed[1], ref, what=what, code=ErrorCode.E_UNKNOWN_REF)


def _defined(module: Any, module_name: str, name: str, ref: str, *, what: str, code: str) -> Any:
    """``name`` from ``module``'s own namespace (never ``getattr``: a module's
    ``__getattr__`` could answer anything); a name it does not define is refused alike for
    a function ref and an operator's reference, under the caller's ``code``."""
    namespace: Mapping[str, Any] = vars(module)
    if name not in namespace:
        raise KneoError(
            f"{what} {ref!r} cannot be imported: {name!r} is not defined in module {module_name!r}",
            code=code,
            ref=ref,
        )
    return namespace[name]
