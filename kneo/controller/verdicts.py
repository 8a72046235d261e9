"""One bundle file's verdict: parsed, verified for its environment, its spec checked, cached.

For a bundle file the judge checks, in order (stopping at the first failure): the bundle
parses within the document limits; its environment has a usable ``environments/<env>.yaml``;
its signatures verify against the controller's trusted keyring, narrowed by the
environment's ``accepted_key_ids`` and counted against ``required_signatures``; its signed
name and environment are the path's; the project files its spec pins are the commit's; its
spec validates and passes the environment's merged policy (:mod:`kneo.controller.spec_checks`).
An eval results file beside it must verify for the same digest. Failures are
:class:`Problem` values in the verdict.

Verdicts are cached within one process by (bundle blob, path, environment, project config,
results blob): :func:`verdict_key`, the one shape both judging and prefetching look up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from kneo.bundle.eval_results import verify_eval_results
from kneo.bundle.format import Bundle, EvalAttestation, parse_bundle
from kneo.bundle.keys import Keyring
from kneo.bundle.verify import verify_parsed
from kneo.clock import Clock
from kneo.controller.bundle_paths import identity_from_path, results_path
from kneo.controller.code_pins import pinned_names, prefetch, read_pinned
from kneo.controller.model import DesiredEnvironment, Problem
from kneo.controller.source import ENVIRONMENTS_DIR, Source, TreeFile
from kneo.controller.spec_checks import SpecChecker, default_spec_checker
from kneo.errors import BundleError, ErrorCode
from kneo.logs import get_logger

log = get_logger("kneo.controller")

#: A verdict's cache key: (bundle blob, name, environment, environment identity, project
#: config blob, eval results blob).
VerdictKey = tuple[str | None, ...]


@dataclass(frozen=True)
class Verdict:
    """What judging one bundle file found (cached per :func:`verdict_key`)."""

    name: str
    environment: str
    digest: str | None
    signer_key_ids: tuple[str, ...]
    approved_by: str | None
    spec: Mapping[str, Any] | None
    problems: tuple[Problem, ...]
    diagnostics: tuple[Mapping[str, Any], ...]
    #: Re-judge after this time (a signing key's validity ends); ``None``: never.
    expires_at: datetime | None = None
    #: The bundle's signed eval results (verified with it), then those of its results file.
    evals: tuple[EvalAttestation, ...] = ()
    #: The project files its spec pins, as the commit holds them (sha256 -> bytes).
    code_files: Mapping[str, bytes] = field(default_factory=dict, repr=False)

    @classmethod
    def failed(cls, key: tuple[str, str], problem: Problem) -> Verdict:
        """A file that is not a bundle at all (or whose judging failed): its problem only."""
        return cls(key[0], key[1], None, (), None, None, (problem,), ())


@dataclass(frozen=True)
class CommitFiles:
    """What one pass judges its bundle files by: the commit's files (with the bundle files
    among them, and each (name, environment)'s eval results blob), the environments in
    force, the project config blob, and the moment keys are judged at."""

    source: Source
    commit: str
    files: Mapping[str, TreeFile]
    bundle_files: list[str]
    results: Mapping[tuple[str, str], str]
    environments: Mapping[str, DesiredEnvironment]
    config_sha: str | None
    now: datetime


def verdict_key(
    blob: str, key: tuple[str, str], env: DesiredEnvironment, results_blob: str | None
) -> VerdictKey:
    """What a cached verdict of the bundle blob ``blob`` at ``key`` depends on."""
    return (blob, *key, env.identity, env.config_sha, results_blob)


@dataclass
class LoadStats:
    """What one load did: files listed, verdicts judged afresh or found cached, seconds."""

    files: int = 0
    judged: int = 0
    cached: int = 0
    seconds: float = 0.0


class BundleJudge:
    """Judges bundle files against a fixed keyring; keeps parses and verdicts between
    passes."""

    def __init__(self, keyring: Keyring, clock: Clock, spec_checker: SpecChecker | None) -> None:
        self.keyring = keyring
        self.clock = clock
        self._spec_checker = spec_checker
        self._parsed: dict[str, tuple[Bundle, dict[str, Any]] | Problem] = {}
        self._verdicts: dict[VerdictKey, Verdict] = {}
        #: the pinned code files this pass prefetched, by Git object name
        self._pinned: dict[str, bytes] = {}

    @property
    def spec_checker(self) -> SpecChecker:
        if self._spec_checker is None:
            self._spec_checker = default_spec_checker()
        return self._spec_checker

    @spec_checker.setter
    def spec_checker(self, checker: SpecChecker) -> None:
        self._spec_checker = checker

    # ---------------------------------------------------------------- before judging

    def prefetch(self, at: CommitFiles) -> None:
        """Read what this pass will judge afresh in batches (one Git round trip per batch,
        not per file): the bundle blobs not parsed yet, then the code their specs pin."""
        self._parse_uncached(at)
        self._pinned = self._pinned_code(at)

    def _parse_uncached(self, at: CommitFiles) -> None:
        """Parse the bundle blobs not cached yet. A file whose parse fails unexpectedly is
        left to :meth:`judge`, which reports it as that file's problem."""
        wanted: dict[str, str] = {}
        for path in at.bundle_files:
            blob = at.files[path].blob_sha
            if blob not in self._parsed and identity_from_path(path) is not None:
                wanted.setdefault(blob, path)
        if len(wanted) < 2:
            return
        for blob, raw in at.source.read_blobs(list(wanted)):
            try:
                self._parsed[blob] = _parse(wanted[blob], raw)
            except Exception:  # judged (and reported) with its path in judge
                log.debug("parsing %s failed", wanted[blob], exc_info=True)

    def _pinned_code(self, at: CommitFiles) -> dict[str, bytes]:
        """The pinned code of every bundle this pass judges afresh, read in one batch."""
        names: list[str] = []
        for path in at.bundle_files:
            blob = at.files[path].blob_sha
            key, parsed = identity_from_path(path), self._parsed.get(blob)
            env = at.environments.get(key[1]) if key is not None else None
            if key is None or env is None or not isinstance(parsed, tuple):
                continue
            if self._cached(verdict_key(blob, key, env, at.results.get(key)), at.now) is None:
                names += pinned_names(at.commit, parsed[0].spec)
        return prefetch(at.source, names) if names else {}

    def forget_unused(self, blobs: set[str], files: int) -> None:
        """Keep the caches bounded by what the repository holds now (``files`` bundle files,
        ``blobs`` those just read) plus some history."""
        if len(self._parsed) > 2 * files + 256:
            self._parsed = {b: v for b, v in self._parsed.items() if b in blobs}
        if len(self._verdicts) > 2 * files + 256:
            self._verdicts = {k: v for k, v in self._verdicts.items() if k[0] in blobs}

    # ---------------------------------------------------------------- judging

    def judge(self, at: CommitFiles, path: str, key: tuple[str, str], stats: LoadStats) -> Verdict:
        """The verdict on the bundle file at ``path`` (which names ``key``), cached when it
        depends on this file, its environment and its results file alone."""
        blob = at.files[path].blob_sha
        parsed = self._parsed.get(blob)
        if parsed is None:
            parsed = self._parsed[blob] = _parse(path, at.source.read_blob(blob))
        if isinstance(parsed, Problem):
            return Verdict.failed(key, parsed)
        bundle, document = parsed
        env = at.environments.get(key[1])
        if env is None or env.problems:
            # Environment-level verdicts depend on other files too: cheap, never cached.
            return self._judge_fresh(path, key, bundle, document, env, at)
        results_blob = at.results.get(key)
        cache_key = verdict_key(blob, key, env, results_blob)
        cached = self._cached(cache_key, at.now)
        if cached is not None:
            stats.cached += 1
            return cached
        stats.judged += 1
        verdict = self._judge_fresh(path, key, bundle, document, env, at)
        if results_blob is not None and not verdict.problems:
            raw = at.source.read_blob(results_blob)
            verdict = self._with_results(path, bundle, verdict, raw, env)
        self._verdicts[cache_key] = verdict
        return verdict

    def _cached(self, cache_key: VerdictKey, now: datetime) -> Verdict | None:
        cached = self._verdicts.get(cache_key)
        if cached is not None and (cached.expires_at is None or now <= cached.expires_at):
            return cached
        return None

    def _judge_fresh(
        self,
        path: str,
        key: tuple[str, str],
        bundle: Bundle,
        document: dict[str, Any],
        env: DesiredEnvironment | None,
        at: CommitFiles,
    ) -> Verdict:
        """Verified for its environment, its pinned code read, its spec checked."""
        base = Verdict(key[0], key[1], bundle.digest, (), bundle.approved_by, bundle.spec, (), ())
        verified = self._verified(base, path, key, bundle, document, env, at.now)
        if verified.problems or env is None:
            return verified
        code_files, mismatch = read_pinned(at.source, at.commit, path, bundle.spec, self._pinned)
        if mismatch is not None:
            return replace(base, problems=(mismatch,))
        diagnostics: list[dict[str, Any]] = []
        problems: list[Problem] = []
        if env.policy is not None:
            diagnostics, problems = self.spec_checker(bundle.spec, env.policy)
        return replace(
            base,
            signer_key_ids=verified.signer_key_ids,
            problems=tuple(problems),
            diagnostics=tuple(diagnostics),
            expires_at=self._first_expiry(verified.signer_key_ids),
            evals=tuple(bundle.evals or ()),
            code_files=code_files,
        )

    def _verified(
        self,
        base: Verdict,
        path: str,
        key: tuple[str, str],
        bundle: Bundle,
        document: dict[str, Any],
        env: DesiredEnvironment | None,
        now: datetime,
    ) -> Verdict:
        """``base`` with its signers once its environment is usable, its signatures verify
        for it and its signed identity is its path's; else with the problem that says why."""
        if env is None:
            problem = Problem(
                ErrorCode.environment_missing,
                f"{path} is for environment {key[1]!r}, which has no "
                f"{ENVIRONMENTS_DIR}/{key[1]}.yaml",
            )
            return replace(base, problems=(problem,))
        if env.problems:
            return replace(base, problems=env.problems)
        try:
            signers = verify_parsed(  # parsed once, by judge
                bundle,
                document,
                self.keyring,
                now=now,
                required_signatures=env.required_signatures,
                accepted_key_ids=env.accepted_key_ids,
            ).signer_key_ids
        except BundleError as exc:
            # Time-dependent verdicts (a key not yet valid) are not cached for long.
            expires = now if exc.code == "bundle_key_expired" else None
            return replace(
                base, problems=(Problem(exc.code, f"{path}: {exc.message}"),), expires_at=expires
            )
        if (bundle.name, bundle.environment) != key:
            problem = Problem(
                ErrorCode.bundle_path_mismatch,
                f"{path} holds bundle {bundle.name!r} for environment {bundle.environment!r} "
                f"(as signed), but its path says {key[0]!r} for {key[1]!r}; a bundle applies "
                "only where its path and its signed content agree",
            )
            return replace(base, problems=(problem,))
        return replace(base, signer_key_ids=signers)

    def _with_results(
        self, path: str, bundle: Bundle, verdict: Verdict, raw: bytes, env: DesiredEnvironment
    ) -> Verdict:
        """The bundle's verdict with its eval results file's attestations added; a file that
        does not verify, or is for another digest, rejects the bundle as an edited one would."""
        now = self.clock.now()
        try:
            results, signers = verify_eval_results(
                raw,
                bundle,
                self.keyring,
                now=now,
                required_signatures=env.required_signatures,
                accepted_key_ids=env.accepted_key_ids,
            )
        except BundleError as exc:
            expires = now if exc.code == "bundle_key_expired" else verdict.expires_at
            problem = Problem(exc.code, f"{results_path(path)}: {exc.message}")
            return replace(verdict, problems=(problem,), expires_at=expires)
        # Judged again when the first signing key (of the bundle or of this file) expires.
        windows = [k.not_after for k in self.keyring if k.key_id in signers]
        windows.append(verdict.expires_at)
        expires = min((w for w in windows if w is not None), default=None)
        return replace(verdict, evals=verdict.evals + tuple(results.evals), expires_at=expires)

    def _first_expiry(self, signers: tuple[str, ...]) -> datetime | None:
        """When the first of ``signers``' keys stops being valid (``None``: never)."""
        windows = [k.not_after for k in self.keyring if k.key_id in signers]
        return min((w for w in windows if w is not None), default=None)


def _parse(path: str, raw: bytes) -> tuple[Bundle, dict[str, Any]] | Problem:
    """A bundle document, or the problem that says why it is not one."""
    try:
        return parse_bundle(raw)
    except BundleError as exc:
        return Problem(exc.code, f"{path}: {exc.message}")
