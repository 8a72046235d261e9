"""Desired state at one commit: every bundle verified for its environment, with a blob cache.

A bundle file is ``bundles/<name>/<environment>.json``: the path says which (bundle,
environment) it speaks for, so nothing unverified ever decides desired state (a file
elsewhere, or with a name that is not valid, is a reconcile problem and is not read).
For each bundle file the loader checks, in order (stopping at the first failure): the
bundle parses within the document limits; its environment has a usable
``environments/<env>.yaml``; its signatures verify against the controller's trusted
keyring, narrowed by the environment's ``accepted_key_ids`` and counted against
``required_signatures``; its signed name and environment are the path's; its spec
validates and passes the environment's merged policy. Failures become :class:`Problem`
values on that file's revision; nothing here raises for bad input, and one file's fault,
foreseen or not, never stops the others from being judged.

Incremental work: an incremental reconcile passes a ``scope`` of bundle names
(:mod:`kneo.controller.incremental`) and only their files are listed, read and judged.
Within one process, judgements are also cached by (bundle blob, path, environment blob,
project-config blob), the keyring being fixed per loader; uncached blobs are read in
batches. Git reads go through the injected :class:`Source`.

The parts: which paths speak for which bundle (:mod:`kneo.controller.bundle_paths`), the
environment files (:mod:`kneo.controller.environment_files`), one bundle file's verdict
(:mod:`kneo.controller.verdicts`, with the spec check of :mod:`kneo.controller.spec_checks`);
this module lists the commit and assembles the desired state.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Collection, Mapping

from kneo.bundle.keys import Keyring
from kneo.clock import Clock, SystemClock
from kneo.controller.bundle_paths import identity_from_path, results_identity
from kneo.controller.environment_files import EnvironmentReader, check_chains
from kneo.controller.model import DesiredEnvironment, DesiredRevision, DesiredState, Problem
from kneo.controller.source import BUNDLES_DIR, PROJECT_CONFIG, Source, SourceError, TreeFile
from kneo.controller.spec_checks import SpecChecker
from kneo.controller.verdicts import BundleJudge, CommitFiles, LoadStats, Verdict
from kneo.errors import ErrorCode
from kneo.logs import get_logger

log = get_logger("kneo.controller")

#: Called with (done, total) while bundles are judged, for progress display.
Progress = Callable[[int, int], None]

#: Given the environments as the commit's files say and the files, the environments bundles
#: are judged by (the policy in force, :mod:`kneo.controller.ratchet`) and whether they
#: differ from the last pass's (then every bundle is judged again, not only a scope's).
PolicyHook = Callable[
    [dict[str, DesiredEnvironment], Mapping[str, TreeFile]],
    tuple[dict[str, DesiredEnvironment], bool],
]


def keyring_id(keyring: Keyring) -> str:
    """A stable id of what the keyring trusts (ids, algorithms, fingerprints, windows)."""
    parts = [json.dumps(k.describe(), sort_keys=True) for k in keyring]
    return hashlib.sha256("\n".join(sorted(parts)).encode()).hexdigest()[:16]


class DesiredStateLoader:
    """Builds :class:`DesiredState` for a commit; keeps caches between calls.

    The trusted keyring comes from the controller's configuration, never from the
    repository: environment files can only narrow it (``accepted_key_ids``).
    """

    def __init__(
        self,
        keyring: Keyring,
        *,
        clock: Clock | None = None,
        spec_checker: SpecChecker | None = None,
    ) -> None:
        self.keyring_id = keyring_id(keyring)
        self.clock = clock or SystemClock()
        self.environment_files = EnvironmentReader()
        self.judge = BundleJudge(keyring, self.clock, spec_checker)
        self.last_stats = LoadStats()

    @property
    def keyring(self) -> Keyring:
        """The controller's trusted keys, which its judge verifies signatures with."""
        return self.judge.keyring

    @keyring.setter
    def keyring(self, keyring: Keyring) -> None:
        self.judge.keyring = keyring

    @property
    def spec_checker(self) -> SpecChecker:
        return self.judge.spec_checker

    @spec_checker.setter
    def spec_checker(self, checker: SpecChecker) -> None:
        self.judge.spec_checker = checker

    def load(
        self,
        source: Source,
        commit: str,
        *,
        progress: Progress | None = None,
        scope: Collection[str] | None = None,
        bundle_count: int | None = None,
        policy: PolicyHook | None = None,
    ) -> DesiredState:
        """Desired state at ``commit``; with ``scope``, only those bundles' files are listed,
        read and judged (``bundle_count``: how many bundle files the whole commit has).
        ``policy`` turns the commit's environments into those in force; when they changed
        since the last pass, the whole commit is judged whatever the scope."""
        started = time.perf_counter()
        stats = LoadStats()
        files = source.list_files(commit) if scope is None else source.list_files(commit, scope)
        config_file = files.get(PROJECT_CONFIG)
        config_sha = config_file.blob_sha if config_file else None
        problems: list[Problem] = []
        environments = self.environment_files.read(source, files, config_sha, problems)
        if policy is not None:
            environments, changed = policy(environments, files)
            if changed and scope is not None:
                files, scope, bundle_count = source.list_files(commit), None, None
        environments = check_chains(environments)
        stats.files = len(files)
        at = CommitFiles(
            source,
            commit,
            files,
            sorted(
                p for p in files if p.startswith(BUNDLES_DIR + "/") and results_identity(p) is None
            ),
            {key: files[p].blob_sha for p in files if (key := results_identity(p)) is not None},
            environments,
            config_sha,
            self.clock.now(),
        )
        self.judge.prefetch(at)
        revisions = self._judge_all(at, stats, problems, progress)
        self.judge.forget_unused(
            {files[p].blob_sha for p in at.bundle_files},
            len(at.bundle_files) if bundle_count is None else bundle_count,
        )
        stats.seconds = time.perf_counter() - started
        self.last_stats = stats
        return DesiredState(
            commit,
            revisions,
            environments,
            tuple(problems),
            scope=None if scope is None else frozenset(scope),
            bundle_count=bundle_count,
        )

    def _judge_all(
        self,
        at: CommitFiles,
        stats: LoadStats,
        problems: list[Problem],
        progress: Progress | None,
    ) -> dict[tuple[str, str], DesiredRevision]:
        """Every bundle file judged, in path order, as a desired revision (a path that
        cannot name one is a problem of the whole state). Whatever one file does, foreseen
        or not, stays with that file."""
        revisions: dict[tuple[str, str], DesiredRevision] = {}
        for index, path in enumerate(at.bundle_files):
            if progress is not None:
                progress(index + 1, len(at.bundle_files))
            key = identity_from_path(path)
            if key is None:
                problems.append(
                    Problem(
                        ErrorCode.bundle_path_invalid,
                        f"{path}: not read; a bundle file is bundles/<name>/<environment>.json "
                        "with names of 1-64 of A-Z a-z 0-9 . _ - (starting with a letter or "
                        "digit)",
                        path=path,
                    )
                )
                continue
            try:
                verdict = self.judge.judge(at, path, key, stats)
            except SourceError:
                raise  # Git cannot read the blob: the repository's problem; retried next pass
            except Exception as exc:  # whatever one file does stays with that file
                log.exception("judging %s failed", path)
                why = f"{path}: {type(exc).__name__}: {exc}"[:500]
                # judged again next time
                verdict = Verdict.failed(key, Problem(ErrorCode.bundle_unreadable, why))
            revisions[key] = self._revision(at, path, key, verdict)
        return revisions

    def _revision(
        self, at: CommitFiles, path: str, key: tuple[str, str], verdict: Verdict
    ) -> DesiredRevision:
        """One judged bundle file as a desired revision. Its fingerprint covers everything
        the verdict depends on (the file, its eval results file, its environment file, the
        project config, the keys)."""
        blob, results_blob = at.files[path].blob_sha, at.results.get(key)
        env = at.environments.get(key[1])
        env_sha = env.identity if env else "-"
        config_sha = env.config_sha if env else at.config_sha
        fingerprint = hashlib.sha256(
            f"{blob}:{env_sha}:{config_sha or '-'}:{self.keyring_id}".encode()
            + (f":{results_blob}".encode() if results_blob else b"")
        ).hexdigest()[:32]
        return DesiredRevision(
            name=key[0],
            environment=key[1],
            path=path,
            fingerprint=fingerprint,
            commit=at.commit,
            digest=verdict.digest,
            signer_key_ids=verdict.signer_key_ids,
            approved_by=verdict.approved_by,
            spec=verdict.spec,
            problems=verdict.problems,
            diagnostics=verdict.diagnostics,
            recheck_at=verdict.expires_at,
            evals=verdict.evals,
            code_files=verdict.code_files,
        )
