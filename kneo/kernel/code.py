"""Code sets: the project's Python a spec reaches, pinned by content and loaded by path.

A spec's ``module:function`` names a module *as the project imports it*. Finding that name on
the process-wide ``sys.path`` runs whatever answers to it first: the standard library's
``profile`` for a project's ``profile.py``, one spec's ``helpers`` for another's. So a name is
never looked up there. :func:`collect_code` finds each module a spec's refs name *in the
project's directories* (files only, no code runs), follows the project modules those import,
and hashes every file: a :class:`CodeSet` (module name, project-relative path, sha256), whose
digest a signed bundle carries and a run records.

:class:`LoadedCode` runs a code set: each module is executed from the bytes the set pins
(verified, ``E_CODE_DIGEST_MISMATCH`` otherwise), under a namespace of its own per code digest
and project directory (``_kneo_code_<hash>.helpers``), and a project module's ``import
helpers`` (or ``from .x import y``) resolves inside the same set. Two specs, two projects, two
versions of one file: two namespaces, never each other's code nor each other's module state. Where the bytes come from is the caller's (the files
on disk, or the store's content-addressed copies on a worker with no checkout).
"""

from __future__ import annotations

import ast
import builtins
import hashlib
import importlib
import importlib.abc
import importlib.machinery
import json
import os
import sys
import tempfile
import threading
import time
import types
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

from kneo.errors import Conflict, ErrorCode, KneoError

__all__ = [
    "CODE_PREFIX",
    "EMPTY",
    "CodeFile",
    "CodeSet",
    "LoadedCode",
    "code_record",
    "collect_code",
    "digest_of",
    "load_code",
    "materialize",
    "missing",
    "outside_installation",
    "remember",
    "unchanged",
]

#: The top-level package name of every loaded code set's namespace (one per digest and root).
CODE_PREFIX = "_kneo_code_"
#: CPython 3.11 keeps the AST constructor's recursion depth in interpreter-wide state: two
#: threads parsing at once can fail (python/cpython#106905); parses are cached per file.
PARSE_LOCK = threading.Lock()
_MAX_FILES = 500
_MAX_BYTES = 8 * 1024 * 1024


def digest_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, order=True)
class CodeFile:
    """One project module of a code set."""

    #: the dotted name the project imports it by (``pkg`` for ``pkg/__init__.py``)
    module: str
    #: where it is, relative to the project root (``/``-separated)
    path: str
    sha256: str
    package: bool = False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"module": self.module, "path": self.path, "sha256": self.sha256}
        if self.package:
            out["package"] = True
        return out


def _valid_file(item: Any, where: str) -> CodeFile:
    if not isinstance(item, Mapping) or set(item) - {"module", "path", "sha256", "package"}:
        raise _bad(where, "must be an object with module, path, sha256 (and package)")
    module, path, sha = item.get("module"), item.get("path"), item.get("sha256")
    if not isinstance(module, str) or not all(p.isidentifier() for p in module.split(".")):
        raise _bad(f"{where}.module", "must be a dotted module name")
    if (
        not isinstance(path, str)
        or not path.endswith(".py")
        or path.startswith("/")
        or ".." in path.split("/")
        or "\\" in path
    ):
        raise _bad(f"{where}.path", "must be a relative path to a .py file inside the project")
    if not isinstance(sha, str) or len(sha) != 64 or set(sha) - set("0123456789abcdef"):
        raise _bad(f"{where}.sha256", "must be 64 lowercase hex digits")
    package = item.get("package", False)
    if not isinstance(package, bool):
        raise _bad(f"{where}.package", "must be true or false")
    return CodeFile(module, path, sha, package)


def _bad(field_path: str, why: str) -> KneoError:
    return KneoError(f"{field_path}: {why}", code=ErrorCode.E_SCHEMA, field=field_path)


@dataclass(frozen=True)
class CodeSet:
    """The project modules one spec reaches, each pinned by its sha256."""

    files: tuple[CodeFile, ...] = ()

    @classmethod
    def of(cls, files: Iterable[CodeFile]) -> CodeSet:
        return cls(tuple(sorted({f.module: f for f in files}.values())))

    @classmethod
    def from_manifest(cls, manifest: Any, *, field: str = "code") -> CodeSet:
        """A code set from its :meth:`manifest` (a signed bundle's ``code``, a run's record);
        anything else is ``E_SCHEMA`` naming ``field``."""
        if manifest is None:
            return EMPTY
        if not isinstance(manifest, list) or len(manifest) > _MAX_FILES:
            raise _bad(field, f"must be a list of at most {_MAX_FILES} files")
        files = [_valid_file(item, f"{field}[{i}]") for i, item in enumerate(manifest)]
        if len({f.module for f in files}) != len(files):
            raise _bad(field, "names a module twice")
        return cls.of(files)

    def manifest(self) -> list[dict[str, Any]]:
        return [f.to_dict() for f in self.files]

    @classmethod
    def from_record(
        cls,
        record: Any,
        *,
        field: str = "metadata.code",
        fetch: Callable[[Iterable[str]], Mapping[str, bytes]] | None = None,
    ) -> CodeSet:
        """The code set a run recorded (:func:`code_record`): its digest, the manifest being
        stored content-addressed under it (``fetch`` reads it: the store's ``code.get``),
        or (runs recorded before) the digest and its files inline; the digest is checked
        either way, ``E_CODE_DIGEST_MISMATCH`` when the manifest is nowhere."""
        if record is None:
            return EMPTY
        if not isinstance(record, Mapping) or not isinstance(record.get("digest"), str):
            raise _bad(field, "must be an object with digest (and files)")
        digest, files = record["digest"], record.get("files")
        known = _RECORDS.get(digest)
        if known is not None and (files is None or known.manifest() == files):
            return known  # every resume of a run reads its record: checked once per process
        if files is None:
            stored = fetch((digest,)).get(digest) if fetch is not None else None
            if stored is None or digest_of(stored) != digest:
                raise Conflict(
                    f"{field}: the manifest of code set {digest[:12]}… is not in the store",
                    code=ErrorCode.E_CODE_DIGEST_MISMATCH,
                    field=field,
                )
            try:
                files = json.loads(stored)
            except ValueError as exc:  # its digest matched: not reached but by a collision
                raise _bad(f"{field}.digest", "names no manifest") from exc
        pinned = cls.from_manifest(files, field=f"{field}.files")
        if pinned.digest != digest:
            raise _bad(f"{field}.digest", "does not match its files")
        if len(_RECORDS) > 1024:
            _RECORDS.clear()
        _RECORDS[pinned.digest] = pinned
        return pinned

    @cached_property
    def manifest_bytes(self) -> bytes:
        """The canonical manifest, whose sha256 is :attr:`digest`: what the store keeps
        under the digest in ``code_files`` (a run records the digest alone)."""
        return json.dumps(self.manifest(), sort_keys=True, separators=(",", ":")).encode()

    @cached_property
    def digest(self) -> str:
        """sha256 of the canonical manifest: equal sets, equal digests."""
        return digest_of(self.manifest_bytes)

    @cached_property
    def _by_module(self) -> dict[str, CodeFile]:
        return {f.module: f for f in self.files}

    def get(self, module: str) -> CodeFile | None:
        return self._by_module.get(module)

    @cached_property
    def packages(self) -> frozenset[str]:
        """Every package name the set's modules live in (namespace packages included)."""
        names: set[str] = set()
        for f in self.files:
            parts = f.module.split(".")
            names.update(".".join(parts[:i]) for i in range(1, len(parts)))
            if f.package:
                names.add(f.module)
        return frozenset(names)

    @cached_property
    def tops(self) -> frozenset[str]:
        """The top-level names a project module's ``import`` resolves inside the set."""
        return frozenset(f.module.split(".")[0] for f in self.files)

    def __bool__(self) -> bool:
        return bool(self.files)


EMPTY = CodeSet()
#: code sets read from run records, by digest (see :meth:`CodeSet.from_record`)
_RECORDS: dict[str, CodeSet] = {}


def code_record(code: CodeSet) -> dict[str, Any] | None:
    """What a run records of the code it is pinned to (``None``: it reaches none): the code
    set's digest; its manifest is stored under that digest (:attr:`CodeSet.manifest_bytes`)
    and each file under its own, so the run's row carries 80 bytes, not a file list (a
    row version per step boundary on PostgreSQL). Registered here, so this process reads
    the record back without the store."""
    if not code:
        return None
    if code.digest not in _RECORDS:
        if len(_RECORDS) > 1024:
            _RECORDS.clear()
        _RECORDS[code.digest] = code
    return {"digest": code.digest}


_MATERIALIZED: dict[str, Path] = {}


def materialize(code: CodeSet, *, origin: Path | None = None) -> Path:
    """A private directory holding ``code``'s files by module name (``pkg/mod.py``), written
    from this process's copies or ``origin`` (the project root), verified: where static checks
    find a pinned run's modules when the project's files moved on or are not here at all;
    ``E_CODE_DIGEST_MISMATCH`` when a file is in neither or differs. One per digest and
    process."""
    with _LOADED_LOCK:
        found = _MATERIALIZED.get(code.digest)
    if found is not None:
        return found
    loaded = LoadedCode(code, _reader(origin), origin)
    target = Path(tempfile.mkdtemp(prefix="kneo-code-")) / code.digest[:32]
    for file in code.files:
        parts = file.module.split(".")
        where = target.joinpath(*parts, "__init__.py") if file.package else None
        where = where or target.joinpath(*parts[:-1], parts[-1] + ".py")
        where.parent.mkdir(parents=True, exist_ok=True)
        where.write_bytes(loaded.source(file))
    with _LOADED_LOCK:
        _MATERIALIZED[code.digest] = target
    return target


def unchanged(code: CodeSet, root: Path | None) -> bool:
    """Whether every file of ``code`` is still, on disk under ``root``, the one it pins (one
    ``stat`` a file while nothing changed)."""
    if not code:
        return True
    if root is None:
        return False
    try:
        key = (code.digest, str(root))
        paths = _PATHS.get(key)
        if paths is None:
            if len(_PATHS) > 256:
                _PATHS.clear()
            paths = _PATHS[key] = tuple((str(root / f.path), f.sha256) for f in code.files)
        now = time.time_ns()
        for path, sha in paths:
            # :func:`_read`'s cache probed by the file's stat (a dict read needs no lock)
            st = os.stat(path)
            hit = _SOURCES.get((path, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
            if hit is None or now - max(st.st_mtime_ns, st.st_ctime_ns) < _RACY_NS:
                hit = _read(Path(path))
            if hit.sha256 != sha:
                return False
        return True
    except OSError:
        return False


#: by code digest and root: each file's path there and pinned sha256 (joined once: every
#: run from a prepared spec asks :func:`unchanged`)
_PATHS: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {}


# ---------------------------------------------------------------------- collecting


@dataclass(frozen=True)
class _Source:
    data: bytes
    sha256: str
    imports: tuple[tuple[str, int, tuple[str, ...]], ...]


_SOURCES: dict[tuple[str, int, int, int, int], _Source] = {}
_RACY_NS = 2_000_000_000
_SOURCES_LOCK = threading.Lock()


def _read(path: Path) -> _Source:
    """A file's bytes, digest and imports, cached by its stat (path, inode, size, mtime and
    ctime). A file changed less than :data:`_RACY_NS` ago is read again every time: a write
    within the file system's timestamp granularity keeps the stat (git's "racy" files)."""
    st = path.stat()
    key = (str(path), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    racy = time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) < _RACY_NS
    with _SOURCES_LOCK:
        hit = None if racy else _SOURCES.get(key)
    if hit is not None:
        return hit
    data = path.read_bytes()
    imports: list[tuple[str, int, tuple[str, ...]]] = []
    try:
        with PARSE_LOCK:
            tree = ast.parse(data, filename=str(path))
    except (SyntaxError, ValueError):
        tree = None  # the import reports it, with its line
    for node in ast.walk(tree) if tree is not None else ():
        if isinstance(node, ast.Import):
            imports += [(a.name, 0, ()) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = tuple(a.name for a in node.names if a.name != "*")
            imports.append((node.module or "", node.level, names))
    found = _Source(data, digest_of(data), tuple(imports))
    with _SOURCES_LOCK:
        if len(_SOURCES) > 4096:
            _SOURCES.clear()
        _SOURCES[key] = found
    return found


def _locate(module: str, root: Path) -> tuple[Path, bool] | None:
    """``module``'s source file under ``root`` and whether it is a package, by path only."""
    base = root.joinpath(*module.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py", True
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py"), False
    return None


def _relative(file: Path, root: Path, project_root: Path | None) -> str:
    for base in (project_root, root):
        if base is not None and file.is_relative_to(base):
            return file.relative_to(base).as_posix()
    return file.name


def _wanted(
    module: str, imports: Iterable[tuple[str, int, tuple[str, ...]]], package: bool
) -> Iterator[str]:
    """The absolute names a module's imports may mean (submodules named in ``from`` too)."""
    here = module if package else module.rpartition(".")[0]
    for name, level, names in imports:
        if level:
            parts = here.split(".") if here else []
            if level - 1 > len(parts):
                continue
            base = ".".join(parts[: len(parts) - (level - 1)])
            name = f"{base}.{name}".strip(".") if name else base
            if not name:
                yield from names
                continue
        yield name
        yield from (f"{name}.{n}" for n in names)


def outside_installation(where: Path) -> bool:
    """Whether a module's source file can be a project's: outside the Python installation
    (the standard library, site-packages, the virtual environment)."""
    where = where.resolve()
    if any(part in ("site-packages", "dist-packages") for part in where.parts):
        return False
    return not any(where.is_relative_to(prefix) for prefix in _installation())


@lru_cache(maxsize=1)
def _installation() -> tuple[Path, ...]:
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    return tuple(Path(p).resolve() for p in prefixes)


def collect_code(
    modules: Iterable[str],
    roots: Sequence[Path],
    *,
    project_root: Path | None = None,
    accept: Callable[[Path], bool] = outside_installation,
) -> tuple[CodeSet, dict[str, bytes]]:
    """The code set of ``modules`` (what a spec's refs name) as found in ``roots`` (the
    spec's directory up to the project root, first match wins, files only), with every
    project module they import, and each file's bytes by sha256. A module found in no root
    is left out: it is installed code (``functions.modules``) or unknown, which the grant
    and the loader answer. ``accept`` judges a found file (the grant: not the Python
    installation). Nothing is executed; the bytes are also kept for :func:`load_code`."""
    files: dict[str, CodeFile] = {}
    blobs: dict[str, bytes] = {}
    pending: list[tuple[str, Path | None]] = [(m, None) for m in dict.fromkeys(modules)]
    real_roots = [r.resolve() for r in roots]
    while pending:
        module, within = pending.pop()
        if module in files or not all(p.isidentifier() for p in module.split(".")):
            continue
        for root in [within] if within is not None else real_roots:
            found = _member_files(module, root, project_root, accept, files, blobs)
            if found is None:
                continue
            for name in _wanted(module, found[1], found[0]):
                if name not in files and name.split(".")[0] not in ("kneo", "__future__"):
                    pending.append((name, root))
            break
        if len(files) > _MAX_FILES or sum(map(len, blobs.values())) > _MAX_BYTES:
            raise KneoError(
                f"the project code a spec reaches is over {_MAX_FILES} files or "
                f"{_MAX_BYTES // 1024 // 1024} MiB",
                code=ErrorCode.E_SCHEMA,
                field="code",
            )
    remember(blobs)
    return CodeSet.of(files.values()), blobs


def _member_files(
    module: str,
    root: Path,
    project_root: Path | None,
    accept: Callable[[Path], bool],
    files: dict[str, CodeFile],
    blobs: dict[str, bytes],
) -> tuple[bool, tuple[tuple[str, int, tuple[str, ...]], ...]] | None:
    """Add ``module`` (and its parent packages' ``__init__``) found under ``root``."""
    located = _locate(module, root)
    if located is None or not accept(located[0]):
        return None
    parts = module.split(".")
    for i in range(1, len(parts)):
        parent = ".".join(parts[:i])
        init = root.joinpath(*parts[:i], "__init__.py")
        if parent not in files and init.is_file():
            source = _read(init)
            files[parent] = CodeFile(
                parent, _relative(init, root, project_root), source.sha256, True
            )
            blobs[source.sha256] = source.data
    source = _read(located[0])
    files[module] = CodeFile(
        module, _relative(located[0], root, project_root), source.sha256, located[1]
    )
    blobs[source.sha256] = source.data
    return located[1], source.imports


# ---------------------------------------------------------------------- loading


def _unpinned(file: CodeFile, message: str) -> KneoError:
    """A pinned file whose bytes cannot run (missing or changed): one refusal, naming it."""
    return Conflict(
        message, code=ErrorCode.E_CODE_DIGEST_MISMATCH, path=file.path, module=file.module
    )


@dataclass
class LoadedCode:
    """A code set made importable under its own namespace; ``read`` gives a file's bytes
    (verified against the pinned sha256 before they run)."""

    code: CodeSet
    read: Callable[[CodeFile], bytes | None]
    origin: Path | None = None
    _builtins: dict[str, Any] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.namespace = namespace_of(self.code, self.origin)
        self._builtins = {**vars(builtins), "__import__": self._import}

    def qualified(self, module: str) -> str:
        return f"{self.namespace}.{module}"

    def has(self, module: str) -> bool:
        return self.code.get(module) is not None

    def module(self, module: str) -> types.ModuleType:
        """The set's ``module``, executed from its pinned bytes (once per namespace)."""
        return importlib.import_module(self.qualified(module))

    def source(self, file: CodeFile) -> bytes:
        data = self.read(file)
        if data is None:
            raise _unpinned(
                file,
                f"code file {file.path!r} (module {file.module!r}, sha256 "
                f"{file.sha256[:12]}…) is in neither the project nor the store",
            )
        got = digest_of(data)
        if got != file.sha256:
            raise _unpinned(
                file,
                f"code file {file.path!r} (module {file.module!r}) has sha256 {got[:12]}…, "
                f"not the {file.sha256[:12]}… its code set pins: it changed since it was judged",
            )
        return data

    def files(self) -> dict[str, bytes]:
        """Every file of the set by sha256, verified (for a process that runs it too)."""
        return {f.sha256: self.source(f) for f in self.code.files}

    def _import(
        self,
        name: str,
        globals: Mapping[str, Any] | None = None,
        locals: Mapping[str, Any] | None = None,
        fromlist: Sequence[str] = (),
        level: int = 0,
    ) -> types.ModuleType:
        """A project module's ``import``: a name of the set resolves inside it."""
        if level == 0 and name.split(".")[0] in self.code.tops:
            found = _IMPORT(self.qualified(name), globals, locals, fromlist, 0)
            if fromlist:
                return found
            return sys.modules[self.qualified(name.split(".")[0])]
        return _IMPORT(name, globals, locals, fromlist, level)

    def exec_into(self, module: types.ModuleType, file: CodeFile) -> None:
        data = self.source(file)
        where = str(self.origin / file.path) if self.origin is not None else file.path
        compiled = compile(data, where, "exec", dont_inherit=True)
        module.__dict__["__builtins__"] = self._builtins
        exec(compiled, module.__dict__)  # the pinned, verified bytes the grant judged


_IMPORT = builtins.__import__
_BLOBS: dict[str, bytes] = {}
_BLOBS_LOCK = threading.Lock()
_BLOBS_MAX = 64 * 1024 * 1024


def remember(files: Mapping[str, bytes]) -> None:
    """Keep code files (sha256 -> bytes) in this process for :func:`load_code` (the bytes a
    spec was collected with, or a run's files fetched from the store); bounded."""
    with _BLOBS_LOCK:
        if sum(map(len, _BLOBS.values())) + sum(map(len, files.values())) > _BLOBS_MAX:
            _BLOBS.clear()
        _BLOBS.update(files)


def missing(code: CodeSet) -> list[str]:
    """The digests of ``code``'s files this process does not hold (fetch them first)."""
    with _BLOBS_LOCK:
        return [f.sha256 for f in code.files if f.sha256 not in _BLOBS]


_LOADED: dict[str, LoadedCode] = {}
_LOADED_LOCK = threading.Lock()


class _Loader(importlib.abc.Loader):
    def __init__(self, loaded: LoadedCode, file: CodeFile | None) -> None:
        self.loaded = loaded
        self.file = file

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None

    def exec_module(self, module: types.ModuleType) -> None:
        if self.file is not None:
            self.loaded.exec_into(module, self.file)


class _Finder(importlib.abc.MetaPathFinder):
    """Answers only names under :data:`CODE_PREFIX` of a registered code set."""

    def find_spec(
        self, fullname: str, path: Any = None, target: Any = None
    ) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith(CODE_PREFIX):
            return None
        namespace, _, rest = fullname.partition(".")
        loaded = _LOADED.get(namespace)
        if loaded is None:
            return None
        file = loaded.code.get(rest) if rest else None
        package = not rest or rest in loaded.code.packages
        if file is None and not package:
            return None
        where = file.path if file is not None else None
        spec = importlib.machinery.ModuleSpec(
            fullname, _Loader(loaded, file), origin=where, is_package=package
        )
        if where is not None:
            spec.has_location = loaded.origin is not None
            if loaded.origin is not None:
                spec.origin = os.fspath(loaded.origin / where)
        return spec


_FINDER = _Finder()


def _reader(origin: Path | None) -> Callable[[CodeFile], bytes | None]:
    def read(file: CodeFile) -> bytes | None:
        with _BLOBS_LOCK:
            data = _BLOBS.get(file.sha256)
        if data is None and origin is not None:
            try:
                data = (origin / file.path).read_bytes()
            except OSError:
                return None
        return data

    return read


def namespace_of(code: CodeSet, origin: Path | None) -> str:
    """The top-level module name ``code`` loads under from ``origin``."""
    return CODE_PREFIX + digest_of(f"{code.digest}\0{origin or ''}".encode())[:32]


def load_code(code: CodeSet, *, origin: Path | None = None) -> LoadedCode:
    """``code`` made importable (once per digest and ``origin``: the same files of the same
    project are one namespace, another project's equal files another). A
    file's bytes come from this process's copies (:func:`remember`), else from ``origin``
    (the project root) on disk; either way they run only when their sha256 is the pinned
    one."""
    namespace = namespace_of(code, origin)
    with _LOADED_LOCK:
        found = _LOADED.get(namespace)
        if found is None:
            if _FINDER not in sys.meta_path:
                sys.meta_path.insert(0, _FINDER)
            found = _LOADED[namespace] = LoadedCode(code, _reader(origin), origin)
    return found
