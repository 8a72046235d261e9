"""Diagnostics of the ``module:function`` refs a spec names: each must resolve, and must not
import a primitive that escapes the sandbox (located and parsed by :mod:`kneo.spec.refs`,
never imported).
"""

from __future__ import annotations

from pathlib import Path

from kneo.spec.diagnostics import Diagnostic, diag
from kneo.spec.inventory import ToolCatalog, agent_locations, tool_paths
from kneo.spec.models import Spec
from kneo.spec.refs import inspect_ref


def ref_rules(
    path: str, ref: str, roots: list[Path], unsafe: str = "E_UNSAFE_FUNCTION_IMPORT"
) -> list[Diagnostic]:
    """``ref`` resolves (``E_UNKNOWN_REF``) to a function defined in its module
    (``E_FUNCTION_NOT_ALLOWED``: no import, alias, class or path through another object; the
    trust kernel refuses the same when it runs) and imports nothing unsafe (``unsafe``)."""
    info = inspect_ref(ref, roots)
    out: list[Diagnostic] = []
    if not info.defined:
        out.append(
            diag(
                "E_UNKNOWN_REF",
                path,
                f"Cannot resolve '{ref}': {info.problem}.",
                "check the module path and function name",
            )
        )
    elif info.not_a_function is not None:
        out.append(
            diag(
                "E_FUNCTION_NOT_ALLOWED",
                path,
                f"'{info.attribute}' in module '{info.module}' {info.not_a_function}: a ref "
                "names a function defined in its module (or a method of a class defined "
                "there), never a name reached through another object.",
                "define the function in the project's module and name it there",
            )
        )
    if info.unsafe_imports:
        out.append(unsafe_import(unsafe, path, ref, info.unsafe_imports))
    return out


def unsafe_import(code: str, path: str, ref: str, modules: tuple[str, ...]) -> Diagnostic:
    return diag(
        code,
        path,
        f"'{ref}' directly imports {', '.join(modules)}.",
        "move privileged work behind a reviewed tool with declared capabilities, or remove the import",
    )


def tool_component_rules(spec: Spec, roots: list[Path]) -> list[Diagnostic]:
    """Each ``components.tools`` implementation (``E_UNSAFE_TOOL_IMPORT`` when unsafe)."""
    out: list[Diagnostic] = []
    for name, comp in spec.components.tools.items():
        if comp.implementation:
            path = f"components.tools.{name}.implementation"
            out += ref_rules(path, comp.implementation, roots, "E_UNSAFE_TOOL_IMPORT")
    return out


def selected_tool_safety(spec: Spec, catalog: ToolCatalog, roots: list[Path]) -> list[Diagnostic]:
    """Registry tools with a dotted implementation are checked where an agent selects them."""
    out: list[Diagnostic] = []
    for agent, at in agent_locations(spec):
        paths = dict(tool_paths(agent, at))
        for name in catalog.selected(agent):
            definition = catalog.get(name)
            if definition is None or not definition.implementation or name in spec.components.tools:
                continue
            info = inspect_ref(definition.implementation, roots)
            if info.unsafe_imports:
                out.append(
                    unsafe_import(
                        "E_UNSAFE_TOOL_IMPORT",
                        paths.get(name, f"{at}.tools"),
                        definition.implementation,
                        info.unsafe_imports,
                    )
                )
    return out


def function_component_rules(spec: Spec, roots: list[Path]) -> list[Diagnostic]:
    """Each ``components.functions`` ref."""
    out: list[Diagnostic] = []
    for name, comp in spec.components.functions.items():
        out += ref_rules(f"components.functions.{name}.ref", comp.ref, roots)
    return out
