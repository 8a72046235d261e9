"""Pin a resolved spec to its project code: what ``kneo spec bundle sign`` signs.

The resolved document gets ``code:``, every project module its ``module:function`` refs reach
(found by path from the spec's directory up to the project root, with the project modules
those import) as module, project-relative path and sha256 (:mod:`kneo.kernel.code`). The
bundle's digest and signatures then cover the code as they cover the spec, an eval result
for the spec names the same digest, and a run of the bundle runs those bytes or nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kneo.kernel.code import CodeSet, collect_code
from kneo.spec.inventory import function_refs
from kneo.spec.models import Spec
from kneo.spec.refs import import_roots, modules_of, project_root


def pinned_code(spec: Spec) -> CodeSet | None:
    """The code set a signed spec pins (``code:``), ``None`` when it pins none."""
    if spec.code is None:
        return None
    return CodeSet.from_manifest([f.model_dump() for f in spec.code], field="code")


def spec_code(spec: Spec, base_dir: Path | None) -> CodeSet:
    """The project code ``spec``'s refs reach from ``base_dir`` (hashed; nothing runs)."""
    roots = import_roots(base_dir)
    refs = (ref for _path, ref in function_refs(spec))
    return collect_code(modules_of(refs), roots, project_root=project_root(roots))[0]


def pin_code(spec: Spec, data: Mapping[str, Any], base_dir: Path | None) -> dict[str, Any]:
    """``data`` (``spec``'s resolved document) with ``code:`` pinning the files it runs now
    (none: no ``code`` member, the document as it was)."""
    out = {k: v for k, v in data.items() if k != "code"}
    code = spec_code(spec, base_dir)
    if code:
        out["code"] = code.manifest()
    return out
