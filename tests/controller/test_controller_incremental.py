"""Incremental reconcile (issue 23): only what changed since the saved state is read, judged,
observed and written, and every input that could change a verdict forces a full pass.

Real Git repositories and a real store; what the loader reads is observed through a
:class:`GitSource` that records the blobs it is asked for, and the spec checker through a
counting wrapper, never through timing.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from gitops_fixtures import Keys, Repo, spec

from kneo.clock import ManualClock
from kneo.controller import incremental
from kneo.controller.config import ControllerConfig
from kneo.controller.controller import Controller
from kneo.controller.source import GitSource
from kneo.controller.spec_checks import default_spec_checker
from kneo.policy.environment import EnvironmentPolicy
from tests.cli_zygote import KNEO


class RecordingSource(GitSource):
    """The real Git source, remembering which blobs were read."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.read: list[str] = []

    def read_blob(self, blob_sha: str) -> bytes:
        self.read.append(blob_sha)
        return super().read_blob(blob_sha)

    def read_blobs(self, blob_shas: Sequence[str]) -> Iterator[tuple[str, bytes]]:
        self.read.extend(blob_shas)
        return super().read_blobs(blob_shas)


class Harness:
    """One controller process: its own source, loader caches and spec-check counter."""

    def __init__(
        self, store: Any, repo: Repo, keys: Keys, clock: ManualClock, tmp: Path, **config: Any
    ) -> None:
        cfg = ControllerConfig(repo=repo.url, cache_dir=tmp / "cache", **config)
        self.source = RecordingSource(repo.url, ref="main", cache_dir=cfg.cache_dir)
        self.checked: list[str] = []
        real = default_spec_checker()

        def checker(spec_: Mapping[str, Any], policy: EnvironmentPolicy) -> Any:
            self.checked.append(str(spec_["agent"]["system_prompt"]))
            return real(spec_, policy)

        self.ctl = Controller(
            store, self.source, keys.keyring(), config=cfg, clock=clock, spec_checker=checker
        )
        self.repo = repo

    def reconcile(self, **kwargs: Any) -> Any:
        self.source.read.clear()
        self.checked.clear()
        result = self.ctl.reconcile_once(**kwargs)
        assert result.ok and result.leader, result.error
        return result

    def bundle_blobs_read(self) -> set[str]:
        """Paths of the bundle files whose blobs the last pass read."""
        listing = self.repo.git("ls-tree", "-r", "HEAD", "--", "bundles")
        by_blob = {line.split()[2]: line.split("\t")[1] for line in listing.splitlines()}
        return {by_blob[b] for b in self.source.read if b in by_blob}

    def close(self) -> None:
        self.ctl.step_down()
        self.source.close()


def acts(result: Any) -> list[tuple[str, str, str]]:
    return sorted(
        (o.action.kind.value, o.action.name, o.action.environment)
        for o in result.outcomes
        if o.action.kind.value != "noop"
    )


@pytest.fixture
def five(repo: Repo, keys: Keys) -> Repo:
    for i in range(5):
        repo.write(f"bundles/b{i}/dev.json", keys.bundle(f"b{i}", "dev", spec(f"b{i} v1")))
    repo.commit("five bundles")
    return repo


def test_one_bundle_commit_reads_and_verifies_that_file_only(
    store: Any, five: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    h = Harness(store, five, keys, clock, tmp_path)
    first = h.reconcile()
    assert first.stats["mode"] == "full" and first.stats["full_reason"] == "no_state"
    assert len(h.checked) == 5 and len(h.bundle_blobs_read()) == 5

    five.write("bundles/b3/dev.json", keys.bundle("b3", "dev", spec("b3 v2")))
    five.commit("b3 v2")
    result = h.reconcile()
    assert result.stats["mode"] == "incremental" and result.stats["scope"] == 1
    assert h.bundle_blobs_read() == {"bundles/b3/dev.json"} and h.checked == ["b3 v2"]
    assert acts(result) == [("activate", "b3", "dev")]
    assert store.registry.get_active("b3", "dev").spec["agent"]["system_prompt"] == "b3 v2"

    noop = h.reconcile()  # the same commit again: nothing read, planned or written
    assert noop.stats["scope"] == 0 and noop.outcomes == [] and h.source.read == []
    h.close()


def test_a_new_controller_continues_from_the_saved_state(
    store: Any, five: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    first = Harness(store, five, keys, clock, tmp_path)
    first.reconcile()
    first.close()
    five.write("bundles/b1/dev.json", keys.bundle("b1", "dev", spec("b1 v2")))
    five.commit("b1 v2")
    second = Harness(store, five, keys, clock, tmp_path)  # empty caches: a new leader
    result = second.reconcile()
    assert result.stats["mode"] == "incremental" and second.checked == ["b1 v2"]
    assert second.bundle_blobs_read() == {"bundles/b1/dev.json"}
    assert acts(result) == [("activate", "b1", "dev")]
    second.close()


def test_a_restarted_process_uses_the_persisted_state(
    five: Repo, keys: Keys, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    (project / ".kneo").mkdir(parents=True)
    (project / ".kneo" / "config.yaml").write_text(
        "version: v1\ncontroller:\n"
        f"  repo: {five.url}\n  branch: main\n  trusted_keys: {keys.trusted_dir}\n"
        f"  cache_dir: {tmp_path / 'cache'}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("KNEO_") or k == "KNEO_HOME"}
    env["KNEO_SERV_DATABASE_URL"] = f"sqlite:///{tmp_path / 'cli.sqlite'}"

    def reconcile() -> dict[str, Any]:
        out = subprocess.run(
            [*KNEO, "controller", "reconcile", "--json"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        return dict(json.loads(out.stdout))

    assert reconcile()["stats"]["verified"] == 5
    five.write("bundles/b4/dev.json", keys.bundle("b4", "dev", spec("b4 v2")))
    five.commit("b4 v2")
    again = reconcile()
    assert again["stats"]["mode"] == "incremental" and again["stats"]["verified"] == 1
    assert [(a["action"], a["bundle"]) for a in again["actions"]] == [("activate", "b4")]


def test_a_deleted_bundle_file_is_pruned_incrementally(
    store: Any, five: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    h = Harness(store, five, keys, clock, tmp_path)
    h.reconcile()
    five.remove("bundles/b2")
    five.commit("drop b2")
    result = h.reconcile()
    assert result.stats["mode"] == "incremental" and h.source.read == []
    assert acts(result) == [("prune", "b2", "dev")]
    assert (
        store.registry.get_active("b2", "dev") is None
        and store.registry.get_active("b1", "dev") is not None
    )
    for i in (0, 1, 3, 4):  # the commit deleting the last bundles is still guarded
        five.remove(f"bundles/b{i}")
    five.commit("drop everything")
    emptied = h.reconcile()
    assert emptied.stats["mode"] == "incremental"
    assert {o.action.reason for o in emptied.outcomes} == {"empty_desired_state"}
    assert store.registry.get_active("b0", "dev") is not None
    again = h.reconcile()  # held back, so planned (and reported) again, like a full pass
    assert again.stats["scope"] == 4
    assert {o.action.reason for o in again.outcomes} == {"empty_desired_state"}
    assert "empty_desired_state" in {p["code"] for p in again.problems}
    h.close()


def test_a_policy_change_re_evaluates_every_bundle_of_the_environment(
    store: Any, five: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    h = Harness(store, five, keys, clock, tmp_path)
    h.reconcile()
    five.write("environments/dev.yaml", "version: v1\nrequired_signatures: 2\n")
    five.commit("dev needs two signatures")
    result = h.reconcile()
    assert result.stats["mode"] == "full" and result.stats["full_reason"] == "policy_changed"
    assert acts(result) == [("reject", f"b{i}", "dev") for i in range(5)]
    for i in range(5):  # rejected revisions never replace the active ones
        assert (
            store.registry.get_active(f"b{i}", "dev").spec["agent"]["system_prompt"] == f"b{i} v1"
        )
    h.close()


def test_a_trust_change_invalidates_the_unchanged_files(
    store: Any, five: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    h = Harness(store, five, keys, clock, tmp_path)
    h.reconcile()
    h.close()
    (keys.trusted_dir / "ci.pub").unlink()  # rotate ci out: same commit, same blobs
    rotated = Harness(store, five, keys, clock, tmp_path)
    result = rotated.reconcile()
    assert result.stats["full_reason"] == "fingerprint_changed"
    assert len(rotated.bundle_blobs_read()) == 5
    assert acts(result) == [("reject", f"b{i}", "dev") for i in range(5)]
    assert {p["code"] for p in result.problems} == {"bundle_unknown_key"}
    rotated.close()


def test_an_expiring_key_forces_a_full_pass_when_its_window_ends(
    store: Any, five: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    (keys.trusted_dir / "keyring.yaml").write_text(
        "keys:\n  ci: {not_after: 2026-06-01T00:00:00Z}\n", encoding="utf-8"
    )
    h = Harness(store, five, keys, clock, tmp_path)
    h.reconcile()
    assert h.reconcile().stats["mode"] == "incremental"
    clock.set(datetime(2026, 6, 2, tzinfo=UTC))
    result = h.reconcile()
    assert result.stats["full_reason"] == "recheck_due"
    assert {p["code"] for p in result.problems} == {"bundle_key_expired"}
    h.close()


def test_registry_changes_by_people_are_observed_without_a_commit(
    store: Any, five: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    h = Harness(store, five, keys, clock, tmp_path)
    h.reconcile()
    five.write("bundles/b0/dev.json", keys.bundle("b0", "dev", spec("b0 v2")))
    five.commit("b0 v2")
    h.reconcile()
    with store.transaction() as tx:
        tx.set_revision_status("b0", "dev", 1, "active")  # by hand: drift
    with store.transaction() as tx:
        tx.set_suspended("b4", "dev", True, reason="investigating")
    result = h.reconcile()
    assert result.stats["mode"] == "incremental" and result.stats["scope"] == 2
    assert acts(result) == [("drift_revert", "b0", "dev")]
    assert store.registry.get_active("b0", "dev").revision == 2
    suspended = [o for o in result.outcomes if o.action.name == "b4"]
    assert [o.action.reason for o in suspended] == ["suspended"]
    assert h.reconcile().outcomes == []  # the controller's own writes are not re-read
    h.close()


def test_a_failed_reconcile_keeps_the_last_state_and_loses_nothing(
    store: Any, five: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    h = Harness(store, five, keys, clock, tmp_path)
    h.reconcile()
    five.write("bundles/b1/dev.json", keys.bundle("b1", "dev", spec("b1 v2")))
    five.commit("b1 v2")
    hidden = five.remote_path.with_name("moved.git")
    five.remote_path.rename(hidden)
    failed = h.ctl.reconcile_once()
    assert failed.error is not None and failed.error["stage"] == "fetch"
    hidden.rename(five.remote_path)
    five.write("bundles/b2/dev.json", keys.bundle("b2", "dev", spec("b2 v2")))
    five.commit("b2 v2")
    result = h.reconcile()  # from the last good commit: both changes
    assert result.stats["mode"] == "incremental" and result.stats["scope"] == 2
    assert acts(result) == [("activate", "b1", "dev"), ("activate", "b2", "dev")]
    h.close()


def test_problems_of_unchanged_files_stay_reported(
    store: Any, five: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    five.write("bundles/forged/dev.json", keys.bundle("forged", "dev", key=keys.forged))
    five.write("bundles/bad/name/dev.json", keys.bundle("bad", "dev"))
    five.commit("a forged bundle and a misplaced file")
    h = Harness(store, five, keys, clock, tmp_path)
    full = h.reconcile().problems
    assert {(p["code"], p["path"]) for p in full} == {
        ("bundle_signature_invalid", "bundles/forged/dev.json"),
        ("bundle_path_invalid", "bundles/bad/name/dev.json"),
    }
    five.write("bundles/b0/dev.json", keys.bundle("b0", "dev", spec("b0 v2")))
    five.commit("b0 v2")
    result = h.reconcile()
    assert result.stats["mode"] == "incremental" and result.problems == full
    assert h.ctl.status()["problems"] == full
    five.write("bundles/forged/dev.json", keys.bundle("forged", "dev"))  # fixed
    five.commit("sign forged properly")
    fixed = h.reconcile()
    assert [p["code"] for p in fixed.problems] == ["bundle_path_invalid"]
    assert acts(fixed) == [("activate", "forged", "dev")]
    h.close()


def test_an_upstream_change_replans_the_bundle_downstream(
    store: Any, repo: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    repo.write("bundles/app/dev.json", keys.bundle("app", "dev", spec("v1")))
    repo.write("bundles/app/staging.json", keys.bundle("app", "staging", spec("v2")))
    repo.commit("staging ahead of dev")
    h = Harness(store, repo, keys, clock, tmp_path)
    waiting = h.reconcile()
    assert ("wait_for_upstream", "app", "staging") in {
        (o.action.kind.value, o.action.name, o.action.environment) for o in waiting.outcomes
    }
    repo.write("bundles/app/dev.json", keys.bundle("app", "dev", spec("v2")))
    repo.commit("dev catches up")
    result = h.reconcile()  # only dev's file changed; staging is planned with it
    assert result.stats["mode"] == "incremental"
    assert acts(result) == [("activate", "app", "dev"), ("activate", "app", "staging")]
    h.close()


def test_scope_falls_back_to_a_full_pass_for_what_it_cannot_vouch_for() -> None:
    state = incremental.ReconcileState("c" * 40, "f", 0, 100)
    assert incremental.scope_of(state, None, ()) == (None, incremental.HISTORY_UNKNOWN)
    for path in ("environments/dev.yaml", ".kneo/config.yaml"):
        assert incremental.scope_of(state, [("M", path)], ()) == (None, "policy_changed")
    assert incremental.scope_of(state, [("A", "bundles/x.json")], ())[1] == "bundle_path_invalid"
    many = [("M", f"bundles/b{i}/dev.json") for i in range(65)]
    assert incremental.scope_of(state, many, ())[1] == "scope_too_large"
    scope, reason = incremental.scope_of(
        state, [("A", "bundles/new/dev.json"), ("D", "bundles/old/dev.json")], {"drifted"}
    )
    assert reason is None and scope is not None
    assert scope.names == {"new", "old", "drifted"} and scope.bundle_count == 100
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert incremental.full_reason(None, "f", now) == "no_state"
    assert incremental.full_reason(state, "g", now) == "fingerprint_changed"
    assert incremental.full_reason(state, "f", now) is None
    assert incremental.ReconcileState.from_dict(state.to_dict()) == state
    assert incremental.ReconcileState.from_dict({"commit": "x"}) is None
