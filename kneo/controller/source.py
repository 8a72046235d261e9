"""Where desired state comes from: a Git repository, read at one commit through GitPython.

Two kinds of source:

* a remote URL (``https://``, ``ssh://``, ``git@host:path``, ``file://``): fetched into a bare
  cache repository with a forced refspec, so a force-pushed branch is simply followed;
* a local repository path: read in place (no fetch); the watcher observes it with watchdog.

A source may read one subdirectory of the repository (``subdir``, ``controller.path``): its
``bundles/``, ``environments/`` and ``.kneo/`` are then read there, and every path this
module returns is relative to it, so nothing above it knows (several projects share a
repository this way, each through its own subdirectory).

Files are always read from the commit's tree (``git ls-tree`` + the object database), never
from a work tree, so an uncommitted edit can never be promoted. Git errors are translated
to :class:`SourceError` (``source_unreachable``, ``source_ref_not_found``, ...) at this
boundary; nothing above it sees GitPython exceptions.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import subprocess
import threading
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Protocol

import git

from kneo.controller.credentials import CredentialSource, GitCredential, git_environment, split_url
from kneo.controller.model import bundle_of
from kneo.documents import LIMITS
from kneo.errors import ConfigError, ErrorCode, KneoError
from kneo.logs import get_logger
from kneo.redaction import redact_text

BUNDLES_DIR = "bundles"
ENVIRONMENTS_DIR = "environments"
PROJECT_CONFIG = ".kneo/config.yaml"
_TRACKING_REF = "refs/kneo/source"
_SCP_LIKE = re.compile(r"^[\w.-]+@[\w.-]+:")
#: Beyond this many bundles, listing the whole tree and filtering beats one pathspec each.
_MAX_PATHSPECS = 256
#: Blob ids per ``git cat-file --batch`` (41 bytes each: the requests fit a pipe buffer, so
#: writing them all before reading cannot deadlock).
_BATCH = 512

log = get_logger("kneo.controller")


class SourceError(KneoError):
    """The repository could not be fetched or read; the controller reports it and retries."""

    code = ErrorCode.source_error
    http_status = 502


@dataclass(frozen=True)
class TreeFile:
    """A file of interest at a commit: repository path and Git blob id."""

    path: str
    blob_sha: str


class Source(Protocol):
    """What the loader needs from a repository. GitSource is the real one; tests may fake it."""

    def fetch(self) -> str:
        """Bring the source up to date and return the commit to reconcile."""
        ...

    def list_files(
        self, commit: str, bundle_names: Collection[str] | None = None
    ) -> Mapping[str, TreeFile]:
        """Bundle, environment and project-config files at ``commit`` by path; with
        ``bundle_names``, the bundle files of those bundles only."""
        ...

    def changed_paths(self, old: str, new: str) -> list[tuple[str, str]] | None:
        """``(status, path)`` of the wanted files that differ between two commits (status
        ``A``, ``D`` or ``M``); ``None`` when Git cannot tell (``old`` is gone, say)."""
        ...

    def read_blob(self, blob_sha: str) -> bytes: ...

    def read_blobs(self, blob_shas: Sequence[str]) -> Iterator[tuple[str, bytes]]:
        """``(blob id, bytes)`` for many blobs, in order (a cold reconcile reads them all)."""
        ...

    def describe(self) -> str: ...


def is_remote(location: str) -> bool:
    """URLs and scp-like ``user@host:path`` are remote; anything else is a local path."""
    return "://" in location or bool(_SCP_LIKE.match(location))


def wanted(path: str) -> bool:
    """``bundles/**/*.json``, ``environments/*.yaml|yml``, ``environments/approvals/*.json``
    and ``.kneo/config.yaml``."""
    p = PurePosixPath(path)
    if path == PROJECT_CONFIG:
        return True
    if p.parts[:1] == (BUNDLES_DIR,):
        return p.suffix == ".json" and len(p.parts) >= 2
    if p.parts[:1] == (ENVIRONMENTS_DIR,):
        if len(p.parts) == 3 and p.parts[1] == "approvals":  # signed policy approvals
            return p.suffix == ".json"
        return len(p.parts) == 2 and p.suffix in (".yaml", ".yml")
    return False


class GitSource:
    """A remote (fetched into ``cache_dir``) or local Git repository at a branch or tag.

    ``ref`` names a branch or a tag (``None``: the remote's default branch, or the local
    repository's ``HEAD``). One instance is used by one reconciling thread at a time; a
    lock guards it anyway so a webhook-triggered reconcile cannot interleave with a poll.

    ``credentials`` is where a remote's token comes from
    (:mod:`kneo.controller.credentials`); ``location`` is kept, shown and given to git
    without its user information.
    """

    def __init__(
        self,
        location: str,
        *,
        ref: str | None = None,
        cache_dir: Path | None = None,
        credentials: CredentialSource | None = None,
        subdir: str | None = None,
    ) -> None:
        url = split_url(location)
        #: what every message, status and stored row shows: never user information
        self.location = url.shown
        self._git_url = url.for_git
        self._url_credential = url.credential
        self._credentials = credentials
        if url.credential is not None and credentials is not None:
            raise ConfigError(
                f"controller.repo {url.shown} carries a user name or token in its URL and "
                "KNEO_SERV_GIT_TOKEN(_FILE) is set too: remove them from the URL",
                field="controller.repo",
            )
        if url.credential is not None:
            log.warning(
                "controller.repo %s carries a credential in its URL; it is used but never "
                "shown: move it to KNEO_SERV_GIT_TOKEN_FILE (docs/gitops.md)",
                url.shown,
            )
        self.ref = ref
        #: the repository subdirectory read (``controller.path``), or ``None``: the root
        self.subdir = subdir.strip("/") if subdir else None
        self._prefix = f"{self.subdir}/" if self.subdir else ""
        self.remote = is_remote(location)
        self._lock = threading.RLock()
        if self.remote:
            root = cache_dir or Path.home() / ".cache" / "kneo" / "controller"
            name = hashlib.sha256(url.shown.encode("utf-8")).hexdigest()[:16]
            self.path = root / name
        else:
            self.path = Path(location).expanduser().resolve()
        self._repo: git.Repo | None = None
        self._identity: tuple[int, int] | None = None

    # ---------------------------------------------------------------- repository handle

    def _open(self) -> git.Repo:
        if self._repo is not None:
            return self._repo
        try:
            if self.remote:
                self.path.mkdir(parents=True, exist_ok=True)
                if not (self.path / "HEAD").exists():
                    git.Repo.init(self.path, bare=True)
                self._repo = git.Repo(self.path)
            else:
                self._repo = git.Repo(self.path)
        except (git.exc.InvalidGitRepositoryError, git.exc.NoSuchPathError) as exc:
            raise SourceError(
                f"{self.location} is not a Git repository", code=ErrorCode.source_not_a_repository
            ) from exc
        except (git.exc.GitError, OSError) as exc:
            raise SourceError(
                f"cannot open {self.describe()}: {_short(exc)}", code=ErrorCode.source_unreachable
            ) from exc
        return self._repo

    def close(self) -> None:
        """Stop GitPython's persistent ``cat-file`` processes."""
        with self._lock:
            if self._repo is not None:
                self._repo.close()
                self._repo = None

    def describe(self) -> str:
        where = f"{self.location}@{self.ref or 'HEAD'}"
        return f"{where}:{self.subdir}" if self.subdir else where

    def _pathspecs(self, *paths: str) -> list[str]:
        """``paths`` (relative to the subdirectory) as repository paths."""
        return [self._prefix + path for path in paths]

    def _relative(self, path: str) -> str | None:
        """A repository path relative to the subdirectory (``None``: outside it)."""
        if not self._prefix:
            return path
        return path[len(self._prefix) :] if path.startswith(self._prefix) else None

    def _credential(self) -> GitCredential | None:
        if self._url_credential is not None:
            return self._url_credential
        return self._credentials.read() if self._credentials is not None else None

    def _auth_hint(self, stderr: str) -> str:
        """What to do when the host asked for a credential this source does not have."""
        if (
            self._url_credential is None
            and self._credentials is None
            and ("could not read Username" in stderr or "Authentication failed" in stderr)
        ):
            return (
                "; the repository needs a credential: set KNEO_SERV_GIT_TOKEN_FILE (docs/gitops.md)"
            )
        return ""

    def _network_fetch(self, repo: git.Repo, refspec: str) -> None:
        """``git fetch`` of ``refspec`` from the remote, the credential in git's environment
        (:func:`~kneo.controller.credentials.git_environment`), never in its arguments."""
        env = git_environment(self._git_url, self._credential())
        with repo.git.custom_environment(**env):
            repo.git.fetch("--quiet", "--no-tags", self._git_url, refspec)

    @property
    def watch_path(self) -> Path | None:
        """The ``.git`` directory to watch for new commits (local sources only)."""
        if self.remote:
            return None
        dot_git = self.path / ".git"
        return dot_git if dot_git.is_dir() else self.path

    # ---------------------------------------------------------------- Source

    def fetch(self) -> str:
        with self._lock:
            if self.remote:
                return self._fetch_remote(self._open())
            self._reopen_if_replaced()
            try:
                return self._open().rev_parse(f"{self.ref or 'HEAD'}^{{commit}}").hexsha
            except (git.exc.BadName, ValueError, git.exc.GitError) as exc:
                self.close()  # the next pass opens it afresh (it may be mid-replacement)
                raise SourceError(
                    f"{self.describe()}: no such branch, tag or commit",
                    code=ErrorCode.source_ref_not_found,
                ) from exc
            except SourceError:
                self.close()
                raise

    def resolve(self, ref: str) -> str:
        """The commit ``ref`` (branch, tag, ``origin/main``, a sha) names, for ``kneo
        controller plan --base/--head``; a remote source fetches it first."""
        with self._lock:
            repo = self._open()
            if self.remote:
                tracking = f"refs/kneo/plan/{hashlib.sha256(ref.encode()).hexdigest()[:12]}"
                for wanted_ref in (f"refs/heads/{ref}", f"refs/tags/{ref}", ref):
                    try:
                        self._network_fetch(repo, f"+{wanted_ref}:{tracking}")
                        return repo.rev_parse(f"{tracking}^{{commit}}").hexsha
                    except git.exc.GitCommandError:
                        continue
            else:
                try:
                    return repo.rev_parse(f"{ref}^{{commit}}").hexsha
                except (git.exc.BadName, ValueError, git.exc.GitError):
                    pass
            raise SourceError(
                f"{self.location}: no such branch, tag or commit {ref!r}",
                code=ErrorCode.source_ref_not_found,
            )

    def _reopen_if_replaced(self) -> None:
        """A local repository deleted and created again is another directory: GitPython's
        handle (and its ``cat-file`` processes) still point at the old one, so reopen."""
        try:
            stat = (self.path / ".git" if (self.path / ".git").exists() else self.path).stat()
            identity: tuple[int, int] | None = (stat.st_dev, stat.st_ino)
        except OSError:
            identity = None
        if identity != self._identity:
            self.close()
            self._identity = identity

    def _fetch_remote(self, repo: git.Repo) -> str:
        candidates = [f"refs/heads/{self.ref}", f"refs/tags/{self.ref}"] if self.ref else ["HEAD"]
        last: Exception | None = None
        for remote_ref in candidates:
            try:
                # ``+`` forces the update: a force-pushed branch moves backwards and we follow.
                self._network_fetch(repo, f"+{remote_ref}:{_TRACKING_REF}")
                return repo.rev_parse(f"{_TRACKING_REF}^{{commit}}").hexsha
            except git.exc.GitCommandError as exc:
                last = exc
                text = f"{exc.stderr or ''}"
                if "couldn't find remote ref" in text or "not our ref" in text:
                    continue
                raise SourceError(
                    f"cannot fetch {self.describe()}: {_short(exc)}{self._auth_hint(text)}",
                    code=ErrorCode.source_unreachable,
                ) from exc
        raise SourceError(
            f"{self.describe()}: no such branch or tag on the remote",
            code=ErrorCode.source_ref_not_found,
        ) from last

    def list_files(
        self, commit: str, bundle_names: Collection[str] | None = None
    ) -> dict[str, TreeFile]:
        narrow = bundle_names is not None and len(bundle_names) <= _MAX_PATHSPECS
        bundles = [f"{BUNDLES_DIR}/{n}" for n in sorted(bundle_names or ())] if narrow else []
        out = self._git(
            "ls_tree",
            f"cannot list {commit[:12]}",
            "-r",
            "-z",
            "--full-tree",
            commit,
            "--",
            *self._pathspecs(*(bundles if narrow else [BUNDLES_DIR]), ENVIRONMENTS_DIR, ".kneo"),
        )
        names = None if bundle_names is None else set(bundle_names)
        files: dict[str, TreeFile] = {}
        for record in out.split("\0"):
            if not record:
                continue
            meta, _, full = record.partition("\t")
            parts, path = meta.split(), self._relative(full)
            if len(parts) != 3 or parts[1] != "blob" or path is None or not wanted(path):
                continue
            if names is None or not path.startswith(BUNDLES_DIR + "/") or bundle_of(path) in names:
                files[path] = TreeFile(path, parts[2])
        return files

    def changed_paths(self, old: str, new: str) -> list[tuple[str, str]] | None:
        try:
            out = self._git(
                "diff_tree",
                f"cannot compare {old[:12]} with {new[:12]}",
                "-r",
                "-z",
                "--no-renames",
                "--name-status",
                old,
                new,
                "--",
                *self._pathspecs(BUNDLES_DIR, ENVIRONMENTS_DIR, ".kneo"),
            )
        except SourceError:
            return None  # e.g. a force-push made the old commit unreachable: a full pass
        fields = out.split("\0")
        changes = []
        for status, full in zip(fields[0::2], fields[1::2], strict=False):
            path = self._relative(full) if full else None
            if path and wanted(path):
                changes.append((status[:1] if status[:1] in ("A", "D") else "M", path))
        return changes

    def _git(self, command: str, what: str, *args: str) -> str:
        """One Git command on the repository; a failure is ``source_unreadable``."""
        with self._lock:
            repo = self._open()
            try:
                return str(getattr(repo.git, command)(*args))
            except git.exc.GitCommandError as exc:
                raise SourceError(
                    f"{what}: {_short(exc)}", code=ErrorCode.source_unreadable
                ) from exc

    def read_blob(self, blob_sha: str) -> bytes:
        with self._lock:
            repo = self._open()
            try:
                # at most one byte over the document limit: a huge blob is refused by the
                # parser without ever being held in memory whole
                stream = repo.odb.stream(bytes.fromhex(blob_sha))
                return bytes(stream.read(LIMITS.max_bytes + 1))
            except (ValueError, git.exc.GitError, OSError) as exc:
                raise SourceError(
                    f"cannot read blob {blob_sha[:12]}: {_short(exc)}",
                    code=ErrorCode.source_unreadable,
                ) from exc

    def read_blobs(self, blob_shas: Sequence[str]) -> Iterator[tuple[str, bytes]]:
        """Many blobs through one ``git cat-file --batch`` per chunk: one process and one
        pipe round trip per chunk instead of one per blob. Like :meth:`read_blob`, at most
        one byte over the document limit of each blob is kept."""
        keep_at_most = LIMITS.max_bytes + 1
        for start in range(0, len(blob_shas), _BATCH):
            chunk = blob_shas[start : start + _BATCH]
            with self._lock:
                try:
                    proc = self._open().git.cat_file(
                        "--batch", as_process=True, istream=subprocess.PIPE
                    )
                    proc.stdin.write("".join(f"{sha}\n" for sha in chunk).encode())
                    proc.stdin.close()
                except (git.exc.GitError, OSError) as exc:
                    raise SourceError(
                        f"cannot read blobs: {_short(exc)}", code=ErrorCode.source_unreadable
                    ) from exc
                try:
                    for sha in chunk:
                        header = proc.stdout.readline().split()
                        if len(header) != 3 or header[1] != b"blob":
                            raise SourceError(
                                f"cannot read blob {sha[:12]}: not a blob in the repository",
                                code=ErrorCode.source_unreadable,
                            )
                        size = int(header[2])
                        data = proc.stdout.read(min(size, keep_at_most))
                        left = size - len(data) + 1  # the rest, and the newline after it
                        while left > 0:
                            skipped = len(proc.stdout.read(min(left, 1 << 20)))
                            if not skipped:
                                break
                            left -= skipped
                        yield sha, bytes(data)
                finally:
                    proc.stdout.close()
                    with contextlib.suppress(git.exc.GitError):  # stopped early: raised above
                        proc.wait()


def _short(exc: BaseException) -> str:
    """Git's own last error line, without the command echo, a URL's user information or a
    known secret redacted (git is never given one in a URL; this is the second lock)."""
    if isinstance(exc, git.exc.GitCommandError):
        text = str(exc.stderr or "").strip().strip("'").strip()
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if lines:
            return redact_text(lines[-1].removeprefix("stderr: ").strip("'")[:300])
        return f"git exited with status {exc.status}"
    return redact_text(str(exc)[:300])
