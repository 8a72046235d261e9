"""A full pass's verification in worker processes (kneo.controller.verify_pool): the same
verdicts as verifying in the pass's own process, whatever the files hold, no worker left
behind, and a pool that breaks costs only the parallelism."""

from __future__ import annotations

import json
import multiprocessing
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from gitops_fixtures import Keys, Repo, spec

from kneo.bundle.keys import Keyring
from kneo.clock import ManualClock
from kneo.controller.loader import DesiredStateLoader, LoadStats
from kneo.controller.model import DesiredState
from kneo.controller.source import GitSource

NOW = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture
def mixed(tmp_path: Path, keys: Keys) -> Repo:
    """Good bundles beside every way a file can fail verification (or pass it and fail
    later), in environments with different signature rules."""
    repo = Repo(tmp_path / "mixed")
    repo.write("environments/dev.yaml", "version: v1\n")
    repo.write("environments/strict.yaml", "version: v1\nrequired_signatures: 2\n")
    repo.write("environments/narrow.yaml", "version: v1\naccepted_key_ids: [release]\n")
    for i in range(12):
        repo.write(f"bundles/good{i}/dev.json", keys.bundle(f"good{i}", "dev", spec(f"v{i}")))
    repo.write("bundles/forged/dev.json", keys.bundle("forged", "dev", key=keys.forged))
    tampered = json.loads(keys.bundle("tampered", "dev"))
    tampered["approved_by"] = "mallory"
    repo.write("bundles/tampered/dev.json", json.dumps(tampered))
    edited = json.loads(keys.bundle("edited", "dev"))
    edited["spec"]["agent"]["system_prompt"] = "changed after signing"
    repo.write("bundles/edited/dev.json", json.dumps(edited))
    repo.write("bundles/moved/dev.json", keys.bundle("elsewhere", "dev"))
    repo.write("bundles/broken/dev.json", "{not json")
    repo.write("bundles/one/strict.json", keys.bundle("one", "strict"))
    repo.write("bundles/two/strict.json", keys.bundle("two", "strict", cosign="release"))
    repo.write("bundles/ci/narrow.json", keys.bundle("ci", "narrow"))
    repo.write("bundles/release/narrow.json", keys.bundle("release", "narrow", key="release"))
    repo.write("bundles/lost/nowhere.json", keys.bundle("lost", "nowhere"))
    repo.commit("mixed")
    return repo


def _load(
    repo: Repo, keyring: Keyring, tmp_path: Path, processes: int
) -> tuple[DesiredState, LoadStats]:
    loader = DesiredStateLoader(
        keyring,
        clock=ManualClock(NOW),
        spec_checker=lambda spec, policy: ([], []),
        verify_processes=processes,
        parallel_from=1,
    )
    source = GitSource(repo.url, ref="main", cache_dir=tmp_path / f"cache{processes}")
    try:
        desired = loader.load(source, source.fetch())
    finally:
        source.close()
    return desired, loader.last_stats


def _verdicts(desired: DesiredState) -> dict[Any, Any]:
    return {
        key: (
            rev.digest,
            rev.signer_key_ids,
            [(p.code, p.message) for p in rev.problems],
            rev.recheck_at,
        )
        for key, rev in desired.revisions.items()
    }


def test_workers_reach_the_verdicts_the_pass_reaches_itself(
    mixed: Repo, keys: Keys, tmp_path: Path
) -> None:
    here, here_stats = _load(mixed, keys.keyring(), tmp_path, processes=0)
    pooled, pooled_stats = _load(mixed, keys.keyring(), tmp_path, processes=2)

    assert _verdicts(pooled) == _verdicts(here)
    assert here_stats.parallel == 0
    # every file a worker could verify was (not the unparsable one, nor the one whose
    # environment does not exist)
    assert pooled_stats.parallel == pooled_stats.judged == len(pooled.revisions) - 2
    codes = {key: [p.code for p in rev.problems] for key, rev in pooled.revisions.items()}
    assert codes[("good3", "dev")] == [] and pooled.revisions[("good3", "dev")].signer_key_ids
    assert codes[("forged", "dev")] == ["bundle_signature_invalid"]
    assert codes[("tampered", "dev")] == ["bundle_signature_invalid"]
    assert codes[("edited", "dev")] == ["bundle_digest_mismatch"]
    assert codes[("moved", "dev")] == ["bundle_path_mismatch"]
    assert codes[("broken", "dev")] == ["bundle_malformed"]
    assert codes[("one", "strict")] == ["bundle_insufficient_signatures"]
    assert codes[("two", "strict")] == []
    assert codes[("ci", "narrow")] == ["bundle_key_not_accepted"]
    assert codes[("release", "narrow")] == []
    assert codes[("lost", "nowhere")] == ["environment_missing"]
    assert multiprocessing.active_children() == []  # every worker joined


def test_a_pass_with_few_files_to_verify_starts_no_worker(
    mixed: Repo, keys: Keys, tmp_path: Path
) -> None:
    loader = DesiredStateLoader(
        keys.keyring(), clock=ManualClock(NOW), spec_checker=lambda spec, policy: ([], [])
    )
    source = GitSource(mixed.url, ref="main", cache_dir=tmp_path / "cache")
    try:
        loader.load(source, source.fetch())
    finally:
        source.close()
    assert loader.last_stats.judged > 0 and loader.last_stats.parallel == 0


class _KillsItsWorker(Keyring):
    """A keyring whose copy in a worker process ends that process as it arrives."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (os._exit, (3,))


def test_a_broken_pool_costs_the_parallelism_not_the_verdicts(
    mixed: Repo, keys: Keys, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    here, _ = _load(mixed, keys.keyring(), tmp_path, processes=0)
    broken, stats = _load(mixed, _KillsItsWorker(keys.keyring()), tmp_path, processes=2)

    assert _verdicts(broken) == _verdicts(here)
    assert stats.judged == len(here.revisions) - 2 and stats.parallel == 0
    assert "verifying in worker processes failed" in caplog.text
    assert multiprocessing.active_children() == []
