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
batches. Git reads go through the injected :class:`Source`. The spec check is
:mod:`kneo.controller.spec_checks`'s.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any

from pydantic import ValidationError

from kneo.bundle.eval_results import verify_eval_results
from kneo.bundle.format import Bundle, EvalAttestation, parse_bundle
from kneo.bundle.keys import Keyring
from kneo.bundle.verify import verify_parsed
from kneo.clock import Clock, SystemClock
from kneo.controller.code_pins import pinned_names, prefetch, read_pinned
from kneo.controller.model import (
    DesiredEnvironment,
    DesiredRevision,
    DesiredState,
    Problem,
)
from kneo.controller.source import (
    BUNDLES_DIR,
    ENVIRONMENTS_DIR,
    PROJECT_CONFIG,
    Source,
    SourceError,
    TreeFile,
)
from kneo.controller.spec_checks import SpecChecker, default_spec_checker
from kneo.documents import parse_yaml
from kneo.errors import BundleError, ErrorCode, KneoError
from kneo.logs import get_logger
from kneo.names import is_valid_name
from kneo.policy.environment import EnvironmentPolicy
from kneo.policy.ratchet import effective_policy
from kneo.spec.project import ProjectConfig

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


def _path_parts(path: str) -> tuple[str, ...]:
    """``PurePosixPath(path).parts`` for a relative path (empty and ``.`` segments dropped),
    ``()`` for an absolute one (never a bundle's): a split, a fifth of the cost, twice per
    bundle file in a pass."""
    if path.startswith("/"):
        return ()
    return tuple(p for p in path.split("/") if p and p != ".")


def identity_from_path(path: str) -> tuple[str, str] | None:
    """``(name, environment)`` of ``bundles/<name>/<environment>.json``, the only place a
    bundle file may live; ``None`` for any other path or a name that is not valid
    (:mod:`kneo.names`). The path, never the file's content, says which (bundle,
    environment) a file speaks for: content is trusted only once verified, and then it
    must agree."""
    parts = _path_parts(path)
    if len(parts) != 3 or parts[0] != BUNDLES_DIR or not parts[2].endswith(".json"):
        return None
    name, environment = parts[1], parts[2][: -len(".json")]
    return (name, environment) if is_valid_name(name) and is_valid_name(environment) else None


#: ``bundles/<name>/evals/<environment>.json``: signed eval results for that bundle file.
RESULTS_DIR = "evals"


def results_identity(path: str) -> tuple[str, str] | None:
    """``(name, environment)`` of an eval results file (:mod:`kneo.bundle.eval_results`)
    beside ``bundles/<name>/<environment>.json``; ``None`` for any other path."""
    parts = _path_parts(path)
    if len(parts) != 4 or parts[0] != BUNDLES_DIR or parts[2] != RESULTS_DIR:
        return None
    if not parts[3].endswith(".json"):
        return None
    name, environment = parts[1], parts[3][: -len(".json")]
    return (name, environment) if is_valid_name(name) and is_valid_name(environment) else None


@dataclass(frozen=True)
class _Judged:
    """A cached verdict for one (bundle blob, environment blob, config blob)."""

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


@dataclass
class LoadStats:
    files: int = 0
    judged: int = 0
    cached: int = 0
    seconds: float = 0.0


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
        self.keyring = keyring
        self.keyring_id = keyring_id(keyring)
        self.clock = clock or SystemClock()
        self._spec_checker = spec_checker
        self._parsed: dict[str, tuple[Bundle, dict[str, Any]] | Problem] = {}
        self._judged: dict[tuple[str | None, ...], _Judged] = {}
        self._environments: dict[tuple[str, str, str | None], DesiredEnvironment] = {}
        #: the pinned code files this pass prefetched, by Git object name
        self._pinned: dict[str, bytes] = {}
        self.last_stats = LoadStats()

    @property
    def spec_checker(self) -> SpecChecker:
        if self._spec_checker is None:
            self._spec_checker = default_spec_checker()
        return self._spec_checker

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
        environments = self._read_environments(source, files, config_sha, problems)
        if policy is not None:
            environments, changed = policy(environments, files)
            if changed and scope is not None:
                files, scope, bundle_count = source.list_files(commit), None, None
        environments = _check_chains(environments)
        stats.files = len(files)
        results = {
            key: files[p].blob_sha for p in files if (key := results_identity(p)) is not None
        }
        bundle_files = sorted(
            p for p in files if p.startswith(BUNDLES_DIR + "/") and results_identity(p) is None
        )
        now = self.clock.now()
        self._prefetch(source, files, bundle_files)
        revisions = self._judge_all(
            source,
            files,
            bundle_files,
            results,
            environments,
            config_sha,
            commit,
            now,
            stats,
            problems,
            progress,
        )
        self._forget_unused(
            {files[p].blob_sha for p in bundle_files},
            len(bundle_files) if bundle_count is None else bundle_count,
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
        source: Source,
        files: Mapping[str, TreeFile],
        bundle_files: list[str],
        results: Mapping[tuple[str, str], str],
        environments: Mapping[str, DesiredEnvironment],
        config_sha: str | None,
        commit: str,
        now: datetime,
        stats: LoadStats,
        problems: list[Problem],
        progress: Progress | None,
    ) -> dict[tuple[str, str], DesiredRevision]:
        """Every bundle file judged, in path order, as a desired revision (a path that
        cannot name one is a problem of the whole state)."""
        revisions: dict[tuple[str, str], DesiredRevision] = {}
        self._pinned = self._prefetch_code(
            source, files, bundle_files, results, environments, commit, now
        )
        for index, path in enumerate(bundle_files):
            if progress is not None:
                progress(index + 1, len(bundle_files))
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
            blob = files[path].blob_sha
            try:
                judged = self._judge(
                    source,
                    commit,
                    path,
                    key,
                    blob,
                    results.get(key),
                    environments,
                    config_sha,
                    now,
                    stats,
                )
            except SourceError:
                raise  # Git cannot read the blob: the repository's problem; retried next pass
            except Exception as exc:  # whatever one file does stays with that file
                log.exception("judging %s failed", path)
                why = f"{path}: {type(exc).__name__}: {exc}"[:500]
                problem = Problem(ErrorCode.bundle_unreadable, why)
                # judged again next time
                judged = _Judged(*key, None, (), None, None, (problem,), ())
            revisions[key] = self._revision(
                path,
                key,
                blob,
                results.get(key),
                judged,
                environments.get(key[1]),
                config_sha,
                commit,
            )
        return revisions

    def _read_environments(
        self,
        source: Source,
        files: Mapping[str, TreeFile],
        config_sha: str | None,
        problems: list[Problem],
    ) -> dict[str, DesiredEnvironment]:
        """Every ``environments/<name>.yaml`` judged (with the project config's policies);
        a file that cannot name an environment is a problem of the whole state."""
        project_policies, config_problem = self._project_policies(source, config_sha)
        environments: dict[str, DesiredEnvironment] = {}
        for path, file in sorted(files.items()):
            if not path.startswith(ENVIRONMENTS_DIR + "/"):
                continue
            if len(_path_parts(path)) != 2:
                continue  # a policy approval (environments/approvals/), read by the ratchet
            env_name = PurePosixPath(path).stem
            if not is_valid_name(env_name):
                problems.append(
                    Problem(
                        ErrorCode.environment_invalid,
                        f"{path}: not read; {env_name!r} is not a valid environment name",
                    )
                )
                continue
            if env_name in environments:
                environments[env_name] = replace(
                    environments[env_name],
                    problems=(
                        Problem(
                            ErrorCode.environment_invalid,
                            f"environment {env_name!r} has both a .yaml and a .yml file",
                        ),
                    ),
                )
                continue
            environments[env_name] = self._environment(
                source, env_name, path, file.blob_sha, config_sha, project_policies, config_problem
            )
        return environments

    def _revision(
        self,
        path: str,
        key: tuple[str, str],
        blob: str,
        results_blob: str | None,
        judged: _Judged,
        env: DesiredEnvironment | None,
        config_sha: str | None,
        commit: str,
    ) -> DesiredRevision:
        """One judged bundle file as a desired revision. Its fingerprint covers everything
        the verdict depends on (the file, its eval results file, its environment file, the
        project config, the keys)."""
        env_sha = env.identity if env else "-"
        config_sha = env.config_sha if env else config_sha
        fingerprint = hashlib.sha256(
            f"{blob}:{env_sha}:{config_sha or '-'}:{self.keyring_id}".encode()
            + (f":{results_blob}".encode() if results_blob else b"")
        ).hexdigest()[:32]
        return DesiredRevision(
            name=key[0],
            environment=key[1],
            path=path,
            fingerprint=fingerprint,
            commit=commit,
            digest=judged.digest,
            signer_key_ids=judged.signer_key_ids,
            approved_by=judged.approved_by,
            spec=judged.spec,
            problems=judged.problems,
            diagnostics=judged.diagnostics,
            recheck_at=judged.expires_at,
            evals=judged.evals,
            code_files=judged.code_files,
        )

    def _cached(self, cache_key: tuple[str | None, ...], now: datetime) -> _Judged | None:
        cached = self._judged.get(cache_key)
        if cached is not None and (cached.expires_at is None or now <= cached.expires_at):
            return cached
        return None

    def _prefetch(
        self, source: Source, files: Mapping[str, TreeFile], bundle_files: list[str]
    ) -> None:
        """Parse the bundle blobs not cached yet, read in batches (one Git round trip per
        batch, not per file). A file whose parse fails unexpectedly is left to
        :meth:`_judge`, which reports it as that file's problem."""
        wanted: dict[str, str] = {}
        for path in bundle_files:
            blob = files[path].blob_sha
            if blob not in self._parsed and identity_from_path(path) is not None:
                wanted.setdefault(blob, path)
        if len(wanted) < 2:
            return
        for blob, raw in source.read_blobs(list(wanted)):
            try:
                self._parsed[blob] = _parse(wanted[blob], raw)
            except Exception:  # judged (and reported) with its path in _judge
                log.debug("parsing %s failed", wanted[blob], exc_info=True)

    def _prefetch_code(
        self,
        source: Source,
        files: Mapping[str, TreeFile],
        bundle_files: list[str],
        results: Mapping[tuple[str, str], str],
        environments: Mapping[str, DesiredEnvironment],
        commit: str,
        now: datetime,
    ) -> dict[str, bytes]:
        """The pinned code of every bundle this pass judges afresh, read in one batch."""
        names: list[str] = []
        for path in bundle_files:
            key, parsed = identity_from_path(path), self._parsed.get(files[path].blob_sha)
            env = environments.get(key[1]) if key is not None else None
            if key is None or env is None or not isinstance(parsed, tuple):
                continue
            cache_key = (files[path].blob_sha, *key, env.identity, env.config_sha)
            if self._cached((*cache_key, results.get(key)), now) is None:
                names += pinned_names(commit, parsed[0].spec)
        return prefetch(source, names) if names else {}

    def _forget_unused(self, blobs: set[str], files: int) -> None:
        """Keep the caches bounded by what the repository holds now (``files`` bundle files,
        ``blobs`` those just read) plus some history."""
        if len(self._parsed) > 2 * files + 256:
            self._parsed = {b: v for b, v in self._parsed.items() if b in blobs}
        if len(self._judged) > 2 * files + 256:
            self._judged = {k: v for k, v in self._judged.items() if k[0] in blobs}

    # ---------------------------------------------------------------- environments

    def _project_policies(
        self, source: Source, config_sha: str | None
    ) -> tuple[ProjectConfig | None, Problem | None]:
        """The watched repo's ``.kneo/config.yaml`` (it can only make environments stricter)."""
        if config_sha is None:
            return None, None

        try:
            data = parse_yaml(source.read_blob(config_sha).decode("utf-8"), source=PROJECT_CONFIG)
            return ProjectConfig.model_validate(data or {}), None
        except SourceError:
            raise
        except Exception as exc:  # whatever the file holds, it is the file's problem only
            return None, Problem(
                ErrorCode.project_config_invalid, f"{PROJECT_CONFIG}: {_message(exc)}"
            )

    def _environment(
        self,
        source: Source,
        name: str,
        path: str,
        blob_sha: str,
        config_sha: str | None,
        project: ProjectConfig | None,
        config_problem: Problem | None,
    ) -> DesiredEnvironment:
        cache_key = (path, blob_sha, config_sha)
        cached = self._environments.get(cache_key)
        if cached is not None:
            return cached
        policy: EnvironmentPolicy | None = None
        problem = config_problem
        if problem is None:
            try:
                policy = effective_policy(
                    _parse_environment(name, path, source.read_blob(blob_sha)),
                    project.policy_for(name) if project is not None else None,
                )
            except SourceError:
                raise
            except Exception as exc:  # whatever the file holds, it is the file's problem only
                problem = Problem(ErrorCode.environment_invalid, f"{path}: {_message(exc)}")
                policy = None
        if policy is None:
            env = DesiredEnvironment(
                name,
                path,
                blob_sha,
                problems=(problem,) if problem else (),
                config_sha=config_sha,
            )
        else:
            env = DesiredEnvironment.of(name, path, blob_sha, policy, config_sha)
        self._environments[cache_key] = env
        return env

    # ---------------------------------------------------------------- bundles

    def _judge(
        self,
        source: Source,
        commit: str,
        path: str,
        key: tuple[str, str],
        blob: str,
        results_blob: str | None,
        environments: Mapping[str, DesiredEnvironment],
        config_sha: str | None,
        now: datetime,
        stats: LoadStats,
    ) -> _Judged:
        parsed = self._parsed.get(blob)
        if parsed is None:
            parsed = self._parsed[blob] = _parse(path, source.read_blob(blob))
        if isinstance(parsed, Problem):
            return _Judged(key[0], key[1], None, (), None, None, (parsed,), ())
        bundle, document = parsed
        env = environments.get(key[1])
        if env is None or env.problems:
            # Environment-level verdicts depend on other files too: cheap, never cached.
            return self._judge_fresh(path, key, bundle, document, env, now, (source, commit))
        cache_key = (blob, *key, env.identity, env.config_sha, results_blob)
        cached = self._cached(cache_key, now)
        if cached is not None:
            stats.cached += 1
            return cached
        stats.judged += 1
        judged = self._judge_fresh(path, key, bundle, document, env, now, (source, commit))
        if results_blob is not None and not judged.problems:
            judged = self._with_results(path, bundle, judged, source.read_blob(results_blob), env)
        self._judged[cache_key] = judged
        return judged

    def _with_results(
        self, path: str, bundle: Bundle, judged: _Judged, raw: bytes, env: DesiredEnvironment
    ) -> _Judged:
        """The bundle's verdict with its eval results file's attestations added; a file that
        does not verify, or is for another digest, rejects the bundle as an edited one would."""
        where = path[: -len(".json")].rsplit("/", 1)
        results_path = f"{where[0]}/{RESULTS_DIR}/{where[1]}.json"
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
            expires = now if exc.code == "bundle_key_expired" else judged.expires_at
            problem = Problem(exc.code, f"{results_path}: {exc.message}")
            return replace(judged, problems=(problem,), expires_at=expires)
        # Judged again when the first signing key (of the bundle or of this file) expires.
        windows = [k.not_after for k in self.keyring if k.key_id in signers]
        windows.append(judged.expires_at)
        expires = min((w for w in windows if w is not None), default=None)
        return replace(judged, evals=judged.evals + tuple(results.evals), expires_at=expires)

    def _judge_fresh(
        self,
        path: str,
        key: tuple[str, str],
        bundle: Bundle,
        document: dict[str, Any],
        env: DesiredEnvironment | None,
        now: datetime,
        at: tuple[Source, str],
    ) -> _Judged:
        base = _Judged(
            key[0],
            key[1],
            bundle.digest,
            (),
            bundle.approved_by,
            bundle.spec,
            (),
            (),
        )
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
            signers = verify_parsed(  # parsed once, by _judge
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
        code_files, mismatch = read_pinned(*at, path, bundle.spec, self._pinned)
        if mismatch is not None:
            return replace(base, problems=(mismatch,))
        policy = env.policy
        diagnostics: list[dict[str, Any]] = []
        problems: list[Problem] = []
        if policy is not None:
            diagnostics, problems = self.spec_checker(bundle.spec, policy)
        windows = [k.not_after for k in self.keyring if k.key_id in signers]
        expires_at = min((w for w in windows if w is not None), default=None)
        return replace(
            base,
            signer_key_ids=signers,
            problems=tuple(problems),
            diagnostics=tuple(diagnostics),
            expires_at=expires_at,
            evals=tuple(bundle.evals or ()),
            code_files=code_files,
        )


def _parse(path: str, raw: bytes) -> tuple[Bundle, dict[str, Any]] | Problem:
    """A bundle document, or the problem that says why it is not one."""
    try:
        return parse_bundle(raw)
    except BundleError as exc:
        return Problem(exc.code, f"{path}: {exc.message}")


def _parse_environment(name: str, path: str, raw: bytes) -> EnvironmentPolicy:
    data = parse_yaml(raw.decode("utf-8"), source=path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise KneoError(f"{path} must be a YAML mapping", code=ErrorCode.environment_invalid)
    policy = EnvironmentPolicy.model_validate(data)
    if policy.environment is not None and policy.environment != name:
        raise KneoError(
            f"environment is {policy.environment!r} but the file is named for {name!r}",
            code=ErrorCode.environment_invalid,
        )
    return policy.model_copy(update={"environment": name})


def _check_chains(environments: dict[str, DesiredEnvironment]) -> dict[str, DesiredEnvironment]:
    """Promotion chains must name existing environments and must not loop."""
    out = dict(environments)
    for name, env in environments.items():
        upstream = env.promotion.require_approved_in
        if upstream is None or env.problems:
            continue
        if upstream not in environments:
            out[name] = replace(
                env,
                problems=(
                    Problem(
                        ErrorCode.upstream_environment_missing,
                        f"{env.path}: require_approved_in names {upstream!r}, which has no "
                        f"{ENVIRONMENTS_DIR}/{upstream}.yaml",
                    ),
                ),
            )
            continue
        seen: set[str] = {name}
        current: str | None = upstream
        while current is not None and current in environments:
            if current in seen:
                out[name] = replace(
                    env,
                    problems=(
                        Problem(
                            ErrorCode.promotion_cycle,
                            f"{env.path}: require_approved_in forms a cycle through {current!r}",
                        ),
                    ),
                )
                break
            seen.add(current)
            current = environments[current].promotion.require_approved_in
    return out


def _message(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(root)"
        return f"{where}: {first['msg']}"
    if isinstance(exc, KneoError):
        return exc.message
    return str(exc)
