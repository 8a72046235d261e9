"""Bad input is reported with a reason; the active revision keeps serving; the controller runs on."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from gitops_fixtures import Keys, Repo, make_controller, spec

from kneo.bundle.keys import load_keyring
from kneo.clock import ManualClock
from kneo.controller.config import ControllerConfig
from kneo.controller.controller import Controller
from kneo.controller.source import GitSource
from kneo.controller.watch import RepositoryWatcher, verify_github_signature
from kneo.errors import Unauthorized
from kneo.store import AuditQuery
from tests.operations.helpers import wait_for


def _unsigned(keys: Keys) -> str:
    doc = json.loads(keys.bundle("helper", "dev", spec("v2")))
    doc["signatures"] = []
    return json.dumps(doc)


def _expired_key(keys: Keys) -> str:
    (keys.trusted_dir / "keyring.yaml").write_text(
        "keys:\n  release: {not_after: 2025-06-01T00:00:00Z}\n", encoding="utf-8"
    )
    return keys.bundle("helper", "dev", spec("v2"), key="release")


BAD_FILES = [
    ("unsigned", "bundles/helper/dev.json", _unsigned, "bundle_unsigned"),
    (
        "wrong key",
        "bundles/helper/dev.json",
        lambda k: k.bundle("helper", "dev", spec("v2"), key=k.forged),
        "bundle_signature_invalid",
    ),
    ("expired key", "bundles/helper/dev.json", _expired_key, "bundle_key_expired"),
    (
        "malformed json",
        "bundles/helper/dev.json",
        lambda k: '{"kind": "KneoSpecBundle", ',
        "bundle_malformed",
    ),
    (
        "environment without a file",
        "bundles/helper/qa.json",
        lambda k: k.bundle("helper", "qa"),
        "environment_missing",
    ),
]


@pytest.mark.parametrize(
    ("path", "content", "code"), [c[1:] for c in BAD_FILES], ids=[c[0] for c in BAD_FILES]
)
def test_bad_bundle_is_rejected_with_its_reason(
    store,
    repo: Repo,
    keys: Keys,
    clock: ManualClock,
    tmp_path: Path,
    path: str,
    content: Any,
    code: str,
) -> None:
    repo.write("bundles/helper/dev.json", keys.bundle("helper", "dev"))
    repo.commit()
    ctl = make_controller(store, repo, keys, clock, tmp_path)
    assert ctl.reconcile_once().ok
    repo.write(path, content(keys))
    repo.commit("bad")
    ctl.loader.keyring = load_keyring(keys.trusted_dir)  # picks up keyring.yaml windows
    result = ctl.reconcile_once()
    assert result.ok
    rejects = [o for o in result.outcomes if o.action.kind.value == "reject"]
    assert [r.action.reasons[0].code for r in rejects] == [code]
    assert store.registry.get_active("helper", "dev").revision == 1
    assert any(
        e.event_type == "bundle.rejected" and e.payload["reasons"][0]["code"] == code
        for e in store.audit.list_audit(AuditQuery(limit=100)).items
    )


def test_malformed_environment_yaml_keeps_the_last_verified_policy(
    store, repo: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    """A broken file opens nothing and closes nothing: the policy in force (the last one
    verified) keeps judging, and the problem says why (issue 53)."""
    repo.write("environments/dev.yaml", "version: v1\nrequired_signatures: 2\n")
    repo.write("bundles/helper/dev.json", keys.bundle("helper", "dev", cosign="release"))
    repo.commit()
    ctl = make_controller(store, repo, keys, clock, tmp_path)
    ctl.reconcile_once()
    repo.write("environments/dev.yaml", "version: v1\npromotion: [unclosed\n")
    repo.write("bundles/helper/dev.json", keys.bundle("helper", "dev", spec("v2")))
    repo.commit()
    result = ctl.reconcile_once()
    [kept] = [p for p in result.problems if p["code"] == "policy_kept"]
    assert "invalid YAML" in kept["message"] and "last verified policy" in kept["message"]
    (reject,) = [o for o in result.outcomes if o.action.kind.value == "reject"]
    assert reject.action.reasons[0].code == "bundle_insufficient_signatures"  # 2 still in force
    assert store.registry.get_active("helper", "dev").revision == 1


def test_unreachable_remote_is_reported_and_the_controller_keeps_running(
    store, repo: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    repo.write("bundles/helper/dev.json", keys.bundle("helper", "dev"))
    repo.commit()
    ctl = make_controller(store, repo, keys, clock, tmp_path)
    ctl.reconcile_once()
    moved = repo.remote_path.with_name("gone.git")
    repo.remote_path.rename(moved)
    failed = ctl.reconcile_once()
    assert not failed.ok and failed.error["code"] == "source_unreachable"
    assert failed.error["stage"] == "fetch"
    status = ctl.status()
    assert status["last_error"].startswith("source_unreachable")
    assert store.registry.get_active("helper", "dev") is not None
    ctl.reconcile_once()  # the same error is audited once
    assert [e.event_type for e in store.audit.list_audit(AuditQuery(limit=100)).items].count(
        "controller.reconcile_failed"
    ) == 1
    moved.rename(repo.remote_path)
    assert ctl.reconcile_once().ok and ctl.status()["last_error"] is None


def test_missing_branch_is_a_clear_error(
    store, repo: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    source = GitSource(repo.url, ref="nope", cache_dir=tmp_path / "cache")
    ctl = Controller(store, source, keys.keyring(), clock=clock)
    assert ctl.reconcile_once().error["code"] == "source_ref_not_found"


def test_required_signatures_and_accepted_key_ids(
    store, repo: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    """Two distinct trusted keys when required; accepted_key_ids narrows, never widens."""
    repo.write("environments/dev.yaml", "version: v1\nrequired_signatures: 2\n")
    repo.write("environments/staging.yaml", "version: v1\naccepted_key_ids: [release, stranger]\n")
    repo.write("bundles/one/dev.json", keys.bundle("one", "dev"))
    repo.write("bundles/two/dev.json", keys.bundle("two", "dev", cosign="release"))
    repo.write("bundles/ci/staging.json", keys.bundle("ci", "staging"))
    repo.commit()
    result = make_controller(store, repo, keys, clock, tmp_path).reconcile_once()
    verdicts = {(o.action.name, o.action.kind.value): o.action.reasons for o in result.outcomes}
    assert verdicts[("one", "reject")][0].code == "bundle_insufficient_signatures"
    assert ("two", "activate") in verdicts
    assert verdicts[("ci", "reject")][0].code == "bundle_key_not_accepted"


def test_local_repository_commit_reconciles_within_a_second(
    store, repo: Repo, keys: Keys, tmp_path: Path
) -> None:
    """watchdog on a local path: a commit wakes the loop (the poll interval is an hour)."""
    from kneo.clock import SystemClock

    cfg = ControllerConfig(repo=str(repo.work), interval=3600)
    ctl = Controller(
        store, GitSource(str(repo.work)), keys.keyring(), config=cfg, clock=SystemClock()
    )
    stop = threading.Event()
    results: list[Any] = []
    loop = threading.Thread(target=ctl.run, args=(stop,), kwargs={"on_result": results.append})
    loop.start()  # the loop watches the local repository itself
    try:
        # the commit is timed from after the first pass (on a slow machine it took > 5 s)
        wait_for(lambda: results, timeout=60, what="the controller's first pass")
        repo.write("bundles/helper/dev.json", keys.bundle("helper", "dev"))
        committed = time.monotonic()
        repo.commit(push=False)
        while (
            store.registry.get_active("helper", "dev") is None and time.monotonic() - committed < 5
        ):
            time.sleep(0.02)
        assert store.registry.get_active("helper", "dev") is not None
        # woken, not polled (the interval is an hour): about a second, 1.55 s seen with the
        # whole suite on two loaded cores, so the bound leaves room for a busy CI machine
        assert time.monotonic() - committed < 3.0
        # idle again (once the commit's own file events have settled): the passes' reads
        # of the repository wake nothing
        settled = len(results)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            time.sleep(0.6)
            if len(results) == settled:
                break
            settled = len(results)
        time.sleep(1.5)
        assert len(results) == settled, [r.started_at for r in results[settled:]]
    finally:
        stop.set()
        ctl.request_reconcile()
        loop.join(timeout=10)
    assert ctl.store.locks.get_lock(ctl.lock_name) is None  # stepped down on stop


def test_a_local_repository_deleted_and_created_again_recovers(
    store, repo: Repo, keys: Keys, tmp_path: Path
) -> None:
    """The repository under a running controller is removed and cloned again: the next
    commit still activates, without a restart (the source reopens it, the watcher re-arms
    on the new directory within a third of the lease)."""
    import shutil

    from kneo.clock import SystemClock

    cfg = ControllerConfig(repo=str(repo.work), interval=3600, lease_seconds=1.5)
    ctl = Controller(
        store, GitSource(str(repo.work)), keys.keyring(), config=cfg, clock=SystemClock()
    )
    stop = threading.Event()
    results: list[Any] = []
    loop = threading.Thread(target=ctl.run, args=(stop,), kwargs={"on_result": results.append})
    loop.start()
    try:
        # bounds generous for a slow, loaded machine (there the first pass alone once took
        # more than 5 s); each wait ends as soon as what it waits for holds
        wait_for(lambda: results, timeout=60, what="the controller's first pass")
        shutil.rmtree(repo.work)
        ctl.request_reconcile()  # a pass while it is gone: source_not_a_repository

        def names_the_cause() -> bool:
            # a pass the watcher started while the files were going may first say
            # source_unreadable (a Git command failed half-way); the next one names the cause
            code = (results[-1].error or {}).get("code")
            if code == "source_unreadable":
                ctl.request_reconcile()
            return code == "source_not_a_repository"

        wait_for(names_the_cause, timeout=60, what="source_not_a_repository", interval=0.05)
        repo.git_at(repo.work.parent, "clone", "--quiet", repo.url, str(repo.work))
        repo.write("bundles/helper/dev.json", keys.bundle("helper", "dev"))
        repo.commit(push=False)
        wait_for(
            lambda: store.registry.get_active("helper", "dev"),
            timeout=60,
            what="the new commit's activation",
            interval=0.05,
        )
    finally:
        stop.set()
        ctl.request_reconcile()
        loop.join(timeout=10)


def test_webhook_signature_and_trigger() -> None:
    import hashlib
    import hmac

    body = b'{"ref": "refs/heads/main"}'
    good = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    verify_github_signature("s3cret", body, good)
    for header in (None, "sha1=abc", good.replace("a", "b", 1), "sha256=" + "0" * 64):
        with pytest.raises(Unauthorized) as err:
            verify_github_signature("s3cret", body, header)
        assert err.value.http_status == 401 and "s3cret" not in err.value.message
    with pytest.raises(Unauthorized):
        verify_github_signature("", body, good)


def test_the_watcher_takes_ref_moves_for_changes_and_reads_for_nothing(tmp_path: Path) -> None:
    """git's own reads (every pass opens refs and objects) are not changes: taking them for
    changes kept an idle controller reconciling 4-5 times a second."""
    dot_git = tmp_path / ".git"
    watcher = RepositoryWatcher(dot_git, SimpleNamespace(request_reconcile=lambda: None))
    ref = str(dot_git / "refs" / "heads" / "main")
    assert watcher.is_ref_change("moved", ref + ".lock", ref)  # a commit: lock file renamed
    assert watcher.is_ref_change("modified", str(dot_git / "HEAD"))
    assert watcher.is_ref_change("created", str(dot_git / "packed-refs"))
    assert watcher.is_ref_change("deleted", str(dot_git / "refs" / "tags" / "v1"))
    for event in ("opened", "closed_no_write"):
        assert not watcher.is_ref_change(event, ref)  # reads
    assert not watcher.is_ref_change("created", ref + ".lock")
    assert not watcher.is_ref_change("modified", str(dot_git / "objects" / "ab" / "cdef"))
    assert not watcher.is_ref_change("modified", str(dot_git / "logs" / "HEAD"))
    assert not watcher.is_ref_change("modified", str(tmp_path / "elsewhere" / "HEAD"))


def test_key_validity_uses_the_injected_clock(
    store, repo: Repo, keys: Keys, tmp_path: Path
) -> None:
    (keys.trusted_dir / "keyring.yaml").write_text(
        "keys:\n  ci: {not_after: 2026-06-01T00:00:00Z}\n", encoding="utf-8"
    )
    repo.write("bundles/helper/dev.json", keys.bundle("helper", "dev"))
    repo.commit()
    late = ManualClock(datetime(2026, 7, 1, tzinfo=UTC))
    result = make_controller(store, repo, keys, late, tmp_path).reconcile_once()
    assert result.outcomes[0].action.reasons[0].code == "bundle_key_expired"
