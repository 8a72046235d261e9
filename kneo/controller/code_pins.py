"""A signed bundle's pinned project code, read from the watched repository at the commit.

A bundle signed by ``kneo spec bundle sign`` pins every project module its spec runs
(``spec.code``: module, path, sha256; :mod:`kneo.spec.pinning`). The controller reads those
files at the commit it reconciles, from Git (never from its own working directory), and
accepts the bundle only when each is there with the bytes its digest names: a file changed
after signing (or missing) is ``E_CODE_DIGEST_MISMATCH``. The bytes go into the registry with
the promoted revision (:meth:`add_revision <kneo.store.registry.writes.RegistryWritesMixin.
add_revision>`'s ``code``), so a worker runs them with no checkout at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kneo.controller.model import Problem
from kneo.controller.source import Source, SourceError
from kneo.errors import ErrorCode
from kneo.kernel.code import CodeSet, digest_of, remember


def pinned_names(commit: str, spec: Mapping[str, Any]) -> list[str]:
    """The Git object names (``<commit>:<path>``) of the files ``spec`` pins."""
    files = spec.get("code")
    if not isinstance(files, list):
        return []
    return [f"{commit}:{f['path']}" for f in files if isinstance(f, Mapping) and "path" in f]


def prefetch(source: Source, names: list[str]) -> dict[str, bytes]:
    """Many pinned files in one batch (a cold pass reads every bundle's: one Git process per
    chunk, not per bundle); a batch with a missing file is read one by one, leaving it out."""
    try:
        return dict(source.read_blobs(names))
    except SourceError:
        found: dict[str, bytes] = {}
        for name in names:
            try:
                found.update(source.read_blobs([name]))
            except SourceError:
                continue
        return found


def read_pinned(
    source: Source,
    commit: str,
    path: str,
    spec: Mapping[str, Any],
    prefetched: Mapping[str, bytes] | None = None,
) -> tuple[dict[str, bytes], Problem | None]:
    """The files ``spec`` pins (sha256 -> bytes) as the commit holds them (from
    ``prefetched`` when :func:`prefetch` read them already), or the problem with the first
    that is missing or differs. Kept in this process too, so the bundle's spec check sees
    the pinned bytes, not whatever the controller's directory holds."""
    try:
        pinned = CodeSet.from_manifest(spec.get("code"), field="spec.code")
    except Exception as exc:  # the schema check reports the field; here it is a mismatch
        return {}, Problem(ErrorCode.E_CODE_DIGEST_MISMATCH, f"{path}: {exc}")
    if not pinned:
        return {}, None
    wanted = [f"{commit}:{f.path}" for f in pinned.files]
    found = dict(prefetched or {})
    absent = [name for name in wanted if name not in found]
    if absent:
        found.update(prefetch(source, absent))
    files: dict[str, bytes] = {}
    for file, name in zip(pinned.files, wanted, strict=True):
        data = found.get(name)
        if data is None or digest_of(data) != file.sha256:
            what = "is not in the commit" if data is None else "changed since it was signed"
            return {}, Problem(
                ErrorCode.E_CODE_DIGEST_MISMATCH,
                f"{path}: pinned code file {file.path!r} (module {file.module!r}) {what}: "
                f"its sha256 must be {file.sha256}; sign the bundle again",
            )
        files[file.sha256] = data
    remember(files)
    return files, None
